"""Which repository URLs the client accepts, parsed once.

Flux's CRD pattern is `^(http|https|ssh)://.*$`, so the scp-like `git@host:org/repo` form is
refused before a controller ever sees it; the API server says
`spec.url in body should match '^(http|https|ssh)://.*$'`, and that is the message used here
too, with a hint at the `ssh://` form. `file://` is a test and air-gapped convenience that
only an explicit `allow_file=True` enables (the controller flag is off by default).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from tidal.source.git.errors import InvalidURLError, redact_url

URL_PATTERN = "^(http|https|ssh)://.*$"

_SCP_LIKE = re.compile(r"^(?:[^@/\s]+@)?[^@/:\s]+:(?!//)")
_SCHEMES = ("http", "https", "ssh")


@dataclass(frozen=True, slots=True)
class GitURL:
    """A parsed, validated repository URL; `url` has its userinfo removed."""

    scheme: str
    host: str
    port: int | None
    path: str
    url: str  # without userinfo: safe to log
    username: str | None  # from the URL's userinfo, percent-decoded
    password: str | None

    @property
    def is_ssh(self) -> bool:
        return self.scheme == "ssh"

    @property
    def is_http(self) -> bool:
        return self.scheme in ("http", "https")

    @property
    def is_file(self) -> bool:
        return self.scheme == "file"

    @property
    def default_port(self) -> int:
        return {"http": 80, "https": 443, "ssh": 22}.get(self.scheme, 0)

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else self.default_port

    def __str__(self) -> str:
        return self.url


def parse_url(url: str, *, allow_file: bool = False) -> GitURL:
    """Validate and split a GitRepository `spec.url`."""
    shown = redact_url(url)
    if not url or url != url.strip():
        raise InvalidURLError(f"invalid URL {shown!r}: empty or surrounded by whitespace")
    if "://" not in url and _SCP_LIKE.match(url):
        raise InvalidURLError(
            f"invalid URL {shown!r}: spec.url in body should match '{URL_PATTERN}' "
            "(scp-like addresses are not supported, use ssh://user@host/path)"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise InvalidURLError(f"invalid URL {shown!r}: {redact_url(str(e))}") from None
    scheme = parts.scheme.lower()
    allowed = (*_SCHEMES, "file") if allow_file else _SCHEMES
    if scheme not in allowed:
        hint = " (file:// needs allow_file=True)" if scheme == "file" else ""
        raise InvalidURLError(
            f"invalid URL {shown!r}: spec.url in body should match '{URL_PATTERN}'{hint}"
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InvalidURLError(f"invalid URL {shown!r}: file URLs take no host")
        path = unquote(parts.path)
        return GitURL("file", "", None, path, urlunsplit(("file", "", path, "", "")), None, None)
    host = parts.hostname or ""
    if not host:
        raise InvalidURLError(f"invalid URL {shown!r}: no host")
    if parts.query or parts.fragment:
        raise InvalidURLError(f"invalid URL {shown!r}: a query or fragment is not allowed")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    clean = SplitResult(scheme, netloc, parts.path, "", "")
    return GitURL(
        scheme=scheme,
        host=host,
        port=port,
        path=unquote(parts.path) or "/",
        url=urlunsplit(clean),
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )
