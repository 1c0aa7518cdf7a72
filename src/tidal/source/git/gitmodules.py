"""A commit's `.gitmodules`: which submodule lives at which path, and where to fetch it from.

Parsing follows git's config syntax (dulwich's parser). Every entry must have a path and a
url, and the path must be a clean relative path (no "..", no ".git" component): git and
go-git refuse such entries too, and they are never harmless, so tidal fails with a message
naming the entry instead of skipping it.

URLs are resolved as go-git resolves them for Flux:

- `scheme://...` is used as is (http, https, ssh; file only with the controller's
  --allow-file-urls, like spec.url; git:// is not supported);
- scp-like `user@host:path` is an SSH address, the path relative to the login directory;
- an absolute path is a local repository (a file URL, under the same flag): without the
  flag a repository cannot make the controller read its local files through a submodule;
- anything else is relative to the URL of the repository holding the `.gitmodules`
  (`../other.git` next to it, `./sub.git` below it), joined as a path (go-git's path.Join),
  with that repository's scheme, host and port.
"""

from __future__ import annotations

import io
import posixpath
import re
from dataclasses import dataclass
from urllib.parse import quote

from dulwich.config import ConfigFile

from tidal.source.git.errors import InvalidURLError, SubmoduleError, redact_url
from tidal.source.git.url import GitURL, parse_url

GITMODULES = ".gitmodules"

_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/\s]+)@)?(?P<host>[^@/:\s]+):(?P<path>(?!//).*)$")


@dataclass(frozen=True, slots=True)
class SubmoduleSpec:
    """One `[submodule "<name>"]` section."""

    name: str
    path: str
    url: str


def _text(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def _clean_path(path: str) -> bool:
    parts = path.split("/")
    return not (
        path.startswith("/")
        or "\0" in path
        or any(p in ("", ".", "..") or p.lower() == ".git" for p in parts)
    )


def parse_gitmodules(data: bytes) -> list[SubmoduleSpec]:
    """The submodules a `.gitmodules` declares, in file order."""
    try:
        config = ConfigFile.from_file(io.BytesIO(data))
    except (ValueError, UnicodeDecodeError) as e:
        raise SubmoduleError(f"cannot parse {GITMODULES}: {e}") from None
    specs: list[SubmoduleSpec] = []
    paths: dict[str, str] = {}
    for section in config.sections():
        if len(section) != 2 or section[0].lower() != b"submodule":
            continue
        name = _text(section[1])
        values: dict[str, str] = {}
        for key in ("path", "url"):
            try:
                values[key] = _text(config.get(section, key.encode())).strip()
            except KeyError:
                values[key] = ""
            if not values[key]:
                raise SubmoduleError(f"submodule '{name}' has no {key} in {GITMODULES}")
        path = values["path"].rstrip("/")
        if not _clean_path(path):
            raise SubmoduleError(
                f"submodule '{name}': path '{values['path']}' in {GITMODULES} is not a path "
                "inside the repository"
            )
        if path in paths:
            raise SubmoduleError(
                f"submodules '{paths[path]}' and '{name}' share the path '{path}' in {GITMODULES}"
            )
        paths[path] = name
        specs.append(SubmoduleSpec(name, path, values["url"]))
    return specs


def _rebuild(parent: GitURL, path: str, allow_file: bool) -> GitURL:
    """`parent` with another path, through parse_url so it is validated the same way."""
    if parent.is_file:
        return parse_url("file://" + quote(path), allow_file=allow_file)
    userinfo = ""
    if parent.username is not None:
        userinfo = quote(parent.username, safe="")
        if parent.password is not None:
            userinfo += ":" + quote(parent.password, safe="")
        userinfo += "@"
    host = f"[{parent.host}]" if ":" in parent.host else parent.host
    port = f":{parent.port}" if parent.port is not None else ""
    return parse_url(f"{parent.scheme}://{userinfo}{host}{port}{quote(path)}", allow_file=False)


def resolve_url(raw: str, parent: GitURL, *, allow_file: bool) -> GitURL:
    """Where a submodule whose `.gitmodules` url is `raw` is fetched from, the `.gitmodules`
    being in `parent`'s repository."""
    shown = redact_url(raw)
    try:
        if "://" in raw:
            return parse_url(raw, allow_file=allow_file)
        scp = _SCP_LIKE.match(raw)
        if scp is not None:
            user = scp.group("user")
            address = f"{user + '@' if user else ''}{scp.group('host')}:{scp.group('path')}"
            return GitURL("ssh", scp.group("host"), None, scp.group("path"), address, user, None)
        if raw.startswith("/"):
            return parse_url("file://" + quote(raw), allow_file=allow_file)
        return _rebuild(parent, posixpath.normpath(posixpath.join(parent.path, raw)), allow_file)
    except InvalidURLError as e:
        if raw.startswith(("/", "file:")) and not allow_file:
            raise SubmoduleError(
                f"url '{shown}' is a local repository, which the controller only reads when "
                "started with --allow-file-urls"
            ) from None
        raise SubmoduleError(e.message) from None
