"""Flux's own published files, read from its pinned Go modules, as oracles for parity tests.

Only facts are taken from them at test time (field names, types, patterns, defaults); nothing is
copied into tidal. The Go module proxy serves the module zip even where our Go toolchain is too
old to build the module, which is all a file read needs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tidal.kube import yamlio

# One Flux release: kustomize-controller v1.10.1 shipped beside source-controller v1.10.1.
SOURCE_CONTROLLER = ("github.com/fluxcd/source-controller", "v1.10.1")
KUSTOMIZE_CONTROLLER = ("github.com/fluxcd/kustomize-controller", "v1.10.1")
# The newest helm-controller the module proxy serves; flux 2.9.5 links its API v1.6.4 too.
HELM_CONTROLLER = ("github.com/fluxcd/helm-controller", "v1.6.4")


@cache
def module_zip(module: str, version: str) -> str:
    if shutil.which("go") is None:
        pytest.skip("the Go toolchain is needed to fetch Flux's reference files")
    env = dict(os.environ, GOTOOLCHAIN="local", GOFLAGS="-mod=mod")
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    info = json.loads(out.stdout)
    # A toolchain-too-old "Error" still leaves the downloaded zip in the module cache.
    zip_path = info.get("Zip")
    if not zip_path or not Path(zip_path).exists():
        raise RuntimeError(
            f"could not download {module}@{version}: {info.get('Error', out.stderr)}"
        )
    return str(zip_path)


def read_file(module: str, version: str, path: str) -> str:
    with zipfile.ZipFile(module_zip(module, version)) as z:
        return z.read(f"{module}@{version}/{path}").decode()


def flux_crd(module: str, version: str, file: str) -> dict[str, Any]:
    docs = yamlio.load_all(read_file(module, version, f"config/crd/bases/{file}"), source=file)
    return docs[0]
