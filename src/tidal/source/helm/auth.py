"""How a HelmRepository authenticates: basic auth and TLS from its Secrets, as Flux reads them
(source-controller internal/helm/getter GetClientOpts on fluxcd/pkg runtime/secrets).

certSecretRef gives the TLS settings (`tls.crt` + `tls.key`, and/or `ca.crt`; the legacy
`certFile`/`keyFile`/`caFile` names too). secretRef gives `username` + `password`, and TLS only
when certSecretRef is not set (deprecated, as Flux logs). A CA adds to the system roots.
Messages name Secrets and keys, never their values.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class AuthError(ValueError):
    """A Secret that cannot give what it is referenced for."""


@dataclass(frozen=True)
class BasicAuth:
    username: str
    password: str

    def __repr__(self) -> str:  # never let a password reach a log through a repr
        return f"BasicAuth(username={self.username!r}, password=<redacted>)"


@dataclass(frozen=True)
class TLSMaterial:
    cert: bytes = b""
    key: bytes = b""
    ca: bytes = b""

    def __repr__(self) -> str:
        return f"TLSMaterial(cert={bool(self.cert)}, key={bool(self.key)}, ca={bool(self.ca)})"

    def context(self) -> ssl.SSLContext:
        """A client context verifying the server against the system roots plus the CA."""
        ctx = ssl.create_default_context()
        if self.ca:
            try:
                ctx.load_verify_locations(cadata=self.ca.decode("ascii", "replace"))
            except (ssl.SSLError, ValueError):
                raise AuthError("failed to parse CA certificate") from None
        if self.cert:
            _load_cert_chain(ctx, self.cert, self.key)
        return ctx


def _load_cert_chain(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    # The ssl module reads key pairs from files only; they live just long enough to be loaded.
    with tempfile.TemporaryDirectory(prefix="tidal-tls-") as tmp:
        paths = []
        for name, data in (("tls.crt", cert), ("tls.key", key)):
            path = Path(tmp, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            paths.append(str(path))
        try:
            ctx.load_cert_chain(paths[0], paths[1])
        except ssl.SSLError as e:
            raise AuthError(f"failed to parse TLS certificate and key: {e.reason or e}") from None


@dataclass(frozen=True)
class ClientOptions:
    basic: BasicAuth | None = None
    tls: TLSMaterial | None = None
    # TLS came from secretRef: still honoured, but deprecated in favour of certSecretRef.
    deprecated_tls: bool = False


def _first(data: Mapping[str, bytes], *keys: str) -> bytes:
    for key in keys:
        if data.get(key):
            return data[key]
    return b""


def tls_from_secret(data: Mapping[str, bytes], ref: str) -> TLSMaterial:
    """fluxcd/pkg TLSConfigFromSecret's checks on `data` (the Secret `ref`, namespace/name)."""
    material = TLSMaterial(
        cert=_first(data, "tls.crt", "certFile"),
        key=_first(data, "tls.key", "keyFile"),
        ca=_first(data, "ca.crt", "caFile"),
    )
    if bool(material.cert) != bool(material.key):
        present, missing = ("tls.crt", "tls.key") if material.cert else ("tls.key", "tls.crt")
        raise AuthError(f"secret '{ref}' contains '{present}' but missing '{missing}'")
    if not material.cert and not material.ca:
        raise AuthError(
            f"secret '{ref}' must contain either 'ca.crt' or both 'tls.crt' and 'tls.key'"
        )
    with contextlib.suppress(AuthError):
        material.context()  # surfaces below with its own wording
    return material


def basic_from_secret(data: Mapping[str, bytes], ref: str) -> BasicAuth | None:
    has_user, has_password = "username" in data, "password" in data
    if not has_user and not has_password:
        return None
    if has_user != has_password:
        present, missing = ("username", "password") if has_user else ("password", "username")
        raise AuthError(
            f"secret '{ref}': malformed basic auth - has '{present}' but missing '{missing}'"
        )
    return BasicAuth(
        data["username"].decode("utf-8", "replace"), data["password"].decode("utf-8", "replace")
    )


def has_tls_keys(data: Mapping[str, bytes]) -> bool:
    return any(
        data.get(k) for k in ("tls.crt", "tls.key", "ca.crt", "certFile", "keyFile", "caFile")
    )


def client_options(
    namespace: str,
    secret: tuple[str, Mapping[str, bytes]] | None,
    cert_secret: tuple[str, Mapping[str, bytes]] | None,
) -> ClientOptions:
    """The options from the Secrets already read: (name, data) of secretRef and certSecretRef."""
    tls: TLSMaterial | None = None
    if cert_secret is not None:
        name, data = cert_secret
        try:
            tls = tls_from_secret(data, f"{namespace}/{name}")
            tls.context()
        except AuthError as e:
            raise AuthError(f"failed to construct Helm client's TLS config: {e}") from None
    basic: BasicAuth | None = None
    deprecated = False
    if secret is not None:
        name, data = secret
        ref = f"{namespace}/{name}"
        try:
            basic = basic_from_secret(data, ref)
            if tls is None and has_tls_keys(data):
                tls = tls_from_secret(data, ref)
                tls.context()
                deprecated = True
        except AuthError as e:
            raise AuthError(f"failed to detect authentication methods: {e}") from None
    return ClientOptions(basic=basic, tls=tls, deprecated_tls=deprecated)
