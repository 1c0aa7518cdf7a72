"""spec.decryption: SOPS, at the two points where Flux's kustomize-controller decrypts.

1. Before the build, in the private build view (`SopsDecryptor.decrypt_view`): the files that
   secretGenerators read (`files`, `envs`) and `patches[].path` files, when they carry SOPS
   metadata, are replaced by their plaintext, in the format their name gives (Flux's rule: a
   `files` entry by its data key, an env file by its path with dotenv as the default). The
   shared artifact is never written: the view's hard link is removed and a new file written.
2. After the build, per object (`SopsDecryptor.decrypt_object`): an object with a `sops`
   section is decrypted whole; otherwise a Secret's `data` values that are SOPS files are.

Beyond Flux, which skips it, every SOPS MAC is verified on the document as committed: the
files of step 1, and every other SOPS file the build reads (checked in step 1 too, so that a
value edited in Git without the key is caught even though kustomize may later add labels or a
namespace to the object, which would change its MAC). An object in step 2 whose file was not
checked that way (it came from a remote base) is decrypted as Flux does, without the MAC.

Errors carry Flux's texts, never a value or a key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from tidal.api.kustomize import DECRYPT_ANNOTATION, DISABLED
from tidal.kustomize.confine import Plan, SecretSource
from tidal.sops import formats
from tidal.sops.decrypt import decrypt_document
from tidal.sops.errors import DataKeyError, SopsError
from tidal.sops.keys import Keyring
from tidal.ssa.objects import meta

# Flux's limit on an encrypted source file.
MAX_FILE_SIZE: Final = 5 << 20
_CHECKED_SUFFIXES: Final = (".yaml", ".yml", ".json")


class DecryptionError(Exception):
    """What the Ready condition says (reason BuildFailed)."""


class _VerifiedFiles:
    """SHA-256 digests of SOPS files whose MAC was found valid.

    Whether a MAC matches depends on the bytes alone (the data key is the file's own), so a
    file that was checked once needs no second check at the next reconcile, whatever keys the
    Secret holds then; the objects still need those keys to be decrypted.
    """

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._digests: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, digest: bytes) -> bool:
        with self._lock:
            if digest not in self._digests:
                return False
            self._digests.move_to_end(digest)
            return True

    def add(self, digest: bytes) -> None:
        with self._lock:
            self._digests[digest] = None
            self._digests.move_to_end(digest)
            while len(self._digests) > self.limit:
                self._digests.popitem(last=False)


_VERIFIED: Final = _VerifiedFiles()


def decryption_disabled(obj: Mapping[str, Any]) -> bool:
    """Flux's IsDecryptionDisabled: the annotation (not a label), any letter case."""
    annotations = meta(obj).get("annotations")
    value = annotations.get(DECRYPT_ANNOTATION) if isinstance(annotations, dict) else None
    return isinstance(value, str) and value.casefold() == DISABLED.casefold()


def _has_sops_mac(obj: Mapping[str, Any]) -> bool:
    sops = obj.get("sops")
    return isinstance(sops, dict) and bool(sops.get("mac"))


def _source_format(source: SecretSource) -> formats.Format:
    fmt = formats.format_for_path(source.name)
    if source.role == "env" and fmt == "binary":
        return "dotenv"
    return fmt


def _replace(path: Path, content: bytes) -> None:
    """Write `content` at `path` as a new file: the old name may be a hard link into the
    shared artifact, which must never see plaintext."""
    path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)


