"""Read and write Kubernetes manifests with the value typing Flux's kustomize-controller applies.

Flux builds every Kustomization with kustomize. kustomize splits a file into documents itself,
reads them with kyaml (go-yaml v3), expands anchors and merge keys (kyaml's DeAnchor), writes each
resource out and decodes it again (``Resource.AsYAML``: go-yaml v3 -> encoding/json -> go-yaml
v2), and the controller decodes that into unstructured objects (JSON: int64 or float64 numbers).
So a value ends up typed by go-yaml v3's rules plus a JSON round trip, not by YAML 1.1 (PyYAML's
``safe_load``). Observed with kustomize v5.8.2 (kyaml v0.21.2, go.yaml.in/yaml/v3 v3.0.5) and
``kubectl kustomize`` v5.5.0, which agree on every case:

===================================  ===========================================================
input (plain, unquoted)              what Flux applies
===================================  ===========================================================
``yes no on off y n Y``              the strings, unchanged (YAML 1.1 would give booleans)
``true True TRUE false ...``         booleans; ``tRUE`` stays a string
``null ~ Null NULL`` / empty         null; an empty value inside ``{...}`` / ``[...]`` is ``""``
``010 0777 0o10 0x1F 0b101 +1``      8, 511, 8, 31, 5, 1 (Go ``ParseInt`` with base prefixes)
``1_000 1__0 1_``                    1000, 10, 1 (every ``_`` is dropped first)
``08 09 1e3 1.0 5. 1E+3``            8, 9, 1000, 1, 5, 1000: integral floats become ints
``1.5 .5 1e-7``                      floats; beyond int64 an integer becomes a float
``1:30 190:20:30.15``                strings (no base-60 numbers)
``.inf -.inf .nan``                  rejected: encoding/json cannot encode them
``2024-01-02``                       the string ``"2024-01-02T00:00:00Z"`` (RFC 3339, UTC)
``2024-01-02T03:04:05+00:00``        ``"2024-01-02T03:04:05Z"``; quoted dates stay as written,
                                     and so do times inside ``{...}`` / ``[...]``
``2024-02-30 2024-01-02T03:04:05``   strings (not go-yaml timestamps), unchanged
``!!str 123`` / ``!!binary aGk=``    ``"123"`` / ``"hi"`` (invalid UTF-8 bytes become U+FFFD)
``!Custom foo``                      ``"foo"`` (unknown tags are ignored)
``= <<`` (as values)                 the strings ``"="`` and ``"<<"``
``"a\\Nb"`` (NEL escape)              ``"a b"``: kustomize's JSON step folds NEL like a line break;
                                     DEL, C1 controls and U+FFFE/F are rejected there
folded ``>`` with indented lines     an extra line break before each more-indented line
duplicate keys                       rejected, also ``a`` vs ``'a'`` and ``1`` vs ``'1'``
``80: x`` in a nested mapping        rejected (JSON has no integer keys); quoted ``'80'`` is fine
``80: x`` at the top level           key ``"80"`` (the source text); a null key is rejected
``<<: *a`` / ``<<: [*a, *b]``        merged; own keys win, then the first source in the list
``'<<': x`` (quoted)                 dropped silently (kyaml deletes each mapping's first ``<<``)
anchor defined twice                 later aliases use the latest definition
``--- !tag`` / ``----`` line         rejected: kyaml accepts only ``---`` plus a comment
empty / comment-only / ``{}`` doc    skipped; a scalar or non-empty sequence document is rejected
``a: 1`` ``...`` ``b: 2``            only the first document before the next ``---`` is kept
``kind: List``                       returned as written (the build step expands it)
===================================  ===========================================================

Known differences, all rejections of input Flux accepts or chokes on: libyaml refuses a plain
scalar ending in ``:`` right before ``,`` ``]`` or ``}`` (``[a:, b]``), which go-yaml reads as
``"a:"``; nesting stops at about 500 mappings deep here (go-yaml allows 10,000); a recursive alias
is an error here and a stack overflow in kustomize.

Parsing runs on libyaml through PyYAML's C parser and composer; constructing the values is our
own. A document that re-defines an anchor, which libyaml's composer refuses, is composed again in
Python from the same C parser's events, and one with a ``<<`` key is built by replaying kyaml's
DeAnchor; only those documents pay for it.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Final, cast

import yaml
from yaml._yaml import CEmitter, CParser
from yaml.composer import Composer, ComposerError
from yaml.error import MarkedYAMLError, YAMLError
from yaml.events import AliasEvent, ScalarEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError

from tidal.kube.gostrconv import INT64_MAX, INT64_MIN, parse_int, parse_uint

__all__ = ["ManifestError", "dump", "dump_all", "load_all"]


class ManifestError(ValueError):
    """A manifest stream that Flux's kustomize-controller would not accept.

    ``line`` and ``column`` are 1-based and refer to the whole input, not to one document.
    """

    def __init__(
        self, reason: str, *, source: str, line: int | None = None, column: int | None = None
    ) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        self.column = column
        where = source
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(f"{where}: {reason}")


_YAML_TAG: Final = "tag:yaml.org,2002:"
_STR_TAG: Final = _YAML_TAG + "str"
_NULL_TAG: Final = _YAML_TAG + "null"
_BOOL_TAG: Final = _YAML_TAG + "bool"
_INT_TAG: Final = _YAML_TAG + "int"
_FLOAT_TAG: Final = _YAML_TAG + "float"
_TIMESTAMP_TAG: Final = _YAML_TAG + "timestamp"
_MERGE_TAG: Final = _YAML_TAG + "merge"
_SEQ_TAG: Final = _YAML_TAG + "seq"
_MAP_TAG: Final = _YAML_TAG + "map"
# YAML tags cannot contain spaces, so no document can spell this one. It marks plain scalars, whose
# type is decided after composing, by go-yaml's rules rather than PyYAML's YAML 1.1 regexes.
_PLAIN_TAG: Final = "tidal plain scalar"


# go-yaml's resolve() looks only at the first byte to decide what a plain scalar might be.
_HINTS: Final[dict[str, str]] = {
    **dict.fromkeys("0123456789", "D"),
    "+": "S",
    "-": "S",
    ".": ".",
    **dict.fromkeys("yYnNtTfFoO~", "M"),
}
_SPECIALS: Final[dict[str, tuple[str, Any]]] = {
    **dict.fromkeys(("true", "True", "TRUE"), ("bool", True)),
    **dict.fromkeys(("false", "False", "FALSE"), ("bool", False)),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), ("null", None)),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), ("float", math.nan)),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), ("float", math.inf)),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), ("float", -math.inf)),
}
_RESOLVABLE: Final = frozenset(("", "str", "bool", "int", "float", "null", "timestamp"))
_YAML_STYLE_FLOAT: Final = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
# strconv.ParseFloat syntax for text starting with ".": digits and underscores, then an exponent.
_DOT_FLOAT: Final = re.compile(r"\.([0-9_]*)(?:[eE][-+]?[0-9][0-9_]*)?")
# go-yaml tries time.Parse with "2006-1-2T15:4:5.999999999Z07:00" (and a lower-case "t"),
# "2006-1-2 15:4:5.999999999" and "2006-1-2"; this is the union of the four layouts.
_TIMESTAMP: Final = re.compile(
    r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
    r"(?:[Tt]([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:[.,]([0-9]+))?(Z|[-+][0-9]{2}:[0-9]{2})"
    r"| +([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:[.,]([0-9]+))?)?"
)
_DAYS_IN_MONTH: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# kyaml splits a stream on this pattern before any YAML parsing (kio.ByteReader).
_SEPARATOR: Final = re.compile(r"\n---[^\n]*\n")
_GO_INVALID_BYTE: Final = re.compile("[\udc80-\udcff]")


class _NodeError(Exception):
    """A reason to reject a document, located at a composed node."""

    def __init__(self, reason: str, node: Node) -> None:
        super().__init__(reason)
        self.reason = reason
        self.node = node


def _go_underscore_ok(s: str) -> bool:
    # Go's strconv.underscoreOK: "_" only between digits (a base prefix counts as a digit).
    saw = "^"
    if s[:1] in ("+", "-"):
        s = s[1:]
    hexa = False
    i = 0
    if len(s) >= 2 and s[0] == "0" and s[1] in "bBoOxX":
        i, saw, hexa = 2, "0", s[1] in "xX"
    for c in s[i:]:
        if "0" <= c <= "9" or (hexa and c in "abcdefABCDEF"):
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
    return saw != "_"


def _go_parse_timestamp(s: str) -> tuple[int, int, int, int, int, int, int, int | None] | None:
    """go-yaml's parseTimestamp: (y, mo, d, h, mi, s, nanos, UTC offset in minutes or None)."""
    m = _TIMESTAMP.fullmatch(s)
    if m is None:
        return None
    g = m.groups()
    year, month, day = int(g[0]), int(g[1]), int(g[2])
    hour = minute = second = nanos = 0
    offset: int | None = None
    if g[3] is not None:
        hour, minute, second, frac, zone = int(g[3]), int(g[4]), int(g[5]), g[6], g[7]
        if zone != "Z":
            zh, zm = int(zone[1:3]), int(zone[4:6])
            if zh > 24 or zm > 60:
                return None
            offset = (zh * 60 + zm) * (-1 if zone[0] == "-" else 1)
    elif g[8] is not None:
        hour, minute, second, frac = int(g[8]), int(g[9]), int(g[10]), g[11]
    else:
        frac = None
    if frac:
        nanos = int(frac[:9].ljust(9, "0"))
    if not 1 <= month <= 12 or hour >= 24 or minute >= 60 or second >= 60:
        return None
    days = _DAYS_IN_MONTH[month - 1]
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        days = 29
    if not 1 <= day <= days:
        return None
    return year, month, day, hour, minute, second, nanos, offset


