"""A commit's files straight from the mirror's object database, without a checkout.

`tree_entries` gives `archive.Entry` values in the order a walk of the checkout would meet
them (each directory's names sorted by bytes, depth first), with what a checkout would
hold: a directory per tree, regular files with their execute bit, symlinks with their
target, and an empty directory for each submodule (a gitlink: Flux does not recurse into
submodules unless spec.recurseSubmodules, which this client does not implement). Blob
contents load lazily, one at a time, when the archiver asks for them.

The object store stays open as long as the returned object is in use: use it as a context
manager (`with tree_entries(...) as entries:`), or let it be collected.
"""

from __future__ import annotations

import os
import stat
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

from dulwich.object_store import DiskObjectStore
from dulwich.objects import Commit as DulwichCommit
from dulwich.objects import ObjectID
from dulwich.objects import Tree as DulwichTree

from tidal.source.archive import Entry
from tidal.source.git.errors import GitError
from tidal.source.ignore import IGNORE_FILE

_BLOB_TYPE = 3
_GITLINK = 0o160000


def _object_store(mirror_dir: Path | str) -> DiskObjectStore:
    objects = Path(mirror_dir, "objects")
    if not objects.is_dir():
        raise GitError(f"{mirror_dir} is not a Git mirror (no objects directory)")
    return DiskObjectStore(str(objects))


class GitTree:
    """The tree of one commit in a mirror."""

    def __init__(self, mirror_dir: Path | str, commit_hash: str) -> None:
        self._store = _object_store(mirror_dir)
        self._closer = weakref.finalize(self, self._store.close)
        try:
            commit = self._store[ObjectID(commit_hash.encode("ascii"))]
        except KeyError:
            self.close()
            raise GitError(f"commit {commit_hash} is not in the mirror") from None
        if not isinstance(commit, DulwichCommit):
            self.close()
            raise GitError(f"{commit_hash} is not a commit")
        self.commit_hash = commit_hash
        self._root = commit.tree

    def close(self) -> None:
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

    def walk(self) -> Iterator[tuple[str, int, bytes]]:
        """(path, git mode, sha) of every entry below the root, in checkout walk order."""

        def visit(tree_sha: bytes, prefix: str) -> Iterator[tuple[str, int, bytes]]:
            items = sorted(self._tree(tree_sha).iteritems(), key=lambda item: item.path)
            for item in items:
                rel = prefix + os.fsdecode(item.path)
                yield rel, item.mode, item.sha
                if stat.S_ISDIR(item.mode):
                    yield from visit(item.sha, rel + "/")

        return visit(self._root, "")

    def entries(self) -> Iterator[Entry]:
        for rel, mode, sha in self.walk():
            if stat.S_ISDIR(mode) or mode == _GITLINK:
                yield Entry(rel, "dir", 0o40755)
            elif stat.S_ISLNK(mode):
                yield Entry(rel, "symlink", mode, self._blob(sha))
            elif stat.S_ISREG(mode):
                yield Entry(rel, "file", mode, self._blob(sha))
            else:
                yield Entry(rel, "other", mode)

    def __iter__(self) -> Iterator[Entry]:
        return self.entries()

    def sourceignore_files(self) -> list[tuple[str, str]]:
        """(directory, text) of every regular `.sourceignore`, root first, as Flux loads them
        from the checkout (symlinked ones are skipped, as tidal.source.ignore does)."""
        found: list[tuple[str, str]] = []
        for rel, mode, sha in self.walk():
            head, _, name = rel.rpartition("/")
            if name != IGNORE_FILE or not stat.S_ISREG(mode) or mode == _GITLINK:
                continue
            if ".git" in head.split("/"):
                continue
            text = self._blob(sha)().decode("utf-8", "surrogateescape")
            found.append((head, text))
        return found


def tree_entries(mirror_dir: Path | str, commit_hash: str) -> GitTree:
    """The commit's files as archive entries (iterate it; close it, or use `with`)."""
    return GitTree(mirror_dir, commit_hash)


def sourceignore_files(mirror_dir: Path | str, commit_hash: str) -> list[tuple[str, str]]:
    """The commit's `.sourceignore` files as (directory, text), for IgnoreRules.from_sources."""
    with GitTree(mirror_dir, commit_hash) as tree:
        return tree.sourceignore_files()
