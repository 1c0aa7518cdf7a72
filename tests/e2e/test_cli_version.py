"""`tidal version` as a user runs it against a live cluster."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from testenv import versions
from tests.plugin import Cluster
from tidal.install import manifests
from tidal.kube.client import Kube

pytestmark = pytest.mark.e2e


def tidal(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidal", *args], capture_output=True, text=True, timeout=60
    )


def test_version_reports_the_server(cluster: Cluster) -> None:
    out = tidal("--kubeconfig", str(cluster.kubeconfig), "version", "-o", "json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["kubernetes"] == versions.KUBERNETES
    assert info["python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")


async def test_version_lists_the_installed_controller(
    cluster: Cluster, kube: Kube, namespace: str
) -> None:
    before = tidal("--kubeconfig", str(cluster.kubeconfig), "version", "-n", namespace)
    assert before.returncode == 0, before.stderr
    assert "tidal-controller" not in before.stdout
    # What `tidal install -n NS --registry R` puts there, at another version than the client's.
    deployment = manifests.deployment(
        manifests.InstallOptions(namespace=namespace, registry="r.example/x", version="9.8.7")
    )
    await kube.request("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", body=deployment)
    out = tidal("--kubeconfig", str(cluster.kubeconfig), "version", "-n", namespace)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[3:] == ["tidal-controller: v9.8.7"]
    as_json = tidal(
        "version", "-o", "json", "-n", namespace, "--kubeconfig", str(cluster.kubeconfig)
    )
    assert json.loads(as_json.stdout)["tidal-controller"] == "v9.8.7"
