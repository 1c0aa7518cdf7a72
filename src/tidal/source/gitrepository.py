"""The GitRepository reconciler: Flux source-controller's algorithm, step by step.

0. deletion: remove the artifacts and the mirror, then the finalizer; add the finalizer if
   missing; a suspended object is left alone
1. Reconciling "reconciliation in progress" (or "processing object: new generation a -> b")
2. storage: garbage-collect old artifacts; forget a recorded artifact whose file is gone
3. source: credentials from secretRef/proxySecretRef (with spec.provider github, a GitHub
   App installation token, with spec.provider azure, an Entra ID token of the controller's
   workload identity, both cached until they near expiry); the included GitRepositories' artifacts
   (IncludeUnavailable while one is missing); the cheap remote check (ls-remote) when an
   artifact exists, ending the reconcile early with no fetch when the remote revision, the
   content-affecting settings and the included artifacts are unchanged; otherwise fetch into a
   bare mirror, then the submodules when spec.recurseSubmodules (each into a mirror of its
   own), and check that every spec.sparseCheckout path is there; verify signatures when
   spec.verify is set; ArtifactOutdated on a new revision
4. artifact: the commit's tree (no checkout) with the submodules' trees at their paths, cut
   down to the spec.sparseCheckout paths, plus each include's subtree, through the ignore
   rules into a deterministic tar.gz; store it, record status.artifact and the observed settings
5. events (NewArtifact, recovery, failures) and the Ready summary (tidal.runtime.summarize)

The GitRepositories including one whose artifact changed are woken by `include_watch`, an
informer handler the controller installs (Flux's include watch), so they do not wait for their
interval.

Blocking work (archiving, storage I/O) runs in threads; the event loop only orchestrates.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import posixpath
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from tidal.api.base import parse_duration
from tidal.api.meta import PROGRESSING, SUCCEEDED, Artifact
from tidal.api.source import (
    ARTIFACT_IN_STORAGE,
    ARTIFACT_OUTDATED,
    AUTHENTICATION_FAILED,
    DIGEST_ANNOTATION,
    FETCH_FAILED,
    GIT_OPERATION_SUCCEEDED,
    GIT_REPOSITORY_KIND,
    INCLUDE_UNAVAILABLE,
    NEW_ARTIFACT,
    NEW_REVISION,
    REVISION_ANNOTATION,
    SOURCE_FINALIZER,
    SOURCE_VERIFIED,
    STORAGE_OPERATION_FAILED,
    URL_INVALID,
    GitRepository,
    GitRepositoryInclude,
)
from tidal.kube.client import ApiError, Kube
from tidal.kube.events import EventRecorder
from tidal.runtime import conditions
from tidal.runtime.finalizers import add_finalizer, remove_finalizer
from tidal.runtime.status import write_status
from tidal.runtime.summarize import (
    GIT_REPOSITORY_READY,
    Failed,
    NoRequeue,
    Outcome,
    Stalling,
    Success,
    Waiting,
    finalize,
)
from tidal.runtime.workers import Result
from tidal.source.archive import (
    ArchiveError,
    Archiver,
    Entry,
    Sink,
    UnsupportedDigestError,
    new_hasher,
    parse_digest,
    safe_extract,
)
from tidal.source.git import azure, github_app
from tidal.source.git import client as git
from tidal.source.git.auth import AuthOptions, ProxyOptions
from tidal.source.git.commit import Commit
from tidal.source.git.errors import GitError, InvalidURLError, VerificationError
from tidal.source.git.github_app import INVALID_PROVIDER_CONFIGURATION, AppTokens
from tidal.source.git.refs import Ref
from tidal.source.git.sparse import SparseSelection, missing_message
from tidal.source.git.submodules import checkout_submodules
from tidal.source.git.tree import Checkout, GitTree
from tidal.source.git.verify import verify_commit
from tidal.source.ignore import IGNORE_FILE, IgnoreRules
from tidal.source.storage import Storage, StorageError, artifact_path

log = logging.getLogger(__name__)

PLURAL = "gitrepositories"
API_PATH = "/apis/source.toolkit.fluxcd.io/v1"
_KIND_DIR = GIT_REPOSITORY_KIND

# Reasons of source-controller's include handling (IncludeUnavailable, then
# StorageOperationFailed while copying).
INCLUDE_NOT_FOUND = "NotFound"
INCLUDE_NO_ARTIFACT = "NoArtifact"
INCLUDE_CHANGE = "IncludeChange"
ILLEGAL_PATH = "IllegalPath"
COPY_FAILURE = "CopyFailure"
INCLUDE_CHANGE_MESSAGE = "included artifacts differ from last observed includes"

_INCLUDED_DIR_MODE = 0o40750
CHECKOUT_FAILED_PREFIX = "failed to checkout and determine revision: "

GENERIC_PROVIDER = "generic"
GITHUB_PROVIDER = "github"
AZURE_PROVIDER = "azure"


class _Stop(Exception):
    """Ends the sub-reconcilers early with an outcome."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(getattr(outcome, "message", ""))
        self.outcome = outcome


