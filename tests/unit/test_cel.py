"""CEL health checks and dependency ready expressions, judged against Flux's own examples and
error texts (kustomize-controller docs, the Flux CEL cheatsheet, fluxcd/pkg runtime/cel)."""

from __future__ import annotations

from typing import Any

import pytest

from tidal.api.kustomize_types import CustomHealthCheck
from tidal.api.meta import DependencyReference
from tidal.kube import kstatus
from tidal.kube.cel import (
    CelError,
    EvaluationError,
    Expression,
    StatusEvaluator,
    group_kind,
    health_check_readers,
    ready_expressions,
)

CURRENT, IN_PROGRESS, FAILED, UNKNOWN = (
    kstatus.Status.CURRENT,
    kstatus.Status.IN_PROGRESS,
    kstatus.Status.FAILED,
    kstatus.Status.UNKNOWN,
)

# The Flux docs' and cheatsheet's expressions for a kind with a Ready condition.
READY_FAILED = "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'False')"
READY_CURRENT = "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True')"
GENERATION_LAGS = (
    "has(status.observedGeneration) && metadata.generation != status.observedGeneration"
)


def check(current: str, failed: str = "", in_progress: str = "", **kw: str) -> CustomHealthCheck:
    return CustomHealthCheck(
        api_version=kw.get("api_version", "example.com/v1"),
        kind=kw.get("kind", "Widget"),
        current=current,
        failed=failed,
        in_progress=in_progress,
    )


def evaluate(c: CustomHealthCheck, obj: dict[str, Any]) -> kstatus.Status:
    return StatusEvaluator.of(c).evaluate(obj).status


