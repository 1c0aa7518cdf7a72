"""`tidal controller` reconciling GitRepositories from real Git servers into a real cluster."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import socket
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from testenv.git_server import GitHTTPServer, GitSSHServer
from tests.e2e.test_crd import GIT_KIND, install
from tests.plugin import Cluster
from tidal.kube.client import ApiError, Kube

pytestmark = pytest.mark.e2e

API = "/apis/source.toolkit.fluxcd.io/v1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningController:
    process: subprocess.Popen[bytes]
    storage: Path
    log: Path
    storage_port: int
    metrics_port: int

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def controller(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningController]:
    """The controller as a user runs it: a foreground process with a kubeconfig."""
    work = tmp_path_factory.mktemp("controller")
    storage_port, metrics_port, health_port = free_port(), free_port(), free_port()
    log = work / "controller.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tidal",
                "--kubeconfig",
                str(cluster.kubeconfig),
                "controller",
                "--storage-path",
                str(work / "data"),
                "--storage-addr",
                f"127.0.0.1:{storage_port}",
                "--metrics-addr",
                f"127.0.0.1:{metrics_port}",
                "--health-addr",
                f"127.0.0.1:{health_port}",
                "--git-cache-path",
                str(work / "git"),
                "--log-encoding",
                "console",
                "--concurrent",
                "4",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = RunningController(process, work / "data", log, storage_port, metrics_port)
    try:
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
async def crd(kube: Kube) -> None:
    await install(kube, GIT_KIND)


async def secret(kube: Kube, namespace: str, name: str, data: dict[str, bytes | str]) -> None:
    encoded = {
        k: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode()
        for k, v in data.items()
    }
    await kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/secrets",
        body={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded},
    )


async def https_secret(kube: Kube, namespace: str, server: GitHTTPServer) -> str:
    assert server.username and server.password
    await secret(
        kube,
        namespace,
        "https-auth",
        {"username": server.username, "password": server.password, "ca.crt": server.ca_pem},
    )
    return "https-auth"


async def create_repo(kube: Kube, namespace: str, name: str, url: str, **spec: Any) -> None:
    body = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"url": url, "interval": "1m", **spec},
    }
    await kube.request("POST", f"{API}/namespaces/{namespace}/gitrepositories", body=body)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == type_:
            return dict(c)
    return {}


async def wait_for(
    kube: Kube,
    namespace: str,
    name: str,
    check: Any,
    what: str,
    controller: RunningController,
    within: float = 30.0,
) -> dict[str, Any]:
    path = f"{API}/namespaces/{namespace}/gitrepositories/{name}"
    last: dict[str, Any] = {}
    try:
        async with asyncio.timeout(within):
            while True:
                last = await kube.get(path)
                if check(last):
                    return last
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(
            f"timed out waiting for {what}; last status: {last.get('status')}\n"
            f"controller log tail:\n{controller.logs()[-3000:]}"
        ) from None


def ready_at(revision: str) -> Any:
    def check(obj: dict[str, Any]) -> bool:
        ready = condition(obj, "Ready")
        artifact = obj.get("status", {}).get("artifact") or {}
        return ready.get("status") == "True" and artifact.get("revision") == revision

    return check


async def download(url: str) -> bytes:
    async with httpx.AsyncClient() as client:
        resp = await client.get(url)
    resp.raise_for_status()
    return resp.content


def tar_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return sorted(m.name for m in tar.getmembers() if m.isfile())


async def test_branch_over_https_produces_a_served_artifact_and_follows_pushes(
    kube: Kube,
    namespace: str,
    crd: None,
    controller: RunningController,
    git_https: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(
        files={"deploy/app.yaml": "kind: ConfigMap\n", "README.md": "hi\n", "logo.png": b"\x89PNG"}
    )
    sha = repo.head("main")
    auth = await https_secret(kube, namespace, git_https)
    await create_repo(
        kube,
        namespace,
        "app",
        git_https.url_for(repo.name),
        ref={"branch": "main"},
        secretRef={"name": auth},
    )

    obj = await wait_for(kube, namespace, "app", ready_at(f"main@sha1:{sha}"), "Ready", controller)
    artifact = obj["status"]["artifact"]
    assert artifact["path"] == f"gitrepository/{namespace}/app/{sha}.tar.gz"
    assert artifact["url"] == f"http://127.0.0.1:{controller.storage_port}/{artifact['path']}"
    assert condition(obj, "Ready")["reason"] == "Succeeded"
    assert condition(obj, "Ready")["message"] == f"stored artifact for revision 'main@sha1:{sha}'"
    assert obj["status"]["observedGeneration"] == 1
    assert "finalizers.fluxcd.io" in obj["metadata"]["finalizers"]
    data = await download(artifact["url"])
    assert artifact["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
    assert artifact["size"] == len(data)
    # Flux's default exclusions drop the image; the manifests and README stay.
    assert tar_names(data) == ["README.md", "deploy/app.yaml"]

    # A push is picked up on request, at once, without waiting for the 1m interval.
    new_sha = repo.commit({"deploy/app.yaml": "kind: Secret\n"}, "change kind")
    token = "2026-11-24T12:00:00.000000000Z"
    path = f"{API}/namespaces/{namespace}/gitrepositories/app"
    await kube.patch(
        path, {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}}
    )
    obj = await wait_for(
        kube, namespace, "app", ready_at(f"main@sha1:{new_sha}"), "new revision", controller
    )
    assert obj["status"]["lastHandledReconcileAt"] == token
    events = await kube.get(f"/api/v1/namespaces/{namespace}/events")
    new_artifact = [e for e in events["items"] if e["reason"] == "NewArtifact"]
    assert any("change kind" in e["message"] for e in new_artifact)
    assert all(e["source"]["component"] == "source-controller" for e in new_artifact)

    # An unchanged upstream costs one ref listing and no pack fetch.
    with git_https.counting(repo.name) as delta:
        again = "2026-11-24T12:00:01.000000000Z"
        await kube.patch(
            path, {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": again}}}
        )
        await wait_for(
            kube,
            namespace,
            "app",
            lambda o: o["status"].get("lastHandledReconcileAt") == again,
            "the no-op reconcile",
            controller,
        )
    assert delta.fetches == 0
    assert delta.ref_checks >= 1

    # Deleting the object removes its artifacts from storage.
    stored = controller.storage / obj["status"]["artifact"]["path"]
    assert stored.exists()
    await kube.delete(path)
    async with asyncio.timeout(20):
        while True:
            try:
                await kube.get(path)
            except ApiError as e:
                assert e.status == 404
                break
            await asyncio.sleep(0.2)
    assert not stored.exists()
    assert not stored.parent.exists()


async def test_wrong_password_fails_and_keeps_the_last_artifact(
    kube: Kube,
    namespace: str,
    crd: None,
    controller: RunningController,
    git_https: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(files={"a.yaml": "a: 1\n"})
    sha = repo.head("main")
    auth = await https_secret(kube, namespace, git_https)
    await create_repo(
        kube,
        namespace,
        "app",
        git_https.url_for(repo.name),
        ref={"branch": "main"},
        secretRef={"name": auth},
    )
    obj = await wait_for(kube, namespace, "app", ready_at(f"main@sha1:{sha}"), "Ready", controller)
    url = obj["status"]["artifact"]["url"]

    assert git_https.password
    secret_path = f"/api/v1/namespaces/{namespace}/secrets/{auth}"
    wrong = base64.b64encode(b"not-the-password").decode()
    await kube.patch(secret_path, {"data": {"password": wrong}})
    repo.commit({"a.yaml": "a: 2\n"})
    await kube.patch(
        f"{API}/namespaces/{namespace}/gitrepositories/app",
        {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "t1"}}},
    )

    def failed(o: dict[str, Any]) -> bool:
        return condition(o, "Ready").get("status") == "False"

    obj = await wait_for(kube, namespace, "app", failed, "Ready=False", controller)
    fetch_failed = condition(obj, "FetchFailed")
    assert fetch_failed["status"] == "True"
    assert fetch_failed["reason"] == "GitOperationFailed"
    assert git_https.password not in str(obj)
    assert "not-the-password" not in str(obj)
    # The last good artifact stays recorded and served.
    assert obj["status"]["artifact"]["revision"] == f"main@sha1:{sha}"
    assert await download(url)
    assert "not-the-password" not in controller.logs()


async def test_ssh_with_known_hosts_and_refusal_of_a_wrong_host_key(
    kube: Kube,
    namespace: str,
    crd: None,
    controller: RunningController,
    git_ssh: GitSSHServer,
    git_repo: Any,
) -> None:
    repo = git_repo(files={"k.yaml": "k: v\n"})
    sha = repo.head("main")
    await secret(
        kube,
        namespace,
        "ssh-good",
        {"identity": git_ssh.private_key_pem, "known_hosts": git_ssh.known_hosts},
    )
    await secret(
        kube,
        namespace,
        "ssh-bad",
        {"identity": git_ssh.private_key_pem, "known_hosts": git_ssh.wrong_known_hosts()},
    )
    url = git_ssh.url_for(repo.name)
    await create_repo(
        kube, namespace, "good", url, ref={"branch": "main"}, secretRef={"name": "ssh-good"}
    )
    await create_repo(
        kube, namespace, "bad", url, ref={"branch": "main"}, secretRef={"name": "ssh-bad"}
    )
    await wait_for(kube, namespace, "good", ready_at(f"main@sha1:{sha}"), "Ready", controller)
    bad = await wait_for(
        kube,
        namespace,
        "bad",
        lambda o: condition(o, "FetchFailed").get("status") == "True",
        "FetchFailed",
        controller,
    )
    assert "artifact" not in bad["status"]
    assert condition(bad, "Ready")["status"] == "False"


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ({"tag": "v1.0.0"}, "v1.0.0@sha1:{v1}"),
        ({"semver": ">=1.0.0 <2.0.0"}, "v1.1.0@sha1:{v11}"),
        ({"name": "refs/heads/feature"}, "refs/heads/feature@sha1:{feature}"),
        ({"commit": "{v1}"}, "sha1:{v1}"),
    ],
    ids=["tag", "semver", "name", "commit"],
)
async def test_every_ref_type(
    kube: Kube,
    namespace: str,
    crd: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
    ref: dict[str, str],
    expected: str,
) -> None:
    repo = git_repo(files={"v": "1.0.0\n"})
    shas = {"v1": repo.head("main")}
    repo.tag("v1.0.0")
    shas["v11"] = repo.commit({"v": "1.1.0\n"})
    repo.tag("v1.1.0")
    repo.commit({"v": "2.0.0\n"})
    repo.tag("v2.0.0")
    shas["feature"] = repo.commit({"f": "x\n"}, branch="feature", base="main")
    resolved = {k: v.format(**shas) for k, v in ref.items()}
    assert git_http.username and git_http.password
    await secret(
        kube, namespace, "plain", {"username": git_http.username, "password": git_http.password}
    )
    await create_repo(
        kube, namespace, "r", git_http.url_for(repo.name), ref=resolved, secretRef={"name": "plain"}
    )
    await wait_for(kube, namespace, "r", ready_at(expected.format(**shas)), "Ready", controller)


async def test_invalid_url_stalls_and_suspend_stops_reconciling(
    kube: Kube,
    namespace: str,
    crd: None,
    controller: RunningController,
) -> None:
    await create_repo(
        kube,
        namespace,
        "local",
        "https://127.0.0.1:1/nothing.git",
        ref={"branch": "main"},
        suspend=True,
    )
    await asyncio.sleep(1.5)
    obj = await kube.get(f"{API}/namespaces/{namespace}/gitrepositories/local")
    assert not obj.get("status", {}).get("conditions"), "a suspended source is left alone"

    await create_repo(
        kube, namespace, "unsupported", "https://127.0.0.1:1/x.git", recurseSubmodules=True
    )
    obj = await wait_for(
        kube,
        namespace,
        "unsupported",
        lambda o: condition(o, "Stalled").get("status") == "True",
        "Stalled",
        controller,
    )
    assert "recurseSubmodules not supported" in condition(obj, "Ready")["message"]
