"""`tidal controller` authenticating GitRepositories the ways a user configures them: a GitHub
App (`spec.provider: github`) against a fake GitHub API, `spec.proxySecretRef` through a real
CONNECT proxy, a bearer token, a TLS client certificate, and `spec.timeout` against a server
that never answers.

Another controller may share the control plane and reconcile these namespaces too, so what is
counted (API calls, proxy tunnels) is only what came from this module's controller process,
and artifacts are read through status.artifact.url."""

from __future__ import annotations

import asyncio
import io
import secrets
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from testenv.fake_github import BAD_JWT, FakeGitHub
from testenv.git_server import GitHTTPServer
from testenv.proxy import ConnectProxy
from tests.controller_process import RunningController, condition, controller_fixture
from tests.kustomization_helpers import SOURCE_API as API
from tests.kustomization_helpers import (
    condition_is,
    create_repo,
    head_revision,
    ready_at,
    request_reconcile,
    secret,
)
from tests.kustomization_helpers import wait_repo as wait_for
from tidal.kube.client import Kube

pytestmark = pytest.mark.e2e

controller = controller_fixture("--concurrent", "4")

FILES = {"deploy/app.yaml": "kind: ConfigMap\n"}


# -- servers of this module ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def github_git(
    git_repos_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GitHTTPServer, FakeGitHub]]:
    """A Git server taking only live installation tokens of the fake GitHub's App, and that
    fake's API, both trusted through the one `ca.crt` (as a GitHub Enterprise Server)."""
    git = GitHTTPServer(
        git_repos_root,
        tls=True,
        username="x-access-token",
        password=secrets.token_urlsafe(32),  # never handed out: only App tokens get in
        bearer_auth=False,
        workdir=tmp_path_factory.mktemp("github-git"),
    )
    github = FakeGitHub(ca=git.ca)
    git.password_check = github.accepts
    with git, github:
        yield git, github


@pytest.fixture(scope="module")
def proxy() -> Iterator[ConnectProxy]:
    with ConnectProxy(username="proxy-user", password="proxy-" + secrets.token_hex(8)) as running:
        yield running


@pytest.fixture(scope="module")
def mtls_git(
    git_repos_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GitHTTPServer]:
    """An anonymous HTTPS Git server that refuses any client without a certificate of its CA."""
    server = GitHTTPServer(
        git_repos_root,
        tls=True,
        basic_auth=False,
        bearer_auth=False,
        client_cert_required=True,
        workdir=tmp_path_factory.mktemp("mtls-git"),
    )
    with server:
        yield server


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word: the port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()
        for conn in held:
            conn.close()


# -- helpers ---------------------------------------------------------------------------------------


async def artifact_files(obj: dict[str, Any]) -> dict[str, bytes]:
    async with httpx.AsyncClient() as client:
        resp = await client.get(obj["status"]["artifact"]["url"])
    resp.raise_for_status()
    with tarfile.open(fileobj=io.BytesIO(resp.content), mode="r:gz") as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


async def event_messages(kube: Kube, namespace: str) -> str:
    listing = await kube.get(f"/api/v1/namespaces/{namespace}/events")
    return "\n".join(e.get("message", "") for e in listing["items"])


async def assert_nothing_leaked(
    kube: Kube, namespace: str, controller: RunningController, secret_values: list[str]
) -> None:
    """None of `secret_values` (tokens, JWTs, key lines, passwords) is in any status, event
    or the controller's log."""
    listing = await kube.get(f"{API}/namespaces/{namespace}/gitrepositories")
    statuses = str([o.get("status") for o in listing["items"]])
    events = await event_messages(kube, namespace)
    log = controller.logs()
    for value in secret_values:
        assert value, "an empty value proves nothing"
        for where, text in (("status", statuses), ("events", events), ("log", log)):
            assert value not in text, f"a secret value is in the {where}"


def key_lines(pem: bytes) -> list[str]:
    return [line for line in pem.decode().splitlines() if line and not line.startswith("-----")]


async def wait_handled(
    kube: Kube, namespace: str, name: str, token: str, controller: RunningController
) -> dict[str, Any]:
    await request_reconcile(kube, f"{API}/namespaces/{namespace}/gitrepositories/{name}", token)
    return await wait_for(
        kube,
        namespace,
        name,
        lambda o: (o.get("status") or {}).get("lastHandledReconcileAt") == token,
        f"reconcile request {token}",
        controller,
    )