class SopsDecryptor:
    """Decrypts for one build of one Kustomization with the keys of its decryption Secret."""

    def __init__(self, keyring: Keyring, *, max_file_size: int = MAX_FILE_SIZE) -> None:
        self.keyring = keyring
        self.max_file_size = max_file_size

    # --- step 1: the build view ---------------------------------------------------------------

    def _read(self, path: Path) -> bytes:
        info = path.lstat()
        if not stat.S_ISREG(info.st_mode):
            raise DecryptionError("cannot decrypt irregular file as it has file mode type bits set")
        if info.st_size > self.max_file_size:
            raise DecryptionError(
                f"cannot decrypt file with size ({info.st_size} bytes) exceeding limit "
                f"({self.max_file_size})"
            )
        return path.read_bytes()

    def _decrypt_bytes(self, data: bytes, in_fmt: formats.Format, out_fmt: formats.Format) -> bytes:
        doc = formats.load_encrypted(data, in_fmt)
        decrypt_document(doc, self.keyring, verify_mac=True)
        return formats.emit_plain(doc.branches, out_fmt)

    def decrypt_view(self, build_plan: Plan, view: Path) -> bool:
        """Decrypt the view's secret sources in place and check the MAC of every other SOPS
        file the build reads. True when some file of the view now holds plaintext."""
        plaintext = False
        sources = {s.rel for s in build_plan.secret_sources}
        checked = [r for r in sorted(build_plan.files - sources) if r.endswith(_CHECKED_SUFFIXES)]
        rel = ""
        try:
            for source in build_plan.secret_sources:
                rel = source.rel
                plaintext |= self._decrypt_source(view / rel, _source_format(source))
            for rel in checked:
                self._check_file(view / rel)
        except (DecryptionError, SopsError) as e:
            raise DecryptionError(f"error decrypting sources: {rel}: {e}") from None
        except OSError as e:
            # The view's path is a temporary directory: name the file as the repository does.
            raise DecryptionError(f"error decrypting sources: {rel}: {e.strerror or e}") from None
        return plaintext

    def _decrypt_source(self, path: Path, fmt: formats.Format) -> bool:
        """Replace an encrypted source by its plaintext; False when it is not encrypted."""
        data = self._read(path)
        if not formats.is_encrypted(data, fmt):
            return False
        _replace(path, self._decrypt_bytes(data, fmt, fmt))
        return True

    def _check_file(self, path: Path) -> None:
        """Verify the MAC of a SOPS-encrypted manifest the build reads, as committed."""
        fmt: formats.Format = "json" if path.suffix == ".json" else "yaml"
        with path.open("rb") as f:
            head = f.read(self.max_file_size + 1)
        if len(head) > self.max_file_size or not formats.is_encrypted(head, fmt):
            return
        digest = hashlib.sha256(head).digest()
        if _VERIFIED.seen(digest):
            return
        try:
            doc = formats.load_encrypted(head, fmt)
        except SopsError:
            return  # not a SOPS document after all (a marker inside some text): nothing to check
        plain = [formats.object_from_branch(b) for b in doc.branches]
        if all(decryption_disabled(o) for o in plain):
            return  # left encrypted on purpose (decrypt: Disabled), possibly for other keys
        try:
            decrypt_document(doc, self.keyring, verify_mac=True)
        except DataKeyError:
            # Without the key there is nothing to check; the object this file builds fails
            # to decrypt after the build, with Flux's message naming it.
            return
        _VERIFIED.add(digest)

    # --- step 2: the built objects ------------------------------------------------------------

    def decrypt_objects(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self.decrypt_object(o) for o in objects]

    def decrypt_object(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The object with its SOPS values decrypted (Flux's DecryptResource); raises
        DecryptionError("decryption failed for '<name>': ...")."""
        if decryption_disabled(obj):
            return obj
        m = meta(obj)
        ns, name, kind = m.get("namespace", ""), m.get("name", ""), obj.get("kind", "")
        try:
            if _has_sops_mac(obj):
                return self._decrypt_whole(obj, ns, name, kind)
            if kind == "Secret" and isinstance(obj.get("data"), dict):
                self._decrypt_data(obj["data"], ns, name)
        except DecryptionError as e:
            raise DecryptionError(f"decryption failed for '{name}': {e}") from None
        return obj

    def _decrypt_whole(self, obj: dict[str, Any], ns: str, name: str, kind: str) -> dict[str, Any]:
        try:
            doc = formats.document_from_object(obj)
            # The MAC was checked on the file as committed, when the file was in the build. As
            # built it cannot be: Flux's JSON has sorted keys, which changes what the MAC
            # covers, so an object from elsewhere (a remote base) is decrypted as Flux does,
            # each value still authenticated by AES-GCM.
            decrypt_document(doc, self.keyring, verify_mac=False, comments_lost=True)
        except SopsError as e:
            raise DecryptionError(
                f"failed to decrypt and format '{ns}/{name}' {kind} data: {e}"
            ) from None
        # Through sops's JSON output, as Flux does: its numbers were read as floats, and the
        # JSON text gives integers back as integers (replicas: 3, not 3.0).
        plain: dict[str, Any] = json.loads(formats.emit_plain(doc.branches[:1], "json"))
        return plain

    def _decrypt_data(self, data: dict[str, Any], ns: str, name: str) -> None:
        for key, value in data.items():
            if not isinstance(value, str):
                continue
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                continue  # kustomize or the API server reports it
            in_fmt = formats.detect_format(raw)
            if in_fmt is None:
                continue
            try:
                out = self._decrypt_bytes(raw, in_fmt, formats.format_for_path(key))
            except SopsError as e:
                raise DecryptionError(
                    f"failed to decrypt and format '{ns}/{name}' Secret field '{key}': {e}"
                ) from None
            data[key] = base64.b64encode(out).decode()
