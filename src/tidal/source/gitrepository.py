"""The GitRepository reconciler: Flux source-controller's algorithm, step by step.

0. deletion: remove the artifacts and the mirror, then the finalizer; add the finalizer if
   missing; a suspended object is left alone
1. Reconciling "reconciliation in progress" (or "processing object: new generation a -> b")
2. storage: garbage-collect old artifacts; forget a recorded artifact whose file is gone
3. source: credentials from secretRef/proxySecretRef; the cheap remote check (ls-remote) when
   an artifact exists, ending the reconcile early with no fetch when the remote revision and the
   content-affecting settings are unchanged; otherwise fetch into a bare mirror; verify
   signatures when spec.verify is set; ArtifactOutdated on a new revision
4. artifact: stream the commit's tree (no checkout) through the ignore rules into a
   deterministic tar.gz, store it, record status.artifact and the observed settings
5. events (NewArtifact, recovery, failures) and the Ready summary (tidal.runtime.summarize)

Blocking work (archiving, storage I/O) runs in threads; the event loop only orchestrates.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from tidal.api.base import parse_duration
from tidal.api.meta import PROGRESSING, SUCCEEDED
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
    GitRepositoryStatus,
)
from tidal.kube.client import ApiError, Kube
from tidal.kube.events import EventRecorder
from tidal.runtime import conditions
from tidal.runtime.summarize import (
    GIT_REPOSITORY_READY,
    Failed,
    NoRequeue,
    Outcome,
    Stalling,
    Success,
    finalize,
)
from tidal.runtime.workers import Result
from tidal.source.archive import ArchiveError, Archiver, Sink
from tidal.source.git import client as git
from tidal.source.git.auth import AuthOptions, ProxyOptions
from tidal.source.git.commit import Commit
from tidal.source.git.errors import GitError, InvalidURLError, VerificationError
from tidal.source.git.refs import Ref
from tidal.source.git.tree import sourceignore_files, tree_entries
from tidal.source.git.verify import verify_commit
from tidal.source.ignore import IgnoreRules
from tidal.source.storage import Storage, StorageError, artifact_path

log = logging.getLogger(__name__)

PLURAL = "gitrepositories"
API_PATH = "/apis/source.toolkit.fluxcd.io/v1"
_KIND_DIR = GIT_REPOSITORY_KIND


class _Stop(Exception):
    """Ends the sub-reconcilers early with an outcome."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(getattr(outcome, "message", ""))
        self.outcome = outcome


@dataclass(frozen=True)
class Settings:
    """Controller-wide options (flags of `tidal controller`)."""

    mirrors: Path
    allow_file_urls: bool = False
    digest_algorithm: str = "sha256"


def _short_message(commit: Commit) -> str:
    first = commit.message.strip().splitlines()[0] if commit.message.strip() else ""
    return first if len(first) <= 50 else first[:50] + "..."


def _object_path(namespace: str, name: str) -> str:
    return f"{API_PATH}/namespaces/{namespace}/{PLURAL}/{name}"


