"""The applier's pure parts: order, stages, inventory ids, drift, field takeover, defaults."""

from __future__ import annotations

import pytest

from tidal.api.kustomize import ResourceRef
from tidal.kustomize import inventory
from tidal.ssa import objects
from tidal.ssa.changeset import Action, ChangeSet, Entry
from tidal.ssa.drift import has_drifted, remove_pointer
from tidal.ssa.managed_fields import FieldManager, cleanup_patch, replace_managers
from tidal.ssa.manager import stages
from tidal.ssa.normalize import normalize


def obj(api_version: str, kind: str, name: str, namespace: str = "", **extra: object) -> dict:
    meta: dict[str, object] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **extra}


def test_stages_put_definitions_then_classes_then_the_rest_each_in_flux_order() -> None:
    given = [
        obj("apps/v1", "Deployment", "web", "app"),
        obj("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "hook"),
        obj("example.com/v1", "Widget", "w", "app"),
        obj("v1", "ConfigMap", "b", "app"),
        obj("v1", "ConfigMap", "a", "app"),
        obj("storage.k8s.io/v1", "StorageClass", "fast"),
        obj("rbac.authorization.k8s.io/v1", "ClusterRole", "reader"),
        obj("v1", "Namespace", "app"),
        obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.example.com"),
        obj("v1", "ServiceAccount", "sa", "app"),
    ]
    got = [[objects.describe(o) for o in stage] for stage in stages(given)]
    assert got == [
        [
            "CustomResourceDefinition/widgets.example.com",
            "Namespace/app",
            "ClusterRole/reader",
        ],
        ["StorageClass/fast"],
        [
            "ServiceAccount/app/sa",
            "ConfigMap/app/a",
            "ConfigMap/app/b",
            "Deployment/app/web",
            "Widget/app/w",
            "ValidatingWebhookConfiguration/hook",
        ],
    ]


@pytest.mark.parametrize(
    ("ref", "id_"),
    [
        (inventory.ObjRef("default", "podinfo", "", "Service"), "default_podinfo__Service"),
        (inventory.ObjRef("", "app", "", "Namespace"), "_app__Namespace"),
        (
            inventory.ObjRef("default", "podinfo", "apps", "Deployment"),
            "default_podinfo_apps_Deployment",
        ),
        (
            inventory.ObjRef("", "system:metrics", "rbac.authorization.k8s.io", "ClusterRole"),
            "_system__metrics_rbac.authorization.k8s.io_ClusterRole",
        ),
        (
            inventory.ObjRef("ns", "my_name_x", "example.com", "Widget"),
            "ns_my_name_x_example.com_Widget",
        ),
    ],
)
def test_inventory_ids_are_fluxs_and_round_trip(ref: inventory.ObjRef, id_: str) -> None:
    assert ref.id == id_
    assert inventory.parse_id(id_) == ref


def test_inventory_from_change_set_and_stale_entries() -> None:
    changes = ChangeSet(
        [
            Entry("", "v1", "Namespace", "", "app", Action.CREATED),
            Entry("apps", "v1", "Deployment", "app", "web", Action.UNCHANGED),
        ]
    )
    new = inventory.from_change_set(changes)
    assert [(r.id, r.version) for r in new] == [
        ("_app__Namespace", "v1"),
        ("app_web_apps_Deployment", "v1"),
    ]
    old = [*new, ResourceRef(id="app_old__ConfigMap", version="v1")]
    assert [r.subject for r in inventory.stale(old, new)] == ["ConfigMap/app/old"]
    assert inventory.stale(old, new)[0].as_object() == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "old", "namespace": "app"},
    }


def test_invalid_inventory_id_is_refused() -> None:
    with pytest.raises(inventory.InventoryError):
        inventory.parse_id("nonsense")


def test_change_set_lines_and_summary() -> None:
    changes = ChangeSet(
        [
            Entry("", "v1", "ConfigMap", "app", "a", Action.CREATED),
            Entry("", "v1", "ConfigMap", "app", "b", Action.UNCHANGED),
            Entry("", "v1", "Namespace", "", "app", Action.CONFIGURED),
        ]
    )
    assert changes.summary() == "ConfigMap/app/a created\nNamespace/app configured"
    assert changes.changed()


def test_metadata_selectors_compare_values_case_insensitively() -> None:
    o = obj("v1", "ConfigMap", "a", "ns")
    o["metadata"]["annotations"] = {"kustomize.toolkit.fluxcd.io/reconcile": "Disabled"}
    assert objects.any_in_metadata(o, {"kustomize.toolkit.fluxcd.io/reconcile": "disabled"})
    assert not objects.any_in_metadata(o, {"kustomize.toolkit.fluxcd.io/prune": "disabled"})
    assert not objects.any_in_metadata(None, {"a": "b"})


