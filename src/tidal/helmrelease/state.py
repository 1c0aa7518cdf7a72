"""Where a HelmRelease's Helm release stands, as helm-controller's DetermineReleaseState reads it
from Helm's storage and status.history: the next action follows from this."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tidal.api.helmrelease import HelmRelease, HelmSnapshot
from tidal.helm import storage
from tidal.helm.storage import Release
from tidal.helmrelease import history
from tidal.helmrelease.digests import (
    common_metadata_digest,
    config_digest,
    post_renderers_digest,
)
from tidal.helmrelease.remediation import active_remediation

PENDING = (storage.PENDING_INSTALL, storage.PENDING_UPGRADE, storage.PENDING_ROLLBACK)


class Status(enum.StrEnum):
    ABSENT = "Absent"
    UNMANAGED = "Unmanaged"
    OUT_OF_SYNC = "OutOfSync"
    DRIFTED = "Drifted"
    LOCKED = "Locked"
    UNTESTED = "Untested"
    IN_SYNC = "InSync"
    FAILED = "Failed"


@dataclass(frozen=True)
class State:
    status: Status
    reason: str = ""


class StateError(Exception):
    """The state cannot be determined (an unknown Helm status)."""


RELEASE_NOT_OBSERVED = "release not observed to be made for object"
RELEASE_DIGEST = "release digest verification error"
CHART_CHANGED = "release chart changed"
CONFIG_CHANGED = "release config values changed"


def verify_release_object(snapshot: HelmSnapshot, rls: Release) -> str:
    """ "" when the release is the one the snapshot observed, else why not."""
    if snapshot.api_version != history.SNAPSHOT_API_VERSION:
        return ""
    if not snapshot.digest.startswith("sha256:"):
        return RELEASE_DIGEST
    if history.release_digest(rls, snapshot.oci_digest) != snapshot.digest:
        return RELEASE_NOT_OBSERVED
    return ""


def verify_release(
    rls: Release, snapshot: HelmSnapshot, chart: Mapping[str, Any], values: Mapping[str, Any]
) -> str:
    metadata = (rls.chart or {}).get("metadata") or {}
    if metadata.get("name") != chart.get("name") or metadata.get("version") != chart.get("version"):
        return CHART_CHANGED
    if snapshot.config_digest != config_digest(values):
        return CONFIG_CHANGED
    return ""


def determine(
    hr: HelmRelease,
    latest: Release | None,
    chart_metadata: Mapping[str, Any],
    values: Mapping[str, Any],
) -> State:
    """The state of the release from its latest revision in storage (None: there is none).
    Drift is judged separately, once the release is otherwise in sync."""
    if latest is None:
        return State(Status.ABSENT, "no release in storage for object")
    status = latest.info.status
    if status in PENDING:
        return State(Status.LOCKED, f"release with status '{status}'")
    if not hr.status.history:
        if status == storage.UNINSTALLED:
            return State(Status.ABSENT, "found uninstalled release in storage")
        return State(Status.UNMANAGED, "found existing release in storage")
    cur = hr.status.history[0]
    if (cur.name, cur.namespace, cur.version) != (latest.name, latest.namespace, latest.version):
        return State(Status.UNMANAGED, RELEASE_NOT_OBSERVED)
    problem = verify_release_object(cur, latest)
    if problem:
        return State(Status.UNMANAGED, problem)
    if status == storage.FAILED:
        return State(Status.FAILED)
    if status == storage.UNINSTALLED:
        return State(Status.ABSENT, "found uninstalled release in storage")
    if status != storage.DEPLOYED:
        raise StateError(f"unable to determine state for release with status '{status}'")
    problem = verify_release(latest, cur, chart_metadata, values)
    if problem:
        return State(Status.OUT_OF_SYNC, problem)
    if hr.status.observed_generation != hr.metadata.generation:
        if post_renderers_digest(hr.spec.post_renderers or None) != (
            hr.status.observed_post_renderers_digest
        ):
            return State(Status.OUT_OF_SYNC, "postrenderers digest has changed")
        if common_metadata_digest(hr.spec.common_metadata) != (
            hr.status.observed_common_metadata_digest
        ):
            return State(Status.OUT_OF_SYNC, "common metadata digest has changed")
    test = hr.spec.test
    if test is not None and test.enable:
        if not history.has_been_tested(cur):
            return State(Status.UNTESTED)
        remediation = active_remediation(hr)
        if (
            remediation is not None
            and not remediation.must_ignore_test_failures(test.ignore_failures)
            and history.has_test_in_phase(cur, history.PHASE_FAILED)
        ):
            return State(Status.FAILED, "release has test in failed phase")
    return State(Status.IN_SYNC)
