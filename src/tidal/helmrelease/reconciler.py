"""The HelmRelease reconciler: helm-controller's reconciliation, step by step (flux-spec §6.4).

1. deletion: uninstall the release (unless never installed, suspended, or the ServiceAccount to
   impersonate is gone), delete the HelmChart made for spec.chart, drop the finalizer; add the
   finalizer if missing; a suspended object is left alone
2. CEL health expressions compiled (a bad one stalls); Reconciling "Fulfilling prerequisites"
3. dependsOn: every dependency Ready at its current generation (or its readyExpr true), else
   DependencyNotReady and a retry after --requeue-dependency
4. the chart source: the HelmChart kept for spec.chart, or spec.chartRef; SourceNotReady
5. values (valuesFrom, then spec.values) -> ValuesError
6. the chart artifact downloaded, digest-checked and loaded -> ArtifactFailed
7. release name, target or storage namespace changed: the old release is uninstalled first
8. failure counters reset on a new chart version or new values; lastAttempted* recorded
9. the release loop (tidal.helmrelease.atomic): install, upgrade, test, remediate, until in sync
"""

from __future__ import annotations

import asyncio
import base64
import logging
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
import msgspec

from tidal.api.base import parse_duration
from tidal.api.helmrelease import (
    HELM_RELEASE_FINALIZER,
    SOURCE_NOT_READY,
    VALUES_ERROR,
    HelmRelease,
    ResourceInventory,
    ResourceRef,
)
from tidal.api.meta import (
    ACCESS_DENIED,
    ARTIFACT_FAILED,
    DEPENDENCY_NOT_READY,
    INVALID_CEL_EXPRESSION,
    PROGRESSING,
    PROGRESSING_WITH_RETRY,
    READY,
    RECONCILE_REQUEST_ANNOTATION,
    RECONCILING,
    STALLED,
    Artifact,
)
from tidal.helm import actions, capabilities, storage
from tidal.helm.chart import ChartError, LoadedChart, load_chart
from tidal.helm.kubeconfig import kubeconfig_for
from tidal.helm.render import Rendered, RenderError, assemble, render_files
from tidal.helm.storage import Release
from tidal.helmrelease import atomic, chart_source, history
from tidal.helmrelease.digests import config_digest
from tidal.helmrelease.postrender import PostRenderError, PostRenderers, post_render
from tidal.helmrelease.remediation import active_retry, clear_failures
from tidal.helmrelease.values import HelmValuesParser, ValuesError, compose
from tidal.kube import cel
from tidal.kube.client import ApiError, Kube
from tidal.kube.discovery import shared_discovery
from tidal.kube.events import EventRecorder
from tidal.kube.remote import KubeConfigOptions, RemoteClients, RemoteConfigError, read_kubeconfig
from tidal.kustomize.build import Engine
from tidal.kustomize.inventory import ObjRef
from tidal.runtime import conditions
from tidal.runtime.finalizers import add_finalizer, remove_finalizer
from tidal.runtime.status import write_status
from tidal.runtime.workers import Result
from tidal.source.helm.source_artifact import (
    ArtifactNotFoundError,
    SourceArtifactError,
    fetch_artifact,
)

log = logging.getLogger(__name__)

FIELD_MANAGER: Final = "helm-controller"
PLURAL: Final = "helmreleases"
API_PATH: Final = "/apis/helm.toolkit.fluxcd.io/v2"
CHART_MUTATE_ERROR: Final = "ChartMutateError"
# .Capabilities are re-discovered at most this often (a CRD installed by one release becomes
# visible to the next one within this time).
CAPABILITIES_TTL: Final = 30.0


def object_path(namespace: str, name: str) -> str:
    return f"{API_PATH}/namespaces/{namespace}/{PLURAL}/{name}"


@dataclass(frozen=True)
class Settings:
    no_cross_namespace_refs: bool = False
    default_service_account: str = ""
    requeue_dependency: float = 30.0
    additive_cel_dependency_check: bool = False
    default_to_retry_on_failure: bool = False
    insecure_kubeconfig_exec: bool = False
    insecure_kubeconfig_tls: bool = False
    override_managers: tuple[str, ...] = ()


class _Stop(Exception):
    def __init__(self, message: str, after: float | None, *, terminal: bool = False) -> None:
        super().__init__(message)
        self.after = after
        self.terminal = terminal