# -- GitHub App ------------------------------------------------------------------------------------


async def test_a_github_app_token_is_used_shared_reused_and_renewed(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    github_git: tuple[GitHTTPServer, FakeGitHub],
    git_repo: Any,
) -> None:
    git, github = github_git
    pid = controller.process.pid
    github.token_lifetime = 7.0  # kept 80% of that (5.6 s), then renewed
    repo = git_repo(files=FILES)
    await secret(kube, namespace, "gh-app", github.secret_data())
    spec = {"ref": {"branch": "main"}, "secretRef": {"name": "gh-app"}, "provider": "github"}
    url = git.url_for(repo.name)
    issued_before = len(github.issued(pid))
    await create_repo(kube, namespace, "one", url, **spec)
    await create_repo(kube, namespace, "two", url, **spec)
    for name in ("one", "two"):
        obj = await wait_for(kube, namespace, name, ready_at(head_revision(repo)), name, controller)
        assert await artifact_files(obj) == {"deploy/app.yaml": b"kind: ConfigMap\n"}

    # Both objects were served by one token, issued to this controller for this App.
    issued = github.issued(pid)[issued_before:]
    assert len(issued) == 1, "one token for both objects"
    first = issued[0]
    [call] = [c for c in github.calls(pid) if c.token == first]
    assert call.path == f"/api/v3/app/installations/{github.installation_id}/access_tokens"
    assert call.issuer == str(github.app_id)
    uses = github.uses[first]
    assert uses >= 2

    # A reconcile soon after reuses it: Git sees it again, the API is not asked.
    await wait_handled(kube, namespace, "one", "reuse", controller)
    assert github.issued(pid)[issued_before:] == [first]
    assert github.uses[first] > uses

    # Once it has expired, the next reconcile buys a new one and Git accepts only that.
    expires_at = call.time + github.token_lifetime
    await asyncio.sleep(max(0.0, expires_at - time.time()) + 0.5)
    assert not github.accepts("x-access-token", first)
    pushed = repo.commit({"deploy/app.yaml": "kind: Secret\n"}, "after renewal")
    await request_reconcile(kube, f"{API}/namespaces/{namespace}/gitrepositories/one", "renew")
    obj = await wait_for(
        kube, namespace, "one", ready_at(f"main@sha1:{pushed}"), "renewed token", controller
    )
    assert await artifact_files(obj) == {"deploy/app.yaml": b"kind: Secret\n"}
    renewed = github.issued(pid)[issued_before:]
    assert len(renewed) == 2 and renewed[1] != first
    assert github.uses[renewed[1]] >= 1

    await assert_nothing_leaked(
        kube,
        namespace,
        controller,
        [*renewed, *github.jwts, *key_lines(github.private_key_pem)],
    )


