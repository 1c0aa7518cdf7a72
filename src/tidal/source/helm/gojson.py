"""Go's encoding/json output, byte for byte, for the values a Helm index holds.

source-controller stores a HelmRepository's artifact as `json.MarshalIndent(index, "", "  ")`;
consumers only parse it, but its digest is in status.artifact, so tidal writes the same bytes.
Values are plain Python: str, bool, None, int/float (a Go float64), list, dict (written in its
own order: callers sort map keys and lay out struct fields), and GoTime.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

# Go escapes <, > and & for HTML safety, and U+2028/U+2029 for JavaScript.
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_NEEDS_ESCAPE = re.compile('["\\\\<>&\u2028\u2029\x00-\x1f]')


def _escape(m: re.Match[str]) -> str:
    c = m.group(0)
    return _ESCAPES.get(c) or f"\\u{ord(c):04x}"


def string(s: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(_escape, s) + '"'


class UnsupportedValueError(ValueError):
    pass


def float64(f: float) -> str:
    """strconv.AppendFloat(f, 'f' or 'e', -1, 64) as encoding/json picks and trims it."""
    if math.isnan(f) or math.isinf(f):
        raise UnsupportedValueError(f"json: unsupported value: {_go_special(f)}")
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    shortest = repr(f)
    if 1e-6 <= abs(f) < 1e21:
        text = format(Decimal(shortest), "f")
        return text[:-2] if text.endswith(".0") else text
    mantissa, _, exponent = shortest.partition("e")
    if mantissa.endswith(".0"):
        mantissa = mantissa[:-2]
    sign = exponent[0] if exponent[0] in "+-" else "+"
    digits = exponent.lstrip("+-").lstrip("0") or "0"
    if len(digits) < 2 and sign == "+":
        digits = digits.rjust(2, "0")
    return f"{mantissa}e{sign}{digits}"


def _go_special(f: float) -> str:
    if math.isnan(f):
        return "NaN"
    return "+Inf" if f > 0 else "-Inf"


# -- time.Time ------------------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})", re.ASCII
)


class TimeError(ValueError):
    pass


@dataclass(frozen=True)
class GoTime:
    """A time.Time as Go keeps it after parsing RFC 3339: the wall clock, nanoseconds and the
    offset it was written with (UTC when the offset is zero, as the controller's zone is UTC)."""

    wall: str  # YYYY-MM-DDTHH:MM:SS
    nanos: int
    offset_minutes: int

    @classmethod
    def parse(cls, text: str) -> GoTime:
        """time.Time.UnmarshalJSON's strict RFC 3339."""
        m = _RFC3339.fullmatch(text)
        if m is None:
            raise TimeError(f'parsing time "{text}" as RFC 3339: cannot parse')
        year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
        try:
            date(year, month, day)
        except ValueError:
            raise TimeError(f'parsing time "{text}": day out of range') from None
        if hour > 23 or minute > 59 or second > 59:
            raise TimeError(f'parsing time "{text}": time out of range')
        fraction = (m.group(7) or "")[:9]
        nanos = int(fraction.ljust(9, "0")) if fraction else 0
        zone = m.group(8)
        offset = 0
        if zone != "Z":
            zh, zm = int(zone[1:3]), int(zone[4:6])
            if zh > 23 or zm > 59:
                raise TimeError(f'parsing time "{text}": timezone hour out of range')
            offset = (zh * 60 + zm) * (-1 if zone[0] == "-" else 1)
        return cls(text[:19], nanos, offset)

    def rfc3339_nano(self) -> str:
        out = self.wall
        if self.nanos:
            out += "." + f"{self.nanos:09d}".rstrip("0")
        if self.offset_minutes == 0:
            return out + "Z"
        sign = "-" if self.offset_minutes < 0 else "+"
        minutes = abs(self.offset_minutes)
        return f"{out}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


ZERO_TIME = GoTime("0001-01-01T00:00:00", 0, 0)


# -- values ---------------------------------------------------------------------------------------


def encode(value: Any, depth: int, out: list[str]) -> None:
    """Append `value` as MarshalIndent(prefix "", indent "  ") writes it at nesting `depth`."""
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(string(value))
    elif isinstance(value, int | float):
        out.append(float64(float(value)))
    elif isinstance(value, GoTime):
        out.append(string(value.rfc3339_nano()))
    elif isinstance(value, Mapping):
        if not value:
            out.append("{}")
            return
        inner = "\n" + "  " * (depth + 1)
        out.append("{")
        first = True
        for key, item in value.items():
            out.append(inner if first else "," + inner)
            first = False
            out.append(string(key))
            out.append(": ")
            encode(item, depth + 1, out)
        out.append("\n" + "  " * depth + "}")
    elif isinstance(value, Sequence):
        if not value:
            out.append("[]")
            return
        inner = "\n" + "  " * (depth + 1)
        out.append("[")
        for i, item in enumerate(value):
            out.append(inner if i == 0 else "," + inner)
            encode(item, depth + 1, out)
        out.append("\n" + "  " * depth + "]")
    else:
        raise UnsupportedValueError(f"json: unsupported type: {type(value).__name__}")
