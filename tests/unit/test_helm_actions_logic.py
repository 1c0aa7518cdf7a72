"""The pure decisions of tidal.helm.actions: ownership, what an upgrade creates and deletes,
keep policy, hook order, rollback targets, test filters, and Helm's wait verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from tidal.helm import actions, hooks, kubeops, resources, wait
from tidal.helm.actions import ActionError, TestFilter
from tidal.helm.resources import Item
from tidal.helm.storage import Info, Release, ReleaseHook
from tidal.kube.discovery import Resource
from tidal.kube.kstatus import ObjRef, ResourceStatus, Status

CM = Resource("", "v1", "ConfigMap", "configmaps", True)
DEPLOY = Resource("apps", "v1", "Deployment", "deployments", True)


def item(resource: Resource, name: str, ns: str = "apps", **meta: Any) -> Item:
    return Item(
        resource,
        {
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {"name": name, "namespace": ns, **meta},
        },
    )


def test_ownership_error_lists_every_missing_piece_as_helm_does() -> None:
    live = {"metadata": {"labels": {"app.kubernetes.io/managed-by": "Flux"},
                         "annotations": {"meta.helm.sh/release-name": "web"}}}  # fmt: skip
    assert resources.ownership_error(live, "web", "apps") == (
        'invalid ownership metadata; label validation error: key "app.kubernetes.io/managed-by"'
        ' must equal "Helm": current value is "Flux"; annotation validation error: missing key '
        '"meta.helm.sh/release-namespace": must be set to "apps"'
    )
    owned = resources.set_metadata(item(CM, "x"), "web", "apps").obj
    assert resources.ownership_error(owned, "web", "apps") is None
    assert "release-name" in str(resources.ownership_error(owned, "other", "apps"))


def test_set_metadata_merges_helm_label_and_annotations() -> None:
    got = resources.set_metadata(
        item(CM, "x", labels={"a": "1"}, annotations={"b": "2"}), "web", "apps"
    )
    assert got.obj["metadata"]["labels"] == {"a": "1", "app.kubernetes.io/managed-by": "Helm"}
    assert got.obj["metadata"]["annotations"] == {
        "b": "2", "meta.helm.sh/release-name": "web", "meta.helm.sh/release-namespace": "apps",
    }  # fmt: skip


def test_conflict_message_names_the_object() -> None:
    assert resources.conflict_message(item(CM, "x"), "E") == (
        'ConfigMap "x" in namespace "apps" exists and cannot be imported into the current '
        "release: E"
    )


def test_upgrade_creates_new_and_deletes_dropped_by_group_kind_namespace_name() -> None:
    current = [item(CM, "a"), item(CM, "b"), item(DEPLOY, "a")]
    target = [item(CM, "a"), item(DEPLOY, "a"), item(CM, "c"), item(CM, "b", ns="other")]
    assert [i.key for i in resources.new_items(current, target)] == [
        ("", "ConfigMap", "apps", "c"), ("", "ConfigMap", "other", "b"),
    ]  # fmt: skip
    assert [i.name for i in resources.difference(current, target)] == ["b"]


def test_live_keep_policy_is_exact() -> None:
    keep = {"metadata": {"annotations": {"helm.sh/resource-policy": "keep"}}}
    assert resources.live_keeps(keep)
    assert not resources.live_keeps(
        {"metadata": {"annotations": {"helm.sh/resource-policy": "Keep "}}}
    )
    assert not resources.live_keeps({"metadata": {}})


MANIFEST = """---
# Source: c/templates/svc.yaml
apiVersion: v1
kind: Service
metadata:
  name: svc
---
# Source: c/templates/cm.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: kept
  annotations:
    helm.sh/resource-policy: " KEEP"
---
# Source: c/templates/cm2.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: other-policy
  annotations:
    helm.sh/resource-policy: something
