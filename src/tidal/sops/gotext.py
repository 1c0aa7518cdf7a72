"""Go's text forms of the values SOPS stores: floats, integers, booleans and times.

SOPS (Go) turns decrypted text into values with `strconv` and `time`, and turns values back into
text for its MAC with `strconv.FormatFloat(f, 'f', -1, 64)` and `time.Time.MarshalText`; the MAC
only matches when the same bytes come out here. Parse errors are `ValueError`s whose text never
holds the input: it may be a decrypted secret.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Final

from tidal.kube import gostrconv

_DECIMAL_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX_FLOAT = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+")

_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})

# Go's time.Parse with layout RFC 3339 (the lenient parser: a one-digit hour and a comma before
# the fraction pass; Go truncates the fraction to nanoseconds).
_RFC3339 = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"T(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
    r"(?:[.,](?P<fraction>[0-9]+))?"
    r"(?P<zone>Z|[+-][0-9]{2}:[0-9]{2})"
)


def format_float(value: float) -> str:
    """`strconv.FormatFloat(value, 'f', -1, 64)`: the shortest digits, never an exponent."""
    return gostrconv.format_float(value, "f")


def parse_float(text: str) -> float:
    """`strconv.ParseFloat(text, 64)`, including its range error."""
    special = _special_float(text)
    if special is not None:
        return special
    if _DECIMAL_FLOAT.fullmatch(text):
        value = float(text)
    elif _HEX_FLOAT.fullmatch(text):
        value = float.fromhex(text)
    else:
        raise ValueError("strconv.ParseFloat: invalid syntax")
    if math.isinf(value):
        raise ValueError("strconv.ParseFloat: value out of range")
    return value


def _special_float(text: str) -> float | None:
    signed = text[:1] in ("+", "-")
    body = text[1:] if signed else text
    if body.lower() in ("inf", "infinity"):
        return -math.inf if text[0] == "-" else math.inf
    # Go takes no sign before NaN.
    if not signed and text.lower() == "nan":
        return math.nan
    return None


def parse_int(text: str) -> int:
    """`strconv.Atoi(text)` on a 64-bit platform."""
    value = gostrconv.parse_int(text, 10)
    if value is None:
        # Go's two errors, told apart without echoing the text (it may be a secret).
        digits = text[1:] if text[:1] in ("+", "-") else text
        if digits.isascii() and digits.isdigit():
            raise ValueError("strconv.Atoi: value out of range")
        raise ValueError("strconv.Atoi: invalid syntax")
    return value


def parse_bool(text: str) -> bool:
    """`strconv.ParseBool(text)`."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("strconv.ParseBool: invalid syntax")


class GoTime(datetime):
    """A time as Go holds it: a `datetime` that also keeps the nanoseconds below its microsecond.

    SOPS encrypts YAML timestamps with type `time`; this is what they decrypt to. It formats
    back exactly (`format_time`), which the MAC and the plain output need.
    """

    # datetime has no instance dict; a slot keeps the sub-microsecond part.
    __slots__ = ("_nanos",)
    _nanos: int

    @property
    def nanos(self) -> int:
        """Nanoseconds past `microsecond` (0-999); a copy made by datetime methods has none."""
        return getattr(self, "_nanos", 0)

    @classmethod
    def create(cls, moment: datetime, nanos: int) -> GoTime:
        made = cls(
            moment.year,
            moment.month,
            moment.day,
            moment.hour,
            moment.minute,
            moment.second,
            moment.microsecond,
            moment.tzinfo,
        )
        made._nanos = nanos
        return made

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        plain = datetime(
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.microsecond,
            self.tzinfo,
        )
        return (GoTime.create, (plain, self.nanos))


def parse_time(text: str) -> GoTime:
    """`time.Parse(time.RFC3339, text)` (and `Time.UnmarshalText`, as lenient in Go today)."""
    found = _RFC3339.fullmatch(text)
    if found is None:
        raise ValueError("parsing time: not RFC 3339")
    year, month, day = int(found["year"]), int(found["month"]), int(found["day"])
    hour, minute, second = int(found["hour"]), int(found["minute"]), int(found["second"])
    # Go refuses leap seconds and out-of-range fields, as datetime does.
    fraction = (found["fraction"] or "")[:9].ljust(9, "0")
    nanos = int(fraction)
    try:
        moment = datetime(year, month, day, hour, minute, second, nanos // 1000, _zone(found))
    except ValueError:
        raise ValueError("parsing time: field out of range") from None
    return GoTime.create(moment, nanos % 1000)


def _zone(found: re.Match[str]) -> timezone:
    zone = found["zone"]
    if zone == "Z":
        return UTC
    hours, minutes = int(zone[1:3]), int(zone[4:6])
    if hours > 23 or minutes > 59:
        raise ValueError("parsing time: time zone offset out of range")
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if zone[0] == "-" else offset)


def format_time(value: date, *, nanos: bool = True) -> str:
    """Go's `Format(time.RFC3339Nano)` (`MarshalText`), or `Format(time.RFC3339)` without nanos.

    A `date` is midnight UTC and a naive `datetime` is UTC, as Go's YAML decoder reads them.
    """
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    offset = value.utcoffset() or timedelta(0)
    text = (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )
    if nanos:
        total = value.microsecond * 1000 + (value.nanos if isinstance(value, GoTime) else 0)
        if total:
            text += "." + f"{total:09d}".rstrip("0")
    if not offset:
        return text + "Z"
    seconds = int(offset.total_seconds())
    sign = "-" if seconds < 0 else "+"
    minutes = abs(seconds) // 60
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def reformat_rfc3339(text: str) -> str:
    """`time.Parse(time.RFC3339, text).Format(time.RFC3339)`: SOPS's MAC additional data."""
    return format_time(parse_time(text), nanos=False)
