"""The decryption keys of a Kustomization, and recovering a document's data key with them.

Keys come from the decryption Secret as Flux imports them (`ImportKeys`): entries ending in
`.agekey` hold age identity files, entries ending in `.asc` armored OpenPGP secret keys. The
entries naming cloud KMS or Vault credentials are recognised, but tidal does not call those
services; keys of those kinds then fail with a message that says so.

The data key is recovered as SOPS's `GetDataKeyWithKeyServices` does: every key group is tried,
a group succeeds with the first of its master keys that decrypts (age keys first, then PGP,
then the rest, in file order), one group yields the key itself and several groups yield Shamir
shares to combine, a threshold of them being needed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import pyrage  # type: ignore[import-untyped]
import pysequoia
from pyrage import x25519
from pysequoia.packet import Packet, PacketPile, Tag

from tidal.sops import shamir
from tidal.sops.errors import DataKeyError, KeyImportError, SopsError
from tidal.sops.model import MasterKey, Metadata

AGE_KEY_SUFFIX: Final = ".agekey"
PGP_KEY_SUFFIX: Final = ".asc"
# Flux's credential entries, by the SOPS key kind they serve.
PROVIDER_ENTRIES: Final = {
    "hc_vault": "sops.vault-token",
    "kms": "sops.aws-kms",
    "azure_kv": "sops.azure-kv",
    "gcp_kms": "sops.gcp-kms",
}
_PROVIDER_NAMES: Final = {
    "kms": "AWS KMS",
    "gcp_kms": "GCP KMS",
    "azure_kv": "Azure Key Vault",
    "hc_vault": "HashiCorp Vault",
    "hckms": "HuaweiCloud KMS",
}
# SOPS's DefaultDecryptionOrder: the keys that need no network first.
_DECRYPTION_ORDER: Final = ("age", "pgp")

_ARMOR_BLOCK = re.compile(
    rb"-----BEGIN PGP [A-Z ,0-9/]+-----.*?-----END PGP [A-Z ,0-9/]+-----", re.DOTALL
)
_AGE_ARMOR: Final = "-----BEGIN AGE ENCRYPTED FILE-----"


class _KeyFailure(Exception):
    """One master key could not decrypt its share; the text says why."""


@dataclass(frozen=True)
class _PgpKey:
    fingerprints: frozenset[str]  # upper-case hex, primary key and subkeys
    decryptors: tuple[pysequoia.PyDecryptor, ...]


class Keyring:
    """The age identities and OpenPGP secret keys a Kustomization decrypts with."""

    def __init__(self) -> None:
        self._age: list[x25519.Identity] = []
        self._pgp: list[_PgpKey] = []
        self._providers: dict[str, str] = {}
        self._data_keys: dict[tuple[int, tuple[tuple[MasterKey, ...], ...]], bytes] = {}

    @classmethod
    def from_secret_data(
        cls, data: Mapping[str, bytes], secret: str, *, age_only: bool = False
    ) -> Keyring:
        """The keys of a decryption Secret's data, imported as Flux's `ImportKeys` does.

        `secret` is the Secret's "namespace/name" for messages. With `age_only` (the
        controller-wide SOPS age Secret), only `.agekey` entries count.
        Raises KeyImportError.
        """
        keyring = cls()
        kind = "SOPS age decryption Secret" if age_only else "decryption Secret"
        for name in sorted(data):
            try:
                keyring._import_entry(name, data[name], age_only=age_only)
            except SopsError as err:
                raise KeyImportError(
                    f"failed to import '{name}' data from sops {kind} '{secret}': {err}"
                ) from None
        return keyring

    def _import_entry(self, name: str, value: bytes, *, age_only: bool) -> None:
        extension = _go_ext(name)
        if extension == AGE_KEY_SUFFIX:
            self.import_age(value.decode("utf-8", "surrogateescape"))
        elif age_only:
            return
        elif extension == PGP_KEY_SUFFIX:
            self.import_pgp(value)
        else:
            for kind, entry in PROVIDER_ENTRIES.items():
                if name == entry:
                    self._providers[kind] = entry

    def import_age(self, text: str) -> list[str]:
        """Add the identities of an age identity file (`#` comments and blank lines allowed);
        their recipients (public keys), in file order.

        All or nothing: one bad line imports none. Raises SopsError with SOPS's wording.
        """
        identities = []
        # Go's line scanner: split on LF, drop one trailing CR; lines are not otherwise trimmed.
        for raw in text.split("\n"):
            line = raw.removesuffix("\r")
            if line == "" or line.startswith("#"):
                continue
            try:
                identities.append(_parse_age_identity(line))
            except SopsError as err:
                raise SopsError(f"failed to parse and add to age identities: {err}") from None
        self._age.extend(identities)
        return [str(identity.to_public()) for identity in identities]

    def import_pgp(self, armored: bytes) -> None:
        """Add the OpenPGP secret keys of `armored` (ASCII-armored or binary, one or more keys).

        Keys must be without passphrase, as for Flux (which cannot prompt for one).
        Raises SopsError.
        """
        keys = [_pgp_key(cert) for cert in _certificates(armored)]
        if not keys:
            raise SopsError("no OpenPGP key found")
        self._pgp.extend(keys)

    def data_key(self, metadata: Metadata) -> bytes:
        """The document's data key. Raises DataKeyError ("cannot get sops data key: ...").

        Remembered for the keyring's life (one reconcile): a file is opened once for its MAC
        check and again for its objects, and an OpenPGP unwrap costs milliseconds.
        """
        wrapped = (metadata.shamir_threshold, tuple(tuple(g) for g in metadata.key_groups))
        known = self._data_keys.get(wrapped)
        if known is None:
            known = self._data_keys[wrapped] = self._recover(metadata)
        return known

    def _recover(self, metadata: Metadata) -> bytes:
        parts: list[bytes] = []
        results: list[list[str] | None] = []
        for group in metadata.key_groups:
            part, failures = self._decrypt_group(group)
            if part is not None:
                parts.append(part)
            results.append(None if part is not None else failures)
        if len(metadata.key_groups) > 1:
            if len(parts) < metadata.shamir_threshold:
                raise DataKeyError(_data_key_failure(metadata.shamir_threshold, results))
            try:
                return shamir.combine(parts)
            except shamir.ShamirError as err:
                raise DataKeyError(
                    f"cannot get sops data key: could not get data key from shamir parts: {err}"
                ) from None
        if len(parts) != 1:
            raise DataKeyError(_data_key_failure(metadata.shamir_threshold, results))
        return parts[0]

    def _decrypt_group(self, group: list[MasterKey]) -> tuple[bytes | None, list[str]]:
        failures = []
        for key in _in_decryption_order(group):
            try:
                return self._decrypt_key(key), []
            except _KeyFailure as err:
                failures.append(f"{key.recipient}: {err}")
        return None, failures

    def _decrypt_key(self, key: MasterKey) -> bytes:
        if key.kind == "age":
            return self._decrypt_age(key.enc)
        if key.kind == "pgp":
            return self._decrypt_pgp(key.recipient, key.enc)
        name = _PROVIDER_NAMES.get(key.kind, f"'{key.kind}'")
        message = f"{name} keys are not supported by tidal"
        entry = self._providers.get(key.kind)
        if entry is not None:
            message += f" (the '{entry}' entry of the decryption Secret is not used)"
        raise _KeyFailure(message)

    def _decrypt_age(self, enc: str) -> bytes:
        if not self._age:
            raise _KeyFailure(
                "failed to load age identities: none was imported (decryption Secret entries "
                f"ending in '{AGE_KEY_SUFFIX}')"
            )
        failed = "failed to create reader for decrypting sops data key with age"
        # SOPS reads the key through age's armor reader only.
        if not enc.strip().startswith(_AGE_ARMOR):
            raise _KeyFailure(f"{failed}: failed to read header: invalid armor")
        try:
            plain: bytes = pyrage.decrypt(enc.encode(), self._age)
        except pyrage.DecryptError as err:
            if str(err) != "No matching keys found":
                raise _KeyFailure(f"{failed}: {err}") from None
        else:
            return plain
        # age's own wording, which depends on how many identities were tried.
        if len(self._age) == 1:
            raise _KeyFailure(
                f"{failed}: identity did not match any of the recipients: "
                "incorrect identity for recipient block"
            )
        raise _KeyFailure(f"{failed}: no identity matched any of the recipients")

    def _decrypt_pgp(self, fingerprint: str, enc: str) -> bytes:
        failed = "could not decrypt data key with PGP key"
        if not self._pgp:
            raise _KeyFailure(
                f"{failed}: no OpenPGP secret key was imported (decryption Secret entries "
                f"ending in '{PGP_KEY_SUFFIX}')"
            )
        # GnuPG, which Flux uses, decrypts with whichever secret key the message was encrypted
        # to; the fingerprint in the metadata only says which key to try first.
        wanted = fingerprint.replace(" ", "").upper()
        ordered = sorted(
            self._pgp, key=lambda k: not any(f.endswith(wanted) for f in k.fingerprints)
        )
        message = enc.encode()
        for key in ordered:
            for decryptor in key.decryptors:
                try:
                    result = pysequoia.decrypt(message, decryptor=decryptor).bytes
                except RuntimeError as err:
                    if _first_line(err) != "No key to decrypt message":
                        raise _KeyFailure(f"{failed}: {_first_line(err)}") from None
                    continue
                if result:
                    return result
        raise _KeyFailure(f"{failed}: no imported OpenPGP secret key can decrypt it")


def _parse_age_identity(line: str) -> x25519.Identity:
    # SOPS's parseIdentity dispatches on these exact (upper-case) prefixes.
    if line.startswith("AGE-PLUGIN-"):
        raise SopsError("age plugin identities are not supported by tidal")
    if line.startswith("AGE-SECRET-KEY-PQ-1"):
        raise SopsError("post-quantum (hybrid) age identities are not supported by tidal")
    if not line.startswith("AGE-SECRET-KEY-1"):
        raise SopsError("unknown identity type")
    try:
        return x25519.Identity.from_str(line)
    except pyrage.IdentityError as err:
        raise SopsError(f"malformed secret key: {err}") from None
    except ValueError:
        # Bytes that are not UTF-8 (a Secret's data is decoded leniently).
        raise SopsError("malformed secret key: not valid UTF-8") from None


def _certificates(data: bytes) -> list[list[Packet]]:
    """The packets of each key in `data`, split at every primary key."""
    chunks = _ARMOR_BLOCK.findall(data) if b"-----BEGIN PGP" in data else [data]
    if not chunks:
        raise SopsError("cannot read OpenPGP data: unterminated ASCII armor")
    certs: list[list[Packet]] = []
    for chunk in chunks:
        try:
            packets = list(PacketPile.from_bytes(chunk))
        except (RuntimeError, ValueError) as err:
            raise SopsError(f"cannot read OpenPGP data: {_first_line(err)}") from None
        for packet in packets:
            if packet.tag in (Tag.SecretKey, Tag.PublicKey):
                certs.append([])
            if certs:
                certs[-1].append(packet)
    return certs


def _pgp_key(packets: list[Packet]) -> _PgpKey:
    primary = packets[0].fingerprint or ""
    label = primary.upper()
    if not any(p.tag in (Tag.SecretKey, Tag.SecretSubkey) for p in packets):
        raise SopsError(
            f"OpenPGP key {label} has no secret key material: the Secret needs the armored "
            "secret key (gpg --export-secret-keys --armor), not the public key"
        )
    head: list[Packet] = []
    subkeys: list[list[Packet]] = []
    for packet in packets:
        if packet.tag in (Tag.SecretSubkey, Tag.PublicSubkey):
            subkeys.append([packet])
        elif subkeys:
            subkeys[-1].append(packet)
        else:
            head.append(packet)
    # pysequoia decrypts with one encryption key of a certificate only; a certificate reduced
    # to each of its secret subkeys in turn reaches the others (a message may be for any).
    variants = [packets] + [head + sub for sub in subkeys if sub[0].tag == Tag.SecretSubkey]
    decryptors = []
    for variant in variants:
        decryptor = _decryptor(variant, label)
        if decryptor is not None:
            decryptors.append(decryptor)
    fingerprints = frozenset(
        (p.fingerprint or "").upper()
        for p in packets
        if p.tag in (Tag.SecretKey, Tag.PublicKey, Tag.SecretSubkey, Tag.PublicSubkey)
    )
    return _PgpKey(fingerprints, tuple(decryptors))


def _decryptor(packets: list[Packet], label: str) -> pysequoia.PyDecryptor | None:
    try:
        return pysequoia.Tsk.from_packets(packets).decryptor()
    except (RuntimeError, ValueError) as err:
        if "secret key material is encrypted" in _first_line(err):
            raise SopsError(
                f"OpenPGP key {label} is protected by a passphrase, which cannot be entered: "
                "the Secret needs the key exported without one"
            ) from None
        # Not an encryption key (or not a valid one under Sequoia's policy): it decrypts nothing.
        return None


def _in_decryption_order(group: Iterable[MasterKey]) -> list[MasterKey]:
    rank = {kind: i for i, kind in enumerate(_DECRYPTION_ORDER)}
    return sorted(group, key=lambda key: rank.get(key.kind, len(_DECRYPTION_ORDER)))


def _data_key_failure(threshold: int, results: list[list[str] | None]) -> str:
    """SOPS's report of a failed recovery (its UserError, which Flux shows), on one line."""
    groups = []
    for i, failures in enumerate(results):
        if failures is None:
            groups.append(f"Group {i}: SUCCESS.")
        else:
            groups.append(f"Group {i}: FAILED ({'; '.join(failures) or 'no master key'}).")
    successful = sum(r is None for r in results)
    if threshold == 0:
        trailer = (
            "Recovery failed because no master key was able to decrypt the file. In order for "
            "SOPS to recover the file, at least one key has to be successful, but none were."
        )
    else:
        trailer = (
            f"Recovery failed because the file was encrypted with a Shamir threshold of "
            f"{threshold}, but only {successful} part(s) were successfully recovered, one for "
            f"each successful key group. In order for SOPS to recover the file, at least "
            f"{threshold} groups have to be successful. In order for a group to be successful, "
            "decryption has to succeed with any of the keys in that key group."
        )
    return (
        "cannot get sops data key: Failed to get the data key required to decrypt the SOPS "
        f"file. {' '.join(groups)} {trailer}"
    )


def _go_ext(name: str) -> str:
    """Go's filepath.Ext: from the last dot of the last path element."""
    base_start = name.rfind("/") + 1
    dot = name.rfind(".")
    return name[dot:] if dot >= base_start else ""


def _first_line(err: Exception) -> str:
    # Sequoia's messages may carry a Rust backtrace after the first line.
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