async def test_github_app_misconfigurations_fail_clearly_and_leak_nothing(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    github_git: tuple[GitHTTPServer, FakeGitHub],
    git_repo: Any,
) -> None:
    git, github = github_git
    github.token_lifetime = 3600.0
    url = git.url_for(git_repo(files=FILES).name)
    wrong_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    await secret(kube, namespace, "wrong-key", github.secret_data(githubAppPrivateKey=wrong_key))
    await secret(kube, namespace, "no-install", github.secret_data(githubAppInstallationID="999"))
    await secret(kube, namespace, "app", github.secret_data())
    await secret(kube, namespace, "basic", {"username": "u", "password": "p-" + "x" * 12})
    ref = {"branch": "main"}
    cases: dict[str, tuple[dict[str, Any], bool]] = {
        "wrong-key": ({"secretRef": {"name": "wrong-key"}, "provider": "github"}, False),
        "no-install": ({"secretRef": {"name": "no-install"}, "provider": "github"}, False),
        "no-app-data": ({"secretRef": {"name": "basic"}, "provider": "github"}, False),
        "no-secret": ({"provider": "github"}, True),
        "not-github": ({"secretRef": {"name": "app"}}, False),
        "aws": ({"provider": "aws"}, True),
    }
    for name, (spec, _) in cases.items():
        await create_repo(kube, namespace, name, url, ref=ref, **spec)
    objs = {}
    for name, (_, stalls) in cases.items():
        check = condition_is("Stalled") if stalls else condition_is("Ready", "False")
        objs[name] = await wait_for(kube, namespace, name, check, f"{name} failing", controller)

    api = f"{github.base_url}/app/installations"
    expected = {
        "wrong-key": (
            "AuthenticationFailed",
            "failed to configure authentication options: "
            f"POST {api}/{github.installation_id}/access_tokens: 401 {BAD_JWT} []",
        ),
        "no-install": (
            "AuthenticationFailed",
            "failed to configure authentication options: "
            f"POST {api}/999/access_tokens: 404 Not Found []",
        ),
        "no-app-data": (
            "InvalidProviderConfiguration",
            "secretRef with github app data must be specified when provider is set to github",
        ),
        "no-secret": (
            "InvalidProviderConfiguration",
            "secretRef with github app data must be specified when provider is set to github",
        ),
        "not-github": (
            "InvalidProviderConfiguration",
            f"secretRef '{namespace}/app' has github app data but provider is not set to github",
        ),
    }
    for name, (reason, message) in expected.items():
        obj = objs[name]
        assert "artifact" not in obj["status"]
        fetch_failed, ready = condition(obj, "FetchFailed"), condition(obj, "Ready")
        assert (fetch_failed["status"], fetch_failed["reason"]) == ("True", reason), name
        assert fetch_failed["message"] == message, name
        assert (ready["status"], ready["reason"], ready["message"]) == ("False", reason, message)
    assert condition(objs["no-secret"], "Stalled")["reason"] == "InvalidProviderConfiguration"
    assert condition(objs["aws"], "Ready")["message"] == (
        "spec.provider 'aws' not supported by tidal yet"
    )
    events = await event_messages(kube, namespace)
    assert f"401 {BAD_JWT}" in events  # the user hears why, in an event too

    # The wrong key's JWTs reached the API and were refused: none of them, nor either key,
    # is anywhere a user or a log collector could read it.
    await assert_nothing_leaked(
        kube,
        namespace,
        controller,
        [*github.jwts, *key_lines(wrong_key), *key_lines(github.private_key_pem)],
    )


# -- proxy, bearer token, client certificate ------------------------------------------------------


async def test_proxy_secret_ref_tunnels_through_the_proxy_and_a_wrong_password_fails(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    proxy: ConnectProxy,
    git_https: GitHTTPServer,
    git_repo: Any,
) -> None:
    pid = controller.process.pid
    repo = git_repo(files=FILES)
    assert git_https.username and git_https.password and proxy.password
    await secret(
        kube,
        namespace,
        "git",
        {
            "username": git_https.username,
            "password": git_https.password,
            "ca.crt": git_https.ca_pem,
        },
    )
    await secret(
        kube,
        namespace,
        "proxy",
        {"address": proxy.url, "username": "proxy-user", "password": proxy.password},
    )
    wrong = "wrong-" + secrets.token_hex(8)
    await secret(
        kube,
        namespace,
        "bad-proxy",
        {"address": proxy.url, "username": "proxy-user", "password": wrong},
    )
    url = git_https.url_for(repo.name)
    common = {"ref": {"branch": "main"}, "secretRef": {"name": "git"}}
    seen = len(proxy.requests(pid))
    await create_repo(kube, namespace, "via-proxy", url, proxySecretRef={"name": "proxy"}, **common)
    await create_repo(
        kube, namespace, "bad-proxy", url, proxySecretRef={"name": "bad-proxy"}, **common
    )
    obj = await wait_for(
        kube, namespace, "via-proxy", ready_at(head_revision(repo)), "", controller
    )
    assert await artifact_files(obj) == {"deploy/app.yaml": b"kind: ConfigMap\n"}
    bad = await wait_for(
        kube, namespace, "bad-proxy", condition_is("Ready", "False"), "407", controller
    )

    tunnels = proxy.requests(pid)[seen:]
    target = f"127.0.0.1:{git_https.port}"
    ok = [t for t in tunnels if t.status == 200]
    refused = [t for t in tunnels if t.status == 407]
    assert ok and all((t.method, t.target, t.user) == ("CONNECT", target, "proxy-user") for t in ok)
    assert refused and all(t.target == target for t in refused)
    fetch_failed = condition(bad, "FetchFailed")
    assert fetch_failed["reason"] == "GitOperationFailed"
    assert fetch_failed["message"].startswith(
        f"failed to checkout and determine revision: unable to clone '{url}': "
    )
    assert "407 Proxy Authentication Required" in fetch_failed["message"]
    await assert_nothing_leaked(kube, namespace, controller, [wrong, proxy.password])


