"""spec.kubeConfig: a Kustomization in one cluster applying to another. The session's plane runs
the controller, the Kustomization, its source and the kubeconfig Secret; a second plane, started
the way `python -m testenv up` starts one, is the remote cluster that receives the objects."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from testenv import plane
from testenv.git_server import GitHTTPServer
from tests import plugin
from tests.controller_process import RunningController, condition, controller_fixture
from tests.kustomization_helpers import (
    applied,
    cm,
    create_cm,
    create_ks,
    deployed,
    events_for,
    failed,
    fetch_now,
    get_cm,
    get_or_none,
    git_source,
    ks_path,
    reconcile_now,
    wait_gone,
    wait_ks,
)
from tidal.kube.client import ApiError, Kube

pytestmark = pytest.mark.e2e

controller = controller_fixture()


@pytest.fixture(scope="module")
def remote_plane() -> Iterator[plane.State]:
    with plugin.private_plane("tidal-remote-plane-", "second test plane") as state:
        yield state


@pytest.fixture
async def remote(remote_plane: plane.State, namespace: str) -> AsyncIterator[Kube]:
    """A client of the second plane, with a namespace named like the test's."""
    async with Kube.from_kubeconfig(remote_plane.kubeconfig) as client:
        await client.request("POST", "/api/v1/namespaces", body={"metadata": {"name": namespace}})
        yield client


async def kubeconfig_secret(kube: Kube, namespace: str, name: str, data: dict[str, bytes]) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }
    path = f"/api/v1/namespaces/{namespace}/secrets"
    try:
        await kube.request("POST", path, body=body)
    except ApiError as e:
        if e.status != 409:
            raise
        await kube.replace(f"{path}/{name}", body)


def deployment(name: str, namespace: str) -> str:
    return (
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n"
        f"  namespace: {namespace}\nspec:\n  replicas: 1\n"
        f"  selector:\n    matchLabels: {{app: {name}}}\n  template:\n"
        f"    metadata:\n      labels: {{app: {name}}}\n    spec:\n"
        f"      containers:\n      - name: {name}\n        image: nginx\n"
    )


def gadget_crd(group: str) -> str:
    return (
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        f"metadata:\n  name: gadgets.{group}\nspec:\n  group: {group}\n"
        "  names: {kind: Gadget, plural: gadgets, singular: gadget}\n  scope: Namespaced\n"
        "  versions:\n  - name: v1\n    served: true\n    storage: true\n"
        "    schema:\n      openAPIV3Schema:\n        type: object\n"
        "        x-kubernetes-preserve-unknown-fields: true\n"
    )


