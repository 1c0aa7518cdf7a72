"""The controller wakes exactly on the changes Flux's predicates let through."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from tests.e2e.test_crd import GIT_KIND, git_repository, install
from tidal.kube.client import Kube
from tidal.runtime.controller import Controller
from tidal.runtime.informer import Informer, Obj, collection_path, lean
from tidal.runtime.metrics import Registry
from tidal.runtime.workers import Result

pytestmark = pytest.mark.e2e


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int, str]] = []
        self.deleted: list[tuple[str, str]] = []
        self.requeue_after: float | None = None
        self.changed = asyncio.Event()

    async def until(self, done: Callable[[], bool], within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while not done():
                self.changed.clear()
                await self.changed.wait()

    async def reconcile(self, obj: Obj) -> Result:
        meta = obj["metadata"]
        token = (meta.get("annotations") or {}).get("reconcile.fluxcd.io/requestedAt", "")
        self.seen.append((meta["name"], meta["generation"], token))
        self.changed.set()
        return Result.success(self.requeue_after)

    async def gone(self, key: tuple[str, str]) -> None:
        self.deleted.append(key)
        self.changed.set()


@pytest.fixture
async def running(kube: Kube, namespace: str) -> AsyncIterator[tuple[Controller, Recorder]]:
    await install(kube, GIT_KIND)
    recorder = Recorder()
    informer = Informer(
        kube,
        collection_path("source.toolkit.fluxcd.io/v1", "gitrepositories", namespace),
        transform=lean,
    )
    controller = Controller(
        "gitrepository",
        "GitRepository",
        informer,
        recorder.reconcile,
        metrics=Registry(),
        concurrency=2,
        jitter=lambda s: s,
        deleted=recorder.gone,
    )
    await controller.start()
    try:
        yield controller, recorder
    finally:
        await controller.stop(grace_period=5)


async def settle(recorder: Recorder, count: int) -> None:
    await recorder.until(lambda: len(recorder.seen) >= count)
    await asyncio.sleep(0.3)  # and nothing more arrives


async def test_wakes_on_create_spec_and_request_not_on_status_or_labels(
    kube: Kube, namespace: str, running: tuple[Controller, Recorder]
) -> None:
    _, recorder = running
    base = f"/apis/source.toolkit.fluxcd.io/v1/namespaces/{namespace}/gitrepositories"
    await kube.request("POST", base, body=git_repository(namespace, "app"))
    await settle(recorder, 1)
    assert recorder.seen == [("app", 1, "")]

    await kube.patch(f"{base}/app/status", {"status": {"observedGeneration": 1}})
    await kube.patch(f"{base}/app", {"metadata": {"labels": {"team": "a"}}})
    await asyncio.sleep(0.5)
    assert len(recorder.seen) == 1, "status and label edits must not wake the controller"

    await kube.patch(f"{base}/app", {"spec": {"interval": "5m"}})
    await settle(recorder, 2)
    assert recorder.seen[-1] == ("app", 2, "")

    token = "2026-11-24T16:00:00.000000000Z"
    annotations = {"reconcile.fluxcd.io/requestedAt": token}
    await kube.patch(f"{base}/app", {"metadata": {"annotations": annotations}})
    await settle(recorder, 3)
    assert recorder.seen[-1] == ("app", 2, token)

    await kube.delete(f"{base}/app")
    await recorder.until(lambda: bool(recorder.deleted))
    assert recorder.deleted == [(namespace, "app")]


async def test_success_requeues_after_the_interval(
    kube: Kube, namespace: str, running: tuple[Controller, Recorder]
) -> None:
    controller, recorder = running
    recorder.requeue_after = 0.3
    base = f"/apis/source.toolkit.fluxcd.io/v1/namespaces/{namespace}/gitrepositories"
    await kube.request("POST", base, body=git_repository(namespace, "ticker"))
    await recorder.until(lambda: len(recorder.seen) >= 4)
    exposition = controller.metrics.exposition().decode()
    assert (
        'controller_runtime_reconcile_total{controller="gitrepository",result="requeue_after"}'
        in exposition
    )
    assert (
        f'gotk_reconcile_duration_seconds_count{{kind="GitRepository",name="ticker",namespace="{namespace}"}}'
        in exposition
    )
