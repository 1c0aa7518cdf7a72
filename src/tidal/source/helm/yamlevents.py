"""YAML read as Helm reads an index.yaml (go-yaml v2 through sigs.k8s.io/yaml), one node at a
time.

Composing node by node from libyaml's event stream lets the index be processed one chart
version after another, so a large index never exists in memory as one tree of Python objects
(Flux's memory trouble with large indexes comes from exactly that). Plain scalars resolve by
go-yaml v2's YAML 1.1 rules (`yes` and `on` are booleans, `0x1F` and `010` integers,
`1_000` 1000, no base-60); quoted and block scalars are strings; timestamps stay strings, as
go-yaml v2 leaves them when decoding into interface{}.

Not supported (an index using them is refused with a clear error rather than misread):
merge keys (`<<`) are ordinary keys, an alias to a node that was streamed away (the entries
map) is an error, and tags other than the core ones are ignored.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
from collections.abc import Iterator
from typing import Any

import yaml
from yaml import events as ev

STR_TAG = "tag:yaml.org,2002:str"
_CORE = "tag:yaml.org,2002:"


class YamlError(ValueError):
    """The document is not YAML go-yaml v2 accepts (strict mode)."""


_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_TRUE = frozenset(("y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"))
_FALSE = frozenset(("n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"))
_SPECIAL_FLOATS = {
    ".inf": math.inf,
    ".Inf": math.inf,
    ".INF": math.inf,
    "+.inf": math.inf,
    "+.Inf": math.inf,
    "+.INF": math.inf,
    "-.inf": -math.inf,
    "-.Inf": -math.inf,
    "-.INF": -math.inf,
    ".nan": math.nan,
    ".NaN": math.nan,
    ".NAN": math.nan,
}
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?", re.ASCII)
_GO_INT = re.compile(
    r"[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)", re.ASCII
)
_INT64 = (-(1 << 63), (1 << 63) - 1)
_UINT64_MAX = (1 << 64) - 1


def _go_parse_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64), falling back to ParseUint for large positives."""
    if not _GO_INT.fullmatch(text):
        return None
    sign = -1 if text[0] == "-" else 1
    body = text.lstrip("+-")
    if len(body) > 1 and body[0] == "0" and body[1] not in "xXoObB":
        value = int(body, 8)
    else:
        value = int(body, 0)
    value *= sign
    if _INT64[0] <= value <= _INT64[1]:
        return value
    if text[0] != "-" and value <= _UINT64_MAX:
        return value
    return None


def resolve_plain(text: str) -> Any:
    """The value of a plain (unquoted) scalar, by go-yaml v2's resolve()."""
    if text in _NULLS:
        return None
    first = text[0]
    if first in "yYnNtTfFoO~":
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        return text
    if first == ".":
        if text in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[text]
        if _YAML_FLOAT.fullmatch(text):
            return float(text)
        return text
    if first in "+-" or first.isdigit():
        if text in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[text]
        plain = text.replace("_", "")
        value = _go_parse_int(plain) if plain else None
        if value is not None:
            return value
        if _YAML_FLOAT.fullmatch(plain):
            return float(plain)
    return text


def _resolve(event: ev.ScalarEvent) -> Any:
    tag = event.tag
    if tag in (None, "!"):
        if not event.style and event.implicit[0]:
            return resolve_plain(event.value)
        return event.value
    if tag == STR_TAG:
        return event.value
    if tag == _CORE + "binary":
        try:
            return base64.b64decode("".join(event.value.split()), validate=True).decode(
                "utf-8", "replace"
            )
        except (binascii.Error, ValueError):
            raise YamlError(
                f"!!binary value contains invalid base64 data: {event.value!r}"
            ) from None
    if tag.startswith(_CORE):
        value = resolve_plain(event.value)
        wanted = tag[len(_CORE) :]
        actual = _tag_of(value)
        if wanted not in ("timestamp", actual) and not (wanted == "float" and actual == "int"):
            raise YamlError(f"cannot decode !!{actual} `{event.value}` as a !!{wanted}")
        return float(value) if wanted == "float" and isinstance(value, int) else value
    # Application tags carry no meaning for an index.
    return resolve_plain(event.value) if not event.style else event.value


def _tag_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str"


class Unaliasable:
    """Stands for a node that was streamed, not kept; an alias to it cannot be honoured."""


