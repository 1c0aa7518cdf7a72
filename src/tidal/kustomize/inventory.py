"""status.inventory: which objects a Kustomization applied, in Flux's id format.

An id is `<namespace>_<name>_<group>_<kind>` (cli-utils ObjMetadata); RBAC names may contain
`:` (system:metrics-server), which cli-utils encodes as `__` so the id stays a valid label-ish
token. Parsing reads namespace up to the first `_`, kind after the last, group after the new
last, and the name is the rest, which is why names with `_` still round-trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tidal.api.kustomize import ResourceRef
from tidal.ssa.changeset import ChangeSet
from tidal.ssa.objects import subject

_RBAC_GROUP = "rbac.authorization.k8s.io"
_RBAC_KINDS = frozenset({"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"})


class InventoryError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ObjRef:
    namespace: str
    name: str
    group: str
    kind: str
    version: str = ""

    @property
    def id(self) -> str:
        name = self.name
        if self.group == _RBAC_GROUP and self.kind in _RBAC_KINDS:
            name = name.replace(":", "__")
        return f"{self.namespace}_{name}_{self.group}_{self.kind}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def subject(self) -> str:
        return subject(self.kind, self.namespace, self.name)

    def as_object(self) -> dict[str, Any]:
        """A stub of the object, enough to find and delete it."""
        meta: dict[str, str] = {"name": self.name}
        if self.namespace:
            meta["namespace"] = self.namespace
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": meta}


def parse_id(id_: str, version: str = "") -> ObjRef:
    namespace, sep, rest = id_.partition("_")
    rest, sep2, kind = rest.rpartition("_")
    name, sep3, group = rest.rpartition("_")
    if not (sep and sep2 and sep3) or not kind or not name:
        raise InventoryError(f"invalid inventory id {id_!r}")
    if group == _RBAC_GROUP and kind in _RBAC_KINDS:
        name = name.replace("__", ":")
    return ObjRef(namespace, name, group, kind, version)


def from_change_set(changes: ChangeSet) -> list[ResourceRef]:
    """Inventory entries for every object of the change set, in apply order."""
    return [
        ResourceRef(id=ObjRef(e.namespace, e.name, e.group, e.kind).id, version=e.version)
        for e in changes
    ]


def refs(entries: Iterable[ResourceRef]) -> list[ObjRef]:
    return [parse_id(e.id, e.version) for e in entries]


def stale(old: Sequence[ResourceRef], new: Sequence[ResourceRef]) -> list[ObjRef]:
    """Objects in the old inventory and not in the new one (compared by id, so a version
    change of the same object is not stale)."""
    keep = {e.id for e in new}
    return [parse_id(e.id, e.version) for e in old if e.id not in keep]