---
# Source: c/templates/deploy.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
"""


def test_uninstall_plan_orders_for_uninstall_and_honours_keep() -> None:
    plan = resources.uninstall_plan(MANIFEST)
    assert plan.kept == [("ConfigMap", "kept")]
    kinds = [o["kind"] for o in resources.parse_objects(plan.delete)]
    # Service before Deployment in Helm's uninstall order; the other-policy one is neither
    # deleted nor reported kept, as in Helm.
    assert kinds == ["Service", "Deployment"]
    assert actions.kept_message(MANIFEST) == (
        "These resources were kept due to the resource policy:\n[ConfigMap] kept\n"
    )


def test_batches_by_kind_keep_order() -> None:
    items = [item(CM, "a"), item(CM, "b"), item(DEPLOY, "d"), item(CM, "e")]
    assert [[i.name for i in b] for b in resources.batches_by_kind(items)] == [
        ["a", "b"], ["d"], ["e"],
    ]  # fmt: skip


def test_gvk_string_is_gos() -> None:
    assert item(CM, "a").gvk == "/v1, Kind=ConfigMap"
    assert item(DEPLOY, "a").gvk == "apps/v1, Kind=Deployment"


def _hook(name: str, events: list[str], weight: int = 0) -> ReleaseHook:
    return ReleaseHook(name=name, kind="Job", path=f"t/{name}", manifest="", events=events,
                       weight=weight)  # fmt: skip


def test_hooks_run_by_weight_then_name() -> None:
    hs = [_hook("b", ["pre-install"]), _hook("a", ["pre-install"], 1), _hook("c", ["test"]),
          _hook("a0", ["pre-install", "post-install"])]  # fmt: skip
    assert [h.name for h in hooks.executing_hooks(hs, "pre-install")] == ["a0", "b", "a"]


def test_test_filters_exclude_then_include() -> None:
    hs = [_hook("a", ["test"]), _hook("b", ["test"]), _hook("c", ["test"])]
    run, skipped = actions.split_test_hooks(hs, [TestFilter("b", exclude=True)])
    assert ([h.name for h in run], [h.name for h in skipped]) == (["a", "c"], ["b"])
    run, skipped = actions.split_test_hooks(hs, [TestFilter("c"), TestFilter("a", exclude=True)])
    assert ([h.name for h in run], [h.name for h in skipped]) == (["c"], ["a", "b"])
    run, skipped = actions.split_test_hooks(hs, [])
    assert (len(run), skipped) == (3, [])


def _rel(version: int, status: str) -> Release:
    return Release(name="r", namespace="n", version=version, info=Info(status=status), chart={})


def test_rollback_target_is_the_last_successful_revision() -> None:
    history = [_rel(1, "superseded"), _rel(2, "superseded"), _rel(3, "failed"),
               _rel(4, "failed")]  # fmt: skip
    assert actions.rollback_target(history, None) == 2
    assert actions.rollback_target(history, 1) == 1
    with pytest.raises(ActionError, match="release has no 7 version"):
        actions.rollback_target(history, 7)
    with pytest.raises(ActionError, match="invalid release revision"):
        actions.rollback_target(history, -1)
    with pytest.raises(ActionError, match="release has no 0 version"):
        actions.rollback_target([_rel(1, "deployed")], None)


REF = ObjRef("batch", "Job", "ns", "j")


def test_wait_verdicts_and_messages_are_helms() -> None:
    current = ResourceStatus(REF, Status.CURRENT, "ok")
    failed = ResourceStatus(ObjRef("", "Pod", "ns", "p"), Status.FAILED, "pod p failed")
    running = ResourceStatus(REF, Status.IN_PROGRESS, "Job in progress")
    assert wait.ready_done([current, failed])  # failed is terminal: nothing to wait for
    assert not wait.ready_done([current, running])
    assert wait.ready_error([current, failed], False) == (
        "resource Pod/ns/p not ready. status: Failed, message: pod p failed"
    )
    assert wait.ready_error([running], True) == (
        "resource Job/ns/j not ready. status: InProgress, message: Job in progress\n"
        "context deadline exceeded"
    )
    assert wait.ready_error([current], False) is None
    gone = ResourceStatus(REF, Status.NOT_FOUND, "Resource not found")
    unknown = ResourceStatus(REF, Status.UNKNOWN)
    assert wait.deleted_done([gone, unknown])
    assert not wait.deleted_done([gone, current])
    assert wait.deleted_error([current], True) == (
        "resource Job/ns/j still exists. status: Current, message: ok\ncontext deadline exceeded"
    )


def test_helm_job_and_pod_readers() -> None:
    complete = [{"type": "Complete", "status": "True"}]
    job = {"spec": {"completions": 2}, "status": {"succeeded": 2, "conditions": complete}}
    assert wait.helm_job_status(REF, job).message == "Job Completed. succeeded: 2/2"
    bad = {"status": {"failed": 1, "conditions": [{"type": "Failed", "status": "True"}]}}
    rs = wait.helm_job_status(REF, bad)
    assert (rs.status, rs.message) == (Status.FAILED, "Job Failed. failed: 1/1")
    assert wait.helm_job_status(REF, {"status": {"active": 1}}).status is Status.IN_PROGRESS
    assert wait.helm_job_status(REF, None).status is Status.NOT_FOUND
    pod = ObjRef("", "Pod", "ns", "p")
    assert wait.helm_pod_status(pod, {"status": {"phase": "Succeeded"}}).status is Status.CURRENT
    assert wait.helm_pod_status(pod, {"status": {"phase": "Failed"}}).message == "pod p failed"
    assert wait.helm_pod_status(pod, {"status": {"phase": "Running"}}).status is Status.IN_PROGRESS


def test_merge_patch_is_two_way() -> None:
    old = {"data": {"a": "1", "b": "2"}, "spec": {"x": [1]}, "gone": 1}
    new = {"data": {"a": "1", "b": "3", "c": "4"}, "spec": {"x": [1, 2]}}
    assert kubeops.merge_patch(old, new) == {
        "data": {"b": "3", "c": "4"}, "spec": {"x": [1, 2]}, "gone": None,
    }  # fmt: skip
    assert kubeops.merge_patch(new, new) == {}


def test_propagation_policy_spelling() -> None:
    assert kubeops.propagation_policy("foreground") == "Foreground"
    assert kubeops.propagation_policy("orphan") == "Orphan"


def test_crd_objects_ignore_anything_else_in_crds_dir() -> None:
    text = (
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata: {name: a.example.com}\n---\napiVersion: v1\nkind: ConfigMap\n"
        "metadata: {name: c}\n"
    )
    assert [o["metadata"]["name"] for o in actions.crd_objects([("crds/a.yaml", text)])] == [
        "a.example.com"
    ]


def test_parse_objects_flattens_lists_and_skips_empty_documents() -> None:
    text = (
        "---\n# only a comment\n---\napiVersion: v1\nkind: List\nitems:\n- {kind: A}\n- {kind: B}\n"
    )
    assert [o["kind"] for o in resources.parse_objects(text)] == ["A", "B"]


def test_csa_manager_upgrade_merges_update_into_apply() -> None:
    entries = [
        {"manager": "hc", "operation": "Apply", "apiVersion": "v1",
         "fieldsV1": {"f:data": {"f:a": {}}}},
        {"manager": "hc", "operation": "Update", "apiVersion": "v1",
         "fieldsV1": {"f:data": {"f:b": {}}, "f:metadata": {"f:labels": {}}}},
        {"manager": "hc", "operation": "Update", "apiVersion": "v1", "subresource": "status",
         "fieldsV1": {"f:status": {}}},
        {"manager": "kubectl", "operation": "Update", "apiVersion": "v1", "fieldsV1": {}},
    ]  # fmt: skip
    got = kubeops.upgraded_managed_fields(entries, "hc")
    assert got == [
        {"manager": "hc", "operation": "Apply", "apiVersion": "v1",
         "fieldsV1": {"f:data": {"f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {}}}},
        entries[2],
        entries[3],
    ]  # fmt: skip
    # Without an Apply entry the Update entry becomes it; with neither nothing changes.
    only_update = [{"manager": "hc", "operation": "Update", "apiVersion": "v1", "fieldsV1": {}}]
    assert kubeops.upgraded_managed_fields(only_update, "hc") == [
        {"manager": "hc", "operation": "Apply", "apiVersion": "v1", "fieldsV1": {}}
    ]
    assert kubeops.upgraded_managed_fields(entries[3:], "hc") == entries[3:]
