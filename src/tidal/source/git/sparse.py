"""spec.sparseCheckout: which paths of a commit end up in the artifact.

Flux trims one leading "./" from each listed path, hands the list to go-git's sparse
checkout, and then requires every path as written to exist in the checkout (an lstat of the
path joined to the checkout directory); a missing one fails the reconcile with FetchFailed,
reason GitOperationFailed, "failed to sparse checkout directories : sparse checkout dir
'<path>' does not exist in repository: ...". go-git's checkout keeps only the files below the
listed paths: files at the root are not kept, and includes (copied in afterwards) are not
subject to it.

tidal has no checkout, so a selection decides, for each tree entry, whether it is kept:

- a listed path is kept with everything below it (a file may be listed too);
- the directories leading to a listed path are kept, but none of their other children;
- nothing else is.

How a listed path is read (`normalise`):

- one leading "./" is dropped, as Flux does, and one trailing "/";
- what is left empty ("./") selects the whole tree, as it does in Flux (an empty prefix
  matches every file);
- anything else must be a clean relative path: a leading "/", or an empty, "." or ".."
  component selects nothing in go-git (its match is on the literal string), so tidal reports
  such a path as missing, which is where Flux ends up too.

Differences from Flux, on purpose:

- go-git matches by string prefix, so listing "app" also checks out "apps/" and "app.yaml";
  tidal matches whole path components and keeps only "app".
- "." selects the whole tree here; in go-git it is a prefix that keeps only the root's
  dotfiles, which no one means.
- The "lstat <temporary directory>" detail of Flux's message is left out: tidal has no
  such directory.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MISSING_PREFIX = "failed to sparse checkout directories : "


class Scope(enum.Enum):
    """Where a path stands with respect to the selection."""

    OUTSIDE = 0  # not kept, and nothing below it is
    ANCESTOR = 1  # a directory leading to a listed path: kept, its other children are not
    INSIDE = 2  # a listed path or below one: kept with everything below


def normalise(path: str) -> str | None:
    """The tree path a spec.sparseCheckout entry names ("" for the whole tree), or None when
    it cannot name one."""
    trimmed = path.removeprefix("./")
    if trimmed in ("", "."):
        return ""
    if trimmed.startswith("/") or "\0" in trimmed:
        return None
    trimmed = trimmed.removesuffix("/")
    if any(part in ("", ".", "..") for part in trimmed.split("/")):
        return None
    return trimmed


@dataclass(frozen=True, slots=True)
class SparseSelection:
    """The entries a non-empty spec.sparseCheckout keeps."""

    listed: tuple[str, ...]  # as written in the spec, for messages
    paths: tuple[str, ...]  # the normalised ones that name a path, "" among them for the root

    @classmethod
    def from_spec(cls, listed: Sequence[str]) -> SparseSelection | None:
        """The selection of a spec.sparseCheckout list; None for an empty list (no sparse
        checkout, as in Flux, where an empty list checks out everything)."""
        if not listed:
            return None
        named = (normalise(p) for p in listed)
        return cls(tuple(listed), tuple(dict.fromkeys(p for p in named if p is not None)))

    @property
    def everything(self) -> bool:
        return "" in self.paths

    def scope(self, path: str) -> Scope:
        """Where `path` (a clean tree path, not "") stands."""
        if self.everything:
            return Scope.INSIDE
        below = path + "/"
        ancestor = False
        for selected in self.paths:
            if path == selected or path.startswith(selected + "/"):
                return Scope.INSIDE
            if selected.startswith(below):
                ancestor = True
        return Scope.ANCESTOR if ancestor else Scope.OUTSIDE

    def first_missing(self, exists: Callable[[str], bool]) -> str | None:
        """The first listed path (as written) that names nothing in the tree `exists` looks
        into, or None when all are there. Flux reports only the first one too."""
        for written in self.listed:
            path = normalise(written)
            if path is None or not exists(path):
                return written
        return None


def missing_message(written: str) -> str:
    """Flux's condition message for a listed path that is not in the commit."""
    return f"{MISSING_PREFIX}sparse checkout dir '{written}' does not exist in repository"
