"""The real helm CLI, compiled from its pinned Go module, as a test oracle for `tidal.helm`.

Tests render with both and compare (`helm template` against `tidal.helm.render`), and check that
releases tidal stores read back through `helm list/history/get` and the other way round. The pin
(versions.HELM) is the Helm SDK version helm-python-sdk embeds, so both sides run the same Go
code. helm.sh/helm/v4 has no replace directives, so a plain wrapper module builds it; the binary
is cached on its own next to the flux CLI and only ever executed.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from testenv import versions
from testenv.build import Wrapper, _build_wrapper, cache_root

MODULE = "helm.sh/helm/v4"


def helm_dir() -> Path:
    return cache_root() / f"helm-{versions.HELM}"


def helm_path() -> Path:
    return helm_dir() / "helm"


def is_built() -> bool:
    return helm_path().is_file()


def wrapper() -> Wrapper:
    return Wrapper(
        name="helm",
        require={MODULE: versions.HELM},
        packages={"helm": f"{MODULE}/cmd/helm"},
        # What helm's Makefile stamps for a tagged release (metadata empty = not "unreleased").
        ldflags=[f"-X {MODULE}/internal/version.version={versions.HELM}"],
    )


def build_helm(*, force: bool = False) -> Path:
    """The path of the pinned helm binary, compiling it first unless it is cached."""
    target = helm_path()
    if target.is_file() and not force:
        return target
    if shutil.which("go") is None:
        sys.exit("building the helm CLI needs the Go toolchain on PATH")
    root = helm_dir()
    work, out = root / "src", root / "bin.partial"
    cache_root().mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.monotonic()
    _build_wrapper(wrapper(), work, out)
    # Move into place last so an interrupted build never looks complete.
    (out / "helm").replace(target)
    shutil.rmtree(out, ignore_errors=True)
    print(f"helm {versions.HELM} built in {time.monotonic() - start:.0f}s: {target}", flush=True)
    return target


if __name__ == "__main__":
    print(build_helm())
