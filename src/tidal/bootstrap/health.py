"""When a bootstrapped GitRepository or Kustomization counts as reconciled: flux's
objectReconciled, with tidal's patience for a failure.

Reconciled means: not suspended (suspended is a failure: waiting would never end), the status
is for the current generation, Ready is True, and the revision the controller worked on (the
GitRepository's artifact revision, the Kustomization's lastAttemptedRevision) is the commit
bootstrap pushed.

flux stops at the first Ready=False it sees. A Kustomization created a moment before its
source has an artifact is Ready=False ("Source artifact not found") on its way to success, so
here Ready=False is waited through, and its message is what a timeout reports; a Stalled
object, which no retry fixes, still fails at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from tidal.api.meta import READY, STALLED
from tidal.cli.readiness import CURRENT, FAILED, IN_PROGRESS, Result, condition

GIT_REPOSITORY_KIND: Final = "GitRepository"


def revision(obj: Mapping[str, Any]) -> str:
    status = obj.get("status") or {}
    if obj.get("kind") == GIT_REPOSITORY_KIND:
        return str((status.get("artifact") or {}).get("revision") or "")
    return str(status.get("lastAttemptedRevision") or "")


def reconciled(obj: Mapping[str, Any], expected: str) -> Result:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    if (obj.get("spec") or {}).get("suspend"):
        return Result(FAILED, f"{obj.get('kind', '')} '{key}' is suspended")
    observed = status.get("observedGeneration")
    if isinstance(observed, int) and observed != meta.get("generation"):
        return Result(IN_PROGRESS, "")
    stalled = condition(obj, STALLED)
    if stalled is not None and stalled.get("status") == "True":
        return Result(FAILED, str(stalled.get("message", "")))
    ready = condition(obj, READY)
    if ready is None:
        return Result(IN_PROGRESS, "")
    if ready.get("status") == "True":
        if revision(obj) == expected:
            return Result(CURRENT, "")
        return Result(IN_PROGRESS, "")
    return Result(IN_PROGRESS, str(ready.get("message", "")))


def timeout_message(obj: Mapping[str, Any] | None, kind: str, key: str) -> str:
    """What flux reports when the wait times out: the Ready message when there is one."""
    ready = condition(obj, READY) if obj is not None else None
    if ready is not None and ready.get("status") != "True":
        return f"{kind.lower()} '{key}' not ready: '{ready.get('message', '')}'"
    return f"timed out waiting for {kind} '{key}' to be reconciled (is a controller running?)"
