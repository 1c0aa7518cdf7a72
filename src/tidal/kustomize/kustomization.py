"""The Kustomization reconciler: Flux's GitOps loop (kustomize-controller), step by step.

source → dependencies → artifact → build → apply → inventory → prune → health → Ready. Each
step that can fail marks Ready=False with Flux's reason and message, records an event whose
reason is Ready's reason (as kustomize-controller does), and retries at spec.retryInterval.
A failure before or during apply leaves the last applied revision in place: the applier
dry-runs the whole set before it writes anything (tidal.ssa.manager).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import msgspec

from tidal.api.base import format_duration, parse_duration
from tidal.api.kustomize import (
    API_VERSION,
    COMMIT_STATUS_KEY,
    COMMIT_STATUS_UPDATE,
    DELETION_POLICY_DELETE,
    DELETION_POLICY_MIRROR_PRUNE,
    DELETION_POLICY_WAIT_FOR_TERMINATION,
    DISABLED,
    ENABLED,
    FORCE_ANNOTATION,
    GROUP,
    KUSTOMIZATION_FINALIZER,
    KUSTOMIZATION_KIND,
    LEGACY_CHECKSUM_ANNOTATION,
    NAME_LABEL,
    NAMESPACE_LABEL,
    ORIGIN_REVISION_KEY,
    PRUNE_ANNOTATION,
    RECONCILE_ANNOTATION,
    REVISION_KEY,
    SSA_ANNOTATION,
    SSA_IF_NOT_PRESENT,
    SSA_IGNORE,
    SSA_MERGE,
    Kustomization,
    ResourceInventory,
    ResourceRef,
)
from tidal.api.meta import (
    ACCESS_DENIED,
    ARTIFACT_FAILED,
    BUILD_FAILED,
    DEPENDENCY_NOT_READY,
    HEALTH_CHECK_FAILED,
    HEALTHY,
    INVALID_CEL_EXPRESSION,
    PROGRESSING,
    PROGRESSING_WITH_RETRY,
    PRUNE_FAILED,
    READY,
    RECONCILE_REQUEST_ANNOTATION,
    RECONCILIATION_FAILED,
    RECONCILIATION_SUCCEEDED,
    RECONCILING,
    STALLED,
    SUCCEEDED,
)
from tidal.kube import cel, kstatus
from tidal.kube.client import ApiError, Kube
from tidal.kube.discovery import Discovery
from tidal.kube.events import EventRecorder
from tidal.kube.remote import KubeConfigOptions, RemoteClients, RemoteConfigError, read_kubeconfig
from tidal.kustomize import history, inventory
from tidal.kustomize.artifacts import ArtifactCache, ArtifactError
from tidal.kustomize.render import Renderer, RenderError
from tidal.runtime import conditions
from tidal.runtime.finalizers import add_finalizer, remove_finalizer
from tidal.runtime.poll import poll_until
from tidal.runtime.status import write_status
from tidal.runtime.workers import Result
from tidal.ssa.changeset import Action, ChangeSet
from tidal.ssa.ignore import IgnoreRuleError, IgnoreRules
from tidal.ssa.managed_fields import LAST_APPLIED, FieldManager
from tidal.ssa.manager import ApplyError, ApplyOptions, ResourceManager
from tidal.ssa.objects import describe

log = logging.getLogger(__name__)

FIELD_MANAGER = "kustomize-controller"
# status writes carry their own manager, as Flux's patch helper does.
STATUS_MANAGER = "gotk-kustomize-controller"
PLURAL = "kustomizations"
API_PATH = f"/apis/{API_VERSION}"

_SOURCES = "/apis/source.toolkit.fluxcd.io/v1/namespaces/{ns}"
_SOURCE_PATHS = {
    "GitRepository": _SOURCES + "/gitrepositories/{name}",
    "OCIRepository": _SOURCES + "/ocirepositories/{name}",
    "Bucket": _SOURCES + "/buckets/{name}",
    "ExternalArtifact": _SOURCES + "/externalartifacts/{name}",
}


def object_path(namespace: str, name: str) -> str:
    return f"{API_PATH}/namespaces/{namespace}/{PLURAL}/{name}"


@dataclass(frozen=True)
class Settings:
    """Controller-wide options (flags of `tidal controller`)."""

    no_cross_namespace_refs: bool = False
    default_service_account: str = ""
    requeue_dependency: float = 30.0
    concurrent_ssa: int = 8
    override_managers: tuple[str, ...] = ()
    health_interval: float = 5.0
    # Flux's AdditiveCELDependencyCheck gate: a readyExpr adds to the built-in dependency
    # check instead of replacing it
    additive_cel_dependency_check: bool = False
    # spec.kubeConfig may use exec plugins / skip TLS verification (--insecure-kubeconfig-*)
    insecure_kubeconfig_exec: bool = False
    insecure_kubeconfig_tls: bool = False


class _Stop(Exception):
    """Ends a reconcile early: Ready is already marked; requeue after `after` seconds."""

    def __init__(self, message: str, after: float | None, *, event: bool = True) -> None:
        super().__init__(message)
        self.after = after
        self.event = event


@dataclass
class _Run:
    """One reconcile attempt's state."""

    obj: Kustomization
    written: dict[str, Any]
    started: float = field(default_factory=time.monotonic)
    revision: str = ""
    origin_revision: str = ""
    # spec.healthCheckExprs per (group, kind) and spec.dependsOn[].readyExpr by text, compiled
    health_readers: dict[tuple[str, str], cel.StatusEvaluator] = field(default_factory=dict)
    ready_exprs: dict[str, cel.Expression] = field(default_factory=dict)


