"""GitHub App credentials (spec.provider: github): the Secret's keys as Flux reads them, the App
JWT as GitHub checks it, the installation-token exchange against a local fake of the GitHub API
(over TLS, through a CONNECT proxy, failing as GitHub fails), and the token cache."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from testenv.fake_github import BAD_JWT, FakeGitHub
from testenv.pki import CertificateAuthority
from testenv.proxy import ConnectProxy
from tidal.source.git.auth import AuthOptions, ProxyOptions
from tidal.source.git.errors import GitTimeoutError
from tidal.source.git.github_app import (
    ACCESS_TOKEN_USERNAME,
    App,
    AppToken,
    AppTokens,
    GitHubAppConfigError,
    GitHubAppError,
    app_data_from_secret,
    has_app_data,
    installation_token,
)
from tidal.source.git.token_cache import TokenCache

GIT_URL = "https://git.example.com/org/repo.git"


def _rsa_pem(fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority("fake github CA")


@pytest.fixture(scope="module")
def github(ca: CertificateAuthority) -> Iterator[FakeGitHub]:
    with FakeGitHub(ca=ca, users=("octocat",)) as fake:
        yield fake


def _data(fake: FakeGitHub, **overrides: str | bytes) -> dict[str, bytes]:
    raw = fake.secret_data(**overrides)
    return {k: v.encode() if isinstance(v, str) else v for k, v in raw.items()}


def _app(data: dict[str, bytes]) -> App:
    found = app_data_from_secret(data, "ns/app")
    assert found is not None
    return App.from_data(found)


def _b64json(part: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def _claims(jwt: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, claims, _ = jwt.split(".")
    return _b64json(header), _b64json(claims)


# -- the Secret ------------------------------------------------------------------------------------

KEY = b"-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, None),
        ({"username": b"u", "password": b"p"}, None),
        ({"githubAppID": b"1", "githubAppInstallationID": b"2"}, None),  # no key: "no App"
        ({"githubAppPrivateKey": KEY, "githubAppInstallationID": b"2"}, None),  # no identity
        (
            {"githubAppID": b"1", "githubAppClientID": b"Iv1", "githubAppPrivateKey": KEY},
            "secret 'ns/app' must contain exactly one of 'githubAppID' or 'githubAppClientID'",
        ),
        (
            {"githubAppID": b"1", "githubAppPrivateKey": KEY},
            "secret 'ns/app' must contain exactly one of 'githubAppInstallationOwner' or "
            "'githubAppInstallationID'",
        ),
        (
            {
                "githubAppID": b"1",
                "githubAppPrivateKey": KEY,
                "githubAppInstallationID": b"2",
                "githubAppInstallationOwner": b"org",
            },
            "secret 'ns/app' must contain exactly one of 'githubAppInstallationOwner' or "
            "'githubAppInstallationID'",
        ),
    ],
)
def test_secret_keys_as_flux_reads_them(data: dict[str, bytes], expected: str | None) -> None:
    if expected is None:
        assert app_data_from_secret(data, "ns/app") is None
        return
    with pytest.raises(GitHubAppConfigError) as info:
        app_data_from_secret(data, "ns/app")
    assert str(info.value) == expected
    assert info.value.reason == "InvalidProviderConfiguration"


def test_complete_app_data_keeps_only_the_app_keys() -> None:
    data = {
        "githubAppClientID": b"Iv1",
        "githubAppInstallationOwner": b"org",
        "githubAppPrivateKey": KEY,
        "githubAppBaseURL": b"https://ghe.example.com/api/v3",
        "ca.crt": b"pem",
    }
    assert app_data_from_secret(data, "ns/app") == {k: v for k, v in data.items() if k != "ca.crt"}
    assert has_app_data(data)
    assert has_app_data({"githubAppID": b"7"})
    assert not has_app_data({"githubAppID": b"", "username": b"u"})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"githubAppID": b"abc"}, "app ID or client ID must be provided"),
        ({"githubAppID": b"0"}, "app ID or client ID must be provided"),
        ({"githubAppInstallationID": b"x1"}, "app installation owner or ID must be provided"),
        ({"githubAppPrivateKey": b""}, "private key must be provided"),
        (
            {"githubAppPrivateKey": b"not a pem at all"},
            "could not parse private key: invalid key: Key must be a PEM encoded PKCS1 or "
            "PKCS8 key",
        ),
        (
            {
                "githubAppPrivateKey": b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA "
                b"PRIVATE KEY-----\n"
            },
            "could not parse private key: x509: failed to parse private key",
        ),
    ],
)
def test_unusable_app_settings_fail_with_flux_messages(
    overrides: dict[str, bytes], message: str
) -> None:
    data = {
        "githubAppID": b"1",
        "githubAppInstallationID": b"2",
        "githubAppPrivateKey": _rsa_pem(),
        **overrides,
    }
    with pytest.raises(GitHubAppError) as info:
        _app(data)
    assert str(info.value).startswith(message)
    assert info.value.reason == "AuthenticationFailed"


def test_a_key_that_is_not_rsa_is_refused_and_pkcs1_and_pkcs8_are_taken() -> None:
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    base = {"githubAppID": b"1", "githubAppInstallationID": b"2"}
    with pytest.raises(GitHubAppError, match="key is not a valid RSA private key"):
        _app({**base, "githubAppPrivateKey": ec_pem})
    for fmt in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
        # Text before the block is skipped, as Go's pem.Decode skips it.
        app = _app({**base, "githubAppPrivateKey": b"comment\n" + _rsa_pem(fmt)})
        assert app.api_url == "https://api.github.com/"


def test_the_jwt_is_what_github_requires() -> None:
    pem = _rsa_pem()
    app = _app({"githubAppID": b"42", "githubAppInstallationID": b"7", "githubAppPrivateKey": pem})
    now = 1_800_000_000.7
    jwt = app.jwt(now)
    header, claims = _claims(jwt)
    assert header == {"alg": "RS256", "typ": "JWT"}
    assert claims == {"iss": "42", "iat": 1_800_000_000 - 30, "exp": 1_800_000_000 - 30 + 120}
    signing_input, _, signature = jwt.rpartition(".")
    public = serialization.load_pem_private_key(pem, None).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(
        base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)),
        signing_input.encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    by_client = _app(
        {
            "githubAppClientID": b"Iv23abc",
            "githubAppInstallationID": b"7",
            "githubAppPrivateKey": pem,
        }
    )
    assert _claims(by_client.jwt(now))[1]["iss"] == "Iv23abc"


def test_nothing_secret_is_printed() -> None:
    pem = _rsa_pem()
    app = _app({"githubAppID": b"42", "githubAppInstallationID": b"7", "githubAppPrivateKey": pem})
    line = pem.decode().splitlines()[1]
    assert line not in repr(app) and "private_key=<set>" in repr(app)
    assert "ghs_secret" not in repr(AppToken("ghs_secret", 1.0))
    assert (
        app.cache_key
        != _app(
            {"githubAppID": b"42", "githubAppInstallationID": b"8", "githubAppPrivateKey": pem}
        ).cache_key
    )
    assert line not in app.cache_key


def test_provider_credentials_replace_the_secrets() -> None:
    auth = AuthOptions.from_secret(GIT_URL, {"bearerToken": b"tok-123456", "ca.crt": b"ca"})
    replaced = auth.with_basic_auth(ACCESS_TOKEN_USERNAME, "ghs_token")
    assert (replaced.username, replaced.password, replaced.bearer_token) == (
        "x-access-token",
        "ghs_token",
        "",
    )
    assert replaced.ca == b"ca" and "ghs_token" in replaced.secrets()
    proxy = ProxyOptions("http://127.0.0.1:3128", "u", "p")
    auth = AuthOptions.from_secret(
        GIT_URL, {"username": b"u", "password": b"pw-123456"}, proxy=proxy, timeout=7
    )
    api = auth.transport_only("https")
    assert (api.username, api.password, api.proxy, api.timeout) == ("", "", proxy, 7)


# -- the API ---------------------------------------------------------------------------------------


async def test_an_installation_token_over_tls(github: FakeGitHub) -> None:
    data = _data(github)
    auth = AuthOptions.from_secret(GIT_URL, data)
    before = len(github.calls())
    token = await installation_token(_app(data), auth)
    call = github.calls()[before]
    assert (call.method, call.path, call.status) == (
        "POST",
        f"/api/v3/app/installations/{github.installation_id}/access_tokens",
        201,
    )
    assert call.token == token.token and call.issuer == str(github.app_id)
    assert github.accepts(ACCESS_TOKEN_USERNAME, token.token)
    assert token.expires_at == pytest.approx(time.time() + github.token_lifetime, abs=5)


async def test_an_owner_is_resolved_to_its_installation(github: FakeGitHub) -> None:
    auth = AuthOptions.from_secret(GIT_URL, _data(github))
    for owner, paths in (
        ("tidal-org", ["/api/v3/orgs/tidal-org/installation"]),
        ("octocat", ["/api/v3/orgs/octocat/installation", "/api/v3/users/octocat/installation"]),
    ):
        data = _data(github, githubAppInstallationOwner=owner)
        del data["githubAppInstallationID"]
        before = len(github.calls())
        token = await installation_token(_app(data), auth)
        calls = github.calls()[before:]
        assert [c.path for c in calls[:-1]] == paths
        assert calls[-1].token == token.token

    data = _data(github, githubAppInstallationOwner="nobody")
    del data["githubAppInstallationID"]
    with pytest.raises(GitHubAppError) as info:
        await installation_token(_app(data), auth)
    assert str(info.value) == (
        f"failed to find organization installation: GET {github.base_url}/orgs/nobody/"
        "installation: 404 Not Found []\n"
        f"failed to find user installation: GET {github.base_url}/users/nobody/installation: "
        "404 Not Found []"
    )


async def test_github_refusals_in_go_githubs_words(github: FakeGitHub) -> None:
    auth = AuthOptions.from_secret(GIT_URL, _data(github))
    wrong_key = _data(github, githubAppPrivateKey=_rsa_pem())
    with pytest.raises(GitHubAppError) as info:
        await installation_token(_app(wrong_key), auth)
    url = f"{github.base_url}/app/installations/{github.installation_id}/access_tokens"
    assert str(info.value) == f"POST {url}: 401 {BAD_JWT} []"
    # The refused JWT reached the fake, and no message repeats it.
    assert github.jwts[-1] not in str(info.value)

    with pytest.raises(GitHubAppError) as info:
        await installation_token(_app(_data(github, githubAppInstallationID="999")), auth)
    assert str(info.value) == (
        f"POST {github.base_url}/app/installations/999/access_tokens: 404 Not Found []"
    )
    unknown_app = _data(github, githubAppID="77")
    with pytest.raises(GitHubAppError, match="401 Integration not found"):
        await installation_token(_app(unknown_app), auth)


async def test_the_api_is_trusted_through_ca_crt_only(github: FakeGitHub) -> None:
    data = _data(github)
    del data["ca.crt"]
    with pytest.raises(GitHubAppError, match="certificate verify failed"):
        await installation_token(_app(data), AuthOptions.from_secret(GIT_URL, data))


async def test_the_api_is_reached_through_the_proxy_secret(github: FakeGitHub) -> None:
    data = _data(github)
    with ConnectProxy(username="proxy-user", password="proxy-pass-1234") as proxy:
        good = ProxyOptions(proxy.url, "proxy-user", "proxy-pass-1234")
        token = await installation_token(
            _app(data), AuthOptions.from_secret(GIT_URL, data, proxy=good)
        )
        assert token.token
        [tunnel] = proxy.requests()
        assert (tunnel.target, tunnel.user, tunnel.status) == (
            f"127.0.0.1:{github.port}",
            "proxy-user",
            200,
        )
        bad = ProxyOptions(proxy.url, "proxy-user", "wrong-pass-1234")
        with pytest.raises(GitHubAppError) as info:
            await installation_token(_app(data), AuthOptions.from_secret(GIT_URL, data, proxy=bad))
        assert "407 Proxy Authentication Required" in str(info.value)
        assert "wrong-pass-1234" not in str(info.value)
        assert proxy.requests()[-1].status == 407


async def test_a_silent_api_times_out() -> None:
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
        base = f"http://127.0.0.1:{listener.getsockname()[1]}"
        data = {
            "githubAppID": b"1",
            "githubAppInstallationID": b"2",
            "githubAppPrivateKey": _rsa_pem(),
            "githubAppBaseURL": base.encode(),
        }
        started = time.monotonic()
        with pytest.raises(GitTimeoutError, match=r"timed out after 1s"):
            await installation_token(_app(data), AuthOptions.from_secret(GIT_URL, data, timeout=1))
        assert time.monotonic() - started < 5
    finally:
        stop.set()
        thread.join(5)
        listener.close()
        for conn in held:
            conn.close()


async def test_app_tokens_are_shared_until_they_near_expiry(github: FakeGitHub) -> None:
    data = _data(github)
    auth = AuthOptions.from_secret(GIT_URL, data)
    clock = [time.time()]
    tokens = AppTokens(TokenCache(wall_clock=lambda: clock[0], monotonic=lambda: clock[0]))
    app = _app(data)
    before = len(github.issued())
    first = await tokens.credentials(app, auth)
    assert first[0] == "x-access-token"
    # Many objects on the same App at once: one request.
    together = await asyncio.gather(*(tokens.credentials(_app(data), auth) for _ in range(5)))
    assert set(together) == {first}
    assert len(github.issued()) - before == 1
    clock[0] += 0.79 * github.token_lifetime
    assert await tokens.credentials(app, auth) == first
    clock[0] += 0.02 * github.token_lifetime
    renewed = await tokens.credentials(app, auth)
    assert renewed != first and len(github.issued()) - before == 2


# -- the cache -------------------------------------------------------------------------------------


class _Tok:
    def __init__(self, name: str, expires_at: float) -> None:
        self.name, self.expires_at = name, expires_at


def test_token_cache_expiry_cap_and_lru() -> None:
    wall, mono = [1000.0], [5.0]
    cache: TokenCache[_Tok] = TokenCache(
        capacity=2, wall_clock=lambda: wall[0], monotonic=lambda: mono[0]
    )
    cache.put("a", _Tok("a", 1100.0))  # kept 80 s
    wall[0] += 79
    mono[0] += 79
    assert cache.get("a") is not None
    mono[0] += 1.5
    assert cache.get("a") is None  # the monotonic clock alone expires it
    cache.put("b", _Tok("b", wall[0] + 100))
    wall[0] += 100  # a wall-clock jump (suspend) expires it too
    assert cache.get("b") is None
    cache.put("long", _Tok("long", wall[0] + 10 * 3600))  # capped at an hour
    wall[0] += 3599
    mono[0] += 3599
    assert cache.get("long") is not None
    wall[0] += 2
    mono[0] += 2
    assert cache.get("long") is None
    for name in ("x", "y", "z"):
        cache.put(name, _Tok(name, wall[0] + 100))
    assert cache.get("x") is None and len(cache) == 2


async def test_a_failed_fetch_is_not_cached() -> None:
    cache: TokenCache[_Tok] = TokenCache()
    calls = 0

    async def failing() -> _Tok:
        nonlocal calls
        calls += 1
        raise GitHubAppError("nope")

    for _ in range(2):
        with pytest.raises(GitHubAppError):
            await cache.get_or_fetch("k", failing)
    assert calls == 2 and cache.get("k") is None
