"""testenv as a user drives it: a second plane beside the session's, then down."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from testenv import plane, versions
from tests.plugin import Cluster
from tidal.kube.client import Kube

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def run_testenv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "testenv", *args], capture_output=True, text=True, timeout=120
    )


async def test_second_plane_runs_beside_the_first_and_down_stops_only_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    d = tmp_path / "second"
    up = run_testenv("up", "--dir", str(d))
    assert up.returncode == 0, up.stderr
    assert f"export KUBECONFIG={d / 'kubeconfig'}" in up.stdout
    try:
        state = plane.State.load(d)
        assert state.server != cluster.server
        assert {p.name for p in state.processes} == {
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
        }
        async with Kube.from_kubeconfig(d / "kubeconfig") as second:
            assert await second.server_version() == versions.KUBERNETES
            nodes = await second.get("/api/v1/nodes")
            assert sorted(n["metadata"]["name"] for n in nodes["items"]) == [
                "kwok-node-0",
                "kwok-node-1",
            ]
            # Separate etcds: a namespace made in one plane does not exist in the other.
            await second.request(
                "POST", "/api/v1/namespaces", body={"metadata": {"name": "only-in-second"}}
            )
        async with Kube.from_kubeconfig(cluster.kubeconfig) as first:
            names = [
                n["metadata"]["name"] for n in (await first.get("/api/v1/namespaces"))["items"]
            ]
            assert "only-in-second" not in names

        status = run_testenv("status", "--dir", str(d))
        assert "kube-apiserver" in status.stdout and "ok" in status.stdout
        assert run_testenv("kubeconfig", "--dir", str(d)).stdout.strip() == str(d / "kubeconfig")
    finally:
        down = run_testenv("down", "--dir", str(d))
    assert down.returncode == 0, down.stderr
    assert not d.exists()
    assert not any(plane._alive(p) for p in state.processes)
    # The session's plane is untouched.
    async with Kube.from_kubeconfig(cluster.kubeconfig) as first:
        assert await first.server_version() == versions.KUBERNETES
