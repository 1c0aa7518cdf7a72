"""A commit's files straight from the mirror's object database, without a checkout.

`tree_entries` gives `archive.Entry` values in the order a walk of the checkout would meet
them (each directory's names sorted by bytes, depth first), with what a checkout would
hold: a directory per tree, regular files with their execute bit, symlinks with their
target, and a directory for each submodule (a gitlink). A submodule is empty unless its own
checkout is given (`Checkout.submodules`, filled by `submodules.checkout_submodules` for
spec.recurseSubmodules); its files then appear below its path. A `SparseSelection`
(spec.sparseCheckout) keeps only the listed paths and the directories leading to them, and
trees outside it are not even read. Blob contents load lazily, one at a time, when the
archiver asks for them.

The object stores stay open as long as the returned object is in use: use it as a context
manager (`with tree_entries(...) as entries:`), or let it be collected.
"""

from __future__ import annotations

import os
import stat
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from dulwich.object_store import DiskObjectStore
from dulwich.objects import Commit as DulwichCommit
from dulwich.objects import ObjectID
from dulwich.objects import Tree as DulwichTree

from tidal.source.archive import Entry
from tidal.source.git.errors import GitError
from tidal.source.git.sparse import Scope, SparseSelection
from tidal.source.ignore import IGNORE_FILE

_BLOB_TYPE = 3
GITLINK = 0o160000
_DIR_MODE = 0o40755


@dataclass(frozen=True)
class Checkout:
    """A commit in a mirror, and the checkouts of its submodules by their path in it."""

    mirror: Path
    commit: str
    submodules: Mapping[str, Checkout] = field(default_factory=dict)


def _object_store(mirror_dir: Path | str) -> DiskObjectStore:
    objects = Path(mirror_dir, "objects")
    if not objects.is_dir():
        raise GitError(f"{mirror_dir} is not a Git mirror (no objects directory)")
    return DiskObjectStore(str(objects))


def _is_gitlink(mode: int) -> bool:
    return stat.S_IFMT(mode) == GITLINK


