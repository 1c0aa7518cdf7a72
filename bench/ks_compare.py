"""What tidal and Flux leave on the same objects, side by side, for bench/kustomization.py.

After each controller's part of the run: the status of its Kustomizations and GitRepository, the
events in its namespace, and the metadata and field managers of objects it applied. The values
are normalized (revisions, digests, durations, times, ports, the namespace prefix) so only
differences of shape remain; Flux is the reference.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tidal.kube.client import Kube

SOURCE_API = "/apis/source.toolkit.fluxcd.io/v1"
KS_API = "/apis/kustomize.toolkit.fluxcd.io/v1"
KUSTOMIZATIONS = ("cold", "noop", "fan-000")
EVENT_OBJECTS = ("cold", "noop", "fan-000", "apps", "fan")
Snapshot = dict[str, Any]


async def snapshot(kube: Kube, side: str) -> Snapshot:
    ks = f"{KS_API}/namespaces/{side}/kustomizations"
    snap: Snapshot = {name: await kube.get(f"{ks}/{name}") for name in KUSTOMIZATIONS}
    snap["apps"] = await kube.get(f"{SOURCE_API}/namespaces/{side}/gitrepositories/apps")
    snap["events"] = (await kube.get(f"/api/v1/namespaces/{side}/events"))["items"]
    cold = f"namespaces/{side}-cold"
    snap["ConfigMap"] = await kube.get(f"/api/v1/{cold}/configmaps/app-0000-a")
    snap["Deployment"] = await kube.get(f"/apis/apps/v1/{cold}/deployments/app-0000")
    return snap


def normalize(text: str, side: str) -> str:
    text = re.sub(r"sha1:[0-9a-f]{40}", "sha1:<sha>", text)
    text = re.sub(r"sha256:[0-9a-f]{64}", "sha256:<digest>", text)
    text = re.sub(r"\b[0-9a-f]{40}\b", "<sha>", text)
    text = re.sub(r"\b[0-9a-f]{64}\b", "<digest>", text)
    text = re.sub(r"\b\d{4}-\d\d-\d\dT[0-9:.]+Z", "<time>", text)
    # Go durations (1h0m0s) are kept whole: how they are spelled is part of the contract.
    text = re.sub(r"\b\d+(\.\d+)?(ms|µs|s)\b", "<dur>", text)
    text = re.sub(r"127\.0\.0\.1:\d+", "<host>", text)
    text = re.sub(rf"\b{side}-(cold|noop|fan)\b", r"<ns>-\1", text)
    return re.sub(rf"(/|\b){side}(/|_|\b)", r"\1<ns>\2", text)


def status_view(obj: dict[str, Any], side: str) -> dict[str, str]:
    """A Kustomization's or GitRepository's status flattened to comparable strings."""
    status = obj.get("status") or {}
    out: dict[str, str] = {}
    for key, value in sorted(status.items()):
        if key == "conditions":
            for c in value:
                msg = normalize(str(c.get("message", "")), side)
                out[f"condition {c['type']}"] = f"{c['status']} {c.get('reason')}: {msg}"
        elif key == "inventory":
            entries = value.get("entries") or []
            ids = [e.get("id", "") for e in entries]
            first = normalize(json.dumps(entries[0], sort_keys=True), side) if entries else ""
            out["inventory"] = f"{len(entries)} entries, e.g. {first}"
            out["inventory order"] = "sorted by id" if ids == sorted(ids) else "not sorted by id"
        elif key == "history":
            fields = sorted({k for h in value for k in h})
            out["history"] = f"{len(value)} entries with fields {', '.join(fields)}"
        elif key == "artifact":
            out["artifact fields"] = ", ".join(sorted(value))
            out["artifact url"] = normalize(str(value.get("url", "")), side)
        else:
            out[key] = normalize(json.dumps(value, sort_keys=True), side)
    out["finalizers"] = ", ".join(obj["metadata"].get("finalizers") or [])
    return out


def applied_view(obj: dict[str, Any], side: str) -> dict[str, str]:
    """An applied object's labels, annotations and field managers."""
    meta = obj["metadata"]
    managers = sorted(
        " ".join(str(m[k]) for k in ("manager", "operation", "subresource") if m.get(k))
        for m in meta.get("managedFields") or []
    )
    return {
        "labels": normalize(json.dumps(meta.get("labels") or {}, sort_keys=True), side),
        "annotations": normalize(json.dumps(meta.get("annotations") or {}, sort_keys=True), side),
        "field managers": "; ".join(managers),
    }


def event_view(events: list[dict[str, Any]], side: str) -> dict[str, str]:
    """Events on the compared objects, by (object, type, reason): how many Event objects, the
    sum of their counts, and their distinct messages in order."""
    grouped: dict[str, list[tuple[str, int, str]]] = {}
    for e in events:
        inv = e.get("involvedObject") or {}
        if inv.get("name") not in EVENT_OBJECTS or inv.get("kind") is None:
            continue
        key = f"event {inv['kind']}/{inv['name']} {e.get('type')} {e.get('reason')}"
        when = str(e.get("lastTimestamp") or e.get("eventTime") or "")
        msg = normalize(str(e.get("message", "")), side).replace("\n", " | ")
        source = (e.get("source") or {}).get("component") or e.get("reportingComponent", "")
        grouped.setdefault(key, []).append((when, int(e.get("count") or 1), f"[{source}] {msg}"))
    out = {}
    for key, items in grouped.items():
        items.sort()
        messages = list(dict.fromkeys(m for _, _, m in items))
        shown = " || ".join(m[:160] for m in messages[:3])
        more = f" (+{len(messages) - 3} more)" if len(messages) > 3 else ""
        total = sum(c for _, c, _ in items)
        out[key] = f"{len(items)} Events, count {total}: {shown}{more}"
    return out


def views(snap: Snapshot, side: str) -> dict[str, dict[str, str]]:
    out = {f"Kustomization {n}": status_view(snap[n], side) for n in KUSTOMIZATIONS}
    out["GitRepository apps"] = status_view(snap["apps"], side)
    for kind in ("ConfigMap", "Deployment"):
        out[f"applied {kind} (cold)"] = applied_view(snap[kind], side)
    out["events"] = event_view(snap["events"], side)
    return out


def compare(snapshots: dict[str, Snapshot]) -> list[str]:
    """Report lines: per object, "same" or each differing key with Flux's and tidal's value."""
    if not {"tidal", "flux"} <= set(snapshots) or not all(snapshots.values()):
        return []
    flux, tidal = views(snapshots["flux"], "flux"), views(snapshots["tidal"], "tidal")
    lines = []
    for obj in flux:
        f, t = flux[obj], tidal[obj]
        diffs = [k for k in sorted(set(f) | set(t)) if f.get(k) != t.get(k)]
        if not diffs:
            lines.append(f"  {obj}: same")
            continue
        lines.append(f"  {obj}:")
        for k in diffs:
            lines += [
                f"    {k}",
                f"      flux:  {f.get(k, '(absent)')}",
                f"      tidal: {t.get(k, '(absent)')}",
            ]
    return lines
