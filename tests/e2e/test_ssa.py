"""The applier against a real API server: staged apply, no-op detection, takeover of kubectl
edits, immutable fields, all-or-nothing on a bad object, and owner-checked deletion."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tidal.kube.client import ApiError, Kube
from tidal.kube.discovery import Discovery
from tidal.runtime.poll import poll_until
from tidal.ssa.changeset import Action
from tidal.ssa.managed_fields import FieldManager
from tidal.ssa.manager import ApplyError, ApplyOptions, ResourceManager

pytestmark = pytest.mark.e2e

OWNER = "kustomize-controller"


def options(**overrides: Any) -> ApplyOptions:
    base: dict[str, Any] = {
        "exclusions": {"kustomize.toolkit.fluxcd.io/reconcile": "disabled"},
        "if_not_present": {"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"},
        "force_selector": {"kustomize.toolkit.fluxcd.io/force": "enabled"},
        "cleanup_annotations": ("kubectl.kubernetes.io/last-applied-configuration",),
        "cleanup_managers": (
            FieldManager("kubectl", "Apply"),
            FieldManager("kubectl", "Update"),
            FieldManager("before-first-apply", "Update"),
        ),
        "cleanup_exclusions": {"kustomize.toolkit.fluxcd.io/ssa": "Merge"},
        "wait_timeout": 30,
    }
    base.update(overrides)
    return ApplyOptions(**base)


def config_map(ns: str, name: str, labels: dict[str, str] | None = None, **data: str) -> dict:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def crd_and_widget(group: str, ns: str) -> list[dict[str, Any]]:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    widget = {
        "apiVersion": f"{group}/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": ns},
        "spec": {"size": 3},
    }
    return [widget, crd]


@pytest.fixture
def manager(kube: Kube) -> ResourceManager:
    return ResourceManager(kube, Discovery(kube), owner=OWNER)


async def live_cm(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    return await kube.get(f"/api/v1/namespaces/{ns}/configmaps/{name}")


async def test_new_namespace_crd_and_custom_resource_in_one_set(
    kube: Kube, manager: ResourceManager
) -> None:
    ns = f"ssa-{uuid.uuid4().hex[:8]}"
    group = f"g{uuid.uuid4().hex[:6]}.example.com"
    objects = [
        config_map(ns, "settings", color="blue"),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        *crd_and_widget(group, ns),
    ]
    changes = await manager.apply_all_staged(objects, options())
    assert changes.lines() == [
        f"CustomResourceDefinition/widgets.{group} created",
        f"Namespace/{ns} created",
        f"ConfigMap/{ns}/settings created",
        f"Widget/{ns}/w1 created",
    ]
    widget = await kube.get(f"/apis/{group}/v1/namespaces/{ns}/widgets/w1")
    assert widget["spec"] == {"size": 3}
    assert {m["manager"] for m in widget["metadata"]["managedFields"]} == {OWNER}

    before = (await live_cm(kube, ns, "settings"))["metadata"]["resourceVersion"]
    again = await manager.apply_all_staged(objects, options())
    assert {e.action for e in again} == {Action.UNCHANGED}
    assert (await live_cm(kube, ns, "settings"))["metadata"]["resourceVersion"] == before
    await kube.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.{group}")
    await kube.delete(f"/api/v1/namespaces/{ns}")


async def test_a_bad_object_means_nothing_is_written(
    kube: Kube, namespace: str, manager: ResourceManager
) -> None:
    await manager.apply_all_staged([config_map(namespace, "a", v="1")], options())
    bad_deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "broken", "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {"spec": {}}},
    }
    unknown = {
        "apiVersion": "nothing.example.com/v1",
        "kind": "Ghost",
        "metadata": {"name": "g", "namespace": namespace},
    }
    with pytest.raises(ApplyError) as err:
        await manager.apply_all_staged(
            [config_map(namespace, "a", v="2"), config_map(namespace, "b", v="1"), bad_deployment],
            options(),
        )
    assert f"Deployment/{namespace}/broken dry-run failed (Invalid)" in str(err.value)
    assert (await live_cm(kube, namespace, "a"))["data"] == {"v": "1"}
    with pytest.raises(ApiError):
        await live_cm(kube, namespace, "b")

    with pytest.raises(ApplyError) as err:
        await manager.apply_all_staged([config_map(namespace, "a", v="3"), unknown], options())
    assert 'no matches for kind "Ghost" in version "nothing.example.com/v1"' in str(err.value)
    assert (await live_cm(kube, namespace, "a"))["data"] == {"v": "1"}


async def test_kubectl_edits_are_reverted_but_other_managers_fields_stay(
    kube: Kube, namespace: str, manager: ResourceManager
) -> None:
    desired = config_map(namespace, "app", color="blue")
    await manager.apply_all_staged([desired], options())
    path = f"/api/v1/namespaces/{namespace}/configmaps/app"
    await kube.request(
        "PATCH",
        path,
        body={"data": {"color": "red", "edited": "yes"}},
        params={"fieldManager": "kubectl-edit"},
        content_type="application/merge-patch+json",
    )
    await kube.request(
        "PATCH",
        path,
        body={"metadata": {"annotations": {"hpa": "mine"}}},
        params={"fieldManager": "some-operator"},
        content_type="application/merge-patch+json",
    )
    changes = await manager.apply_all_staged([desired], options())
    assert changes.lines() == [f"ConfigMap/{namespace}/app configured"]
    live = await live_cm(kube, namespace, "app")
    assert live["data"] == {"color": "blue"}
    assert live["metadata"]["annotations"] == {"hpa": "mine"}
    managers = {m["manager"] for m in live["metadata"]["managedFields"]}
    assert managers == {OWNER, "some-operator"}


async def test_merge_policy_keeps_other_managers_fields(
    kube: Kube, namespace: str, manager: ResourceManager
) -> None:
    desired = config_map(namespace, "app", color="blue")
    desired["metadata"]["annotations"] = {"kustomize.toolkit.fluxcd.io/ssa": "Merge"}
    await manager.apply_all_staged([desired], options())
    await kube.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}/configmaps/app",
        body={"data": {"extra": "kept"}},
        params={"fieldManager": "kubectl-edit"},
        content_type="application/merge-patch+json",
    )
    changes = await manager.apply_all_staged([desired], options())
    assert changes.lines() == [f"ConfigMap/{namespace}/app unchanged"]
    assert (await live_cm(kube, namespace, "app"))["data"] == {"color": "blue", "extra": "kept"}


async def test_skip_policies(kube: Kube, namespace: str, manager: ResourceManager) -> None:
    once = config_map(namespace, "once", v="1")
    once["metadata"]["annotations"] = {"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"}
    ignored = config_map(namespace, "ignored", v="1")
    ignored["metadata"]["labels"] = {"kustomize.toolkit.fluxcd.io/reconcile": "disabled"}
    first = await manager.apply_all_staged([once, ignored], options())
    assert sorted(first.lines()) == sorted(
        [f"ConfigMap/{namespace}/once created", f"ConfigMap/{namespace}/ignored skipped"]
    )
    once["data"] = {"v": "2"}
    second = await manager.apply_all_staged([once], options())
    assert second.lines() == [f"ConfigMap/{namespace}/once skipped"]
    assert (await live_cm(kube, namespace, "once"))["data"] == {"v": "1"}


async def test_immutable_change_needs_force(
    kube: Kube, namespace: str, manager: ResourceManager
) -> None:
    frozen = config_map(namespace, "frozen", v="1")
    frozen["immutable"] = True
    await manager.apply_all_staged([frozen], options())
    frozen["data"] = {"v": "2"}
    with pytest.raises(ApplyError) as err:
        await manager.apply_all_staged([frozen], options())
    assert "field is immutable" in str(err.value)
    uid = (await live_cm(kube, namespace, "frozen"))["metadata"]["uid"]

    changes = await manager.apply_all_staged([frozen], options(force=True))
    assert changes.lines() == [f"ConfigMap/{namespace}/frozen configured"]
    live = await live_cm(kube, namespace, "frozen")
    assert live["data"] == {"v": "2"}
    assert live["metadata"]["uid"] != uid


async def test_delete_only_what_carries_the_owner_labels(
    kube: Kube, namespace: str, manager: ResourceManager
) -> None:
    mine = {"kustomize.toolkit.fluxcd.io/name": "app", "kustomize.toolkit.fluxcd.io/namespace": "x"}
    keep = dict(mine, **{"kustomize.toolkit.fluxcd.io/prune": "disabled"})
    objs = [
        config_map(namespace, "mine", mine, v="1"),
        config_map(namespace, "foreign", {"kustomize.toolkit.fluxcd.io/name": "other"}, v="1"),
        config_map(namespace, "kept", keep, v="1"),
    ]
    await manager.apply_all_staged(objs, options())
    gone = config_map(namespace, "never-existed")
    changes, errors = await manager.delete_all(
        [*objs, gone],
        inclusions=mine,
        exclusions={"kustomize.toolkit.fluxcd.io/prune": "disabled"},
    )
    assert errors == []
    assert sorted(changes.lines()) == sorted(
        [
            f"ConfigMap/{namespace}/mine deleted",
            f"ConfigMap/{namespace}/foreign skipped",
            f"ConfigMap/{namespace}/kept skipped",
            f"ConfigMap/{namespace}/never-existed deleted",
        ]
    )
    with pytest.raises(ApiError):
        await live_cm(kube, namespace, "mine")
    assert (await live_cm(kube, namespace, "foreign"))["data"] == {"v": "1"}
    assert (await live_cm(kube, namespace, "kept"))["data"] == {"v": "1"}


async def test_ignore_rules_leave_an_autoscalers_field_and_adopt_orphans(
    kube: Kube, namespace: str, manager: ResourceManager
) -> None:
    from tidal.ssa.ignore import IgnoreRules

    rules = IgnoreRules(
        [
            {"paths": ["/spec/replicas"], "target": {"kind": "Deployment"}},
            {"paths": ["/data/tuned"], "target": {"kind": "ConfigMap", "name": "app"}},
        ]
    )
    opts = options(drift_ignore=rules.paths_for)
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1"}]},
            },
        },
    }
    cm = config_map(namespace, "app", color="blue", tuned="low")
    changes = await manager.apply_all_staged([deploy, cm], opts)
    assert set(changes.lines()) == {
        f"Deployment/{namespace}/web created",
        f"ConfigMap/{namespace}/app created",
    }
    deploy_path = f"/apis/apps/v1/namespaces/{namespace}/deployments/web"
    cm_path = f"/api/v1/namespaces/{namespace}/configmaps/app"
    # An autoscaler takes spec.replicas with its own apply; a script tunes a value with an
    # update (a kubectl edit would be taken over by the managedFields clean-up instead).
    await kube.apply(
        deploy_path,
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {"replicas": 5}},
        field_manager="vpa",
        force=True,
    )  # fmt: skip
    await kube.request(
        "PATCH",
        cm_path,
        body={"data": {"tuned": "high"}},
        params={"fieldManager": "tuning-script"},
        content_type="application/merge-patch+json",
    )

    # Let the Deployment controller finish its own writes (revision annotation, status) so
    # that they cannot race with the drift check below.
    async def settled() -> bool:
        live = await kube.get(deploy_path)
        observed = (live.get("status") or {}).get("observedGeneration")
        annotated = "deployment.kubernetes.io/revision" in live["metadata"].get("annotations", {})
        return annotated and observed == live["metadata"]["generation"]

    await poll_until(settled, 30, 0.2)

    # Differences in ignored fields alone are no drift: nothing is written.
    # (generation, not resourceVersion: the Deployment's status keeps changing meanwhile)
    before = (await kube.get(deploy_path))["metadata"]["generation"]
    changes = await manager.apply_all_staged([deploy, cm], opts)
    assert set(changes.lines()) == {
        f"Deployment/{namespace}/web unchanged",
        f"ConfigMap/{namespace}/app unchanged",
    }
    live = await kube.get(deploy_path)
    assert live["metadata"]["generation"] == before and live["spec"]["replicas"] == 5

    # A real change elsewhere is applied; the ignored fields keep their live values.
    deploy["spec"]["minReadySeconds"] = 3
    cm["data"]["color"] = "green"
    changes = await manager.apply_all_staged([deploy, cm], opts)
    assert set(changes.lines()) == {
        f"Deployment/{namespace}/web configured",
        f"ConfigMap/{namespace}/app configured",
    }
    live = await kube.get(deploy_path)
    assert live["spec"]["replicas"] == 5 and live["spec"]["minReadySeconds"] == 3
    ours = [m for m in live["metadata"]["managedFields"] if m["manager"] == OWNER]
    assert ours and all("f:replicas" not in str(m.get("fieldsV1")) for m in ours)
    assert (await kube.get(cm_path))["data"] == {"color": "green", "tuned": "high"}

    # Without the rule, the declared value wins again.
    changes = await manager.apply_all_staged([deploy, cm], options())
    assert (await kube.get(deploy_path))["spec"]["replicas"] == 2
    assert (await kube.get(cm_path))["data"] == {"color": "green", "tuned": "low"}


async def test_owner_listing_reads_in_bulk_and_still_finds_unlabelled_objects(
    kube: Kube, namespace: str, manager: ResourceManager
) -> None:
    owner = {
        "kustomize.toolkit.fluxcd.io/name": "app",
        "kustomize.toolkit.fluxcd.io/namespace": "x",
    }
    opts = options(
        owned_selector="kustomize.toolkit.fluxcd.io/name=app,kustomize.toolkit.fluxcd.io/namespace=x"
    )
    # Made by someone else before tidal manages it: no owner labels, so no LIST finds it.
    await kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/configmaps",
        body=config_map(namespace, "adopted", v="old"),
    )
    frozen = config_map(namespace, "frozen", v="1")
    frozen["metadata"]["annotations"] = {"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"}
    desired = [config_map(namespace, f"cm{i}", owner, v=str(i)) for i in range(5)] + [
        config_map(namespace, "adopted", owner, v="new"),
        dict(frozen, metadata=dict(frozen["metadata"], labels=owner)),
    ]
    changes = await manager.apply_all_staged(desired, opts)
    assert sorted(changes.lines()) == sorted(
        [f"ConfigMap/{namespace}/cm{i} created" for i in range(5)]
        + [f"ConfigMap/{namespace}/adopted configured", f"ConfigMap/{namespace}/frozen created"]
    )
    assert (await live_cm(kube, namespace, "adopted"))["data"] == {"v": "new"}

    # Everything is labelled now: one LIST per kind and namespace tells that nothing changed.
    changes = await manager.apply_all_staged(desired, opts)
    assert {line.rsplit(" ", 1)[1] for line in changes.lines()} == {"unchanged", "skipped"}
    assert f"ConfigMap/{namespace}/frozen skipped" in changes.lines()

    # A live edit is still seen as drift and reverted.
    await kube.patch(f"/api/v1/namespaces/{namespace}/configmaps/cm3", {"data": {"v": "edited"}})
    changes = await manager.apply_all_staged(desired, opts)
    assert f"ConfigMap/{namespace}/cm3 configured" in changes.lines()
    assert (await live_cm(kube, namespace, "cm3"))["data"] == {"v": "3"}