def deployment_path(namespace: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"


async def get_deployment(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    return await get_or_none(kube, deployment_path(namespace, name))


async def test_applies_prunes_and_deletes_in_the_remote_cluster_only(
    kube: Kube,
    namespace: str,
    crds: None,
    remote: Kube,
    remote_plane: plane.State,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    admin = remote_plane.kubeconfig.read_bytes()
    await kubeconfig_secret(kube, namespace, "remote-kubeconfig", {"value.yaml": admin})
    # A kind only the remote cluster serves (its CRD comes in the same commit): the applier
    # must look kinds up in the cluster it applies to.
    group = f"{namespace}.example.com"
    gadget = (
        f"apiVersion: {group}/v1\nkind: Gadget\nmetadata:\n  name: g\n  namespace: {namespace}\n"
    )
    repo = git_repo(
        files={
            "app/a.yaml": cm("a", namespace, v="1"),
            "app/b.yaml": cm("b", namespace, v="1"),
            "app/web.yaml": deployment("web", namespace),
            "app/crd.yaml": gadget_crd(group),
            "app/gadget.yaml": gadget,
        }
    )
    obj, _ = await deployed(
        kube,
        namespace,
        "remote",
        git_http,
        repo,
        controller,
        within=90,
        path="app",
        wait=True,
        timeout="1m",
        kubeConfig={"secretRef": {"name": "remote-kubeconfig"}},
    )
    # Health was checked where the Deployment runs: the local plane has no such Deployment.
    assert condition(obj, "Healthy")["status"] == "True"
    assert [e["id"] for e in obj["status"]["inventory"]["entries"]] == [
        f"_gadgets.{group}_apiextensions.k8s.io_CustomResourceDefinition",
        f"{namespace}_a__ConfigMap",
        f"{namespace}_b__ConfigMap",
        f"{namespace}_web_apps_Deployment",
        f"{namespace}_g_{group}_Gadget",
    ]
    assert await remote.get(f"/apis/{group}/v1/namespaces/{namespace}/gadgets/g")
    a = await get_cm(remote, namespace, "a")
    assert a is not None and a["data"] == {"v": "1"}
    assert a["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"] == "remote"
    web = await get_deployment(remote, namespace, "web")
    assert web is not None and web["status"].get("availableReplicas") == 1
    # Nothing landed in the cluster the Kustomization lives in.
    assert await get_cm(kube, namespace, "a") is None
    assert await get_cm(kube, namespace, "b") is None
    assert await get_deployment(kube, namespace, "web") is None

    # Pruning happens in the remote cluster.
    sha2 = repo.commit(
        {
            "app/a.yaml": cm("a", namespace, v="2"),
            "app/web.yaml": deployment("web", namespace),
            "app/crd.yaml": gadget_crd(group),
            "app/gadget.yaml": gadget,
        },
        "drop b",
        delete_others=True,
    )
    await fetch_now(kube, namespace, "1")
    await wait_ks(kube, namespace, "remote", applied(f"main@sha1:{sha2}"), "prune", controller, 90)
    assert (await get_cm(remote, namespace, "a"))["data"] == {"v": "2"}  # type: ignore[index]
    assert await get_cm(remote, namespace, "b") is None

    # The Secret is read at every reconciliation: a credential that stops working shows at the
    # next run, and restoring it heals the Kustomization.
    revoked = json.loads(admin)
    revoked["users"][0]["user"] = {"token": "revoked-token"}
    await kubeconfig_secret(
        kube, namespace, "remote-kubeconfig", {"value.yaml": json.dumps(revoked).encode()}
    )
    await reconcile_now(kube, namespace, "remote", "revoked")
    obj = await wait_ks(
        kube, namespace, "remote", failed("ReconciliationFailed"), "revoked", controller
    )
    message = condition(obj, "Ready")["message"]
    assert remote_plane.server in message and "Unauthorized" in message
    await kubeconfig_secret(kube, namespace, "remote-kubeconfig", {"value": admin})
    await reconcile_now(kube, namespace, "remote", "restored")
    await wait_ks(kube, namespace, "remote", applied(f"main@sha1:{sha2}"), "restored", controller)

    # Credentials never show in status, events or logs.
    key_data = json.loads(admin)["users"][0]["user"]["client-key-data"]
    key_pem_line = base64.b64decode(key_data).decode().splitlines()[1]
    exposed = [
        json.dumps(await kube.get(ks_path(namespace, "remote"))),
        json.dumps(await events_for(kube, namespace, "remote")),
        controller.logs(),
    ]
    for text in exposed:
        assert key_data not in text and key_pem_line not in text and "revoked-token" not in text

    # Deleting the Kustomization deletes its objects in the remote cluster.
    await kube.delete(ks_path(namespace, "remote"))
    await wait_gone(kube, ks_path(namespace, "remote"))
    assert await get_cm(remote, namespace, "a") is None
    # Background propagation: the Deployment may linger a moment while its pods go.
    await wait_gone(remote, deployment_path(namespace, "web"))
    crd_path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gadgets.{group}"
    await wait_gone(remote, crd_path)


async def test_unusable_kubeconfigs_are_refused_and_nothing_is_applied(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "exec-ran"
    repo = git_repo(files={"app/a.yaml": cm("a", namespace, v="1")})
    await git_source(kube, namespace, "repo", git_http, repo)
    exec_kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [
            {
                "name": "u",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "/bin/sh",
                        "args": ["-c", f"touch {marker}"],
                    }
                },
            }
        ],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    await kubeconfig_secret(kube, namespace, "kc", {"value": json.dumps(exec_kubeconfig).encode()})
    # A cluster that is not there (yet): port 1 on loopback refuses connections.
    unreachable = dict(exec_kubeconfig, users=[{"name": "u", "user": {"token": "t"}}])
    await kubeconfig_secret(kube, namespace, "down", {"value": json.dumps(unreachable).encode()})
    await create_cm(kube, namespace, "eks", {"provider": "aws", "cluster": "arn:x"})
    cases = {
        "missing-key": (
            {"secretRef": {"name": "kc", "key": "other"}},
            f"KubeConfig secret '{namespace}/kc' does not contain a 'other' key with a kubeconfig",
        ),
        "missing-secret": (
            {"secretRef": {"name": "nope"}},
            f"unable to read KubeConfig secret '{namespace}/nope' error: "
            'secrets "nope" not found',
        ),
        "exec": ({"secretRef": {"name": "kc"}}, "--insecure-kubeconfig-exec"),
        "cloud": ({"configMapRef": {"name": "eks"}}, "provider 'aws' not implemented"),
        "down": (
            {"secretRef": {"name": "down"}},
            "unable to reach the remote cluster at https://127.0.0.1:1",
        ),
    }
    for name, (ref, _) in cases.items():
        await create_ks(kube, namespace, name, path="app", kubeConfig=ref)
    for name, (_, expected) in cases.items():
        obj = await wait_ks(kube, namespace, name, failed("ReconciliationFailed"), name, controller)
        assert expected in condition(obj, "Ready")["message"]
        assert not obj["status"].get("inventory", {}).get("entries")
    assert await get_cm(kube, namespace, "a") is None
    assert not await asyncio.to_thread(marker.exists)