class _CopyError(Exception):
    """An include's subtree could not be put into the artifact (Flux's CopyFailure)."""


@dataclass(frozen=True)
class _Fetched:
    """What the source step hands to the artifact step."""

    commit: Commit
    checkout: Checkout  # the commit's tree, with the submodules fetched for it


@dataclass(frozen=True)
class Settings:
    """Controller-wide options (flags of `tidal controller`)."""

    mirrors: Path
    allow_file_urls: bool = False
    digest_algorithm: str = "sha256"
    # Flux's --requeue-dependency: how long to wait before looking again for a missing include.
    requeue_dependency: float = 30.0


@dataclass
class _StatusWriter:
    """Writes the status as it stands, sending only what changed since the last write."""

    reconciler: GitRepositoryReconciler
    obj: GitRepository
    written: dict[str, Any]

    async def write(self) -> None:
        await self.reconciler._patch_status(self.obj, self.written)
        self.written = self.obj.status.to_dict()


def _short_message(commit: Commit) -> str:
    first = commit.message.strip().splitlines()[0] if commit.message.strip() else ""
    return first if len(first) <= 50 else first[:50] + "..."


def _mark_stored(obj: GitRepository, revision: str) -> None:
    conditions.mark_true(
        obj, ARTIFACT_IN_STORAGE, SUCCEEDED, "stored artifact for revision '%s'", revision
    )


def _object_path(namespace: str, name: str) -> str:
    return f"{API_PATH}/namespaces/{namespace}/{PLURAL}/{name}"


# -- includes ----------------------------------------------------------------------------------


def include_to_path(include: GitRepositoryInclude) -> str:
    """spec.include[].toPath as Flux reads it: the included repository's name when unset."""
    return include.to_path or include.repository.name


def include_subpath(path: str) -> str:
    """A fromPath/toPath as a clean path relative to the artifact root ("" for the root).

    A leading "/" counts from the root, as Flux's secure join reads it. Flux silently clamps a
    path that climbs out ("../../x" becomes "x"); tidal refuses it instead, since such a spec
    copies something other than what its author wrote.
    """
    if "\0" in path or "\\" in path:
        raise ValueError(f"'{path}' contains a NUL byte or a backslash")
    trimmed = path.strip("/")
    if not trimmed:
        return ""
    clean = posixpath.normpath(trimmed)
    if clean == ".." or clean.startswith("../"):
        raise ValueError(f"'{path}' leads outside the artifact root")
    return "" if clean == "." else clean


def _includes_differ(current: list[Artifact], observed: list[Artifact]) -> bool:
    """Flux's artifactSet.Diff: compares the sets of revisions, not digests or order."""
    if len(current) != len(observed):
        return True
    return any(not any(o.has_revision(c.revision) for o in observed) for c in current)


def _file_entry(rel: str, path: Path, mode: int) -> Entry:
    return Entry(rel, "file", mode, path.read_bytes)


def _walk_extracted(root: Path, prefix: str) -> Iterable[Entry]:
    """Entries for everything below an extracted directory, named under `prefix`. Only
    directories and regular files: a symlink would be skipped by the archiver anyway."""
    for directory, dirs, files in os.walk(root):
        rel_dir = os.path.relpath(directory, root)
        base = prefix if rel_dir == "." else f"{prefix}/{rel_dir.replace(os.sep, '/')}"
        for name in dirs:
            st = os.lstat(Path(directory, name))
            if stat.S_ISDIR(st.st_mode):
                yield Entry(f"{base}/{name}", "dir", st.st_mode)
        for name in files:
            full = Path(directory, name)
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                yield _file_entry(f"{base}/{name}", full, st.st_mode)