async def test_bearer_token_from_the_secret(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_https: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(files=FILES)
    assert git_https.token
    await secret(
        kube, namespace, "bearer", {"bearerToken": git_https.token, "ca.crt": git_https.ca_pem}
    )
    await secret(
        kube,
        namespace,
        "bad-bearer",
        {"bearerToken": "not-the-token-at-all", "ca.crt": git_https.ca_pem},
    )
    url = git_https.url_for(repo.name)
    await create_repo(
        kube, namespace, "bearer", url, ref={"branch": "main"}, secretRef={"name": "bearer"}
    )
    await create_repo(
        kube, namespace, "bad", url, ref={"branch": "main"}, secretRef={"name": "bad-bearer"}
    )
    obj = await wait_for(kube, namespace, "bearer", ready_at(head_revision(repo)), "", controller)
    assert await artifact_files(obj) == {"deploy/app.yaml": b"kind: ConfigMap\n"}
    served = [r for r in git_https.requests(repo.name) if r.status == 200]
    # The server's user for a bearer token; basic auth would show its user name.
    assert served and {r.user for r in served} == {"token"}
    bad = await wait_for(kube, namespace, "bad", condition_is("Ready", "False"), "401", controller)
    assert "authentication required" in condition(bad, "FetchFailed")["message"]
    await assert_nothing_leaked(
        kube, namespace, controller, [git_https.token, "not-the-token-at-all"]
    )


async def test_tls_client_certificate_against_a_server_requiring_one(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    mtls_git: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(files=FILES)
    ca = mtls_git.ca_pem
    cert, key = mtls_git.client_cert.cert_pem, mtls_git.client_cert.key_pem
    await secret(kube, namespace, "mtls", {"ca.crt": ca, "tls.crt": cert, "tls.key": key})
    await secret(kube, namespace, "ca-only", {"ca.crt": ca})
    url = mtls_git.url_for(repo.name)
    await create_repo(
        kube, namespace, "mtls", url, ref={"branch": "main"}, secretRef={"name": "mtls"}
    )
    await create_repo(
        kube, namespace, "no-cert", url, ref={"branch": "main"}, secretRef={"name": "ca-only"}
    )
    obj = await wait_for(kube, namespace, "mtls", ready_at(head_revision(repo)), "", controller)
    assert await artifact_files(obj) == {"deploy/app.yaml": b"kind: ConfigMap\n"}
    bad = await wait_for(
        kube, namespace, "no-cert", condition_is("Ready", "False"), "refused", controller
    )
    fetch_failed = condition(bad, "FetchFailed")
    assert fetch_failed["reason"] == "GitOperationFailed"
    assert fetch_failed["message"].startswith(
        f"failed to checkout and determine revision: unable to clone '{url}': "
    )
    assert mtls_git.tls_failures >= 1
    await assert_nothing_leaked(kube, namespace, controller, key_lines(key))


# -- timeout ---------------------------------------------------------------------------------------


async def test_timeout_against_a_silent_server_while_others_keep_going(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    silent_server: int,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    timeout = 3.0
    silent_url = f"http://127.0.0.1:{silent_server}/stalled.git"
    repo = git_repo(files=FILES)
    await secret(
        kube,
        namespace,
        "plain",
        {"username": git_http.username or "", "password": git_http.password or ""},
    )
    started = time.monotonic()
    await create_repo(kube, namespace, "silent", silent_url, ref={"branch": "main"}, timeout="3s")
    await create_repo(
        kube,
        namespace,
        "healthy",
        git_http.url_for(repo.name),
        ref={"branch": "main"},
        secretRef={"name": "plain"},
    )
    await wait_for(kube, namespace, "healthy", ready_at(head_revision(repo)), "", controller)
    healthy_at = time.monotonic() - started
    failed = await wait_for(
        kube, namespace, "silent", condition_is("FetchFailed"), "the timeout", controller
    )
    failed_at = time.monotonic() - started
    # The other object, created second, did not wait for the stalled fetch.
    assert healthy_at < failed_at
    assert timeout - 0.5 <= failed_at <= timeout + 5
    fetch_failed = condition(failed, "FetchFailed")
    assert fetch_failed["reason"] == "GitOperationFailed"
    assert (
        fetch_failed["message"]
        == f"failed to checkout and determine revision: fetching '{silent_url}' timed out after 3s"
    )
    assert condition(failed, "Ready")["status"] == "False"
