"""The real flux CLI, compiled from its pinned Go module, as a test oracle for `tidal`'s verbs.

Tests run the same command through both CLIs and compare what they print or write. The binary
is only ever executed, never read for code.

Two things keep `go build github.com/fluxcd/flux2/v2/cmd/flux` from working straight off the
module proxy, so the wrapper module (testenv.build's approach) points flux2 at a writable copy:

- cmd/flux embeds `manifests/*.yaml`, which flux's release pipeline renders with kustomize from
  remote bases before building; the published module zip does not contain them and `go:embed`
  fails on a pattern without matches. The copy gets one comment-only file instead, so this
  binary cannot `flux install` from embedded manifests, which no test asks of it.
- flux2's own `replace` directive (gopkg.in/yaml.v3) is ignored in a dependency; the wrapper
  repeats it so the binary links the same code as a release.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from testenv import versions
from testenv.build import Wrapper, _build_wrapper, _download, cache_root

MODULE = "github.com/fluxcd/flux2/v2"
_STUB_MANIFEST = (
    "# Built by tidal's testenv: flux's install manifests are rendered from remote kustomize\n"
    "# bases at release time and are not part of the Go module, so none are embedded here.\n"
)


def flux_dir() -> Path:
    return cache_root() / f"flux-{versions.FLUX}"


def flux_path() -> Path:
    return flux_dir() / "flux"


def is_built() -> bool:
    return flux_path().is_file()


@dataclass
class _LocalWrapper(Wrapper):
    """A wrapper whose main requirement is replaced by a directory (the patched copy)."""

    local: dict[str, str] | None = None

    def go_mod(self) -> str:
        lines = [super().go_mod()]
        lines += [f"replace {m} => {d}" for m, d in sorted((self.local or {}).items())]
        return "\n".join(lines) + "\n"


def _writable_copy(src: Path, dst: Path) -> None:
    # The module cache is read-only; copies keep those modes, and the stub must be written.
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    for root, dirs, files in os.walk(dst):
        for name in dirs + files:
            p = Path(root, name)
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    dst.chmod(dst.stat().st_mode | stat.S_IWUSR)


def wrapper(source_copy: Path) -> Wrapper:
    return _LocalWrapper(
        name="flux",
        require={MODULE: versions.FLUX},
        packages={"flux": f"{MODULE}/cmd/flux"},
        replace={"gopkg.in/yaml.v3": "v3.0.1"},
        # Release builds stamp the version without the "v" (goreleaser's .Version).
        ldflags=[f"-X main.VERSION={versions.FLUX.lstrip('v')}"],
        local={MODULE: str(source_copy)},
    )


def build_flux(*, force: bool = False) -> Path:
    """The path of the pinned flux binary, compiling it first unless it is cached."""
    target = flux_path()
    if target.is_file() and not force:
        return target
    if shutil.which("go") is None:
        sys.exit("building the flux CLI needs the Go toolchain on PATH")
    root = flux_dir()
    work, out = root / "src", root / "bin.partial"
    cache_root().mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.monotonic()
    module_dir = Path(_download(f"{MODULE}@{versions.FLUX}")["Dir"])
    copy = work / "flux2"
    _writable_copy(module_dir, copy)
    (copy / "cmd" / "flux" / "manifests").mkdir(exist_ok=True)
    (copy / "cmd" / "flux" / "manifests" / "README.yaml").write_text(_STUB_MANIFEST)
    _build_wrapper(wrapper(copy), work, out)
    # Move into place last so an interrupted build never looks complete.
    (out / "flux").replace(target)
    shutil.rmtree(out, ignore_errors=True)
    print(f"flux {versions.FLUX} built in {time.monotonic() - start:.0f}s: {target}", flush=True)
    return target
