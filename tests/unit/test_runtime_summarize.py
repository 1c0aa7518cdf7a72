"""End-of-reconcile finalisation of a GitRepository, case by case against source-controller's
internal/reconcile ComputeReconcileResult and summarize.SummarizeAndPatch."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tidal.api.base import ObjectMeta
from tidal.api.meta import (
    PROGRESSING,
    PROGRESSING_WITH_RETRY,
    READY,
    RECONCILE_REQUEST_ANNOTATION,
    RECONCILING,
    STALLED,
    Condition,
)
from tidal.api.source import (
    ARTIFACT_IN_STORAGE,
    ARTIFACT_OUTDATED,
    FETCH_FAILED,
    INCLUDE_UNAVAILABLE,
    SOURCE_VERIFIED,
    STORAGE_OPERATION_FAILED,
    GitRepository,
    GitRepositorySpec,
)
from tidal.runtime import conditions as cond
from tidal.runtime.queue import DEFAULT_MIN_RETRY_DELAY
from tidal.runtime.summarize import (
    GIT_REPOSITORY_READY,
    Failed,
    NoRequeue,
    Outcome,
    RequeueNow,
    Stalling,
    Success,
    Waiting,
    finalize,
)
from tidal.runtime.workers import Result

OLD = "2026-01-01T00:00:00Z"
NOW = "2026-11-24T16:20:00Z"
INTERVAL = 60.0
REV = "main@sha1:6e1cd5a1a4b5ba5f6c1e4b4fe62de1f2c3b9ad08"
STORED = f"stored artifact for revision '{REV}'"


def c(type_: str, status: cond.Status = "True", reason: str = "R", message: str = "m") -> Condition:
    return Condition(
        type=type_,
        status=status,
        last_transition_time=OLD,
        reason=reason,
        message=message,
        observed_generation=1,
    )


STORED_OK = c(ARTIFACT_IN_STORAGE, "True", "Succeeded", STORED)
IN_PROGRESS = c(RECONCILING, "True", PROGRESSING, "processing object: new generation 1 -> 2")
FETCH_ERR = "failed to checkout and determine revision: unable to clone: authentication required"


def repo(*conditions: Condition, requested_at: str | None = None) -> GitRepository:
    annotations = {} if requested_at is None else {RECONCILE_REQUEST_ANNOTATION: requested_at}
    obj = GitRepository(
        spec=GitRepositorySpec(url="https://example.com/repo.git", interval="1m"),
        metadata=ObjectMeta(
            name="podinfo", namespace="flux-system", generation=2, annotations=annotations
        ),
    )
    obj.status.observed_generation = 1
    obj.status.conditions = list(conditions)
    return obj


@dataclass(frozen=True)
class Case:
    before: list[Condition]
    outcome: Outcome
    ready: tuple[str, str, str] | None  # status, reason, message
    reconciling: str | None = None  # reason, or None when absent
    stalled: str | None = None
    advances: bool = False
    result: Result = field(default_factory=lambda: Result.success(INTERVAL))


CASES = {
    # SummarizeAndPatch on success: Reconciling removed, Ready=True copies ArtifactInStorage,
    # observedGeneration = generation, requeue at the (jittered) interval.
    "success-ready-true-from-artifact-in-storage": Case(
        before=[c(READY, "Unknown", PROGRESSING, "building artifact"), IN_PROGRESS, STORED_OK],
        outcome=Success(),
        ready=("True", "Succeeded", STORED),
        advances=True,
    ),
    # ComputeReconcileResult: a surviving Reconciling gets ProgressingWithRetry; a generic error
    # leaves observedGeneration alone and goes back to the queue as an error (backoff).
    "transient-failure-negative-condition-wins": Case(
        before=[
            IN_PROGRESS,
            c(FETCH_FAILED, "True", "GitOperationFailed", FETCH_ERR),
            STORED_OK,
        ],
        outcome=Failed("GitOperationFailed", FETCH_ERR),
        ready=("False", "GitOperationFailed", FETCH_ERR),
        reconciling=PROGRESSING_WITH_RETRY,
        result=Result.failure(FETCH_ERR),
    ),
    # Summarize order: StorageOperationFailed, FetchFailed, IncludeUnavailable, ArtifactOutdated.
    "priority-storage-over-fetch-over-include": Case(
        before=[
            IN_PROGRESS,
            c(INCLUDE_UNAVAILABLE, "True", "IncludeUnavailable", "include missing"),
            c(FETCH_FAILED, "True", "GitOperationFailed", FETCH_ERR),
            c(STORAGE_OPERATION_FAILED, "True", "ArchiveOperationFailed", "disk full"),
        ],
        outcome=Failed("ArchiveOperationFailed", "disk full"),
        ready=("False", "ArchiveOperationFailed", "disk full"),
        reconciling=PROGRESSING_WITH_RETRY,
        result=Result.failure("disk full"),
    ),
    # summary_test "ArtifactOutdated=True,Reconciling=True": the detailed condition outranks
    # Reconciling in the same (True, negative) group.
    "priority-outdated-over-reconciling": Case(
        before=[IN_PROGRESS, c(ARTIFACT_OUTDATED, "True", "NewRevision", "new upstream revision")],
        outcome=Failed("DirCreationFailed", "failed to create dir"),
        ready=("False", "NewRevision", "new upstream revision"),
        reconciling=PROGRESSING_WITH_RETRY,
        result=Result.failure("failed to create dir"),
    ),
    # An error with no detailed condition: Reconciling (ProgressingWithRetry) is all Ready sees.
    "failure-with-only-reconciling": Case(
        before=[IN_PROGRESS],
        outcome=Failed("PatchOperationFailed", "conflict"),
        ready=("False", PROGRESSING_WITH_RETRY, "processing object: new generation 1 -> 2"),
        reconciling=PROGRESSING_WITH_RETRY,
        result=Result.failure("conflict"),
    ),
    # A positive condition that is False makes Ready False too.
    "positive-false-makes-ready-false": Case(
        before=[c(ARTIFACT_IN_STORAGE, "False", "Missing", "artifact gone")],
        outcome=Failed("Missing", "artifact gone"),
        ready=("False", "Missing", "artifact gone"),
        result=Result.failure("artifact gone"),
    ),
    # Stalling error with empty result: MarkStalled (drops Reconciling), observedGeneration moves,
    # no error and no requeue. Ready still takes the highest-priority negative condition.
    "stalling-with-fetch-failed": Case(
        before=[IN_PROGRESS, c(FETCH_FAILED, "True", "URLInvalid", "invalid URL")],
        outcome=Stalling("URLInvalid", "invalid URL"),
        ready=("False", "URLInvalid", "invalid URL"),
        stalled="URLInvalid",
        advances=True,
        result=Result.success(None),
    ),
    "stalling-alone-gives-ready-its-reason": Case(
        before=[IN_PROGRESS],
        outcome=Stalling("InvalidCELExpression", "bad expression"),
        ready=("False", "InvalidCELExpression", "bad expression"),
        stalled="InvalidCELExpression",
        advances=True,
        result=Result.success(None),
    ),
    # Every non-stalling outcome removes a Stalled left over from an earlier attempt.
    "success-clears-previous-stall": Case(
        before=[c(STALLED, "True", "URLInvalid", "invalid URL"), STORED_OK],
        outcome=Success(),
        ready=("True", "Succeeded", STORED),
        advances=True,
    ),
    "failure-clears-previous-stall": Case(
        before=[c(STALLED, "True", "URLInvalid"), c(FETCH_FAILED, "True", "AuthFailed", "401")],
        outcome=Failed("AuthFailed", "401"),
        ready=("False", "AuthFailed", "401"),
        result=Result.failure("401"),
    ),
    # serror.Waiting: no error, explicit delay (not jittered), observedGeneration unchanged.
    "waiting-with-delay": Case(
        before=[
            c(READY, "Unknown", PROGRESSING, "x"),
            IN_PROGRESS,
            c(INCLUDE_UNAVAILABLE, "True", "NotFound", "waiting for include"),
        ],
        outcome=Waiting("NotFound", "waiting for include", requeue_after=30.0),
        ready=("False", "NotFound", "waiting for include"),
        reconciling=PROGRESSING_WITH_RETRY,
        result=Result.retry_after(30.0),
    ),
    # Waiting without a delay falls back to the success interval, which IsSuccess then treats as
    # a success: a not-ready object turns it into an error with Ready's message.
    "waiting-without-delay-not-ready-is-error": Case(
        before=[IN_PROGRESS, c(INCLUDE_UNAVAILABLE, "True", "NotFound", "waiting for include")],
        outcome=Waiting("NotFound", "waiting for include"),
        ready=("False", "NotFound", "waiting for include"),
        reconciling=PROGRESSING_WITH_RETRY,
        result=Result.failure("waiting for include"),
    ),
    # ResultRequeue (e.g. finalizer just added): not reconciled yet, so no observedGeneration.
    "requeue-now": Case(
        before=[IN_PROGRESS],
        outcome=RequeueNow(),
        ready=("False", PROGRESSING_WITH_RETRY, "processing object: new generation 1 -> 2"),
        reconciling=PROGRESSING_WITH_RETRY,
        result=Result.retry_after(DEFAULT_MIN_RETRY_DELAY),
    ),
    # ResultEmpty without error (suspended): summarised and observed, never requeued.
    "no-requeue-suspended": Case(
        before=[c(READY, "True", "Succeeded", STORED), STORED_OK],
        outcome=NoRequeue(),
        ready=("True", "Succeeded", STORED),
        advances=True,
        result=Result.success(None),
    ),
    # addPatchOptionWithStatusObservedGeneration: no conditions, nothing observed.
    "no-conditions-no-observed-generation": Case(
        before=[],
        outcome=NoRequeue(),
        ready=None,
        result=Result.success(None),
    ),
    # serror.Generic with Ignore: a no-op that counts as done.
    "ignored-error-is-a-no-op-success": Case(
        before=[IN_PROGRESS, STORED_OK],
        outcome=Failed("ArtifactUpToDate", "artifact up-to-date", ignore=True),
        ready=("True", "Succeeded", STORED),
        advances=True,
    ),
    # summary_test "success result but Ready=False": the success result becomes an error with
    # Ready's message; ComputeReconcileResult had already granted observedGeneration.
    "success-but-not-ready-retries-with-error": Case(
        before=[c(ARTIFACT_OUTDATED, "True", "NewRevision", "new index revision")],
        outcome=Success(),
        ready=("False", "NewRevision", "new index revision"),
        advances=True,
        result=Result.failure("new index revision"),
    ),
    # WithBiPolarityConditionTypes(SourceVerified): a False SourceVerified overrides Ready.
    "bipolar-source-verified-false-overrides": Case(
        before=[
            IN_PROGRESS,
            STORED_OK,
            c(SOURCE_VERIFIED, "False", "VerificationError", "signature invalid"),
        ],
        outcome=Failed("VerificationError", "signature invalid"),
        ready=("False", "VerificationError", "signature invalid"),
        reconciling=PROGRESSING_WITH_RETRY,
        result=Result.failure("signature invalid"),
    ),
    "bipolar-source-verified-true-keeps-artifact-message": Case(
        before=[STORED_OK, c(SOURCE_VERIFIED, "True", "Succeeded", "verified signature")],
        outcome=Success(),
        ready=("True", "Succeeded", STORED),
        advances=True,
    ),
    "unknown-only-gives-unknown": Case(
        before=[c(ARTIFACT_IN_STORAGE, "Unknown", "Pending", "not yet")],
        outcome=NoRequeue(),
        ready=("Unknown", "Pending", "not yet"),
        advances=True,
        result=Result.success(None),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_finalize(case: Case) -> None:
    obj = repo(*case.before)
    done = finalize(obj, case.outcome, GIT_REPOSITORY_READY, interval=INTERVAL, clock=lambda: NOW)

    ready = cond.get(obj, READY)
    assert (None if ready is None else (ready.status, ready.reason, ready.message)) == case.ready
    assert cond.get_reason(obj, RECONCILING) == (case.reconciling or "")
    assert cond.has(obj, RECONCILING) == (case.reconciling is not None)
    assert cond.get_reason(obj, STALLED) == (case.stalled or "")
    assert cond.has(obj, STALLED) == (case.stalled is not None)
    assert done.observed_generation_advanced == case.advances
    assert obj.status.observed_generation == (2 if case.advances else 1)
    assert done.result == case.result
    if ready is not None:
        assert ready.observed_generation == 2
    # kstatus: never Stalled and Reconciling at once after finalisation.
    assert not (cond.is_true(obj, STALLED) and cond.is_true(obj, RECONCILING))


@pytest.mark.parametrize(
    "outcome",
    [Success(), Failed("GitOperationFailed", FETCH_ERR), Stalling("URLInvalid", "x"), RequeueNow()],
    ids=["success", "failure", "stalled", "requeue"],
)
def test_requested_at_is_recorded_whatever_the_outcome(outcome: Outcome) -> None:
    # summarize.RecordReconcileReq runs as a processor before anything else, on every outcome.
    obj = repo(IN_PROGRESS, STORED_OK, requested_at="2026-11-24T16:19:59.123456789Z")
    finalize(obj, outcome, GIT_REPOSITORY_READY, interval=INTERVAL, clock=lambda: NOW)
    assert obj.status.last_handled_reconcile_at == "2026-11-24T16:19:59.123456789Z"


def test_no_requested_at_leaves_last_handled_alone() -> None:
    obj = repo(STORED_OK)
    obj.status.last_handled_reconcile_at = "earlier"
    finalize(obj, Success(), GIT_REPOSITORY_READY, interval=INTERVAL, clock=lambda: NOW)
    assert obj.status.last_handled_reconcile_at == "earlier"


def test_retry_moves_reconciling_transition_time_fresh_progress_resets_reason() -> None:
    # The reason flips to ProgressingWithRetry through Set, so its transition time moves; the
    # next attempt's ProgressiveStatus brings back Progressing.
    obj = repo(IN_PROGRESS, c(FETCH_FAILED, "True", "GitOperationFailed", FETCH_ERR))
    finalize(
        obj,
        Failed("GitOperationFailed", FETCH_ERR),
        GIT_REPOSITORY_READY,
        interval=60.0,
        clock=lambda: NOW,
    )
    retry = cond.get(obj, RECONCILING)
    assert retry is not None
    assert (retry.reason, retry.message, retry.last_transition_time) == (
        PROGRESSING_WITH_RETRY,
        "processing object: new generation 1 -> 2",
        NOW,
    )
    cond.progressive_status(obj, PROGRESSING, "reconciliation in progress", clock=lambda: NOW)
    assert cond.get_reason(obj, RECONCILING) == PROGRESSING


def test_unchanged_ready_keeps_its_transition_time() -> None:
    obj = repo(c(READY, "True", "Succeeded", STORED), STORED_OK)
    finalize(obj, Success(), GIT_REPOSITORY_READY, interval=INTERVAL, clock=lambda: NOW)
    assert cond.get(obj, READY).last_transition_time == OLD  # type: ignore[union-attr]


def test_encoded_status_uses_flux_field_names() -> None:
    obj = repo(
        c(READY, "Unknown", PROGRESSING, "building artifact"),
        IN_PROGRESS,
        STORED_OK,
        requested_at="token-1",
    )
    finalize(obj, Success(), GIT_REPOSITORY_READY, interval=INTERVAL, clock=lambda: NOW)
    status = obj.to_dict()["status"]
    assert status["observedGeneration"] == 2
    assert status["lastHandledReconcileAt"] == "token-1"
    assert status["conditions"] == [
        {
            "type": "Ready",
            "status": "True",
            "lastTransitionTime": NOW,
            "reason": "Succeeded",
            "message": STORED,
            "observedGeneration": 2,
        },
        {
            "type": "ArtifactInStorage",
            "status": "True",
            "lastTransitionTime": OLD,
            "reason": "Succeeded",
            "message": STORED,
            "observedGeneration": 1,
        },
    ]
