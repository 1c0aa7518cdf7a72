"""Taking over fields other tools wrote, as Flux does before it applies.

An object first created by `kubectl apply` (client-side) or edited with `kubectl edit` carries
managedFields entries of those managers; server-side apply would leave their fields alone, so
an edit would never be reverted and a field removed from Git would never be removed from the
cluster. Flux renames the entries of a fixed set of managers (matched by name prefix and
operation) to its own Apply entry; fields of anyone else (an HPA, another controller) stay
theirs. Entries renamed onto the same apiVersion are merged, because the API server keeps one
entry per (manager, operation, apiVersion).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tidal.ssa import pointer
from tidal.ssa.objects import meta

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@dataclass(frozen=True, slots=True)
class FieldManager:
    name: str  # a prefix: "kubectl" also matches kubectl-client-side-apply and kubectl-edit
    operation: str  # "Apply" or "Update"


def merge_fields(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Union of two fieldsV1 trees."""
    out = dict(a)
    for key, value in b.items():
        if key in out and isinstance(out[key], Mapping) and isinstance(value, Mapping):
            out[key] = merge_fields(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _matches(entry: Mapping[str, Any], managers: Sequence[FieldManager]) -> bool:
    if entry.get("subresource"):
        return False
    manager = str(entry.get("manager", ""))
    return any(
        manager.startswith(m.name) and entry.get("operation") == m.operation for m in managers
    )


def replace_managers(
    live: Mapping[str, Any], managers: Sequence[FieldManager], owner: str
) -> list[dict[str, Any]] | None:
    """The managedFields list with matching entries folded into `owner`'s Apply entry, or
    None when nothing matches."""
    entries = list(meta(live).get("managedFields") or [])
    if not any(_matches(e, managers) for e in entries):
        return None
    out: list[dict[str, Any]] = []
    owned: dict[str, dict[str, Any]] = {}
    for entry in entries:
        e = dict(entry)
        is_owner_apply = e.get("manager") == owner and e.get("operation") == "Apply"
        if _matches(e, managers) or (is_owner_apply and not e.get("subresource")):
            e["manager"] = owner
            e["operation"] = "Apply"
            api_version = str(e.get("apiVersion", ""))
            if api_version in owned:
                target = owned[api_version]
                target["fieldsV1"] = merge_fields(
                    target.get("fieldsV1") or {}, e.get("fieldsV1") or {}
                )
                continue
            owned[api_version] = e
        out.append(e)
    return out


def cleanup_patch(
    live: Mapping[str, Any],
    *,
    annotations: Sequence[str],
    labels: Sequence[str],
    managers: Sequence[FieldManager],
    owner: str,
) -> list[dict[str, Any]]:
    """The JSON patch that strips legacy metadata and takes over fields; [] when clean."""
    m = meta(live)
    ops: list[dict[str, Any]] = []
    live_annotations = m.get("annotations") or {}
    for key in annotations:
        if key in live_annotations:
            ops.append({"op": "remove", "path": f"/metadata/annotations/{pointer.escape(key)}"})
    live_labels = m.get("labels") or {}
    for key in labels:
        if key in live_labels:
            ops.append({"op": "remove", "path": f"/metadata/labels/{pointer.escape(key)}"})
    fields = replace_managers(live, managers, owner)
    if fields is not None:
        ops.append({"op": "replace", "path": "/metadata/managedFields", "value": fields})
    return ops