@dataclass
class _Run:
    obj: HelmRelease
    written: dict[str, Any]
    started: float = field(default_factory=time.monotonic)


class HelmReleaseReconciler:
    def __init__(
        self,
        kube: Kube,
        events: EventRecorder,
        engine: Engine,
        settings: Settings | None = None,
    ) -> None:
        self.kube = kube
        self.events = events
        self.engine = engine
        self.settings = settings or Settings()
        self._clients: dict[str, Kube] = {}
        self._session: aiohttp.ClientSession | None = None
        self._capabilities: dict[int, tuple[float, tuple[str, list[str]]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._remote = RemoteClients(
            KubeConfigOptions(
                allow_exec=self.settings.insecure_kubeconfig_exec,
                allow_insecure_tls=self.settings.insecure_kubeconfig_tls,
            )
        )

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        await self._remote.close()
        if self._session is not None:
            await self._session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    # -- clients -------------------------------------------------------------------------

    def _service_account(self, obj: HelmRelease) -> str:
        return obj.spec.service_account_name or self.settings.default_service_account

    async def _client_for(self, obj: HelmRelease) -> Kube:
        """The client Helm actions run with: the controller's own, or one impersonating the
        ServiceAccount the object names (or --default-service-account); in the cluster
        spec.kubeConfig names, if any. RemoteConfigError when that cannot be used."""
        sa = self._service_account(obj)
        ns = obj.metadata.namespace
        user = f"system:serviceaccount:{ns}:{sa}" if sa else None
        groups = (
            ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated")
            if sa
            else ()
        )
        owner = f"{ns}/{obj.metadata.name}"
        if obj.spec.kube_config is not None:
            data = await read_kubeconfig(self.kube, ns, obj.spec.kube_config)
            remote, _ = await self._remote.get(
                owner, data, impersonate=user, impersonate_groups=groups
            )
            return remote
        await self._remote.release(owner)
        if user is None:
            return self.kube
        client = self._clients.get(user)
        if client is None:
            client = Kube(self.kube.config, impersonate=user, impersonate_groups=groups)
            self._clients[user] = client
        return client

    async def _discover(self, kube: Kube) -> tuple[str, list[str]]:
        key = id(kube)
        cached = self._capabilities.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < CAPABILITIES_TTL:
            return cached[1]
        found = await capabilities.discover(kube)
        self._capabilities[key] = (now, found)
        return found

    # -- status and events ---------------------------------------------------------------

    async def _save(self, run: _Run) -> None:
        meta = run.obj.metadata
        after = run.obj.status.to_dict()
        await write_status(self.kube, object_path(meta.namespace, meta.name), run.written, after)
        run.written = after

    def _emit(self, obj: HelmRelease, severity: str, reason: str, message: str,
              metadata: Mapping[str, str] | None = None) -> None:  # fmt: skip
        raw = obj.to_dict()
        if severity == "warning":
            self.events.warning(raw, reason, message, dict(metadata or {}))
        else:
            self.events.normal(raw, reason, message, dict(metadata or {}))

    # -- entry point ---------------------------------------------------------------------

    async def reconcile(self, raw: Mapping[str, Any]) -> Result:
        try:
            obj = HelmRelease.from_dict(raw)
        except msgspec.ValidationError as e:
            log.error("cannot decode HelmRelease: %s", e)
            return Result.failure(f"invalid object: {e}")
        meta = obj.metadata
        key = f"{meta.namespace}/{meta.name}"
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if meta.deletion_timestamp:
                return await self._finalize(obj)
            await add_finalizer(
                self.kube,
                object_path(meta.namespace, meta.name),
                meta.finalizers,
                HELM_RELEASE_FINALIZER,
            )
            if obj.spec.suspend:
                return Result.success()
            run = _Run(obj, obj.status.to_dict())
            result: Result
            terminal = False
            try:
                outcome = await self._reconcile(run)
                result = self._result_for(obj, outcome)
                success = outcome is atomic.Outcome.DONE
            except _Stop as stop:
                terminal = stop.terminal
                success = False
                result = Result.retry_after(stop.after) if stop.after else Result.success(None)
            self._finalize_status(obj, success or terminal)
            await self._save(run)
            return result

    def _result_for(self, obj: HelmRelease, outcome: atomic.Outcome) -> Result:
        if outcome is atomic.Outcome.RETRY_AFTER_INTERVAL:
            retry = active_retry(obj, self.settings.default_to_retry_on_failure)
            return Result.retry_after(retry or parse_duration(obj.spec.interval))
        if outcome is atomic.Outcome.MUST_REQUEUE:
            return Result.retry_after(0.5)
        return Result.success(parse_duration(obj.spec.interval))

    def _finalize_status(self, obj: HelmRelease, observed: bool) -> None:
        requested = obj.metadata.annotations.get(RECONCILE_REQUEST_ANNOTATION)
        if requested is not None:
            obj.status.last_handled_reconcile_at = requested
        if observed:
            obj.status.observed_generation = obj.metadata.generation
        reconciling = conditions.get(obj, RECONCILING)
        if conditions.is_false(obj, READY) and reconciling is not None:
            conditions.set_condition(
                obj, msgspec.structs.replace(reconciling, reason=PROGRESSING_WITH_RETRY)
            )

    def _fail(self, obj: HelmRelease, reason: str, message: str, after: float | None) -> _Stop:
        conditions.mark_false(obj, READY, reason, "%s", message)
        return _Stop(message, after)

    # -- the steps -----------------------------------------------------------------------

    async def _reconcile(self, run: _Run) -> atomic.Outcome:
        obj = run.obj
        try:
            health = cel.health_check_readers(obj.spec.health_check_exprs)
            ready_exprs = cel.ready_expressions(obj.spec.depends_on)
        except cel.CelError as e:
            message = f"{cel.TERMINAL_ERROR_MESSAGE}: {e}"
            conditions.mark_false(obj, READY, INVALID_CEL_EXPRESSION, "%s", message)
            conditions.mark_stalled(obj, INVALID_CEL_EXPRESSION, "%s", message)
            self._emit(obj, "warning", INVALID_CEL_EXPRESSION, str(e))
            raise _Stop(message, None, terminal=True) from None
        await self._reconcile_chart_template(obj)
        conditions.mark_reconciling(obj, PROGRESSING, "Fulfilling prerequisites")
        await self._save(run)

        if obj.spec.depends_on:
            problem = await self._check_dependencies(obj, ready_exprs)
            if problem:
                conditions.mark_false(obj, READY, DEPENDENCY_NOT_READY, "%s", problem)
                self._emit(obj, "normal", DEPENDENCY_NOT_READY, problem)
                raise _Stop(problem, self.settings.requeue_dependency)
        if conditions.get_reason(obj, READY) == DEPENDENCY_NOT_READY:
            conditions.mark_unknown(obj, READY, PROGRESSING, "reconciliation in progress")

        source = await self._source(obj)
        values = await self._values(obj)
        chart, oci_digest = await self._chart(obj, source)

        try:
            client = await self._client_for(obj)
        except (RemoteConfigError, ApiError) as e:
            message = e.message if isinstance(e, ApiError) else str(e)
            raise self._fail(
                obj, "RESTClientError", message, parse_duration(obj.spec.interval)
            ) from None
        release_name = obj.release_name()
        target_changed = self._target_changed(obj, chart.name)
        if target_changed:
            log.info(
                "release target configuration changed (%s): running uninstall for current release",
                target_changed,
                extra={"helmrelease": f"{obj.metadata.namespace}/{obj.metadata.name}"},
            )
            await self._uninstall_previous(obj, client)
            obj.status.history = []
            clear_failures(obj)
            obj.status.storage_namespace = ""
            return atomic.Outcome.MUST_REQUEUE
        obj.status.storage_namespace = obj.storage_namespace()

        digest = config_digest(values)
        # Flux's MustResetFailures: a new generation, chart version or values, or a resetAt
        # request, gives the release a fresh set of retries.
        reset_requested = atomic.take_reset_request(obj)
        if (
            obj.status.last_attempted_generation != obj.metadata.generation
            or obj.status.last_attempted_revision != chart.version
            or (
                obj.status.last_attempted_config_digest
                and obj.status.last_attempted_config_digest != digest
            )
            or reset_requested
        ):
            clear_failures(obj)
        obj.status.last_attempted_generation = obj.metadata.generation
        obj.status.last_attempted_revision = chart.version
        obj.status.last_attempted_revision_digest = oci_digest
        obj.status.last_attempted_config_digest = digest
        obj.status.last_attempted_values_checksum = ""
        obj.status.last_release_revision = 0

        kube_version, api_versions = await self._discover(client)
        renderers = PostRenderers.of(obj)
        target_ns = obj.target_namespace()
        # `lookup` in templates reads the cluster with the identity the release is made with.
        lookup_kubeconfig = await asyncio.to_thread(kubeconfig_for, client)

        async def render(revision: int, is_install: bool, is_upgrade: bool) -> Rendered:
            files = await asyncio.to_thread(
                render_files,
                chart,
                values,
                release_name=release_name,
                namespace=target_ns,
                revision=revision,
                is_install=is_install,
                is_upgrade=is_upgrade,
                kube_version=kube_version,
                api_versions=api_versions,
                kubeconfig=lookup_kubeconfig,
            )
            rendered_files = await post_render(
                files.files, renderers, self.engine, build_timeout=obj.spec.timeout_seconds()
            )
            return await asyncio.to_thread(assemble, files, rendered_files)

        written: list[Release] = []

        def record_inventory(rls: Release) -> None:
            written.append(rls)

        async def save() -> None:
            await self._save(run)

        request = atomic.Request(
            obj=obj,
            kube=client,
            chart=chart,
            values=values,
            render=render,
            emit=lambda severity, reason, message, meta: self._emit(
                obj, severity, reason, message, meta
            ),
            save_status=save,
            release_name=release_name,
            namespace=target_ns,
            storage_namespace=obj.storage_namespace(),
            default_to_retry=self.settings.default_to_retry_on_failure,
            inventory=record_inventory,
            override_managers=self.settings.override_managers,
            health_readers={gk: ev.read for gk, ev in health.items()},
        )
        try:
            return await atomic.release(request)
        except atomic.ReleaseError as e:
            after = None if e.terminal else parse_duration(obj.spec.interval)
            raise _Stop(str(e), after, terminal=e.terminal) from None
        except (RenderError, PostRenderError, ApiError) as e:
            message = e.message if isinstance(e, ApiError) else str(e)
            raise self._fail(
                obj, "ReconcileError", message, parse_duration(obj.spec.interval)
            ) from None
        finally:
            if written:
                obj.status.inventory = await _inventory(client, written[-1], chart)

    # -- chart template and source -------------------------------------------------------

    async def _reconcile_chart_template(self, obj: HelmRelease) -> None:
        wanted = ""
        if obj.spec.chart is not None:
            ns = obj.spec.chart.spec.source_ref.namespace or obj.metadata.namespace
            wanted = f"{ns}/{chart_source.helm_chart_name(obj)}"
        if obj.status.helm_chart and obj.status.helm_chart != wanted:
            await self._delete_chart(obj)
        if obj.spec.chart is None:
            return
        ns, _, name = wanted.partition("/")
        self._check_access(obj, chart_source.HELM_CHART_KIND, ns, name)
        manifest = chart_source.helm_chart_manifest(obj)
        try:
            await self.kube.apply(
                chart_source.source_path(chart_source.HELM_CHART_KIND, ns, name),
                manifest,
                field_manager=FIELD_MANAGER,
                force=True,
            )
        except ApiError as e:
            message = f"failed to run server-side apply: {e.message}"
            raise self._fail(
                obj, ARTIFACT_FAILED, message, parse_duration(obj.spec.interval)
            ) from None
        obj.status.helm_chart = wanted

    async def _delete_chart(self, obj: HelmRelease) -> None:
        ns, _, name = obj.status.helm_chart.partition("/")
        if not name:
            obj.status.helm_chart = ""
            return
        try:
            await self.kube.delete(chart_source.source_path(chart_source.HELM_CHART_KIND, ns, name))
            self._emit(obj, "normal", "HelmChartDeleted", f"deleted HelmChart '{ns}/{name}'")
        except ApiError as e:
            if e.status != 404:
                raise self._fail(
                    obj,
                    ARTIFACT_FAILED,
                    f"failed to delete HelmChart '{ns}/{name}': {e.message}",
                    parse_duration(obj.spec.interval),
                ) from None
        obj.status.helm_chart = ""

    def _check_access(self, obj: HelmRelease, kind: str, ns: str, name: str) -> None:
        try:
            chart_source.check_access(
                obj, kind, ns, name, locked=self.settings.no_cross_namespace_refs
            )
        except chart_source.AccessDenied as e:
            conditions.mark_stalled(obj, ACCESS_DENIED, "%s", e)
            conditions.mark_false(obj, READY, ACCESS_DENIED, "%s", e)
            conditions.delete(obj, RECONCILING)
            self._emit(obj, "warning", ACCESS_DENIED, str(e))
            raise _Stop(str(e), None, terminal=True) from None

    async def _source(self, obj: HelmRelease) -> Mapping[str, Any]:
        ref = chart_source.chart_reference(obj)
        if ref is None:
            raise self._fail(obj, ARTIFACT_FAILED, "either chart or chartRef must be set", None)
        kind, ns, name = ref
        self._check_access(obj, kind, ns, name)
        try:
            source = await chart_source.read_source(self.kube, kind, ns, name)
        except chart_source.SourceError as e:
            raise self._fail(
                obj, ARTIFACT_FAILED, str(e), self.settings.requeue_dependency
            ) from None
        if conditions.get_reason(obj, READY) in (ACCESS_DENIED, ARTIFACT_FAILED):
            conditions.mark_unknown(obj, READY, PROGRESSING, "reconciliation in progress")
        problem = chart_source.source_ready(source)
        if problem:
            log.info(
                problem, extra={"helmrelease": f"{obj.metadata.namespace}/{obj.metadata.name}"}
            )
            raise self._fail(obj, SOURCE_NOT_READY, problem, self.settings.requeue_dependency)
        if conditions.get_reason(obj, READY) == SOURCE_NOT_READY:
            conditions.mark_unknown(obj, READY, PROGRESSING, "reconciliation in progress")
        return source

    async def _values(self, obj: HelmRelease) -> dict[str, Any]:
        async def read(namespace: str, kind: str, name: str) -> Mapping[str, str] | None:
            try:
                if kind == "Secret":
                    secret = await self.kube.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
                    data = secret.get("data") or {}
                    return {
                        k: base64.b64decode(v).decode("utf-8", "replace")
                        for k, v in data.items()
                        if isinstance(v, str)
                    }
                cm = await self.kube.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
                return {k: str(v) for k, v in (cm.get("data") or {}).items()}
            except ApiError as e:
                if e.status == 404:
                    return None
                raise

        try:
            composed = await compose(
                obj.metadata.namespace,
                obj.spec.values_from,
                obj.spec.values if isinstance(obj.spec.values, dict) else None,
                read,
                HelmValuesParser(),
            )
        except (ValuesError, ApiError) as e:
            message = str(e) if isinstance(e, ValuesError) else e.message
            self._emit(obj, "warning", VALUES_ERROR, message)
            raise self._fail(
                obj, VALUES_ERROR, message, parse_duration(obj.spec.interval)
            ) from None
        for skipped in composed.skipped:
            log.info(
                skipped, extra={"helmrelease": f"{obj.metadata.namespace}/{obj.metadata.name}"}
            )
        if conditions.get_reason(obj, READY) == VALUES_ERROR:
            conditions.mark_unknown(obj, READY, PROGRESSING, "reconciliation in progress")
        return composed.values

    async def _chart(self, obj: HelmRelease, source: Mapping[str, Any]) -> tuple[LoadedChart, str]:
        raw = (source.get("status") or {}).get("artifact") or {}
        interval = parse_duration(obj.spec.interval)
        try:
            artifact = Artifact.from_dict(raw)
            data = await fetch_artifact(
                self._http(), artifact, max_size=chart_source.MAX_CHART_BYTES
            )
        except ArtifactNotFoundError:
            message = (
                "Source not ready: artifact not found. Retrying in "
                f"{self.settings.requeue_dependency:g}s"
            )
            raise self._fail(
                obj, ARTIFACT_FAILED, message, self.settings.requeue_dependency
            ) from None
        except (SourceArtifactError, msgspec.ValidationError) as e:
            self._emit(obj, "warning", ARTIFACT_FAILED, str(e))
            raise self._fail(obj, ARTIFACT_FAILED, f"Could not load chart: {e}", interval) from None
        oci_digest = ""
        if source.get("kind") == chart_source.OCI_REPOSITORY_KIND:
            try:
                data, oci_digest = await asyncio.to_thread(
                    chart_source.track_digest, data, artifact.revision
                )
            except (chart_source.SourceError, tarfile.TarError) as e:
                raise self._fail(obj, CHART_MUTATE_ERROR, str(e), interval) from None
        try:
            chart = await asyncio.to_thread(load_chart, data)
        except ChartError as e:
            self._emit(obj, "warning", ARTIFACT_FAILED, str(e))
            raise self._fail(obj, ARTIFACT_FAILED, f"Could not load chart: {e}", interval) from None
        if conditions.get_reason(obj, READY) == ARTIFACT_FAILED:
            conditions.mark_unknown(obj, READY, PROGRESSING, "reconciliation in progress")
        return chart, oci_digest

    def _target_changed(self, obj: HelmRelease, chart_name: str) -> str:
        cur = obj.status.history[0] if obj.status.history else None
        if not obj.status.storage_namespace or cur is None:
            return ""
        if obj.storage_namespace() != obj.status.storage_namespace:
            return "storage namespace"
        if obj.target_namespace() != cur.namespace:
            return "release namespace"
        if obj.release_name() != cur.name:
            return "release name"
        strategy = obj.spec.upgrade.chart_name_change_strategy if obj.spec.upgrade else None
        if chart_name != cur.chart_name and (strategy or "Reinstall") == "Reinstall":
            return "chart name"
        return ""

    async def _uninstall_previous(self, obj: HelmRelease, client: Kube) -> None:
        cur = obj.status.history[0] if obj.status.history else None
        if cur is None or not obj.status.storage_namespace:
            return
        try:
            await atomic.uninstall_release(client, obj, cur.name, obj.status.storage_namespace)
        except actions.ActionError as e:
            if "not found" not in str(e):
                message = atomic.FMT_UNINSTALL_FAILURE.format(
                    release=cur.full_release_name(), chart=history.chart_name(cur), err=str(e)
                )
                raise self._fail(
                    obj, "UninstallFailed", message, parse_duration(obj.spec.interval)
                ) from None

    async def _check_dependencies(
        self, obj: HelmRelease, ready_exprs: Mapping[str, cel.Expression]
    ) -> str:
        for dep in obj.spec.depends_on:
            ns = dep.namespace or obj.metadata.namespace
            name = f"{ns}/{dep.name}"
            try:
                raw = await self.kube.get(object_path(ns, dep.name))
            except ApiError as e:
                return f"dependency '{name}' not found: {e.message}"
            if dep.ready_expr:
                try:
                    ready = ready_exprs[dep.ready_expr].evaluate_bool(
                        {"self": obj.to_dict(), "dep": raw}
                    )
                except cel.EvaluationError as e:
                    return str(e)
                if not ready:
                    return f"dependency '{name}' is not ready according to readyExpr eval"
                if not self.settings.additive_cel_dependency_check:
                    continue
            status = raw.get("status") or {}
            meta = raw.get("metadata") or {}
            ready_cond = next(
                (c for c in status.get("conditions") or [] if c.get("type") == READY), None
            )
            stalled = any(
                c.get("type") == STALLED and c.get("status") == "True"
                for c in status.get("conditions") or []
            )
            if (
                ready_cond is None
                or meta.get("generation") != status.get("observedGeneration")
                or ready_cond.get("status") != "True"
                or stalled
            ):
                return f"dependency '{name}' is not ready"
        return ""

    # -- deletion ------------------------------------------------------------------------

    async def _finalize(self, obj: HelmRelease) -> Result:
        path = object_path(obj.metadata.namespace, obj.metadata.name)
        if not obj.spec.suspend:
            run = _Run(obj, obj.status.to_dict())
            try:
                await self._uninstall_for_deletion(obj)
                await self._reconcile_chart_template_deletion(obj)
            except _Stop as stop:
                await self._save(run)
                return Result.retry_after(stop.after or parse_duration(obj.spec.interval))
        await remove_finalizer(self.kube, path, obj.metadata.finalizers, HELM_RELEASE_FINALIZER)
        return Result.success()

    async def _reconcile_chart_template_deletion(self, obj: HelmRelease) -> None:
        if obj.status.helm_chart:
            await self._delete_chart(obj)

    async def _uninstall_for_deletion(self, obj: HelmRelease) -> None:
        if not obj.status.storage_namespace:
            log.info("skipping Helm release uninstallation: no storage namespace configured")
            return
        sa = self._service_account(obj)
        if sa and obj.spec.kube_config is None:
            try:
                await self.kube.get(
                    f"/api/v1/namespaces/{obj.metadata.namespace}/serviceaccounts/{sa}"
                )
            except ApiError as e:
                if e.status == 404:
                    log.error(
                        "skipping Helm release uninstallation: ServiceAccount %s not found", sa
                    )
                    return
                raise self._fail(
                    obj,
                    "UninstallFailed",
                    f"failed to confirm ServiceAccount '{sa}' can be used to uninstall release: "
                    f"{e.message}",
                    parse_duration(obj.spec.interval),
                ) from None
        try:
            client = await self._client_for(obj)
        except (RemoteConfigError, ApiError) as e:
            if isinstance(e, ApiError) and e.status == 404:
                log.error("skipping Helm release uninstallation: %s", e.message)
                return
            raise self._fail(
                obj,
                "UninstallFailed",
                f"failed to build REST client getter to uninstall release: {e}",
                parse_duration(obj.spec.interval),
            ) from None
        name = obj.status.history[0].name if obj.status.history else obj.release_name()
        latest = await storage.latest(client, obj.status.storage_namespace, name)
        if latest is None:
            obj.status.history = []
            obj.status.storage_namespace = ""
            return
        try:
            rls = await atomic.uninstall_release(client, obj, name, obj.status.storage_namespace)
            cur = history.snapshot(rls)
            message = atomic.FMT_UNINSTALL_SUCCESS.format(
                release=cur.full_release_name(), chart=history.chart_name(cur)
            )
            self._emit(obj, "normal", "UninstallSucceeded", message)
        except actions.ActionError as e:
            if "already deleted" not in str(e):
                message = f"Helm uninstall failed for release {obj.metadata.namespace}/{name}: {e}"
                self._emit(obj, "warning", "UninstallFailed", message)
                raise self._fail(
                    obj, "UninstallFailed", message, parse_duration(obj.spec.interval)
                ) from None
        obj.status.history = []
        obj.status.storage_namespace = ""


async def _inventory(kube: Kube, rls: Release, chart: LoadedChart) -> ResourceInventory | None:
    """The release's objects (hooks excluded) and the chart's CRDs, in Flux's id format; the
    namespace of each object as the API server scopes it. None once uninstalled."""
    from tidal.helm import resources

    if rls.info.status == storage.UNINSTALLED:
        return None
    manifest = rls.manifest + "".join(f"\n---\n{text}" for _, text in chart.crds)
    try:
        items = await resources.build(shared_discovery(kube), manifest, rls.namespace)
    except (resources.BuildError, ApiError) as e:
        log.warning("failed to build inventory for release %s: %s", rls.name, e)
        return None
    entries: dict[str, ResourceRef] = {}
    for item in items:
        meta = item.obj.get("metadata") or {}
        api_version = str(item.obj.get("apiVersion", ""))
        group, _, version = api_version.rpartition("/")
        ref = ObjRef(
            str(meta.get("namespace") or ""),
            str(meta.get("name") or ""),
            group,
            str(item.obj.get("kind", "")),
            version,
        )
        entries[ref.id] = ResourceRef(id=ref.id, version=version)
    return ResourceInventory(entries=sorted(entries.values(), key=lambda e: e.id))


def chart_watch(
    kind: str,
    list_releases: Callable[[], list[dict[str, Any]]],
    enqueue: Callable[[str, str], None],
) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    """An update handler for a HelmChart or OCIRepository informer: a new artifact revision
    wakes the HelmReleases whose chart it holds."""

    def revision(obj: Mapping[str, Any]) -> str:
        return str(((obj.get("status") or {}).get("artifact") or {}).get("revision", ""))

    def on_update(old: dict[str, Any], new: dict[str, Any]) -> None:
        if not revision(new) or revision(new) == revision(old):
            return
        meta = new.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        for hr_obj in list_releases():
            hr_meta = hr_obj.get("metadata") or {}
            hr_ns = str(hr_meta.get("namespace", ""))
            spec = hr_obj.get("spec") or {}
            ref = spec.get("chartRef") or {}
            uses = (
                ref.get("kind") == kind
                and f"{ref.get('namespace') or hr_ns}/{ref.get('name')}" == key
            )
            if kind == "HelmChart" and (hr_obj.get("status") or {}).get("helmChart") == key:
                uses = True
            if uses:
                enqueue(hr_ns, str(hr_meta.get("name", "")))

    return on_update
