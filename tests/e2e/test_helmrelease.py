"""`tidal controller` releasing Helm charts as Flux's helm-controller does: charts from a real
chart repository (through the HelmChart it keeps) and from a real OCI registry (chartRef to an
OCIRepository), with the helm CLI built from its Go module reading the releases tidal makes."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testenv import plane
from testenv.chart_server import ChartRepository, ChartServer, package_chart
from testenv.registry import Registry
from tests import plugin
from tests.controller_process import (
    RunningController,
    condition,
    controller_fixture,
    wait_for_object,
)
from tests.kustomization_helpers import SOURCE_API, secret, wait_gone
from tidal.kube.client import ApiError, Kube

pytestmark = pytest.mark.e2e

pytest.importorskip("helm_python")

controller = controller_fixture("--concurrent", "4", "--requeue-dependency", "2s")

HR_API = "/apis/helm.toolkit.fluxcd.io/v2"
REQUESTED = "reconcile.fluxcd.io/requestedAt"
CHART_FILES = {
    "values.yaml": "greeting: hello\nextra: true\nbroken: false\ntests: false\n",
    "templates/configmap.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n"
        '  token: {{ .Values.token | default "none" | quote }}\n'
        "  chart: {{ .Chart.Version | quote }}\n"
        # Helm's lookup reads the cluster the release goes to.
        '{{- $found := lookup "v1" "ConfigMap" .Release.Namespace "preexisting" }}\n'
        '  looked: {{ dig "data" "value" "none" $found | quote }}\n'
    ),
    "templates/extra.yaml": (
        "{{- if .Values.extra }}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n"
        "  name: {{ .Release.Name }}-extra\n{{- end }}\n"
    ),
    # A test hook that kwok's Pods complete.
    "templates/test.yaml": (
        "{{- if .Values.tests }}\napiVersion: batch/v1\nkind: Job\nmetadata:\n"
        "  name: {{ .Release.Name }}-test\n  annotations:\n    helm.sh/hook: test\n"
        "spec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n"
        "        - name: main\n          image: busybox\n{{- end }}\n"
    ),
    # An object the API server refuses: an upgrade with broken=true fails.
    "templates/broken.yaml": (
        "{{- if .Values.broken }}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n"
        "  name: Not_A_Valid_Name\n{{- end }}\n"
    ),
}


def hr_path(namespace: str, name: str) -> str:
    return f"{HR_API}/namespaces/{namespace}/helmreleases/{name}"


def cm_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps/{name}"


async def create_hr(kube: Kube, namespace: str, name: str, spec: dict[str, Any]) -> None:
    body = {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"interval": "10m", **spec},
    }
    await kube.request("POST", f"{HR_API}/namespaces/{namespace}/helmreleases", body=body)


def ready(reason: str) -> Any:
    def check(obj: dict[str, Any]) -> bool:
        c = condition(obj, "Ready")
        return (
            c.get("status") == "True"
            and c.get("reason") == reason
            and (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]
        )

    return check


def helm(helm_bin: Path, kubeconfig: str, *args: str) -> Any:
    out = subprocess.run(
        [str(helm_bin), "--kubeconfig", kubeconfig, *args, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def charts(tmp_path: Path) -> ChartRepository:
    repo = ChartRepository(tmp_path / "charts")
    repo.root.mkdir()
    repo.add("app", "1.0.0", extra_files=CHART_FILES)
    return repo


@pytest.fixture
def server(charts: ChartRepository) -> Iterator[ChartServer]:
    with ChartServer(charts.root) as srv:
        yield srv


async def helm_repository(kube: Kube, namespace: str, url: str) -> None:
    body = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "HelmRepository",
        "metadata": {"name": "charts", "namespace": namespace},
        "spec": {"url": url, "interval": "10m"},
    }
    await kube.request("POST", f"{SOURCE_API}/namespaces/{namespace}/helmrepositories", body=body)


def chart_template(**extra: Any) -> dict[str, Any]:
    return {
        "spec": {
            "chart": "app",
            "version": "1.x",
            "sourceRef": {"kind": "HelmRepository", "name": "charts"},
            **extra,
        }
    }


async def test_install_upgrade_and_uninstall_through_a_chart_template(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    cluster: Any,
    helm_bin: Path,
    server: ChartServer,
) -> None:
    kubeconfig = str(cluster.kubeconfig)
    await helm_repository(kube, namespace, server.url)
    await secret(kube, namespace, "app-secrets", {"token": "s3cret"})
    preexisting = {"metadata": {"name": "preexisting"}, "data": {"value": "found"}}
    await kube.create(f"/api/v1/namespaces/{namespace}/configmaps", preexisting)
    await create_hr(
        kube,
        namespace,
        "app",
        {
            "chart": chart_template(),
            "values": {"greeting": "hi"},
            "valuesFrom": [
                {
                    "kind": "Secret",
                    "name": "app-secrets",
                    "valuesKey": "token",
                    "targetPath": "token",
                }
            ],
            "postRenderers": [
                {
                    "kustomize": {
                        "patches": [
                            {
                                "patch": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                "  name: app\n  labels:\n    patched: 'yes'\n"
                            }
                        ]
                    }
                }
            ],
        },
    )
    path = hr_path(namespace, "app")
    obj = await wait_for_object(kube, path, ready("InstallSucceeded"), "installed", controller, 90)
    assert condition(obj, "Ready")["message"] == (
        f"Helm install succeeded for release {namespace}/app.v1 with chart app@1.0.0"
    )
    assert condition(obj, "Released")["reason"] == "InstallSucceeded"
    status = obj["status"]
    assert status["helmChart"] == f"{namespace}/{namespace}-app"
    assert status["storageNamespace"] == namespace
    assert status["lastAttemptedRevision"] == "1.0.0"
    assert status["lastAttemptedReleaseAction"] == "install"
    snap = status["history"][0]
    assert (snap["name"], snap["version"], snap["status"]) == ("app", 1, "deployed")
    assert (snap["chartName"], snap["chartVersion"]) == ("app", "1.0.0")
    assert snap["configDigest"] == status["lastAttemptedConfigDigest"]
    ids = {e["id"] for e in status["inventory"]["entries"]}
    assert ids == {f"{namespace}_app__ConfigMap", f"{namespace}_app-extra__ConfigMap"}

    cm = await kube.get(cm_path(namespace, "app"))
    assert cm["data"] == {"greeting": "hi", "token": "s3cret", "chart": "1.0.0", "looked": "found"}
    labels = cm["metadata"]["labels"]
    assert labels["helm.toolkit.fluxcd.io/name"] == "app"
    assert labels["helm.toolkit.fluxcd.io/namespace"] == namespace
    assert labels["app.kubernetes.io/managed-by"] == "Helm"
    assert labels["patched"] == "yes"
    managers = {m["manager"] for m in cm["metadata"]["managedFields"]}
    assert "helm-controller" in managers
    # The HelmChart made for the template carries the owner labels.
    chart = await kube.get(f"{SOURCE_API}/namespaces/{namespace}/helmcharts/{namespace}-app")
    assert chart["metadata"]["labels"]["helm.toolkit.fluxcd.io/name"] == "app"

    # The helm CLI sees the release tidal made.
    listed = helm(helm_bin, kubeconfig, "list", "-n", namespace)
    assert [(r["name"], r["revision"], r["status"]) for r in listed] == [("app", "1", "deployed")]

    # New values upgrade; a template that renders nothing any more is deleted.
    await kube.patch(path, {"spec": {"values": {"greeting": "bonjour", "extra": False}}})
    obj = await wait_for_object(kube, path, ready("UpgradeSucceeded"), "upgraded", controller, 90)
    assert [(h["version"], h["status"]) for h in obj["status"]["history"]] == [
        (2, "deployed"),
        (1, "superseded"),
    ]
    cm = await kube.get(cm_path(namespace, "app"))
    assert cm["data"]["greeting"] == "bonjour"
    with pytest.raises(ApiError) as e:
        await kube.get(cm_path(namespace, "app-extra"))
    assert e.value.status == 404
    history = helm(helm_bin, kubeconfig, "history", "app", "-n", namespace)
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "deployed")]

    # Deleting the HelmRelease uninstalls the release and removes the HelmChart.
    await kube.delete(path)
    await wait_gone(kube, path, within=60)
    with pytest.raises(ApiError):
        await kube.get(cm_path(namespace, "app"))
    assert helm(helm_bin, kubeconfig, "list", "-n", namespace) == []
    assert helm(helm_bin, kubeconfig, "list", "-n", namespace, "--uninstalled") == []
    records = await kube.get(
        f"/api/v1/namespaces/{namespace}/secrets", params={"labelSelector": "owner=helm"}
    )
    assert records["items"] == []
    with pytest.raises(ApiError):
        await kube.get(f"{SOURCE_API}/namespaces/{namespace}/helmcharts/{namespace}-app")


async def test_failed_upgrade_is_rolled_back_and_stalls_once_retries_are_spent(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    cluster: Any,
    helm_bin: Path,
    server: ChartServer,
) -> None:
    await helm_repository(kube, namespace, server.url)
    await create_hr(
        kube,
        namespace,
        "app",
        {
            "chart": chart_template(),
            "values": {"greeting": "good"},
            "upgrade": {"remediation": {"retries": 1}},
        },
    )
    path = hr_path(namespace, "app")
    await wait_for_object(kube, path, ready("InstallSucceeded"), "installed", controller, 90)

    await kube.patch(path, {"spec": {"values": {"greeting": "bad", "broken": True}}})

    def stalled(obj: dict[str, Any]) -> bool:
        return condition(obj, "Stalled").get("reason") == "RetriesExceeded"

    obj = await wait_for_object(kube, path, stalled, "retries exceeded", controller, 120)
    assert condition(obj, "Ready")["status"] == "False"
    assert condition(obj, "Remediated")["reason"] == "RollbackSucceeded"
    assert obj["status"]["upgradeFailures"] == 2
    # The last good state stays applied.
    cm = await kube.get(cm_path(namespace, "app"))
    assert cm["data"]["greeting"] == "good"
    history = helm(helm_bin, str(cluster.kubeconfig), "history", "app", "-n", namespace)
    descriptions = [h["description"] for h in history]
    assert "Rollback to 1" in descriptions
    assert history[-1]["status"] == "deployed"

    # A new spec moves it again: the fix is released.
    await kube.patch(path, {"spec": {"values": {"greeting": "fixed", "broken": False}}})
    await wait_for_object(kube, path, ready("UpgradeSucceeded"), "fixed", controller, 90)
    assert (await kube.get(cm_path(namespace, "app")))["data"]["greeting"] == "fixed"


async def test_chart_ref_to_an_oci_repository_and_depends_on(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    helm_bin: Path,
    oci_registry_bin: Path,
    tmp_path: Path,
) -> None:
    archive = tmp_path / "app-1.0.0.tgz"
    archive.write_bytes(package_chart("app", "1.0.0", extra_files=CHART_FILES))
    with Registry(binary=oci_registry_bin) as registry:
        push = await asyncio.to_thread(
            subprocess.run,
            [str(helm_bin), "push", str(archive), f"oci://{registry.host}/charts", "--plain-http"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert push.returncode == 0, push.stderr
        oci = {
            "apiVersion": "source.toolkit.fluxcd.io/v1",
            "kind": "OCIRepository",
            "metadata": {"name": "app", "namespace": namespace},
            "spec": {
                "url": f"oci://{registry.host}/charts/app",
                "ref": {"tag": "1.0.0"},
                "insecure": True,
                "interval": "10m",
                "layerSelector": {
                    "mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                    "operation": "copy",
                },
            },
        }
        await kube.request("POST", f"{SOURCE_API}/namespaces/{namespace}/ocirepositories", body=oci)
        # "second" waits for "first".
        await create_hr(
            kube,
            namespace,
            "second",
            {
                "chartRef": {"kind": "OCIRepository", "name": "app"},
                "dependsOn": [{"name": "first"}],
            },
        )
        second = hr_path(namespace, "second")

        def waiting(obj: dict[str, Any]) -> bool:
            return condition(obj, "Ready").get("reason") == "DependencyNotReady"

        obj = await wait_for_object(kube, second, waiting, "waiting for first", controller, 60)
        assert condition(obj, "Ready")["message"].startswith(
            f"dependency '{namespace}/first' not found: "
        )
        await create_hr(
            kube, namespace, "first", {"chartRef": {"kind": "OCIRepository", "name": "app"}}
        )
        first = await wait_for_object(
            kube, hr_path(namespace, "first"), ready("InstallSucceeded"), "first", controller, 90
        )
        snap = first["status"]["history"][0]
        # Digest tracking: the chart version carries the OCI artifact's digest.
        assert snap["chartVersion"].startswith("1.0.0+")
        assert len(snap["chartVersion"]) == len("1.0.0+") + 12
        assert snap["ociDigest"].startswith("sha256:")
        assert first["status"]["lastAttemptedRevisionDigest"] == snap["ociDigest"]
        await wait_for_object(kube, second, ready("InstallSucceeded"), "second", controller, 90)
        cm = await kube.get(cm_path(namespace, "second"))
        assert cm["data"]["chart"] == snap["chartVersion"]


@pytest.fixture(scope="module")
def remote_plane() -> Iterator[plane.State]:
    with plugin.private_plane("tidal-hr-remote-", "remote plane for HelmReleases") as state:
        yield state


async def test_kube_config_releases_into_the_remote_cluster(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    server: ChartServer,
    remote_plane: plane.State,
) -> None:
    admin = remote_plane.kubeconfig.read_bytes()
    await secret(kube, namespace, "remote", {"value.yaml": admin.decode()})
    await helm_repository(kube, namespace, server.url)
    async with Kube.from_kubeconfig(remote_plane.kubeconfig) as remote:
        await remote.request("POST", "/api/v1/namespaces", body={"metadata": {"name": namespace}})
        await create_hr(
            kube,
            namespace,
            "app",
            {"chart": chart_template(), "kubeConfig": {"secretRef": {"name": "remote"}}},
        )
        path = hr_path(namespace, "app")
        await wait_for_object(kube, path, ready("InstallSucceeded"), "installed", controller, 90)
        # The objects and Helm's record are in the remote cluster, not in this one.
        assert (await remote.get(cm_path(namespace, "app")))["data"]["greeting"] == "hello"
        records = await remote.get(
            f"/api/v1/namespaces/{namespace}/secrets", params={"labelSelector": "owner=helm"}
        )
        assert [r["metadata"]["name"] for r in records["items"]] == ["sh.helm.release.v1.app.v1"]
        with pytest.raises(ApiError):
            await kube.get(cm_path(namespace, "app"))
        await kube.delete(path)
        await wait_gone(kube, path, within=60)
        with pytest.raises(ApiError):
            await remote.get(cm_path(namespace, "app"))


async def test_tests_run_after_install_and_their_results_are_kept(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    server: ChartServer,
) -> None:
    await helm_repository(kube, namespace, server.url)
    await create_hr(
        kube,
        namespace,
        "app",
        {"chart": chart_template(), "values": {"tests": True}, "test": {"enable": True}},
    )
    path = hr_path(namespace, "app")
    obj = await wait_for_object(kube, path, ready("TestSucceeded"), "tested", controller, 90)
    assert condition(obj, "TestSuccess")["message"] == (
        f"Helm test succeeded for release {namespace}/app.v1 with chart app@1.0.0: "
        "1 test hook completed successfully"
    )
    assert condition(obj, "Released")["reason"] == "InstallSucceeded"
    hooks = obj["status"]["history"][0]["testHooks"]
    assert list(hooks) == ["app-test"]
    assert hooks["app-test"]["phase"] == "Succeeded"
    assert hooks["app-test"]["lastStarted"] and hooks["app-test"]["lastCompleted"]


async def test_drift_is_corrected_when_enabled_and_only_reported_with_warn(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    server: ChartServer,
) -> None:
    await helm_repository(kube, namespace, server.url)
    await create_hr(
        kube, namespace, "app", {"chart": chart_template(), "driftDetection": {"mode": "enabled"}}
    )
    path = hr_path(namespace, "app")
    obj = await wait_for_object(kube, path, ready("InstallSucceeded"), "installed", controller, 90)
    assert condition(obj, "Drifted")["reason"] == "NoDriftDetected"

    # Someone edits a field the chart declares and deletes another object of the release.
    await kube.patch(cm_path(namespace, "app"), {"data": {"greeting": "edited"}})
    await kube.delete(cm_path(namespace, "app-extra"))
    await kube.patch(path, {"metadata": {"annotations": {REQUESTED: "drift-1"}}})

    def handled(token: str) -> Any:
        def check(obj: dict[str, Any]) -> bool:
            return (obj.get("status") or {}).get("lastHandledReconcileAt") == token

        return check

    obj = await wait_for_object(kube, path, handled("drift-1"), "drift handled", controller, 60)
    # Corrected within the same reconciliation: the state is in sync again, as in Flux.
    assert condition(obj, "Drifted")["reason"] == "NoDriftDetected"
    assert (await kube.get(cm_path(namespace, "app")))["data"]["greeting"] == "hello"
    await kube.get(cm_path(namespace, "app-extra"))
    events = await kube.get(
        f"/api/v1/namespaces/{namespace}/events",
        params={"fieldSelector": "involvedObject.kind=HelmRelease"},
    )
    by_reason = {e["reason"]: e["message"] for e in events["items"]}
    assert by_reason["DriftDetected"] == (
        f"Cluster state of release {namespace}/app.v1 has drifted from the desired state:\n"
        f"ConfigMap/{namespace}/app changed (0 additions, 1 changes, 0 removals)\n"
        f"ConfigMap/{namespace}/app-extra removed"
    )
    assert by_reason["DriftCorrected"].startswith(
        f"Cluster state of release {namespace}/app.v1 has been corrected:\n"
    )

    # warn: reported, left alone.
    await kube.patch(path, {"spec": {"driftDetection": {"mode": "warn"}}})
    await wait_for_object(kube, path, ready("InstallSucceeded"), "warn mode", controller, 60)
    await kube.patch(cm_path(namespace, "app"), {"data": {"greeting": "edited"}})
    await kube.patch(path, {"metadata": {"annotations": {REQUESTED: "drift-2"}}})
    obj = await wait_for_object(kube, path, handled("drift-2"), "drift reported", controller, 60)
    assert condition(obj, "Drifted")["status"] == "True"
    assert (await kube.get(cm_path(namespace, "app")))["data"]["greeting"] == "edited"


WIDGETS = {
    "crds/widgets.yaml": (
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n"
        "  name: widgets.hr.tidal.test\nspec:\n  group: hr.tidal.test\n  scope: Namespaced\n"
        "  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}\n"
        "  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n"
        "      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}\n"
    ),
    "templates/widget.yaml": (
        "apiVersion: hr.tidal.test/v1\nkind: Widget\nmetadata:\n  name: {{ .Release.Name }}\n"
        "status:\n  phase: Spinning\n"
    ),
}


async def test_health_check_exprs_judge_custom_resources_while_waiting(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    charts: ChartRepository,
    server: ChartServer,
) -> None:
    charts.add("widgets", "1.0.0", extra_files=WIDGETS)
    await helm_repository(kube, namespace, server.url)
    expr = {"apiVersion": "hr.tidal.test/v1", "kind": "Widget"}
    await create_hr(
        kube,
        namespace,
        "w",
        {
            "chart": {"spec": {"chart": "widgets", "sourceRef": {"kind": "HelmRepository",
                                                                 "name": "charts"}}},
            "timeout": "3s",
            "healthCheckExprs": [{**expr, "current": "status.phase == 'Done'"}],
        },
    )  # fmt: skip
    path = hr_path(namespace, "w")

    def install_failed(obj: dict[str, Any]) -> bool:
        return condition(obj, "Ready").get("reason") == "InstallFailed"

    obj = await wait_for_object(kube, path, install_failed, "install timed out", controller, 60)
    assert "Widget" in condition(obj, "Ready")["message"]
    # The same object judged by an expression it meets: the release goes through.
    await kube.patch(
        path, {"spec": {"healthCheckExprs": [{**expr, "current": "status.phase == 'Spinning'"}]}}
    )
    await wait_for_object(kube, path, ready("UpgradeSucceeded"), "healthy", controller, 60)


async def test_a_release_the_helm_cli_installed_is_adopted(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    cluster: Any,
    helm_bin: Path,
    charts: ChartRepository,
    server: ChartServer,
) -> None:
    archive = charts.root / "app-1.0.0.tgz"
    install = await asyncio.to_thread(
        subprocess.run,
        [str(helm_bin), "--kubeconfig", str(cluster.kubeconfig), "install", "app", str(archive),
         "-n", namespace, "--set", "greeting=from-cli"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    await helm_repository(kube, namespace, server.url)
    spec = {"chart": chart_template(), "values": {"greeting": "x"}}
    await create_hr(kube, namespace, "app", spec)
    path = hr_path(namespace, "app")
    obj = await wait_for_object(kube, path, ready("UpgradeSucceeded"), "adopted", controller, 90)
    # Not in the history the controller made: taken over with an upgrade on top of the CLI's.
    assert [(h["version"], h["status"]) for h in obj["status"]["history"]] == [(2, "deployed")]
    assert (await kube.get(cm_path(namespace, "app")))["data"]["greeting"] == "x"
    history = helm(helm_bin, str(cluster.kubeconfig), "history", "app", "-n", namespace)
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "deployed")]
