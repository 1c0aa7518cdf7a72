"""The SOPS keys of the person at the terminal, for `tidal build kustomization --decrypt`.

Where sops itself looks for age identities: SOPS_AGE_KEY (the keys inline), SOPS_AGE_KEY_FILE,
then `sops/age/keys.txt` under the user configuration directory ($XDG_CONFIG_HOME, else
~/.config); plus the files given with --decryption-key-file (`*.asc`: an armored OpenPGP secret
key, anything else: age identities), which is how the keys of a decryption Secret are tried
locally. GnuPG's own keyring is not read: export the key with `gpg --export-secret-keys -a`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from tidal.cli.options import CliError
from tidal.sops.errors import SopsError
from tidal.sops.keys import Keyring


def _default_age_file(env: Mapping[str, str]) -> Path:
    config = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "sops" / "age" / "keys.txt"


def local_keyring(key_files: Sequence[str], env: Mapping[str, str] | None = None) -> Keyring:
    env = os.environ if env is None else env
    keyring = Keyring()
    sources: list[tuple[str, str]] = []  # (where, age text)
    if env.get("SOPS_AGE_KEY"):
        sources.append(("SOPS_AGE_KEY", env["SOPS_AGE_KEY"]))
    key_file = env.get("SOPS_AGE_KEY_FILE")
    if key_file:
        sources.append((key_file, _read(key_file).decode("utf-8", "replace")))
    else:
        default = _default_age_file(env)
        if default.is_file():
            sources.append((str(default), _read(str(default)).decode("utf-8", "replace")))
    for where, text in sources:
        try:
            keyring.import_age(text)
        except SopsError as e:
            raise CliError(f"failed to import age keys from {where}: {e}") from None
    for path in key_files:
        data = _read(path)
        try:
            if path.endswith(".asc"):
                keyring.import_pgp(data)
            else:
                keyring.import_age(data.decode("utf-8", "replace"))
        except SopsError as e:
            raise CliError(f"failed to import keys from {path}: {e}") from None
    return keyring


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise CliError(f"open {path}: {(e.strerror or str(e)).lower()}") from None
