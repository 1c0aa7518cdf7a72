"""The SSH transport: paramiko in-process, with trust and identity from the Secret only.

- Host keys: only the Secret's `known_hosts` is consulted (no ~/.ssh, no agent, no system
  file). Lines may use comma-separated patterns with `*`/`?` wildcards and `!` negation,
  `[host]:port` for other ports than 22, and hashed `|1|salt|hmac` names; `@revoked` keys
  are refused. As in Go's knownhosts (what Flux uses), the key is looked up for the host
  name and for the address connected to; a host with no entry, or whose key differs, is
  refused. The host key algorithms offered are narrowed to the types known_hosts holds
  for the host, so a server with several keys presents one that can be checked.
  `@cert-authority` lines are not supported (ignored).
- Identity: the `identity` key from memory, OpenSSH, PKCS#1, PKCS#8 or SEC1, ed25519, RSA or
  ECDSA, encrypted with `password` or not.
- One SSH connection per operation; each Git command runs on its own channel, with
  `GIT_PROTOCOL=version=2` requested (servers that do not accept it speak v0).
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hashlib
import hmac
import io
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, cast
from urllib.parse import urlsplit

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from dulwich.client import SSHGitClient, SSHVendor

from tidal.source.git.auth import AuthOptions, ProxyOptions
from tidal.source.git.errors import (
    AuthenticationError,
    AuthOptionsError,
    FetchError,
    HostKeyError,
    UnsupportedError,
)
from tidal.source.git.operation import Operation
from tidal.source.git.url import GitURL

# known_hosts key type -> host key algorithms paramiko may negotiate for it
_ALGORITHMS = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
}


# -- known_hosts ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KnownHost:
    patterns: tuple[str, ...]  # as written; a hashed entry is one "|1|salt|hash" pattern
    key_type: str
    key: bytes  # the public key blob
    marker: str = ""  # "", "@revoked" or "@cert-authority"

    def matches(self, host: str, port: int) -> bool:
        name = host if port == 22 else f"[{host}]:{port}"
        positive = False
        for pattern in self.patterns:
            if pattern.startswith("|1|"):
                if _hashed_match(pattern, name):
                    positive = True
                continue
            negated = pattern.startswith("!")
            if negated:
                pattern = pattern[1:]
            p_host, p_port = _split_pattern(pattern)
            if p_port == port and fnmatch.fnmatchcase(host.lower(), p_host.lower()):
                if negated:
                    return False
                positive = True
        return positive


def _split_pattern(pattern: str) -> tuple[str, int]:
    if pattern.startswith("["):
        host, sep, rest = pattern[1:].partition("]")
        if sep and rest.startswith(":") and rest[1:].isdigit():
            return host, int(rest[1:])
        return host, 22
    return pattern, 22


def _hashed_match(pattern: str, name: str) -> bool:
    try:
        _, _, salt_b64, digest_b64 = pattern.split("|", 3)
        salt, digest = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
    except ValueError:
        return False
    mac = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(mac, digest)


def parse_known_hosts(data: bytes | str) -> list[KnownHost]:
    """Entries of a known_hosts file; lines that do not parse are skipped, as ssh does."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    entries: list[KnownHost] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        marker = ""
        if fields[0].startswith("@"):
            marker, fields = fields[0], fields[1:]
        if len(fields) < 3:
            continue
        try:
            key = base64.b64decode(fields[2], validate=True)
        except ValueError:
            continue
        entries.append(KnownHost(tuple(fields[0].split(",")), fields[1], key, marker))
    return entries


