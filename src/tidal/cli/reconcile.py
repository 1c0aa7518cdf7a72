"""`tidal reconcile source git|kustomization NAME`: request a reconciliation now and wait for
its result.

As flux: refuse a suspended object, write `reconcile.fluxcd.io/requestedAt` with the current
time in RFC 3339 with nanoseconds (a merge patch of that one annotation), then poll until
status.lastHandledReconcileAt moves away from its previous value and the object is current
(kstatus), and report the Ready condition: "fetched revision <rev>" (sources) or "applied
revision <rev>" (Kustomizations) when True. `--with-source` first does all of that for the
Kustomization's source, in the source's namespace, under the same deadline.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from typing import Any

import click

from tidal.api.meta import RECONCILE_REQUEST_ANNOTATION
from tidal.cli import readiness
from tidal.cli.cluster import Session, get_object, merge_patch, run
from tidal.cli.kustomization import CLI_SOURCE_KINDS
from tidal.cli.objects import (
    BY_KIND,
    GIT_REPOSITORY,
    HELM_CHART,
    HELM_REPOSITORY,
    KUSTOMIZATION,
    OCI_REPOSITORY,
    ObjectKind,
    is_static,
)
from tidal.cli.options import CliError, global_flags, options
from tidal.cli.output import log
from tidal.cli.wait import wait_for


def rfc3339_nano(ns: int | None = None) -> str:
    """Go's time.Now().Format(time.RFC3339Nano): local time, trailing zeros of the fraction
    dropped, `Z` for UTC."""
    ns = time.time_ns() if ns is None else ns
    seconds, nanos = divmod(ns, 1_000_000_000)
    local = datetime.fromtimestamp(seconds).astimezone()
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    offset = local.utcoffset()
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return text + f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


async def _suspension_checked(s: Session, kind: ObjectKind, name: str) -> dict[str, Any]:
    obj = await get_object(s, kind, name)
    if (obj.get("spec") or {}).get("suspend") is True:
        raise CliError("resource is suspended")
    return obj


async def request_and_wait(
    s: Session,
    kind: ObjectKind,
    name: str,
    before: str,
    *,
    quote_failure: bool = True,
    also: tuple[str, ...] = (),
) -> None:
    """Annotate, wait until the request is handled, and report the result. flux quotes the
    Ready message of a failure for sources, not for the kinds that can reconcile their source
    too (Kustomization), whether or not `--with-source` is given. The annotations `also` get
    the request's timestamp too (a HelmRelease's forceAt and resetAt)."""
    log.action(f"annotating {kind.kind} {name} in {s.namespace} namespace")
    token = rfc3339_nano()
    annotations = dict.fromkeys((RECONCILE_REQUEST_ANNOTATION, *also), token)
    await merge_patch(s, kind, name, {"metadata": {"annotations": annotations}})
    log.success(f"{kind.kind} annotated")
    log.waiting(f"waiting for {kind.kind} reconciliation")
    live = await wait_for(
        s,
        kind,
        name,
        lambda o: readiness.handled(o, before),
        f"{kind.kind} {name} reconciliation",
    )
    ready = readiness.condition(live, "Ready")
    if ready is None:
        raise CliError("status can't be determined")
    if ready.get("status") != "True":
        message = str(ready.get("message", ""))
        shown = f"'{message}'" if quote_failure else message
        raise CliError(f"{kind.kind} reconciliation failed: {shown}")
    success = kind.success(live)
    if success is None:
        raise CliError(f"{kind.kind} is ready but has no artifact")
    log.success(success)


async def reconcile_in(s: Session, kind: ObjectKind, name: str) -> None:
    obj = await get_object(s, kind, name)
    if is_static(obj):
        # flux checks this before suspension: an oci HelmRepository is never reconciled.
        log.success("reconciliation not supported by the object")
        return
    if (obj.get("spec") or {}).get("suspend") is True:
        raise CliError("resource is suspended")
    await request_and_wait(s, kind, name, readiness.last_handled(obj))


def reconcile_object(ctx: click.Context, kind: ObjectKind, name: str | None) -> None:
    if not name:
        raise CliError(f"{kind.kind} name is required")
    run(options(ctx), lambda s: reconcile_in(s, kind, name))


def _in_namespace(s: Session, namespace: str) -> Session:
    return Session(s.kube, replace(s.opts, namespace=namespace), s.deadline)


def reconcile_with_source(
    ctx: click.Context,
    kind: ObjectKind,
    name: str | None,
    with_source: bool,
    source_kinds: tuple[str, ...] = CLI_SOURCE_KINDS,
) -> None:
    if not name:
        raise CliError(f"{kind.kind} name is required")

    async def work(s: Session) -> None:
        obj = await _suspension_checked(s, kind, name)
        # Taken before the source is reconciled: a Kustomization reacting to the new artifact
        # on its own must not be mistaken for the answer to this request.
        before = readiness.last_handled(obj)
        if with_source:
            ref = (obj.get("spec") or {}).get("sourceRef") or {}
            source_kind = str(ref.get("kind", ""))
            source = BY_KIND.get(source_kind) if source_kind in source_kinds else None
            if source is None:
                raise CliError(f"cannot reconcile source of kind {source_kind}")
            at = _in_namespace(s, str(ref.get("namespace") or s.namespace))
            await reconcile_in(at, source, str(ref.get("name", "")))
        await request_and_wait(s, kind, name, before, quote_failure=False)

    run(options(ctx), work)


@click.group()
def reconcile() -> None:
    """Reconcile sources and resources."""


@reconcile.group("source")
def reconcile_source() -> None:
    """Reconcile sources."""


@reconcile_source.command("git")
@click.argument("name", required=False)
@global_flags
@click.pass_context
def reconcile_source_git(ctx: click.Context, name: str | None) -> None:
    """Trigger a reconciliation of a GitRepository source and wait for it to finish."""
    reconcile_object(ctx, GIT_REPOSITORY, name)


@reconcile_source.command("helm")
@click.argument("name", required=False)
@global_flags
@click.pass_context
def reconcile_source_helm(ctx: click.Context, name: str | None) -> None:
    """Trigger a reconciliation of a HelmRepository source and wait for it to finish."""
    reconcile_object(ctx, HELM_REPOSITORY, name)


@reconcile_source.command("oci")
@click.argument("name", required=False)
@global_flags
@click.pass_context
def reconcile_source_oci(ctx: click.Context, name: str | None) -> None:
    """Trigger a reconciliation of an OCIRepository source and wait for it to finish."""
    reconcile_object(ctx, OCI_REPOSITORY, name)


@reconcile_source.command("chart")
@click.argument("name", required=False)
@click.option("--with-source", is_flag=True, help="reconcile HelmChart source")
@global_flags
@click.pass_context
def reconcile_source_chart(ctx: click.Context, name: str | None, with_source: bool) -> None:
    """Trigger a reconciliation of a HelmChart source and wait for it to finish."""
    reconcile_with_source(
        ctx, HELM_CHART, name, with_source, ("HelmRepository", "GitRepository", "Bucket")
    )


@reconcile.command("kustomization")
@click.argument("name", required=False)
@click.option("--with-source", is_flag=True, help="Reconcile the Kustomization's source first.")
@global_flags
@click.pass_context
def reconcile_kustomization(ctx: click.Context, name: str | None, with_source: bool) -> None:
    """Trigger a reconciliation of a Kustomization and wait for it to be applied."""
    reconcile_with_source(ctx, KUSTOMIZATION, name, with_source)


reconcile.add_command(reconcile_kustomization, "ks")


def _add_helm_release() -> None:
    # Imported here: the HelmRelease command builds on this module's functions.
    from tidal.cli.reconcile_helmrelease import reconcile_helmrelease

    reconcile.add_command(reconcile_helmrelease)
    reconcile.add_command(reconcile_helmrelease, "hr")


_add_helm_release()
