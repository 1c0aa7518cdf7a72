"""spec.sparseCheckout and spec.recurseSubmodules: `tidal controller` building artifacts from
real Git servers (git http-backend with basic auth) into a real cluster."""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2 as httpx
import paramiko
import pytest
from dulwich.repo import Repo

from testenv.git_server import GitHTTPServer, GitSSHServer, run_git
from tests.controller_process import RunningController, condition, controller_fixture
from tests.kustomization_helpers import SOURCE_API as API
from tests.kustomization_helpers import (
    condition_is,
    git_source,
    ready_at,
    request_reconcile,
    source_ready,
)
from tests.kustomization_helpers import wait_repo as wait_for
from tidal.kube.client import Kube
from tidal.source.git.auth import AuthOptions
from tidal.source.git.client import fetch_commit_sync
from tidal.source.git.errors import RefNotFoundError
from tidal.source.git.operation import Operation
from tidal.source.git.tree import GitTree
from tidal.source.git.url import parse_url

if TYPE_CHECKING:
    from tests.fixtures_git import BareRepo, GitRepoFactory

pytestmark = pytest.mark.e2e

controller = controller_fixture("--concurrent", "4")

SPARSE_MISSING = (
    "failed to sparse checkout directories : sparse checkout dir '{}' does not exist in repository"
)


async def download(url: str) -> bytes:
    async with httpx.AsyncClient() as client:
        resp = await client.get(url)
    resp.raise_for_status()
    return resp.content


