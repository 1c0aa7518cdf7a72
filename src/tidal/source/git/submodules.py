"""spec.recurseSubmodules: the submodules of a fetched commit, fetched in turn, recursively.

What Flux does (go-git's clone with RecurseSubmodules = DefaultSubmoduleRecursionDepth),
and what tidal does the same way:

- the submodules are those `.gitmodules` lists at the commit; each is checked out at the
  commit its gitlink records in the tree (not at a branch tip), and its own submodules
  follow, down to 11 levels (go-git counts 10 down to 0); deeper ones stay empty
  directories, as a cycle of submodules ends up;
- relative URLs resolve against the URL of the repository holding the `.gitmodules`
  (`gitmodules.resolve_url`);
- a `.gitmodules` entry whose path holds no gitlink, a broken `.gitmodules`, or a submodule
  that cannot be fetched fails the reconcile (FetchFailed, GitOperationFailed); the message
  names the submodule by its path.

Where tidal differs, and why:

- A gitlink that `.gitmodules` does not describe is an error (git's "No url found for
  submodule path"); go-git leaves an empty directory there. A checkout that silently misses
  a submodule it was asked to recurse into is worse than a clear failure.
- Credentials: go-git sends the GitRepository's credentials to whatever URL a `.gitmodules`
  names, so a repository could have them sent to any host. tidal sends a password, token or
  TLS client key only to the parent's own origin (same scheme, host and port); elsewhere the
  fetch is anonymous, or uses the user:password written in that URL. An SSH key is used for
  every SSH submodule: it is never disclosed, and the host must be in known_hosts anyway.
  The CA bundle and the proxy apply to every submodule (go-git passes neither).
- Fetching: go-git clones each submodule in full (every branch, all history); tidal asks for
  the pinned commit at depth 1 and falls back to the full fetch only when the server refuses
  (`client.fetch_commit_sync`). Each submodule URL gets its own bare mirror inside the
  GitRepository's, so a later reconcile transfers only what changed; mirrors the latest
  checkout did not use are removed.
- With spec.sparseCheckout only the submodules inside (or leading to) the listed paths are
  fetched, since no other can reach the artifact.
- One deadline, spec.timeout, covers all the submodules of a reconcile (go-git's shares
  one with the clone itself).
"""

from __future__ import annotations

import hashlib
import shutil
import stat
from dataclasses import replace
from pathlib import Path

from tidal.source.git import client
from tidal.source.git.auth import DEFAULT_SSH_USER, AuthOptions
from tidal.source.git.errors import GitError, SubmoduleError, redact
from tidal.source.git.gitmodules import GITMODULES, SubmoduleSpec, parse_gitmodules, resolve_url
from tidal.source.git.operation import Operation, run_in_thread
from tidal.source.git.sparse import Scope, SparseSelection
from tidal.source.git.tree import Checkout, GitTree
from tidal.source.git.url import GitURL, parse_url

MAX_LEVELS = 11
MODULES_DIR = "tidal-modules"  # inside the GitRepository's mirror, one bare mirror per URL


def _origin(url: GitURL) -> tuple[str, str, int]:
    return url.scheme, url.host.lower(), url.effective_port


def submodule_auth(parent_url: GitURL, parent: AuthOptions, url: GitURL) -> AuthOptions:
    """The options a submodule at `url` is fetched with, the GitRepository's being `parent`
    for `parent_url` (see the module docstring for the policy)."""
    if url.is_file:
        return AuthOptions(transport="file", proxy=parent.proxy, timeout=parent.timeout)
    if url.is_ssh:
        if parent.transport != "ssh":
            raise SubmoduleError(
                "an ssh URL needs an SSH key, and the GitRepository's credentials are for "
                f"{parent.transport}"
            )
        return replace(parent, username=url.username or DEFAULT_SSH_USER)
    if _origin(url) == _origin(parent_url):
        opts = replace(parent, transport=url.scheme)
        if not (opts.username or opts.password or opts.bearer_token) and url.username:
            opts = replace(opts, username=url.username, password=url.password or "")
        return opts
    return AuthOptions(
        transport=url.scheme,
        username=url.username or "",
        password=url.password or "",
        ca=parent.ca,
        proxy=parent.proxy,
        timeout=parent.timeout,
    )


def _mirror_for(modules_root: Path, url: GitURL) -> Path:
    return modules_root / hashlib.sha256(url.url.encode()).hexdigest()[:32]


def _describe(spec: SubmoduleSpec, prefix: str) -> str:
    where = prefix + spec.path
    return (
        f"submodule '{where}'"
        if spec.name == spec.path
        else f"submodule '{spec.name}' at '{where}'"
    )


