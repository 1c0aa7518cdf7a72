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
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

from tidal.kube.gostrconv import parse_int, parse_uint
from tidal.sops.gotext import GoTime, parse_float
from tidal.sops.stores.common import FormatError
from tidal.sops.stores.yamlparse import STR, Node, short_tag

BOOL: Final = "!!bool"
INT: Final = "!!int"
FLOAT: Final = "!!float"
NULL: Final = "!!null"
TIMESTAMP: Final = "!!timestamp"
BINARY: Final = "!!binary"
_RESOLVABLE: Final = frozenset(("", STR, BOOL, INT, FLOAT, NULL, TIMESTAMP))

_SPECIAL: Final[dict[str, tuple[str, Any]]] = {
    **dict.fromkeys(("true", "True", "TRUE"), (BOOL, True)),
    **dict.fromkeys(("false", "False", "FALSE"), (BOOL, False)),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), (NULL, None)),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), (FLOAT, math.nan)),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), (FLOAT, math.inf)),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), (FLOAT, -math.inf)),
    "<<": ("!!merge", "<<"),
}
_YAML_FLOAT: Final = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
# go-yaml v3 tries time.Parse with 2006-1-2T15:4:5.999999999Z07:00 (T or t), then
# "2006-1-2 15:4:5.999999999" and "2006-1-2".
_TIMESTAMP: Final = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{1,2})-(?P<d>[0-9]{1,2})"
    r"(?:(?P<sep>[Tt ])(?P<h>[0-9]{1,2}):(?P<mi>[0-9]{1,2}):(?P<s>[0-9]{1,2})"
    r"(?:[.,](?P<frac>[0-9]+))?(?P<zone>Z|[+-][0-9]{2}:[0-9]{2})?)?"
)


class UnsupportedValue(FormatError):
    """A value SOPS's tree cannot hold (a uint64), refused as SOPS refuses to walk it."""


def parse_timestamp(text: str) -> GoTime | None:
    found = _TIMESTAMP.fullmatch(text)
    if found is None:
        return None
    spaced = found["sep"] == " "
    if found["sep"] is not None and spaced == (found["zone"] is not None):
        return None  # a zone only after T, and T only with a zone
    fraction = (found["frac"] or "")[:9].ljust(9, "0")
    zone = found["zone"]
    tz: timezone = UTC
    if zone and zone != "Z":
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        if offset >= timedelta(hours=24):
            return None
        tz = timezone(-offset if zone[0] == "-" else offset)
    try:
        moment = datetime(
            int(found["y"]),
            int(found["mo"]),
            int(found["d"]),
            int(found["h"] or 0),
            int(found["mi"] or 0),
            int(found["s"] or 0),
            int(fraction) // 1000,
            tz,
        )
    except ValueError:
        return None
    return GoTime.create(moment, int(fraction) % 1000)


def _integer(text: str, base: int) -> int:
    value = parse_int(text, base)
    if value is not None:
        return value
    if parse_uint(text, base) is not None:
        raise UnsupportedValue("Cannot walk value, unknown type: uint64")
    raise ValueError(text)


# go-yaml v3 only looks further at text starting with one of these (or empty text).
_HINTS: Final = frozenset("+-0123456789yYnNtTfFoO~.")


def _resolve_plain(tag: str, text: str) -> tuple[str, Any]:
    hint = text[:1]
    if tag in (STR, BINARY) or (hint and hint not in _HINTS):
        return STR, text
    if text in _SPECIAL:
        return _SPECIAL[text]
    if hint == ".":
        try:
            return FLOAT, parse_float(text)
        except ValueError:
            return STR, text
    if not hint or hint not in "+-0123456789":
        return STR, text
    if tag in ("", TIMESTAMP):
        moment = parse_timestamp(text)
        if moment is not None:
            return TIMESTAMP, moment
    plain = text.replace("_", "")
    try:
        return INT, _integer(plain, 0)
    except ValueError:
        pass
    if _YAML_FLOAT.fullmatch(plain):
        try:
            return FLOAT, parse_float(plain)
        except ValueError:
            pass
    for prefix, base in (("0b", 2), ("0o", 8)):
        if plain.startswith(prefix):
            try:
                return INT, _integer(plain[2:], base)
            except ValueError:
                pass
        elif plain.startswith("-" + prefix):
            value = parse_int("-" + plain[3:], base)
            if value is not None:
                return INT, value
    return STR, text


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
