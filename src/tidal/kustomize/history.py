"""status.history: the last five distinct outcomes, newest first, as Flux keeps them."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import msgspec

from tidal.api.base import format_duration
from tidal.api.meta import HISTORY_MAX_SIZE, Snapshot


def digest(manifests: bytes) -> str:
    return f"sha256:{hashlib.sha256(manifests).hexdigest()}"


def upsert(
    history: list[Snapshot],
    *,
    checksum: str,
    now: str,
    duration: float,
    status: str,
    metadata: Mapping[str, str],
) -> list[Snapshot]:
    """The history with this outcome counted: an entry with the same digest and status is
    updated and moved to the front, otherwise a new one is put there; at most five stay."""
    rest = []
    found: Snapshot | None = None
    for snap in history:
        if found is None and snap.digest == checksum and snap.last_reconciled_status == status:
            found = snap
        else:
            rest.append(snap)
    last: dict[str, Any] = {
        "last_reconciled": now,
        "last_reconciled_duration": format_duration(duration),
        "last_reconciled_status": status,
        "metadata": dict(metadata),
    }
    if found is None:
        found = Snapshot(digest=checksum, first_reconciled=now, total_reconciliations=1, **last)
    else:
        found = msgspec.structs.replace(
            found, total_reconciliations=found.total_reconciliations + 1, **last
        )
    return [found, *rest][:HISTORY_MAX_SIZE]
