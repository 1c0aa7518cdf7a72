"""Clients for remote clusters: a Kustomization's spec.kubeConfig, as Flux reads it.

The kubeconfig comes from a Secret in the Kustomization's namespace (key `value`, then
`value.yaml`, or the key named) and is re-read at every reconciliation, so a rotated credential
takes effect at the next run. A tenant writes that Secret, so the kubeconfig is treated as
untrusted input:

- it must be self-contained: anything that reads the controller's disk (tokenFile,
  client-certificate, client-key, certificate-authority) would hand the controller's own files
  to the tenant's server, so it is refused;
- an exec credential plugin runs a program inside the controller, and insecure-skip-tls-verify
  sends credentials to whoever answers; both are refused unless the controller was started
  with --insecure-kubeconfig-exec / --insecure-kubeconfig-tls (Flux's flags);
- credentials stay in memory: lightkube would write certificate data to temporary files, so
  the TLS context is built here, the client key passing through an anonymous memory file;
- no message built here quotes the kubeconfig: errors name the Secret, the key and the field.

Secret-less access (spec.kubeConfig.configMapRef) needs a cloud provider's workload identity,
which tidal does not implement; it is refused with a message saying so.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import httpx2 as httpx
import msgspec
import yaml
from lightkube.config.client_adapter import BearerAuth, ExecAuth
from lightkube.config.kubeconfig import KubeConfig, SingleConfig

from tidal.api.meta import KUBECONFIG_KEY_PROVIDER, KubeConfigReference
from tidal.kube.client import ApiError, Kube
from tidal.kube.discovery import Discovery

_DEFAULT_KEYS: Final = ("value", "value.yaml")
# Providers Flux implements for configMapRef; tidal knows them, to say why it refuses them.
_CLOUD_PROVIDERS: Final = ("aws", "azure", "gcp", "generic")
_TIMEOUT: Final = httpx.Timeout(30.0, connect=5.0)


class RemoteConfigError(Exception):
    """spec.kubeConfig cannot be used; the message is safe to show (no kubeconfig content)."""


@dataclass(frozen=True)
class KubeConfigOptions:
    """What a kubeconfig from a Secret may do (Flux's --insecure-kubeconfig-* flags)."""

    allow_exec: bool = False
    allow_insecure_tls: bool = False


# -- reading the reference -------------------------------------------------------------------


async def read_kubeconfig(local: Kube, namespace: str, ref: KubeConfigReference) -> bytes:
    """The kubeconfig bytes spec.kubeConfig points at, with Flux's messages on failure."""
    if ref.secret_ref is None:
        if ref.config_map_ref is not None:
            await _refuse_config_map(local, namespace, ref.config_map_ref.name)
        raise RemoteConfigError(
            "invalid .spec.kubeConfig, neither .spec.kubeConfig.configMapRef nor "
            ".spec.kubeConfig.secretRef is set"
        )
    name = f"{namespace}/{ref.secret_ref.name}"
    try:
        secret = await local.get(f"/api/v1/namespaces/{namespace}/secrets/{ref.secret_ref.name}")
    except ApiError as e:
        reason = e.message
        raise RemoteConfigError(
            f"unable to read KubeConfig secret '{name}' error: {reason}"
        ) from None
    data: Mapping[str, str] = secret.get("data") or {}
    key = ref.secret_ref.key
    if key:
        if key not in data:
            raise RemoteConfigError(
                f"KubeConfig secret '{name}' does not contain a '{key}' key with a kubeconfig"
            )
    else:
        key = next((k for k in _DEFAULT_KEYS if k in data), "")
        if not key:
            raise RemoteConfigError(
                f"KubeConfig secret '{name}' does not contain a 'value' key with a kubeconfig"
            )
    try:
        return base64.b64decode(data[key], validate=True)
    except (binascii.Error, ValueError):
        raise RemoteConfigError(
            f"KubeConfig secret '{name}' key '{key}' is not valid base64"
        ) from None


async def _refuse_config_map(local: Kube, namespace: str, name: str) -> None:
    try:
        cm = await local.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    except ApiError as e:
        reason = e.message
        raise RemoteConfigError(f"failed to get configmap {namespace}/{name}: {reason}") from None
    provider = str((cm.get("data") or {}).get(KUBECONFIG_KEY_PROVIDER, ""))
    if provider not in _CLOUD_PROVIDERS:
        raise RemoteConfigError(f"provider '{provider}' not implemented")
    raise RemoteConfigError(
        f"provider '{provider}' not implemented: tidal has no workload identity for "
        "spec.kubeConfig.configMapRef; put a self-contained kubeconfig in a Secret and use "
        "spec.kubeConfig.secretRef"
    )


# -- turning bytes into a client --------------------------------------------------------------


@dataclass(frozen=True)
class _Parsed:
    config: SingleConfig
    ca_pem: str | None
    cert_pem: bytes | None
    key_pem: bytes | None


def _b64_field(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RemoteConfigError(f"kubeconfig {what} is not valid base64") from None


def parse(data: bytes, options: KubeConfigOptions) -> _Parsed:
    """Check a kubeconfig against the rules above and keep what the client needs."""
    try:
        raw = yaml.safe_load(data)
    except yaml.YAMLError as e:
        # YAML errors quote the offending text: report only where it is.
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise RemoteConfigError(f"kubeconfig is not valid YAML{where}") from None
    if not isinstance(raw, dict):
        raise RemoteConfigError("kubeconfig is not a YAML mapping")
    try:
        kc = KubeConfig.from_dict(
            {**raw, "clusters": raw.get("clusters") or [], "contexts": raw.get("contexts") or []}
        )
    except msgspec.ValidationError as e:
        raise RemoteConfigError(f"kubeconfig is malformed: {e}") from None
    except (KeyError, TypeError, AttributeError):
        raise RemoteConfigError(
            "kubeconfig is malformed: every cluster, context and user needs a name and a body"
        ) from None
    context = kc.current_context
    if not context and len(kc.contexts) == 1:
        context = next(iter(kc.contexts))
    if not context:
        raise RemoteConfigError("kubeconfig has no current-context")
    ctx = kc.contexts.get(context)
    if ctx is None:
        raise RemoteConfigError(f"kubeconfig current-context '{context}' is not defined")
    if ctx.cluster not in kc.clusters:
        raise RemoteConfigError(f"kubeconfig cluster '{ctx.cluster}' is not defined")
    if ctx.user and ctx.user not in kc.users:
        raise RemoteConfigError(f"kubeconfig user '{ctx.user}' is not defined")
    config = kc.get(context)
    assert config is not None
    cluster, user = config.cluster, config.user
    if not any(
        c.get("name") == ctx.cluster and (c.get("cluster") or {}).get("server")
        for c in raw.get("clusters") or []
        if isinstance(c, dict)
    ):
        raise RemoteConfigError(f"kubeconfig cluster '{ctx.cluster}' has no server")

    def self_contained(what: str) -> RemoteConfigError:
        return RemoteConfigError(
            f"kubeconfig {what} refers to a file; the kubeconfig of a remote cluster must be "
            "self-contained (use the *-data fields)"
        )

    if cluster.certificate_auth:
        raise self_contained("certificate-authority")
    if cluster.insecure and not options.allow_insecure_tls:
        raise RemoteConfigError(
            "kubeconfig disables TLS verification (insecure-skip-tls-verify), which is refused; "
            "start the controller with --insecure-kubeconfig-tls to allow it"
        )
    cert_pem = key_pem = None
    if user is not None:
        if user.token_file:
            raise self_contained("user tokenFile")
        if user.client_cert:
            raise self_contained("user client-certificate")
        if user.client_key:
            raise self_contained("user client-key")
        if user.auth_provider:
            raise RemoteConfigError("kubeconfig user auth-provider plugins are not supported")
        if user.exec is not None and not options.allow_exec:
            raise RemoteConfigError(
                "kubeconfig user runs an exec credential plugin, which is refused; start the "
                "controller with --insecure-kubeconfig-exec to allow it"
            )
        if bool(user.client_cert_data) != bool(user.client_key_data):
            raise RemoteConfigError(
                "kubeconfig user needs both client-certificate-data and client-key-data"
            )
        if user.client_cert_data and user.client_key_data:
            cert_pem = _b64_field(user.client_cert_data, "client-certificate-data")
            key_pem = _b64_field(user.client_key_data, "client-key-data")
    ca_pem = None
    if cluster.certificate_auth_data:
        ca = _b64_field(cluster.certificate_auth_data, "certificate-authority-data")
        ca_pem = ca.decode("ascii", errors="replace")
    return _Parsed(config, ca_pem, cert_pem, key_pem)


def _load_cert_chain(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """ssl reads client keys only from a path: give it an anonymous in-memory file (Linux
    memfd), which never reaches a disk and disappears when closed."""
    fd = os.memfd_create("tidal-remote-cert", os.MFD_CLOEXEC)
    try:
        view = memoryview(cert_pem + b"\n" + key_pem)
        while view:
            view = view[os.write(fd, view) :]
        ctx.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _ssl_context(parsed: _Parsed, options: KubeConfigOptions) -> ssl.SSLContext:
    try:
        if parsed.config.cluster.insecure and options.allow_insecure_tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx = ssl.create_default_context(cadata=parsed.ca_pem)
    except ssl.SSLError:
        raise RemoteConfigError(
            "kubeconfig certificate-authority-data is not a PEM certificate"
        ) from None
    if parsed.cert_pem is not None and parsed.key_pem is not None:
        try:
            _load_cert_chain(ctx, parsed.cert_pem, parsed.key_pem)
        except ssl.SSLError:
            raise RemoteConfigError(
                "kubeconfig client-certificate-data and client-key-data are not a PEM "
                "certificate and its key"
            ) from None
    return ctx


def _auth(config: SingleConfig) -> httpx.Auth | None:
    user = config.user
    if user is None:
        return None
    if user.token:
        return BearerAuth(user.token)
    if user.exec is not None:
        return ExecAuth(user.exec)
    if user.username and user.password:
        return httpx.BasicAuth(user.username, user.password)
    return None


def connect(
    data: bytes,
    options: KubeConfigOptions,
    *,
    impersonate: str | None = None,
    impersonate_groups: tuple[str, ...] = (),
) -> Kube:
    """A client for the cluster `data` (kubeconfig bytes) describes."""
    parsed = parse(data, options)
    http = httpx.AsyncClient(
        base_url=str(parsed.config.cluster.server),
        verify=_ssl_context(parsed, options),
        auth=_auth(parsed.config),
        timeout=_TIMEOUT,
        trust_env=False,
    )
    return Kube(
        parsed.config,
        impersonate=impersonate,
        impersonate_groups=impersonate_groups,
        http=http,
    )


# -- the cache ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    kube: Kube
    discovery: Discovery


class RemoteClients:
    """Clients per (kubeconfig content, impersonated user), shared by the Kustomizations
    whose Secrets hold the same kubeconfig. When a Kustomization's kubeconfig changes (a
    rotated credential), it moves to a client for the new content, and the old client is
    closed once no Kustomization uses it any more. Each client has its own Discovery: kinds
    and their REST paths belong to one API server."""

    def __init__(self, options: KubeConfigOptions) -> None:
        self.options = options
        self._entries: dict[str, _Entry] = {}
        # (owner, role) → the key of the client it uses; an entry is in use while some holder
        # maps to it, so that is not recorded a second time on the entry.
        self._held: dict[tuple[str, str], str] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(
        self,
        owner: str,
        data: bytes,
        *,
        impersonate: str | None = None,
        impersonate_groups: tuple[str, ...] = (),
        role: str = "",
    ) -> tuple[Kube, Discovery]:
        """The client for `data` acting as `impersonate`, on behalf of `owner` (a
        Kustomization's namespace/name). `role` tells apart clients one owner keeps at once
        (the applier and the admin checking its ServiceAccount)."""
        digest = hashlib.sha256(data).hexdigest()
        key = f"{digest}|{impersonate or ''}|{','.join(impersonate_groups)}"
        entry = self._entries.get(key)
        if entry is None:
            kube = connect(
                data,
                self.options,
                impersonate=impersonate,
                impersonate_groups=impersonate_groups,
            )
            entry = self._entries[key] = _Entry(kube, Discovery(kube))
        stale = self._held.get((owner, role))
        self._held[(owner, role)] = key
        if stale is not None and stale != key:
            await self._close_unused(stale)
        return entry.kube, entry.discovery

    async def release(self, owner: str) -> None:
        """`owner` no longer uses a remote cluster (deleted, or kubeConfig removed)."""
        for holder in [h for h in self._held if h[0] == owner]:
            await self._close_unused(self._held.pop(holder))

    def discovery_for(self, kube: Kube) -> Discovery | None:
        for entry in self._entries.values():
            if entry.kube is kube:
                return entry.discovery
        return None

    async def _close_unused(self, key: str) -> None:
        if key in self._held.values():
            return
        entry = self._entries.pop(key, None)
        if entry is not None:
            await entry.kube.close()

    async def close(self) -> None:
        entries = list(self._entries.values())
        self._entries.clear()
        self._held.clear()
        for entry in entries:
            await entry.kube.close()
