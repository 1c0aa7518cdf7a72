"""A real Helm chart repository for tests: a directory holding `index.yaml` and chart `.tgz`
files, served over HTTP or HTTPS on loopback by a thread of the test process.

Options: basic auth (401 otherwise), TLS with a certificate from testenv.pki, and client
certificate verification (the handshake fails without one the CA issued). `stop()` and
`start()` take the server down and bring it back on the same port, for outage tests.
`ChartRepository` writes charts and an index the way `helm package` and `helm repo index` lay
them out.
"""

from __future__ import annotations

import base64
import hashlib
import io
import ssl
import tarfile
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from testenv.pki import CertificateAuthority, KeyPair, write_private


def package_chart(
    name: str,
    version: str,
    *,
    app_version: str = "1.0.0",
    extra_files: Mapping[str, str] | None = None,
) -> bytes:
    """A minimal chart archive, as `helm package` lays it out (`<name>/Chart.yaml`, ...);
    `extra_files` adds or replaces files, by their path inside the chart."""
    files = {
        f"{name}/Chart.yaml": (
            f"apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: {app_version}\n"
            "description: A chart for tests\ntype: application\n"
        ),
        f"{name}/values.yaml": "replicaCount: 1\n",
        f"{name}/templates/configmap.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n"
        ),
    }
    for path, text in (extra_files or {}).items():
        files[f"{name}/{path}"] = text
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class ChartRepository:
    """A directory of charts with its index."""

    root: Path
    base_url: str = ""
    entries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(
        self,
        name: str,
        version: str,
        *,
        created: str = "",
        extra_files: Mapping[str, str] | None = None,
    ) -> bytes:
        """Package and publish a chart version; return the archive's bytes."""
        archive = package_chart(name, version, extra_files=extra_files)
        self.publish(name, version, archive, created=created)
        return archive

    def publish(
        self, name: str, version: str, archive: bytes, *, created: str = "", app_version: str = ""
    ) -> None:
        """Publish a packaged chart (e.g. a real one) under `name` and `version`."""
        file_name = f"{name}-{version}.tgz"
        (self.root / file_name).write_bytes(archive)
        when = created or datetime.now(UTC).isoformat().replace("+00:00", "Z")
        self.entries.setdefault(name, []).append(
            {
                "apiVersion": "v2",
                "appVersion": app_version or "1.0.0",
                "created": when,
                "description": "A chart for tests",
                "digest": hashlib.sha256(archive).hexdigest(),
                "name": name,
                "type": "application",
                "urls": [f"{self.base_url}/{file_name}" if self.base_url else file_name],
                "version": version,
            }
        )
        self.write_index()

    def write_index(self, text: str | bytes | None = None) -> bytes:
        """Write index.yaml: the given text, or the index of the charts added."""
        if text is None:
            document = {
                "apiVersion": "v1",
                "entries": self.entries,
                "generated": "2024-01-01T00:00:00Z",
            }
            text = yaml.safe_dump(document, sort_keys=True)
        data = text.encode() if isinstance(text, str) else text
        (self.root / "index.yaml").write_bytes(data)
        return data


@dataclass
class TLSFiles:
    ca: KeyPair
    server: KeyPair
    client: KeyPair


def issue_tls(ca: CertificateAuthority | None = None) -> TLSFiles:
    ca = ca or CertificateAuthority("tidal-chart-server-ca")
    return TLSFiles(
        ca=ca.pair,
        server=ca.issue("127.0.0.1", server=True, dns_names=("localhost",), ips=("127.0.0.1",)),
        client=ca.issue("tidal-test-client", client=True),
    )


class ChartServer:
    """Serves `root` until stopped; `url` is the repository URL."""

    def __init__(
        self,
        root: Path,
        *,
        username: str = "",
        password: str = "",
        tls: TLSFiles | None = None,
        require_client_cert: bool = False,
    ) -> None:
        self.root = root
        self.username = username
        self.password = password
        self.tls = tls
        self.require_client_cert = require_client_cert
        self.requests: list[tuple[str, str]] = []  # (path, Authorization header or "")
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._context = self._ssl_context() if tls else None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def _ssl_context(self) -> ssl.SSLContext:
        assert self.tls is not None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.TemporaryDirectory() as tmp:
            cert = Path(tmp, "server.crt")
            cert.write_bytes(self.tls.server.cert_pem)
            key = write_private(Path(tmp, "server.key"), self.tls.server.key_pem)
            ctx.load_cert_chain(cert, key)
        if self.require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cadata=self.tls.ca.cert_pem.decode())
        return ctx

    def _handler(self) -> type[SimpleHTTPRequestHandler]:
        server = self
        expected = ""
        if self.username:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            expected = f"Basic {token}"

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(server.root), **kwargs)

            def do_GET(self) -> None:
                auth = self.headers.get("Authorization", "")
                server.requests.append((self.path, auth))
                if expected and auth != expected:
                    self.send_response(401, "Unauthorized")
                    self.send_header("WWW-Authenticate", 'Basic realm="charts"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                super().do_GET()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> ChartServer:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        if self._context is not None:
            server.socket = self._context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> ChartServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
