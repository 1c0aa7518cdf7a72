"""What applying a locally built Kustomization would change: `tidal diff kustomization`.

Each object of the build (`tidal.cli.localbuild`, normalized as the controller normalizes
before applying) is server-side applied in dry-run mode as `kustomize-controller` and compared
with the live object, as `flux diff kustomization` does (fluxcd/pkg/ssa's Diff):

- `► Kind/ns/name created` when the object does not exist;
- `► Kind/ns/name drifted` and a dyff report (`tidal.cli.dyff`) when labels, annotations or any
  field but metadata and status would change; Secret values are masked as `***`
  (`*** (before)` / `*** (after)` where they differ), and a Secret whose built values are SOPS
  masks only drifts when its keys differ;
- `► Kind/ns/name skipped` for objects excluded from reconciliation;
- with spec.prune, `► Kind/ns/name deleted` for the inventory entries the build no longer has;
- with `--recursive`, the nested Kustomizations that exist are diffed from `--local-sources`,
  under `📁 Kustomization/ns/name changed`.

Errors of single objects are gathered and reported together after every object was tried; no
diff is printed then, as with flux.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tidal.api.kustomize import GROUP
from tidal.cli import dyff, sopsmask
from tidal.cli.localbuild import (
    BuildFailure,
    LocalBuilder,
    is_flux_kustomization,
    same_kustomization,
)
from tidal.cli.options import CliError
from tidal.kube.client import ApiError, Kube
from tidal.kube.discovery import Discovery, NoMatchError, object_path
from tidal.kustomize import inventory
from tidal.ssa import objects as o
from tidal.ssa.drift import has_drifted
from tidal.ssa.ignore import IgnoreRuleError, IgnoreRules
from tidal.ssa.manager import dry_run_error, is_immutable_error
from tidal.ssa.normalize import normalize
from tidal.ssa.pointer import remove_pointer

FIELD_MANAGER: Final = "kustomize-controller"
_EXCLUSIONS: Final = {f"{GROUP}/reconcile": "disabled", f"{GROUP}/ssa": "ignore"}
_IF_NOT_PRESENT: Final = {f"{GROUP}/ssa": "ifnotpresent"}
_FORCE: Final = {f"{GROUP}/force": "enabled"}
_MASK: Final = "***"


@dataclass
class DiffResult:
    output: str = ""
    changed: bool = False
    errors: list[str] = field(default_factory=list)


def sanitize_secret_data(live: dict[str, Any], merged: dict[str, Any]) -> None:
    """fluxcd/pkg/ssa's masking of Secret values in a diff, in place."""
    old = live.get("data") if isinstance(live.get("data"), dict) else None
    new = merged.get("data") if isinstance(merged.get("data"), dict) else None
    old_data, new_data = dict(old or {}), dict(new or {})
    for key in list(old_data):
        if key in new_data:
            if old_data[key] != new_data[key]:
                old_data[key], new_data[key] = f"{_MASK} (before)", f"{_MASK} (after)"
                continue
            new_data[key] = _MASK
        old_data[key] = _MASK
    for key in new_data:
        if key not in old_data:
            new_data[key] = _MASK
    if old is not None:
        live["data"] = old_data
    if new is not None:
        merged["data"] = new_data


def _has_sops_mask(obj: Mapping[str, Any]) -> bool:
    data = obj.get("data")
    if not isinstance(data, dict):
        return False
    for value in data.values():
        try:
            decoded = base64.b64decode(str(value), validate=False)
        except (binascii.Error, ValueError):
            continue
        if sopsmask.MASK.encode() in decoded:
            return True
    return False


def _keys_only(obj: dict[str, Any]) -> list[str]:
    data = obj.get("data")
    if not isinstance(data, dict):
        data = {}
    obj["data"] = dict.fromkeys(data, "*****")
    return sorted(data)


