"""Small facts about unstructured objects that the applier and the inventory share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

Obj = dict[str, Any]

# Flux's reconcile order: kinds first (in this order), kinds last, everything else between,
# sorted by group then kind; ties by namespace then name.
ORDER_FIRST: Final = (
    "CustomResourceDefinition",
    "Namespace",
    "ClusterRole",
    "ClusterClass",
    "RuntimeClass",
    "PriorityClass",
    "StorageClass",
    "VolumeSnapshotClass",
    "IngressClass",
    "GatewayClass",
    "ClusterRoleBinding",
    "ResourceQuota",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "Service",
    "LimitRange",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
)
ORDER_LAST: Final = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
_INDEX: Final = {
    **{k: i - len(ORDER_FIRST) for i, k in enumerate(ORDER_FIRST)},
    **{k: i + 1 for i, k in enumerate(ORDER_LAST)},
}


def meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    m: Mapping[str, Any] = obj.get("metadata") or {}
    return m


def name(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("name", ""))


def namespace(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("namespace", "") or "")


def group(obj: Mapping[str, Any]) -> str:
    return str(obj.get("apiVersion", "")).rpartition("/")[0]


def version(obj: Mapping[str, Any]) -> str:
    return str(obj.get("apiVersion", "")).rpartition("/")[2]


def kind(obj: Mapping[str, Any]) -> str:
    return str(obj.get("kind", ""))


def subject(kind_: str, namespace_: str, name_: str) -> str:
    """Flux's way of naming an object in messages: Kind/namespace/name, or Kind/name."""
    return f"{kind_}/{namespace_}/{name_}" if namespace_ else f"{kind_}/{name_}"


def describe(obj: Mapping[str, Any]) -> str:
    return subject(kind(obj), namespace(obj), name(obj))


def sort_key(obj: Mapping[str, Any]) -> tuple[int, str, str, str, str]:
    k = kind(obj)
    return (_INDEX.get(k, 0), group(obj), k, namespace(obj), name(obj))


def any_in_metadata(obj: Mapping[str, Any] | None, selector: Mapping[str, str]) -> bool:
    """True when a label or annotation of `obj` has one of the selector's key/values; values
    compare case-insensitively, as Flux users write "Disabled" and "disabled" alike."""
    if not obj:
        return False
    m = meta(obj)
    for source in (m.get("labels") or {}, m.get("annotations") or {}):
        for key, want in selector.items():
            value = source.get(key)
            if isinstance(value, str) and value.lower() == want.lower():
                return True
    return False


def is_cluster_definition(obj: Mapping[str, Any]) -> bool:
    """Objects later objects depend on: CRDs, Namespaces and ClusterRoles (stage one)."""
    k, g = kind(obj), group(obj)
    return (
        (k == "CustomResourceDefinition" and g == "apiextensions.k8s.io")
        or (k == "Namespace" and g == "")
        or (k == "ClusterRole" and g == "rbac.authorization.k8s.io")
    )


def is_class(obj: Mapping[str, Any]) -> bool:
    """StorageClass, IngressClass, GatewayClass, ...: stage two, before what names them."""
    return kind(obj).endswith("Class")


def is_webhook_configuration(obj: Mapping[str, Any]) -> bool:
    return kind(obj) in ORDER_LAST
