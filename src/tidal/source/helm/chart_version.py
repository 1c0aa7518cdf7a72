"""Choosing a chart version from a repository index, as source-controller's ChartRepository does.

The index is the HelmRepository's stored artifact (the normalised index, as JSON). Only the
requested chart's entries are decoded: msgspec keeps every other chart as raw bytes, so a
20 MB index costs a scan, not a tree of Python objects.

Rules (Flux's getChartVersion):
- a version string equal to an entry's version picks that entry, prerelease or not;
- otherwise `spec.version` is a Masterminds constraint (`*` or empty: the latest stable);
  entries whose version is not strict SemVer (one leading `v` allowed) are passed over;
- the highest matching version wins; equal versions (differing in build metadata only) go to
  the one created last.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final

import msgspec

from tidal.source.git.semver import Constraint, SemverError, Version


class ChartReferenceError(ValueError):
    """The chart name or version cannot be found in the index (Flux's ErrReference)."""


class IndexReadError(ValueError):
    """The stored index cannot be read (Flux's ErrExternal)."""


class VersionMetadataError(ValueError):
    """A version cannot carry the build metadata asked for (Flux's ErrChartMetadataPatch)."""


class ChartVersion(msgspec.Struct, omit_defaults=True):
    """The fields of an index entry a chart pull needs."""

    name: str = ""
    version: str = ""
    urls: list[str] = []
    created: str = ""
    digest: str = ""


class _Index(msgspec.Struct):
    entries: dict[str, msgspec.Raw] | None = None


_entries = msgspec.json.Decoder(list[ChartVersion | None])
_index = msgspec.json.Decoder(_Index)

# Flux's RemoteReference name rule `^([-a-z0-9]+/?\.?)+$`, written without nested quantifiers
# so that a long hostile name cannot make the match backtrack exponentially.
_NAME: Final = re.compile(r"[-a-z0-9]+(?:(?:/\.?|\.)[-a-z0-9]+)*(?:/\.?|\.)?")
_METADATA: Final = re.compile(r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*")
_CREATED: Final = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def validate_chart_name(name: str) -> None:
    if not name:
        raise ChartReferenceError("no name set for remote chart reference")
    if not _NAME.fullmatch(name):
        raise ChartReferenceError(
            f"invalid chart name '{name}': a valid name must be lower case letters and numbers "
            "and MAY be separated with dashes (-), slashes (/) or periods (.)"
        )


def _created_key(created: str) -> tuple[float, int]:
    """Seconds and nanoseconds of an RFC 3339 time; the zero time when unreadable."""
    m = _CREATED.fullmatch(created)
    if m is None:
        return (float("-inf"), 0)
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        seconds = datetime.fromisoformat(m.group(1) + zone).timestamp()
    except ValueError:
        return (float("-inf"), 0)
    return (seconds, int((m.group(2) or "0").ljust(9, "0")))


def chart_entries(index: bytes, name: str) -> list[ChartVersion]:
    """The index entries of chart `name`; ChartReferenceError when the chart has none."""
    try:
        decoded = _index.decode(index)
        raw = (decoded.entries or {}).get(name)
        if raw is None:
            raise ChartReferenceError("no chart name found")
        entries = [e for e in _entries.decode(raw) if e is not None]
    except msgspec.DecodeError as e:
        raise IndexReadError(f"failed to load index: {e}") from None
    if not entries:
        raise ChartReferenceError("no chart version found")
    return entries


def select(entries: list[ChartVersion], name: str, constraint: str) -> ChartVersion:
    """The entry Flux pulls for `constraint` (see the module docstring)."""
    if constraint:
        for entry in entries:
            if entry.version == constraint:
                return entry
    try:
        parsed = Constraint.parse("*" if constraint in ("", "*") else constraint)
    except SemverError as e:
        raise ChartReferenceError(str(e)) from None
    best: tuple[Version, tuple[float, int]] | None = None
    chosen: ChartVersion | None = None
    for entry in entries:
        try:
            version = Version.parse_tag(entry.version)
        except SemverError:
            continue
        if not parsed.check(version):
            continue
        key = (version, _created_key(entry.created))
        if best is None or key[0] > best[0] or (key[0] == best[0] and key[1] > best[1]):
            best, chosen = key, entry
    if chosen is None:
        raise ChartReferenceError(f"no '{name}' chart with version matching '{constraint}' found")
    return chosen


def with_build_metadata(version: str, metadata: str) -> str:
    """Masterminds NewVersion(version).SetMetadata(metadata).String()."""
    try:
        parsed = Version.parse(version)
    except SemverError as e:
        raise VersionMetadataError(
            f"failed to parse version from chart metadata as SemVer: {e}"
        ) from None
    if not _METADATA.fullmatch(metadata):
        raise VersionMetadataError(
            "failed to set SemVer metadata on chart version: Invalid Metadata string"
        )
    return str(Version(parsed.major, parsed.minor, parsed.patch, parsed.prerelease, metadata))
