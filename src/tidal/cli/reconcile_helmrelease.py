"""`tidal reconcile helmrelease NAME [--with-source] [--force] [--reset]` (alias `hr`), as flux
does it.

flux refuses a suspended release, then with `--with-source` reconciles the chart source first:
the HelmChart the controller made from the chart template (named `<namespace>-<name>`, in the
template's source namespace), or the `chartRef` (a HelmChart or an OCIRepository). A HelmChart
is always reconciled together with its own source, as `reconcile source chart --with-source`
does. Then the release is annotated with `reconcile.fluxcd.io/requestedAt`, plus `forceAt`
(`--force`: a one-off install or upgrade) and `resetAt` (`--reset`: the failure counters start
again) carrying the same timestamp, and the command waits for the request to be handled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

import click

from tidal.api.meta import FORCE_REQUEST_ANNOTATION, RESET_REQUEST_ANNOTATION
from tidal.cli import readiness
from tidal.cli.cluster import Session, get_object, run
from tidal.cli.objects import BY_KIND, HELM_CHART, HELM_RELEASE, OCI_REPOSITORY, ObjectKind
from tidal.cli.options import CliError, global_flags, options
from tidal.cli.reconcile import reconcile_in, request_and_wait

# The kinds a HelmChart can pull from, which flux reconciles with it.
CHART_SOURCE_KINDS: Final = ("HelmRepository", "GitRepository", "Bucket")


def _in_namespace(s: Session, namespace: str) -> Session:
    return Session(s.kube, replace(s.opts, namespace=namespace), s.deadline)


async def _suspension_checked(s: Session, name: str, kind: ObjectKind) -> dict[str, Any]:
    obj = await get_object(s, kind, name)
    if (obj.get("spec") or {}).get("suspend") is True:
        raise CliError("resource is suspended")
    return obj


async def reconcile_chart_with_source(s: Session, name: str) -> None:
    """A HelmChart and, first, its source (in the chart's namespace)."""
    chart = await _suspension_checked(s, name, HELM_CHART)
    before = readiness.last_handled(chart)
    ref = (chart.get("spec") or {}).get("sourceRef") or {}
    source_kind = str(ref.get("kind", ""))
    source = BY_KIND.get(source_kind) if source_kind in CHART_SOURCE_KINDS else None
    if source is None:
        raise CliError(f"cannot reconcile source of kind {source_kind}")
    await reconcile_in(s, source, str(ref.get("name", "")))
    await request_and_wait(s, HELM_CHART, name, before, quote_failure=False)


async def reconcile_chart_source(s: Session, hr: Mapping[str, Any]) -> None:
    """What `--with-source` reconciles for the release `hr`."""
    meta = hr.get("metadata") or {}
    spec = hr.get("spec") or {}
    own_namespace = str(meta.get("namespace", ""))
    chart_ref = spec.get("chartRef")
    if chart_ref:
        kind = str(chart_ref.get("kind", ""))
        at = _in_namespace(s, str(chart_ref.get("namespace") or own_namespace))
        name = str(chart_ref.get("name", ""))
        if kind == HELM_CHART.kind:
            await reconcile_chart_with_source(at, name)
        elif kind == OCI_REPOSITORY.kind:
            await reconcile_in(at, OCI_REPOSITORY, name)
        else:
            raise CliError(f"cannot reconcile source of kind {kind}")
        return
    source_ref = ((spec.get("chart") or {}).get("spec") or {}).get("sourceRef") or {}
    at = _in_namespace(s, str(source_ref.get("namespace") or own_namespace))
    await reconcile_chart_with_source(at, f"{own_namespace}-{meta.get('name', '')}")


def reconcile_helm_release(
    ctx: click.Context, name: str | None, with_source: bool, force: bool, reset: bool
) -> None:
    if not name:
        raise CliError(f"{HELM_RELEASE.kind} name is required")
    also = tuple(
        key
        for key, wanted in ((FORCE_REQUEST_ANNOTATION, force), (RESET_REQUEST_ANNOTATION, reset))
        if wanted
    )

    async def work(s: Session) -> None:
        hr = await _suspension_checked(s, name, HELM_RELEASE)
        # Taken before the source is reconciled: a release reacting to a new chart on its own
        # must not be mistaken for the answer to this request.
        before = readiness.last_handled(hr)
        if with_source:
            await reconcile_chart_source(s, hr)
        await request_and_wait(s, HELM_RELEASE, name, before, quote_failure=False, also=also)

    run(options(ctx), work)


@click.command("helmrelease")
@click.argument("name", required=False)
@click.option("--with-source", is_flag=True, help="Reconcile the HelmRelease's chart source first.")
@click.option(
    "--force", is_flag=True, help="Force a one-off install or upgrade of the HelmRelease."
)
@click.option("--reset", is_flag=True, help="Reset the failure counts of the HelmRelease.")
@global_flags
@click.pass_context
def reconcile_helmrelease(
    ctx: click.Context, name: str | None, with_source: bool, force: bool, reset: bool
) -> None:
    """Trigger a reconciliation of a HelmRelease and wait for it to finish.

    \b
    tidal reconcile hr podinfo
    tidal reconcile hr podinfo --with-source
    tidal reconcile hr podinfo --force
    """
    reconcile_helm_release(ctx, name, with_source, force, reset)
