"""Decrypting a SOPS tree with its data key, and its MAC, as SOPS's `Tree.Decrypt` does.

SOPS walks the branches depth-first in file order. Each leaf's path is the list of mapping
keys above it (sequence positions add nothing), joined with ":" plus a trailing ":" to form the
value's additional data. Whether a leaf was encrypted is decided from that path and from the
comments seen above it (the metadata's suffix / regex / comment-regex rule); the MAC is the
upper-case hex SHA-512 of the plain leaves in walk order (comments excluded; with
`mac_only_encrypted`, only the encrypted leaves, after a fixed prefix).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from tidal.sops import goregex, gotext
from tidal.sops.cipher import decrypt_mac, decrypt_value
from tidal.sops.errors import CipherError, DecryptError, MacError, SopsError
from tidal.sops.model import Branch, Comment, Document, Metadata, go_type, is_branch

DEFAULT_UNENCRYPTED_SUFFIX: Final = "_unencrypted"
# SOPS seeds the hash with sha256("sops") when only encrypted values are covered, so that the
# two kinds of MAC never coincide.
_MAC_ONLY_ENCRYPTED_SEED: Final = hashlib.sha256(b"sops").digest()
_ENVELOPE_PREFIX: Final = "ENC[AES256_GCM,"

Path = list[str]
CommentsStack = list[list[str]]
Leaf = Callable[[Any, Path, CommentsStack], Any]


class _WalkError(Exception):
    """A walk failed; the text is SOPS's, completed into Flux's message by the caller."""


@dataclass(frozen=True)
class EncryptionRules:
    """Which leaves SOPS encrypted: the metadata's one selection rule (SOPS's shouldBeEncrypted).

    A rule on a key covers everything below it: a suffix or regex is tried on every key of the
    path, and a comment regex on every comment seen above the leaf at any depth.
    """

    unencrypted_suffix: str = ""
    encrypted_suffix: str = ""
    unencrypted_regex: str = ""
    encrypted_regex: str = ""
    unencrypted_comment_regex: str = ""
    encrypted_comment_regex: str = ""

    @classmethod
    def of(cls, metadata: Metadata) -> EncryptionRules:
        rules = cls(
            metadata.unencrypted_suffix,
            metadata.encrypted_suffix,
            metadata.unencrypted_regex,
            metadata.encrypted_regex,
            metadata.unencrypted_comment_regex,
            metadata.encrypted_comment_regex,
        )
        count = sum(bool(rule) for rule in vars(rules).values())
        if count > 1:
            raise SopsError(
                "Cannot use more than one of encrypted_suffix, unencrypted_suffix, "
                "encrypted_regex, unencrypted_regex, encrypted_comment_regex, or "
                "unencrypted_comment_regex in the same file"
            )
        # SOPS's loader applies the default when a file names no rule at all.
        return rules if count else cls(unencrypted_suffix=DEFAULT_UNENCRYPTED_SUFFIX)

    def encrypted(self, path: Path, comments: CommentsStack, is_comment: bool) -> bool:
        encrypted = True
        if self.unencrypted_suffix and any(k.endswith(self.unencrypted_suffix) for k in path):
            encrypted = False
        if self.encrypted_suffix:
            encrypted = any(k.endswith(self.encrypted_suffix) for k in path)
        if self.unencrypted_regex and any(goregex.search(self.unencrypted_regex, k) for k in path):
            encrypted = False
        if self.encrypted_regex:
            encrypted = any(goregex.search(self.encrypted_regex, k) for k in path)
        if self.unencrypted_comment_regex and any(
            goregex.search(self.unencrypted_comment_regex, c) for level in comments for c in level
        ):
            encrypted = False
        if self.encrypted_comment_regex:
            # The comment that carries the marker is itself left in the clear: skip the last
            # comment seen when deciding about that very comment.
            candidates = [c for level in comments for c in level]
            if is_comment and comments[-1]:
                candidates.pop()
            encrypted = any(goregex.search(self.encrypted_comment_regex, c) for c in candidates)
        return encrypted


def decrypt_document(doc: Document, data_key: bytes) -> str:
    """Decrypt `doc`'s branches in place; the MAC computed over the plain values.

    Raises DecryptError (Flux's "error decrypting sops tree: ...").
    """
    rules = _rules(doc.metadata)
    mac_only = doc.metadata.mac_only_encrypted
    digest = hashlib.sha512()
    if mac_only:
        digest.update(_MAC_ONLY_ENCRYPTED_SEED)

    def leaf(value: Any, path: Path, comments: CommentsStack) -> Any:
        is_comment = isinstance(value, Comment)
        encrypted = rules.encrypted(path, comments, is_comment)
        plain = _decrypt_leaf(value, path, data_key) if encrypted else value
        # The test is on the decrypted value: a comment inside a sequence is stored as an
        # ENC[...,type:comment] string and left out, as when it was encrypted (SOPS 3.13.2
        # tested the stored value instead, a regression fixed in 3.13.3).
        if (encrypted or not mac_only) and not isinstance(plain, Comment):
            digest.update(_mac_bytes(plain))
        return plain

    _walk(doc, leaf)
    return digest.hexdigest().upper()


def _decrypt_leaf(value: Any, path: Path, data_key: bytes) -> Any:
    additional_data = ":".join(path) + ":"
    if isinstance(value, Comment):
        try:
            return decrypt_value(value.value, data_key, additional_data)
        except CipherError:
            # SOPS keeps a comment it cannot decrypt: older versions left comments in the clear.
            return value
    if not isinstance(value, str):
        raise _WalkError(f"Expected encrypted value as string, but got {go_type(value)}")
    try:
        return decrypt_value(value, data_key, additional_data)
    except CipherError as err:
        raise _WalkError(f"Could not decrypt value: {err}") from None


def verify_mac(doc: Document, data_key: bytes, computed_mac: str) -> None:
    """Check the MAC `decrypt_document` computed against the one stored (Flux's check).

    Raises MacError ("failed to verify sops data integrity: ..."). Unlike Flux's message, it
    never shows the MACs: each is a SHA-512 of the plaintext values, which would let anyone who
    reads the status guess short values offline.
    """
    stored = decrypt_mac(doc.metadata, data_key)
    if not stored:
        raise MacError("failed to verify sops data integrity: the file has no MAC")
    if stored != computed_mac:
        raise MacError(
            "failed to verify sops data integrity: the MAC does not match the values "
            "(a value was changed, added or removed without the key)"
        )


def decrypt_enveloped(doc: Document, data_key: bytes) -> None:
    """Decrypt, in place, every string value that is a SOPS envelope, and nothing else.

    This is Flux's way with a document whose comments were lost (a resource after the kustomize
    build, as JSON) while its metadata selects values by comment regex: without the comments
    the rule cannot be evaluated, so values that look encrypted are decrypted. There is no MAC.
    """
    for branch in doc.branches:
        _enveloped_branch(branch, [], data_key)


def _enveloped_branch(branch: Branch, path: Path, data_key: bytes) -> None:
    for item in branch:
        if isinstance(item.key, str):
            item.value = _enveloped_value(item.value, [*path, item.key], data_key)


def _enveloped_value(value: Any, path: Path, data_key: bytes) -> Any:
    if isinstance(value, str):
        if not value.startswith(_ENVELOPE_PREFIX):
            return value
        try:
            return decrypt_value(value, data_key, ":".join(path) + ":")
        except CipherError as err:
            raise DecryptError(
                f"error decrypting sops tree: could not decrypt value at '{'.'.join(path)}': {err}"
            ) from None
    if is_branch(value):
        _enveloped_branch(value, path, data_key)
    elif isinstance(value, list):
        for i, element in enumerate(value):
            value[i] = _enveloped_value(element, path, data_key)
    return value


def _mac_bytes(value: Any) -> bytes:
    """SOPS's `ToBytes`: the bytes a plain leaf adds to the MAC."""
    if isinstance(value, Comment):
        value = value.value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, bool):
        return b"True" if value else b"False"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return gotext.format_float(value).encode()
    if isinstance(value, bytes):
        return value
    if isinstance(value, date):
        return gotext.format_time(value).encode()
    raise _WalkError(
        f"Could not convert value to bytes: Could not convert unknown type {go_type(value)} "
        "to bytes"
    )


