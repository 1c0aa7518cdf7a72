"""Metrics and health endpoints over real HTTP on loopback."""

from __future__ import annotations

import httpx2 as httpx
import pytest

from tidal.runtime.endpoints import Health, Server, metrics_app, parse_addr
from tidal.runtime.metrics import Registry
from tidal.runtime.queue import WorkQueue


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        (":8080", ("0.0.0.0", 8080)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("[::1]:9090", ("::1", 9090)),
        ("localhost:9440", ("localhost", 9440)),
    ],
)
def test_parse_addr(addr: str, expected: tuple[str, int]) -> None:
    assert parse_addr(addr) == expected


@pytest.mark.parametrize("addr", ["8080", "host:", "host:http", ""])
def test_parse_addr_refuses_nonsense(addr: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        parse_addr(addr)


async def test_metrics_expose_flux_names() -> None:
    registry = Registry()
    queue: WorkQueue[str] = WorkQueue("gitrepository")
    observer = registry.queue_observer("gitrepository")
    queue.add("flux-system/podinfo")
    registry.observe_reconcile("gitrepository", "success", 0.2)
    registry.observe_reconcile("gitrepository", "error", 0.1)
    registry.observe_object("GitRepository", "podinfo", "flux-system", 0.2, suspended=True)
    server = Server(metrics_app(registry, [lambda: observer.sync(queue)]), "127.0.0.1:0")
    await server.start()
    try:
        async with httpx.AsyncClient() as client:
            resp = await client.get(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        await server.stop()
    assert resp.status_code == 200
    text = resp.text
    assert (
        'gotk_reconcile_duration_seconds_count{kind="GitRepository",name="podinfo",'
        'namespace="flux-system"} 1.0' in text
    )
    assert (
        'gotk_suspend_status{kind="GitRepository",name="podinfo",namespace="flux-system"} 1.0'
        in text
    )
    assert (
        'controller_runtime_reconcile_total{controller="gitrepository",result="success"} 1.0'
        in text
    )
    assert 'controller_runtime_reconcile_errors_total{controller="gitrepository"} 1.0' in text
    assert 'workqueue_depth{controller="gitrepository",name="gitrepository"} 1.0' in text
    assert 'workqueue_adds_total{controller="gitrepository",name="gitrepository"} 1.0' in text


async def test_forgotten_objects_leave_the_exposition() -> None:
    registry = Registry()
    registry.observe_object("GitRepository", "gone", "default", 0.1, suspended=False)
    registry.forget_object("GitRepository", "gone", "default")
    registry.forget_object("GitRepository", "never-seen", "default")
    assert b'name="gone"' not in registry.exposition()


async def test_readyz_names_the_failing_checks() -> None:
    health = Health()
    synced = False

    async def leader() -> bool:
        return True

    health.add("informers-synced", lambda: synced)
    health.add("leader-election", leader)
    server = Server(health.app(), "127.0.0.1:0")
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{base}/healthz")).text == "ok"
            not_ready = await client.get(f"{base}/readyz")
            synced = True
            ready = await client.get(f"{base}/readyz")
    finally:
        await server.stop()
    assert not_ready.status_code == 503
    assert not_ready.text == "not ready: informers-synced"
    assert ready.status_code == 200
