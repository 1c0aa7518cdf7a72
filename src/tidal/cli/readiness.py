"""When an object counts as reconciled, by the rules the flux CLI waits with.

`status(obj)` is kstatus (fluxcd/cli-utils v1.2, the flux CLI's) for a custom resource:
terminating is a failure to wait for, a status.observedGeneration behind metadata.generation or
a True `Reconciling` condition is in progress, a True `Stalled` condition is failed; then the
`Ready` condition decides: True is current, False or Unknown in progress (a failing object that
is not stalled is expected to be retried); without one the object is current.

`ready(obj)` is what `flux create` and `flux resume` wait for: the object has been reconciled
at least once (observedGeneration >= 1), its Ready condition belongs to the current generation
(the condition's own observedGeneration when set, else the object's) and kstatus says current.
So an object that keeps failing (Ready=False, not Stalled) is waited for until the deadline, as
flux waits for it.

`handled(obj, before)` is what `flux reconcile` waits for: status.lastHandledReconcileAt moved
away from the value seen before the request, and kstatus says current.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from tidal.api.meta import READY, RECONCILING, STALLED

CURRENT: Final = "Current"
IN_PROGRESS: Final = "InProgress"
FAILED: Final = "Failed"

Status = Literal["Current", "InProgress", "Failed"]


@dataclass(frozen=True)
class Result:
    status: Status
    message: str


class WaitFailed(Exception):
    """The object reached a state that waiting cannot fix (Stalled, being deleted)."""


def condition(obj: Mapping[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == type_:
            return c
    return None


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def status(obj: Mapping[str, Any]) -> Result:
    meta = obj.get("metadata") or {}
    st = obj.get("status") or {}
    if meta.get("deletionTimestamp"):
        return Result(FAILED, "Resource scheduled for deletion")
    generation = meta.get("generation")
    observed = st.get("observedGeneration")
    if isinstance(generation, int) and isinstance(observed, int) and observed != generation:
        kind = obj.get("kind", "")
        return Result(
            IN_PROGRESS,
            f"{kind} generation is {generation}, but latest observed generation is {observed}",
        )
    for c in st.get("conditions") or []:
        if not isinstance(c, dict) or c.get("status") != "True":
            continue
        if c.get("type") == RECONCILING:
            return Result(IN_PROGRESS, str(c.get("message", "")))
        if c.get("type") == STALLED:
            return Result(FAILED, str(c.get("message", "")))
    c = condition(obj, READY)
    if c is not None:
        if c.get("status") == "True":
            return Result(CURRENT, "Resource is Ready")
        if c.get("status") in ("False", "Unknown"):
            return Result(IN_PROGRESS, str(c.get("message", "")))
    return Result(CURRENT, "Resource is current")


def ready(obj: Mapping[str, Any]) -> Result:
    meta = obj.get("metadata") or {}
    st = obj.get("status") or {}
    observed = _int(st.get("observedGeneration"), 0)
    if observed < 1:
        return Result(IN_PROGRESS, "not reconciled yet")
    c = condition(obj, READY)
    if c is None:
        return Result(IN_PROGRESS, "no Ready condition yet")
    generation = _int(meta.get("generation"), 0)
    cond_generation = _int(c.get("observedGeneration"), 0)
    if cond_generation not in (0, generation) or (cond_generation == 0 and observed != generation):
        return Result(IN_PROGRESS, f"the Ready condition is older than generation {generation}")
    return status(obj)


def last_handled(obj: Mapping[str, Any]) -> str:
    return str((obj.get("status") or {}).get("lastHandledReconcileAt") or "")


def handled(obj: Mapping[str, Any], before: str) -> Result:
    if last_handled(obj) == before:
        return Result(IN_PROGRESS, "the reconcile request has not been handled yet")
    return status(obj)


async def sleep_until_next_poll(remaining: float, interval: float) -> bool:
    """Sleep one poll interval; False when the deadline comes first (nothing slept)."""
    if remaining <= interval:
        if remaining > 0:
            await asyncio.sleep(remaining)
        return False
    await asyncio.sleep(interval)
    return True
