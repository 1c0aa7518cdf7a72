"""Which tag an OCIRepository follows: Flux's getArtifactRef and getTagBySemver.

Precedence is digest, then semver, then tag, then `latest`. A semver range picks the highest
matching tag among those the optional `semverFilter` (a Go regular expression, run by RE2 as
Go's regexp runs it) lets through; tags that are not strict semver (one leading `v` allowed)
are skipped. For Helm chart layers `_` in a tag stands for `+`, since `+` is not allowed in tags.
"""

from __future__ import annotations

from collections.abc import Iterable

import re2

from tidal.source.git.semver import Constraint, SemverError, Version
from tidal.source.oci.errors import OCIError
from tidal.source.oci.manifest import HELM_CHART_CONTENT

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False


class TagSelectionError(OCIError):
    """No tag can be chosen: a bad range or filter, or nothing matches."""


def filter_tags(tags: Iterable[str], pattern: str) -> list[str]:
    """The tags `pattern` matches anywhere (Go's MatchString); all of them without a pattern."""
    if not pattern:
        return list(tags)
    try:
        compiled = re2.compile(pattern, options=_OPTIONS)
    except re2.error:
        raise TagSelectionError(f"error parsing regexp: invalid pattern `{pattern}`") from None
    return [t for t in tags if compiled.search(t) is not None]


def oci_to_semver(tag: str, media_type: str) -> str:
    return tag.replace("_", "+") if media_type == HELM_CHART_CONTENT else tag


def semver_to_oci(version: str, media_type: str) -> str:
    return version.replace("+", "_") if media_type == HELM_CHART_CONTENT else version


def select_semver(
    tags: Iterable[str], expression: str, *, semver_filter: str = "", media_type: str = ""
) -> str:
    """The tag of the highest version satisfying `expression`."""
    candidates = filter_tags(tags, semver_filter)
    try:
        constraint = Constraint.parse(expression)
    except SemverError as e:
        raise TagSelectionError(f"semver '{expression}' parse error: {e}") from None
    best: Version | None = None
    for tag in candidates:
        try:
            version = Version.parse_tag(oci_to_semver(tag, media_type))
        except SemverError:
            continue
        # On equal versions (1.0.0 and v1.0.0) the first listed wins, deterministically.
        if constraint.check(version) and (best is None or best < version):
            best = version
    if best is None:
        raise TagSelectionError(f"no match found for semver: {expression}")
    return semver_to_oci(best.original, media_type)


def revision(tag: str | None, digest: str) -> str:
    """Flux's artifact revision: `<tag>@<digest>` for a tag, the digest alone for a digest ref."""
    return f"{tag}@{digest}" if tag else digest


def digest_of_revision(revision_text: str) -> str:
    """The digest part of a revision (`latest@sha256:…` or `sha256:…`)."""
    return revision_text.rsplit("@", 1)[-1]
