"""When bootstrap counts the GitRepository and the Kustomization as reconciled."""

from __future__ import annotations

from typing import Any

from tidal.bootstrap.health import reconciled, timeout_message
from tidal.cli.readiness import CURRENT, FAILED, IN_PROGRESS

REV = "main@sha1:" + "a" * 40


def _obj(kind: str, *conditions: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {"name": "flux-system", "namespace": "flux-system", "generation": 2},
        "spec": {},
        "status": {"conditions": list(conditions), **status},
    }


def _cond(type_: str, status: str, message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "message": message}


def test_ready_with_the_pushed_revision() -> None:
    source = _obj("GitRepository", _cond("Ready", "True"), artifact={"revision": REV})
    assert reconciled(source, REV).status == CURRENT
    ks = _obj("Kustomization", _cond("Ready", "True"), lastAttemptedRevision=REV)
    assert reconciled(ks, REV).status == CURRENT


def test_ready_with_an_older_revision_is_waited_for() -> None:
    old = _obj("GitRepository", _cond("Ready", "True"), artifact={"revision": "main@sha1:b"})
    assert reconciled(old, REV).status == IN_PROGRESS


def test_an_older_generation_is_waited_for() -> None:
    obj = _obj("Kustomization", _cond("Ready", "True"), lastAttemptedRevision=REV)
    obj["status"]["observedGeneration"] = 1
    assert reconciled(obj, REV).status == IN_PROGRESS


def test_not_ready_is_waited_for_and_reported_on_timeout() -> None:
    obj = _obj("Kustomization", _cond("Ready", "False", "Source artifact not found"))
    result = reconciled(obj, REV)
    assert (result.status, result.message) == (IN_PROGRESS, "Source artifact not found")
    assert timeout_message(obj, "Kustomization", "flux-system/flux-system") == (
        "kustomization 'flux-system/flux-system' not ready: 'Source artifact not found'"
    )
    assert "is a controller running" in timeout_message(None, "GitRepository", "a/b")


def test_suspended_and_stalled_fail_at_once() -> None:
    suspended = _obj("GitRepository")
    suspended["spec"]["suspend"] = True
    result = reconciled(suspended, REV)
    assert (result.status, result.message) == (
        FAILED,
        "GitRepository 'flux-system/flux-system' is suspended",
    )
    stalled = _obj("Kustomization", _cond("Stalled", "True", "invalid"), _cond("Ready", "False"))
    assert reconciled(stalled, REV).status == FAILED