class GitTree:
    """The tree of one commit in a mirror, with its submodules' trees where given."""

    def __init__(
        self,
        mirror_dir: Path | str,
        commit_hash: str,
        submodules: Mapping[str, Checkout] | None = None,
        sparse: SparseSelection | None = None,
    ) -> None:
        self._store = _object_store(mirror_dir)
        self._closer = weakref.finalize(self, self._store.close)
        self._children: dict[str, GitTree] = {}
        self.sparse = sparse
        try:
            commit = self._store[ObjectID(commit_hash.encode("ascii"))]
            if not isinstance(commit, DulwichCommit):
                raise GitError(f"{commit_hash} is not a commit")
            for path, checkout in (submodules or {}).items():
                self._children[path] = GitTree(
                    checkout.mirror, checkout.commit, checkout.submodules
                )
        except KeyError:
            self.close()
            raise GitError(f"commit {commit_hash} is not in the mirror") from None
        except BaseException:
            self.close()
            raise
        self.commit_hash = commit_hash
        self._root = commit.tree

    @classmethod
    def of(cls, checkout: Checkout, sparse: SparseSelection | None = None) -> GitTree:
        return cls(checkout.mirror, checkout.commit, checkout.submodules, sparse)

    def close(self) -> None:
        for child in self._children.values():
            child.close()
        self._closer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _tree(self, sha: bytes) -> DulwichTree:
        obj = self._store[ObjectID(sha)]
        if not isinstance(obj, DulwichTree):
            raise GitError(f"object {sha.decode()} is not a tree")
        return obj

    def _blob(self, sha: bytes) -> Callable[[], bytes]:
        store = self._store

        def load() -> bytes:
            kind, data = store.get_raw(ObjectID(sha))
            if kind != _BLOB_TYPE:
                raise GitError(f"object {sha.decode()} is not a blob")
            return data

        # Holding `self` keeps the store open until the last loader is gone.
        load.__dict__["owner"] = self
        return load

    # -- walking ----------------------------------------------------------------------------

    def _visit(
        self, tree_sha: bytes, rel_dir: str, prefix: str, sparse: SparseSelection | None
    ) -> Iterator[tuple[str, int, bytes, SparseSelection | None]]:
        """(path below the root, git mode, sha, the selection left for what is below it) of
        each kept entry under `rel_dir` of this tree, `prefix` naming where this tree sits in
        the composed one. Trees the selection leaves out are not read."""
        items = sorted(self._tree(tree_sha).iteritems(), key=lambda item: item.path)
        for item in items:
            rel = rel_dir + os.fsdecode(item.path)
            below = sparse
            if sparse is not None:
                scope = sparse.scope(prefix + rel)
                if scope is Scope.OUTSIDE:
                    continue
                if scope is Scope.INSIDE:
                    below = None  # everything under a listed path is kept: stop asking
            yield rel, item.mode, item.sha, below
            if stat.S_ISDIR(item.mode):
                yield from self._visit(item.sha, rel + "/", prefix, below)

    def walk(self) -> Iterator[tuple[str, int, bytes]]:
        """(path, git mode, sha) of every entry of this commit's own tree, in checkout walk
        order, ignoring submodule contents and the sparse selection."""
        for rel, mode, sha, _ in self._visit(self._root, "", "", None):
            yield rel, mode, sha

    def _entries(self, prefix: str, sparse: SparseSelection | None) -> Iterator[Entry]:
        for rel, mode, sha, below in self._visit(self._root, "", prefix, sparse):
            path = prefix + rel
            if stat.S_ISDIR(mode):
                yield Entry(path, "dir", _DIR_MODE)
            elif _is_gitlink(mode):
                yield Entry(path, "dir", _DIR_MODE)
                child = self._children.get(rel)
                if child is not None:
                    yield from child._entries(path + "/", below)
            elif stat.S_ISLNK(mode):
                yield Entry(path, "symlink", mode, self._blob(sha))
            elif stat.S_ISREG(mode):
                yield Entry(path, "file", mode, self._blob(sha))
            else:
                yield Entry(path, "other", mode)

    def entries(self) -> Iterator[Entry]:
        return self._entries("", self.sparse)

    def __iter__(self) -> Iterator[Entry]:
        return self.entries()

    # -- lookups ----------------------------------------------------------------------------

    def _lookup(self, path: str) -> tuple[int, bytes] | None:
        """(mode, sha) of the entry at `path` of this commit's own tree, None if absent."""
        mode, sha = stat.S_IFDIR, self._root
        for part in path.split("/"):
            if not stat.S_ISDIR(mode):
                return None
            try:
                mode, sha = self._tree(sha)[os.fsencode(part)]
            except KeyError:
                return None
        return mode, sha

    def exists(self, path: str) -> bool:
        """Whether a checkout would hold `path` (a clean relative path, "" for the root),
        looking into the submodules given."""
        if not path:
            return True
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            head = "/".join(parts[:i])
            found = self._lookup(head)
            if found is None:
                return False
            if i < len(parts) and _is_gitlink(found[0]):
                child = self._children.get(head)
                return child is not None and child.exists("/".join(parts[i:]))
        return True

    def gitlinks(self, sparse: SparseSelection | None = None, prefix: str = "") -> dict[str, str]:
        """The submodule commits of this commit's own tree by path; with a selection, only
        those it keeps or leads into, this tree sitting at `prefix` in the selected one."""
        return {
            rel: sha.decode("ascii")
            for rel, mode, sha, _ in self._visit(self._root, "", prefix, sparse)
            if _is_gitlink(mode)
        }

    def read_file(self, path: str) -> tuple[int, bytes] | None:
        """(mode, content) of a blob at `path`, None when there is none (or a tree is)."""
        found = self._lookup(path)
        if found is None or stat.S_ISDIR(found[0]) or _is_gitlink(found[0]):
            return None
        mode, sha = found
        return mode, self._blob(sha)()

    def sourceignore_files(self) -> list[tuple[str, str]]:
        """(directory, text) of every regular `.sourceignore`, root first, as Flux loads them
        from the checkout (symlinked ones are skipped, as tidal.source.ignore does)."""
        found: list[tuple[str, str]] = []
        for rel, mode, sha in self.walk():
            head, _, name = rel.rpartition("/")
            if name != IGNORE_FILE or not stat.S_ISREG(mode) or _is_gitlink(mode):
                continue
            if ".git" in head.split("/"):
                continue
            text = self._blob(sha)().decode("utf-8", "surrogateescape")
            found.append((head, text))
        return found


def tree_entries(
    mirror_dir: Path | str,
    commit_hash: str,
    *,
    submodules: Mapping[str, Checkout] | None = None,
    sparse: SparseSelection | None = None,
) -> GitTree:
    """The commit's files as archive entries (iterate it; close it, or use `with`)."""
    return GitTree(mirror_dir, commit_hash, submodules, sparse)


def sourceignore_files(mirror_dir: Path | str, commit_hash: str) -> list[tuple[str, str]]:
    """The commit's `.sourceignore` files as (directory, text), for IgnoreRules.from_sources."""
    with GitTree(mirror_dir, commit_hash) as tree:
        return tree.sourceignore_files()
