"""The shared artifact cache: one download per digest however many Kustomizations ask, a
digest mismatch refused before anything is unpacked, idle trees evicted."""

from __future__ import annotations

import asyncio
import io
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tidal.kustomize.artifacts import ArtifactCache, ArtifactError
from tidal.source.archive import Archiver


class Served:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: dict[str, int] = {}
        self.url = ""

    def add(self, name: str, tree: dict[str, str], tmp: Path) -> str:
        root = tmp / name
        for rel, text in tree.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        out = io.BytesIO()
        digest = Archiver().from_directory(root, out).digest
        self.files[name] = out.getvalue()
        return digest


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    state = Served()

    async def handle(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        state.requests[name] = state.requests.get(name, 0) + 1
        if name not in state.files:
            return web.Response(status=404)
        # Slow enough that concurrent callers overlap with the first download.
        await asyncio.sleep(0.05)
        return web.Response(body=state.files[name])

    app = web.Application()
    app.router.add_get("/{name}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


async def test_one_download_serves_every_concurrent_user(served: Served, tmp_path: Path) -> None:
    digest = served.add("a", {"app/cm.yaml": "kind: ConfigMap\n"}, tmp_path)
    cache = ArtifactCache(tmp_path / "cache")
    seen: list[str] = []

    async def use() -> None:
        async with cache.unpacked(f"{served.url}/a", digest) as tree:
            seen.append((tree / "app" / "cm.yaml").read_text())

    await asyncio.gather(*(use() for _ in range(5)))
    await use()
    await cache.close()
    assert seen == ["kind: ConfigMap\n"] * 6
    assert served.requests["a"] == 1


async def test_the_shared_tree_is_read_only(served: Served, tmp_path: Path) -> None:
    digest = served.add("a", {"cm.yaml": "x: 1\n"}, tmp_path)
    cache = ArtifactCache(tmp_path / "cache")
    async with cache.unpacked(f"{served.url}/a", digest) as tree:
        # Modes, not a write attempt: the tests may run as root, whom modes do not stop.
        assert stat.S_IMODE(tree.stat().st_mode) & 0o222 == 0
        assert stat.S_IMODE((tree / "cm.yaml").stat().st_mode) & 0o222 == 0
    await cache.close()


async def test_wrong_digest_and_missing_artifact_are_refused(
    served: Served, tmp_path: Path
) -> None:
    served.add("a", {"cm.yaml": "x: 1\n"}, tmp_path)
    cache = ArtifactCache(tmp_path / "cache", retries=1)
    wrong = "sha256:" + "0" * 64
    with pytest.raises(ArtifactError, match="computed digest doesn't match"):
        async with cache.unpacked(f"{served.url}/a", wrong):
            pass
    with pytest.raises(ArtifactError, match="status: 404"):
        async with cache.unpacked(f"{served.url}/gone", wrong):
            pass
    with pytest.raises(ArtifactError, match="invalid artifact digest"):
        async with cache.unpacked(f"{served.url}/a", "sha256:../../etc"):
            pass
    await cache.close()
    # Nothing half-unpacked is left for a later reconcile to pick up.
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []


async def test_idle_trees_beyond_the_limit_are_evicted(served: Served, tmp_path: Path) -> None:
    digests = [served.add(n, {"f.yaml": f"n: {n}\n"}, tmp_path) for n in ("a", "b", "c")]
    cache = ArtifactCache(tmp_path / "cache", keep=1)
    for name, digest in zip("abc", digests, strict=True):
        async with cache.unpacked(f"{served.url}/{name}", digest):
            pass
    async with cache.unpacked(f"{served.url}/c", digests[2]) as tree:
        assert (tree / "f.yaml").read_text() == "n: c\n"
    async with cache.unpacked(f"{served.url}/a", digests[0]):
        pass
    await cache.close()
    assert served.requests == {"a": 2, "b": 1, "c": 1}
    kept = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]
    assert len(kept) == 1