class HostKeyChecker:
    """Accepts a server key only if known_hosts lists it for the host (or its address)."""

    def __init__(self, known_hosts: bytes | str) -> None:
        self.entries = parse_known_hosts(known_hosts)

    def _for(self, names: list[str], port: int) -> list[KnownHost]:
        return [e for e in self.entries if any(e.matches(n, port) for n in names)]

    def algorithms(self, names: list[str], port: int) -> list[str]:
        known = [e for e in self._for(names, port) if not e.marker]
        wanted = {alg for e in known for alg in _ALGORITHMS.get(e.key_type, (e.key_type,))}
        preferred: tuple[str, ...] = getattr(paramiko.Transport, "_preferred_keys", ())
        return [alg for alg in preferred if alg in wanted]

    def check(self, names: list[str], port: int, key: paramiko.PKey) -> None:
        blob = key.asbytes()
        entries = self._for(names, port)
        shown = names[0] if port == 22 else f"[{names[0]}]:{port}"
        if any(e.marker == "@revoked" and e.key == blob for e in entries):
            raise HostKeyError(f"ssh: handshake failed: knownhosts: key for {shown} is revoked")
        known = [e for e in entries if not e.marker]
        if not known:
            raise HostKeyError(
                f"ssh: handshake failed: knownhosts: key is unknown: no known_hosts entry "
                f"for {shown}"
            )
        if not any(e.key == blob for e in known):
            fingerprint = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
            raise HostKeyError(
                f"ssh: handshake failed: knownhosts: key mismatch: {shown} presented "
                f"{key.get_name()} SHA256:{fingerprint}, which known_hosts does not list"
            )


# -- identity -------------------------------------------------------------------------------------


def load_identity(identity: bytes, password: str = "") -> paramiko.PKey:
    """A paramiko key from any common private key format, decrypted with `password`."""
    secret = password.encode() if password else None
    try:
        try:
            key: Any = serialization.load_ssh_private_key(identity, password=secret)
        except ValueError as first:
            if b"OPENSSH PRIVATE KEY" in identity:
                raise first
            key = serialization.load_pem_private_key(identity, password=secret)
    except TypeError:
        if secret is None:
            raise AuthOptionsError(
                "the SSH identity is encrypted: set its passphrase as 'password'"
            ) from None
        raise AuthOptionsError(
            "the SSH identity is not encrypted but a 'password' is set"
        ) from None
    except ValueError:
        if secret is not None:
            raise AuthOptionsError(
                "cannot decrypt the SSH identity: wrong 'password' or unsupported key"
            ) from None
        raise AuthOptionsError(
            "cannot parse the SSH identity: not a supported private key"
        ) from None
    classes: list[tuple[type[Any], type[paramiko.PKey]]] = [
        (ed25519.Ed25519PrivateKey, paramiko.Ed25519Key),
        (rsa.RSAPrivateKey, paramiko.RSAKey),
        (ec.EllipticCurvePrivateKey, paramiko.ECDSAKey),
    ]
    for crypto_type, key_class in classes:
        if isinstance(key, crypto_type):
            # Re-encoded as unencrypted OpenSSH in memory: the one format every paramiko
            # key class reads.
            text = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            ).decode()
            loaded: paramiko.PKey = key_class.from_private_key(io.StringIO(text))
            return loaded
    raise AuthOptionsError(f"unsupported SSH identity type {type(key).__name__}")


# -- connection -----------------------------------------------------------------------------------


