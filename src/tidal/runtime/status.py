"""Writing a reconciled object's status: only what changed since the last write.

A merge patch replaces each top-level status field it names, so sending only the fields that
differ gives the same result as sending them all, without resending a large inventory or
history on every progress update.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tidal.kube.client import ApiError, Kube


def status_patch(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch turning status `before` into `after` (fields gone become null)."""
    patch: dict[str, Any] = {k: None for k in before if k not in after}
    patch.update({k: v for k, v in after.items() if before.get(k) != v})
    return patch


async def write_status(
    kube: Kube, path: str, before: Mapping[str, Any], after: Mapping[str, Any]
) -> None:
    """PATCH `path`/status with what changed; an object already gone is not an error."""
    patch = status_patch(before, after)
    if not patch:
        return
    try:
        await kube.patch(path + "/status", {"status": patch})
    except ApiError as e:
        if e.status != 404:
            raise