def go_resolve_plain(value: str, tag: str) -> tuple[str, Any]:
    """The body of go-yaml v3's resolve(): (short tag, Go value) of a scalar's text. Integers
    may be uint64; a timestamp is (y, mo, d, h, mi, s, nanos, UTC offset in minutes or None)."""
    hint = _HINTS.get(value[0]) if value else "M"
    if hint is None or tag == "str":
        return "str", value
    special = _SPECIALS.get(value)
    if special is not None:
        return special
    if hint == "M":
        return "str", value
    if hint == ".":
        # strconv.ParseFloat on the raw text: underscores are kept and checked, overflow fails.
        m = _DOT_FLOAT.fullmatch(value)
        digits = m is not None and m.group(1).strip("_")
        if digits and ("_" not in value or _go_underscore_ok(value)):
            f = float(value.replace("_", ""))
            if not math.isinf(f):
                return "float", f
        return "str", value
    if value.isdigit() and value.isascii() and (value[0] != "0" or len(value) == 1):
        n = int(value)
        if n <= INT64_MAX:
            return "int", n
    if tag in ("", "timestamp") and len(value) >= 8 and value[4] == "-":
        ts = _go_parse_timestamp(value)
        if ts is not None:
            return "timestamp", ts
    plain = value.replace("_", "")
    n_or_none = parse_int(plain, 0)
    if n_or_none is None and plain[:1] not in ("+", "-"):
        n_or_none = parse_uint(plain, 0)
    if n_or_none is not None:
        return "int", n_or_none
    if _YAML_STYLE_FLOAT.fullmatch(plain):
        f = float(plain)
        if not math.isinf(f):
            return "float", f
    # go-yaml's own fallbacks for 0b/0o, reached only when Go's prefix parsing failed above.
    for prefix, base in (("0b", 2), ("0o", 8)):
        if plain.startswith(prefix):
            n_or_none = parse_int(plain[2:], base)
            if n_or_none is None:
                n_or_none = parse_uint(plain[2:], base)
        elif plain.startswith("-" + prefix):
            n_or_none = parse_int("-" + plain[3:], base)
        if n_or_none is not None:
            return "int", n_or_none
    return "str", value


