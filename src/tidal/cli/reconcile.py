"""`tidal reconcile source git NAME`: request a reconciliation now and wait for its result.

As flux: refuse a suspended object, write `reconcile.fluxcd.io/requestedAt` with the current
time in RFC 3339 with nanoseconds (a merge patch of that one annotation), then poll until
status.lastHandledReconcileAt moves away from its previous value and the object is current
(kstatus), and report the Ready condition: "fetched revision <rev>" when True.
"""

from __future__ import annotations

import time
from datetime import datetime

import click

from tidal.api.meta import RECONCILE_REQUEST_ANNOTATION
from tidal.cli import readiness
from tidal.cli.cluster import Session, get_object, merge_patch, run
from tidal.cli.objects import GIT_REPOSITORY, ObjectKind
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


def reconcile_object(ctx: click.Context, kind: ObjectKind, name: str | None) -> None:
    if not name:
        raise CliError(f"{kind.kind} name is required")
    opts = options(ctx)

    async def work(s: Session) -> None:
        obj = await get_object(s, kind, name)
        if (obj.get("spec") or {}).get("suspend") is True:
            raise CliError("resource is suspended")
        log.action(f"annotating {kind.kind} {name} in {s.namespace} namespace")
        before = readiness.last_handled(obj)
        token = rfc3339_nano()
        await merge_patch(
            s, kind, name, {"metadata": {"annotations": {RECONCILE_REQUEST_ANNOTATION: token}}}
        )
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
            raise CliError(f"{kind.kind} reconciliation failed: '{ready.get('message', '')}'")
        revision = ((live.get("status") or {}).get("artifact") or {}).get("revision")
        if revision is None:
            raise CliError(f"{kind.kind} is ready but has no artifact")
        log.success(f"fetched revision {revision}")

    run(opts, work)


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
