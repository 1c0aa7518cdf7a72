"""Auth options from Secrets as Flux reads them, redaction, URL rules, known_hosts matching
and SSH identities."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tidal.source.git.auth import AuthOptions, ProxyOptions
from tidal.source.git.errors import (
    AuthOptionsError,
    EmptyRepositoryError,
    FetchError,
    GitError,
    HostKeyError,
    InvalidURLError,
    redact,
    redact_url,
)
from tidal.source.git.ssh import HostKeyChecker, load_identity, parse_known_hosts
from tidal.source.git.url import parse_url
from tidal.source.git.verify import signature_type

HTTPS = "https://git.example.com/org/repo.git"
SSH = "ssh://git.example.com/org/repo.git"
PASSWORD = "pa55-w0rd-very-secret"
TOKEN = "ghp_" + "T" * 36


# -- reading Secrets ------------------------------------------------------------------------------


def test_basic_auth_and_ca() -> None:
    opts = AuthOptions.from_secret(
        HTTPS,
        {"username": b"bot", "password": PASSWORD.encode(), "ca.crt": b"CA", "caFile": b"old"},
    )
    assert (opts.transport, opts.username, opts.password, opts.ca) == (
        "https",
        "bot",
        PASSWORD,
        b"CA",
    )
    assert AuthOptions.from_secret(HTTPS, {"caFile": b"old"}).ca == b"old"
    assert AuthOptions.from_secret(HTTPS, {"ca.crt": b"", "caFile": b"old"}).ca == b"old"


def test_bearer_token() -> None:
    opts = AuthOptions.from_secret(HTTPS, {"bearerToken": TOKEN.encode()})
    assert opts.bearer_token == TOKEN and not opts.username
    with pytest.raises(AuthOptionsError, match="'bearerToken' cannot be set together"):
        AuthOptions.from_secret(HTTPS, {"bearerToken": b"t", "username": b"u"})
    with pytest.raises(AuthOptionsError, match="'bearerToken' cannot be set together"):
        AuthOptions.from_secret(HTTPS, {"bearerToken": b"t", "password": b"p"})


def test_password_requires_username() -> None:
    with pytest.raises(AuthOptionsError, match="'password' requires 'username'") as info:
        AuthOptions.from_secret(HTTPS, {"password": b"p"})
    assert info.value.reason == "AuthenticationFailed"


def test_url_userinfo_fills_what_the_secret_leaves_empty() -> None:
    opts = AuthOptions.from_secret("https://u%40x:p%3Aw@git.example.com/r.git", {})
    assert (opts.username, opts.password) == ("u@x", "p:w")
    opts = AuthOptions.from_secret("https://u:p@git.example.com/r.git", {"username": b"s"})
    assert (opts.username, opts.password) == ("s", "p")


def test_client_certificate_needs_both_halves() -> None:
    opts = AuthOptions.from_secret(HTTPS, {"tls.crt": b"C", "tls.key": b"K"})
    assert (opts.client_cert, opts.client_key) == (b"C", b"K")
    for half in ({"tls.crt": b"C"}, {"tls.key": b"K"}):
        with pytest.raises(AuthOptionsError, match=r"'tls\.crt' and 'tls\.key' must both be set"):
            AuthOptions.from_secret(HTTPS, half)


def test_ssh_options() -> None:
    data = {"identity": b"KEY", "known_hosts": b"host ssh-ed25519 AAAA", "password": b"pp"}
    opts = AuthOptions.from_secret(SSH, data)
    assert (opts.transport, opts.username, opts.identity_password) == ("ssh", "git", "pp")
    assert AuthOptions.from_secret("ssh://deploy@h/r", data).username == "deploy"
    with pytest.raises(AuthOptionsError, match="'known_hosts' is required"):
        AuthOptions.from_secret(SSH, {"identity": b"KEY"})
    with pytest.raises(AuthOptionsError, match="'identity' is required"):
        AuthOptions.from_secret(SSH, {"known_hosts": b"x"})
    with pytest.raises(AuthOptionsError, match="'identity' is required"):
        AuthOptions.from_secret(SSH, None)


def test_proxy_and_timeout() -> None:
    proxy = ProxyOptions.from_secret(
        {"address": b"http://proxy:3128", "username": b"pu", "password": PASSWORD.encode()}
    )
    opts = AuthOptions.from_secret(HTTPS, {}, proxy=proxy, timeout=12.5)
    assert opts.proxy is proxy and opts.timeout == 12.5
    assert PASSWORD in opts.secrets()
    with pytest.raises(AuthOptionsError, match="'address' not found"):
        ProxyOptions.from_secret({"username": b"x"})
    with pytest.raises(AuthOptionsError, match="want http"):
        ProxyOptions.from_secret({"address": b"ftp://proxy"})
    assert ProxyOptions.from_secret({"address": b"socks5://p:1080"}).scheme == "socks5"
    with pytest.raises(AuthOptionsError, match="timeout"):
        AuthOptions.from_secret(HTTPS, {}, timeout=0)


# -- never showing a credential -------------------------------------------------------------------


def test_repr_and_str_show_no_credential() -> None:
    key = b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAsecretkeymaterialAAAA\n-----END"
    proxy = ProxyOptions("http://pu:" + PASSWORD + "@proxy:1", "pu", PASSWORD)
    texts = [
        repr(AuthOptions.from_secret(HTTPS, {"username": b"bot", "password": PASSWORD.encode()})),
        str(AuthOptions.from_secret(HTTPS, {"bearerToken": TOKEN.encode()}, proxy=proxy)),
        repr(
            AuthOptions.from_secret(
                SSH, {"identity": key, "known_hosts": b"k", "password": b"pp12"}
            )
        ),
        repr(proxy),
        str(AuthOptions.from_secret(HTTPS, {"tls.crt": b"C", "tls.key": b"PRIVATEKEY"})),
    ]
    for text in texts:
        assert PASSWORD not in text and TOKEN not in text
        assert "secretkeymaterial" not in text and "pp12" not in text and "PRIVATEKEY" not in text
    assert "password=<set>" in texts[0] and "bearer_token=<set>" in texts[1]


def test_redact() -> None:
    assert redact_url("see https://user:pw@h/x and ssh://tok@h:22/y") == (
        "see https://***@h/x and ssh://***@h:22/y"
    )
    key = "-----BEGIN KEY-----\nAAAABBBBCCCCDDDDEEEEFFFF\n-----END KEY-----"
    text = f"failed with {PASSWORD} and {TOKEN}, key line AAAABBBBCCCCDDDDEEEEFFFF"
    out = redact(text, [PASSWORD, TOKEN.encode(), key, "ab"])
    assert PASSWORD not in out and TOKEN not in out and "AAAABBBB" not in out
    assert out.count("***") == 3
    assert redact("tab stops", ["ab"]) == "tab stops"  # too short to be a secret: left alone


def test_error_reasons() -> None:
    assert GitError("x").reason == "GitOperationFailed"
    assert FetchError("x").reason == "GitOperationFailed"
    assert EmptyRepositoryError("x").reason == "EmptyGitRepository"
    assert EmptyRepositoryError("x", reason="GitOperationFailed").reason == "GitOperationFailed"
    assert InvalidURLError("x").reason == "URLInvalid"
    assert AuthOptionsError("x").reason == "AuthenticationFailed"


# -- URLs -----------------------------------------------------------------------------------------


def test_urls() -> None:
    u = parse_url("https://user:pw@Git.Example.com:8443/org/repo.git")
    assert (u.scheme, u.host, u.port, u.path) == ("https", "git.example.com", 8443, "/org/repo.git")
    assert u.url == "https://git.example.com:8443/org/repo.git"
    assert (u.username, u.password) == ("user", "pw")
    s = parse_url("ssh://git@github.com/org/repo")
    assert (s.is_ssh, s.effective_port, s.username) == (True, 22, "git")
    assert parse_url("http://h/r").effective_port == 80


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("git@github.com:org/repo.git", "scp-like"),
        ("github.com:org/repo.git", "scp-like"),
        ("ftp://h/r", "should match"),
        ("git://h/r", "should match"),
        ("file:///srv/repo.git", "allow_file"),
        ("https:///nohost", "no host"),
        ("https://h:99999/r", "invalid URL"),
        ("https://h/r?x=1", "query"),
        (" https://h/r", "whitespace"),
        ("", "empty"),
    ],
)
def test_refused_urls(url: str, message: str) -> None:
    with pytest.raises(InvalidURLError, match=message) as info:
        parse_url(url)
    assert info.value.reason == "URLInvalid"


def test_refused_url_messages_hide_credentials() -> None:
    with pytest.raises(InvalidURLError) as info:
        parse_url(f"ftp://user:{PASSWORD}@h/r")
    assert PASSWORD not in str(info.value)


def test_file_urls_need_the_flag() -> None:
    u = parse_url("file:///srv/repo.git", allow_file=True)
    assert (u.is_file, u.path) == (True, "/srv/repo.git")
    with pytest.raises(InvalidURLError):
        parse_url("file://other-host/srv/repo.git", allow_file=True)


# -- known_hosts ----------------------------------------------------------------------------------


def _key() -> paramiko.PKey:
    return paramiko.Ed25519Key.from_private_key(
        io.StringIO(
            ed25519.Ed25519PrivateKey.generate()
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
            .decode()
        )
    )


def _line(patterns: str, key: paramiko.PKey, marker: str = "") -> str:
    return f"{marker} {patterns} {key.get_name()} {key.get_base64()}".strip()


def _hashed(name: str) -> str:
    salt = os.urandom(20)
    mac = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(mac).decode()}"


def test_known_hosts_patterns() -> None:
    key, other = _key(), _key()
    checker = HostKeyChecker(
        "\n".join(
            [
                "# comment",
                "",
                _line("git.example.com,10.0.0.1", key),
                _line("[git.example.com]:2222", other),
                _line("*.corp.example,!bad.corp.example", key),
                _line(_hashed("hashed.example"), key),
                _line(_hashed("[hashed.example]:2200"), other),
                "garbage line",
                "host ssh-ed25519 !!notbase64!!",
            ]
        )
    )
    assert len(checker.entries) == 5
    checker.check(["git.example.com"], 22, key)
    checker.check(["unknown-name", "10.0.0.1"], 22, key)  # the address counts too
    checker.check(["git.example.com"], 2222, other)
    checker.check(["a.corp.example"], 22, key)
    checker.check(["hashed.example"], 22, key)
    checker.check(["hashed.example"], 2200, other)
    assert checker.algorithms(["git.example.com"], 22) == ["ssh-ed25519"]
    with pytest.raises(HostKeyError, match="key mismatch"):
        checker.check(["git.example.com"], 22, other)
    with pytest.raises(HostKeyError, match="key is unknown"):
        checker.check(["git.example.com"], 2200, key)  # port 22 entries do not cover 2200
    with pytest.raises(HostKeyError, match="key is unknown"):
        checker.check(["bad.corp.example"], 22, key)  # negated
    with pytest.raises(HostKeyError, match="key is unknown"):
        checker.check(["elsewhere"], 22, key)


def test_revoked_keys_are_refused() -> None:
    key = _key()
    checker = HostKeyChecker(_line("h", key) + "\n" + _line("h", key, "@revoked"))
    with pytest.raises(HostKeyError, match="revoked"):
        checker.check(["h"], 22, key)


def test_parse_known_hosts_markers() -> None:
    key = _key()
    entries = parse_known_hosts(_line("*", key, "@cert-authority").encode())
    assert entries[0].marker == "@cert-authority"
    assert HostKeyChecker(_line("*", key, "@cert-authority")).algorithms(["h"], 22) == []


# -- identities -----------------------------------------------------------------------------------


def _pem(key: object, fmt: serialization.PrivateFormat, password: bytes | None = None) -> bytes:
    enc = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, fmt, enc)  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize(
    ("key", "fmt", "name"),
    [
        (ed25519.Ed25519PrivateKey.generate(), serialization.PrivateFormat.OpenSSH, "ssh-ed25519"),
        (ed25519.Ed25519PrivateKey.generate(), serialization.PrivateFormat.PKCS8, "ssh-ed25519"),
        (
            ec.generate_private_key(ec.SECP256R1()),
            serialization.PrivateFormat.OpenSSH,
            "ecdsa-sha2-nistp256",
        ),
        (
            ec.generate_private_key(ec.SECP384R1()),
            serialization.PrivateFormat.TraditionalOpenSSL,
            "ecdsa-sha2-nistp384",
        ),
        (
            rsa.generate_private_key(65537, 2048),
            serialization.PrivateFormat.TraditionalOpenSSL,
            "ssh-rsa",
        ),
        (rsa.generate_private_key(65537, 2048), serialization.PrivateFormat.PKCS8, "ssh-rsa"),
    ],
)
def test_identities(key: object, fmt: serialization.PrivateFormat, name: str) -> None:
    assert load_identity(_pem(key, fmt)).get_name() == name
    encrypted = _pem(key, fmt, b"correct horse")
    assert load_identity(encrypted, "correct horse").get_name() == name
    with pytest.raises(AuthOptionsError, match="encrypted: set its passphrase"):
        load_identity(encrypted)
    with pytest.raises(AuthOptionsError, match="wrong 'password'"):
        load_identity(encrypted, "wrong")


def test_unparseable_identity() -> None:
    with pytest.raises(AuthOptionsError, match="cannot parse"):
        load_identity(b"not a key")


def test_signature_types() -> None:
    assert signature_type(None) == "empty"
    assert signature_type(b"  -----BEGIN PGP SIGNATURE-----\n") == "openpgp"
    assert signature_type(b"-----BEGIN SSH SIGNATURE-----") == "ssh"
    assert signature_type(b"-----BEGIN SIGNED MESSAGE-----") == "x509"
    assert signature_type(b"what") == "unknown"
