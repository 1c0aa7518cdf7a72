"""What `flux create kustomization` makes of its flags, and the row `flux get kustomizations`
prints for an object; no cluster involved.

The flag rules are flux's own (cmd/flux/create_kustomization.go and internal/flags, v2.9.5),
quirks included: `--source` splits its namespace off at the last dot, `--depends-on` keeps no
`@readyExpr`, `--health-check` accepts four kinds only and is ignored under `--wait`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from tidal.api.base import format_duration
from tidal.api.kustomize import DECRYPTION_PROVIDER_SOPS
from tidal.cli.objects import KUSTOMIZATION
from tidal.cli.options import CliError

# ExternalArtifact is a valid sourceRef kind, but the flux CLI does not offer it.
CLI_SOURCE_KINDS: Final = ("OCIRepository", "GitRepository", "Bucket")
SOURCE_FLAG_HELP: Final = (
    "source that contains the Kubernetes manifests in the format '[<kind>/]<name>.<namespace>', "
    f"where kind must be one of: ({', '.join(CLI_SOURCE_KINDS)}), if kind is not specified it "
    "defaults to GitRepository"
)
DECRYPTION_PROVIDERS: Final = (DECRYPTION_PROVIDER_SOPS,)
_HEALTH_CHECK_KINDS: Final = ("Deployment", "DaemonSet", "StatefulSet", "HelmRelease")
_HELM_RELEASE_API_VERSION: Final = "helm.toolkit.fluxcd.io/v2"


@dataclass(frozen=True)
class SourceRef:
    kind: str
    name: str
    namespace: str = ""

    def to_dict(self) -> dict[str, str]:
        out = {"kind": self.kind, "name": self.name}
        if self.namespace:
            out["namespace"] = self.namespace
        return out


def parse_source(text: str) -> SourceRef:
    """`--source [<kind>/]<name>[.<namespace>]`; the kind is matched case-insensitively and
    defaults to GitRepository."""
    if not text.strip():
        raise ValueError(f"no Kustomization source given, please specify {SOURCE_FLAG_HELP}")
    kind, name = "", text
    parts = text.split("/")
    if len(parts) == 2:
        kind, name = parts
    namespace = ""
    if "." in name:
        name, _, namespace = name.rpartition(".")
    if not name:
        raise ValueError(f"no name given for source of kind '{kind}'")
    if not kind:
        if name in CLI_SOURCE_KINDS:
            raise ValueError(f"no kind specified for source '{name}'")
        kind = "GitRepository"
    for known in CLI_SOURCE_KINDS:
        if known.casefold() == kind.casefold():
            return SourceRef(known, name, namespace)
    raise ValueError(
        f"source kind '{kind}' is not supported, must be one of: {', '.join(CLI_SOURCE_KINDS)}"
    )


def safe_relative_path(text: str) -> str:
    """`--path`: made relative to the artifact root and unable to climb out of it, always
    starting with `./` (flux's SafeRelativePath, without its lookup of symlinks in the current
    directory, which has nothing to do with the artifact)."""
    cleaned = posixpath.normpath("/" + text.strip().lstrip("/")).lstrip("/")
    return "./" if cleaned in ("", ".") else f"./{cleaned}"


def parse_decryption_provider(text: str) -> str:
    if not text.strip():
        raise ValueError(
            f"no decryption provider given, must be one of: {', '.join(DECRYPTION_PROVIDERS)}"
        )
    if text not in DECRYPTION_PROVIDERS:
        raise ValueError(
            f"unsupported decryption provider '{text}', must be one of: "
            + ", ".join(DECRYPTION_PROVIDERS)
        )
    return text


def depends_on(values: Sequence[str]) -> list[dict[str, str]]:
    """`--depends-on [<namespace>/]<name>`; flux drops an `@readyExpr` suffix."""
    refs = []
    for value in values:
        ref, _, _ = value.partition("@")
        namespace, slash, name = ref.partition("/")
        if not slash:
            namespace, name = "", ref
        refs.append({"name": name, **({"namespace": namespace} if namespace else {})})
    return refs


def health_checks(values: Sequence[str]) -> list[dict[str, str]]:
    """`--health-check <kind>/<name>.<namespace>` for the kinds flux knows to wait for."""
    checks = []
    for value in values:
        parts = value.split("/")
        if len(parts) != 2:
            # Go prints the split parts as %v: space-separated in brackets.
            raise CliError(
                f"invalid health check '{value}' must be in the format 'kind/name.namespace' "
                f"[{' '.join(parts)}]"
            )
        kind, name_namespace = parts
        if kind not in _HEALTH_CHECK_KINDS:
            raise CliError(
                f"invalid health check kind '{kind}' can be HelmRelease, Deployment, DaemonSet "
                "or StatefulSet"
            )
        name_ns = name_namespace.split(".")
        if len(name_ns) != 2:
            raise CliError(
                f"invalid health check '{value}' must be in the format 'kind/name.namespace'"
            )
        check = {"kind": kind, "name": name_ns[0], "namespace": name_ns[1]}
        if kind == "HelmRelease":
            check["apiVersion"] = _HELM_RELEASE_API_VERSION
        checks.append(check)
    return checks


@dataclass(frozen=True)
class KustomizationFlags:
    source: SourceRef
    interval: float
    path: str = "./"
    prune: bool = False
    wait: bool = False
    health_checks: tuple[str, ...] = ()
    health_check_timeout: float = 120.0
    depends_on: tuple[str, ...] = ()
    service_account: str = ""
    decryption_provider: str = ""
    decryption_secret: str = ""
    target_namespace: str = ""
    kubeconfig_secret_ref: str = ""
    retry_interval: float = 0.0


def kustomization_spec(f: KustomizationFlags) -> dict[str, Any]:
    """The spec flux builds from the flags (fields at their zero value left out)."""
    spec: dict[str, Any] = {
        "interval": format_duration(f.interval),
        "path": f.path,
        "prune": f.prune,
        "sourceRef": f.source.to_dict(),
    }
    if f.target_namespace:
        spec["targetNamespace"] = f.target_namespace
    if f.depends_on:
        spec["dependsOn"] = depends_on(f.depends_on)
    if f.kubeconfig_secret_ref:
        spec["kubeConfig"] = {"secretRef": {"name": f.kubeconfig_secret_ref}}
    if f.health_checks and not f.wait:
        spec["healthChecks"] = health_checks(f.health_checks)
        spec["timeout"] = format_duration(f.health_check_timeout)
    if f.wait:
        spec["wait"] = True
        spec["timeout"] = format_duration(f.health_check_timeout)
    if f.service_account:
        spec["serviceAccountName"] = f.service_account
    if f.decryption_provider:
        spec["decryption"] = {"provider": f.decryption_provider}
        if f.decryption_secret:
            spec["decryption"]["secretRef"] = {"name": f.decryption_secret}
    if f.retry_interval > 0:
        spec["retryInterval"] = format_duration(f.retry_interval)
    return spec


def kustomization(
    name: str, namespace: str, labels: Mapping[str, str], spec: dict[str, Any]
) -> dict[str, Any]:
    return KUSTOMIZATION.manifest(name, namespace, spec, labels)


def source_column(obj: Mapping[str, Any]) -> str:
    """`flux get kustomizations --show-source`: <Kind>/<namespace>/<name>, the namespace
    defaulting to the Kustomization's."""
    ref = (obj.get("spec") or {}).get("sourceRef") or {}
    namespace = ref.get("namespace") or (obj.get("metadata") or {}).get("namespace", "")
    return f"{ref.get('kind', '')}/{namespace}/{ref.get('name', '')}"
