"""Apply a set of objects with server-side apply, in Flux's stages, and delete stale ones.

Flux's order of work per stage is: GET, dry-run, decide, then apply what changed. tidal keeps
that and adds one guarantee Flux does not give: every object whose dry-run can run before
anything is written (all of them, except those whose CRD or Namespace is new in this very
set) is dry-run first, and if any of them fails nothing at all is written, not even the
stage-one objects or a metadata clean-up. A bad commit leaves the cluster as it was.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from tidal.kube import kstatus
from tidal.kube.client import ApiError, Kube
from tidal.kube.discovery import Discovery, NoMatchError, Resource, object_path
from tidal.runtime.poll import poll_until
from tidal.ssa import objects as o
from tidal.ssa.changeset import Action, ChangeSet, Entry
from tidal.ssa.drift import has_drifted
from tidal.ssa.ignore import drifted_paths, reshape
from tidal.ssa.managed_fields import FieldManager, cleanup_patch
from tidal.ssa.normalize import normalize

log = logging.getLogger(__name__)

T = TypeVar("T")

# A status reader for one (group, kind): the object's identity and its live state (None when
# it does not exist) to its status, e.g. tidal.kube.cel's health check expressions.
StatusReader = Callable[[kstatus.ObjRef, Mapping[str, Any] | None], kstatus.ResourceStatus]

_IMMUTABLE_MARKERS: Final = (
    "field is immutable",
    "is immutable",
    "cannot change",
    "immutable field",
)


class ApplyError(Exception):
    """One or more objects cannot be applied; `errors` lists each with its subject."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


@dataclass(slots=True)
class ApplyOptions:
    force: bool = False
    # label/annotation key → value (case-insensitive) selecting objects never applied...
    exclusions: Mapping[str, str] = field(default_factory=dict)
    # ...applied only when absent from the cluster...
    if_not_present: Mapping[str, str] = field(default_factory=dict)
    # ...recreated on immutable-field errors even without `force`.
    force_selector: Mapping[str, str] = field(default_factory=dict)
    cleanup_annotations: Sequence[str] = ()
    cleanup_labels: Sequence[str] = ()
    cleanup_managers: Sequence[FieldManager] = ()
    # objects selected here keep other managers' fields and metadata (ssa: Merge)
    cleanup_exclusions: Mapping[str, str] = field(default_factory=dict)
    # JSON pointers to leave out of the drift comparison, per object as the dry-run returns
    # it (spec.ignore); drifted ones are kept as they are live when applying
    drift_ignore: Callable[[Mapping[str, Any]], Sequence[str]] = lambda _obj: ()
    # a label selector matching the objects this applier labelled (Flux's owner labels):
    # they are read with one LIST per kind and namespace instead of one GET each
    owned_selector: str = ""
    wait_timeout: float = 60.0
    # objects after which the next stage starts are polled this often (fast first, then 2 s)
    wait_interval: float = 2.0


@dataclass(slots=True)
class _Plan:
    obj: o.Obj
    resource: Resource | None = None
    live: o.Obj | None = None
    action: Action = Action.UNKNOWN
    cleanup: list[dict[str, Any]] = field(default_factory=list)
    recreate: bool = False
    deferred: bool = False  # its CRD or Namespace is created in this same set
    # what to send instead of `obj` when ignore rules reshape it (see ssa.ignore)
    payload: o.Obj | None = None
    # `live` is already known (read by a LIST) when True; unknown until read otherwise
    listed: bool = False


def dry_run_error(obj: Mapping[str, Any], e: ApiError | NoMatchError | str) -> str:
    if isinstance(e, ApiError):
        reason = f" ({e.reason})" if e.reason else ""
        return f"{o.describe(obj)} dry-run failed{reason}: {e.message}"
    return f"{o.describe(obj)} dry-run failed: {e}"


def is_immutable_error(e: ApiError) -> bool:
    if e.status in (409, 422):
        return True
    text = e.message
    return any(marker in text for marker in _IMMUTABLE_MARKERS)


def entry(obj: Mapping[str, Any], action: Action) -> Entry:
    return Entry(o.group(obj), o.version(obj), o.kind(obj), o.namespace(obj), o.name(obj), action)


