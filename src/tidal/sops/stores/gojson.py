"""JSON as SOPS's JSON store reads and writes it with Go's encoding/json.

Reading keeps the order of keys (and duplicates), as SOPS's token-by-token decoder does, and
gives every number as a float64 (SOPS does not ask for json.Number). Bytes that are not UTF-8
become U+FFFD inside strings, as in Go. Syntax errors carry Go's wording; they name at most one
offending character, never a value.

Writing follows `json.Marshal` for the leaves (HTML-safe escapes, Go's float format) and
`json.Indent` with a tab for the layout, which is what `sops decrypt` prints.
"""

from __future__ import annotations

import base64
import math
import re
from typing import Any, Final

from tidal.kube.gostrconv import format_float, format_json_float
from tidal.sops.gotext import GoTime, format_time
from tidal.sops.model import Branch, Comment, Item, go_type, is_branch
from tidal.sops.stores.common import (
    MAX_DEPTH,
    FormatError,
    check_size,
    depth_error,
)

_WHITESPACE: Final = " \t\n\r"
_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_ESCAPES: Final = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
# The characters of a string up to its end, an escape, or a control character (an error).
_STRING_RUN: Final = re.compile(r'[^"\\\x00-\x1f]*')
_INVALID_BYTE: Final = re.compile("[\udc80-\udcff]")


def quote_char(char: str) -> str:
    """Go's quoteChar: how encoding/json names a character in a syntax error."""
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    code = ord(char)
    if code < 0x20 or code == 0x7F:
        return f"'\\x{code:02x}'"
    if 0xDC80 <= code <= 0xDCFF:  # an invalid byte, kept by surrogateescape
        return f"'\\x{code - 0xDC00:02x}'"
    return f"'{char}'"


class _Reader:
    """A recursive-descent reader of one JSON value, in Go's grammar and with Go's errors."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, context: str) -> FormatError:
        if self.pos >= len(self.text):
            return FormatError("unexpected end of JSON input")
        return FormatError(f"invalid character {quote_char(self.text[self.pos])} {context}")

    def skip_space(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
        self.pos = pos

    def value(self, depth: int) -> Any:
        self.skip_space()
        if self.pos >= len(self.text):
            raise self.error("")
        char = self.text[self.pos]
        if char == "{":
            return self.obj(depth + 1)
        if char == "[":
            return self.array(depth + 1)
        if char == '"':
            return self.string()
        if char == "-" or "0" <= char <= "9":
            return self.number()
        for word, result in (("true", True), ("false", False), ("null", None)):
            if char == word[0]:
                return self.literal(word, result)
        raise self.error("looking for beginning of value")

    def literal(self, word: str, result: Any) -> Any:
        for expected in word:
            if self.pos >= len(self.text):
                raise self.error("")
            if self.text[self.pos] != expected:
                raise self.error(f"in literal {word} (expecting {quote_char(expected)})")
            self.pos += 1
        return result

    def number(self) -> float:
        found = _NUMBER.match(self.text, self.pos)
        if found is None or found.end() == self.pos:
            self.pos += 1  # past the '-': what follows is not a digit
            raise self.error("in numeric literal")
        end = found.end()
        # A number cut short ("1." or "1e") is an error on the character that follows.
        if end < len(self.text) and self.text[end] in ".eE":
            self.pos = end + 1
            while self.pos < len(self.text) and self.text[self.pos] in "+-":
                self.pos += 1
            raise self.error("in numeric literal")
        self.pos = end
        value = float(found.group())
        if math.isinf(value):
            raise FormatError(
                f"json: cannot unmarshal number {found.group()} into Go value of type float64"
            )
        return value

    def string(self) -> str:
        text = self.text
        self.pos += 1
        out: list[str] = []
        while True:
            run = _STRING_RUN.match(text, self.pos)
            assert run is not None
            out.append(run.group())
            self.pos = run.end()
            if self.pos >= len(text):
                raise self.error("")
            char = text[self.pos]
            if char == '"':
                self.pos += 1
                return _INVALID_BYTE.sub("\ufffd", "".join(out))
            if char != "\\":
                raise self.error("in string literal")
            out.append(self.escape())

    def escape(self) -> str:
        self.pos += 1
        if self.pos >= len(self.text):
            raise self.error("")
        char = self.text[self.pos]
        if char in _ESCAPES:
            self.pos += 1
            return _ESCAPES[char]
        if char != "u":
            raise self.error("in string escape code")
        self.pos += 1
        first = self.hex4()
        if 0xD800 <= first < 0xDC00 and self.text.startswith("\\u", self.pos):
            saved = self.pos
            self.pos += 2
            second = self.hex4()
            if 0xDC00 <= second < 0xE000:
                return chr(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
            self.pos = saved
        if 0xD800 <= first < 0xE000:
            return "\ufffd"
        return chr(first)

    def hex4(self) -> int:
        for _ in range(4):
            if self.pos >= len(self.text):
                raise self.error("")
            if self.text[self.pos] not in "0123456789abcdefABCDEF":
                raise self.error("in \\u hexadecimal character escape")
            self.pos += 1
        return int(self.text[self.pos - 4 : self.pos], 16)

    def take(self, char: str) -> bool:
        """Past `char` if it comes next, after white space."""
        self.skip_space()
        if self.text.startswith(char, self.pos):
            self.pos += 1
            return True
        return False

    def more(self, end: str, context: str) -> bool:
        """After an element of an object or array: whether a ',' (another element) or its `end`
        follows."""
        if self.take(","):
            return True
        if self.take(end):
            return False
        raise self.error(context)

    def obj(self, depth: int) -> Branch:
        if depth > MAX_DEPTH:
            raise depth_error()
        self.pos += 1
        branch = Branch()
        if self.take("}"):
            return branch
        while True:
            self.skip_space()
            if not self.text.startswith('"', self.pos):
                raise self.error("looking for beginning of object key string")
            key = self.string()
            if not self.take(":"):
                raise self.error("after object key")
            branch.append(Item(key, self.value(depth)))
            if not self.more("}", "after object key:value pair"):
                return branch

    def array(self, depth: int) -> list[Any]:
        if depth > MAX_DEPTH:
            raise depth_error()
        self.pos += 1
        items: list[Any] = []
        if self.take("]"):
            return items
        while True:
            items.append(self.value(depth))
            if not self.more("]", "after array element"):
                return items


def _text(data: bytes) -> str:
    check_size(data)
    # Each byte that is not UTF-8 stays one code point (a lone surrogate) until a string
    # turns it into U+FFFD, as Go's decoder does byte by byte.
    return data.decode("utf-8", "surrogateescape")


def decode_document(data: bytes) -> Any:
    """The one JSON value of `data`, checked as json.Unmarshal checks it (nothing may follow)."""
    reader = _Reader(_text(data))
    value = reader.value(0)
    reader.skip_space()
    if reader.pos < len(reader.text):
        raise reader.error("after top-level value")
    return value


def decode_object(data: bytes) -> Branch:
    """The top-level object of `data` as SOPS's JSON store reads it (what follows is ignored)."""
    reader = _Reader(_text(data))
    reader.skip_space()
    if reader.pos >= len(reader.text):
        raise FormatError("EOF")
    if reader.text[reader.pos] != "{":
        if reader.text[reader.pos] in "[]}":
            raise FormatError(
                f"Expected JSON object start, got delimiter {reader.text[reader.pos]} instead"
            )
        value = reader.value(0)
        raise FormatError(f"Expected JSON object start, got a value of type {go_type(value)}")
    value = reader.value(0)
    assert isinstance(value, Branch)
    return value


