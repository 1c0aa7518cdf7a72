"""`tidal events`: the Kubernetes events of Flux objects, as `flux events` lists them.

Only events whose involved object is a Flux kind are shown. `--for Kind/name` narrows to one
object and adds the events of what it reads from (a Kustomization's source, a HelmRelease's
chart source and its generated HelmChart, an Alert's Provider), which is where the cause of a
failure usually is. Rows are sorted by when the event was last seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click

from tidal.cli import table
from tidal.cli.cluster import Session, run
from tidal.cli.objects import GIT_REPOSITORY, KUSTOMIZATION
from tidal.cli.options import CliError, global_flags, options
from tidal.cli.output import log, stdout
from tidal.kube.client import ApiError

EVENTS = "/api/v1/events"
_TYPES = ("Normal", "Warning")


@dataclass(frozen=True)
class _Kind:
    api: str  # group/version of the kind's own objects
    plural: str
    ref_field: tuple[str, ...] = ()  # where its reference to another object lives
    ref_kind: str = ""  # the referenced kind when the reference does not name it
    cross_namespace: bool = False
    chart: bool = False  # a HelmRelease: its HelmChart <namespace>-<name> too


# The kinds tidal serves take their coordinates from tidal.cli.objects (the served CRDs); the
# others are the versions the flux CLI asks for.
KINDS: dict[str, _Kind] = {
    "Kustomization": _Kind(
        KUSTOMIZATION.api_version, KUSTOMIZATION.plural, ("spec", "sourceRef"),
        cross_namespace=True,
    ),
    "HelmRelease": _Kind(
        "helm.toolkit.fluxcd.io/v2", "helmreleases", ("spec", "chart", "spec", "sourceRef"),
        cross_namespace=True, chart=True,
    ),
    "Alert": _Kind(
        "notification.toolkit.fluxcd.io/v1beta3", "alerts", ("spec", "providerRef"), "Provider"
    ),
    "Receiver": _Kind("notification.toolkit.fluxcd.io/v1", "receivers"),
    "Provider": _Kind("notification.toolkit.fluxcd.io/v1beta3", "providers"),
    "ImagePolicy": _Kind(
        "image.toolkit.fluxcd.io/v1beta2", "imagepolicies", ("spec", "imageRepositoryRef"),
        "ImageRepository", cross_namespace=True,
    ),
    "HelmChart": _Kind(
        "source.toolkit.fluxcd.io/v1", "helmcharts", ("spec", "sourceRef"), cross_namespace=True
    ),
    "GitRepository": _Kind(GIT_REPOSITORY.api_version, GIT_REPOSITORY.plural),
    "OCIRepository": _Kind("source.toolkit.fluxcd.io/v1", "ocirepositories"),
    "Bucket": _Kind("source.toolkit.fluxcd.io/v1", "buckets"),
    "HelmRepository": _Kind("source.toolkit.fluxcd.io/v1", "helmrepositories"),
    "ImageUpdateAutomation": _Kind("image.toolkit.fluxcd.io/v1beta2", "imageupdateautomations"),
    "ImageRepository": _Kind("image.toolkit.fluxcd.io/v1beta2", "imagerepositories"),
}  # fmt: skip


def canonical_kind(kind: str) -> str | None:
    """The Flux kind named `kind`, compared without case (as flux does), or None."""
    return next((k for k in KINDS if k.lower() == kind.lower()), None)


def human_duration(seconds: float) -> str:
    """apimachinery's HumanDuration: coarser the older, e.g. 45s, 3m20s, 2h5m, 4d."""
    s = math.floor(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, (hours // 24) % 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{hours // 24 // 365}y"


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_EPOCH = datetime.fromtimestamp(0, UTC)


def event_time(event: Mapping[str, Any]) -> datetime:
    """When the event was last seen: its series, else lastTimestamp, else eventTime."""
    series = event.get("series") or {}
    for value in (
        series.get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("eventTime"),
    ):
        parsed = _time(value)
        if parsed is not None:
            return parsed
    return _EPOCH


def last_seen(event: Mapping[str, Any], now: datetime) -> str:
    """The LAST SEEN column: age, and `(xN over AGE)` for repeated events."""

    def since(value: Any) -> str:
        parsed = _time(value)
        return "<unknown>" if parsed is None else human_duration((now - parsed).total_seconds())

    first = (
        since(event.get("eventTime"))
        if event.get("eventTime")
        else since(event.get("firstTimestamp"))
    )
    series = event.get("series")
    if series:
        return f"{since(series.get('lastObservedTime'))} (x{series.get('count', 0)} over {first})"
    count = int(event.get("count") or 0)
    if count > 1:
        return f"{since(event.get('lastTimestamp'))} (x{count} over {first})"
    return first


def headers(show_namespace: bool) -> list[str]:
    names = ["Last seen", "Type", "Reason", "Object", "Message"]
    return ["Namespace", *names] if show_namespace else names


def row(event: Mapping[str, Any], show_namespace: bool, now: datetime) -> list[str]:
    involved = event.get("involvedObject") or {}
    cells = [
        last_seen(event, now),
        str(event.get("type", "")),
        str(event.get("reason", "")),
        f"{involved.get('kind', '')}/{involved.get('name', '')}",
        str(event.get("message", "")),
    ]
    ns = str((event.get("metadata") or {}).get("namespace", ""))
    return [ns, *cells] if show_namespace else cells


def shown(event: Mapping[str, Any], types: Sequence[str]) -> bool:
    kind = str((event.get("involvedObject") or {}).get("kind", ""))
    if canonical_kind(kind) is None:
        return False
    return not types or str(event.get("type", "")).lower() in (t.lower() for t in types)


def _selector(kind: str, name: str) -> str:
    text = f"involvedObject.kind={kind}"
    return f"{text},involvedObject.name={name}" if name else text


def _nested(obj: Mapping[str, Any], path: Sequence[str]) -> Any:
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


async def related(s: Session, kind: str, name: str) -> list[tuple[str, str, str]]:
    """(kind, name, namespace) of what the object reads from, as `flux events --for` adds."""
    info = KINDS[kind]
    if not info.ref_field:
        return []
    path = f"/apis/{info.api}/namespaces/{s.namespace}/{info.plural}/{name}"
    try:
        obj = await s.kube.get(path)
    except ApiError as e:
        # A 404 without a Status body: the resource type itself is missing (as in
        # cluster.api_error). A missing object is left to `run`, which prints the API server's
        # own message, as flux does.
        if e.status == 404 and e.reason != "NotFound":
            raise CliError(
                f'no matches for kind "{kind}" in version "{info.api}": its CRD is not '
                "installed in this cluster"
            ) from None
        raise
    ref = _nested(obj, info.ref_field)
    if not isinstance(ref, Mapping):
        raise CliError(
            f"field '{'.'.join((*info.ref_field, 'name'))}' for '{s.namespace}/{name}' not found"
        )
    ref_kind = info.ref_kind or str(ref.get("kind", ""))
    namespace = str(ref.get("namespace") or s.namespace) if info.cross_namespace else s.namespace
    refs = [(ref_kind, str(ref.get("name", "")), namespace)]
    if info.chart:
        refs.append(("HelmChart", f"{s.namespace}-{name}", namespace))
    return refs


def _events_path(namespace: str) -> str:
    """The events of one namespace, or of all when `namespace` is empty."""
    return f"/api/v1/namespaces/{namespace}/events" if namespace else EVENTS


async def _list(s: Session, namespace: str, selector: str | None) -> list[dict[str, Any]]:
    path = _events_path(namespace)
    items: list[dict[str, Any]] = []
    params: dict[str, str] = {"limit": "500"}
    if selector:
        params["fieldSelector"] = selector
    while True:
        page = await s.kube.get(path, params)
        items += page.get("items") or []
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return items
        params["continue"] = token


async def _events(
    s: Session, all_namespaces: bool, target: str, types: Sequence[str], watch: bool
) -> None:
    namespace = "" if all_namespaces else s.namespace
    queries: list[tuple[str, str | None]] = [(namespace, None)]
    show_namespace = not namespace
    if target:
        kind_text, _, name = target.partition("/")
        kind = canonical_kind(kind_text)
        if not kind_text:
            raise CliError("--for selector must be of format <kind>[/<name>]")
        if kind is None:
            raise CliError(f"'{kind_text}' is not a recognized Flux kind")
        # flux scopes --for to the namespace flag even with -A.
        queries = [(s.namespace, _selector(kind, name))]
        if name:
            for ref_kind, ref_name, ref_ns in await related(s, kind, name):
                show_namespace = show_namespace or ref_ns != namespace
                queries.append((ref_ns, _selector(ref_kind, ref_name)))
    if watch:
        await _watch(s, queries, types, show_namespace)
        return
    items = [e for ns, sel in queries for e in await _list(s, ns, sel)]
    items.sort(key=event_time)
    now = datetime.now(UTC)
    rows = [row(e, show_namespace, now) for e in items if shown(e, types)]
    if not rows:
        where = "" if all_namespaces else f" in {s.namespace} namespace"
        log.failure(f"No events found{where}.")
        return
    stdout(table.render(headers(show_namespace), rows))


async def _watch(
    s: Session, queries: list[tuple[str, str | None]], types: Sequence[str], show_namespace: bool
) -> None:
    first = True

    async def follow(namespace: str, selector: str | None) -> None:
        nonlocal first
        params = {"fieldSelector": selector} if selector else None
        async for change in s.kube.watch(
            _events_path(namespace), params=params, timeout_seconds=3600
        ):
            event = change.get("object") or {}
            if change.get("type") in ("DELETED", "BOOKMARK", "ERROR") or not shown(event, types):
                continue
            # flux prints each event as a table of its own, the header only before the first.
            head = headers(show_namespace) if first else None
            first = False
            stdout(table.render(head, [row(event, show_namespace, datetime.now(UTC))]))

    # Like flux, stream until the command's --timeout, then stop quietly.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, s.remaining())):
            await asyncio.gather(*(follow(ns, sel) for ns, sel in queries))


@click.command("events")
@click.option(
    "-A", "--all-namespaces", is_flag=True, help="Show events of Flux objects in every namespace."
)
@click.option("-w", "--watch", is_flag=True, help="Keep streaming events as they happen.")
@click.option("--for", "target", default="", help="Only the events of <kind>[/<name>].")
@click.option(
    "--types",
    default="",
    help="Only these event types, comma-separated (Normal, Warning).",
)
@global_flags
@click.pass_context
def events(ctx: click.Context, all_namespaces: bool, watch: bool, target: str, types: str) -> None:
    """Show the Kubernetes events of Flux objects (and of their sources with --for)."""
    wanted = [t for t in types.split(",") if t]
    for t in wanted:
        if t.lower() not in (x.lower() for x in _TYPES):
            raise CliError(f"type '{t}' not supported. Supported types are Normal, Warning")
    run(options(ctx), lambda s: _events(s, all_namespaces, target, wanted, watch))