def _go_resolve(value: str, tag: str, node: Node) -> tuple[str, Any]:
    """go-yaml v3's resolve(tag, value), including its check that an explicit tag fits."""
    rtag, out = go_resolve_plain(value, tag)
    if tag in ("", rtag, "str"):
        return rtag, out
    if tag == "float" and rtag == "int":
        return "float", float(out)
    raise _NodeError(f"cannot decode !!{rtag} `{value}` as a !!{tag}", node)


def _json_float(f: float, node: Node) -> int | float:
    if math.isnan(f) or math.isinf(f):
        raise _NodeError(f"json: unsupported value: {f!r} (Kubernetes objects are JSON)", node)
    if f.is_integer() and abs(f) < 1e21:
        # encoding/json prints integral floats below 1e21 without a fraction, using the shortest
        # round-tripping digits, so the next decoder reads an integer.
        n = int(Decimal(repr(f)))
        return n if INT64_MIN <= n <= INT64_MAX else float(n)
    return f


def _format_timestamp(ts: tuple[int, int, int, int, int, int, int, int | None], node: Node) -> str:
    year, month, day, hour, minute, second, nanos, offset = ts
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    if not offset:
        return text + "Z"
    if abs(offset) >= 24 * 60:
        raise _NodeError("Time.MarshalJSON: timezone hour outside of range [0,23]", node)
    sign = "-" if offset < 0 else "+"
    return text + f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"


def _decode_binary(value: str, node: Node) -> str:
    # Go's base64.StdEncoding skips CR and LF; anything else outside the alphabet is an error.
    try:
        raw = base64.b64decode(value.replace("\n", "").replace("\r", ""), validate=True)
    except ValueError:
        raise _NodeError("!!binary value contains invalid base64 data", node) from None
    # encoding/json writes U+FFFD for every byte that is not valid UTF-8.
    return _GO_INVALID_BYTE.sub("\ufffd", raw.decode("utf-8", "surrogateescape"))


# Characters encoding/json writes raw that go-yaml v2's reader then refuses (its JSON-to-YAML
# step reads the JSON as YAML), and NEL, which that reader takes for a line break.
_GO_JSON_TROUBLE: Final = re.compile("[\x7f-\x9f\ufffe\uffff]")
_GO_JSON_UNREADABLE: Final = re.compile("[\x7f-\x84\x86-\x9f\ufffe\uffff]")
_NEL_RUN: Final = re.compile(" *\x85[ \x85]*")


def _go_json_text(text: str, node: Node, key: bool) -> str:
    """A string as it comes out of kustomize's JSON -> go-yaml v2 step.

    Only escapes in double-quoted scalars (and !!binary) can produce these characters; YAML
    readers refuse them raw.
    """
    if _GO_JSON_TROUBLE.search(text) is None:
        return text
    if _GO_JSON_UNREADABLE.search(text):
        raise _NodeError("control characters are not allowed (kustomize: go-yaml v2)", node)
    if key:
        raise _NodeError("a mapping key cannot contain NEL (U+0085) in kustomize", node)
    # Inside the JSON's double-quoted string NEL is a line break: folded into a space, or into
    # n-1 newlines for n of them, and the spaces around it are dropped.
    return _NEL_RUN.sub(
        lambda m: " " if m[0].count("\x85") == 1 else "\n" * (m[0].count("\x85") - 1), text
    )


def _to_json(kind: str, out: Any, node: Node) -> Any:
    if kind in ("str", "bool", "null"):
        return out
    if kind == "int":
        return out if INT64_MIN <= out <= INT64_MAX else float(out)
    if kind == "float":
        return _json_float(out, node)
    return _format_timestamp(out, node)


_GO_BREAKS: Final = "\n\r\x85\u2028\u2029"
# Characters go-yaml's emitter (is_printable) cannot write in a block scalar; tabs are fine.
_GO_UNPRINTABLE: Final = re.compile("[^\t\n\x20-\x7e\xa0-\ud7ff\ue000-\ufefe\uff00-\ufffd]")
_GO_SPACE_BREAK: Final = re.compile(" [\n\r\x85\u2028\u2029]")


def _go_refold(value: str) -> str:
    """The text of a folded (``>``) scalar after go-yaml writes it out and reads it back.

    kyaml serialises each resource before decoding it, keeping the folded style, and go-yaml's
    folded writer decides whether a line break needs an extra empty line by looking at the start
    of the whole value instead of the next line. Lines followed by a more-indented line therefore
    gain a blank line (or, if the value starts with a blank, every break folds into a space).
    """
    if (
        value.endswith(" ")
        or _GO_SPACE_BREAK.search(value)
        or _GO_UNPRINTABLE.search(value)
        or not value
    ):
        return value  # written double-quoted instead, which is exact
    first = value.lstrip(_GO_BREAKS)[:1]
    extra = first not in ("", " ", "\t")
    out = []
    breaks = True
    leading_blank = True
    for ch in value:
        if ch in _GO_BREAKS:
            if extra and not breaks and not leading_blank and ch == "\n":
                out.append("\n")
            out.append(ch)
            breaks = True
        else:
            if breaks:
                out.append("  ")
                leading_blank = ch in " \t"
            out.append(ch)
            breaks = False
    header = ">"
    if value[0] == " " or value[0] in _GO_BREAKS:
        header += "2"
    if value[-1] not in _GO_BREAKS:
        header += "-"
    elif len(value) == 1 or value[-2] in _GO_BREAKS:
        header += "+"
    loader = _FastLoader("v: " + header + "\n" + "".join(out))
    try:
        node = loader.get_single_node()
    finally:
        loader.dispose()
    assert isinstance(node, MappingNode)
    text: str = node.value[0][1].value
    return text


