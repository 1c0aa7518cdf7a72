"""Downloading a Helm repository's index.yaml, as Helm's HTTP getter does for Flux: GET
`<url>/index.yaml` (the path joined and cleaned, the query kept), redirects followed (at most
10), basic auth sent to the repository's own host only, within one time limit for the whole
exchange, and no more than the maximum index size read.

Error texts follow Go's (`failed to fetch <url> : 401 Unauthorized`, `Get "<url>": ...`), with
any password in a URL replaced by `xxxxx`.
"""

from __future__ import annotations

import asyncio
import errno
import posixpath
import ssl
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

import aiohttp

from tidal import __version__
from tidal.source.helm.auth import BasicAuth

MAX_REDIRECTS = 10
USER_AGENT = f"tidal-source-controller/{__version__}"


class FetchError(Exception):
    """The index could not be downloaded."""


class IndexTooLarge(FetchError):
    pass


def redact(url: str) -> str:
    """Go's URL.Redacted: the password of the user info becomes xxxxx."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:xxxxx@{host}"))


def index_url(repository_url: str) -> str:
    """`<url>/index.yaml` as ChartRepository.DownloadIndex builds it with path.Join."""
    parts = urlsplit(repository_url)
    joined = posixpath.normpath(posixpath.join(parts.path or "", "index.yaml"))
    if not joined.startswith("/"):
        joined = "/" + joined
    return urlunsplit(parts._replace(path=joined))


def _strip_user(parts: SplitResult) -> str:
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _same_origin_or_subdomain(first: SplitResult, then: SplitResult) -> bool:
    """net/http's rule for keeping the Authorization header across a redirect."""
    a, b = (first.hostname or "").lower(), (then.hostname or "").lower()
    return a == b or b.endswith("." + a)


def _describe(e: BaseException) -> str:
    if isinstance(e, aiohttp.ClientConnectorCertificateError):
        return f"tls: failed to verify certificate: {e.certificate_error}"
    if isinstance(e, aiohttp.ClientConnectorSSLError | ssl.SSLError):
        return f"remote error: tls: {getattr(e, 'strerror', None) or e}"
    if isinstance(e, aiohttp.ClientConnectorError):
        host = f"{e.host}:{e.port}"
        if e.os_error.errno == errno.ECONNREFUSED:
            return f"dial tcp {host}: connect: connection refused"
        return f"dial tcp {host}: {e.os_error.strerror or e.os_error}"
    if isinstance(e, TimeoutError):
        return "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
    return str(e) or type(e).__name__


async def fetch_index(
    session: aiohttp.ClientSession,
    repository_url: str,
    *,
    basic: BasicAuth | None,
    tls: ssl.SSLContext | None,
    time_limit: float,
    max_size: int,
) -> bytes:
    """The index's bytes; FetchError (IndexTooLarge past `max_size`) otherwise."""
    first = urlsplit(index_url(repository_url))
    if basic is None and first.username is not None and first.password is not None:
        # As net/http: user info in the URL is basic auth when nothing else is configured.
        basic = BasicAuth(first.username, first.password)
    try:
        async with asyncio.timeout(time_limit):
            return await _get(session, first, basic, tls, max_size)
    except TimeoutError:
        raise FetchError(
            f'Get "{redact(urlunsplit(first))}": {_describe(TimeoutError())}'
        ) from None


async def _get(
    session: aiohttp.ClientSession,
    first: SplitResult,
    basic: BasicAuth | None,
    tls: ssl.SSLContext | None,
    max_size: int,
) -> bytes:
    current = first
    for _ in range(MAX_REDIRECTS + 1):
        url = _strip_user(current)
        shown = redact(urlunsplit(current))
        auth = None
        if (
            basic
            and basic.username
            and basic.password
            and _same_origin_or_subdomain(first, current)
        ):
            auth = aiohttp.BasicAuth(basic.username, basic.password)
        try:
            async with session.get(
                url,
                auth=auth,
                ssl=tls if tls is not None else True,
                allow_redirects=False,
                headers={"User-Agent": USER_AGENT},
            ) as resp:
                if resp.status in (301, 302, 303, 307, 308) and "Location" in resp.headers:
                    current = urlsplit(urljoin(url, resp.headers["Location"]))
                    continue
                if resp.status != 200:
                    raise FetchError(
                        f"failed to fetch {shown} : {resp.status} {resp.reason or ''}".rstrip()
                    )
                return await _read_limited(resp, max_size)
        except (aiohttp.ClientError, ssl.SSLError, OSError) as e:
            raise FetchError(f'Get "{shown}": {_describe(e)}') from None
    raise FetchError(
        f'Get "{redact(urlunsplit(current))}": stopped after {MAX_REDIRECTS} redirects'
    )


async def _read_limited(resp: aiohttp.ClientResponse, max_size: int) -> bytes:
    if resp.content_length is not None and resp.content_length > max_size:
        raise IndexTooLarge(f"index exceeds the maximum index file size of {max_size} bytes")
    parts: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(1 << 20):
        size += len(chunk)
        if size > max_size:
            raise IndexTooLarge(f"index exceeds the maximum index file size of {max_size} bytes")
        parts.append(chunk)
    return b"".join(parts)
