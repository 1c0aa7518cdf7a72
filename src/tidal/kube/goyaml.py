"""YAML written the way the flux CLI writes it: sigs.k8s.io/yaml on top of go-yaml v2.

flux marshals an object to JSON, reads that back with go-yaml v2 into generic maps and writes
those out, so what `flux create ... --export` and `flux export` print follows go-yaml v2's rules,
which differ from a Python dumper's defaults:

- every mapping's keys are sorted, in go-yaml's "natural" order: non-letters before letters and
  runs of digits compared as numbers (`a2` < `a10`);
- a string that go-yaml v2 would read back as something else (`yes`, `on`, `y`, `"true"`,
  `"1.0"`, `"010"`, a date, `""`, `1:20`) is written double-quoted, not single-quoted;
- a string with a line break is a literal block; long plain or quoted lines fold at 80 columns
  (go-yaml v2.4 restored libyaml's default width);
- empty maps and lists are `{}` and `[]`; sequences in mappings are not indented.

The layout itself comes from libyaml (PyYAML's C emitter), of which go-yaml's emitter is a port.

The go-yaml v2 reading rules live here too (resolve, BOOLS, the tags, format_float32), because
Flux reads with them as well: kustomization files (tidal.kustomize.confine) and the text of
post-build substitution (tidal.kustomize.substitute) go through go-yaml v2 and sigs.k8s.io/yaml.
"""

from __future__ import annotations

import functools
import io
import math
import re
import struct
from collections.abc import Mapping, Sequence
from typing import Any, Final

from yaml._yaml import CEmitter
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tidal.kube import gostrconv
from tidal.kube.gostrconv import parse_int, parse_uint

_TAG: Final = "tag:yaml.org,2002:"
STR: Final = _TAG + "str"
BOOL: Final = _TAG + "bool"
INT: Final = _TAG + "int"
FLOAT: Final = _TAG + "float"
NULL: Final = _TAG + "null"
TIMESTAMP: Final = _TAG + "timestamp"
MERGE: Final = _TAG + "merge"
_SEQ: Final = _TAG + "seq"
_MAP: Final = _TAG + "map"

_INT64_MIN: Final = -(1 << 63)

# go-yaml v2's YAML 1.1 booleans (plain scalars only), with the value each decodes to.
BOOLS: Final[dict[str, bool]] = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE"), True),
    **dict.fromkeys(("on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE"), False),
    **dict.fromkeys(("off", "Off", "OFF"), False),
}
# go-yaml v2's resolve table: YAML 1.1 booleans, nulls and the special floats.
_SPECIAL: Final[dict[str, str]] = {
    **dict.fromkeys(BOOLS, BOOL),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), NULL),
    **dict.fromkeys((".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF"), FLOAT),
    **dict.fromkeys(("+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF"), FLOAT),
    "<<": MERGE,
}
_HINT: Final[dict[str, str]] = {
    **dict.fromkeys("+-", "S"),
    **dict.fromkeys("0123456789", "D"),
    **dict.fromkeys("yYnNtTfFoO~", "M"),
    ".": ".",
}
_YAML_STYLE_FLOAT: Final = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_DOT_FLOAT: Final = re.compile(r"\.[0-9]+(?:[eE][-+]?[0-9]+)?")
_BASE60_FLOAT: Final = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
# go-yaml v2 tries time.Parse with these layouts (date-only, space-separated, RFC 3339).
_TIMESTAMP_TEXT: Final = re.compile(
    r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
    r"(?:[Tt]([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:\.[0-9]+)?(?:Z|[-+][0-9]{2}:[0-9]{2})"
    r"| ([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:\.[0-9]+)?)?"
)


def _is_timestamp(s: str) -> bool:
    m = _TIMESTAMP_TEXT.fullmatch(s)
    if m is None:
        return False
    g = m.groups()
    month, day = int(g[1]), int(g[2])
    if not 1 <= month <= 12:
        return False
    year = int(g[0])
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not 1 <= day <= days[month - 1]:
        return False
    clock = g[3:6] if g[3] is not None else g[6:9]
    if clock[0] is not None:
        h, mi, sec = (int(x or 0) for x in clock)
        return h < 24 and mi < 60 and sec < 60
    return True


def resolve(s: str) -> str:
    """The tag go-yaml v2 gives the plain scalar `s` (its resolve("", s))."""
    special = _SPECIAL.get(s)
    if special is not None:
        return special
    hint = _HINT.get(s[0])
    if hint is None or hint == "M":
        return STR
    if hint == ".":
        if _DOT_FLOAT.fullmatch(s) and not math.isinf(float(s)):
            return FLOAT
        return STR
    if _is_timestamp(s):
        return TIMESTAMP
    plain = s.replace("_", "")
    if parse_int(plain, 0) is not None or parse_uint(plain, 0) is not None:
        return INT
    if _YAML_STYLE_FLOAT.fullmatch(plain) and not math.isinf(float(plain)):
        return FLOAT
    if plain.startswith("0b") and (
        parse_int(plain[2:], 2) is not None or parse_uint(plain[2:], 2) is not None
    ):
        return INT
    if plain.startswith("-0b") and parse_int("-" + plain[3:], 2) is not None:
        return INT
    return STR


