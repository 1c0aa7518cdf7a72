"""The OCIRepository reconciler: Flux source-controller's algorithm.

0. deletion: remove the artifacts, then the finalizer; add the finalizer if missing; a
   suspended object is left alone
1. Reconciling "reconciliation in progress" (or "processing object: new generation a -> b")
2. storage: garbage-collect old artifacts; forget a recorded artifact whose file is gone or no
   longer matches its digest
3. source: credentials (secretRef and the ServiceAccount's image pull secrets, certSecretRef,
   proxySecretRef); the reference (digest > semver over the tags, with semverFilter > tag >
   `latest`); the revision `<tag>@<digest>` from a manifest HEAD (or the digest itself). When
   the stored artifact has that revision and ignore/layerSelector are unchanged, nothing is
   pulled. Otherwise the manifest is fetched, its annotations become the artifact's metadata,
   and the selected layer (first of spec.layerSelector.mediaType, or the first) is streamed
   with a size cap and digest check, then extracted safely (extract) or kept as is (copy)
4. artifact: `ocirepository/<ns>/<name>/<digest>.tar.gz`, re-archived with the ignore rules
   (extract) or the layer's bytes (copy); `latest.tar.gz` beside it is status.url
5. events (NewArtifact with the origin source and revision, recovery, failures) and the Ready
   summary (tidal.runtime.summarize)

Cloud providers (aws, azure, gcp) and signature verification (spec.verify) are not supported
yet: such objects stall with a message saying so, and are never reported verified.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import tempfile
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
import msgspec

from tidal.api.base import parse_duration
from tidal.api.meta import PROGRESSING, READY, RECONCILING, STALLED, SUCCEEDED, Artifact
from tidal.api.source import (
    ARTIFACT_IN_STORAGE,
    ARTIFACT_OUTDATED,
    ARTIFACT_UP_TO_DATE,
    AUTHENTICATION_FAILED,
    DIGEST_ANNOTATION,
    FETCH_FAILED,
    GROUP,
    NEW_ARTIFACT,
    NEW_REVISION,
    REVISION_ANNOTATION,
    SOURCE_VERIFIED,
    STORAGE_OPERATION_FAILED,
    URL_INVALID,
    VERIFICATION_ERROR,
)
from tidal.api.source_oci import (
    LAYER_COPY,
    OCI_DEFAULT_TIMEOUT,
    OCI_LATEST_LINK,
    OCI_LAYER_OPERATION_FAILED,
    OCI_PULL_FAILED,
    OCI_REPOSITORY_KIND,
    OCI_REPOSITORY_PLURAL,
    READ_OPERATION_FAILED,
    OCIRepository,
)
from tidal.kube.client import ApiError, Kube
from tidal.kube.events import EventRecorder
from tidal.runtime import conditions
from tidal.runtime.summarize import Failed, Outcome, ReadySummary, Stalling, Success, finalize
from tidal.runtime.workers import Result
from tidal.source.archive import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FILES,
    ArchiveError,
    Archiver,
    safe_extract,
)
from tidal.source.base import SourceReconciler, Stop
from tidal.source.helm.auth import AuthError, tls_from_secret
from tidal.source.ignore import IgnoreRules
from tidal.source.oci import cosign
from tidal.source.oci.auth import CredentialsError, keyring_from_secrets
from tidal.source.oci.client import Client, Proxy
from tidal.source.oci.errors import OCIError
from tidal.source.oci.manifest import REVISION_ANNOTATION as OCI_REVISION
from tidal.source.oci.manifest import SOURCE_ANNOTATION as OCI_SOURCE
from tidal.source.oci.manifest import select_layer
from tidal.source.oci.reference import DEFAULT_TAG, Repository, parse_repository
from tidal.source.oci.tags import digest_of_revision, revision, select_semver
from tidal.source.storage import Storage, StorageError, artifact_path
from tidal.source.stored_artifact import check_stored_artifact

log = logging.getLogger(__name__)

ARCHIVE_OPERATION_FAILED = "ArchiveOperationFailed"
UNSUPPORTED_CONFIGURATION = "UnsupportedConfiguration"
ORIGIN_REVISION_ANNOTATION = f"{GROUP}/originRevision"
DEFAULT_MAX_LAYER_SIZE = 1 << 30

T = TypeVar("T")

# source-controller's ociRepositoryReadyCondition.
OCI_REPOSITORY_READY = ReadySummary(
    summarize=(
        STORAGE_OPERATION_FAILED,
        FETCH_FAILED,
        ARTIFACT_OUTDATED,
        ARTIFACT_IN_STORAGE,
        SOURCE_VERIFIED,
        STALLED,
        RECONCILING,
    ),
    negative_polarity=(
        STORAGE_OPERATION_FAILED,
        FETCH_FAILED,
        ARTIFACT_OUTDATED,
        STALLED,
        RECONCILING,
    ),
    owned=(
        STORAGE_OPERATION_FAILED,
        FETCH_FAILED,
        ARTIFACT_OUTDATED,
        ARTIFACT_IN_STORAGE,
        SOURCE_VERIFIED,
        READY,
        RECONCILING,
        STALLED,
    ),
    bipolarity=(SOURCE_VERIFIED,),
)


@dataclass(frozen=True)
class Settings:
    """Controller-wide limits on what one artifact may hold (artifacts are untrusted input)."""

    max_layer_size: int = DEFAULT_MAX_LAYER_SIZE  # compressed bytes of the selected layer
    max_content_bytes: int = DEFAULT_MAX_BYTES  # uncompressed bytes after extraction
    max_files: int = DEFAULT_MAX_FILES


@dataclass
class _Fetched:
    """What the source step hands to the artifact step."""

    revision: str
    pulled: bool  # False: the stored artifact already holds this revision
    metadata: dict[str, str] = field(default_factory=dict)
    copy_file: Path | None = None  # the layer, for operation copy


def content_config_changed(obj: OCIRepository) -> bool:
    """Flux's ociContentConfigChanged: ignore or layerSelector differ from what the stored
    artifact was built with."""
    return (
        obj.spec.ignore != obj.status.observed_ignore
        or obj.spec.layer_selector != obj.status.observed_layer_selector
    )


def new_artifact_message(url: str, artifact: Artifact) -> tuple[str, dict[str, str]]:
    """The NewArtifact event's text and annotations, as Flux's notify writes them."""
    annotations = {REVISION_ANNOTATION: artifact.revision, DIGEST_ANNOTATION: artifact.digest}
    message = f"stored artifact with revision '{artifact.revision}' from '{url}'"
    source = artifact.metadata.get(OCI_SOURCE, "")
    origin = artifact.metadata.get(OCI_REVISION, "")
    if origin:
        annotations[ORIGIN_REVISION_ANNOTATION] = origin
    if source and origin:
        message += f", origin source '{source}', origin revision '{origin}'"
    return message, annotations


class OCIRepositoryReconciler(SourceReconciler):
    plural = OCI_REPOSITORY_PLURAL
    kind = OCI_REPOSITORY_KIND

    def __init__(
        self,
        kube: Kube,
        storage: Storage,
        events: EventRecorder,
        settings: Settings | None = None,
    ) -> None:
        super().__init__(kube, storage, events)
        self.settings = settings or Settings()
        self.archiver = Archiver(
            digest_algorithm=storage.digest_algorithm,
            max_bytes=self.settings.max_content_bytes,
            max_files=self.settings.max_files,
        )

    # -- entry point ---------------------------------------------------------------------------

    async def reconcile(self, raw: Mapping[str, Any]) -> Result:
        try:
            obj = OCIRepository.from_dict(raw)
        except msgspec.ValidationError as e:
            log.error("cannot decode OCIRepository: %s", e)
            return Result.failure(f"invalid object: {e}")
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

        meta = obj.metadata
        workdir = Path(tempfile.mkdtemp(prefix=f"tidal-oci-{meta.namespace}-{meta.name}-"))
        try:
            await self._reconcile_storage(obj)
            fetched = await self._reconcile_source(obj, workdir)
            if fetched.pulled:
                written = await self._write(obj, written)
            await self._reconcile_artifact(obj, fetched, workdir)
            outcome: Outcome = Success()
        except Stop as stop:
            outcome = stop.outcome
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)

        interval = parse_duration(obj.spec.interval or "1m")
        finalized = finalize(obj, outcome, OCI_REPOSITORY_READY, interval=interval)
        self._notify(obj, old_artifact, had_failure, outcome)
        await self._write(obj, written)
        return finalized.result

    # -- step 2: storage -----------------------------------------------------------------------

    async def _reconcile_storage(self, obj: OCIRepository) -> None:
        missing = await check_stored_artifact(self.storage, self.events, obj)
        if obj.status.artifact is None:
            message = "building artifact" + (": disappeared from storage" if missing else "")
            conditions.mark_reconciling(obj, PROGRESSING, message)
            conditions.delete(obj, ARTIFACT_IN_STORAGE)
            return

    # -- step 3: source ------------------------------------------------------------------------

    def _fail(self, obj: OCIRepository, reason: str, message: str, *, stall: bool = False) -> Stop:
        conditions.mark_true(obj, FETCH_FAILED, reason, "%s", message)
        return Stop(Stalling(reason, message) if stall else Failed(reason, message))

    def _check_supported(self, obj: OCIRepository) -> None:
        spec = obj.spec
        provider = spec.provider or "generic"
        if provider != "generic":
            message = f"spec.provider '{provider}' not supported by tidal yet"
            raise Stop(Stalling(UNSUPPORTED_CONFIGURATION, message))
        verify = spec.verify
        if verify is not None and (verify.provider != "cosign" or verify.secret_ref is None):
            # Never reported verified: only cosign with public keys is checked so far.
            what = "cosign keyless" if verify.provider == "cosign" else verify.provider
            message = (
                f"failed to verify the signature using provider '{what}': "
                f"{what} verification is not supported by tidal yet"
            )
            conditions.mark_false(obj, SOURCE_VERIFIED, VERIFICATION_ERROR, "%s", message)
            raise Stop(Stalling(VERIFICATION_ERROR, message))

    async def _pull_secrets(self, obj: OCIRepository) -> list[tuple[str, dict[str, bytes]]]:
        spec, ns = obj.spec, obj.metadata.namespace
        found: list[tuple[str, dict[str, bytes]]] = []
        if spec.service_account_name:
            ref = f"{ns}/{spec.service_account_name}"
            try:
                sa = await self.kube.get(
                    f"/api/v1/namespaces/{ns}/serviceaccounts/{spec.service_account_name}"
                )
            except ApiError as e:
                raise self._fail(
                    obj,
                    AUTHENTICATION_FAILED,
                    f"failed to get service account '{ref}': {e.message}",
                ) from None
            for pull in sa.get("imagePullSecrets") or []:
                name = str((pull or {}).get("name") or "")
                if name:
                    found.append(await self._secret(obj, name))
        if spec.secret_ref is not None:
            found.insert(0, await self._secret(obj, spec.secret_ref.name))
        return found

    async def _secret(self, obj: OCIRepository, name: str) -> tuple[str, dict[str, bytes]]:
        ref = f"{obj.metadata.namespace}/{name}"
        try:
            return ref, await self.kube.secret_data(obj.metadata.namespace, name)
        except ApiError as e:
            raise self._fail(
                obj,
                AUTHENTICATION_FAILED,
                f"failed to get credential: failed to get secret '{ref}': {e.message}",
            ) from None

    async def _client(self, obj: OCIRepository, repository: Repository) -> Client:
        spec, ns = obj.spec, obj.metadata.namespace
        try:
            keyring = keyring_from_secrets(await self._pull_secrets(obj))
        except CredentialsError as e:
            raise self._fail(obj, AUTHENTICATION_FAILED, f"failed to get credential: {e}") from None
        proxy = None
        if spec.proxy_secret_ref is not None:
            ref = f"{ns}/{spec.proxy_secret_ref.name}"
            try:
                data = await self.kube.secret_data(ns, spec.proxy_secret_ref.name)
            except ApiError as e:
                raise self._fail(
                    obj,
                    AUTHENTICATION_FAILED,
                    f"failed to get proxy address: secret '{ref}': {e.message}",
                ) from None
            address = data.get("address", b"").decode("utf-8", "replace").strip()
            if not address:
                raise self._fail(
                    obj,
                    AUTHENTICATION_FAILED,
                    f"failed to get proxy address: secret '{ref}': key 'address' not found",
                )
            if urlsplit(address).scheme not in ("http", "https"):
                # aiohttp tunnels through HTTP(S) proxies only; never print the address, it
                # may carry credentials.
                raise self._fail(
                    obj,
                    AUTHENTICATION_FAILED,
                    f"failed to get proxy address: secret '{ref}': only http:// and https:// "
                    "proxies are supported by tidal",
                )
            proxy = Proxy(
                address,
                data.get("username", b"").decode("utf-8", "replace"),
                data.get("password", b"").decode("utf-8", "replace"),
            )
        tls: ssl.SSLContext | bool | None = None
        if spec.cert_secret_ref is not None and spec.cert_secret_ref.name:
            ref = f"{ns}/{spec.cert_secret_ref.name}"
            try:
                data = await self.kube.secret_data(ns, spec.cert_secret_ref.name)
                tls = tls_from_secret(data, ref).context()
            except (ApiError, AuthError) as e:
                detail = e.message if isinstance(e, ApiError) else str(e)
                raise self._fail(
                    obj,
                    AUTHENTICATION_FAILED,
                    f"failed to generate transport for '{spec.url}': {detail}",
                ) from None
        elif spec.insecure:
            # As Flux: insecure without a certSecretRef also skips certificate verification.
            tls = False
        return Client(
            self._http(),
            repository,
            credentials=keyring.lookup(repository),
            tls=tls,
            proxy=proxy,
        )

    async def _bounded(self, work: Awaitable[T], deadline: float) -> T:
        """`work` within the object's timeout, its transport failures as OCIError."""
        try:
            async with asyncio.timeout_at(deadline):
                return await work
        except TimeoutError:
            raise OCIError("context deadline exceeded") from None
        except aiohttp.ClientError as e:
            raise OCIError(str(e) or type(e).__name__) from None

    async def _verify(
        self,
        obj: OCIRepository,
        client: Client,
        repository: Repository,
        digest: str,
        rev: str,
        deadline: float,
    ) -> None:
        """Flux's rule: verify again on a new revision, a new generation, after a failure, or
        when the keys changed; SourceVerified records the outcome."""
        verify = obj.spec.verify
        if verify is None:
            conditions.delete(obj, SOURCE_VERIFIED)
            obj.status.source_verification_fingerprint = ""
            return
        assert verify.secret_ref is not None  # _check_supported stalls keyless verification
        ns, name = obj.metadata.namespace, verify.secret_ref.name
        failure = f"failed to verify the signature using provider '{verify.provider}'"
        try:
            secret = await self.kube.secret_data(ns, name)
        except ApiError as e:
            message = f"{failure}: {e.message}"
            conditions.mark_false(obj, SOURCE_VERIFIED, VERIFICATION_ERROR, "%s", message)
            raise Stop(Failed(VERIFICATION_ERROR, message)) from None
        print_ = cosign.fingerprint(verify.provider, secret)
        verified = conditions.get(obj, SOURCE_VERIFIED)
        current = obj.status.artifact
        if (
            current is not None
            and current.has_revision(rev)
            and verified is not None
            and verified.status == conditions.TRUE
            and verified.observed_generation == obj.metadata.generation
            and print_ == obj.status.source_verification_fingerprint
        ):
            return
        ref = repository.digest(digest)
        try:
            ok = await self._bounded(
                cosign.verify(client, digest, cosign.public_keys(secret)), deadline
            )
        except OCIError as e:
            ok, detail = False, str(e)
        else:
            detail = f"no matching signatures were found for '{ref}'"
        if not ok:
            message = f"{failure}: {detail}"
            conditions.mark_false(obj, SOURCE_VERIFIED, VERIFICATION_ERROR, "%s", message)
            raise Stop(Failed(VERIFICATION_ERROR, message))
        conditions.mark_true(
            obj, SOURCE_VERIFIED, SUCCEEDED, "verified signature of revision %s", rev
        )
        obj.status.source_verification_fingerprint = print_

    async def _reconcile_source(self, obj: OCIRepository, workdir: Path) -> _Fetched:
        if conditions.is_false(obj, SOURCE_VERIFIED):
            conditions.delete(obj, SOURCE_VERIFIED)
        self._check_supported(obj)
        spec = obj.spec
        loop = asyncio.get_running_loop()
        deadline = loop.time() + parse_duration(spec.timeout or OCI_DEFAULT_TIMEOUT)
        try:
            repository = parse_repository(spec.url, insecure=spec.insecure)
        except OCIError as e:
            raise self._fail(
                obj, URL_INVALID, f"URL validation failed for '{spec.url}': {e}", stall=True
            ) from None
        client = await self._client(obj, repository)

        ref = spec.ref
        tag: str | None = None
        digest = ""
        if ref is not None and ref.digest:
            digest = ref.digest
        else:
            try:
                if ref is not None and ref.semver:
                    tags = await self._bounded(client.list_tags(), deadline)
                    tag = select_semver(
                        tags,
                        ref.semver,
                        semver_filter=ref.semver_filter,
                        media_type=obj.layer_media_type,
                    )
                else:
                    tag = (ref.tag if ref is not None else "") or DEFAULT_TAG
            except OCIError as e:
                raise self._fail(
                    obj,
                    READ_OPERATION_FAILED,
                    f"failed to determine the artifact tag for '{spec.url}': {e}",
                ) from None
            try:
                digest = (await self._bounded(client.resolve(tag), deadline)).digest
            except OCIError as e:
                raise self._fail(
                    obj, OCI_PULL_FAILED, f"failed to determine artifact digest: {e}"
                ) from None
        rev = revision(tag, digest)
        await self._verify(obj, client, repository, digest, rev, deadline)

        current = obj.status.artifact
        if current is not None and current.has_revision(rev) and not content_config_changed(obj):
            conditions.delete(obj, FETCH_FAILED)
            return _Fetched(rev, pulled=False)

        if current is None or not current.has_revision(rev):
            shown = repository.tag(tag) if tag else repository.digest(digest)
            message = f"new revision '{rev}' for '{shown}'"
            if current is not None:
                conditions.mark_true(obj, ARTIFACT_OUTDATED, NEW_REVISION, "%s", message)
            conditions.mark_reconciling(obj, PROGRESSING, "building artifact: %s", message)

        try:
            manifest = await self._bounded(client.fetch_image(digest), deadline)
        except OCIError as e:
            raise self._fail(
                obj, OCI_PULL_FAILED, f"failed to pull artifact from '{spec.url}': {e}"
            ) from None
        try:
            layer = select_layer(manifest, obj.layer_media_type)
        except OCIError as e:
            raise self._fail(obj, OCI_LAYER_OPERATION_FAILED, str(e)) from None

        fetched = _Fetched(rev, pulled=True, metadata=dict(manifest.annotations))
        blob = workdir / "layer"
        try:
            with blob.open("wb") as out:
                await self._bounded(
                    client.fetch_blob(layer, out.write, max_size=self.settings.max_layer_size),
                    deadline,
                )
        except (OCIError, OSError) as e:
            verb = (
                "copy layer from"
                if obj.layer_operation == LAYER_COPY
                else "extract layer contents from"
            )
            raise self._fail(
                obj, OCI_LAYER_OPERATION_FAILED, f"failed to {verb} artifact: {e}"
            ) from None
        if obj.layer_operation == LAYER_COPY:
            fetched.copy_file = blob
        else:
            try:
                await asyncio.to_thread(
                    safe_extract,
                    blob,
                    workdir / "content",
                    max_bytes=self.settings.max_content_bytes,
                    max_files=self.settings.max_files,
                )
            except (ArchiveError, OSError) as e:
                raise self._fail(
                    obj,
                    OCI_LAYER_OPERATION_FAILED,
                    f"failed to extract layer contents from artifact: {e}",
                ) from None
            finally:
                blob.unlink(missing_ok=True)
        conditions.delete(obj, FETCH_FAILED)
        return fetched

    # -- step 4: artifact ----------------------------------------------------------------------

    def _mark_stored(self, obj: OCIRepository, rev: str) -> None:
        conditions.delete(obj, ARTIFACT_OUTDATED)
        conditions.mark_true(
            obj, ARTIFACT_IN_STORAGE, SUCCEEDED, "stored artifact for digest '%s'", rev
        )

    async def _reconcile_artifact(
        self, obj: OCIRepository, fetched: _Fetched, workdir: Path
    ) -> None:
        current = obj.status.artifact
        if not fetched.pulled and current is not None:
            self.events.normal(
                obj.to_dict(),
                ARTIFACT_UP_TO_DATE,
                f"artifact up-to-date with remote revision: '{current.revision}'",
            )
            self._mark_stored(obj, current.revision)
            return
        meta = obj.metadata
        path = artifact_path(
            OCI_REPOSITORY_KIND,
            meta.namespace,
            meta.name,
            f"{digest_of_revision(fetched.revision)}.tar.gz",
        )
        copy_file = fetched.copy_file
        content = workdir / "content"

        def store() -> tuple[Artifact, str]:
            def produce(out: Any) -> None:
                if copy_file is not None:
                    with copy_file.open("rb") as f:
                        while chunk := f.read(1 << 20):
                            out.write(chunk)
                    return
                content.mkdir(exist_ok=True)
                rules = IgnoreRules.from_tree(content, obj.spec.ignore)
                self.archiver.from_directory(content, out, ignore=rules)

            with self.storage.lock(path):
                stored = self.storage.store(path, fetched.revision, produce)
            try:
                link = self.storage.symlink(path, OCI_LATEST_LINK)
            except (OSError, StorageError) as e:
                log.warning("failed to update status URL symlink: %s", e)
                link = ""
            return stored, link

        try:
            stored, link = await asyncio.to_thread(store)
        except (OSError, StorageError, ArchiveError) as e:
            what = "copy" if copy_file is not None else "archive"
            message = f"unable to {what} artifact to storage: {e}"
            conditions.mark_true(obj, STORAGE_OPERATION_FAILED, ARCHIVE_OPERATION_FAILED, message)
            raise Stop(Failed(ARCHIVE_OPERATION_FAILED, message)) from None
        obj.status.artifact = msgspec.structs.replace(stored, metadata=fetched.metadata)
        obj.status.observed_ignore = obj.spec.ignore
        obj.status.observed_layer_selector = obj.spec.layer_selector
        if link:
            obj.status.url = link
        conditions.delete(obj, STORAGE_OPERATION_FAILED)
        self._mark_stored(obj, stored.revision)

    # -- step 5: events ------------------------------------------------------------------------

    def _notify(
        self, obj: OCIRepository, old: Artifact | None, had_failure: bool, outcome: Outcome
    ) -> None:
        raw = obj.to_dict()
        if isinstance(outcome, Failed | Stalling):
            self.events.warning(raw, outcome.reason, outcome.message)
            return
        new = obj.status.artifact
        if not isinstance(outcome, Success) or new is None:
            return
        message, annotations = new_artifact_message(obj.spec.url, new)
        if old is None or old.digest != new.digest:
            self.events.normal(raw, NEW_ARTIFACT, message, annotations)
            log.info(message, extra={"object": f"{obj.metadata.namespace}/{obj.metadata.name}"})
        elif had_failure:
            self.events.normal(raw, SUCCEEDED, message, annotations)
