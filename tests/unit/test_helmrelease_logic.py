"""The pure rules of the HelmRelease controller: release state, history and remediation, as
helm-controller applies them."""

from __future__ import annotations

import io
import tarfile
from typing import Any

import pytest

from tidal.api.helmrelease import HelmRelease, HelmSnapshot, shorten_release_name
from tidal.helm.storage import Info, Release, ReleaseHook
from tidal.helmrelease import chart_source, history
from tidal.helmrelease.digests import config_digest
from tidal.helmrelease.remediation import active_remediation, install_remediation
from tidal.helmrelease.state import Status, determine

CHART = {"name": "app", "version": "1.0.0", "appVersion": "2.0"}


def _hr(**spec: Any) -> HelmRelease:
    return HelmRelease.from_dict(
        {
            "metadata": {"name": "app", "namespace": "apps", "generation": 1},
            "spec": {"interval": "5m", "chart": {"spec": {"chart": "app", "sourceRef":
                     {"kind": "HelmRepository", "name": "charts"}}}, **spec},
        }
    )  # fmt: skip


def _release(version: int = 1, status: str = "deployed", config: Any = None) -> Release:
    return Release(
        name="app",
        namespace="apps",
        version=version,
        info=Info(
            first_deployed="2024-01-02T03:04:05.123456789Z",
            last_deployed="2024-01-02T03:04:05.123456789Z",
            status=status,
        ),
        chart={"metadata": dict(CHART)},
        config=dict(config or {}),
        manifest="---\n# Source: app/templates/cm.yaml\nkind: ConfigMap\n",
    )


def _managed(hr: HelmRelease, *releases: Release) -> None:
    hr.status.history = [history.snapshot(r, action="install") for r in releases]
    hr.status.observed_generation = hr.metadata.generation


def test_state_follows_storage_and_history() -> None:
    hr = _hr()
    assert determine(hr, None, CHART, {}).status is Status.ABSENT
    assert determine(hr, _release(status="pending-upgrade"), CHART, {}).status is Status.LOCKED
    # In storage but never made by this object: adopt it through an upgrade.
    assert determine(hr, _release(), CHART, {}).status is Status.UNMANAGED
    assert determine(hr, _release(status="uninstalled"), CHART, {}).status is Status.ABSENT

    rel = _release(config={"a": 1})
    _managed(hr, rel)
    assert determine(hr, rel, CHART, {"a": 1}).status is Status.IN_SYNC
    assert determine(hr, rel, CHART, {"a": 2}).reason == "release config values changed"
    assert determine(hr, rel, {**CHART, "version": "1.0.1"}, {"a": 1}).reason == (
        "release chart changed"
    )
    # Changed behind the controller's back (a `helm upgrade` by hand): unmanaged.
    edited = _release(config={"a": 1})
    edited.manifest += "data: {}\n"
    assert determine(hr, edited, CHART, {"a": 1}).status is Status.UNMANAGED
    failed = _release(config={"a": 1}, status="failed")
    _managed(hr, failed)
    assert determine(hr, failed, CHART, {"a": 1}).status is Status.FAILED


def test_tests_and_post_renderers_put_a_deployed_release_out_of_step() -> None:
    hr = _hr(test={"enable": True})
    rel = _release()
    _managed(hr, rel)
    assert determine(hr, rel, CHART, {}).status is Status.UNTESTED
    hr.status.history[0].test_hooks = {}
    assert determine(hr, rel, CHART, {}).status is Status.IN_SYNC

    hr = _hr(postRenderers=[{"kustomize": {"images": [{"name": "x", "newTag": "1"}]}}])
    _managed(hr, rel)
    hr.metadata.generation = 2  # a new spec that the last release did not see
    assert determine(hr, rel, CHART, {}).reason == "postrenderers digest has changed"


def test_snapshot_test_hooks_do_not_change_the_release_digest() -> None:
    rel = _release()
    before = history.release_digest(rel)
    rel.hooks.append(ReleaseHook(name="t", kind="Pod", path="p", manifest="m", events=["test"]))
    assert history.release_digest(rel) == before
    rel.hooks.append(
        ReleaseHook(name="h", kind="Job", path="p", manifest="m", events=["pre-install"])
    )
    assert history.release_digest(rel) != before


def _snap(version: int, status: str) -> HelmSnapshot:
    return history.snapshot(_release(version, status))