def owner_labels(obj: Kustomization) -> dict[str, str]:
    return {NAME_LABEL: obj.metadata.name, NAMESPACE_LABEL: obj.metadata.namespace}


def set_owner_labels(objects: Sequence[dict[str, Any]], obj: Kustomization) -> None:
    labels = owner_labels(obj)
    for o in objects:
        meta = o.setdefault("metadata", {})
        meta["labels"] = {**(meta.get("labels") or {}), **labels}


def set_common_metadata(objects: Sequence[dict[str, Any]], obj: Kustomization) -> None:
    common = obj.spec.common_metadata
    if common is None:
        return
    for o in objects:
        meta = o.setdefault("metadata", {})
        if common.labels:
            meta["labels"] = {**(meta.get("labels") or {}), **common.labels}
        if common.annotations:
            meta["annotations"] = {**(meta.get("annotations") or {}), **common.annotations}


_PRUNE_EXCLUSIONS = {
    PRUNE_ANNOTATION: DISABLED,
    RECONCILE_ANNOTATION: DISABLED,
    SSA_ANNOTATION: SSA_IGNORE,
}


def apply_options(obj: Kustomization, settings: Settings) -> ApplyOptions:
    managers = [
        FieldManager("kubectl", "Apply"),
        FieldManager("kubectl", "Update"),
        FieldManager("before-first-apply", "Update"),
        FieldManager(FIELD_MANAGER, "Update"),
    ]
    for name in settings.override_managers:
        managers += [FieldManager(name, "Apply"), FieldManager(name, "Update")]
    return ApplyOptions(
        force=obj.spec.force,
        exclusions={RECONCILE_ANNOTATION: DISABLED, SSA_ANNOTATION: SSA_IGNORE},
        if_not_present={SSA_ANNOTATION: SSA_IF_NOT_PRESENT},
        force_selector={FORCE_ANNOTATION: ENABLED},
        cleanup_annotations=(LAST_APPLIED, LEGACY_CHECKSUM_ANNOTATION, "fluxcd.io/sync-checksum"),
        cleanup_labels=("fluxcd.io/sync-gc-mark",),
        cleanup_managers=managers,
        cleanup_exclusions={SSA_ANNOTATION: SSA_MERGE},
        drift_ignore=IgnoreRules([rule.to_dict() for rule in obj.spec.ignore]).paths_for,
        owned_selector=",".join(f"{k}={v}" for k, v in sorted(owner_labels(obj).items())),
        wait_timeout=obj.spec.timeout_seconds(),
    )


ClientFactory = Callable[[str], Awaitable[Kube]]
# An informer cache's get(namespace, name).
CacheLookup = Callable[[str, str], Mapping[str, Any] | None]