def _short_tag(tag: str) -> str:
    return tag[len(_YAML_TAG) :] if tag.startswith(_YAML_TAG) else tag


def _is_merge_key(node: Node) -> bool:
    """kyaml's isMerge: the key's go-yaml tag is !!merge (a plain ``<<``, or tagged so)."""
    if node.tag == _MERGE_TAG:
        return True
    plain = type(node) is ScalarNode and node.tag == _PLAIN_TAG and not node.style
    return plain and node.value == "<<"


class _NeedsDeAnchor(Exception):
    """The document has a ``<<`` key: build it again the slow, exact way."""


class _Builder:
    """Turns one composed document into the value Flux would apply.

    Aliases are expanded into independent copies (as kyaml's DeAnchor does), so mutating one
    place of a loaded object never changes another.
    """

    __slots__ = ("_budget",)

    def __init__(self, budget: int) -> None:
        # Without aliases a document has fewer collection entries than characters; the budget
        # stops alias bombs that would otherwise expand exponentially.
        self._budget = budget

    def _spend(self, n: int, node: Node) -> None:
        self._budget -= n
        if self._budget < 0:
            raise _NodeError("document expands too many aliases", node)

    def value(self, node: Node, in_flow: bool) -> Any:
        if type(node) is ScalarNode:
            tag = node.tag
            value = node.value
            if tag == _PLAIN_TAG:
                if node.style:
                    # `! "x"`: the non-specific tag on a quoted scalar means string to go-yaml.
                    return _go_json_text(value, node, False) if node.style == '"' else value
                if not value:
                    # go-yaml re-emits an empty plain scalar inside [..] or {..} as '' (kyaml
                    # serialises every resource before decoding it), so it comes back a string.
                    return "" if in_flow else None
                if value[0] not in _HINTS:
                    return value
                kind, out = go_resolve_plain(value, "")
                if kind == "str" or (kind == "timestamp" and in_flow and ":" in value):
                    # go-yaml's emitter quotes a plain scalar with ":" inside [..] or {..}, so a
                    # timestamp with a time of day comes back as the text it was written as.
                    return value
                return _to_json(kind, out, node)
            if tag == _STR_TAG:
                if node.style == '"':
                    return _go_json_text(value, node, False)
                if node.style == ">" and not in_flow:
                    return _go_refold(value)
                return value
            return self._tagged_scalar(node, in_flow)
        if type(node) is SequenceNode:
            items = node.value
            self._spend(len(items), node)
            flow = in_flow or bool(node.flow_style)
            result: list[Any] = []
            append = result.append
            for item in items:
                append(self.value(item, flow))
            return result
        assert type(node) is MappingNode
        return self.mapping(node, in_flow or bool(node.flow_style), False)

    def _tagged_scalar(self, node: ScalarNode, in_flow: bool) -> Any:
        tag = _short_tag(node.tag)
        value = node.value
        if node.style == ">" and not in_flow:
            value = _go_refold(value)
        if tag == "binary":
            return _go_json_text(_decode_binary(value, node), node, False)
        if tag in _RESOLVABLE:
            kind, out = _go_resolve(value, tag, node)
            if kind == "str":
                return _go_json_text(out, node, False)
            return _to_json(kind, out, node)
        # go-yaml does not know other tags (!!merge, !!seq on a scalar, !Custom): it keeps the text.
        return _go_json_text(value, node, False)

    def _key(self, node: Node, root: bool) -> str:
        if type(node) is not ScalarNode:
            raise _NodeError("invalid map key: a mapping key must be a scalar", node)
        text: str = node.value
        tag = node.tag
        if tag == _STR_TAG or (tag == _PLAIN_TAG and node.style):
            return _go_json_text(text, node, True)
        if tag == _PLAIN_TAG:
            if not text:
                # An empty plain key is re-emitted quoted ('') by go-yaml, so it becomes "".
                return ""
            kind = go_resolve_plain(text, "")[0] if text[0] in _HINTS else "str"
        else:
            short = _short_tag(tag)
            if short == "binary":
                kind, text = ("binary", _decode_binary(text, node))
            elif short in _RESOLVABLE:
                kind = _go_resolve(text, short, node)[0]
            else:
                kind = short
        if kind in ("str", "merge"):
            return _go_json_text(text, node, True)
        if root:
            # The top level is decoded into map[string]interface{}: any scalar key but null
            # becomes its source text.
            if kind == "null":
                raise _NodeError(f"mapping key {text!r} is null", node)
            return _go_json_text(text, node, True)
        raise _NodeError(
            f"mapping key {text!r} is not a string but !!{kind} "
            "(kustomize cannot encode non-string keys as JSON; quote it)",
            node,
        )

    def mapping(self, node: MappingNode, flow: bool, root: bool) -> dict[str, Any]:
        pairs = node.value
        self._spend(len(pairs), node)
        result: dict[str, Any] = {}
        for key_node, value_node in pairs:
            if type(key_node) is ScalarNode:
                key = key_node.value
                if key == "<<":
                    raise _NeedsDeAnchor
                tag = key_node.tag
                if key_node.style == '"' or (
                    tag != _STR_TAG
                    and (tag != _PLAIN_TAG or (key and key[0] in _HINTS and not key_node.style))
                ):
                    key = self._key(key_node, root)
            else:
                key = self._key(key_node, root)
            if key in result:
                raise _duplicate_key(node, key_node)
            result[key] = self.value(value_node, flow)
        return result


