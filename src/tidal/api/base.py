"""The building blocks every served kind is made of.

Models are msgspec Structs: decoding the API server's JSON into them is one C call that also
checks types, and encoding drops unset fields, as Go's `omitempty` does. Field names are written
in Python's snake_case and travel in Kubernetes' camelCase. The CRD schema is generated from the
same declarations (see `tidal.api.crd`), so `Meta` carries both the validation and the text a
user reads in `kubectl explain`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

import msgspec

T = TypeVar("T", bound="Model")


class Model(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Base of every API struct."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out

    @classmethod
    def from_dict(cls: type[T], data: Any) -> T:
        """Decode (and validate) an API object or fragment; unknown fields are ignored, as the
        API server itself prunes them from structural schemas."""
        return msgspec.convert(data, cls)


def field(description: str, **constraints: Any) -> msgspec.Meta:
    """Field documentation and validation in one place; constraints are msgspec.Meta's
    (pattern, min_length, max_length, ge, le) plus `extra` for raw OpenAPI keys such as
    `default`, `format` or `x-kubernetes-validations`."""
    extra = constraints.pop("extra", {})
    return msgspec.Meta(description=description, extra_json_schema=extra, **constraints)


# Go's time.Duration text, as Flux's CRDs constrain it (no unit-less numbers, no "d").
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
DURATION_NO_HOURS_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m))+$"

_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|ms|s|m|h)")


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string ("1m30s", "1.5h", "500ms"), as time.ParseDuration reads
    it; a bare "0" is zero, as in Go."""
    s = text.strip()
    if s in ("0", "+0", "-0"):
        return 0.0
    sign = 1.0
    if s and s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if not s:
        raise DurationError(f"invalid duration {text!r}")
    total, pos = 0.0, 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m or m.group(1) in ("", "."):
            raise DurationError(f"invalid duration {text!r}")
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    return sign * total


def format_duration(seconds: float) -> str:
    """The inverse of parse_duration in Go's canonical form (time.Duration.String)."""
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    ns = round(abs(seconds) * 1e9)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return f"{sign}{_trim(ns / size)}{unit}"
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    out = sign
    if hours:
        out += f"{hours}h"
    if hours or minutes:
        out += f"{minutes}m"
    return out + f"{_trim(rest / 1e9)}s"


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


Duration = Annotated[str, msgspec.Meta(pattern=DURATION_PATTERN)]


class ObjectMeta(Model):
    """The part of metadata controllers read and write; the CRD schema leaves metadata to the
    API server, so this struct never appears in a generated schema."""

    name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    finalizers: list[str] = []
