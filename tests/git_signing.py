"""Test-only: OpenPGP keys and signed commits, made with the real gpg and git CLIs.

`testenv.git_repos` writes commits with `git fast-import`, which cannot sign, so a signed commit
is made the way a person makes one: in a clone, with `git commit -S`, then pushed to the bare
repository. Each key lives in its own short-lived GNUPGHOME (under /tmp, since gpg-agent's socket
path must stay short); `GpgKey.close()` stops that home's agent and removes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from testenv.git_repos import FileContent, rev_parse, run_git


def _gpg(home: Path, *args: str) -> str:
    proc = subprocess.run(
        ["gpg", "--batch", "--no-tty", *args],
        env={**os.environ, "GNUPGHOME": str(home)},
        capture_output=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"gpg {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode()


@dataclass(frozen=True)
class GpgKey:
    home: Path
    fingerprint: str
    public_armored: str

    @property
    def key_id(self) -> str:
        """The 16-hex key ID Flux (and tidal) report in SourceVerified's message."""
        return self.fingerprint[-16:].upper()

    def close(self) -> None:
        # Only this home's agent: gpgconf addresses it through GNUPGHOME.
        subprocess.run(
            ["gpgconf", "--kill", "gpg-agent"],
            env={**os.environ, "GNUPGHOME": str(self.home)},
            capture_output=True,
            timeout=30,
            check=False,
        )
        shutil.rmtree(self.home, ignore_errors=True)


def make_gpg_key(uid: str = "tidal signer <signer@example.invalid>") -> GpgKey:
    """A fresh ed25519 signing key without a passphrase."""
    home = Path(tempfile.mkdtemp(prefix="gpg-", dir="/tmp"))
    home.chmod(0o700)
    _gpg(home, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
    listing = _gpg(home, "--with-colons", "--list-secret-keys")
    fingerprint = next(
        line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
    )
    public = _gpg(home, "--armor", "--export", fingerprint)
    return GpgKey(home, fingerprint, public)


def signed_commit(
    bare: Path,
    files: Mapping[str, FileContent],
    message: str,
    key: GpgKey,
    branch: str = "main",
) -> str:
    """Commit `files` on `branch` of the bare repository `bare`, signed with `key`, and push
    it there; return the commit SHA. The branch is created when missing."""
    work = Path(tempfile.mkdtemp(prefix="tidal-signed-"))
    try:
        run_git(["init", "--quiet", f"--initial-branch={branch}", str(work)])
        if rev_parse(bare, f"refs/heads/{branch}") is not None:
            run_git(["fetch", "--quiet", str(bare), branch], cwd=work)
            run_git(["reset", "--quiet", "--hard", "FETCH_HEAD"], cwd=work)
        for name, content in files.items():
            path = work / name
            if content is None:
                path.unlink(missing_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode() if isinstance(content, str) else content)
        run_git(["add", "--all"], cwd=work)
        run_git(
            [
                "-c",
                "gpg.program=gpg",
                "-c",
                f"user.signingkey={key.fingerprint}",
                "commit",
                "--quiet",
                "--gpg-sign",
                "-m",
                message,
            ],
            cwd=work,
            env={"GNUPGHOME": str(key.home)},
        )
        run_git(["push", "--quiet", str(bare), f"HEAD:refs/heads/{branch}"], cwd=work)
        return run_git(["rev-parse", "HEAD"], cwd=work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
