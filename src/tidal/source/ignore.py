"""Which files a source artifact leaves out: Flux's `.sourceignore` / `spec.ignore` rules.

Flux matches with go-git's gitignore package (a copy of go-git v5.16.4 now lives in
fluxcd/pkg/sourceignore/gitignore), not with git itself, and every path is tested on its own
(the archiver does not stop at an excluded directory). tidal follows go-git, so these
differences from `git check-ignore` are intended:

1. A negated pattern can re-include a path whose parent directory is excluded
   (`dir/` then `!dir/keep` keeps `dir/keep`; the `dir` entry itself stays out).
2. A pattern without a slash is tested against every component of the path, ancestors
   included, so `!keep` also re-includes everything under a directory named `keep`, and
   `!*/` re-includes every file below the top level.
3. `a/**` also matches `a` itself; `/**` matches nothing.
4. `**` not forming a whole segment of a pattern with a slash (`a/**.txt`) never matches.
5. `**/x/y` picks the first component matching `x` and does not backtrack, so it misses
   `x/z/x/y`.
6. Component matching is Go's `filepath.Match`: `[^...]` negates but `[!...]` is a class
   containing `!`; a malformed pattern (`[`, `[]]`, a trailing backslash) matches nothing.

Patterns are kept in priority order; the last one that matches a path decides.
"""

from __future__ import annotations

import enum
import os
import re
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

IGNORE_FILE = ".sourceignore"

VCS_PATTERNS = (".git/", ".gitignore", ".gitmodules", ".gitattributes")
EXTENSION_PATTERNS = ("*.jpg", "*.jpeg", "*.gif", "*.png", "*.wmv", "*.flv", "*.tar.gz", "*.zip")
CI_PATTERNS = (
    ".github/",
    ".circleci/",
    ".travis.yml",
    ".gitlab-ci.yml",
    "appveyor.yml",
    ".drone.yml",
    "cloudbuild.yaml",
    "codeship-services.yml",
    "codeship-steps.yml",
)
EXTRA_PATTERNS = ("**/.goreleaser.yml", "**/.sops.yaml", "**/.flux.yaml")


class Match(enum.Enum):
    NONE = 0
    EXCLUDE = 1
    INCLUDE = 2


# Truthy when the component matches (a bool, or a regex match object).
_Matcher = Callable[[str], object]
_MAGIC = frozenset("*?[\\")


def _never(_name: str) -> bool:
    return False


def compile_component(pattern: str) -> _Matcher:
    """A matcher for one path component with Go's `filepath.Match` rules.

    Go validates the whole pattern before matching, so a syntax error means "never matches",
    which is what go-git makes of the error.
    """
    if not _MAGIC.intersection(pattern):
        return pattern.__eq__
    regex = _translate(pattern)
    if regex is None:
        return _never
    return re.compile(regex, re.DOTALL).fullmatch


def _translate(pattern: str) -> str | None:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "\\":
            if i + 1 >= n:
                return None
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif c == "[":
            parsed = _translate_class(pattern, i + 1)
            if parsed is None:
                return None
            klass, i = parsed
            out.append(klass)
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _class_char(pattern: str, i: int) -> tuple[str, int] | None:
    # Go's getEsc: a range bound may not be '-' or ']' unescaped, and the class must go on.
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        return None
    if pattern[i] == "\\":
        i += 1
        if i >= n:
            return None
    if i + 1 >= n:
        return None
    return pattern[i], i + 1


def _translate_class(pattern: str, i: int) -> tuple[str, int] | None:
    negated = i < len(pattern) and pattern[i] == "^"
    if negated:
        i += 1
    ranges: list[str] = []
    count = 0
    while True:
        if i < len(pattern) and pattern[i] == "]" and count > 0:
            i += 1
            break
        lo = _class_char(pattern, i)
        if lo is None:
            return None
        low, i = lo
        high = low
        if pattern[i] == "-":
            hi = _class_char(pattern, i + 1)
            if hi is None:
                return None
            high, i = hi
        count += 1
        if low <= high:  # Go accepts a reversed range; it just matches nothing
            ranges.append(re.escape(low) if low == high else f"{re.escape(low)}-{re.escape(high)}")
    if not ranges:
        return ("[^/]" if negated else "(?!)"), i
    return f"[{'^' if negated else ''}{''.join(ranges)}]", i