def conditions(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {"conditions": [{"type": t, "status": s, "reason": "R"} for t, s in pairs]}


# -- the health of custom resources ----------------------------------------------------------


def test_sealed_secret_from_flux_docs_follows_its_synced_condition() -> None:
    sealed = check(
        current="status.conditions.filter(e, e.type == 'Synced').all(e, e.status == 'True')",
        failed="status.conditions.filter(e, e.type == 'Synced').all(e, e.status == 'False')",
        api_version="bitnami.com/v1alpha1",
        kind="SealedSecret",
    )
    assert evaluate(sealed, {"status": conditions(("Synced", "True"))}) is CURRENT
    assert evaluate(sealed, {"status": conditions(("Synced", "False"))}) is FAILED
    assert evaluate(sealed, {"status": conditions(("Synced", "Unknown"))}) is IN_PROGRESS


def test_helmrelease_like_object_waits_for_its_generation_then_its_ready_condition() -> None:
    release = check(current=READY_CURRENT, failed=READY_FAILED, in_progress=GENERATION_LAGS)
    obj: dict[str, Any] = {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": "podinfo", "generation": 3},
        "status": {"observedGeneration": 3, **conditions(("Ready", "True"), ("Released", "True"))},
    }
    assert evaluate(release, obj) is CURRENT
    obj["status"]["conditions"][0]["status"] = "False"
    assert evaluate(release, obj) is FAILED
    # A spec change the controller has not seen yet: whatever Ready says is stale.
    obj["metadata"]["generation"] = 4
    assert evaluate(release, obj) is IN_PROGRESS


def test_cluster_api_like_phase_field() -> None:
    cluster = check(
        current="status.phase == 'Provisioned'",
        failed="status.phase == 'Failed'",
        in_progress="status.phase in ['Pending', 'Provisioning']",
        api_version="cluster.x-k8s.io/v1beta1",
        kind="Cluster",
    )
    assert evaluate(cluster, {"status": {"phase": "Provisioning"}}) is IN_PROGRESS
    assert evaluate(cluster, {"status": {"phase": "Provisioned"}}) is CURRENT
    assert evaluate(cluster, {"status": {"phase": "Failed"}}) is FAILED
    assert evaluate(cluster, {"status": {"phase": "Deleting"}}) is IN_PROGRESS


@pytest.mark.parametrize(
    ("flags", "want"),
    [
        ({"current": False, "inProgress": False, "failed": False}, IN_PROGRESS),
        ({"current": True, "inProgress": True, "failed": True}, IN_PROGRESS),
        ({"current": True, "inProgress": False, "failed": True}, FAILED),
        ({"current": True, "inProgress": False, "failed": False}, CURRENT),
    ],
)
def test_in_progress_then_failed_then_current_first_true_wins(
    flags: dict[str, bool], want: kstatus.Status
) -> None:
    c = check(current="data.current", failed="data.failed", in_progress="data.inProgress")
    # Any top-level field is a variable, not only the usual five.
    assert evaluate(c, {"data": flags}) is want


def test_a_lagging_observed_generation_is_in_progress_before_any_expression() -> None:
    c = check(current="true")
    lagging = {"metadata": {"generation": 2}, "status": {"observedGeneration": 1}}
    assert evaluate(c, lagging) is IN_PROGRESS
    assert evaluate(c, {"metadata": {"generation": 2}, "status": {"observedGeneration": 2}}) is (
        CURRENT
    )
    with pytest.raises(kstatus.StatusError, match="expected int64"):
        evaluate(c, {"metadata": {"generation": 2}, "status": {"observedGeneration": "2"}})


def test_empty_conditions_make_filter_all_true_so_failed_wins() -> None:
    c = check(current=READY_CURRENT, failed=READY_FAILED)
    assert evaluate(c, {"status": {"conditions": []}}) is FAILED


@pytest.mark.parametrize(
    ("obj", "error"),
    [
        (
            {},
            "failed to evaluate the CEL expression '" + READY_FAILED + "': "
            "no such attribute(s): status.conditions",
        ),
        (
            {"status": {}},
            "failed to evaluate the CEL expression '" + READY_FAILED + "': no such key: conditions",
        ),
    ],
)
def test_a_missing_field_is_an_error_not_false(obj: dict[str, Any], error: str) -> None:
    c = check(current=READY_CURRENT, failed=READY_FAILED)
    with pytest.raises(EvaluationError) as e:
        evaluate(c, obj)
    assert str(e.value) == error


def test_has_on_a_missing_top_level_field_is_an_error_too() -> None:
    c = check(current=READY_CURRENT, in_progress=GENERATION_LAGS)
    with pytest.raises(EvaluationError, match=r"no such attribute\(s\): status.observedGeneration"):
        evaluate(c, {})


def test_optional_field_access_guards_a_missing_status() -> None:
    guarded = check(
        current="status.?conditions.orValue([]).exists(e, e.type == 'Ready' && e.status == 'True')"
    )
    assert evaluate(guarded, {"status": {}}) is IN_PROGRESS
    assert evaluate(guarded, {"status": conditions(("Ready", "True"))}) is CURRENT


def test_a_result_that_is_not_a_bool_is_an_error() -> None:
    with pytest.raises(EvaluationError) as e:
        evaluate(check(current="status.phase"), {"status": {"phase": "Ready"}})
    assert str(e.value) == "failed to evaluate CEL expression as boolean: 'status.phase'"


def test_the_reader_reports_what_a_poll_sees() -> None:
    ref = kstatus.ObjRef("example.com", "Widget", "apps", "w")
    evaluator = StatusEvaluator.of(check(current=READY_CURRENT, failed=READY_FAILED))
    assert evaluator.read(ref, None) == kstatus.ResourceStatus(
        ref, kstatus.Status.NOT_FOUND, "Resource not found"
    )
    failed = evaluator.read(ref, {"status": conditions(("Ready", "False"))})
    assert (failed.status, failed.message, failed.error) == (FAILED, "", None)
    broken = evaluator.read(ref, {"status": {}})
    assert broken.status is UNKNOWN
    assert broken.error is not None and broken.error.endswith("no such key: conditions")


def test_health_check_messages_name_the_failed_and_the_broken_objects() -> None:
    a = kstatus.ObjRef("example.com", "Widget", "apps", "a")
    b = kstatus.ObjRef("example.com", "Widget", "apps", "b")
    evaluator = StatusEvaluator.of(check(current="status.ok", failed="status.bad"))
    wait = kstatus.HealthCheck([a, b])
    wait.observe(evaluator.read(a, {"status": {"ok": False, "bad": True}}))
    assert wait.observe(evaluator.read(b, {"status": {"ok": True, "bad": False}}))
    assert wait.error(timed_out=False) == (
        "failed early due to stalled resources: [Widget/apps/a status: 'Failed']"
    )
    slow = kstatus.HealthCheck([a])
    slow.observe(evaluator.read(a, {"status": {}}))
    assert slow.error(timed_out=True) == (
        "timeout waiting for: [Widget/apps/a status: 'Unknown': failed to evaluate the CEL "
        "expression 'status.bad': no such key: bad]"
    )


# -- building health checks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("c", "error"),
    [
        (check(current=""), "expression Current not specified"),
        (check(current="data."), "failed to parse the expression Current: "),
        (check(current="true", failed="data."), "failed to parse the expression Failed: "),
        (check(current="true", in_progress="data."), "failed to parse the expression InProgress: "),
    ],
)
def test_invalid_health_checks_say_which_expression(c: CustomHealthCheck, error: str) -> None:
    with pytest.raises(CelError) as e:
        health_check_readers([check(current="true", kind="Other"), c])
    assert str(e.value).startswith(
        f"failed to create custom status evaluator for healthchecks[1]: {error}"
    )


