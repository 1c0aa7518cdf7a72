"""The bare mirror one GitRepository keeps: objects accumulate, so fetches are incremental.

The directory belongs to the caller's object; its content is a plain bare repository (any
git can inspect it) plus `tidal.lock`, an advisory lock held for the length of a fetch so
two fetches into one mirror, even from two processes, take turns. A directory that exists
but holds no repository is emptied and initialised.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from tempfile import SpooledTemporaryFile
from typing import IO

from dulwich.errors import NotGitRepository
from dulwich.objects import Commit as DulwichCommit
from dulwich.objects import ObjectID, ShaFile
from dulwich.objects import Tag as DulwichTag
from dulwich.refs import Ref
from dulwich.repo import Repo

from tidal.source.git.errors import FetchError

LOCK_FILE = "tidal.lock"
INFINITE_DEPTH = 0x7FFFFFFF  # git's --unshallow
_MAX_PACKS = 50  # repack into one when more accumulate (one pack is added per fetch)
_SPOOL_MAX = 16 << 20  # received packs up to this size stay in memory


def _open_repo(path: Path) -> Repo:
    try:
        return Repo(str(path))
    except NotGitRepository:
        pass
    if path.exists():
        for child in path.iterdir():
            if child.name == LOCK_FILE:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    path.mkdir(parents=True, exist_ok=True)
    return Repo.init_bare(str(path))


class Mirror:
    def __init__(self, path: Path, repo: Repo, lock_fd: int | None) -> None:
        self.path = path
        self.repo = repo
        self._lock_fd = lock_fd

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: Path | str, *, lock: bool = True) -> Iterator[Mirror]:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        fd: int | None = None
        if lock:
            fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            repo = _open_repo(path)
        except BaseException:
            if fd is not None:
                os.close(fd)
            raise
        mirror = cls(path, repo, fd)
        try:
            yield mirror
        finally:
            mirror.close()

    def close(self) -> None:
        self.repo.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    # -- objects --------------------------------------------------------------------------------

    def has(self, sha: bytes) -> bool:
        return ObjectID(sha) in self.repo.object_store

    def get(self, sha: bytes) -> ShaFile:
        return self.repo.object_store[ObjectID(sha)]

    @property
    def shallow(self) -> set[bytes]:
        return set(self.repo.get_shallow())

    def peel(self, sha: bytes) -> tuple[DulwichCommit | None, DulwichTag | None]:
        """The commit an object leads to through tags, and the first (outermost) tag."""
        first_tag: DulwichTag | None = None
        obj = self.get(sha)
        for _ in range(32):
            if isinstance(obj, DulwichTag):
                first_tag = first_tag or obj
                obj = self.get(obj.object[1])
                continue
            return (obj if isinstance(obj, DulwichCommit) else None), first_tag
        return None, first_tag

    def local_heads(self) -> list[ObjectID]:
        """Every commit a ref leads to: what the negotiation offers as "have"."""
        heads: set[ObjectID] = set()
        for name, sha in self.repo.refs.as_dict().items():
            if name == b"HEAD" or not self.has(sha):
                continue
            with contextlib.suppress(KeyError):
                commit, _ = self.peel(sha)
                if commit is not None:
                    heads.add(commit.id)
        return sorted(heads)

    def contains(self, tip: bytes, target: bytes) -> bool:
        """Whether `target` is `tip` or one of its ancestors."""
        # A plain walk over the parents present: dulwich's Walker keeps a shallow list from
        # when the store was opened, which a fetch that just deepened has made stale.
        seen: set[bytes] = set()
        pending = [tip]
        while pending:
            sha = pending.pop()
            if sha == target:
                return True
            if sha in seen or not self.has(sha):
                continue
            seen.add(sha)
            obj = self.get(sha)
            if isinstance(obj, DulwichCommit):
                pending.extend(obj.parents)
        return False

    # -- refs -----------------------------------------------------------------------------------

    def set_refs(self, refs: Mapping[str, bytes], *, prune_prefix: str | None = None) -> None:
        """Point refs at what the remote advertised (force: the mirror follows rewrites);
        with prune_prefix, local refs under it that the remote no longer has go away."""
        container = self.repo.refs
        for name, sha in refs.items():
            container[Ref(name.encode())] = ObjectID(sha)
        if prune_prefix is not None:
            for short in list(container.keys(base=Ref(prune_prefix.encode()))):
                full = prune_prefix + short.decode("utf-8", "surrogateescape")
                if full not in refs:
                    container.remove_if_equals(Ref(full.encode()), None)

    # -- packs ----------------------------------------------------------------------------------

    def pack_writer(self) -> IO[bytes]:
        return SpooledTemporaryFile(
            max_size=_SPOOL_MAX, prefix="incoming-", dir=str(self.repo.object_store.path)
        )

    def add_pack(self, f: IO[bytes]) -> None:
        try:
            if f.tell():
                f.seek(0)
                self.repo.object_store.add_thin_pack(f.read, None)
        except Exception as e:
            raise FetchError(f"the received pack is invalid: {e}") from None
        finally:
            f.close()
        self._maybe_repack()

    def _maybe_repack(self) -> None:
        store = self.repo.object_store
        packs = list(Path(str(store.path), "pack").glob("*.pack"))
        if len(packs) > _MAX_PACKS:
            store.repack()

    def update_shallow(self, new: set[ObjectID] | None, gone: set[ObjectID] | None) -> None:
        self.repo.update_shallow(new, gone)