def test_rollback_target_and_truncation() -> None:
    hist = [_snap(4, "failed"), _snap(3, "failed"), _snap(2, "superseded"), _snap(1, "superseded")]
    prev = history.previous(hist, ignore_test_failures=False)
    assert prev is not None and prev.version == 2
    assert [s.version for s in history.truncate(hist, False)] == [4, 3, 2]
    lonely = [_snap(i, "failed") for i in range(9, 0, -1)]
    assert history.previous(lonely, False) is None
    assert [s.version for s in history.truncate(lonely, False)] == [9, 8, 7, 6, 5]
    # A previous release whose tests failed is no target unless failures are ignored.
    tested = _snap(2, "superseded")
    tested.test_hooks = {"t": history.TestHookStatus(phase="Failed")}
    hist = [_snap(3, "failed"), tested, _snap(1, "superseded")]
    assert history.previous(hist, ignore_test_failures=False).version == 1  # type: ignore[union-attr]
    assert history.previous(hist, ignore_test_failures=True).version == 2  # type: ignore[union-attr]


def test_snapshot_fields() -> None:
    snap = history.snapshot(
        _release(config={"replicas": 2}), action="upgrade", oci_digest="sha256:x"
    )
    assert snap.first_deployed == "2024-01-02T03:04:05Z"
    assert (snap.chart_name, snap.chart_version, snap.app_version) == ("app", "1.0.0", "2.0")
    assert snap.config_digest == config_digest({"replicas": 2})
    assert snap.full_release_name() == "apps/app.v1"
    assert snap.api_version == "v2" and snap.oci_digest == "sha256:x"


def test_retries_are_counted_as_flux_counts_them() -> None:
    hr = _hr(install={"remediation": {"retries": 2}})
    r = install_remediation(hr)
    assert not r.retries_exhausted(hr)
    hr.status.install_failures = 2
    assert not r.retries_exhausted(hr)
    hr.status.install_failures = 3
    assert r.retries_exhausted(hr)
    forever = install_remediation(_hr(install={"remediation": {"retries": -1}}))
    hr.status.install_failures = 100
    assert not forever.retries_exhausted(hr)
    hr.status.last_attempted_release_action = "upgrade"
    upgrade = active_remediation(hr)
    assert upgrade is not None and upgrade.strategy == "rollback"
    # remediateLastFailure defaults to true once retries are set for upgrades.
    hr = _hr(upgrade={"remediation": {"retries": 1, "strategy": "uninstall"}})
    hr.status.last_attempted_release_action = "upgrade"
    upgrade = active_remediation(hr)
    assert upgrade is not None and upgrade.remediate_last_failure
    assert upgrade.is_uninstall_after_upgrade()


def test_release_names() -> None:
    assert _hr().release_name() == "app"
    assert _hr(targetNamespace="prod").release_name() == "prod-app"
    long = "a" * 60
    short = shorten_release_name(long)
    assert len(short) == 53 and short.startswith("a" * 40 + "-")


def _archive(chart_yaml: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in (("app/Chart.yaml", chart_yaml), ("app/values.yaml", "a: 1\n")):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_oci_digest_tracking_version() -> None:
    digest = "sha256:" + "ab" * 32
    assert chart_source.digest_version("1.2.3", f"1.2.3@{digest}") == ("1.2.3+abababababab", digest)
    assert chart_source.digest_version("1.2.3", digest) == ("1.2.3+abababababab", digest)
    with pytest.raises(chart_source.SourceError, match="does not match chart version"):
        chart_source.digest_version("1.2.3", f"2.0.0@{digest}")
    chart_yaml = "apiVersion: v2\nname: app\nversion: 1.2.3\nappVersion: 1.0\n"
    out, tracked = chart_source.track_digest(_archive(chart_yaml), f"1.2.3@{digest}")
    assert tracked == digest
    with tarfile.open(fileobj=io.BytesIO(out), mode="r:gz") as tar:
        text = tar.extractfile("app/Chart.yaml").read().decode()  # type: ignore[union-attr]
    # Only the version line changes: appVersion keeps its text (1.0, not a float).
    assert text == "apiVersion: v2\nname: app\nversion: 1.2.3+abababababab\nappVersion: 1.0\n"


def test_source_readiness_messages() -> None:
    base = {"kind": "HelmChart", "metadata": {"name": "c", "namespace": "n", "generation": 2}}
    assert chart_source.source_ready({**base, "status": {"observedGeneration": 1}}) == (
        "HelmChart 'n/c' is not ready: latest generation of object has not been reconciled"
    )
    assert chart_source.source_ready({**base, "status": {"observedGeneration": 2}}) == (
        "HelmChart 'n/c' is not ready: does not have an artifact"
    )
    ok = {**base, "status": {"observedGeneration": 2, "artifact": {"url": "u"}}}
    assert chart_source.source_ready(ok) == ""
