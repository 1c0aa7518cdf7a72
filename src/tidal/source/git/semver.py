"""Semantic versions and constraints with the semantics of Masterminds/semver v3, which Flux
uses for `spec.ref.semver`.

Tags are parsed like fluxcd/pkg `version.ParseVersion`: strict `MAJOR.MINOR.PATCH[-pre][+meta]`
(no leading zeros, no missing parts) with at most one leading `v` allowed; the original tag
text is kept. Constraints follow Masterminds v3:

- `||` separates alternatives; inside one, terms are separated by spaces or commas (AND);
  `A - B` (spaces around the dash) is `>= A, <= B`.
- operators `= != > < >= => <= =< ~ ~> ^` or none (`=`); `x`, `X` or `*` wildcards, and a
  missing minor or patch counts as a wildcard (`1.2` is `1.2.x`).
- A version with a prerelease part only satisfies a term whose own version has a
  prerelease part: `>=1.0.0` never matches `1.1.0-rc.1`, `>=1.0.0-0` does. Each term of an
  AND checks this on its own, so `>=1.0.0-0 <2.0.0` still rejects prereleases, as in Go.
- Build metadata is ignored when comparing (`1.0.0+a` equals `1.0.0+b`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import total_ordering

_NUM = r"(?:0|[1-9][0-9]*)"
_IDENT = r"[0-9A-Za-z-]+"
_STRICT = re.compile(
    rf"({_NUM})\.({_NUM})\.({_NUM})(?:-({_IDENT}(?:\.{_IDENT})*))?(?:\+({_IDENT}(?:\.{_IDENT})*))?"
)
_LOOSE = re.compile(
    rf"v?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?"
    rf"(?:-({_IDENT}(?:\.{_IDENT})*))?(?:\+({_IDENT}(?:\.{_IDENT})*))?"
)
# One version in a constraint, wildcards allowed.
_CV = (
    r"v?([0-9xX*]+)(\.[0-9xX*]+)?(\.[0-9xX*]+)?"
    r"(-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
_OPS = r"!=|>=|=>|<=|=<|~>|>|<|=|~|\^|"
_TERM = re.compile(rf"({_OPS})\s*({_CV})")
_ALTERNATIVE = re.compile(rf"\s*(?:{_OPS})\s*{_CV}\s*(?:(?:\s+|,\s*)(?:{_OPS})\s*{_CV}\s*)*")
_RANGE = re.compile(rf"\s*({_CV})\s+-\s+({_CV})\s*")


class SemverError(ValueError):
    """A version or a constraint that does not parse."""


def _valid_prerelease(pre: str) -> bool:
    return all(not (p.isdigit() and len(p) > 1 and p[0] == "0") for p in pre.split("."))


@total_ordering
@dataclass(frozen=True, slots=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: str = ""
    metadata: str = field(default="", compare=False)
    original: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str) -> Version:
        """Loose parsing (Masterminds NewVersion): `v1`, `1.2` and `v1.2.3` all parse."""
        m = _LOOSE.fullmatch(text)
        if m is None or (m.group(4) and not _valid_prerelease(m.group(4))):
            raise SemverError(f"invalid semantic version {text!r}")
        return cls(
            int(m.group(1)),
            int(m.group(2) or 0),
            int(m.group(3) or 0),
            m.group(4) or "",
            m.group(5) or "",
            text,
        )

    @classmethod
    def parse_tag(cls, tag: str) -> Version:
        """fluxcd/pkg version.ParseVersion: strict semver, one optional leading `v`."""
        body = tag[1:] if tag.startswith("v") else tag
        m = _STRICT.fullmatch(body)
        if m is None or (m.group(4) and not _valid_prerelease(m.group(4))):
            raise SemverError(f"invalid semantic version {tag!r}")
        return cls(
            int(m.group(1)),
            int(m.group(2)),
            int(m.group(3)),
            m.group(4) or "",
            m.group(5) or "",
            tag,
        )

    def compare(self, other: Version) -> int:
        for a, b in (
            (self.major, other.major),
            (self.minor, other.minor),
            (self.patch, other.patch),
        ):
            if a != b:
                return 1 if a > b else -1
        return _compare_prerelease(self.prerelease, other.prerelease)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self.compare(other) == 0

    def __hash__(self) -> int:
        return hash((self.major, self.minor, self.patch, self.prerelease))

    def __lt__(self, other: Version) -> bool:
        return self.compare(other) < 0

    def __str__(self) -> str:
        out = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            out += f"-{self.prerelease}"
        if self.metadata:
            out += f"+{self.metadata}"
        return out


def _compare_part(a: str, b: str) -> int:
    if a == b:
        return 0
    if a == "":
        return -1
    if b == "":
        return 1
    a_num, b_num = a.isdigit(), b.isdigit()
    if a_num and b_num:
        return 1 if int(a) > int(b) else -1
    if a_num:
        return -1  # numeric identifiers sort before alphanumeric ones
    if b_num:
        return 1
    return 1 if a > b else -1


def _compare_prerelease(a: str, b: str) -> int:
    if a == b:
        return 0
    if not a:
        return 1  # a release is greater than any of its prereleases
    if not b:
        return -1
    pa, pb = a.split("."), b.split(".")
    for i in range(max(len(pa), len(pb))):
        c = _compare_part(pa[i] if i < len(pa) else "", pb[i] if i < len(pb) else "")
        if c:
            return c
    return 0


def _is_x(part: str) -> bool:
    return part in ("x", "X", "*")


@dataclass(frozen=True, slots=True)
class _Term:
    op: str
    con: Version
    dirty: bool
    minor_dirty: bool
    patch_dirty: bool

    def check(self, v: Version) -> bool:
        return _OPERATORS[self.op](v, self)


def _prerelease_excluded(v: Version, t: _Term) -> bool:
    return bool(v.prerelease) and not t.con.prerelease


def _op_not_equal(v: Version, t: _Term) -> bool:
    if t.dirty:
        if _prerelease_excluded(v, t):
            return False
        if t.con.major != v.major:
            return True
        if t.con.minor != v.minor and not t.minor_dirty:
            return True
        if t.minor_dirty:
            return False
        if t.con.patch != v.patch and not t.patch_dirty:
            return True
        if t.patch_dirty:
            if v.prerelease or t.con.prerelease:
                return _compare_prerelease(v.prerelease, t.con.prerelease) != 0
            return False
    return v != t.con


def _op_greater(v: Version, t: _Term) -> bool:
    if _prerelease_excluded(v, t):
        return False
    if not t.dirty:
        return v.compare(t.con) > 0
    if v.major != t.con.major:
        return v.major > t.con.major
    if t.minor_dirty:
        return False  # >1 needs 2.0.0 or above
    if t.patch_dirty:
        return v.minor > t.con.minor  # >1.1 needs 1.2.0 or above
    return v.compare(t.con) > 0


def _op_less(v: Version, t: _Term) -> bool:
    return not _prerelease_excluded(v, t) and v.compare(t.con) < 0


def _op_greater_equal(v: Version, t: _Term) -> bool:
    return not _prerelease_excluded(v, t) and v.compare(t.con) >= 0


def _op_less_equal(v: Version, t: _Term) -> bool:
    if _prerelease_excluded(v, t):
        return False
    if not t.dirty:
        return v.compare(t.con) <= 0
    if v.major > t.con.major:
        return False
    return not (v.major == t.con.major and v.minor > t.con.minor and not t.minor_dirty)


def _op_tilde(v: Version, t: _Term) -> bool:
    if _prerelease_excluded(v, t) or v < t.con:
        return False
    if (t.con.major, t.con.minor, t.con.patch) == (0, 0, 0) and not (
        t.minor_dirty or t.patch_dirty
    ):
        return True  # ~0.0.0 and * accept everything
    if v.major != t.con.major:
        return False
    return not (v.minor != t.con.minor and not t.minor_dirty)


def _op_tilde_or_equal(v: Version, t: _Term) -> bool:
    if _prerelease_excluded(v, t):
        return False
    return _op_tilde(v, t) if t.dirty else v == t.con


def _op_caret(v: Version, t: _Term) -> bool:
    if _prerelease_excluded(v, t) or v < t.con:
        return False
    if t.con.major > 0 or t.minor_dirty:
        return v.major == t.con.major
    if v.major > 0:
        return False  # ^0.y.z stays below 1.0.0
    if t.con.minor > 0 or t.patch_dirty:
        return v.minor == t.con.minor
    if v.minor > 0:
        return False
    return v.patch == t.con.patch  # ^0.0.z is exactly 0.0.z


_OPERATORS: dict[str, Callable[[Version, _Term], bool]] = {
    "": _op_tilde_or_equal,
    "=": _op_tilde_or_equal,
    "!=": _op_not_equal,
    ">": _op_greater,
    "<": _op_less,
    ">=": _op_greater_equal,
    "=>": _op_greater_equal,
    "<=": _op_less_equal,
    "=<": _op_less_equal,
    "~": _op_tilde,
    "~>": _op_tilde,
    "^": _op_caret,
}


def _parse_term(op: str, major: str, minor: str, patch: str, pre: str) -> _Term:
    minor, patch = minor[1:], patch[1:]  # drop the dots
    dirty = minor_dirty = patch_dirty = False
    if _is_x(major):
        text, dirty = f"0.0.0{pre}", True
    elif not minor or _is_x(minor):
        text, dirty, minor_dirty = f"{major}.0.0{pre}", True, True
    elif not patch or _is_x(patch):
        text, dirty, patch_dirty = f"{major}.{minor}.0{pre}", True, True
    else:
        text = f"{major}.{minor}.{patch}{pre}"
    try:
        con = Version.parse(text)
    except SemverError:
        raise SemverError(f"improper constraint: {op}{major}") from None
    return _Term(op, con, dirty, minor_dirty, patch_dirty)


@dataclass(frozen=True, slots=True)
class Constraint:
    """A parsed constraint: alternatives (OR) of terms (AND)."""

    text: str
    alternatives: tuple[tuple[_Term, ...], ...]

    @classmethod
    def parse(cls, text: str) -> Constraint:
        rewritten = _RANGE.sub(lambda m: f" >= {m.group(1)}, <= {m.group(7)} ", text)
        alternatives: list[tuple[_Term, ...]] = []
        for alternative in rewritten.split("||"):
            if not _ALTERNATIVE.fullmatch(alternative):
                raise SemverError(f"improper constraint: {alternative}")
            terms = tuple(
                _parse_term(
                    m.group(1), m.group(3), m.group(4) or "", m.group(5) or "", m.group(6) or ""
                )
                for m in _TERM.finditer(alternative)
            )
            alternatives.append(terms)
        return cls(text, tuple(alternatives))

    def check(self, version: Version) -> bool:
        return any(all(t.check(version) for t in terms) for terms in self.alternatives)

    def __str__(self) -> str:
        return self.text