@dataclass(frozen=True, slots=True)
class Pattern:
    """One gitignore line, scoped to the directory (`domain`) whose ignore file held it."""

    text: str
    domain: tuple[str, ...]
    segments: tuple[str, ...]
    negated: bool
    dir_only: bool
    has_slash: bool
    matchers: tuple[_Matcher | None, ...]  # None for an empty or a whole `**` segment

    @classmethod
    def parse(cls, line: str, domain: Sequence[str] = ()) -> Pattern:
        text = line
        negated = line.startswith("!")
        if negated:
            line = line[1:]
        if not line.endswith("\\ "):
            line = line.rstrip(" ")
        dir_only = line.endswith("/")
        if dir_only:
            line = line[:-1]
        has_slash = "/" in line
        segments = tuple(line.split("/"))
        if len(segments) == 2 and segments[0] == "**" and segments[1] and "**" not in segments[1]:
            # `**/x` picks the first component matching x, exactly as a bare `x` does;
            # reading it as one lets the fast matcher take it.
            has_slash, segments = False, segments[1:]
        matchers: list[_Matcher | None] = []
        for seg in segments:
            if has_slash and seg in ("", "**"):
                matchers.append(None)
            elif has_slash and "**" in seg:
                matchers.append(_never)
            else:
                matchers.append(compile_component(seg))
        return cls(text, tuple(domain), segments, negated, dir_only, has_slash, tuple(matchers))

    def match(self, parts: Sequence[str], is_dir: bool) -> Match:
        depth = len(self.domain)
        if len(parts) <= depth:
            return Match.NONE
        if depth and tuple(parts[:depth]) != self.domain:
            return Match.NONE
        rel = parts[depth:] if depth else parts
        hit = self._match_slashed(rel, is_dir) if self.has_slash else self._match_name(rel, is_dir)
        if not hit:
            return Match.NONE
        return Match.INCLUDE if self.negated else Match.EXCLUDE

    def _match_name(self, parts: Sequence[str], is_dir: bool) -> bool:
        # Any component may match, ancestors included; that is how a match on a directory
        # reaches everything below it.
        matcher = self.matchers[0]
        assert matcher is not None
        last = len(parts) - 1
        for i, name in enumerate(parts):
            if matcher(name):
                return not (self.dir_only and not is_dir and i == last)
        return False

    def _match_slashed(self, parts: Sequence[str], is_dir: bool) -> bool:
        matched = False
        traverse = False
        pos, end = 0, len(parts)
        last_segment = len(self.segments) - 1
        for k, seg in enumerate(self.segments):
            matcher = self.matchers[k]
            if seg == "":
                traverse = False
                continue
            if matcher is None:  # a whole `**` segment
                if k == last_segment:
                    break
                traverse = True
                continue
            if pos >= end:
                return False
            if traverse:
                # go-git takes the first component that matches and never backtracks.
                traverse = False
                while pos < end:
                    name = parts[pos]
                    pos += 1
                    if matcher(name):
                        matched = True
                        break
                    if pos == end:
                        matched = False
            else:
                if not matcher(parts[pos]):
                    return False
                matched = True
                pos += 1
        if matched and self.dir_only and not is_dir and pos == end:
            return False
        return matched


def read_patterns(text: str, domain: Sequence[str] = ()) -> list[Pattern]:
    """Patterns from gitignore text: `#` comment lines and blank lines are dropped."""
    patterns: list[Pattern] = []
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if line.startswith("#") or not line.strip():
            continue
        patterns.append(Pattern.parse(line, domain))
    return patterns


def _name_key(name: str) -> bytes:
    # Go sorts directory entries by their bytes.
    return os.fsencode(name)


def _path_key(rel: str) -> tuple[bytes, ...]:
    return tuple(_name_key(p) for p in rel.split("/")) if rel else ()


def collect_sourceignores(root: Path) -> list[tuple[str, str]]:
    """Every `.sourceignore` below root as (directory relative to root, text), in Flux's order.

    `.git` directories are skipped; symlinked directories and a symlinked `.sourceignore`
    are not followed (Flux would read the latter; an artifact is untrusted input).
    """
    found: list[tuple[str, str]] = []

    def visit(directory: Path, rel: str) -> None:
        candidate = directory / IGNORE_FILE
        try:
            st = candidate.lstat()
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISREG(st.st_mode):
            found.append((rel, candidate.read_bytes().decode("utf-8", "surrogateescape")))
        with os.scandir(directory) as it:
            subdirs = sorted(
                (e.name for e in it if e.is_dir(follow_symlinks=False) and e.name != ".git"),
                key=_name_key,
            )
        for name in subdirs:
            visit(directory / name, f"{rel}/{name}" if rel else name)

    visit(root, "")
    return found


