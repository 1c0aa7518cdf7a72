"""The smart-HTTP transport: dulwich's urllib3 client over a pool manager of its own.

Each operation builds its own PoolManager, so one GitRepository's CA, client certificate,
proxy and credentials never touch another's connections. Trust follows go-git, which Flux
uses: `ca.crt` is appended to the system roots (x509.SystemCertPool + AppendCertsFromPEM),
it does not replace them. Credentials are sent on the first request (basic or bearer, as
go-git does) and urllib3 drops the Authorization header when a redirect leaves the host.
Without a proxy Secret the usual environment variables apply (HTTPS_PROXY, NO_PROXY...),
as Go's http.ProxyFromEnvironment does for Flux.
"""

from __future__ import annotations

import contextlib
import functools
import os
import ssl
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import urllib3
from dulwich.client import (
    HTTPProxyUnauthorized,
    HTTPUnauthorized,
    Urllib3HttpGitClient,
    default_user_agent_string,
)
from dulwich.errors import GitProtocolError, NotGitRepository

from tidal.source.git.auth import AuthOptions, ProxyOptions
from tidal.source.git.errors import FetchError, TLSError, UnsupportedError
from tidal.source.git.operation import Operation
from tidal.source.git.url import GitURL

if TYPE_CHECKING:
    from dulwich.client import HTTPResponse


class HttpClient(Urllib3HttpGitClient):
    """dulwich's client with the operation's deadline applied to every request, and dumb
    HTTP refused (go-git speaks smart HTTP only)."""

    def __init__(self, base_url: str, pool_manager: urllib3.PoolManager, op: Operation) -> None:
        super().__init__(base_url, pool_manager=pool_manager)
        self._op = op

    def _http_request(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        data: bytes | Iterator[bytes] | None = None,
        raise_for_status: bool = True,
    ) -> tuple[HTTPResponse, Callable[[int], bytes]]:
        self._op.check()
        self._timeout = self._op.wait_limit()
        resp, read = super()._http_request(url, headers, data, raise_for_status=False)
        if not raise_for_status or resp.status == 200:
            return resp, read
        # dulwich raises on an error status without closing the response, which leaks the
        # connection; close it first, then raise what dulwich would have raised.
        status = resp.status
        challenge = resp.headers.get("WWW-Authenticate")
        proxy_challenge = resp.headers.get("Proxy-Authenticate")
        resp.close()
        if status == 404:
            raise NotGitRepository
        if status == 401:
            raise HTTPUnauthorized(challenge, url)
        if status == 407:
            raise HTTPProxyUnauthorized(proxy_challenge, url)
        raise GitProtocolError(f"unexpected http resp {status} for {url}")

    def check_smart(self) -> None:
        if self.dumb:
            raise FetchError(
                "the server speaks the dumb HTTP protocol, which is not supported; "
                "a smart HTTP Git server is required"
            )


@functools.lru_cache(maxsize=64)
def transport_error(e: BaseException) -> str:
    """What went wrong on the way, without urllib3's retry and tuple wrappings."""
    if isinstance(e, urllib3.exceptions.MaxRetryError) and e.reason is not None:
        e = e.reason
    if isinstance(e, urllib3.exceptions.ProxyError):
        return f"proxy: {e.args[0]}: {e.original_error}"
    return str(e) or type(e).__name__


def _ssl_context(ca: bytes, client_cert: bytes, client_key: bytes) -> ssl.SSLContext:
    # Cached by content: a context is immutable once built, so sharing one between two
    # objects with the very same CA and certificate shares nothing else.
    ctx = ssl.create_default_context()
    ctx.set_alpn_protocols(["http/1.1"])
    if ca:
        try:
            ctx.load_verify_locations(cadata=ca.decode("utf-8", "replace"))
        except (ssl.SSLError, ValueError) as e:
            raise TLSError(f"invalid CA certificate in 'ca.crt': {e}") from None
    if client_cert:
        _load_client_cert(ctx, client_cert, client_key)
    return ctx


def _load_client_cert(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    # The ssl module loads certificate chains from files only: write them to a private
    # directory for the duration of the call.
    with tempfile.TemporaryDirectory(prefix="tidal-tls-") as tmp:
        cert_path, key_path = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        try:
            ctx.load_cert_chain(cert_path, key_path)
        except (ssl.SSLError, ValueError) as e:
            raise TLSError(
                f"invalid client certificate or key ('tls.crt'/'tls.key'): {e}"
            ) from None


def ssl_context(auth: AuthOptions) -> ssl.SSLContext:
    return _ssl_context(auth.ca, auth.client_cert, auth.client_key)


def _environment_proxy(url: GitURL) -> str | None:
    proxies = urllib.request.getproxies_environment()
    address = proxies.get(url.scheme) or proxies.get("all")
    if not address:
        return None
    host = f"{url.host}:{url.port}" if url.port else url.host
    # proxy_bypass_environment exists on every platform but typeshed does not list it.
    if urllib.request.proxy_bypass_environment(host, proxies):  # type: ignore[attr-defined]
        return None
    return address


def _proxy_manager(
    proxy: ProxyOptions, kwargs: dict[str, Any]
) -> urllib3.PoolManager | urllib3.ProxyManager:
    if proxy.scheme.startswith("socks"):
        try:
            from urllib3.contrib.socks import SOCKSProxyManager
        except ImportError:
            raise UnsupportedError(
                "a SOCKS5 proxy needs the PySocks package, which is not installed"
            ) from None
        return SOCKSProxyManager(
            proxy.address,
            username=proxy.username or None,
            password=proxy.password or None,
            **kwargs,
        )
    headers = (
        urllib3.make_headers(proxy_basic_auth=f"{proxy.username}:{proxy.password}")
        if proxy.username
        else None
    )
    return urllib3.ProxyManager(proxy.address, proxy_headers=headers, **kwargs)


def pool_manager(url: GitURL, auth: AuthOptions) -> urllib3.PoolManager:
    headers = {"User-agent": default_user_agent_string()}
    if auth.bearer_token:
        headers["Authorization"] = f"Bearer {auth.bearer_token}"
    elif auth.username or auth.password:
        headers.update(urllib3.make_headers(basic_auth=f"{auth.username}:{auth.password}"))
    kwargs: dict[str, Any] = {
        "num_pools": 2,
        "headers": headers,
        # No retries of failed requests (go-git makes none); redirects are followed.
        "retries": urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=5),
    }
    if url.scheme == "https":
        kwargs["ssl_context"] = ssl_context(auth)
    proxy = auth.proxy
    if proxy is None:
        address = _environment_proxy(url)
        proxy = ProxyOptions(address) if address else None
    if proxy is not None:
        return _proxy_manager(proxy, kwargs)
    return urllib3.PoolManager(**kwargs)


@contextlib.contextmanager
def http_client(url: GitURL, auth: AuthOptions, op: Operation) -> Iterator[HttpClient]:
    pm = pool_manager(url, auth)
    op.on_cancel(pm.clear)
    try:
        yield HttpClient(url.url, pm, op)
    finally:
        pm.clear()
