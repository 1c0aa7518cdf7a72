"""Azure DevOps credentials for `spec.provider: azure`, as Flux's source-controller gets them
(fluxcd/pkg auth/azure through auth/utils `GetGitCredentials`): a Microsoft Entra ID access
token for the Azure DevOps scope, obtained with the controller's workload identity and sent to
Git as `Authorization: Bearer <token>`.

The Azure workload identity webhook gives the controller's pod:

- `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`: the managed identity (or app registration) and tenant;
- `AZURE_FEDERATED_TOKEN_FILE`: a projected Kubernetes service account token, re-read for every
  token request since the kubelet rotates it;
- `AZURE_AUTHORITY_HOST`: the Entra ID endpoint (https://login.microsoftonline.com/ if unset).

The token is asked for with the client-credentials grant and the federated token as client
assertion at `{authority}/{tenant}/oauth2/v2.0/token`, scope
`499b84ac-1321-427f-aa17-267ca6975798/.default` (Azure DevOps), through the GitRepository's
proxy (Flux passes only the proxy, not the Secret's TLS, to the token request). The endpoint is
trusted through the system roots (`SSL_CERT_FILE` honoured, as Go does).

Flux's DefaultAzureCredential also tries environment (client secret/certificate) and managed
identity (IMDS) credentials; tidal does workload identity only. Messages keep azidentity's
wording for what tidal does. No message holds the federated token or the access token.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import urllib3

from tidal import __version__
from tidal.source.git.auth import AuthOptions
from tidal.source.git.errors import AUTHENTICATION_FAILED, GitError, InvalidURLError, redact
from tidal.source.git.http import pool_manager, transport_error
from tidal.source.git.operation import Operation, run_in_thread
from tidal.source.git.token_cache import BearerToken, TokenCache
from tidal.source.git.url import parse_url

ENV_CLIENT_ID = "AZURE_CLIENT_ID"
ENV_TENANT_ID = "AZURE_TENANT_ID"
ENV_FEDERATED_TOKEN_FILE = "AZURE_FEDERATED_TOKEN_FILE"  # noqa: S105 - a variable name
ENV_AUTHORITY_HOST = "AZURE_AUTHORITY_HOST"
DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com/"

# fluxcd/pkg auth/azure ScopeDevOps: the Azure DevOps resource, whatever the organization.
SCOPE_DEVOPS = "499b84ac-1321-427f-aa17-267ca6975798/.default"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GRANT_TYPE = "client_credentials"

CREDENTIAL = "WorkloadIdentityCredential"
CONTROLLER_TOKEN_FAILED = "failed to create provider access token for the controller"  # noqa: S105

# source-controller's message when spec.serviceAccountName asks for object-level workload
# identity; tidal has no such feature gate to enable.
FEATURE_GATE_DISABLED = "FeatureGateDisabled"
OBJECT_LEVEL_GATE = "ObjectLevelWorkloadIdentity"
SERVICE_ACCOUNT_UNSUPPORTED = (
    "to use spec.serviceAccountName for provider authentication please enable the "
    f"{OBJECT_LEVEL_GATE} feature gate in the controller (tidal does not support object-level "
    "workload identity yet: remove spec.serviceAccountName to use the controller's identity)"
)

_MAX_BODY = 1 << 20
_TENANT = re.compile(r"[A-Za-z0-9.-]+")
_MISSING = {
    ENV_CLIENT_ID: "no client ID specified. Check pod configuration or set ClientID in the options",
    ENV_FEDERATED_TOKEN_FILE: (
        "no token file specified. Check pod configuration or set TokenFilePath in the options"
    ),
    ENV_TENANT_ID: "no tenant ID specified. Check pod configuration or set TenantID in the options",
}


class AzureAuthError(GitError):
    """No Entra ID token could be had (Flux: AuthenticationFailed, "failed to configure
    authentication options: failed to create provider access token for the controller: ...")."""

    reason = AUTHENTICATION_FAILED


def _unavailable(message: str) -> AzureAuthError:
    # DefaultAzureCredential's summary of the credentials it could not even try.
    return AzureAuthError(
        "DefaultAzureCredential: failed to acquire a token.\nAttempted credentials:\n\t"
        f"{CREDENTIAL}: {message}"
    )


@dataclass(frozen=True, slots=True)
class WorkloadIdentity:
    """The controller's workload identity, from the environment the webhook sets."""

    client_id: str
    tenant_id: str
    token_file: str
    authority_host: str  # https://host/ with a trailing "/"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> WorkloadIdentity:
        env = os.environ if environ is None else environ
        # azidentity's order; a variable set to "" counts as missing.
        for name in (ENV_CLIENT_ID, ENV_FEDERATED_TOKEN_FILE, ENV_TENANT_ID):
            if not env.get(name, "").strip():
                raise _unavailable(_MISSING[name])
        tenant = env[ENV_TENANT_ID].strip()
        if not _TENANT.fullmatch(tenant):
            raise _unavailable(
                "invalid tenantID. You can locate your tenantID by following the instructions "
                "listed here: https://learn.microsoft.com/partner-center/find-ids-and-domain-names"
            )
        return cls(
            client_id=env[ENV_CLIENT_ID].strip(),
            tenant_id=tenant,
            token_file=env[ENV_FEDERATED_TOKEN_FILE].strip(),
            authority_host=_authority_host(env.get(ENV_AUTHORITY_HOST, "")),
        )

    @property
    def token_url(self) -> str:
        return f"{self.authority_host}{self.tenant_id}/oauth2/v2.0/token"

    def cache_key(self, scope: str) -> str:
        """One key per identity and scope: the tokens Entra ID gives are the same for all of
        them, whatever the repository."""
        raw = "\n".join(("azure", self.authority_host, self.tenant_id, self.client_id, scope))
        return hashlib.sha256(raw.encode()).hexdigest()

    def read_assertion(self) -> str:
        try:
            assertion = Path(self.token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise AzureAuthError(
                f"{CREDENTIAL}: failed to read the federated token file '{self.token_file}': "
                f"{reason}"
            ) from None
        if not assertion:
            raise AzureAuthError(
                f"{CREDENTIAL}: the federated token file '{self.token_file}' is empty"
            )
        return assertion


def _authority_host(raw: str) -> str:
    host = raw.strip() or DEFAULT_AUTHORITY_HOST
    if not host.endswith("/"):
        host += "/"
    try:
        parts = urlsplit(host)
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        parts = None
    # MSAL refuses an authority it would send the client assertion to in clear.
    if parts is None or parts.scheme != "https" or not parts.hostname:
        raise _unavailable(f"{ENV_AUTHORITY_HOST} '{raw.strip()}' must be an https:// URL")
    return host


class AccessToken(BearerToken):
    """What the cache keeps for this provider."""

    __slots__ = ()


def _failure(url: str, status: int, body: bytes) -> str:
    """azidentity's AuthenticationFailedError, on one line: the request, the status, and
    Entra ID's error code and the first line of its description (which names the AADSTS
    code)."""
    detail = ""
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        code = str(payload.get("error") or "")
        description = str(payload.get("error_description") or "").strip().splitlines()
        detail = ": ".join(p for p in (code, description[0] if description else "") if p)
    return f"{CREDENTIAL} authentication failed. POST {url}: RESPONSE {status}" + (
        f": {detail}" if detail else ""
    )


def _expires_at(payload: Mapping[str, object], now: float) -> float | None:
    # Entra ID sends expires_in (seconds, a number or a numeric string); older endpoints only
    # expires_on (Unix seconds).
    for key, base in (("expires_in", now), ("expires_on", 0.0)):
        value = payload.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            return base + float(value)
        if isinstance(value, str) and value.strip().isdigit():
            return base + float(value.strip())
    return None


def _request_sync(
    identity: WorkloadIdentity, scope: str, transport: AuthOptions, op: Operation, roots: bytes
) -> AccessToken:
    assertion = identity.read_assertion()
    url = identity.token_url
    try:
        target = parse_url(url)
    except InvalidURLError as e:
        raise _unavailable(f"invalid authority: {e}") from None
    # The proxy and the time limit of the GitRepository; no Git credential, no Secret TLS.
    options = AuthOptions(
        transport="https", ca=roots, proxy=transport.proxy, timeout=transport.timeout
    )
    pm = pool_manager(target, options)
    op.on_cancel(pm.clear)
    secrets = [assertion]
    form = {
        "client_id": identity.client_id,
        "client_assertion": assertion,
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "grant_type": GRANT_TYPE,
        "scope": scope,
    }
    op.check()
    sent = time.time()
    try:
        resp = pm.request(
            "POST",
            url,
            body=urlencode(form).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
                "User-Agent": f"tidal/{__version__}",
            },
            timeout=urllib3.Timeout(total=op.wait_limit()),
            preload_content=False,
            redirect=False,
        )
        try:
            body = resp.read(_MAX_BODY)
        finally:
            resp.release_conn()
    except (urllib3.exceptions.HTTPError, OSError) as e:
        if op.expired():
            raise op.timeout_error() from None
        message = f"{CREDENTIAL} authentication failed. POST {url}: {transport_error(e)}"
        raise AzureAuthError(redact(message, secrets)) from None
    finally:
        pm.clear()
    if resp.status != 200:
        raise AzureAuthError(redact(_failure(url, resp.status, body), secrets))
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    token = payload.get("access_token") if isinstance(payload, dict) else None
    expires_at = _expires_at(payload, sent) if isinstance(payload, dict) else None
    if not isinstance(token, str) or not token or expires_at is None:
        raise AzureAuthError(
            f"{CREDENTIAL} authentication failed. POST {url}: the answer holds no access token "
            "with an expiry"
        )
    return AccessToken(token, expires_at)


async def request_token(
    identity: WorkloadIdentity, scope: str, transport: AuthOptions, roots: bytes = b""
) -> AccessToken:
    """A fresh access token for `scope`, asked of Entra ID within `transport.timeout`;
    `roots` (PEM) are trusted besides the system's."""
    op = Operation(transport.timeout, "requesting an Azure access token")
    return await run_in_thread(op, lambda: _request_sync(identity, scope, transport, op, roots))


class AzureTokens:
    """The controller's Entra ID tokens, one per identity and scope, shared by every object
    (Flux's controller-level token cache)."""

    def __init__(
        self,
        cache: TokenCache[AccessToken] | None = None,
        environ: Mapping[str, str] | None = None,
        roots: bytes = b"",
    ) -> None:
        self.cache: TokenCache[AccessToken] = cache if cache is not None else TokenCache()
        self.environ = environ  # None: the process environment, read at each call
        # Extra trusted CAs for the token endpoint, for tests (the controller sets none and
        # relies on the system roots, SSL_CERT_FILE included).
        self.roots = roots

    async def token(self, transport: AuthOptions, scope: str = SCOPE_DEVOPS) -> AccessToken:
        identity = WorkloadIdentity.from_environ(self.environ)
        return await self.cache.get_or_fetch(
            identity.cache_key(scope), lambda: request_token(identity, scope, transport, self.roots)
        )

    async def bearer_token(self, transport: AuthOptions) -> str:
        """The bearer token for Git over HTTPS to Azure DevOps (Flux's GitCredentials)."""
        return (await self.token(transport)).token
