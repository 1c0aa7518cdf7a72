"""Helm's view of a release's Kubernetes objects, in Python: building objects from a manifest
(pkg/kube Build: namespace defaulting), Helm's ownership metadata and its checks
(pkg/action/validate.go), resource-policy `keep` (resource_policy.go), which objects an upgrade
deletes (ResourceList.Difference) and how Helm words those errors.

Everything except `build` is pure, so the decisions an action takes are unit-testable.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from tidal.helm.manifests import UNINSTALL_ORDER, _kind_key, _Loader, parse_head, split_manifests
from tidal.kube.discovery import Discovery, NoMatchError, Resource

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_HELM = "Helm"
RELEASE_NAME_ANNOTATION = "meta.helm.sh/release-name"
RELEASE_NAMESPACE_ANNOTATION = "meta.helm.sh/release-namespace"
RESOURCE_POLICY_ANNOTATION = "helm.sh/resource-policy"
KEEP_POLICY = "keep"

Obj = dict[str, Any]


class BuildError(Exception):
    """A manifest cannot be turned into objects (bad YAML, a kind the server does not serve)."""


@dataclass(frozen=True)
class Item:
    """One object of a manifest with the REST resource that serves it (Helm's resource.Info)."""

    resource: Resource
    obj: Obj

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name") or "")

    @property
    def namespace(self) -> str:
        return str((self.obj.get("metadata") or {}).get("namespace") or "")

    @property
    def kind(self) -> str:
        return self.resource.kind

    @property
    def key(self) -> tuple[str, str, str, str]:
        # Helm matches objects by group, kind, namespace and name (isMatchingInfo): a changed
        # apiVersion of the same kind is the same object.
        return (self.resource.group, self.resource.kind, self.namespace, self.name)

    @property
    def path(self) -> str:
        return self.resource.path(self.name, self.namespace)

    @property
    def collection(self) -> str:
        return self.resource.collection(self.namespace)

    @property
    def gvk(self) -> str:
        """schema.GroupVersionKind.String(), as Helm's apply errors print it."""
        return f"{self.resource.group}/{self.resource.version}, Kind={self.resource.kind}"

    def describe(self) -> str:
        """Helm's resourceString: `Kind "name" in namespace "ns"`."""
        return f'{self.kind} "{self.name}" in namespace "{self.namespace}"'


def parse_objects(manifest: str) -> list[Obj]:
    """The objects of a manifest, in order; empty documents dropped."""
    out: list[Obj] = []
    for doc in split_manifests(manifest):
        try:
            obj = yaml.load(doc, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
        except yaml.YAMLError as e:
            raise BuildError(f"error parsing manifest: {e}") from None
        if obj is None:
            continue
        if not isinstance(obj, dict):
            raise BuildError("error parsing manifest: a document is not an object")
        if obj.get("kind") == "List" and isinstance(obj.get("items"), list):
            out.extend(x for x in obj["items"] if isinstance(x, dict))
            continue
        out.append(obj)
    return out


async def build(discovery: Discovery, manifest: str, namespace: str) -> list[Item]:
    """Helm's KubeClient.Build of a manifest (see `resolve`)."""
    return await resolve(discovery, parse_objects(manifest), namespace)


async def resolve(discovery: Discovery, objs: Sequence[Obj], namespace: str) -> list[Item]:
    """Each object with its resource, as Helm's Build leaves it: namespaced objects without
    a namespace get the release namespace, cluster-scoped ones lose any namespace."""
    items = []
    for original in objs:
        obj = copy.deepcopy(original)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise BuildError("error parsing manifest: metadata is not an object")
        try:
            resource = await discovery.for_object(obj)
        except NoMatchError as e:
            raise BuildError(
                f'resource mapping not found for name: "{meta.get("name", "")}" namespace: '
                f'"{meta.get("namespace") or ""}" from "": {e}\nensure CRDs are installed first'
            ) from None
        if resource.namespaced:
            if not meta.get("namespace"):
                meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        items.append(Item(resource, obj))
    return items


def set_metadata(item: Item, release_name: str, release_namespace: str) -> Item:
    """setMetadataVisitor with forceOwnership: Helm's label and annotations merged in."""
    obj = copy.deepcopy(item.obj)
    meta = obj.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), MANAGED_BY_LABEL: MANAGED_BY_HELM}
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        RELEASE_NAME_ANNOTATION: release_name,
        RELEASE_NAMESPACE_ANNOTATION: release_namespace,
    }
    return Item(item.resource, obj)


