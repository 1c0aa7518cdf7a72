"""Event-driven drift correction: watch what Kustomizations applied and wake them on a change.

Flux notices drift only at a Kustomization's next spec.interval. Here every group/version/kind
named in some Kustomization's status.inventory gets one cluster-wide, metadata-only watch
(PartialObjectMetadata, selected by the owner label), started when the kind first appears in an
inventory and stopped when none references it any more. Each watch is an :class:`Informer`, so
it resumes from its resourceVersion and relists on 410.

Which events wake the owning Kustomization is decided from metadata alone (:func:`drift_of`):

- DELETED: always (the object is gone; applying recreates it).
- MODIFIED with a new uid (deleted and recreated while the watch was away): always.
- MODIFIED otherwise: only when the set of fields our field manager owns changed, which is what
  a change to one of our fields does to managedFields (an Update or a forced Apply moves the
  field to its writer; removing it drops it from our set), and only when our own applies do
  not explain it. A write whose managedFields entry does not gain fields or a new time is not
  its writer's; a status-subresource writer never counts. So our applies, status updates by
  other controllers (Deployment, kwok pods), a label or annotation another controller adds
  (deployment.kubernetes.io/revision) and our own managedFields clean-up wake nothing: an apply
  would not change any of them.

Wake-ups are coalesced per Kustomization (``debounce`` seconds after the first event) and skip
Kustomizations that are suspended, being deleted, or target another cluster (spec.kubeConfig:
this process does not watch remote clusters), and objects Flux does not apply (ssa policy
IfNotPresent or Ignore, reconcile disabled).

Known gap: a kind's watch starts when the kind first shows in an inventory, i.e. when the
reconcile that applied it writes its status, and sees changes once its first LIST is done
(tidal_drift_watch_objects{kind} appears); a change made before that, as during the health
checks of that first reconcile, waits for spec.interval as in Flux. Kinds already in
inventories are watched as soon as the Kustomizations are listed at start-up.

Known cost: a prune deletes objects still listed in the inventory (the status is written at the
end of the reconcile), so a reconcile that prunes is followed by one more, which finds nothing
to do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Literal, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Metric
from prometheus_client.core import GaugeMetricFamily

from tidal.api.kustomize import (
    DISABLED,
    GROUP,
    NAME_LABEL,
    NAMESPACE_LABEL,
    RECONCILE_ANNOTATION,
    SSA_ANNOTATION,
    SSA_IF_NOT_PRESENT,
    SSA_IGNORE,
)
from tidal.kube.client import ApiError, Kube
from tidal.kube.discovery import Discovery, NoMatchError
from tidal.kustomize.inventory import InventoryError, ObjRef, parse_id
from tidal.runtime.informer import DEFAULT_WATCH_TIMEOUT, Informer, Key, Obj, compact
from tidal.ssa.objects import any_in_metadata

log = logging.getLogger(__name__)

FIELD_MANAGER: Final = "kustomize-controller"
DEBOUNCE_SECONDS: Final = 0.5
# A kind that discovery cannot resolve (its CRD is on its way, or gone) is tried again this late.
RETRY_SECONDS: Final = 10.0

# Objects Flux leaves alone once they exist: changing or deleting them wakes nothing.
EXEMPT: Final = (
    {SSA_ANNOTATION: SSA_IF_NOT_PRESENT},
    {SSA_ANNOTATION: SSA_IGNORE},
    {RECONCILE_ANNOTATION: DISABLED},
)

Reason = Literal["deleted", "recreated", "modified"]
Path = tuple[str, ...]


class Kind(NamedTuple):
    group: str
    version: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


# -- the decision: pure functions of metadata ---------------------------------------------------


def _meta(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (obj or {}).get("metadata") or {}


def _paths(fields: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    """Every node of a fieldsV1 tree as a path, so field sets compare as sets."""
    out: set[Path] = set()
    for key, child in fields.items():
        path = (*prefix, key)
        out.add(path)
        if isinstance(child, Mapping):
            out |= _paths(child, path)
    return out


def _entries(obj: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    return [e for e in _meta(obj).get("managedFields") or () if isinstance(e, Mapping)]


def _entry_key(entry: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return (
        str(entry.get("manager") or ""),
        str(entry.get("operation") or ""),
        str(entry.get("subresource") or ""),
        str(entry.get("apiVersion") or ""),
    )


def owned_fields(obj: Mapping[str, Any] | None, manager: str) -> set[Path]:
    """The fields `manager` owns in the main resource (any operation, any apiVersion)."""
    owned: set[Path] = set()
    for e in _entries(obj):
        if e.get("manager") == manager and not e.get("subresource"):
            owned |= _paths(e.get("fieldsV1") or {})
    return owned


def _wrote(prev: Mapping[str, Any] | None, entry: Mapping[str, Any]) -> bool:
    if prev is None or prev.get("time") != entry.get("time"):
        return True
    before, now = prev.get("fieldsV1") or {}, entry.get("fieldsV1") or {}
    # Same second: only fields gained show a write (losing fields is someone else's write).
    return before != now and not _paths(now) <= _paths(before)


def writers(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> set[str]:
    """Managers whose managedFields entry shows they wrote the main resource between `old` and
    `new`: a new entry, a new timestamp, or fields it did not own before. An entry that only
    lost fields was written by someone else (who took them over)."""
    before = {_entry_key(e): e for e in _entries(old)}
    found: set[str] = set()
    for e in _entries(new):
        key = _entry_key(e)
        if key[2]:  # a subresource: status, or scale (which also shows in our fields)
            if key[2] != "status":
                found.add(key[0])
            continue
        if _wrote(before.get(key), e):
            found.add(key[0])
    return found


def drift_of(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    manager: str = FIELD_MANAGER,
) -> Reason | None:
    """Why the change from `old` to `new` (None: deleted; `old` None: first seen) calls for a
    re-apply, or None. See the module docstring for the rules."""
    if new is None:
        return "deleted" if old is not None else None
    if old is None:
        return None  # first sight (the initial LIST): nothing to compare with
    if _meta(old).get("uid") != _meta(new).get("uid"):
        return "recreated"
    ours_before, ours_now = owned_fields(old, manager), owned_fields(new, manager)
    if ours_before == ours_now:
        return None
    who = writers(old, new)
    if who - {manager}:
        return "modified"
    if manager in who:
        return None  # our own apply
    # Nobody took the fields: a writer that only removed some of ours leaves no entry. Fields
    # we gained with no writer are our managedFields clean-up taking over kubectl's.
    return None if ours_before <= ours_now else "modified"


def exempt(obj: Mapping[str, Any] | None) -> bool:
    """Objects Flux does not re-apply: ssa IfNotPresent or Ignore, reconcile disabled."""
    return any(any_in_metadata(obj, selector) for selector in EXEMPT)


def owner_key(obj: Mapping[str, Any] | None) -> Key | None:
    labels = _meta(obj).get("labels") or {}
    name, namespace = labels.get(NAME_LABEL), labels.get(NAMESPACE_LABEL)
    if not name or not namespace:
        return None
    return str(namespace), str(name)


def slim(obj: Obj) -> Obj:
    """Informer transform: only the metadata the decision reads, keys shared across objects."""
    meta = _meta(obj)
    keep: dict[str, Any] = {
        k: meta[k]
        for k in ("name", "namespace", "uid", "resourceVersion", "deletionTimestamp")
        if k in meta
    }
    for part in ("labels", "annotations"):
        values = {k: v for k, v in (meta.get(part) or {}).items() if k.startswith(GROUP)}
        if values:
            keep[part] = values
    # A subresource entry's fields are never compared (status writers never count), and a
    # Deployment's status entry is the biggest of all.
    keep["managedFields"] = [
        {
            k: e[k]
            for k in ("manager", "operation", "subresource", "apiVersion", "time", "fieldsV1")
            if k in e and not (k == "fieldsV1" and e.get("subresource"))
        }
        for e in _entries(obj)
    ]
    return compact({"metadata": keep})


# -- which Kustomizations own what ----------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    """What the drift watch needs of one Kustomization that may be woken."""

    ids: frozenset[str] = frozenset()
    kinds: frozenset[Kind] = frozenset()


def owner_of(ks: Mapping[str, Any]) -> Owner | None:
    """None for a Kustomization that is not woken: suspended, being deleted, or with
    spec.kubeConfig, which applies to a remote cluster whose objects this process does not
    watch (out of scope)."""
    spec = ks.get("spec") or {}
    if spec.get("suspend") or spec.get("kubeConfig") or _meta(ks).get("deletionTimestamp"):
        return None
    inventory = (ks.get("status") or {}).get("inventory") or {}
    refs: list[ObjRef] = []
    for entry in inventory.get("entries") or ():
        try:
            ref = parse_id(str(entry.get("id", "")), str(entry.get("v", "")))
        except InventoryError:
            continue
        if ref.version:
            refs.append(ref)
    return Owner(
        ids=frozenset(r.id for r in refs),
        kinds=frozenset(Kind(r.group, r.version, r.kind) for r in refs),
    )


# -- the watch ------------------------------------------------------------------------------------


class _WatchedObjects:
    """tidal_drift_watch_objects{kind}: objects cached per watched kind, present once the
    kind's first LIST is done (from then on, a change is noticed)."""

    def __init__(self, watches: Callable[[], dict[Kind, Informer]]) -> None:
        self._watches = watches

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "tidal_drift_watch_objects",
            "Objects watched for drift per kind, once the kind's first LIST is done.",
            labels=["kind"],
        )
        for kind, informer in self._watches().items():
            if informer.has_synced:
                family.add_metric([f"{kind.api_version}/{kind.kind}"], len(informer))
        yield family


