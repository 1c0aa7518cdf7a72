"""`tidal export source git NAME|--all [--with-credentials]` and `tidal export kustomization
NAME|--all`: YAML as `flux export` prints it. `tidal export --all [-A]` (beyond flux) prints every
Flux object of every kind, sources first, so that the output re-applies in one go."""

from __future__ import annotations

from typing import Any

import click

from tidal.cli import render
from tidal.cli.cluster import Session, api_error, get_object, list_objects, run
from tidal.cli.objects import (
    BY_KIND,
    GIT_REPOSITORY,
    HELM_CHART,
    HELM_RELEASE,
    HELM_REPOSITORY,
    KUSTOMIZATION,
    OCI_REPOSITORY,
    ObjectKind,
)
from tidal.cli.options import CliError, global_flags, options
from tidal.cli.output import stdout
from tidal.kube.client import ApiError


async def _credentials(s: Session, obj: dict[str, Any]) -> str:
    ref = ((obj.get("spec") or {}).get("secretRef") or {}).get("name")
    if not ref:
        return ""
    try:
        namespace = (obj.get("metadata") or {}).get("namespace") or s.namespace
        secret = await s.kube.get(f"/api/v1/namespaces/{namespace}/secrets/{ref}")
    except ApiError as e:
        message = e.message
        raise CliError(f"failed to retrieve secret {ref}, error: {message}") from None
    return render.document(render.export_secret(secret))


def export_objects(
    ctx: click.Context, kind: ObjectKind, name: str | None, all_: bool, with_credentials: bool
) -> None:
    if not all_ and not name:
        raise CliError("name is required")
    opts = options(ctx)

    async def work(s: Session) -> str:
        if all_:
            items = await list_objects(s, kind)
            if not items:
                raise CliError(f"no objects found in {s.namespace} namespace")
        else:
            assert name is not None
            items = [await get_object(s, kind, name)]
        out: list[str] = []
        for obj in items:
            out.append(render.document(render.export_object(kind, obj)))
            if with_credentials:
                out.append(await _credentials(s, obj))
        return "".join(out)

    stdout(run(opts, work))


def export_everything(ctx: click.Context, all_namespaces: bool, with_credentials: bool) -> None:
    opts = options(ctx)

    async def work(s: Session) -> str:
        out: list[str] = []
        for kind in BY_KIND.values():
            try:
                items = (
                    await s.kube.get(kind.collection(None if all_namespaces else s.namespace))
                )["items"]
            except ApiError as e:
                if e.status == 404:  # a kind whose CRD is not installed has nothing to export
                    continue
                raise api_error(e, kind) from None
            # The API server lists in (namespace, name) order, which keeps the output stable.
            for obj in items:
                out.append(render.document(render.export_object(kind, obj)))
                if with_credentials:
                    out.append(await _credentials(s, obj))
        if not out:
            where = "any namespace" if all_namespaces else f"{s.namespace} namespace"
            raise CliError(f"no objects found in {where}")
        return "".join(out)

    stdout(run(opts, work))


@click.group(invoke_without_command=True)
@click.option("--all", "all_", is_flag=True, help="Export every Flux object of every kind.")
@click.option(
    "-A", "--all-namespaces", is_flag=True, help="With --all: the objects of every namespace."
)
@click.option("--with-credentials", is_flag=True, help="With --all: include credential secrets.")
@global_flags
@click.pass_context
def export(ctx: click.Context, all_: bool, all_namespaces: bool, with_credentials: bool) -> None:
    """Export resources in YAML format."""
    if ctx.invoked_subcommand is not None:
        if all_ or all_namespaces or with_credentials:
            raise CliError(
                f"--all goes after the kind: tidal export {ctx.invoked_subcommand} --all"
            )
        return
    if not all_:
        raise CliError(
            "a kind or --all is required, e.g. tidal export --all or tidal export ks NAME"
        )
    export_everything(ctx, all_namespaces, with_credentials)


@export.group("source")
def export_source() -> None:
    """Export sources in YAML format."""


@export_source.command("git")
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Select all resources.")
@click.option("--with-credentials", is_flag=True, help="Include credential secrets.")
@global_flags
@click.pass_context
def export_source_git(
    ctx: click.Context, name: str | None, all_: bool, with_credentials: bool
) -> None:
    """Export GitRepository sources in YAML format."""
    export_objects(ctx, GIT_REPOSITORY, name, all_, with_credentials)


@export_source.command("helm")
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Select all resources.")
@click.option("--with-credentials", is_flag=True, help="Include credential secrets.")
@global_flags
@click.pass_context
def export_source_helm(
    ctx: click.Context, name: str | None, all_: bool, with_credentials: bool
) -> None:
    """Export HelmRepository sources in YAML format."""
    export_objects(ctx, HELM_REPOSITORY, name, all_, with_credentials)


@export_source.command("oci")
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Select all resources.")
@click.option("--with-credentials", is_flag=True, help="Include credential secrets.")
@global_flags
@click.pass_context
def export_source_oci(
    ctx: click.Context, name: str | None, all_: bool, with_credentials: bool
) -> None:
    """Export OCIRepository sources in YAML format."""
    export_objects(ctx, OCI_REPOSITORY, name, all_, with_credentials)


@export_source.command("chart")
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Select all resources.")
@global_flags
@click.pass_context
def export_source_chart(ctx: click.Context, name: str | None, all_: bool) -> None:
    """Export HelmChart sources in YAML format."""
    export_objects(ctx, HELM_CHART, name, all_, with_credentials=False)


@export.command("kustomization")
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Select all resources.")
@global_flags
@click.pass_context
def export_kustomization(ctx: click.Context, name: str | None, all_: bool) -> None:
    """Export Kustomizations in YAML format."""
    export_objects(ctx, KUSTOMIZATION, name, all_, with_credentials=False)


export.add_command(export_kustomization, "ks")


@export.command("helmrelease")
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Select all resources.")
@global_flags
@click.pass_context
def export_helmrelease(ctx: click.Context, name: str | None, all_: bool) -> None:
    """Export HelmReleases in YAML format."""
    export_objects(ctx, HELM_RELEASE, name, all_, with_credentials=False)


export.add_command(export_helmrelease, "hr")
