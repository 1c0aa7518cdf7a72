"""The HelmChart reconciler: source-controller's algorithm, steps and messages.

0. deletion: remove the artifacts, then the finalizer; add the finalizer if missing; a
   suspended object is left alone
1. Reconciling "reconciliation in progress" (or "processing object: new generation a -> b")
2. storage: garbage-collect old artifacts; forget a recorded artifact whose file is gone or no
   longer matches its digest
3. source: the sourceRef in this namespace must have an artifact in this controller's storage
   (otherwise FetchFailed NoSourceArtifact, and the source's watch brings the chart back); then
   the chart is built, chosen by the source:
   - HelmRepository type default: the version is chosen from the repository's stored index
     (its digest checked) and the chart downloaded with the repository's credentials;
   - HelmRepository type oci: the version is chosen from the registry's tags (`_` read as
     `+`) and the chart layer pulled with tidal.source.oci, with the repository's pull Secret;
   - spec.verify: Stalled with VerificationError, as tidal cannot verify charts yet (an
     unverified chart is never handed out);
   - GitRepository: the artifact is unpacked (tidal.source.archive.safe_extract) and the chart
     directory loaded, given its values files and dependencies, and packaged.
   A build reusing the stored artifact downloads nothing (tidal.source.helm.chart_build).
4. artifact: `helmchart/<ns>/<name>/<chart>-<version>.tgz`, revision the chart version, and the
   `latest.tar.gz` link beside it as status.url
5. events (NewArtifact reasons ChartPullSucceeded/ChartPackageSucceeded, recovery, failures)
   and the Ready summary
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import ssl
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec

from tidal.api.base import parse_duration
from tidal.api.meta import FAILED, PROGRESSING, READY, RECONCILING, STALLED, Artifact
from tidal.api.source import (
    ARTIFACT_IN_STORAGE,
    ARTIFACT_OUTDATED,
    ARTIFACT_UP_TO_DATE,
    AUTHENTICATION_FAILED,
    DIGEST_ANNOTATION,
    FETCH_FAILED,
    GIT_REPOSITORY_KIND,
    HELM_REPOSITORY_DEFAULT_TIMEOUT,
    HELM_REPOSITORY_KIND,
    REVISION_ANNOTATION,
    SOURCE_VERIFIED,
    STORAGE_OPERATION_FAILED,
    URL_INVALID,
    VERIFICATION_ERROR,
    HelmRepository,
)
from tidal.api.source_helmchart import (
    BUCKET_KIND,
    BUILD_FAILED,
    CHART_PACKAGE_SUCCEEDED,
    CHART_PULL_SUCCEEDED,
    HELM_CHART_KIND,
    NEW_CHART,
    NO_SOURCE_ARTIFACT,
    RECONCILE_STRATEGY_REVISION,
    SOURCE_UNAVAILABLE,
    HelmChart,
)
from tidal.kube.client import ApiError, Kube
from tidal.kube.events import EventRecorder
from tidal.runtime import conditions
from tidal.runtime.summarize import (
    Failed,
    Outcome,
    ReadySummary,
    Stalling,
    Success,
    Waiting,
    finalize,
)
from tidal.runtime.workers import Result
from tidal.source.archive import ArchiveError, safe_extract
from tidal.source.base import API_PATH, SourceReconciler, Stop
from tidal.source.helm.auth import (
    AuthError,
    ClientOptions,
    basic_from_secret,
    client_options,
    tls_from_secret,
)
from tidal.source.helm.chart_build import (
    BUILD_REASONS,
    PERSISTENT,
    UNKNOWN,
    Build,
    BuildError,
    Options,
    build_local,
    build_remote,
    stored_metadata,
)
from tidal.source.helm.chart_deps import DependencyManager
from tidal.source.helm.chart_repository import (
    Downloader,
    DownloadError,
    HTTPChartRepository,
    OCIChartRepository,
    normalize_url,
)
from tidal.source.helm.chart_values import effective
from tidal.source.helm.fetch import FetchError, fetch_index
from tidal.source.helm.index import DEFAULT_MAX_INDEX_SIZE, normalize
from tidal.source.helm.index_schema import IndexLoadError
from tidal.source.helm.source_artifact import SourceArtifactError, read_artifact
from tidal.source.oci.auth import Credentials, CredentialsError, Keyring, keyring_from_secrets
from tidal.source.oci.client import Client
from tidal.source.oci.reference import Repository
from tidal.source.revision import extract_hash
from tidal.source.storage import Storage, StorageError, artifact_path
from tidal.source.stored_artifact import check_stored_artifact

log = logging.getLogger(__name__)

PLURAL: Final = "helmcharts"
LATEST_LINK: Final = "latest.tar.gz"
ARCHIVE_OPERATION_FAILED: Final = "ArchiveOperationFailed"
READ_OPERATION_FAILED: Final = "ReadOperationFailed"
DIR_CREATION_FAILED: Final = "DirectoryCreationFailed"

# The largest source tarball a chart is built from (it is held in memory while unpacked).
MAX_SOURCE_ARTIFACT_SIZE: Final = 512 << 20

_SOURCE_PLURALS: Final = {
    HELM_REPOSITORY_KIND: "helmrepositories",
    GIT_REPOSITORY_KIND: "gitrepositories",
    BUCKET_KIND: "buckets",
}
# The conditions whose clearing makes a success worth an event (Flux's helmChartFailConditions).
_FAIL_CONDITIONS: Final = (BUILD_FAILED, FETCH_FAILED, STORAGE_OPERATION_FAILED)
# Substrings that make a failed pull an authentication failure (as Flux reads them).
_AUTH_HINTS: Final = (
    "401",
    "unauthorized",
    "authentication required",
    "tls",
    "unknown certificate authority",
)

HELM_CHART_READY: Final = ReadySummary(
    summarize=(
        STORAGE_OPERATION_FAILED,
        FETCH_FAILED,
        BUILD_FAILED,
        ARTIFACT_OUTDATED,
        ARTIFACT_IN_STORAGE,
        SOURCE_VERIFIED,
        STALLED,
        RECONCILING,
    ),
    negative_polarity=(
        STORAGE_OPERATION_FAILED,
        FETCH_FAILED,
        BUILD_FAILED,
        ARTIFACT_OUTDATED,
        STALLED,
        RECONCILING,
    ),
    owned=(
        STORAGE_OPERATION_FAILED,
        FETCH_FAILED,
        BUILD_FAILED,
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
    max_index_size: int = DEFAULT_MAX_INDEX_SIZE
    # How long to wait for a source without an artifact (its watch usually comes first).
    requeue_dependency: float = 30.0


class _SourceError(Exception):
    """A failure of the source step that is not a chart build error."""

    def __init__(self, reason: str, message: str, *, stalling: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.stalling = stalling


def _source_path(kind: str, namespace: str, name: str) -> str:
    return f"{API_PATH}/namespaces/{namespace}/{_SOURCE_PLURALS[kind]}/{name}"


def _artifact_of(source: Mapping[str, Any]) -> Artifact | None:
    raw = (source.get("status") or {}).get("artifact")
    if not raw:
        return None
    try:
        return msgspec.convert(raw, Artifact)
    except msgspec.ValidationError:
        return None


def revision_metadata(kind: str, revision: str) -> str:
    """The build metadata of reconcileStrategy Revision: the first 12 characters of the Git
    commit (or of the Bucket digest's hex), as Flux cuts them."""
    if kind == GIT_REPOSITORY_KIND:
        revision = extract_hash(revision)
    elif kind == BUCKET_KIND and ":" in revision:
        revision = revision.partition(":")[2]
    return revision[:12]


class HelmChartReconciler(SourceReconciler):
    plural = PLURAL
    kind = HELM_CHART_KIND

    def __init__(
        self,
        kube: Kube,
        storage: Storage,
        events: EventRecorder,
        settings: Settings | None = None,
        *,
        list_helm_repositories: Callable[[str], list[dict[str, Any]]] | None = None,
    ) -> None:
        super().__init__(kube, storage, events)
        self.settings = settings or Settings()
        # The HelmRepositories of a namespace, for dependencies; an API LIST when not given.
        self._list_helm_repositories = list_helm_repositories

    # -- entry point ---------------------------------------------------------------------------

    async def reconcile(self, raw: Mapping[str, Any]) -> Result:
        try:
            obj = HelmChart.from_dict(raw)
        except msgspec.ValidationError as e:
            log.error("cannot decode HelmChart: %s", e)
            return Result.failure(f"invalid object: {e}")
        stopped = await self._begin(obj, obj.spec.suspend)
        if stopped is not None:
            return stopped

        written = obj.status.to_dict()
        old_artifact = obj.status.artifact
        had_failure = any(conditions.is_true(obj, t) for t in _FAIL_CONDITIONS)
        conditions.progressing(obj, obj.status.observed_generation)
        written = await self._write(obj, written)

        build = Build()
        try:
            written = await self._reconcile_storage(obj, written)
            build, written = await self._reconcile_source(obj, written)
            await self._reconcile_artifact(obj, build)
            outcome: Outcome = Success()
        except Stop as stop:
            outcome = stop.outcome

        finalized = finalize(
            obj, outcome, HELM_CHART_READY, interval=parse_duration(obj.spec.interval)
        )
        self._notify(obj, old_artifact, had_failure, build, outcome)
        await self._write(obj, written)
        return finalized.result

    # -- step 2: storage -----------------------------------------------------------------------

    async def _reconcile_storage(self, obj: HelmChart, written: dict[str, Any]) -> dict[str, Any]:
        missing = await check_stored_artifact(self.storage, self.events, obj)
        if obj.status.artifact is None:
            message = "building artifact" + (": disappeared from storage" if missing else "")
            conditions.progressive_status(obj, PROGRESSING, message, drift=True)
            conditions.delete(obj, ARTIFACT_IN_STORAGE)
            return await self._write(obj, written)
        return written

    # -- step 3: source ------------------------------------------------------------------------

    async def _get_source(self, obj: HelmChart) -> dict[str, Any]:
        ref, ns = obj.spec.source_ref, obj.metadata.namespace
        plural = _SOURCE_PLURALS[ref.kind]
        not_found = f'{plural}.source.toolkit.fluxcd.io "{ref.name}" not found'
        if ref.kind == BUCKET_KIND:
            # No Bucket kind is served by tidal yet: such a source can only be missing.
            message = f"failed to get source: {not_found}"
            conditions.mark_true(obj, FETCH_FAILED, SOURCE_UNAVAILABLE, message)
            raise Stop(Failed(SOURCE_UNAVAILABLE, message))
        try:
            return await self.kube.get(_source_path(ref.kind, ns, ref.name))
        except ApiError as e:
            detail = not_found if e.status == 404 else e.message
            message = f"failed to get source: {detail}"
            conditions.mark_true(obj, FETCH_FAILED, SOURCE_UNAVAILABLE, message)
            raise Stop(Failed(SOURCE_UNAVAILABLE, message)) from None

    async def _reconcile_source(
        self, obj: HelmChart, written: dict[str, Any]
    ) -> tuple[Build, dict[str, Any]]:
        if conditions.is_false(obj, SOURCE_VERIFIED):
            conditions.delete(obj, SOURCE_VERIFIED)
        ref = obj.spec.source_ref
        source = await self._get_source(obj)
        repo: HelmRepository | None = None
        if ref.kind == HELM_REPOSITORY_KIND:
            try:
                repo = HelmRepository.from_dict(source)
            except msgspec.ValidationError as e:
                message = f"failed to get source: invalid HelmRepository: {e}"
                conditions.mark_true(obj, FETCH_FAILED, SOURCE_UNAVAILABLE, message)
                raise Stop(Failed(SOURCE_UNAVAILABLE, message)) from None
        artifact = _artifact_of(source)
        is_oci = repo is not None and repo.is_oci
        if not is_oci and artifact is None:
            message = f"no artifact available for {ref.kind} source '{ref.name}'"
            conditions.mark_true(obj, FETCH_FAILED, NO_SOURCE_ARTIFACT, message)
            raise Stop(Waiting(NO_SOURCE_ARTIFACT, message, self.settings.requeue_dependency))
        if artifact is not None:
            obj.status.observed_source_artifact_revision = artifact.revision

        build = Build()
        error: BuildError | _SourceError | None = None
        try:
            if repo is not None:
                build = await self._build_from_helm_repository(obj, repo, artifact)
            else:
                assert artifact is not None
                build = await self._build_from_tarball(obj, artifact)
        except (BuildError, _SourceError) as e:
            error = e
        written = await self._observe_build(obj, build, error, written)
        if build.complete and build.resolved_dependencies > 0:
            self.events.normal(
                obj.to_dict(),
                "ResolvedDependencies",
                f"resolved {build.resolved_dependencies} chart dependencies",
            )
        if error is not None:
            if isinstance(error, BuildError):
                reason, stalling = error.reason.reason, error.reason in PERSISTENT
            else:
                reason, stalling = error.reason, error.stalling
            raise Stop((Stalling if stalling else Failed)(reason, str(error)))
        return build, written

    async def _observe_build(
        self,
        obj: HelmChart,
        build: Build,
        error: BuildError | _SourceError | None,
        written: dict[str, Any],
    ) -> dict[str, Any]:
        """Flux's observeChartBuild: the conditions a build (or its failure) leaves."""
        current = obj.status.artifact
        if build.has_metadata and (
            build.name != obj.status.observed_chart_name
            or current is None
            or not current.has_revision(build.version)
        ):
            if current is not None:
                conditions.mark_true(obj, ARTIFACT_OUTDATED, NEW_CHART, build.summary())
            conditions.progressive_status(
                obj, PROGRESSING, "building artifact: %s", build.summary(), drift=True
            )
            written = await self._write(obj, written)
        if build.complete:
            conditions.delete(obj, FETCH_FAILED)
            conditions.delete(obj, BUILD_FAILED)
        if obj.spec.verify is None:
            conditions.delete(obj, SOURCE_VERIFIED)
        if error is None:
            return written
        if isinstance(error, BuildError):
            reason, message = error.reason, str(error)
        else:
            reason, message = UNKNOWN, f"{UNKNOWN.summary}: {error}"
        if reason in BUILD_REASONS:
            conditions.delete(obj, FETCH_FAILED)
            conditions.mark_true(obj, BUILD_FAILED, reason.reason, message)
        else:
            conditions.delete(obj, BUILD_FAILED)
            conditions.mark_true(obj, FETCH_FAILED, reason.reason, message)
        return written

    def _options(self, obj: HelmChart, version_metadata: str) -> Options:
        current = obj.status.artifact
        cached = None
        if current is not None:
            try:
                cached = stored_metadata(self.storage.local_path(current.path))
            except StorageError:
                cached = None
        return Options(
            values_files=list(obj.spec.values_files),
            ignore_missing_values_files=obj.spec.ignore_missing_values_files,
            version_metadata=version_metadata,
            cached_metadata=cached,
            cached_values_files=list(obj.status.observed_values_files) or None,
            force=obj.metadata.generation != obj.status.observed_generation,
        )

    async def _client_options(self, namespace: str, repo: HelmRepository) -> ClientOptions:
        spec = repo.spec
        secrets: dict[str, tuple[str, dict[str, bytes]] | None] = {"auth": None, "tls": None}
        for slot, ref, what in (
            ("tls", spec.cert_secret_ref, "TLS authentication secret"),
            ("auth", spec.secret_ref, "authentication secret"),
        ):
            if ref is None:
                continue
            try:
                secrets[slot] = (ref.name, await self.kube.secret_data(namespace, ref.name))
            except ApiError as e:
                raise AuthError(
                    f"failed to get {what} '{namespace}/{ref.name}': {e.message}"
                ) from None
        return client_options(namespace, secrets["auth"], secrets["tls"])

    async def _stored_index(self, artifact: Artifact) -> bytes:
        """The repository's stored index, refused unless its bytes match the artifact digest.
        The normalised JSON may be larger than the YAML the size flag bounds, hence twice."""
        try:
            return await read_artifact(
                self.storage, self._http(), artifact, max_size=2 * self.settings.max_index_size
            )
        except (OSError, SourceArtifactError) as e:
            raise DownloadError(f"failed to load index: {e}") from None

    async def _repository(
        self, url: str, repo: HelmRepository | None, artifact: Artifact | None
    ) -> Downloader:
        """The chart repository at `url`, with `repo`'s credentials and stored index when
        given; anonymous and fetched otherwise (Flux's fallback for dependencies). The URL's
        scheme picks the kind of repository: an index over HTTP/S, or an OCI registry."""
        if url.startswith("oci://"):
            return await self._oci_repository(url, repo)
        namespace = repo.metadata.namespace if repo is not None else ""
        options = (
            await self._client_options(namespace, repo) if repo is not None else ClientOptions()
        )
        tls = options.tls.context() if options.tls is not None else None
        timeout = parse_duration(
            (repo.spec.timeout if repo is not None else "") or HELM_REPOSITORY_DEFAULT_TIMEOUT
        )

        async def load_index() -> bytes:
            if artifact is not None:
                return await self._stored_index(artifact)
            try:
                data = await fetch_index(
                    self._http(),
                    url,
                    basic=options.basic,
                    tls=tls,
                    time_limit=timeout,
                    max_size=self.settings.max_index_size,
                )
                index = await asyncio.to_thread(normalize, data)
            except (FetchError, IndexLoadError) as e:
                raise DownloadError(f"failed to load index: {e}") from None
            return b"".join(index.chunks())

        return HTTPChartRepository(
            url=url,
            load_index=load_index,
            session=self._http(),
            basic=options.basic,
            tls=tls,
            pass_credentials=repo.spec.pass_credentials if repo is not None else False,
            time_limit=timeout,
        )

    async def _oci_repository(self, url: str, repo: HelmRepository | None) -> OCIChartRepository:
        """An OCI registry client with the HelmRepository's pull Secret (a docker config, or
        username and password), TLS from certSecretRef, and `insecure` for plain HTTP."""
        credentials: Credentials | None = None
        keyring = Keyring()
        tls: ssl.SSLContext | bool | None = None
        insecure = False
        if repo is not None:
            ns, spec = repo.metadata.namespace, repo.spec
            insecure = spec.insecure
            if spec.secret_ref is not None:
                ref = f"{ns}/{spec.secret_ref.name}"
                try:
                    data = await self.kube.secret_data(ns, spec.secret_ref.name)
                except ApiError as e:
                    raise AuthError(
                        f"failed to get authentication secret '{ref}': {e.message}"
                    ) from None
                try:
                    keyring = keyring_from_secrets([(ref, data)])
                    basic = basic_from_secret(data, ref)
                except (CredentialsError, AuthError) as e:
                    raise AuthError(f"failed to get credential: {e}") from None
                if basic is not None:
                    credentials = Credentials(basic.username, basic.password)
            if spec.cert_secret_ref is not None:
                ref = f"{ns}/{spec.cert_secret_ref.name}"
                try:
                    data = await self.kube.secret_data(ns, spec.cert_secret_ref.name)
                except ApiError as e:
                    raise AuthError(
                        f"failed to get TLS authentication secret '{ref}': {e.message}"
                    ) from None
                tls = tls_from_secret(data, ref).context()
            elif insecure:
                tls = False
        timeout = parse_duration(
            (repo.spec.timeout if repo is not None else "") or HELM_REPOSITORY_DEFAULT_TIMEOUT
        )

        def client_for(repository: Repository) -> Client:
            repository = dataclasses.replace(repository, insecure=insecure)
            found = keyring.lookup(repository) or credentials
            return Client(self._http(), repository, credentials=found, tls=tls)

        return OCIChartRepository(url=url, client_for=client_for, time_limit=timeout)

    async def _build_from_helm_repository(
        self, obj: HelmChart, repo: HelmRepository, artifact: Artifact | None
    ) -> Build:
        try:
            parts = urlsplit(repo.spec.url)
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError as e:
            raise _SourceError(
                URL_INVALID, f"invalid Helm repository URL: {e}", stalling=True
            ) from None
        url = normalize_url(repo.spec.url)
        if repo.is_oci and not url.startswith("oci://"):
            raise _SourceError(
                FAILED,
                f"failed to construct Helm client: invalid OCI registry URL: {url}",
                stalling=True,
            )
        if obj.spec.verify is not None:
            # tidal has no cosign/notation verifier: never hand out an unverified chart.
            message = (
                f"failed to verify the signature using provider '{obj.spec.verify.provider}': "
                "signature verification of charts is not supported by tidal yet"
            )
            conditions.mark_false(obj, SOURCE_VERIFIED, VERIFICATION_ERROR, message)
            raise _SourceError(VERIFICATION_ERROR, message, stalling=True)
        try:
            repository = await self._repository(url, repo, artifact)
        except AuthError as e:
            conditions.mark_true(obj, FETCH_FAILED, AUTHENTICATION_FAILED, str(e))
            raise _SourceError(AUTHENTICATION_FAILED, str(e)) from None
        metadata = str(obj.metadata.generation) if _values(obj) else ""
        try:
            return await build_remote(
                repository, obj.spec.chart, obj.spec.version, self._options(obj, metadata)
            )
        except BuildError as e:
            text = str(e)
            if any(hint in text for hint in _AUTH_HINTS):
                raise _SourceError(
                    AUTHENTICATION_FAILED,
                    f"failed to authenticate with the Helm repository: {text}",
                ) from None
            raise

    async def _build_from_tarball(self, obj: HelmChart, artifact: Artifact) -> Build:
        work = Path(tempfile.mkdtemp(prefix=f"helmchart-{obj.metadata.namespace}-"))
        try:
            root = work / "source"
            try:
                data = await read_artifact(
                    self.storage, self._http(), artifact, max_size=MAX_SOURCE_ARTIFACT_SIZE
                )
            except (OSError, SourceArtifactError) as e:
                raise _SourceError(
                    READ_OPERATION_FAILED, f"failed to open source artifact: {e}"
                ) from None
            try:
                await asyncio.to_thread(safe_extract, data, root)
            except (ArchiveError, OSError) as e:
                raise _SourceError(FAILED, f"artifact untar error: {e}") from None
            finally:
                del data
            metadata = ""
            if obj.spec.reconcile_strategy == RECONCILE_STRATEGY_REVISION:
                metadata = revision_metadata(obj.spec.source_ref.kind, artifact.revision)
            if _values(obj):
                metadata = (metadata + "." if metadata else "") + str(obj.metadata.generation)
            deps = DependencyManager(lambda url: self._dependency_repository(obj, url))
            return await build_local(root, obj.spec.chart, deps, self._options(obj, metadata))
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)

    async def _helm_repositories(self, namespace: str) -> list[dict[str, Any]]:
        if self._list_helm_repositories is not None:
            return self._list_helm_repositories(namespace)
        plural = _SOURCE_PLURALS[HELM_REPOSITORY_KIND]
        listed = await self.kube.get(f"{API_PATH}/namespaces/{namespace}/{plural}")
        return list(listed.get("items") or [])

    async def _dependency_repository(self, obj: HelmChart, url: str) -> Downloader:
        """Flux's namespacedChartRepositoryCallback: the first HelmRepository of the chart's
        namespace whose normalised URL is `url`, or an anonymous client of `url`."""
        match: HelmRepository | None = None
        for raw in await self._helm_repositories(obj.metadata.namespace):
            try:
                candidate = HelmRepository.from_dict(raw)
            except msgspec.ValidationError:
                continue
            if normalize_url(candidate.spec.url) == url:
                match = candidate
                break
        artifact = None
        stored = match.status.artifact if match is not None else None
        if stored is not None and await asyncio.to_thread(self.storage.exists, stored):
            artifact = stored
        try:
            return await self._repository(url, match, artifact)
        except AuthError as e:
            raise DownloadError(str(e)) from None

    # -- step 4: artifact ----------------------------------------------------------------------

    async def _reconcile_artifact(self, obj: HelmChart, build: Build) -> None:
        if not build.complete:
            raise Stop(Failed(FAILED, "no chart build"))
        try:
            if build.cached:
                current = obj.status.artifact
                assert current is not None
                self.events.normal(
                    obj.to_dict(),
                    ARTIFACT_UP_TO_DATE,
                    f"artifact up-to-date with remote revision: '{build.version}'",
                )
                return
            await self._store(obj, build)
        finally:
            current = obj.status.artifact
            if (
                obj.status.observed_chart_name == build.name
                and current is not None
                and current.has_revision(build.version)
            ):
                conditions.delete(obj, ARTIFACT_OUTDATED)
                conditions.mark_true(
                    obj, ARTIFACT_IN_STORAGE, _reason_for(build), "%s", build.summary()
                )

    async def _store(self, obj: HelmChart, build: Build) -> None:
        meta = obj.metadata
        data = build.data
        assert data is not None
        path = artifact_path(
            HELM_CHART_KIND, meta.namespace, meta.name, f"{build.name}-{build.version}.tgz"
        )

        def store() -> tuple[Artifact, str]:
            with self.storage.lock(path):
                stored = self.storage.store(path, build.version, lambda out: out.write(data))
            try:
                link = self.storage.symlink(path, LATEST_LINK)
            except (OSError, StorageError) as e:
                log.warning("failed to update status URL symlink: %s", e)
                link = ""
            return stored, link

        try:
            stored, link = await asyncio.to_thread(store)
        except (OSError, StorageError) as e:
            message = f"unable to copy Helm chart to storage: {e}"
            conditions.mark_true(obj, STORAGE_OPERATION_FAILED, ARCHIVE_OPERATION_FAILED, message)
            raise Stop(Failed(ARCHIVE_OPERATION_FAILED, message)) from None
        obj.status.artifact = stored
        obj.status.observed_chart_name = build.name
        obj.status.observed_values_files = (
            list(build.values_files) if obj.spec.ignore_missing_values_files else []
        )
        if link:
            obj.status.url = link
        conditions.delete(obj, STORAGE_OPERATION_FAILED)

    # -- step 5: events ------------------------------------------------------------------------

    def _notify(
        self,
        obj: HelmChart,
        old: Artifact | None,
        had_failure: bool,
        build: Build,
        outcome: Outcome,
    ) -> None:
        raw = obj.to_dict()
        if isinstance(outcome, Failed | Stalling):
            self.events.warning(raw, outcome.reason, outcome.message)
            return
        new = obj.status.artifact
        if not isinstance(outcome, Success) or new is None:
            return
        annotations = {REVISION_ANNOTATION: new.revision, DIGEST_ANNOTATION: new.digest}
        recovered = had_failure and not any(conditions.is_true(obj, t) for t in _FAIL_CONDITIONS)
        if old is None or old.digest != new.digest or recovered:
            self.events.normal(raw, _reason_for(build), build.summary(), annotations)
            log.info(
                build.summary(),
                extra={"object": f"{obj.metadata.namespace}/{obj.metadata.name}"},
            )


