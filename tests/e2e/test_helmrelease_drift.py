"""tidal.helmrelease.drift against the test plane: a release installed with tidal.helm.actions,
then edited, deleted and opted-out objects found (and only those), and corrected."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.unit.test_helm_charts import package
from tidal.api.helmrelease import IgnoreRule
from tidal.api.kustomize_types import Selector
from tidal.helm import actions, capabilities
from tidal.helm.actions import ActionOptions
from tidal.helm.chart import load_chart
from tidal.helm.render import render
from tidal.helm.storage import Release
from tidal.helmrelease import drift
from tidal.kube.client import ApiError, Kube

pytestmark = pytest.mark.e2e

CHART: dict[str, str | bytes] = {
    "drifty/Chart.yaml": "apiVersion: v2\nname: drifty\nversion: 0.1.0\n",
    "drifty/values.yaml": "message: hello\n",
    "drifty/templates/config.yaml": """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  message: {{ .Values.message | quote }}
  tuned: "1"
""",
    "drifty/templates/extra.yaml": """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-extra
data:
  a: b
""",
    "drifty/templates/optout.yaml": """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-optout
  annotations:
    helm.toolkit.fluxcd.io/driftDetection: disabled
data:
  a: b
""",
    "drifty/templates/secret.yaml": """apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-secret
stringData:
  password: s3cret
""",
    "drifty/templates/service.yaml": """apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}-svc
spec:
  selector: {app: web}
  ports:
    - port: 80
""",
    "drifty/templates/hook.yaml": """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-hook
  annotations:
    helm.sh/hook: post-install
data:
  a: b
