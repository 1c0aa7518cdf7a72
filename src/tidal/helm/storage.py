"""Helm's release storage, `secret` driver (helm.sh/release.v1), in Python.

A release revision is a Secret `sh.helm.release.v1.<name>.v<version>` of type
`helm.sh/release.v1`, labelled owner=helm, name, status, version (and createdAt on create,
modifiedAt on update), whose `data.release` is base64(gzip(JSON of Helm's release.Release)), and
the API base64-encodes Secret data once more. The JSON mirrors Go's encoding/json of Helm's
structs (field order, omitempty, sorted map keys, HTML-escaped strings), so the helm CLI and
tidal read each other's releases (pkg/storage/driver/secrets.go, util.go; pkg/release/v1).
No Helm SDK is needed here.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import re
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tidal.kube.client import ApiError, Kube

SECRET_TYPE = "helm.sh/release.v1"  # noqa: S105 - a Secret type, not a password
OWNER = "helm"
SYSTEM_LABELS = ("name", "owner", "status", "version", "createdAt", "modifiedAt")
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
# A stored release is a few MB at most (etcd's object limit is ~1.5 MB); bound decompression.
MAX_RELEASE_JSON = 64 * 1024 * 1024

# Helm's release statuses (pkg/release/common/status.go).
DEPLOYED, SUPERSEDED, FAILED, UNINSTALLED = "deployed", "superseded", "failed", "uninstalled"
UNINSTALLING, PENDING_INSTALL = "uninstalling", "pending-install"
PENDING_UPGRADE, PENDING_ROLLBACK = "pending-upgrade", "pending-rollback"


class StorageError(Exception):
    """A storage Secret could not be decoded as a Helm release."""


def go_time(dt: datetime | None = None) -> str:
    """A time as Go's time.Time marshals to JSON (RFC 3339, fraction trimmed, offset or Z)."""
    dt = dt or datetime.now().astimezone()
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += f".{dt.microsecond:06d}".rstrip("0")
    offset = dt.utcoffset()
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{text}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def parse_go_time(text: str) -> datetime | None:
    """A Go JSON time back to datetime (nanoseconds truncated to microseconds)."""
    if not text or text == GO_ZERO_TIME:
        return None
    m = re.fullmatch(r"([^.]+)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if m is None:
        return None
    frac = (m[2] or "")[:6].ljust(6, "0")
    return datetime.fromisoformat(f"{m[1]}.{frac}{m[3].replace('Z', '+00:00')}")


@dataclass
class HookExecution:
    started_at: str = ""
    completed_at: str = ""
    phase: str = ""  # Unknown | Running | Succeeded | Failed


@dataclass
class ReleaseHook:
    name: str
    kind: str
    path: str
    manifest: str
    events: list[str]
    weight: int = 0
    delete_policies: list[str] = field(default_factory=list)
    output_log_policies: list[str] = field(default_factory=list)
    last_run: HookExecution = field(default_factory=HookExecution)


@dataclass
class Info:
    first_deployed: str = ""  # Go JSON times, "" = zero (omitted)
    last_deployed: str = ""
    deleted: str = ""
    description: str = ""
    status: str = ""
    notes: str = ""


@dataclass
class Release:
    name: str
    namespace: str
    version: int
    info: Info
    chart: dict[str, Any]  # Helm's chart JSON: metadata, lock, templates, values, schema, files
    config: dict[str, Any] = field(default_factory=dict)
    manifest: str = ""
    hooks: list[ReleaseHook] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # custom Secret labels (not in JSON)
    apply_method: str = ""  # Helm 4: "ssa" | "csa"

    @property
    def key(self) -> str:
        return secret_name(self.name, self.version)


def secret_name(name: str, version: int) -> str:
    return f"sh.helm.release.v1.{name}.v{version}"


# --- JSON as Go's encoding/json writes it ------------------------------------------------------


def _go_value(v: Any) -> Any:
    """Maps get sorted keys (Go sorts map keys); integral floats print as integers."""
    if isinstance(v, Mapping):
        return {str(k): _go_value(v[k]) for k in sorted(v, key=str)}
    if isinstance(v, list | tuple):
        return [_go_value(x) for x in v]
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return int(v)
    if isinstance(v, datetime):
        return go_time(v)
    return v


def _go_dumps(obj: Any) -> bytes:
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # Go escapes HTML-significant characters and the JS line separators in strings.
    for ch, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(ch, esc)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode("utf-8", "replace")


def _omit(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # `omitempty`/`omitzero`: drop "", 0, empty maps and lists, None.
    return {k: v for k, v in pairs if v not in ("", 0, None, {}, []) or v is False}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def chart_record(chart: Any) -> dict[str, Any]:
    """Helm's stored chart (chart/v2 Chart JSON) from a tidal.helm.chart.LoadedChart."""
    return {
        "metadata": chart.metadata,
        "lock": chart.lock,
        "templates": [{"name": f.name, "data": _b64(f.data)} for f in chart.templates],
        "values": chart.values,
        "schema": None if chart.schema is None else _b64(chart.schema),
        "schemamodtime": GO_ZERO_TIME,
        "files": [{"name": f.name, "data": _b64(f.data)} for f in chart.files],
    }


def _chart_json(chart: Mapping[str, Any]) -> dict[str, Any]:
    # Struct fields keep their order; metadata is a struct too (its maps get sorted).
    out = dict(chart)
    for key in ("values", "lock"):
        if isinstance(out.get(key), Mapping):
            out[key] = _go_value(out[key])
    meta = out.get("metadata")
    if isinstance(meta, Mapping) and isinstance(meta.get("annotations"), Mapping):
        out["metadata"] = {**meta, "annotations": _go_value(meta["annotations"])}
    return out


def release_json(r: Release) -> bytes:
    info = _omit(
        [
            ("first_deployed", r.info.first_deployed),
            ("last_deployed", r.info.last_deployed),
            ("deleted", r.info.deleted),
            ("description", r.info.description),
            ("status", r.info.status),
            ("notes", r.info.notes),
        ]
    )
    hooks = [
        _omit(
            [
                ("name", h.name),
                ("kind", h.kind),
                ("path", h.path),
                ("manifest", h.manifest),
                ("events", list(h.events)),
            ]
        )
        | {
            "last_run": _omit(
                [("started_at", h.last_run.started_at), ("completed_at", h.last_run.completed_at)]
            )
            | {"phase": h.last_run.phase}
        }
        | _omit(
            [
                ("weight", h.weight),
                ("delete_policies", list(h.delete_policies)),
                ("output_log_policies", list(h.output_log_policies)),
            ]
        )
        for h in r.hooks
    ]
    obj = _omit(
        [
            ("name", r.name),
            ("info", info),
            ("chart", _chart_json(r.chart) if r.chart else None),
            ("config", _go_value(r.config)),
            ("manifest", r.manifest),
            ("hooks", hooks),
            ("version", r.version),
            ("namespace", r.namespace),
            ("apply_method", r.apply_method),
        ]
    )
    if "info" not in obj:
        obj = {"name": r.name, "info": {}} | obj  # Info is a pointer: an empty one is `{}`
    return _go_dumps(obj)


def encode_release(r: Release) -> str:
    """Helm's encodeRelease: base64 of the gzip'd (best compression) release JSON."""
    return _b64(gzip.compress(release_json(r), compresslevel=9, mtime=0))


def decode_release(data: str | bytes) -> Release:
    """Helm's decodeRelease: base64, gunzip when gzip'd (magic 1f 8b 08), JSON."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        raise StorageError(f"release data is not base64: {e}") from None
    if raw[:3] == b"\x1f\x8b\x08":
        try:
            d = zlib.decompressobj(wbits=31)
            raw = d.decompress(raw, MAX_RELEASE_JSON)
            if d.unconsumed_tail:
                raise StorageError(f"release JSON is larger than {MAX_RELEASE_JSON} bytes")
        except zlib.error as e:
            raise StorageError(f"release data is not valid gzip: {e}") from None
    try:
        obj = json.loads(raw)
    except ValueError as e:
        raise StorageError(f"release data is not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise StorageError("release JSON is not an object")
    return _from_json(obj)


def _from_json(obj: dict[str, Any]) -> Release:
    info = obj.get("info") or {}
    hooks = []
    for h in obj.get("hooks") or []:
        run = h.get("last_run") or {}
        hooks.append(
            ReleaseHook(
                name=h.get("name", ""),
                kind=h.get("kind", ""),
                path=h.get("path", ""),
                manifest=h.get("manifest", ""),
                events=list(h.get("events") or []),
                weight=int(h.get("weight", 0)),
                delete_policies=list(h.get("delete_policies") or []),
                output_log_policies=list(h.get("output_log_policies") or []),
                last_run=HookExecution(
                    run.get("started_at", ""), run.get("completed_at", ""), run.get("phase", "")
                ),
            )
        )
    return Release(
        name=obj.get("name", ""),
        namespace=obj.get("namespace", ""),
        version=int(obj.get("version", 0)),
        info=Info(
            first_deployed=info.get("first_deployed", ""),
            last_deployed=info.get("last_deployed", ""),
            deleted=info.get("deleted", ""),
            description=info.get("description", ""),
            status=info.get("status", ""),
            notes=info.get("notes", ""),
        ),
        chart=obj.get("chart") or {},
        config=obj.get("config") or {},
        manifest=obj.get("manifest", ""),
        hooks=hooks,
        apply_method=obj.get("apply_method", ""),
    )


# --- Secrets ------------------------------------------------------------------------------------


def encode(
    r: Release, *, update: bool = False, now: float | None = None, namespace: str | None = None
) -> dict[str, Any]:
    """The storage Secret for a revision, labelled as Helm's Create (createdAt) or Update
    (modifiedAt) labels it; custom labels first, Helm's system labels win. `namespace` is the
    storage namespace when it is not the release's own (Flux's spec.storageNamespace)."""
    stamp = str(int(now if now is not None else time.time()))
    labels = {k: v for k, v in r.labels.items() if k not in SYSTEM_LABELS}
    labels["modifiedAt" if update else "createdAt"] = stamp
    labels |= {"name": r.name, "owner": OWNER, "status": r.info.status, "version": str(r.version)}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": r.key, "namespace": namespace or r.namespace, "labels": labels},
        "type": SECRET_TYPE,
        # Secret data is base64 in the API; Helm's value is itself base64 text: two layers.
        "data": {"release": _b64(encode_release(r).encode())},
    }


def decode(secret: Mapping[str, Any]) -> Release:
    """A release from its storage Secret (as read from the API)."""
    data = (secret.get("data") or {}).get("release")
    if not isinstance(data, str):
        raise StorageError("secret has no data.release")
    try:
        inner = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        raise StorageError(f"secret data.release is not base64: {e}") from None
    r = decode_release(inner)
    meta = secret.get("metadata") or {}
    labels = meta.get("labels") or {}
    r.labels = {k: v for k, v in labels.items() if k not in SYSTEM_LABELS}
    if not r.namespace:
        r.namespace = meta.get("namespace", "")
    return r


def _secrets(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/secrets"


async def history(kube: Kube, namespace: str, name: str) -> list[Release]:
    """Every stored revision of a release, oldest first (Helm's History + SortByRevision).
    Secrets that do not decode are skipped, as Helm's driver logs and skips them."""
    found = await kube.get(
        _secrets(namespace), params={"labelSelector": f"name={name},owner={OWNER}"}
    )
    out = []
    for item in found.get("items") or []:
        try:
            out.append(decode(item))
        except StorageError:
            continue
    return sorted(out, key=lambda r: r.version)


async def get(kube: Kube, namespace: str, name: str, version: int) -> Release | None:
    try:
        secret = await kube.get(f"{_secrets(namespace)}/{secret_name(name, version)}")
    except ApiError as e:
        if e.status == 404:
            return None
        raise
    return decode(secret)


async def latest(kube: Kube, namespace: str, name: str) -> Release | None:
    revisions = await history(kube, namespace, name)
    return revisions[-1] if revisions else None


async def create(
    kube: Kube, r: Release, *, max_history: int = 0, namespace: str | None = None
) -> None:
    """Store a new revision (in `namespace`, else the release's); with max_history > 0,
    first prune to make room, as Helm does. ApiError 409 if the revision exists."""
    ns = namespace or r.namespace
    if max_history > 0:
        await prune_history(kube, ns, r.name, max_history - 1)
    await kube.create(_secrets(ns), encode(r, namespace=ns))


async def update(kube: Kube, r: Release, *, namespace: str | None = None) -> None:
    """Replace a stored revision (Helm's Update: the Secret is rewritten, modifiedAt set)."""
    ns = namespace or r.namespace
    await kube.replace(f"{_secrets(ns)}/{r.key}", encode(r, update=True, namespace=ns))


async def delete(kube: Kube, namespace: str, name: str, version: int) -> None:
    try:
        await kube.delete(f"{_secrets(namespace)}/{secret_name(name, version)}")
    except ApiError as e:
        if e.status != 404:
            raise


async def prune_history(kube: Kube, namespace: str, name: str, maximum: int) -> list[int]:
    """Helm's removeLeastRecent: delete the oldest revisions until at most `maximum` remain,
    never the latest deployed one. Returns the deleted versions."""
    if maximum < 0:
        return []
    revisions = await history(kube, namespace, name)
    if len(revisions) <= maximum:
        return []
    deployed = [r.version for r in revisions if r.info.status == DEPLOYED]
    keep = deployed[-1] if deployed else None
    doomed: list[int] = []
    for r in revisions:
        if len(revisions) - len(doomed) == maximum:
            break
        if r.version != keep:
            doomed.append(r.version)
    for version in doomed:
        await delete(kube, namespace, name, version)
    return doomed


def new_release(
    chart: Any,
    rendered: Any,
    *,
    name: str,
    namespace: str,
    version: int,
    status: str,
    description: str,
    first_deployed: str = "",
    apply_method: str = "ssa",
) -> Release:
    """A release record for a tidal.helm.render result, as Helm's install/upgrade builds one."""
    now = go_time()
    return Release(
        name=name,
        namespace=namespace,
        version=version,
        info=Info(
            first_deployed=first_deployed or now,
            last_deployed=now,
            description=description,
            status=status,
            notes=rendered.notes,
        ),
        chart=chart_record(chart),
        config=dict(rendered.config),
        manifest=rendered.manifest,
        hooks=[
            ReleaseHook(
                name=h.name,
                kind=h.kind,
                path=h.path,
                manifest=h.manifest,
                events=list(h.events),
                weight=h.weight,
                delete_policies=list(h.delete_policies),
                output_log_policies=list(h.output_log_policies),
            )
            for h in rendered.hooks
        ],
        apply_method=apply_method,
    )