def _connect_via_http_proxy(
    proxy: ProxyOptions, host: str, port: int, timeout: float
) -> socket.socket:
    parts = urlsplit(proxy.address)
    if parts.scheme != "http":
        raise UnsupportedError("only http:// proxies can carry SSH connections")
    sock = socket.create_connection((parts.hostname or "", parts.port or 80), timeout=timeout)
    try:
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
        if proxy.username:
            token = base64.b64encode(f"{proxy.username}:{proxy.password}".encode()).decode()
            request += f"Proxy-Authorization: Basic {token}\r\n"
        sock.sendall((request + "\r\n").encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = sock.recv(4096)
            if not chunk:
                break
            response += chunk
        status = response.split(b"\r\n", 1)[0].decode("latin-1")
        if len(status.split()) < 2 or status.split()[1] != "200":
            raise FetchError(f"proxy refused CONNECT to {target}: {status!r}")
        return sock
    except BaseException:
        sock.close()
        raise


class _ChannelIO:
    """The file-like end dulwich's Protocol reads and writes, over one SSH channel."""

    def __init__(self, channel: paramiko.Channel, op: Operation) -> None:
        self._channel = channel
        self._op = op
        self._buffer = bytearray()
        self.stderr: IO[bytes] = cast(IO[bytes], channel.makefile_stderr("rb"))

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            self._op.check()
            self._channel.settimeout(self._op.wait_limit())
            try:
                data = self._channel.recv(max(65536, size - len(self._buffer)))
            except TimeoutError:
                continue  # the deadline check above decides
            if not data:
                break
            self._buffer += data
        n = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    def write(self, data: bytes) -> int:
        self._op.check()
        self._channel.sendall(data)
        return len(data)

    def can_read(self) -> bool:
        return bool(self._buffer) or self._channel.recv_ready()

    def close(self) -> None:
        self._channel.close()


class ParamikoVendor(SSHVendor):
    """One authenticated SSH connection, opened on first use, reused for every command."""

    def __init__(self, url: GitURL, auth: AuthOptions, op: Operation) -> None:
        self._url = url
        self._auth = auth
        self._op = op
        self._checker = HostKeyChecker(auth.known_hosts)
        self._key = load_identity(auth.identity, auth.identity_password)
        self._transport: paramiko.Transport | None = None

    def _open(self) -> paramiko.Transport:
        host, port = self._url.host, self._url.effective_port
        timeout = self._op.wait_limit()
        try:
            if self._auth.proxy is not None:
                sock = _connect_via_http_proxy(self._auth.proxy, host, port, timeout)
            else:
                sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise FetchError(f"dial tcp {host}:{port}: {e.strerror or e}") from None
        self._op.on_cancel(sock.close)
        names = [host]
        with contextlib.suppress(OSError):
            peer = sock.getpeername()[0]
            if peer != host:
                names.append(peer)
        transport = paramiko.Transport(sock)
        self._op.on_cancel(transport.close)
        try:
            algorithms = self._checker.algorithms(names, port)
            if algorithms:
                transport.get_security_options().key_types = algorithms
            transport.banner_timeout = timeout
            transport.auth_timeout = timeout
            transport.start_client(timeout=timeout)
            self._checker.check(names, port, transport.get_remote_server_key())
            try:
                transport.auth_publickey(self._auth.username, self._key)
            except paramiko.AuthenticationException:
                raise AuthenticationError(
                    f"ssh: handshake failed: unable to authenticate as "
                    f"'{self._auth.username}': the server refused the identity key"
                ) from None
        except BaseException:
            transport.close()
            raise
        return transport

    def run_command(
        self,
        host: str,
        command: bytes | str,
        username: str | None = None,
        port: int | None = None,
        password: str | None = None,
        key_filename: str | None = None,
        ssh_command: str | None = None,
        protocol_version: int | None = None,
    ) -> Any:
        self._op.check()
        if self._transport is None or not self._transport.is_active():
            self._transport = self._open()
        channel = self._transport.open_session(timeout=self._op.wait_limit())
        if protocol_version is None or protocol_version == 2:
            channel.set_environment_variable("GIT_PROTOCOL", "version=2")
        cmd = command.decode() if isinstance(command, bytes) else command
        channel.exec_command(cmd)
        return _ChannelIO(channel, self._op)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


@contextlib.contextmanager
def ssh_client(url: GitURL, auth: AuthOptions, op: Operation) -> Iterator[SSHGitClient]:
    vendor = ParamikoVendor(url, auth, op)
    try:
        yield SSHGitClient(url.host, port=url.port, username=auth.username, vendor=vendor)
    finally:
        vendor.close()
