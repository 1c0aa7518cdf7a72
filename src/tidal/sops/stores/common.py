"""What every store shares: the error type, the limits on untrusted input, the branch list that
keeps `{}` apart from `[]`, and Go's names for the values of a SOPS tree."""

from __future__ import annotations

from typing import Any, Final

from tidal.sops.errors import SopsError
from tidal.sops.gotext import GoTime
from tidal.sops.model import Comment, Item

# Encrypted files come from Git repositories and Secrets; these bounds keep a hostile one from
# exhausting memory or the stack. A Kubernetes object is at most ~1.5 MiB, and files SOPS
# encrypts are configuration: both are far below.
MAX_INPUT_BYTES: Final = 4 << 20
MAX_DEPTH: Final = 256
# YAML aliases can multiply a small file; the tree built from one is capped in nodes.
MAX_NODES: Final = 1_000_000


class FormatError(SopsError):
    """A file could not be read or written in its format; the text never holds a value."""


class BranchList(list[Item]):
    """A branch (mapping) as the stores build it.

    In the model both a mapping and a sequence are Python lists, told apart by their elements
    (`Item`s or not); an empty one is ambiguous, yet SOPS writes `{}` and `[]` differently. The
    stores make every mapping a `BranchList`, so an empty one is still known to be a mapping; an
    empty plain list is taken for a sequence.
    """

    __slots__ = ()


def repeated_keys(keys: list[tuple[Any, int]]) -> list[tuple[int, int]]:
    """The index pairs (i, j), i < j, of equal keys, in the order go-yaml v3 reports them."""
    seen: dict[Any, list[int]] = {}
    pairs = []
    for j, (key, _) in enumerate(keys):
        for i in seen.get(key, ()):
            pairs.append((i, j))
        seen.setdefault(key, []).append(j)
    return sorted(pairs)


def is_branch(value: Any) -> bool:
    """Whether a tree value is a mapping (see `BranchList`)."""
    if isinstance(value, BranchList):
        return True
    return isinstance(value, list) and bool(value) and isinstance(value[0], Item)


def check_size(data: bytes | str) -> None:
    if len(data) > MAX_INPUT_BYTES:
        raise FormatError(f"input is larger than {MAX_INPUT_BYTES} bytes")


def depth_error() -> FormatError:
    return FormatError(f"exceeded max depth of {MAX_DEPTH}")


def go_type(value: Any) -> str:
    """The Go type SOPS's tree would hold for `value`, as `%T` prints it."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bytes):
        return "[]uint8"
    if isinstance(value, GoTime):
        return "time.Time"
    if isinstance(value, Comment):
        return "sops.Comment"
    return "sops.TreeBranch" if is_branch(value) else "[]interface {}"
