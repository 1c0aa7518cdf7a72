"""Go's strconv integer parsing, which decides how go-yaml types plain scalars: both the YAML
reader (tidal.kube.yamlio) and the flux-style writer (tidal.kube.goyaml) must agree with it."""

from __future__ import annotations

import re
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