def test_a_syntax_error_carries_the_position_and_the_source_line() -> None:
    with pytest.raises(CelError) as e:
        Expression("status.phase ==")
    assert str(e.value).startswith(
        "failed to parse the CEL expression 'status.phase ==': ERROR: <input>:1:16: Syntax error:"
    )
    assert str(e.value).endswith(" | status.phase ==\n | ...............^")


def test_one_health_check_per_group_kind_whatever_the_version() -> None:
    readers = health_check_readers(
        [check(current="true"), check(current="true", api_version="v1", kind="ConfigMap")]
    )
    assert set(readers) == {("example.com", "Widget"), ("", "ConfigMap")}
    with pytest.raises(CelError) as e:
        health_check_readers(
            [check(current="true"), check(current="false", api_version="example.com/v2")]
        )
    assert (
        str(e.value)
        == "duplicate custom health check for GroupKind Widget.example.com at healthchecks[1]"
    )


def test_group_kind_follows_apimachinery() -> None:
    assert group_kind("example.com/v1", "Widget") == ("example.com", "Widget")
    assert group_kind("v1", "ConfigMap") == ("", "ConfigMap")
    assert group_kind("a/b/c", "X") == ("", "X")


# -- the language Flux offers ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "status.conditions.exists(e, e.type == 'Ready')",
        "status.conditions.exists_one(e, e.type == 'Ready')",
        "'Ready' in status.conditions.map(e, e.type)",
        "size(status.conditions.filter(e, e.status == 'True')) == 1",
        "status.phase.startsWith('Prov') && status.phase.endsWith('ned')",
        "status.phase.contains('vision') && status.phase.matches('^P.*d$')",
        "status.phase.lowerAscii() == 'provisioned'",
        "status.phase.split('i').size() == 3",
        "status.replicas > 2.5 && status.replicas == 3.0",
        "sets.contains(['a', 'b', 'c'], ['b']) && !sets.intersects([true], [1])",
        "sets.equivalent([1, 2], [2, 1])",
        "base64.encode(b'ok') == 'b2s='",
        "status.?missing.orValue('x') == 'x'",
        "duration('1m') > duration('30s')",
    ],
)
def test_macros_strings_sets_encoders_and_optionals(text: str) -> None:
    obj = {"status": {"phase": "Provisioned", "replicas": 3, **conditions(("Ready", "True"))}}
    assert Expression(text).evaluate_bool(obj) is True


# -- dependency ready expressions ------------------------------------------------------------

LOCKSTEP = (
    "dep.metadata.labels['app/version'] == self.metadata.labels['app/version'] && "
    "dep.status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True') && "
    "dep.metadata.generation == dep.status.observedGeneration"
)


def kustomization(version: str, ready: str = "True", generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "app", "generation": generation, "labels": {"app/version": version}},
        "status": {"observedGeneration": 1, **conditions(("Ready", ready))},
    }


def test_lockstep_ready_expression_from_flux_docs() -> None:
    expr = ready_expressions([DependencyReference(name="app-backend", ready_expr=LOCKSTEP)])[
        LOCKSTEP
    ]
    me = kustomization("v1.2.3")
    assert expr.evaluate_bool({"self": me, "dep": kustomization("v1.2.3")}) is True
    assert expr.evaluate_bool({"self": me, "dep": kustomization("v1.2.2")}) is False
    assert expr.evaluate_bool({"self": me, "dep": kustomization("v1.2.3", "False")}) is False
    assert expr.evaluate_bool({"self": me, "dep": kustomization("v1.2.3", generation=2)}) is False


def test_a_ready_expression_over_a_missing_field_fails_to_evaluate() -> None:
    expr = ready_expressions([DependencyReference(name="a", ready_expr="dep.spec.prune == true")])[
        "dep.spec.prune == true"
    ]
    with pytest.raises(EvaluationError) as e:
        expr.evaluate_bool({"self": {}, "dep": {"spec": {}}})
    assert (
        str(e.value)
        == "failed to evaluate the CEL expression 'dep.spec.prune == true': no such key: prune"
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "dep.metadata.name",
            "failed to evaluate dependency backend: CEL expression output type mismatch: "
            "expected bool, got dyn",
        ),
        (
            "other.ready == true",
            "failed to evaluate dependency backend: failed to parse the CEL expression "
            "'other.ready == true': ERROR: <input>:1:6: undeclared reference to 'other.ready'",
        ),
        (
            "dep.metadata.",
            "failed to evaluate dependency backend: failed to parse the CEL expression "
            "'dep.metadata.': ERROR: <input>:1:14: Syntax error:",
        ),
    ],
)
def test_ready_expressions_are_type_checked_against_self_and_dep(text: str, error: str) -> None:
    with pytest.raises(CelError) as e:
        ready_expressions(
            [
                DependencyReference(name="ok", ready_expr="true"),
                DependencyReference(name="backend", ready_expr=text),
            ]
        )
    assert str(e.value).startswith(error)
