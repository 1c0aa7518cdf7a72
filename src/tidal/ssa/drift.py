"""Has an object drifted from what would be applied? The dry-run answer compared with the live
object: labels, annotations and every top-level field but metadata and status."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from tidal.ssa.objects import meta


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def remove_pointer(doc: Any, pointer: str) -> None:
    """Remove the value at an RFC 6901 pointer if present (missing paths are fine)."""
    if not pointer or pointer == "/":
        return
    tokens = [_unescape(t) for t in pointer.lstrip("/").split("/")]
    parent = doc
    for token in tokens[:-1]:
        if isinstance(parent, dict):
            parent = parent.get(token)
        elif isinstance(parent, list) and token.isdigit() and int(token) < len(parent):
            parent = parent[int(token)]
        else:
            return
    last = tokens[-1]
    if isinstance(parent, dict):
        parent.pop(last, None)
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]


def _comparable(obj: Mapping[str, Any], ignore: Iterable[str]) -> dict[str, Any]:
    m = meta(obj)
    doc: dict[str, Any] = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    doc = copy.deepcopy(doc)
    doc["metadata"] = {
        "labels": copy.deepcopy(m.get("labels") or {}),
        "annotations": copy.deepcopy(m.get("annotations") or {}),
    }
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