def live(**data: object) -> dict:
    o = obj("v1", "ConfigMap", "a", "ns", data=data)
    o["metadata"].update(resourceVersion="7", labels={"x": "1"}, generation=1)
    o["status"] = {"anything": True}
    return o


def test_drift_ignores_metadata_noise_and_status_but_not_labels_or_data() -> None:
    current = live(k="v")
    same = live(k="v")
    same["metadata"]["resourceVersion"] = "7"
    same["metadata"]["managedFields"] = [{"manager": "m"}]
    same["status"] = {"other": 1}
    assert not has_drifted(current, same)
    changed = live(k="w")
    assert has_drifted(current, changed)
    relabelled = live(k="v")
    relabelled["metadata"]["labels"] = {"x": "2"}
    assert has_drifted(current, relabelled)
    assert has_drifted(None, same)
    created = live(k="v")
    del created["metadata"]["resourceVersion"]
    assert has_drifted(current, created)


def test_drift_ignore_pointers_hide_differences_only_at_those_paths() -> None:
    assert not has_drifted(live(k="v"), live(k="w"), ["/data/k"])
    assert has_drifted(live(k="v", j="1"), live(k="w", j="2"), ["/data/k"])
    doc = {"a": {"b/c": [1, 2, 3]}}
    remove_pointer(doc, "/a/b~1c/1")
    assert doc == {"a": {"b/c": [1, 3]}}
    remove_pointer(doc, "/missing/path")
    assert doc == {"a": {"b/c": [1, 3]}}


TAKEOVER = [
    FieldManager("kubectl", "Apply"),
    FieldManager("kubectl", "Update"),
    FieldManager("before-first-apply", "Update"),
    FieldManager("kustomize-controller", "Update"),
]


def test_kubectl_edits_are_folded_into_the_owners_apply_entry() -> None:
    o = live(k="v")
    o["metadata"]["managedFields"] = [
        {
            "manager": "kustomize-controller",
            "operation": "Apply",
            "apiVersion": "v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:k": {}}},
        },
        {
            "manager": "kubectl-edit",
            "operation": "Update",
            "apiVersion": "v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:extra": {}}},
        },
        {
            "manager": "hpa-controller",
            "operation": "Update",
            "apiVersion": "v1",
            "fieldsV1": {"f:spec": {"f:replicas": {}}},
        },
        {
            "manager": "kubectl",
            "operation": "Update",
            "apiVersion": "v1",
            "subresource": "status",
            "fieldsV1": {"f:status": {}},
        },
    ]
    fields = replace_managers(o, TAKEOVER, "kustomize-controller")
    assert fields is not None
    assert [(f["manager"], f["operation"]) for f in fields] == [
        ("kustomize-controller", "Apply"),
        ("hpa-controller", "Update"),
        ("kubectl", "Update"),
    ]
    assert fields[0]["fieldsV1"] == {"f:data": {"f:k": {}, "f:extra": {}}}


def test_cleanup_patch_is_empty_for_a_clean_object_and_strips_legacy_metadata() -> None:
    clean = live(k="v")
    clean["metadata"]["managedFields"] = [
        {"manager": "kustomize-controller", "operation": "Apply", "apiVersion": "v1"}
    ]
    opts = {
        "annotations": ["kubectl.kubernetes.io/last-applied-configuration"],
        "labels": ["fluxcd.io/sync-gc-mark"],
        "managers": TAKEOVER,
        "owner": "kustomize-controller",
    }
    assert cleanup_patch(clean, **opts) == []  # type: ignore[arg-type]
    dirty = live(k="v")
    dirty["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
    dirty["metadata"]["labels"]["fluxcd.io/sync-gc-mark"] = "x"
    ops = cleanup_patch(dirty, **opts)  # type: ignore[arg-type]
    assert ops == [
        {
            "op": "remove",
            "path": "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
        },
        {"op": "remove", "path": "/metadata/labels/fluxcd.io~1sync-gc-mark"},
    ]


def test_normalize_defaults_port_protocols_and_drops_crd_ca_bundles() -> None:
    deploy = obj(
        "apps/v1",
        "Deployment",
        "web",
        "ns",
        spec={
            "template": {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}}
        },
    )
    normalize(deploy)
    assert deploy["spec"]["template"]["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP"}
    ]
    svc = obj(
        "v1", "Service", "s", "ns", spec={"ports": [{"port": 80, "protocol": "UDP"}, {"port": 81}]}
    )
    normalize(svc)
    assert [p["protocol"] for p in svc["spec"]["ports"]] == ["UDP", "TCP"]
    crd = obj(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "w.example.com",
        spec={
            "conversion": {"webhook": {"clientConfig": {"caBundle": "Cg==", "url": "https://x"}}}
        },
    )
    normalize(crd)
    assert crd["spec"]["conversion"]["webhook"]["clientConfig"] == {"url": "https://x"}
