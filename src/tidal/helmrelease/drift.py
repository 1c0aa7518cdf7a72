"""HelmRelease drift detection and correction (spec.driftDetection), as helm-controller does
it: each object of the stored release manifest, with the metadata Helm puts on it, is
server-side dry-run applied (forcing conflicts) under the controller's field manager and
compared with the live object. Server defaults are therefore not drift; only what applying
the manifest again would change is.

`detect` answers [] when nothing drifted. When something did, it answers every object Flux's
summary names: the created ("removed" from the cluster) and updated ones, plus those excluded
from drift detection, in manifest order. Unchanged objects are left out. `correct` creates
the missing objects and JSON-patches the changed ones with the detected patch, as Flux does:
a patch leaves ignored fields alone, where re-applying the whole object would reset them.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from tidal.api.helmrelease import DRIFT_DETECTION_ANNOTATION, IgnoreRule
from tidal.helm import resources
from tidal.helm.storage import Release
from tidal.kube.client import ApiError, Kube
from tidal.kube.discovery import Discovery, NoMatchError, shared_discovery, split_api_version
from tidal.ssa import jsondiff
from tidal.ssa import objects as o
from tidal.ssa.changeset import Action, ChangeSet, Entry
from tidal.ssa.ignore import IgnoreRules
from tidal.ssa.managed_fields import FieldManager, replace_managers
from tidal.ssa.manager import dry_run_error
from tidal.ssa.normalize import normalize
from tidal.ssa.pointer import remove_pointer

log = logging.getLogger(__name__)

ChangeType = Literal["create", "update", "exclude"]

EXCLUSION: Final = {DRIFT_DETECTION_ANNOTATION: "disabled"}
_CONCURRENCY: Final = 4
_OPS: Final = ("add", "replace", "remove")

# Flux's texts around drift (reconcile/atomic_release.go, correct_cluster_drift.go).
NO_DRIFT_MESSAGE: Final = "No drift detected against the cluster state"
CORRECTING_MESSAGE: Final = "correcting cluster drift"
DRIFT_CORRECTED: Final = "DriftCorrected"
DRIFT_CORRECTION_FAILED: Final = "DriftCorrectionFailed"


class DetectError(Exception):
    """The cluster state could not be compared with the release."""


@dataclass(frozen=True)
class Change:
    """One object of the release that drifted (or, type "exclude", was not looked at)."""

    kind: str
    namespace: str
    name: str
    api_version: str
    type: ChangeType
    # "create": the object as it is created (manifest + Helm metadata); "update": the object
    # as the dry-run would make it; "exclude": the manifest object. Out of repr: Secret data.
    desired: dict[str, Any] = field(repr=False)
    # JSON patch from the live object to the dry-run's, Secret data masked: for logs.
    patch: list[dict[str, Any]] = field(default_factory=list)
    # The same patch unmasked, which correction sends; kept out of repr (Secret data).
    correction: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def subject(self) -> str:
        """Flux's diff.ResourceName: Kind/namespace/name (Kind/name when cluster-scoped)."""
        return o.subject(self.kind, self.namespace, self.name)

    @property
    def group(self) -> str:
        return split_api_version(self.api_version)[0]


@dataclass(frozen=True)
class CorrectionResult:
    changes: ChangeSet  # created, then configured, in Flux's apply order
    errors: list[str]

    @property
    def changed(self) -> bool:
        return len(self.changes) > 0


# -- texts ------------------------------------------------------------------------------------


def full_release_name(release: Release) -> str:
    """Snapshot.FullReleaseName: <namespace>/<name>.v<version>."""
    return f"{release.namespace}/{release.name}.v{release.version}"


def summarize(changes: Sequence[Change]) -> str:
    """SummarizeDiffSet: one line per created, updated or excluded object."""
    lines = []
    for c in changes:
        if c.type == "create":
            lines.append(f"{c.subject} removed")
        elif c.type == "exclude":
            lines.append(f"{c.subject} excluded")
        else:
            counts = {op: sum(1 for p in c.patch if p.get("op") == op) for op in _OPS}
            lines.append(
                f"{c.subject} changed ({counts['add']} additions, {counts['replace']} changes, "
                f"{counts['remove']} removals)"
            )
    return "\n".join(lines).strip()


def summarize_brief(changes: Sequence[Change]) -> str:
    """SummarizeDiffSetBrief: "removed: x, changed: y, excluded: z"."""
    n = {t: sum(1 for c in changes if c.type == t) for t in ("create", "update", "exclude")}
    return f"removed: {n['create']}, changed: {n['update']}, excluded: {n['exclude']}"


def detected_log_message(changes: Sequence[Change]) -> str:
    """The info log line of a drifted release."""
    return f"detected changes in cluster state: {summarize_brief(changes)}"


def drifted_message(release: Release, changes: Sequence[Change]) -> str:
    """The DriftDetected Warning event and Drifted=True condition message."""
    return (
        f"Cluster state of release {full_release_name(release)} has drifted from the desired "
        f"state:\n{summarize(changes)}"
    )