class KustomizationReconciler:
    def __init__(
        self,
        kube: Kube,
        events: EventRecorder,
        artifacts: ArtifactCache,
        renderer: Renderer,
        settings: Settings,
        *,
        impersonated: ClientFactory | None = None,
        caches: Mapping[str, CacheLookup] | None = None,
    ) -> None:
        """`caches` maps a kind (a source kind, Kustomization) to the controller's informer
        cache of it: the source and the dependencies are then read from it, not fetched."""
        self.kube = kube
        self.events = events
        self.artifacts = artifacts
        self.renderer = renderer
        self.settings = settings
        self.discovery = Discovery(kube)
        self._impersonated = impersonated
        self._caches = dict(caches or {})
        self._clients: dict[str, Kube] = {}
        self._remote = RemoteClients(
            KubeConfigOptions(
                allow_exec=settings.insecure_kubeconfig_exec,
                allow_insecure_tls=settings.insecure_kubeconfig_tls,
            )
        )

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        await self._remote.close()

    # -- clients -------------------------------------------------------------------------

    def _service_account(self, obj: Kustomization) -> str:
        return obj.spec.service_account_name or self.settings.default_service_account

    async def _client_for(self, obj: Kustomization) -> Kube:
        """The controller's own client, or one impersonating the ServiceAccount (Flux's
        serviceAccountName, or --default-service-account when the object names none); in the
        cluster spec.kubeConfig names, if any. RemoteConfigError when that cannot be used."""
        sa = self._service_account(obj)
        user = f"system:serviceaccount:{obj.metadata.namespace}:{sa}" if sa else None
        groups = (
            (
                "system:serviceaccounts",
                f"system:serviceaccounts:{obj.metadata.namespace}",
                "system:authenticated",
            )
            if sa
            else ()
        )
        if obj.spec.kube_config is not None:
            return await self._remote_client(obj, user, groups)
        await self._remote.release(_owner(obj))
        if user is None:
            return self.kube
        client = self._clients.get(user)
        if client is None:
            client = Kube(self.kube.config, impersonate=user, impersonate_groups=groups)
            self._clients[user] = client
        return client

    async def _cluster_for(self, obj: Kustomization) -> Kube:
        """The target cluster's client without impersonation."""
        if obj.spec.kube_config is None:
            return self.kube
        return await self._remote_client(obj, None, (), role="admin")

    async def _remote_client(
        self, obj: Kustomization, user: str | None, groups: tuple[str, ...], role: str = ""
    ) -> Kube:
        # Re-read at every reconciliation, so a rotated kubeconfig takes effect at once.
        assert obj.spec.kube_config is not None
        data = await read_kubeconfig(self.kube, obj.metadata.namespace, obj.spec.kube_config)
        client, _ = await self._remote.get(
            _owner(obj), data, impersonate=user, impersonate_groups=groups, role=role
        )
        # A cluster that is not up yet (Cluster API) or a revoked credential fails here, with
        # the reason in Ready, instead of midway through the apply.
        try:
            await client.server_version()
        except ApiError as e:
            raise RemoteConfigError(f"remote cluster at {client.server}: {e}") from None
        except httpx.HTTPError as e:
            reason = str(e) or type(e).__name__
            raise RemoteConfigError(
                f"unable to reach the remote cluster at {client.server}: {reason}"
            ) from None
        return client

    def _manager(self, client: Kube) -> ResourceManager:
        # Kinds and REST paths belong to one API server: a remote cluster has its own.
        discovery = self._remote.discovery_for(client) or self.discovery
        return ResourceManager(
            client, discovery, owner=FIELD_MANAGER, concurrency=self.settings.concurrent_ssa
        )

    async def _read(self, kind: str, namespace: str, name: str, path: str) -> Mapping[str, Any]:
        """The object from the informer cache of `kind`, as Flux's cached client reads sources
        and dependencies, else a GET of `path`: a miss proves nothing (no informer for that
        kind, or --watch-label-selector keeps the object out), so the API server decides.
        Never mutate the result: a cached object is shared."""
        lookup = self._caches.get(kind)
        cached = lookup(namespace, name) if lookup is not None else None
        if cached is not None:
            return cached
        return await self.kube.get(path)

    # -- status and events ---------------------------------------------------------------

    async def _patch_status(self, run: _Run) -> None:
        meta = run.obj.metadata
        after = run.obj.status.to_dict()
        await write_status(self.kube, object_path(meta.namespace, meta.name), run.written, after)
        run.written = after

    def _event(
        self,
        run: _Run,
        severity: str,
        message: str,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Flux's event: reason is Ready's reason (or the severity), revisions annotated."""
        obj = run.obj
        annotations = dict(metadata or {})
        if run.revision:
            annotations[REVISION_KEY] = run.revision
        if run.origin_revision:
            annotations[ORIGIN_REVISION_KEY] = run.origin_revision
        reason = conditions.get_reason(obj, READY) or severity
        raw = obj.to_dict()
        if severity == "error":
            self.events.warning(raw, reason, message, annotations)
        else:
            self.events.normal(raw, reason, message, annotations)

    def _fail(self, run: _Run, reason: str, message: str, after: float | None = None) -> _Stop:
        conditions.mark_false(run.obj, READY, reason, "%s", message)
        return _Stop(message, run.obj.spec.retry_interval_seconds() if after is None else after)

    # -- entry point ---------------------------------------------------------------------

    async def reconcile(self, raw: Mapping[str, Any]) -> Result:
        try:
            obj = Kustomization.from_dict(raw)
        except msgspec.ValidationError as e:
            log.error("cannot decode Kustomization: %s", e)
            return Result.failure(f"invalid object: {e}")
        meta = obj.metadata
        if meta.deletion_timestamp:
            return await self._finalize(obj)
        await add_finalizer(
            self.kube,
            object_path(meta.namespace, meta.name),
            meta.finalizers,
            KUSTOMIZATION_FINALIZER,
        )
        if obj.spec.suspend:
            return Result.success()

        run = _Run(obj, obj.status.to_dict())
        after: float | None
        try:
            await self._reconcile(run)
            after = parse_duration(obj.spec.interval)
            failed = False
        except _Stop as stop:
            after = stop.after
            failed = True
            if stop.event:
                self._event(run, "error", str(stop))
        self._finalize_status(run)
        await self._patch_status(run)
        if _is_ready(obj):
            message = (
                f"Reconciliation finished in {format_duration(time.monotonic() - run.started)}, "
                f"next run in {format_duration(parse_duration(obj.spec.interval))}"
            )
            log.info(message, extra={"kustomization": f"{meta.namespace}/{meta.name}"})
            self._event(run, "info", message, {COMMIT_STATUS_KEY: COMMIT_STATUS_UPDATE})
        if failed:
            return Result.retry_after(after) if after else Result.success(None)
        return Result.success(after)

    def _finalize_status(self, run: _Run) -> None:
        obj = run.obj
        requested = obj.metadata.annotations.get(RECONCILE_REQUEST_ANNOTATION)
        if requested is not None:
            obj.status.last_handled_reconcile_at = requested
        if _is_ready(obj):
            conditions.delete(obj, RECONCILING)
            obj.status.observed_generation = obj.metadata.generation
        reconciling = conditions.get(obj, RECONCILING)
        if conditions.is_false(obj, READY) and reconciling is not None:
            conditions.set_condition(
                obj, msgspec.structs.replace(reconciling, reason=PROGRESSING_WITH_RETRY)
            )

    # -- the steps -----------------------------------------------------------------------

    async def _source(self, run: _Run) -> Mapping[str, Any]:
        obj = run.obj
        ref = obj.spec.source_ref
        ns = ref.namespace or obj.metadata.namespace
        subject = f"{ref.kind}/{ns}/{ref.name}"
        if self.settings.no_cross_namespace_refs and ns != obj.metadata.namespace:
            message = f"can't access '{subject}', cross-namespace references have been blocked"
            conditions.mark_false(obj, READY, ACCESS_DENIED, "%s", message)
            # Terminal, as Flux: retrying cannot help until the spec or the flag changes.
            conditions.mark_stalled(obj, ACCESS_DENIED, "%s", message)
            raise _Stop(message, None)
        path = _SOURCE_PATHS.get(ref.kind)
        if path is None:
            raise self._fail(run, ARTIFACT_FAILED, f"source `{ref.kind}` kind not supported")
        try:
            return await self._read(ref.kind, ns, ref.name, path.format(ns=ns, name=ref.name))
        except ApiError as e:
            if e.status == 404:
                message = f"Source '{subject}' not found"
                conditions.mark_false(obj, READY, ARTIFACT_FAILED, "%s", message)
                raise _Stop(message, obj.spec.retry_interval_seconds(), event=False) from None
            raise self._fail(run, ARTIFACT_FAILED, f"unable to get source '{subject}': {e}") from e

    def _compile_expressions(self, run: _Run) -> None:
        """Flux compiles the CEL expressions before anything else. One that does not compile
        is a configuration error no retry can fix: Ready=False and Stalled, no requeue."""
        obj = run.obj
        try:
            run.health_readers = cel.health_check_readers(obj.spec.health_check_exprs)
            run.ready_exprs = cel.ready_expressions(obj.spec.depends_on)
        except cel.CelError as e:
            message = f"{cel.TERMINAL_ERROR_MESSAGE}: {e}"
            conditions.mark_false(obj, READY, INVALID_CEL_EXPRESSION, "%s", message)
            conditions.mark_stalled(obj, INVALID_CEL_EXPRESSION, "%s", message)
            obj.status.observed_generation = obj.metadata.generation
            raise _Stop(message, None) from None
        if conditions.get_reason(obj, STALLED) == INVALID_CEL_EXPRESSION:
            conditions.delete(obj, STALLED)

    async def _check_dependencies(self, run: _Run, source: Mapping[str, Any]) -> str | None:
        obj = run.obj
        my_ref = obj.spec.source_ref
        my_src = (my_ref.kind, my_ref.name, my_ref.namespace or obj.metadata.namespace)
        for dep in obj.spec.depends_on:
            ns = dep.namespace or obj.metadata.namespace
            name = f"{ns}/{dep.name}"
            try:
                raw = await self._read(KUSTOMIZATION_KIND, ns, dep.name, object_path(ns, dep.name))
            except ApiError as e:
                return f"dependency '{name}' not found: {e.message}"
            try:
                other = Kustomization.from_dict(raw)
            except msgspec.ValidationError:
                return f"dependency '{name}' is not ready"
            if dep.ready_expr:
                try:
                    ready = run.ready_exprs[dep.ready_expr].evaluate_bool(
                        {"self": obj.to_dict(), "dep": raw}
                    )
                except cel.EvaluationError as e:
                    return str(e)
                if not ready:
                    return f"dependency '{name}' is not ready according to readyExpr eval"
                if not self.settings.additive_cel_dependency_check:
                    continue
            if (
                not other.status.conditions
                or other.metadata.generation != other.status.observed_generation
                or not conditions.is_true(other, READY)
            ):
                return f"dependency '{name}' is not ready"
            ref = other.spec.source_ref
            their_src = (ref.kind, ref.name, ref.namespace or other.metadata.namespace)
            if their_src == my_src and not _has_revision(
                source, other.status.last_applied_revision
            ):
                return f"dependency '{name}' revision is not up to date"
        return None

    async def _reconcile(self, run: _Run) -> None:
        obj = run.obj
        self._compile_expressions(run)
        source = await self._source(run)
        artifact = (source.get("status") or {}).get("artifact")
        if not artifact:
            message = (
                "Source artifact not found, retrying in "
                f"{format_duration(self.settings.requeue_dependency)}"
            )
            conditions.mark_false(obj, READY, ARTIFACT_FAILED, "%s", message)
            raise _Stop(message, self.settings.requeue_dependency, event=False)
        run.revision = str(artifact.get("revision", ""))
        run.origin_revision = _origin_revision(source)

        if obj.spec.depends_on:
            problem = await self._check_dependencies(run, source)
            if problem is not None:
                conditions.mark_false(obj, READY, DEPENDENCY_NOT_READY, "%s", problem)
                message = (
                    "Dependencies do not meet ready condition, retrying in "
                    f"{format_duration(self.settings.requeue_dependency)}"
                )
                self._event(run, "info", message)
                raise _Stop(message, self.settings.requeue_dependency, event=False)

        timeout = format_duration(obj.spec.timeout_seconds())
        conditions.mark_unknown(obj, READY, PROGRESSING, "Reconciliation in progress")
        conditions.mark_reconciling(
            obj,
            PROGRESSING,
            "Fetching manifests for revision %s with a timeout of %s",
            run.revision,
            timeout,
        )
        await self._patch_status(run)
        old_inventory = list(obj.status.inventory.entries) if obj.status.inventory else []

        digest = str(artifact.get("digest", ""))
        try:
            async with self.artifacts.unpacked(str(artifact.get("url", "")), digest) as tree:
                await self._apply_revision(run, tree, old_inventory, digest)
        except ArtifactError as e:
            raise self._fail(run, ARTIFACT_FAILED, str(e)) from None

    async def _apply_revision(
        self, run: _Run, tree: Path, old_inventory: list[ResourceRef], digest: str
    ) -> None:
        obj = run.obj
        timeout = format_duration(obj.spec.timeout_seconds())
        try:
            self.renderer.check_path(tree, obj.spec.path)
        except RenderError as e:
            raise self._fail(run, ARTIFACT_FAILED, str(e)) from None
        obj.status.last_attempted_revision = run.revision
        conditions.mark_reconciling(
            obj,
            PROGRESSING,
            "Building manifests for revision %s with a timeout of %s",
            run.revision,
            timeout,
        )
        await self._patch_status(run)

        try:
            client = await self._client_for(obj)
        except RemoteConfigError as e:
            raise self._fail(run, RECONCILIATION_FAILED, str(e)) from None
        try:
            objects, manifests = await self.renderer.render(tree, obj, self.kube, digest=digest)
        except RenderError as e:
            raise self._fail(run, BUILD_FAILED, str(e)) from None
        checksum = history.digest(manifests)
        set_owner_labels(objects, obj)
        set_common_metadata(objects, obj)

        conditions.mark_reconciling(
            obj,
            PROGRESSING,
            "Detecting drift for revision %s with a timeout of %s",
            run.revision,
            timeout,
        )
        await self._patch_status(run)

        manager = self._manager(client)
        try:
            options = apply_options(obj, self.settings)
        except IgnoreRuleError as e:
            raise self._fail(run, RECONCILIATION_FAILED, f"spec.ignore: {e}") from None
        try:
            changes = await manager.apply_all_staged(objects, options)
        except (ApplyError, TimeoutError) as e:
            self._record(run, checksum, RECONCILIATION_FAILED)
            raise self._fail(run, RECONCILIATION_FAILED, str(e)) from None
        drifted = changes.changed()
        if drifted:
            self._event(run, "info", changes.summary())

        new_entries = inventory.from_change_set(changes)
        obj.status.inventory = ResourceInventory(entries=new_entries)

        if obj.spec.prune:
            stale = inventory.stale(old_inventory, new_entries)
            if stale:
                # Record the new inventory first: the drift watch then knows these objects
                # are being pruned rather than deleted behind the Kustomization's back.
                await self._patch_status(run)
                pruned, errors = await manager.delete_all(
                    [r.as_object() for r in stale],
                    inclusions=owner_labels(obj),
                    exclusions=_PRUNE_EXCLUSIONS,
                )
                if len(pruned):
                    self._event(run, "info", "\n".join(pruned.lines()))
                if errors:
                    # What could not be deleted stays in the inventory, so a later attempt
                    # prunes it instead of forgetting it.
                    handled = {e.subject for e in pruned}
                    survivors = [
                        ResourceRef(id=r.id, version=r.version)
                        for r in stale
                        if r.subject not in handled
                    ]
                    obj.status.inventory = ResourceInventory(entries=new_entries + survivors)
                    self._record(run, checksum, PRUNE_FAILED)
                    message = "delete failed, errors: " + ";".join(errors)
                    raise self._fail(run, PRUNE_FAILED, message)

        new_revision = obj.status.last_applied_revision != run.revision
        await self._check_health(
            run, manager, changes, checksum, new_revision=new_revision, drifted=drifted
        )

        obj.status.last_applied_revision = run.revision
        obj.status.last_applied_origin_revision = run.origin_revision
        conditions.mark_true(
            obj, READY, RECONCILIATION_SUCCEEDED, "Applied revision: %s", run.revision
        )
        self._record(run, checksum, RECONCILIATION_SUCCEEDED)

    def _record(self, run: _Run, checksum: str, status: str) -> None:
        metadata = {"revision": run.revision}
        if run.origin_revision:
            metadata["originRevision"] = run.origin_revision
        run.obj.status.history = history.upsert(
            run.obj.status.history,
            checksum=checksum,
            now=conditions.utc_now(),
            duration=time.monotonic() - run.started,
            status=status,
            metadata=metadata,
        )

    async def _check_health(
        self,
        run: _Run,
        manager: ResourceManager,
        changes: ChangeSet,
        checksum: str,
        *,
        new_revision: bool,
        drifted: bool,
    ) -> None:
        obj = run.obj
        if not obj.spec.health_checks and not obj.spec.wait:
            conditions.delete(obj, HEALTHY)
            return
        refs: list[tuple[str, str, str, str]]  # apiVersion, kind, namespace, name
        if obj.spec.wait:
            refs = [
                (f"{e.group}/{e.version}" if e.group else e.version, e.kind, e.namespace, e.name)
                for e in changes
                if e.action != Action.SKIPPED
            ]
        else:
            # Flux reads an empty apiVersion as the core group.
            refs = [
                (r.api_version or "v1", r.kind, r.namespace, r.name) for r in obj.spec.health_checks
            ]
        me = (KUSTOMIZATION_KIND, obj.metadata.namespace, obj.metadata.name)
        targets = [
            {"apiVersion": av, "kind": k, "metadata": {"name": n, "namespace": ns}}
            for av, k, ns, n in refs
            # A Kustomization waiting for itself would never finish.
            if not (av.startswith(GROUP + "/") and (k, ns, n) == me)
        ]
        if not targets:
            conditions.delete(obj, HEALTHY)
            return
        was_healthy = conditions.is_true(obj, HEALTHY)
        timeout = obj.spec.timeout_seconds()
        message = (
            f"Running health checks for revision {run.revision} with a timeout of "
            f"{format_duration(timeout)}"
        )
        conditions.mark_reconciling(obj, PROGRESSING, "%s", message)
        conditions.mark_unknown(obj, HEALTHY, PROGRESSING, "%s", message)
        await self._patch_status(run)
        started = time.monotonic()
        try:
            await manager.wait(
                targets,
                within=timeout,
                interval=self.settings.health_interval,
                readers={gk: ev.read for gk, ev in run.health_readers.items()},
            )
        except TimeoutError as e:
            conditions.mark_false(obj, HEALTHY, HEALTH_CHECK_FAILED, "%s", str(e))
            self._record(run, checksum, HEALTH_CHECK_FAILED)
            message = kstatus.health_check_failed_message(time.monotonic() - started, str(e))
            raise self._fail(run, HEALTH_CHECK_FAILED, message) from None
        passed = kstatus.health_check_passed_message(time.monotonic() - started)
        if not was_healthy or (new_revision and drifted):
            self._event(run, "info", passed)
        conditions.mark_true(obj, HEALTHY, SUCCEEDED, "%s", passed)
        await self._patch_status(run)

    # -- deletion ------------------------------------------------------------------------

    def _deletes_on_removal(self, obj: Kustomization) -> bool:
        policy = obj.spec.effective_deletion_policy()
        if policy == DELETION_POLICY_MIRROR_PRUNE:
            return obj.spec.prune
        return policy in (DELETION_POLICY_DELETE, DELETION_POLICY_WAIT_FOR_TERMINATION)

    async def _finalize(self, obj: Kustomization) -> Result:
        meta = obj.metadata
        run = _Run(obj, obj.status.to_dict(), revision=obj.status.last_applied_revision)
        entries = obj.status.inventory.entries if obj.status.inventory else []
        if entries and not obj.spec.suspend and self._deletes_on_removal(obj):
            try:
                client = await self._client_for(obj)
                can_impersonate = await self._can_impersonate(obj)
            except RemoteConfigError as e:
                # As Flux: the finalizer stays until the remote cluster can be reached.
                self._event(run, "error", f"failed to build kube client: {e}")
                return Result.failure(str(e))
            stale = inventory.refs(entries)
            if not can_impersonate:
                listing = "\n".join(r.subject for r in stale)
                self._event(run, "error", f"unable to prune objects: \n{listing}")
            else:
                manager = self._manager(client)
                pruned, errors = await manager.delete_all(
                    [r.as_object() for r in stale],
                    inclusions=owner_labels(obj),
                    exclusions=_PRUNE_EXCLUSIONS,
                )
                if errors:
                    self._event(run, "error", "pruning for deleted resource failed")
                    return Result.failure("delete failed, errors: " + ";".join(errors))
                if len(pruned):
                    self._event(run, "info", "\n".join(pruned.lines()))
                if obj.spec.deletion_policy == DELETION_POLICY_WAIT_FOR_TERMINATION:
                    deleted = {e.subject for e in pruned if e.action == Action.DELETED}
                    gone = [r.as_object() for r in stale if r.subject in deleted]
                    await self._wait_terminated(run, manager, gone)
        await self._remote.release(_owner(obj))
        await remove_finalizer(
            self.kube,
            object_path(meta.namespace, meta.name),
            meta.finalizers,
            KUSTOMIZATION_FINALIZER,
        )
        return Result.success(None)

    async def _wait_terminated(
        self, run: _Run, manager: ResourceManager, objects: list[dict[str, Any]]
    ) -> None:
        timeout = run.obj.spec.timeout_seconds()

        async def all_gone() -> bool:
            results = await asyncio.gather(*(manager.status_of(o) for o in objects))
            return all(r.status == kstatus.Status.NOT_FOUND for r in results)

        try:
            await poll_until(all_gone, timeout, every=2.0)
        except TimeoutError:
            names = ", ".join(describe(o) for o in objects)
            self._event(
                run, "error", f"failed to wait for objects to be deleted: timeout for [{names}]"
            )

    async def _can_impersonate(self, obj: Kustomization) -> bool:
        """Whether the ServiceAccount to act as still exists (Flux skips pruning if not), in
        the cluster where it is impersonated: the remote one with spec.kubeConfig."""
        sa = self._service_account(obj)
        if not sa:
            return True
        cluster = await self._cluster_for(obj)
        try:
            await cluster.get(f"/api/v1/namespaces/{obj.metadata.namespace}/serviceaccounts/{sa}")
        except ApiError as e:
            if e.status == 404:
                return False
            raise
        return True


def _owner(obj: Kustomization) -> str:
    return f"{obj.metadata.namespace}/{obj.metadata.name}"


def _is_ready(obj: Kustomization) -> bool:
    """Flux's conditions.IsReady: Ready=True and not Stalled (Reconciling does not count)."""
    return conditions.is_true(obj, READY) and not conditions.is_stalled(obj)


def _has_revision(source: Mapping[str, Any], revision: str) -> bool:
    """Flux's Artifact.HasRevision."""
    return bool(revision) and _artifact_revision(source) == revision


def _origin_revision(source: Mapping[str, Any]) -> str:
    artifact = (source.get("status") or {}).get("artifact") or {}
    metadata = artifact.get("metadata") or {}
    return str(metadata.get("org.opencontainers.image.revision", ""))


def _artifact_revision(obj: Mapping[str, Any]) -> str:
    return str(((obj.get("status") or {}).get("artifact") or {}).get("revision", ""))


def source_watch(
    kind: str,
    list_kustomizations: Callable[[], list[dict[str, Any]]],
    enqueue: Callable[[str, str], None],
) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    """An update handler for a source informer: a new artifact revision wakes every
    Kustomization that points at that source at once, instead of at its next interval
    (Flux's source watch). Kustomizations that already attempted the revision stay asleep."""

    def on_update(old: dict[str, Any], new: dict[str, Any]) -> None:
        revision = _artifact_revision(new)
        if not revision or revision == _artifact_revision(old):
            return
        meta = new.get("metadata") or {}
        name, namespace = meta.get("name"), meta.get("namespace")
        for ks in list_kustomizations():
            ks_meta = ks.get("metadata") or {}
            ref = (ks.get("spec") or {}).get("sourceRef") or {}
            if (
                ref.get("kind") == kind
                and ref.get("name") == name
                and (ref.get("namespace") or ks_meta.get("namespace")) == namespace
                and (ks.get("status") or {}).get("lastAttemptedRevision") != revision
            ):
                enqueue(str(ks_meta.get("namespace", "")), str(ks_meta.get("name", "")))

    return on_update