def _go_v2_key_less(a: str, b: str) -> bool:
    """go-yaml v2's key order (keyList.Less): letters after other characters, digit runs
    compared as numbers."""
    for i in range(min(len(a), len(b))):
        if a[i] == b[i]:
            continue
        al, bl = a[i].isalpha(), b[i].isalpha()
        if al and bl:
            return a[i] < b[i]
        if al or bl:
            return bl
        an = bn = 0
        if a[i] == "0" or b[i] == "0":
            for j in range(i - 1, -1, -1):
                if not a[j].isdecimal():
                    break
                if a[j] != "0":
                    an = bn = 1
                    break
        ai = i
        while ai < len(a) and a[ai].isdecimal():
            an = an * 10 + ord(a[ai]) - 48
            ai += 1
        bi = i
        while bi < len(b) and b[bi].isdecimal():
            bn = bn * 10 + ord(b[bi]) - 48
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return a[i] < b[i]
    return len(a) < len(b)


def _go_v2_key_cmp(a: str, b: str) -> int:
    return -1 if _go_v2_key_less(a, b) else int(_go_v2_key_less(b, a))


def _go_v2_merge(mapping: dict[str, Any], node: Node) -> dict[str, Any]:
    """How go-yaml v2 decodes a mapping with an unquoted "<<" key, in its sorted key order:
    the merge overrides the keys before it and is overridden by the keys after it."""
    keys = sorted(mapping, key=functools.cmp_to_key(_go_v2_key_cmp))
    result: dict[str, Any] = {}
    for key in keys:
        value = mapping[key]
        if key != "<<":
            result[key] = value
            continue
        # Earlier list items take precedence, so apply them last.
        for source in reversed(value) if isinstance(value, list) else [value]:
            if not isinstance(source, dict):
                raise _NodeError("map merge requires map or sequence of maps as the value", node)
            result.update(source)
    return result


class _GoNode:
    """A mutable stand-in for go-yaml's Node, for replaying kyaml's DeAnchor."""

    __slots__ = ("alias", "content", "flow", "kind", "node")

    def __init__(
        self, kind: str, node: Node, content: list[_GoNode], alias: _GoNode | None = None
    ) -> None:
        self.kind = kind  # "scalar", "seq", "map" or "alias"
        self.node = node  # the composed node: scalar text, tag and style, and the position
        self.content = content  # a mapping's keys and values alternate, as in go-yaml
        self.alias = alias
        self.flow = bool(getattr(node, "flow_style", False))

    @property
    def text(self) -> str:
        # go-yaml's Node.Value; kyaml matches mapping keys by it.
        return self.node.value if self.kind == "scalar" else ""


