"""Test-only helpers to create bare Git repositories and commit trees of files into them.

Everything goes through the git CLI with a fixed identity and no user/system configuration, so it
behaves the same on any machine (no `git config --global user.name` needed).

Commits are written with `git fast-import` straight into the bare repository (no working tree, no
clone, one process per commit however many files), which is fast enough to build repositories of
tens of thousands of files. For a remote URL (https://, ssh://) the commit is made in a scratch
repository seeded from the remote and pushed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

AUTHOR_NAME = "tidal-test"
AUTHOR_EMAIL = "tidal-test@example.invalid"

FileContent = bytes | str | None
"""A file's content: bytes or str (UTF-8); None deletes the path in the new commit."""


class GitError(RuntimeError):
    """A git command failed; the message carries the command and its stderr."""

    def __init__(self, args: Sequence[str], returncode: int, stderr: str) -> None:
        self.args_ = list(args)
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"git {' '.join(args)} failed ({returncode}): {stderr.strip()}")


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment used for test git commands: fixed identity, no user or system config."""
    env = dict(os.environ)
    for key in list(env):
        # Leaked GIT_DIR/GIT_WORK_TREE/etc. from a surrounding git hook would redirect us.
        if key.startswith("GIT_") and key not in ("GIT_SSH_COMMAND", "GIT_SSL_CAINFO"):
            del env[key]
    env.update(
        {
            "GIT_AUTHOR_NAME": AUTHOR_NAME,
            "GIT_AUTHOR_EMAIL": AUTHOR_EMAIL,
            "GIT_COMMITTER_NAME": AUTHOR_NAME,
            "GIT_COMMITTER_EMAIL": AUTHOR_EMAIL,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "",
            "SSH_ASKPASS": "",
            "LC_ALL": "C",
        }
    )
    if extra:
        env.update(extra)
    return env


def run_git(
    args: Sequence[str],
    *,
    cwd: Path | str | None = None,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> str:
    """Run `git <args>` and return stdout (stripped); raise :class:`GitError` on failure."""
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=input,
        env=git_env(env),
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise GitError(args, proc.returncode, proc.stderr.decode(errors="replace"))
    return proc.stdout.decode(errors="replace").strip()


def init_bare(path: Path | str, default_branch: str = "main") -> Path:
    """Create an empty bare repository at `path` (idempotent) whose HEAD is `default_branch`."""
    path = Path(path)
    if not (path / "HEAD").exists():
        path.mkdir(parents=True, exist_ok=True)
        run_git(["init", "--bare", "--quiet", f"--initial-branch={default_branch}", str(path)])
        # Serve over http without a per-repo export marker and keep packs reachable for dumb http.
        run_git(["config", "http.receivepack", "true"], cwd=path)
        run_git(["config", "uploadpack.allowFilter", "true"], cwd=path)
        run_git(["config", "uploadpack.allowAnySHA1InWant", "true"], cwd=path)
    return path


_REMOTE_RE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def _local_path(repo: Path | str) -> Path | None:
    """The filesystem path for a path or file:// URL, None for a remote URL."""
    if isinstance(repo, Path):
        return repo
    if repo.startswith("file://"):
        return Path(repo[len("file://") :])
    if _REMOTE_RE.match(repo):
        return None
    return Path(repo)


def rev_parse(repo: Path | str, rev: str) -> str | None:
    """Full SHA of `rev` (peeled to a commit) in a local repository, None if it does not exist."""
    path = _local_path(repo)
    if path is None:
        raise ValueError(f"rev_parse needs a local repository, got {repo!r}")
    try:
        return run_git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=path)
    except GitError:
        return None


def list_refs(repo: Path | str) -> dict[str, str]:
    """All refs of a local repository mapped to the object they point at (tags not peeled)."""
    path = _local_path(repo)
    if path is None:
        raise ValueError(f"list_refs needs a local repository, got {repo!r}")
    out = run_git(["for-each-ref", "--format=%(objectname) %(refname)"], cwd=path)
    refs: dict[str, str] = {}
    for line in out.splitlines():
        sha, name = line.split(" ", 1)
        refs[name] = sha
    return refs


def _quote_path(path: str) -> str:
    if "\n" in path or '"' in path or "\\" in path or path.startswith(" ") or path.endswith(" "):
        escaped = path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return path


