"""`tidal export source git NAME|--all [--with-credentials]` and `tidal export kustomization
NAME|--all`: YAML as `flux export` prints it."""

from __future__ import annotations

from typing import Any

import click

from tidal.cli import render
from tidal.cli.cluster import Session, get_object, list_objects, run
from tidal.cli.objects import GIT_REPOSITORY, KUSTOMIZATION, ObjectKind
from tidal.cli.options import CliError, global_flags, options
from tidal.cli.output import stdout
from tidal.kube.client import ApiError


async def _credentials(s: Session, obj: dict[str, Any]) -> str:
    ref = ((obj.get("spec") or {}).get("secretRef") or {}).get("name")
    if not ref:
        return ""
    try:
        secret = await s.kube.get(f"/api/v1/namespaces/{s.namespace}/secrets/{ref}")
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


@click.group()
def export() -> None:
    """Export resources in YAML format."""


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


@export.command("kustomization")
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Select all resources.")
@global_flags
@click.pass_context
def export_kustomization(ctx: click.Context, name: str | None, all_: bool) -> None:
    """Export Kustomizations in YAML format."""
    export_objects(ctx, KUSTOMIZATION, name, all_, with_credentials=False)


export.add_command(export_kustomization, "ks")
