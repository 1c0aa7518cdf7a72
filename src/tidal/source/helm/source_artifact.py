"""A source's artifact as a HelmChart reads it: from this controller's storage when the file is
there, otherwise over HTTP from status.artifact.url (another controller wrote it, e.g. a
second replica or a split deployment). Either way the bytes must match the artifact's digest
and stay within a size bound before anything parses them."""

from __future__ import annotations

import asyncio
import stat
from typing import Final

import aiohttp

from tidal.api.meta import Artifact
from tidal.source.archive import UnsupportedDigestError, new_hasher, parse_digest
from tidal.source.storage import Storage, StorageError

_CHUNK: Final = 1 << 20


class SourceArtifactError(Exception):
    pass


class ArtifactNotFoundError(SourceArtifactError):
    """The source's server answered 404: the artifact is gone (or not written yet)."""


def _verify(data: bytes, artifact: Artifact) -> bytes:
    try:
        algorithm, expected = parse_digest(artifact.digest)
        hasher = new_hasher(algorithm)
    except (ValueError, UnsupportedDigestError) as e:
        raise SourceArtifactError(f"invalid artifact digest '{artifact.digest}': {e}") from None
    hasher.update(data)
    if hasher.hexdigest() != expected:
        raise SourceArtifactError(f"computed digest doesn't match '{artifact.digest}'")
    return data


def _read_local(storage: Storage, artifact: Artifact, max_size: int) -> bytes | None:
    try:
        path = storage.local_path(artifact.path)
        st = path.lstat()
    except (OSError, StorageError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    if st.st_size > max_size:
        raise SourceArtifactError(f"artifact '{artifact.path}' exceeds {max_size} bytes")
    data = path.read_bytes()
    try:
        return _verify(data, artifact)
    except SourceArtifactError:
        # Being rewritten, or left by another writer: the URL is the authority then.
        return None


async def read_artifact(
    storage: Storage,
    session: aiohttp.ClientSession,
    artifact: Artifact,
    *,
    max_size: int,
    time_limit: float = 60.0,
) -> bytes:
    """The artifact's verified bytes (see the module docstring)."""
    local = await asyncio.to_thread(_read_local, storage, artifact, max_size)
    if local is not None:
        return local
    return await fetch_artifact(session, artifact, max_size=max_size, time_limit=time_limit)


async def fetch_artifact(
    session: aiohttp.ClientSession,
    artifact: Artifact,
    *,
    max_size: int,
    time_limit: float = 60.0,
) -> bytes:
    """The artifact's bytes from its URL, bounded in size and time and checked against its
    digest; ArtifactNotFoundError when the source's server no longer has the file."""
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(time_limit), session.get(artifact.url) as resp:
            if resp.status == 404:
                raise ArtifactNotFoundError(f"artifact not found at {artifact.url}")
            if resp.status != 200:
                raise SourceArtifactError(
                    f"failed to download artifact from {artifact.url}, status: "
                    f"{resp.status} {resp.reason or ''}".rstrip()
                )
            async for chunk in resp.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > max_size:
                    raise SourceArtifactError(
                        f"artifact from {artifact.url} exceeds {max_size} bytes"
                    )
                parts.append(chunk)
    except (aiohttp.ClientError, TimeoutError) as e:
        raise SourceArtifactError(
            f"failed to download artifact from {artifact.url}: {e or type(e).__name__}"
        ) from None
    return await asyncio.to_thread(_verify, b"".join(parts), artifact)