class GitRepositoryReconciler:
    def __init__(
        self, kube: Kube, storage: Storage, events: EventRecorder, settings: Settings
    ) -> None:
        self.kube = kube
        self.storage = storage
        self.events = events
        self.settings = settings
        self.archiver = Archiver(digest_algorithm=settings.digest_algorithm)

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
        if SOURCE_FINALIZER not in meta.finalizers:
            await self.kube.patch(
                _object_path(meta.namespace, meta.name),
                {"metadata": {"finalizers": [*meta.finalizers, SOURCE_FINALIZER]}},
            )
        if obj.spec.suspend:
            return Result.success()

        before = obj.status.to_dict()
        old_artifact = obj.status.artifact
        had_failure = conditions.is_true(obj, FETCH_FAILED) or conditions.is_true(
            obj, STORAGE_OPERATION_FAILED
        )
        observed = obj.status.observed_generation
        if observed != meta.generation:
            conditions.progressive_status(
                obj,
                PROGRESSING,
                "processing object: new generation %d -> %d",
                observed,
                meta.generation,
            )
        else:
            conditions.progressive_status(obj, PROGRESSING, "reconciliation in progress")
        # Let `kubectl get` show Reconciling while a slow fetch runs.
        await self._patch_status(obj, before)
        before = obj.status.to_dict()

        commit: Commit | None = None
        try:
            await self._reconcile_storage(obj)
            commit = await self._reconcile_source(obj)
            outcome: Outcome = Success()
            if commit is not None:
                await self._reconcile_artifact(obj, commit)
        except _Stop as stop:
            outcome = stop.outcome

        interval = parse_duration(obj.spec.interval)
        finalized = finalize(obj, outcome, GIT_REPOSITORY_READY, interval=interval)
        if finalized.observed_generation_advanced:
            obj.status.observed_generation = meta.generation
        self._notify(obj, old_artifact, had_failure, outcome, commit)
        await self._patch_status(obj, before)
        return finalized.result

    # -- deletion ------------------------------------------------------------------------------

    async def _delete(self, obj: GitRepository) -> Result:
        meta = obj.metadata
        try:
            await asyncio.to_thread(self.storage.remove_all, _KIND_DIR, meta.namespace, meta.name)
        except (OSError, StorageError) as e:
            return Result.failure(f"garbage collection failed: {e}")
        shutil.rmtree(self._mirror_dir(obj), ignore_errors=True)
        if SOURCE_FINALIZER in meta.finalizers:
            remaining = [f for f in meta.finalizers if f != SOURCE_FINALIZER]
            try:
                await self.kube.patch(
                    _object_path(meta.namespace, meta.name),
                    {"metadata": {"finalizers": remaining or None}},
                )
            except ApiError as e:
                if e.status != 404:
                    raise
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
                conditions.mark_reconciling(obj, PROGRESSING, "building artifact")
            else:
                obj.status.artifact = self.storage.with_current_url(artifact)
        if obj.status.artifact is None:
            conditions.mark_reconciling(obj, PROGRESSING, "building artifact")

    # -- step 3: source ------------------------------------------------------------------------

    async def _secret_data(self, namespace: str, name: str) -> dict[str, bytes]:
        secret = await self.kube.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
        data = secret.get("data") or {}
        return {k: base64.b64decode(v) for k, v in data.items()}

    async def _auth(self, obj: GitRepository) -> AuthOptions:
        spec, ns = obj.spec, obj.metadata.namespace
        unsupported = [
            what
            for what, used in (
                ("spec.include", bool(spec.include)),
                ("spec.recurseSubmodules", spec.recurse_submodules),
                ("spec.sparseCheckout", bool(spec.sparse_checkout)),
                (f"spec.provider '{spec.provider}'", spec.provider not in (None, "generic")),
            )
            if used
        ]
        if unsupported:
            message = f"{', '.join(unsupported)} not supported by tidal yet"
            raise _Stop(Stalling("UnsupportedConfiguration", message))
        try:
            data: dict[str, bytes] = {}
            if spec.secret_ref is not None:
                data = await self._secret_data(ns, spec.secret_ref.name)
            proxy = None
            if spec.proxy_secret_ref is not None:
                proxy = ProxyOptions.from_secret(
                    await self._secret_data(ns, spec.proxy_secret_ref.name)
                )
            return AuthOptions.from_secret(
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

    def _content_config_changed(self, obj: GitRepository) -> bool:
        status, spec = obj.status, obj.spec
        return (
            status.observed_ignore != spec.ignore
            or status.observed_recurse_submodules != spec.recurse_submodules
            or status.observed_include != spec.include
            or status.observed_sparse_checkout != spec.sparse_checkout
            or (spec.verify is not None and not conditions.is_true(obj, SOURCE_VERIFIED))
        )

    async def _reconcile_source(self, obj: GitRepository) -> Commit | None:
        auth = await self._auth(obj)
        spec = obj.spec
        ref = Ref.from_spec(spec.ref.to_dict() if spec.ref else None)
        artifact = obj.status.artifact
        allow_file = self.settings.allow_file_urls
        try:
            if (
                artifact is not None
                and conditions.is_true(obj, ARTIFACT_IN_STORAGE)
                and not self._content_config_changed(obj)
            ):
                remote = await git.remote_head(spec.url, ref, auth, allow_file=allow_file)
                if remote is not None and artifact.has_revision(remote):
                    conditions.delete(obj, FETCH_FAILED)
                    conditions.mark_true(
                        obj,
                        ARTIFACT_IN_STORAGE,
                        SUCCEEDED,
                        "stored artifact for revision '%s'",
                        artifact.revision,
                    )
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
        return commit

    async def _verify(self, obj: GitRepository, commit: Commit) -> None:
        verify = obj.spec.verify
        assert verify is not None
        try:
            keys = await self._secret_data(obj.metadata.namespace, verify.secret_ref.name)
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

    async def _reconcile_artifact(self, obj: GitRepository, commit: Commit) -> None:
        artifact = obj.status.artifact
        if (
            artifact is not None
            and artifact.has_revision(commit.revision)
            and not self._content_config_changed(obj)
        ):
            conditions.delete(obj, ARTIFACT_OUTDATED)
            conditions.mark_true(
                obj,
                ARTIFACT_IN_STORAGE,
                SUCCEEDED,
                "stored artifact for revision '%s'",
                artifact.revision,
            )
            return
        meta = obj.metadata
        path = artifact_path(_KIND_DIR, meta.namespace, meta.name, f"{commit.hash}.tar.gz")
        mirror = self._mirror_dir(obj)
        spec_ignore = obj.spec.ignore

        def build() -> Any:
            rules = IgnoreRules.from_sources(sourceignore_files(mirror, commit.hash), spec_ignore)

            def produce(out: Sink) -> object:
                with tree_entries(mirror, commit.hash) as entries:
                    return self.archiver.from_entries(entries, out, ignore=rules)

            return self.storage.store(path, commit.revision, produce)

        try:
            stored = await asyncio.to_thread(build)
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
        status.observed_ignore = obj.spec.ignore
        status.observed_recurse_submodules = obj.spec.recurse_submodules
        status.observed_include = list(obj.spec.include)
        status.observed_sparse_checkout = list(obj.spec.sparse_checkout)
        conditions.delete(obj, ARTIFACT_OUTDATED)
        conditions.delete(obj, STORAGE_OPERATION_FAILED)
        conditions.delete(obj, INCLUDE_UNAVAILABLE)
        conditions.mark_true(
            obj,
            ARTIFACT_IN_STORAGE,
            SUCCEEDED,
            "stored artifact for revision '%s'",
            stored.revision,
        )

    # -- step 5: events and status -------------------------------------------------------------

    def _notify(
        self,
        obj: GitRepository,
        old: Any,
        had_failure: bool,
        outcome: Outcome,
        commit: Commit | None,
    ) -> None:
        raw = obj.to_dict()
        new = obj.status.artifact
        if isinstance(outcome, Failed | Stalling):
            self.events.warning(raw, outcome.reason, outcome.message)
            return
        if isinstance(outcome, NoRequeue) or new is None:
            return
        annotations = {REVISION_ANNOTATION: new.revision, DIGEST_ANNOTATION: new.digest}
        if commit is not None and (old is None or old.digest != new.digest):
            self.events.normal(
                raw,
                NEW_ARTIFACT,
                f"stored artifact for commit '{_short_message(commit)}'",
                annotations,
            )
        elif had_failure:
            self.events.normal(
                raw, SUCCEEDED, f"stored artifact for revision '{new.revision}'", annotations
            )

    async def _patch_status(self, obj: GitRepository, before: dict[str, Any]) -> None:
        after = obj.status.to_dict()
        if after == before:
            return
        # A merge patch only removes what it names as null.
        patch: dict[str, Any] = {k: None for k in before if k not in after}
        patch.update(after)
        defaults = GitRepositoryStatus().to_dict()
        for key in list(patch):
            if patch[key] is None and key in defaults:
                patch[key] = defaults[key]
        meta = obj.metadata
        try:
            await self.kube.patch(
                _object_path(meta.namespace, meta.name) + "/status", {"status": patch}
            )
        except ApiError as e:
            if e.status != 404:
                raise
