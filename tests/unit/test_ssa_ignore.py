"""spec.ignore: label selectors, rule matching, and how a payload is reshaped."""

from __future__ import annotations

from typing import Any

import pytest

from tidal.kube import labels
from tidal.ssa.ignore import (
    IgnoreRuleError,
    IgnoreRules,
    drifted_paths,
    owns,
    reshape,
)
from tidal.ssa.pointer import lookup


@pytest.mark.parametrize(
    ("selector", "present", "absent"),
    [
        ("app=web", {"app": "web"}, {"app": "db"}),
        ("app==web", {"app": "web", "x": "y"}, {}),
        ("app!=web", {}, {"app": "web"}),
        ("app", {"app": ""}, {"other": "web"}),
        ("!app", {"other": "x"}, {"app": "web"}),
        ("env in (prod, staging)", {"env": "staging"}, {"env": "dev"}),
        ("env notin (prod)", {}, {"env": "prod"}),
        ("app=web,tier!=db", {"app": "web", "tier": "fe"}, {"app": "web", "tier": "db"}),
        ("replicas>2", {"replicas": "3"}, {"replicas": "2"}),
        ("replicas<2", {"replicas": "1"}, {"replicas": "x"}),
        ("example.com/team=a", {"example.com/team": "a"}, {"team": "a"}),
        ("app=", {"app": ""}, {"app": "web"}),
        ("", {}, None),
    ],
)
def test_label_selectors_match_as_kubernetes_reads_them(
    selector: str, present: dict[str, str], absent: dict[str, str] | None
) -> None:
    parsed = labels.parse(selector)
    assert parsed.matches(present)
    if absent is not None:
        assert not parsed.matches(absent)


@pytest.mark.parametrize("bad", ["app=web,", "app in web", "a b", "app>x", "-bad=1", "in (a"])
def test_bad_label_selectors_are_refused(bad: str) -> None:
    with pytest.raises(labels.SelectorError):
        labels.parse(bad)


def _deploy(**meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps", **meta},
        "spec": {"replicas": 2},
    }


def test_rules_match_on_every_target_field_with_anchored_regexes() -> None:
    rules = IgnoreRules(
        [
            {"paths": ["/spec/replicas"], "target": {"kind": "Deploy.*", "name": "we"}},
            {"paths": ["/spec/a"], "target": {"kind": "Deployment", "namespace": "app.*"}},
            {"paths": ["/spec/b"], "target": {"group": "apps", "version": "v1"}},
            {"paths": ["/spec/c"], "target": {"labelSelector": "hpa=on"}},
            {"paths": ["/spec/d"], "target": {"annotationSelector": "!skip"}},
            {"paths": ["/spec/e"]},
        ]
    )
    # "we" is anchored, so it does not match "web"
    assert rules.paths_for(_deploy()) == ["/spec/a", "/spec/b", "/spec/d", "/spec/e"]
    assert rules.paths_for(_deploy(labels={"hpa": "on"}, annotations={"skip": ""})) == [
        "/spec/a",
        "/spec/b",
        "/spec/c",
        "/spec/e",
    ]


@pytest.mark.parametrize(
    "rule",
    [
        {"paths": ["spec/replicas"]},
        {"paths": [""]},
        {"paths": ["/"]},
        {"paths": ["/x"], "target": {"kind": "("}},
        {"paths": ["/x"], "target": {"labelSelector": "a in b"}},
    ],
)
def test_broken_rules_are_refused_with_the_reason(rule: dict[str, Any]) -> None:
    with pytest.raises(IgnoreRuleError):
        IgnoreRules([rule])


def test_json_pointers_resolve_escapes_and_list_indexes() -> None:
    doc = {"metadata": {"annotations": {"a/b": "1", "m~n": "2"}}, "l": [{"x": 1}]}
    assert lookup(doc, "/metadata/annotations/a~1b") == (True, "1")
    assert lookup(doc, "/metadata/annotations/m~0n") == (True, "2")
    assert lookup(doc, "/l/0/x") == (True, 1)
    assert lookup(doc, "/l/1/x") == (False, None)
    assert drifted_paths(doc, {"l": [{"x": 2}]}, ["/l/0/x", "/l/0/x", "/nope"]) == ["/l/0/x"]


LIVE: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "web",
        "namespace": "apps",
        "annotations": {"team": "a"},
        "managedFields": [
            {
                "manager": "kustomize-controller",
                "operation": "Apply",
                "fieldsV1": {
                    "f:metadata": {"f:annotations": {"f:team": {}}},
                    "f:spec": {
                        "f:template": {
                            "f:spec": {
                                "f:containers": {
                                    'k:{"name":"app"}': {".": {}, "f:image": {}, "f:name": {}}
                                }
                            }
                        }
                    },
                },
            },
            {
                "manager": "vpa",
                "operation": "Apply",
                "fieldsV1": {
                    "f:spec": {
                        "f:replicas": {},
                        "f:template": {
                            "f:spec": {
                                "f:containers": {
                                    'k:{"name":"app"}': {"f:resources": {"f:limits": {}}}
                                }
                            }
                        },
                    }
                },
            },
            {
                "manager": "kubectl-edit",
                "operation": "Update",
                "fieldsV1": {"f:metadata": {"f:annotations": {"f:team": {}}}},
            },
        ],
    },
    "spec": {
        "replicas": 5,
        "template": {
            "spec": {
                "containers": [
                    {"name": "app", "image": "live:1", "resources": {"limits": {"cpu": "2"}}}
                ]
            }
        },
    },
}


def test_ownership_follows_fields_v1_through_keyed_list_items() -> None:
    vpa = LIVE["metadata"]["managedFields"][1]["fieldsV1"]
    assert owns(vpa, LIVE, "/spec/replicas")
    assert owns(vpa, LIVE, "/spec/template/spec/containers/0/resources")
    assert not owns(vpa, LIVE, "/spec/template/spec/containers/0/image")
    assert not owns(vpa, LIVE, "/metadata/annotations/team")


def test_reshape_strips_what_others_apply_and_adopts_the_rest() -> None:
    desired = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps", "annotations": {"team": "b"}},
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "app", "image": "git:2", "resources": {"limits": {"cpu": "1"}}}
                    ]
                }
            },
        },
    }
    paths = [
        "/spec/replicas",  # another applier (vpa) owns it: left out
        "/spec/template/spec/containers/0/resources",  # the same
        "/metadata/annotations/team",  # only an Update manager besides us: live value kept
        "/spec/paused",  # absent live: the declared value (none here) stays
    ]
    out = reshape(desired, LIVE, paths, "kustomize-controller")
    assert "replicas" not in out["spec"]
    assert out["spec"]["template"]["spec"]["containers"][0] == {"name": "app", "image": "git:2"}
    assert out["metadata"]["annotations"] == {"team": "a"}
    assert desired["spec"]["replicas"] == 2, "the desired object itself is not changed"