def _require(values: Mapping[str, Any], key: str, want: str) -> str | None:
    if key not in values:
        return f'missing key "{key}": must be set to "{want}"'
    if values[key] != want:
        return f'key "{key}" must equal "{want}": current value is "{values[key]}"'
    return None


def ownership_error(
    live: Mapping[str, Any], release_name: str, release_namespace: str
) -> str | None:
    """Helm's checkOwnership: None when the live object belongs to this release."""
    meta = live.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    errors = []
    if (e := _require(labels, MANAGED_BY_LABEL, MANAGED_BY_HELM)) is not None:
        errors.append(f"label validation error: {e}")
    if (e := _require(annotations, RELEASE_NAME_ANNOTATION, release_name)) is not None:
        errors.append(f"annotation validation error: {e}")
    if (e := _require(annotations, RELEASE_NAMESPACE_ANNOTATION, release_namespace)) is not None:
        errors.append(f"annotation validation error: {e}")
    if errors:
        return "invalid ownership metadata; " + "; ".join(errors)
    return None


def conflict_message(item: Item, error: str) -> str:
    """existingResourceConflict's error for one object."""
    return f"{item.describe()} exists and cannot be imported into the current release: {error}"


def new_items(current: Sequence[Item], target: Sequence[Item]) -> list[Item]:
    """The target objects the current release does not have (an upgrade's toBeCreated)."""
    known = {i.key for i in current}
    return [i for i in target if i.key not in known]


def difference(originals: Sequence[Item], targets: Sequence[Item]) -> list[Item]:
    """ResourceList.Difference: the originals no target matches (an upgrade deletes them)."""
    keys = {i.key for i in targets}
    return [i for i in originals if i.key not in keys]


def find(items: Iterable[Item], item: Item) -> Item | None:
    return next((i for i in items if i.key == item.key), None)


def live_keeps(live: Mapping[str, Any]) -> bool:
    """An upgrade keeps an object whose live annotation is exactly `keep` (kube client.go)."""
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    return bool(annotations.get(RESOURCE_POLICY_ANNOTATION) == KEEP_POLICY)


@dataclass(frozen=True)
class UninstallPlan:
    delete: str  # the manifest of the objects to delete, Helm's uninstall order
    kept: list[tuple[str, str]]  # (kind, name) of the objects the keep policy saves


def uninstall_plan(manifest: str) -> UninstallPlan:
    """Helm's deleteRelease split: documents sorted in uninstall order, those annotated
    `helm.sh/resource-policy: keep` (trimmed, any case) kept. As in Helm's
    filterManifestsToKeep, a document with some other policy value is in neither list, so it
    is not deleted either."""
    docs = []
    for doc in split_manifests(manifest):
        _api_version, kind, name, annotations = parse_head(doc)
        docs.append((kind, name, annotations, doc))
    key = _kind_key(UNINSTALL_ORDER)
    docs.sort(key=lambda d: key(d[0]))
    kept: list[tuple[str, str]] = []
    delete = []
    for kind, name, annotations, doc in docs:
        if not annotations or RESOURCE_POLICY_ANNOTATION not in annotations:
            delete.append(doc)
        elif annotations[RESOURCE_POLICY_ANNOTATION].strip().lower() == KEEP_POLICY:
            kept.append((kind, name))
    return UninstallPlan("".join(f"\n---\n{d}" for d in delete), kept)


def batches_by_kind(items: Sequence[Item]) -> list[list[Item]]:
    """Helm's batchPerform: consecutive objects of one kind run together, kinds in order."""
    out: list[list[Item]] = []
    for item in items:
        if out and out[-1][0].kind == item.kind:
            out[-1].append(item)
        else:
            out.append([item])
    return out