def correction_event(release: Release, result: CorrectionResult) -> tuple[str, str, str] | None:
    """(event type, reason, message) Flux emits after a correction; None when it emits none."""
    name = full_release_name(release)
    done = "\n".join(result.changes.lines())
    if result.errors:
        partially = "partially " if result.changed else ""
        text = f"Failed to {partially}correct cluster state of release {name}:\n"
        text += "\n".join(result.errors)
        if result.changed:
            text += f"\n\nSuccessful corrections:\n{done}"
        return "Warning", DRIFT_CORRECTION_FAILED, text
    if result.changed:
        return (
            "Normal",
            DRIFT_CORRECTED,
            f"Cluster state of release {name} has been corrected:\n{done}",
        )
    return None


# -- detection --------------------------------------------------------------------------------


async def _get(kube: Kube, path: str) -> dict[str, Any] | None:
    try:
        return await kube.get(path)
    except ApiError as e:
        if e.status == 404:
            return None
        raise


async def _objects(
    discovery: Discovery, release: Release, errors: list[str]
) -> list[resources.Item]:
    """The manifest's objects as Helm applies them: Helm's metadata, namespace defaulted,
    and normalized as the applier normalizes them. Objects of kinds the server does not
    serve are reported and left out."""
    items = []
    for obj in resources.parse_objects(release.manifest):
        try:
            [item] = await resources.resolve(discovery, [obj], release.namespace)
        except resources.BuildError as e:
            errors.append(f"failed to determine if {o.kind(obj)} is namespace scoped: {e}")
            continue
        item = resources.set_metadata(item, release.name, release.namespace)
        items.append(resources.Item(item.resource, normalize(item.obj)))
    return items


async def _take_over_fields(
    kube: Kube, item: resources.Item, owner: str, disallowed: Sequence[str]
) -> None:
    """--override-manager: fields written by the named managers become `owner`'s, so the
    dry-run apply reports their edits as drift instead of leaving them to their writer."""
    live = await _get(kube, item.path)
    if live is None:
        return
    managers = [FieldManager(m, op) for m in disallowed for op in ("Apply", "Update")]
    fields = replace_managers(live, managers, owner)
    if fields is not None:
        patch = [{"op": "replace", "path": "/metadata/managedFields", "value": fields}]
        await kube.request(
            "PATCH",
            item.path,
            body=patch,
            params={"fieldManager": owner},
            content_type="application/json-patch+json",
        )


def _change(item: resources.Item, type_: ChangeType, desired: Mapping[str, Any]) -> Change:
    obj = item.obj
    return Change(
        kind=o.kind(obj),
        namespace=o.namespace(obj),
        name=o.name(obj),
        api_version=str(obj.get("apiVersion", "")),
        type=type_,
        desired=copy.deepcopy(dict(desired)),
    )


def _labels_and_annotations(obj: Mapping[str, Any]) -> dict[str, Any]:
    # The name rides along so that an "add" never lands on /metadata as a whole: a patch
    # replacing metadata would drop the name (as Flux's copyAnnotationsAndLabels).
    m = o.meta(obj)
    out = {k: m[k] for k in ("name", "annotations", "labels") if k in m}
    return {"metadata": out}


def diff_objects(
    live: Mapping[str, Any], dry_run: Mapping[str, Any], ignore: Sequence[str]
) -> list[jsondiff.Operation]:
    """The patch from `live` to `dry_run`: labels and annotations added or changed (not
    removed: core controllers add labels of their own), then everything but metadata and
    status; fields at the ignored pointers are no part of it."""
    live_doc, dry_doc = copy.deepcopy(dict(live)), copy.deepcopy(dict(dry_run))
    for pointer in ignore:
        remove_pointer(live_doc, pointer)
        remove_pointer(dry_doc, pointer)
    meta_ops = [
        op
        for op in jsondiff.compare(
            _labels_and_annotations(live_doc), _labels_and_annotations(dry_doc)
        )
        if op.op in ("add", "replace")
    ]
    body = {k: v for k, v in live_doc.items() if k not in ("metadata", "status")}
    dry_body = {k: v for k, v in dry_doc.items() if k not in ("metadata", "status")}
    return meta_ops + jsondiff.compare(body, dry_body)


async def _detect_one(
    kube: Kube, item: resources.Item, rules: IgnoreRules, owner: str
) -> Change | None:
    obj = item.obj
    if o.any_in_metadata(obj, EXCLUSION):
        return _change(item, "exclude", obj)
    ignore = rules.paths_for(obj)
    if "" in ignore:
        return _change(item, "exclude", obj)
    live = await _get(kube, item.path)
    if o.any_in_metadata(live, EXCLUSION):
        return _change(item, "exclude", obj)
    try:
        dry = await kube.apply(item.path, obj, field_manager=owner, force=True, dry_run=True)
    except ApiError as e:
        raise DetectError(dry_run_error(obj, e)) from e
    if live is None or not o.meta(dry).get("resourceVersion"):
        return _change(item, "create", obj)
    ops = diff_objects(live, dry, ignore)
    if not ops:
        return None
    logged = jsondiff.mask_secret(ops) if _is_secret(obj) else ops
    return dataclasses.replace(
        _change(item, "update", dry),
        patch=[op.to_json() for op in logged],
        correction=[op.to_json() for op in ops],
    )