def _data(payload: bytes) -> bytes:
    return b"data %d\n" % len(payload) + payload + b"\n"


def _fast_import_commit(
    path: Path,
    *,
    ref: str,
    files: Mapping[str, FileContent],
    message: str,
    parent: str | None,
    delete_others: bool,
    modes: Mapping[str, str],
    date: int,
    force: bool,
) -> str:
    ident = f"{AUTHOR_NAME} <{AUTHOR_EMAIL}> {date} +0000"
    chunks: list[bytes] = [
        f"commit {ref}\nmark :1\nauthor {ident}\ncommitter {ident}\n".encode(),
        _data(message.encode()),
    ]
    if parent:
        chunks.append(f"from {parent}\n".encode())
    if delete_others:
        chunks.append(b"deleteall\n")
    for name, content in files.items():
        name = name.strip("/")
        if not name:
            raise ValueError("empty file path")
        qname = _quote_path(name).encode()
        if content is None:
            chunks.append(b"D " + qname + b"\n")
            continue
        mode = modes.get(name, "100644")
        if mode == "160000":  # submodule: content is the commit SHA
            target = content.decode() if isinstance(content, bytes) else content
            chunks.append(f"M 160000 {target.strip()} ".encode() + qname + b"\n")
            continue
        payload = content.encode() if isinstance(content, str) else content
        chunks.append(f"M {mode} inline ".encode() + qname + b"\n" + _data(payload))
    chunks.append(b"\ndone\n")
    args = ["fast-import", "--quiet", "--done"]
    if force:
        args.append("--force")
    run_git(args, cwd=path, input=b"".join(chunks))
    sha = rev_parse(path, ref)
    if sha is None:  # pragma: no cover - fast-import succeeded, so the ref exists
        raise RuntimeError(f"fast-import did not create {ref}")
    return sha


def _ensure_head(path: Path, branch: str) -> None:
    """Point HEAD at `branch` when HEAD's current target does not exist (fresh repository)."""
    head = run_git(["symbolic-ref", "--quiet", "HEAD"], cwd=path)
    if rev_parse(path, head) is None:
        run_git(["symbolic-ref", "HEAD", f"refs/heads/{branch}"], cwd=path)


def commit_tree(
    repo: Path | str,
    files: Mapping[str, FileContent],
    message: str = "update",
    branch: str = "main",
    tag: str | None = None,
    *,
    tag_message: str | None = None,
    delete_others: bool = False,
    base: str | None = None,
    modes: Mapping[str, str] | None = None,
    date: int | None = None,
    force: bool = False,
    env: Mapping[str, str] | None = None,
) -> str:
    """Commit `files` on `branch` of `repo` and return the new commit's full SHA.

    - `repo`: a bare repository path (created when missing), a file:// URL, or a remote URL
      (https://, ssh://; the commit is pushed there, `env` can carry GIT_SSL_CAINFO or
      GIT_SSH_COMMAND).
    - `files`: path -> content (bytes or str); None deletes the path. Paths use "/" separators.
    - `delete_others`: the commit's tree is exactly `files` (otherwise it is the parent's tree
      with `files` applied).
    - `base`: for a branch that does not exist yet, the rev to start it from (default: HEAD if the
      repository has commits, else a root commit). Ignored when the branch exists.
    - `tag`: also create this tag on the commit (annotated when `tag_message` is given).
    - `modes`: path -> git file mode ("100755" executable, "120000" symlink whose content is
      the target, "160000" submodule whose content is a commit SHA). Default "100644".
    - `date`: author/committer timestamp (epoch seconds); default now.
    - `force`: allow a non-fast-forward update of an existing branch (with `base`) or tag.
    """
    local = _local_path(repo)
    if local is None:
        return _commit_remote(
            str(repo),
            files,
            message=message,
            branch=branch,
            tag=tag,
            tag_message=tag_message,
            delete_others=delete_others,
            base=base,
            modes=modes,
            date=date,
            force=force,
            env=env,
        )
    path = init_bare(local)
    ref = f"refs/heads/{branch}"
    parent = rev_parse(path, ref)
    if parent is None:
        parent = rev_parse(path, base) if base else rev_parse(path, "HEAD")
        if base and parent is None:
            raise ValueError(f"base {base!r} does not exist in {path}")
    elif base and force:
        parent = rev_parse(path, base)
    sha = _fast_import_commit(
        path,
        ref=ref,
        files=files,
        message=message,
        parent=parent,
        delete_others=delete_others,
        modes=modes or {},
        date=int(time.time()) if date is None else date,
        force=force,
    )
    _ensure_head(path, branch)
    if tag:
        create_tag(path, tag, sha, message=tag_message, force=force)
    return sha


