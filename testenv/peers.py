"""Flux's kustomize-controller, compiled from its pinned Go module, as a benchmark peer.

`python -m testenv build-peers` builds it and source-controller (testenv.flux_controllers); CI's
`python -m testenv build` never does: only the benchmarks run them, and only as executables.

v1.9.5 is the release flux v2.9.5 ships (its manifests/bases). Its main package is the module
root and its go:embed directives are all in _test.go files, so a wrapper module suffices; it
repeats the go.mod replace directives Go ignores in a dependency, so the binary links what a
release links:

- go-digest at the pseudo-version with BLAKE3 (as source-controller);
- kustomize api/kyaml at v0.21.1 (kustomize v5.8.1) and gopkg.in/yaml.v3 at v3.0.1.

`./api` (a nested module, absent from the published zip) needs nothing: the main module requires
the published api module of the same release.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testenv import flux_controllers
from testenv.build import Wrapper, cache_root

KUSTOMIZE_CONTROLLER = "github.com/fluxcd/kustomize-controller"
KUSTOMIZE_CONTROLLER_VERSION = "v1.9.5"
_REPLACE = {
    "github.com/opencontainers/go-digest": "v1.0.1-0.20220411205349-bde1400a84be",
    "sigs.k8s.io/kustomize/api": "v0.21.1",
    "sigs.k8s.io/kustomize/kyaml": "v0.21.1",
    "gopkg.in/yaml.v3": "v3.0.1",
}


def kustomize_controller_dir() -> Path:
    return cache_root() / f"kustomize-controller-{KUSTOMIZE_CONTROLLER_VERSION}"


def kustomize_controller_path() -> Path:
    return kustomize_controller_dir() / "kustomize-controller"


def kustomize_controller_wrapper() -> Wrapper:
    return Wrapper(
        name="kustomize-controller",
        require={KUSTOMIZE_CONTROLLER: KUSTOMIZE_CONTROLLER_VERSION},
        packages={"kustomize-controller": KUSTOMIZE_CONTROLLER},
        replace=dict(_REPLACE),
    )


def build_kustomize_controller(*, force: bool = False) -> Path:
    """The path of the pinned kustomize-controller binary, compiling it first unless cached.

    Built as source-controller is: its tolerant tidy lets test-only requirements the proxy
    lacks be missing."""
    return flux_controllers.build_cached(
        kustomize_controller_wrapper(),
        kustomize_controller_path(),
        KUSTOMIZE_CONTROLLER_VERSION,
        force=force,
    )


def build_peers(*, force: bool = False) -> list[Path]:
    """Both Flux controllers the Kustomization benchmark runs; cached ones are reused."""
    return [
        flux_controllers.build_source_controller(force=force),
        build_kustomize_controller(force=force),
    ]


def is_built() -> bool:
    return (
        flux_controllers.source_controller_path().is_file()
        and kustomize_controller_path().is_file()
    )


def flux_crds() -> list[dict[str, Any]]:
    """Every CRD the two controllers watch, from their modules' config/crd/bases: source
    kinds (kustomize-controller watches those too) and Kustomization."""
    return flux_controllers.flux_crds() + flux_controllers.module_crds(
        KUSTOMIZE_CONTROLLER, KUSTOMIZE_CONTROLLER_VERSION
    )


@dataclass
class KustomizeControllerArgs:
    """How to run kustomize-controller as a plain process against a kubeconfig, outside a Pod."""

    kubeconfig: Path
    metrics_addr: str
    health_addr: str
    concurrent: int = 4
    namespace: str = "flux-system"
    extra: list[str] = field(default_factory=list)

    def argv(self, binary: Path) -> list[str]:
        return [
            str(binary),
            f"--metrics-addr={self.metrics_addr}",
            f"--health-addr={self.health_addr}",
            f"--concurrent={self.concurrent}",
            "--enable-leader-election=false",
            "--watch-all-namespaces=true",
            # No notification-controller: events go to the API server only.
            "--events-addr=",
            "--log-level=info",
            "--log-encoding=json",
            *self.extra,
        ]

    def env(self, base: dict[str, str]) -> dict[str, str]:
        # It has no --kubeconfig flag: controller-runtime reads $KUBECONFIG.
        return {**base, "KUBECONFIG": str(self.kubeconfig), "RUNTIME_NAMESPACE": self.namespace}


def start_kustomize_controller(
    args: KustomizeControllerArgs, log: Path, base_env: dict[str, str]
) -> subprocess.Popen[bytes]:
    binary = build_kustomize_controller()
    with log.open("ab") as out:
        return subprocess.Popen(
            args.argv(binary),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=args.env(base_env),
        )


# -- helm-controller ---------------------------------------------------------------------------

# v1.6.4 requires source-controller/api v1.9.0, the API source-controller v1.9.5 serves, and
# asks for go 1.26.0. Its main package is the module root and its go:embed directives are in
# _test.go files only, like kustomize-controller's; the wrapper repeats its go.mod replaces
# (go-digest at its own BLAKE3 pseudo-version, kustomize api/kyaml at v0.21.1).
HELM_CONTROLLER = "github.com/fluxcd/helm-controller"
HELM_CONTROLLER_VERSION = "v1.6.4"
_HELM_REPLACE = {
    "github.com/opencontainers/go-digest": "v1.0.1-0.20231025023718-d50d2fec9c98",
    "sigs.k8s.io/kustomize/api": "v0.21.1",
    "sigs.k8s.io/kustomize/kyaml": "v0.21.1",
}


def helm_controller_path() -> Path:
    return cache_root() / f"helm-controller-{HELM_CONTROLLER_VERSION}" / "helm-controller"


def helm_controller_wrapper() -> Wrapper:
    return Wrapper(
        name="helm-controller",
        require={HELM_CONTROLLER: HELM_CONTROLLER_VERSION},
        packages={"helm-controller": HELM_CONTROLLER},
        replace=dict(_HELM_REPLACE),
    )


def build_helm_controller(*, force: bool = False) -> Path:
    """The path of the pinned helm-controller binary, compiling it first unless cached."""
    return flux_controllers.build_cached(
        helm_controller_wrapper(), helm_controller_path(), HELM_CONTROLLER_VERSION, force=force
    )


def build_helm_peers(*, force: bool = False) -> list[Path]:
    """The Flux controllers the HelmRelease benchmark runs: source- and helm-controller."""
    return [
        flux_controllers.build_source_controller(force=force),
        build_helm_controller(force=force),
    ]


def helm_peers_built() -> bool:
    return flux_controllers.source_controller_path().is_file() and helm_controller_path().is_file()


def helm_crds() -> list[dict[str, Any]]:
    """Source kinds (HelmRepository, HelmChart, ...) and HelmRelease, from the modules."""
    return flux_controllers.flux_crds() + flux_controllers.module_crds(
        HELM_CONTROLLER, HELM_CONTROLLER_VERSION
    )


@dataclass
class HelmControllerArgs:
    """How to run helm-controller as a plain process against a kubeconfig, outside a Pod."""

    kubeconfig: Path
    metrics_addr: str
    health_addr: str
    concurrent: int = 4
    namespace: str = "flux-system"
    extra: list[str] = field(default_factory=list)

    def argv(self, binary: Path) -> list[str]:
        return [
            str(binary),
            f"--metrics-addr={self.metrics_addr}",
            f"--health-addr={self.health_addr}",
            f"--concurrent={self.concurrent}",
            "--enable-leader-election=false",
            "--watch-all-namespaces=true",
            # No notification-controller: events go to the API server only.
            "--events-addr=",
            "--log-level=info",
            "--log-encoding=json",
            *self.extra,
        ]

    def env(self, base: dict[str, str]) -> dict[str, str]:
        # No --kubeconfig flag either: controller-runtime reads $KUBECONFIG.
        return {**base, "KUBECONFIG": str(self.kubeconfig), "RUNTIME_NAMESPACE": self.namespace}


def start_helm_controller(
    args: HelmControllerArgs, log: Path, base_env: dict[str, str]
) -> subprocess.Popen[bytes]:
    binary = build_helm_controller()
    with log.open("ab") as out:
        return subprocess.Popen(
            args.argv(binary),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=args.env(base_env),
        )
