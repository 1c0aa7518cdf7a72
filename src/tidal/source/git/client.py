"""The Git operations the GitRepository controller calls: a cheap remote check and a fetch.

Both are coroutines that run dulwich in a worker thread under the operation's timeout
(`AuthOptions.timeout`, the GitRepository's spec.timeout). Every error is one of
`tidal.source.git.errors`, with Flux's wording where Flux has one ("unable to clone '<url>':
...", "unable to list remote for '<url>': ...") and no secret in it.

`fetch` keeps a bare mirror per GitRepository in the directory the caller gives, so a later
fetch only transfers what is new:

- branch, tag, name and semver refs are fetched with depth 1, commit refs in full (Flux's
  clone depths; name refs are shallow here, see refs.Ref.shallow);
- the ref listing is filtered by the server (protocol v2 ref-prefix), and what is wanted is
  decided on it, so one request lists and one fetches; nothing is fetched when the wanted
  objects are already in the mirror;
- the mirror's refs follow the remote, forced: a history rewrite just moves them;
- semver resolution looks at tag names first and fetches only the tags that tie for the
  highest matching version (usually one), not every tag as Flux's clone does; ties are
  broken by the tagged commit's time, as in Flux.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import paramiko
from dulwich.client import (
    GitClient,
    HTTPProxyUnauthorized,
    HTTPUnauthorized,
    LocalGitClient,
)
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.objects import Commit as DulwichCommit
from dulwich.objects import ObjectID
from dulwich.objects import Tag as DulwichTag
from dulwich.refs import Ref as DulwichRef
from dulwich.repo import Repo

from tidal.source.git import refs as refspec
from tidal.source.git.auth import AuthOptions
from tidal.source.git.commit import Commit, Tag
from tidal.source.git.errors import (
    AuthenticationError,
    EmptyRepositoryError,
    FetchError,
    GitError,
    RefNotFoundError,
    RepositoryNotFoundError,
    TLSError,
    redact,
)
from tidal.source.git.http import HttpClient, http_client
from tidal.source.git.mirror import INFINITE_DEPTH, Mirror
from tidal.source.git.operation import Operation, run_in_thread
from tidal.source.git.refs import HEADS, PEELED_SUFFIX, TAGS, Ref, RefKind
from tidal.source.git.ssh import ssh_client
from tidal.source.git.url import GitURL, parse_url

if TYPE_CHECKING:
    from dulwich.client import DetermineWantsFunc


# -- transports -----------------------------------------------------------------------------------


@contextlib.contextmanager
def transport(url: GitURL, auth: AuthOptions, op: Operation) -> Iterator[tuple[GitClient, str]]:
    if url.is_http:
        with http_client(url, auth, op) as client:
            yield client, ""
    elif url.is_ssh:
        with ssh_client(url, auth, op) as ssh:
            yield ssh, url.path
    else:
        yield LocalGitClient(), url.path


def _translate(e: BaseException, op: Operation, auth: AuthOptions, prefix: str) -> GitError:
    """Any failure as a GitError with a redacted, prefixed message."""
    if op.expired() and not isinstance(e, GitError):
        err: GitError = op.timeout_error()
    elif isinstance(e, GitError):
        err = e
    elif isinstance(e, HTTPUnauthorized):
        has_creds = bool(auth.username or auth.password or auth.bearer_token)
        err = AuthenticationError(
            "authentication required: the server rejected the credentials"
            if has_creds
            else "authentication required: no credentials were given"
        )
    elif isinstance(e, HTTPProxyUnauthorized):
        err = AuthenticationError("proxy authentication required")
    elif isinstance(e, NotGitRepository):
        err = RepositoryNotFoundError("repository not found")
    elif isinstance(e, paramiko.AuthenticationException):
        err = AuthenticationError(f"ssh: unable to authenticate: {e}")
    elif isinstance(e, paramiko.SSHException | EOFError):
        err = FetchError(f"ssh: {e or type(e).__name__}")
    elif isinstance(e, GitProtocolError | HangupException):
        err = _protocol_error(str(e) or type(e).__name__)
    elif isinstance(e, OSError):
        err = FetchError(f"{type(e).__name__}: {e}")
    else:
        err = FetchError(f"{type(e).__name__}: {e}")
    message = redact(err.message, auth.secrets())
    if prefix and err.prefixed and not message.startswith(prefix):
        message = f"{prefix}{message}"
    err.message = message
    err.args = (message,)
    return err


def _protocol_error(message: str) -> GitError:
    lowered = message.lower()
    if "unexpected http resp 403" in lowered:
        return AuthenticationError("authorization failed: the server answered 403 Forbidden")
    if "certificate" in lowered or "ssl" in lowered or "tls" in lowered:
        return TLSError(f"TLS handshake failed: {message}")
    if "does not appear to be a git repository" in lowered or "not found" in lowered:
        return RepositoryNotFoundError(f"repository not found: {message}")
    return FetchError(message)


@contextlib.contextmanager
def translated_errors(op: Operation, auth: AuthOptions, prefix: str) -> Iterator[None]:
    try:
        yield
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt | SystemExit | GeneratorExit):
            raise
        raise _translate(e, op, auth, prefix) from None


# -- remote_head ----------------------------------------------------------------------------------


def _peel_local(path: str, refs: dict[bytes, bytes]) -> dict[bytes, bytes]:
    # The local transport lists refs without peeled entries; add them as ls-remote would.
    out = dict(refs)
    with Repo(path) as repo:
        for name, sha in refs.items():
            if name.startswith(TAGS.encode()) and sha is not None:
                obj = repo.object_store[ObjectID(sha)]
                while isinstance(obj, DulwichTag):
                    obj = repo.object_store[obj.object[1]]
                if obj.id != sha:
                    out[name + PEELED_SUFFIX.encode()] = obj.id
    return out


def _remote_head_sync(url: GitURL, ref: Ref, auth: AuthOptions, op: Operation) -> str | None:
    wanted = ref.wanted_ref()
    if wanted is None:
        return None
    with transport(url, auth, op) as (client, path):
        result = client.get_refs(path.encode(), ref_prefix=[wanted.encode()])
        if isinstance(client, HttpClient):
            client.check_smart()
        listed: dict[bytes, bytes] = {k: v for k, v in result.refs.items() if v is not None}
        if isinstance(client, LocalGitClient):
            listed = _peel_local(path, listed)
        if not listed:
            full = client.get_refs(path.encode())
            if not any(v is not None for v in full.refs.values()):
                raise _empty_error(ref)
        return refspec.remote_revision(ref, listed)


async def remote_head(
    url: str, ref: Ref | None, auth: AuthOptions, *, allow_file: bool = False
) -> str | None:
    """The revision the remote's ref currently gives (`main@sha1:<hex>`), from a ref listing
    alone; None when the ref does not exist or is a semver/commit ref (no cheap check).

    The controller compares it with status.artifact.revision and skips the fetch on a match.
    """
    ref = ref or Ref()
    parsed = parse_url(url, allow_file=allow_file)
    op = Operation(auth.timeout, f"listing remote refs of '{parsed}'")
    prefix = f"unable to list remote for '{parsed}': "
    with translated_errors(op, auth, prefix):
        ref.validate()
    if not ref.remote_checkable:
        return None

    def run() -> str | None:
        with translated_errors(op, auth, prefix):
            return _remote_head_sync(parsed, ref, auth, op)

    return await run_in_thread(op, run)


# -- fetch ----------------------------------------------------------------------------------------


def _empty_error(ref: Ref) -> EmptyRepositoryError:
    reason = "EmptyGitRepository" if ref.kind is RefKind.BRANCH else "GitOperationFailed"
    return EmptyRepositoryError("git repository is empty", reason=reason)


@dataclass
class _Plan:
    """What the listing resolved: wanted objects, refs to record, and the outcome."""

    ref: Ref
    mirror: Mirror
    full: bool
    check_smart: Callable[[], None]
    listed_nothing: bool = False
    missing: str = ""
    remote_refs: dict[str, bytes] = field(default_factory=dict)
    semver: list[refspec.SemverCandidate] = field(default_factory=list)

    def determine_wants(
        self, refs: Mapping[DulwichRef, ObjectID], depth: int | None = None
    ) -> list[ObjectID]:
        self.check_smart()
        advertised = {
            k.decode("utf-8", "surrogateescape"): bytes(v)
            for k, v in refs.items()
            if not k.endswith(PEELED_SUFFIX.encode())
        }
        if not advertised:
            self.listed_nothing = True
            return []
        self._select(advertised)
        wants: list[ObjectID] = []
        for sha in dict.fromkeys(self.remote_refs.values()):
            if self.mirror.has(sha) and not (self.full and self.mirror.shallow):
                continue  # already here: nothing to transfer for it
            wants.append(ObjectID(sha))
        return wants

    def _select(self, advertised: dict[str, bytes]) -> None:
        ref, kind = self.ref, self.ref.kind
        if kind is RefKind.SEMVER:
            tags = [n[len(TAGS) :] for n in advertised if n.startswith(TAGS)]
            self.semver = refspec.semver_candidates(ref.semver, tags)
            self.remote_refs = {TAGS + c.tag: advertised[TAGS + c.tag] for c in self.semver}
            return
        if kind is RefKind.COMMIT:
            if ref.branch:
                name = HEADS + ref.branch
                if name not in advertised:
                    self.missing = name
                    return
                self.remote_refs = {name: advertised[name]}
            else:
                self.remote_refs = {n: s for n, s in advertised.items() if n.startswith(HEADS)}
            tag_name = ref.name.startswith(TAGS) and not ref.name.endswith(PEELED_SUFFIX)
            if tag_name and ref.name in advertised:
                self.remote_refs[ref.name] = advertised[ref.name]
            return
        wanted = ref.wanted_ref()
        assert wanted is not None
        if wanted not in advertised:
            self.missing = wanted
            return
        self.remote_refs = {wanted: advertised[wanted]}


def _depth(plan: _Plan, client: GitClient) -> int | None:
    if isinstance(client, LocalGitClient):
        return None  # the local transport cannot report shallow boundaries
    if plan.full:
        return INFINITE_DEPTH if plan.mirror.shallow else None
    return 1


def _resolve(plan: _Plan) -> Commit:
    ref, mirror = plan.ref, plan.mirror
    kind = ref.kind
    if kind is RefKind.SEMVER:
        peeled: dict[str, tuple[DulwichCommit, DulwichTag | None]] = {}
        for c in plan.semver:
            commit, tag = mirror.peel(plan.remote_refs[TAGS + c.tag])
            if commit is None:
                raise FetchError(f"unable to resolve commit of a tag revision: tag '{c.tag}'")
            peeled[c.tag] = (commit, tag)
        times = {t: _commit_time(c) for t, (c, _) in peeled.items()}
        chosen = refspec.pick_semver(plan.semver, times)
        commit, tag = peeled[chosen]
        return Commit.from_object(
            commit,
            reference=ref.reference(chosen),
            revision=ref.revision(commit.id.decode(), chosen),
            tag=Tag.from_object(tag) if tag is not None else None,
        )
    if kind is RefKind.COMMIT:
        target = ref.commit.lower().encode()
        obj = mirror.get(target) if mirror.has(target) else None
        if not isinstance(obj, DulwichCommit):
            raise RefNotFoundError(
                f"unable to resolve commit object for '{ref.commit}': object not found",
                prefixed=False,
            )
        if ref.branch and not mirror.contains(plan.remote_refs[HEADS + ref.branch], target):
            raise RefNotFoundError(
                f"unable to resolve commit object for '{ref.commit}': not on branch '{ref.branch}'",
                prefixed=False,
            )
        tag_obj = None
        if ref.name in plan.remote_refs:
            _, tag_obj = mirror.peel(plan.remote_refs[ref.name])
        return Commit.from_object(
            obj,
            reference=ref.reference(),
            revision=ref.revision(obj.id.decode()),
            tag=Tag.from_object(tag_obj) if tag_obj is not None else None,
        )
    wanted = ref.wanted_ref()
    assert wanted is not None
    commit, tag = mirror.peel(plan.remote_refs[wanted])
    if commit is None:
        raise FetchError(f"ref '{wanted}' does not point at a commit")
    keep_tag = wanted.startswith(TAGS) and not (
        kind is RefKind.NAME and ref.name.endswith(PEELED_SUFFIX)
    )
    return Commit.from_object(
        commit,
        reference=ref.reference(),
        revision=ref.revision(commit.id.decode()),
        tag=Tag.from_object(tag) if tag is not None and keep_tag else None,
    )


def _commit_time(commit: DulwichCommit) -> datetime:
    return datetime.fromtimestamp(commit.commit_time, UTC)


def _fetch_sync(
    url: GitURL, ref: Ref, auth: AuthOptions, mirror_dir: Path, op: Operation
) -> Commit:
    with Mirror.open(mirror_dir) as mirror, transport(url, auth, op) as (client, path):
        op.check()
        check_smart = client.check_smart if isinstance(client, HttpClient) else (lambda: None)
        plan = _Plan(ref, mirror, full=not ref.shallow, check_smart=check_smart)
        depth = _depth(plan, client)
        pack = mirror.pack_writer()

        def write(data: bytes) -> int:
            op.check()
            pack.write(data)
            return len(data)

        try:
            result = client.fetch_pack(
                path.encode(),
                plan.determine_wants,
                mirror.repo.get_graph_walker(heads=mirror.local_heads()),
                write,
                depth=depth,
                ref_prefix=ref.ref_prefixes(),
            )
        except BaseException:
            pack.close()
            raise
        op.check()
        mirror.add_pack(pack)
        if depth is not None:
            mirror.update_shallow(result.new_shallow, result.new_unshallow)
        if plan.listed_nothing:
            full = client.get_refs(path.encode())
            if not any(v is not None for v in full.refs.values()):
                raise _empty_error(ref)
            raise RefNotFoundError(f'couldn\'t find remote ref "{ref.wanted_ref() or "HEAD"}"')
        if plan.missing:
            if ref.kind is RefKind.NAME:
                raise RefNotFoundError(
                    f"unable to resolve ref '{ref.name}' to a specific commit", prefixed=False
                )
            raise RefNotFoundError(f'couldn\'t find remote ref "{plan.missing}"')
        prune = HEADS if ref.kind is RefKind.COMMIT and not ref.branch else None
        mirror.set_refs(plan.remote_refs, prune_prefix=prune)
        return _resolve(plan)


async def fetch(
    url: str,
    ref: Ref | None,
    auth: AuthOptions,
    mirror_dir: Path | str,
    *,
    allow_file: bool = False,
) -> Commit:
    """Bring the commit `ref` resolves to into the bare mirror at `mirror_dir` and return it."""
    ref = ref or Ref()
    parsed = parse_url(url, allow_file=allow_file)
    op = Operation(auth.timeout, f"fetching '{parsed}'")
    prefix = f"unable to clone '{parsed}': "
    with translated_errors(op, auth, prefix):
        ref.validate()

    def run() -> Commit:
        with translated_errors(op, auth, prefix):
            return _fetch_sync(parsed, ref, auth, Path(mirror_dir), op)

    return await run_in_thread(op, run)


# -- fetch_commit (submodules) --------------------------------------------------------------------

# Where the mirror remembers the last commit fetched by hash, so the next fetch offers it as a
# "have" and only the difference travels.
_PINNED_REF = "refs/tidal/pinned"


def _has_commit(mirror: Mirror, sha: bytes) -> bool:
    return mirror.has(sha) and isinstance(mirror.get(sha), DulwichCommit)


def _fetch_wants(
    mirror: Mirror,
    client: GitClient,
    path: str,
    op: Operation,
    determine_wants: DetermineWantsFunc,
    depth: int | None,
) -> None:
    pack = mirror.pack_writer()

    def write(data: bytes) -> int:
        op.check()
        pack.write(data)
        return len(data)

    try:
        result = client.fetch_pack(
            path.encode(),
            determine_wants,
            mirror.repo.get_graph_walker(heads=mirror.local_heads()),
            write,
            depth=depth,
            ref_prefix=[HEADS.encode(), TAGS.encode()],
        )
    except BaseException:
        pack.close()
        raise
    op.check()
    mirror.add_pack(pack)
    if depth is not None:
        mirror.update_shallow(result.new_shallow, result.new_unshallow)


def fetch_commit_sync(
    url: GitURL, sha: str, auth: AuthOptions, mirror_dir: Path, op: Operation
) -> None:
    """Bring commit `sha` of `url`, with its tree, into the bare mirror at `mirror_dir`
    (blocking; nothing is transferred when it is already there).

    The commit is asked for by its hash at depth 1: servers speaking protocol v2 (and older
    ones allowing any SHA-1 in wants) hand it over whether or not a ref points at it. A
    server refusing that gets the full fetch go-git does for every submodule: all branches
    and tags, whole history, after which the commit must be among what arrived.
    """
    target = sha.lower().encode("ascii")
    prefix = f"unable to clone '{url}': "
    with translated_errors(op, auth, prefix), Mirror.open(mirror_dir) as mirror:
        if _has_commit(mirror, target):
            return
        with transport(url, auth, op) as (client, path):
            check_smart = client.check_smart if isinstance(client, HttpClient) else (lambda: None)
            local = isinstance(client, LocalGitClient)
            advertised: dict[DulwichRef, ObjectID] = {}

            def by_hash(
                refs: Mapping[DulwichRef, ObjectID], depth: int | None = None
            ) -> list[ObjectID]:
                check_smart()
                advertised.update(refs)
                return [ObjectID(target)]

            try:
                _fetch_wants(mirror, client, path, op, by_hash, None if local else 1)
            except KeyError:
                if not local:
                    raise
                # The local transport looks the object up itself: it has no fallback to try.
                raise RefNotFoundError(f"commit {sha} is not in the repository") from None
            except (GitProtocolError, HangupException):
                op.check()
                if not advertised:
                    raise

                def everything(
                    refs: Mapping[DulwichRef, ObjectID], depth: int | None = None
                ) -> list[ObjectID]:
                    tips = {v for k, v in refs.items() if not k.endswith(PEELED_SUFFIX.encode())}
                    return sorted(ObjectID(v) for v in tips if not mirror.has(v))

                full = INFINITE_DEPTH if mirror.shallow and not local else None
                _fetch_wants(mirror, client, path, op, everything, full)
            if not _has_commit(mirror, target):
                raise RefNotFoundError(f"commit {sha} is not in the repository")
        mirror.set_refs({_PINNED_REF: target})
