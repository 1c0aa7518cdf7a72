"""Smoke tests proving the test control plane is a real Kubernetes, not an imitation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.plugin import Cluster
from tidal.kube.client import ApiError, Kube

pytestmark = pytest.mark.e2e


async def eventually(
    probe: Callable[[], Awaitable[bool]], within: float, what: str, interval: float = 0.2
) -> float:
    """Poll until probe() is true; return the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if await probe():
            return time.monotonic() - start
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {within}s waiting for {what}")


def configmap(namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


async def test_server_side_apply_conflict_is_refused_without_force(
    kube: Kube, namespace: str
) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps/owned"
    first = await kube.apply(
        path, configmap(namespace, "owned", {"key": "git"}), field_manager="kustomize-controller"
    )
    assert first["data"] == {"key": "git"}

    with pytest.raises(ApiError) as refused:
        await kube.apply(
            path, configmap(namespace, "owned", {"key": "hand"}), field_manager="kubectl"
        )
    assert refused.value.status == 409
    assert refused.value.reason == "Conflict"
    assert "kustomize-controller" in str(refused.value)
    assert (await kube.get(path))["data"] == {"key": "git"}

    forced = await kube.apply(
        path, configmap(namespace, "owned", {"key": "hand"}), field_manager="kubectl", force=True
    )
    assert forced["data"] == {"key": "hand"}
    owners = {
        m["manager"] for m in forced["metadata"]["managedFields"] if "f:data" in m["fieldsV1"]
    }
    assert owners == {"kubectl"}


async def test_deployment_becomes_available(kube: Kube, namespace: str) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/web"
    await kube.apply(path, deployment, field_manager="smoke")

    async def available() -> bool:
        status = (await kube.get(path)).get("status", {})
        conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
        return conditions.get("Available") == "True" and status.get("readyReplicas") == 2

    await eventually(available, 60, "Deployment web to become Available with 2 ready replicas")
    pods = await kube.get(
        f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": "app=web"}
    )
    assert len(pods["items"]) == 2
    assert all(p["spec"].get("nodeName", "").startswith("kwok-node-") for p in pods["items"])
    assert all(p["status"]["phase"] == "Running" for p in pods["items"])


async def test_namespace_deletion_completes(kube: Kube) -> None:
    name = f"doomed-{int(time.time() * 1000) % 100000}"
    await kube.request(
        "POST",
        "/api/v1/namespaces",
        body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    await kube.apply(
        f"/api/v1/namespaces/{name}/configmaps/content",
        configmap(name, "content", {"a": "b"}),
        field_manager="smoke",
    )
    await kube.request("DELETE", f"/api/v1/namespaces/{name}")

    async def gone() -> bool:
        try:
            await kube.get(f"/api/v1/namespaces/{name}")
        except ApiError as e:
            return e.status == 404
        return False

    await eventually(gone, 60, f"namespace {name} to be deleted")


async def test_watch_sees_added_modified_deleted_in_order(kube: Kube, namespace: str) -> None:
    collection = f"/api/v1/namespaces/{namespace}/configmaps"
    start_rv = (await kube.get(collection))["metadata"]["resourceVersion"]
    seen: list[tuple[str, str]] = []

    async def observe() -> None:
        async for event in kube.watch(collection, resource_version=start_rv, timeout_seconds=30):
            obj = event["object"]
            # The namespace also holds kube-root-ca.crt, published by the controller-manager.
            if event["type"] == "BOOKMARK" or obj["metadata"]["name"] != "watched":
                continue
            seen.append((event["type"], obj["data"]["v"]))
            if event["type"] == "DELETED":
                return

    watcher = asyncio.create_task(observe())
    path = f"{collection}/watched"
    await kube.apply(path, configmap(namespace, "watched", {"v": "1"}), field_manager="smoke")
    await kube.apply(path, configmap(namespace, "watched", {"v": "2"}), field_manager="smoke")
    await kube.request("DELETE", path)
    await asyncio.wait_for(watcher, 30)
    assert seen == [("ADDED", "1"), ("MODIFIED", "2"), ("DELETED", "2")]


async def test_impersonated_service_account_is_held_to_rbac(
    cluster: Cluster, kube: Kube, namespace: str
) -> None:
    await kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        body={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "tenant"}},
    )
    await kube.request(
        "POST",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles",
        body={
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "configmap-reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
        },
    )
    await kube.request(
        "POST",
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
        body={
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "tenant-reads"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "configmap-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "tenant", "namespace": namespace}],
        },
    )
    config = kube.config
    tenant = Kube(
        config,
        impersonate=f"system:serviceaccount:{namespace}:tenant",
        impersonate_groups=("system:serviceaccounts", f"system:serviceaccounts:{namespace}"),
    )
    async with tenant:
        listed = await tenant.get(f"/api/v1/namespaces/{namespace}/configmaps")
        assert listed["kind"] == "ConfigMapList"

        with pytest.raises(ApiError) as denied:
            await tenant.apply(
                f"/api/v1/namespaces/{namespace}/configmaps/x",
                configmap(namespace, "x", {}),
                field_manager="kustomize-controller",
            )
        assert denied.value.status == 403
        assert f"system:serviceaccount:{namespace}:tenant" in str(denied.value)

        with pytest.raises(ApiError) as other_ns:
            await tenant.get("/api/v1/namespaces/kube-system/configmaps")
        assert other_ns.value.status == 403

    # The admin identity itself is untouched by the tenant's session.
    assert (await kube.get("/api/v1/namespaces/kube-system/configmaps"))["kind"] == "ConfigMapList"
    assert cluster.server.startswith("https://127.0.0.1:")