class IgnoreRules:
    """The exclusion decision for every path of one artifact."""

    def __init__(self, user_patterns: Sequence[Pattern] = ()) -> None:
        vcs = [Pattern.parse(p) for p in VCS_PATTERNS]
        if user_patterns:
            # Flux's code, unlike its docs: any user pattern at all, from a .sourceignore
            # or from spec.ignore, drops the extension/CI/extra defaults; VCS stays.
            patterns = [*vcs, *user_patterns]
        else:
            defaults = (*EXTENSION_PATTERNS, *CI_PATTERNS, *EXTRA_PATTERNS)
            patterns = [*vcs, *(Pattern.parse(p) for p in defaults)]
        self.patterns: tuple[Pattern, ...] = tuple(patterns)
        self._reversed = tuple(reversed(self.patterns))
        # Without a negation an excluded directory excludes everything below it, so a walker
        # may skip its contents; with one, every path has to be asked about.
        self.has_negation = any(p.negated for p in self.patterns)
        self._fast = None if self.has_negation else _AnyMatch(self.patterns)

    @classmethod
    def from_sources(
        cls, sourceignores: Iterable[tuple[str, str]], spec_ignore: str | None = None
    ) -> IgnoreRules:
        """Rules from already collected `.sourceignore` texts, keyed by their directory.

        The directory is relative to the artifact root ("" for the root); entries may come
        in any order (they are put in Flux's depth-first, name-sorted order) and any under a
        `.git` directory are dropped, so a Git tree walk can feed this directly.
        """
        items = [
            (d.strip("/"), text)
            for d, text in sourceignores
            if ".git" not in d.strip("/").split("/")
        ]
        items.sort(key=lambda item: _path_key(item[0]))
        user: list[Pattern] = []
        for directory, text in items:
            user.extend(read_patterns(text, tuple(directory.split("/")) if directory else ()))
        if spec_ignore is not None:
            user.extend(read_patterns(spec_ignore))
        return cls(user)

    @classmethod
    def from_tree(cls, root: Path, spec_ignore: str | None = None) -> IgnoreRules:
        """Rules for a checked-out tree: its `.sourceignore` files, then spec.ignore."""
        return cls.from_sources(collect_sourceignores(root), spec_ignore)

    def ignored(self, rel_path: str, is_dir: bool) -> bool:
        """Whether the path (relative to the artifact root, `/`-separated) is left out."""
        rel_path = rel_path.strip("/")
        if rel_path in ("", "."):
            return False
        parts = rel_path.split("/")
        if self._fast is not None:
            return self._fast.matches(parts, is_dir)
        for pattern in self._reversed:
            result = pattern.match(parts, is_dir)
            if result is not Match.NONE:
                return result is Match.EXCLUDE
        return False


class _AnyMatch:
    """Without negations the answer is "does any pattern match", order aside. Patterns
    without a slash or a domain (most of them, the defaults included) are then tested as one
    set of names plus one regex per path component instead of one by one."""

    def __init__(self, patterns: Sequence[Pattern]) -> None:
        literal: set[str] = set()
        literal_dir: set[str] = set()
        globs: list[str] = []
        globs_dir: list[str] = []
        self.others: list[Pattern] = []
        for p in patterns:
            if p.has_slash or p.domain:
                self.others.append(p)
                continue
            name = p.segments[0]
            if not _MAGIC.intersection(name):
                (literal_dir if p.dir_only else literal).add(name)
                continue
            regex = _translate(name)
            if regex is not None:
                (globs_dir if p.dir_only else globs).append(regex)
        self.literal = frozenset(literal)
        self.literal_dir = frozenset(literal_dir)
        self.glob = _alternation(globs)
        self.glob_dir = _alternation(globs_dir)

    def matches(self, parts: Sequence[str], is_dir: bool) -> bool:
        last = len(parts) - 1
        for i, name in enumerate(parts):
            if name in self.literal or (self.glob is not None and self.glob(name)):
                return True
            dir_allowed = i < last or is_dir
            if dir_allowed and name in self.literal_dir:
                return True
            if dir_allowed and self.glob_dir is not None and self.glob_dir(name):
                return True
        return any(p.match(parts, is_dir) is Match.EXCLUDE for p in self.others)


def _alternation(regexes: list[str]) -> _Matcher | None:
    if not regexes:
        return None
    return re.compile("|".join(f"(?:{r})" for r in regexes), re.DOTALL).fullmatch
