"""GitHub App credentials for `spec.provider: github`, as Flux's source-controller gets them
(fluxcd/pkg runtime/secrets `GitHubAppDataFromSecret` and auth/githubapp, source-controller
v1.7 and later: the installation owner and the client ID keys included).

The secretRef Secret holds:

- `githubAppID` (a number) or `githubAppClientID`, exactly one: the issuer of the App's JWT;
- `githubAppInstallationID` or `githubAppInstallationOwner` (an organization or user login),
  exactly one;
- `githubAppPrivateKey`: the App's RSA key in PEM (PKCS#1 or PKCS#8);
- `githubAppBaseURL`, optional: a GitHub Enterprise Server API (default https://api.github.com);
- `ca.crt`, `tls.crt`/`tls.key`, optional: trust and client certificate for the API, as for Git.

A JWT signed with the key (RS256, issued 30 s in the past against clock drift, valid for two
minutes) buys an installation token at `POST {api}/app/installations/{id}/access_tokens`; an
owner is first resolved to its installation (`GET {api}/orgs/{owner}/installation`, then
`{api}/users/{owner}/installation`). Git then authenticates as `x-access-token:<token>`.

Messages are Flux's (go-github's error format for API answers). None holds the key, the JWT
or the token: the dataclasses print no secret, and API answers are scrubbed of all three.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import urllib3
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tidal import __version__
from tidal.source.git.auth import AuthOptions
from tidal.source.git.errors import (
    AUTHENTICATION_FAILED,
    GitError,
    InvalidURLError,
    redact,
    redact_url,
)
from tidal.source.git.http import pool_manager, transport_error
from tidal.source.git.operation import Operation, run_in_thread
from tidal.source.git.token_cache import BearerToken, TokenCache
from tidal.source.git.url import parse_url

KEY_APP_ID = "githubAppID"
KEY_APP_CLIENT_ID = "githubAppClientID"
KEY_APP_INSTALLATION_OWNER = "githubAppInstallationOwner"
KEY_APP_INSTALLATION_ID = "githubAppInstallationID"
KEY_APP_PRIVATE_KEY = "githubAppPrivateKey"
KEY_APP_BASE_URL = "githubAppBaseURL"
_KEYS = (
    KEY_APP_ID,
    KEY_APP_CLIENT_ID,
    KEY_APP_INSTALLATION_OWNER,
    KEY_APP_INSTALLATION_ID,
    KEY_APP_PRIVATE_KEY,
    KEY_APP_BASE_URL,
)

ACCESS_TOKEN_USERNAME = "x-access-token"  # noqa: S105 - a fixed user name, not a secret
DEFAULT_API_URL = "https://api.github.com/"
INVALID_PROVIDER_CONFIGURATION = "InvalidProviderConfiguration"
MISSING_APP_DATA = "secretRef with github app data must be specified when provider is set to github"

JWT_BACKDATE = 30  # seconds; GitHub rejects an iat in its future
JWT_LIFETIME = 120  # seconds after iat; GitHub allows at most ten minutes
_API_VERSION = "2022-11-28"
_MAX_BODY = 1 << 20
_INT64 = re.compile(r"[+-]?[0-9]+")
_PEM_BLOCK = re.compile(rb"-----BEGIN ([^\r\n-]*)-----\r?\n(.*?)-----END \1-----", re.S)


class GitHubAppConfigError(GitError):
    """The Secret does not describe one GitHub App installation (Flux returns these from
    secrets.AuthMethodsFromSecret, before any credential is built)."""

    reason = INVALID_PROVIDER_CONFIGURATION


class GitHubAppError(GitError):
    """The App's credentials could not be made or exchanged for a token (Flux:
    AuthenticationFailed, "failed to configure authentication options: ...")."""

    reason = AUTHENTICATION_FAILED


# -- the Secret ------------------------------------------------------------------------------------


def has_app_data(data: Mapping[str, bytes]) -> bool:
    """Whether a Secret names a GitHub App: what makes Flux refuse it without the provider."""
    return bool(data.get(KEY_APP_ID)) or bool(data.get(KEY_APP_CLIENT_ID))


def app_data_from_secret(data: Mapping[str, bytes], secret: str) -> dict[str, bytes] | None:
    """The Secret's GitHub App keys, or None when it does not hold a complete App.

    As Flux, presence counts, not content: an empty value is judged later (by `App.from_data`).
    A missing identity or private key is "no App" (Flux ignores key-not-found errors here);
    two identities, or not exactly one installation key, is an error naming the Secret
    (`secret` is "namespace/name").
    """
    has = {key: key in data for key in _KEYS}
    if not (has[KEY_APP_ID] or has[KEY_APP_CLIENT_ID]):
        return None
    if has[KEY_APP_ID] and has[KEY_APP_CLIENT_ID]:
        raise GitHubAppConfigError(
            f"secret '{secret}' must contain exactly one of '{KEY_APP_ID}' or '{KEY_APP_CLIENT_ID}'"
        )
    if not has[KEY_APP_PRIVATE_KEY]:
        return None
    if has[KEY_APP_INSTALLATION_OWNER] == has[KEY_APP_INSTALLATION_ID]:
        raise GitHubAppConfigError(
            f"secret '{secret}' must contain exactly one of '{KEY_APP_INSTALLATION_OWNER}' or "
            f"'{KEY_APP_INSTALLATION_ID}'"
        )
    return {key: data[key] for key in _KEYS if has[key]}


def _parse_int(value: bytes | None) -> int:
    """Go's strconv.ParseInt(s, 10, 64) with its error ignored, as Flux reads the IDs: anything
    that is not a decimal int64 counts as unset (0)."""
    text = (value or b"").decode("utf-8", "replace")
    if not _INT64.fullmatch(text):
        return 0
    number = int(text)
    return number if -(1 << 63) <= number < (1 << 63) else 0


def _first_pem_block(data: bytes) -> bytes | None:
    """The DER bytes of the first well-formed PEM block, as Go's pem.Decode finds it."""
    for match in _PEM_BLOCK.finditer(data):
        body = match.group(2).replace(b"\r\n", b"\n")
        first_line = body.split(b"\n", 1)[0]
        if b":" in first_line:
            # RFC 1421 headers ("Proc-Type: ...") end at the first empty line.
            _, sep, rest = body.partition(b"\n\n")
            if not sep:
                continue
            body = rest
        try:
            return base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


