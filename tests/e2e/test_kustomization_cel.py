"""CEL in Kustomizations, end to end: spec.healthCheckExprs judging a custom resource whose
status the test writes as its operator would, and dependsOn[].readyExpr."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from testenv.git_server import GitHTTPServer
from tests.controller_process import RunningController, condition, controller_fixture
from tests.kustomization_helpers import (
    applied,
    cm,
    create_ks,
    failed,
    get_cm,
    git_source,
    ks_path,
    reconcile_now,
    wait_exists,
    wait_ks,
)
from tidal.kube.client import Kube

pytestmark = pytest.mark.e2e

controller = controller_fixture("--concurrent", "4")

READY_CURRENT = "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True')"
READY_FAILED = "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'False')"


def crd(group: str) -> str:
    # With a status subresource, as operators have: applying the object leaves status alone.
    return (
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        f"metadata:\n  name: widgets.{group}\nspec:\n  group: {group}\n"
        "  names: {kind: Widget, plural: widgets, singular: widget}\n  scope: Namespaced\n"
        "  versions:\n  - name: v1\n    served: true\n    storage: true\n"
        "    subresources: {status: {}}\n"
        "    schema:\n      openAPIV3Schema:\n        type: object\n"
        "        x-kubernetes-preserve-unknown-fields: true\n"
    )


def widget(group: str, namespace: str) -> str:
    return (
        f"apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: w\n"
        f"  namespace: {namespace}\nspec:\n  size: 1\n"
    )


async def set_ready(kube: Kube, path: str, status: str) -> None:
    """Write the Widget's status as its operator would."""
    condition = {"type": "Ready", "status": status, "reason": "Test", "message": status}
    await kube.patch(f"{path}/status", {"status": {"conditions": [condition]}})


def health_running(obj: dict[str, Any]) -> bool:
    healthy = condition(obj, "Healthy")
    return healthy.get("status") == "Unknown" and healthy.get("reason") == "Progressing"


async def test_health_check_expressions_judge_a_custom_resource(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    group = f"{namespace}.cel.example.com"
    repo = git_repo(files={"crd.yaml": crd(group), "widget.yaml": widget(group, namespace)})
    sha = repo.head("main")
    await git_source(kube, namespace, "repo", git_http, repo)
    exprs = [
        {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "current": READY_CURRENT,
            "failed": READY_FAILED,
        }
    ]
    await create_ks(kube, namespace, "widgets", wait=True, timeout="1m", healthCheckExprs=exprs)

    # Without a status the expressions cannot evaluate, so the wait goes on until the
    # operator reports Ready (kstatus alone would call a Widget without conditions Current).
    path = f"/apis/{group}/v1/namespaces/{namespace}/widgets/w"
    await wait_exists(kube, path)
    await wait_ks(kube, namespace, "widgets", health_running, "health checks", controller)
    await asyncio.sleep(1.5)
    obj = await kube.get(ks_path(namespace, "widgets"))
    assert condition(obj, "Ready")["status"] == "Unknown"
    assert health_running(obj)
    await set_ready(kube, path, "True")
    obj = await wait_ks(
        kube, namespace, "widgets", applied(f"main@sha1:{sha}"), "healthy", controller
    )
    assert condition(obj, "Healthy")["status"] == "True"

    # The operator reports a failure: the next reconciliation fails early with it.
    await set_ready(kube, path, "False")
    await reconcile_now(kube, namespace, "widgets", "failed")
    obj = await wait_ks(
        kube, namespace, "widgets", failed("HealthCheckFailed"), "unhealthy", controller
    )
    message = condition(obj, "Ready")["message"]
    assert message.startswith("health check failed after ")
    assert message.endswith(
        f": failed early due to stalled resources: [Widget/{namespace}/w status: 'Failed']"
    )
    assert condition(obj, "Healthy")["reason"] == "HealthCheckFailed"


async def test_an_invalid_expression_stalls_and_applies_nothing(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(files={"a/a.yaml": cm("a", namespace)})
    await git_source(kube, namespace, "repo", git_http, repo)
    exprs = [{"apiVersion": "example.com/v1", "kind": "Widget", "current": "status.ready =="}]
    await create_ks(kube, namespace, "bad-health", path="a", wait=True, healthCheckExprs=exprs)
    await create_ks(
        kube,
        namespace,
        "bad-dep",
        path="a",
        dependsOn=[{"name": "bad-health", "readyExpr": "dep.metadata.name"}],
    )
    prefix = "Reconciliation failed terminally due to configuration error: "
    for name, error in [
        (
            "bad-health",
            "failed to create custom status evaluator for healthchecks[0]: failed to parse the "
            "expression Current: failed to parse the CEL expression 'status.ready ==': "
            "ERROR: <input>:1:16: Syntax error: ",
        ),
        (
            "bad-dep",
            "failed to evaluate dependency bad-health: CEL expression output type mismatch: "
            "expected bool, got dyn",
        ),
    ]:
        obj = await wait_ks(
            kube, namespace, name, failed("InvalidCELExpression"), "stall", controller
        )
        assert condition(obj, "Ready")["message"].startswith(prefix + error)
        stalled = condition(obj, "Stalled")
        assert (stalled["status"], stalled["reason"]) == ("True", "InvalidCELExpression")
        assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert await get_cm(kube, namespace, "a") is None


async def test_ready_expression_replaces_the_ready_check_of_a_dependency(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(files={"apps/a.yaml": cm("app", namespace)})
    sha = repo.head("main")
    await git_source(kube, namespace, "repo", git_http, repo)
    # The dependency never becomes Ready (its path does not exist); the expression looks at
    # its version label only.
    await create_ks(kube, namespace, "infra", path="missing")
    await kube.patch(ks_path(namespace, "infra"), {"metadata": {"labels": {"version": "v1"}}})
    same_version = "dep.metadata.labels['version'] == self.metadata.labels['version']"
    await create_ks(
        kube,
        namespace,
        "apps",
        path="apps",
        dependsOn=[{"name": "infra", "readyExpr": same_version}],
    )
    await kube.patch(ks_path(namespace, "apps"), {"metadata": {"labels": {"version": "v2"}}})
    obj = await wait_ks(
        kube, namespace, "apps", failed("DependencyNotReady"), "dependency wait", controller
    )
    message = condition(obj, "Ready")["message"]
    # Before the label lands the expression cannot evaluate; after, it is false.
    assert message.startswith(f"failed to evaluate the CEL expression '{same_version}'") or (
        message == f"dependency '{namespace}/infra' is not ready according to readyExpr eval"
    )
    assert await get_cm(kube, namespace, "app") is None

    await kube.patch(ks_path(namespace, "infra"), {"metadata": {"labels": {"version": "v2"}}})
    await reconcile_now(kube, namespace, "apps", "labelled")
    await wait_ks(kube, namespace, "apps", applied(f"main@sha1:{sha}"), "apps", controller)
    assert await get_cm(kube, namespace, "app") is not None
    infra = await kube.get(ks_path(namespace, "infra"))
    assert condition(infra, "Ready")["status"] == "False"
