"""The ``${var}`` language of Flux's post-build substitution, as a pure text engine.

Flux evaluates it with fluxcd/pkg/envsubst (a fork of drone/envsubst); this module reproduces the
v1.7.1 release that flux v2.9.5 and kustomize-controller v1.9.5 link, quirks included, because a
manifest that renders differently here than under Flux would be applied differently. Checked
against ``flux envsubst`` (tests/unit/test_kustomize_envsubst.py).

Syntax (only the braced form; anything else is copied as is):

=========================  ===================================================================
``${var}``                 the value
``$${var}``                the literal text ``${var}``; ``$$`` is one ``$`` anywhere outside an
                           expression; a lone ``$``, ``$var`` and ``$`` at the end stay as written
``${#var}``                length in UTF-8 bytes (Go's ``len``)
``${var^}`` ``${var^^}``   upper-case the first / every character (Go's simple case mapping)
``${var,}`` ``${var,,}``   lower-case the first / every character; ``${var,^}`` and ``${var^,}``
                           parse and leave the value unchanged
``${var:n}``               from byte offset n (negative: from the end, clamped at 0)
``${var:n:len}``           at most len bytes; a negative len drops that many bytes from the end;
                           an offset or length that is not a Go integer yields the whole value
``${var#p}`` ``${var##p}``  remove the shortest / longest *non-empty* prefix matching glob p
``${var%p}`` ``${var%%p}``  the same for suffixes, done by reversing value and pattern
``${var/p/r}``             replace the first occurrence of p (literal text, not a glob)
``${var//p/r}``            replace every occurrence; ``${var/p/}`` replaces with nothing
``${var/#p/r}``            replace p when it is a prefix; ``${var/#p/}`` changes nothing
``${var/%p/r}``            replace p when it is a suffix; ``${var/%p/}`` changes nothing
``${var=d}`` ``${var:=d}``  the default d when the value is empty (nothing is assigned; ``=`` and
``${var:-d}``              ``:=`` and ``:-`` all test for empty, not for unset)
``${var:?d}`` ``${var:+d}``  listed as unsupported by Flux, but they parse and act like ``:-``
``${var-d}`` ``${var+d}``  error "missing closing brace" (also ``${var?d}``)
=========================  ===================================================================

A default is text up to the first ``}`` (``:`` and ``=`` are fine, ``$$`` is not an escape there)
mixed with nested expressions: ``${a:=x${b}y}``. Offsets, lengths and ``#``/``%`` patterns are
either plain text or one nested expression. In the ``/`` forms ``\\/``, ``\\\\`` and ``$$`` escape
``/``, ``\\`` and ``$``, and the pattern cannot be empty (``${var//x}`` and ``${var/#/x}`` are
errors). A variable name is letters, digits and ``_`` (a leading digit is accepted here; Flux's
variable-name check rejects such variables elsewhere). A NUL character ends the input: what follows
it is dropped. A run of ``/`` (or of ``:`` between offset and length) counts as one delimiter.

Patterns are Go's path.Match as Flux forked it (``*`` also matches ``/``; a malformed pattern
leaves the value unchanged), tried against byte prefixes of the value, so ``?`` may match the
first byte of a multi-byte character and leave the rest behind.

Every nested expression is evaluated before its parent looks at its own variable, so in strict
mode ``${a:=${b}}`` fails when ``b`` is undefined even if ``a`` is set. Strict mode fails on an
undefined variable unless the operator is one of the defaults (``=`` ``:=`` ``:-`` ``:?`` ``:+``);
otherwise an undefined variable is empty. The whole text is parsed before anything is evaluated,
so a syntax error anywhere wins over an undefined variable.

Text that is not valid UTF-8 may be passed with undecodable bytes as lone surrogates
(``errors="surrogateescape"``); they count as one byte each and come out the same way, except
where Go would write U+FFFD (case conversion, ``%`` and ``%%``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from tidal.kube.gostrconv import INT64_MAX, parse_int

__all__ = ["EnvsubstError", "envsubst"]

# Flux's error texts, which users see in Kustomization conditions.
BAD_SUBSTITUTION: Final = "bad substitution"
MISSING_CLOSING_BRACE: Final = "missing closing brace"
BAD_VARIABLE_NAME: Final = "unable to parse variable name"
BAD_FUNCTION_ARGUMENT: Final = "unable to parse substitution within function"
VARIABLE_NOT_SET: Final = "variable not set (strict mode)"

_RUNE_ERROR: Final = 0xFFFD
# Operators that supply a value for an undefined variable, so strict mode lets them through.
_DEFAULT_OPS: Final = frozenset(("=", ":=", ":-", ":?", ":+"))
_TOP_LEVEL_SPECIAL: Final = re.compile("[$\x00]")
_ESCAPED_BYTE: Final = re.compile("[\udc80-\udcff]")


class EnvsubstError(ValueError):
    """Text that Flux's envsubst refuses; the message is Flux's."""


@dataclass(frozen=True, slots=True)
class _Expr:
    """One ``${...}``: the variable, the operator as written (``""`` for none), its arguments."""

    name: str
    op: str
    args: tuple[_Part, ...]


_Part = str | _Expr


def envsubst(text: str, variables: Mapping[str, str], *, strict: bool = False) -> str:
    """Substitute ``variables`` into ``text`` as Flux's post-build substitution does.

    With ``strict``, an undefined variable used without a default operator raises
    EnvsubstError('variable not set (strict mode): "name"'); otherwise it is empty. Syntax errors
    raise EnvsubstError with Flux's message (see the module docstring).
    """
    try:
        parts = _Parser(_canonical(text)).template()
        return _canonical("".join(_evaluate(part, variables, strict) for part in parts))
    except RecursionError:
        raise EnvsubstError("expressions are nested too deeply") from None


# ---------------------------------------------------------------------------------------------
# Parsing


def _utf8_width(ch: str) -> int:
    # Lone surrogates stand for single undecodable bytes (surrogateescape).
    code = ord(ch)
    if code < 0x80 or 0xD800 <= code <= 0xDFFF:
        return 1
    return 2 if code < 0x800 else 3 if code < 0x10000 else 4


def _is_name_char(ch: str) -> bool:
    # Go's unicode.IsLetter (category L*), unicode.IsDigit (Nd) and "_".
    if ch.isascii():
        return ch.isalnum() or ch == "_"
    category = unicodedata.category(ch)
    return category[0] == "L" or category == "Nd"


class _Parser:
    """A recursive-descent reading of the grammar fluxcd/pkg/envsubst's scanner accepts."""

    __slots__ = ("end", "pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        # Go's scanner returns the same "end of input" rune for NUL as for the real end, so no
        # rule ever looks past the first NUL.
        nul = text.find("\x00")
        self.end = len(text) if nul < 0 else nul

    def peek(self, offset: int = 0) -> str:
        """The character at pos+offset, or "" at the end (NUL included)."""
        i = self.pos + offset
        return self.text[i] if i < self.end else ""

    def template(self) -> list[_Part]:
        text, end = self.text, self.end
        parts: list[_Part] = []
        literal: list[str] = []
        while self.pos < end:
            match = _TOP_LEVEL_SPECIAL.search(text, self.pos, end)
            stop = match.start() if match else end
            literal.append(text[self.pos : stop])
            self.pos = stop
            if stop >= end:
                break
            following = self.peek(1)
            if following == "{":
                self.pos += 2
                if literal:
                    parts.append("".join(literal))
                    literal = []
                parts.append(self.expression())
            else:
                # "$$" is an escaped "$"; any other "$" is literal.
                literal.append("$")
                self.pos += 2 if following == "$" else 1
        if literal:
            parts.append("".join(literal))
        return parts

    def expression(self) -> _Expr:
        """The inside of ``${...}``, after the opening brace, up to and including ``}``."""
        if self.peek() == "#":
            return self.length()
        name = self.name()
        if not name:
            raise EnvsubstError(BAD_VARIABLE_NAME)
        ch = self.peek()
        if ch == ":":
            return self.colon(name)
        if ch == "=":
            self.pos += 1
            return self.default(name, "=")
        if ch in (",", "^"):
            return self.casing(name)
        if ch == "/":
            return self.replace(name)
        if ch in ("#", "%"):
            return self.remove(name, ch)
        if ch == "}":
            self.pos += 1
            return _Expr(name, "", ())
        raise EnvsubstError(MISSING_CLOSING_BRACE)

    def name(self) -> str:
        start = self.pos
        while (ch := self.peek()) and _is_name_char(ch):
            self.pos += 1
        return self.text[start : self.pos]

    def close(self) -> None:
        if self.peek() != "}":
            raise EnvsubstError(BAD_SUBSTITUTION)
        self.pos += 1

    def length(self) -> _Expr:
        self.pos += 1
        name = self.name()
        if not name:
            raise EnvsubstError(BAD_SUBSTITUTION)
        self.close()
        return _Expr(name, "#", ())

    def casing(self, name: str) -> _Expr:
        start = self.pos
        while self.pos - start < 2 and self.peek() in (",", "^"):
            self.pos += 1
        op = self.text[start : self.pos]
        self.close()
        return _Expr(name, op, ())

    def remove(self, name: str, mark: str) -> _Expr:
        op = mark * 2 if self.peek(1) == mark else mark
        self.pos += len(op)
        pattern = self.argument("}", escapes=False)
        self.close()
        return _Expr(name, op, (pattern,))

    def replace(self, name: str) -> _Expr:
        second = self.peek(1)
        op = "/" + second if second in ("/", "#", "%") else "/"
        self.pos += len(op)
        pattern = self.argument("/", escapes=True)
        # Flux's scanner takes a run of slashes as the delimiter: ${v/a//b} replaces a with b.
        if self.peek() != "/":
            raise EnvsubstError(BAD_SUBSTITUTION)
        while self.peek() == "/":
            self.pos += 1
        if self.peek() == "}":
            self.pos += 1
            return _Expr(name, op, (pattern,))
        replacement = self.argument("}", escapes=True)
        self.close()
        return _Expr(name, op, (pattern, replacement))

    def colon(self, name: str) -> _Expr:
        following = self.peek(1)
        if following and following in "=-?+":
            self.pos += 2
            return self.default(name, ":" + following)
        if self.pos + 1 >= len(self.text):
            # Flux rewinds by the width of the character it peeked after ":", which is zero at
            # the real end of the input, and then finds no ":" to start a substring.
            raise EnvsubstError(BAD_SUBSTITUTION)
        if _utf8_width(self.text[self.pos + 1]) > 1:
            # The same rewind lands inside the variable name for a multi-byte character.
            raise EnvsubstError(BAD_SUBSTITUTION)
        self.pos += 1
        offset = self.argument(":}", escapes=False)
        ch = self.peek()
        if ch == "}":
            self.pos += 1
            return _Expr(name, ":", (offset,))
        if ch != ":":
            raise EnvsubstError(BAD_SUBSTITUTION)
        # Like the "/" delimiter, a run of colons separates offset and length.
        while self.peek() == ":":
            self.pos += 1
        length = self.argument("}", escapes=False)
        self.close()
        return _Expr(name, ":", (offset, length))

    def default(self, name: str, op: str) -> _Expr:
        args: list[_Part] = []
        while self.peek() != "}":
            args.append(self.argument("}", escapes=False))
        self.pos += 1
        return _Expr(name, op, tuple(args))

    def argument(self, stops: str, *, escapes: bool) -> _Part:
        """One operand: a nested expression, or text up to a stop character or ``${``.

        With ``escapes``, ``$$``, ``\\/`` and ``\\\\`` stand for their second character, which is
        then never a stop character.
        """
        if self.pos >= self.end:
            raise EnvsubstError(BAD_FUNCTION_ARGUMENT)
        text = self.text
        if text.startswith("${", self.pos) and self.pos + 1 < self.end:
            self.pos += 2
            return self.expression()
        out: list[str] = []
        first = True
        while self.pos < self.end:
            ch = text[self.pos]
            following = self.peek(1)
            if ch == "$" and following == "{":
                break
            if escapes and (
                (ch == "$" and following == "$") or (ch == "\\" and following in ("/", "\\"))
            ):
                out.append(following)
                self.pos += 2
            elif ch in stops:
                if first:
                    raise EnvsubstError(BAD_FUNCTION_ARGUMENT)
                break
            else:
                out.append(ch)
                self.pos += 1
            first = False
        return "".join(out)


# ---------------------------------------------------------------------------------------------
# Evaluation


def _evaluate(part: _Part, variables: Mapping[str, str], strict: bool) -> str:
    if isinstance(part, str):
        return part
    args = [_evaluate(arg, variables, strict) for arg in part.args]
    value = variables.get(part.name)
    if value is None:
        if strict and part.op not in _DEFAULT_OPS:
            raise EnvsubstError(f'{VARIABLE_NOT_SET}: "{part.name}"')
        value = ""
    return _apply(part.op, _canonical(value), args)


def _apply(op: str, value: str, args: list[str]) -> str:
    if not op:
        return value
    if op in _DEFAULT_OPS:
        return value if value or not args else "".join(args)
    if op == "#" and not args:
        return str(len(_to_bytes(value)))
    if op == ",,":
        return _go_lower(value)
    if op == "^^":
        return _go_upper(value)
    if op in (",", "^"):
        if not value:
            return value
        first = "\ufffd" if _ESCAPED_BYTE.fullmatch(value[0]) else value[0]
        return (_go_lower(first) if op == "," else _go_upper(first)) + value[1:]
    if op == ":":
        return _substring(value, args)
    if op in ("#", "##"):
        return _from_bytes(_trim_prefix(_to_bytes(value), _to_bytes(args[0]), op == "##"))
    if op in ("%", "%%"):
        # Flux trims a suffix by reversing both strings rune by rune (invalid bytes become
        # U+FFFD), which also reverses bracket expressions and escapes in the pattern.
        reversed_value = _to_bytes(_reverse_runes(value))
        reversed_pattern = _to_bytes(_reverse_runes(args[0]))
        trimmed = _trim_prefix(reversed_value, reversed_pattern, op == "%%")
        return _reverse_runes(_from_bytes(trimmed))
    if op.startswith("/"):
        return _replace(op, value, args)
    # ",^" and "^,": Flux parses them and falls back to returning the value.
    return value


def _canonical(text: str) -> str:
    """The text with escaped bytes that form valid UTF-8 together decoded, as Go sees them."""
    return _from_bytes(_to_bytes(text)) if _ESCAPED_BYTE.search(text) else text


def _to_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _from_bytes(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _reverse_runes(text: str) -> str:
    return _ESCAPED_BYTE.sub("\ufffd", text)[::-1]


def _go_lower(text: str) -> str:
    if text.isascii():
        return text.lower()
    # Go maps rune by rune with the simple (one-to-one) case mapping and writes U+FFFD for
    # invalid bytes; Python's str.lower uses the full mapping (İ -> i + U+0307).
    return "".join(_simple_lower(ch) for ch in _ESCAPED_BYTE.sub("\ufffd", text))


def _go_upper(text: str) -> str:
    if text.isascii():
        return text.upper()
    return "".join(_simple_upper(ch) for ch in _ESCAPED_BYTE.sub("\ufffd", text))


def _simple_lower(ch: str) -> str:
    lower = ch.lower()
    # Only U+0130 lowers to two characters; its simple mapping is the first of them.
    return lower if len(lower) == 1 else lower[0]


def _simple_upper(ch: str) -> str:
    upper = ch.upper()
    if len(upper) == 1:
        return upper
    # Characters whose full upper-case form is several characters: the simple mapping is the
    # title-case form when that is one character (U+1F80 -> U+1F88), otherwise none (ß, ŉ).
    title = ch.title()
    return title if len(title) == 1 else ch


def _substring(value: str, args: list[str]) -> str:
    data = _to_bytes(value)
    size = len(data)
    start = parse_int(args[0], 10)  # strconv.Atoi
    if start is None:
        return value
    if start < 0:
        start = max(size + start, 0)
    if len(args) == 1:
        return _from_bytes(data[start:]) if start < size else ""
    length = parse_int(args[1], 10)
    if length is None:
        return value
    if length < 0:
        end = size + length
        return "" if end < start else _from_bytes(data[start:end])
    if start + length > INT64_MAX:
        # Go's int addition wraps around and the slice expression panics.
        raise EnvsubstError("runtime error: slice bounds out of range")
    if start + length >= size:
        return _from_bytes(data[start:]) if start < size else ""
    return _from_bytes(data[start : start + length])


def _replace(op: str, value: str, args: list[str]) -> str:
    old = args[0]
    new = args[1] if len(args) > 1 else ""
    if op in ("/", "//"):
        count = 1 if op == "/" else -1
        if not old:
            # Go inserts at every rune boundary, as str.replace does at every code point.
            return value.replace("", new, count)
        return _from_bytes(_to_bytes(value).replace(_to_bytes(old), _to_bytes(new), count))
    if len(args) != 2:
        return value
    data, old_b = _to_bytes(value), _to_bytes(old)
    if op == "/#":
        return new + _from_bytes(data[len(old_b) :]) if data.startswith(old_b) else value
    if data.endswith(old_b):
        return _from_bytes(data[: len(data) - len(old_b)]) + new
    return value


# ---------------------------------------------------------------------------------------------
# Glob patterns: Flux's fork of Go's path.Match, where "*" also matches "/", working on bytes.


class _BadPattern(Exception):
    pass


def _trim_prefix(data: bytes, pattern: bytes, longest: bool) -> bytes:
    """Remove the shortest or longest non-empty prefix of data that matches pattern.

    Flux tries the prefixes from the longest down and gives up on the first malformed-pattern
    error, returning the data untouched even if an earlier prefix had matched.
    """
    shortest: int | None = None
    for size in range(len(data), 0, -1):
        try:
            matched = _glob_match(pattern, data[:size])
        except _BadPattern:
            return data
        if matched:
            if longest:
                return data[size:]
            shortest = size
    return data if shortest is None else data[shortest:]


def _decode_rune(data: bytes) -> tuple[int, int]:
    """utf8.DecodeRune: (code point, width), (U+FFFD, 1) for an invalid sequence."""
    lead = data[0]
    if lead < 0x80:
        return lead, 1
    width = (
        2
        if 0xC2 <= lead <= 0xDF
        else 3
        if 0xE0 <= lead <= 0xEF
        else 4
        if 0xF0 <= lead <= 0xF4
        else 0
    )
    if width:
        try:
            return ord(data[:width].decode("utf-8")), width
        except UnicodeDecodeError:
            pass
    return _RUNE_ERROR, 1


def _split_chunk(pattern: bytes) -> tuple[bool, bytes, bytes]:
    """Leading stars, then the pattern up to the next star outside brackets, and the rest."""
    stripped = pattern.lstrip(b"*")
    star = len(stripped) != len(pattern)
    in_range = False
    i = 0
    while i < len(stripped):
        c = stripped[i]
        if c == 0x5C:  # backslash: the next byte is literal
            if i + 1 < len(stripped):
                i += 1
        elif c == 0x5B:  # [
            in_range = True
        elif c == 0x5D:  # ]
            in_range = False
        elif c == 0x2A and not in_range:  # *
            break
        i += 1
    return star, stripped[:i], stripped[i:]


def _glob_match(pattern: bytes, name: bytes) -> bool:
    while pattern:
        star, chunk, pattern = _split_chunk(pattern)
        if star and not chunk:
            # A trailing star matches whatever is left, slashes included.
            return True
        rest = _match_chunk(chunk, name)
        # The last chunk must use up the name; otherwise a star may still shift it along.
        if rest is not None and (not rest or pattern):
            name = rest
            continue
        if not star:
            return False
        for skip in range(1, len(name) + 1):
            rest = _match_chunk(chunk, name[skip:])
            if rest is not None and (pattern or not rest):
                name = rest
                break
        else:
            return False
    return not name


def _match_chunk(chunk: bytes, name: bytes) -> bytes | None:
    """What is left of name after chunk matches its start, None if it does not match."""
    while chunk:
        if not name:
            return None
        c = chunk[0]
        if c == 0x5B:  # [
            rune, width = _decode_rune(name)
            name = name[width:]
            chunk = chunk[1:]
            negated = chunk[:1] == b"^"
            if negated:
                chunk = chunk[1:]
            matched = False
            ranges = 0
            while True:
                if chunk[:1] == b"]" and ranges:
                    chunk = chunk[1:]
                    break
                lo, chunk = _class_char(chunk)
                hi = lo
                if chunk[:1] == b"-":
                    hi, chunk = _class_char(chunk[1:])
                matched = matched or lo <= rune <= hi
                ranges += 1
            if matched == negated:
                return None
        elif c == 0x3F:  # ?
            name = name[_decode_rune(name)[1] :]
            chunk = chunk[1:]
        else:
            if c == 0x5C:  # backslash
                chunk = chunk[1:]
                if not chunk:
                    raise _BadPattern
            if chunk[0] != name[0]:
                return None
            name = name[1:]
            chunk = chunk[1:]
    return name


def _class_char(chunk: bytes) -> tuple[int, bytes]:
    """One character of a bracket expression, possibly escaped, and the pattern after it."""
    if not chunk or chunk[0] in b"-]":
        raise _BadPattern
    if chunk[0] == 0x5C:
        chunk = chunk[1:]
        if not chunk:
            raise _BadPattern
    rune, width = _decode_rune(chunk)
    if rune == _RUNE_ERROR and width == 1:
        raise _BadPattern
    rest = chunk[width:]
    if not rest:
        raise _BadPattern
    return rune, rest
