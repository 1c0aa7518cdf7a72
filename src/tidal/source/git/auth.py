"""Auth, TLS, proxy and timeout options for one GitRepository, read from its Secrets.

`AuthOptions.from_secret` reads a Secret's `data` (bytes values) the way fluxcd/pkg
`git.NewAuthOptions` does:

- the transport is the URL's scheme;
- ssh: `identity`, `known_hosts`, and `password` as the identity's passphrase; the user is
  the URL's, else `git`; `identity` and `known_hosts` are both required;
- http(s): `bearerToken` (sent as `Authorization: Bearer`), or `username` / `password`
  (basic auth; a password without a username is an error); both kinds at once is an
  error; the URL's userinfo fills a username/password the Secret left empty;
- `ca.crt`, or the legacy `caFile` when `ca.crt` is empty; `tls.crt` + `tls.key` for a
  client certificate, both or neither.

The GitHub App keys (`githubApp*`) are ignored here: `spec.provider: github` turns them into
credentials (tidal.source.git.github_app), which `with_basic_auth` then puts in place of the
Secret's, as Flux's provider credentials replace its.

The dataclasses never show a credential: their repr says only which fields are set, and
`secrets()` lists the values every error message is scrubbed of.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from urllib.parse import urlsplit

from tidal.source.git.errors import AuthOptionsError, redact_url
from tidal.source.git.url import GitURL, parse_url

DEFAULT_TIMEOUT = 60.0  # seconds; GitRepository spec.timeout default
DEFAULT_SSH_USER = "git"

_SECRET_FIELDS = frozenset(
    {"password", "bearer_token", "identity", "identity_password", "client_key"}
)


def _text(data: Mapping[str, bytes], key: str) -> str:
    value = data.get(key)
    return value.decode("utf-8") if value else ""


def _masked_repr(obj: object) -> str:
    shown: list[str] = []
    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if f.name in _SECRET_FIELDS or f.name in ("username", "ca", "client_cert", "known_hosts"):
            if value:
                shown.append(f"{f.name}=<set>")
        elif value not in (None, "", b""):
            shown.append(f"{f.name}={value!r}")
    return f"{type(obj).__name__}({', '.join(shown)})"


@dataclass(frozen=True, slots=True, repr=False)
class ProxyOptions:
    """A proxy from a `proxySecretRef` Secret: `address` (required), `username`, `password`."""

    address: str
    username: str = ""
    password: str = field(default="")

    @classmethod
    def from_secret(cls, data: Mapping[str, bytes]) -> ProxyOptions:
        address = _text(data, "address").strip()
        if not address:
            raise AuthOptionsError("invalid proxy secret: key 'address' not found")
        try:
            parts = urlsplit(address)
            parts.port  # noqa: B018 - validates the port
        except ValueError as e:
            raise AuthOptionsError(f"invalid proxy address: {redact_url(str(e))}") from None
        if parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
            raise AuthOptionsError(
                f"invalid proxy address {redact_url(address)!r}: want http://, https:// or "
                "socks5:// with a host"
            )
        return cls(address, _text(data, "username"), _text(data, "password"))

    @property
    def scheme(self) -> str:
        return urlsplit(self.address).scheme

    def __repr__(self) -> str:
        return (
            f"ProxyOptions(address={redact_url(self.address)!r}"
            f"{', username=<set>' if self.username else ''}"
            f"{', password=<set>' if self.password else ''})"
        )

    __str__ = __repr__


@dataclass(frozen=True, slots=True, repr=False)
class AuthOptions:
    """Everything one Git operation needs to reach a remote, immutable and shareable."""

    transport: str = "https"  # http, https, ssh or file
    username: str = ""
    password: str = ""  # basic auth password over http(s)
    bearer_token: str = ""
    ca: bytes = b""  # PEM bundle, added to the system roots
    client_cert: bytes = b""
    client_key: bytes = b""
    identity: bytes = b""  # SSH private key
    identity_password: str = ""  # its passphrase
    known_hosts: bytes = b""
    proxy: ProxyOptions | None = None
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_secret(
        cls,
        url: str | GitURL,
        data: Mapping[str, bytes] | None = None,
        *,
        proxy: ProxyOptions | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        allow_file: bool = False,
    ) -> AuthOptions:
        parsed = url if isinstance(url, GitURL) else parse_url(url, allow_file=allow_file)
        data = data or {}
        if timeout <= 0:
            raise AuthOptionsError(f"invalid timeout {timeout!r}: must be positive")
        ca = data.get("ca.crt") or data.get("caFile") or b""
        client_cert, client_key = data.get("tls.crt") or b"", data.get("tls.key") or b""
        if bool(client_cert) != bool(client_key):
            raise AuthOptionsError(
                "invalid TLS client certificate: 'tls.crt' and 'tls.key' must both be set"
            )
        transport = parsed.scheme
        if transport == "ssh":
            opts = cls(
                transport="ssh",
                username=parsed.username or DEFAULT_SSH_USER,
                identity=data.get("identity") or b"",
                identity_password=_text(data, "password"),
                known_hosts=data.get("known_hosts") or b"",
                proxy=proxy,
                timeout=timeout,
            )
        else:
            token = _text(data, "bearerToken")
            username, password = _text(data, "username"), _text(data, "password")
            if token and (username or password):
                raise AuthOptionsError(
                    f"invalid '{transport}' auth option: 'bearerToken' cannot be set "
                    "together with 'username' or 'password'"
                )
            if not token:
                username = username or parsed.username or ""
                password = password or parsed.password or ""
            opts = cls(
                transport=transport,
                username=username,
                password=password,
                bearer_token=token,
                ca=ca,
                client_cert=client_cert,
                client_key=client_key,
                proxy=proxy,
                timeout=timeout,
            )
        opts.validate()
        return opts

    def validate(self) -> None:
        t = self.transport
        if t in ("http", "https"):
            if self.password and not self.username:
                raise AuthOptionsError(
                    f"invalid '{t}' auth option: 'password' requires 'username' to be set"
                )
            if self.bearer_token and (self.username or self.password):
                raise AuthOptionsError(
                    f"invalid '{t}' auth option: 'bearerToken' cannot be set together with "
                    "'username' or 'password'"
                )
        elif t == "ssh":
            if not self.identity:
                raise AuthOptionsError("invalid 'ssh' auth option: 'identity' is required")
            if not self.known_hosts:
                raise AuthOptionsError("invalid 'ssh' auth option: 'known_hosts' is required")
        elif t != "file":
            raise AuthOptionsError(f"unknown transport '{t}'")
        if bool(self.client_cert) != bool(self.client_key):
            raise AuthOptionsError(
                "invalid TLS client certificate: 'tls.crt' and 'tls.key' must both be set"
            )

    def with_basic_auth(self, username: str, password: str) -> AuthOptions:
        """These options with a provider's credentials in place of the Secret's (a bearer token
        is dropped, as Flux's provider credentials reset it)."""
        return replace(self, username=username, password=password, bearer_token="")

    def transport_only(self, transport: str) -> AuthOptions:
        """Only the trust, client certificate, proxy and timeout, for another endpoint of the
        same provider (an API): no Git credential goes there."""
        return AuthOptions(
            transport=transport,
            ca=self.ca,
            client_cert=self.client_cert,
            client_key=self.client_key,
            proxy=self.proxy,
            timeout=self.timeout,
        )

    def secrets(self) -> list[str | bytes]:
        """Values no message may contain."""
        values: list[str | bytes] = [
            self.password,
            self.bearer_token,
            self.identity_password,
            self.identity,
            self.client_key,
        ]
        if self.proxy is not None:
            values.append(self.proxy.password)
        return [v for v in values if v]

    def __repr__(self) -> str:
        return _masked_repr(self)

    __str__ = __repr__
