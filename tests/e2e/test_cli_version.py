"""`tidal version` as a user runs it against a live cluster."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from testenv import versions
from tests.plugin import Cluster

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
