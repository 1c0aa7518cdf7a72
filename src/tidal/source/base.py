"""What the HelmRepository, HelmChart and OCIRepository reconcilers share: the HTTP session
they fetch with, the object's status write, and source-controller's opening of a reconcile
(deletion with the finalizer and artifact clean-up, the finalizer added, suspend)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

import aiohttp

from tidal.api.base import ObjectMeta
from tidal.api.source import SOURCE_FINALIZER
from tidal.kube.client import Kube
from tidal.kube.events import EventRecorder
from tidal.runtime.finalizers import add_finalizer, remove_finalizer
from tidal.runtime.status import write_status
from tidal.runtime.summarize import Outcome
from tidal.runtime.workers import Result
from tidal.source.storage import Storage
from tidal.source.stored_artifact import remove_artifacts

API_PATH = "/apis/source.toolkit.fluxcd.io/v1"


class Stop(Exception):
    """Ends the sub-reconcilers early with an outcome."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(getattr(outcome, "message", ""))
        self.outcome = outcome


class _Source(Protocol):
    @property
    def metadata(self) -> ObjectMeta: ...

    @property
    def status(self) -> Any: ...


class SourceReconciler:
    """Base of a source reconciler; `plural` names its REST resource and `kind` its storage
    directory."""

    plural: ClassVar[str]
    kind: ClassVar[str]

    def __init__(self, kube: Kube, storage: Storage, events: EventRecorder) -> None:
        self.kube = kube
        self.storage = storage
        self.events = events
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def object_path(cls, namespace: str, name: str) -> str:
        return f"{API_PATH}/namespaces/{namespace}/{cls.plural}/{name}"

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No cookies: one object's session must not leak into another's requests.
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _write(self, obj: _Source, before: Mapping[str, Any]) -> dict[str, Any]:
        meta = obj.metadata
        after: dict[str, Any] = obj.status.to_dict()
        await write_status(self.kube, self.object_path(meta.namespace, meta.name), before, after)
        return after

    async def _delete(self, obj: _Source) -> Result:
        meta = obj.metadata
        error = await remove_artifacts(self.storage, self.kind, meta.namespace, meta.name)
        if error:
            return Result.failure(error)
        await remove_finalizer(
            self.kube,
            self.object_path(meta.namespace, meta.name),
            meta.finalizers,
            SOURCE_FINALIZER,
        )
        return Result.success()

    async def _begin(self, obj: _Source, suspended: bool) -> Result | None:
        """Deletion, the finalizer, suspend: a Result ends the reconcile there."""
        meta = obj.metadata
        if meta.deletion_timestamp:
            return await self._delete(obj)
        await add_finalizer(
            self.kube,
            self.object_path(meta.namespace, meta.name),
            meta.finalizers,
            SOURCE_FINALIZER,
        )
        return Result.success() if suspended else None
