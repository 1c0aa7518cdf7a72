"""Repository addresses (`oci://host[:port]/path`) parsed as go-containerregistry's name package
parses them for Flux: a first component with a dot or a port, or `localhost`, is the registry;
otherwise the registry is Docker Hub (`index.docker.io`, with `library/` for one-component
names). Tags and digests are not part of an OCIRepository URL.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from tidal.source.oci.errors import InvalidReferenceError

OCI_PREFIX = "oci://"
DOCKER_HUB = "index.docker.io"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")
# Exactly RFC 1918, as go-containerregistry checks: Python's is_private also covers
# documentation and other special-purpose ranges.
_RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_REPO_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-./"
_TAG_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."
_REGISTRY = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]+)?|\[[0-9A-Fa-f:.]+\](?::[0-9]+)?")


@dataclass(frozen=True, slots=True)
class Repository:
    """A repository in a registry: `registry` is host[:port], `path` the repository name."""

    registry: str
    path: str
    # Allow plain HTTP (spec.insecure); loopback and private addresses fall back to it anyway.
    insecure: bool = False

    def __str__(self) -> str:
        return f"{self.registry}/{self.path}"

    @property
    def host(self) -> str:
        """The registry's host without its port."""
        if self.registry.startswith("["):
            return self.registry[1:].split("]", 1)[0]
        return self.registry.split(":", 1)[0]

    def may_use_http(self) -> bool:
        """go-containerregistry's Registry.Scheme: http is tried after https for insecure
        registries, localhost, loopback and RFC 1918 addresses."""
        if self.insecure:
            return True
        host = self.host
        if host == "localhost":
            return True
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return ip.is_loopback or any(ip in net for net in _RFC1918)

    def tag(self, tag: str) -> str:
        """The reference text `<registry>/<path>:<tag>`, as Flux prints it."""
        return f"{self}:{tag}"

    def digest(self, digest: str) -> str:
        return f"{self}@{digest}"


def parse_repository(url: str, *, insecure: bool = False) -> Repository:
    """Flux's parseRepository: `oci://` then a repository without tag or digest."""
    if not url.startswith(OCI_PREFIX):
        raise InvalidReferenceError("URL must be in format 'oci://<domain>/<org>/<repo>'")
    text = url[len(OCI_PREFIX) :]
    registry, _, rest = text.partition("/")
    if not rest or not (
        "." in registry or ":" in registry or registry == "localhost" or registry.startswith("[")
    ):
        registry, rest = DOCKER_HUB, text
        if "/" not in rest:
            rest = f"library/{rest}"
    elif registry in ("docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
    if not _REGISTRY.fullmatch(registry):
        raise InvalidReferenceError(
            f"registries must be valid RFC 3986 URI authorities: {registry}"
        )
    if "@" in rest:
        raise InvalidReferenceError(
            f"repository can only contain the characters `{_REPO_CHARS}`: {rest}"
        )
    if ":" in rest:
        raise InvalidReferenceError(f"URL must not contain a tag; remove ':{rest.split(':')[1]}'")
    if not _REPOSITORY.fullmatch(rest):
        raise InvalidReferenceError(
            f"repository can only contain the characters `{_REPO_CHARS}`: {rest}"
        )
    if len(rest) > 255:
        raise InvalidReferenceError(f"repository name is too long: {rest}")
    return Repository(registry, rest, insecure)


def check_tag(tag: str) -> str:
    if not _TAG.fullmatch(tag):
        raise InvalidReferenceError(f"tag can only contain the characters `{_TAG_CHARS}`: {tag}")
    return tag


def check_digest(digest: str) -> str:
    if not _DIGEST.fullmatch(digest):
        raise InvalidReferenceError(f"unsupported digest: {digest!r}")
    return digest
