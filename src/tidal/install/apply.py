"""Server-side apply of the install objects, in order, waiting where later objects depend on
earlier ones (CRDs Established, the namespace Active)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from tidal.kube import kstatus
from tidal.kube.client import ApiError, Kube
from tidal.kube.discovery import Discovery, object_path
from tidal.runtime.poll import poll_until
from tidal.ssa.objects import describe

FIELD_MANAGER: Final = "tidal"


async def current(kube: Kube, discovery: Discovery, obj: Mapping[str, Any]) -> bool:
    """Whether the live object is Current by kstatus (a CRD Established, a Deployment
    rolled out and available). A fresh CRD's null conditions read as not yet."""
    live = await kube.get(object_path(await discovery.for_object(obj), obj))
    return kstatus.compute(live).status is kstatus.Status.CURRENT


async def apply_all(
    kube: Kube,
    objects: Iterable[dict[str, Any]],
    *,
    within: float,
    report: Callable[[str], None] = lambda _: None,
) -> list[str]:
    """Apply every object (forcing ownership, as an installer must); returns what changed."""
    discovery = Discovery(kube)
    changed = []
    for obj in objects:
        path = object_path(await discovery.for_object(obj), obj)
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
            await poll_until(functools.partial(current, kube, discovery, obj), within)
    return changed


async def deployment_ready(kube: Kube, discovery: Discovery, obj: Mapping[str, Any]) -> bool:
    """The controller's Deployment has all its replicas updated and ready. Looser than
    kstatus (no wait for the Progressing reason), which is all `tidal install` promises."""
    live = await kube.get(object_path(await discovery.for_object(obj), obj))
    status = live.get("status") or {}
    generation = live["metadata"].get("generation")
    conds = {c["type"]: c["status"] for c in status.get("conditions") or []}
    return bool(
        status.get("observedGeneration") == generation
        and conds.get("Available") == "True"
        and status.get("updatedReplicas", 0) == live["spec"].get("replicas", 1)
        and status.get("readyReplicas", 0) == live["spec"].get("replicas", 1)
    )
