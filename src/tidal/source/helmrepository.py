"""The HelmRepository reconciler: Flux source-controller's algorithm for both types.

type default (an HTTP/S index):
0. deletion: remove the artifacts, then the finalizer; add the finalizer if missing; a
   suspended object is left alone
1. Reconciling "reconciliation in progress" (or "processing object: new generation a -> b")
2. storage: garbage-collect old artifacts; forget a recorded artifact whose file is gone or no
   longer matches its digest
3. source: credentials from secretRef/certSecretRef, GET <url>/index.yaml (bounded in time and
   size); the revision is the digest of the bytes fetched, and when it equals the artifact's the
   reconcile ends there, unparsed; otherwise the index is loaded and normalised
   (tidal.source.helm.index); ArtifactOutdated on a new revision
4. artifact: the normalised index, as JSON, at helmrepository/<ns>/<name>/index-<hex>.yaml; the
   `index.yaml` link beside it is status.url
5. events (NewArtifact, recovery, failures) and the Ready summary (tidal.runtime.summarize)

type oci: a static object holding an address for HelmCharts. As current Flux, it is never
reconciled: a leftover finalizer, artifact or status (from before it became oci) is removed
once, and nothing else happens. The CLI shows it Ready.

Blocking work (loading the index, storage I/O) runs in threads; the event loop only
orchestrates.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgspec

from tidal.api.base import parse_duration
from tidal.api.meta import FAILED, PROGRESSING, SUCCEEDED, Artifact
from tidal.api.source import (
    ARTIFACT_IN_STORAGE,
    ARTIFACT_OUTDATED,
    ARTIFACT_UP_TO_DATE,
    AUTHENTICATION_FAILED,
    DIGEST_ANNOTATION,
    FETCH_FAILED,
    HELM_REPOSITORY_DEFAULT_INTERVAL,
    HELM_REPOSITORY_DEFAULT_TIMEOUT,
    HELM_REPOSITORY_KIND,
    INDEXATION_FAILED,
    NEW_ARTIFACT,
    NEW_REVISION,
    REVISION_ANNOTATION,
    SOURCE_FINALIZER,
    STORAGE_OPERATION_FAILED,
    URL_INVALID,
    HelmRepository,
)
from tidal.kube.client import ApiError, Kube
from tidal.kube.events import EventRecorder
from tidal.runtime import conditions
from tidal.runtime.finalizers import remove_finalizer
from tidal.runtime.status import write_status
from tidal.runtime.summarize import (
    HELM_REPOSITORY_READY,
    Failed,
    Outcome,
    Stalling,
    Success,
    finalize,
)
from tidal.runtime.workers import Result
from tidal.source.base import SourceReconciler, Stop
from tidal.source.helm.auth import AuthError, ClientOptions, client_options
from tidal.source.helm.fetch import FetchError, fetch_index, redact
from tidal.source.helm.index import (
    DEFAULT_MAX_INDEX_SIZE,
    NormalizedIndex,
    describe_skipped,
    normalize,
)
from tidal.source.helm.index_schema import IndexLoadError
from tidal.source.storage import Storage, StorageError, artifact_path
from tidal.source.stored_artifact import check_stored_artifact

log = logging.getLogger(__name__)

PLURAL = "helmrepositories"
INDEX_LINK = "index.yaml"
DIR_CREATION_FAILED = "DirectoryCreationFailed"
ARCHIVE_OPERATION_FAILED = "ArchiveOperationFailed"
# tidal's own event, not Flux's: the chart versions Flux drops from an index without a word.
INDEX_ENTRIES_SKIPPED = "IndexEntriesSkipped"


@dataclass(frozen=True)
class Settings:
    """Controller-wide options (flags of `tidal controller`)."""

    # Flux's --helm-index-max-size.
    max_index_size: int = DEFAULT_MAX_INDEX_SIZE


@dataclass(frozen=True)
class _Fetched:
    """What the source step hands to the artifact step."""

    revision: str
    index: NormalizedIndex | None  # None: the artifact already holds this revision


def human_size(size: float) -> str:
    """docker/go-units HumanSize: decimal units, four significant digits ("30.88kB")."""
    units = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.4g}{units[i]}"


def revision_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _mark_stored(obj: HelmRepository, revision: str) -> None:
    conditions.mark_true(
        obj, ARTIFACT_IN_STORAGE, SUCCEEDED, "stored artifact: revision '%s'", revision
    )


def _status_is_empty(raw: Mapping[str, Any]) -> bool:
    """Flux's hasEmptyHelmRepositoryStatus (the CRD's default -1 counts as not empty)."""
    status = raw.get("status") or {}
    return not (
        status.get("observedGeneration")
        or status.get("conditions")
        or status.get("url")
        or status.get("artifact")
        or status.get("lastHandledReconcileAt")
    )


class HelmRepositoryReconciler(SourceReconciler):
    plural = PLURAL
    kind = HELM_REPOSITORY_KIND

    def __init__(
        self,
        kube: Kube,
        storage: Storage,
        events: EventRecorder,
        settings: Settings | None = None,
    ) -> None:
        super().__init__(kube, storage, events)
        self.settings = settings or Settings()

    # -- entry point ---------------------------------------------------------------------------

    async def reconcile(self, raw: Mapping[str, Any]) -> Result:
        try:
            obj = HelmRepository.from_dict(raw)
        except msgspec.ValidationError as e:
            log.error("cannot decode HelmRepository: %s", e)
            return Result.failure(f"invalid object: {e}")
        if obj.is_oci:
            return await self._make_static(obj, raw)
        stopped = await self._begin(obj, obj.spec.suspend)
        if stopped is not None:
            return stopped

        written = obj.status.to_dict()
        old_artifact = obj.status.artifact
        had_failure = any(
            conditions.is_true(obj, t) for t in (FETCH_FAILED, STORAGE_OPERATION_FAILED)
        )
        conditions.progressing(obj, obj.status.observed_generation)
        written = await self._write(obj, written)
        conditions.delete(obj, STORAGE_OPERATION_FAILED)

        skipped_note = ""
        try:
            await self._reconcile_storage(obj)
            fetched = await self._reconcile_source(obj)
            if fetched.index is not None:
                conditions.mark_reconciling(
                    obj, PROGRESSING, "building artifact: new index revision '%s'", fetched.revision
                )
                written = await self._write(obj, written)
                if fetched.index.skipped:
                    skipped_note = describe_skipped(fetched.index.skipped)
            await self._reconcile_artifact(obj, fetched)
            outcome: Outcome = Success()
        except Stop as stop:
            outcome = stop.outcome

        interval = parse_duration(obj.spec.interval or HELM_REPOSITORY_DEFAULT_INTERVAL)
        finalized = finalize(obj, outcome, HELM_REPOSITORY_READY, interval=interval)
        self._notify(obj, old_artifact, had_failure, outcome, skipped_note)
        await self._write(obj, written)
        return finalized.result

    # -- type oci ------------------------------------------------------------------------------

    async def _make_static(self, obj: HelmRepository, raw: Mapping[str, Any]) -> Result:
        """Flux's migrationToStatic: drop what a reconciled past left, once."""
        meta = obj.metadata
        if obj.spec.suspend and not meta.deletion_timestamp:
            return Result.success()
        if SOURCE_FINALIZER not in meta.finalizers and _status_is_empty(raw):
            return Result.success()
        try:
            await asyncio.to_thread(
                self.storage.remove_all, HELM_REPOSITORY_KIND, meta.namespace, meta.name
            )
        except (OSError, StorageError) as e:
            return Result.failure(f"garbage collection for deleted resource failed: {e}")
        path = self.object_path(meta.namespace, meta.name)
        before = dict(raw.get("status") or {})
        if before:
            await write_status(self.kube, path, before, {})
        await remove_finalizer(self.kube, path, meta.finalizers, SOURCE_FINALIZER)
        return Result.success()

    # -- step 2: storage -----------------------------------------------------------------------

    async def _reconcile_storage(self, obj: HelmRepository) -> None:
        missing = await check_stored_artifact(self.storage, self.events, obj)
        if obj.status.artifact is None:
            message = "building artifact" + (": disappeared from storage" if missing else "")
            conditions.mark_reconciling(obj, PROGRESSING, message)
            conditions.delete(obj, ARTIFACT_IN_STORAGE)
            return

    # -- step 3: source ------------------------------------------------------------------------

    async def _client_options(self, obj: HelmRepository) -> ClientOptions:
        spec, ns = obj.spec, obj.metadata.namespace
        secrets: dict[str, tuple[str, dict[str, bytes]] | None] = {"auth": None, "tls": None}
        for slot, ref, what in (
            ("tls", spec.cert_secret_ref, "TLS authentication secret"),
            ("auth", spec.secret_ref, "authentication secret"),
        ):
            if ref is None:
                continue
            try:
                secrets[slot] = (ref.name, await self.kube.secret_data(ns, ref.name))
            except ApiError as e:
                message = f"failed to get {what} '{ns}/{ref.name}': {e.message}"
                conditions.mark_true(obj, FETCH_FAILED, AUTHENTICATION_FAILED, message)
                raise Stop(Failed(AUTHENTICATION_FAILED, message)) from None
        try:
            options = client_options(ns, secrets["auth"], secrets["tls"])
        except AuthError as e:
            conditions.mark_true(obj, FETCH_FAILED, AUTHENTICATION_FAILED, str(e))
            raise Stop(Failed(AUTHENTICATION_FAILED, str(e))) from None
        if options.deprecated_tls:
            log.info(
                "warning: specifying TLS authentication data via `.spec.secretRef` is "
                "deprecated, please use `.spec.certSecretRef` instead",
                extra={"object": f"{ns}/{obj.metadata.name}"},
            )
        return options

    def _invalid_url(self, obj: HelmRepository, detail: str) -> Stop:
        message = f"invalid Helm repository URL: {detail}"
        conditions.mark_true(obj, FETCH_FAILED, URL_INVALID, message)
        return Stop(Stalling(URL_INVALID, message))

    async def _reconcile_source(self, obj: HelmRepository) -> _Fetched:
        url = obj.spec.url
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError as e:
            raise self._invalid_url(obj, f'parse "{redact(url)}": {e}') from None
        if parts.scheme == "oci":
            raise self._invalid_url(
                obj, "'oci' URL scheme cannot be used with 'default' HelmRepository type"
            )
        if parts.scheme not in ("http", "https"):
            message = f'failed to construct Helm client: scheme "{parts.scheme}" not supported'
            conditions.mark_true(obj, FETCH_FAILED, FAILED, message)
            raise Stop(Stalling(FAILED, message))
        options = await self._client_options(obj)
        try:
            tls = options.tls.context() if options.tls is not None else None
            data = await fetch_index(
                self._http(),
                url,
                basic=options.basic,
                tls=tls,
                time_limit=parse_duration(obj.spec.timeout or HELM_REPOSITORY_DEFAULT_TIMEOUT),
                max_size=self.settings.max_index_size,
            )
        except (FetchError, AuthError) as e:
            message = (
                "failed to fetch Helm repository index: failed to cache index to temporary "
                f"file: {e}"
            )
            conditions.mark_true(obj, FETCH_FAILED, FAILED, message)
            raise Stop(Failed(FAILED, message)) from None

        revision = revision_of(data)
        current = obj.status.artifact
        if current is not None and current.has_revision(revision):
            # The bytes are those of the stored artifact: nothing to load.
            conditions.delete(obj, FETCH_FAILED)
            return _Fetched(revision, None)
        try:
            index = await asyncio.to_thread(normalize, data)
        except IndexLoadError as e:
            message = (
                f"failed to load Helm repository from index YAML at {redact(url)}: "
                f"failed to load index: {e}"
            )
            conditions.mark_true(obj, FETCH_FAILED, INDEXATION_FAILED, message)
            raise Stop(Failed(INDEXATION_FAILED, message)) from None
        finally:
            del data
        conditions.delete(obj, FETCH_FAILED)
        if current is not None:
            conditions.mark_true(
                obj, ARTIFACT_OUTDATED, NEW_REVISION, "new index revision '%s'", revision
            )
        return _Fetched(revision, index)

    # -- step 4: artifact ----------------------------------------------------------------------

    async def _reconcile_artifact(self, obj: HelmRepository, fetched: _Fetched) -> None:
        current = obj.status.artifact
        if fetched.index is None and current is not None:
            self.events.normal(
                obj.to_dict(),
                ARTIFACT_UP_TO_DATE,
                f"artifact up-to-date with remote revision: '{current.revision}'",
            )
            conditions.delete(obj, ARTIFACT_OUTDATED)
            _mark_stored(obj, current.revision)
            return
        index = fetched.index
        assert index is not None
        meta = obj.metadata
        hex_digest = fetched.revision.partition(":")[2]
        path = artifact_path(
            HELM_REPOSITORY_KIND, meta.namespace, meta.name, f"index-{hex_digest}.yaml"
        )

        def store() -> tuple[Artifact, str]:
            def produce(out: Any) -> None:
                for chunk in index.chunks():
                    out.write(chunk)

            with self.storage.lock(path):
                stored = self.storage.store(path, fetched.revision, produce)
            try:
                link = self.storage.symlink(path, INDEX_LINK)
            except (OSError, StorageError) as e:
                log.warning("failed to update status URL symlink: %s", e)
                link = ""
            return stored, link

        try:
            stored, link = await asyncio.to_thread(store)
        except (OSError, StorageError) as e:
            message = f"unable to save artifact to storage: {e}"
            conditions.mark_true(obj, STORAGE_OPERATION_FAILED, ARCHIVE_OPERATION_FAILED, message)
            raise Stop(Failed(ARCHIVE_OPERATION_FAILED, message)) from None
        obj.status.artifact = stored
        if link:
            obj.status.url = link
        conditions.delete(obj, STORAGE_OPERATION_FAILED)
        conditions.delete(obj, ARTIFACT_OUTDATED)
        _mark_stored(obj, stored.revision)

    # -- step 5: events ------------------------------------------------------------------------

    def _notify(
        self,
        obj: HelmRepository,
        old: Artifact | None,
        had_failure: bool,
        outcome: Outcome,
        skipped_note: str,
    ) -> None:
        raw = obj.to_dict()
        if isinstance(outcome, Failed | Stalling):
            self.events.warning(raw, outcome.reason, outcome.message)
            return
        new = obj.status.artifact
        if not isinstance(outcome, Success) or new is None:
            return
        annotations = {REVISION_ANNOTATION: new.revision, DIGEST_ANNOTATION: new.digest}
        size = "unknown size" if new.size is None else f"size {human_size(new.size)}"
        message = f"stored fetched index of {size} from '{redact(obj.spec.url)}'"
        if old is None or old.digest != new.digest:
            self.events.normal(raw, NEW_ARTIFACT, message, annotations)
            log.info(message, extra={"object": f"{obj.metadata.namespace}/{obj.metadata.name}"})
            if skipped_note:
                self.events.normal(raw, INDEX_ENTRIES_SKIPPED, skipped_note)
                log.warning(
                    skipped_note, extra={"object": f"{obj.metadata.namespace}/{obj.metadata.name}"}
                )
        elif had_failure:
            self.events.normal(raw, SUCCEEDED, message, annotations)
