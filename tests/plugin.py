"""pytest plugin: a real control plane for the session, a fresh namespace per test, Git servers.

The plane starts only when a selected test is marked e2e, so `pytest -m "not e2e"` needs no Go
build. Set TIDAL_TEST_KUBECONFIG to run against a plane that is already up (for example one
from `python -m testenv up`) and skip the start-up.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testenv import build, flux_cli, plane
from tidal.api import crd
from tidal.install import apply
from tidal.kube.client import ApiError, Kube

pytest_plugins = ["tests.fixtures_git"]


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    server: str


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    reuse = os.environ.get("TIDAL_TEST_KUBECONFIG")
    if reuse:
        yield Cluster(Path(reuse), Kube.from_kubeconfig(reuse).server)
        return
    if not build.is_built():
        build.build()
    directory = Path(tempfile.mkdtemp(prefix="tidal-plane-"))
    try:
        state = plane.up(directory)
    except plane.PlaneError as e:
        logs = directory / "logs"
        tails = [
            f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            for log in sorted(logs.glob("*.log"))
        ]
        plane.down(directory)
        pytest.fail(f"test control plane did not start: {e}\n" + "\n".join(tails))
    try:
        yield Cluster(state.kubeconfig, state.server)
    finally:
        plane.down(directory)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def kube(cluster: Cluster) -> AsyncIterator[Kube]:
    async with Kube.from_kubeconfig(cluster.kubeconfig) as client:
        yield client


def _namespace_name(node_name: str) -> str:
    stem = re.sub(r"[^a-z0-9-]+", "-", node_name.lower()).strip("-")[:40].strip("-")
    return f"{stem}-{secrets.token_hex(3)}"


@pytest.fixture
async def namespace(kube: Kube, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A namespace of its own for each test; deleted afterwards without waiting."""
    name = _namespace_name(request.node.name)
    await kube.request(
        "POST",
        "/api/v1/namespaces",
        body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    yield name
    try:
        await kube.request("DELETE", f"/api/v1/namespaces/{name}")
    except ApiError as e:
        if e.status != 404:
            raise


@pytest.fixture
async def crds(kube: Kube) -> None:
    """tidal's CRDs, applied as `tidal install` applies them and Established."""
    await apply.apply_all(kube, [crd.crd(k) for k in crd.KINDS], within=30)


@contextlib.contextmanager
def private_plane(prefix: str, what: str) -> Iterator[plane.State]:
    """A plane of a test module's own (a second cluster, or one it may break), stopped after."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        state = plane.up(directory)
    except plane.PlaneError as e:
        plane.down(directory)
        pytest.fail(f"{what} did not start: {e}")
    try:
        yield state
    finally:
        plane.down(directory)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def flux_bin() -> Path:
    """The flux CLI the tests compare with, built from its pinned Go module when missing."""
    return flux_cli.build_flux()


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    """The helm CLI the Helm engine tests compare with, built from its pinned Go module."""
    from testenv import helm_cli

    return helm_cli.build_helm()


@pytest.fixture(scope="session")
def oci_registry_bin() -> Path:
    """The CNCF distribution registry (testenv.registry), built from its pinned Go module when
    missing; tests start `testenv.registry.Registry(binary=...)` instances from it."""
    from testenv import registry

    return registry.build_registry()
