"""Source artifacts, downloaded once per digest and unpacked into a shared read-only tree.

Flux's kustomize-controller downloads and untars the artifact into a fresh temporary directory
on every reconcile of every Kustomization. Two hundred Kustomizations on one GitRepository
then download and unpack the same tarball two hundred times. Here the unpacked tree is keyed
by the artifact's digest: the first reconcile that needs it fetches it (others wait for that
one), every later one reuses it until it has not been used for a while. The tree is made
read-only, since a build writes its kustomization overlay into a private copy, never into it.

The download is checked against status.artifact.digest before a single file is unpacked, and
unpacking refuses unsafe paths and oversized trees (tidal.source.archive.safe_extract).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiohttp

from tidal.source.archive import (
    ArchiveError,
    UnsupportedDigestError,
    new_hasher,
    parse_digest,
    safe_extract,
)

DEFAULT_MAX_DOWNLOAD: Final = 1 << 30
_CHUNK: Final = 1 << 20


class ArtifactError(Exception):
    """The artifact cannot be fetched, verified or unpacked (reason ArtifactFailed)."""


@dataclass(slots=True)
class _Tree:
    path: Path
    users: int = 0
    last_used: float = field(default_factory=time.monotonic)


def _key(digest: str) -> str:
    algorithm, hexdigest = parse_digest(digest)
    if not hexdigest.isalnum():
        raise ArtifactError(f"invalid artifact digest '{digest}'")
    return f"{algorithm}-{hexdigest}"


def _make_read_only(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        for name in filenames:
            p = here / name
            mode = p.lstat().st_mode
            if stat.S_ISREG(mode):
                p.chmod(stat.S_IMODE(mode) & ~0o222)
        for name in dirnames:
            d = here / name
            if not d.is_symlink():
                d.chmod(0o500)
    root.chmod(0o500)


def _remove_tree(root: Path) -> None:
    """rmtree of a read-only tree: give directories write permission back first."""
    for dirpath, dirnames, _ in os.walk(root):
        here = Path(dirpath)
        here.chmod(0o700)
        for name in dirnames:
            d = here / name
            if not d.is_symlink():
                d.chmod(0o700)
    shutil.rmtree(root, ignore_errors=True)


class ArtifactCache:
    """Unpacked artifacts under `root`, shared by digest; at most `keep` idle trees stay."""

    def __init__(
        self,
        root: Path,
        *,
        keep: int = 32,
        max_download: int = DEFAULT_MAX_DOWNLOAD,
        retries: int = 3,
    ) -> None:
        self.root = root
        self.keep = keep
        self.max_download = max_download
        self.retries = retries
        self._trees: dict[str, _Tree] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            # trust_env off: the artifact server is in-cluster and proxies must not see it.
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60),
                trust_env=False,
            )
        return self._http

    async def _download(self, url: str, digest: str, dest: Path) -> None:
        algorithm, _ = parse_digest(digest)
        hasher = new_hasher(algorithm)
        size = 0
        async with self._session().get(url) as resp:
            if resp.status != 200:
                raise ArtifactError(
                    f"failed to download artifact from {url}, status: {resp.status} {resp.reason}"
                )
            with dest.open("wb") as f:
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    size += len(chunk)
                    if size > self.max_download:
                        raise ArtifactError(
                            f"artifact from {url} exceeds the {self.max_download} bytes limit"
                        )
                    hasher.update(chunk)
                    f.write(chunk)
        actual = f"{algorithm}:{hasher.hexdigest()}"
        if actual != digest:
            raise ArtifactError(
                f"failed to verify artifact: computed digest doesn't match '{digest}'"
            )

    async def _fetch(self, url: str, digest: str, key: str) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / key
        if final.is_dir():
            return final
        work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=self.root))
        try:
            tarball = work / "artifact.tar.gz"
            last: Exception | None = None
            for attempt in range(self.retries):
                try:
                    await self._download(url, digest, tarball)
                    last = None
                    break
                except (aiohttp.ClientError, TimeoutError) as e:
                    last = e
                    await asyncio.sleep(0.2 * (attempt + 1))
            if last is not None:
                raise ArtifactError(f"failed to download artifact from {url}: {last}") from last
            tree = work / "tree"
            try:
                await asyncio.to_thread(safe_extract, tarball, tree)
            except ArchiveError as e:
                raise ArtifactError(f"failed to untar artifact: {e}") from e
            await asyncio.to_thread(_make_read_only, tree)
            tree.rename(final)
            return final
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)

    @contextlib.asynccontextmanager
    async def unpacked(self, url: str, digest: str) -> AsyncIterator[Path]:
        """The unpacked tree of the artifact at `url` with `digest`, held while in use."""
        try:
            key = _key(digest)
        except (ValueError, UnsupportedDigestError) as e:
            raise ArtifactError(f"invalid artifact digest '{digest}': {e}") from e
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            tree = self._trees.get(key)
            if tree is None:
                tree = _Tree(await self._fetch(url, digest, key))
                self._trees[key] = tree
            tree.users += 1
        try:
            yield tree.path
        finally:
            tree.users -= 1
            tree.last_used = time.monotonic()
            await self._evict()

    async def _evict(self) -> None:
        idle = sorted((t.last_used, key) for key, t in self._trees.items() if t.users == 0)
        for _, key in idle[: max(0, len(idle) - self.keep)]:
            tree = self._trees.pop(key)
            # Renamed away first (atomically, on the loop) so that a fetch of the same digest
            # starting now can never be handed a tree that is half deleted.
            trash = Path(tempfile.mkdtemp(prefix=".evicted-", dir=self.root))
            tree.path.rename(trash / "tree")
            await asyncio.to_thread(_remove_tree, trash)