class Events:
    """libyaml's event stream with one event of lookahead."""

    def __init__(self, data: bytes) -> None:
        self._it: Iterator[ev.Event] = iter(yaml.parse(data, Loader=yaml.CSafeLoader))
        self._next: ev.Event | None = None
        self.anchors: dict[str, Any] = {}

    def peek(self) -> ev.Event:
        if self._next is None:
            self._next = self._advance()
        return self._next

    def next(self) -> ev.Event:
        event = self.peek()
        self._next = None
        return event

    def _advance(self) -> ev.Event:
        try:
            return next(self._it)
        except yaml.YAMLError as e:
            raise YamlError(" ".join(str(e).split())) from None
        except StopIteration:
            raise YamlError("unexpected end of the document") from None


def line_of(event: ev.Event) -> int:
    mark = getattr(event, "start_mark", None)
    return int(mark.line) + 1 if mark is not None else 0


def key_text(key: Any) -> str:
    """A mapping key as sigs.k8s.io/yaml turns it into a JSON object key."""
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        if math.isinf(key):
            return ".inf" if key > 0 else "-.inf"
        if math.isnan(key):
            return ".nan"
        return format_float32_g(key)
    raise YamlError(f"unsupported map key of type: {_tag_of(key)}, key: {key!r}")


def compose(events: Events) -> Any:
    """Consume one node and return its value: dict (str keys, document order), list, or a
    scalar."""
    event = events.next()
    if isinstance(event, ev.AliasEvent):
        if event.anchor not in events.anchors:
            raise YamlError(f'unknown anchor "{event.anchor}" referenced')
        value = events.anchors[event.anchor]
        if isinstance(value, Unaliasable):
            raise YamlError(f'alias "{event.anchor}" refers to a node that cannot be repeated')
        return value
    if isinstance(event, ev.ScalarEvent):
        value = _resolve(event)
    elif isinstance(event, ev.SequenceStartEvent):
        items: list[Any] = []
        while not isinstance(events.peek(), ev.SequenceEndEvent):
            items.append(compose(events))
        events.next()
        value = items
    elif isinstance(event, ev.MappingStartEvent):
        value = compose_mapping_body(events)
    else:
        raise YamlError(f"unexpected {type(event).__name__}")
    if event.anchor:
        events.anchors[event.anchor] = value
    return value


def mapping_keys(events: Events) -> Iterator[str]:
    """Yield the keys of a mapping whose MappingStartEvent was consumed, as JSON key text; the
    caller consumes each value (with compose or its own streaming) before asking for the next
    key. Duplicate keys are an error, as in go-yaml v2's strict mode."""
    seen: set[tuple[str, Any]] = set()
    while not isinstance(events.peek(), ev.MappingEndEvent):
        first = events.peek()
        key = compose(events)
        if isinstance(key, list | dict):
            raise YamlError(f"line {line_of(first)}: invalid map key: {key!r}")
        marker = (_tag_of(key), key)
        if marker in seen:
            raise YamlError(f"line {line_of(first)}: key {key!r} already set in map")
        seen.add(marker)
        yield key_text(key)
    events.next()


def compose_mapping_body(events: Events) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in mapping_keys(events):
        # Two keys can meet as one JSON key (1 and "1"); the later wins.
        out[key] = compose(events)
    return out


def format_float32_g(f: float) -> str:
    """strconv.FormatFloat(f, 'g', -1, 32): the shortest digits that identify the float32."""
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    f32 = struct.unpack("f", struct.pack("f", f))[0]
    if math.isinf(f32):
        return "+Inf" if f32 > 0 else "-Inf"
    digits = ""
    for precision in range(1, 10):
        candidate = f"{f32:.{precision - 1}e}"
        if struct.unpack("f", struct.pack("f", float(candidate)))[0] == f32:
            digits = candidate
            break
    mantissa, _, exp_text = digits.partition("e")
    exponent = int(exp_text)
    sign = "-" if mantissa.startswith("-") else ""
    mantissa = mantissa.lstrip("-")
    significant = mantissa.replace(".", "").rstrip("0") or "0"
    # %e when the exponent is < -4 or >= 6 (Go uses precision 6 for this test when shortest).
    if exponent < -4 or exponent >= 6:
        body = significant[0] + ("." + significant[1:] if len(significant) > 1 else "")
        esign = "-" if exponent < 0 else "+"
        return f"{sign}{body}e{esign}{abs(exponent):02d}"
    if exponent >= 0:
        whole = significant[: exponent + 1].ljust(exponent + 1, "0")
        fraction = significant[exponent + 1 :]
    else:
        whole = "0"
        fraction = "0" * (-exponent - 1) + significant
    return sign + whole + ("." + fraction if fraction else "")
