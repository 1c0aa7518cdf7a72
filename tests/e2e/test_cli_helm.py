"""`tidal` HelmRepository verbs (`source helm`) against a real API server, compared with the
real flux CLI byte for byte where flux's output is deterministic.

Another `tidal controller` may share the plane and reconcile every namespace, so the objects
whose status a test writes are suspended (a controller leaves those alone) or of type oci
(static): the tables stay what the test wrote.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testenv.chart_server import ChartRepository, ChartServer
from tests.cli_process import Out, assert_same, flux, needs_flux, tidal
from tests.controller_process import RunningController, run_controller
from tests.kustomization_helpers import secret as create_secret
from tests.plugin import Cluster
from tidal.cli.objects import HELM_REPOSITORY
from tidal.kube.client import Kube

pytestmark = pytest.mark.e2e

NOWHERE = Path("/nonexistent/kubeconfig")  # for the verbs that need no cluster
DIGEST = "sha256:" + "ab12" * 16


async def same_as_flux(flux_bin: Path, kubeconfig: Path, *args: str) -> Out:
    ours = await tidal(kubeconfig, *args)
    assert_same(ours, await flux(flux_bin, kubeconfig, *args))
    return ours


def helm_repository(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": HELM_REPOSITORY.api_version,
        "kind": HELM_REPOSITORY.kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"url": "https://charts.example.com", "interval": "5m", **spec},
    }


async def create(
    kube: Kube, obj: dict[str, Any], status: dict[str, Any] | None = None, **metadata: Any
) -> None:
    obj["metadata"].update(metadata)
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    live = await kube.request("POST", HELM_REPOSITORY.collection(ns), body=obj)
    if status is not None:
        live["status"] = status
        await kube.request("PUT", HELM_REPOSITORY.path(ns, name) + "/status", body=live)


def status(ready: str, reason: str, message: str, artifact: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": ready,
                "reason": reason,
                "message": message,
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "observedGeneration": 1,
            }
        ],
    }
    if artifact:
        out["artifact"] = {
            "path": "helmrepository/x/y/index.yaml",
            "url": "http://source-controller/helmrepository/x/y/index.yaml",
            "revision": DIGEST,
            "digest": DIGEST,
            "lastUpdateTime": "2026-01-01T00:00:00Z",
        }
    return out


# -- create ... --export (no cluster needed) ------------------------------------------------------

EXPORT_CASES = [
    ["--url=https://stefanprodan.github.io/podinfo"],
    ["--url=https://charts.example.com/sub/", "--interval=10m", "--label=team=a,tier=web"],
    ["--url=https://charts.example.com", "--secret-ref=creds", "--pass-credentials"],
    ["--url=https://charts.example.com", "--pass-credentials", "-u", "u", "-p", "p"],
    ["--url=https://charts.example.com", "--fetch-timeout=90s", "-n", "apps"],
    ["--url=oci://ghcr.io/stefanprodan/charts", "--oci-provider=aws"],
    ["--url=oci://ghcr.io/org/charts", "--secret-ref=docker", "--interval=1h"],
    # errors
    [],
    ["--url=ftp://charts.example.com"],
    ["--url=https://"],
    ["--url=https://x", "--label=bad label"],
]


@needs_flux
@pytest.mark.parametrize("flags", EXPORT_CASES)
async def test_create_source_helm_export_is_flux_s(flux_bin: Path, flags: list[str]) -> None:
    await same_as_flux(flux_bin, NOWHERE, "create", "source", "helm", "podinfo", *flags, "--export")


# -- get, export (objects as a controller left them) ----------------------------------------------


async def _table_objects(kube: Kube, namespace: str) -> None:
    labels = {"tidal-test": namespace}
    await create(
        kube,
        helm_repository(namespace, "ready", suspend=True),
        status("True", "Succeeded", f"stored artifact: revision '{DIGEST}'"),
        labels=labels,
    )
    await create(
        kube,
        helm_repository(namespace, "failing", suspend=True, secretRef={"name": "creds"}),
        status(
            "False",
            "Failed",
            "failed to fetch Helm repository index: failed to cache index to temporary file: "
            "failed to fetch https://charts.example.com/index.yaml : 401 Unauthorized",
        ),
        labels=labels,
    )
    await create(
        kube,
        helm_repository(
            namespace,
            "oci",
            url="oci://ghcr.io/stefanprodan/charts",
            type="oci",
            provider="aws",
            timeout="90s",
        ),
        labels=labels,
    )
    await create(kube, helm_repository(namespace, "never-reconciled", suspend=True))


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_get_sources_helm_table_is_flux_s(
    kube: Kube, namespace: str, cluster: Cluster, flux_bin: Path
) -> None:
    await _table_objects(kube, namespace)
    for args in (
        ["get", "sources", "helm", "-n", namespace],
        ["get", "sources", "helm", "-n", namespace, "--no-header"],
        ["get", "sources", "helm", "-n", namespace, "--status-selector", "ready=false"],
        ["get", "sources", "helm", "-n", namespace, "oci"],
        ["get", "sources", "helm", "-n", namespace, "missing"],
        ["get", "sources", "helm", "-A", "-l", f"tidal-test={namespace}"],
        ["get", "sources", "helm", "-n", f"{namespace}-none"],
        ["get", "sources", "all", "-n", namespace],
        ["get", "all", "-n", namespace],
    ):
        await same_as_flux(flux_bin, cluster.kubeconfig, *args)
    ours = await tidal(cluster.kubeconfig, "get", "sources", "helm", "-n", namespace)
    assert "Helm repository is Ready" in ours.stdout
    assert f"{DIGEST[:15]}\t" in ours.stdout  # sha256: and 8 hex digits


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_export_source_helm_is_flux_s(
    kube: Kube, namespace: str, cluster: Cluster, flux_bin: Path
) -> None:
    await _table_objects(kube, namespace)
    await create_secret(kube, namespace, "creds", {"username": "helm", "password": "s3cr3t"})
    for flags in (
        ["ready"],
        ["oci"],
        ["failing", "--with-credentials"],
        ["--all"],
        ["missing"],
    ):
        await same_as_flux(
            flux_bin, cluster.kubeconfig, "export", "source", "helm", "-n", namespace, *flags
        )


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_suspend_resume_reconcile_delete_as_flux_does(
    kube: Kube, namespace: str, cluster: Cluster, flux_bin: Path
) -> None:
    await _table_objects(kube, namespace)
    ns = ["-n", namespace]
    # The same verbs, each run by tidal then by flux on the same object.
    await same_as_flux(flux_bin, cluster.kubeconfig, "suspend", "source", "helm", "ready", *ns)
    await same_as_flux(flux_bin, cluster.kubeconfig, "reconcile", "source", "helm", "ready", *ns)
    await same_as_flux(flux_bin, cluster.kubeconfig, "reconcile", "source", "helm", "oci", *ns)
    # Without a controller an oci repository keeps the CRD's observedGeneration -1, which kstatus
    # reads as not current: flux's static wait (and tidal's) times out on it.
    out = await tidal(cluster.kubeconfig, "resume", "source", "helm", "oci", *ns, "--timeout=2s")
    assert out.code == 1
    assert "latest observed generation is -1" in out.stderr
    live = await kube.get(HELM_REPOSITORY.path(namespace, "ready"))
    assert live["spec"]["suspend"] is True

    ours = await tidal(cluster.kubeconfig, "delete", "source", "helm", "oci", "-s", *ns)
    assert ours.stderr == (
        f"► deleting source helm oci in {namespace} namespace\n✔ source helm deleted\n"
    )
    theirs = await flux(flux_bin, cluster.kubeconfig, "delete", "source", "helm", "oci", "-s", *ns)
    assert theirs.code == 1 and ours.code == 0


# -- with a controller ----------------------------------------------------------------------------


@pytest.fixture
def chart_server(tmp_path: Path) -> Iterator[ChartServer]:
    repo = ChartRepository(tmp_path / "charts")
    repo.root.mkdir()
    repo.add("podinfo", "6.5.0", created="2024-01-02T03:04:05Z")
    with ChartServer(repo.root, username="helm", password="s3cr3t") as server:
        yield server


@pytest.fixture
def controller(cluster: Cluster, tmp_path: Path) -> Iterator[RunningController]:
    work = tmp_path / "controller"
    work.mkdir()
    with run_controller(cluster.kubeconfig, work) as running:
        yield running


@pytest.mark.usefixtures("crds")
async def test_create_then_reconcile_with_a_running_controller(
    kube: Kube,
    namespace: str,
    cluster: Cluster,
    chart_server: ChartServer,
    controller: RunningController,
) -> None:
    index = (chart_server.root / "index.yaml").read_bytes()
    revision = "sha256:" + hashlib.sha256(index).hexdigest()
    args = ["-n", namespace, "--timeout=60s"]
    out = await tidal(
        cluster.kubeconfig,
        "create", "source", "helm", "charts", "--url", chart_server.url,
        "-u", "helm", "-p", "s3cr3t", *args,
    )  # fmt: skip
    assert out.code == 0, out.stderr
    assert out.stderr.splitlines() == [
        "✚ generating HelmRepository source",
        "► applying secret with repository credentials",
        "✔ authentication configured",
        "► applying HelmRepository source",
        "✔ source created",
        "◎ waiting for HelmRepository source reconciliation",
        "✔ HelmRepository source reconciliation completed",
        f"✔ fetched revision: {revision}",
    ]
    secret = await kube.get(f"/api/v1/namespaces/{namespace}/secrets/helm-charts")
    assert secret["type"] == "kubernetes.io/basic-auth"

    out = await tidal(cluster.kubeconfig, "reconcile", "source", "helm", "charts", *args)
    assert out.code == 0, out.stderr
    assert out.stderr.splitlines()[-1] == f"✔ fetched revision {revision}"

    out = await tidal(cluster.kubeconfig, "get", "sources", "helm", "charts", "-n", namespace)
    assert f"stored artifact: revision '{revision[:15]}'" in out.stdout