@dataclass
class _Pending:
    timer: asyncio.TimerHandle
    reason: Reason
    subject: str


class DriftWatch:
    """Owns the per-kind watches; fed by the Kustomization informer's handlers (registered
    here, so construct it before the informer starts). ``start()`` on a running loop,
    ``await close()`` at shutdown. Wakes Kustomizations through ``enqueue(namespace, name)``."""

    def __init__(
        self,
        kube: Kube,
        ks_informer: Informer,
        enqueue: Callable[[str, str], None],
        *,
        registry: CollectorRegistry | None = None,
        manager: str = FIELD_MANAGER,
        debounce: float = DEBOUNCE_SECONDS,
        watch_timeout: float = DEFAULT_WATCH_TIMEOUT,
        discovery: Discovery | None = None,
    ) -> None:
        self.enqueue = enqueue
        self.manager = manager
        self.debounce = debounce
        self.watch_timeout = watch_timeout
        self.owners: dict[Key, Owner] = {}  # only the Kustomizations that may be woken
        self.watches: dict[Kind, Informer] = {}
        self._pending: dict[Key, _Pending] = {}
        self._unresolved: set[Kind] = set()  # kinds discovery did not know (logged once)
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._wakeups = Counter(
            "tidal_drift_wakeups",
            "Kustomizations woken because an object they applied changed or was deleted.",
            ["reason"],
            registry=registry,
        )
        if registry is not None:
            registry.register(_WatchedObjects(lambda: self.watches))
        # Its own session: the watches read metadata only (see Kube's metadata_only), so a
        # Deployment or a ConfigMap costs the same few hundred bytes on the wire and in the cache.
        self._client = Kube(kube.config, metadata_only=True)
        # the reconciler's, when given: the same server's kinds are then looked up once
        self._discovery = discovery or Discovery(kube)
        ks_informer.add_handler(
            on_add=self.kustomization_changed,
            on_update=lambda _old, new: self.kustomization_changed(new),
            on_delete=self.kustomization_deleted,
        )

    # -- Kustomization index ---------------------------------------------------------------------

    def _set_owner(self, key: Key, owner: Owner | None) -> None:
        before = self.owners.pop(key, None)
        if owner is not None:
            self.owners[key] = owner
        if (before or Owner()).kinds != (owner or Owner()).kinds:
            self._dirty.set()

    def kustomization_changed(self, ks: Obj) -> None:
        meta = _meta(ks)
        self._set_owner((str(meta.get("namespace", "")), str(meta.get("name", ""))), owner_of(ks))

    def kustomization_deleted(self, ks: Obj) -> None:
        meta = _meta(ks)
        self._set_owner((str(meta.get("namespace", "")), str(meta.get("name", ""))), None)

    def wanted(self) -> set[Kind]:
        # Derived at each sync (rare, coalesced by _dirty) rather than reference-counted on
        # every Kustomization update.
        return set[Kind]().union(*(owner.kinds for owner in self.owners.values()))

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Watch what the inventories list (again, after `pause`)."""
        self._task = asyncio.create_task(self._sync_loop(), name="drift watch")
        self._dirty.set()

    async def pause(self) -> None:
        """Stop watching (this replica stopped reconciling); `start` resumes."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for pending in self._pending.values():
            pending.timer.cancel()
        self._pending.clear()
        await self._stop_watches(list(self.watches))

    async def close(self) -> None:
        await self.pause()
        await self._client.close()

    async def _sync_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._sync()
            except Exception:
                log.exception("drift watch: cannot update the watched kinds")
                asyncio.get_running_loop().call_later(RETRY_SECONDS, self._dirty.set)

    async def _sync(self) -> None:
        wanted = self.wanted()
        await self._stop_watches([k for k in self.watches if k not in wanted])
        unresolved = False
        for kind in sorted(wanted - self.watches.keys()):
            try:
                resource = await self._discovery.resource(kind.api_version, kind.kind)
            except (NoMatchError, ApiError) as e:
                if kind not in self._unresolved:
                    log.info("drift watch: not watching %s yet: %s", kind.kind, e)
                    self._unresolved.add(kind)
                unresolved = True
                continue
            self._unresolved.discard(kind)
            informer = Informer(
                self._client,
                resource.collection(),
                label_selector=NAME_LABEL,
                transform=slim,
                watch_timeout=self.watch_timeout,
                name=f"drift {kind.api_version} {kind.kind}",
            )
            informer.add_handler(
                on_update=partial(self.object_changed, kind),
                on_delete=partial(self.object_changed, kind, new=None),
            )
            informer.start()
            self.watches[kind] = informer
            log.debug("drift watch: watching %s %s", kind.api_version, kind.kind)
        if unresolved:
            asyncio.get_running_loop().call_later(RETRY_SECONDS, self._dirty.set)

    async def _stop_watches(self, kinds: Iterable[Kind]) -> None:
        informers = [self.watches.pop(k) for k in kinds]
        await asyncio.gather(*(i.stop() for i in informers))

    # -- events ----------------------------------------------------------------------------------

    def object_changed(self, kind: Kind, old: Obj, new: Obj | None) -> None:
        reason = drift_of(old, new, self.manager)
        if reason is None:
            return
        last = new if new is not None else old
        key = owner_key(last)
        if key is None or exempt(last):
            return
        owner = self.owners.get(key)
        meta = _meta(last)
        ref = ObjRef(str(meta.get("namespace") or ""), str(meta.get("name")), kind.group, kind.kind)
        if owner is None or ref.id not in owner.ids:
            return
        if key not in self._pending:
            timer = asyncio.get_running_loop().call_later(self.debounce, self._wake, key)
            self._pending[key] = _Pending(timer, reason, ref.subject)

    def _wake(self, key: Key) -> None:
        pending = self._pending.pop(key)
        if key not in self.owners:  # suspended, deleted or made remote meanwhile
            return
        self._wakeups.labels(pending.reason).inc()
        log.info(
            "drift detected (%s %s), reconciling",
            pending.subject,
            pending.reason,
            extra={"kustomization": f"{key[0]}/{key[1]}"},
        )
        self.enqueue(*key)
