"""Server-side apply of the install objects, in order, waiting where later objects depend on
earlier ones (CRDs Established, the namespace Active)."""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

from tidal.kube.client import ApiError, Kube

FIELD_MANAGER: Final = "tidal"

# The kinds tidal installs; a general discovery-based mapper arrives with the Kustomization
# controller, which applies arbitrary kinds.
_RBAC = "/apis/rbac.authorization.k8s.io/v1"
_PATHS: Final = {
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"):
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    ("v1", "Namespace"): "/api/v1/namespaces",
    ("v1", "ServiceAccount"): "/api/v1/namespaces/{ns}/serviceaccounts",
    ("v1", "Service"): "/api/v1/namespaces/{ns}/services",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): f"{_RBAC}/clusterroles",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): f"{_RBAC}/clusterrolebindings",
    ("apps/v1", "Deployment"): "/apis/apps/v1/namespaces/{ns}/deployments",
}  # fmt: skip


def object_path(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    collection = _PATHS[(obj["apiVersion"], obj["kind"])]
    return collection.format(ns=meta.get("namespace", "")) + f"/{meta['name']}"


def describe(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['kind']}/{ns}{meta['name']}"


async def poll_until(
    check: Callable[[], Awaitable[bool]], within: float, every: float = 0.5
) -> None:
    """Await `check` until true; TimeoutError after `within` seconds."""
    async with asyncio.timeout(within):
        for _ in itertools.count():
            if await check():
                return
            await asyncio.sleep(every)


async def _established(kube: Kube, obj: dict[str, Any]) -> bool:
    live = await kube.get(object_path(obj))
    # status.conditions is null for a moment after a CRD is created.
    conds = {c["type"]: c["status"] for c in (live.get("status") or {}).get("conditions") or []}
    return conds.get("Established") == "True"


async def apply_all(
    kube: Kube,
    objects: Iterable[dict[str, Any]],
    *,
    within: float,
    report: Callable[[str], None] = lambda _: None,
) -> list[str]:
    """Apply every object (forcing ownership, as an installer must); returns what changed."""
    changed = []
    for obj in objects:
        path = object_path(obj)
        try:
            before = await kube.get(path)
        except ApiError as e:
            if e.status != 404:
                raise
            before = {}
        after = await kube.apply(path, obj, field_manager=FIELD_MANAGER, force=True)
        if before.get("metadata", {}).get("resourceVersion") != after["metadata"].get(
            "resourceVersion"
        ):
            changed.append(describe(obj))
            report(f"{describe(obj)} {'configured' if before else 'created'}")
        if obj["kind"] == "CustomResourceDefinition":
            await poll_until(functools.partial(_established, kube, obj), within)
    return changed


async def deployment_ready(kube: Kube, obj: dict[str, Any]) -> bool:
    live = await kube.get(object_path(obj))
    status = live.get("status") or {}
    generation = live["metadata"].get("generation")
    conds = {c["type"]: c["status"] for c in status.get("conditions") or []}
    return bool(
        status.get("observedGeneration") == generation
        and conds.get("Available") == "True"
        and status.get("updatedReplicas", 0) == live["spec"].get("replicas", 1)
        and status.get("readyReplicas", 0) == live["spec"].get("replicas", 1)
    )
