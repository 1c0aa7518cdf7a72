"""Helm's chart.Metadata.Validate for the chart versions of an index: what makes Flux drop a
version (no name, a version that is not semver, an unknown type, a null maintainer or
dependency, a bad alias...) and the texts it cleans."""

from __future__ import annotations

import json
from typing import Any, Final

from tidal.source.git.semver import SemverError, Version

# Masterminds/semver's MaxVersionLen.
_MAX_VERSION_LEN: Final = 256

# -- validation (chart.Metadata.Validate) ---------------------------------------------------------

_GO_SPACES: Final = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
_ALIAS_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def sanitize(text: str) -> str:
    """Helm's sanitizeString: white space becomes a space, what is not printable goes."""
    if text.isprintable():
        return text
    return "".join(
        " " if c in _GO_SPACES else c for c in text if c in _GO_SPACES or c.isprintable()
    )


class InvalidMetadata(Exception):
    pass


def _go_base(path: str) -> str:
    """filepath.Base on Linux."""
    if not path:
        return "."
    path = path.rstrip("/")
    if not path:
        return "/"
    return path.rpartition("/")[2]


def parse_chart_version(text: str) -> Version:
    """Masterminds/semver NewVersion, as Helm validates and sorts chart versions."""
    if len(text.encode()) > _MAX_VERSION_LEN:
        raise SemverError(f"version string is too long (max {_MAX_VERSION_LEN} bytes)")
    version = Version.parse(text)
    if max(version.major, version.minor, version.patch) >= 1 << 64:
        raise SemverError("error parsing version segment: value out of range")
    return version


def validate(md: dict[str, Any]) -> Version:
    """chart.Metadata.Validate on `md`, sanitising its texts in place as Helm does; raise
    InvalidMetadata with Helm's message for an entry Flux drops."""
    for key in ("name", "description", "home", "icon", "condition", "tags"):
        if key in md:
            md[key] = sanitize(md[key])
    for key in ("appVersion", "kubeVersion"):
        if key in md:
            md[key] = sanitize(md[key])
    for key in ("sources", "keywords"):
        if md.get(key):
            md[key] = [sanitize(s) for s in md[key]]
    name = md.get("name", "")
    version = md.get("version", "")
    if not md.get("apiVersion"):
        raise InvalidMetadata("validation: chart.metadata.apiVersion is required")
    if not name:
        raise InvalidMetadata("validation: chart.metadata.name is required")
    if name in (".", ".."):
        raise InvalidMetadata(f"validation: chart.metadata.name {json.dumps(name)} is not allowed")
    if name != _go_base(name):
        raise InvalidMetadata(f"validation: chart.metadata.name {json.dumps(name)} is invalid")
    if not version:
        raise InvalidMetadata("validation: chart.metadata.version is required")
    try:
        parsed = parse_chart_version(version)
    except SemverError:
        raise InvalidMetadata(
            f"validation: chart.metadata.version {json.dumps(version)} is invalid"
        ) from None
    if md.get("type", "") not in ("", "application", "library"):
        raise InvalidMetadata("validation: chart.metadata.type must be application or library")
    for maintainer in md.get("maintainers") or ():
        if maintainer is None:
            raise InvalidMetadata("validation: maintainers must not contain empty or null nodes")
        for key in ("name", "email", "url"):
            if key in maintainer:
                maintainer[key] = sanitize(maintainer[key])
    seen: set[str] = set()
    for dep in md.get("dependencies") or ():
        if dep is None:
            raise InvalidMetadata("validation: dependencies must not contain empty or null nodes")
        for key in ("name", "version", "repository", "condition"):
            if key in dep:
                dep[key] = sanitize(dep[key])
        if dep.get("tags"):
            dep["tags"] = [sanitize(t) for t in dep["tags"]]
        alias = dep.get("alias", "")
        if alias and not set(alias) <= _ALIAS_CHARS:
            raise InvalidMetadata(
                f"validation: dependency {json.dumps(dep.get('name', ''))} has disallowed "
                "characters in the alias"
            )
        key = alias or dep.get("name", "")
        if key in seen:
            # Helm stops validating here but keeps the entry (Flux skips this one error).
            break
        seen.add(key)
    return parsed