def _is_secret(obj: Mapping[str, Any]) -> bool:
    return o.kind(obj) == "Secret" and o.group(obj) == ""


async def detect(
    kube: Kube,
    release: Release,
    *,
    ignore: Sequence[IgnoreRule],
    field_manager: str = "helm-controller",
    disallowed_managers: Sequence[str] = (),
    discovery: Discovery | None = None,
) -> list[Change]:
    """The drift of `release`'s objects ([] when none; see the module docstring).

    As Flux, objects that cannot be compared do not stop the others: their errors are
    logged when other objects drifted, and raised (DetectError) when none did. Taking fields
    over from `disallowed_managers` writes to the cluster, before any comparison."""
    discovery = discovery or shared_discovery(kube)
    rules = IgnoreRules([r.to_dict() for r in ignore], allow_root=True)
    errors: list[str] = []
    items = await _objects(discovery, release, errors)
    if disallowed_managers:
        for item in items:
            try:
                await _take_over_fields(kube, item, field_manager, disallowed_managers)
            except ApiError as e:
                raise DetectError(
                    f"failed to clean-up disallowed field managers: {e.message}"
                ) from e
    limit = asyncio.Semaphore(_CONCURRENCY)

    async def one(item: resources.Item) -> Change | None:
        async with limit:
            try:
                return await _detect_one(kube, item, rules, field_manager)
            except DetectError as e:
                errors.append(str(e))
            except ApiError as e:
                errors.append(f"{o.describe(item.obj)}: {e.message}")
            return None

    found = [c for c in await asyncio.gather(*(one(i) for i in items)) if c is not None]
    drifted = any(c.type in ("create", "update") for c in found)
    if errors:
        text = "\n".join(errors)
        if not drifted:
            raise DetectError(f"unable to determine cluster state: {text}")
        log.error("diff of release against cluster state completed with error: %s", text)
    return found if drifted else []


# -- correction -------------------------------------------------------------------------------


def _apply_order(c: Change) -> tuple[int, str, str, str, str]:
    return o.sort_key({"apiVersion": c.api_version, "kind": c.kind,
                       "metadata": {"namespace": c.namespace, "name": c.name}})  # fmt: skip


def _entry(c: Change, action: Action) -> Entry:
    group, version = split_api_version(c.api_version)
    return Entry(group, version, c.kind, c.namespace, c.name, action)


def _masked_error(e: ApiError) -> str:
    """maskSensitiveErrData: an invalid Secret patch is reported by its reason only, as the
    API server's message may quote the data."""
    text = e.message
    if e.status == 422 and ":" in text:
        return text.rsplit(":", 1)[1].strip()
    return text


async def correct(
    kube: Kube,
    release: Release,
    changes: Sequence[Change],
    *,
    field_manager: str = "helm-controller",
    discovery: Discovery | None = None,
) -> CorrectionResult:
    """Flux's ApplyDiff: missing objects created, changed ones patched with the detected
    patch, each in Flux's apply order; every failure reported, none stopping the others.
    `release` is what the changes were detected for (the texts name it)."""
    del release  # the changes carry all they need; the parameter keeps the call Flux-shaped
    discovery = discovery or shared_discovery(kube)
    result = CorrectionResult(ChangeSet(), [])
    params = {"fieldManager": field_manager}
    for c in sorted((c for c in changes if c.type == "create"), key=_apply_order):
        try:
            resource = await discovery.resource(c.api_version, c.kind)
            await kube.request(
                "POST", resource.collection(c.namespace), body=c.desired, params=params
            )
        except (ApiError, NoMatchError) as e:
            msg = e.message if isinstance(e, ApiError) else str(e)
            result.errors.append(f"{c.subject} creation failure: {msg}")
            continue
        result.changes.entries.append(_entry(c, Action.CREATED))
    for c in sorted((c for c in changes if c.type == "update"), key=_apply_order):
        try:
            resource = await discovery.resource(c.api_version, c.kind)
            await kube.request(
                "PATCH",
                resource.path(c.name, c.namespace),
                body=c.correction,
                params=params,
                content_type="application/json-patch+json",
            )
        except (ApiError, NoMatchError) as e:
            msg = str(e)
            if isinstance(e, ApiError):
                msg = _masked_error(e) if c.kind == "Secret" else e.message
            result.errors.append(f"{c.subject} patch failure: {msg}")
            continue
        result.changes.entries.append(_entry(c, Action.CONFIGURED))
    return result
