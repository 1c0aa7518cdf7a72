"""The storage step every source reconciler starts with, and the clean-up of a deleted source
(source-controller's reconcileStorage and reconcileDelete, shared by HelmRepository, HelmChart
and OCIRepository)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from tidal.api.meta import Artifact
from tidal.kube.events import EventRecorder
from tidal.source.storage import Storage, StorageError

log = logging.getLogger(__name__)

ARTIFACT_VERIFICATION_FAILED = "ArtifactVerificationFailed"


class _Status(Protocol):
    artifact: Artifact | None
    url: str


class _Source(Protocol):
    @property
    def status(self) -> Any: ...

    def to_dict(self) -> dict[str, Any]: ...


def _remove_file(storage: Storage, artifact: Artifact) -> None:
    try:
        storage.local_path(artifact.path).unlink(missing_ok=True)
    except (OSError, StorageError) as e:
        log.warning("removing %s failed: %s", artifact.path, e)


async def check_stored_artifact(storage: Storage, events: EventRecorder, obj: _Source) -> bool:
    """Garbage-collect old artifacts; forget the recorded artifact (and status.url) when its
    file is gone or no longer matches its digest (a Warning event says so). Otherwise refresh
    its URL for the current storage address. Whether the recorded artifact went missing."""
    status: _Status = obj.status
    artifact = status.artifact
    if artifact is None:
        return False
    try:
        await asyncio.to_thread(storage.collect_garbage, artifact.path)
    except (OSError, StorageError) as e:
        log.warning("garbage collection of %s failed: %s", artifact.path, e)
    missing = not await asyncio.to_thread(storage.exists, artifact)
    if not missing:
        try:
            await asyncio.to_thread(storage.verify, artifact)
        except (OSError, StorageError) as e:
            events.warning(
                obj.to_dict(),
                ARTIFACT_VERIFICATION_FAILED,
                f"failed to verify integrity of artifact: {e}",
            )
            await asyncio.to_thread(_remove_file, storage, artifact)
            missing = True
    if missing:
        status.artifact = None
        status.url = ""
        return True
    status.artifact = storage.with_current_url(artifact)
    if status.url:
        status.url = storage.set_hostname(status.url)
    return False


async def remove_artifacts(storage: Storage, kind: str, namespace: str, name: str) -> str:
    """Every stored artifact of a deleted source; "" when done, else Flux's error text."""
    try:
        await asyncio.to_thread(storage.remove_all, kind, namespace, name)
    except (OSError, StorageError) as e:
        return f"garbage collection for deleted resource failed: {e}"
    return ""
