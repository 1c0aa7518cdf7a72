"""Drift correction within seconds: `tidal controller` watches what its Kustomizations applied
and re-applies when someone else edits or deletes it, long before spec.interval (1h here),
while other controllers' status updates leave it asleep."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx2 as httpx
import pytest

from testenv.git_server import GitHTTPServer
from tests.controller_process import RunningController, controller_fixture
from tests.kustomization_helpers import applied, cm, deployed, fetch_now, get_cm, wait_ks
from tidal.kube.client import Kube

pytestmark = pytest.mark.e2e

controller = controller_fixture("--concurrent", "4")

WITHIN = 5.0  # what the drift watch promises


async def metric(controller: RunningController, series: str, /, **labels: str) -> float:
    """One sample of the controller's /metrics (0 when the series does not exist yet)."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{controller.metrics_port}/metrics")).text
    for line in text.splitlines():
        m = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if not m or m[1] != series:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m[2] or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m[3])
    return 0.0


async def reconciles(controller: RunningController, namespace: str, name: str) -> float:
    return await metric(
        controller,
        "gotk_reconcile_duration_seconds_count",
        kind="Kustomization",
        name=name,
        namespace=namespace,
    )


async def until(check: Any, within: float, what: str, controller: RunningController) -> float:
    """Poll `check` (async, truthy when done); the seconds it took."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > within:
            raise AssertionError(
                f"{what} not within {within}s; controller log tail:\n{controller.logs()[-3000:]}"
            )
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def watching(controller: RunningController, kind: str) -> None:
    """Wait for the controller's watch on `kind` to have done its first LIST: a change made
    before that is only seen by the next reconcile (see tidal.kustomize.drift_watch)."""

    async def listed() -> bool:
        return await metric(controller, "tidal_drift_watch_objects", kind=kind) >= 1

    await until(listed, 10, f"drift watch on {kind}", controller)


async def deployed_for_an_hour(
    kube: Kube, namespace: str, git_http: GitHTTPServer, repo: Any, controller: RunningController
) -> None:
    """The Kustomization "apps" on ./apps of `repo`, applied. It and its source have an interval
    of an hour: only the drift watch (or a request) makes it reconcile again."""
    await deployed(
        kube,
        namespace,
        "apps",
        git_http,
        repo,
        controller,
        source={"interval": "1h"},
        path="./apps",
        interval="1h",
    )


async def test_edits_and_deletes_are_reverted_within_seconds(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(
        files={
            "apps/a.yaml": cm("a", namespace, color="blue"),
            "apps/b.yaml": cm("b", namespace, size="1"),
            "apps/keep.yaml": cm("keep", namespace, v="1").replace(
                "metadata:\n",
                "metadata:\n  annotations:\n    kustomize.toolkit.fluxcd.io/ssa: IfNotPresent\n",
            ),
        }
    )
    await deployed_for_an_hour(kube, namespace, git_http, repo, controller)
    await watching(controller, "v1/ConfigMap")
    path = f"/api/v1/namespaces/{namespace}/configmaps"

    # kubectl edit: another field manager changes a field we own.
    await kube.request(
        "PATCH",
        f"{path}/a",
        body={"data": {"color": "red"}},
        params={"fieldManager": "kubectl-edit"},
        content_type="application/merge-patch+json",
    )

    async def blue_again() -> bool:
        a = await get_cm(kube, namespace, "a")
        return a is not None and a["data"] == {"color": "blue"}

    await until(blue_again, WITHIN, "edit reverted", controller)

    # kubectl delete: the object comes back.
    b = await get_cm(kube, namespace, "b")
    assert b is not None
    await kube.delete(f"{path}/b")

    async def recreated() -> bool:
        again = await get_cm(kube, namespace, "b")
        return again is not None and again["metadata"]["uid"] != b["metadata"]["uid"]

    await until(recreated, WITHIN, "deleted ConfigMap recreated", controller)
    assert await metric(controller, "tidal_drift_wakeups_total", reason="modified") >= 1
    assert await metric(controller, "tidal_drift_wakeups_total", reason="deleted") >= 1

    # ssa: IfNotPresent objects are the user's once created: an edit stays.
    await kube.patch(f"{path}/keep", {"data": {"v": "mine"}})
    before = await reconciles(controller, namespace, "apps")
    await asyncio.sleep(2)
    keep = await get_cm(kube, namespace, "keep")
    assert keep is not None and keep["data"] == {"v": "mine"}
    assert await reconciles(controller, namespace, "apps") == before


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {namespace}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: nginx
"""


async def test_status_updates_by_other_controllers_do_not_wake_it(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(files={"apps/web.yaml": DEPLOYMENT.format(namespace=namespace)})
    await deployed_for_an_hour(kube, namespace, git_http, repo, controller)
    await watching(controller, "apps/v1/Deployment")
    deployment = f"/apis/apps/v1/namespaces/{namespace}/deployments/web"

    async def ready() -> bool:
        status = (await kube.get(deployment)).get("status") or {}
        return status.get("readyReplicas") == 2 and status.get("updatedReplicas") == 2

    await until(ready, 30, "kwok's pods ready", controller)
    started = time.monotonic()
    count = await reconciles(controller, namespace, "apps")
    assert count >= 1
    status_version = (await kube.get(deployment))["metadata"]["resourceVersion"]

    # A pod goes away: the ReplicaSet replaces it and the Deployment's status moves twice
    # (one replica short, then ready again), all written by kube-controller-manager and kwok.
    pods = await kube.get(f"/api/v1/namespaces/{namespace}/pods", {"labelSelector": "app=web"})
    await kube.delete(f"/api/v1/namespaces/{namespace}/pods/{pods['items'][0]['metadata']['name']}")

    async def status_moved_and_ready() -> bool:
        moved = (await kube.get(deployment))["metadata"]["resourceVersion"] != status_version
        return moved and await ready()

    await until(status_moved_and_ready, 30, "Deployment status updated", controller)
    await asyncio.sleep(max(0.0, 10 - (time.monotonic() - started)))
    assert await reconciles(controller, namespace, "apps") == count


async def test_pruning_does_not_wake_it_again(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(
        files={"apps/a.yaml": cm("a", namespace, v="1"), "apps/b.yaml": cm("b", namespace, v="1")}
    )
    await deployed_for_an_hour(kube, namespace, git_http, repo, controller)
    await watching(controller, "v1/ConfigMap")
    count = await reconciles(controller, namespace, "apps")

    sha = repo.commit({"apps/b.yaml": None})
    await fetch_now(kube, namespace, "prune")
    await wait_ks(kube, namespace, "apps", applied(f"main@sha1:{sha}"), "prune", controller)
    assert await get_cm(kube, namespace, "b") is None
    await asyncio.sleep(3)  # long enough for a wake-up (0.5 s) and its reconcile
    assert await reconciles(controller, namespace, "apps") == count + 1
