"""Go's text forms of float64 that the stores print: `strconv.FormatFloat` with 'g'/'G'
(shortest digits) and encoding/json's float encoder.

Python's repr() gives the same shortest round-tripping digits as Go; only the notation differs.
"""

from __future__ import annotations

import math
from decimal import Decimal


def _digits(value: float) -> tuple[str, int]:
    """The shortest decimal digits of |value| and the exponent e of value = 0.d1d2... x 10^e."""
    _, digit_tuple, exponent = Decimal(repr(abs(value))).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    return digits, len(digit_tuple) + exponent


def _exponent_form(sign: str, digits: str, point: int, letter: str) -> str:
    exp = point - 1
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mantissa}{letter}{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _fixed_form(sign: str, digits: str, point: int) -> str:
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def format_g(value: float, letter: str = "e") -> str:
    """strconv.FormatFloat(value, 'g', -1, 64) (or 'G' with letter "E")."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    digits, point = _digits(value)
    # For the shortest digits Go picks the exponent form below 1e-4 and from 1e6 on.
    exp = point - 1
    if exp < -4 or exp >= 6:
        return _exponent_form(sign, digits, point, letter)
    return _fixed_form(sign, digits, point)


def format_json(value: float) -> str:
    """encoding/json's text of a float64 (callers reject NaN and infinities first)."""
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    digits, point = _digits(value)
    magnitude = abs(value)
    if magnitude < 1e-6 or magnitude >= 1e21:
        text = _exponent_form(sign, digits, point, "e")
        # Go trims e-07 to e-7 (and only the negative exponents).
        if len(text) >= 4 and text[-4:-2] == "e-" and text[-2] == "0":
            text = text[:-2] + text[-1]
        return text
    return _fixed_form(sign, digits, point)
