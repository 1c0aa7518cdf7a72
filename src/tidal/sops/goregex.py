"""Go regular expressions (`regexp.Match`), through RE2 itself (google-re2).

SOPS selects keys and comments with Go's `regexp` on the metadata's `*_regex` settings. Go's
engine is RE2's design and syntax, so RE2 reads the patterns as Go does where Python's `re`
would not (`$` is the end of the text, `\\d \\w \\s \\b` are ASCII, mid-pattern `(?i)`, `(?U)`,
`\\Q..\\E`, `{,n}` as a literal), and refuses what Go refuses (look-arounds, back-references);
SOPS then ignores the setting, so a refused pattern never matches. RE2 also matches in linear
time: a pattern in a tenant's file cannot stall the controller, as a backtracking engine could.
"""

from __future__ import annotations

import functools
from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is an answer (no match), not a log line


class InvalidGoRegexError(ValueError):
    """Go's regexp refuses the pattern."""


def _has_any_byte(pattern: str) -> bool:
    """Whether the pattern uses `\\C` (any byte): RE2 has it, Go refuses it."""
    i, quoted = 0, False
    while i < len(pattern) - 1:
        pair = pattern[i : i + 2]
        if quoted:
            quoted = pair != "\\E"
            i += 2 if not quoted else 1
            continue
        if pair == "\\Q":
            quoted = True
        elif pair == "\\C":
            return True
        i += 2 if pattern[i] == "\\" else 1
    return False


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> Any:
    if _has_any_byte(pattern):
        return None
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error:
        return None


def search(pattern: str, text: str) -> bool:
    """`regexp.Match(pattern, text)`; a pattern Go refuses never matches."""
    compiled = _compile(pattern)
    return compiled is not None and compiled.search(text) is not None


def check(pattern: str) -> None:
    """Raise InvalidGoRegexError when Go would refuse `pattern`."""
    if _compile(pattern) is None:
        raise InvalidGoRegexError(f"invalid regular expression {pattern!r}")