def _values(obj: HelmChart) -> bool:
    """Whether values files take part (a lone values.yaml does not)."""
    return bool(effective(obj.spec.values_files))


def _reason_for(build: Build) -> str:
    if not build.complete:
        return ""
    return CHART_PACKAGE_SUCCEEDED if build.packaged else CHART_PULL_SUCCEEDED


def source_watch(
    kind: str,
    list_charts: Callable[[], list[dict[str, Any]]],
    enqueue: Callable[[str, str], None],
) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    """An update handler for a source informer: a new artifact wakes the HelmCharts of that
    source whose chart was built from another revision (Flux's source watches)."""

    def on_update(old: dict[str, Any], new: dict[str, Any]) -> None:
        artifact = (new.get("status") or {}).get("artifact") or {}
        revision = artifact.get("revision")
        before = ((old.get("status") or {}).get("artifact") or {}).get("revision")
        if not revision or revision == before:
            return
        meta = new.get("metadata") or {}
        name, namespace = meta.get("name"), meta.get("namespace")
        for chart in list_charts():
            chart_meta = chart.get("metadata") or {}
            ref = (chart.get("spec") or {}).get("sourceRef") or {}
            if (
                ref.get("kind") == kind
                and ref.get("name") == name
                and chart_meta.get("namespace") == namespace
                and (chart.get("status") or {}).get("observedSourceArtifactRevision") != revision
            ):
                enqueue(str(chart_meta.get("namespace", "")), str(chart_meta.get("name", "")))

    return on_update
