"""`.Capabilities` from the cluster, as Helm's install computes them (action.getCapabilities,
GetVersionSet): the server's gitVersion, and every served group/version plus
group/version/Kind. Pass them to tidal.helm.render.render(kube_version=, api_versions=).
"""

from __future__ import annotations

import asyncio
from typing import Any

from tidal.kube.client import ApiError, Kube


async def discover(kube: Kube) -> tuple[str, list[str]]:
    version: dict[str, Any] = await kube.get("/version")
    core: dict[str, Any] = await kube.get("/api")
    groups: dict[str, Any] = await kube.get("/apis")
    gvs = [f"{v}" for v in core.get("versions") or []]
    for g in groups.get("groups") or []:
        gvs += [v["groupVersion"] for v in g.get("versions") or [] if "groupVersion" in v]

    async def kinds(gv: str) -> list[str]:
        path = f"/api/{gv}" if "/" not in gv else f"/apis/{gv}"
        try:
            res = await kube.get(path)
        except ApiError:
            return []  # Helm tolerates groups whose discovery fails (orphaned APIServices)
        return [f"{gv}/{r['kind']}" for r in res.get("resources") or [] if r.get("kind")]

    found = set(gvs)
    for batch in await asyncio.gather(*(kinds(gv) for gv in gvs)):
        found.update(batch)
    return str(version.get("gitVersion", "")), sorted(found)