def _rules(metadata: Metadata) -> EncryptionRules:
    try:
        return EncryptionRules.of(metadata)
    except SopsError as err:
        raise DecryptError(f"error decrypting sops tree: {err}") from None


def _walk(doc: Document, leaf: Leaf) -> None:
    walker = _Walker(leaf)
    try:
        for branch in doc.branches:
            walker.branch(branch, [], [])
    except _WalkError as err:
        raise DecryptError(f"error decrypting sops tree: Error walking tree: {err}") from None
    except RecursionError:
        raise DecryptError(
            "error decrypting sops tree: the document is nested too deeply"
        ) from None


class _Walker:
    """SOPS's walkBranch / walkSlice / walkValue, calling `leaf` on every scalar and comment."""

    def __init__(self, leaf: Leaf) -> None:
        self.leaf = leaf

    def value(self, value: Any, path: Path, comments: CommentsStack) -> Any:
        if isinstance(value, bytes):
            # SOPS walks a []byte as the string it spells.
            value = value.decode("utf-8", "surrogateescape")
        if value is None:
            return None
        if isinstance(value, str | bool | int | float | date | Comment):
            return self.leaf(value, path, comments)
        if is_branch(value):
            return self.branch(value, path, comments)
        if isinstance(value, list):
            return self.sequence(value, path, comments)
        raise _WalkError(f"Cannot walk value, unknown type: {go_type(value)}")

    def sequence(self, values: list[Any], path: Path, comments: CommentsStack) -> list[Any]:
        comments = [*comments, []]
        for i, element in enumerate(values):
            is_comment = isinstance(element, Comment)
            if is_comment:
                # Comments above an element count for the elements that follow them.
                comments[-1].append(element.value)
            values[i] = self.value(element, path, comments)
            if not is_comment:
                comments[-1] = []
        return values

    def branch(self, branch: Branch, path: Path, comments: CommentsStack) -> Branch:
        comments = [*comments, []]
        for item in branch:
            if isinstance(item.key, Comment):
                comments[-1].append(item.key.value)
                plain = self.value(item.key, path, comments)
                if isinstance(plain, Comment):
                    item.key = plain
                elif isinstance(plain, str):
                    item.key = Comment(plain)
                else:
                    raise _WalkError(
                        "walkValue of Comment should be either Comment or string, was "
                        + go_type(plain)
                    )
                continue
            value_is_comment = isinstance(item.value, Comment)
            if value_is_comment:
                comments[-1].append(item.value.value)
            if not isinstance(item.key, str):
                raise _WalkError(
                    f"Tree contains a non-string key (type {go_type(item.key)}). "
                    "Only string keys are supported"
                )
            item.value = self.value(item.value, [*path, item.key], comments)
            if not value_is_comment:
                comments[-1] = []
        return branch