""",
}
ARCHIVE = package(CHART)
EDITOR = "kubectl-edit"


async def _install(kube: Kube, name: str, ns: str) -> Release:
    kv, av = await capabilities.discover(kube)
    r = render(
        load_chart(ARCHIVE), {}, release_name=name, namespace=ns, revision=1,
        is_install=True, is_upgrade=False, kube_version=kv, api_versions=av,
    )  # fmt: skip
    return await actions.install(
        kube, name=name, namespace=ns, storage_namespace=ns, chart=load_chart(ARCHIVE),
        rendered=r, manifest=r.manifest, hooks=r.hooks,
        options=ActionOptions(timeout=60, wait=False),
    )  # fmt: skip


def _cm_path(ns: str, name: str) -> str:
    return f"/api/v1/namespaces/{ns}/configmaps/{name}"


async def _edit(kube: Kube, path: str, patch: dict[str, Any], manager: str = EDITOR) -> None:
    """What `kubectl edit` does: a merge patch under another field manager."""
    await kube.request(
        "PATCH", path, body=patch, params={"fieldManager": manager},
        content_type="application/merge-patch+json",
    )  # fmt: skip


async def _missing(kube: Kube, path: str) -> bool:
    try:
        await kube.get(path)
    except ApiError as e:
        if e.status == 404:
            return True
        raise
    return False


async def test_detect_and_correct(kube: Kube, namespace: str) -> None:
    ns = namespace
    rel = await _install(kube, "web", ns)

    # Fresh install: defaulted fields (Service clusterIP, port protocol...) are not drift;
    # the hook is not part of the manifest.
    assert await drift.detect(kube, rel, ignore=[]) == []
    await kube.delete(_cm_path(ns, "web-hook"))
    assert await drift.detect(kube, rel, ignore=[]) == []

    # An opted-out object may change freely; alone it is no drift.
    await _edit(kube, _cm_path(ns, "web-optout"), {"data": {"a": "edited"}})
    assert await drift.detect(kube, rel, ignore=[]) == []

    # A field the chart declares, edited by someone else.
    await _edit(kube, _cm_path(ns, "web-config"), {"data": {"message": "edited"}})
    changes = await drift.detect(kube, rel, ignore=[])
    assert [(c.type, c.subject) for c in changes] == [
        ("update", f"ConfigMap/{ns}/web-config"),
        ("exclude", f"ConfigMap/{ns}/web-optout"),
    ]
    assert changes[0].patch == [{"op": "replace", "path": "/data/message", "value": "hello"}]
    assert drift.summarize(changes) == (
        f"ConfigMap/{ns}/web-config changed (0 additions, 1 changes, 0 removals)\n"
        f"ConfigMap/{ns}/web-optout excluded"
    )
    assert drift.summarize_brief(changes) == "removed: 0, changed: 1, excluded: 1"
    assert drift.drifted_message(rel, changes) == (
        f"Cluster state of release {ns}/web.v1 has drifted from the desired state:\n"
        + drift.summarize(changes)
    )

    # An ignored path is no drift; the same rule not matching the object changes nothing.
    on_config = IgnoreRule(paths=["/data/message"], target=Selector(name="web-config"))
    elsewhere = IgnoreRule(paths=["/data/message"], target=Selector(name="web-extra"))
    assert await drift.detect(kube, rel, ignore=[on_config]) == []
    assert len(await drift.detect(kube, rel, ignore=[elsewhere])) == 2
    whole = IgnoreRule(paths=[""], target=Selector(kind="ConfigMap", name="web-config"))
    assert await drift.detect(kube, rel, ignore=[whole]) == []

    # A Secret's data: the logged patch is masked, the correction is not.
    secret_path = f"/api/v1/namespaces/{ns}/secrets/web-secret"
    await _edit(kube, secret_path, {"data": {"password": base64.b64encode(b"pwned").decode()}})
    # A deleted object.
    await kube.delete(_cm_path(ns, "web-extra"))

    changes = await drift.detect(kube, rel, ignore=[])
    by_subject = {c.subject: c for c in changes}
    # In manifest order: Helm sorts Secrets before ConfigMaps.
    assert [(c.type, c.subject) for c in changes] == [
        ("update", f"Secret/{ns}/web-secret"),
        ("update", f"ConfigMap/{ns}/web-config"),
        ("create", f"ConfigMap/{ns}/web-extra"),
        ("exclude", f"ConfigMap/{ns}/web-optout"),
    ]
    secret = by_subject[f"Secret/{ns}/web-secret"]
    assert secret.patch == [{"op": "replace", "path": "/data/password", "value": "*** (after)"}]
    assert "s3cret" not in repr(secret)
    assert "czNjcmV0" not in repr(secret)  # base64 of the chart's password
    assert drift.summarize_brief(changes) == "removed: 1, changed: 2, excluded: 1"
    assert f"ConfigMap/{ns}/web-extra removed" in drift.summarize(changes)

    result = await drift.correct(kube, rel, changes)
    assert result.errors == []
    assert result.changes.lines() == [
        f"ConfigMap/{ns}/web-extra created",
        f"ConfigMap/{ns}/web-config configured",
        f"Secret/{ns}/web-secret configured",
    ]
    assert drift.correction_event(rel, result) == (
        "Normal",
        "DriftCorrected",
        f"Cluster state of release {ns}/web.v1 has been corrected:\n"
        + "\n".join(result.changes.lines()),
    )
    config = await kube.get(_cm_path(ns, "web-config"))
    assert config["data"] == {"message": "hello", "tuned": "1"}
    extra = await kube.get(_cm_path(ns, "web-extra"))
    assert extra["data"] == {"a": "b"}
    assert extra["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert extra["metadata"]["annotations"]["meta.helm.sh/release-name"] == "web"
    assert (await kube.secret_data(ns, "web-secret"))["password"] == b"s3cret"
    optout = await kube.get(_cm_path(ns, "web-optout"))
    assert optout["data"] == {"a": "edited"}  # never corrected
    assert await drift.detect(kube, rel, ignore=[]) == []
    assert await _missing(kube, _cm_path(ns, "web-hook"))


async def test_correction_keeps_ignored_fields(kube: Kube, namespace: str) -> None:
    ns = namespace
    rel = await _install(kube, "keep", ns)
    await _edit(kube, _cm_path(ns, "keep-config"), {"data": {"message": "edited", "tuned": "9"}})
    ignore = [IgnoreRule(paths=["/data/tuned"])]
    changes = await drift.detect(kube, rel, ignore=ignore)
    assert [c.patch for c in changes if c.type == "update"] == [
        [{"op": "replace", "path": "/data/message", "value": "hello"}]
    ]
    result = await drift.correct(kube, rel, changes)
    assert result.errors == []
    assert (await kube.get(_cm_path(ns, "keep-config")))["data"] == {
        "message": "hello",
        "tuned": "9",
    }


async def test_disallowed_managers_edits_are_drift(kube: Kube, namespace: str) -> None:
    ns = namespace
    rel = await _install(kube, "own", ns)
    # A field the chart does not declare, added by a manager that is not overridden, is
    # left to it; once that manager is disallowed, its fields become the controller's and
    # applying the manifest would remove the extra key.
    await _edit(kube, _cm_path(ns, "own-config"), {"data": {"added": "x"}}, manager="deployer")
    assert await drift.detect(kube, rel, ignore=[]) == []
    changes = await drift.detect(kube, rel, ignore=[], disallowed_managers=["deployer"])
    assert [(c.type, c.subject, c.patch) for c in changes] == [
        ("update", f"ConfigMap/{ns}/own-config", [{"op": "remove", "path": "/data/added"}]),
        ("exclude", f"ConfigMap/{ns}/own-optout", []),
    ]
    live = await kube.get(_cm_path(ns, "own-config"))
    assert all(m["manager"] != "deployer" for m in live["metadata"]["managedFields"])


async def test_failed_correction_event(kube: Kube, namespace: str) -> None:
    ns = namespace
    rel = await _install(kube, "fail", ns)
    await kube.delete(_cm_path(ns, "fail-extra"))
    await _edit(kube, _cm_path(ns, "fail-config"), {"data": {"message": "edited"}})
    changes = await drift.detect(kube, rel, ignore=[])
    # The object reappears before the correction: its creation fails, the patch succeeds.
    await kube.create(
        f"/api/v1/namespaces/{ns}/configmaps",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fail-extra"}},
    )
    result = await drift.correct(kube, rel, changes)
    assert result.errors == [
        f'ConfigMap/{ns}/fail-extra creation failure: configmaps "fail-extra" already exists'
    ]
    assert drift.correction_event(rel, result) == (
        "Warning",
        "DriftCorrectionFailed",
        f"Failed to partially correct cluster state of release {ns}/fail.v1:\n"
        f'ConfigMap/{ns}/fail-extra creation failure: configmaps "fail-extra" already exists'
        f"\n\nSuccessful corrections:\nConfigMap/{ns}/fail-config configured",
    )