def add_included_tree(entries: dict[str, Entry], source: Path, to: str) -> None:
    """Put `source` (an extracted file or directory) at `to` among `entries`, keyed by path.

    Flux moves the included subtree into the checkout with a rename, so this follows rename's
    rules: missing parents are created, a file or an empty directory at `to` is replaced, and a
    non-empty directory, a directory over a file or a file over a directory is an error.
    """
    try:
        st = os.lstat(source)
    except FileNotFoundError:
        raise _CopyError("no such file or directory in the included artifact") from None
    is_dir = stat.S_ISDIR(st.st_mode)
    if not is_dir and not stat.S_ISREG(st.st_mode):
        raise _CopyError("not a regular file or directory in the included artifact")
    if not to:
        raise _CopyError("the artifact root cannot be replaced")
    parts = to.split("/")
    for i in range(1, len(parts)):
        parent = "/".join(parts[:i])
        existing = entries.get(parent)
        if existing is None:
            entries[parent] = Entry(parent, "dir", _INCLUDED_DIR_MODE)
        elif existing.kind != "dir":
            raise _CopyError(f"'{parent}' is not a directory")
    existing = entries.get(to)
    if existing is not None:
        if existing.kind == "dir":
            prefix = to + "/"
            if any(path.startswith(prefix) for path in entries):
                raise _CopyError(f"'{to}' already exists and is not empty")
            if not is_dir:
                raise _CopyError(f"'{to}' is a directory")
        elif is_dir:
            raise _CopyError(f"'{to}' already exists and is not a directory")
    if not is_dir:
        entries[to] = _file_entry(to, source, st.st_mode)
        return
    entries[to] = Entry(to, "dir", st.st_mode)
    for entry in _walk_extracted(source, to):
        entries[entry.path] = entry


def _sourceignores(entries: Mapping[str, Entry]) -> list[tuple[str, str]]:
    """(directory, text) of every `.sourceignore` in the composed tree: Flux loads them after
    the includes are copied, so an included one counts, scoped to where it landed."""
    found: list[tuple[str, str]] = []
    for rel, entry in entries.items():
        head, _, name = rel.rpartition("/")
        if name == IGNORE_FILE and entry.kind == "file":
            found.append((head, entry.content().decode("utf-8", "surrogateescape")))
    return found


