"""status.history of a HelmRelease: snapshots of the Helm release revisions the controller made,
newest first, and the rules helm-controller applies to them.

A snapshot is taken from the release as it was written to Helm's storage (an "observation"):
its digest covers what identifies that revision (name, version, info, chart metadata, values,
manifest, non-test hooks, namespace), so a release changed behind the controller's back (a
`helm upgrade` by hand) no longer matches and is treated as unmanaged. The digest is tidal's own
canonical JSON of those fields; Flux's is Go's JSON of the same struct, so a release moved from
Flux is seen as unmanaged once and upgraded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import Any, Final

from tidal.api.helmrelease import HelmSnapshot, TestHookStatus
from tidal.helm.storage import DEPLOYED, SUPERSEDED, Release, parse_go_time
from tidal.helmrelease.digests import config_digest

SNAPSHOT_API_VERSION: Final = "v2"
TEST_EVENT: Final = "test"
PHASE_SUCCEEDED: Final = "Succeeded"
PHASE_FAILED: Final = "Failed"


def _observation(r: Release, oci_digest: str) -> dict[str, Any]:
    return {
        "ociDigest": oci_digest,
        "name": r.name,
        "version": r.version,
        "info": {
            "first_deployed": r.info.first_deployed,
            "last_deployed": r.info.last_deployed,
            "deleted": r.info.deleted,
            "description": r.info.description,
            "status": r.info.status,
            "notes": r.info.notes,
        },
        "chartMetadata": (r.chart or {}).get("metadata") or {},
        "config": r.config or None,
        "manifest": r.manifest,
        # Test hooks are left out: a `helm test` by hand must not make the release unmanaged.
        "hooks": [
            {
                "name": h.name,
                "kind": h.kind,
                "path": h.path,
                "manifest": h.manifest,
                "events": list(h.events),
                "last_run": {
                    "started_at": h.last_run.started_at,
                    "completed_at": h.last_run.completed_at,
                    "phase": h.last_run.phase,
                },
            }
            for h in r.hooks
            if TEST_EVENT not in h.events
        ],
        "namespace": r.namespace,
    }


def release_digest(r: Release, oci_digest: str = "") -> str:
    text = json.dumps(
        _observation(r, oci_digest), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _k8s_time(go_time: str) -> str:
    # metav1.Time serialises to the second, in UTC ("2024-01-02T03:04:05Z").
    parsed = parse_go_time(go_time)
    if parsed is None:
        return ""
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_hooks(r: Release) -> dict[str, TestHookStatus]:
    """The test hooks of a release and how they last ran, by hook name."""
    out: dict[str, TestHookStatus] = {}
    for h in r.hooks:
        if TEST_EVENT not in h.events:
            continue
        run = h.last_run
        out[h.name] = TestHookStatus(
            last_started=_k8s_time(run.started_at),
            last_completed=_k8s_time(run.completed_at),
            phase=run.phase,
        )
    return out


def snapshot(r: Release, *, action: str = "", oci_digest: str = "") -> HelmSnapshot:
    metadata = (r.chart or {}).get("metadata") or {}
    return HelmSnapshot(
        api_version=SNAPSHOT_API_VERSION,
        digest=release_digest(r, oci_digest),
        name=r.name,
        namespace=r.namespace,
        version=r.version,
        status=r.info.status,
        action=action,
        chart_name=str(metadata.get("name", "")),
        chart_version=str(metadata.get("version", "")),
        app_version=str(metadata.get("appVersion", "") or ""),
        config_digest=config_digest(r.config),
        first_deployed=_k8s_time(r.info.first_deployed),
        last_deployed=_k8s_time(r.info.last_deployed),
        deleted=_k8s_time(r.info.deleted),
        oci_digest=oci_digest,
    )


def chart_name(s: HelmSnapshot) -> str:
    return f"{s.chart_name}@{s.chart_version}"


def has_been_tested(s: HelmSnapshot) -> bool:
    return s.test_hooks is not None


def has_test_in_phase(s: HelmSnapshot, phase: str) -> bool:
    return any(h.phase == phase for h in (s.test_hooks or {}).values())


def _is_good(s: HelmSnapshot, ignore_test_failures: bool) -> bool:
    if s.status not in (DEPLOYED, SUPERSEDED):
        return False
    return ignore_test_failures or not has_test_in_phase(s, PHASE_FAILED)


def previous(history: Sequence[HelmSnapshot], ignore_test_failures: bool) -> HelmSnapshot | None:
    """The newest snapshot after the latest that was deployed or superseded (and passed its
    tests, unless failures are ignored): the target of a rollback."""
    for s in history[1:]:
        if _is_good(s, ignore_test_failures):
            return s
    return None


def truncate(history: list[HelmSnapshot], ignore_test_failures: bool) -> list[HelmSnapshot]:
    """What helm-controller keeps once a release is in sync: everything down to the previous
    good snapshot, or the latest five when there is none."""
    if not history:
        return history
    for i, s in enumerate(history[1:], start=1):
        if _is_good(s, ignore_test_failures):
            return history[: i + 1]
    return history[:5]


def truncate_ignoring_previous(history: list[HelmSnapshot]) -> list[HelmSnapshot]:
    """RetryOnFailure keeps the latest snapshot only."""
    return history[:1]


def refresh(history: list[HelmSnapshot], r: Release, action: str | None = None) -> bool:
    """Replace the snapshot of revision `r` with a fresh one (same OCI digest and test
    results; the action kept unless given); whether it was there."""
    for i, s in enumerate(history):
        if (s.name, s.namespace, s.version) == (r.name, r.namespace, r.version):
            fresh = snapshot(
                r, action=s.action if action is None else action, oci_digest=s.oci_digest
            )
            fresh.test_hooks = s.test_hooks
            history[i] = fresh
            return True
    return False


def record(
    history: list[HelmSnapshot],
    releases: Iterable[Release],
    *,
    action: str,
    oci_digest: str,
) -> list[HelmSnapshot]:
    """The history after an action wrote `releases`: the newest written one in front, and any
    older written one (a superseded predecessor) refreshed in place with its test results."""
    written = sorted(releases, key=lambda r: r.version, reverse=True)
    if not written:
        return history
    out = [snapshot(written[0], action=action, oci_digest=oci_digest), *history]
    for r in written[1:]:
        rest = out[1:]
        refresh(rest, r)
        out[1:] = rest
    return out