class Differ:
    def __init__(self, builder: LocalBuilder, kube: Kube) -> None:
        self.builder = builder
        self.kube = kube
        self.discovery = Discovery(kube)
        # the spec.ignore rules of the Kustomization being diffed (nested ones have their own)
        self._ignore = IgnoreRules([])

    async def _live(self, path: str) -> dict[str, Any] | None:
        try:
            return await self.kube.get(path)
        except ApiError:
            return None

    async def _object(self, obj: dict[str, Any], out: DiffResult) -> tuple[str, Any]:
        """The action for one object (and its identity for the new inventory)."""
        try:
            resource = await self.discovery.for_object(obj)
        except NoMatchError as exc:
            raise _ObjectError(dry_run_error(obj, exc)) from None
        path = object_path(resource, obj)
        live = await self._live(path)
        if (
            o.any_in_metadata(obj, _EXCLUSIONS)
            or o.any_in_metadata(live, _EXCLUSIONS)
            or (live is not None and o.any_in_metadata(obj, _IF_NOT_PRESENT))
        ):
            subject = o.describe(live) if live is not None else f"{o.kind(obj)}/"
            out.output += f"► {subject} skipped\n"
            return "skipped", live or obj
        try:
            merged = await self.kube.apply(
                path, obj, field_manager=FIELD_MANAGER, force=True, dry_run=True
            )
        except ApiError as exc:
            forced = o.any_in_metadata(obj, _FORCE) or o.any_in_metadata(live, _FORCE)
            if is_immutable_error(exc) and forced:
                out.output += f"► {o.describe(obj)} created\n"
                out.changed = True
                return "created", obj
            raise _ObjectError(dry_run_error(obj, exc)) from None
        if not o.meta(merged).get("resourceVersion") or live is None:
            out.output += f"► {o.describe(merged)} created\n"
            out.changed = True
            return "created", merged
        ignored = self._ignore.paths_for(merged)
        if not has_drifted(live, merged, ignored):
            return "unchanged", merged
        live, merged = copy.deepcopy(live), copy.deepcopy(merged)
        for side in (live, merged):
            side.get("metadata", {}).pop("managedFields", None)
            for pointer in ignored:
                remove_pointer(side, pointer)
        if o.kind(merged) == "Secret" and o.group(merged) == "":
            sanitize_secret_data(live, merged)
            if _has_sops_mask(obj) and _keys_only(live) == _keys_only(merged):
                return "unchanged", merged
        out.output += f"► {o.describe(obj)} drifted\n"
        out.output += dyff.report(live, merged)
        out.changed = True
        return "configured", obj

    async def diff(self, ks: dict[str, Any], directory: Path) -> DiffResult:
        outer = self._ignore
        try:
            self._ignore = IgnoreRules((ks.get("spec") or {}).get("ignore") or [])
        except IgnoreRuleError as exc:
            raise CliError(f"spec.ignore: {exc}") from None
        try:
            return await self._diff(ks, directory)
        finally:
            self._ignore = outer

    async def _diff(self, ks: dict[str, Any], directory: Path) -> DiffResult:
        out = DiffResult()
        objects = [normalize(copy.deepcopy(obj)) for obj in await self.builder.build(ks, directory)]
        seen: set[str] = set()
        for obj in objects:
            try:
                action, identity = await self._object(obj, out)
            except _ObjectError as exc:
                out.errors.append(str(exc))
                continue
            seen.add(
                inventory.ObjRef(
                    o.namespace(identity), o.name(identity), o.group(identity), o.kind(identity)
                ).id
            )
            if (
                self.builder.settings.recursive
                and is_flux_kustomization(obj)
                and action != "created"
                and not same_kustomization(obj, ks)
            ):
                await self._nested(obj, out)
        spec = ks.get("spec") or {}
        entries = ((ks.get("status") or {}).get("inventory") or {}).get("entries")
        if spec.get("prune") and not out.errors and entries is not None:
            stale = [
                inventory.parse_id(e.get("id", ""), e.get("v", ""))
                for e in entries
                if e.get("id") not in seen
            ]
            if stale:
                out.changed = True
            for ref in sorted(stale, key=lambda r: o.sort_key(r.as_object())):
                out.output += f"► {ref.subject} deleted\n"
        return out

    async def _nested(self, obj: dict[str, Any], out: DiffResult) -> None:
        if (obj.get("spec") or {}).get("kubeConfig") is not None:
            out.output += f"⚠️ {o.describe(obj)} skipped: diff not supported for remote clusters\n"
            return
        try:
            directory = self.builder.local_directory(obj)
            child = await self.builder.resolve(o.name(obj), o.namespace(obj))
            sub = await self.diff(child, directory)
        except BuildFailure as exc:
            out.errors.append(str(exc))
            return
        out.errors.extend(sub.errors)
        if sub.changed:
            out.changed = True
            out.output += f"📁 {o.describe(obj)} changed\n" + sub.output


class _ObjectError(Exception):
    pass
