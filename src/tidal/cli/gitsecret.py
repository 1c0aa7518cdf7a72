"""The Secret `flux create secret git` (and `create source git`) makes for Git credentials.

Keys (what source-controller reads): `username` + `password` for basic auth, `bearerToken`,
`ca.crt`, and for SSH `identity` (PKCS#8 PEM private key), `identity.pub` (authorized_keys
line), `known_hosts` and, for an encrypted key, `password`. Everything goes in `stringData`.

For SSH URLs the host key is collected by connecting to the server, as flux does: a key exchange
is enough (no authentication), preferring host key types in Go's x/crypto client order so a
server with several keys answers with the one flux would record. The line is written as Go's
knownhosts.Normalize writes it: `host` on port 22, `[host]:port` otherwise.

SSH key handling needs `cryptography` and host key scanning `paramiko`; both are imported only
when an SSH URL is used.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from tidal.cli.options import CliError
from tidal.kube import goyaml

# Secret key names, not credentials.
USERNAME: Final = "username"
PASSWORD: Final = "password"  # noqa: S105
BEARER_TOKEN: Final = "bearerToken"  # noqa: S105
CA_CRT: Final = "ca.crt"
IDENTITY: Final = "identity"
IDENTITY_PUB: Final = "identity.pub"
KNOWN_HOSTS: Final = "known_hosts"

KEY_ALGORITHMS: Final = ("rsa", "ecdsa", "ed25519")
ECDSA_CURVES: Final = ("p256", "p384", "p521")
DEFAULT_SSH_PORT: Final = 22
SCAN_TIMEOUT: Final = 30.0
# golang.org/x/crypto/ssh's default host key preference, limited to what paramiko speaks.
_GO_HOST_KEY_ORDER: Final = (
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-256",
    "rsa-sha2-512",
    "ssh-rsa",
    "ssh-ed25519",
)


@dataclass(frozen=True)
class KeyPair:
    private_key: str  # PEM
    public_key: str  # authorized_keys line, with its line break


@dataclass
class GitSecretOptions:
    name: str
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    username: str = ""
    password: str = ""
    bearer_token: str = ""
    ca_crt: str = ""
    keypair: KeyPair | None = None
    # Generate a key pair with this algorithm when none is given ("" for HTTP(S) URLs).
    key_algorithm: str = ""
    rsa_bits: int = 2048
    ecdsa_curve: str = "p384"
    ssh_host: str = ""  # host[:port] of an ssh:// URL


def _crypto_missing(what: str) -> CliError:
    return CliError(f"{what} needs the Python package 'cryptography' (pip install cryptography)")


def load_keypair(data: bytes, password: str) -> KeyPair:
    """A private key file (PEM or OpenSSH format, encrypted when `password` is set)."""
    try:
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives import serialization
    except ImportError:  # pragma: no cover - depends on the installation
        raise _crypto_missing("reading an SSH private key") from None
    secret = password.encode() if password else None
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            key: Any = serialization.load_ssh_private_key(data, secret)
        else:
            key = serialization.load_pem_private_key(data, secret)
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise CliError(f"ssh: cannot parse the private key: {e}") from None
    return KeyPair(data.decode(), public.decode() + "\n")


def generate_keypair(algorithm: str, rsa_bits: int = 2048, curve: str = "p384") -> KeyPair:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    except ImportError:  # pragma: no cover - depends on the installation
        raise _crypto_missing("generating an SSH key pair") from None
    key: Any
    if algorithm == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    elif algorithm == "ecdsa":
        curves = {"p256": ec.SECP256R1(), "p384": ec.SECP384R1(), "p521": ec.SECP521R1()}
        key = ec.generate_private_key(curves[curve])
    elif algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise CliError(f"unsupported public key algorithm: {algorithm}")
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return KeyPair(private.decode(), public.decode() + "\n")


def split_host_port(host: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]` or `[v6]:port`, with port 22 when none is given."""
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[1:end], host[end + 1 :]
        return name, int(rest[1:]) if rest.startswith(":") and rest[1:] else DEFAULT_SSH_PORT
    if host.count(":") == 1:
        name, port = host.split(":")
        return name, int(port) if port else DEFAULT_SSH_PORT
    return host, DEFAULT_SSH_PORT


def known_hosts_name(host: str, port: int) -> str:
    return host if port == DEFAULT_SSH_PORT else f"[{host}]:{port}"


def scan_host_key(host: str, timeout: float = SCAN_TIMEOUT) -> str:
    """The known_hosts line of the SSH server at `host` (host[:port])."""
    try:
        import paramiko
    except ImportError:  # pragma: no cover - depends on the installation
        raise CliError(
            "collecting an SSH host key needs the Python package 'paramiko' (pip install paramiko)"
        ) from None
    name, port = split_host_port(host)
    where = f"{name}:{port}" if ":" not in name else f"[{name}]:{port}"
    try:
        sock = socket.create_connection((name, port), timeout=timeout)
    except OSError as e:
        # Worded as Go's net.Dial reports it, as flux prints it.
        reason = (e.strerror or str(e)).lower()
        raise CliError(
            f"SSH key scan for host {where} failed, error: dial tcp {where}: connect: {reason}"
        ) from None
    transport = paramiko.Transport(sock)
    try:
        options = transport.get_security_options()
        options.key_types = tuple(k for k in _GO_HOST_KEY_ORDER if k in options.key_types)
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
    except (paramiko.SSHException, OSError, EOFError) as e:
        raise CliError(f"SSH key scan for host {where} failed, error: {e}") from None
    finally:
        transport.close()
    blob = base64.b64encode(key.asbytes()).decode()
    return f"{known_hosts_name(name, port)} {key.get_name()} {blob}"


def git_secret(opts: GitSecretOptions) -> dict[str, Any]:
    """The Secret object, as flux's sourcesecret.GenerateGit builds it."""
    keypair: KeyPair | None = None
    if opts.username and opts.password:
        pass
    elif opts.keypair is not None:
        keypair = opts.keypair
    elif opts.key_algorithm:
        keypair = generate_keypair(opts.key_algorithm, opts.rsa_bits, opts.ecdsa_curve)
    host_key = scan_host_key(opts.ssh_host) if keypair is not None else ""

    data: dict[str, str] = {}
    if opts.username and opts.password:
        data[USERNAME] = opts.username
        data[PASSWORD] = opts.password
    if opts.bearer_token:
        data[BEARER_TOKEN] = opts.bearer_token
    if opts.ca_crt:
        data[CA_CRT] = opts.ca_crt
    if keypair is not None and host_key:
        data[IDENTITY] = keypair.private_key
        data[IDENTITY_PUB] = keypair.public_key
        data[KNOWN_HOSTS] = host_key
        if opts.password:
            data[PASSWORD] = opts.password

    return secret_manifest(opts.name, opts.namespace, opts.labels, data)


def secret_manifest(
    name: str, namespace: str, labels: Mapping[str, str], string_data: Mapping[str, str]
) -> dict[str, Any]:
    """A Secret as flux's `create secret` commands build it (stringData only when not empty)."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    secret: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": metadata}
    if string_data:
        secret["stringData"] = dict(string_data)
    return secret


def export_text(secret: dict[str, Any]) -> str:
    """What `flux create secret ... --export` prints: `---`, the YAML, and an empty line (its
    manifest text already ends with a line break and is printed with Println)."""
    return "---\n" + goyaml.marshal(secret) + "\n"
