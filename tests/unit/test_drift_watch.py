"""Which watch events wake a Kustomization: the drift watch's decisions on metadata as the API
server sends it (managedFields recorded from a real kube-apiserver), and its bookkeeping."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import httpx2 as httpx
import pytest
from lightkube.config.kubeconfig import KubeConfig

from tidal.kube.client import Kube
from tidal.kustomize.drift_watch import (
    DriftWatch,
    Kind,
    drift_of,
    exempt,
    owner_of,
    slim,
    writers,
)
from tidal.runtime.informer import Informer

T0, T1, T2 = "2026-11-24T21:25:30Z", "2026-11-24T21:25:31Z", "2026-11-24T21:27:07Z"
OWNER = {
    "kustomize.toolkit.fluxcd.io/name": "apps",
    "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
}
OURS_ALL = {
    "f:data": {"f:a": {}, "f:b": {}},
    "f:metadata": {"f:labels": {f"f:{k}": {} for k in OWNER}},
}
CONFIGMAP = Kind("", "v1", "ConfigMap")
DEPLOYMENT = Kind("apps", "v1", "Deployment")


def entry(manager: str, fields: dict[str, Any], time: str = T0, **extra: str) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": extra.pop("operation", "Update"),
        "apiVersion": extra.pop("api_version", "v1"),
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
        **extra,
    }


def ours(fields: dict[str, Any] = OURS_ALL, time: str = T0) -> dict[str, Any]:
    return entry("kustomize-controller", fields, time, operation="Apply")


def cm(
    *entries: dict[str, Any],
    name: str = "a",
    uid: str = "u1",
    rv: str = "1",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "apps",
        "uid": uid,
        "resourceVersion": rv,
        "labels": dict(OWNER),
        "managedFields": list(entries),
    }
    if annotations:
        meta["annotations"] = annotations
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}


APPLIED = cm(ours())


# -- what wakes and what does not -----------------------------------------------------------------


def test_our_own_apply_wakes_nothing() -> None:
    # A new revision adds data key c: our entry grows and gets a new time.
    grown = {**OURS_ALL, "f:data": {"f:a": {}, "f:b": {}, "f:c": {}}}
    assert drift_of(APPLIED, cm(ours(grown, T1), rv="2")) is None
    # The same within the same second: no new time, but our entry gained fields.
    assert drift_of(APPLIED, cm(ours(grown), rv="2")) is None


def test_our_revert_after_an_edit_wakes_nothing() -> None:
    # After kubectl edit took data.a, our forced apply takes it back and kubectl-edit's entry
    # goes away: the only writer is us.
    edited = cm(
        ours({**OURS_ALL, "f:data": {"f:b": {}}}), entry("kubectl-edit", {"f:data": {"f:a": {}}})
    )
    assert drift_of(edited, cm(ours(), rv="3")) is None


def test_a_field_edited_by_another_manager_wakes() -> None:
    edited = cm(
        ours({**OURS_ALL, "f:data": {"f:b": {}}}),
        entry("kubectl-edit", {"f:data": {"f:a": {}}}, T1),
        rv="2",
    )
    assert drift_of(APPLIED, edited) == "modified"
    # The same edit again in the second we reverted it: kubectl-edit's time did not move,
    # but its entry gained the field back.
    reverted = cm(ours(), rv="3")
    assert drift_of(reverted, cm(*edited["metadata"]["managedFields"], rv="4")) == "modified"


def test_a_forced_server_side_apply_by_someone_else_wakes() -> None:
    taken = cm(
        ours({**OURS_ALL, "f:data": {"f:b": {}}}),
        entry("kubectl", {"f:data": {"f:a": {}}}, T1, operation="Apply"),
        rv="2",
    )
    assert drift_of(APPLIED, taken) == "modified"


def test_removing_one_of_our_fields_wakes_though_the_remover_leaves_no_entry() -> None:
    # `kubectl patch --type=merge -p '{"data":{"b":null}}'`: the server records no entry for
    # a writer that owns nothing afterwards.
    removed = cm(ours({**OURS_ALL, "f:data": {"f:a": {}}}), rv="2")
    assert drift_of(APPLIED, removed) == "modified"


def test_kubectl_scale_wakes() -> None:
    deploy = cm(ours({"f:spec": {"f:replicas": {}, "f:template": {}}}))
    scaled = cm(
        ours({"f:spec": {"f:template": {}}}),
        entry("kubectl", {"f:spec": {"f:replicas": {}}}, T1, subresource="scale"),
        rv="2",
    )
    assert drift_of(deploy, scaled) == "modified"


def test_status_updates_wake_nothing() -> None:
    deploy = cm(ours({"f:spec": {"f:replicas": {}}}))
    status = entry(
        "kube-controller-manager",
        {"f:status": {"f:readyReplicas": {}, "f:replicas": {}}},
        T1,
        subresource="status",
    )
    once = cm(*deploy["metadata"]["managedFields"], status, rv="2")
    assert drift_of(deploy, once) is None
    again = cm(*deploy["metadata"]["managedFields"], {**status, "time": T2}, rv="3")
    assert drift_of(once, again) is None


def test_changes_to_fields_we_do_not_own_wake_nothing() -> None:
    # The Deployment controller annotates deployment.kubernetes.io/revision on the main
    # resource; an apply would not touch it, so waking would only cost a reconcile.
    annotated = cm(
        ours(),
        entry(
            "kube-controller-manager",
            {"f:metadata": {"f:annotations": {".": {}, "f:deployment.kubernetes.io/revision": {}}}},
            T1,
        ),
        rv="2",
    )
    assert drift_of(APPLIED, annotated) is None


def test_our_managed_fields_cleanup_wakes_nothing() -> None:
    # The applier replaces managedFields to take over kubectl's fields: our set grows, nobody
    # wrote (a managedFields patch records no entry of its own).
    before = cm(ours({"f:data": {"f:b": {}}}), entry("kubectl", {"f:data": {"f:a": {}}}, T0))
    assert drift_of(before, cm(ours(), rv="2")) is None


def test_delete_and_recreate_wake() -> None:
    assert drift_of(APPLIED, None) == "deleted"
    # A relist after the watch was away: same name, new uid.
    assert drift_of(APPLIED, cm(ours(), uid="u2", rv="9")) == "recreated"


def test_first_sight_wakes_nothing() -> None:
    assert drift_of(None, APPLIED) is None
    assert drift_of(None, None) is None


def test_writers_ignore_the_status_subresource_and_entries_that_only_shrank() -> None:
    old = cm(ours(), entry("kubectl", {"f:data": {"f:x": {}, "f:y": {}}}))
    new = cm(
        ours(),
        entry("kubectl", {"f:data": {"f:x": {}}}),
        entry("kubelet", {"f:status": {}}, T1, subresource="status"),
    )
    assert writers(old, new) == set()


@pytest.mark.parametrize(
    ("key", "value", "exempted"),
    [
        ("kustomize.toolkit.fluxcd.io/ssa", "IfNotPresent", True),
        ("kustomize.toolkit.fluxcd.io/ssa", "ignore", True),
        ("kustomize.toolkit.fluxcd.io/ssa", "Merge", False),
        ("kustomize.toolkit.fluxcd.io/reconcile", "disabled", True),
    ],
)
def test_policy_annotations(key: str, value: str, exempted: bool) -> None:
    assert exempt(cm(ours(), annotations={key: value})) is exempted


def test_slim_keeps_what_the_decision_reads() -> None:
    full = cm(ours(), annotations={"kustomize.toolkit.fluxcd.io/ssa": "Ignore", "big": "x" * 999})
    full["metadata"]["creationTimestamp"] = T0
    lean = slim(copy.deepcopy(full))
    assert lean["metadata"]["annotations"] == {"kustomize.toolkit.fluxcd.io/ssa": "Ignore"}
    assert "creationTimestamp" not in lean["metadata"]
    assert exempt(lean)
    assert drift_of(slim(copy.deepcopy(APPLIED)), lean) is None
    assert drift_of(lean, None) == "deleted"


def test_slim_drops_subresource_fields_without_changing_decisions() -> None:
    status = entry("kcm", {"f:status": {"f:replicas": {}}}, T1, subresource="status")
    before = cm(ours({"f:spec": {"f:replicas": {}}}))
    scaled = cm(entry("kubectl", {"f:spec": {"f:replicas": {}}}, T2, subresource="scale"), status)
    after_status = cm(*before["metadata"]["managedFields"], status, rv="2")
    lean = slim(copy.deepcopy(scaled))
    assert all("fieldsV1" not in e for e in lean["metadata"]["managedFields"])
    assert drift_of(slim(copy.deepcopy(before)), lean) == "modified"
    assert drift_of(slim(copy.deepcopy(before)), slim(copy.deepcopy(after_status))) is None


# -- which Kustomizations count -------------------------------------------------------------------


def kustomization(name: str = "apps", *ids: tuple[str, str], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "flux-system"},
        "spec": {"interval": "1h", **spec},
        "status": {"inventory": {"entries": [{"id": i, "v": v} for i, v in ids]}},
    }


INVENTORY = (("apps_a__ConfigMap", "v1"), ("apps_web_apps_Deployment", "v1"))


def test_owner_of_reads_the_inventory() -> None:
    owner = owner_of(kustomization("apps", *INVENTORY, ("bad", "v1")))
    assert owner is not None
    assert owner.ids == {"apps_a__ConfigMap", "apps_web_apps_Deployment"}
    assert owner.kinds == {CONFIGMAP, DEPLOYMENT}


@pytest.mark.parametrize(
    "spec",
    [{"suspend": True}, {"kubeConfig": {"secretRef": {"name": "remote"}}}],
)
def test_suspended_and_remote_kustomizations_are_not_watched(spec: dict[str, Any]) -> None:
    assert owner_of(kustomization("apps", *INVENTORY, **spec)) is None


# -- the watch's bookkeeping and debounce, fed directly -------------------------------------------


CONFIG = KubeConfig.from_dict(
    {
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
).get()


@pytest.fixture
async def watch() -> AsyncIterator[tuple[DriftWatch, list[tuple[str, str]]]]:
    # Never started, so it never connects: the tests feed the handlers themselves.
    assert CONFIG is not None
    kube = Kube(CONFIG)
    informer = Informer(kube, "/apis/kustomize.toolkit.fluxcd.io/v1/kustomizations")
    woken: list[tuple[str, str]] = []
    drift = DriftWatch(kube, informer, lambda ns, name: woken.append((ns, name)), debounce=0.05)
    yield drift, woken
    await drift.close()
    await kube.close()


async def test_the_watches_ask_for_metadata_only() -> None:
    # What the drift watch's client (Kube(metadata_only=True)) sends: the API server answers
    # PartialObjectMetadata, never a spec, data or status.
    accepted: list[tuple[str, str]] = []

    def server(request: httpx.Request) -> httpx.Response:
        watch = "watch" in request.url.params
        accepted.append(("watch" if watch else "list", request.headers["Accept"]))
        return httpx.Response(200, content=b"" if watch else b"{}")

    assert CONFIG is not None
    http = httpx.AsyncClient(base_url="https://127.0.0.1:1", transport=httpx.MockTransport(server))
    async with Kube(CONFIG, http=http, metadata_only=True) as kube:
        await kube.get("/api/v1/configmaps")
        async for _ in kube.watch("/api/v1/configmaps"):
            pass
    meta = "application/json;as=PartialObjectMetadata{};g=meta.k8s.io;v=v1"
    assert accepted == [("list", meta.format("List")), ("watch", meta.format(""))]


async def test_kinds_follow_the_inventories(
    watch: tuple[DriftWatch, list[tuple[str, str]]],
) -> None:
    drift, _ = watch
    drift.kustomization_changed(kustomization("apps", *INVENTORY))
    drift.kustomization_changed(kustomization("more", ("apps_b__ConfigMap", "v1")))
    assert drift.wanted() == {CONFIGMAP, DEPLOYMENT}
    drift.kustomization_changed(kustomization("apps", ("apps_a__ConfigMap", "v1")))
    assert drift.wanted() == {CONFIGMAP}
    drift.kustomization_deleted(kustomization("apps"))
    assert drift.wanted() == {CONFIGMAP}
    drift.kustomization_changed(kustomization("more", ("apps_b__ConfigMap", "v1"), suspend=True))
    assert drift.wanted() == set()


async def test_events_coalesce_into_one_wake_up(
    watch: tuple[DriftWatch, list[tuple[str, str]]],
) -> None:
    drift, woken = watch
    drift.kustomization_changed(kustomization("apps", *INVENTORY))
    drift.object_changed(CONFIGMAP, APPLIED, None)
    drift.object_changed(CONFIGMAP, APPLIED, cm(ours(), uid="u2"))
    assert woken == []  # not before the debounce
    await asyncio.sleep(0.15)
    assert woken == [("flux-system", "apps")]


async def test_events_that_wake_nobody(
    watch: tuple[DriftWatch, list[tuple[str, str]]],
) -> None:
    drift, woken = watch
    drift.kustomization_changed(kustomization("apps", *INVENTORY))
    ignored = cm(ours(), annotations={"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"})
    drift.object_changed(CONFIGMAP, ignored, None)  # policy
    drift.object_changed(CONFIGMAP, cm(ours(), name="stray"), None)  # not in the inventory
    drift.object_changed(DEPLOYMENT, APPLIED, None)  # same name, other kind
    drift.object_changed(CONFIGMAP, APPLIED, cm(ours(), rv="2"))  # no drift
    await asyncio.sleep(0.15)
    assert woken == []


async def test_a_kustomization_suspended_meanwhile_is_not_woken(
    watch: tuple[DriftWatch, list[tuple[str, str]]],
) -> None:
    drift, woken = watch
    drift.kustomization_changed(kustomization("apps", *INVENTORY))
    drift.object_changed(CONFIGMAP, APPLIED, None)
    drift.kustomization_changed(kustomization("apps", *INVENTORY, suspend=True))
    await asyncio.sleep(0.15)
    assert woken == []
