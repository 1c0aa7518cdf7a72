"""Registry credentials: docker config JSON (image pull Secrets) and the WWW-Authenticate
challenges of the distribution API (Basic, and Bearer with a token service).

Credentials are matched to a registry as Kubernetes' credential provider keyring matches image
pull secrets (which go-containerregistry's k8schain, used by Flux, delegates to): a key may be
`host`, `host:port`, `host/path`, a URL with a scheme, or hold `*` wildcards per host label;
the most specific match wins. Nothing here logs or formats a secret value.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from tidal.source.oci.errors import OCIError
from tidal.source.oci.reference import DOCKER_HUB, Repository

DOCKER_CONFIG_JSON_KEY = ".dockerconfigjson"
DOCKER_CFG_KEY = ".dockercfg"
_HUB_ALIASES = frozenset({DOCKER_HUB, "docker.io", "registry-1.docker.io"})


class CredentialsError(OCIError, ValueError):
    """A pull Secret that cannot be read."""


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:  # a repr must never carry the password into a log
        return f"Credentials(username={self.username!r}, password=<redacted>)"

    def basic_header(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"


@dataclass(frozen=True, slots=True)
class _Entry:
    host: str  # host[:port], lower case, may hold wildcards
    path: str  # repository prefix, may be empty
    credentials: Credentials


@dataclass(frozen=True)
class Keyring:
    """Every credential of a set of pull Secrets, in the order given."""

    entries: tuple[_Entry, ...] = ()

    def __repr__(self) -> str:
        return f"Keyring({len(self.entries)} entries)"

    def lookup(self, repository: Repository) -> Credentials | None:
        """The credentials for `repository`: the longest matching key wins, then the first."""
        host = repository.registry.lower()
        best: tuple[int, Credentials] | None = None
        for entry in self.entries:
            if not _host_matches(entry.host, host):
                continue
            if entry.path and not (
                repository.path == entry.path or repository.path.startswith(entry.path + "/")
            ):
                continue
            score = len(entry.host) + len(entry.path)
            if best is None or score > best[0]:
                best = (score, entry.credentials)
        return best[1] if best is not None else None


def _host_matches(pattern: str, host: str) -> bool:
    if pattern in _HUB_ALIASES and host in _HUB_ALIASES:
        return True
    p_host, _, p_port = pattern.partition(":")
    h_host, _, h_port = host.partition(":")
    if p_port != h_port:
        return False
    p_labels, h_labels = p_host.split("."), h_host.split(".")
    if len(p_labels) != len(h_labels):
        return False
    return all(fnmatch.fnmatchcase(h, p) for p, h in zip(p_labels, h_labels, strict=True))


def _parse_key(key: str) -> tuple[str, str]:
    """(host[:port], path) of a docker config key such as `https://index.docker.io/v1/`."""
    text = key.strip()
    if "://" in text:
        parts = urlsplit(text)
        host, path = parts.netloc, parts.path
    else:
        host, _, path = text.partition("/")
    path = path.strip("/")
    # Docker's legacy keys name the API version, not a repository.
    if path in ("v1", "v2"):
        path = ""
    host = host.lower()
    if host in _HUB_ALIASES:
        host = DOCKER_HUB
    return host, path


def _entry_credentials(key: str, raw: object, secret: str) -> Credentials:
    if not isinstance(raw, dict):
        raise CredentialsError(f"secret '{secret}': entry for '{key}' is not an object")
    username = str(raw.get("username") or "")
    password = str(raw.get("password") or "")
    auth = raw.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise CredentialsError(
                f"secret '{secret}': the auth field for '{key}' is not valid base64"
            ) from None
        user, sep, secret_part = decoded.partition(":")
        if not sep:
            raise CredentialsError(
                f"secret '{secret}': the auth field for '{key}' must be base64 of "
                "'username:password'"
            )
        username, password = user, secret_part
    return Credentials(username, password)


def keyring_from_secrets(secrets: Iterable[tuple[str, Mapping[str, bytes]]]) -> Keyring:
    """A keyring from pull Secrets given as (namespace/name, data). Secrets without a
    `.dockerconfigjson` or `.dockercfg` key contribute nothing, as with k8schain."""
    entries: list[_Entry] = []
    for ref, data in secrets:
        if DOCKER_CONFIG_JSON_KEY in data:
            auths = _load_json(data[DOCKER_CONFIG_JSON_KEY], ref).get("auths") or {}
        elif DOCKER_CFG_KEY in data:
            auths = _load_json(data[DOCKER_CFG_KEY], ref)
        else:
            continue
        if not isinstance(auths, dict):
            raise CredentialsError(f"secret '{ref}': 'auths' is not an object")
        for key, raw in auths.items():
            host, path = _parse_key(str(key))
            if host:
                entries.append(_Entry(host, path, _entry_credentials(str(key), raw, ref)))
    return Keyring(tuple(entries))


def _load_json(data: bytes, ref: str) -> dict[str, object]:
    try:
        loaded = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise CredentialsError(f"secret '{ref}': the docker config is not valid JSON") from None
    if not isinstance(loaded, dict):
        raise CredentialsError(f"secret '{ref}': the docker config is not a JSON object")
    return loaded


# -- challenges -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Challenge:
    """One WWW-Authenticate challenge: its scheme (lower case) and parameters."""

    scheme: str
    params: dict[str, str]

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# Unquoted values are taken up to the next comma: some servers send URLs unquoted.
_PARAM = re.compile(rf'\s*({_TCHARS})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,"\s]+))\s*')
_SCHEME = re.compile(rf"\s*({_TCHARS})(?:\s+|$)")


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in a WWW-Authenticate value (RFC 7235 auth-params; token68 skipped)."""
    challenges: list[Challenge] = []
    pos = 0
    while pos < len(header):
        if header[pos] in ", \t":
            pos += 1
            continue
        m = _SCHEME.match(header, pos)
        if m is None:
            break
        scheme, pos = m.group(1).lower(), m.end()
        params: dict[str, str] = {}
        while pos < len(header):
            pm = _PARAM.match(header, pos)
            if pm is None:
                break
            value = pm.group(2)
            value = re.sub(r"\\(.)", r"\1", value) if value is not None else pm.group(3)
            params[pm.group(1).lower()] = value
            pos = pm.end()
            if pos < len(header) and header[pos] == ",":
                pos += 1
        challenges.append(Challenge(scheme, params))
    return challenges


def pull_scope(repository: Repository) -> str:
    return f"repository:{repository.path}:pull"
