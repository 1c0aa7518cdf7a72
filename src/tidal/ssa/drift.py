"""Has an object drifted from what would be applied? The dry-run answer compared with the live
object: labels, annotations and every top-level field but metadata and status."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from tidal.ssa.objects import meta
from tidal.ssa.pointer import remove_pointer


def _comparable(obj: Mapping[str, Any], ignore: list[str]) -> dict[str, Any]:
    """The compared part of `obj`; shares `obj`'s values unless pointers must be removed
    (a copy of every object on every reconcile is measurable on large inventories)."""
    m = meta(obj)
    doc: dict[str, Any] = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    doc["metadata"] = {"labels": m.get("labels") or {}, "annotations": m.get("annotations") or {}}
    if ignore:
        doc = copy.deepcopy(doc)
        for pointer in ignore:
            remove_pointer(doc, pointer)
    return doc


def has_drifted(
    live: Mapping[str, Any] | None, dry_run: Mapping[str, Any], ignore: Iterable[str] = ()
) -> bool:
    """True when applying would change the object (or create it)."""
    if live is None or not meta(dry_run).get("resourceVersion"):
        return True
    ignore = list(ignore)
    return _comparable(live, ignore) != _comparable(dry_run, ignore)
