"""Helm v4's status waiter (pkg/kube/statuswait.go) on tidal's kstatus: Wait, WaitWithJobs,
WatchUntilReady (hooks) and WaitForDelete, with Helm's error texts.

Helm watches; tidal polls the same status rules. A wait ends when every object that has not
Failed is at the desired status (Failed is terminal, there is nothing to wait for), or at the
timeout; every object not at the desired status is then reported, one line each, and a
timeout adds Go's "context deadline exceeded".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tidal.helm.resources import Item
from tidal.kube import kstatus
from tidal.kube.kstatus import ObjRef, ResourceStatus, Status
from tidal.runtime.poll import poll_until
from tidal.ssa.manager import ResourceManager, StatusReader

DEADLINE = "context deadline exceeded"
POLL_INTERVAL = 2.0


class WaitError(Exception):
    """Helm's joined wait error (lines joined with newlines, as errors.Join prints)."""


def helm_job_status(ref: ObjRef, live: Mapping[str, Any] | None) -> ResourceStatus:
    """Helm's custom Job reader (internal/statusreaders): only a finished Job is Current."""
    if live is None:
        return ResourceStatus(ref, Status.NOT_FOUND, "Resource not found")
    parallelism = _int((live.get("spec") or {}).get("parallelism"), 1)
    completions = _int((live.get("spec") or {}).get("completions"), parallelism)
    status = live.get("status") or {}
    for c in status.get("conditions") or []:
        if c.get("type") == "Complete" and c.get("status") == "True":
            succeeded = _int(status.get("succeeded"), 0)
            return ResourceStatus(
                ref, Status.CURRENT, f"Job Completed. succeeded: {succeeded}/{completions}"
            )
        if c.get("type") == "Failed" and c.get("status") == "True":
            failed = _int(status.get("failed"), 0)
            return ResourceStatus(ref, Status.FAILED, f"Job Failed. failed: {failed}/{completions}")
    return ResourceStatus(ref, Status.IN_PROGRESS, "Job in progress")


def helm_pod_status(ref: ObjRef, live: Mapping[str, Any] | None) -> ResourceStatus:
    """Helm's custom Pod reader for hooks: Succeeded is Current, Failed is Failed."""
    if live is None:
        return ResourceStatus(ref, Status.NOT_FOUND, "Resource not found")
    phase = (live.get("status") or {}).get("phase")
    if phase == "Succeeded":
        return ResourceStatus(ref, Status.CURRENT, f"pod {ref.name} succeeded")
    if phase == "Failed":
        return ResourceStatus(ref, Status.FAILED, f"pod {ref.name} failed")
    return ResourceStatus(ref, Status.IN_PROGRESS, "Pod in progress")


def kstatus_job_status(ref: ObjRef, live: Mapping[str, Any] | None) -> ResourceStatus:
    """kstatus's own Job rule (a started Job is Current): Helm's Wait without jobs."""
    if live is None:
        return ResourceStatus(ref, Status.NOT_FOUND, "Resource not found")
    try:
        result = kstatus.compute(live)
    except kstatus.StatusError as e:
        return ResourceStatus(ref, Status.UNKNOWN, error=str(e))
    return ResourceStatus(ref, result.status, result.message)


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _line(rs: ResourceStatus, what: str) -> str:
    message = rs.message if rs.error is None else rs.error
    return (
        f"resource {rs.ref.kind}/{rs.ref.namespace}/{rs.ref.name} {what}. "
        f"status: {rs.status}, message: {message}"
    )


def ready_done(statuses: Sequence[ResourceStatus]) -> bool:
    """statusObserver for Current: Failed objects drop out, the rest must all be Current."""
    return all(rs.status is Status.CURRENT for rs in statuses if rs.status is not Status.FAILED)


def deleted_done(statuses: Sequence[ResourceStatus]) -> bool:
    """statusObserver for NotFound: Unknown ones (gone before the wait began) drop out."""
    return all(rs.status is Status.NOT_FOUND for rs in statuses if rs.status is not Status.UNKNOWN)


def ready_error(statuses: Sequence[ResourceStatus], timed_out: bool) -> str | None:
    lines = [_line(rs, "not ready") for rs in statuses if rs.status is not Status.CURRENT]
    if timed_out:
        lines.append(DEADLINE)
    return "\n".join(lines) or None


def deleted_error(statuses: Sequence[ResourceStatus], timed_out: bool) -> str | None:
    lines = [
        _line(rs, "still exists")
        for rs in statuses
        if rs.status not in (Status.NOT_FOUND, Status.UNKNOWN)
    ]
    if timed_out:
        lines.append(DEADLINE)
    return "\n".join(lines) or None


def _paused(item: Item) -> bool:
    spec = item.obj.get("spec") or {}
    return (
        item.resource.group == "apps" and item.kind == "Deployment" and spec.get("paused") is True
    )


async def _poll(
    manager: ResourceManager,
    items: Sequence[Item],
    within: float,
    readers: Mapping[tuple[str, str], StatusReader],
    done: Callable[[Sequence[ResourceStatus]], bool],
    error: Callable[[Sequence[ResourceStatus], bool], str | None],
    skip: frozenset[tuple[str, str]] = frozenset(),
) -> None:
    latest: list[ResourceStatus] = [ResourceStatus(ObjRef.of(i.obj), Status.UNKNOWN) for i in items]

    async def read(i: Item) -> ResourceStatus:
        ref = ObjRef.of(i.obj)
        if (ref.group, ref.kind) in skip:
            return ResourceStatus(ref, Status.CURRENT, "Resource is current")
        return await manager.status_of(i.obj, readers)

    async def check() -> bool:
        latest[:] = await asyncio.gather(*(read(i) for i in items))
        return done(latest)

    timed_out = False
    if items:
        try:
            await poll_until(check, within, POLL_INTERVAL, first=0.2)
        except TimeoutError:
            timed_out = True
    message = error(latest, timed_out)
    if message is not None:
        raise WaitError(message)


async def wait(
    manager: ResourceManager,
    items: Sequence[Item],
    within: float,
    *,
    with_jobs: bool,
    custom: Mapping[tuple[str, str], StatusReader] | None = None,
) -> None:
    """Helm's Wait / WaitWithJobs: every object Current (paused Deployments are not waited
    for). Jobs count as ready once started, or with `with_jobs` once complete. `custom`
    readers (Flux's healthCheckExprs) come before these, as in helm-controller."""
    readers: dict[tuple[str, str], StatusReader] = {
        ("batch", "Job"): helm_job_status if with_jobs else kstatus_job_status,
        **(custom or {}),
    }
    waited = [i for i in items if not _paused(i)]
    await _poll(manager, waited, within, readers, ready_done, ready_error)


async def watch_until_ready(manager: ResourceManager, items: Sequence[Item], within: float) -> None:
    """Helm's WatchUntilReady for hook objects: Jobs until complete, Pods until succeeded;
    anything else is ready as soon as it exists."""
    readers: dict[tuple[str, str], StatusReader] = {
        ("batch", "Job"): helm_job_status,
        ("", "Pod"): helm_pod_status,
    }
    others = frozenset(
        (i.resource.group, i.kind) for i in items if (i.resource.group, i.kind) not in readers
    )
    await _poll(manager, items, within, readers, ready_done, ready_error, skip=others)


async def wait_for_delete(manager: ResourceManager, items: Sequence[Item], within: float) -> None:
    """Helm's WaitForDelete: until every object is gone."""
    await _poll(manager, items, within, {}, deleted_done, deleted_error)
