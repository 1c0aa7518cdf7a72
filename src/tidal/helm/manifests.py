"""Helm's releaseutil in Python: split rendered files into documents, separate hooks from
resources and order both as Helm's install does (pkg/release/v1/util manifest_sorter.go,
manifest.go, kind_sorter.go). Written from their behaviour; the e2e tests compare the result with
`helm template` byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from tidal.helm.errors import RenderError

HOOK_ANNOTATION = "helm.sh/hook"
HOOK_WEIGHT_ANNOTATION = "helm.sh/hook-weight"
HOOK_DELETE_ANNOTATION = "helm.sh/hook-delete-policy"
HOOK_OUTPUT_LOG_ANNOTATION = "helm.sh/hook-output-log-policy"

# "test-success" is Helm 2's name for "test"; both map to the test event.
HOOK_EVENTS = {
    "pre-install": "pre-install",
    "post-install": "post-install",
    "pre-delete": "pre-delete",
    "post-delete": "post-delete",
    "pre-upgrade": "pre-upgrade",
    "post-upgrade": "post-upgrade",
    "pre-rollback": "pre-rollback",
    "post-rollback": "post-rollback",
    "test": "test",
    "test-success": "test",
}

INSTALL_ORDER = (
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
    "PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
    "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
    "CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
    "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
    "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
    "APIService", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
)  # fmt: skip
UNINSTALL_ORDER = (
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "APIService", "Ingress",
    "IngressClass", "Service", "CronJob", "Job", "StatefulSet", "HorizontalPodAutoscaler",
    "Deployment", "ReplicaSet", "ReplicationController", "Pod", "DaemonSet", "RoleBindingList",
    "RoleBinding", "RoleList", "Role", "ClusterRoleBindingList", "ClusterRoleBinding",
    "ClusterRoleList", "ClusterRole", "CustomResourceDefinition", "PersistentVolumeClaim",
    "PersistentVolume", "StorageClass", "ConfigMap", "SecretList", "Secret", "ServiceAccount",
    "PodDisruptionBudget", "PodSecurityPolicy", "LimitRange", "ResourceQuota", "NetworkPolicy",
    "Namespace", "PriorityClass",
)  # fmt: skip

# Go's regexp `(?:^|\s*\n)---\s*`; RE2's \s is ASCII [\t\n\f\r ] (no \v), unlike Python's.
_SEP = re.compile(r"(?:^|[\t\n\f\r ]*\n)---[\t\n\f\r ]*")
# Go's unicode.IsSpace: the Latin-1 spaces plus Unicode White_Space (Python adds \x1c-\x1f).
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"  # noqa: E501


@dataclass(frozen=True)
class Manifest:
    path: str
    content: str
    kind: str
    api_version: str
    name: str


@dataclass(frozen=True)
class Hook:
    path: str
    kind: str
    name: str
    manifest: str
    events: tuple[str, ...]
    weight: int
    delete_policies: tuple[str, ...]
    output_log_policies: tuple[str, ...] = ()


def split_manifests(text: str) -> list[str]:
    """releaseutil.SplitManifests: documents in order, left-trimmed, blank ones dropped."""
    docs = _SEP.split(text.lstrip(_GO_SPACE))
    return [d.lstrip(_GO_SPACE) for d in docs if d.strip(_GO_SPACE)]


class _Loader(yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader):  # type: ignore[misc]
    """Safe loading that keeps timestamps as text, as YAML-to-JSON conversion does."""


_Loader.add_constructor(
    "tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node)
)

_JSON_KIND = {bool: "bool", int: "number", float: "number", str: "string", list: "array"}


def _json_kind(v: object) -> str:
    return "object" if isinstance(v, dict) else _JSON_KIND.get(type(v), "string")


def _type_error(v: object, field: str, go_type: str = "string") -> RenderError:
    where = f"Go struct field SimpleHead.{field}" if field else "Go value"
    return RenderError(
        "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal "
        f"{_json_kind(v)} into {where} of type {go_type}"
    )


def _string(v: object, field: str) -> str:
    if v is None:
        return ""
    if not isinstance(v, str):
        raise _type_error(v, field)
    return v


def _parse_doc(doc: str, parse_go: Callable[[str], dict[str, Any]] | None) -> object:
    try:
        return yaml.load(doc, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError:
        if parse_go is None:
            raise
        # Go's YAML parser accepts what it accepts, with its own messages: ask it.
        try:
            return parse_go(doc)
        except ValueError as e:
            raise RenderError(str(e)) from None


def parse_head(
    doc: str, parse_go: Callable[[str], dict[str, Any]] | None = None
) -> tuple[str, str, str, dict[str, str] | None]:
    """(apiVersion, kind, metadata.name, annotations) as Go unmarshals util.SimpleHead."""
    try:
        head = _parse_doc(doc, parse_go)
    except yaml.YAMLError as e:
        raise RenderError(f"error converting YAML to JSON: {e}") from None
    if head is None:
        return "", "", "", None
    if not isinstance(head, dict):
        raise RenderError(
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal "
            f"{_json_kind(head)} into Go value of type util.SimpleHead"
        )
    api_version = _string(head.get("apiVersion"), "apiVersion")
    kind = _string(head.get("kind"), "kind")
    meta = head.get("metadata")
    if meta is None:
        return api_version, kind, "", None
    if not isinstance(meta, dict):
        raise _type_error(meta, "metadata", 'struct { Name string "json:\\"name\\""; ...}')
    name = _string(meta.get("name"), "metadata.name")
    raw = meta.get("annotations")
    if raw is None:
        return api_version, kind, name, None
    if not isinstance(raw, dict):
        raise _type_error(raw, "metadata.annotations", "map[string]string")
    annotations = {}
    for k, v in raw.items():
        annotations[_key(k)] = _string(v, "metadata.annotations")
    return api_version, kind, name, annotations


def _key(k: object) -> str:
    # YAML-to-JSON turns non-string keys into their text.
    if isinstance(k, bool):
        return "true" if k else "false"
    return "null" if k is None else str(k)


def _policies(annotations: Mapping[str, str], key: str) -> tuple[str, ...]:
    if key not in annotations:
        return ()
    return tuple(p.strip().lower() for p in annotations[key].split(","))


def _go_atoi(text: str) -> int:
    # strconv.Atoi: optional sign and ASCII digits only, within int64; anything else is 0.
    if re.fullmatch(r"[+-]?[0-9]+", text):
        n = int(text)
        if -(2**63) <= n < 2**63:
            return n
    return 0


def _kind_key(order: tuple[str, ...]) -> Callable[[str], tuple[int, str]]:
    rank = {k: i for i, k in enumerate(order)}

    def key(kind: str) -> tuple[int, str]:
        # Known kinds in the given order, then unknown kinds alphabetically (Go's lessByKind).
        i = rank.get(kind)
        return (i, "") if i is not None else (len(order), kind)

    return key


def sort_manifests(
    files: Mapping[str, str],
    order: tuple[str, ...] = INSTALL_ORDER,
    parse_go: Callable[[str], dict[str, Any]] | None = None,
) -> tuple[list[Hook], list[Manifest]]:
    """releaseutil.SortManifests: hooks and resources, each stably sorted by kind."""
    hooks: list[Hook] = []
    generic: list[Manifest] = []
    for path in sorted(files):
        content = files[path]
        if path.rsplit("/", 1)[-1].startswith("_") or not content.strip(_GO_SPACE):
            continue
        for doc in split_manifests(content):
            try:
                api_version, kind, name, annotations = parse_head(doc, parse_go)
            except RenderError as e:
                raise RenderError(f"YAML parse error on {path}: {e}") from None
            if not annotations or HOOK_ANNOTATION not in annotations:
                generic.append(Manifest(path, doc, kind, api_version, name))
                continue
            events = []
            for event in annotations[HOOK_ANNOTATION].split(","):
                mapped = HOOK_EVENTS.get(event.strip().lower())
                if mapped is None:
                    break  # Helm skips a document naming an unknown hook, whole
                events.append(mapped)
            else:
                hooks.append(
                    Hook(
                        path=path,
                        kind=kind,
                        name=name,
                        manifest=doc,
                        events=tuple(events),
                        weight=_go_atoi(annotations.get(HOOK_WEIGHT_ANNOTATION, "")),
                        delete_policies=_policies(annotations, HOOK_DELETE_ANNOTATION),
                        output_log_policies=_policies(annotations, HOOK_OUTPUT_LOG_ANNOTATION),
                    )
                )
    key = _kind_key(order)
    hooks.sort(key=lambda h: key(h.kind))
    generic.sort(key=lambda m: key(m.kind))
    return hooks, generic


def join_manifests(manifests: list[Manifest]) -> str:
    """The release manifest as Helm's install writes it."""
    return "".join(f"---\n# Source: {m.path}\n{m.content}\n" for m in manifests)


def hooks_for(hooks: tuple[Hook, ...] | list[Hook], event: str) -> list[Hook]:
    """The hooks an event runs, in Helm's execution order: weight, then name (stable)."""
    return sorted((h for h in hooks if event in h.events), key=lambda h: (h.weight, h.name))
