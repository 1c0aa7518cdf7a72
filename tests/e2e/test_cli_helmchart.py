"""`tidal` HelmChart verbs (`source chart`) against a real API server, compared with the real
flux CLI byte for byte where flux's output is deterministic.

Another `tidal controller` may share the plane and reconcile every namespace, so the objects
whose status a test writes are suspended (a controller leaves those alone): the tables stay
what the test wrote.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testenv.chart_server import ChartRepository, ChartServer
from tests.cli_process import Out, assert_same, flux, needs_flux, tidal
from tests.controller_process import RunningController, run_controller
from tests.plugin import Cluster
from tidal.cli.objects import HELM_CHART, HELM_REPOSITORY
from tidal.kube.client import Kube

pytestmark = pytest.mark.e2e

NOWHERE = Path("/nonexistent/kubeconfig")  # for the verbs that need no cluster


async def same_as_flux(flux_bin: Path, kubeconfig: Path, *args: str) -> Out:
    ours = await tidal(kubeconfig, *args)
    assert_same(ours, await flux(flux_bin, kubeconfig, *args))
    return ours


def helm_chart(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": HELM_CHART.api_version,
        "kind": HELM_CHART.kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "chart": "podinfo",
            "interval": "5m",
            "sourceRef": {"kind": "HelmRepository", "name": "charts"},
            **spec,
        },
    }


async def create(
    kube: Kube, obj: dict[str, Any], status: dict[str, Any] | None = None, **metadata: Any
) -> None:
    obj["metadata"].update(metadata)
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    live = await kube.request("POST", HELM_CHART.collection(ns), body=obj)
    if status is not None:
        live["status"] = status
        await kube.request("PUT", HELM_CHART.path(ns, name) + "/status", body=live)


def status(ready: str, reason: str, message: str, revision: str = "") -> dict[str, Any]:
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
    if revision:
        out["artifact"] = {
            "path": f"helmchart/x/y/podinfo-{revision}.tgz",
            "url": f"http://source-controller/helmchart/x/y/podinfo-{revision}.tgz",
            "revision": revision,
            "digest": "sha256:" + "ab12" * 16,
            "lastUpdateTime": "2026-01-01T00:00:00Z",
        }
    return out


EXPORT_CASES = [
    ["--source=HelmRepository/podinfo", "--chart=podinfo", "--chart-version=6.x"],
    ["--source=gitrepository/repo", "--chart=./charts/podinfo", "--reconcile-strategy=Revision"],
    ["--source=Bucket/b", "--chart=charts/x", "--interval=10m", "--label=team=a,tier=web"],
    ["--source=HelmRepository/p", "--chart=p", "--verify-provider=cosign", "--verify-secret-ref=k"],
    ["--source=HelmRepository/p", "--chart=p", "-n", "apps"],
    # errors
    ["--chart=x"],
    ["--source=Foo/x", "--chart=x"],
    ["--source=x", "--chart=x"],
    ["--source=HelmRepository/x"],
    ["--source=HelmRepository/x", "--chart=x", "--verify-secret-ref=s"],
]


@needs_flux
@pytest.mark.parametrize("flags", EXPORT_CASES)
async def test_create_source_chart_export_is_flux_s(flux_bin: Path, flags: list[str]) -> None:
    await same_as_flux(
        flux_bin, NOWHERE, "create", "source", "chart", "podinfo", *flags, "--export"
    )


async def _table_objects(kube: Kube, namespace: str) -> None:
    labels = {"tidal-test": namespace}
    await create(
        kube,
        helm_chart(namespace, "ready", suspend=True, version="6.x"),
        status(
            "True", "ChartPullSucceeded", "pulled 'podinfo' chart with version '6.5.0'", "6.5.0"
        ),
        labels=labels,
    )
    await create(
        kube,
        helm_chart(namespace, "failing", suspend=True, chart="nope"),
        status(
            "False",
            "InvalidChartReference",
            "invalid chart reference: failed to get chart version for remote reference: "
            "no chart name found",
        ),
        labels=labels,
    )
    await create(kube, helm_chart(namespace, "never-reconciled", suspend=True))


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_get_and_export_source_chart_are_flux_s(
    kube: Kube, namespace: str, cluster: Cluster, flux_bin: Path
) -> None:
    await _table_objects(kube, namespace)
    for args in (
        ["get", "sources", "chart", "-n", namespace],
        ["get", "sources", "chart", "-n", namespace, "--no-header"],
        ["get", "sources", "chart", "-n", namespace, "--status-selector", "ready=false"],
        ["get", "sources", "chart", "-n", namespace, "ready"],
        ["get", "sources", "chart", "-n", namespace, "missing"],
        ["get", "sources", "chart", "-A", "-l", f"tidal-test={namespace}"],
        ["get", "sources", "all", "-n", namespace],
        ["get", "all", "-n", namespace],
        ["export", "source", "chart", "-n", namespace, "ready"],
        ["export", "source", "chart", "-n", namespace, "--all"],
        ["export", "source", "chart", "-n", namespace, "missing"],
    ):
        await same_as_flux(flux_bin, cluster.kubeconfig, *args)


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_suspend_resume_delete_as_flux_does(
    kube: Kube, namespace: str, cluster: Cluster, flux_bin: Path
) -> None:
    await _table_objects(kube, namespace)
    ns = ["-n", namespace]
    await same_as_flux(flux_bin, cluster.kubeconfig, "suspend", "source", "chart", "ready", *ns)
    await same_as_flux(flux_bin, cluster.kubeconfig, "reconcile", "source", "chart", "ready", *ns)
    live = await kube.get(HELM_CHART.path(namespace, "ready"))
    assert live["spec"]["suspend"] is True
    ours = await tidal(cluster.kubeconfig, "delete", "source", "chart", "failing", "-s", *ns)
    assert ours.stderr == (
        f"► deleting source chart failing in {namespace} namespace\n✔ source chart deleted\n"
    )
    theirs = await flux(
        flux_bin, cluster.kubeconfig, "delete", "source", "chart", "failing", "-s", *ns
    )
    assert theirs.code == 1 and ours.code == 0


# -- with a controller ----------------------------------------------------------------------------


@pytest.fixture
def chart_server(tmp_path: Path) -> Iterator[ChartServer]:
    repo = ChartRepository(tmp_path / "charts")
    repo.root.mkdir()
    repo.add("podinfo", "6.5.0", created="2024-01-02T03:04:05Z")
    with ChartServer(repo.root) as server:
        yield server


@pytest.fixture
def controller(cluster: Cluster, tmp_path: Path) -> Iterator[RunningController]:
    work = tmp_path / "controller"
    work.mkdir()
    with run_controller(cluster.kubeconfig, work) as running:
        yield running


@pytest.mark.usefixtures("crds")
async def test_create_reconcile_suspend_resume_with_a_running_controller(
    kube: Kube,
    namespace: str,
    cluster: Cluster,
    chart_server: ChartServer,
    controller: RunningController,
) -> None:
    args = ["-n", namespace, "--timeout=60s"]
    repo = {
        "apiVersion": HELM_REPOSITORY.api_version,
        "kind": HELM_REPOSITORY.kind,
        "metadata": {"name": "charts", "namespace": namespace},
        "spec": {"url": chart_server.url, "interval": "10m"},
    }
    await kube.request("POST", HELM_REPOSITORY.collection(namespace), body=repo)
    out = await tidal(
        cluster.kubeconfig,
        "create", "source", "chart", "podinfo", "--source", "HelmRepository/charts",
        "--chart", "podinfo", "--chart-version", "6.x", *args,
    )  # fmt: skip
    assert out.code == 0, out.stderr
    assert out.stderr.splitlines() == [
        "✚ generating HelmChart source",
        "► applying HelmChart source",
        "✔ source created",
        "◎ waiting for HelmChart source reconciliation",
        "✔ HelmChart source reconciliation completed",
        "✔ fetched revision: 6.5.0",
    ]

    out = await tidal(
        cluster.kubeconfig, "reconcile", "source", "chart", "podinfo", "--with-source", *args
    )
    assert out.code == 0, out.stderr
    lines = out.stderr.splitlines()
    assert lines[0] == "► annotating HelmRepository charts in " + namespace + " namespace"
    assert lines[-1] == "✔ fetched revision 6.5.0"

    out = await tidal(cluster.kubeconfig, "suspend", "source", "chart", "podinfo", *args)
    assert out.code == 0, out.stderr
    out = await tidal(cluster.kubeconfig, "resume", "source", "chart", "podinfo", *args)
    assert out.code == 0, out.stderr
    assert out.stderr.splitlines()[-1] == "✔ fetched revision 6.5.0"

    out = await tidal(cluster.kubeconfig, "get", "sources", "chart", "podinfo", "-n", namespace)
    assert "pulled 'podinfo' chart with version '6.5.0'" in out.stdout
