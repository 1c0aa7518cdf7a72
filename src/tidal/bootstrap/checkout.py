"""One branch of the bootstrap repository: cloned into a private bare repository, edited as
trees (nothing is checked out on disk), committed and pushed with tidal's Git transports.

- Cloning is the GitRepository controller's fetch (`tidal.source.git.fetch`: the branch only,
  depth 1) into that repository; an empty remote starts the branch from nothing, as flux's
  clone does. A branch missing from a repository that has others is an error, as in flux.
- `write` changes files in a staged tree, `commit` records it when it differs from the head
  (flux commits only when the work tree changed), so nothing changes means no commit.
- `push` updates the one branch, and only from where the clone found it: when the remote moved
  meanwhile, PushConflictError (flux's non-fast-forward), and the remote is left as it was.

Errors are tidal.source.git GitErrors, worded as the controller words them, credentials
removed.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Final

from dulwich.errors import NotTreeError
from dulwich.object_store import commit_tree_changes, tree_lookup_path
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.pack import UnpackedObject
from dulwich.refs import Ref as DulwichRef
from dulwich.repo import Repo

from tidal.source.git import AuthOptions, EmptyRepositoryError, FetchError, Ref, fetch, parse_url
from tidal.source.git.client import translated_errors, transport
from tidal.source.git.operation import Operation, run_in_thread
from tidal.source.git.refs import HEADS
from tidal.source.git.url import GitURL

FILE_MODE: Final = 0o100644
_BLOB_MODES: Final = (0o100644, 0o100755)
_MIN_TIMEOUT: Final = 1.0


class PushConflictError(FetchError):
    """The remote branch moved since the clone: the push would have overwritten it."""


def signature(name: str, email: str) -> bytes:
    return f"{name} <{email}>".encode()


class Checkout:
    def __init__(
        self,
        url: str,
        branch: str,
        auth: AuthOptions,
        directory: Path,
        *,
        allow_file: bool = False,
    ) -> None:
        self.url = url
        self.branch = branch
        self.auth = auth
        self.directory = directory
        self.allow_file = allow_file
        self.base: ObjectID | None = None  # the remote branch as cloned; None: no such branch
        self.head: ObjectID | None = None  # the local branch
        self._tree = ObjectID(b"")  # the staged tree
        self._repo: Repo | None = None

    @property
    def ref(self) -> str:
        return HEADS + self.branch

    @property
    def cloned(self) -> bool:
        return self._repo is not None

    @property
    def repo(self) -> Repo:
        if self._repo is None:
            raise RuntimeError("the repository is not cloned yet")
        return self._repo

    def _auth(self, timeout: float) -> AuthOptions:
        return replace(self.auth, timeout=max(timeout, _MIN_TIMEOUT))

    # -- clone ---------------------------------------------------------------------------------

    async def clone(self, timeout: float) -> None:  # noqa: ASYNC109 - the Git operation's own
        """Fetch the branch afresh (anything done before is dropped)."""
        self.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        try:
            commit = await fetch(
                self.url,
                Ref(branch=self.branch),
                self._auth(timeout),
                self.directory,
                allow_file=self.allow_file,
            )
            base: ObjectID | None = ObjectID(commit.hash.encode())
        except EmptyRepositoryError:
            base = None
        repo = Repo(str(self.directory))
        self._repo = repo
        self.base = self.head = base
        if base is None:
            empty = Tree()
            repo.object_store.add_object(empty)
            self._tree = empty.id
        else:
            self._tree = self._commit(base).tree

    def _commit(self, sha: ObjectID) -> Commit:
        obj = self.repo.object_store[sha]
        if not isinstance(obj, Commit):
            raise FetchError(f"'{sha.decode()}' is not a commit")
        return obj

    # -- the staged tree -----------------------------------------------------------------------

    def read(self, path: str) -> bytes | None:
        """A file of the staged tree; None when there is none at `path`."""
        store = self.repo.object_store
        try:
            mode, sha = tree_lookup_path(store.__getitem__, self._tree, path.encode())
        except (KeyError, NotTreeError):  # nothing there, or a file on the way
            return None
        if mode not in _BLOB_MODES:
            return None
        blob = store[sha]
        return blob.data if isinstance(blob, Blob) else None

    def files_under(self, directory: str) -> dict[str, bytes]:
        """Every regular file below `directory`, by its path relative to it."""
        store = self.repo.object_store
        try:
            mode, sha = tree_lookup_path(store.__getitem__, self._tree, directory.encode())
        except (KeyError, NotTreeError):  # nothing there, or a file on the way
            return {}
        if mode != 0o040000:
            return {}
        out: dict[str, bytes] = {}
        for entry in store.iter_tree_contents(sha):
            if entry.mode in _BLOB_MODES:
                blob = store[entry.sha]
                if isinstance(blob, Blob):
                    out[entry.path.decode("utf-8", "surrogateescape")] = blob.data
        return out

    def write(self, files: Mapping[str, bytes]) -> None:
        store = self.repo.object_store
        changes: list[tuple[bytes, int | None, ObjectID | None]] = []
        for path, content in files.items():
            blob = Blob.from_string(content)
            store.add_object(blob)
            changes.append((path.encode(), FILE_MODE, blob.id))
        self._tree = commit_tree_changes(store, self._tree, changes)

    def commit(self, message: str, author: bytes) -> str | None:
        """Record the staged tree on the branch; None when it is what the head already has."""
        if self.head is not None and self._commit(self.head).tree == self._tree:
            return None
        staged = self.repo.object_store[self._tree]
        if self.head is None and isinstance(staged, Tree) and not len(staged):
            return None
        utc_offset = datetime.now().astimezone().utcoffset()
        offset = int(utc_offset.total_seconds()) if utc_offset is not None else 0
        commit = Commit()
        commit.tree = self._tree
        commit.parents = [self.head] if self.head is not None else []
        commit.author = commit.committer = author
        commit.author_time = commit.commit_time = int(time.time())
        commit.author_timezone = commit.commit_timezone = offset
        commit.encoding = b"UTF-8"
        commit.message = message.encode()
        self.repo.object_store.add_object(commit)
        self.head = commit.id
        return str(commit.id.decode())

    # -- push ----------------------------------------------------------------------------------

    async def push(self, timeout: float) -> None:  # noqa: ASYNC109 - the Git operation's own
        """Send the commits made since the clone; nothing when there are none."""
        if self.head is None or self.head == self.base:
            return
        parsed = parse_url(self.url, allow_file=self.allow_file)
        auth = self._auth(timeout)
        op = Operation(auth.timeout, f"pushing to '{parsed}'")

        def run() -> None:
            with translated_errors(op, auth, "failed to push to remote: "):
                self._push(parsed, auth, op)

        await run_in_thread(op, run)
        self.base = self.head

    def _push(self, url: GitURL, auth: AuthOptions, op: Operation) -> None:
        ref = DulwichRef(self.ref.encode())
        head = self.head
        assert head is not None
        repo = self.repo

        def update_refs(refs: dict[DulwichRef, ObjectID]) -> dict[DulwichRef, ObjectID]:
            if refs.get(ref) != self.base:
                raise PushConflictError(
                    f"non-fast-forward update: '{self.branch}' moved on the remote since it "
                    "was cloned"
                )
            return {ref: head}

        def generate_pack_data(
            have: AbstractSet[ObjectID],
            want: AbstractSet[ObjectID],
            *,
            ofs_delta: bool = True,
            progress: Callable[[bytes], None] | None = None,
        ) -> tuple[int, Iterator[UnpackedObject]]:
            return repo.object_store.generate_pack_data(
                have, want, shallow=set(repo.get_shallow()), progress=progress, ofs_delta=ofs_delta
            )

        with transport(url, auth, op) as (client, path):
            result = client.send_pack(path.encode(), update_refs, generate_pack_data)
        error = (result.ref_status or {}).get(ref)
        if error:
            raise FetchError(f"the remote refused to update '{self.ref}': {error}")

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
            self._repo = None
