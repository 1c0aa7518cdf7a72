"""tidal.helm.actions against the test plane, with the helm CLI as the oracle: what tidal's
install/upgrade/rollback/test/uninstall record and apply is what `helm status/history/get/list`
read, and each side upgrades the other's releases."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.plugin import Cluster
from tests.unit.test_helm_charts import package
from tidal.kube.client import ApiError, Kube

pytest.importorskip("helm_python")

import contextlib

from tidal.helm import actions, capabilities, storage
from tidal.helm.actions import ActionError, ActionOptions, TestFilter
from tidal.helm.chart import load_chart
from tidal.helm.render import render

pytestmark = pytest.mark.e2e

CHART: dict[str, str | bytes] = {
    "demo/Chart.yaml": "apiVersion: v2\nname: demo\nversion: 0.1.0\nappVersion: '1.0'\n",
    "demo/values.yaml": (
        "message: hello\nextra: true\nkept: true\ndeployment: true\nunschedulable: false\n"
        "failHook: false\ntests: false\n"
    ),
    "demo/templates/NOTES.txt": "demo {{ .Release.Name }} installed\n",
    "demo/templates/config.yaml": """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  message: {{ .Values.message | quote }}
""",
    "demo/templates/extra.yaml": """{{- if .Values.extra }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-extra
data:
  a: b
{{- end }}
""",
    "demo/templates/kept.yaml": """{{- if .Values.kept }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-kept
  annotations:
    helm.sh/resource-policy: keep
data:
  a: b
{{- end }}
""",
    "demo/templates/deployment.yaml": """{{- if .Values.deployment }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  replicas: 1
  selector:
    matchLabels: {app: {{ .Release.Name }}-web}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}-web}
    spec:
      {{- if .Values.unschedulable }}
      nodeSelector: {nowhere: "true"}
      {{- end }}
      containers:
        - name: web
          image: nginx
{{- end }}
""",
    "demo/templates/hooks.yaml": """{{- if .Values.failHook }}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-pre-upgrade
  annotations:
    helm.sh/hook: pre-upgrade
spec:
  backoffLimit: 0
  activeDeadlineSeconds: 1
  template:
    spec:
      restartPolicy: Never
      nodeSelector: {nowhere: "true"}
      containers:
        - name: main
          image: busybox
{{- end }}
""",
    "demo/templates/tests.yaml": """{{- if .Values.tests }}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-test-ok
  annotations:
    helm.sh/hook: test
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: main
          image: busybox
---
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-test-bad
  annotations:
    helm.sh/hook: test
    helm.sh/hook-weight: "5"
spec:
  backoffLimit: 0
  activeDeadlineSeconds: 1
  template:
    spec:
      restartPolicy: Never
      nodeSelector: {nowhere: "true"}
      containers:
        - name: main
          image: busybox
{{- end }}
""",
}

ARCHIVE = package(CHART)
FAST = ActionOptions(timeout=60)


def _helm_run(helm_bin: Path, kc: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm_bin), "--kubeconfig", kc, *args], capture_output=True, text=True, timeout=180
    )


def _helm(helm_bin: Path, kc: str, *args: str) -> str:
    p = _helm_run(helm_bin, kc, *args)
    if p.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {p.stderr}")
    return p.stdout


def _history(helm_bin: Path, kc: str, ns: str, name: str) -> list[tuple[int, str, str]]:
    out = json.loads(_helm(helm_bin, kc, "history", name, "-n", ns, "-o", "json"))
    return [(h["revision"], h["status"], h["description"]) for h in out]


async def _render(kube: Kube, name: str, ns: str, values: dict[str, Any], revision: int) -> Any:
    kv, av = await capabilities.discover(kube)
    return render(
        load_chart(ARCHIVE), values, release_name=name, namespace=ns, revision=revision,
        is_install=revision == 1, is_upgrade=revision > 1, kube_version=kv, api_versions=av,
    )  # fmt: skip


async def _install(kube: Kube, name: str, ns: str, values: dict[str, Any], **opts: Any) -> Any:
    r = await _render(kube, name, ns, values, 1)
    return await actions.install(
        kube, name=name, namespace=ns, storage_namespace=ns, chart=load_chart(ARCHIVE),
        rendered=r, manifest=r.manifest, hooks=r.hooks, options=ActionOptions(timeout=60, **opts),
    )  # fmt: skip


async def _upgrade(
    kube: Kube, current: Any, values: dict[str, Any], storage_ns: str = "", **opts: Any
) -> Any:
    r = await _render(kube, current.name, current.namespace, values, current.version + 1)
    return await actions.upgrade(
        kube, current=current, storage_namespace=storage_ns or current.namespace,
        chart=load_chart(ARCHIVE), rendered=r, manifest=r.manifest,
        hooks=r.hooks, options=ActionOptions(**({"timeout": 60} | opts)),
    )  # fmt: skip


async def _cm(kube: Kube, ns: str, name: str) -> dict[str, Any] | None:
    try:
        return await kube.get(f"/api/v1/namespaces/{ns}/configmaps/{name}")
    except ApiError as e:
        if e.status == 404:
            return None
        raise


async def test_install_upgrade_rollback_uninstall_seen_by_helm(
    helm_bin: Path, cluster: Cluster, kube: Kube, namespace: str
) -> None:
    kc, ns = str(cluster.kubeconfig), namespace
    rel = await _install(kube, "web", ns, {})
    assert (rel.version, rel.info.status, rel.info.description) == (
        1, "deployed", "Install complete",
    )  # fmt: skip
    cm = await _cm(kube, ns, "web-config")
    assert cm is not None
    meta = cm["metadata"]
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert meta["annotations"]["meta.helm.sh/release-name"] == "web"
    assert meta["annotations"]["meta.helm.sh/release-namespace"] == ns
    assert any(
        m["manager"] == "helm-controller" and m["operation"] == "Apply"
        for m in meta["managedFields"]
    )
    deployment = await kube.get(f"/apis/apps/v1/namespaces/{ns}/deployments/web-web")
    assert deployment["status"].get("readyReplicas") == 1  # the wait saw it ready
    status = json.loads(_helm(helm_bin, kc, "status", "-n", ns, "web", "-o", "json"))
    assert (status["version"], status["info"]["status"]) == (1, "deployed")
    assert _helm(helm_bin, kc, "get", "manifest", "-n", ns, "web") == rel.manifest + "\n"
    assert (
        _helm(helm_bin, kc, "get", "notes", "-n", ns, "web").strip().endswith("demo web installed")
    )

    # Upgrade: a value changes, two templates go away (one of them kept by its policy).
    rel2 = await _upgrade(kube, rel, {"message": "bye", "extra": False, "kept": False})
    assert (rel2.version, rel2.info.status, rel2.info.description) == (
        2, "deployed", "Upgrade complete",
    )  # fmt: skip
    assert (await _cm(kube, ns, "web-config"))["data"] == {"message": "bye"}  # type: ignore[index]
    assert await _cm(kube, ns, "web-extra") is None
    assert await _cm(kube, ns, "web-kept") is not None
    assert _history(helm_bin, kc, ns, "web") == [
        (1, "superseded", "Install complete"),
        (2, "deployed", "Upgrade complete"),
    ]

    # A failing pre-upgrade hook fails revision 3; revision 2 stays deployed.
    with pytest.raises(ActionError) as failed:
        await _upgrade(kube, rel2, {"message": "never", "failHook": True})
    assert failed.value.release is not None
    assert failed.value.release.info.status == "failed"
    assert str(failed.value).startswith("pre-upgrade hooks failed: resource Job/")
    assert "status: Failed, message: Job Failed" in str(failed.value)
    hist = _history(helm_bin, kc, ns, "web")
    assert hist[1][:2] == (2, "deployed")
    assert hist[2][:2] == (3, "failed")
    assert hist[2][2].startswith('Upgrade "web" failed: pre-upgrade hooks failed:')
    assert (await _cm(kube, ns, "web-config"))["data"] == {"message": "bye"}  # type: ignore[index]

    # Rollback to the last successful revision (2) makes revision 4.
    rel4 = await actions.rollback(kube, name="web", storage_namespace=ns, options=FAST)
    assert (rel4.version, rel4.info.status, rel4.manifest) == (4, "deployed", rel2.manifest)
    assert _history(helm_bin, kc, ns, "web")[-2:] == [
        (3, "failed", hist[2][2]),
        (4, "deployed", "Rollback to 2"),
    ]
    assert [h[1] for h in _history(helm_bin, kc, ns, "web")[:2]] == ["superseded", "superseded"]
    assert _helm(helm_bin, kc, "get", "manifest", "-n", ns, "web") == rel2.manifest + "\n"

    # Uninstall keeping history: objects gone (the kept one stays), an uninstalled record.
    gone = await actions.uninstall(
        kube, name="web", storage_namespace=ns, keep_history=True, options=FAST
    )
    assert (gone.info.status, gone.info.description) == ("uninstalled", "Uninstallation complete")
    assert await _cm(kube, ns, "web-config") is None
    assert await _cm(kube, ns, "web-kept") is not None
    listed = json.loads(_helm(helm_bin, kc, "list", "-n", ns, "--uninstalled", "-o", "json"))
    assert [(r["name"], r["status"], r["revision"]) for r in listed] == [
        ("web", "uninstalled", "4")
    ]
    # Uninstalling an uninstalled release without keep_history purges its history.
    await actions.uninstall(kube, name="web", storage_namespace=ns, options=FAST)
    assert await storage.history(kube, ns, "web") == []


async def test_wait_timeout_fails_the_upgrade_and_cleanup_on_fail(
    kube: Kube, namespace: str, helm_bin: Path, cluster: Cluster
) -> None:
    rel = await _install(kube, "slow", namespace, {"deployment": False, "extra": False})
    with pytest.raises(ActionError) as failed:
        await _upgrade(
            kube, rel, {"unschedulable": True, "extra": False}, timeout=3, cleanup_on_fail=True
        )
    message = str(failed.value)
    assert f"resource Deployment/{namespace}/slow-web not ready. status: InProgress" in message
    assert message.endswith("context deadline exceeded")
    assert failed.value.release is not None
    assert failed.value.release.info.description == f'Upgrade "slow" failed: {message}'
    # cleanup-on-fail deleted the Deployment the failed upgrade created.
    with pytest.raises(ApiError) as missing:
        await kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/slow-web")
    assert missing.value.status == 404
    hist = _history(helm_bin, str(cluster.kubeconfig), namespace, "slow")
    assert [h[:2] for h in hist] == [(1, "deployed"), (2, "failed")]
    # Full uninstall deletes the history.
    await actions.uninstall(kube, name="slow", storage_namespace=namespace, options=FAST)
    assert await storage.history(kube, namespace, "slow") == []
    assert await _cm(kube, namespace, "slow-config") is None


async def test_test_hooks_record_their_runs(
    kube: Kube, namespace: str, helm_bin: Path, cluster: Cluster
) -> None:
    values = {"tests": True, "deployment": False}
    rel = await _install(kube, "t", namespace, values)
    ok = await actions.test(
        kube,
        release=rel,
        storage_namespace=namespace,
        filters=[TestFilter("t-test-bad", exclude=True)],
        options=FAST,
    )
    runs = {h.name: h.last_run for h in ok.hooks}
    assert runs["t-test-ok"].phase == "Succeeded"
    assert runs["t-test-ok"].started_at and runs["t-test-ok"].completed_at
    assert runs["t-test-bad"].phase == ""
    with pytest.raises(ActionError) as failed:
        await actions.test(kube, release=ok, storage_namespace=namespace, options=FAST)
    assert "resource Job/" in str(failed.value) and "t-test-bad not ready" in str(failed.value)
    stored = await storage.get(kube, namespace, "t", 1)
    assert stored is not None
    phases = {h.name: h.last_run.phase for h in stored.hooks}
    assert phases == {"t-test-ok": "Succeeded", "t-test-bad": "Failed"}
    status = json.loads(
        _helm(helm_bin, str(cluster.kubeconfig), "status", "-n", namespace, "t", "-o", "json")
    )
    assert {h["name"]: h["last_run"]["phase"] for h in status["hooks"]} == phases


async def test_ownership_of_existing_objects(kube: Kube, namespace: str) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "own-config"},
          "data": {"message": "mine"}}  # fmt: skip
    await kube.create(f"/api/v1/namespaces/{namespace}/configmaps", cm)
    values = {"deployment": False, "extra": False, "kept": False}
    with pytest.raises(ActionError) as refused:
        await _install(kube, "own", namespace, values, take_ownership=False)
    assert str(refused.value) == (
        f'unable to continue with install: ConfigMap "own-config" in namespace "{namespace}" '
        "exists and cannot be imported into the current release: invalid ownership metadata; "
        'label validation error: missing key "app.kubernetes.io/managed-by": must be set to '
        '"Helm"; annotation validation error: missing key "meta.helm.sh/release-name": must be '
        'set to "own"; annotation validation error: missing key '
        '"meta.helm.sh/release-namespace": must be set to "' + namespace + '"'
    )
    assert refused.value.release is None
    assert await storage.history(kube, namespace, "own") == []
    rel = await _install(kube, "own", namespace, values)
    assert rel.info.status == "deployed"
    adopted = await _cm(kube, namespace, "own-config")
    assert adopted is not None
    assert adopted["data"] == {"message": "hello"}
    assert adopted["metadata"]["annotations"]["meta.helm.sh/release-name"] == "own"


async def test_helm_cli_and_tidal_upgrade_each_other(
    helm_bin: Path, cluster: Cluster, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    kc, ns = str(cluster.kubeconfig), namespace
    tgz = tmp_path / "demo.tgz"
    tgz.write_bytes(ARCHIVE)
    base = ["-n", ns, "--set", "deployment=false"]
    # tidal installs, the helm CLI upgrades.
    await _install(kube, "a", ns, {"deployment": False})
    # The CLI's field manager ("helm") meets tidal's ("helm-controller") on every field: as
    # with a Flux-installed release, the CLI must force the conflicts.
    conflict = _helm_run(helm_bin, kc, "upgrade", "a", str(tgz), *base, "--set", "message=cli")
    assert 'conflict with "helm-controller": .data.message' in conflict.stderr
    _helm(
        helm_bin, kc, "upgrade", "a", str(tgz), *base, "--set", "message=cli", "--wait",
        "--force-conflicts",
    )  # fmt: skip
    assert (await _cm(kube, ns, "a-config"))["data"] == {"message": "cli"}  # type: ignore[index]
    assert [h[:2] for h in _history(helm_bin, kc, ns, "a")] == [
        (1, "superseded"), (2, "failed"), (3, "deployed"),
    ]  # fmt: skip
    # The helm CLI installs, tidal upgrades (it adopts the objects the CLI applied).
    _helm(helm_bin, kc, "install", "b", str(tgz), *base, "--wait")
    current = await storage.latest(kube, ns, "b")
    assert current is not None
    rel = await _upgrade(kube, current, {"deployment": False, "message": "tidal", "extra": False})
    assert (rel.version, rel.info.status) == (2, "deployed")
    assert (await _cm(kube, ns, "b-config"))["data"] == {"message": "tidal"}  # type: ignore[index]
    assert await _cm(kube, ns, "b-extra") is None
    assert [h[:2] for h in _history(helm_bin, kc, ns, "b")] == [
        (1, "superseded"), (2, "deployed"),
    ]  # fmt: skip
    # And the CLI can still uninstall what tidal upgraded.
    _helm(helm_bin, kc, "uninstall", "b", "-n", ns, "--wait")
    assert await _cm(kube, ns, "b-config") is None


GROUP = "helmactions.tidal.example"
HOOKED: dict[str, str | bytes] = {
    "hooked/Chart.yaml": "apiVersion: v2\nname: hooked\nversion: 0.2.0\n",
    "hooked/values.yaml": "failInstall: false\n",
    "hooked/crds/widgets.yaml": f"""apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{GROUP}
spec:
  group: {GROUP}
  names: {{kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
""",
    "hooked/templates/widget.yaml": f"""apiVersion: {GROUP}/v1
kind: Widget
metadata:
  name: {{{{ .Release.Name }}}}-widget
spec:
  size: 3
""",
    "hooked/templates/hooks.yaml": """apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-pre-install
  annotations:
    helm.sh/hook: pre-install
    helm.sh/hook-delete-policy: hook-succeeded
spec:
  {{- if .Values.failInstall }}
  backoffLimit: 0
  activeDeadlineSeconds: 1
  {{- end }}
  template:
    spec:
      restartPolicy: Never
      {{- if .Values.failInstall }}
      nodeSelector: {nowhere: "true"}
      {{- end }}
      containers:
        - name: main
          image: busybox
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-post-install
  annotations:
    helm.sh/hook: post-install
data: {}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-pre-delete
  annotations:
    helm.sh/hook: pre-delete
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: main
          image: busybox
""",
}
HOOKED_ARCHIVE = package(HOOKED)


async def _install_hooked(
    kube: Kube, name: str, ns: str, values: dict[str, Any], **opts: Any
) -> Any:
    chart = load_chart(HOOKED_ARCHIVE)
    kv, av = await capabilities.discover(kube)
    r = render(
        chart, values, release_name=name, namespace=ns, revision=1, is_install=True,
        is_upgrade=False, kube_version=kv, api_versions=[*av, f"{GROUP}/v1"],
    )  # fmt: skip
    return await actions.install(
        kube, name=name, namespace=ns, storage_namespace=ns, chart=chart, rendered=r,
        manifest=r.manifest, hooks=r.hooks, options=ActionOptions(timeout=60, **opts),
    )  # fmt: skip


async def _absent(kube: Kube, path: str) -> bool:
    try:
        await kube.get(path)
    except ApiError as e:
        return e.status == 404
    return False


async def test_crds_and_hooks_on_install_and_uninstall(
    helm_bin: Path, cluster: Cluster, kube: Kube, namespace: str
) -> None:
    ns, jobs = namespace, f"/apis/batch/v1/namespaces/{namespace}/jobs"
    try:
        rel = await _install_hooked(kube, "h", ns, {})
        assert rel.info.status == "deployed"
        # The CRD went in first and is established: the Widget it serves was created.
        widget = await kube.get(f"/apis/{GROUP}/v1/namespaces/{ns}/widgets/h-widget")
        assert widget["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        # hook-succeeded deleted the pre-install Job; the post-install ConfigMap stays.
        assert await _absent(kube, f"{jobs}/h-pre-install")
        assert await _cm(kube, ns, "h-post-install") is not None
        status = json.loads(
            _helm(helm_bin, str(cluster.kubeconfig), "status", "-n", ns, "h", "-o", "json")
        )
        runs = {
            h["name"]: (h["last_run"]["phase"], h.get("delete_policies")) for h in status["hooks"]
        }
        assert runs == {
            "h-pre-install": ("Succeeded", ["hook-succeeded"]),
            "h-post-install": ("Succeeded", ["before-hook-creation"]),
            "h-pre-delete": ("", None),
        }
        await actions.uninstall(kube, name="h", storage_namespace=ns, options=FAST)
        assert await _absent(kube, f"/apis/{GROUP}/v1/namespaces/{ns}/widgets/h-widget")
        # The pre-delete hook ran and, with the default policy, is left behind as in Helm.
        done = await kube.get(f"{jobs}/h-pre-delete")
        assert any(c["type"] == "Complete" for c in done["status"]["conditions"])
        assert await storage.history(kube, ns, "h") == []
    finally:
        with contextlib.suppress(ApiError):
            await kube.delete(
                f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{GROUP}"
            )


async def test_failed_pre_install_hook_fails_the_release(
    helm_bin: Path, cluster: Cluster, kube: Kube, namespace: str
) -> None:
    # Without its CRD (policy Skip) the manifest cannot even be built: nothing is recorded.
    with pytest.raises(ActionError) as unbuildable:
        await _install_hooked(kube, "f", namespace, {}, crds="Skip")
    assert str(unbuildable.value).startswith(
        "unable to build kubernetes objects from release manifest: resource mapping not found "
        'for name: "f-widget"'
    )
    assert unbuildable.value.release is None
    try:
        with pytest.raises(ActionError) as failed:
            await _install_hooked(kube, "f", namespace, {"failInstall": True})
    finally:
        with contextlib.suppress(ApiError):
            await kube.delete(
                f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{GROUP}"
            )
    message = str(failed.value)
    assert message.startswith(
        f"failed pre-install: resource Job/{namespace}/f-pre-install not ready. status: Failed"
    )
    rel = failed.value.release
    assert rel is not None
    assert (rel.info.status, rel.info.description) == ("failed", f'Release "f" failed: {message}')
    status = json.loads(
        _helm(helm_bin, str(cluster.kubeconfig), "status", "-n", namespace, "f", "-o", "json")
    )
    assert (status["info"]["status"], status["info"]["description"]) == (
        "failed", f'Release "f" failed: {message}',
    )  # fmt: skip
    # Nothing of the release was applied after its pre-install hook failed.
    assert await _cm(kube, namespace, "f-post-install") is None


async def test_cancelled_install_is_recorded_failed(kube: Kube, namespace: str) -> None:
    import asyncio

    task = asyncio.create_task(_install(kube, "c", namespace, {"unschedulable": True}))
    for _ in range(100):
        await asyncio.sleep(0.1)
        latest = await storage.latest(kube, namespace, "c")
        if latest is not None and latest.info.status == "pending-install":
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    latest = await storage.latest(kube, namespace, "c")
    assert latest is not None
    assert (latest.info.status, latest.info.description) == (
        "failed", 'Release "c" failed: context canceled',
    )  # fmt: skip


async def test_max_history_prunes_old_revisions(kube: Kube, namespace: str) -> None:
    values = {"deployment": False}
    rel = await _install(kube, "m", namespace, values)
    for i in range(3):
        rel = await _upgrade(kube, rel, {**values, "message": f"v{i}"}, max_history=2)
    assert [(r.version, r.info.status) for r in await storage.history(kube, namespace, "m")] == [
        (3, "superseded"), (4, "deployed"),
    ]  # fmt: skip


async def test_client_side_apply_and_force_replace(
    helm_bin: Path, cluster: Cluster, kube: Kube, namespace: str
) -> None:
    values = {"deployment": False, "kept": False}
    rel = await _install(kube, "csa", namespace, values, server_side_apply=False)
    assert rel.apply_method == "csa"
    cm = await _cm(kube, namespace, "csa-config")
    assert cm is not None
    assert {m["operation"] for m in cm["metadata"]["managedFields"]} == {"Update"}
    # "auto" keeps the apply method the release was made with (csa).
    rel = await _upgrade(kube, rel, {**values, "message": "two"}, server_side_apply=None)
    assert rel.apply_method == "csa"
    assert (await _cm(kube, namespace, "csa-config"))["data"] == {"message": "two"}  # type: ignore[index]
    rel = await _upgrade(
        kube, rel, {**values, "message": "three", "extra": False}, server_side_apply=None,
        force=True,
    )  # fmt: skip
    assert (await _cm(kube, namespace, "csa-config"))["data"] == {"message": "three"}  # type: ignore[index]
    assert await _cm(kube, namespace, "csa-extra") is None
    status = json.loads(
        _helm(helm_bin, str(cluster.kubeconfig), "status", "-n", namespace, "csa", "-o", "json")
    )
    assert (status["version"], status["info"]["status"], status["apply_method"]) == (
        3, "deployed", "csa",
    )  # fmt: skip


def _comparable(rel: storage.Release) -> str:
    """A release's JSON with what differs between any two installs blanked: the name, times,
    and the chart files' modtimes (tidal's chart record has none)."""
    text = json.dumps(json.loads(storage.release_json(rel)), indent=1, sort_keys=True)
    text = re.sub(r'"\d{4}-\d\d-\d\dT[^"]*"', '"T"', text)
    text = re.sub(r'\n *"modtime": "T",', "", text)
    return text.replace(f'"{rel.name}"', '"N"').replace(f"{rel.name}-", "N-")


async def test_release_record_equals_the_helm_cli_install(
    helm_bin: Path, cluster: Cluster, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """The same chart installed by `helm install` and by tidal: the same release record
    (hooks' runs and defaulted delete policies included), the same object metadata, the
    field manager aside."""
    tgz = tmp_path / "hooked.tgz"
    tgz.write_bytes(HOOKED_ARCHIVE)
    try:
        _helm(
            helm_bin, str(cluster.kubeconfig), "install", "x", str(tgz), "-n", namespace,
            "--wait", "--timeout", "60s",
        )  # fmt: skip
        await _install_hooked(kube, "y", namespace, {})
    finally:
        with contextlib.suppress(ApiError):
            await kube.delete(
                f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{GROUP}"
            )
    by_cli = await storage.get(kube, namespace, "x", 1)
    by_tidal = await storage.get(kube, namespace, "y", 1)
    assert by_cli is not None and by_tidal is not None
    assert _comparable(by_tidal) == _comparable(by_cli)
    for name, manager in (("x", "helm"), ("y", "helm-controller")):
        cm = await _cm(kube, namespace, f"{name}-post-install")
        assert cm is not None
        assert cm["metadata"]["annotations"] == {"helm.sh/hook": "post-install"}
        assert [(m["manager"], m["operation"]) for m in cm["metadata"]["managedFields"]] == [
            (manager, "Apply")
        ]


async def test_upgrade_from_client_side_to_server_side_apply(kube: Kube, namespace: str) -> None:
    values = {"deployment": False, "kept": False, "extra": False}
    rel = await _install(kube, "mig", namespace, values, server_side_apply=False)
    rel = await _upgrade(kube, rel, {**values, "message": "ssa"}, server_side_apply=True)
    assert rel.apply_method == "ssa"
    cm = await _cm(kube, namespace, "mig-config")
    assert cm is not None
    assert cm["data"] == {"message": "ssa"}
    # The client-side entry of the field manager became its apply entry.
    assert [(m["manager"], m["operation"]) for m in cm["metadata"]["managedFields"]] == [
        ("helm-controller", "Apply")
    ]


async def test_create_namespace_with_storage_elsewhere(
    helm_bin: Path, cluster: Cluster, kube: Kube, namespace: str
) -> None:
    target = f"{namespace}-target"
    values = {"deployment": False, "kept": False, "extra": False}
    r = await _render(kube, "ns", target, values, 1)
    try:
        rel = await actions.install(
            kube, name="ns", namespace=target, storage_namespace=namespace,
            chart=load_chart(ARCHIVE), rendered=r, manifest=r.manifest, hooks=r.hooks,
            options=ActionOptions(timeout=60, create_namespace=True),
        )  # fmt: skip
        created = await kube.get(f"/api/v1/namespaces/{target}")
        assert created["metadata"]["labels"]["name"] == target
        assert await _cm(kube, target, "ns-config") is not None
        # The release lives in the storage namespace and names the target namespace.
        assert rel.namespace == target
        assert await storage.history(kube, target, "ns") == []
        (stored,) = await storage.history(kube, namespace, "ns")
        assert (stored.namespace, stored.info.status) == (target, "deployed")
        rel2 = await _upgrade(kube, stored, {**values, "message": "moved"}, namespace)
        assert rel2.version == 2
        assert [r.version for r in await storage.history(kube, namespace, "ns")] == [1, 2]
        await actions.uninstall(kube, name="ns", storage_namespace=namespace, options=FAST)
        assert await _cm(kube, target, "ns-config") is None
    finally:
        with contextlib.suppress(ApiError):
            await kube.delete(f"/api/v1/namespaces/{target}")


async def test_upgrade_refuses_an_object_of_another_release(kube: Kube, namespace: str) -> None:
    values = {"deployment": False, "kept": False, "extra": False}
    other = await _install(kube, "other", namespace, values)
    assert other.info.status == "deployed"
    # "mine" starts without its extra ConfigMap; someone else's object has its name.
    extra = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "mine-extra", "labels": {"app.kubernetes.io/managed-by": "Helm"},
        "annotations": {"meta.helm.sh/release-name": "other",
                        "meta.helm.sh/release-namespace": namespace}}}  # fmt: skip
    await kube.create(f"/api/v1/namespaces/{namespace}/configmaps", extra)
    rel = await _install(kube, "mine", namespace, values)
    with pytest.raises(ActionError) as refused:
        await _upgrade(kube, rel, {**values, "extra": True}, take_ownership=False)
    assert str(refused.value) == (
        f'unable to continue with update: ConfigMap "mine-extra" in namespace "{namespace}" '
        "exists and cannot be imported into the current release: invalid ownership metadata; "
        'annotation validation error: key "meta.helm.sh/release-name" must equal "mine": '
        'current value is "other"'
    )
    # Nothing was recorded for the refused upgrade.
    assert [r.version for r in await storage.history(kube, namespace, "mine")] == [1]
