"""What the flags of `bootstrap git` mean for Git access, decided as flux decides it.

The CLI itself clones and pushes with the flags' credentials: over HTTP(S) `--username` and
`--password` (or the password as a bearer token with `--with-bearer-token`), over SSH the key
of `--private-key-file` (flux falls back to an SSH agent without one; tidal has none).

The cluster syncs with its own credentials, in the Secret `--secret-name`:

- with `--token-auth` (implied by `--with-bearer-token`) the same password or token, over
  https (http only with `--allow-insecure-http`), the URL's user info dropped;
- otherwise over SSH, whatever the URL's scheme: with the key of `--private-key-file`, or a
  newly generated deploy key, at `ssh://<user>@<host>/<path>` (`--ssh-hostname` replacing the
  host), its known_hosts line collected from the server when the Secret is written.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final
from urllib.parse import quote, urlsplit, urlunsplit

from tidal.cli.gitsecret import GitSecretOptions, load_keypair
from tidal.source.git import AuthOptions, GitError, parse_url
from tidal.source.git.auth import DEFAULT_SSH_USER
from tidal.source.git.errors import redact_url

DEFAULT_USERNAME: Final = "git"
_SCHEMES: Final = ("http", "https", "ssh")


class AccessError(ValueError):
    """The flags do not make a usable Git access; the message is safe to print."""


@dataclass(frozen=True)
class Flags:
    url: str
    username: str = DEFAULT_USERNAME
    password: str = ""
    token_auth: bool = False
    with_bearer_token: bool = False
    allow_insecure_http: bool = False
    ca_bundle: bytes = b""
    private_key: bytes = b""  # the content of --private-key-file
    ssh_hostname: str = ""
    secret_name: str = "flux-system"  # noqa: S105 - a Secret's name
    namespace: str = "flux-system"
    key_algorithm: str = "ecdsa"
    rsa_bits: int = 2048
    ecdsa_curve: str = "p384"

    @property
    def uses_token(self) -> bool:
        return self.token_auth or self.with_bearer_token


@dataclass(frozen=True)
class Access:
    auth: AuthOptions  # the CLI's; for SSH without known_hosts until `with_known_hosts`
    sync_url: str
    secret: GitSecretOptions
    # Whether the flags say what the Secret holds; when they do not (a generated deploy key),
    # an existing Secret is kept as it is.
    secret_from_flags: bool

    @property
    def ssh(self) -> bool:
        return self.auth.transport == "ssh"

    def with_known_hosts(self, known_hosts: str) -> Access:
        return replace(self, auth=replace(self.auth, known_hosts=known_hosts.encode()))


def _cli_auth(f: Flags, scheme: str, url_user: str | None, url_password: str | None) -> AuthOptions:
    if scheme == "ssh":
        if not f.private_key:
            raise AccessError(
                "--private-key-file is required for Git over SSH (tidal has no SSH agent support)"
            )
        return AuthOptions(
            transport="ssh",
            username=url_user or DEFAULT_SSH_USER,
            identity=f.private_key,
            identity_password=f.password,
        )
    if scheme == "http" and not f.allow_insecure_http:
        raise AccessError("scheme http is insecure, pass --allow-insecure-http=true to allow it")
    if f.with_bearer_token:
        return AuthOptions(transport=scheme, bearer_token=f.password, ca=f.ca_bundle)
    username, password = f.username, f.password
    if not password and url_password:
        username, password = url_user or username, url_password
    return AuthOptions(transport=scheme, username=username, password=password, ca=f.ca_bundle)


def _netloc(user: str | None, host: str) -> str:
    return f"{quote(user, safe='')}@{host}" if user else host


def decide(f: Flags) -> Access:
    parts = urlsplit(f.url)
    if "://" in f.url and parts.scheme.lower() not in _SCHEMES:
        raise AccessError(f'scheme "{parts.scheme}" is not supported')
    try:
        parsed = parse_url(f.url)
    except GitError as e:
        raise AccessError(str(e)) from None
    scheme = parsed.scheme
    auth = _cli_auth(f, scheme, parsed.username, parsed.password)
    host = parts.netloc.rpartition("@")[2]

    secret = GitSecretOptions(name=f.secret_name, namespace=f.namespace)
    if f.uses_token:
        if f.with_bearer_token:
            secret.bearer_token = f.password
        else:
            secret.username, secret.password = auth.username, auth.password
        secret.ca_crt = f.ca_bundle.decode("utf-8", "replace")
        if scheme not in ("http", "https"):
            # No port assumed for another protocol (flux's rule).
            host = parsed.host if ":" not in parsed.host else f"[{parsed.host}]"
        sync_scheme = scheme if f.allow_insecure_http else "https"
        sync_url = urlunsplit((sync_scheme, host, parts.path, parts.query, parts.fragment))
        from_flags = bool(secret.username or secret.password or secret.bearer_token or f.ca_bundle)
    else:
        user = parsed.username
        if user is None or f.username != DEFAULT_USERNAME:
            user = f.username
        if f.ssh_hostname:
            host = f.ssh_hostname
        sync_url = urlunsplit(("ssh", _netloc(user, host), parts.path, parts.query, ""))
        secret.key_algorithm = f.key_algorithm
        secret.rsa_bits = f.rsa_bits
        secret.ecdsa_curve = f.ecdsa_curve
        secret.password = f.password
        secret.ssh_host = host
        if f.private_key:
            secret.keypair = load_keypair(f.private_key, f.password)
        from_flags = bool(f.private_key)
    return Access(auth=auth, sync_url=sync_url, secret=secret, secret_from_flags=from_flags)


def shown(url: str) -> str:
    """A URL as it may be printed. Over HTTP(S) any user info goes (it may be a token, as
    GitHub's `https://<token>@github.com/...`); an SSH URL's user is no secret."""
    parts = urlsplit(url)
    if parts.scheme == "ssh" and parts.password is None:
        return url
    return redact_url(url)
