"""`tidal` OCIRepository verbs (`source oci`) against a real API server and a real registry,
compared with the real flux CLI byte for byte where flux's output is deterministic.

Another `tidal controller` may share the plane and reconcile every namespace, so the objects
whose status a test writes are suspended (a controller leaves those alone): the tables stay
what the test wrote.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testenv.registry import Registry
from tests.cli_process import Out, assert_same, flux, needs_flux, tidal
from tests.controller_process import RunningController, run_controller
from tests.kustomization_helpers import secret as create_secret
from tests.plugin import Cluster
from tidal.cli.objects import OCI_REPOSITORY
from tidal.kube.client import Kube

pytestmark = pytest.mark.e2e

NOWHERE = Path("/nonexistent/kubeconfig")  # for the verbs that need no cluster
DIGEST = "sha256:" + "ab12" * 16


async def same_as_flux(flux_bin: Path, kubeconfig: Path, *args: str) -> Out:
    ours = await tidal(kubeconfig, *args)
    assert_same(ours, await flux(flux_bin, kubeconfig, *args))
    return ours


def oci_repository(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": OCI_REPOSITORY.api_version,
        "kind": OCI_REPOSITORY.kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"url": "oci://ghcr.io/org/manifests", "interval": "5m", **spec},
    }


async def create(
    kube: Kube, obj: dict[str, Any], status: dict[str, Any] | None = None, **metadata: Any
) -> None:
    obj["metadata"].update(metadata)
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    live = await kube.request("POST", OCI_REPOSITORY.collection(ns), body=obj)
    if status is not None:
        live["status"] = status
        await kube.request("PUT", OCI_REPOSITORY.path(ns, name) + "/status", body=live)


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
            "path": f"ocirepository/x/y/{DIGEST}.tar.gz",
            "url": f"http://source-controller/ocirepository/x/y/{DIGEST}.tar.gz",
            "revision": f"6.5.0@{DIGEST}",
            "digest": DIGEST,
            "lastUpdateTime": "2026-01-01T00:00:00Z",
        }
    return out


# -- create ... --export (no cluster needed) ------------------------------------------------------

EXPORT_CASES = [
    ["--url=oci://ghcr.io/stefanprodan/manifests/podinfo", "--tag=6.6.2"],
    ["--url=oci://ghcr.io/org/app", "--tag-semver=1.x", "--interval=10m", "--label=team=a"],
    ["--url=oci://ghcr.io/org/app", "--digest=" + DIGEST, "-n", "apps"],
    [
        "--url=oci://registry.example.com:5000/org/app",
        "--tag=v1",
        "--insecure",
        "--ignore-paths=docs/,*.md",
        "--ignore-paths=tests/",
        "--layer-selector=application/vnd.cncf.helm.chart.content.v1.tar+gzip:copy",
        "--secret-ref=pull",
        "--cert-ref=ca",
        "--proxy-secret-ref=proxy",
        "--service-account=puller",
        "--fetch-timeout=2m",
    ],
    [
        "--url=oci://ghcr.io/org/app",
        "--tag=1.0.0",
        "--provider=aws",
        "--verify-provider=cosign",
        "--verify-secret-ref=cosign-pub",
        "--verify-issuer=^https://token.actions.githubusercontent.com$",
        "--verify-subject=^https://github.com/org/app.*$",
    ],
    # errors
    [],
    ["--url=oci://ghcr.io/org/app"],
    ["--url=oci://ghcr.io/org/app", "--tag=1", "--layer-selector=nocolon"],
    ["--url=oci://ghcr.io/org/app", "--tag=1", "--layer-selector=a:move"],
    ["--url=oci://ghcr.io/org/app", "--tag=1", "--provider=ibm"],
    ["--url=oci://ghcr.io/org/app", "--tag=1", "--verify-provider=notation"],
    ["--url=oci://ghcr.io/org/app", "--tag=1", "--verify-secret-ref=k"],
    ["--url=oci://ghcr.io/org/app", "--tag=1", "--verify-subject=s"],
    ["--url=oci://x/y", "--tag=1", "--label=bad label"],
]


@needs_flux
@pytest.mark.parametrize("flags", EXPORT_CASES)
async def test_create_source_oci_export_is_flux_s(flux_bin: Path, flags: list[str]) -> None:
    await same_as_flux(flux_bin, NOWHERE, "create", "source", "oci", "podinfo", *flags, "--export")


# -- get, export, suspend/resume/delete (objects as a controller left them) ---------------------


async def _table_objects(kube: Kube, namespace: str) -> None:
    labels = {"tidal-test": namespace}
    await create(
        kube,
        oci_repository(namespace, "ready", suspend=True, ref={"semver": "6.x"}),
        status("True", "Succeeded", f"stored artifact for digest '6.5.0@{DIGEST}'"),
        labels=labels,
    )
    await create(
        kube,
        oci_repository(
            namespace,
            "failing",
            suspend=True,
            ref={"tag": "nope"},
            secretRef={"name": "pull"},
            layerSelector={"mediaType": "application/x", "operation": "copy"},
        ),
        status(
            "False",
            "OCIArtifactPullFailed",
            "failed to determine artifact digest: GET https://ghcr.io/v2/org/manifests/"
            "manifests/nope: MANIFEST_UNKNOWN: manifest unknown",
            artifact=False,
        ),
        labels=labels,
    )
    await create(kube, oci_repository(namespace, "never-reconciled", suspend=True))


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_get_and_export_sources_oci_are_flux_s(
    kube: Kube, namespace: str, cluster: Cluster, flux_bin: Path
) -> None:
    await _table_objects(kube, namespace)
    await create_secret(kube, namespace, "pull", {".dockerconfigjson": '{"auths":{}}'})
    for args in (
        ["get", "sources", "oci", "-n", namespace],
        ["get", "sources", "oci", "-n", namespace, "--no-header"],
        ["get", "sources", "oci", "-n", namespace, "--status-selector", "ready=false"],
        ["get", "sources", "oci", "-n", namespace, "ready"],
        ["get", "sources", "oci", "-n", namespace, "missing"],
        ["get", "sources", "oci", "-A", "-l", f"tidal-test={namespace}"],
        ["get", "sources", "oci", "-n", f"{namespace}-none"],
        ["get", "sources", "all", "-n", namespace],
        ["get", "all", "-n", namespace],
        ["export", "source", "oci", "-n", namespace, "ready"],
        ["export", "source", "oci", "-n", namespace, "failing", "--with-credentials"],
        ["export", "source", "oci", "-n", namespace, "--all"],
        ["export", "source", "oci", "-n", namespace, "missing"],
    ):
        await same_as_flux(flux_bin, cluster.kubeconfig, *args)


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_suspend_and_delete_as_flux_does(
    kube: Kube, namespace: str, cluster: Cluster, flux_bin: Path
) -> None:
    await _table_objects(kube, namespace)
    ns = ["-n", namespace]
    await same_as_flux(flux_bin, cluster.kubeconfig, "suspend", "source", "oci", "ready", *ns)
    live = await kube.get(OCI_REPOSITORY.path(namespace, "ready"))
    assert live["spec"]["suspend"] is True
    ours = await tidal(cluster.kubeconfig, "delete", "source", "oci", "failing", "-s", *ns)
    assert ours.code == 0, ours.stderr
    assert ours.stderr == (
        f"► deleting source oci failing in {namespace} namespace\n✔ source oci deleted\n"
    )
    theirs = await flux(
        flux_bin, cluster.kubeconfig, "delete", "source", "oci", "failing", "-s", *ns
    )
    assert theirs.code == 1 and "not found" in theirs.stderr


# -- with a controller and a registry ------------------------------------------------------------


@pytest.fixture
def controller(cluster: Cluster, tmp_path: Path) -> Iterator[RunningController]:
    work = tmp_path / "controller"
    work.mkdir()
    with run_controller(cluster.kubeconfig, work) as running:
        yield running


@pytest.fixture
def registry(oci_registry_bin: Path) -> Iterator[Registry]:
    with Registry(binary=oci_registry_bin) as running:
        yield running


@pytest.mark.usefixtures("crds")
async def test_create_reconcile_suspend_resume_with_a_running_controller(
    kube: Kube,
    namespace: str,
    cluster: Cluster,
    controller: RunningController,
    registry: Registry,
    flux_bin: Path,
    tmp_path: Path,
) -> None:
    content = tmp_path / "content"
    content.mkdir()
    (content / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n")
    pushed = await asyncio.to_thread(
        subprocess.run,
        [
            str(flux_bin), "push", "artifact", f"{registry.url(namespace)}/app:1.0.0",
            "--path", str(content), "--source", "https://example.com/app",
            "--revision", "main@sha1:" + "c" * 40,
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    found = re.search(r"@(sha256:[0-9a-f]{64})", pushed.stdout + pushed.stderr)
    assert found
    revision = f"1.0.0@{found.group(1)}"
    url = registry.url(f"{namespace}/app")
    args = ["-n", namespace, "--timeout=60s"]

    out = await tidal(
        cluster.kubeconfig, "create", "source", "oci", "app", "--url", url, "--tag-semver",
        "1.x", *args,
    )  # fmt: skip
    assert out.code == 0, out.stderr
    assert out.stderr.splitlines() == [
        "► applying OCIRepository",
        "✔ OCIRepository created",
        "◎ waiting for OCIRepository reconciliation",
        "✔ OCIRepository reconciliation completed",
        f"✔ fetched revision: {revision}",
    ]

    out = await tidal(cluster.kubeconfig, "reconcile", "source", "oci", "app", *args)
    assert out.code == 0, out.stderr
    assert out.stderr.splitlines()[-1] == f"✔ fetched revision {revision}"

    out = await tidal(cluster.kubeconfig, "get", "sources", "oci", "-n", namespace)
    assert out.stdout.splitlines()[1].split()[:4] == [
        "app",
        revision[: len("1.0.0@sha256:") + 8],
        "False",
        "True",
    ]

    out = await tidal(cluster.kubeconfig, "suspend", "source", "oci", "app", *args)
    assert out.code == 0, out.stderr
    out = await tidal(cluster.kubeconfig, "resume", "source", "oci", "app", *args)
    assert out.code == 0, out.stderr
    assert out.stderr.splitlines()[-1] == f"✔ fetched revision {revision}"

    out = await tidal(cluster.kubeconfig, "delete", "source", "oci", "app", "-s", *args)
    assert out.code == 0, out.stderr