def _rsa_key(pem: bytes) -> rsa.RSAPrivateKey:
    # golang-jwt's ParseRSAPrivateKeyFromPEM, with its messages.
    der = _first_pem_block(pem)
    if der is None:
        raise GitHubAppError(
            "could not parse private key: invalid key: Key must be a PEM encoded PKCS1 or PKCS8 key"
        )
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise GitHubAppError(
            "could not parse private key: x509: failed to parse private key"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise GitHubAppError("could not parse private key: key is not a valid RSA private key")
    return key


def _api_url(raw: str) -> str:
    url = raw or DEFAULT_API_URL
    if not url.endswith("/"):
        url += "/"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - validates the port
        parse_url(url.rstrip("/") or url)
    except (ValueError, InvalidURLError) as e:
        raise GitHubAppError(f"invalid API URL: {redact_url(str(e))}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise GitHubAppError(f"invalid API URL: {redact_url(url)!r}: want http:// or https://")
    return url


@dataclass(frozen=True, slots=True, repr=False)
class App:
    """One App installation, checked and ready to sign JWTs (Flux's githubapp.New)."""

    app_id: int
    client_id: str
    installation_owner: str
    installation_id: int
    private_key: bytes
    key: rsa.RSAPrivateKey
    api_url: str  # with a trailing "/"

    @classmethod
    def from_data(cls, data: Mapping[str, bytes]) -> App:
        app_id = _parse_int(data.get(KEY_APP_ID))
        client_id = data.get(KEY_APP_CLIENT_ID, b"").decode("utf-8", "replace")
        owner = data.get(KEY_APP_INSTALLATION_OWNER, b"").decode("utf-8", "replace")
        installation_id = _parse_int(data.get(KEY_APP_INSTALLATION_ID))
        private_key = data.get(KEY_APP_PRIVATE_KEY, b"")
        if app_id == 0 and not client_id:
            raise GitHubAppError(
                "app ID or client ID must be provided to use github app authentication"
            )
        if not owner and installation_id == 0:
            raise GitHubAppError(
                "app installation owner or ID must be provided to use github app authentication"
            )
        if owner and installation_id != 0:
            raise GitHubAppError(
                "only one of app installation owner or ID must be provided to use github app "
                "authentication"
            )
        if not private_key:
            raise GitHubAppError("private key must be provided to use github app authentication")
        key = _rsa_key(private_key)
        base = data.get(KEY_APP_BASE_URL, b"").decode("utf-8", "replace")
        return cls(app_id, client_id, owner, installation_id, private_key, key, _api_url(base))

    @property
    def issuer(self) -> str:
        return self.client_id or str(self.app_id)

    @property
    def cache_key(self) -> str:
        """What identifies the App's tokens: every field that changes which token GitHub
        gives, hashed so the key holds no key material in clear."""
        parts = [
            f"{KEY_APP_ID}={self.app_id}",
            f"{KEY_APP_CLIENT_ID}={self.client_id}",
            f"{KEY_APP_INSTALLATION_OWNER}={self.installation_owner}",
            f"{KEY_APP_INSTALLATION_ID}={self.installation_id}",
            f"{KEY_APP_BASE_URL}={self.api_url}",
            f"{KEY_APP_PRIVATE_KEY}={self.private_key.decode('utf-8', 'surrogateescape')}",
        ]
        raw = ",".join(parts).encode("utf-8", "surrogateescape")
        return hashlib.sha256(raw).hexdigest()

    def jwt(self, now: float | None = None) -> str:
        """The App's JWT, as GitHub requires it: RS256, whole-second iat and exp, iss."""
        issued = int(time.time() if now is None else now) - JWT_BACKDATE
        claims = {"iss": self.issuer, "exp": issued + JWT_LIFETIME, "iat": issued}
        signing_input = (
            _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def __repr__(self) -> str:
        who = f"client_id={self.client_id!r}" if self.client_id else f"app_id={self.app_id}"
        where = (
            f"installation_owner={self.installation_owner!r}"
            if self.installation_owner
            else f"installation_id={self.installation_id}"
        )
        return f"App({who}, {where}, api_url={redact_url(self.api_url)!r}, private_key=<set>)"

    __str__ = __repr__


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# -- the API ---------------------------------------------------------------------------------------


class AppToken(BearerToken):
    """What the cache keeps for this provider."""

    __slots__ = ()


class _Api:
    """The few GitHub REST calls the token needs, over the GitRepository's TLS and proxy
    settings (Flux passes the Secret's TLS config and the proxy Secret to its client)."""

    def __init__(self, app: App, transport: AuthOptions, op: Operation) -> None:
        self.app = app
        self.op = op
        self.jwt = app.jwt()
        api = parse_url(app.api_url.rstrip("/"))
        self.pm = pool_manager(api, transport.transport_only(api.scheme))
        op.on_cancel(self.pm.clear)

    def close(self) -> None:
        self.pm.clear()

    def _scrub(self, message: str) -> str:
        return redact(message, [self.jwt, self.app.private_key])

    def call(self, method: str, path: str) -> dict[str, Any]:
        url = self.app.api_url + path
        self.op.check()
        headers = {
            "Accept": "application/vnd.github.v3+json",
            "Authorization": f"Bearer {self.jwt}",
            "User-Agent": f"tidal/{__version__}",
            "X-GitHub-Api-Version": _API_VERSION,
        }
        try:
            resp = self.pm.request(
                method,
                url,
                headers=headers,
                body=b"" if method == "POST" else None,
                timeout=urllib3.Timeout(total=self.op.wait_limit()),
                preload_content=False,
            )
            try:
                body = resp.read(_MAX_BODY)
            finally:
                resp.release_conn()
        except (urllib3.exceptions.HTTPError, OSError) as e:
            if self.op.expired():
                raise self.op.timeout_error() from None
            raise GitHubAppError(
                self._scrub(f'{method.title()} "{url}": {transport_error(e)}')
            ) from None
        return self._decode(method, url, resp.status, body)

    def _decode(self, method: str, url: str, status: int, body: bytes) -> dict[str, Any]:
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            payload = None
        if status == 202:
            raise GitHubAppError("job scheduled on GitHub side; try again later")
        if not 200 <= status < 300:
            # go-github's ErrorResponse: "<METHOD> <url>: <status> <message> <errors>".
            message, errors = "", "[]"
            if isinstance(payload, dict):
                message = str(payload.get("message") or "")
                errors = _go_errors(payload.get("errors"))
            raise GitHubAppError(self._scrub(f"{method} {url}: {status} {message} {errors}"))
        if not isinstance(payload, dict):
            raise GitHubAppError(self._scrub(f"{method} {url}: the answer is not a JSON object"))
        return payload


def _go_errors(errors: object) -> str:
    if not isinstance(errors, list):
        return "[]"
    shown = []
    for item in errors:
        if isinstance(item, dict):
            fields = " ".join(
                f"{name}:{item.get(key, '')}"
                for name, key in (
                    ("Resource", "resource"),
                    ("Field", "field"),
                    ("Code", "code"),
                    ("Message", "message"),
                )
            )
            shown.append("{" + fields + "}")
    return "[" + " ".join(shown) + "]"


def _installation_id(api: _Api) -> int:
    app = api.app
    if app.installation_id != 0:
        return app.installation_id
    owner = quote(app.installation_owner, safe="")
    failures: list[str] = []
    for kind, path in (
        ("organization", f"orgs/{owner}/installation"),
        ("user", f"users/{owner}/installation"),
    ):
        try:
            found = api.call("GET", path).get("id")
        except GitHubAppError as e:
            if api.op.expired():
                raise api.op.timeout_error() from None
            failures.append(f"failed to find {kind} installation: {e}")
            continue
        if isinstance(found, int) and not isinstance(found, bool):
            return found
        failures.append(f"failed to find {kind} installation: no installation id in the answer")
    raise GitHubAppError("\n".join(failures))


def _parse_time(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _token_sync(api: _Api) -> AppToken:
    try:
        path = f"app/installations/{_installation_id(api)}/access_tokens"
        answer = api.call("POST", path)
    finally:
        api.close()
    token, expires_at = answer.get("token"), _parse_time(answer.get("expires_at"))
    if not isinstance(token, str) or not token or expires_at is None:
        raise GitHubAppError(
            f"POST {api.app.api_url}{path}: the answer holds no token with an expiry"
        )
    return AppToken(token, expires_at)


async def installation_token(app: App, transport: AuthOptions) -> AppToken:
    """A fresh installation token for `app`, asked of the API within `transport.timeout`."""
    op = Operation(transport.timeout, "requesting a GitHub App installation token")
    api = _Api(app, transport, op)
    return await run_in_thread(op, lambda: _token_sync(api))


class AppTokens:
    """The controller's installation tokens, shared by every object using the same App."""

    def __init__(self, cache: TokenCache[AppToken] | None = None) -> None:
        self.cache: TokenCache[AppToken] = cache if cache is not None else TokenCache()

    async def token(self, app: App, transport: AuthOptions) -> AppToken:
        return await self.cache.get_or_fetch(
            app.cache_key, lambda: installation_token(app, transport)
        )

    async def credentials(self, app: App, transport: AuthOptions) -> tuple[str, str]:
        """(username, password) for Git over HTTPS, as Flux's githubapp.GetCredentials."""
        return ACCESS_TOKEN_USERNAME, (await self.token(app, transport)).token