async def files_of(obj: dict[str, Any]) -> dict[str, bytes]:
    """The regular files of the object's current artifact, downloaded from the storage server
    (and checked against the recorded digest). Through the URL rather than from the test
    controller's directory: on a shared plane another test session's controller may be the
    one that stored it."""
    artifact = obj["status"]["artifact"]
    data = await download(artifact["url"])
    assert artifact["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                files[member.name] = extracted.read()
    return files


def repo_path(namespace: str, name: str) -> str:
    return f"{API}/namespaces/{namespace}/gitrepositories/{name}"


def gitmodules(*entries: tuple[str, str]) -> str:
    return "".join(f'[submodule "{p}"]\n\tpath = {p}\n\turl = {u}\n' for p, u in entries)


def observed(field: str, value: Any) -> Any:
    """Ready at the current generation with status.<field> == value (None: unset or empty)."""

    def check(obj: dict[str, Any]) -> bool:
        status = obj.get("status") or {}
        current = status.get("observedGeneration") == obj["metadata"]["generation"]
        ready = condition(obj, "Ready").get("status") == "True"
        return current and ready and (status.get(field) or None) == value

    return check


# -- sparse checkout ------------------------------------------------------------------------------


async def test_sparse_checkout_keeps_the_listed_dirs_and_follows_the_list(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: GitRepoFactory,
) -> None:
    repo = git_repo(
        files={
            "README.md": "root\n",
            "apps.yaml": "a sibling named like the dir\n",
            "apps/a/x.yaml": "x\n",
            "apps/b/y.yaml": "y\n",
            "infra/k.yaml": "k\n",
            ".sourceignore": "*.yaml\n",  # at the root: not checked out, so not loaded
        }
    )
    listed = ["./apps/a", "infra/"]
    obj, revision = await source_ready(
        kube, namespace, "sparse", git_http, repo, controller, sparseCheckout=listed
    )
    assert obj["status"]["observedSparseCheckout"] == listed
    assert await files_of(obj) == {"apps/a/x.yaml": b"x\n", "infra/k.yaml": b"k\n"}
    first = obj["status"]["artifact"]

    # Another list rebuilds the artifact of the same commit, without fetching anything.
    path = repo_path(namespace, "sparse")
    with git_http.counting(repo.name) as delta:
        await kube.patch(path, {"spec": {"sparseCheckout": ["apps/b"]}})
        obj = await wait_for(
            kube,
            namespace,
            "sparse",
            observed("observedSparseCheckout", ["apps/b"]),
            "rebuild",
            controller,
        )
    assert delta.fetches == 0
    second = obj["status"]["artifact"]
    assert second["revision"] == revision
    assert second["digest"] != first["digest"]
    assert await files_of(obj) == {"apps/b/y.yaml": b"y\n"}

    # A path the commit does not have fails clearly and keeps the last artifact.
    await kube.patch(path, {"spec": {"sparseCheckout": ["apps/b", "./nope/"]}})
    obj = await wait_for(
        kube, namespace, "sparse", condition_is("Ready", "False"), "Ready=False", controller
    )
    fetch_failed = condition(obj, "FetchFailed")
    assert fetch_failed["reason"] == "GitOperationFailed"
    assert fetch_failed["message"] == SPARSE_MISSING.format("./nope/")
    assert condition(obj, "Ready")["message"] == SPARSE_MISSING.format("./nope/")
    assert obj["status"]["artifact"]["digest"] == second["digest"]
    assert obj["status"]["observedSparseCheckout"] == ["apps/b"]

    # No list: the whole tree again (and the root .sourceignore applies once more).
    await kube.patch(path, {"spec": {"sparseCheckout": None}})
    obj = await wait_for(
        kube,
        namespace,
        "sparse",
        observed("observedSparseCheckout", None),
        "full tree",
        controller,
    )
    assert await files_of(obj) == {"README.md": b"root\n", ".sourceignore": b"*.yaml\n"}


async def test_sparse_checkout_of_a_deleted_dir_fails_on_the_new_commit(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: GitRepoFactory,
) -> None:
    repo = git_repo(files={"deploy/app.yaml": "v1\n", "docs/x.md": "x\n"})
    obj, revision = await source_ready(
        kube, namespace, "app", git_http, repo, controller, sparseCheckout=["deploy"]
    )
    assert await files_of(obj) == {"deploy/app.yaml": b"v1\n"}

    new = repo.commit({"deploy/app.yaml": None, "other/app.yaml": "v2\n"}, "move deploy")
    await request_reconcile(kube, repo_path(namespace, "app"), "t1")
    obj = await wait_for(
        kube, namespace, "app", condition_is("FetchFailed"), "FetchFailed", controller
    )
    assert condition(obj, "FetchFailed")["message"] == SPARSE_MISSING.format("deploy")
    assert obj["status"]["artifact"]["revision"] == revision
    assert new not in obj["status"]["artifact"]["revision"]


# -- submodules -----------------------------------------------------------------------------------


def family(git_repo: GitRepoFactory) -> dict[str, BareRepo]:
    """parent -> libs/child -> vendor/grandchild, related by relative URLs, each submodule with a
    newer commit on its branch than the one pinned."""
    grandchild = git_repo("grandchild", files={"g.yaml": "grandchild: pinned\n"})
    pinned_grandchild = grandchild.head("main") or ""
    grandchild.commit({"g.yaml": "grandchild: newer\n"})
    child = git_repo("child")
    child.commit(
        {
            "c.yaml": "child: pinned\n",
            ".gitmodules": gitmodules(("vendor/grandchild", f"../{grandchild.name}.git")),
            "vendor/grandchild": pinned_grandchild,
        },
        modes={"vendor/grandchild": "160000"},
    )
    parent = git_repo("parent")
    parent.commit(
        {
            "app.yaml": "parent\n",
            ".gitmodules": gitmodules(("libs/child", f"../{child.name}.git")),
            "libs/child": child.head("main") or "",
        },
        modes={"libs/child": "160000"},
    )
    child.commit({"c.yaml": "child: newer\n"})
    return {"parent": parent, "child": child, "grandchild": grandchild}


async def test_submodules_are_fetched_with_the_parents_credentials_at_their_pins(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_https: GitHTTPServer,
    git_repo: GitRepoFactory,
) -> None:
    repos = family(git_repo)
    parent, child = repos["parent"], repos["child"]
    assert git_https.auth_required
    obj, revision = await source_ready(
        kube, namespace, "app", git_https, parent, controller, recurseSubmodules=True
    )
    assert obj["status"]["observedRecurseSubmodules"] is True
    assert await files_of(obj) == {
        "app.yaml": b"parent\n",
        "libs/child/c.yaml": b"child: pinned\n",
        "libs/child/vendor/grandchild/g.yaml": b"grandchild: pinned\n",
    }
    # Every submodule request was an authenticated one.
    for repo in (child, repos["grandchild"]):
        requests = git_https.requests(repo.name)
        assert requests and all(r.user == git_https.username for r in requests)

    # Moving the pointer is a new parent commit, hence a new artifact with the new content.
    newer_child = child.head("main") or ""
    moved = parent.commit({"libs/child": newer_child}, "bump child", modes={"libs/child": "160000"})
    await request_reconcile(kube, repo_path(namespace, "app"), "bump")
    obj = await wait_for(
        kube, namespace, "app", ready_at(f"main@sha1:{moved}"), "the bump", controller
    )
    assert (await files_of(obj))["libs/child/c.yaml"] == b"child: newer\n"
    bumped = obj["status"]["artifact"]

    # A submodule that cannot be fetched fails clearly, names it, and keeps the last artifact.
    parent.commit(
        {
            ".gitmodules": gitmodules(
                ("libs/child", f"../{child.name}.git"), ("libs/gone", "../no-such-repo.git")
            ),
            "libs/gone": newer_child,
        },
        "add a submodule that is not there",
        modes={"libs/gone": "160000"},
    )
    await request_reconcile(kube, repo_path(namespace, "app"), "gone")
    obj = await wait_for(
        kube, namespace, "app", condition_is("Ready", "False"), "Ready=False", controller
    )
    fetch_failed = condition(obj, "FetchFailed")
    assert fetch_failed["reason"] == "GitOperationFailed"
    assert fetch_failed["message"].startswith(
        "failed to checkout and determine revision: submodule 'libs/gone': unable to clone 'https://"
    )
    assert "no-such-repo.git" in fetch_failed["message"]
    assert git_https.password and git_https.password not in str(obj)
    assert git_https.password not in controller.logs()
    assert obj["status"]["artifact"] == bumped
    assert await download(bumped["url"])
    assert revision != bumped["revision"]


async def test_submodules_and_sparse_checkout_together(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: GitRepoFactory,
) -> None:
    repos = family(git_repo)
    obj, _ = await source_ready(
        kube,
        namespace,
        "vendor",
        git_http,
        repos["parent"],
        controller,
        recurseSubmodules=True,
        sparseCheckout=["libs/child/vendor"],
    )
    assert await files_of(obj) == {"libs/child/vendor/grandchild/g.yaml": b"grandchild: pinned\n"}

    # Turning recursion off rebuilds the same commit with the submodules left empty.
    await kube.patch(repo_path(namespace, "vendor"), {"spec": {"recurseSubmodules": False}})
    obj = await wait_for(
        kube, namespace, "vendor", condition_is("FetchFailed"), "FetchFailed", controller
    )
    # The listed path lies inside a submodule that is no longer checked out.
    assert condition(obj, "FetchFailed")["message"] == SPARSE_MISSING.format("libs/child/vendor")


async def test_credentials_stay_on_their_origin_and_local_urls_need_the_flag(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_https: GitHTTPServer,
    git_repo: GitRepoFactory,
) -> None:
    sub = git_repo("sub", files={"s.yaml": "s\n"})
    pin = sub.head("main") or ""
    # The same server under another name is another origin: the credentials do not go there.
    elsewhere = git_repo("elsewhere")
    elsewhere.commit(
        {
            ".gitmodules": gitmodules(("s", git_https.url_for(sub.name, host="localhost"))),
            "s": pin,
        },
        modes={"s": "160000"},
    )
    local = git_repo("local")
    local.commit({".gitmodules": gitmodules(("s", str(sub.path))), "s": pin}, modes={"s": "160000"})
    await git_source(kube, namespace, "elsewhere", git_https, elsewhere, recurseSubmodules=True)
    await git_source(kube, namespace, "local", git_https, local, recurseSubmodules=True)

    obj = await wait_for(
        kube, namespace, "elsewhere", condition_is("FetchFailed"), "FetchFailed", controller
    )
    message = condition(obj, "FetchFailed")["message"]
    assert message.startswith(
        "failed to checkout and determine revision: submodule 's': unable to clone 'https://localhost:"
    )
    assert "authentication required: no credentials were given" in message
    tried = git_https.requests(sub.name)
    assert tried and all(r.user is None and r.status == 401 for r in tried)

    obj = await wait_for(
        kube, namespace, "local", condition_is("FetchFailed"), "FetchFailed", controller
    )
    message = condition(obj, "FetchFailed")["message"]
    assert message.startswith("failed to checkout and determine revision: submodule 's': url '")
    assert message.endswith("only reads when started with --allow-file-urls")
    assert "artifact" not in obj["status"]


# -- fetching one pinned commit -------------------------------------------------------------------


def pinned_behind_the_tip(git_repo: GitRepoFactory) -> tuple[BareRepo, str]:
    sub = git_repo("sub", files={"s.yaml": "pinned\n", "big.txt": "x" * 50_000})
    pinned = sub.head("main") or ""
    sub.commit({"s.yaml": "newer\n"})
    return sub, pinned


def http_auth(server: GitHTTPServer) -> AuthOptions:
    assert server.username and server.password
    return AuthOptions(
        transport=server.scheme, username=server.username, password=server.password, timeout=30
    )


def content_at(mirror: Path, commit: str) -> dict[str, bytes]:
    with GitTree(mirror, commit) as tree:
        return {e.path: e.content() for e in tree if e.kind == "file"}


async def test_a_pinned_commit_is_fetched_alone_by_its_hash(
    git_http: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    sub, pinned = pinned_behind_the_tip(git_repo)
    url = parse_url(git_http.url_for(sub.name))
    mirror = tmp_path / "mirror"
    with git_http.counting(sub.name) as delta:
        await asyncio.to_thread(
            fetch_commit_sync, url, pinned, http_auth(git_http), mirror, Operation(30)
        )
    assert delta.fetches == 1
    assert content_at(mirror, pinned)["s.yaml"] == b"pinned\n"
    with git_http.counting(sub.name) as again:
        await asyncio.to_thread(
            fetch_commit_sync, url, pinned, http_auth(git_http), mirror, Operation(30)
        )
    assert again.total == 0  # already in the mirror: no request at all


async def test_a_server_refusing_unadvertised_wants_gets_the_full_fetch(
    git_ssh: GitSSHServer,
    git_repo: GitRepoFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sub, pinned = pinned_behind_the_tip(git_repo)
    # An sshd that does not AcceptEnv GIT_PROTOCOL runs upload-pack in protocol v0, which,
    # without allowAnySHA1InWant, serves advertised tips only (over HTTP it also serves what
    # they reach, so this needs SSH).
    run_git(["config", "--unset", "uploadpack.allowAnySHA1InWant"], cwd=sub.path)
    monkeypatch.setattr(paramiko.Channel, "set_environment_variable", lambda *_: None)
    url = parse_url(git_ssh.url_for(sub.name))
    auth = AuthOptions(
        transport="ssh",
        username=url.username or "",
        identity=git_ssh.private_key_pem,
        known_hosts=git_ssh.known_hosts.encode(),
        timeout=30,
    )
    mirror = tmp_path / "mirror"
    await asyncio.to_thread(fetch_commit_sync, url, pinned, auth, mirror, Operation(30))
    assert content_at(mirror, pinned)["s.yaml"] == b"pinned\n"
    tip = (sub.head("main") or "").encode()
    with Repo(str(mirror)) as fetched:  # the fallback brought the branch tip along
        assert tip in fetched.object_store

    missing = "1234567890abcdef1234567890abcdef12345678"
    with pytest.raises(RefNotFoundError, match=f"commit {missing} is not in the repository"):
        await asyncio.to_thread(fetch_commit_sync, url, missing, auth, mirror, Operation(30))
