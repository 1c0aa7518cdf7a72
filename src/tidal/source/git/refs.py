"""Which Git reference a GitRepository asks for, and how remote refs resolve it. Pure logic.

Precedence is source-controller's code order, not its docs: commit > name > tag > semver >
branch > the default branch `master` (the docs put semver above tag; the code checks the tag
first).

Revisions come from `tidal.source.revision`, built from the reference Flux's commit carries:

- branch `b`: `b@sha1:<commit>`; tag `t` and the tag semver picked: `t@sha1:<commit>` (the
  peeled commit, never the tag object);
- name `refs/...`: the whole name, `refs/pull/1/head@sha1:<commit>`;
- commit: `sha1:<commit>`, `<branch>@sha1:<commit>` with a branch, and with a name the
  name's absolute form (Flux names the commit after `spec.ref.name` whenever it is set).

The cheap remote check (ls-remote, no objects) applies to branch, tag and name refs only;
semver and commit refs always fetch, as in Flux.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from tidal.source import revision as rev
from tidal.source.git.errors import GitError, NoSemverMatchError
from tidal.source.git.semver import Constraint, SemverError, Version

DEFAULT_BRANCH = "master"
PEELED_SUFFIX = "^{}"
HEADS = "refs/heads/"
TAGS = "refs/tags/"


class RefKind(enum.Enum):
    BRANCH = "branch"
    TAG = "tag"
    SEMVER = "semver"
    NAME = "name"
    COMMIT = "commit"


class RefError(GitError):
    """A `spec.ref` that cannot be used (bad semver constraint, a ref name with a slash at
    either end, a commit that is not hex). Flux reports these as GitOperationFailed."""


@dataclass(frozen=True, slots=True)
class Ref:
    """`spec.ref` of a GitRepository; all fields optional."""

    branch: str = ""
    tag: str = ""
    semver: str = ""
    name: str = ""
    commit: str = ""

    @classmethod
    def from_spec(cls, spec: Mapping[str, object] | None) -> Ref:
        if not spec:
            return cls()
        return cls(
            **{k: str(spec.get(k) or "") for k in ("branch", "tag", "semver", "name", "commit")}
        )

    @property
    def kind(self) -> RefKind:
        if self.commit:
            return RefKind.COMMIT
        if self.name:
            return RefKind.NAME
        if self.tag:
            return RefKind.TAG
        if self.semver:
            return RefKind.SEMVER
        return RefKind.BRANCH

    @property
    def effective_branch(self) -> str:
        return self.branch or DEFAULT_BRANCH

    @property
    def shallow(self) -> bool:
        """Flux clones with depth 1 except for a commit (full clone, then checkout).

        Flux's semver clone honours ShallowClone too (depth 1 per tag); name refs are
        cloned in full by Flux, here shallow, because the artifact, the revision and the
        signature checks only ever look at the one commit (and its tag).
        """
        return self.kind is not RefKind.COMMIT

    @property
    def remote_checkable(self) -> bool:
        return self.kind in (RefKind.BRANCH, RefKind.TAG, RefKind.NAME)

    def validate(self) -> None:
        if self.kind is RefKind.NAME and (self.name.startswith("/") or self.name.endswith("/")):
            raise RefError(
                f"ref {self.name} is invalid; Git refs cannot begin or end with a slash '/'"
            )
        if self.kind is RefKind.COMMIT:
            c = self.commit.lower()
            if len(c) not in (40, 64) or any(ch not in "0123456789abcdef" for ch in c):
                raise RefError(f"invalid commit {self.commit!r}: want a full hex SHA")
        if self.kind is RefKind.SEMVER:
            constraint(self.semver)

    def wanted_ref(self) -> str | None:
        """The one remote ref whose value decides the revision, None for semver/commit."""
        kind = self.kind
        if kind is RefKind.BRANCH:
            return HEADS + self.effective_branch
        if kind is RefKind.TAG:
            return TAGS + self.tag
        if kind is RefKind.NAME:
            return self.name.removesuffix(PEELED_SUFFIX)
        return None

    def ref_prefixes(self) -> list[bytes]:
        """What to ask the server to list (protocol v2 ref-prefix; filtered locally on v0)."""
        kind = self.kind
        if kind is RefKind.SEMVER:
            return [b"HEAD", TAGS.encode()]
        if kind is RefKind.COMMIT:
            prefixes = [b"HEAD", (HEADS + self.branch if self.branch else HEADS).encode()]
            if self.name and self.name.startswith(TAGS):
                prefixes.append(self.name.removesuffix(PEELED_SUFFIX).encode())
            return prefixes
        wanted = self.wanted_ref()
        assert wanted is not None
        return [b"HEAD", wanted.encode()]

    def reference(self, semver_tag: str | None = None) -> str:
        """The full reference Flux records on the commit ("" for a bare commit)."""
        kind = self.kind
        if kind is RefKind.COMMIT:
            if self.name:
                return self.name
            return HEADS + self.branch if self.branch else ""
        if kind is RefKind.SEMVER:
            return TAGS + (semver_tag or "")
        wanted = self.wanted_ref()
        return self.name if kind is RefKind.NAME else wanted or ""

    def revision(self, commit: str, semver_tag: str | None = None) -> str:
        kind = self.kind
        if kind is RefKind.COMMIT:
            if self.name:
                return rev.ref_name_revision(self.name, commit)
            return rev.commit_revision(commit, self.branch or None)
        if kind is RefKind.NAME:
            return rev.ref_name_revision(self.name, commit)
        if kind is RefKind.TAG:
            return rev.tag_revision(self.tag, commit)
        if kind is RefKind.SEMVER:
            return rev.tag_revision(semver_tag or "", commit)
        return rev.branch_revision(self.effective_branch, commit)

    def describe(self) -> str:
        kind = self.kind
        if kind is RefKind.COMMIT:
            return f"commit '{self.commit}'" + (
                f" on branch '{self.branch}'" if self.branch else ""
            )
        if kind is RefKind.SEMVER:
            return f"semver '{self.semver}'"
        return f"{kind.value} '{self.name or self.tag or self.effective_branch}'"


def constraint(expr: str) -> Constraint:
    try:
        return Constraint.parse(expr)
    except SemverError as e:
        raise RefError(f"semver parse error: {e}") from None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def peeled_target(refs: Mapping[bytes, bytes] | Mapping[str, str], name: str) -> str | None:
    """The commit a remote ref points at, as Flux's filterRefs picks it from an ls-remote:
    for a tag the `^{}` peeled entry when advertised (an annotated tag), else the ref's own
    value (a lightweight tag, a branch); a name that already ends in `^{}` is taken as is."""
    values = {_text(k): _text(v) for k, v in refs.items()}
    if name.endswith(PEELED_SUFFIX) or not name.startswith(TAGS):
        return values.get(name)
    return values.get(name + PEELED_SUFFIX) or values.get(name)


def remote_revision(ref: Ref, refs: Mapping[bytes, bytes] | Mapping[str, str]) -> str | None:
    """The revision the remote's current refs give for branch/tag/name refs; None when the
    ref is missing or the kind (semver, commit) has no cheap check."""
    wanted = ref.wanted_ref()
    if wanted is None or not ref.remote_checkable:
        return None
    target = peeled_target(refs, ref.name if ref.kind is RefKind.NAME else wanted)
    return ref.revision(target) if target else None


@dataclass(frozen=True, slots=True)
class SemverCandidate:
    tag: str
    version: Version


def semver_candidates(expr: str, tags: Iterable[str]) -> list[SemverCandidate]:
    """The tags that tie for the highest version satisfying `expr` (several only when they
    differ in build metadata or a `v` prefix); NoSemverMatchError when none does."""
    c = constraint(expr)
    matched: list[SemverCandidate] = []
    for tag in tags:
        try:
            v = Version.parse_tag(tag)
        except SemverError:
            continue
        if c.check(v):
            matched.append(SemverCandidate(tag, v))
    if not matched:
        raise NoSemverMatchError(f"no match found for semver: {expr}")
    best = max(m.version for m in matched)
    return sorted((m for m in matched if m.version == best), key=lambda m: m.tag)


def pick_semver(candidates: list[SemverCandidate], commit_time: Mapping[str, datetime]) -> str:
    """Among equal versions the tag whose commit is newest wins (Flux sorts ties by the
    target's committer time); a full tie goes to the greatest tag name, where Go's map
    order would make Flux's choice random."""
    return max(candidates, key=lambda c: (commit_time[c.tag], c.tag)).tag
