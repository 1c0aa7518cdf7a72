"""`tidal controller` running Kustomizations from a real Git server into a real cluster: the
GitOps loop as a Flux user sees it, commit by commit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from testenv.git_server import GitHTTPServer
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
    git_source,
    ks_path,
    reconcile_now,
    wait_gone,
    wait_ks,
)
from tidal.kube.client import Kube

pytestmark = pytest.mark.e2e


controller = controller_fixture("--concurrent", "4")


async def test_commit_applies_change_updates_and_removal_prunes(
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
                "metadata:\n  labels:\n    kustomize.toolkit.fluxcd.io/prune: disabled\n",
            ),
        }
    )
    obj, revision = await deployed(
        kube, namespace, "apps", git_http, repo, controller, path="./apps"
    )
    assert condition(obj, "Ready")["message"] == f"Applied revision: {revision}"
    assert condition(obj, "Ready")["reason"] == "ReconciliationSucceeded"
    assert obj["status"]["lastAttemptedRevision"] == revision
    assert obj["status"]["observedGeneration"] == 1
    assert "finalizers.fluxcd.io" in obj["metadata"]["finalizers"]
    assert obj["status"]["inventory"]["entries"] == [
        {"id": f"{namespace}_a__ConfigMap", "v": "v1"},
        {"id": f"{namespace}_b__ConfigMap", "v": "v1"},
        {"id": f"{namespace}_keep__ConfigMap", "v": "v1"},
    ]
    history = obj["status"]["history"]
    assert history[0]["lastReconciledStatus"] == "ReconciliationSucceeded"
    assert history[0]["metadata"] == {"revision": revision}
    a = await get_cm(kube, namespace, "a")
    assert a is not None and a["data"] == {"color": "blue"}
    assert a["metadata"]["labels"] == {
        "kustomize.toolkit.fluxcd.io/name": "apps",
        "kustomize.toolkit.fluxcd.io/namespace": namespace,
    }
    assert {m["manager"] for m in a["metadata"]["managedFields"]} == {"kustomize-controller"}

    events = await events_for(kube, namespace, "apps")
    created = [e for e in events if "ConfigMap/" in e["message"] and "created" in e["message"]]
    assert created and created[0]["reason"] == "Progressing"
    assert created[0]["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/revision"] == revision
    succeeded = [e for e in events if e["reason"] == "ReconciliationSucceeded"]
    # Flux writes the interval as Go prints a duration: 10m becomes 10m0s.
    assert succeeded and succeeded[0]["message"].endswith(", next run in 10m0s")

    # A change is applied, and objects removed from Git are pruned (unless they opt out).
    sha2 = repo.commit(
        {"apps/a.yaml": cm("a", namespace, color="green")}, "recolour, drop b", delete_others=True
    )
    await fetch_now(kube, namespace, "1")
    obj = await wait_ks(kube, namespace, "apps", applied(f"main@sha1:{sha2}"), "update", controller)
    a = await get_cm(kube, namespace, "a")
    assert a is not None and a["data"] == {"color": "green"}
    assert await get_cm(kube, namespace, "b") is None
    assert await get_cm(kube, namespace, "keep") is not None
    assert obj["status"]["inventory"]["entries"] == [{"id": f"{namespace}_a__ConfigMap", "v": "v1"}]


async def test_a_bad_commit_keeps_the_last_good_state(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(files={"app/a.yaml": cm("a", namespace, v="1")})
    _, good = await deployed(kube, namespace, "app", git_http, repo, controller, path="app")

    # Broken YAML: the build fails and nothing changes.
    bad = repo.commit({"app/a.yaml": cm("a", namespace, v="2"), "app/b.yaml": "a: [\n"}, "broken")
    await fetch_now(kube, namespace, "1")
    obj = await wait_ks(kube, namespace, "app", failed("BuildFailed"), "build failure", controller)
    assert obj["status"]["lastAttemptedRevision"] == f"main@sha1:{bad}"
    assert obj["status"]["lastAppliedRevision"] == good
    assert (await get_cm(kube, namespace, "a"))["data"] == {"v": "1"}  # type: ignore[index]

    # One invalid object: the dry-run fails and not even the valid change is applied.
    invalid = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: broken\n"
        f"  namespace: {namespace}\nspec:\n  selector:\n    matchLabels: {{app: x}}\n"
        "  template:\n    spec: {}\n"
    )
    bad2 = repo.commit(
        {"app/a.yaml": cm("a", namespace, v="3"), "app/d.yaml": invalid},
        "invalid",
        delete_others=True,
    )
    await fetch_now(kube, namespace, "2")
    obj = await wait_ks(
        kube,
        namespace,
        "app",
        lambda o: (
            failed("ReconciliationFailed")(o)
            and o["status"].get("lastAttemptedRevision") == f"main@sha1:{bad2}"
        ),
        "dry-run failure",
        controller,
    )
    assert f"Deployment/{namespace}/broken dry-run failed" in condition(obj, "Ready")["message"]
    assert (await get_cm(kube, namespace, "a"))["data"] == {"v": "1"}  # type: ignore[index]
    events = await events_for(kube, namespace, "app")
    assert any(e["type"] == "Warning" and "dry-run failed" in e["message"] for e in events)

    fixed = repo.commit({"app/a.yaml": cm("a", namespace, v="4")}, "fix", delete_others=True)
    await fetch_now(kube, namespace, "3")
    await wait_ks(kube, namespace, "app", applied(f"main@sha1:{fixed}"), "recovery", controller)
    assert (await get_cm(kube, namespace, "a"))["data"] == {"v": "4"}  # type: ignore[index]


async def test_crd_with_its_custom_resources_and_a_new_namespace(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    group = f"{namespace}.example.com"
    crd = (
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        f"metadata:\n  name: gadgets.{group}\nspec:\n  group: {group}\n"
        "  names: {kind: Gadget, plural: gadgets, singular: gadget}\n  scope: Namespaced\n"
        "  versions:\n  - name: v1\n    served: true\n    storage: true\n"
        "    schema:\n      openAPIV3Schema:\n        type: object\n"
        "        x-kubernetes-preserve-unknown-fields: true\n"
    )
    gadget = (
        f"apiVersion: {group}/v1\nkind: Gadget\nmetadata:\n  name: g\n"
        f"  namespace: {namespace}-extra\nspec:\n  size: 2\n"
    )
    ns = f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}-extra\n"
    repo = git_repo(files={"crd.yaml": crd, "gadget.yaml": gadget, "ns.yaml": ns})
    obj, _ = await deployed(kube, namespace, "gadgets", git_http, repo, controller, path="./")
    ids = [e["id"] for e in obj["status"]["inventory"]["entries"]]
    assert ids == [
        f"_gadgets.{group}_apiextensions.k8s.io_CustomResourceDefinition",
        f"_{namespace}-extra__Namespace",
        f"{namespace}-extra_g_{group}_Gadget",
    ]
    live = await kube.get(f"/apis/{group}/v1/namespaces/{namespace}-extra/gadgets/g")
    assert live["spec"] == {"size": 2}

    # Deleting the Kustomization (prune: true) deletes what it applied.
    await kube.delete(ks_path(namespace, "gadgets"))
    await wait_gone(kube, f"/api/v1/namespaces/{namespace}-extra")


async def test_depends_on_waits_for_the_dependency(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(
        files={"infra/i.yaml": cm("infra", namespace, v="1"), "apps/a.yaml": cm("app", namespace)}
    )
    sha = repo.head("main")
    await git_source(kube, namespace, "repo", git_http, repo)
    await create_ks(kube, namespace, "apps", path="apps", dependsOn=[{"name": "infra"}])
    obj = await wait_ks(
        kube, namespace, "apps", failed("DependencyNotReady"), "dependency wait", controller
    )
    assert condition(obj, "Ready")["message"] == (
        f"dependency '{namespace}/infra' not found: "
        'kustomizations.kustomize.toolkit.fluxcd.io "infra" not found'
    )
    assert await get_cm(kube, namespace, "app") is None

    await create_ks(kube, namespace, "infra", path="infra")
    await wait_ks(kube, namespace, "infra", applied(f"main@sha1:{sha}"), "infra", controller)
    # The dependent retries every 30 s (--requeue-dependency); ask now instead of waiting.
    await reconcile_now(kube, namespace, "apps", "now")
    obj = await wait_ks(kube, namespace, "apps", applied(f"main@sha1:{sha}"), "apps", controller)
    assert obj["status"]["lastHandledReconcileAt"] == "now"
    assert await get_cm(kube, namespace, "app") is not None


async def test_wait_reports_deployment_health(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    deployment = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
        f"  namespace: {namespace}\nspec:\n  replicas: 2\n"
        "  selector:\n    matchLabels: {app: web}\n  template:\n"
        "    metadata:\n      labels: {app: web}\n    spec:\n"
        "      containers:\n      - name: web\n        image: nginx\n"
    )
    repo = git_repo(files={"web/d.yaml": deployment})
    obj, _ = await deployed(
        kube, namespace, "web", git_http, repo, controller, path="web", wait=True, timeout="40s"
    )
    healthy = condition(obj, "Healthy")
    assert healthy["status"] == "True"
    assert healthy["message"].startswith("Health check passed in ")


async def test_undefined_variable_in_strict_mode_and_substitution(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(files={"v/a.yaml": cm("a", namespace, color="${color}", size="${size:=big}")})
    sha = repo.head("main")
    await git_source(kube, namespace, "repo", git_http, repo)
    await create_ks(kube, namespace, "vars", path="v", postBuild={"substitute": {"other": "x"}})
    obj = await wait_ks(
        kube, namespace, "vars", failed("BuildFailed"), "strict failure", controller
    )
    assert "color" in condition(obj, "Ready")["message"]
    assert await get_cm(kube, namespace, "a") is None

    await kube.patch(
        ks_path(namespace, "vars"), {"spec": {"postBuild": {"substitute": {"color": "red"}}}}
    )
    await wait_ks(kube, namespace, "vars", applied(f"main@sha1:{sha}"), "substituted", controller)
    assert (await get_cm(kube, namespace, "a"))["data"] == {  # type: ignore[index]
        "color": "red",
        "size": "big",
    }


async def test_impersonation_without_rights_is_denied(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(files={"t/a.yaml": cm("a", namespace, v="1")})
    await git_source(kube, namespace, "repo", git_http, repo)
    await kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        body={"metadata": {"name": "tenant"}},
    )
    await create_ks(kube, namespace, "tenant", path="t", serviceAccountName="tenant")
    obj = await wait_ks(
        kube, namespace, "tenant", failed("ReconciliationFailed"), "denial", controller
    )
    message = condition(obj, "Ready")["message"]
    assert f"system:serviceaccount:{namespace}:tenant" in message
    assert "forbidden" in message
    assert await get_cm(kube, namespace, "a") is None


async def test_orphan_deletion_policy_keeps_the_objects(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(files={"o/a.yaml": cm("a", namespace, v="1")})
    await deployed(
        kube, namespace, "orphan", git_http, repo, controller, path="o", deletionPolicy="Orphan"
    )
    await kube.delete(ks_path(namespace, "orphan"))
    await wait_gone(kube, ks_path(namespace, "orphan"), within=20)
    assert await get_cm(kube, namespace, "a") is not None


async def test_a_watched_configmap_change_is_applied_without_waiting_for_the_interval(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    watch = {"reconcile.fluxcd.io/watch": "Enabled"}
    await create_cm(kube, namespace, "vars", {"color": "red"}, labels=watch)
    repo = git_repo(files={"w/a.yaml": cm("a", namespace, color="${color}")})
    await deployed(
        kube,
        namespace,
        "watched",
        git_http,
        repo,
        controller,
        path="w",
        interval="1h",
        postBuild={"substituteFrom": [{"kind": "ConfigMap", "name": "vars"}]},
    )
    assert (await get_cm(kube, namespace, "a"))["data"] == {"color": "red"}  # type: ignore[index]

    await kube.patch(f"/api/v1/namespaces/{namespace}/configmaps/vars", {"data": {"color": "blue"}})
    for _ in range(100):
        if (await get_cm(kube, namespace, "a"))["data"] == {"color": "blue"}:  # type: ignore[index]
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the ConfigMap change was not applied within 10 s:\n" + controller.logs())


async def test_ignore_rules_keep_fields_another_controller_sets(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    repo = git_repo(files={"i/a.yaml": cm("a", namespace, color="blue", scale="1")})
    scale = {"paths": ["/data/scale"], "target": {"kind": "ConfigMap", "name": "a"}}
    await deployed(
        kube, namespace, "ignoring", git_http, repo, controller, path="i", ignore=[scale]
    )
    await kube.apply(
        f"/api/v1/namespaces/{namespace}/configmaps/a",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"},
         "data": {"scale": "7"}},
        field_manager="autoscaler",
        force=True,
    )  # fmt: skip
    sha = repo.commit({"i/a.yaml": cm("a", namespace, color="green", scale="1")})
    await fetch_now(kube, namespace, "ignore-1")
    await wait_ks(kube, namespace, "ignoring", applied(f"main@sha1:{sha}"), "updated", controller)
    assert (await get_cm(kube, namespace, "a"))["data"] == {  # type: ignore[index]
        "color": "green",
        "scale": "7",
    }

    await kube.patch(ks_path(namespace, "ignoring"), {"spec": {"ignore": [{"paths": ["x"]}]}})
    obj = await wait_ks(
        kube, namespace, "ignoring", failed("ReconciliationFailed"), "bad rule", controller
    )
    assert "spec.ignore" in condition(obj, "Ready")["message"]
