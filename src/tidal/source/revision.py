"""Artifact revision strings (Flux RFC-0005): `<name>@<algo>:<hash>` and the legacy forms.

A Git revision names what was asked for and pins the commit: `main@sha1:<hex>` for a branch,
`v1.2.0@sha1:<hex>` for a tag or a semver match, the full `refs/...@sha1:<hex>` for `ref.name`,
a bare `sha1:<hex>` for a commit. The algorithm marker comes from the hash length only: 40
characters is `sha1`, anything else `<unknown>` (fluxcd/pkg git.Hash.Algorithm).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SHA1 = "sha1"
UNKNOWN_ALGORITHM = "<unknown>"

_LOWER_HEX = re.compile(r"[0-9a-f]+")
_DIGEST = re.compile(r"(?:[a-z0-9]+(?:[.+_-][a-z0-9]+)*|<unknown>):[a-zA-Z0-9=_-]+")


def hash_algorithm(commit: str) -> str:
    """The algorithm marker Flux derives from a Git hash: by its length alone."""
    return SHA1 if len(commit) == 40 else UNKNOWN_ALGORITHM


def hash_digest(commit: str) -> str:
    """`<algo>:<hash>`, or "" for no hash."""
    return f"{hash_algorithm(commit)}:{commit}" if commit else ""


def short_reference_revision(reference: str, commit: str) -> str:
    """What Flux's Commit.String() makes of a full reference: the part after `refs/<kind>/`.

    `refs/heads/feature/x` gives `feature/x@sha1:<hex>`; a reference with fewer than two
    slashes (or none, for a detached commit) gives the bare digest.
    """
    parts = reference.split("/", 2)
    if len(parts) == 3:
        return f"{parts[2]}@{hash_digest(commit)}"
    return hash_digest(commit)


def absolute_reference_revision(reference: str, commit: str) -> str:
    """Flux's Commit.AbsoluteReference(): the whole reference kept, as for `ref.name`."""
    return f"{reference}@{hash_digest(commit)}" if reference else hash_digest(commit)


def branch_revision(branch: str, commit: str) -> str:
    return short_reference_revision(f"refs/heads/{branch}", commit)


def tag_revision(tag: str, commit: str) -> str:
    """For `ref.tag`, and for `ref.semver` with the tag that won."""
    return short_reference_revision(f"refs/tags/{tag}", commit)


def ref_name_revision(name: str, commit: str) -> str:
    return absolute_reference_revision(name, commit)


def commit_revision(commit: str, branch: str | None = None) -> str:
    """For `ref.commit`: bare when alone, named by the branch when one is also given."""
    return branch_revision(branch, commit) if branch else hash_digest(commit)


def git_revision(
    commit: str,
    *,
    branch: str | None = None,
    tag: str | None = None,
    semver_tag: str | None = None,
    name: str | None = None,
    commit_ref: bool = False,
) -> str:
    """The revision of a GitRepository artifact, by the ref that resolved to `commit`.

    Precedence is Flux's code order: commit, name, tag, semver (the tag it selected), branch.
    """
    if commit_ref:
        return commit_revision(commit, branch)
    if name:
        return ref_name_revision(name, commit)
    if tag:
        return tag_revision(tag, commit)
    if semver_tag:
        return tag_revision(semver_tag, commit)
    return branch_revision(branch or "master", commit)


def _legacy_algorithm(value: str) -> str:
    if _LOWER_HEX.fullmatch(value):
        if len(value) == 40:
            return "sha1"
        if len(value) == 64:
            return "sha256"
    return ""


def transform_legacy(revision: str) -> str:
    """Rewrite a pre-v1 revision into today's form; anything else is returned unchanged.

    `main/<40hex>` -> `main@sha1:<hex>`, `a/b/<hex>` -> `a/b@sha1:<hex>`,
    `HEAD/<hex>` -> `sha1:<hex>`, `tag/<64hex>` -> `tag@sha256:<hex>`, a bare 40 or 64 lowercase
    hex -> `sha1:`/`sha256:` of it. A revision containing `:` is never legacy.
    """
    if not revision or ":" in revision:
        return revision
    name, slash, tail = revision.rpartition("/")
    if slash:
        algo = _legacy_algorithm(tail)
        if algo:
            return f"{algo}:{tail}" if name == "HEAD" else f"{name}@{algo}:{tail}"
    algo = _legacy_algorithm(revision)
    return f"{algo}:{revision}" if algo else revision


@dataclass(frozen=True, slots=True)
class Revision:
    """A parsed revision. `name` is "" for a bare digest; `algorithm`/`hash` are "" when the
    revision carries no digest at all (a Helm chart version such as `6.0.3`)."""

    name: str
    algorithm: str
    hash: str

    @property
    def digest(self) -> str:
        return f"{self.algorithm}:{self.hash}" if self.algorithm else ""

    def __str__(self) -> str:
        if not self.algorithm:
            return self.name
        return f"{self.name}@{self.digest}" if self.name else self.digest


def parse_revision(revision: str) -> Revision:
    """Split a revision into name and digest, accepting the legacy forms too."""
    revision = transform_legacy(revision)
    name, at, digest = revision.rpartition("@")
    if not at:
        name, digest = "", revision
    if _DIGEST.fullmatch(digest):
        algorithm, _, value = digest.partition(":")
        return Revision(name, algorithm, value)
    return Revision(revision, "", "")


def extract_hash(revision: str) -> str:
    """The hash at the end of any revision form (fluxcd/pkg git.ExtractHashFromRevision)."""
    if ":" in revision:
        return revision.rsplit(":", 1)[1]
    if "/" in revision:
        return revision.rsplit("/", 1)[1]
    return revision


def same_revision(a: str, b: str) -> bool:
    """Equality across the legacy and current forms (`main/<hex>` equals `main@sha1:<hex>`).

    `status.artifact` comparisons in Flux v1 are plain string equality; use this only where
    one side may have been written by a pre-v1 controller.
    """
    return transform_legacy(a) == transform_legacy(b)


_CLI_HEX = re.compile(r"\b[a-f0-9]{40,128}\b", re.ASCII)


def truncate_hex(text: str) -> str:
    """The Flux CLI's table shortening: every 40-128 char lowercase hex word becomes 8 chars."""
    for hit in _CLI_HEX.findall(text):
        text = text.replace(hit, hit[:8])
    return text
