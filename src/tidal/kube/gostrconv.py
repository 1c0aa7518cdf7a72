"""Go's strconv: integer parsing, which decides how go-yaml types plain scalars (the YAML reader
tidal.kube.yamlio and the flux-style writer tidal.kube.goyaml must agree with it), and float
formatting, which decides the text of numbers that go-yaml, encoding/json and SOPS write."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Final

INT64_MIN: Final = -(1 << 63)
INT64_MAX: Final = (1 << 63) - 1
UINT64_MAX: Final = (1 << 64) - 1

_DIGITS: Final[dict[int, re.Pattern[str]]] = {
    2: re.compile(r"[01]*"),
    8: re.compile(r"[0-7]*"),
    10: re.compile(r"[0-9]*"),
    16: re.compile(r"[0-9a-fA-F]*"),
}


def parse_uint(s: str, base: int) -> int | None:
    """strconv.ParseUint(s, base, 64); base 0 means "from the prefix" (0x, 0o, 0b or 0)."""
    if not s:
        return None
    if base == 0:
        base = 10
        if s[0] == "0":
            if len(s) >= 3 and s[1] in "bB":
                base, s = 2, s[2:]
            elif len(s) >= 3 and s[1] in "oO":
                base, s = 8, s[2:]
            elif len(s) >= 3 and s[1] in "xX":
                base, s = 16, s[2:]
            else:
                base, s = 8, s[1:]
    if not _DIGITS[base].fullmatch(s):
        return None
    n = int(s, base) if s else 0
    return n if n <= UINT64_MAX else None


def parse_int(s: str, base: int) -> int | None:
    """strconv.ParseInt(s, base, 64)."""
    body = s[1:] if s[:1] in ("+", "-") else s
    u = parse_uint(body, base)
    if u is None:
        return None
    if s[:1] == "-":
        return -u if u <= 1 << 63 else None
    return u if u <= INT64_MAX else None


# --- strconv.FormatFloat and encoding/json's float encoder ------------------------------------
#
# Python's repr() picks the same shortest round-tripping digits as Go's shortest formatting
# (precision -1); only the notation differs, and that is what these functions reproduce.


def shortest_digits(value: float) -> tuple[str, int]:
    """The shortest digits of |value| (finite, non-zero) and `point` such that
    |value| = 0.<digits> x 10^point."""
    _, digit_tuple, exponent = Decimal(repr(abs(value))).as_tuple()
    assert isinstance(exponent, int)
    return "".join(map(str, digit_tuple)).rstrip("0") or "0", len(digit_tuple) + exponent


def exponent_form(sign: str, digits: str, point: int, letter: str = "e") -> str:
    """d.ddd e±XX, Go's %e layout (at least two exponent digits)."""
    exp = point - 1
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mantissa}{letter}{'-' if exp < 0 else '+'}{abs(exp):02d}"


def fixed_form(sign: str, digits: str, point: int) -> str:
    """ddd.ddd, Go's %f layout with exactly the given digits."""
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def g_form(sign: str, digits: str, point: int, letter: str = "e") -> str:
    """Go's %g choice for shortest digits: the exponent form below 1e-4 and from 1e6 on."""
    exp = point - 1
    if exp < -4 or exp >= 6:
        return exponent_form(sign, digits, point, letter)
    return fixed_form(sign, digits, point)


def format_float(value: float, fmt: str = "g") -> str:
    """strconv.FormatFloat(value, fmt, -1, 64) for fmt 'g', 'G' or 'f' (NaN, +Inf, -Inf)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    digits, point = shortest_digits(value)
    if fmt == "f":
        return fixed_form(sign, digits, point)
    return g_form(sign, digits, point, "E" if fmt == "G" else "e")


def format_json_float(value: float) -> str:
    """encoding/json's text of a finite float64."""
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    digits, point = shortest_digits(value)
    magnitude = abs(value)
    if magnitude < 1e-6 or magnitude >= 1e21:
        text = exponent_form(sign, digits, point)
        # Go trims e-07 to e-7 (and only the negative exponents).
        if text[-4:-2] == "e-" and text[-2] == "0":
            text = text[:-2] + text[-1]
        return text
    return fixed_form(sign, digits, point)
