"""tidal.helmrelease.drift without a cluster: Flux's texts and the comparison itself."""

from __future__ import annotations

from typing import Any

from tidal.helm.storage import Info, Release
from tidal.helmrelease import drift
from tidal.helmrelease.drift import Change, CorrectionResult
from tidal.kube.client import ApiError
from tidal.ssa.changeset import Action, ChangeSet, Entry
from tidal.ssa.ignore import IgnoreRules


def _change(kind: str, ns: str, name: str, type_: drift.ChangeType, *ops: str) -> Change:
    patch = [{"op": op, "path": f"/x/{i}"} for i, op in enumerate(ops)]
    return Change(kind, ns, name, "v1", type_, {}, patch)


CHANGES = [
    _change("Deployment", "default", "a", "update", "add", "replace", "replace", "remove"),
    _change("ConfigMap", "default", "b", "create"),
    _change("ClusterRole", "", "c", "exclude"),
    _change("Secret", "default", "d", "update", "replace"),
]


def _release() -> Release:
    return Release(name="web", namespace="apps", version=3, info=Info(), chart={})


def test_summarize() -> None:
    assert drift.summarize(CHANGES) == (
        "Deployment/default/a changed (1 additions, 2 changes, 1 removals)\n"
        "ConfigMap/default/b removed\n"
        "ClusterRole/c excluded\n"
        "Secret/default/d changed (0 additions, 1 changes, 0 removals)"
    )
    assert drift.summarize([]) == ""


def test_summarize_brief() -> None:
    assert drift.summarize_brief(CHANGES) == "removed: 1, changed: 2, excluded: 1"
    assert drift.summarize_brief([]) == "removed: 0, changed: 0, excluded: 0"
    assert drift.detected_log_message(CHANGES[1:2]) == (
        "detected changes in cluster state: removed: 1, changed: 0, excluded: 0"
    )


def test_drifted_message() -> None:
    assert drift.drifted_message(_release(), CHANGES[1:2]) == (
        "Cluster state of release apps/web.v3 has drifted from the desired state:\n"
        "ConfigMap/default/b removed"
    )


def _result(errors: list[str], *entries: Entry) -> CorrectionResult:
    return CorrectionResult(ChangeSet(list(entries)), errors)


CREATED = Entry("", "v1", "ConfigMap", "apps", "b", Action.CREATED)
CONFIGURED = Entry("apps", "v1", "Deployment", "apps", "a", Action.CONFIGURED)


def test_correction_events() -> None:
    rel = _release()
    assert drift.correction_event(rel, _result([])) is None
    assert drift.correction_event(rel, _result([], CREATED, CONFIGURED)) == (
        "Normal",
        "DriftCorrected",
        "Cluster state of release apps/web.v3 has been corrected:\n"
        "ConfigMap/apps/b created\nDeployment/apps/a configured",
    )
    assert drift.correction_event(rel, _result(["e1", "e2"])) == (
        "Warning",
        "DriftCorrectionFailed",
        "Failed to correct cluster state of release apps/web.v3:\ne1\ne2",
    )
    assert drift.correction_event(rel, _result(["e1"], CREATED)) == (
        "Warning",
        "DriftCorrectionFailed",
        "Failed to partially correct cluster state of release apps/web.v3:\ne1\n\n"
        "Successful corrections:\nConfigMap/apps/b created",
    )


HELM = {"app.kubernetes.io/managed-by": "Helm"}
LONG = "a value long enough that replacing the whole map never pays off"


def _obj(labels: dict[str, str], data: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "x", "labels": {**HELM, **labels}, **meta},
        "data": data,
    }


def test_diff_objects_ignores_server_metadata_and_removed_labels() -> None:
    live = _obj({"a": "1", "added-by-controller": "y"}, {"k": "v"}, resourceVersion="9", uid="u")
    dry = _obj({"a": "1"}, {"k": "v"}, resourceVersion="10", uid="u")
    dry["status"] = {"s": 1}
    assert drift.diff_objects(live, dry, []) == []


def test_removed_label_rationalized_into_a_replace_is_drift() -> None:
    # Flux's quirk, kept: on a tiny label map the removal becomes a replace of the map,
    # which the add/replace filter keeps.
    live = {"metadata": {"name": "x", "labels": {"a": "1", "added-by-controller": "y"}}}
    dry = {"metadata": {"name": "x", "labels": {"a": "1"}}}
    assert [op.to_json() for op in drift.diff_objects(live, dry, [])] == [
        {"op": "replace", "path": "/metadata/labels", "value": {"a": "1"}}
    ]


def test_diff_objects_labels_and_fields() -> None:
    live = _obj({"a": LONG + "2"}, {"k": LONG + "edited", "extra": LONG, "same": LONG})
    dry = _obj({"a": LONG, "b": LONG}, {"k": LONG, "same": LONG})
    ops = [op.to_json() for op in drift.diff_objects(live, dry, [])]
    assert ops == [
        {"op": "replace", "path": "/metadata/labels/a", "value": LONG},
        {"op": "add", "path": "/metadata/labels/b", "value": LONG},
        {"op": "remove", "path": "/data/extra"},
        {"op": "replace", "path": "/data/k", "value": LONG},
    ]
    ignored = ["/data/extra", "/metadata/labels/a", "/no/such/path"]
    assert [op.path for op in drift.diff_objects(live, dry, ignored)] == [
        "/metadata/labels/b",
        "/data/k",
    ]


def test_root_ignore_rule_allowed_for_helmreleases() -> None:
    rules = IgnoreRules([{"paths": [""], "target": {"kind": "Secret"}}], allow_root=True)
    assert rules.paths_for({"apiVersion": "v1", "kind": "Secret"}) == [""]
    assert rules.paths_for({"apiVersion": "v1", "kind": "ConfigMap"}) == []


def test_secret_patch_errors_keep_the_reason_only() -> None:
    body = {"message": 'Secret "s" is invalid: data[password]: Invalid value: "c2VjcmV0": bad'}
    assert drift._masked_error(ApiError(422, body, "PATCH", "/p")) == "bad"
    assert drift._masked_error(ApiError(409, {"message": "a: b"}, "PATCH", "/p")) == "a: b"


def test_change_repr_hides_desired_and_correction() -> None:
    c = Change("Secret", "ns", "s", "v1", "update", {"data": {"p": "c2VjcmV0"}},
               [{"op": "replace", "path": "/data/p", "value": "*** (after)"}],
               [{"op": "replace", "path": "/data/p", "value": "c2VjcmV0"}])  # fmt: skip
    assert "c2VjcmV0" not in repr(c)
    assert c.subject == "Secret/ns/s"
