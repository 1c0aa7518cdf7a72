"""Compile the control plane's binaries from their Go modules, pinned, and cache them.

k8s.io/kubernetes cannot be `go install`ed: its go.mod points every k8s.io staging module at a
directory inside its own tree (and lists them at v0.0.0). So each component is built from a tiny
wrapper module that requires the pinned release and, for Kubernetes, replaces each staging module
with its published v0.Y.Z twin. etcd's server module and kwok carry replace directives of their
own, which Go ignores in a dependency, so they get the same treatment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from testenv import versions

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
KWOK_STAGES = "kwok-stages.yaml"

# kwok only moves simulated objects through the lifecycle stages it is given; these are the ones
# kwokctl itself uses: nodes come up Ready and keep their lease, pods become Ready, Jobs complete.
_KWOK_STAGE_FILES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)


def cache_root() -> Path:
    base = os.environ.get("TIDAL_TESTENV_CACHE") or Path.home() / ".cache" / "tidal-testenv"
    return Path(base)


def bin_dir() -> Path:
    return cache_root() / versions.cache_key() / "bin"


def plane_built() -> bool:
    return all((bin_dir() / name).is_file() for name in (*BINARIES, KWOK_STAGES))


def is_built() -> bool:
    """Everything `build()` makes is cached: the plane's binaries and the flux CLI oracle."""
    from testenv import flux_cli  # flux_cli builds on this module's helpers

    return plane_built() and flux_cli.is_built()


@dataclass
class Wrapper:
    """One wrapper module: what it requires, how it rewrites staging modules, what it builds."""

    name: str
    require: dict[str, str]
    packages: dict[str, str]  # output binary name -> Go package path
    replace: dict[str, str] = field(default_factory=dict)
    ldflags: list[str] = field(default_factory=list)

    def go_mod(self) -> str:
        lines = [f"module tidal.dev/testenv/{self.name}", "", f"go {versions.GO_DIRECTIVE}", ""]
        lines += ["require ("] + [f"\t{m} {v}" for m, v in self.require.items()] + [")", ""]
        if self.replace:
            lines += ["replace ("]
            lines += [f"\t{m} => {m} {v}" for m, v in sorted(self.replace.items())]
            lines += [")", ""]
        return "\n".join(lines)

    def tools_go(self) -> str:
        # A build-tagged file importing the commands keeps `go mod tidy` from pruning them.
        imports = "\n".join(f'\t_ "{p}"' for p in self.packages.values())
        return f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    # Never let a go directive trigger a toolchain download: only the module proxy is reachable.
    env.setdefault("GOTOOLCHAIN", "local")
    env["GOFLAGS"] = "-mod=mod -buildvcs=false"
    env["CGO_ENABLED"] = "0"
    return env


def _run(cmd: list[str], cwd: Path) -> None:
    print(f"+ {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, cwd=cwd, env=_go_env(), check=True)


def _download(module: str) -> dict[str, str]:
    out = subprocess.run(
        ["go", "mod", "download", "-json", module],
        env=_go_env(),
        cwd=cache_root(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    info: dict[str, str] = json.loads(out)
    return info


def _staging_modules(kubernetes: str) -> list[str]:
    gomod = Path(_download(f"k8s.io/kubernetes@{kubernetes}")["GoMod"]).read_text()
    return re.findall(r"^\s*(k8s\.io/[\w.-]+) => \./staging/", gomod, re.MULTILINE)


def wrappers() -> list[Wrapper]:
    k8s = versions.KUBERNETES
    major, minor, patch = k8s.lstrip("v").split(".")
    staging = f"v0.{minor}.{patch}"
    version_vars = {
        "gitVersion": k8s,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
    }
    # Without these the binaries report v0.0.0-master, which breaks version negotiation.
    ldflags = [
        f"-X {pkg}.{var}={val}"
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for var, val in version_vars.items()
    ]
    return [
        Wrapper(
            name="kubernetes",
            require={"k8s.io/kubernetes": k8s},
            replace={m: staging for m in _staging_modules(k8s)},
            packages={
                n: f"k8s.io/kubernetes/cmd/{n}"
                for n in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
            },
            ldflags=ldflags,
        ),
        Wrapper(
            name="etcd",
            require={"go.etcd.io/etcd/server/v3": versions.ETCD},
            packages={"etcd": "go.etcd.io/etcd/server/v3"},
        ),
        Wrapper(
            name="kwok",
            require={"sigs.k8s.io/kwok": versions.KWOK},
            packages={"kwok": "sigs.k8s.io/kwok/cmd/kwok"},
            ldflags=[f"-X sigs.k8s.io/kwok/pkg/consts.Version={versions.KWOK}"],
        ),
    ]


def _build_wrapper(w: Wrapper, work: Path, out: Path) -> None:
    src = work / w.name
    src.mkdir(parents=True, exist_ok=True)
    (src / "go.mod").write_text(w.go_mod())
    (src / "tools.go").write_text(w.tools_go())
    _run(["go", "mod", "tidy"], src)
    flags = " ".join(["-s", "-w", *w.ldflags])
    if len(w.packages) == 1:
        ((name, pkg),) = w.packages.items()
        _run(["go", "build", "-trimpath", "-ldflags", flags, "-o", str(out / name), pkg], src)
    else:
        _run(
            ["go", "build", "-trimpath", "-ldflags", flags, "-o", f"{out}/", *w.packages.values()],
            src,
        )


def build(*, force: bool = False) -> Path:
    """Build every binary unless all are cached; returns the directory holding the plane's.

    The flux CLI (testenv.flux_cli, a test oracle) is built too, cached on its own."""
    from testenv import flux_cli

    target = bin_dir()
    if is_built() and not force:
        print(f"testenv binaries are cached in {target} and {flux_cli.flux_dir()}")
        return target
    if shutil.which("go") is None:
        sys.exit("testenv build needs the Go toolchain on PATH")
    if force or not plane_built():
        _build_plane(target)
    flux_cli.build_flux(force=force)
    return target


def _build_plane(target: Path) -> None:
    root = cache_root() / versions.cache_key()
    work, staging_out = root / "src", root / "bin.partial"
    cache_root().mkdir(parents=True, exist_ok=True)
    shutil.rmtree(staging_out, ignore_errors=True)
    staging_out.mkdir(parents=True)
    start = time.monotonic()
    for w in wrappers():
        t = time.monotonic()
        _build_wrapper(w, work, staging_out)
        print(f"built {', '.join(w.packages)} in {time.monotonic() - t:.0f}s", flush=True)
    kwok_dir = Path(_download(f"sigs.k8s.io/kwok@{versions.KWOK}")["Dir"])
    stages = [(kwok_dir / f).read_text().strip() for f in _KWOK_STAGE_FILES]
    (staging_out / KWOK_STAGES).write_text("\n---\n".join(stages) + "\n")
    # Rename last so an interrupted build never looks complete.
    shutil.rmtree(target, ignore_errors=True)
    staging_out.rename(target)
    print(f"testenv binaries built in {time.monotonic() - start:.0f}s into {target}")