def plain_ok(s: str) -> bool:
    """Whether go-yaml v2 would try to write `s` unquoted."""
    if resolve(s) != STR:
        return False
    return not (s[:1] in "+-0123456789" and s and ":" in s and _BASE60_FLOAT.fullmatch(s))


def _go_less(a: str, b: str) -> bool:
    # go-yaml v2's keyList.Less for two string keys.
    for i in range(min(len(a), len(b))):
        ca, cb = a[i], b[i]
        if ca == cb:
            continue
        la, lb = ca.isalpha(), cb.isalpha()
        if la and lb:
            return ca < cb
        if la or lb:
            return lb
        an = bn = 0
        if ca == "0" or cb == "0":
            j = i - 1
            while j >= 0 and a[j].isdecimal():
                if a[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(a) and a[ai].isdecimal():
            an = an * 10 + ord(a[ai]) - ord("0")
            ai += 1
        bi = i
        while bi < len(b) and b[bi].isdecimal():
            bn = bn * 10 + ord(b[bi]) - ord("0")
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return ca < cb
    return len(a) < len(b)


def _compare(a: str, b: str) -> int:
    return -1 if _go_less(a, b) else (1 if _go_less(b, a) else 0)


sort_key = functools.cmp_to_key(_compare)


def format_float(f: float) -> str:
    """strconv.FormatFloat(f, 'g', -1, 64) with go-yaml's names for the special values."""
    if math.isnan(f):
        return ".nan"
    if math.isinf(f):
        return ".inf" if f > 0 else "-.inf"
    return gostrconv.format_float(f, "g")


def format_float32(value: float) -> str:
    """strconv.FormatFloat(value, 'g', -1, 32), Go's names for the specials (NaN, +Inf, -Inf).

    sigs.k8s.io/yaml turns a float into a string this way, both for a mapping key and for a
    value whose Go field is a string. The value is first rounded to float32 as Go does, to
    nearest: just above float32's maximum still rounds down to it.
    """
    if math.isnan(value):
        return "NaN"
    try:
        single = struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        single = math.copysign(math.inf, value)
    if math.isinf(single):
        return "+Inf" if single > 0 else "-Inf"
    if single == 0:
        return "-0" if math.copysign(1.0, single) < 0 else "0"
    # The shortest decimal that reads back as the same float32.
    for precision in range(9):
        text = f"{single:.{precision}e}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == single:
            break
    mantissa, _, exp_text = text.partition("e")
    sign = "-" if mantissa.startswith("-") else ""
    digits = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    return gostrconv.g_form(sign, digits, int(exp_text) + 1)


def _string_node(s: str) -> ScalarNode:
    if "\n" in s:
        return ScalarNode(STR, s, style="|")
    return ScalarNode(STR, s, style=None if plain_ok(s) else '"')


def _node(value: Any, ordered: bool = False) -> Node:
    if isinstance(value, str):
        return _string_node(value)
    if isinstance(value, bool):
        return ScalarNode(BOOL, "true" if value else "false")
    if isinstance(value, int):
        return ScalarNode(INT, str(value))
    if isinstance(value, float):
        text = format_float(value)
        return ScalarNode(resolve(text), text)
    if value is None:
        return ScalarNode(NULL, "null")
    if isinstance(value, Mapping):
        keys = list(value) if ordered else sorted((str(k) for k in value), key=sort_key)
        return MappingNode(_MAP, [(_string_node(k), _node(value[k], ordered)) for k in keys])
    if isinstance(value, Sequence):
        return SequenceNode(_SEQ, [_node(v, ordered) for v in value])
    raise TypeError(f"cannot write a {type(value).__name__} as YAML")


class _Emitter(CEmitter):
    # The C serializer asks which tag a scalar's text implies; answering with go-yaml v2's
    # reading decides when a string may stay plain (see plain_ok).
    def resolve(self, kind: type[Node], value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            return resolve(value) if implicit[0] else STR
        return _SEQ if kind is SequenceNode else _MAP

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None


def marshal(obj: Mapping[str, Any]) -> str:
    """One object as sigs.k8s.io/yaml.Marshal writes it (no `---`, ends with a line break)."""
    return _emit(_node(obj))


def marshal_ordered(obj: Mapping[str, Any]) -> str:
    """go-yaml v2 writing a MapSlice: the mappings' keys in the order given, not re-sorted."""
    return _emit(_node(obj, ordered=True))


def _emit(node: Node) -> str:
    stream = io.StringIO()
    emitter = _Emitter(stream, indent=2, width=80, allow_unicode=True)
    try:
        emitter.open()
        emitter.serialize(node)
        emitter.close()
    finally:
        emitter.dispose()
    return stream.getvalue()
