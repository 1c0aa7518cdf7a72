"""`tidal stats`: how many Flux objects of each kind run, fail and are suspended, and how much
artifact storage the sources use; flux's table, byte for byte.

The rows are flux's thirteen reconciler kinds whether or not the cluster serves them (a kind
whose CRD is missing counts zero), so the report reads the same on a tidal cluster as on a Flux
one. A kind tidal serves must keep the apiVersion flux asks for here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import click

from tidal.cli import table
from tidal.cli.cluster import Session, run
from tidal.cli.objects import GIT_REPOSITORY, KUSTOMIZATION
from tidal.cli.options import global_flags, options
from tidal.cli.output import stdout
from tidal.kube.client import ApiError
from tidal.kube.discovery import Discovery, NoMatchError

HEADERS: Final = ("Reconcilers", "Running", "Failing", "Suspended", "Storage")

_SOURCE: Final = GIT_REPOSITORY.api_version
_HELM: Final = "helm.toolkit.fluxcd.io/v2"
_NOTIFICATION: Final = "notification.toolkit.fluxcd.io"
_IMAGE: Final = "image.toolkit.fluxcd.io/v1"

# (kind, apiVersion) in flux's order.
RECONCILERS: Final = (
    (GIT_REPOSITORY.kind, GIT_REPOSITORY.api_version),
    ("OCIRepository", _SOURCE),
    ("HelmRepository", _SOURCE),
    ("HelmChart", _SOURCE),
    ("Bucket", _SOURCE),
    (KUSTOMIZATION.kind, KUSTOMIZATION.api_version),
    ("HelmRelease", _HELM),
    ("Alert", f"{_NOTIFICATION}/v1beta3"),
    ("Provider", f"{_NOTIFICATION}/v1beta3"),
    ("Receiver", f"{_NOTIFICATION}/v1"),
    ("ImageUpdateAutomation", _IMAGE),
    ("ImagePolicy", _IMAGE),
    ("ImageRepository", _IMAGE),
)


@dataclass(frozen=True)
class Stats:
    total: int = 0
    failing: int = 0
    suspended: int = 0
    storage: int = 0  # bytes


def count(items: Sequence[Mapping[str, Any]]) -> Stats:
    """Suspended is `spec.suspend: true`; failing is each Ready=False condition; storage adds
    up the sources' `status.artifact.size`."""
    failing = suspended = storage = 0
    for item in items:
        if (item.get("spec") or {}).get("suspend") is True:
            suspended += 1
        status = item.get("status") or {}
        conditions = status.get("conditions") if isinstance(status, Mapping) else None
        for c in conditions if isinstance(conditions, list) else ():
            if isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "False":
                failing += 1
        size = ((status.get("artifact") or {}) if isinstance(status, Mapping) else {}).get("size")
        # Only a JSON integer counts, as only an int64 does for flux.
        if isinstance(size, int) and not isinstance(size, bool):
            storage += size
    return Stats(len(items), failing, suspended, storage)


def format_size(size: int) -> str:
    """Bytes in binary units with one decimal (`1.5 KiB`), `-` for none."""
    if size == 0:
        return "-"
    if size < 1024:
        return f"{size} B"
    div, exp = 1024, 0
    n = size // 1024
    while n >= 1024:
        div *= 1024
        exp += 1
        n //= 1024
    return f"{size / div:.1f} {'KMGTPE'[exp]}iB"


def render(rows: Sequence[tuple[str, Stats]]) -> str:
    return table.render(
        HEADERS,
        [
            [
                kind,
                str(s.total - s.suspended),
                str(s.failing),
                str(s.suspended),
                format_size(s.storage),
            ]
            for kind, s in rows
        ],
    )


async def _stats(
    s: Session, discovery: Discovery, kind: str, api_version: str, all_namespaces: bool
) -> Stats:
    # flux reports a kind it cannot list (not installed, forbidden) as having no objects.
    try:
        resource = await discovery.resource(api_version, kind)
        path = resource.collection("" if all_namespaces else s.namespace)
        items = (await s.kube.get(path)).get("items") or []
    except (NoMatchError, ApiError):
        return Stats()
    return count(items)


@click.command("stats")
@click.option(
    "-A",
    "--all-namespaces",
    is_flag=True,
    help="List the statistics for objects across all namespaces.",
)
@global_flags
@click.pass_context
def stats(ctx: click.Context, all_namespaces: bool) -> None:
    """Stats of Flux reconciles: the objects of each kind, running, failing and suspended, and
    the storage used by the artifacts of each source kind.

    \b
    tidal stats --namespace default
    tidal stats -A
    """
    opts = options(ctx)

    async def work(s: Session) -> list[tuple[str, Stats]]:
        discovery = Discovery(s.kube)
        found = await asyncio.gather(
            *(_stats(s, discovery, kind, api, all_namespaces) for kind, api in RECONCILERS)
        )
        return [(kind, st) for (kind, _), st in zip(RECONCILERS, found, strict=True)]

    stdout(render(run(opts, work)))
