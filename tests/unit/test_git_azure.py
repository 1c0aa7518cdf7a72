"""Azure DevOps credentials (spec.provider: azure): the workload identity read from the
environment the Azure webhook sets, the client-assertion token request against a local fake
of the Entra ID token endpoint (over TLS, through a CONNECT proxy, failing as Entra ID fails),
the shared token cache, and that no token is ever printed."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testenv.fake_azure import NO_FEDERATION, FakeEntraID
from testenv.pki import CertificateAuthority
from testenv.proxy import ConnectProxy
from tidal.source.git.auth import AuthOptions, ProxyOptions
from tidal.source.git.azure import (
    DEFAULT_AUTHORITY_HOST,
    SCOPE_DEVOPS,
    AccessToken,
    AzureAuthError,
    AzureTokens,
    WorkloadIdentity,
    request_token,
)
from tidal.source.git.errors import GitTimeoutError
from tidal.source.git.token_cache import TokenCache

GIT_URL = "https://dev.azure.com/org/project/_git/repo"


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority("fake entra CA")


@pytest.fixture(scope="module")
def entra(ca: CertificateAuthority) -> Iterator[FakeEntraID]:
    with FakeEntraID(ca) as fake:
        yield fake


@pytest.fixture
def environ(entra: FakeEntraID, tmp_path: Path) -> dict[str, str]:
    return entra.environ(entra.write_token_file(tmp_path / "azure-identity-token"))


def _tokens(entra: FakeEntraID, environ: dict[str, str]) -> AzureTokens:
    return AzureTokens(environ=environ, roots=entra.ca.pair.cert_pem)


def _write(path: str | Path, text: str) -> None:
    Path(path).write_text(text)


def _transport(*, proxy: ProxyOptions | None = None, timeout: float = 60.0) -> AuthOptions:
    return AuthOptions.from_secret(GIT_URL, {}, proxy=proxy, timeout=timeout)


# -- the environment -------------------------------------------------------------------------------


def test_the_identity_comes_from_the_webhooks_environment(environ: dict[str, str]) -> None:
    identity = WorkloadIdentity.from_environ(environ)
    assert identity.client_id == environ["AZURE_CLIENT_ID"]
    assert identity.token_url == (
        f"{environ['AZURE_AUTHORITY_HOST']}{environ['AZURE_TENANT_ID']}/oauth2/v2.0/token"
    )
    del environ["AZURE_AUTHORITY_HOST"]
    identity = WorkloadIdentity.from_environ(environ)
    assert identity.authority_host == DEFAULT_AUTHORITY_HOST
    assert identity.token_url.startswith("https://login.microsoftonline.com/")
    # One cache entry per tenant, client and scope (and authority).
    other = WorkloadIdentity.from_environ({**environ, "AZURE_CLIENT_ID": "another"})
    assert identity.cache_key(SCOPE_DEVOPS) == identity.cache_key(SCOPE_DEVOPS)
    assert identity.cache_key(SCOPE_DEVOPS) != other.cache_key(SCOPE_DEVOPS)
    assert identity.cache_key(SCOPE_DEVOPS) != identity.cache_key("https://x/.default")


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("AZURE_CLIENT_ID", "no client ID specified. Check pod configuration or set ClientID"),
        ("AZURE_FEDERATED_TOKEN_FILE", "no token file specified. Check pod configuration"),
        ("AZURE_TENANT_ID", "no tenant ID specified. Check pod configuration or set TenantID"),
    ],
)
def test_a_missing_variable_is_named_in_azidentitys_words(
    environ: dict[str, str], missing: str, message: str
) -> None:
    for value in (None, ""):
        env = dict(environ)
        if value is None:
            del env[missing]
        else:
            env[missing] = value
        with pytest.raises(AzureAuthError) as caught:
            WorkloadIdentity.from_environ(env)
        text = str(caught.value)
        assert text.startswith(
            "DefaultAzureCredential: failed to acquire a token.\nAttempted credentials:\n\t"
            "WorkloadIdentityCredential: "
        )
        assert message in text
        assert caught.value.reason == "AuthenticationFailed"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("AZURE_TENANT_ID", "../evil", "invalid tenantID"),
        ("AZURE_AUTHORITY_HOST", "http://login.example.com/", "must be an https:// URL"),
        ("AZURE_AUTHORITY_HOST", "https://", "must be an https:// URL"),
    ],
)
def test_a_bad_tenant_or_authority_is_refused(
    environ: dict[str, str], name: str, value: str, message: str
) -> None:
    with pytest.raises(AzureAuthError, match=message):
        WorkloadIdentity.from_environ({**environ, name: value})


def test_nothing_secret_is_printed() -> None:
    token = AccessToken("eyJ-a-real-looking-token", 123.0)
    assert "eyJ" not in repr(token) and "eyJ" not in str(token)


# -- the token request -----------------------------------------------------------------------------


async def test_a_token_for_the_devops_scope_with_the_federated_token(
    entra: FakeEntraID, environ: dict[str, str]
) -> None:
    identity = WorkloadIdentity.from_environ(environ)
    before = time.time()
    token = await request_token(identity, SCOPE_DEVOPS, _transport(), entra.ca.pair.cert_pem)
    assert entra.accepts(token.token)
    assert before + entra.token_lifetime - 5 < token.expires_at < time.time() + 3600
    call = entra.calls()[-1]
    assert call.status == 200 and call.token == token.token
    assert call.path == f"/{entra.tenant_id}/oauth2/v2.0/token"
    assert call.form == {
        "client_id": entra.client_id,
        "client_assertion": entra.federated_token,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "grant_type": "client_credentials",
        "scope": "499b84ac-1321-427f-aa17-267ca6975798/.default",
    }


async def test_the_token_file_is_read_again_for_every_request(
    entra: FakeEntraID, environ: dict[str, str]
) -> None:
    # The kubelet rotates the projected token: a new request presents the file as it is now.
    identity = WorkloadIdentity.from_environ(environ)
    _write(environ["AZURE_FEDERATED_TOKEN_FILE"], "rotated-but-not-federated")
    with pytest.raises(AzureAuthError) as caught:
        await request_token(identity, SCOPE_DEVOPS, _transport(), entra.ca.pair.cert_pem)
    assert entra.calls()[-1].form["client_assertion"] == "rotated-but-not-federated"
    assert str(caught.value) == (
        f"WorkloadIdentityCredential authentication failed. POST {entra.token_url}: "
        f"RESPONSE 401: invalid_client: {NO_FEDERATION}"
    )
    assert "rotated-but-not-federated" not in str(caught.value)


async def test_entra_id_refusals_and_a_missing_file_fail_clearly(
    entra: FakeEntraID, environ: dict[str, str]
) -> None:
    roots = entra.ca.pair.cert_pem
    unknown = WorkloadIdentity.from_environ({**environ, "AZURE_CLIENT_ID": "nobody"})
    with pytest.raises(AzureAuthError, match=r"RESPONSE 400: unauthorized_client: AADSTS700016"):
        await request_token(unknown, SCOPE_DEVOPS, _transport(), roots)
    tenant = WorkloadIdentity.from_environ({**environ, "AZURE_TENANT_ID": "other-tenant"})
    with pytest.raises(AzureAuthError, match=r"RESPONSE 400: invalid_request: AADSTS90002"):
        await request_token(tenant, SCOPE_DEVOPS, _transport(), roots)
    gone = WorkloadIdentity.from_environ({**environ, "AZURE_FEDERATED_TOKEN_FILE": "/nonexist"})
    with pytest.raises(AzureAuthError) as caught:
        await request_token(gone, SCOPE_DEVOPS, _transport(), roots)
    assert str(caught.value) == (
        "WorkloadIdentityCredential: failed to read the federated token file '/nonexist': "
        "No such file or directory"
    )


async def test_the_endpoint_is_trusted_through_the_system_roots_only(
    entra: FakeEntraID, environ: dict[str, str]
) -> None:
    # The Secret's ca.crt is for Git: Flux does not hand it to the token request.
    identity = WorkloadIdentity.from_environ(environ)
    transport = AuthOptions.from_secret(GIT_URL, {"ca.crt": entra.ca.pair.cert_pem})
    with pytest.raises(AzureAuthError, match=r"CERTIFICATE_VERIFY_FAILED"):
        await request_token(identity, SCOPE_DEVOPS, transport)


async def test_the_endpoint_is_reached_through_the_proxy_secret(
    entra: FakeEntraID, environ: dict[str, str]
) -> None:
    identity = WorkloadIdentity.from_environ(environ)
    with ConnectProxy(username="proxy-user", password="proxy-pass-1234") as proxy:
        good = _transport(proxy=ProxyOptions(proxy.url, "proxy-user", "proxy-pass-1234"))
        token = await request_token(identity, SCOPE_DEVOPS, good, entra.ca.pair.cert_pem)
        assert entra.accepts(token.token)
        [tunnel] = proxy.requests()
        assert (tunnel.target, tunnel.status) == (f"127.0.0.1:{entra.port}", 200)
        bad = _transport(proxy=ProxyOptions(proxy.url, "proxy-user", "wrong-pass-1234"))
        with pytest.raises(AzureAuthError) as caught:
            await request_token(identity, SCOPE_DEVOPS, bad, entra.ca.pair.cert_pem)
        assert "407 Proxy Authentication Required" in str(caught.value)
        assert "wrong-pass-1234" not in str(caught.value)


async def test_a_silent_endpoint_times_out(environ: dict[str, str]) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])  # and never answer
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        host = f"https://127.0.0.1:{listener.getsockname()[1]}/"
        identity = WorkloadIdentity.from_environ({**environ, "AZURE_AUTHORITY_HOST": host})
        started = time.monotonic()
        with pytest.raises(GitTimeoutError, match=r"timed out after 1s"):
            await request_token(identity, SCOPE_DEVOPS, _transport(timeout=1))
        assert time.monotonic() - started < 5
    finally:
        stop.set()
        thread.join(5)
        listener.close()
        for conn in held:
            conn.close()


# -- the cache -------------------------------------------------------------------------------------


async def test_tokens_are_shared_until_they_near_expiry(
    entra: FakeEntraID, environ: dict[str, str]
) -> None:
    tokens = _tokens(entra, environ)
    before = len(entra.issued())
    first, second = await asyncio.gather(
        tokens.bearer_token(_transport()), tokens.bearer_token(_transport())
    )
    assert first == second and entra.accepts(first)
    assert len(entra.issued()) == before + 1, "concurrent misses share one request"
    assert await tokens.bearer_token(_transport()) == first
    assert len(entra.issued()) == before + 1

    # A token living 2 s is kept 80% of that, then renewed.
    entra.token_lifetime = 2.0
    try:
        short = _tokens(entra, environ)
        one = await short.bearer_token(_transport())
        assert await short.bearer_token(_transport()) == one
        await asyncio.sleep(1.7)
        two = await short.bearer_token(_transport())
        assert two != one and entra.accepts(two)
    finally:
        entra.token_lifetime = 3599.0


async def test_a_failed_request_is_not_cached(entra: FakeEntraID, environ: dict[str, str]) -> None:
    cache: TokenCache[AccessToken] = TokenCache()
    tokens = AzureTokens(cache, environ=environ, roots=entra.ca.pair.cert_pem)
    token_file = Path(environ["AZURE_FEDERATED_TOKEN_FILE"])
    _write(token_file, "not-federated")
    with pytest.raises(AzureAuthError):
        await tokens.bearer_token(_transport())
    assert len(cache) == 0
    entra.write_token_file(token_file)
    assert entra.accepts(await tokens.bearer_token(_transport()))
    assert len(cache) == 1


async def test_the_environment_is_read_at_each_call(
    entra: FakeEntraID, environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = AzureTokens(roots=entra.ca.pair.cert_pem)  # the process environment
    for name in environ:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(AzureAuthError, match="no client ID specified"):
        await tokens.bearer_token(_transport())
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert entra.accepts(await tokens.bearer_token(_transport()))
