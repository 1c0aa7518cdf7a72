"""Pytest fixtures for real Git servers (HTTPS via git http-backend, SSH via sshd).

A plain module of fixtures: load it as a plugin (``pytest_plugins = ["tests.fixtures_git"]`` or
``-p tests.fixtures_git``). All servers share one repositories root, so a repository created with
``git_repo()`` is reachable over file://, https and ssh at once::

    def test_x(git_repo, git_https, git_ssh):
        repo = git_repo()                                  # fresh, empty bare repo
        sha = repo.commit({"deploy/app.yaml": "kind: ConfigMap\\n"})
        git_https.url_for(repo.name)                       # https://127.0.0.1:P/<name>.git
        git_ssh.url_for(repo.name)                         # ssh://root@127.0.0.1:P/abs/<name>.git
        git_https.stats(repo.name).fetches                 # pack fetches served for it
"""

from __future__ import annotations

import itertools
import re
import secrets
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from testenv.git_server import (
    FileContent,
    GitHTTPServer,
    GitSSHServer,
    commit_tree,
    create_branch,
    create_tag,
    delete_ref,
    init_bare,
    list_refs,
    read_file,
    rev_parse,
    set_head,
)
from testenv.git_ssh import SSHD

__all__ = [
    "BareRepo",
    "GitRepoFactory",
    "git_http",
    "git_https",
    "git_repo",
    "git_repos_root",
    "git_ssh",
]


@dataclass
class BareRepo:
    """A bare repository under the shared repositories root, with commit helpers."""

    name: str
    path: Path

    @property
    def file_url(self) -> str:
        return f"file://{self.path}"

    def commit(
        self,
        files: Mapping[str, FileContent],
        message: str = "update",
        branch: str = "main",
        tag: str | None = None,
        **kwargs: Any,
    ) -> str:
        """Commit `files` on `branch` and return the full SHA (see testenv.git_repos.commit_tree:
        tag_message=, delete_others=, base=, modes=, date=, force=)."""
        return commit_tree(self.path, files, message, branch, tag, **kwargs)

    def tag(
        self, name: str, target: str = "HEAD", *, message: str | None = None, force: bool = False
    ) -> str:
        """Lightweight tag, or annotated with `message`; returns the tagged commit SHA."""
        return create_tag(self.path, name, target, message=message, force=force)

    def branch(self, name: str, start: str = "HEAD", *, force: bool = False) -> str:
        return create_branch(self.path, name, start, force=force)

    def delete_ref(self, ref: str) -> None:
        delete_ref(self.path, ref)

    def set_head(self, branch: str) -> None:
        set_head(self.path, branch)

    def head(self, rev: str = "HEAD") -> str | None:
        """Commit SHA of `rev` ("main", "refs/tags/v1", ...), None if missing."""
        return rev_parse(self.path, rev)

    def refs(self) -> dict[str, str]:
        return list_refs(self.path)

    def read(self, rev: str, file_path: str) -> bytes:
        return read_file(self.path, rev, file_path)


@dataclass
class GitRepoFactory:
    """Creates fresh bare repositories with unique names derived from the test name."""

    root: Path
    prefix: str
    created: list[BareRepo] = field(default_factory=list)
    _seq: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def __call__(
        self,
        name: str | None = None,
        *,
        files: Mapping[str, FileContent] | None = None,
        message: str = "initial",
        default_branch: str = "main",
    ) -> BareRepo:
        """A new bare repository (empty, or with one commit of `files` on `default_branch`).

        `name` may contain "/" for nested repositories ("org/app"); a unique suffix is always
        added so names never collide within a session."""
        base = _slug(name) if name else self.prefix
        unique = f"{base}-{next(self._seq)}-{secrets.token_hex(2)}"
        if name and "/" in name:
            unique = "/".join([*(_slug(p) for p in name.split("/")[:-1]), unique])
        path = init_bare(self.root / f"{unique}.git", default_branch)
        repo = BareRepo(name=unique, path=path)
        if files is not None:
            repo.commit(files, message, branch=default_branch)
        self.created.append(repo)
        return repo


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (slug or "repo")[:40].rstrip("-")


@pytest.fixture(scope="session")
def git_repos_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory holding every test bare repository (shared by all Git servers)."""
    return tmp_path_factory.mktemp("git-repos").resolve()


@pytest.fixture(scope="session")
def git_https(
    git_repos_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GitHTTPServer]:
    """HTTPS git server (self-signed CA in .ca_pem_path/.ca_pem; basic auth .username/.password,
    bearer .token) serving `git_repos_root`."""
    server = GitHTTPServer(git_repos_root, tls=True, workdir=tmp_path_factory.mktemp("git-https"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def git_http(
    git_repos_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GitHTTPServer]:
    """Plain-HTTP git server with the same auth options, serving `git_repos_root`."""
    server = GitHTTPServer(git_repos_root, tls=False, workdir=tmp_path_factory.mktemp("git-http"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def git_ssh(
    git_repos_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GitSSHServer]:
    """sshd serving `git_repos_root` with key auth (.private_key_path/.private_key_pem ed25519,
    .rsa_private_key_path) and a host key (.known_hosts line, .wrong_known_hosts())."""
    if not Path(SSHD).exists() or shutil.which("ssh") is None:
        pytest.skip("openssh-server/openssh-client not installed (apt-get install openssh-server)")
    server = GitSSHServer(git_repos_root, workdir=tmp_path_factory.mktemp("git-ssh"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def git_repo(git_repos_root: Path, request: pytest.FixtureRequest) -> GitRepoFactory:
    """Factory of fresh bare repositories: ``repo = git_repo()``; ``repo.commit({...})``."""
    return GitRepoFactory(root=git_repos_root, prefix=_slug(request.node.name))
