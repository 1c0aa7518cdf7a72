"""Conditions: getters, Set's transition-time rules, ordering, abnormal-true helpers and the
polarity merge, each case named after the fluxcd/pkg runtime/conditions behaviour it pins."""

from __future__ import annotations

import pytest

from tidal.api.base import ObjectMeta
from tidal.api.meta import READY, RECONCILING, STALLED, Condition
from tidal.api.source import (
    ARTIFACT_IN_STORAGE,
    ARTIFACT_OUTDATED,
    FETCH_FAILED,
    SOURCE_VERIFIED,
    STORAGE_OPERATION_FAILED,
    GitRepository,
    GitRepositorySpec,
)
from tidal.runtime import conditions as cond
from tidal.runtime.summarize import GIT_REPOSITORY_READY

OLD = "2026-01-01T00:00:00Z"


class Ticker:
    """A clock that moves one second per call, so every new transition time is distinct."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return f"2026-11-24T16:20:{self.calls:02d}Z"


def c(
    type_: str, status: cond.Status = "True", reason: str = "R", message: str = "m", og: int = 1
) -> Condition:
    return Condition(
        type=type_,
        status=status,
        last_transition_time=OLD,
        reason=reason,
        message=message,
        observed_generation=og,
    )


def repo(*conditions: Condition, generation: int = 1) -> GitRepository:
    obj = GitRepository(
        spec=GitRepositorySpec(url="https://example.com/repo.git", interval="1m"),
        metadata=ObjectMeta(name="podinfo", namespace="default", generation=generation),
    )
    obj.status.conditions = list(conditions)
    return obj


def types(obj: GitRepository) -> list[str]:
    return [x.type for x in obj.status.conditions]


# --- getters ---------------------------------------------------------------------------------


def test_getters_work_on_objects_and_plain_lists() -> None:
    listed = [c(READY, "False"), c(FETCH_FAILED, "True", "GitOperationFailed", "boom")]
    for source in (listed, repo(*listed)):
        assert cond.get(source, FETCH_FAILED) == listed[1]
        assert cond.has(source, READY)
        assert not cond.has(source, STALLED)
        assert cond.is_true(source, FETCH_FAILED)
        assert cond.is_false(source, READY)
        assert cond.get_reason(source, FETCH_FAILED) == "GitOperationFailed"
        assert cond.get_message(source, FETCH_FAILED) == "boom"
        assert cond.get_reason(source, STALLED) == ""


@pytest.mark.parametrize(
    ("present", "true", "false", "unknown"),
    [
        # getter.go IsUnknown: an absent condition counts as Unknown, never as True or False.
        pytest.param(None, False, False, True, id="absent-is-unknown-only"),
        pytest.param("True", True, False, False, id="true"),
        pytest.param("False", False, True, False, id="false"),
        pytest.param("Unknown", False, False, True, id="unknown"),
    ],
)
def test_status_predicates(
    present: cond.Status | None, true: bool, false: bool, unknown: bool
) -> None:
    source = [] if present is None else [c("X", present)]
    assert (cond.is_true(source, "X"), cond.is_false(source, "X")) == (true, false)
    assert cond.is_unknown(source, "X") == unknown


@pytest.mark.parametrize(
    ("present", "ready", "stalled", "reconciling"),
    [
        pytest.param([c(READY)], True, False, False, id="IsReady-needs-Ready-True-alone"),
        pytest.param([c(READY), c(RECONCILING)], False, False, True, id="reconciling-not-ready"),
        pytest.param([c(READY), c(STALLED)], False, True, False, id="stalled-not-ready"),
        # IsStalled/IsReconciling: each is true only while the other is not True.
        pytest.param([c(STALLED), c(RECONCILING)], False, False, False, id="both-is-neither"),
        pytest.param([c(READY, "False")], False, False, False, id="ready-false"),
    ],
)
def test_kstatus_predicates(
    present: list[Condition], ready: bool, stalled: bool, reconciling: bool
) -> None:
    assert cond.is_ready(present) == ready
    assert cond.is_stalled(present) == stalled
    assert cond.is_reconciling(present) == reconciling


# --- Set -------------------------------------------------------------------------------------


def test_set_new_condition_takes_now_and_the_object_generation() -> None:
    obj, clock = repo(generation=4), Ticker()
    cond.mark_true(obj, ARTIFACT_IN_STORAGE, "Succeeded", "stored", clock=clock)
    got = cond.get(obj, ARTIFACT_IN_STORAGE)
    assert got == Condition(
        type=ARTIFACT_IN_STORAGE,
        status="True",
        last_transition_time="2026-11-24T16:20:01Z",
        reason="Succeeded",
        message="stored",
        observed_generation=4,
    )


def test_set_new_condition_keeps_a_transition_time_it_already_carries() -> None:
    # setter.go Set: "setting the transition time only if not already set".
    obj = repo()
    cond.set_condition(obj, c("X"), clock=Ticker())
    assert cond.get(obj, "X").last_transition_time == OLD  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("status", "reason", "message", "moves"),
    [
        # hasSameState compares Type, Status, Reason and Message; any difference is a transition.
        pytest.param("False", "R", "m", False, id="same-state-keeps-time"),
        pytest.param("True", "R", "m", True, id="status-change-moves-time"),
        pytest.param("False", "Other", "m", True, id="reason-change-moves-time"),
        pytest.param("False", "R", "other", True, id="message-change-moves-time"),
    ],
)
def test_set_transition_time(status: cond.Status, reason: str, message: str, moves: bool) -> None:
    obj = repo(c(FETCH_FAILED, "False", "R", "m", og=1), generation=1)
    cond.set_condition(obj, cond.new(FETCH_FAILED, status, reason, message), clock=Ticker())
    got = cond.get(obj, FETCH_FAILED)
    assert got is not None
    assert got.last_transition_time == ("2026-11-24T16:20:01Z" if moves else OLD)
    assert (got.status, got.reason, got.message) == (status, reason, message)


def test_set_same_state_on_new_generation_updates_generation_keeps_time() -> None:
    # setter_test.go TestSetObservedGeneration: observedGeneration follows, time stays.
    obj = repo(c("foo1", "False", og=2), c("foo2", "True", og=3), generation=5)
    cond.mark_false(obj, "foo1", "R", "m", clock=Ticker())
    cond.mark_true(obj, "foo2", "R", "m", clock=Ticker())
    for t in ("foo1", "foo2"):
        got = cond.get(obj, t)
        assert got is not None
        assert (got.observed_generation, got.last_transition_time) == (5, OLD)


def test_set_stores_a_copy() -> None:
    obj, given = repo(generation=3), cond.new("X", "True", "R", "m")
    cond.set_condition(obj, given, clock=Ticker())
    assert given.observed_generation == 0
    assert given.last_transition_time == ""
    assert obj.status.conditions[0] is not given


def test_set_does_not_duplicate() -> None:
    obj = repo(c("a"), c("b"))
    cond.mark_true(obj, "a", "R", "m", clock=Ticker())
    assert types(obj) == ["a", "b"]


def test_set_sorts_stalled_reconciling_ready_first_then_newest_generation_then_type() -> None:
    # setter.go lexicographicLess: weights Stalled 0, Reconciling 1, Ready 2; the rest by
    # higher observedGeneration first, then alphabetically by type.
    obj = repo(
        c("b", og=2),
        c(READY, og=1),
        c("c", og=3),
        c(RECONCILING, og=1),
        c("a", og=2),
        generation=1,
    )
    cond.mark_true(obj, STALLED, "R", "m", clock=Ticker())
    assert types(obj) == [STALLED, RECONCILING, READY, "c", "a", "b"]


def test_delete_removes_and_keeps_order() -> None:
    obj = repo(c("b"), c("a"), c(READY))
    cond.delete(obj, "a")
    cond.delete(obj, "absent")
    assert types(obj) == ["b", READY]


@pytest.mark.parametrize(
    ("message", "args", "want"),
    [
        pytest.param("stored artifact for revision '%s'", ("main@sha1:abc",), None, id="printf"),
        # Flux passes error text through "%s"; with no args the text is used verbatim.
        pytest.param("100% broken: %d", (), "100% broken: %d", id="no-args-verbatim"),
    ],
)
def test_mark_message_formatting(message: str, args: tuple[object, ...], want: str | None) -> None:
    obj = repo()
    cond.mark_unknown(obj, "X", "R", message, *args, clock=Ticker())
    assert cond.get_message(obj, "X") == (want or "stored artifact for revision 'main@sha1:abc'")


def test_mark_reconciling_removes_stalled() -> None:
    # setter.go MarkReconciling deletes Stalled: abnormal-true conditions exist only while True.
    obj = repo(c(STALLED, reason="URLInvalid"))
    cond.mark_reconciling(obj, "Progressing", "reconciliation in progress", clock=Ticker())
    assert types(obj) == [RECONCILING]
    assert cond.get_reason(obj, RECONCILING) == "Progressing"


def test_mark_stalled_removes_reconciling() -> None:
    obj = repo(c(RECONCILING, reason="Progressing"))
    cond.mark_stalled(obj, "URLInvalid", "invalid url: %s", "ftp://x", clock=Ticker())
    assert types(obj) == [STALLED]
    assert cond.get_message(obj, STALLED) == "invalid url: ftp://x"


@pytest.mark.parametrize(
    ("before", "drift", "ready"),
    [
        # runtime/reconcile ProgressiveStatus: Ready follows only when unset, Unknown, or drift.
        pytest.param([], False, ("Unknown", "Progressing"), id="no-ready-becomes-unknown"),
        pytest.param(
            [c(READY, "Unknown", "X")], False, ("Unknown", "Progressing"), id="unknown-follows"
        ),
        pytest.param([c(READY, "True", "Succeeded")], False, ("True", "Succeeded"), id="keep"),
        pytest.param(
            [c(READY, "True", "Succeeded")], True, ("Unknown", "Progressing"), id="drift-resets"
        ),
    ],
)
def test_progressive_status(before: list[Condition], drift: bool, ready: tuple[str, str]) -> None:
    obj = repo(*before)
    cond.progressive_status(obj, "Progressing", "building artifact", drift=drift, clock=Ticker())
    assert cond.is_true(obj, RECONCILING)
    got = cond.get(obj, READY)
    assert got is not None
    assert (got.status, got.reason) == ready


# --- merge / summary -------------------------------------------------------------------------

SOURCE = GIT_REPOSITORY_READY


@pytest.mark.parametrize(
    ("present", "want"),
    [
        # merge.go: P0 True+negative -> target False with that condition's reason and message.
        pytest.param(
            [c(FETCH_FAILED, "True", "GitOperationFailed", "clone failed")],
            ("False", "GitOperationFailed", "clone failed"),
            id="negative-true-makes-ready-false",
        ),
        # P1 False+positive -> target False.
        pytest.param(
            [c(ARTIFACT_IN_STORAGE, "False", "Missing", "gone")],
            ("False", "Missing", "gone"),
            id="positive-false-makes-ready-false",
        ),
        # P2 True+positive -> target True copying it (the success message of sources).
        pytest.param(
            [c(ARTIFACT_IN_STORAGE, "True", "Succeeded", "stored artifact for revision 'r'")],
            ("True", "Succeeded", "stored artifact for revision 'r'"),
            id="positive-true-makes-ready-true",
        ),
        # P3 False+negative -> polarity inverted -> target True.
        pytest.param(
            [c(FETCH_FAILED, "False", "Fine", "ok")],
            ("True", "Fine", "ok"),
            id="negative-false-inverts-to-true",
        ),
        # P4 Unknown -> target Unknown.
        pytest.param(
            [c(ARTIFACT_IN_STORAGE, "Unknown", "Hmm", "not sure")],
            ("Unknown", "Hmm", "not sure"),
            id="unknown-only-is-unknown",
        ),
        pytest.param(
            [c(SOURCE_VERIFIED, "Unknown", "Hmm"), c(ARTIFACT_IN_STORAGE, "True", "Succeeded")],
            ("True", "Succeeded", "m"),
            id="anything-known-beats-unknown",
        ),
        pytest.param(
            [c(ARTIFACT_IN_STORAGE, "True", "Succeeded"), c(FETCH_FAILED, "True", "Auth", "401")],
            ("False", "Auth", "401"),
            id="p0-beats-p2",
        ),
        pytest.param(
            [c(ARTIFACT_IN_STORAGE, "False", "Gone", "g"), c(FETCH_FAILED, "True", "Auth", "401")],
            ("False", "Auth", "401"),
            id="p0-beats-p1",
        ),
        # Several in the top group: the first of WithConditions' order gives reason/message.
        pytest.param(
            [
                c(RECONCILING, "True", "ProgressingWithRetry", "retrying"),
                c(ARTIFACT_OUTDATED, "True", "NewRevision", "new upstream revision 'x'"),
                c(FETCH_FAILED, "True", "GitOperationFailed", "fetch failed"),
                c(STORAGE_OPERATION_FAILED, "True", "ArchiveOperationFailed", "disk full"),
            ],
            ("False", "ArchiveOperationFailed", "disk full"),
            id="priority-storage-first",
        ),
        pytest.param(
            [
                c(RECONCILING, "True", "ProgressingWithRetry", "retrying"),
                c(ARTIFACT_OUTDATED, "True", "NewRevision", "new upstream revision 'x'"),
            ],
            ("False", "NewRevision", "new upstream revision 'x'"),
            id="priority-outdated-before-reconciling",
        ),
        pytest.param(
            [c(RECONCILING, "True", "ProgressingWithRetry", "retrying")],
            ("False", "ProgressingWithRetry", "retrying"),
            id="reconciling-alone-makes-ready-false",
        ),
        pytest.param(
            [
                c(SOURCE_VERIFIED, "True", "Succeeded", "verified"),
                c(ARTIFACT_IN_STORAGE, "True", "Succeeded", "stored"),
            ],
            ("True", "Succeeded", "stored"),
            id="priority-artifact-before-verified",
        ),
    ],
)
def test_summary_for_sources(present: list[Condition], want: tuple[str, str, str]) -> None:
    got = cond.summary(
        present, READY, conditions=SOURCE.summarize, negative_polarity=SOURCE.negative_polarity
    )
    assert got is not None
    assert (got.type, got.status, got.reason, got.message) == (READY, *want)


def test_summary_without_priority_uses_display_order() -> None:
    # getFirstCondition falls back to the top group sorted by lexicographicLess.
    present = [c("b", og=1, reason="B"), c("a", og=1, reason="A"), c("z", og=2, reason="Z")]
    assert cond.summary(present, READY).reason == "Z"  # type: ignore[union-attr]
    assert cond.summary(present[:2], READY).reason == "A"  # type: ignore[union-attr]


def test_summary_scope() -> None:
    present = [c(READY, "False", "Old"), c("Custom", "False", "Noise"), c(FETCH_FAILED, "False")]
    # Only listed types count, and never the target itself.
    got = cond.summary(present, READY, conditions=[FETCH_FAILED], negative_polarity=[FETCH_FAILED])
    assert got is not None
    assert (got.status, got.reason) == ("True", "R")
    # With no list every condition but the target is in scope.
    got = cond.summary(present, READY, negative_polarity=[FETCH_FAILED])
    assert got is not None
    assert (got.status, got.reason) == ("False", "Noise")
    assert cond.summary([c(READY)], READY) is None


def test_merge_into_negative_target_keeps_polarity() -> None:
    # merge.go inverts only when the top group's polarity differs from the target's.
    got = cond.merge([c("Broken", "True")], "Degraded", negative_polarity=["Broken", "Degraded"])
    assert got is not None
    assert got.status == "True"


def test_set_summary_with_nothing_in_scope_leaves_target() -> None:
    # SetSummary -> Set(nil) is a no-op: a stale Ready survives when nothing is in scope.
    obj = repo(c(READY, "False", "Old", "old"))
    cond.set_summary(obj, READY, conditions=SOURCE.summarize, clock=Ticker())
    assert obj.status.conditions == [c(READY, "False", "Old", "old")]


def test_set_summary_keeps_transition_time_when_unchanged() -> None:
    obj = repo(
        c(READY, "True", "Succeeded", "stored"),
        c(ARTIFACT_IN_STORAGE, "True", "Succeeded", "stored"),
    )
    cond.set_summary(obj, READY, conditions=SOURCE.summarize, clock=Ticker())
    assert cond.get(obj, READY).last_transition_time == OLD  # type: ignore[union-attr]
