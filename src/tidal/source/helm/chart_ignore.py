""".helmignore, with Helm's own rules (helm pkg/ignore), which are not .gitignore's:

- one pattern a line; blank lines and `#` comments skipped; `**` is refused;
- patterns use Go's filepath.Match (`*` and `?` never cross a `/`);
- a pattern with a `/` inside matches the whole path from the chart root (a leading `/` is
  dropped first); one without matches the last path component only;
- a trailing `/` makes a pattern match directories only;
- `!pattern` is Helm's odd negation: a path that does NOT match it is ignored (so a lone
  `!keep.txt` ignores everything else), and it never un-ignores anything.

Helm always adds `templates/.?*`: hidden files under templates/ are left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from tidal.source.ignore import compile_component

HELMIGNORE: Final = ".helmignore"


class IgnoreError(ValueError):
    pass


@dataclass(frozen=True)
class _Pattern:
    negate: bool
    must_dir: bool
    match: Callable[[str], bool]


def _path_matcher(pattern: str) -> Callable[[str], bool]:
    """filepath.Match(pattern, path): components align one to one, since no wildcard matches
    a separator."""
    parts = [compile_component(p) for p in pattern.split("/")]

    def match(path: str) -> bool:
        names = path.split("/")
        return len(names) == len(parts) and all(m(n) for m, n in zip(parts, names, strict=True))

    return match


def _valid(pattern: str) -> bool:
    # Go's filepath.Match reports a malformed pattern only when it gets that far; Helm calls it
    # on "abc" to check. An unterminated class or a trailing backslash is the common case.
    depth_ok = pattern.count("[") <= pattern.count("]")
    return depth_ok and not pattern.endswith("\\")


@dataclass
class Rules:
    patterns: list[_Pattern] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes) -> Rules:
        rules = cls()
        for line in data.decode("utf-8", "replace").splitlines():
            rules.add(line)
        return rules

    def add(self, line: str) -> None:
        rule = line.strip()
        if not rule or rule.startswith("#"):
            return
        if "**" in rule:
            raise IgnoreError("double-star (**) syntax is not supported")
        if not _valid(rule):
            raise IgnoreError("syntax error in pattern")
        negate = rule.startswith("!")
        if negate:
            rule = rule[1:]
        must_dir = rule.endswith("/")
        if must_dir:
            rule = rule.rstrip("/")
        if rule.startswith("/") or "/" in rule:
            whole = _path_matcher(rule.lstrip("/"))
            matcher = whole
        else:
            component = compile_component(rule)

            def matcher(path: str) -> bool:
                return bool(component(path.rpartition("/")[2]))

        self.patterns.append(_Pattern(negate, must_dir, matcher))

    def add_defaults(self) -> None:
        self.add("templates/.?*")

    def ignore(self, path: str, is_dir: bool) -> bool:
        """Whether `path` (relative to the chart root, `/`-separated) is left out."""
        if path in ("", ".", "./"):
            return False
        for p in self.patterns:
            if p.negate:
                if p.must_dir and not is_dir:
                    return True
                if not p.match(path):
                    return True
                continue
            if p.must_dir and not is_dir:
                continue
            if p.match(path):
                return True
        return False
