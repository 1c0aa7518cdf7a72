"""Flux's own controllers, compiled from their pinned Go modules, to benchmark tidal against.

The binaries are only ever executed, never read for code. So far: source-controller.

source-controller's main package is its module root. Two of its go.mod directives are ignored
once the module is a dependency, so the wrapper module (testenv.build's approach) deals with both:

- `github.com/fluxcd/source-controller/api => ./api`: the api directory is a nested module and is
  not in the published zip; the published `api` module of the same release is what the main
  module requires anyway, so nothing needs repeating.
- `github.com/opencontainers/go-digest => <a pseudo-version>` (for BLAKE3): repeated in the
  wrapper so the binary links the same code as a release.

Its go:embed directives are all in _test.go files, so unlike the flux CLI (testenv.flux_cli) no
patched copy of the module is needed. The module proxy this machine reaches lacks two of its
requirements' zips, so the wrapper differs from a release build in two ways:

- github.com/fluxcd/pkg/artifact v0.18.3 (the storage and artifact server) is replaced with
  v0.18.1, the nearest published release; their go.mod files differ only in dependency bumps.
- github.com/fluxcd/pkg/helmtestserver is only imported by tests, so `go mod tidy -e` lets it be
  missing (plain `go mod tidy`, as testenv.build runs it, gives up on it).

v1.9.5 is pinned because v1.10 asks for Go 1.27, newer than the toolchain the testenv build uses.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testenv.build import Wrapper, _download, _run, cache_root

SOURCE_CONTROLLER = "github.com/fluxcd/source-controller"
SOURCE_CONTROLLER_VERSION = "v1.9.5"
_REPLACE = {
    "github.com/opencontainers/go-digest": "v1.0.1-0.20220411205349-bde1400a84be",
    "github.com/fluxcd/pkg/artifact": "v0.18.1",
}
_CRD_DIR = "config/crd/bases/"


def source_controller_dir() -> Path:
    return cache_root() / f"source-controller-{SOURCE_CONTROLLER_VERSION}"


def source_controller_path() -> Path:
    return source_controller_dir() / "source-controller"


def source_controller_wrapper() -> Wrapper:
    return Wrapper(
        name="source-controller",
        require={SOURCE_CONTROLLER: SOURCE_CONTROLLER_VERSION},
        packages={"source-controller": SOURCE_CONTROLLER},
        replace=dict(_REPLACE),
    )


def _build_tolerant(w: Wrapper, work: Path, out: Path) -> None:
    """testenv.build._build_wrapper for one package, with a tidy that tolerates missing
    test-only modules."""
    src = work / w.name
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text(w.go_mod())
    (src / "tools.go").write_text(w.tools_go())
    _run(["go", "mod", "tidy", "-e"], src)
    ((name, pkg),) = w.packages.items()
    flags = " ".join(["-s", "-w", *w.ldflags])
    _run(["go", "build", "-trimpath", "-ldflags", flags, "-o", str(out / name), pkg], src)


def build_cached(w: Wrapper, target: Path, version: str, *, force: bool = False) -> Path:
    """`target`, the binary of `w`'s one package, compiling it into target's directory first
    unless it is cached there (testenv.peers builds kustomize-controller the same way)."""
    if target.is_file() and not force:
        return target
    if shutil.which("go") is None:
        sys.exit(f"building {w.name} needs the Go toolchain on PATH")
    root = target.parent
    work, out = root / "src", root / "bin.partial"
    root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.monotonic()
    _build_tolerant(w, work, out)
    # Move into place last so an interrupted build never looks complete.
    (out / target.name).replace(target)
    shutil.rmtree(out, ignore_errors=True)
    took = time.monotonic() - start
    print(f"{w.name} {version} built in {took:.0f}s: {target}")
    return target


def build_source_controller(*, force: bool = False) -> Path:
    """The path of the pinned source-controller binary, compiling it first unless cached."""
    return build_cached(
        source_controller_wrapper(),
        source_controller_path(),
        SOURCE_CONTROLLER_VERSION,
        force=force,
    )


def module_crds(module: str, version: str) -> list[dict[str, Any]]:
    """The CRDs a controller module publishes in its config/crd/bases."""
    zip_path = _download(f"{module}@{version}")["Zip"]
    prefix = f"{module}@{version}/{_CRD_DIR}"
    crds: list[dict[str, Any]] = []
    with zipfile.ZipFile(zip_path) as z:
        for name in sorted(z.namelist()):
            if name.startswith(prefix) and name.endswith(".yaml"):
                docs = yaml.safe_load_all(z.read(name))
                crds += [d for d in docs if d and d.get("kind") == "CustomResourceDefinition"]
    return crds


def flux_crds() -> list[dict[str, Any]]:
    """Every CRD source-controller serves, as published in its module's config/crd/bases.

    The controller watches all of its kinds and does not start until each CRD exists."""
    return module_crds(SOURCE_CONTROLLER, SOURCE_CONTROLLER_VERSION)


@dataclass
class SourceControllerArgs:
    """How to run source-controller as a plain process against a kubeconfig, outside a Pod."""

    kubeconfig: Path
    storage_path: Path
    storage_addr: str  # host:port
    metrics_addr: str
    health_addr: str
    concurrent: int = 4
    namespace: str = "flux-system"
    extra: list[str] = field(default_factory=list)

    def argv(self, binary: Path) -> list[str]:
        return [
            str(binary),
            f"--storage-path={self.storage_path}",
            f"--storage-addr={self.storage_addr}",
            # Its default advertised address is the Pod's hostname, unreachable outside a cluster.
            f"--storage-adv-addr={self.storage_addr}",
            f"--metrics-addr={self.metrics_addr}",
            f"--health-addr={self.health_addr}",
            f"--concurrent={self.concurrent}",
            "--enable-leader-election=false",
            "--watch-all-namespaces=true",
            "--log-level=info",
            "--log-encoding=json",
            *self.extra,
        ]

    def env(self, base: dict[str, str]) -> dict[str, str]:
        # controller-runtime reads the kubeconfig from $KUBECONFIG; RUNTIME_NAMESPACE is where a
        # Pod would run (used for leader election and a namespaced watch).
        return {**base, "KUBECONFIG": str(self.kubeconfig), "RUNTIME_NAMESPACE": self.namespace}


def start_source_controller(
    args: SourceControllerArgs, log: Path, base_env: dict[str, str]
) -> subprocess.Popen[bytes]:
    binary = build_source_controller()
    args.storage_path.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            args.argv(binary),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=args.env(base_env),
        )


if __name__ == "__main__":
    build_source_controller(force="--force" in sys.argv)
    print("\n".join(c["metadata"]["name"] for c in flux_crds()))
