"""The rules `tidal` waits with: kstatus for custom resources and flux's readiness checks."""

from __future__ import annotations

from typing import Any

from tidal.cli import readiness
from tidal.cli.readiness import CURRENT, FAILED, IN_PROGRESS


def obj(generation: int = 1, *conditions: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {
        "kind": "GitRepository",
        "metadata": {"name": "app", "generation": generation},
        "status": {"conditions": list(conditions), **status},
    }


def cond(type_: str, status: str = "True", **extra: Any) -> dict[str, Any]:
    return {"type": type_, "status": status, "message": f"{type_} message", **extra}


def test_kstatus() -> None:
    assert readiness.status(obj(1, observedGeneration=1)).status == CURRENT
    behind = readiness.status(obj(2, observedGeneration=1))
    assert behind.status == IN_PROGRESS
    assert behind.message == "GitRepository generation is 2, but latest observed generation is 1"
    assert readiness.status(obj(1, cond("Reconciling"), observedGeneration=1)).status == IN_PROGRESS
    stalled = readiness.status(obj(1, cond("Stalled"), observedGeneration=1))
    assert (stalled.status, stalled.message) == (FAILED, "Stalled message")
    assert readiness.status(obj(1, cond("Stalled", "False"))).status == CURRENT
    deleting = obj(1)
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert readiness.status(deleting).status == FAILED


def test_ready_needs_a_first_reconciliation_and_a_current_ready_condition() -> None:
    assert readiness.ready(obj(1, cond("Ready"), observedGeneration=-1)).status == IN_PROGRESS
    assert readiness.ready(obj(1, observedGeneration=1)).status == IN_PROGRESS
    assert readiness.ready(obj(1, cond("Ready"), observedGeneration=1)).status == CURRENT
    # The condition's own generation wins when it is set ...
    old = cond("Ready", observedGeneration=1)
    assert readiness.ready(obj(2, old, observedGeneration=2)).status == IN_PROGRESS
    # ... else the object's observedGeneration must match.
    assert readiness.ready(obj(2, cond("Ready"), observedGeneration=1)).status == IN_PROGRESS
    # Ready=False (or Unknown) without Stalled is still in progress, as flux's kstatus has it:
    # the controller retries; its message is what a timeout reports.
    failing = readiness.ready(obj(1, cond("Ready", "False"), observedGeneration=1))
    assert (failing.status, failing.message) == (IN_PROGRESS, "Ready message")
    unknown = readiness.ready(obj(1, cond("Ready", "Unknown"), observedGeneration=1))
    assert unknown.status == IN_PROGRESS
    stalled = obj(1, cond("Ready", "False"), cond("Stalled"), observedGeneration=1)
    assert readiness.ready(stalled).status == FAILED


def test_handled_waits_for_last_handled_reconcile_at_to_move() -> None:
    before = obj(1, cond("Ready"), observedGeneration=1, lastHandledReconcileAt="t1")
    assert readiness.handled(before, "t1").status == IN_PROGRESS
    after = obj(1, cond("Ready"), observedGeneration=1, lastHandledReconcileAt="t2")
    assert readiness.handled(after, "t1").status == CURRENT
    busy = obj(1, cond("Reconciling"), observedGeneration=1, lastHandledReconcileAt="t2")
    assert readiness.handled(busy, "t1").status == IN_PROGRESS
