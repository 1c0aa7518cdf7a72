"""Which REST resource serves a kind: the API server's discovery, cached per group-version.

An applier meets kinds it has never seen, and some of them appear mid-apply (a CRD in the same
change set), so a miss re-reads that one group-version before giving up; a hit costs nothing.
Only the group-versions asked about are fetched (one small GET each), never the whole
aggregated discovery document, which on a cluster with many CRDs is megabytes.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from tidal.kube.client import ApiError, Kube

# A group-version that answered 404 is asked again after this long: a CRD may be on its way.
_MISS_TTL: Final = 2.0


@dataclass(frozen=True, slots=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def collection(self, namespace: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"

    def path(self, name: str, namespace: str = "") -> str:
        return f"{self.collection(namespace)}/{name}"


class NoMatchError(LookupError):
    """The API server serves no such kind (its CRD is missing or not yet established)."""

    def __init__(self, api_version: str, kind: str) -> None:
        self.api_version = api_version
        self.kind = kind
        # The wording of Kubernetes' RESTMapper, which Flux users know from their logs.
        super().__init__(f'no matches for kind "{kind}" in version "{api_version}"')


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


class Discovery:
    """Kind → Resource for one API server; safe to share between concurrent reconciles."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._kinds: dict[str, dict[str, Resource]] = {}
        self._missing: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, gv: str) -> asyncio.Lock:
        return self._locks.setdefault(gv, asyncio.Lock())

    async def _load(self, gv: str) -> dict[str, Resource]:
        group, version = split_api_version(gv)
        path = f"/apis/{gv}" if group else f"/api/{version}"
        try:
            doc = await self._kube.get(path)
        except ApiError as e:
            if e.status == 404:
                self._missing[gv] = time.monotonic()
                self._kinds.pop(gv, None)
                return {}
            raise
        kinds: dict[str, Resource] = {}
        for r in doc.get("resources") or []:
            name = str(r.get("name", ""))
            if "/" in name:  # subresources such as deployments/scale
                continue
            kind = str(r.get("kind", ""))
            kinds.setdefault(
                kind, Resource(group, version, kind, name, bool(r.get("namespaced", False)))
            )
        self._kinds[gv] = kinds
        self._missing.pop(gv, None)
        return kinds

    async def resource(self, api_version: str, kind: str) -> Resource:
        """The resource for apiVersion+kind; NoMatchError when the server has none, after
        re-reading a cached group-version once in case the kind is new."""
        cached = self._kinds.get(api_version)
        if cached is not None and kind in cached:
            return cached[kind]
        async with self._lock(api_version):
            cached = self._kinds.get(api_version)
            if cached is not None and kind in cached:
                return cached[kind]
            missed = self._missing.get(api_version)
            if missed is None or time.monotonic() - missed > _MISS_TTL:
                cached = await self._load(api_version)
        if cached is None or kind not in cached:
            raise NoMatchError(api_version, kind)
        return cached[kind]

    def cached(self, api_version: str, kind: str) -> Resource | None:
        """The resource if this group-version is loaded and serves `kind`; never a request."""
        return self._kinds.get(api_version, {}).get(kind)

    async def for_object(self, obj: Mapping[str, Any]) -> Resource:
        return await self.resource(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))

    def forget(self, api_version: str) -> None:
        """Drop a group-version, e.g. after its CRD was applied or deleted."""
        self._kinds.pop(api_version, None)
        self._missing.pop(api_version, None)


def object_path(resource: Resource, obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return resource.path(str(meta.get("name", "")), str(meta.get("namespace", "") or ""))


_shared: weakref.WeakKeyDictionary[Kube, Discovery] = weakref.WeakKeyDictionary()


def shared_discovery(kube: Kube) -> Discovery:
    """One Discovery per client for the whole process, so that repeated work against one API
    server (each action of each Helm release) does not read the same group-versions again."""
    found = _shared.get(kube)
    if found is None:
        found = _shared[kube] = Discovery(kube)
    return found