def stages(objects: Iterable[o.Obj]) -> list[list[o.Obj]]:
    """Flux's stages: cluster definitions, then classes, then everything else; each sorted."""
    defs, classes, rest = [], [], []
    for obj in objects:
        if o.is_cluster_definition(obj):
            defs.append(obj)
        elif o.is_class(obj):
            classes.append(obj)
        else:
            rest.append(obj)
    return [sorted(s, key=o.sort_key) for s in (defs, classes, rest)]


class ResourceManager:
    """Applies and deletes objects as `owner` (the SSA field manager)."""

    def __init__(
        self, kube: Kube, discovery: Discovery, *, owner: str, concurrency: int = 8
    ) -> None:
        self.kube = kube
        self.discovery = discovery
        self.owner = owner
        self._limit = asyncio.Semaphore(max(1, concurrency))

    async def _bounded(self, work: Awaitable[T]) -> T:
        async with self._limit:
            return await work

    async def _get(self, resource: Resource, obj: Mapping[str, Any]) -> o.Obj | None:
        try:
            return await self.kube.get(object_path(resource, obj))
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def _dry_run(self, resource: Resource, obj: o.Obj) -> o.Obj:
        return await self.kube.apply(
            object_path(resource, obj), obj, field_manager=self.owner, force=True, dry_run=True
        )

    # -- planning ------------------------------------------------------------------------

    def _skip(self, plan: _Plan, opts: ApplyOptions) -> bool:
        if o.any_in_metadata(plan.obj, opts.exclusions) or o.any_in_metadata(
            plan.live, opts.exclusions
        ):
            return True
        return plan.live is not None and o.any_in_metadata(plan.obj, opts.if_not_present)

    async def _plan_one(self, plan: _Plan, opts: ApplyOptions) -> str | None:
        """Decide what applying `plan.obj` would do; an error message when it cannot."""
        obj = plan.obj
        assert plan.resource is not None
        if plan.resource.namespaced and not o.namespace(obj):
            return f"{o.describe(obj)} namespace not specified: a namespaced object needs one"
        # An object the owner LIST did not return is new, or exists without our labels. When
        # its own metadata cannot make it skipped, the dry-run tells which, and only an
        # object that turns out to exist is read: a cold apply reads nothing object by object.
        dry: o.Obj | None = None
        unlisted = bool(opts.owned_selector) and not plan.listed
        if (
            unlisted
            and not self._skip(plan, opts)
            and not o.any_in_metadata(obj, opts.if_not_present)
        ):
            try:
                dry = await self._dry_run(plan.resource, obj)
            except ApiError:
                dry = None  # read the object and dry-run again below, for the full story
            else:
                plan.listed = not o.meta(dry).get("resourceVersion")
        if not plan.listed:
            try:
                plan.live = await self._get(plan.resource, obj)
            except ApiError as e:
                return f"{o.describe(obj)} query failed: {e.message}"
        if self._skip(plan, opts):
            plan.action = Action.SKIPPED
            return None
        try:
            if dry is None:
                dry = await self._dry_run(plan.resource, obj)
        except ApiError as e:
            forced = opts.force or o.any_in_metadata(obj, opts.force_selector)
            forced = forced or o.any_in_metadata(plan.live, opts.force_selector)
            if plan.live is not None and forced and is_immutable_error(e):
                plan.recreate = True
                plan.action = Action.CONFIGURED
                return None
            return dry_run_error(obj, e)
        if plan.live is not None and not (
            o.any_in_metadata(obj, opts.cleanup_exclusions)
            or o.any_in_metadata(plan.live, opts.cleanup_exclusions)
        ):
            plan.cleanup = cleanup_patch(
                plan.live,
                annotations=opts.cleanup_annotations,
                labels=opts.cleanup_labels,
                managers=opts.cleanup_managers,
                owner=self.owner,
            )
        ignored = opts.drift_ignore(dry) if plan.live is not None else ()
        if not o.meta(dry).get("resourceVersion"):
            plan.action = Action.CREATED
        elif plan.cleanup or has_drifted(plan.live, dry, ignored):
            plan.action = Action.CONFIGURED
            assert plan.live is not None
            paths = drifted_paths(plan.live, dry, ignored)
            if paths:
                plan.payload = reshape(obj, plan.live, paths, self.owner)
        else:
            plan.action = Action.UNCHANGED
        return None

    async def _resolve(self, plans: list[_Plan], provided: set[tuple[str, str]]) -> list[str]:
        """Find each object's REST resource; a kind whose CRD is in the set waits for it."""
        errors = []
        for plan in plans:
            try:
                plan.resource = await self.discovery.for_object(plan.obj)
            except NoMatchError as e:
                if (o.group(plan.obj), o.kind(plan.obj)) in provided:
                    plan.deferred = True
                else:
                    errors.append(dry_run_error(plan.obj, e))
        return errors

    async def _list_owned(self, plans: list[_Plan], selector: str) -> None:
        """Read the live objects of `plans` with one LIST per kind and namespace."""
        groups: dict[str, list[_Plan]] = {}
        for plan in plans:
            if plan.resource is not None:
                namespace = o.namespace(plan.obj) if plan.resource.namespaced else ""
                groups.setdefault(plan.resource.collection(namespace), []).append(plan)

        async def read(collection: str, members: list[_Plan]) -> None:
            try:
                listing = await self.kube.get(collection, {"labelSelector": selector})
            except ApiError:
                return  # each object is read on its own instead
            assert members[0].resource is not None
            api_version, kind = members[0].resource.api_version, members[0].resource.kind
            found = {o.name(item): item for item in listing.get("items") or ()}
            for plan in members:
                live = found.get(o.name(plan.obj))
                if live is not None:
                    # list items of built-in kinds come without apiVersion and kind
                    live.setdefault("apiVersion", api_version)
                    live.setdefault("kind", kind)
                    plan.live, plan.listed = live, True

        await asyncio.gather(*(self._bounded(read(c, m)) for c, m in groups.items()))

    async def _plan_all(self, plans: list[_Plan], opts: ApplyOptions) -> list[str]:
        todo = [p for p in plans if not p.deferred]
        if opts.owned_selector:
            await self._list_owned(todo, opts.owned_selector)
        results = await asyncio.gather(*(self._bounded(self._plan_one(p, opts)) for p in todo))
        errors = []
        for plan, error in zip(todo, results, strict=True):
            if error is None:
                continue
            if plan.obj.get("kind") != "Namespace" and _namespace_is_new(plan, plans, error):
                plan.deferred = True
                plan.action = Action.UNKNOWN
                continue
            errors.append(error)
        return errors

    # -- writing -------------------------------------------------------------------------

    async def _recreate(self, plan: _Plan, opts: ApplyOptions) -> None:
        assert plan.resource is not None and plan.live is not None
        path = object_path(plan.resource, plan.obj)
        try:
            await self.kube.request("DELETE", path, body={"propagationPolicy": "Background"})
        except ApiError as e:
            if e.status != 404:
                raise ApplyError(
                    [
                        f"{o.describe(plan.obj)} immutable field detected, failed to delete "
                        f"object: {e.message}"
                    ]
                ) from e

        async def gone() -> bool:
            return await self._get(plan.resource, plan.obj) is None  # type: ignore[arg-type]

        try:
            await poll_until(gone, opts.wait_timeout, opts.wait_interval, first=0.1)
        except TimeoutError as e:
            raise ApplyError(
                [
                    f"{o.describe(plan.obj)} immutable field detected, failed to wait for object "
                    "to be deleted"
                ]
            ) from e
        plan.live = None

    async def _write(self, plan: _Plan, opts: ApplyOptions) -> None:
        assert plan.resource is not None
        obj = plan.obj
        path = object_path(plan.resource, obj)
        try:
            if plan.recreate:
                await self._recreate(plan, opts)
            elif plan.cleanup:
                await self.kube.patch(path, plan.cleanup, patch_type="json")
            payload = obj if plan.recreate or plan.payload is None else plan.payload
            await self.kube.apply(path, payload, field_manager=self.owner, force=True)
        except ApiError as e:
            raise ApplyError([f"{o.describe(obj)} apply failed: {e.message}"]) from e

    async def _write_stage(self, plans: list[_Plan], opts: ApplyOptions) -> None:
        """Write what changed; webhook configurations last, so that an admission webhook
        never starts judging objects of the same set before its backend was applied."""
        writes = [p for p in plans if p.action in (Action.CREATED, Action.CONFIGURED)]
        for batch in (
            [p for p in writes if not o.is_webhook_configuration(p.obj)],
            [p for p in writes if o.is_webhook_configuration(p.obj)],
        ):
            results = await asyncio.gather(
                *(self._bounded(self._write(p, opts)) for p in batch), return_exceptions=True
            )
            errors: list[str] = []
            for r in results:
                if isinstance(r, ApplyError):
                    errors.extend(r.errors)
                elif isinstance(r, BaseException):
                    raise r
            if errors:
                raise ApplyError(errors)

    async def apply_all_staged(self, objs: Sequence[o.Obj], opts: ApplyOptions) -> ChangeSet:
        """Apply `objs`; raises ApplyError (nothing written when the failure could be known
        before writing) or returns the change set in apply order."""
        desired = [normalize(copy.deepcopy(obj)) for obj in objs]
        provided = {
            (str(spec.get("group", "")), str((spec.get("names") or {}).get("kind", "")))
            for obj in desired
            if o.kind(obj) == "CustomResourceDefinition"
            for spec in [obj.get("spec") or {}]
        }
        staged = [[_Plan(obj) for obj in stage] for stage in stages(desired)]
        every = [p for stage in staged for p in stage]
        errors = await self._resolve(every, provided)
        if not errors:
            errors = await self._plan_all(every, opts)
        if errors:
            raise ApplyError(errors)

        changes = ChangeSet()
        for index, stage in enumerate(staged):
            late = [p for p in stage if p.deferred]
            for plan in late:
                # A plan deferred only for its new Namespace has its resource already.
                if plan.resource is None:
                    plan.resource = await self._resolve_new_kind(plan, opts)
            late_errors = await asyncio.gather(
                *(self._bounded(self._plan_one(p, opts)) for p in late)
            )
            if any(late_errors):
                raise ApplyError([e for e in late_errors if e])
            await self._write_stage(stage, opts)
            changes.extend(entry(p.obj, p.action) for p in stage)
            if index < 2 and stage:
                # A CRD or Namespace being deleted (say, a namespace still terminating when
                # its Kustomization is re-created) will not turn Current: fail now, and the
                # retry after it is gone creates it anew, instead of waiting out the timeout.
                await self.wait(
                    [p.obj for p in stage],
                    within=opts.wait_timeout,
                    interval=opts.wait_interval,
                    hopeless=(kstatus.Status.TERMINATING, kstatus.Status.NOT_FOUND),
                )
        return changes

    async def _resolve_new_kind(self, plan: _Plan, opts: ApplyOptions) -> Resource:
        """The resource of a kind whose CRD this set just created. An Established CRD can
        still be missing from discovery for a moment (the aggregator catches up), so look
        again until it shows up or the wait timeout passes."""
        api_version = str(plan.obj.get("apiVersion", ""))
        found: list[Resource] = []

        async def served() -> bool:
            # Once one object of the new kind has found it, the others take it from the
            # cache; until then, forget the group-version (its 404 may still be remembered)
            # and read it again.
            resource = self.discovery.cached(api_version, o.kind(plan.obj))
            if resource is None:
                self.discovery.forget(api_version)
                try:
                    resource = await self.discovery.for_object(plan.obj)
                except NoMatchError:
                    return False
            found.append(resource)
            return True

        try:
            await poll_until(served, opts.wait_timeout, 1.0, first=0.1)
        except TimeoutError:
            raise ApplyError(
                [dry_run_error(plan.obj, NoMatchError(api_version, o.kind(plan.obj)))]
            ) from None
        return found[-1]

    # -- waiting -------------------------------------------------------------------------

    async def _live(self, obj: Mapping[str, Any]) -> o.Obj | None:
        try:
            resource = await self.discovery.for_object(obj)
        except NoMatchError:
            return None
        return await self._get(resource, obj)

    async def status_of(
        self, obj: Mapping[str, Any], readers: Mapping[tuple[str, str], StatusReader] | None = None
    ) -> kstatus.ResourceStatus:
        """Flux's status reader chain for one object (NotFound when it is gone); a reader in
        `readers` for the object's (group, kind) comes first, as Flux's custom readers do."""
        ref = kstatus.ObjRef.of(obj)
        try:
            live = await self._live(obj)
        except ApiError as e:
            return kstatus.ResourceStatus(ref, kstatus.Status.UNKNOWN, error=e.message)
        reader = (readers or {}).get((ref.group, ref.kind))
        if reader is not None:
            return reader(ref, live)
        status = kstatus.read_status(ref, live)
        # Pods only matter to a ReplicaSet or StatefulSet still in progress (a failed pod
        # makes it Failed): only then are they listed, not on every poll of a settled one.
        if (
            live is not None
            and status.status is kstatus.Status.IN_PROGRESS
            and (ref.group, ref.kind) in kstatus.POD_OWNERS
        ):
            pods = await self._pods_of(live)
            if pods:
                status = kstatus.read_status(ref, live, pods=pods)
        return status

    async def _pods_of(self, owner: Mapping[str, Any]) -> list[o.Obj]:
        """The pods an apps/v1 ReplicaSet or StatefulSet selects, which Flux reads to turn a
        rollout whose pods failed for good into Failed instead of waiting for the timeout."""
        labels = ((owner.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if not labels:
            return []
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        try:
            listing = await self.kube.get(
                f"/api/v1/namespaces/{o.namespace(owner)}/pods", {"labelSelector": selector}
            )
        except ApiError:
            return []
        return list(listing.get("items") or [])

    async def wait(
        self,
        objs: Sequence[Mapping[str, Any]],
        *,
        within: float,
        interval: float = 2.0,
        fail_fast: bool = True,
        readers: Mapping[tuple[str, str], StatusReader] | None = None,
        hopeless: Sequence[kstatus.Status] = (),
    ) -> None:
        """Until every object is Current, as Flux's WaitForSet; TimeoutError with Flux's
        text ("timeout waiting for: [...]", "failed early due to stalled resources: [...]").
        `readers`: custom status readers per (group, kind), see status_of."""
        check = kstatus.HealthCheck(
            (kstatus.ObjRef.of(x) for x in objs), fail_fast=fail_fast, hopeless=hopeless
        )
        by_ref = {kstatus.ObjRef.of(x): x for x in objs}

        async def settled() -> bool:
            results = await asyncio.gather(
                *(self._bounded(self.status_of(by_ref[ref], readers)) for ref in check.refs)
            )
            done = False
            for rs in results:
                done = check.observe(rs) or done
            return done

        timed_out = False
        try:
            await poll_until(settled, within, interval, first=0.1)
        except TimeoutError:
            timed_out = True
        error = check.error(timed_out=timed_out)
        if error is not None:
            raise TimeoutError(error)

    # -- deleting ------------------------------------------------------------------------

    async def _delete_one(
        self,
        obj: Mapping[str, Any],
        inclusions: Mapping[str, str],
        exclusions: Mapping[str, str],
    ) -> Entry | str:
        try:
            resource = await self.discovery.for_object(obj)
        except NoMatchError:
            # The kind is gone (its CRD was deleted), and with it every object of that kind.
            return entry(obj, Action.DELETED)
        try:
            live = await self._get(resource, obj)
        except ApiError as e:
            return f"{o.describe(obj)} query failed: {e.message}"
        if live is not None:
            labels = o.meta(live).get("labels") or {}
            if any(labels.get(k) != v for k, v in inclusions.items()) or o.any_in_metadata(
                live, exclusions
            ):
                return entry(obj, Action.SKIPPED)
            try:
                await self.kube.request(
                    "DELETE", object_path(resource, obj), body={"propagationPolicy": "Background"}
                )
            except ApiError as e:
                if e.status != 404:
                    return f"{o.describe(obj)} delete failed: {e.message}"
        return entry(obj, Action.DELETED)

    async def delete_all(
        self,
        objs: Sequence[Mapping[str, Any]],
        *,
        inclusions: Mapping[str, str],
        exclusions: Mapping[str, str],
    ) -> tuple[ChangeSet, list[str]]:
        """Delete objects that carry all `inclusions` labels and none of `exclusions`, in
        reverse apply order; returns the change set and per-object errors."""
        ordered = sorted(objs, key=o.sort_key, reverse=True)
        results = await asyncio.gather(
            *(self._bounded(self._delete_one(x, inclusions, exclusions)) for x in ordered)
        )
        changes = ChangeSet([r for r in results if isinstance(r, Entry)])
        errors = [r for r in results if isinstance(r, str)]
        return changes, errors


def _namespace_is_new(plan: _Plan, plans: Sequence[_Plan], error: str) -> bool:
    """A dry-run that failed only because its Namespace is created by this same set."""
    ns = o.namespace(plan.obj)
    return (
        bool(ns)
        and f'namespaces "{ns}" not found' in error
        and any(
            o.kind(p.obj) == "Namespace" and o.group(p.obj) == "" and o.name(p.obj) == ns
            for p in plans
        )
    )


__all__ = [
    "ApplyError",
    "ApplyOptions",
    "ResourceManager",
    "StatusReader",
    "dry_run_error",
    "stages",
]
