"""`tidal controller` reconciling GitRepositories from real Git servers into a real cluster."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import re
import shutil
import tarfile
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

from testenv.git_server import GitHTTPServer, GitSSHServer
from tests.controller_process import RunningController, condition, controller_fixture
from tests.git_signing import GpgKey, make_gpg_key, signed_commit
from tests.kustomization_helpers import SOURCE_API as API
from tests.kustomization_helpers import (
    condition_is,
    create_repo,
    git_source,
    head_revision,
    ready_at,
    request_reconcile,
    secret,
    source_ready,
    wait_gone,
)
from tests.kustomization_helpers import wait_repo as wait_for
from tidal.kube.client import Kube

pytestmark = pytest.mark.e2e


controller = controller_fixture("--concurrent", "4")


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
    crds: None,
    controller: RunningController,
    git_https: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(
        files={"deploy/app.yaml": "kind: ConfigMap\n", "README.md": "hi\n", "logo.png": b"\x89PNG"}
    )
    sha = repo.head("main")
    obj, revision = await source_ready(kube, namespace, "app", git_https, repo, controller)
    artifact = obj["status"]["artifact"]
    assert artifact["path"] == f"gitrepository/{namespace}/app/{sha}.tar.gz"
    assert artifact["url"] == f"http://127.0.0.1:{controller.storage_port}/{artifact['path']}"
    assert condition(obj, "Ready")["reason"] == "Succeeded"
    assert condition(obj, "Ready")["message"] == f"stored artifact for revision '{revision}'"
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
    await request_reconcile(kube, path, token)
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
        await request_reconcile(kube, path, again)
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
    await wait_gone(kube, path, within=20)
    assert not stored.exists()
    assert not stored.parent.exists()


async def test_wrong_password_fails_and_keeps_the_last_artifact(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_https: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(files={"a.yaml": "a: 1\n"})
    obj, revision = await source_ready(kube, namespace, "app", git_https, repo, controller)
    url = obj["status"]["artifact"]["url"]

    assert git_https.password
    secret_path = f"/api/v1/namespaces/{namespace}/secrets/https-auth"
    wrong = base64.b64encode(b"not-the-password").decode()
    await kube.patch(secret_path, {"data": {"password": wrong}})
    repo.commit({"a.yaml": "a: 2\n"})
    await request_reconcile(kube, f"{API}/namespaces/{namespace}/gitrepositories/app", "t1")
    not_ready = condition_is("Ready", "False")
    obj = await wait_for(kube, namespace, "app", not_ready, "Ready=False", controller)
    fetch_failed = condition(obj, "FetchFailed")
    assert fetch_failed["status"] == "True"
    assert fetch_failed["reason"] == "GitOperationFailed"
    # Flux's words, which users' alerts match on; the remote listing or the fetch fails,
    # depending on whether the reconcile saw the Secret change before the push.
    repo_url = re.escape(git_https.url_for(repo.name))
    assert re.match(
        "failed to checkout and determine revision: "
        f"unable to (clone|list remote for) '{repo_url}': authentication required",
        fetch_failed["message"],
    )
    assert git_https.password not in str(obj)
    assert "not-the-password" not in str(obj)
    # The last good artifact stays recorded and served.
    assert obj["status"]["artifact"]["revision"] == revision
    assert await download(url)
    assert "not-the-password" not in controller.logs()


async def test_ssh_with_known_hosts_and_refusal_of_a_wrong_host_key(
    kube: Kube,
    namespace: str,
    crds: None,
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
        kube, namespace, "bad", condition_is("FetchFailed"), "FetchFailed", controller
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
    crds: None,
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
    await git_source(kube, namespace, "r", git_http, repo, ref=resolved)
    await wait_for(kube, namespace, "r", ready_at(expected.format(**shas)), "Ready", controller)


async def test_invalid_url_stalls_and_suspend_stops_reconciling(
    kube: Kube,
    namespace: str,
    crds: None,
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

    await create_repo(kube, namespace, "unsupported", "https://127.0.0.1:1/x.git", provider="aws")
    obj = await wait_for(
        kube, namespace, "unsupported", condition_is("Stalled"), "Stalled", controller
    )
    assert "spec.provider 'aws' not supported" in condition(obj, "Ready")["message"]


# -- following the upstream ------------------------------------------------------------------


def tar_files(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        files: dict[str, bytes] = {}
        for member in tar.getmembers():
            if member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                files[member.name] = extracted.read()
        return files


async def events_of(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    listing = await kube.get(f"/api/v1/namespaces/{namespace}/events")
    return [e for e in listing["items"] if e["involvedObject"].get("name") == name]


async def test_a_push_moves_the_artifact_within_one_interval(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(files={"app.yaml": "replicas: 1\n"})
    await source_ready(kube, namespace, "app", git_http, repo, controller, interval="2s")

    pushed = repo.commit({"app.yaml": "replicas: 3\n"}, "scale up")
    start = asyncio.get_running_loop().time()
    # One interval (2s, +5% jitter) plus the fetch and the archive: no request annotation.
    obj = await wait_for(
        kube, namespace, "app", ready_at(f"main@sha1:{pushed}"), "the push", controller, 5.0
    )
    assert asyncio.get_running_loop().time() - start < 5.0
    assert "reconcile.fluxcd.io/requestedAt" not in (obj["metadata"].get("annotations") or {})
    assert tar_files(await download(obj["status"]["artifact"]["url"])) == {
        "app.yaml": b"replicas: 3\n"
    }


async def test_a_force_push_that_rewrites_history_gives_the_new_revision(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_https: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(files={"old/app.yaml": "v: 1\n"})
    repo.commit({"old/app.yaml": "v: 2\n"}, "second")
    await source_ready(kube, namespace, "app", git_https, repo, controller, interval="2s")

    # A base that does not exist makes the commit a root; force moves main onto it.
    rewritten = repo.commit(
        {"new/app.yaml": "v: 3\n"},
        "rewrite history",
        force=True,
        base="refs/heads/no-such-branch",
        delete_others=True,
    )
    assert repo.head("main") == rewritten
    obj = await wait_for(
        kube, namespace, "app", ready_at(f"main@sha1:{rewritten}"), "the rewrite", controller
    )
    assert obj["status"]["artifact"]["path"].endswith(f"/{rewritten}.tar.gz")
    assert tar_names(await download(obj["status"]["artifact"]["url"])) == ["new/app.yaml"]


async def test_sourceignore_and_spec_ignore_shape_the_artifact(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(
        files={
            ".sourceignore": "docs/\n",
            "deploy/app.yaml": "kind: ConfigMap\n",
            "deploy/test/fixture.yaml": "kind: Secret\n",
            "docs/guide.md": "# guide\n",
            "logo.png": b"\x89PNG",
        }
    )
    obj, revision = await source_ready(
        kube, namespace, "app", git_http, repo, controller, ignore="# test fixtures\ndeploy/test/\n"
    )
    # docs/ goes by .sourceignore, deploy/test/ by spec.ignore; with user patterns present the
    # default exclusions (*.png) no longer apply, as in Flux's code.
    assert tar_names(await download(obj["status"]["artifact"]["url"])) == [
        ".sourceignore",
        "deploy/app.yaml",
        "logo.png",
    ]
    assert obj["status"]["observedIgnore"] == "# test fixtures\ndeploy/test/\n"
    first_digest = obj["status"]["artifact"]["digest"]

    # The same revision with other rules: only spec.ignore changed, and that alone rebuilds.
    path = f"{API}/namespaces/{namespace}/gitrepositories/app"
    await kube.patch(path, {"spec": {"ignore": "*.png\n"}})
    obj = await wait_for(
        kube,
        namespace,
        "app",
        lambda o: (
            o["status"].get("observedIgnore") == "*.png\n"
            and condition(o, "Ready").get("status") == "True"
        ),
        "the rebuild for the new ignore rules",
        controller,
    )
    artifact = obj["status"]["artifact"]
    assert artifact["revision"] == revision
    assert artifact["digest"] != first_digest
    assert obj["status"]["observedGeneration"] == 2
    assert tar_names(await download(artifact["url"])) == [
        ".sourceignore",
        "deploy/app.yaml",
        "deploy/test/fixture.yaml",
    ]


@pytest.fixture
def gpg_key() -> Iterator[GpgKey]:
    if shutil.which("gpg") is None:
        pytest.skip("gnupg not installed (apt-get install gnupg)")
    key = make_gpg_key()
    try:
        yield key
    finally:
        key.close()


async def test_openpgp_verification_accepts_signed_and_refuses_unsigned_commits(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_https: GitHTTPServer,
    git_repo: Any,
    gpg_key: GpgKey,
) -> None:
    repo = git_repo()
    signed = signed_commit(repo.path, {"app.yaml": "signed: true\n"}, "signed change", gpg_key)
    await secret(kube, namespace, "pgp-public-keys", {"author.asc": gpg_key.public_armored})
    await git_source(
        kube,
        namespace,
        "app",
        git_https,
        repo,
        interval="2s",
        verify={"mode": "HEAD", "secretRef": {"name": "pgp-public-keys"}},
    )
    obj = await wait_for(
        kube, namespace, "app", ready_at(f"main@sha1:{signed}"), "Ready", controller
    )
    verified = condition(obj, "SourceVerified")
    assert verified["status"] == "True"
    assert verified["reason"] == "Succeeded"
    assert verified["message"] == (
        f"verified signature of\n\t- commit '{signed}' with key '{gpg_key.key_id}'"
    )
    assert obj["status"]["sourceVerificationMode"] == "HEAD"

    unsigned = repo.commit({"app.yaml": "signed: false\n"}, "unsigned change")
    unverified = condition_is("SourceVerified", "False")
    obj = await wait_for(kube, namespace, "app", unverified, "SourceVerified=False", controller)
    verified = condition(obj, "SourceVerified")
    assert verified["reason"] == "InvalidCommitSignature"
    assert verified["message"].startswith(f"signature verification of commit '{unsigned}' failed")
    ready = condition(obj, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidCommitSignature")
    # Nothing is built from an unverified commit: the signed artifact stays the current one.
    assert obj["status"]["artifact"]["revision"] == f"main@sha1:{signed}"
    assert not (controller.storage / f"gitrepository/{namespace}/app/{unsigned}.tar.gz").exists()
    assert tar_files(await download(obj["status"]["artifact"]["url"])) == {
        "app.yaml": b"signed: true\n"
    }


async def test_a_git_server_outage_fails_then_recovers_by_itself(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_https: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(files={"app.yaml": "up: true\n"})
    obj, revision = await source_ready(
        kube, namespace, "app", git_https, repo, controller, interval="2s"
    )
    url = obj["status"]["artifact"]["url"]

    git_https.stop()
    try:
        down = condition_is("FetchFailed")
        obj = await wait_for(kube, namespace, "app", down, "FetchFailed while down", controller)
        ready = condition(obj, "Ready")
        assert ready["status"] == "False"
        assert ready["reason"] == condition(obj, "FetchFailed")["reason"] == "GitOperationFailed"
        assert obj["status"]["artifact"]["revision"] == revision
        assert tar_files(await download(url)) == {"app.yaml": b"up: true\n"}
    finally:
        git_https.start()

    obj = await wait_for(
        kube,
        namespace,
        "app",
        lambda o: condition(o, "Ready").get("status") == "True" and not condition(o, "FetchFailed"),
        "recovery without a request",
        controller,
    )
    assert "reconcile.fluxcd.io/requestedAt" not in (obj["metadata"].get("annotations") or {})
    async with asyncio.timeout(10):
        while True:
            recovered = [
                e for e in await events_of(kube, namespace, "app") if e["reason"] == "Succeeded"
            ]
            if recovered:
                break
            await asyncio.sleep(0.2)
    assert recovered[0]["type"] == "Normal"
    assert recovered[0]["message"] == f"stored artifact for commit '{revision}'"


async def test_two_sources_on_one_repository_get_separate_artifacts(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(files={"app.yaml": "shared: true\n"})
    sha = repo.head("main")
    for name in ("one", "two"):
        await git_source(kube, namespace, name, git_http, repo)
    one, two = [
        await wait_for(kube, namespace, n, ready_at(f"main@sha1:{sha}"), "Ready", controller)
        for n in ("one", "two")
    ]
    a, b = one["status"]["artifact"], two["status"]["artifact"]
    assert a["path"] == f"gitrepository/{namespace}/one/{sha}.tar.gz"
    assert b["path"] == f"gitrepository/{namespace}/two/{sha}.tar.gz"
    # The archive is deterministic: the same tree gives the same bytes, in two files.
    assert a["digest"] == b["digest"]
    assert await download(a["url"]) == await download(b["url"])


# -- spec.include ------------------------------------------------------------------------------


async def test_include_copies_another_sources_subtree_and_follows_it(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    lib = git_repo(files={"manifests/lib.yaml": "lib: 1\n", "README.md": "not copied\n"})
    app = git_repo(files={"app/app.yaml": "app: 1\n"})
    await git_source(kube, namespace, "lib", git_http, lib, interval="2s")
    include = {"repository": {"name": "lib"}, "fromPath": "manifests", "toPath": "vendor/b"}
    # An hour-long interval: only the include watch can bring lib's changes in quickly.
    obj, app_rev = await source_ready(
        kube, namespace, "app", git_http, app, controller, interval="1h", include=[include]
    )
    lib_obj = await kube.get(f"{API}/namespaces/{namespace}/gitrepositories/lib")
    lib_artifact = lib_obj["status"]["artifact"]
    assert tar_files(await download(obj["status"]["artifact"]["url"])) == {
        "app/app.yaml": b"app: 1\n",
        "vendor/b/lib.yaml": b"lib: 1\n",
    }
    included = obj["status"]["includedArtifacts"]
    assert [(i["revision"], i["digest"]) for i in included] == [
        (lib_artifact["revision"], lib_artifact["digest"])
    ]
    assert obj["status"]["observedInclude"] == [include]
    first_digest = obj["status"]["artifact"]["digest"]

    pushed = lib.commit({"manifests/lib.yaml": "lib: 2\n", "manifests/extra.yaml": "x: 1\n"})

    def follows_lib(o: dict[str, Any]) -> bool:
        revisions = [i["revision"] for i in o["status"].get("includedArtifacts", [])]
        return revisions == [f"main@sha1:{pushed}"] and ready_at(app_rev)(o)

    obj = await wait_for(kube, namespace, "app", follows_lib, "lib's push in app", controller, 10)
    assert obj["status"]["artifact"]["digest"] != first_digest
    assert tar_files(await download(obj["status"]["artifact"]["url"])) == {
        "app/app.yaml": b"app: 1\n",
        "vendor/b/extra.yaml": b"x: 1\n",
        "vendor/b/lib.yaml": b"lib: 2\n",
    }
    assert "lastHandledReconcileAt" not in obj["status"]


async def test_include_of_a_missing_source_waits_and_a_path_outside_is_refused(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    app = git_repo(files={"app.yaml": "app: 1\n"})
    lib = git_repo(files={"lib.yaml": "lib: 1\n"})
    await git_source(
        kube, namespace, "app", git_http, app, include=[{"repository": {"name": "lib"}}]
    )
    waiting = condition_is("IncludeUnavailable")
    obj = await wait_for(kube, namespace, "app", waiting, "IncludeUnavailable", controller)
    unavailable = condition(obj, "IncludeUnavailable")
    assert unavailable["reason"] == "NotFound"
    assert unavailable["message"] == (
        "could not get resource for include 'lib': "
        'gitrepositories.source.toolkit.fluxcd.io "lib" not found'
    )
    ready = condition(obj, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NotFound")
    assert "artifact" not in obj["status"]

    # The include appears: its first artifact wakes app at once, not after the 30s wait.
    await git_source(kube, namespace, "lib", git_http, lib)
    obj = await wait_for(
        kube,
        namespace,
        "app",
        ready_at(head_revision(app)),
        "Ready once lib has an artifact",
        controller,
        10,
    )
    assert not condition(obj, "IncludeUnavailable")
    # toPath defaults to the included repository's name.
    assert tar_names(await download(obj["status"]["artifact"]["url"])) == [
        "app.yaml",
        "lib/lib.yaml",
    ]

    await git_source(
        kube,
        namespace,
        "escape",
        git_http,
        app,
        include=[{"repository": {"name": "lib"}, "toPath": "../../outside"}],
    )
    obj = await wait_for(kube, namespace, "escape", condition_is("Stalled"), "Stalled", controller)
    failed = condition(obj, "StorageOperationFailed")
    assert failed["reason"] == "IllegalPath"
    assert "outside the artifact root" in failed["message"]
    assert condition(obj, "Ready")["reason"] == "IllegalPath"
    assert "artifact" not in obj["status"]


async def test_a_missing_branch_fails_with_flux_s_message(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_https: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(files={"a.yaml": "a: 1\n"})
    await git_source(kube, namespace, "app", git_https, repo, ref={"branch": "invalid"})
    obj = await wait_for(kube, namespace, "app", condition_is("Ready", "False"), "fail", controller)
    ready = condition(obj, "Ready")
    assert ready["reason"] == "GitOperationFailed"
    assert ready["message"] == (
        "failed to checkout and determine revision: unable to clone "
        f"'{git_https.url_for(repo.name)}': couldn't find remote ref \"refs/heads/invalid\""
    )
