"""A real OCI registry for tests: the CNCF distribution registry, compiled from its pinned Go
module and cached beside the flux CLI, run on a free loopback port.

Each `Registry` is one process with its own storage directory, served over plain HTTP or over
HTTPS with a certificate from a testenv CA, optionally behind htpasswd basic auth (the registry
only accepts bcrypt entries; `bcrypt` is already installed as a paramiko dependency) or behind
the registry's token auth, with `TokenServer` (a loopback HTTPS service issuing the ES256 JWTs
the registry verifies against the CA) as the realm: the Bearer challenge flow public registries
use. Tests push with the real flux CLI (`flux push artifact`), so what tidal pulls is what Flux
makes.

`python -m testenv.registry` builds the binary (setup does it through `python -m testenv build`
when missing, and the `oci_registry_bin` fixture too).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from testenv import versions
from testenv.build import Wrapper, cache_root
from testenv.loopback_server import LoopbackServer
from testenv.pki import CertificateAuthority

MODULE = "github.com/distribution/distribution/v3"


def registry_dir() -> Path:
    return cache_root() / f"registry-{versions.DISTRIBUTION}"


def registry_path() -> Path:
    return registry_dir() / "registry"


def is_built() -> bool:
    return registry_path().is_file()


def wrapper() -> Wrapper:
    return Wrapper(
        name="registry",
        require={MODULE: versions.DISTRIBUTION},
        packages={"registry": f"{MODULE}/cmd/registry"},
        ldflags=[f"-X {MODULE}/version.version={versions.DISTRIBUTION}"],
    )


def build_registry(*, force: bool = False) -> Path:
    """The path of the pinned registry binary, compiling it first unless it is cached."""
    from testenv.flux_controllers import build_cached

    return build_cached(wrapper(), registry_path(), versions.DISTRIBUTION, force=force)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


AUTH_SERVICE = "tidal-testenv-registry"
AUTH_ISSUER = "tidal-testenv-token-server"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _TokenHandler(BaseHTTPRequestHandler):
    server: Any

    def do_GET(self) -> None:
        owner: TokenServer = self.server.owner
        query = parse_qs(urlsplit(self.path).query)
        user = owner.authenticate(self.headers.get("Authorization", ""))
        if user is None:
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}')
            return
        owner.requests.append((user, tuple(query.get("scope", []))))
        body = json.dumps({"token": owner.token(user, query.get("scope", []))}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class TokenServer(LoopbackServer):
    """The registry's token service: Basic credentials in, a JWT granting what was asked out
    (nothing for an anonymous caller, so the registry refuses it), signed by a key whose
    certificate (from `ca`) travels in the `x5c` header."""

    handler = _TokenHandler
    name = "registry-token"

    def __init__(self, ca: CertificateAuthority, users: dict[str, str]) -> None:
        super().__init__(ca)
        self.users = dict(users)
        self.requests: list[tuple[str, tuple[str, ...]]] = []
        pair = ca.issue("tidal-registry-token-signer", client=True)
        self._key = serialization.load_pem_private_key(pair.key_pem, None)
        cert = x509.load_pem_x509_certificate(pair.cert_pem)
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()

    @property
    def realm(self) -> str:
        # A host name, not 127.0.0.1: clients (go-containerregistry, tidal) refuse realms at
        # loopback or private IP literals other than the registry's own address.
        return f"https://localhost:{self.port}/token"

    def authenticate(self, header: str) -> str | None:
        """The user name ("" when anonymous), or None for wrong credentials."""
        if not header:
            return ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, password = base64.b64decode(value).decode().partition(":")
        return user if self.users.get(user) == password and password else None

    def token(self, user: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes if user else []:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {
            "iss": AUTH_ISSUER,
            "sub": user,
            "aud": AUTH_SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        header = {"typ": "JWT", "alg": "ES256", "x5c": [self._x5c]}
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        assert isinstance(self._key, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(
            self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        )
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


class Registry:
    """One registry process. `host` is what goes after oci:// (`127.0.0.1:<port>`)."""

    def __init__(
        self,
        *,
        ca: CertificateAuthority | None = None,
        users: dict[str, str] | None = None,
        binary: Path | None = None,
        bind: str = "127.0.0.1",
        token: bool = False,
    ) -> None:
        if token and (ca is None or not users):
            raise ValueError("token auth needs a CA (to sign and serve) and users")
        self.ca = ca
        self.token_server: TokenServer | None = None
        if token:
            assert ca is not None
            self.token_server = TokenServer(ca, dict(users or {}))
        self.users = dict(users or {})
        self.binary = binary
        self.bind = bind
        self.port = 0
        self.workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"{self.bind}:{self.port}"

    @property
    def scheme(self) -> str:
        return "https" if self.ca is not None else "http"

    def url(self, repository: str = "") -> str:
        """The oci:// address of a repository in this registry."""
        return f"oci://{self.host}/{repository}".rstrip("/")

    @property
    def ca_pem(self) -> bytes:
        assert self.ca is not None
        return self.ca.pair.cert_pem

    @property
    def log(self) -> str:
        if self.workdir is None:
            return ""
        path = self.workdir / "registry.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _config(self, workdir: Path) -> str:
        lines = [
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {workdir / 'data'}",
            "  delete:",
            "    enabled: true",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "http:",
            f"  addr: {self.host}",
            "  secret: tidal-testenv",
            "  draintimeout: 1s",
        ]
        if self.ca is not None:
            pair = self.ca.issue(
                "localhost", server=True, dns_names=("localhost",), ips=("127.0.0.1",)
            )
            cert, key = pair.write(workdir, "server")
            lines += ["  tls:", f"    certificate: {cert}", f"    key: {key}"]
        if self.token_server is not None:
            assert self.ca is not None
            bundle = workdir / "token-ca.pem"
            bundle.write_bytes(self.ca.pair.cert_pem)
            lines += [
                "auth:",
                "  token:",
                f"    realm: {self.token_server.realm}",
                f"    service: {AUTH_SERVICE}",
                f"    issuer: {AUTH_ISSUER}",
                f"    rootcertbundle: {bundle}",
            ]
        elif self.users:
            htpasswd = workdir / "htpasswd"
            htpasswd.write_text(
                "".join(
                    f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(4)).decode()}\n"
                    for user, pw in self.users.items()
                )
            )
            lines += ["auth:", "  htpasswd:", "    realm: tidal-registry", f"    path: {htpasswd}"]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 30) -> Self:
        if self._proc is not None:
            return self
        binary = self.binary or build_registry()
        if self.token_server is not None:
            self.token_server.start()
        self.workdir = Path(tempfile.mkdtemp(prefix="tidal-registry-"))
        self.port = _free_port(self.bind)
        config = self.workdir / "config.yml"
        config.write_text(self._config(self.workdir))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            # No OpenTelemetry exporter dialling a collector that is not there.
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_SDK_DISABLED": "true",
        }
        with (self.workdir / "registry.log").open("ab") as out:
            self._proc = subprocess.Popen(
                [str(binary), "serve", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        ctx: ssl.SSLContext | None = None
        if self.ca is not None:
            ctx = ssl.create_default_context(cadata=self.ca_pem.decode())
        deadline = time.monotonic() + timeout
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"registry exited with {self._proc.returncode}:\n{self.log}")
            try:
                with urllib.request.urlopen(  # noqa: S310 - our own loopback URL
                    f"{self.scheme}://{self.host}/v2/", timeout=2, context=ctx
                ):
                    return
            except urllib.error.HTTPError as e:
                if e.code == 401:  # up, and asking for credentials
                    return
            except (OSError, ssl.SSLError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"registry did not start within {timeout}s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.token_server is not None:
            self.token_server.stop()
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()


if __name__ == "__main__":
    path = build_registry(force="--force" in sys.argv)
    print(path)
