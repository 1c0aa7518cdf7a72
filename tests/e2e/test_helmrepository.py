"""`tidal controller` reconciling HelmRepositories from real chart repositories (HTTP, HTTPS with
client certificates, basic auth) into a real cluster.

Another `tidal controller` may share the test plane and reconcile these objects too, so
artifacts are always read through status.artifact.url, whichever controller wrote it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from testenv.chart_server import ChartRepository, ChartServer, TLSFiles, issue_tls
from tests.controller_process import (
    RunningController,
    condition,
    controller_fixture,
    wait_for_object,
)
from tests.kustomization_helpers import SOURCE_API, request_reconcile, secret, wait_gone
from tidal.kube.client import Kube
from tidal.source.helm.index import normalize

pytestmark = pytest.mark.e2e

# A small index limit, so that one test can exceed it without serving 50 MiB.
MAX_INDEX_SIZE = 64 * 1024
controller = controller_fixture("--concurrent", "4", "--helm-index-max-size", str(MAX_INDEX_SIZE))


def path_of(namespace: str, name: str) -> str:
    return f"{SOURCE_API}/namespaces/{namespace}/helmrepositories/{name}"


async def create_helm_repo(kube: Kube, namespace: str, name: str, url: str, **spec: Any) -> None:
    body = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "HelmRepository",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"url": url, "interval": "10m", **spec},
    }
    await kube.request("POST", f"{SOURCE_API}/namespaces/{namespace}/helmrepositories", body=body)


def ready_with(revision: str | None = None) -> Any:
    def check(obj: dict[str, Any]) -> bool:
        ready = condition(obj, "Ready")
        artifact = (obj.get("status") or {}).get("artifact") or {}
        if ready.get("status") != "True" or not artifact:
            return False
        return revision is None or artifact.get("revision") == revision

    return check


def failing(reason: str) -> Any:
    def check(obj: dict[str, Any]) -> bool:
        ready = condition(obj, "Ready")
        return ready.get("status") == "False" and ready.get("reason") == reason

    return check


async def download(url: str) -> bytes:
    async with httpx.AsyncClient() as client:
        resp = await client.get(url)
    resp.raise_for_status()
    return resp.content


def same_artifact(obj: dict[str, Any], artifact: dict[str, Any]) -> bool:
    """The same file as `artifact`: another controller sharing the plane may have stored it
    again under its own address and time, but never with other bytes."""
    now = (obj.get("status") or {}).get("artifact") or {}
    return (now.get("revision"), now.get("digest"), now.get("path")) == (
        artifact["revision"],
        artifact["digest"],
        artifact["path"],
    )


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def chart_repo(tmp_path: Path) -> ChartRepository:
    repo = ChartRepository(tmp_path / "charts")
    repo.root.mkdir()
    repo.add("podinfo", "6.5.0", created="2024-01-02T03:04:05.123456789Z")
    repo.add("podinfo", "6.10.1", created="2024-02-02T03:04:05Z")
    repo.add("redis", "1.0.0-rc.1", created="2024-01-01T00:00:00+02:00")
    return repo


@pytest.fixture
def http_server(chart_repo: ChartRepository) -> Iterator[ChartServer]:
    with ChartServer(chart_repo.root) as server:
        yield server


async def test_index_over_http_is_stored_as_flux_stores_it(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    chart_repo: ChartRepository,
    http_server: ChartServer,
) -> None:
    raw = (chart_repo.root / "index.yaml").read_bytes()
    revision = sha256(raw)
    await create_helm_repo(kube, namespace, "charts", http_server.url)
    path = path_of(namespace, "charts")
    obj = await wait_for_object(kube, path, ready_with(revision), "Ready", controller)

    status = obj["status"]
    artifact = status["artifact"]
    hex_digest = revision.removeprefix("sha256:")
    assert artifact["path"] == f"helmrepository/{namespace}/charts/index-{hex_digest}.yaml"
    assert artifact["url"].endswith("/" + artifact["path"])
    ready = condition(obj, "Ready")
    assert ready["reason"] == "Succeeded"
    assert ready["message"] == f"stored artifact: revision '{revision}'"
    assert condition(obj, "ArtifactInStorage")["message"] == ready["message"]
    assert status["observedGeneration"] == 1
    assert status["url"] == artifact["url"].rsplit("/", 1)[0] + "/index.yaml"
    assert "finalizers.fluxcd.io" in obj["metadata"]["finalizers"]

    # The stored file is the normalised index as JSON: newest version first, Go's layout.
    data = await download(artifact["url"])
    assert data == normalize(raw).to_bytes()
    assert artifact["digest"] == sha256(data)
    assert artifact["size"] == len(data)
    assert await download(status["url"]) == data
    assert data.startswith(b'{\n  "apiVersion": "v1",')
    assert data.index(b'"6.10.1"') < data.index(b'"6.5.0"')

    # Unchanged upstream: the same artifact, not rewritten.
    await request_reconcile(kube, path, "unchanged")
    obj = await wait_for_object(
        kube,
        path,
        lambda o: (o.get("status") or {}).get("lastHandledReconcileAt") == "unchanged",
        "the unchanged reconcile",
        controller,
    )
    assert same_artifact(obj, artifact)

    # A new chart version: a new revision and artifact.
    chart_repo.add("podinfo", "6.11.0", created="2024-03-01T00:00:00Z")
    new_raw = (chart_repo.root / "index.yaml").read_bytes()
    await request_reconcile(kube, path, "changed")
    obj = await wait_for_object(kube, path, ready_with(sha256(new_raw)), "new revision", controller)
    new_data = await download(obj["status"]["artifact"]["url"])
    assert new_data == normalize(new_raw).to_bytes()
    assert b'"6.11.0"' in new_data

    # Deleting it removes its artifacts and then the object.
    await kube.request("DELETE", path)
    await wait_gone(kube, path)
    assert not (controller.storage / "helmrepository" / namespace / "charts").exists()


async def test_basic_auth_failure_keeps_the_last_artifact_and_recovers(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    chart_repo: ChartRepository,
) -> None:
    with ChartServer(chart_repo.root, username="helm", password="s3cret") as server:
        await secret(kube, namespace, "creds", {"username": "helm", "password": "s3cret"})
        await create_helm_repo(kube, namespace, "private", server.url, secretRef={"name": "creds"})
        path = path_of(namespace, "private")
        obj = await wait_for_object(kube, path, ready_with(), "Ready", controller)
        artifact = obj["status"]["artifact"]
        assert all(auth.startswith("Basic ") for _, auth in server.requests)

        # A wrong password: Flux's reason and message, the artifact kept.
        await kube.patch(
            f"/api/v1/namespaces/{namespace}/secrets/creds",
            {"stringData": {"password": "Wr0ngPw"}},
        )
        await request_reconcile(kube, path, "bad-creds")
        obj = await wait_for_object(kube, path, failing("Failed"), "FetchFailed", controller)
        ready = condition(obj, "Ready")
        assert ready["message"] == (
            "failed to fetch Helm repository index: failed to cache index to temporary file: "
            f"failed to fetch {server.url}/index.yaml : 401 Unauthorized"
        )
        assert condition(obj, "FetchFailed")["reason"] == "Failed"
        assert same_artifact(obj, artifact)
        assert "Wr0ngPw" not in str(obj["status"])

        # Fixed: Ready again by itself (the failure is retried with backoff).
        await kube.patch(
            f"/api/v1/namespaces/{namespace}/secrets/creds",
            {"stringData": {"password": "s3cret"}},
        )
        obj = await wait_for_object(kube, path, ready_with(), "recovery", controller, within=60)
        assert obj["status"]["artifact"]["digest"] == artifact["digest"]

    # A missing Secret is an authentication failure.
    await create_helm_repo(kube, namespace, "nosecret", server.url, secretRef={"name": "none"})
    obj = await wait_for_object(
        kube, path_of(namespace, "nosecret"), failing("AuthenticationFailed"), "failure", controller
    )
    assert condition(obj, "Ready")["message"].startswith(
        f"failed to get authentication secret '{namespace}/none': "
    )


@pytest.fixture(scope="module")
def tls_files() -> TLSFiles:
    return issue_tls()


async def test_https_with_client_certificate(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    chart_repo: ChartRepository,
    tls_files: TLSFiles,
) -> None:
    with ChartServer(chart_repo.root, tls=tls_files, require_client_cert=True) as server:
        await secret(
            kube,
            namespace,
            "tls",
            {
                "ca.crt": tls_files.ca.cert_pem,
                "tls.crt": tls_files.client.cert_pem,
                "tls.key": tls_files.client.key_pem,
            },
        )
        await create_helm_repo(kube, namespace, "secure", server.url, certSecretRef={"name": "tls"})
        obj = await wait_for_object(
            kube, path_of(namespace, "secure"), ready_with(), "Ready", controller
        )
        raw = (chart_repo.root / "index.yaml").read_bytes()
        assert obj["status"]["artifact"]["revision"] == sha256(raw)

        # Only the CA: the server refuses the handshake without a client certificate.
        await secret(kube, namespace, "ca-only", {"ca.crt": tls_files.ca.cert_pem})
        await create_helm_repo(
            kube, namespace, "nocert", server.url, certSecretRef={"name": "ca-only"}
        )
        obj = await wait_for_object(
            kube, path_of(namespace, "nocert"), failing("Failed"), "failure", controller
        )
        assert "failed to fetch Helm repository index" in condition(obj, "Ready")["message"]

        # No CA: the server's certificate is not trusted.
        await create_helm_repo(kube, namespace, "untrusted", server.url)
        obj = await wait_for_object(
            kube, path_of(namespace, "untrusted"), failing("Failed"), "failure", controller
        )
        assert "certificate" in condition(obj, "Ready")["message"]


async def test_bad_indexes_get_a_condition_and_keep_the_last_artifact(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    chart_repo: ChartRepository,
    http_server: ChartServer,
) -> None:
    await create_helm_repo(kube, namespace, "bad", http_server.url)
    path = path_of(namespace, "bad")
    obj = await wait_for_object(kube, path, ready_with(), "Ready", controller)
    artifact = obj["status"]["artifact"]

    chart_repo.write_index("apiVersion: v1\nentries: [not, a, map\n")
    await request_reconcile(kube, path, "malformed")
    obj = await wait_for_object(kube, path, failing("IndexationFailed"), "failure", controller)
    assert condition(obj, "Ready")["message"].startswith(
        f"failed to load Helm repository from index YAML at {http_server.url}: "
        "failed to load index: "
    )
    assert same_artifact(obj, artifact)

    chart_repo.write_index("entries: {}\n")
    await request_reconcile(kube, path, "no-api-version")
    obj = await wait_for_object(
        kube,
        path,
        lambda o: condition(o, "Ready").get("message", "").endswith("no API version specified"),
        "no API version",
        controller,
    )

    chart_repo.write_index("apiVersion: v1\nentries: {}\n# " + "x" * MAX_INDEX_SIZE + "\n")
    await request_reconcile(kube, path, "too-large")
    obj = await wait_for_object(
        kube,
        path,
        lambda o: "exceeds the maximum index file size" in condition(o, "Ready").get("message", ""),
        "size limit",
        controller,
    )
    assert condition(obj, "Ready")["message"].endswith(
        f"index exceeds the maximum index file size of {MAX_INDEX_SIZE} bytes"
    )
    assert same_artifact(obj, artifact)
    assert controller.process.poll() is None


async def test_server_outage_recovers_by_itself(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    chart_repo: ChartRepository,
) -> None:
    server = ChartServer(chart_repo.root).start()
    try:
        await create_helm_repo(kube, namespace, "flaky", server.url)
        path = path_of(namespace, "flaky")
        obj = await wait_for_object(kube, path, ready_with(), "Ready", controller)
        artifact = obj["status"]["artifact"]
        server.stop()
        await request_reconcile(kube, path, "down")
        obj = await wait_for_object(kube, path, failing("Failed"), "failure", controller)
        assert "connection refused" in condition(obj, "Ready")["message"]
        assert same_artifact(obj, artifact)
        server.start()
        obj = await wait_for_object(kube, path, ready_with(), "recovery", controller, within=60)
        assert obj["status"]["artifact"]["revision"] == artifact["revision"]
    finally:
        server.stop()


async def test_oci_repositories_are_static(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    chart_repo: ChartRepository,
    http_server: ChartServer,
) -> None:
    await create_helm_repo(kube, namespace, "oci", "oci://ghcr.io/stefanprodan/charts", type="oci")
    path = path_of(namespace, "oci")
    await asyncio.sleep(3)
    obj = await kube.get(path)
    assert not obj["metadata"].get("finalizers")
    assert not (obj.get("status") or {}).get("conditions")

    # A default repository turned oci drops its artifact, finalizer and status, as Flux does.
    await create_helm_repo(kube, namespace, "turned", http_server.url)
    turned = path_of(namespace, "turned")
    await wait_for_object(kube, turned, ready_with(), "Ready", controller)
    await kube.patch(turned, {"spec": {"type": "oci", "url": "oci://registry.example.com/charts"}})
    obj = await wait_for_object(
        kube,
        turned,
        lambda o: (
            not o["metadata"].get("finalizers") and not (o.get("status") or {}).get("artifact")
        ),
        "static",
        controller,
    )
    assert not (obj.get("status") or {}).get("conditions")
    assert not (controller.storage / "helmrepository" / namespace / "turned").exists()


async def test_suspended_repository_is_left_alone(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    http_server: ChartServer,
) -> None:
    await create_helm_repo(kube, namespace, "paused", http_server.url, suspend=True)
    path = path_of(namespace, "paused")
    await request_reconcile(kube, path, "while-suspended")
    await asyncio.sleep(3)
    obj = await kube.get(path)
    assert not (obj.get("status") or {}).get("artifact")
    await kube.patch(path, {"spec": {"suspend": False}})
    await wait_for_object(kube, path, ready_with(), "Ready after resume", controller)
