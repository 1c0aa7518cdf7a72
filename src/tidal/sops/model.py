"""The in-memory form of a SOPS document, shared by the format readers/writers and the cipher.

It follows SOPS's own tree model, because both the MAC and the plain output depend on the
order of values and on comments:

- a document is a list of branches (YAML files may hold several documents; every other format
  holds one);
- a branch (a mapping) is a `Branch`: a list of `Item`s, in file order; an item whose key is a
  `Comment` is a comment line of that mapping (its value is None);
- a sequence is a Python list whose elements may also be `Comment`s;
- leaves are str, int, float, bool, None, bytes (the binary format's single value), or a time
  (`tidal.sops.gotext.GoTime`, from a YAML timestamp).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from tidal.sops.gotext import GoTime


@dataclass(frozen=True)
class Comment:
    value: str


@dataclass
class Item:
    key: str | Comment
    value: Any


class Branch(list[Item]):
    """A mapping of the tree.

    A mapping and a sequence are both Python lists, told apart by their elements (`Item`s or
    not); an empty one is ambiguous, yet SOPS writes `{}` and `[]` differently. The readers
    make every mapping a `Branch`, so an empty one is still known to be a mapping. A plain list
    of `Item`s is taken for a mapping too, an empty plain list for a sequence (`is_branch`).
    """

    __slots__ = ()


def is_branch(value: Any) -> bool:
    """Whether a tree value is a mapping (see `Branch`)."""
    if isinstance(value, Branch):
        return True
    return isinstance(value, list) and bool(value) and isinstance(value[0], Item)


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


# bool before int: a bool is an int in Python.
_GO_TYPES: Final[tuple[tuple[type, str], ...]] = (
    (bool, "bool"),
    (int, "int"),
    (float, "float64"),
    (str, "string"),
    (bytes, "[]uint8"),
    (GoTime, "time.Time"),
    (Comment, "sops.Comment"),
)


def go_type(value: Any) -> str:
    """The Go type SOPS's tree would hold for `value`, as `%T` prints it (in messages)."""
    if value is None:
        return "<nil>"
    for kind, name in _GO_TYPES:
        if isinstance(value, kind):
            return name
    return "sops.TreeBranch" if is_branch(value) else "[]interface {}"