def json_kind(value: Any) -> str:
    """How encoding/json names the JSON type of a decoded value in an UnmarshalTypeError."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, float | int):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if is_branch(value) else "array"


# ---------------------------------------------------------------------------------------------
# Writing


def _escape_char(char: str) -> str:
    code = ord(char)
    if char in ('"', "\\"):
        return "\\" + char
    if char == "\n":
        return "\\n"
    if char == "\r":
        return "\\r"
    if char == "\t":
        return "\\t"
    if char == "\b":
        return "\\b"
    if char == "\f":
        return "\\f"
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8
        return "\\ufffd"
    return f"\\u{code:04x}"


# Control characters, the HTML-sensitive three, quote, backslash, the JS line separators and
# escaped invalid bytes: what json.Marshal writes as escapes.
_NEEDS_ESCAPE: Final = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029\udc80-\udcff]')


def quote_string(text: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(lambda m: _escape_char(m.group()), text) + '"'


def marshal_leaf(value: Any) -> str:
    """json.Marshal of a leaf of a SOPS tree."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise FormatError(f"json: unsupported value: {format_float(value)}")
        return format_json_float(value)
    if isinstance(value, str):
        return quote_string(value)
    if isinstance(value, bytes):
        return '"' + base64.b64encode(value).decode() + '"'
    if isinstance(value, GoTime):
        return '"' + format_time(value) + '"'
    raise FormatError(f"json: unsupported type: {type(value).__name__}")


def _marshal(value: Any, indent: str, out: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise depth_error()
    inner = indent + "\t"
    if is_branch(value):
        items = [item for item in value if not isinstance(item.key, Comment)]
        if not items:
            out.append("{}")
            return
        out.append("{")
        for i, item in enumerate(items):
            out.append(("," if i else "") + "\n" + inner + quote_string(str(item.key)) + ": ")
            try:
                _marshal(item.value, inner, out, depth + 1)
            except FormatError as exc:
                # SOPS's encodeTree wraps the error of each value it writes.
                raise FormatError(f"Error encoding value : {exc}") from None
        out.append("\n" + indent + "}")
        return
    if isinstance(value, list):
        elements = [element for element in value if not isinstance(element, Comment)]
        if not elements:
            out.append("[]")
            return
        out.append("[")
        for i, element in enumerate(elements):
            out.append(("," if i else "") + "\n" + inner)
            _marshal(element, inner, out, depth + 1)
        out.append("\n" + indent + "]")
        return
    out.append(marshal_leaf(value))


def marshal_indent(value: Any) -> str:
    """SOPS's encodeTree/encodeArray of `value` passed through json.Indent(.., "", "\\t")."""
    out: list[str] = []
    _marshal(value, "", out, 0)
    return "".join(out)


def marshal_compact(value: Any, depth: int = 0) -> str:
    """json.Marshal of plain Python data: a dict's keys sorted as Go sorts a map's."""
    if depth > MAX_DEPTH:
        raise depth_error()
    if isinstance(value, dict):
        parts = []
        for key in sorted(value, key=lambda k: str(k).encode("utf-8", "surrogatepass")):
            parts.append(quote_string(str(key)) + ":" + marshal_compact(value[key], depth + 1))
        return "{" + ",".join(parts) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(marshal_compact(v, depth + 1) for v in value) + "]"
    return marshal_leaf(value)
