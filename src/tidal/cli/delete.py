"""`tidal delete source git|helm|kustomization NAME`: delete after a confirmation, as flux does."""

from __future__ import annotations

import click

from tidal.cli.cluster import Session, api_error, get_object, run
from tidal.cli.objects import (
    GIT_REPOSITORY,
    HELM_CHART,
    HELM_RELEASE,
    HELM_REPOSITORY,
    KUSTOMIZATION,
    OCI_REPOSITORY,
    ObjectKind,
)
from tidal.cli.options import CliError, global_flags, options
from tidal.cli.output import log
from tidal.kube.client import ApiError


def delete_object(ctx: click.Context, kind: ObjectKind, name: str | None, silent: bool) -> None:
    if not name:
        raise CliError(f"{kind.human} name is required")
    opts = options(ctx)

    async def exists(s: Session) -> None:
        await get_object(s, kind, name)

    # Ask only about an object that exists, but outside the event loop: the prompt blocks.
    run(opts, exists)
    if not silent and not click.confirm(
        f"Are you sure you want to delete this {kind.human}", err=True
    ):
        raise CliError("aborting")

    async def remove(s: Session) -> None:
        log.action(f"deleting {kind.human} {name} in {s.namespace} namespace")
        try:
            await s.kube.request("DELETE", kind.path(s.namespace, name))
        except ApiError as e:
            raise api_error(e, kind) from None
        log.success(f"{kind.human} deleted")

    run(opts, remove)


@click.group()
def delete() -> None:
    """Delete sources and resources."""


@delete.group("source")
def delete_source() -> None:
    """Delete sources."""


@delete_source.command("git")
@click.argument("name", required=False)
@click.option(
    "-s", "--silent", is_flag=True, help="Delete the resource without asking for confirmation."
)
@global_flags
@click.pass_context
def delete_source_git(ctx: click.Context, name: str | None, silent: bool) -> None:
    """Delete a GitRepository source."""
    delete_object(ctx, GIT_REPOSITORY, name, silent)


@delete_source.command("helm")
@click.argument("name", required=False)
@click.option(
    "-s", "--silent", is_flag=True, help="Delete the resource without asking for confirmation."
)
@global_flags
@click.pass_context
def delete_source_helm(ctx: click.Context, name: str | None, silent: bool) -> None:
    """Delete a HelmRepository source."""
    delete_object(ctx, HELM_REPOSITORY, name, silent)


@delete_source.command("oci")
@click.argument("name", required=False)
@click.option(
    "-s", "--silent", is_flag=True, help="Delete the resource without asking for confirmation."
)
@global_flags
@click.pass_context
def delete_source_oci(ctx: click.Context, name: str | None, silent: bool) -> None:
    """Delete an OCIRepository source."""
    delete_object(ctx, OCI_REPOSITORY, name, silent)


@delete_source.command("chart")
@click.argument("name", required=False)
@click.option(
    "-s", "--silent", is_flag=True, help="Delete the resource without asking for confirmation."
)
@global_flags
@click.pass_context
def delete_source_chart(ctx: click.Context, name: str | None, silent: bool) -> None:
    """Delete a HelmChart source."""
    delete_object(ctx, HELM_CHART, name, silent)


@delete.command("kustomization")
@click.argument("name", required=False)
@click.option(
    "-s", "--silent", is_flag=True, help="Delete the resource without asking for confirmation."
)
@global_flags
@click.pass_context
def delete_kustomization(ctx: click.Context, name: str | None, silent: bool) -> None:
    """Delete a Kustomization (its controller prunes what it applied when prune is on)."""
    delete_object(ctx, KUSTOMIZATION, name, silent)


delete.add_command(delete_kustomization, "ks")


@delete.command("helmrelease")
@click.argument("name", required=False)
@click.option(
    "-s", "--silent", is_flag=True, help="Delete the resource without asking for confirmation."
)
@global_flags
@click.pass_context
def delete_helmrelease(ctx: click.Context, name: str | None, silent: bool) -> None:
    """Delete a HelmRelease (its controller uninstalls the Helm release)."""
    delete_object(ctx, HELM_RELEASE, name, silent)


delete.add_command(delete_helmrelease, "hr")
