"""SOPS's value cipher: `ENC[AES256_GCM,data:...,iv:...,tag:...,type:...]` with the data key.

Each value is AES-256-GCM encrypted on its own, authenticated with its path in the tree as
additional data, and tagged with the type it is restored to. The document's MAC is a value of
the same form, authenticated with the `lastmodified` time.

Error texts are SOPS's, redacted as Flux redacts them: never a ciphertext, never plaintext.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tidal.sops import gotext
from tidal.sops.errors import CipherError, MacError
from tidal.sops.model import Comment, Metadata

# As SOPS's own: anchored at the start only, greedy groups (the last ",type:" wins).
_ENCRYPTED: Final = re.compile(r"ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]")
_AES_KEY_SIZES: Final = (16, 24, 32)
# What `cryptography` accepts; SOPS writes 32-byte IVs.
_IV_SIZES: Final = range(8, 129)
_CONVERSION_FAILED: Final = "failed to convert the decrypted value to its data type: <redacted>"


def decrypt_value(ciphertext: str, key: bytes, additional_data: str) -> Any:
    """The plain value of one encrypted value (SOPS's `aes.Cipher.Decrypt`).

    The result is a str, int, float, bool, bytes, `GoTime` or `Comment`, as the stored type
    says; an empty ciphertext is the empty string.
    """
    if ciphertext == "":
        return ""
    found = _ENCRYPTED.match(ciphertext)
    if found is None:
        raise CipherError("Input string <redacted> does not match sops' data format")
    data = _base64(found[1], "data")
    iv = _base64(found[2], "iv")
    tag = _base64(found[3], "tag")
    datatype = found[4]
    plain = _open(key, iv, data + tag, additional_data.encode())
    return _typed(plain, datatype)


def _base64(text: str, what: str) -> bytes:
    # Go's StdEncoding skips CR and LF but is otherwise strict about the alphabet and padding.
    try:
        return base64.b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        raise CipherError(f"Error base64-decoding {what}: illegal base64 data") from None


def _open(key: bytes, iv: bytes, sealed: bytes, additional_data: bytes) -> bytes:
    if len(key) not in _AES_KEY_SIZES:
        raise CipherError(f"crypto/aes: invalid key size {len(key)}")
    if len(iv) not in _IV_SIZES:
        raise CipherError(f"Could not decrypt with AES_GCM: IV of {len(iv)} bytes not supported")
    try:
        return AESGCM(key).decrypt(iv, sealed, additional_data)
    except InvalidTag:
        raise CipherError(
            "Could not decrypt with AES_GCM: cipher: message authentication failed"
        ) from None


def _typed(plain: bytes, datatype: str) -> Any:
    if datatype == "bytes":
        return plain
    # Go keeps invalid UTF-8 in its strings; surrogateescape keeps those bytes round-trippable.
    text = plain.decode("utf-8", "surrogateescape")
    try:
        match datatype:
            case "str":
                return text
            case "int" | "int64":
                # int64 is what SOPS after 3.13 writes for large JSON integers.
                return gotext.parse_int(text)
            case "float":
                return gotext.parse_float(text)
            case "bool":
                return gotext.parse_bool(text)
            case "time":
                return gotext.parse_time(text)
            case "comment":
                return Comment(text)
    except ValueError:
        raise CipherError(_CONVERSION_FAILED) from None
    raise CipherError(f"Unknown datatype: {datatype}")


def mac_additional_data(last_modified: str) -> str:
    """The MAC's additional data: `lastmodified` as Go's `Format(time.RFC3339)` prints it."""
    try:
        return gotext.reformat_rfc3339(last_modified)
    except ValueError:
        raise MacError(
            f"failed to verify sops data integrity: invalid lastmodified time {last_modified!r}"
        ) from None


def decrypt_mac(metadata: Metadata, key: bytes) -> str:
    """The MAC stored in the metadata, decrypted ("" when the file has none)."""
    additional_data = mac_additional_data(metadata.last_modified)
    try:
        mac = decrypt_value(metadata.mac, key, additional_data)
    except CipherError as err:
        raise MacError(f"failed to verify sops data integrity: {err}") from None
    return mac if isinstance(mac, str) else str(mac)
