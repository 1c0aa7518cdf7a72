"""A threaded HTTP(S) server on loopback for the test fakes of third-party services (the GitHub
API, Microsoft Entra ID): start, stop and `with`, TLS from a test CA, handlers that reach their
fake through `self.server.owner`."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

from testenv.pki import CertificateAuthority


class TLSServer(ThreadingHTTPServer):
    """Wraps each accepted connection in TLS when `ssl_context` is set; a client that hangs up
    mid-handshake or mid-request is nobody's error."""

    daemon_threads = True
    allow_reuse_address = True
    owner: Any
    ssl_context: ssl.SSLContext | None

    def finish_request(self, request: Any, client_address: Any) -> None:
        conn: socket.socket = request
        if self.ssl_context is not None:
            conn.settimeout(10)
            try:
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError):
                return
        try:
            super().finish_request(conn, client_address)
        except (OSError, ValueError):
            pass
        finally:
            if conn is not request:
                with contextlib.suppress(OSError):
                    conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class LoopbackServer:
    """Subclasses set `handler` (its requests see this object as `self.server.owner`) and
    `name` (for the thread and the certificate directory)."""

    handler: ClassVar[type[BaseHTTPRequestHandler]]
    name: ClassVar[str] = "loopback"

    def __init__(self, ca: CertificateAuthority | None, host: str = "127.0.0.1") -> None:
        self.ca = ca
        self.host = host
        self.port = 0
        self._httpd: TLSServer | None = None
        self._thread: threading.Thread | None = None
        self._workdir: Path | None = None

    def start(self) -> Self:
        if self._httpd is not None:
            return self
        httpd = TLSServer((self.host, self.port), self.handler)
        httpd.owner = self
        httpd.ssl_context = self._ssl_context() if self.ca is not None else None
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _ssl_context(self) -> ssl.SSLContext:
        assert self.ca is not None
        pair = self.ca.issue(
            "localhost", server=True, dns_names=("localhost",), ips=("127.0.0.1", "::1")
        )
        self._workdir = Path(tempfile.mkdtemp(prefix=f"tidal-{self.name}-"))
        cert, key = pair.write(self._workdir, "server")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        return ctx
