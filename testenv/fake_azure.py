"""A stand-in for the Microsoft Entra ID token endpoint, for tests of `spec.provider: azure`.

It answers `POST /{tenant}/oauth2/v2.0/token` as Entra ID does for a workload identity: the
client-credentials grant with a federated token as client assertion. A request is granted when

- the tenant is the fake's, `grant_type` is `client_credentials` and `client_id` is the fake's
  client (else 400 `unauthorized_client`, AADSTS700016, as Entra ID says of an unknown app);
- `client_assertion_type` is the JWT-bearer URN and `client_assertion` is exactly the
  federated token the test wrote to the token file (`federated_token`; else 401
  `invalid_client`, AADSTS700213 "no matching federated identity record");
- `scope` is the Azure DevOps scope (else 400 `invalid_scope`).

A granted request gets `{"token_type": "Bearer", "expires_in": <lifetime>, "access_token": ...}`;
the token is `access_token` when set (so a Git server can be told it beforehand) or a fresh
random one. `accepts(token)` tells whether a bearer token is live. Each request is recorded
with the PID of the process that sent it (testenv.socket_owner).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from testenv.loopback_server import LoopbackServer, TLSServer
from testenv.pki import CertificateAuthority
from testenv.socket_owner import peer_pid

SCOPE_DEVOPS = "499b84ac-1321-427f-aa17-267ca6975798/.default"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
UNKNOWN_CLIENT = (
    "AADSTS700016: Application with identifier '{client}' was not found in the directory "
    "'{tenant}'."
)
NO_FEDERATION = (
    "AADSTS700213: No matching federated identity record found for presented assertion subject."
)
_PATH = re.compile(r"/([^/]+)/oauth2/v2\.0/token")


@dataclass(frozen=True)
class TokenCall:
    """One request the fake answered."""

    time: float
    path: str
    status: int
    pid: int | None
    form: dict[str, str]  # the form fields, client_assertion included
    token: str | None  # the access token issued, if any


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-entra/1"
    disable_nagle_algorithm = True
    server: TLSServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # FakeEntraID.calls() is the log

    def do_GET(self) -> None:
        self._send(405, {"error": "invalid_request", "error_description": "POST only"})

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        path = self.path.split("?", 1)[0]
        ctype = self.headers.get("Content-Type", "")
        status, payload, token = owner._answer(path, ctype, form)
        pid = peer_pid(self.connection)
        owner._record(TokenCall(time.time(), path, status, pid, form, token))
        self._send(status, payload)

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FakeEntraID(LoopbackServer):
    """One tenant with one workload identity. Start/stop or use as a context manager;
    `authority_host` is what AZURE_AUTHORITY_HOST names, `environ(token_file)` the whole
    environment the Azure workload identity webhook would set."""

    handler = _Handler
    name = "fake-entra"

    def __init__(
        self,
        ca: CertificateAuthority,
        *,
        tenant_id: str = "72f988bf-86f1-41af-91ab-2d7cd011db47",
        client_id: str = "0b6f3a52-6a2c-4e5c-9d1f-4a1d7e2c9b10",
        federated_token: str | None = None,
        access_token: str | None = None,
        token_lifetime: float = 3599.0,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(ca, host)
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.federated_token = federated_token or "eyJfake." + secrets.token_urlsafe(48)
        self.access_token = access_token
        self.token_lifetime = token_lifetime
        self._lock = threading.Lock()
        self._calls: list[TokenCall] = []
        self._tokens: dict[str, float] = {}  # token -> expires_at

    # -- addressing ----------------------------------------------------------------------------

    @property
    def authority_host(self) -> str:
        return f"https://{self.host}:{self.port}/"

    @property
    def token_url(self) -> str:
        return f"{self.authority_host}{self.tenant_id}/oauth2/v2.0/token"

    def write_token_file(self, path: Path) -> Path:
        path.write_text(self.federated_token)
        return path

    def environ(self, token_file: Path) -> dict[str, str]:
        return {
            "AZURE_CLIENT_ID": self.client_id,
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
            "AZURE_AUTHORITY_HOST": self.authority_host,
        }

    # -- observation ---------------------------------------------------------------------------

    def calls(self, pid: int | None = None) -> list[TokenCall]:
        with self._lock:
            calls = list(self._calls)
        return calls if pid is None else [c for c in calls if c.pid == pid]

    def issued(self, pid: int | None = None) -> list[str]:
        return [c.token for c in self.calls(pid) if c.token]

    def accepts(self, token: str) -> bool:
        """Whether a bearer token is one this fake issued and has not expired."""
        with self._lock:
            expires_at = self._tokens.get(token)
        return expires_at is not None and time.time() < expires_at

    def _record(self, call: TokenCall) -> None:
        with self._lock:
            self._calls.append(call)

    # -- the endpoint --------------------------------------------------------------------------

    def _answer(
        self, path: str, content_type: str, form: dict[str, str]
    ) -> tuple[int, dict[str, Any], str | None]:
        def error(status: int, code: str, description: str) -> tuple[int, dict[str, Any], None]:
            return status, {"error": code, "error_description": description}, None

        match = _PATH.fullmatch(path)
        if match is None:
            return error(404, "invalid_request", "AADSTS90002: not a token endpoint")
        if match.group(1) != self.tenant_id:
            return error(
                400, "invalid_request", f"AADSTS90002: Tenant '{match.group(1)}' not found."
            )
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return error(400, "invalid_request", "AADSTS900144: the request body must be a form")
        if form.get("grant_type") != "client_credentials":
            return error(400, "unsupported_grant_type", "AADSTS70003: unsupported grant type")
        if form.get("client_id") != self.client_id:
            message = UNKNOWN_CLIENT.format(client=form.get("client_id"), tenant=self.tenant_id)
            return error(400, "unauthorized_client", message)
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return error(400, "invalid_request", "AADSTS50027: invalid client_assertion_type")
        if not secrets.compare_digest(
            form.get("client_assertion", "").encode(), self.federated_token.encode()
        ):
            return error(401, "invalid_client", NO_FEDERATION)
        if form.get("scope") != SCOPE_DEVOPS:
            return error(400, "invalid_scope", f"AADSTS70011: invalid scope {form.get('scope')}")
        token = self.access_token or "eyJ0eXAi." + secrets.token_urlsafe(40)
        with self._lock:
            self._tokens[token] = time.time() + self.token_lifetime
        payload = {
            "token_type": "Bearer",
            "expires_in": int(self.token_lifetime),
            "ext_expires_in": int(self.token_lifetime),
            "access_token": token,
        }
        return 200, payload, token