class _Resolver:
    """Walks the submodules of one checkout, fetching each (blocking, under `op`)."""

    def __init__(
        self,
        modules_root: Path,
        op: Operation,
        allow_file: bool,
        parent_secrets: list[str | bytes],
    ) -> None:
        self.modules_root = modules_root
        self.op = op
        self.allow_file = allow_file
        self.parent_secrets = parent_secrets
        self.used: set[Path] = set()

    def resolve(
        self,
        mirror: Path,
        commit: str,
        url: GitURL,
        auth: AuthOptions,
        sparse: SparseSelection | None,
        prefix: str,
        level: int,
    ) -> Checkout:
        """The checkout of `commit` (in `mirror`, fetched from `url`) with its submodules,
        `prefix` being where it sits in the GitRepository's checkout."""
        with GitTree(mirror, commit) as tree:
            links = tree.gitlinks(sparse, prefix)
            gitmodules = tree.read_file(GITMODULES)
        if not links or level > MAX_LEVELS:
            return Checkout(mirror, commit)
        specs = self._specs(gitmodules, prefix)
        by_path = {s.path: s for s in specs}
        for spec in specs:
            kept = sparse is None or sparse.scope(prefix + spec.path) is not Scope.OUTSIDE
            if kept and spec.path not in links:
                raise SubmoduleError(
                    f"{_describe(spec, prefix)}: {GITMODULES} names it, but the commit holds "
                    "no submodule at that path"
                )
        children: dict[str, Checkout] = {}
        for path, sha in sorted(links.items()):
            described = by_path.get(path)
            if described is None:
                raise SubmoduleError(
                    f"submodule '{prefix + path}': no url found for it in {GITMODULES}"
                )
            children[path] = self._submodule(described, sha, url, auth, sparse, prefix, level)
        return Checkout(mirror, commit, children)

    def _specs(self, gitmodules: tuple[int, bytes] | None, prefix: str) -> list[SubmoduleSpec]:
        where = f"{GITMODULES} of submodule '{prefix.rstrip('/')}'" if prefix else GITMODULES
        if gitmodules is None:
            return []
        mode, data = gitmodules
        if stat.S_ISLNK(mode):
            raise SubmoduleError(f"{where} is a symlink")  # go-git refuses it too
        try:
            return parse_gitmodules(data)
        except SubmoduleError as e:
            if prefix:
                raise SubmoduleError(f"submodule '{prefix.rstrip('/')}': {e}") from None
            raise

    def _submodule(
        self,
        spec: SubmoduleSpec,
        sha: str,
        parent_url: GitURL,
        parent_auth: AuthOptions,
        sparse: SparseSelection | None,
        prefix: str,
        level: int,
    ) -> Checkout:
        what = _describe(spec, prefix)
        try:
            url = resolve_url(spec.url, parent_url, allow_file=self.allow_file)
            auth = submodule_auth(parent_url, parent_auth, url)
            mirror = _mirror_for(self.modules_root, url)
            self.used.add(mirror)
            client.fetch_commit_sync(url, sha, auth, mirror, self.op)
        except GitError as e:
            message = redact(f"{what}: {e.message}", self.parent_secrets)
            raise SubmoduleError(message, reason=e.reason) from None
        return self.resolve(mirror, sha, url, auth, sparse, f"{prefix}{spec.path}/", level + 1)


def _prune(modules_root: Path, used: set[Path]) -> None:
    """Drop the mirrors of submodules this checkout no longer needs, so that URLs a history
    went through do not pile up for the life of the GitRepository."""
    if not modules_root.is_dir():
        return
    for child in modules_root.iterdir():
        if child not in used and child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)


async def checkout_submodules(
    url: str,
    auth: AuthOptions,
    mirror_dir: Path | str,
    commit: str,
    *,
    allow_file: bool = False,
    sparse: SparseSelection | None = None,
) -> Checkout:
    """The checkout of `commit` (already in the GitRepository's mirror at `mirror_dir`,
    fetched from `url` with `auth`) with all its submodules fetched, recursively."""
    parsed = parse_url(url, allow_file=allow_file)
    mirror = Path(mirror_dir)
    op = Operation(auth.timeout, f"fetching the submodules of '{parsed}'")
    resolver = _Resolver(mirror / MODULES_DIR, op, allow_file, auth.secrets())

    def run() -> Checkout:
        checkout = resolver.resolve(mirror, commit, parsed, auth, sparse, "", 1)
        _prune(resolver.modules_root, resolver.used)
        return checkout

    return await run_in_thread(op, run)