def _commit_remote(
    url: str,
    files: Mapping[str, FileContent],
    *,
    message: str,
    branch: str,
    tag: str | None,
    tag_message: str | None,
    delete_others: bool,
    base: str | None,
    modes: Mapping[str, str] | None,
    date: int | None,
    force: bool,
    env: Mapping[str, str] | None,
) -> str:
    scratch = Path(tempfile.mkdtemp(prefix="tidal-commit-"))
    try:
        init_bare(scratch)
        run_git(["fetch", "--quiet", url, "+refs/heads/*:refs/heads/*"], cwd=scratch, env=env)
        if rev_parse(scratch, f"refs/heads/{branch}") is None and base is None:
            remote_head = run_git(["ls-remote", "--symref", url, "HEAD"], cwd=scratch, env=env)
            match = re.search(r"ref: refs/heads/(\S+)\s+HEAD", remote_head)
            if match and rev_parse(scratch, f"refs/heads/{match.group(1)}"):
                base = f"refs/heads/{match.group(1)}"
        sha = commit_tree(
            scratch,
            files,
            message,
            branch,
            tag,
            tag_message=tag_message,
            delete_others=delete_others,
            base=base,
            modes=modes,
            date=date,
            force=force,
        )
        refspecs = [f"{'+' if force else ''}refs/heads/{branch}:refs/heads/{branch}"]
        if tag:
            refspecs.append(f"{'+' if force else ''}refs/tags/{tag}:refs/tags/{tag}")
        run_git(["push", "--quiet", url, *refspecs], cwd=scratch, env=env)
        return sha
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def create_tag(
    repo: Path | str,
    name: str,
    target: str = "HEAD",
    *,
    message: str | None = None,
    force: bool = False,
) -> str:
    """Create a lightweight tag (annotated with `message`); return the tagged commit's SHA."""
    path = _require_local(repo)
    sha = rev_parse(path, target)
    if sha is None:
        raise ValueError(f"tag target {target!r} does not exist in {path}")
    args = ["tag"]
    if force:
        args.append("--force")
    if message is not None:
        args += ["--annotate", "--message", message]
    run_git([*args, name, sha], cwd=path)
    return sha


def create_branch(repo: Path | str, name: str, start: str = "HEAD", *, force: bool = False) -> str:
    """Create (or with `force`, move) branch `name` at `start`; return its commit SHA."""
    path = _require_local(repo)
    sha = rev_parse(path, start)
    if sha is None:
        raise ValueError(f"branch start {start!r} does not exist in {path}")
    ref = f"refs/heads/{name}"
    if not force and rev_parse(path, ref) is not None:
        raise ValueError(f"branch {name!r} already exists in {path}")
    run_git(["update-ref", ref, sha], cwd=path)
    return sha


def delete_ref(repo: Path | str, ref: str) -> None:
    """Delete a ref ("refs/heads/x", "refs/tags/v1", or a short branch name)."""
    path = _require_local(repo)
    full = ref if ref.startswith("refs/") else f"refs/heads/{ref}"
    run_git(["update-ref", "-d", full], cwd=path)


def set_head(repo: Path | str, branch: str) -> None:
    """Make `branch` the repository's default branch (what HEAD points at)."""
    run_git(["symbolic-ref", "HEAD", f"refs/heads/{branch}"], cwd=_require_local(repo))


def read_file(repo: Path | str, rev: str, file_path: str) -> bytes:
    """The content of `file_path` at `rev` (raises GitError if missing)."""
    path = _require_local(repo)
    proc = subprocess.run(
        ["git", "cat-file", "blob", f"{rev}:{file_path}"],
        cwd=path,
        env=git_env(),
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise GitError(
            ["cat-file", "blob", f"{rev}:{file_path}"], proc.returncode, proc.stderr.decode()
        )
    return proc.stdout


def _require_local(repo: Path | str) -> Path:
    path = _local_path(repo)
    if path is None:
        raise ValueError(f"needs a local repository, got {repo!r}")
    return path
