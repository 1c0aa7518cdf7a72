"""The informer against a real API server: changes by another client, watch timeouts, a 410 from
compacted history, label selectors, and errors it must outlive."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2 as httpx
import pytest

from testenv import plane
from tests.plugin import Cluster
from tidal.kube.client import Kube
from tidal.runtime.informer import Backoff, Informer, collection_path, strip_managed_fields

pytestmark = pytest.mark.e2e


async def eventually(probe: Callable[[], bool | Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = probe()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {within}s waiting for {what}")


def configmap(namespace: str, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "data": {"v": "1"},
    }


class Recorder:
    """Handlers that log every change as (kind, name, resourceVersion)."""

    def __init__(self, informer: Informer) -> None:
        self.log: list[tuple[str, str, str]] = []
        informer.add_handler(
            on_add=lambda o: self._note("add", o),
            on_update=lambda old, new: self._note("update", new),
            on_delete=lambda o: self._note("delete", o),
        )

    def _note(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.log.append((kind, meta["name"], meta["resourceVersion"]))

    def saw(self, kind: str, name: str) -> bool:
        return any(k == kind and n == name for k, n, _ in self.log)


def names_in(informer: Informer) -> list[str]:
    return sorted(o["metadata"]["name"] for o in informer.list())


def versions(objs: list[dict[str, Any]]) -> dict[str, str]:
    return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in objs}


async def fresh_list(kube: Kube, path: str, **params: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await kube.get(path, params=params or None))["items"]
    return items


async def test_informer_sees_adds_updates_and_deletes_by_another_client(
    kube: Kube, namespace: str
) -> None:
    path = collection_path("v1", "configmaps", namespace)
    for i in range(5):
        await kube.create(path, configmap(namespace, f"pre-{i}"))

    informer = Informer(kube, path, page_size=2, transform=strip_managed_fields)
    seen = Recorder(informer)
    async with informer:
        async with asyncio.timeout(10):
            await informer.wait_synced()
        # kube-root-ca.crt is published into every namespace by the controller-manager.
        names = set(names_in(informer))
        assert {f"pre-{i}" for i in range(5)} <= names
        assert informer.metrics.list_pages >= 3  # 5+ objects, 2 per page
        assert all("managedFields" not in o["metadata"] for o in informer.list())
        assert informer.get(namespace, "pre-0")["kind"] == "ConfigMap"  # type: ignore[index]

        await kube.create(path, configmap(namespace, "fresh"))
        await kube.patch(f"{path}/pre-1", {"data": {"v": "2"}})
        await kube.delete(f"{path}/pre-2")
        await eventually(
            lambda: (
                seen.saw("add", "fresh")
                and seen.saw("update", "pre-1")
                and seen.saw("delete", "pre-2")
            ),
            10,
            "the watch to deliver add, update and delete",
        )
        assert informer.get(namespace, "pre-1")["data"] == {"v": "2"}  # type: ignore[index]
        assert informer.get(namespace, "pre-2") is None
        assert versions(informer.list()) == versions(await fresh_list(kube, path))
        assert informer.metrics.relists == 0


async def test_informer_resumes_when_the_server_ends_the_watch(kube: Kube, namespace: str) -> None:
    path = collection_path("v1", "configmaps", namespace)
    informer = Informer(kube, path, watch_timeout=1)
    seen = Recorder(informer)
    async with informer:
        async with asyncio.timeout(10):
            await informer.wait_synced()
        await eventually(lambda: informer.metrics.watch_restarts >= 2, 10, "two watch timeouts")
        for i in range(3):
            await kube.create(path, configmap(namespace, f"cm-{i}"))
            await asyncio.sleep(0.7)  # spread the writes across watch restarts
        await eventually(lambda: all(seen.saw("add", f"cm-{i}") for i in range(3)), 10, "adds")
        # Each reconnect resumed from the last resourceVersion: one LIST, no relist, no replays.
        assert informer.metrics.lists == 1
        assert informer.metrics.relists == 0
        assert [k for k, *_ in seen.log].count("add") == len(informer)
        assert versions(informer.list()) == versions(await fresh_list(kube, path))


async def compact_etcd(cluster: Cluster, revision: str) -> None:
    state = plane.State.load(cluster.kubeconfig.parent)
    async with httpx.AsyncClient() as etcd:
        resp = await etcd.post(
            f"http://127.0.0.1:{state.etcd_port}/v3/kv/compaction",
            json={"revision": revision, "physical": True},
        )
        resp.raise_for_status()


def event(namespace: str, name: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {"kind": "ConfigMap", "name": "x", "namespace": namespace},
        "reason": "Test",
        "message": message,
        "type": "Normal",
    }


async def test_informer_relists_after_410_and_reports_what_it_missed(
    cluster: Cluster, kube: Kube, namespace: str
) -> None:
    """A watch can only resume from history the server still has. Events are the one built-in
    kind the API server does not keep in its watch cache, so their watches read etcd's history
    directly; compacting etcd past the informer's resume point therefore makes the resumed watch
    end with an ERROR event carrying a 410 Status, exactly as after a long disconnect."""
    if not (cluster.kubeconfig.parent / "state.json").is_file():
        pytest.skip("needs a testenv plane (its etcd) to compact history")
    path = collection_path("v1", "events", namespace)
    for name in ("keep", "change", "remove"):
        await kube.create(path, event(namespace, name, "first"))

    informer = Informer(kube, path, backoff=Backoff(0.05, 0.5))
    seen = Recorder(informer)
    informer.start()
    async with asyncio.timeout(10):
        await informer.wait_synced()
    assert names_in(informer) == ["change", "keep", "remove"]
    await informer.stop()  # the cache and resume point are kept
    resume_point = informer.resource_version

    # While the informer is away: one update, one delete, one create...
    await kube.patch(f"{path}/change", {"message": "second"})
    await kube.delete(f"{path}/remove")
    await kube.create(path, event(namespace, "new", "first"))
    # ...and history up to now is compacted away.
    now = (await kube.get(path, params={"limit": "1"}))["metadata"]["resourceVersion"]
    assert int(now) > int(resume_point)
    await compact_etcd(cluster, now)

    seen.log.clear()
    informer.start()
    try:
        await eventually(lambda: informer.metrics.relists == 1, 10, "a relist after the 410")
        await eventually(lambda: len(seen.log) == 3, 5, "three synthetic changes")
        assert sorted((k, n) for k, n, _ in seen.log) == [
            ("add", "new"),
            ("delete", "remove"),
            ("update", "change"),
        ]
        assert informer.get(namespace, "change")["message"] == "second"  # type: ignore[index]
        assert versions(informer.list()) == versions(await fresh_list(kube, path))
        assert informer.metrics.lists == 2

        # And it watches again afterwards.
        await kube.create(path, event(namespace, "after", "first"))
        await eventually(lambda: seen.saw("add", "after"), 10, "the watch after the relist")
    finally:
        await informer.stop()


async def test_label_selector_filters_and_tracks_objects_entering_and_leaving_it(
    kube: Kube, namespace: str
) -> None:
    path = collection_path("v1", "configmaps", namespace)
    await kube.create(path, configmap(namespace, "mine", {"shard": "a"}))
    await kube.create(path, configmap(namespace, "theirs", {"shard": "b"}))

    informer = Informer(kube, path, label_selector="shard=a")
    seen = Recorder(informer)
    async with informer:
        async with asyncio.timeout(10):
            await informer.wait_synced()
        assert names_in(informer) == ["mine"]

        await kube.patch(f"{path}/theirs", {"metadata": {"labels": {"shard": "a"}}})
        await eventually(lambda: seen.saw("add", "theirs"), 10, "an object entering the selector")
        await kube.patch(f"{path}/mine", {"metadata": {"labels": {"shard": "b"}}})
        await eventually(lambda: seen.saw("delete", "mine"), 10, "an object leaving it")
        await kube.create(path, configmap(namespace, "other", {"shard": "c"}))
        await kube.create(path, configmap(namespace, "marker", {"shard": "a"}))
        await eventually(lambda: seen.saw("add", "marker"), 10, "a new matching object")
        assert names_in(informer) == ["marker", "theirs"]
        assert not seen.saw("add", "other")
        listed = await fresh_list(kube, path, labelSelector="shard=a")
        assert versions(informer.list()) == versions(listed)


async def test_informer_outlives_errors_and_recovers_when_access_is_granted(
    cluster: Cluster, kube: Kube, namespace: str
) -> None:
    """Forbidden (RBAC not there yet) and a raising handler: the loop backs off, keeps trying,
    and syncs once a RoleBinding appears."""
    path = collection_path("v1", "configmaps", namespace)
    user = f"informer-{namespace}"
    async with Kube.from_kubeconfig(cluster.kubeconfig) as admin_config:
        restricted = Kube(admin_config.config, impersonate=user)
    informer = Informer(restricted, path, backoff=Backoff(0.05, 0.2))
    informer.add_handler(on_add=lambda o: 1 / 0)
    seen = Recorder(informer)
    try:
        async with informer:
            await eventually(lambda: informer.metrics.errors >= 3, 10, "repeated 403s")
            assert not informer.has_synced and informer.running

            rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
            await kube.create(
                f"{rbac}/roles",
                {
                    "metadata": {"name": "read-cm"},
                    "rules": [
                        {
                            "apiGroups": [""],
                            "resources": ["configmaps"],
                            "verbs": ["get", "list", "watch"],
                        }
                    ],
                },
            )
            await kube.create(
                f"{rbac}/rolebindings",
                {
                    "metadata": {"name": "read-cm"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Role",
                        "name": "read-cm",
                    },
                    "subjects": [
                        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
                    ],
                },
            )
            async with asyncio.timeout(10):
                await informer.wait_synced()
            await kube.create(path, configmap(namespace, "late"))
            await eventually(lambda: seen.saw("add", "late"), 10, "the watch after recovery")
            # The raising handler cost nothing but a log line per change.
            assert informer.metrics.handler_errors >= 2
    finally:
        await restricted.close()
