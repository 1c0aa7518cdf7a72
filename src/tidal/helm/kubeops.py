"""Helm v4's kube client operations (pkg/kube/client.go) for tidal.helm.actions: Create,
Update (create, patch or replace, then delete what the new manifest dropped) and Delete, with
Helm's server-side apply options (field manager, strict field validation, force conflicts) and
its error texts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tidal.helm.resources import Item, batches_by_kind, difference, find, live_keeps
from tidal.kube.client import ApiError, Kube


class KubeOpError(Exception):
    """A Create/Update/Delete failed; the message is Helm's. `created` lists the objects the
    operation created before failing (an upgrade's cleanup-on-fail deletes them)."""

    def __init__(self, message: str, created: Sequence[Item] = ()) -> None:
        super().__init__(message)
        self.created = list(created)


@dataclass
class UpdateResult:
    created: list[Item] = field(default_factory=list)
    updated: list[Item] = field(default_factory=list)
    deleted: list[Item] = field(default_factory=list)


@dataclass(frozen=True)
class ApplyMode:
    server_side: bool = True
    field_manager: str = "helm-controller"
    force_conflicts: bool = False  # SSA: take fields other managers own
    force_replace: bool = False  # CSA only: PUT the object instead of patching it
    # SSA over objects client-side applied before: the field manager's Update entries become
    # its Apply entry first, so fields it no longer applies are removed (Helm's
    # UpgradeClientSideFieldManager).
    upgrade_csa_manager: bool = False


async def get(kube: Kube, item: Item) -> dict[str, Any] | None:
    try:
        return await kube.get(item.path)
    except ApiError as e:
        if e.status == 404:
            return None
        raise


async def apply_server_side(kube: Kube, item: Item, mode: ApplyMode, *, force: bool) -> None:
    """patchResourceServerSide: an apply patch with Helm's options."""
    params = {"fieldManager": mode.field_manager, "fieldValidation": "Strict"}
    if force:
        params["force"] = "true"
    try:
        await kube.request(
            "PATCH",
            item.path,
            body=item.obj,
            params=params,
            content_type="application/apply-patch+yaml",
        )
    except ApiError as e:
        where = f"{item.namespace}/{item.name} {item.gvk}"
        if e.status == 415:
            raise KubeOpError(f"server-side apply not available on the server: {e.message}") from e
        if e.status == 409:
            raise KubeOpError(
                f"conflict occurred while applying object {where}: {e.message}"
            ) from e
        raise KubeOpError(f"server-side apply failed for object {where}: {e.message}") from e


def _union(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """The union of two managed-fields sets (FieldsV1 tries: leaves are {})."""
    out = dict(a)
    for key, value in b.items():
        old = out.get(key)
        out[key] = _union(old, value) if isinstance(old, Mapping) else value
    return out


def upgraded_managed_fields(
    entries: Sequence[Mapping[str, Any]], manager: str
) -> list[dict[str, Any]]:
    """client-go csaupgrade for one manager that was both the client-side (Update) and is now
    the server-side (Apply) manager: its Update entry's fields join its Apply entry (or the
    Update entry becomes the Apply entry), and its Update entries go away."""
    out = [dict(e) for e in entries]

    def is_csa(e: Mapping[str, Any]) -> bool:
        return bool(
            e.get("manager") == manager
            and e.get("operation") == "Update"
            and not e.get("subresource")
        )

    target = next(
        (e for e in out if e.get("manager") == manager and e.get("operation") == "Apply"
         and not e.get("subresource")),
        None,
    )  # fmt: skip
    if target is None:
        target = next((e for e in out if is_csa(e)), None)
        if target is None:
            return out
        target["operation"] = "Apply"
    csa = next(
        (e for e in out if is_csa(e) and e.get("apiVersion") == target.get("apiVersion")), None
    )
    if csa is not None:
        target["fieldsV1"] = _union(target.get("fieldsV1") or {}, csa.get("fieldsV1") or {})
    return [e for e in out if not is_csa(e)]


async def upgrade_csa_manager(kube: Kube, item: Item, manager: str) -> None:
    """Helm's upgradeClientSideFieldManager: rewrite managedFields with a JSON patch guarded
    by the resourceVersion, retried on conflict."""
    for _attempt in range(5):
        live = await get(kube, item)
        if live is None:
            return
        meta = live.get("metadata") or {}
        entries = meta.get("managedFields") or []
        upgraded = upgraded_managed_fields(entries, manager)
        if upgraded == entries:
            return
        patch = [
            {"op": "replace", "path": "/metadata/managedFields", "value": upgraded},
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": meta.get("resourceVersion"),
            },
        ]
        try:
            await kube.patch(item.path, patch, patch_type="json")
            return
        except ApiError as e:
            if e.status != 409:
                raise KubeOpError(
                    "failed to patch object to upgrade CSA field manager "
                    f"{item.namespace}/{item.name} {item.gvk}: {e.message}"
                ) from e
    raise KubeOpError(
        "failed to patch object to upgrade CSA field manager "
        f"{item.namespace}/{item.name} {item.gvk}: the object keeps changing"
    )


async def _create_one(kube: Kube, item: Item, mode: ApplyMode, *, force: bool) -> None:
    if mode.server_side:
        await apply_server_side(kube, item, mode, force=force)
        return
    try:
        await kube.request(
            "POST", item.collection, body=item.obj, params={"fieldManager": mode.field_manager}
        )
    except ApiError as e:
        raise KubeOpError(e.message) from e


async def create(kube: Kube, items: Sequence[Item], mode: ApplyMode) -> None:
    """Helm's Create: kind by kind in the given order, a kind's objects concurrently; every
    failure reported (errors.Join)."""
    errors: list[str] = []
    for batch in batches_by_kind(items):
        results = await asyncio.gather(
            *(_create_one(kube, i, mode, force=mode.force_conflicts) for i in batch),
            return_exceptions=True,
        )
        for r in results:
            if isinstance(r, KubeOpError):
                errors.append(str(r))
            elif isinstance(r, BaseException):
                raise r
    if errors:
        raise KubeOpError("\n".join(errors))


def merge_patch(original: Mapping[str, Any], target: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch from `original` to `target` (two-way): changed and new keys set,
    dropped keys null. Lists are replaced whole, as merge patches do."""
    patch: dict[str, Any] = {}
    for key, value in target.items():
        old = original.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            sub = merge_patch(old, value)
            if sub:
                patch[key] = sub
        elif key not in original or old != value:
            patch[key] = value
    for key in original:
        if key not in target:
            patch[key] = None
    return patch


async def _update_one(
    kube: Kube, original: Mapping[str, Any], item: Item, live: Mapping[str, Any], mode: ApplyMode
) -> None:
    if mode.force_replace:
        body = dict(item.obj)
        meta = dict(body.get("metadata") or {})
        meta["resourceVersion"] = (live.get("metadata") or {}).get("resourceVersion", "")
        body["metadata"] = meta
        try:
            await kube.request(
                "PUT", item.path, body=body, params={"fieldManager": mode.field_manager}
            )
        except ApiError as e:
            raise KubeOpError(f"failed to replace object: {e.message}") from e
        return
    if mode.server_side:
        if mode.upgrade_csa_manager:
            await upgrade_csa_manager(kube, item, mode.field_manager)
        await apply_server_side(kube, item, mode, force=mode.force_conflicts)
        return
    patch = merge_patch(original, item.obj)
    if not patch:
        return
    try:
        await kube.request(
            "PATCH",
            item.path,
            body=patch,
            params={"fieldManager": mode.field_manager},
            content_type="application/merge-patch+json",
        )
    except ApiError as e:
        raise KubeOpError(f'cannot patch "{item.name}" with kind {item.kind}: {e.message}') from e


async def update(
    kube: Kube, originals: Sequence[Item], targets: Sequence[Item], mode: ApplyMode
) -> UpdateResult:
    """Helm's Update: each target is created when missing (the first failure stops there) or
    patched (failures collected), then the originals no target matches are deleted, unless
    their live object says `helm.sh/resource-policy: keep`."""
    result = UpdateResult()
    errors: list[str] = []
    for item in targets:
        try:
            live = await get(kube, item)
        except ApiError as e:
            raise KubeOpError(
                f"could not get information about the resource: {e.message}", result.created
            ) from e
        if live is None:
            result.created.append(item)
            try:
                await _create_one(kube, item, mode, force=mode.force_conflicts)
            except KubeOpError as e:
                raise KubeOpError(f"failed to create resource: {e}", result.created) from e
            continue
        # An object the previous release did not have is patched from its live state.
        original = find(originals, item)
        try:
            await _update_one(kube, original.obj if original else live, item, live, mode)
        except KubeOpError as e:
            errors.append(str(e))
        result.updated.append(item)
    if errors:
        raise KubeOpError(" && ".join(errors), result.created)
    for item in difference(originals, targets):
        try:
            live = await get(kube, item)
        except ApiError:
            continue  # Helm skips what it cannot read
        if live is None or live_keeps(live):
            continue
        try:
            await delete_one(kube, item, "background")
        except ApiError as e:
            if e.status != 404:
                errors.append(
                    f"failed to delete resource namespace={item.namespace}, name={item.name}, "
                    f"kind={item.kind}: {e.message}"
                )
            continue
        result.deleted.append(item)
    if errors:
        raise KubeOpError(" && ".join(errors), result.created)
    return result


_PROPAGATION = {"background": "Background", "foreground": "Foreground", "orphan": "Orphan"}


def propagation_policy(value: str) -> str:
    """Flux's deletionPropagation (background, foreground, orphan) as the API spells it."""
    return _PROPAGATION.get(value.lower(), value)


async def delete_one(kube: Kube, item: Item, propagation: str) -> None:
    await kube.request(
        "DELETE", item.path, body={"propagationPolicy": propagation_policy(propagation)}
    )


async def delete(
    kube: Kube, items: Sequence[Item], propagation: str
) -> tuple[list[Item], list[str]]:
    """Helm's Delete: all at once; a missing object counts as deleted. (deleted, errors)"""

    async def one(item: Item) -> str | None:
        try:
            await delete_one(kube, item, propagation)
        except ApiError as e:
            if e.status != 404:
                return e.message
        return None

    results = await asyncio.gather(*(one(i) for i in items))
    deleted = [i for i, r in zip(items, results, strict=True) if r is None]
    return deleted, [r for r in results if r is not None]
