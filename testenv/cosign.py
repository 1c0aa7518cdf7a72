"""The real cosign CLI, compiled from its pinned Go module and cached beside the flux CLI, to
sign test artifacts the way users sign them (`cosign sign --key`), so tidal's signature check
is tested against cosign's own output. The binary is only ever executed, never read for code.

Signatures are made offline: no transparency log upload, no signing config from Sigstore's TUF
repository, and the classic `sha256-<hex>.sig` tag layout (what `--new-bundle-format=false`
writes), which is what tidal verifies.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from testenv import versions
from testenv.build import Wrapper, cache_root

MODULE = "github.com/sigstore/cosign/v3"
KEY_PASSWORD = "tidal-test"  # noqa: S105 - the throwaway test key pair's password


def cosign_path() -> Path:
    return cache_root() / f"cosign-{versions.COSIGN}" / "cosign"


def is_built() -> bool:
    return cosign_path().is_file()


def wrapper() -> Wrapper:
    return Wrapper(
        name="cosign",
        require={MODULE: versions.COSIGN},
        packages={"cosign": f"{MODULE}/cmd/cosign"},
        ldflags=[f"-X sigs.k8s.io/release-utils/version.gitVersion={versions.COSIGN}"],
    )


def build_cosign(*, force: bool = False) -> Path:
    """The path of the pinned cosign binary, compiling it first unless it is cached."""
    from testenv.flux_controllers import build_cached

    return build_cached(wrapper(), cosign_path(), versions.COSIGN, force=force)


def _env(directory: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(directory),
        "COSIGN_PASSWORD": KEY_PASSWORD,
        "COSIGN_YES": "true",
    }


def generate_key_pair(binary: Path, directory: Path) -> tuple[Path, Path]:
    """`cosign generate-key-pair` in `directory`: (cosign.key, cosign.pub)."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(binary), "generate-key-pair"],
        cwd=directory,
        env=_env(directory),
        check=True,
        capture_output=True,
        timeout=60,
    )
    return directory / "cosign.key", directory / "cosign.pub"


def sign(binary: Path, key: Path, reference: str, *, ca_file: Path | None = None) -> None:
    """Sign `reference` (`host/repo@sha256:...`) offline with `key`."""
    env = _env(key.parent)
    if ca_file is not None:
        env["SSL_CERT_FILE"] = str(ca_file)
    out = subprocess.run(
        [
            str(binary), "sign", "--key", str(key), "--tlog-upload=false",
            "--use-signing-config=false", "--new-bundle-format=false",
            "--allow-http-registry", reference,
        ],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"cosign sign failed: {out.stderr}")


if __name__ == "__main__":
    print(build_cosign(force="--force" in sys.argv))