class _MergingBuilder(_Builder):
    """Builds a document that uses ``<<`` by replaying what kyaml does to it.

    kyaml's DeAnchor visits the document in order. At each mapping it takes the one
    merge-tagged ``<<`` entry, deletes the mapping's first ``<<`` entry (whichever that is),
    then deep-copies the mapping with the merge sources' first entry per key name added, and
    replaces aliases with copies of what they point at. Because the copying detaches the
    anchored originals from the tree, a merge through an alias sees the original in whatever
    state earlier alias visits left it. go-yaml's decoder then merges any merge-tagged ``<<``
    still present, and a quoted ``"<<"`` that survives becomes a merge in go-yaml v2's output.
    """

    __slots__ = ("_active",)

    def __init__(self, budget: int) -> None:
        super().__init__(budget)
        self._active: set[int] = set()

    def document(self, root: MappingNode) -> dict[str, Any]:
        tree = self._mirror(root, {})
        tree = self._deanchor(tree)
        result = self._decode(tree, tree.flow, True)
        assert isinstance(result, dict)
        return result

    def _mirror(self, node: Node, seen: dict[int, _GoNode]) -> _GoNode:
        # PyYAML composes an alias as the node it refers to: the first occurrence in document
        # order is the definition, every later one an alias.
        known = seen.get(id(node))
        if known is not None:
            return _GoNode("alias", node, [], known)
        if type(node) is ScalarNode:
            mirrored = _GoNode("scalar", node, [])
        elif type(node) is SequenceNode:
            mirrored = _GoNode("seq", node, [])
        else:
            mirrored = _GoNode("map", node, [])
        seen[id(node)] = mirrored
        if type(node) is SequenceNode:
            mirrored.content = [self._mirror(item, seen) for item in node.value]
        elif type(node) is MappingNode:
            for key, value in node.value:
                mirrored.content.append(self._mirror(key, seen))
                mirrored.content.append(self._mirror(value, seen))
        return mirrored

    def _copy(self, node: _GoNode) -> _GoNode:
        self._spend(1, node.node)
        return _GoNode(node.kind, node.node, [self._copy(c) for c in node.content], node.alias)

    def _deanchor(self, node: _GoNode) -> _GoNode:
        if node.kind == "scalar":
            return node
        if node.kind == "alias":
            assert node.alias is not None
            if id(node.alias) in self._active:
                raise _NodeError("recursive alias", node.node)
            self._active.add(id(node.alias))
            try:
                return self._copy(self._deanchor(node.alias))
            finally:
                self._active.discard(id(node.alias))
        if node.kind == "map":
            self._merge_all(node, self._remove_merge_tags(node))
        for i, child in enumerate(node.content):
            node.content[i] = self._deanchor(child)
        return node

    def _remove_merge_tags(self, node: _GoNode) -> list[_GoNode]:
        if not node.content:
            return []
        value: _GoNode | None = None
        for i in range(0, len(node.content), 2):
            if _is_merge_key(node.content[i].node) and node.content[i].kind == "scalar":
                if value is not None:
                    raise _NodeError("duplicate merge key", node.content[i].node)
                value = node.content[i + 1]
        sources = self._find_merge_values(value)
        for i in range(0, len(node.content), 2):
            if node.content[i].text == "<<":
                del node.content[i : i + 2]
                break
        return sources

    def _find_merge_values(self, node: _GoNode | None) -> list[_GoNode]:
        if node is None:
            return []
        if node.kind == "map":
            return [node]
        if node.kind == "alias":
            assert node.alias is not None
            if node.alias.kind != "map":
                raise _NodeError("invalid map merge: received alias for a non-map value", node.node)
            return [node.alias]
        if node.kind == "seq":
            sources: list[_GoNode] = []
            for item in node.content:
                if item.kind == "seq":
                    raise _NodeError("invalid map merge: received a nested sequence", item.node)
                sources = self._find_merge_values(item) + sources
            return sources
        raise _NodeError("map merge requires map or sequence of maps as the value", node.node)

    def _merge_all(self, node: _GoNode, sources: list[_GoNode]) -> None:
        merged = self._copy(node)
        for source in [*sources, node]:
            copied = self._copy(source)
            pairs = [
                (copied.content[i], copied.content[i + 1]) for i in range(0, len(copied.content), 2)
            ]
            for name in [key.text for key, _ in pairs]:
                key, value = next(pair for pair in pairs if pair[0].text == name)
                # MapEntrySetter names a null key "", which matches nothing: it is added again.
                null_key = isinstance(key.node, ScalarNode) and _is_null_scalar(key.node)
                setter_name = "" if null_key else name
                for i in range(0, len(merged.content), 2):
                    if merged.content[i].text == setter_name:
                        merged.content[i : i + 2] = [key, value]
                        break
                else:
                    merged.content += [key, value]
        node.content = merged.content

    def _decode(self, node: _GoNode, in_flow: bool, root: bool) -> Any:
        """go-yaml v3's decoding of the expanded tree, then the JSON round trip."""
        if node.kind == "scalar":
            return self.value(node.node, in_flow)
        flow = in_flow or node.flow
        if node.kind == "seq":
            return [self._decode(item, flow, False) for item in node.content]
        pairs = [(node.content[i], node.content[i + 1]) for i in range(0, len(node.content), 2)]
        seen: dict[tuple[str, str], _GoNode] = {}
        for key, _ in pairs:
            previous = seen.setdefault((key.kind, key.text), key)
            if previous is not key:
                line = previous.node.start_mark.line + 1
                raise _NodeError(
                    f"mapping key {key.text!r} already defined (line {line})", key.node
                )
        result: dict[str, Any] = {}
        merge: _GoNode | None = None
        for key, value in pairs:
            if key.kind == "scalar" and key.text == "<<" and _is_merge_key(key.node):
                merge = value
                continue
            if key.kind != "scalar":
                raise _NodeError("invalid map key: a mapping key must be a scalar", key.node)
            result[self._key(key.node, root)] = self._decode(value, flow, False)
        if merge is not None:
            sources = merge.content if merge.kind == "seq" else [merge]
            for source in sources:
                if source.kind != "map":
                    raise _NodeError(
                        "map merge requires map or sequence of maps as the value", source.node
                    )
                # The source's keys are decoded into this mapping's string keys: their text.
                merged = self._decode(source, flow, True)
                for k, v in merged.items():
                    result.setdefault(k, v)
        if "<<" in result:
            # A quoted "<<" key reaches the JSON; go-yaml v2 writes it unquoted, so the
            # controller's decoder merges it after all.
            return _go_v2_merge(result, node.node)
        return result


