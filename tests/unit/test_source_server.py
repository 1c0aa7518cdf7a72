"""The artifact server hands out stored artifacts and nothing else."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tidal.runtime.endpoints import Server
from tidal.source.server import artifact_app
from tidal.source.storage import Storage, artifact_path


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Storage, str]]:
    (tmp_path / "data").mkdir()
    storage = Storage(tmp_path / "data", "localhost:9090")
    server = Server(artifact_app(storage), "127.0.0.1:0")
    await server.start()
    try:
        yield storage, f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop()


async def test_stored_artifact_is_served_byte_for_byte(served: tuple[Storage, str]) -> None:
    storage, base = served
    path = artifact_path("GitRepository", "flux-system", "podinfo", "abc.tar.gz")
    artifact = storage.store(path, "main@sha1:abc", lambda out: out.write(b"tarball bytes"))
    async with httpx.AsyncClient() as client:
        resp = await client.get(f"{base}/{artifact.path}")
    assert resp.status_code == 200
    assert resp.content == b"tarball bytes"
    assert artifact.digest == "sha256:" + hashlib.sha256(resp.content).hexdigest()
    assert int(resp.headers["content-length"]) == artifact.size


@pytest.mark.parametrize(
    "path",
    [
        "gitrepository/flux-system/podinfo/missing.tar.gz",
        "gitrepository/flux-system/podinfo/",
        "gitrepository/flux-system/podinfo/abc.tar.gz.lock",
        "gitrepository/flux-system/podinfo/.abc.tar.gz.x1.tmp",
        "gitrepository/%2e%2e/%2e%2e/secret",
        "..%2f..%2fsecret",
        "gitrepository/flux-system/podinfo/escape",
    ],
)
async def test_everything_else_is_not_found(served: tuple[Storage, str], path: str) -> None:
    storage, base = served
    good = artifact_path("GitRepository", "flux-system", "podinfo", "abc.tar.gz")
    storage.store(good, "r", lambda out: out.write(b"x"))
    directory = storage.root / "gitrepository/flux-system/podinfo"
    (directory / ".abc.tar.gz.x1.tmp").write_bytes(b"partial")
    secret = storage.root.parent / "secret"
    secret.write_text("token")
    (directory / "escape").symlink_to(secret)
    async with httpx.AsyncClient() as client:
        resp = await client.get(f"{base}/{path}")
    assert resp.status_code == 404
    assert b"token" not in resp.content