def _artifact_key(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    artifact = (obj.get("status") or {}).get("artifact")
    if not isinstance(artifact, Mapping):
        return None
    return str(artifact.get("revision", "")), str(artifact.get("digest", ""))


def _include_names(obj: Mapping[str, Any]) -> list[str]:
    includes = (obj.get("spec") or {}).get("include") or []
    return [
        str(i["repository"]["name"])
        for i in includes
        if isinstance(i, Mapping) and isinstance(i.get("repository"), Mapping)
    ]


def includers_to_wake(
    old: Mapping[str, Any], new: Mapping[str, Any], same_namespace: Iterable[Mapping[str, Any]]
) -> list[str]:
    """Names of the GitRepositories to reconcile now that `old` became `new`.

    As Flux's include watch: only when `new` has an artifact whose revision or digest moved
    (a rewritten timestamp or URL wakes nobody); only the repositories listing `new` in
    spec.include that are neither suspended nor being deleted; and none that `new` itself
    includes, directly or not, so an include cycle stays interval-driven instead of
    rebuilding in a loop.
    """
    after = _artifact_key(new)
    if after is None or after == _artifact_key(old):
        return []
    meta = new.get("metadata") or {}
    name = str(meta.get("name", ""))
    by_name = {str((o.get("metadata") or {}).get("name", "")): o for o in same_namespace}
    upstream = {name}
    pending = _include_names(new)
    while pending:
        dep = pending.pop()
        if dep in upstream:
            continue
        upstream.add(dep)
        if dep in by_name:
            pending.extend(_include_names(by_name[dep]))
    wake: list[str] = []
    for other_name, other in sorted(by_name.items()):
        if other_name in upstream or name not in _include_names(other):
            continue
        if (other.get("spec") or {}).get("suspend"):
            continue
        if (other.get("metadata") or {}).get("deletionTimestamp"):
            continue
        wake.append(other_name)
    return wake


def include_watch(
    list_namespace: Callable[[str], list[dict[str, Any]]],
    enqueue: Callable[[str, str], None],
) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    """An informer update handler waking the includers of a GitRepository whose artifact
    changed: `list_namespace` reads the informer's cache, `enqueue` is Controller.enqueue."""

    def on_update(old: dict[str, Any], new: dict[str, Any]) -> None:
        # Every status write comes through here; scanning the namespace for each would make a
        # reconcile round O(n^2). Only a moved artifact can wake anyone.
        after = _artifact_key(new)
        if after is None or after == _artifact_key(old):
            return
        namespace = str((new.get("metadata") or {}).get("namespace", ""))
        for name in includers_to_wake(old, new, list_namespace(namespace)):
            enqueue(namespace, name)

    return on_update


class GitRepositoryReconciler:
    def __init__(
        self, kube: Kube, storage: Storage, events: EventRecorder, settings: Settings
    ) -> None:
        self.kube = kube
        self.storage = storage
        self.events = events
        self.settings = settings
        self.archiver = Archiver(digest_algorithm=settings.digest_algorithm)
        # One cache for the controller, as Flux's token cache: objects on the same GitHub App
        # share its installation token until it nears expiry.
        self.github_tokens = AppTokens()
        # Likewise the Entra ID tokens of the controller's Azure workload identity.
        self.azure_tokens = azure.AzureTokens()

    # -- entry point ---------------------------------------------------------------------------

    async def reconcile(self, raw: Mapping[str, Any]) -> Result:
        try:
            obj = GitRepository.from_dict(raw)
        except msgspec.ValidationError as e:
            # The CRD validates specs; this only happens with a hand-crafted status.
            log.error("cannot decode GitRepository: %s", e)
            return Result.failure(f"invalid object: {e}")
        meta = obj.metadata
        if meta.deletion_timestamp:
            return await self._delete(obj)
        await add_finalizer(
            self.kube, _object_path(meta.namespace, meta.name), meta.finalizers, SOURCE_FINALIZER
        )
        if obj.spec.suspend:
            return Result.success()

        writer = _StatusWriter(self, obj, obj.status.to_dict())
        old_artifact = obj.status.artifact
        had_failure = any(
            conditions.is_true(obj, t)
            for t in (FETCH_FAILED, INCLUDE_UNAVAILABLE, STORAGE_OPERATION_FAILED)
        )
        conditions.progressing(obj, obj.status.observed_generation)
        # Let `kubectl get` show Reconciling while a slow fetch runs.
        await writer.write()
        # As Flux: a storage failure is judged afresh by every attempt.
        conditions.delete(obj, STORAGE_OPERATION_FAILED)

        commit: Commit | None = None
        try:
            await self._reconcile_storage(obj)
            auth = await self._auth(obj)
            includes = await self._reconcile_includes(obj, writer)
            fetched = await self._reconcile_source(obj, auth, includes, writer)
            outcome: Outcome = Success()
            if fetched is not None:
                commit = fetched.commit
                await self._reconcile_artifact(obj, fetched, includes)
        except _Stop as stop:
            outcome = stop.outcome

        interval = parse_duration(obj.spec.interval)
        finalized = finalize(obj, outcome, GIT_REPOSITORY_READY, interval=interval)
        self._notify(obj, old_artifact, had_failure, outcome, commit)
        await writer.write()
        return finalized.result

    # -- deletion ------------------------------------------------------------------------------

    async def _delete(self, obj: GitRepository) -> Result:
        meta = obj.metadata
        try:
            await asyncio.to_thread(self.storage.remove_all, _KIND_DIR, meta.namespace, meta.name)
        except (OSError, StorageError) as e:
            return Result.failure(f"garbage collection failed: {e}")
        await asyncio.to_thread(shutil.rmtree, self._mirror_dir(obj), ignore_errors=True)
        await remove_finalizer(
            self.kube, _object_path(meta.namespace, meta.name), meta.finalizers, SOURCE_FINALIZER
        )
        return Result.success()

    def _mirror_dir(self, obj: GitRepository) -> Path:
        meta = obj.metadata
        return self.settings.mirrors / meta.namespace / meta.name

    # -- step 2: storage -----------------------------------------------------------------------

    async def _reconcile_storage(self, obj: GitRepository) -> None:
        artifact = obj.status.artifact
        if artifact is not None:
            try:
                await asyncio.to_thread(self.storage.collect_garbage, artifact.path)
            except (OSError, StorageError) as e:
                log.warning("garbage collection of %s failed: %s", artifact.path, e)
            if not await asyncio.to_thread(self.storage.exists, artifact):
                obj.status.artifact = None
                conditions.delete(obj, ARTIFACT_IN_STORAGE)
            else:
                obj.status.artifact = self.storage.with_current_url(artifact)
        if obj.status.artifact is None:
            conditions.mark_reconciling(obj, PROGRESSING, "building artifact")

    # -- step 3: source ------------------------------------------------------------------------

    async def _auth(self, obj: GitRepository) -> AuthOptions:
        spec, ns = obj.spec, obj.metadata.namespace
        provider = spec.provider or GENERIC_PROVIDER
        if provider not in (GENERIC_PROVIDER, GITHUB_PROVIDER, AZURE_PROVIDER):
            message = f"spec.provider '{spec.provider}' not supported by tidal yet"
            raise _Stop(Stalling("UnsupportedConfiguration", message))
        try:
            data: dict[str, bytes] = {}
            if spec.secret_ref is not None:
                data = await self.kube.secret_data(ns, spec.secret_ref.name)
            proxy = None
            if spec.proxy_secret_ref is not None:
                proxy = ProxyOptions.from_secret(
                    await self.kube.secret_data(ns, spec.proxy_secret_ref.name)
                )
            auth = AuthOptions.from_secret(
                spec.url,
                data,
                proxy=proxy,
                timeout=parse_duration(spec.timeout),
                allow_file=self.settings.allow_file_urls,
            )
        except InvalidURLError as e:
            raise _Stop(Stalling(URL_INVALID, str(e))) from None
        except (ApiError, GitError) as e:
            message = f"failed to get secret: {e}" if isinstance(e, ApiError) else str(e)
            conditions.mark_true(obj, FETCH_FAILED, AUTHENTICATION_FAILED, message)
            raise _Stop(Failed(AUTHENTICATION_FAILED, message)) from None
        if provider == GITHUB_PROVIDER:
            return await self._github_app_auth(obj, data, auth)
        if provider == AZURE_PROVIDER:
            return await self._azure_auth(obj, auth)
        if spec.secret_ref is not None and github_app.has_app_data(data):
            message = (
                f"secretRef '{ns}/{spec.secret_ref.name}' has github app data but provider is "
                "not set to github"
            )
            raise self._invalid_provider(obj, Failed(INVALID_PROVIDER_CONFIGURATION, message))
        return auth

    async def _github_app_auth(
        self, obj: GitRepository, data: Mapping[str, bytes], auth: AuthOptions
    ) -> AuthOptions:
        """The installation token of the Secret's GitHub App as Git's basic-auth password
        (Flux's GitProviderGitHub branch of getAuthOpts)."""
        ref = obj.spec.secret_ref
        if ref is None:
            # Only a spec change can fix it.
            stall = Stalling(INVALID_PROVIDER_CONFIGURATION, github_app.MISSING_APP_DATA)
            raise self._invalid_provider(obj, stall)
        try:
            app_data = github_app.app_data_from_secret(data, f"{obj.metadata.namespace}/{ref.name}")
        except GitError as e:
            raise self._invalid_provider(obj, Failed(e.reason, str(e))) from None
        if app_data is None:
            missing = Failed(INVALID_PROVIDER_CONFIGURATION, github_app.MISSING_APP_DATA)
            raise self._invalid_provider(obj, missing)
        try:
            app = github_app.App.from_data(app_data)
            username, password = await self.github_tokens.credentials(app, auth)
        except GitError as e:
            message = f"failed to configure authentication options: {e}"
            conditions.mark_true(obj, FETCH_FAILED, AUTHENTICATION_FAILED, message)
            raise _Stop(Failed(AUTHENTICATION_FAILED, message)) from None
        return auth.with_basic_auth(username, password)

    async def _azure_auth(self, obj: GitRepository, auth: AuthOptions) -> AuthOptions:
        """An Entra ID token of the controller's workload identity as Git's bearer token, in
        place of any credential of the Secret, whose TLS settings stay (Flux's
        GitProviderAzure branch of getAuthOpts)."""
        if obj.spec.service_account_name:
            # Object-level workload identity: behind a feature gate tidal does not have.
            stall = Stalling(azure.FEATURE_GATE_DISABLED, azure.SERVICE_ACCOUNT_UNSUPPORTED)
            raise self._invalid_provider(obj, stall)
        try:
            token = await self.azure_tokens.bearer_token(auth)
        except GitError as e:
            message = (
                f"failed to configure authentication options: {azure.CONTROLLER_TOKEN_FAILED}: {e}"
            )
            conditions.mark_true(obj, FETCH_FAILED, AUTHENTICATION_FAILED, message)
            raise _Stop(Failed(AUTHENTICATION_FAILED, message)) from None
        return dataclasses.replace(auth, username="", password="", bearer_token=token)

    @staticmethod
    def _invalid_provider(obj: GitRepository, outcome: Failed | Stalling) -> _Stop:
        conditions.mark_true(obj, FETCH_FAILED, outcome.reason, outcome.message)
        return _Stop(outcome)

    def _include_unavailable(self, obj: GitRepository, reason: str, message: str) -> _Stop:
        conditions.mark_true(obj, INCLUDE_UNAVAILABLE, reason, message)
        return _Stop(Waiting(reason, message, requeue_after=self.settings.requeue_dependency))

    async def _reconcile_includes(
        self, obj: GitRepository, writer: _StatusWriter
    ) -> list[Artifact]:
        """The artifacts of spec.include, in its order (Flux's fetchIncludes)."""
        ns = obj.metadata.namespace
        for include in obj.spec.include:
            for what, path in (
                ("fromPath", include.from_path),
                ("toPath", include_to_path(include)),
            ):
                try:
                    include_subpath(path)
                except ValueError as e:
                    message = (
                        f"path calculation for include '{include.repository.name}' failed: "
                        f"{what} {e}"
                    )
                    # Only a spec change can fix it: stall rather than retry.
                    conditions.mark_true(obj, STORAGE_OPERATION_FAILED, ILLEGAL_PATH, message)
                    raise _Stop(Stalling(ILLEGAL_PATH, message)) from None
        artifacts: list[Artifact] = []
        for include in obj.spec.include:
            name = include.repository.name
            try:
                dep = await self.kube.get(_object_path(ns, name))
            except ApiError as e:
                detail = e.message
                message = f"could not get resource for include '{name}': {detail}"
                raise self._include_unavailable(obj, INCLUDE_NOT_FOUND, message) from None
            raw = (dep.get("status") or {}).get("artifact")
            artifact: Artifact | None = None
            if raw:
                try:
                    artifact = Artifact.from_dict(raw)
                except msgspec.ValidationError:
                    artifact = None
            if artifact is None:
                message = f"no artifact available for include '{name}'"
                raise self._include_unavailable(obj, INCLUDE_NO_ARTIFACT, message)
            artifacts.append(artifact)
        conditions.delete(obj, INCLUDE_UNAVAILABLE)

        if _includes_differ(artifacts, obj.status.included_artifacts):
            # Flux shows IncludeChange in one intermediate status write only: the rebuild that
            # follows is what the final status reports.
            if obj.status.included_artifacts:
                conditions.mark_true(obj, ARTIFACT_OUTDATED, INCLUDE_CHANGE, INCLUDE_CHANGE_MESSAGE)
            conditions.mark_reconciling(
                obj, PROGRESSING, "building artifact: %s", INCLUDE_CHANGE_MESSAGE
            )
            await writer.write()
        conditions.delete(obj, ARTIFACT_OUTDATED)
        return artifacts

    def _content_config_changed(self, obj: GitRepository, includes: list[Artifact]) -> bool:
        status, spec = obj.status, obj.spec
        if (
            status.observed_ignore != spec.ignore
            or status.observed_recurse_submodules != spec.recurse_submodules
            or status.observed_include != spec.include
            or status.observed_sparse_checkout != spec.sparse_checkout
            or (spec.verify is not None and not conditions.is_true(obj, SOURCE_VERIFIED))
        ):
            return True
        if len(includes) != len(spec.include) or len(status.included_artifacts) != len(
            spec.include
        ):
            return True
        return any(
            not observed.has_revision(current.revision) or not observed.has_digest(current.digest)
            for observed, current in zip(status.included_artifacts, includes, strict=True)
        )

    async def _reconcile_source(
        self,
        obj: GitRepository,
        auth: AuthOptions,
        includes: list[Artifact],
        writer: _StatusWriter,
    ) -> _Fetched | None:
        spec = obj.spec
        ref = Ref.from_spec(spec.ref.to_dict() if spec.ref else None)
        artifact = obj.status.artifact
        allow_file = self.settings.allow_file_urls
        try:
            if (
                artifact is not None
                and conditions.is_true(obj, ARTIFACT_IN_STORAGE)
                and not self._content_config_changed(obj, includes)
            ):
                remote = await git.remote_head(spec.url, ref, auth, allow_file=allow_file)
                if remote is not None and artifact.has_revision(remote):
                    conditions.delete(obj, FETCH_FAILED)
                    _mark_stored(obj, artifact.revision)
                    self.events.normal(
                        obj.to_dict(),
                        GIT_OPERATION_SUCCEEDED,
                        f"no changes since last reconciliation: observed revision "
                        f"'{artifact.revision}'",
                    )
                    return None
            commit = await git.fetch(
                spec.url, ref, auth, self._mirror_dir(obj), allow_file=allow_file
            )
            checkout = await self._checkout(obj, commit, auth)
        except GitError as e:
            # Flux's words for everything its checkout does (list, clone, submodules); users'
            # alerts match on them.
            message = f"{CHECKOUT_FAILED_PREFIX}{e}"
            conditions.mark_true(obj, FETCH_FAILED, e.reason, message)
            raise _Stop(Failed(e.reason, message)) from None
        try:
            await self._check_sparse(obj, checkout)
        except GitError as e:
            conditions.mark_true(obj, FETCH_FAILED, e.reason, str(e))
            raise _Stop(Failed(e.reason, str(e))) from None
        conditions.delete(obj, FETCH_FAILED)

        if spec.verify is not None:
            await self._verify(obj, commit)
        else:
            conditions.delete(obj, SOURCE_VERIFIED)
            obj.status.source_verification_mode = None

        if artifact is not None and not artifact.has_revision(commit.revision):
            message = f"new upstream revision '{commit.revision}'"
            conditions.mark_true(obj, ARTIFACT_OUTDATED, NEW_REVISION, message)
            conditions.mark_reconciling(obj, PROGRESSING, "building artifact: %s", message)
            await writer.write()
        return _Fetched(commit, checkout)

    async def _checkout(self, obj: GitRepository, commit: Commit, auth: AuthOptions) -> Checkout:
        """The fetched commit as the artifact will hold it: with its submodules when
        spec.recurseSubmodules asks for them (only those inside spec.sparseCheckout)."""
        spec = obj.spec
        mirror = self._mirror_dir(obj)
        sparse = SparseSelection.from_spec(spec.sparse_checkout)
        checkout = Checkout(mirror, commit.hash)
        if spec.recurse_submodules:
            checkout = await checkout_submodules(
                spec.url,
                auth,
                mirror,
                commit.hash,
                allow_file=self.settings.allow_file_urls,
                sparse=sparse,
            )
        return checkout

    async def _check_sparse(self, obj: GitRepository, checkout: Checkout) -> None:
        """Every spec.sparseCheckout path exists (Flux checks them right after its checkout,
        before verifying signatures, with a message of their own)."""
        selection = SparseSelection.from_spec(obj.spec.sparse_checkout)
        if selection is None:
            return

        def first_missing() -> str | None:
            with GitTree.of(checkout) as tree:
                return selection.first_missing(tree.exists)

        missing = await asyncio.to_thread(first_missing)
        if missing is not None:
            raise GitError(missing_message(missing))

    async def _verify(self, obj: GitRepository, commit: Commit) -> None:
        verify = obj.spec.verify
        assert verify is not None
        try:
            keys = await self.kube.secret_data(obj.metadata.namespace, verify.secret_ref.name)
            result = verify_commit(commit, verify.mode, keys)
        except (ApiError, VerificationError) as e:
            reason = getattr(e, "reason", "VerificationError") or "VerificationError"
            message = str(e)
            conditions.mark_false(obj, SOURCE_VERIFIED, reason, message)
            raise _Stop(Failed(reason, message)) from None
        conditions.mark_true(obj, SOURCE_VERIFIED, SUCCEEDED, result.message)
        obj.status.source_verification_mode = verify.mode
        obj.status.source_verification_fingerprint = result.commit_key or result.tag_key

    # -- step 4: artifact ----------------------------------------------------------------------

    def _unpack_included(self, artifact: Artifact, dest: Path) -> None:
        """Extract an included artifact from this controller's storage, refusing bytes that do
        not match its recorded digest. One open file serves both the check and the extraction,
        so a rewrite of the same path in between cannot slip through."""
        try:
            algorithm, _ = parse_digest(artifact.digest)
            hasher = new_hasher(algorithm)
            with self.storage.local_path(artifact.path).open("rb") as f:
                while chunk := f.read(1 << 20):
                    hasher.update(chunk)
                actual = f"{algorithm}:{hasher.hexdigest()}"
                if actual != artifact.digest:
                    raise _CopyError(f"computed digest {actual} doesn't match '{artifact.digest}'")
                f.seek(0)
                safe_extract(f, dest)
        except (OSError, StorageError, ArchiveError, ValueError, UnsupportedDigestError) as e:
            raise _CopyError(str(e)) from e

    def _compose(
        self,
        entries: dict[str, Entry],
        includes: list[tuple[GitRepositoryInclude, Artifact]],
        workdir: Path,
    ) -> None:
        """Add each include's subtree to `entries`, in spec order (a later include sees the
        earlier ones, as Flux's copies into one checkout do)."""
        for index, (include, artifact) in enumerate(includes):
            from_path, to_path = include.from_path, include_to_path(include)
            dest = workdir / str(index)
            try:
                self._unpack_included(artifact, dest)
                source = dest / include_subpath(from_path) if from_path.strip("/") else dest
                add_included_tree(entries, source, include_subpath(to_path))
            except _CopyError as e:
                raise _CopyError(
                    f"failed to copy '{include.repository.name}' include from {from_path} "
                    f"to {to_path}: {e}"
                ) from None

    async def _reconcile_artifact(
        self, obj: GitRepository, fetched: _Fetched, includes: list[Artifact]
    ) -> None:
        commit = fetched.commit
        artifact = obj.status.artifact
        if (
            artifact is not None
            and artifact.has_revision(commit.revision)
            and not self._content_config_changed(obj, includes)
        ):
            conditions.delete(obj, ARTIFACT_OUTDATED)
            _mark_stored(obj, artifact.revision)
            return
        meta = obj.metadata
        path = artifact_path(_KIND_DIR, meta.namespace, meta.name, f"{commit.hash}.tar.gz")
        sparse = SparseSelection.from_spec(obj.spec.sparse_checkout)
        spec_ignore = obj.spec.ignore
        pairs = list(zip(obj.spec.include, includes, strict=True))

        def build() -> Artifact:
            with contextlib.ExitStack() as stack:
                tree = stack.enter_context(GitTree.of(fetched.checkout, sparse))
                entries = {entry.path: entry for entry in tree}
                if pairs:
                    workdir = stack.enter_context(
                        tempfile.TemporaryDirectory(prefix="tidal-include-")
                    )
                    self._compose(entries, pairs, Path(workdir))
                rules = IgnoreRules.from_sources(_sourceignores(entries), spec_ignore)

                def produce(out: Sink) -> object:
                    return self.archiver.from_entries(entries.values(), out, ignore=rules)

                return self.storage.store(path, commit.revision, produce)

        try:
            stored = await asyncio.to_thread(build)
        except _CopyError as e:
            message = str(e)
            conditions.mark_true(obj, STORAGE_OPERATION_FAILED, COPY_FAILURE, message)
            raise _Stop(Failed(COPY_FAILURE, message)) from None
        except ArchiveError as e:
            message = f"failed to package artifact: {e}"
            conditions.mark_true(obj, STORAGE_OPERATION_FAILED, "ArchiveOperationFailed", message)
            raise _Stop(Failed("ArchiveOperationFailed", message)) from None
        except (OSError, StorageError, GitError) as e:
            message = f"failed to store artifact: {e}"
            conditions.mark_true(obj, STORAGE_OPERATION_FAILED, "StorageOperationFailed", message)
            raise _Stop(Failed("StorageOperationFailed", message)) from None

        status = obj.status
        status.artifact = stored
        status.included_artifacts = list(includes)
        status.observed_ignore = obj.spec.ignore
        status.observed_recurse_submodules = obj.spec.recurse_submodules
        status.observed_include = list(obj.spec.include)
        status.observed_sparse_checkout = list(obj.spec.sparse_checkout)
        conditions.delete(obj, ARTIFACT_OUTDATED)
        conditions.delete(obj, STORAGE_OPERATION_FAILED)
        conditions.delete(obj, INCLUDE_UNAVAILABLE)
        _mark_stored(obj, stored.revision)

    # -- step 5: events and status -------------------------------------------------------------

    def _notify(
        self,
        obj: GitRepository,
        old: Artifact | None,
        had_failure: bool,
        outcome: Outcome,
        commit: Commit | None,
    ) -> None:
        raw = obj.to_dict()
        new = obj.status.artifact
        if isinstance(outcome, Failed | Stalling):
            self.events.warning(raw, outcome.reason, outcome.message)
            return
        if isinstance(outcome, Waiting):
            # Flux records a waiting error as a Normal event and sends no alert for it.
            self.events.normal(raw, outcome.reason, outcome.message)
            return
        if isinstance(outcome, NoRequeue) or new is None:
            return
        annotations = {REVISION_ANNOTATION: new.revision, DIGEST_ANNOTATION: new.digest}
        # Without a fetch there is no commit message to quote; Flux names the revision then.
        what = _short_message(commit) if commit is not None else new.revision
        message = f"stored artifact for commit '{what}'"
        if old is None or old.digest != new.digest:
            self.events.normal(raw, NEW_ARTIFACT, message, annotations)
        elif had_failure:
            self.events.normal(raw, SUCCEEDED, message, annotations)

    async def _patch_status(self, obj: GitRepository, before: dict[str, Any]) -> None:
        meta = obj.metadata
        await write_status(
            self.kube, _object_path(meta.namespace, meta.name), before, obj.status.to_dict()
        )
