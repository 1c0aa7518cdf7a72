"""Objects as `flux export` and `flux create ... --export` print them.

flux decodes an object into its Go API struct and builds a fresh one from it: apiVersion, kind,
metadata with only name, namespace, labels and annotations (so uid, resourceVersion, generation,
creationTimestamp, managedFields, finalizers and ownerReferences go), the spec, and no status.
Labels and annotations are kept as they are, `reconcile.fluxcd.io/requestedAt` and
`kubectl.kubernetes.io/last-applied-configuration` included. Going through the Go struct also:

- drops spec fields the struct does not know;
- drops zero values of `omitempty` fields (false, "", empty lists), but keeps pointer fields
  that are set, so `ignore: ""` and `ref: {}` survive;
- rewrites durations in Go's canonical form: `interval: 1m` and the defaulted `timeout: 60s`
  come out as `1m0s`.

tidal's API models mirror the Go structs, so they supply those semantics: a required field is
always written, a field defaulting to None is a Go pointer (written when set), any other field
is `omitempty`, and a string field with the duration pattern is a metav1.Duration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec.inspect as mi

from tidal.api.base import (
    DURATION_NO_HOURS_PATTERN,
    DURATION_PATTERN,
    DurationError,
    format_duration,
    parse_duration,
)
from tidal.cli.objects import ObjectKind
from tidal.kube import goyaml

_DURATION_PATTERNS = frozenset((DURATION_PATTERN, DURATION_NO_HOURS_PATTERN))
_EMPTY: tuple[Any, ...] = ("", False, 0, [], {})


def _unwrap(t: mi.Type) -> mi.Type:
    while isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.UnionType):
        members = [m for m in t.types if not isinstance(m, mi.NoneType)]
        if len(members) == 1:
            return _unwrap(members[0])
    return t


def normalize_duration(text: str) -> str:
    """Go's time.Duration.String() of a duration string; unparsable text stays as it is."""
    try:
        return format_duration(parse_duration(text))
    except DurationError:
        return text


def _value(value: Any, t: mi.Type) -> Any:
    t = _unwrap(t)
    if isinstance(t, mi.StructType) and isinstance(value, Mapping):
        return go_struct(value, t)
    if isinstance(t, mi.ListType) and isinstance(value, list):
        return [_value(item, t.item_type) for item in value]
    if isinstance(t, mi.StrType) and t.pattern in _DURATION_PATTERNS and isinstance(value, str):
        return normalize_duration(value)
    return value


def go_struct(data: Mapping[str, Any], t: mi.StructType) -> dict[str, Any]:
    """`data` after a round trip through the Go struct `t` mirrors (see the module doc)."""
    out: dict[str, Any] = {}
    for f in t.fields:
        if f.encode_name not in data:
            continue
        value = data[f.encode_name]
        if value is None:
            continue
        pointer = not f.required and f.default is None
        struct = isinstance(_unwrap(f.type), mi.StructType)  # Go never omits a struct value
        if not (f.required or pointer or struct) and any(value == e for e in _EMPTY):
            continue
        out[f.encode_name] = _value(value, f.type)
    return out


def _spec_type(kind: ObjectKind) -> mi.StructType:
    t = mi.type_info(kind.spec_model)
    assert isinstance(t, mi.StructType)
    return t


def export_object(kind: ObjectKind, obj: Mapping[str, Any]) -> dict[str, Any]:
    """What `flux export` keeps of an object read from the cluster (or built by `create`)."""
    meta = obj.get("metadata") or {}
    out_meta: dict[str, Any] = {}
    for key in ("name", "namespace"):
        if meta.get(key):
            out_meta[key] = meta[key]
    for key in ("labels", "annotations"):
        if meta.get(key):
            out_meta[key] = dict(meta[key])
    return {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": out_meta,
        "spec": go_struct(obj.get("spec") or {}, _spec_type(kind)),
    }


def export_secret(secret: Mapping[str, Any]) -> dict[str, Any]:
    """`flux export source ... --with-credentials`: the referenced Secret's data and type."""
    meta = secret.get("metadata") or {}
    out: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": meta.get("name", ""), "namespace": meta.get("namespace", "")},
    }
    if secret.get("data"):
        out["data"] = dict(secret["data"])
    if secret.get("type"):
        out["type"] = secret["type"]
    return out


def document(obj: Mapping[str, Any]) -> str:
    """One exported object: `---`, the YAML without surrounding blank space, a line break."""
    return "---\n" + goyaml.marshal(obj).strip() + "\n"
