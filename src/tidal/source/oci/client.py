"""An asyncio client of the distribution API v2 (what OCI registries speak), for one repository.

It does what source-controller asks of go-containerregistry, and what HelmChart needs for
charts in OCI registries: list tags (following `Link` pagination), resolve a tag to a digest
(HEAD, then GET when HEAD says nothing), fetch a manifest or index (digest-verified), and stream
a blob into a sink with a size cap and digest verification.

Connection set-up follows go-containerregistry: a first `GET /v2/` learns the scheme (https, or
http for insecure, localhost, loopback and private addresses when https cannot connect) and
the registry's challenge; Basic challenges get the credentials, Bearer challenges a token from
the realm (with the credentials, or anonymously), scoped to pulling this repository. A later
401 with a new challenge is answered once. Redirects are followed by hand so an Authorization
header never reaches another host (blob downloads are often redirected to object storage).

Credentials never appear in errors: messages carry methods, URLs and the registry's own error
codes, as Flux's do.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp

from tidal.source.oci.auth import Challenge, Credentials, parse_challenges, pull_scope
from tidal.source.oci.errors import (
    DigestMismatchError,
    OCIError,
    RegistryError,
    SizeLimitError,
)
from tidal.source.oci.manifest import (
    ACCEPT,
    MAX_MANIFEST_SIZE,
    Descriptor,
    Index,
    Manifest,
    parse,
    pick_platform,
)
from tidal.source.oci.reference import Repository

USER_AGENT = "tidal-source-controller"
MAX_REDIRECTS = 10
MAX_TAG_PAGES = 1000
MAX_TAG_PAGE_SIZE = 16 << 20
MAX_TOKEN_SIZE = 1 << 20
_CHUNK = 1 << 20
_CONNECT_ERRORS = (
    aiohttp.ClientConnectorError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError,
    ssl.SSLError,
)


@dataclass(frozen=True, slots=True)
class Proxy:
    url: str
    username: str = ""
    password: str = ""

    def __repr__(self) -> str:
        return f"Proxy(url={self.url!r}, auth={bool(self.username)})"


def _go_value(value: Any) -> str:
    """Go's %v of a value decoded from JSON into interface{} (maps print with sorted keys)."""
    if isinstance(value, dict):
        items = " ".join(f"{k}:{_go_value(v)}" for k, v in sorted(value.items()))
        return f"map[{items}]"
    if isinstance(value, list):
        return "[" + " ".join(_go_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if value is None:
        return "<nil>"
    return str(value)


def _status_text(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def registry_error(method: str, url: str, status: int, body: bytes) -> RegistryError:
    """go-containerregistry's transport.Error text for a failed response."""
    prefix = f"{method} {url.split('?', 1)[0]}: "
    codes: list[str] = []
    diagnostics: list[str] = []
    try:
        errors = json.loads(body).get("errors") if body else None
    except (ValueError, AttributeError, UnicodeDecodeError):
        errors = None
    if isinstance(errors, list):
        for e in errors:
            if not isinstance(e, dict):
                continue
            code = str(e.get("code", ""))
            codes.append(code)
            text = f"{code}: {e.get('message', '')}"
            if e.get("detail") is not None:
                text += f"; {_go_value(e['detail'])}"
            diagnostics.append(text)
    if len(diagnostics) == 1:
        detail = diagnostics[0]
    elif diagnostics:
        detail = "multiple errors returned: " + "; ".join(diagnostics)
    elif not body:
        detail = f"unexpected status code {status} {_status_text(status)}"
        if method == "HEAD":
            detail += " (HEAD responses have no body, use GET for details)"
    else:
        text = body[:1024].decode("utf-8", "replace")
        detail = f"unexpected status code {status} {_status_text(status)}: {text}"
    return RegistryError(prefix + detail, status, tuple(codes))


def _digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def _hasher(digest: str) -> Any:
    algorithm, _, _ = digest.partition(":")
    if algorithm not in ("sha256", "sha512"):
        raise OCIError(f"unsupported digest algorithm in {digest!r}")
    return hashlib.new(algorithm)


def validate_realm(realm: str, registry: str, plain_http: bool) -> None:
    """go-containerregistry's realm rule, against a registry steering credentials or requests
    elsewhere: https only (http for a plain-HTTP registry), and no IP literal in a loopback,
    private, link-local or unspecified range unless it is the registry's own host:port."""
    parts = urlsplit(realm)
    if parts.scheme == "http":
        if not plain_http:
            raise OCIError(
                f'realm scheme "http" not allowed for a secure registry; use https: {realm}'
            )
    elif parts.scheme != "https":
        raise OCIError(
            f'realm scheme "{parts.scheme}" not allowed; must be https (or http for insecure '
            "registries)"
        )
    if parts.netloc == registry:
        return
    try:
        ip = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return
    if ip.is_loopback or ip.is_link_local or ip.is_private or ip.is_unspecified:
        raise OCIError(f'realm host "{parts.hostname}" is a private or link-local address')


class Client:
    """One repository of one registry. Cheap to create; share the aiohttp session.

    `tls` is an SSLContext for a private CA or client certificate, False to skip server
    verification (Flux's `insecure` without a certSecretRef), or None for the system roots.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        repository: Repository,
        *,
        credentials: Credentials | None = None,
        tls: ssl.SSLContext | bool | None = None,
        proxy: Proxy | None = None,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.session = session
        self.repository = repository
        self._credentials = credentials
        self._tls: ssl.SSLContext | bool = True if tls is None else tls
        self._proxy = proxy
        self._user_agent = user_agent
        self._base: str | None = None  # scheme://registry, once pinged
        self._authorization: str | None = None
        self._challenge: Challenge | None = None

    def __repr__(self) -> str:
        return f"Client({self.repository}, credentials={self._credentials is not None})"

    # -- public API -------------------------------------------------------------------------------

    async def list_tags(self) -> list[str]:
        """Every tag of the repository, in the registry's order, across all pages."""
        base = await self._ready()
        url: str | None = f"{base}/v2/{self.repository.path}/tags/list?n=1000"
        tags: list[str] = []
        seen: set[str] = set()
        for _ in range(MAX_TAG_PAGES):
            if url is None or url in seen:
                break
            seen.add(url)
            status, headers, body = await self._request("GET", url, max_body=MAX_TAG_PAGE_SIZE)
            if status != 200:
                raise registry_error("GET", url, status, body)
            try:
                page = json.loads(body)
            except ValueError as e:
                raise OCIError(f"GET {url}: invalid tag list: {e}") from None
            tags += [str(t) for t in (page.get("tags") or []) if isinstance(t, str)]
            url = _next_link(url, headers.get("Link", ""))
        return tags

    async def resolve(self, reference: str) -> Descriptor:
        """The descriptor a tag or digest points at: HEAD the manifest, and GET it when HEAD
        fails or carries no digest (as go-containerregistry's remote.Head/remote.Get)."""
        base = await self._ready()
        url = f"{base}/v2/{self.repository.path}/manifests/{reference}"
        status, headers, _ = await self._request("HEAD", url, headers={"Accept": ACCEPT})
        digest = headers.get("Docker-Content-Digest", "")
        if status == 200 and digest:
            size = int(headers.get("Content-Length") or 0)
            media_type = headers.get("Content-Type", "").split(";")[0].strip()
            return Descriptor(media_type, digest, size)
        data, digest, media_type = await self._get_manifest(reference)
        return Descriptor(media_type, digest, len(data))

    async def fetch_manifest(self, reference: str) -> Manifest | Index:
        """The manifest or index a tag or digest names; a digest is verified against the bytes."""
        data, digest, media_type = await self._get_manifest(reference)
        return parse(data, digest, media_type)

    async def fetch_image(self, reference: str) -> Manifest:
        """The image manifest for a reference, through an index if it names one."""
        found = await self.fetch_manifest(reference)
        if isinstance(found, Index):
            found = await self.fetch_manifest(pick_platform(found).digest)
            if isinstance(found, Index):
                raise OCIError(f"nested index at {self.repository.digest(found.digest)}")
        return found

    async def fetch_blob(
        self, descriptor: Descriptor, write: Callable[[bytes], object], *, max_size: int
    ) -> int:
        """Stream a blob into `write`, refusing more than `max_size` bytes or a size or digest
        other than the descriptor's; returns the byte count. On error, part of the blob may
        have been written: the caller discards it."""
        if descriptor.size > max_size:
            raise SizeLimitError(
                f"blob {descriptor.digest} is {descriptor.size} bytes, over the limit of {max_size}"
            )
        hasher = _hasher(descriptor.digest)
        base = await self._ready()
        url = f"{base}/v2/{self.repository.path}/blobs/{descriptor.digest}"
        total = 0
        async with self._stream("GET", url) as response:
            if response.status != 200:
                body = await response.content.read(64 << 10)
                raise registry_error("GET", str(response.url), response.status, body)
            async for chunk in response.content.iter_chunked(_CHUNK):
                total += len(chunk)
                if total > descriptor.size:
                    raise SizeLimitError(
                        f"blob {descriptor.digest} is larger than its declared "
                        f"{descriptor.size} bytes"
                    )
                hasher.update(chunk)
                write(chunk)
        if total != descriptor.size:
            raise OCIError(
                f"blob {descriptor.digest}: got {total} bytes, expected {descriptor.size}"
            )
        actual = f"{descriptor.digest.partition(':')[0]}:{hasher.hexdigest()}"
        if actual != descriptor.digest:
            raise DigestMismatchError(
                f"blob digest mismatch: expected {descriptor.digest}, got {actual}"
            )
        return total

    async def fetch_blob_bytes(self, descriptor: Descriptor, *, max_size: int) -> bytes:
        """A small blob (a config) in memory."""
        parts: list[bytes] = []
        await self.fetch_blob(descriptor, parts.append, max_size=max_size)
        return b"".join(parts)

    # -- manifests --------------------------------------------------------------------------------

    async def _get_manifest(self, reference: str) -> tuple[bytes, str, str]:
        base = await self._ready()
        url = f"{base}/v2/{self.repository.path}/manifests/{reference}"
        status, headers, body = await self._request(
            "GET", url, headers={"Accept": ACCEPT}, max_body=MAX_MANIFEST_SIZE
        )
        if status != 200:
            raise registry_error("GET", url, status, body)
        if ":" in reference:
            digest = _digest_of(body, reference.partition(":")[0])
            if digest != reference:
                raise DigestMismatchError(
                    f"manifest digest mismatch: expected {reference}, got {digest}"
                )
        else:
            digest = headers.get("Docker-Content-Digest") or _digest_of(body)
            if digest != _digest_of(body, digest.partition(":")[0]):
                # A digest header that disagrees with the bytes: trust the bytes.
                digest = _digest_of(body)
        media_type = headers.get("Content-Type", "").split(";")[0].strip()
        return body, digest, media_type

    # -- transport --------------------------------------------------------------------------------

    def _request_kwargs(self, url: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"allow_redirects": False}
        if url.startswith("https://"):
            kwargs["ssl"] = self._tls
        if self._proxy is not None:
            kwargs["proxy"] = self._proxy.url
            if self._proxy.username:
                kwargs["proxy_auth"] = aiohttp.BasicAuth(self._proxy.username, self._proxy.password)
        return kwargs

    async def _ready(self) -> str:
        """Ping the registry once: learn its scheme and its challenge, and authenticate."""
        if self._base is not None:
            return self._base
        schemes = ["https", "http"] if self.repository.may_use_http() else ["https"]
        errors: list[str] = []
        for scheme in schemes:
            url = f"{scheme}://{self.repository.registry}/v2/"
            try:
                async with self.session.get(
                    url, headers={"User-Agent": self._user_agent}, **self._request_kwargs(url)
                ) as response:
                    body = await response.content.read(64 << 10)
                    status = response.status
                    challenge_header = response.headers.get("WWW-Authenticate", "")
            except _CONNECT_ERRORS as e:
                errors.append(f"GET {url}: {_describe(e)}")
                continue
            if status not in (200, 401):
                # As go-containerregistry's ping: every scheme's failure is reported.
                errors.append(str(registry_error("GET", url, status, body)))
                continue
            self._base = f"{scheme}://{self.repository.registry}"
            if status == 401:
                self._challenge = _pick(parse_challenges(challenge_header))
                await self._authenticate(self._challenge, pull_scope(self.repository))
            return self._base
        raise OCIError("; ".join(errors))

    async def _authenticate(self, challenge: Challenge | None, scope: str) -> None:
        if challenge is None:
            return
        if challenge.scheme == "basic":
            if self._credentials is not None:
                self._authorization = self._credentials.basic_header()
            return
        if challenge.scheme == "bearer":
            self._authorization = f"Bearer {await self._token(challenge, scope)}"

    async def _token(self, challenge: Challenge, scope: str) -> str:
        assert self._base is not None
        plain_http = self._base.startswith("http://")
        params = {"scope": scope}
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]
        realm = challenge.realm
        url = f"{realm}{'&' if '?' in realm else '?'}{urlencode(params)}"
        for _ in range(MAX_REDIRECTS + 1):
            validate_realm(url, self.repository.registry, plain_http)
            headers = {"User-Agent": self._user_agent}
            if self._credentials is not None:
                headers["Authorization"] = self._credentials.basic_header()
            try:
                async with self.session.get(
                    url, headers=headers, **self._request_kwargs(url)
                ) as response:
                    body = await response.content.read(MAX_TOKEN_SIZE)
                    status = response.status
                    location = response.headers.get("Location", "")
            except _CONNECT_ERRORS as e:
                raise OCIError(f"GET {url.split('?', 1)[0]}: {_describe(e)}") from None
            if status in (301, 302, 303, 307, 308) and location:
                url = urljoin(url, location)  # validated like the realm itself
                continue
            break
        else:
            raise OCIError(f"GET {realm}: stopped after {MAX_REDIRECTS} redirects")
        if status != 200:
            raise registry_error("GET", url, status, body)
        try:
            payload = json.loads(body)
            token = payload.get("token") or payload.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise OCIError(f"GET {url.split('?', 1)[0]}: no token in the response")
        return token

    def _headers(self, url: str, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {"User-Agent": self._user_agent, **(extra or {})}
        if self._authorization and self._base and url.startswith(self._base + "/"):
            headers["Authorization"] = self._authorization
        return headers

    async def _request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        max_body: int = 64 << 10,
    ) -> tuple[int, Mapping[str, str], bytes]:
        async with self._stream(method, url, headers=headers) as response:
            body = await response.content.read(max_body + 1) if method != "HEAD" else b""
            if len(body) > max_body:
                raise SizeLimitError(f"{method} {url}: response larger than {max_body} bytes")
            return response.status, dict(response.headers), body

    def _stream(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None
    ) -> _Response:
        return _Response(self, method, url, headers)

    async def _send(
        self, method: str, url: str, headers: Mapping[str, str] | None
    ) -> aiohttp.ClientResponse:
        """Send with redirects followed by hand and one re-authentication on a 401."""
        retried = False
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = await self.session.request(
                    method,
                    current,
                    headers=self._headers(current, headers),
                    **self._request_kwargs(current),
                )
            except _CONNECT_ERRORS as e:
                raise OCIError(f"{method} {current.split('?', 1)[0]}: {_describe(e)}") from None
            if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                location = urljoin(current, response.headers["Location"])
                response.release()
                if urlsplit(location).scheme not in ("http", "https"):
                    raise OCIError(f"{method} {current}: redirect to an unsupported scheme")
                current = location
                continue
            if response.status == 401 and not retried and current.startswith(f"{self._base}/"):
                # Answer a new challenge once (an expired token, a scope the ping did not
                # ask for, a registry that let the ping through anonymously).
                retried = True
                challenge = _pick(parse_challenges(response.headers.get("WWW-Authenticate", "")))
                before = self._authorization
                if challenge is not None:
                    scope = challenge.params.get("scope") or pull_scope(self.repository)
                    try:
                        await self._authenticate(challenge, scope)
                    except BaseException:
                        response.release()
                        raise
                if self._authorization is not None and self._authorization != before:
                    response.release()
                    continue
            return response
        raise OCIError(f"{method} {url}: stopped after {MAX_REDIRECTS} redirects")


class _Response:
    """`async with` around Client._send, releasing the connection on exit."""

    def __init__(
        self, client: Client, method: str, url: str, headers: Mapping[str, str] | None
    ) -> None:
        self._args = (client, method, url, headers)
        self._response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        client, method, url, headers = self._args
        self._response = await client._send(method, url, headers)
        return self._response

    async def __aexit__(self, *exc: object) -> None:
        if self._response is not None:
            self._response.release()


def _pick(challenges: list[Challenge]) -> Challenge | None:
    for scheme in ("bearer", "basic"):
        for c in challenges:
            if c.scheme == scheme:
                return c
    return None


def _next_link(current: str, link: str) -> str | None:
    """The rel="next" target of a Link header, resolved against the current URL."""
    for part in link.split(","):
        target, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
            target = target.strip().strip("<>")
            resolved = urljoin(current, target)
            # Pagination must stay on the registry it started on.
            if urlsplit(resolved).netloc != urlsplit(current).netloc:
                return None
            return resolved
    return None


def _describe(e: BaseException | None) -> str:
    if e is None:
        return "connection failed"
    if isinstance(e, aiohttp.ClientConnectorCertificateError):
        e = e.certificate_error
    if isinstance(e, ssl.SSLCertVerificationError):
        detail = getattr(e, "verify_message", "") or str(e)
        return f"tls: failed to verify certificate: {detail}"
    text = str(e) or type(e).__name__
    return text
