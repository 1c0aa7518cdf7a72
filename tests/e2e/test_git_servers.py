"""The test Git servers are real: git and libgit2 clone from them, auth and TLS/SSH trust hold."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pygit2
import pytest

from testenv.git_server import GitHTTPServer, GitSSHServer, git_env, run_git
from testenv.pki import CertificateAuthority, generate_ssh_key, write_private

if TYPE_CHECKING:
    from tests.fixtures_git import GitRepoFactory


pytestmark = pytest.mark.e2e

FILES = {
    "deploy/app.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n",
    "README.md": "hello\n",
}


def run(
    args: list[str], env: Mapping[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run git, never raising: tests assert on returncode and stderr."""
    return subprocess.run(
        ["git", *args], env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=60
    )


def clone_ok(url: str, dest: Path, env: Mapping[str, str], *extra: str) -> str:
    res = run(["clone", "--quiet", *extra, url, str(dest)], env)
    assert res.returncode == 0, res.stderr
    return run_git(["rev-parse", "HEAD"], cwd=dest)


# -- HTTPS ------------------------------------------------------------------------------------


def test_https_clone_with_basic_auth_and_ca(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo()
    sha = repo.commit(FILES, "first")
    url = git_https.url_for(repo.name, credentials=True)
    assert clone_ok(url, tmp_path / "c", git_https.git_env()) == sha
    assert (tmp_path / "c/deploy/app.yaml").read_text() == FILES["deploy/app.yaml"]
    # The DNS SAN works too.
    url = git_https.url_for(repo.name, host="localhost", credentials=True)
    assert clone_ok(url, tmp_path / "d", git_https.git_env()) == sha
    recs = git_https.requests(repo.name)
    assert {r.user for r in recs if r.status == 200} == {git_https.username}


def test_https_bearer_token(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(files=FILES)
    res = run(
        [*git_https.bearer_header_args(), "clone", "-q", git_https.url_for(repo.name), "c"],
        git_https.git_env(),
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert run_git(["rev-parse", "HEAD"], cwd=tmp_path / "c") == repo.head("main")
    bad = run(
        [
            "-c",
            "http.extraHeader=Authorization: Bearer nope",
            "ls-remote",
            git_https.url_for(repo.name),
        ],
        git_https.git_env(),
    )
    assert bad.returncode != 0


def test_https_without_or_with_wrong_credentials_is_refused(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(files=FILES)
    res = run(["clone", git_https.url_for(repo.name), str(tmp_path / "c")], git_https.git_env())
    assert res.returncode != 0
    assert "could not read Username" in res.stderr, res.stderr

    url = git_https.url_for(repo.name).replace("https://", f"https://{git_https.username}:wrong@")
    res = run(["ls-remote", url], git_https.git_env())
    assert res.returncode != 0
    assert "Authentication failed" in res.stderr, res.stderr

    stats = git_https.stats(repo.name)
    assert stats.unauthorized >= 2
    assert stats.fetches == 0
    assert not (tmp_path / "c").exists()


def test_https_wrong_ca_fails_tls(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(files=FILES)
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(CertificateAuthority("some other CA").pair.cert_pem)
    res = run(
        ["ls-remote", git_https.url_for(repo.name, credentials=True)],
        git_env({"GIT_SSL_CAINFO": str(other_ca)}),
    )
    assert res.returncode != 0
    # Debian's git uses libcurl-gnutls; an OpenSSL build says "SSL certificate problem".
    assert (
        "server certificate verification failed" in res.stderr
        or "SSL certificate problem" in res.stderr
    ), res.stderr
    assert git_https.stats(repo.name).total == 0  # no request got past the handshake


def test_https_counters_tell_ref_checks_from_fetches(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(files=FILES)
    env = git_https.git_env()
    url = git_https.url_for(repo.name, credentials=True)

    with git_https.counting(repo.name) as clone:
        clone_ok(url, tmp_path / "c", env)
    assert clone.fetches >= 1
    assert clone.info_refs == 1

    # Protocol v0: ls-remote is exactly one GET info/refs, nothing else.
    with git_https.counting(repo.name) as v0:
        res = run(["-c", "protocol.version=0", "ls-remote", url], env)
    assert res.returncode == 0, res.stderr
    assert str(repo.head("main")) in res.stdout
    # (git first tries without credentials and gets a 401, as curl negotiates auth.)
    assert (v0.info_refs, v0.ls_refs, v0.fetches) == (1, 0, 0)
    assert v0.total - v0.unauthorized == 1
    last = git_https.requests(repo.name)[-1]
    assert (last.method, last.query, last.status) == ("GET", "service=git-upload-pack", 200)

    # Protocol v2 (git's default): GET info/refs + POST ls-refs, still no fetch.
    with git_https.counting(repo.name) as v2:
        res = run(["ls-remote", url], env)
    assert res.returncode == 0, res.stderr
    assert (v2.info_refs, v2.ls_refs, v2.fetches) == (1, 1, 0)

    # A fetch with nothing new transfers no pack.
    with git_https.counting(repo.name) as noop:
        res = run(["fetch", "--quiet", "origin"], env, cwd=tmp_path / "c")
    assert res.returncode == 0, res.stderr
    assert noop.fetches == 0

    # One new commit: a fetch happens, and the clone gets exactly that commit.
    sha2 = repo.commit({"deploy/app.yaml": "changed\n"}, "second")
    with git_https.counting(repo.name) as inc:
        res = run(["pull", "--quiet", "--ff-only"], env, cwd=tmp_path / "c")
    assert res.returncode == 0, res.stderr
    assert inc.fetches >= 1
    assert run_git(["rev-parse", "HEAD"], cwd=tmp_path / "c") == sha2
    assert (tmp_path / "c/deploy/app.yaml").read_text() == "changed\n"


def test_https_stop_and_start_on_same_port(
    git_https: GitHTTPServer, git_repo: GitRepoFactory
) -> None:
    repo = git_repo(files=FILES)
    env = git_https.git_env()
    url = git_https.url_for(repo.name, credentials=True)
    port = git_https.port
    git_https.stop()
    try:
        res = run(["ls-remote", url], env)
        assert res.returncode != 0
        assert "Failed to connect" in res.stderr or "Connection refused" in res.stderr, res.stderr
    finally:
        git_https.start()
    assert git_https.port == port
    res = run(["ls-remote", url], env)
    assert res.returncode == 0, res.stderr
    assert str(repo.head("main")) in res.stdout


def test_https_injected_errors_then_recovery(
    git_https: GitHTTPServer, git_repo: GitRepoFactory
) -> None:
    repo = git_repo(files=FILES)
    env = git_https.git_env()
    url = git_https.url_for(repo.name, credentials=True)
    git_https.inject_error(503, count=1, repo=repo.name)
    res = run(["ls-remote", url], env)
    assert res.returncode != 0
    assert "503" in res.stderr, res.stderr
    assert run(["ls-remote", url], env).returncode == 0
    assert git_https.stats(repo.name).injected == 1


def test_plain_http(git_http: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path) -> None:
    repo = git_repo(files=FILES)
    url = git_http.url_for(repo.name, credentials=True)
    assert url.startswith("http://")
    assert clone_ok(url, tmp_path / "c", git_http.git_env()) == repo.head("main")


# -- pygit2 (libgit2) -------------------------------------------------------------------------


@pytest.fixture
def pygit2_home(tmp_path: Path) -> Iterator[Path]:
    """Point libgit2's home (where it reads ~/.ssh/known_hosts) at a temp dir, then restore."""
    old = pygit2.settings.homedir
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    pygit2.settings.homedir = str(home)
    try:
        yield home
    finally:
        pygit2.settings.homedir = old or str(Path.home())


class _UserPass(pygit2.RemoteCallbacks):
    def __init__(self, username: str, password: str) -> None:
        super().__init__()
        self._cred = pygit2.UserPass(username, password)

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: pygit2.enums.CredentialType
    ) -> pygit2.UserPass:
        return self._cred


def test_pygit2_clone_and_ls_remote_over_https(
    git_https: GitHTTPServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo()
    sha = repo.commit(FILES, "first", tag="v1.0.0", tag_message="release")
    # libgit2 has no per-call CA option in pygit2; this adds the test CA to its global store.
    pygit2.settings.set_ssl_cert_locations(str(git_https.ca_pem_path), None)
    assert git_https.username is not None and git_https.password is not None
    cb = _UserPass(git_https.username, git_https.password)
    url = git_https.url_for(repo.name)

    with git_https.counting(repo.name) as clone:
        cloned = pygit2.clone_repository(url, str(tmp_path / "c"), callbacks=cb)
    assert str(cloned.head.target) == sha
    assert (tmp_path / "c/deploy/app.yaml").read_text() == FILES["deploy/app.yaml"]
    assert clone.fetches == 1
    assert all("libgit2" in (r.user_agent or "") for r in git_https.requests(repo.name))

    scratch = pygit2.init_repository(str(tmp_path / "scratch"), bare=True)
    with git_https.counting(repo.name) as check:
        heads = {h.name: str(h.oid) for h in scratch.remotes.create_anonymous(url).list_heads(cb)}
    assert heads["refs/heads/main"] == sha
    assert "refs/tags/v1.0.0" in heads
    assert check.fetches == 0
    assert check.info_refs == 1

    with pytest.raises(pygit2.GitError):
        pygit2.clone_repository(url, str(tmp_path / "bad"), callbacks=_UserPass("x", "y"))


def test_pygit2_ssh_known_hosts(
    git_ssh: GitSSHServer, git_repo: GitRepoFactory, tmp_path: Path, pygit2_home: Path
) -> None:
    repo = git_repo(files=FILES)
    seen: list[bool] = []

    class Callbacks(pygit2.RemoteCallbacks):
        def credentials(
            self, url: str, username: str | None, allowed_types: pygit2.enums.CredentialType
        ) -> pygit2.Keypair:
            return pygit2.KeypairFromMemory(
                username or git_ssh.user, git_ssh.public_key, git_ssh.private_key_pem.decode(), ""
            )

        def certificate_check(self, certificate: None, valid: bool, host: bytes) -> bool:
            seen.append(valid)
            return valid

    known_hosts = pygit2_home / ".ssh/known_hosts"
    known_hosts.write_text(git_ssh.known_hosts + "\n")
    cloned = pygit2.clone_repository(
        git_ssh.url_for(repo.name), str(tmp_path / "c"), callbacks=Callbacks()
    )
    assert str(cloned.head.target) == repo.head("main")
    assert seen == [True]

    known_hosts.write_text(git_ssh.wrong_known_hosts() + "\n")
    with pytest.raises(pygit2.GitError, match="hostkey"):
        pygit2.clone_repository(
            git_ssh.url_for(repo.name), str(tmp_path / "d"), callbacks=Callbacks()
        )
    assert seen[-1] is False


# -- SSH --------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["ed25519", "rsa"])
def test_ssh_clone_with_known_hosts(
    git_ssh: GitSSHServer,
    git_https: GitHTTPServer,
    git_repo: GitRepoFactory,
    tmp_path: Path,
    key: str,
) -> None:
    repo = git_repo()
    sha = repo.commit(FILES, "first")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(git_ssh.known_hosts + "\n")
    assert git_ssh.known_hosts.startswith(f"[127.0.0.1]:{git_ssh.port} ssh-ed25519 AAAA")
    url = git_ssh.url_for(repo.name)
    assert url == f"ssh://{git_ssh.user}@127.0.0.1:{git_ssh.port}{repo.path}"
    env = git_ssh.git_env(key=key, known_hosts=known_hosts)
    assert clone_ok(url, tmp_path / "c", env) == sha
    assert (tmp_path / "c/README.md").read_text() == "hello\n"
    assert f"git-upload-pack '{repo.path}'" in git_ssh.commands()
    # The same repository is served over https.
    https_url = git_https.url_for(repo.name, credentials=True)
    assert clone_ok(https_url, tmp_path / "h", git_https.git_env()) == sha


def test_ssh_wrong_known_hosts_is_refused(
    git_ssh: GitSSHServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(files=FILES)
    wrong = tmp_path / "known_hosts"
    wrong.write_text(git_ssh.wrong_known_hosts() + "\n")
    assert git_ssh.wrong_known_hosts() != git_ssh.known_hosts
    assert git_ssh.wrong_known_hosts().split()[0] == git_ssh.known_hosts.split()[0]
    res = run(["ls-remote", git_ssh.url_for(repo.name)], git_ssh.git_env(known_hosts=wrong))
    assert res.returncode != 0
    assert "Host key verification failed" in res.stderr, res.stderr
    # An empty known_hosts is refused as well (StrictHostKeyChecking=yes).
    empty = tmp_path / "empty"
    empty.write_text("")
    res = run(["ls-remote", git_ssh.url_for(repo.name)], git_ssh.git_env(known_hosts=empty))
    assert "Host key verification failed" in res.stderr, res.stderr
    assert f"git-upload-pack '{repo.path}'" not in git_ssh.commands()


def test_ssh_unauthorized_client_key_is_refused(
    git_ssh: GitSSHServer, git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(files=FILES)
    stranger = write_private(tmp_path / "id_stranger", generate_ssh_key("ed25519").private_pem)
    res = run(["ls-remote", git_ssh.url_for(repo.name)], git_ssh.git_env(key=stranger))
    assert res.returncode != 0
    assert "Permission denied (publickey)" in res.stderr, res.stderr


def test_ssh_stop_and_start_on_same_port(tmp_path: Path, git_repo: GitRepoFactory) -> None:
    repo = git_repo(files=FILES)
    server = GitSSHServer(repo.path.parent, workdir=tmp_path / "sshd")
    server.start()
    try:
        port, pid = server.port, server.pid
        url = server.url_for(repo.name)
        assert run(["ls-remote", url], server.git_env()).returncode == 0
        server.stop()
        assert pid is not None and not Path(f"/proc/{pid}").exists()
        res = run(["ls-remote", url], server.git_env())
        assert res.returncode != 0
        assert "Connection refused" in res.stderr, res.stderr
        server.start()
        assert server.port == port and server.pid != pid
        res = run(["ls-remote", url], server.git_env())
        assert res.returncode == 0, res.stderr
        assert str(repo.head("main")) in res.stdout
    finally:
        server.close()
    assert not server.running


def test_https_server_instances_side_by_side(tmp_path: Path, git_repo: GitRepoFactory) -> None:
    repo = git_repo(files=FILES)
    with (
        GitHTTPServer(repo.path.parent, workdir=tmp_path / "a") as a,
        GitHTTPServer(repo.path.parent, workdir=tmp_path / "b", basic_auth=False) as b,
    ):
        assert a.port != b.port and a.ca_pem != b.ca_pem
        res = run(["ls-remote", a.url_for(repo.name, credentials=True)], a.git_env())
        assert res.returncode == 0, res.stderr
        # b only takes the bearer token
        res = run(["ls-remote", b.url_for(repo.name)], b.git_env())
        assert res.returncode != 0
        res = run([*b.bearer_header_args(), "ls-remote", b.url_for(repo.name)], b.git_env())
        assert res.returncode == 0, res.stderr
        # a's CA does not vouch for b
        res = run(["ls-remote", b.url_for(repo.name)], a.git_env())
        assert res.returncode != 0
