"""tidal.source.git against the real test Git servers (git http-backend over HTTPS and HTTP,
OpenSSH): every ref kind, every auth method, the no-op check, incremental fetches, history
rewrites, failures and recovery, archive equality with a `git clone`, and signatures."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pysequoia
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from dulwich.objects import Commit as DulwichCommit
from dulwich.objects import Tag as DulwichTag
from dulwich.repo import Repo

from testenv.git_server import GitHTTPServer, GitSSHServer, run_git
from testenv.pki import CertificateAuthority, write_private
from tidal.source.archive import Archiver
from tidal.source.git import (
    AuthenticationError,
    AuthOptions,
    Commit,
    EmptyRepositoryError,
    FetchError,
    GitTimeoutError,
    HostKeyError,
    InvalidURLError,
    NoSemverMatchError,
    Ref,
    RefNotFoundError,
    TLSError,
    VerificationError,
    fetch,
    remote_head,
    sourceignore_files,
    tree_entries,
    verify_commit,
)
from tidal.source.ignore import IgnoreRules

if TYPE_CHECKING:
    from tests.fixtures_git import BareRepo, GitRepoFactory

pytestmark = pytest.mark.e2e

FILES = {"deploy/app.yaml": "kind: ConfigMap\n", "README.md": "hello\n"}


def https_auth(srv: GitHTTPServer, **extra: bytes) -> AuthOptions:
    assert srv.username is not None and srv.password is not None
    data = {"username": srv.username.encode(), "password": srv.password.encode()}
    data.update(extra)
    if srv.tls:
        data.setdefault("ca.crt", srv.ca_pem)
    return AuthOptions.from_secret(srv.url_for("x"), data)


def ssh_auth(srv: GitSSHServer, identity: bytes | None = None, **extra: bytes) -> AuthOptions:
    data = {"identity": identity or srv.private_key_pem, "known_hosts": srv.known_hosts.encode()}
    data.update(extra)
    return AuthOptions.from_secret(srv.url_for("x"), data)


async def fetch_https(
    srv: GitHTTPServer, repo: BareRepo, ref: Ref, mirror: Path, **kw: bytes
) -> Commit:
    return await fetch(srv.url_for(repo.name), ref, https_auth(srv, **kw), mirror)


# -- refs -----------------------------------------------------------------------------------------


async def test_branch_over_https_with_basic_auth_and_ca(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo()
    sha = repo.commit(FILES, "first commit\n\nbody")
    commit = await fetch_https(git_https, repo, Ref(branch="main"), tmp_path / "m")
    assert commit.hash == sha
    assert commit.revision == f"main@sha1:{sha}"
    assert commit.reference == "refs/heads/main"
    assert commit.message == "first commit\n\nbody"
    assert commit.short_message == "first commit"
    assert commit.author.startswith("tidal-test <")
    assert commit.raw.startswith(b"tree ")
    assert commit.signature is None and commit.tag is None
    # The mirror is a bare repository any git can read.
    assert run_git(["rev-parse", "refs/heads/main"], cwd=tmp_path / "m") == sha
    head = await remote_head(
        git_https.url_for(repo.name), Ref(branch="main"), https_auth(git_https)
    )
    assert head == commit.revision


async def test_default_branch_is_master(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(default_branch="master")
    sha = repo.commit(FILES, branch="master")
    repo.commit({"other": "x"}, branch="main")
    commit = await fetch_https(git_https, repo, Ref(), tmp_path / "m")
    assert commit.revision == f"master@sha1:{sha}"


async def test_tags_lightweight_and_annotated(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo()
    first = repo.commit(FILES, tag="light")
    second = repo.commit({"b": "2"}, tag="v1.0.0", tag_message="release 1.0.0")
    repo.commit({"c": "3"})  # the branch moves on; the tags stay
    light = await fetch_https(git_https, repo, Ref(tag="light"), tmp_path / "m")
    assert light.revision == f"light@sha1:{first}" and light.tag is None
    annotated = await fetch_https(git_https, repo, Ref(tag="v1.0.0"), tmp_path / "m")
    # The revision names the commit, not the tag object.
    assert annotated.revision == f"v1.0.0@sha1:{second}"
    assert annotated.reference == "refs/tags/v1.0.0"
    assert annotated.tag is not None
    assert annotated.tag.name == "v1.0.0"
    assert annotated.tag.message == "release 1.0.0\n"
    assert annotated.tag.hash == repo.refs()["refs/tags/v1.0.0"]
    url, auth = git_https.url_for(repo.name), https_auth(git_https)
    assert await remote_head(url, Ref(tag="v1.0.0"), auth) == annotated.revision
    assert await remote_head(url, Ref(tag="light"), auth) == light.revision
    assert await remote_head(url, Ref(tag="nope"), auth) is None


async def test_semver_picks_the_highest_match(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo()
    repo.commit(FILES, tag="v1.0.0")
    v11 = repo.commit({"a": "1"}, tag="1.1.0", tag_message="annotated")
    repo.commit({"a": "2"}, tag="v1.2.0-rc.1")
    repo.commit({"a": "3"}, tag="v2.0.0")
    repo.commit({"a": "4"}, tag="not-a-version")
    url, auth = git_https.url_for(repo.name), https_auth(git_https)
    commit = await fetch(url, Ref(semver="~1"), auth, tmp_path / "m")
    assert commit.revision == f"1.1.0@sha1:{v11}"
    assert commit.tag is not None and commit.tag.name == "1.1.0"
    rc = await fetch(url, Ref(semver=">=1.2.0-0, <1.3.0-0 || >=3"), auth, tmp_path / "m")
    assert rc.revision.startswith("v1.2.0-rc.1@sha1:")
    assert await remote_head(url, Ref(semver="~1"), auth) is None  # semver always fetches
    with pytest.raises(NoSemverMatchError, match=r"^no match found for semver: >=5$"):
        await fetch(url, Ref(semver=">=5"), auth, tmp_path / "m")


async def test_semver_ties_go_to_the_newest_commit(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo()
    repo.commit(FILES, tag="1.0.0+build.2", date=1_700_000_000)
    newer = repo.commit({"x": "1"}, tag="1.0.0+build.1", date=1_700_000_100)
    commit = await fetch_https(git_https, repo, Ref(semver="1.0.0"), tmp_path / "m")
    assert commit.revision == f"1.0.0+build.1@sha1:{newer}"


async def test_ref_name_branch_tag_and_pull_request(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo()
    tagged = repo.commit(FILES, tag="v2", tag_message="two")
    head = repo.commit({"b": "1"})
    pr = repo.commit({"pr": "1"}, branch="feature")
    run_git(["update-ref", "refs/pull/7/head", pr], cwd=repo.path)
    repo.delete_ref("refs/heads/feature")
    url, auth = git_https.url_for(repo.name), https_auth(git_https)
    c = await fetch(url, Ref(name="refs/heads/main"), auth, tmp_path / "m")
    assert c.revision == f"refs/heads/main@sha1:{head}"
    t = await fetch(url, Ref(name="refs/tags/v2"), auth, tmp_path / "m")
    assert t.revision == f"refs/tags/v2@sha1:{tagged}" and t.tag is not None
    p = await fetch(url, Ref(name="refs/pull/7/head"), auth, tmp_path / "m")
    assert p.revision == f"refs/pull/7/head@sha1:{pr}"
    assert await remote_head(url, Ref(name="refs/tags/v2"), auth) == t.revision
    assert await remote_head(url, Ref(name="refs/pull/7/head"), auth) == p.revision
    with pytest.raises(RefNotFoundError, match="unable to resolve ref 'refs/pull/8/head'"):
        await fetch(url, Ref(name="refs/pull/8/head"), auth, tmp_path / "m")


async def test_commit_alone_and_on_a_branch(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo()
    old = repo.commit(FILES)
    repo.commit({"b": "1"})
    side = repo.commit({"s": "1"}, branch="side", base=old)
    url, auth = git_https.url_for(repo.name), https_auth(git_https)
    bare = await fetch(url, Ref(commit=old), auth, tmp_path / "m")
    assert bare.revision == f"sha1:{old}" and bare.reference == ""
    on_branch = await fetch(url, Ref(branch="main", commit=old), auth, tmp_path / "m2")
    assert on_branch.revision == f"main@sha1:{old}"
    assert await remote_head(url, Ref(commit=old), auth) is None
    # The first mirror holds every branch: the commit is there, but not on main.
    with pytest.raises(RefNotFoundError, match="not on branch 'main'"):
        await fetch(url, Ref(branch="main", commit=side), auth, tmp_path / "m")
    # A single-branch fetch never sees it, as in Flux's single-branch clone.
    with pytest.raises(RefNotFoundError, match="object not found"):
        await fetch(url, Ref(branch="main", commit=side), auth, tmp_path / "m3")
    with pytest.raises(RefNotFoundError, match="object not found"):
        await fetch(url, Ref(commit="1" * 40), auth, tmp_path / "m")
    # Commit beats every other field (Flux's code order).
    assert (await fetch(url, Ref(tag="nope", commit=side), auth, tmp_path / "m")).hash == side


async def test_a_shallow_mirror_deepens_for_a_commit_ref(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo()
    old = repo.commit(FILES)
    repo.commit({"b": "1"})
    url, auth = git_https.url_for(repo.name), https_auth(git_https)
    await fetch(url, Ref(branch="main"), auth, tmp_path / "m")
    assert (tmp_path / "m" / "shallow").exists()
    commit = await fetch(url, Ref(branch="main", commit=old), auth, tmp_path / "m")
    assert commit.hash == old


# -- auth and transports --------------------------------------------------------------------------


async def test_bearer_token(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(files=FILES)
    assert git_https.token is not None
    auth = AuthOptions.from_secret(
        git_https.url_for(repo.name),
        {"bearerToken": git_https.token.encode(), "ca.crt": git_https.ca_pem},
    )
    commit = await fetch(git_https.url_for(repo.name), Ref(branch="main"), auth, tmp_path / "m")
    assert commit.hash == repo.head("main")
    assert {r.user for r in git_https.requests(repo.name) if r.status == 200} >= {"token"}


async def test_plain_http(
    git_http: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(files=FILES)
    commit = await fetch(
        git_http.url_for(repo.name), Ref(branch="main"), https_auth(git_http), tmp_path / "m"
    )
    assert commit.hash == repo.head("main")


async def test_credentials_in_the_url_are_used_and_never_shown(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(files=FILES)
    url = git_https.url_for(repo.name, credentials=True)
    auth = AuthOptions.from_secret(url, {"ca.crt": git_https.ca_pem})
    assert (await fetch(url, Ref(branch="main"), auth, tmp_path / "m")).hash == repo.head("main")
    with pytest.raises(RefNotFoundError) as info:
        await fetch(url, Ref(branch="gone"), auth, tmp_path / "m")
    assert git_https.password is not None and git_https.password not in str(info.value)
    assert f"unable to clone '{git_https.url_for(repo.name)}'" in str(info.value)


async def test_wrong_password_is_an_auth_error_without_the_password(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(files=FILES)
    secret = "s3cr3t-Wr0ng-passw0rd"
    url = git_https.url_for(repo.name)
    auth = https_auth(git_https, password=secret.encode())
    with pytest.raises(AuthenticationError) as info:
        await fetch(url, Ref(branch="main"), auth, tmp_path / "m")
    message = str(info.value)
    assert message.startswith(f"unable to clone '{url}': authentication required")
    assert info.value.reason == "GitOperationFailed"
    token = "tok-" + "A" * 30
    bearer = AuthOptions.from_secret(
        url, {"bearerToken": token.encode(), "ca.crt": git_https.ca_pem}
    )
    with pytest.raises(AuthenticationError) as info2:
        await remote_head(url, Ref(branch="main"), bearer)
    for err in (info.value, info2.value):
        text = f"{err} {err!r} {err.args}"
        assert secret not in text and token not in text
    assert git_https.stats(repo.name).fetches == 0


async def test_untrusted_server_certificate(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(files=FILES)
    other = CertificateAuthority("some other CA").pair.cert_pem
    with pytest.raises(TLSError, match="certificate"):
        await fetch_https(git_https, repo, Ref(branch="main"), tmp_path / "m", **{"ca.crt": other})


async def test_concurrent_operations_keep_their_own_trust(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    # One object's CA must not vouch for another's connection, even at the same moment;
    # and two fetches into one mirror take turns.
    repo = git_repo(files=FILES)
    other = CertificateAuthority("some other CA").pair.cert_pem
    results = await asyncio.gather(
        *(
            fetch_https(
                git_https,
                repo,
                Ref(branch="main"),
                tmp_path / f"m{i}",
                **({"ca.crt": other} if i % 2 else {}),
            )
            for i in range(6)
        ),
        fetch_https(git_https, repo, Ref(branch="main"), tmp_path / "m0"),
        return_exceptions=True,
    )
    for i, result in enumerate(results):
        if i % 2 and i < 6:
            assert isinstance(result, TLSError), result
        else:
            assert isinstance(result, Commit) and result.hash == repo.head("main"), result


async def test_ssh_with_known_hosts_and_every_key_type(
    git_ssh: GitSSHServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(files=FILES)
    url = git_ssh.url_for(repo.name)
    commit = await fetch(url, Ref(branch="main"), ssh_auth(git_ssh), tmp_path / "m")
    assert commit.hash == repo.head("main")
    assert await remote_head(url, Ref(branch="main"), ssh_auth(git_ssh)) == commit.revision
    rsa_auth = ssh_auth(git_ssh, git_ssh.rsa_private_key_pem)
    assert (await fetch(url, Ref(branch="main"), rsa_auth, tmp_path / "r")).hash == commit.hash
    # ECDSA and a passphrase-protected ed25519 key, authorised for the test only.
    ecdsa = ec.generate_private_key(ec.SECP256R1())
    encrypted = ed25519.Ed25519PrivateKey.generate()
    keys = {
        "ecdsa": ecdsa.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        "encrypted": encrypted.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.BestAvailableEncryption(b"hunter2-passphrase"),
        ),
    }
    publics = [
        k.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
        for k in (ecdsa, encrypted)
    ]
    before = list(git_ssh.authorized)
    git_ssh.set_authorized_keys(before + publics)
    try:
        got = await fetch(url, Ref(branch="main"), ssh_auth(git_ssh, keys["ecdsa"]), tmp_path / "e")
        assert got.hash == commit.hash
        enc = ssh_auth(git_ssh, keys["encrypted"], password=b"hunter2-passphrase")
        assert (await fetch(url, Ref(branch="main"), enc, tmp_path / "p")).hash == commit.hash
    finally:
        git_ssh.set_authorized_keys(before)


def _hashed_entry(srv: GitSSHServer) -> str:
    salt = os.urandom(20)
    name = f"[{srv.host}]:{srv.port}"
    mac = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    key = srv.known_hosts.split(" ", 1)[1]
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(mac).decode()} {key}"


async def test_ssh_hashed_known_hosts_and_refusals(
    git_ssh: GitSSHServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(files=FILES)
    url = git_ssh.url_for(repo.name)
    hashed = ssh_auth(git_ssh, known_hosts=(_hashed_entry(git_ssh) + "\n").encode())
    assert (await fetch(url, Ref(branch="main"), hashed, tmp_path / "h")).hash == repo.head("main")
    before = len(git_ssh.commands())
    wrong = ssh_auth(git_ssh, known_hosts=git_ssh.wrong_known_hosts().encode())
    with pytest.raises(HostKeyError, match="key mismatch"):
        await fetch(url, Ref(branch="main"), wrong, tmp_path / "w")
    unknown = ssh_auth(
        git_ssh, known_hosts=b"example.org " + git_ssh.known_hosts.split(" ", 1)[1].encode()
    )
    with pytest.raises(HostKeyError, match="key is unknown"):
        await remote_head(url, Ref(branch="main"), unknown)
    stranger = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    with pytest.raises(AuthenticationError, match="unable to authenticate"):
        await fetch(url, Ref(branch="main"), ssh_auth(git_ssh, stranger), tmp_path / "s")
    assert len(git_ssh.commands()) == before  # no Git command ran for any refused session


# -- the no-op check and incremental fetches ------------------------------------------------------


async def test_remote_head_fetches_nothing_and_fetches_are_incremental(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(files={f"f{i}.yaml": f"n: {i}\n" * 50 for i in range(200)})
    url, auth, mirror = git_https.url_for(repo.name), https_auth(git_https), tmp_path / "m"
    with git_https.counting(repo.name) as first:
        commit = await fetch(url, Ref(branch="main"), auth, mirror)
    assert first.fetches == 1
    with git_https.counting(repo.name) as check:
        assert await remote_head(url, Ref(branch="main"), auth) == commit.revision
    assert check.fetches == 0 and check.ref_checks >= 1
    with git_https.counting(repo.name) as again:
        assert (await fetch(url, Ref(branch="main"), auth, mirror)).hash == commit.hash
    assert again.fetches == 0  # everything wanted is in the mirror already
    new = repo.commit({"f1.yaml": "changed: true\n"})
    with git_https.counting(repo.name) as incremental:
        assert (await fetch(url, Ref(branch="main"), auth, mirror)).hash == new
    assert incremental.fetches == 1
    assert incremental.bytes_out < first.bytes_out / 4


async def test_force_push_rewriting_history(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo()
    base = repo.commit(FILES)
    repo.commit({"x": "1"})
    url, auth, mirror = git_https.url_for(repo.name), https_auth(git_https), tmp_path / "m"
    await fetch(url, Ref(branch="main"), auth, mirror)
    rewritten = repo.commit({"y": "2"}, base=base, force=True)
    assert repo.head("main") == rewritten
    assert await remote_head(url, Ref(branch="main"), auth) == f"main@sha1:{rewritten}"
    commit = await fetch(url, Ref(branch="main"), auth, mirror)
    assert commit.hash == rewritten
    with tree_entries(mirror, commit.hash) as tree:
        assert sorted(e.path for e in tree) == ["README.md", "deploy", "deploy/app.yaml", "y"]


# -- failures -------------------------------------------------------------------------------------


async def test_empty_repository(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo()
    url, auth = git_https.url_for(repo.name), https_auth(git_https)
    with pytest.raises(EmptyRepositoryError, match=r"^git repository is empty$") as info:
        await fetch(url, Ref(branch="main"), auth, tmp_path / "m")
    assert info.value.reason == "EmptyGitRepository"
    with pytest.raises(EmptyRepositoryError) as tag_info:
        await fetch(url, Ref(tag="v1"), auth, tmp_path / "m")
    assert tag_info.value.reason == "GitOperationFailed"
    with pytest.raises(EmptyRepositoryError):
        await remote_head(url, Ref(branch="main"), auth)


async def test_missing_branch_and_missing_repository(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(files=FILES)
    url, auth = git_https.url_for(repo.name), https_auth(git_https)
    with pytest.raises(RefNotFoundError, match=r"couldn't find remote ref \"refs/heads/nope\""):
        await fetch(url, Ref(branch="nope"), auth, tmp_path / "m")
    assert await remote_head(url, Ref(branch="nope"), auth) is None
    with pytest.raises(FetchError, match="repository not found"):
        await fetch(git_https.url_for("does-not-exist"), Ref(), auth, tmp_path / "m")


async def test_server_down_then_back(
    git_http: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(files=FILES)
    url, auth = git_http.url_for(repo.name), https_auth(git_http)
    git_http.stop()
    try:
        with pytest.raises(FetchError, match=f"^unable to clone '{url}': ") as info:
            await fetch(url, Ref(branch="main"), auth, tmp_path / "m")
        assert not isinstance(info.value, AuthenticationError)
        with pytest.raises(FetchError, match="unable to list remote"):
            await remote_head(url, Ref(branch="main"), auth)
    finally:
        git_http.start()
    assert (await fetch(url, Ref(branch="main"), auth, tmp_path / "m")).hash == repo.head("main")


async def test_server_error_is_a_fetch_error(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(files=FILES)
    git_https.inject_error(503, count=1, repo=repo.name)
    with pytest.raises(FetchError, match="503"):
        await fetch_https(git_https, repo, Ref(branch="main"), tmp_path / "m")
    commit = await fetch_https(git_https, repo, Ref(branch="main"), tmp_path / "m")
    assert commit.hash == repo.head("main")


async def test_timeout(git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path) -> None:
    repo = git_repo(files=FILES)
    url = git_https.url_for(repo.name)
    data = {
        "username": (git_https.username or "").encode(),
        "password": (git_https.password or "").encode(),
        "ca.crt": git_https.ca_pem,
    }
    auth = AuthOptions.from_secret(url, data, timeout=0.5)
    git_https.latency = 2.0
    try:
        started = time.monotonic()
        with pytest.raises(GitTimeoutError, match=r"timed out after 0\.5s"):
            await fetch(url, Ref(branch="main"), auth, tmp_path / "m")
        assert time.monotonic() - started < 5
    finally:
        git_https.latency = 0.0
    assert (await fetch(url, Ref(branch="main"), https_auth(git_https), tmp_path / "m")).hash


async def test_url_rules(git_repo: GitRepoFactory, tmp_path: Path) -> None:
    repo = git_repo(files=FILES)
    auth = AuthOptions(transport="file")
    with pytest.raises(InvalidURLError, match="allow_file"):
        await fetch(repo.file_url, Ref(branch="main"), auth, tmp_path / "m")
    commit = await fetch(repo.file_url, Ref(branch="main"), auth, tmp_path / "m", allow_file=True)
    assert commit.hash == repo.head("main")
    head = await remote_head(repo.file_url, Ref(branch="main"), auth, allow_file=True)
    assert head == commit.revision
    with pytest.raises(InvalidURLError, match="should match"):
        await fetch("git@github.com:org/repo.git", Ref(), auth, tmp_path / "m")


async def test_a_broken_mirror_directory_is_rebuilt(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(files=FILES)
    mirror = tmp_path / "m"
    mirror.mkdir()
    (mirror / "junk").write_text("not a repository")
    commit = await fetch_https(git_https, repo, Ref(branch="main"), mirror)
    assert commit.hash == repo.head("main") and not (mirror / "junk").exists()


# -- the tree -------------------------------------------------------------------------------------


def _digest(entries_or_dir: object, ignore: IgnoreRules | None = None) -> str:
    out = io.BytesIO()
    if isinstance(entries_or_dir, Path):
        return Archiver().from_directory(entries_or_dir, out, ignore=ignore).digest
    return Archiver().from_entries(entries_or_dir, out, ignore=ignore).digest  # type: ignore[arg-type]


async def test_tree_entries_archive_equals_a_checkout(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo()
    sub = repo.commit({"x": "1"}, branch="sub")
    files: dict[str, str | bytes] = {
        "a.txt": "a\n",
        "a/b.txt": "nested\n",
        "a.b/c": "dots sort before slashes in git trees\n",
        "bin/run.sh": "#!/bin/sh\necho hi\n",
        "link": "a.txt",
        "vendor/lib": sub,
        "deep/er/still/file.yaml": "k: v\n",
        "img.png": b"\x89PNG\r\n",
        ".sourceignore": "*.log\n",
        "deep/.sourceignore": "er/still/\n!er/still/file.yaml\n",
        "app.log": "ignored\n",
        "unicode/é.txt": "utf-8 name\n",
        "empty": "",
    }
    modes = {"bin/run.sh": "100755", "link": "120000", "vendor/lib": "160000"}
    sha = repo.commit(files, modes=modes)
    commit = await fetch_https(git_https, repo, Ref(branch="main"), tmp_path / "m")
    checkout = tmp_path / "checkout"
    run_git(["clone", "-q", "-b", "main", str(repo.path), str(checkout)])
    assert run_git(["rev-parse", "HEAD"], cwd=checkout) == sha
    shutil.rmtree(checkout / ".git")
    assert (checkout / "vendor/lib").is_dir() and (checkout / "link").is_symlink()
    with tree_entries(tmp_path / "m", commit.hash) as tree:
        entries = list(tree)
        kinds = {e.path: e.kind for e in entries}
        assert kinds["vendor/lib"] == "dir" and kinds["link"] == "symlink"
        assert next(e for e in entries if e.path == "link").content() == b"a.txt"
        assert _digest(entries) == _digest(checkout)
    ignores = sourceignore_files(tmp_path / "m", commit.hash)
    assert ignores == [("", "*.log\n"), ("deep", "er/still/\n!er/still/file.yaml\n")]
    rules = IgnoreRules.from_sources(ignores, "img.png\n")
    with tree_entries(tmp_path / "m", commit.hash) as tree:
        assert _digest(tree, rules) == _digest(
            checkout, IgnoreRules.from_tree(checkout, "img.png\n")
        )


# -- signatures -----------------------------------------------------------------------------------


def _signed_commit(repo: BareRepo, sign: object, branch: str = "main") -> str:
    with Repo(str(repo.path)) as r:
        parent = r[r.refs[f"refs/heads/{branch}".encode()]]
        assert isinstance(parent, DulwichCommit)
        c = DulwichCommit()
        c.tree, c.parents = parent.tree, [parent.id]
        c.author = c.committer = b"Signer <signer@example.invalid>"
        c.author_time = c.commit_time = int(time.time())
        c.author_timezone = c.commit_timezone = 0
        c.message = b"signed commit\n"
        c.gpgsig = sign(c.as_raw_string())  # type: ignore[operator]
        r.object_store.add_object(c)
        r.refs[f"refs/heads/{branch}".encode()] = c.id
        return c.id.decode()


def _signed_tag(repo: BareRepo, name: str, target: str, sign: object) -> None:
    with Repo(str(repo.path)) as r:
        t = DulwichTag()
        t.object = (DulwichCommit, target.encode())
        t.name = name.encode()
        t.tagger = b"Signer <signer@example.invalid>"
        t.tag_time, t.tag_timezone = int(time.time()), 0
        t.message = b"signed tag\n"
        t.signature = sign(t.as_raw_string())  # type: ignore[operator]
        r.object_store.add_object(t)
        r.refs[f"refs/tags/{name}".encode()] = t.id


@pytest.fixture
def pgp_key() -> Iterator[pysequoia.Tsk]:
    yield pysequoia.Tsk.generate("Signer <signer@example.invalid>")


def _pgp_signer(key: pysequoia.Tsk) -> object:
    def sign(data: bytes) -> bytes:
        signed: bytes = pysequoia.sign(key.signer(), data, mode=pysequoia.SignatureMode.DETACHED)
        return signed

    return sign


def _ssh_signer(tmp_path: Path) -> tuple[object, bytes]:
    key = ed25519.Ed25519PrivateKey.generate()
    path = write_private(
        tmp_path / "signing_key",
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )

    def sign(data: bytes) -> bytes:
        proc = subprocess.run(
            ["ssh-keygen", "-Y", "sign", "-f", str(path), "-n", "git"],
            input=data,
            capture_output=True,
            check=True,
        )
        return proc.stdout

    return sign, public + b" signer\n"


async def test_pgp_signed_commit_and_tag(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path, pgp_key: pysequoia.Tsk
) -> None:
    repo = git_repo(files=FILES)
    sign = _pgp_signer(pgp_key)
    sha = _signed_commit(repo, sign)
    _signed_tag(repo, "v1.0.0", sha, sign)
    public = str(pgp_key.extract_certificate()).encode()
    key_id = pgp_key.extract_certificate().fingerprint[-16:].upper()
    keys = {"author.asc": public}
    commit = await fetch_https(git_https, repo, Ref(tag="v1.0.0"), tmp_path / "m")
    assert commit.signature is not None and commit.signature.startswith(b"-----BEGIN PGP")
    result = verify_commit(commit, "TagAndHEAD", keys)
    assert result.commit_key == key_id and result.tag_key == key_id
    assert result.message == (
        f"verified signature of\n\t- tag 'v1.0.0@{commit.tag.hash}' with key '{key_id}'"  # type: ignore[union-attr]
        f"\n\t- commit '{sha}' with key '{key_id}'"
    )
    other = str(pysequoia.Tsk.generate("Other").extract_certificate()).encode()
    with pytest.raises(VerificationError, match="unable to verify Git commit") as info:
        verify_commit(commit, "HEAD", {"other.asc": other})
    assert info.value.reason == "InvalidCommitSignature"
    branch = await fetch_https(git_https, repo, Ref(branch="main"), tmp_path / "m")
    with pytest.raises(VerificationError, match="tag reference is not specified"):
        verify_commit(branch, "Tag", keys)
    assert verify_commit(branch, "head", keys).commit_key == key_id


async def test_ssh_signed_commit_and_unsigned_ones(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(files=FILES)
    unsigned = await fetch_https(git_https, repo, Ref(branch="main"), tmp_path / "m")
    sign, public = _ssh_signer(tmp_path)
    with pytest.raises(VerificationError, match="signature is empty"):
        verify_commit(unsigned, "HEAD", {"key.sshpub": public})
    sha = _signed_commit(repo, sign)
    commit = await fetch_https(git_https, repo, Ref(branch="main"), tmp_path / "m")
    assert commit.hash == sha
    result = verify_commit(commit, "HEAD", {"key.sshpub": public, "pgp.asc": b"unused"})
    assert result.commit_key is not None and result.commit_key.startswith("SHA256:")
    _, other = _ssh_signer(tmp_path / "o")
    with pytest.raises(VerificationError, match="any of the given authorized keys"):
        verify_commit(commit, "HEAD", {"key.sshpub": other})
