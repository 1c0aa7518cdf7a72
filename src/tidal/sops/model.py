"""The in-memory form of a SOPS document, shared by the format readers/writers and the cipher.

It follows SOPS's own tree model, because both the MAC and the plain output depend on the
order of values and on comments:

- a document is a list of branches (YAML files may hold several documents; every other format
  holds one);
- a branch (a mapping) is a list of `Item`s, in file order; an item whose key is a `Comment`
  is a comment line of that mapping (its value is None);
- a sequence is a Python list whose elements may also be `Comment`s;
- leaves are str, int, float, bool, None, or bytes (the binary format's single value).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias


@dataclass(frozen=True)
class Comment:
    value: str


@dataclass
class Item:
    key: str | Comment
    value: Any


Branch: TypeAlias = list[Item]


@dataclass(frozen=True)
class MasterKey:
    """One entry of a key group: the data key as wrapped for one recipient.

    `kind` is SOPS's metadata key for the type ("age", "pgp", "kms", "gcp_kms", "azure_kv",
    "hc_vault", ...); `recipient` is how the user recognises it (the age recipient, the PGP
    fingerprint, the KMS ARN, the vault path...); `enc` the wrapped data key as stored.
    """

    kind: str
    recipient: str
    enc: str


@dataclass
class Metadata:
    """The `sops` section, as SOPS reads it (fields SOPS ignores when decrypting are left out).

    `last_modified` is the text stored in the file; the MAC's additional data is that time in
    RFC 3339 (second precision), see `tidal.sops.cipher`.
    """

    last_modified: str
    mac: str
    version: str = ""
    key_groups: list[list[MasterKey]] = field(default_factory=list)
    shamir_threshold: int = 0
    unencrypted_suffix: str = ""
    encrypted_suffix: str = ""
    unencrypted_regex: str = ""
    encrypted_regex: str = ""
    unencrypted_comment_regex: str = ""
    encrypted_comment_regex: str = ""
    mac_only_encrypted: bool = False


@dataclass
class Document:
    branches: list[Branch]
    metadata: Metadata
