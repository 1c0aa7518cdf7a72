"""The values go-yaml v3 gives YAML scalars (its `resolve` and `Node.Decode` into an interface).

YAML 1.2-like: `true`/`false` (three spellings) are booleans and `yes`/`no`/`on`/`off` strings;
integers take Go's base prefixes (`0x`, `0o`, `0b`, and a leading `0` for octal) and lose their
`_`s; floats include `.inf`/`.nan`; timestamps (four layouts) decode to times. Quoted and block
scalars are strings. A scalar whose explicit tag does not fit its text decodes to null, because
SOPS ignores that decoding error.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

from tidal.kube import yamlio
from tidal.kube.gostrconv import INT64_MAX
from tidal.sops.gotext import GoTime
from tidal.sops.stores.common import FormatError
from tidal.sops.stores.yamlparse import STR, Node, short_tag

BOOL: Final = "!!bool"
INT: Final = "!!int"
FLOAT: Final = "!!float"
NULL: Final = "!!null"
TIMESTAMP: Final = "!!timestamp"
BINARY: Final = "!!binary"
_RESOLVABLE: Final = frozenset(("", STR, BOOL, INT, FLOAT, NULL, TIMESTAMP))


class UnsupportedValue(FormatError):
    """A value SOPS's tree cannot hold (a uint64), refused as SOPS refuses to walk it."""


def _go_time(parts: tuple[int, int, int, int, int, int, int, int | None]) -> GoTime | None:
    """A go-yaml timestamp as SOPS's time value; None when Python's datetime cannot hold it
    (year 0, a zone of 24 hours or more), which then stays a string."""
    year, month, day, hour, minute, second, nanos, offset = parts
    try:
        tz = UTC if offset is None else timezone(timedelta(minutes=offset))
        moment = datetime(year, month, day, hour, minute, second, nanos // 1000, tz)
    except ValueError:
        return None
    return GoTime.create(moment, nanos % 1000)


_TAGS: Final = {
    "str": STR,
    "bool": BOOL,
    "int": INT,
    "float": FLOAT,
    "null": NULL,
    "timestamp": TIMESTAMP,
}


def _resolve_plain(tag: str, text: str) -> tuple[str, Any]:
    """go-yaml v3's resolve() (tidal.kube.yamlio's), with SOPS's limits on the values."""
    if tag in (STR, BINARY):
        return STR, text
    rtag, value = yamlio.go_resolve_plain(text, tag.removeprefix("!!"))
    if rtag == "int" and value > INT64_MAX:
        # A uint64 decodes, but SOPS cannot walk it.
        raise UnsupportedValue("Cannot walk value, unknown type: uint64")
    if rtag == "timestamp":
        value = _go_time(value)
        if value is None:
            return STR, text
    return _TAGS[rtag], value


class ResolveError(Exception):
    """go-yaml v3 could not decode a scalar with its tag (SOPS then keeps null)."""


def resolve(tag: str, text: str) -> tuple[str, Any]:
    """go-yaml v3's resolve(tag, text): the resolved tag and value."""
    tag = short_tag(tag)
    if tag not in _RESOLVABLE:
        return tag, text
    rtag, value = _resolve_plain(tag, text)
    if tag in ("", rtag, STR):
        return rtag, value
    if tag == FLOAT and rtag == INT:
        return FLOAT, float(value)
    raise ResolveError


def indicated_string(node: Node) -> bool:
    if node.kind != "scalar":
        return False
    if short_tag(node.tag) == STR and node.tagged:
        return True
    return not node.tagged and node.style != ""


def scalar_value(node: Node) -> Any:
    """`node.Decode(&value)` into an interface, as SOPS does for each scalar (null if that
    fails). `!!binary` bytes that are not UTF-8 come back as lone surrogates."""
    if indicated_string(node):
        return node.value
    try:
        tag, value = resolve(node.tag, node.value)
    except ResolveError:
        return None
    if tag == BINARY:
        try:
            raw = base64.b64decode(node.value.replace("\r", "").replace("\n", ""), validate=True)
        except (binascii.Error, ValueError):
            return None
        return raw.decode("utf-8", "surrogateescape")
    return value


def resolve_failure(node: Node) -> str:
    """go-yaml v3's error for a scalar its explicit tag does not fit ("" if it fits); the
    value itself is left out of the text."""
    if indicated_string(node) or not node.tagged:
        return ""
    try:
        resolve(node.tag, node.value)
    except ResolveError:
        rtag = resolve("", node.value)[0]
        return f"cannot decode {rtag} as a {short_tag(node.tag)}"
    return ""


def display_tag(node: Node) -> str:
    """The tag go-yaml v3 names a node by in its errors."""
    if node.tagged:
        return node.tag
    if node.kind == "mapping":
        return "!!map"
    if node.kind == "sequence":
        return "!!seq"
    if node.style:
        return STR
    try:
        return resolve("", node.value)[0]
    except UnsupportedValue:
        return INT


def unmarshal_error(node: Node, go_type: str) -> str:
    """go-yaml v3's complaint that a node does not fit a Go type (its decoder's `terror`)."""
    tag = display_tag(node)
    value = ""
    if tag not in ("!!seq", "!!map"):
        text = node.value
        value = f" `{text[:7]}...`" if len(text) > 10 else f" `{text}`"
    return f"line {node.line}: cannot unmarshal {tag}{value} into {go_type}"
