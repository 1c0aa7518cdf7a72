"""A stand-in for the GitHub REST API of one GitHub App, for tests of `spec.provider: github`.

It serves what a Git client needs to turn an App into Git credentials, under `prefix`
(GitHub Enterprise Server's `/api/v3` by default), over HTTPS from a given CA or plain HTTP:

- `POST /app/installations/{id}/access_tokens`: an installation token (201), 404 for an
  installation it does not have;
- `GET /orgs/{org}/installation`, `GET /users/{user}/installation`: the owner's installation.

Every call must carry the App's JWT as GitHub checks it: RS256 signed with the App's key (the
fake generates it: `private_key_pem`), `iss` the App ID or Client ID, an `iat` not in the future
and an `exp` at most ten minutes on; anything else is a 401 with GitHub's message.

Tokens live `token_lifetime` seconds; `accepts(user, password)` tells whether Git credentials
are a live token (wire it to GitHTTPServer.password_check). Each request is recorded with the
PID of the process that sent it (testenv.socket_owner), so a test can count its own
controller's calls only.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from testenv.loopback_server import LoopbackServer, TLSServer
from testenv.pki import CertificateAuthority
from testenv.socket_owner import peer_pid

ACCESS_TOKEN_USERNAME = "x-access-token"  # noqa: S105 - the fixed Git user name of App tokens
BAD_JWT = "A JSON web token could not be decoded"
_TOKENS = re.compile(r"/app/installations/([^/]+)/access_tokens")
_OWNER = re.compile(r"/(orgs|users)/([^/]+)/installation")


@dataclass(frozen=True)
class ApiCall:
    """One request the fake answered."""

    time: float
    method: str
    path: str
    status: int
    pid: int | None  # the sending process, when it could be told
    issuer: str | None  # the JWT's iss, when the JWT was valid
    token: str | None  # the installation token issued, if any


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-github/1"
    disable_nagle_algorithm = True
    server: TLSServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # FakeGitHub.calls() is the log

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _serve(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        pid = peer_pid(self.connection)
        path = self.path.split("?", 1)[0]
        status, payload, issuer, token = owner._answer(
            self.command, path, self.headers.get("Authorization", "")
        )
        owner._record(ApiCall(time.time(), self.command, path, status, pid, issuer, token))
        self._send(status, payload)


class FakeGitHub(LoopbackServer):
    """One GitHub App with installations, as the API sees it. Start/stop or use as a context
    manager; `base_url` is what a Secret's `githubAppBaseURL` names."""

    handler = _Handler
    name = "fake-github"

    def __init__(
        self,
        *,
        app_id: int = 1234,
        client_id: str = "Iv23liTidalTestApp",
        installation_id: int = 5678,
        orgs: tuple[str, ...] = ("tidal-org",),
        users: tuple[str, ...] = (),
        ca: CertificateAuthority | None = None,
        prefix: str = "/api/v3",
        token_lifetime: float = 3600.0,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(ca, host)
        self.app_id = app_id
        self.client_id = client_id
        self.installation_id = installation_id
        self.owners = {name: "orgs" for name in orgs} | {name: "users" for name in users}
        self.prefix = prefix.rstrip("/")
        self.token_lifetime = token_lifetime
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        # GitHub hands out PKCS#1 ("BEGIN RSA PRIVATE KEY") files.
        self.private_key_pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        self._lock = threading.Lock()
        self._calls: list[ApiCall] = []
        self._tokens: dict[str, float] = {}  # token -> expires_at
        self.uses: Counter[str] = Counter()  # token -> Git requests it authenticated
        self.jwts: list[str] = []  # every JWT presented, valid or not

    # -- addressing ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        scheme = "https" if self.ca is not None else "http"
        return f"{scheme}://{self.host}:{self.port}{self.prefix}"

    def secret_data(self, **overrides: str | bytes) -> dict[str, str | bytes]:
        """The data of a Secret for this App, by installation ID, with `overrides` on top."""
        data: dict[str, str | bytes] = {
            "githubAppID": str(self.app_id),
            "githubAppInstallationID": str(self.installation_id),
            "githubAppPrivateKey": self.private_key_pem,
            "githubAppBaseURL": self.base_url,
        }
        if self.ca is not None:
            data["ca.crt"] = self.ca.pair.cert_pem
        data.update(overrides)
        return data

    # -- observation ---------------------------------------------------------------------------

    def calls(self, pid: int | None = None) -> list[ApiCall]:
        """The request log, optionally only the requests sent by process `pid`."""
        with self._lock:
            calls = list(self._calls)
        return calls if pid is None else [c for c in calls if c.pid == pid]

    def issued(self, pid: int | None = None) -> list[str]:
        """The installation tokens issued (to `pid`), oldest first."""
        return [c.token for c in self.calls(pid) if c.token]

    def accepts(self, user: str, password: str) -> bool:
        """Whether Git credentials are a token this fake issued and GitHub would still take."""
        with self._lock:
            expires_at = self._tokens.get(password)
            ok = user == ACCESS_TOKEN_USERNAME and expires_at is not None
            ok = ok and time.time() < (expires_at or 0)
            if ok:
                self.uses[password] += 1
        return ok

    def _record(self, call: ApiCall) -> None:
        with self._lock:
            self._calls.append(call)

    # -- the API -------------------------------------------------------------------------------

    def _check_jwt(self, authorization: str) -> tuple[str | None, str]:
        """(issuer, "") for a JWT GitHub would take, else (None, GitHub's 401 message)."""
        scheme, _, jwt = authorization.partition(" ")
        if scheme.lower() != "bearer" or not jwt:
            return None, "A JSON web token could not be decoded"
        with self._lock:
            self.jwts.append(jwt.strip())
        try:
            header_b64, claims_b64, signature_b64 = jwt.strip().split(".")
            header = json.loads(_b64url_decode(header_b64))
            claims = json.loads(_b64url_decode(claims_b64))
            signature = _b64url_decode(signature_b64)
        except (ValueError, binascii.Error):
            return None, BAD_JWT
        if not isinstance(header, dict) or header.get("alg") != "RS256":
            return None, BAD_JWT
        try:
            self._key.public_key().verify(
                signature,
                f"{header_b64}.{claims_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return None, BAD_JWT
        if not isinstance(claims, dict):
            return None, BAD_JWT
        iat, exp, iss = claims.get("iat"), claims.get("exp"), claims.get("iss")
        now = time.time()
        if not isinstance(iat, int) or iat > now + 1:
            return None, (
                "'Issued at' claim ('iat') must be an Integer representing the time that the "
                "assertion was issued."
            )
        if not isinstance(exp, int) or exp <= now:
            return None, (
                "'Expiration time' claim ('exp') must be a numeric value representing the future "
                "time at which the assertion expires."
            )
        if exp - iat > 600:
            return None, "'Expiration time' claim ('exp') is too far in the future."
        if iss not in (str(self.app_id), self.client_id):
            return None, "Integration not found"
        return str(iss), ""

    def _answer(
        self, method: str, path: str, authorization: str
    ) -> tuple[int, dict[str, Any], str | None, str | None]:
        not_found: dict[str, Any] = {
            "message": "Not Found",
            "documentation_url": "https://docs.github.com/rest",
            "status": "404",
        }
        if not path.startswith(self.prefix + "/"):
            return 404, not_found, None, None
        rest = path[len(self.prefix) :]
        issuer, problem = self._check_jwt(authorization)
        if issuer is None:
            denied = {"message": problem, "documentation_url": "https://docs.github.com/rest"}
            return 401, denied, None, None
        tokens = _TOKENS.fullmatch(rest)
        if tokens is not None and method == "POST":
            if tokens.group(1) != str(self.installation_id):
                return 404, not_found, issuer, None
            token = "ghs_" + secrets.token_urlsafe(27)
            expires_at = int(time.time() + self.token_lifetime)
            with self._lock:
                self._tokens[token] = expires_at
            body: dict[str, Any] = {
                "token": token,
                "expires_at": _iso(expires_at),
                "permissions": {"contents": "read", "metadata": "read"},
                "repository_selection": "all",
            }
            return 201, body, issuer, token
        owner = _OWNER.fullmatch(rest)
        if owner is not None and method == "GET":
            kind, login = owner.groups()
            if self.owners.get(login) != kind:
                return 404, not_found, issuer, None
            found = {"id": self.installation_id, "account": {"login": login}, "app_id": self.app_id}
            return 200, found, issuer, None
        return 404, not_found, issuer, None