class _FastLoader(CParser):
    """libyaml's parser and composer with go-yaml's scalar typing (decided in _Builder)."""

    def resolve(self, kind: type[Node], value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            # implicit[0]: plain style, or the non-specific tag "!" on any style.
            return _PLAIN_TAG if implicit[0] else _STR_TAG
        return _SEQ_TAG if kind is SequenceNode else _MAP_TAG

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None


class _AnchorTolerantLoader(Composer, _FastLoader):
    """The same C parser, composed in Python so that an anchor may be defined again.

    go-yaml (and so Flux) lets a later ``&name`` shadow an earlier one for the aliases that
    follow it; libyaml's composer rejects the document instead.
    """

    def __init__(self, stream: str) -> None:
        _FastLoader.__init__(self, stream)
        Composer.__init__(self)

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(AliasEvent):
            event = cast(AliasEvent, self.get_event())
            try:
                return self.anchors[event.anchor]
            except KeyError:
                raise ComposerError(
                    None,
                    None,
                    f"found undefined alias {event.anchor!r}",
                    cast(Any, event.start_mark),
                ) from None
        # The stubs mistype the anchor parameter of compose_*_node; it is the anchor's name.
        anchor: Any = cast(ScalarEvent, self.peek_event()).anchor
        if self.check_event(ScalarEvent):
            return self.compose_scalar_node(anchor)
        if self.check_event(SequenceStartEvent):
            return self.compose_sequence_node(anchor)
        return self.compose_mapping_node(anchor)


def _text_of(data: str | bytes, source: str) -> tuple[str, bool]:
    """The text, and whether kyaml's document splitting applies to it."""
    if isinstance(data, str):
        return data, True
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        # kyaml's byte-level separator pattern never matches UTF-16, so the stream is one chunk.
        try:
            return data.decode("utf-16"), False
        except UnicodeDecodeError as exc:
            raise ManifestError("invalid UTF-16 input", source=source) from exc
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        raise ManifestError(
            f"invalid UTF-8 byte 0x{data[exc.start]:02x}", source=source, line=line, column=column
        ) from exc


def _split(text: str, source: str) -> list[tuple[str, int]]:
    """kyaml's splitDocuments: (chunk, 0-based line of its first character)."""
    chunks = []
    prev = 0
    line = 0
    for match in _SEPARATOR.finditer(text):
        start, end = match.span()
        trailer = text[start + 4 : end].strip()
        if trailer and not trailer.startswith("#"):
            raise ManifestError(
                f"invalid document separator: {match.group().strip()}"
                " (only a comment may follow ---)",
                source=source,
                line=line + text.count("\n", prev, start) + 2,
                column=1,
            )
        chunks.append((text[prev:start] + "\n", line))
        line += text.count("\n", prev, end)
        prev = end
    chunks.append((text[prev:], line))
    return chunks


def _yaml_error(exc: YAMLError, chunk: str, line: int, source: str) -> ManifestError:
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        reason = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context:
            reason += f" ({exc.context}"
            if exc.context_mark is not None and exc.context_mark is not mark:
                reason += f" at line {line + exc.context_mark.line + 1}"
            reason += ")"
        if mark is None:
            return ManifestError(reason, source=source, line=line + 1)
        return ManifestError(
            reason, source=source, line=line + mark.line + 1, column=mark.column + 1
        )
    if isinstance(exc, ReaderError):
        # libyaml reports a byte offset into the UTF-8 encoding of the chunk.
        before = chunk.encode("utf-8", "surrogatepass")[: exc.position]
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        reason = exc.reason
        if isinstance(exc.character, int):
            reason += f": #x{exc.character:04x}"
        return ManifestError(
            reason,
            source=source,
            line=line + before.count(b"\n") + 1,
            column=column,
        )
    return ManifestError(str(exc), source=source, line=line + 1)


def _compose(chunk: str, line: int, source: str) -> Node | None:
    """The first document of a chunk (kyaml decodes exactly one per chunk), or None."""
    loader: _FastLoader = _FastLoader(chunk)
    try:
        try:
            return loader.get_node() if loader.check_node() else None
        finally:
            loader.dispose()
    except ComposerError as exc:
        if not (exc.context or "").startswith("found duplicate anchor"):
            raise _yaml_error(exc, chunk, line, source) from None
    except YAMLError as exc:
        raise _yaml_error(exc, chunk, line, source) from None
    except UnicodeEncodeError as exc:
        prefix = chunk[: exc.start]
        raise ManifestError(
            f"invalid character {chunk[exc.start]!r}",
            source=source,
            line=line + prefix.count("\n") + 1,
            column=exc.start - prefix.rfind("\n"),
        ) from None
    loader = _AnchorTolerantLoader(chunk)
    try:
        try:
            return loader.get_node() if loader.check_node() else None
        finally:
            loader.dispose()
    except YAMLError as exc:
        raise _yaml_error(exc, chunk, line, source) from None


def _duplicate_key(mapping: MappingNode, key: Node) -> _NodeError:
    first = next(k for k, _ in mapping.value if k.value == key.value)
    line = first.start_mark.line + 1
    return _NodeError(f"mapping key {key.value!r} already defined (line {line})", key)


def _is_null_scalar(node: ScalarNode) -> bool:
    if node.tag == _NULL_TAG:
        return True
    plain = node.tag == _PLAIN_TAG and not node.style
    return plain and node.value in ("", "~", "null", "Null", "NULL")


def _find_cycle(root: Node) -> Node | None:
    """A collection node that contains itself through aliases, if any."""
    done: set[int] = set()
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            on_path.discard(id(node))
            done.add(id(node))
            continue
        if node.__class__ is ScalarNode or id(node) in done:
            continue
        if id(node) in on_path:
            return node
        on_path.add(id(node))
        stack.append((node, True))
        if node.__class__ is SequenceNode:
            stack.extend((child, False) for child in node.value)
        else:
            for key, value in node.value:
                stack.append((key, False))
                stack.append((value, False))
    return None


def load_all(text: str | bytes, *, source: str = "<input>") -> list[dict[str, Any]]:
    """Parse a multi-document manifest stream into plain JSON-compatible objects.

    Values are typed as Flux's kustomize-controller types them (see the module docstring):
    go-yaml v3 scalars passed through encoding/json, so the result contains only dict, list, str,
    int, float, bool and None. Empty documents are skipped. Raises ManifestError, naming
    ``source`` with a line and column, on invalid YAML, on a document that is not a mapping, and
    on anything kustomize refuses (duplicate keys, non-string nested keys, NaN/Inf, bad separators).
    """
    decoded, split = _text_of(text, source)
    if split and "\r" in decoded:
        decoded = decoded.replace("\r\n", "\n")
    chunks = _split(decoded, source) if split else [(decoded, 0)]
    documents: list[dict[str, Any]] = []
    for chunk, line in chunks:
        root = _compose(chunk, line, source)
        if root is None:
            continue
        try:
            if type(root) is MappingNode:
                if not root.value:
                    continue
                budget = 100 * len(chunk) + 100_000
                try:
                    document = _Builder(budget).mapping(root, bool(root.flow_style), True)
                except _NeedsDeAnchor:
                    document = _MergingBuilder(budget).document(root)
                documents.append(document)
                continue
            if type(root) is ScalarNode:
                if _is_null_scalar(root):
                    continue
                raise _NodeError("document is a scalar, not a mapping (a Kubernetes object)", root)
            if not root.value:
                continue
            raise _NodeError("document is a sequence, not a mapping (a Kubernetes object)", root)
        except _NodeError as exc:
            mark = exc.node.start_mark
            raise ManifestError(
                exc.reason, source=source, line=line + mark.line + 1, column=mark.column + 1
            ) from None
        except RecursionError:
            cycle = _find_cycle(root)
            where = cycle if cycle is not None else root
            reason = "recursive alias" if cycle is not None else "document is nested too deeply"
            mark = where.start_mark
            raise ManifestError(
                reason, source=source, line=line + mark.line + 1, column=mark.column + 1
            ) from None
    return documents


# ---------------------------------------------------------------------------------------------
# Dumping

_YAML11_RESOLVER: Final = yaml.resolver.Resolver()
_DUMP_TRIGGERS: Final = frozenset(_HINTS) | frozenset(
    key for key in yaml.resolver.Resolver.yaml_implicit_resolvers if key
)
_FULL_TAGS: Final = {
    "null": _NULL_TAG,
    "bool": _BOOL_TAG,
    "int": _INT_TAG,
    "float": _FLOAT_TAG,
    "timestamp": _TIMESTAMP_TAG,
}
# Line breaks other than LF do not survive a literal block scalar unchanged.
_LITERAL_UNSAFE: Final = re.compile("[\r\x85\u2028\u2029]")


def _dump_plain_tag(value: str) -> str:
    """The tag a plain scalar of this text would get: our reading, else YAML 1.1's.

    A string is written plain only if both go-yaml (Flux) and YAML 1.1 readers (PyYAML, older
    tools) would read it back as a string; otherwise the emitter quotes it.
    """
    if not value:
        return _NULL_TAG
    if value[0] not in _DUMP_TRIGGERS:
        return _STR_TAG
    kind = go_resolve_plain(value, "")[0]
    if kind != "str":
        return _FULL_TAGS[kind]
    tag: str = _YAML11_RESOLVER.resolve(ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    return tag


class _Emitter(CEmitter):
    def resolve(self, kind: type[Node], value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            return _dump_plain_tag(value) if implicit[0] else _STR_TAG
        return _SEQ_TAG if kind is SequenceNode else _MAP_TAG

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None


def _node(obj: Any) -> Node:
    cls = obj.__class__
    if cls is str:
        if _GO_JSON_TROUBLE.search(obj):
            raise ValueError(f"{obj!r}: kustomize rejects DEL, C1 controls and U+FFFE/F, folds NEL")
        style = "|" if "\n" in obj and not _LITERAL_UNSAFE.search(obj) else None
        return ScalarNode(_STR_TAG, obj, style=style)
    if cls is dict:
        pairs = []
        for key, value in obj.items():
            if key.__class__ is not str:
                key = _dump_key(key)
            if key == "<<":
                raise ValueError("a '<<' key cannot be written: kustomize merges or drops it")
            if _GO_JSON_TROUBLE.search(key):
                raise ValueError(f"{key!r}: kustomize rejects DEL, C1 controls and U+FFFE/F")
            pairs.append((ScalarNode(_STR_TAG, key), _node(value)))
        return MappingNode(_MAP_TAG, pairs)
    if cls is list or cls is tuple:
        return SequenceNode(_SEQ_TAG, [_node(item) for item in obj])
    if cls is bool:
        return ScalarNode(_BOOL_TAG, "true" if obj else "false")
    if cls is int:
        if not INT64_MIN <= obj <= INT64_MAX:
            raise ValueError(f"integer {obj} does not fit in int64")
        return ScalarNode(_INT_TAG, str(obj))
    if obj is None:
        return ScalarNode(_NULL_TAG, "null")
    if cls is float:
        if math.isnan(obj) or math.isinf(obj):
            raise ValueError(f"{obj!r} cannot be written: Kubernetes objects are JSON")
        text = repr(obj)
        if "e" in text and "." not in text:
            # YAML 1.1 readers need a dot to see a float.
            text = text.replace("e", ".0e", 1)
        return ScalarNode(_FLOAT_TAG, text)
    # Subclasses (str enums, OrderedDict, ...) are written as their base type.
    if isinstance(obj, str):
        return _node(str.__str__(obj))
    if isinstance(obj, bool):
        return _node(bool(obj))
    if isinstance(obj, int):
        return _node(int(obj))
    if isinstance(obj, float):
        return _node(float(obj))
    if isinstance(obj, Mapping):
        return _node(dict(obj))
    if isinstance(obj, list | tuple):
        return _node(list(obj))
    raise TypeError(f"cannot write a {cls.__name__} into a manifest")


def _dump_key(key: Any) -> str:
    if isinstance(key, str):
        return str.__str__(key)
    raise TypeError(f"mapping keys must be strings, not {key.__class__.__name__}: {key!r}")


def dump_all(objs: Iterable[Any]) -> str:
    """Write objects as a YAML stream that load_all reads back to equal objects.

    Documents are separated by ``---``; key order is kept; multi-line strings use literal blocks;
    strings that go-yaml or YAML 1.1 would read as another type (``"yes"``, ``"010"``,
    ``"2024-01-02"``) are quoted. Only JSON-compatible values are accepted (TypeError otherwise).
    ValueError for what kustomize could not carry through unchanged: NaN, infinities, integers
    outside int64, ``<<`` keys, and strings with DEL, C1 controls (NEL folds into a space) or
    U+FFFE/U+FFFF. An integral float comes back as an int, as it does through kustomize.
    """
    stream = io.StringIO()
    emitter = _Emitter(stream, indent=2, width=1 << 30, allow_unicode=True)
    try:
        emitter.open()
        for obj in objs:
            try:
                node = _node(obj)
            except RecursionError:
                raise ValueError("cannot write a recursive or too deeply nested object") from None
            emitter.serialize(node)
        emitter.close()
    finally:
        emitter.dispose()
    return stream.getvalue()


def dump(obj: Any) -> str:
    """Write one object as a YAML document (see dump_all)."""
    return dump_all([obj])
