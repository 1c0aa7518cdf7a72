"""More of the Kustomization controller as a Flux user meets it: a health check that times
out and recovers, the cross-namespace lock of multi-tenancy, the Delete and
WaitForTermination deletion policies, and the per-object apply policies (ssa IfNotPresent and
Ignore, force on immutable fields)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from testenv.git_server import GitHTTPServer
from tests.controller_process import (
    RunningController,
    condition,
    controller_fixture,
    run_controller,
)
from tests.kustomization_helpers import (
    applied,
    cm,
    create_ks,
    deployed,
    events_for,
    failed,
    fetch_now,
    get_cm,
    git_source,
    ks_path,
    source_ready,
    wait_gone,
    wait_ks,
)
from tests.plugin import Cluster
from tidal.kube.client import Kube
from tidal.runtime.poll import poll_until

pytestmark = pytest.mark.e2e

# Objects labelled TENANT belong to the --no-cross-namespace-refs controller of one test.
TENANT = "tidal.test/tenant"

controller = controller_fixture("--concurrent", "4", "--watch-label-selector", f"!{TENANT}")


async def until(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    await poll_until(check, within, every=0.5, first=0.1)


def annotated(manifest: str, **annotations: str) -> str:
    lines = "".join(f"    {k}: {v}\n" for k, v in annotations.items())
    return manifest.replace("metadata:\n", f"metadata:\n  annotations:\n{lines}", 1)


def deployment(name: str, namespace: str, node_selector: str = "") -> str:
    selector = f"      nodeSelector: {{{node_selector}}}\n" if node_selector else ""
    return (
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n"
        f"  namespace: {namespace}\nspec:\n  replicas: 1\n"
        f"  selector:\n    matchLabels: {{app: {name}}}\n  template:\n"
        f"    metadata:\n      labels: {{app: {name}}}\n    spec:\n{selector}"
        f"      containers:\n      - name: {name}\n        image: nginx\n"
    )


@pytest.mark.slow
async def test_a_deployment_that_never_rolls_out_fails_its_health_check_then_recovers(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    # No node carries this label, so the pod stays Pending and the rollout never completes.
    repo = git_repo(files={"web/d.yaml": deployment("web", namespace, "disk: nvme-nowhere")})
    sha = repo.head("main")
    await git_source(kube, namespace, "repo", git_http, repo)
    await create_ks(
        kube,
        namespace,
        "web",
        path="web",
        timeout="30s",
        healthChecks=[
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": namespace}
        ],
    )
    obj = await wait_ks(
        kube, namespace, "web", failed("HealthCheckFailed"), "health timeout", controller, 60
    )
    timeout = f"timeout waiting for: [Deployment/{namespace}/web status: 'InProgress']"
    message = condition(obj, "Ready")["message"]
    assert re.fullmatch(rf"health check failed after 3\d(\.\d+)?s: {re.escape(timeout)}", message)
    healthy = condition(obj, "Healthy")
    assert (healthy["status"], healthy["reason"], healthy["message"]) == (
        "False",
        "HealthCheckFailed",
        timeout,
    )
    assert obj["status"]["lastAttemptedRevision"] == f"main@sha1:{sha}"
    assert "lastAppliedRevision" not in obj["status"] or not obj["status"]["lastAppliedRevision"]
    assert obj["status"]["history"][0]["lastReconciledStatus"] == "HealthCheckFailed"
    warnings = [e for e in await events_for(kube, namespace, "web") if e["type"] == "Warning"]
    assert any(e["reason"] == "HealthCheckFailed" and e["message"] == message for e in warnings)

    # The fix is committed: the rollout completes and the Kustomization is Ready again.
    fixed = repo.commit({"web/d.yaml": deployment("web", namespace)}, "schedule anywhere")
    await fetch_now(kube, namespace, "1")
    obj = await wait_ks(
        kube, namespace, "web", applied(f"main@sha1:{fixed}"), "recovery", controller, 60
    )
    assert condition(obj, "Healthy")["status"] == "True"
    assert condition(obj, "Healthy")["message"].startswith("Health check passed in ")
    events = await events_for(kube, namespace, "web")
    assert any(e["message"].startswith("Health check passed in ") for e in events)


async def test_no_cross_namespace_refs_denies_a_source_in_another_namespace(
    kube: Kube,
    cluster: Cluster,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
    tmp_path: Path,
) -> None:
    shared = f"{namespace[:50]}-shared"
    await kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": shared}})
    try:
        repo = git_repo(files={"app/a.yaml": cm("a", namespace, v="1")})
        # The source itself is fine: the module's controller makes it Ready.
        await source_ready(kube, shared, "repo", git_http, repo, controller)

        with run_controller(
            cluster.kubeconfig,
            tmp_path,
            "--no-cross-namespace-refs",
            "--watch-label-selector",
            f"{TENANT}=strict",
        ) as strict:
            await create_ks(
                kube,
                namespace,
                "app",
                labels={TENANT: "strict"},
                path="app",
                sourceRef={"kind": "GitRepository", "name": "repo", "namespace": shared},
            )
            obj = await wait_ks(kube, namespace, "app", failed("AccessDenied"), "denial", strict)
        message = (
            f"can't access 'GitRepository/{shared}/repo', "
            "cross-namespace references have been blocked"
        )
        assert condition(obj, "Ready")["message"] == message
        stalled = condition(obj, "Stalled")
        assert (stalled["status"], stalled["reason"]) == ("True", "AccessDenied")
        assert not obj["status"].get("lastAttemptedRevision")
        assert await get_cm(kube, namespace, "a") is None
        events = await events_for(kube, namespace, "app")
        assert any(e["type"] == "Warning" and e["message"] == message for e in events)
    finally:
        await kube.request("DELETE", f"/api/v1/namespaces/{shared}")


HOLD = "example.com/hold"


def held(name: str, namespace: str) -> str:
    """A ConfigMap that stays Terminating until the test removes its finalizer."""
    return cm(name, namespace, v="1").replace(
        "metadata:\n", f"metadata:\n  finalizers:\n  - {HOLD}\n", 1
    )


async def release(kube: Kube, namespace: str, name: str) -> None:
    await kube.patch(
        f"/api/v1/namespaces/{namespace}/configmaps/{name}", {"metadata": {"finalizers": None}}
    )


async def test_delete_and_wait_for_termination_policies_remove_objects_without_prune(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(
        files={
            "del/a.yaml": cm("del-plain", namespace, v="1"),
            "del/b.yaml": held("del-held", namespace),
            "wait/a.yaml": cm("wait-plain", namespace, v="1"),
            "wait/b.yaml": held("wait-held", namespace),
        }
    )
    sha = repo.head("main")
    await git_source(kube, namespace, "repo", git_http, repo)
    for name, policy in (("del", "Delete"), ("wait", "WaitForTermination")):
        await create_ks(kube, namespace, name, path=name, prune=False, deletionPolicy=policy)
    for name in ("del", "wait"):
        await wait_ks(kube, namespace, name, applied(f"main@sha1:{sha}"), name, controller)

    async def terminating(name: str) -> bool:
        live = await get_cm(kube, namespace, name)
        return live is not None and bool(live["metadata"].get("deletionTimestamp"))

    # Delete: the objects are deleted (prune is false) and the Kustomization goes at once,
    # even though one object is still terminating.
    await kube.delete(ks_path(namespace, "del"))
    await wait_gone(kube, ks_path(namespace, "del"))
    assert await get_cm(kube, namespace, "del-plain") is None
    assert await terminating("del-held")

    # WaitForTermination: the Kustomization stays until its objects are gone.
    await kube.delete(ks_path(namespace, "wait"))
    await until(lambda: terminating("wait-held"))
    assert await get_cm(kube, namespace, "wait-plain") is None
    waiting = await kube.get(ks_path(namespace, "wait"))
    assert "finalizers.fluxcd.io" in waiting["metadata"]["finalizers"]
    await release(kube, namespace, "wait-held")
    await wait_gone(kube, ks_path(namespace, "wait"), within=15)
    await release(kube, namespace, "del-held")


async def test_ssa_if_not_present_and_ignore_policies(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    ssa = "kustomize.toolkit.fluxcd.io/ssa"
    repo = git_repo(
        files={
            "p/once.yaml": annotated(cm("once", namespace, v="1"), **{ssa: "IfNotPresent"}),
            "p/ignored.yaml": annotated(cm("ignored", namespace, v="1"), **{ssa: "Ignore"}),
            "p/kept.yaml": cm("kept", namespace, v="1"),
        }
    )
    await deployed(kube, namespace, "policies", git_http, repo, controller, path="p")
    assert (await get_cm(kube, namespace, "once"))["data"] == {"v": "1"}  # type: ignore[index]
    assert await get_cm(kube, namespace, "ignored") is None  # Ignore: never applied

    # Someone else owns `once` now; and `kept` is marked Ignore in the cluster.
    await kube.patch(f"/api/v1/namespaces/{namespace}/configmaps/once", {"data": {"v": "theirs"}})
    await kube.patch(
        f"/api/v1/namespaces/{namespace}/configmaps/kept",
        {"metadata": {"annotations": {ssa: "Ignore"}}},
    )
    # Git changes `once` and drops `kept`.
    sha2 = repo.commit(
        {
            "p/once.yaml": annotated(cm("once", namespace, v="2"), **{ssa: "IfNotPresent"}),
            "p/ignored.yaml": annotated(cm("ignored", namespace, v="2"), **{ssa: "Ignore"}),
        },
        "update once, drop kept",
        delete_others=True,
    )
    await fetch_now(kube, namespace, "1")
    await wait_ks(kube, namespace, "policies", applied(f"main@sha1:{sha2}"), "update", controller)
    # IfNotPresent: created once, never updated.
    assert (await get_cm(kube, namespace, "once"))["data"] == {"v": "theirs"}  # type: ignore[index]
    assert await get_cm(kube, namespace, "ignored") is None
    # Ignore on the live object: it is not pruned though Git no longer has it.
    assert (await get_cm(kube, namespace, "kept"))["data"] == {"v": "1"}  # type: ignore[index]


def job(name: str, namespace: str, image: str) -> str:
    return (
        f"apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
        "spec:\n  template:\n    spec:\n      restartPolicy: Never\n"
        f"      containers:\n      - name: main\n        image: {image}\n"
    )


def service(name: str, namespace: str, cluster_ip: str) -> str:
    return (
        f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
        f"spec:\n  clusterIP: {cluster_ip}\n  selector: {{app: {name}}}\n"
        "  ports:\n  - port: 80\n"
    )


async def test_force_recreates_objects_whose_immutable_fields_change(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    force = {"kustomize.toolkit.fluxcd.io/force": "enabled"}
    # Pick free ClusterIPs from a range the test plane's other tests do not ask for.
    base = 200 + sum(namespace.encode()) % 50
    ip1, ip2 = f"10.96.{base}.10", f"10.96.{base}.11"
    repo = git_repo(
        files={
            "job/j.yaml": annotated(job("migrate", namespace, "busybox:1.36"), **force),
            "svc/s.yaml": service("api", namespace, ip1),
        }
    )
    sha = repo.head("main")
    await git_source(kube, namespace, "repo", git_http, repo)
    await create_ks(kube, namespace, "job", path="job")
    await create_ks(kube, namespace, "svc", path="svc")
    for name in ("job", "svc"):
        await wait_ks(kube, namespace, name, applied(f"main@sha1:{sha}"), name, controller)
    job_path = f"/apis/batch/v1/namespaces/{namespace}/jobs/migrate"
    svc_path = f"/api/v1/namespaces/{namespace}/services/api"
    old_job = await kube.get(job_path)
    old_svc = await kube.get(svc_path)

    sha2 = repo.commit(
        {
            "job/j.yaml": annotated(job("migrate", namespace, "busybox:1.37"), **force),
            "svc/s.yaml": service("api", namespace, ip2),
        },
        "new image, new address",
    )
    await fetch_now(kube, namespace, "1")
    # The annotation recreates the Job: a Job's pod template cannot be changed in place.
    await wait_ks(kube, namespace, "job", applied(f"main@sha1:{sha2}"), "job", controller)
    new_job = await kube.get(job_path)
    assert new_job["metadata"]["uid"] != old_job["metadata"]["uid"]
    assert new_job["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.37"

    # Without force, the Service's new clusterIP is refused and the old Service stays.
    obj = await wait_ks(kube, namespace, "svc", failed("ReconciliationFailed"), "svc", controller)
    message = condition(obj, "Ready")["message"]
    assert message.startswith(f"Service/{namespace}/api dry-run failed")
    assert "may not change once set" in message
    assert (await kube.get(svc_path))["spec"]["clusterIP"] == ip1
    # spec.force: true recreates it.
    await kube.patch(ks_path(namespace, "svc"), {"spec": {"force": True}})
    await wait_ks(kube, namespace, "svc", applied(f"main@sha1:{sha2}"), "forced", controller)
    new_svc = await kube.get(svc_path)
    assert new_svc["metadata"]["uid"] != old_svc["metadata"]["uid"]
    assert new_svc["spec"]["clusterIP"] == ip2


async def test_additive_ready_expressions_keep_the_ready_check(
    kube: Kube,
    cluster: Cluster,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
    tmp_path: Path,
) -> None:
    repo = git_repo(files={"apps/a.yaml": cm("app", namespace)})
    await git_source(kube, namespace, "repo", git_http, repo)
    labels = {TENANT: "additive"}

    with run_controller(
        cluster.kubeconfig,
        tmp_path,
        "--feature-gates",
        "AdditiveCELDependencyCheck=true",
        "--watch-label-selector",
        f"{TENANT}=additive",
    ) as additive:
        # The dependency never becomes Ready (its path does not exist); the expression alone
        # would let the dependent go ahead, but with the gate both checks must pass.
        await create_ks(kube, namespace, "infra", labels=labels, path="missing")
        await create_ks(
            kube,
            namespace,
            "apps",
            labels=labels,
            path="apps",
            dependsOn=[{"name": "infra", "readyExpr": "true"}],
        )
        obj = await wait_ks(
            kube, namespace, "apps", failed("DependencyNotReady"), "dependency wait", additive
        )
    assert condition(obj, "Ready")["message"] == f"dependency '{namespace}/infra' is not ready"
    assert await get_cm(kube, namespace, "app") is None


async def test_a_namespace_still_terminating_fails_fast_and_is_recreated_once_gone(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    """Re-creating a Kustomization right after deleting its namespace: Flux waits out the whole
    timeout on a Namespace that can never turn Current; tidal fails at once and retries."""
    app_ns = f"{namespace}-app"
    ns_yaml = f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {app_ns}\n"
    await kube.request(
        "POST",
        "/api/v1/namespaces",
        body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": app_ns}},
    )
    blocker = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "blocker", "finalizers": [HOLD]},
    }
    await kube.request("POST", f"/api/v1/namespaces/{app_ns}/configmaps", body=blocker)
    await kube.delete(f"/api/v1/namespaces/{app_ns}")  # stays Terminating while blocker is held

    # Only the Namespace: objects inside it would fail their dry-run at once anyway.
    repo = git_repo(files={"app/ns.yaml": ns_yaml})
    await git_source(kube, namespace, "repo", git_http, repo)
    await create_ks(kube, namespace, "app", path="app", retryInterval="2s", timeout="5m")
    obj = await wait_ks(
        kube, namespace, "app", failed("ReconciliationFailed"), "fail", controller, within=20
    )
    assert condition(obj, "Ready")["message"] == (
        f"failed early due to stalled resources: [Namespace/{app_ns} status: 'Terminating': "
        "Resource scheduled for deletion]"
    )

    await release(kube, app_ns, "blocker")
    await wait_gone(kube, f"/api/v1/namespaces/{app_ns}")
    await wait_ks(
        kube, namespace, "app", applied(f"main@sha1:{repo.head('main')}"), "apply", controller
    )
    live = await kube.get(f"/api/v1/namespaces/{app_ns}")
    assert live["status"]["phase"] == "Active"
    await kube.delete(ks_path(namespace, "app"))
    await wait_gone(kube, ks_path(namespace, "app"))
