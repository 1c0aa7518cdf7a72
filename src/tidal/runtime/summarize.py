"""The last step of a source reconcile: turn what happened into final conditions, status and the
work-queue verdict, as source-controller does (``internal/reconcile`` ComputeReconcileResult and
``internal/reconcile/summarize`` SummarizeAndPatch).

The sub-reconcilers have already written the detailed conditions (FetchFailed, ArtifactInStorage,
...) with their reasons and messages; this step only settles Reconciling, Stalled and Ready,
``status.observedGeneration`` and ``status.lastHandledReconcileAt``, in Flux's order:

1. ``lastHandledReconcileAt`` takes the requestedAt annotation's value whenever the annotation is
   present, whatever the outcome, so ``flux reconcile`` sees its request answered even by a
   failure.
2. Success removes Reconciling. A Reconciling that survives means the attempt will be retried:
   its reason becomes ProgressingWithRetry.
3. A stalling error marks Stalled (removing Reconciling) and stops retrying; every other outcome
   removes Stalled. observedGeneration advances on success, on "nothing to do", on an ignorable
   error and on a stall, never on a retryable failure or an immediate requeue, and only when the
   object has at least one condition (an object never observed has nothing to vouch for).
4. Ready is merged from the kind's conditions in priority order (see ``conditions.merge``); a
   bipolar condition that is False (SourceVerified) then overrides it.
5. A success that still leaves the object not ready becomes an error carrying Ready's message, so
   the object is retried with backoff instead of waiting a whole interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, TypeAlias

import msgspec

from tidal.api.meta import (
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
)
from tidal.runtime import conditions
from tidal.runtime.conditions import Clock, utc_now
from tidal.runtime.queue import DEFAULT_MIN_RETRY_DELAY
from tidal.runtime.workers import Result


class _Metadata(Protocol):
    @property
    def generation(self) -> int: ...

    @property
    def annotations(self) -> Mapping[str, str]: ...


class _Status(Protocol):
    conditions: list[Condition]
    observed_generation: int
    last_handled_reconcile_at: str


class Reconcilable(Protocol):
    """A Flux object with conditions, observedGeneration and lastHandledReconcileAt."""

    @property
    def metadata(self) -> _Metadata: ...

    @property
    def status(self) -> _Status: ...


# --- outcomes of the sub-reconcilers ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Success:
    """Every step succeeded; come back at the interval (sreconcile.ResultSuccess)."""


@dataclass(frozen=True, slots=True)
class RequeueNow:
    """Stopped early to come straight back, e.g. right after adding the finalizer
    (sreconcile.ResultRequeue)."""


@dataclass(frozen=True, slots=True)
class NoRequeue:
    """Nothing to do until the object changes: suspended, or deletion finished
    (sreconcile.ResultEmpty without error)."""


@dataclass(frozen=True, slots=True)
class Failed:
    """A step failed and may succeed on a retry (serror.Generic or any plain error).

    ``ignore`` marks a failure that is really a no-op (serror.Generic with Ignore): the attempt
    counts as done and the object comes back at its interval.
    """

    reason: str
    message: str
    ignore: bool = False


@dataclass(frozen=True, slots=True)
class Waiting:
    """A dependency is not there yet; look again after ``requeue_after`` seconds, or at the
    interval when None (serror.Waiting)."""

    reason: str
    message: str
    requeue_after: float | None = None


@dataclass(frozen=True, slots=True)
class Stalling:
    """Retrying cannot help until the spec changes (serror.Stalling), e.g. an invalid URL."""

    reason: str
    message: str


Outcome: TypeAlias = Success | RequeueNow | NoRequeue | Failed | Waiting | Stalling


# --- per-kind configuration -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadySummary:
    """How a kind's Ready condition is derived (summarize.Conditions in source-controller).

    ``summarize`` is in priority order: when several conditions are equally bad, the first one
    listed gives Ready its reason and message.
    """

    summarize: tuple[str, ...]
    negative_polarity: tuple[str, ...]
    # Conditions this controller writes; a status patch lets them win over concurrent writers.
    owned: tuple[str, ...]
    # Conditions meaningful both ways (True = ok, False = failed) that the polarity merge cannot
    # express; the first one that is False decides Ready.
    bipolarity: tuple[str, ...] = ()
    target: str = READY


GIT_REPOSITORY_READY = ReadySummary(
    summarize=(
        STORAGE_OPERATION_FAILED,
        FETCH_FAILED,
        INCLUDE_UNAVAILABLE,
        ARTIFACT_OUTDATED,
        ARTIFACT_IN_STORAGE,
        SOURCE_VERIFIED,
        STALLED,
        RECONCILING,
    ),
    negative_polarity=(
        STORAGE_OPERATION_FAILED,
        FETCH_FAILED,
        INCLUDE_UNAVAILABLE,
        ARTIFACT_OUTDATED,
        STALLED,
        RECONCILING,
    ),
    owned=(
        STORAGE_OPERATION_FAILED,
        FETCH_FAILED,
        INCLUDE_UNAVAILABLE,
        ARTIFACT_OUTDATED,
        ARTIFACT_IN_STORAGE,
        SOURCE_VERIFIED,
        READY,
        RECONCILING,
        STALLED,
    ),
    bipolarity=(SOURCE_VERIFIED,),
)


HELM_REPOSITORY_READY = ReadySummary(
    summarize=(
        STORAGE_OPERATION_FAILED,
        FETCH_FAILED,
        ARTIFACT_OUTDATED,
        ARTIFACT_IN_STORAGE,
        STALLED,
        RECONCILING,
    ),
    negative_polarity=(
        STORAGE_OPERATION_FAILED,
        FETCH_FAILED,
        ARTIFACT_OUTDATED,
        STALLED,
        RECONCILING,
    ),
    owned=(
        STORAGE_OPERATION_FAILED,
        FETCH_FAILED,
        ARTIFACT_OUTDATED,
        ARTIFACT_IN_STORAGE,
        READY,
        RECONCILING,
        STALLED,
    ),
)


# --- finalisation ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finalized:
    """What to tell the work queue, and whether status.observedGeneration moved."""

    result: Result
    observed_generation_advanced: bool


def _record_reconcile_request(obj: Reconcilable) -> None:
    requested = obj.metadata.annotations.get(RECONCILE_REQUEST_ANNOTATION)
    if requested is not None:
        obj.status.last_handled_reconcile_at = requested


def _settle_reconciling_and_stalled(obj: Reconcilable, outcome: Outcome, clock: Clock) -> bool:
    """Apply step 2 and 3; return whether observedGeneration should advance."""
    if isinstance(outcome, Success):
        conditions.delete(obj, RECONCILING)
    reconciling = conditions.get(obj, RECONCILING)
    if reconciling is not None and conditions.is_reconciling(obj):
        retry = msgspec.structs.replace(reconciling, reason=PROGRESSING_WITH_RETRY)
        conditions.set_condition(obj, retry, clock=clock)

    # "Observed" is judged where Flux adds the observedGeneration patch option, which for an
    # ignored error is after Stalled is gone and for success before.
    match outcome:
        case Stalling(reason=reason, message=message):
            conditions.mark_stalled(obj, reason, message, clock=clock)
            return True
        case Failed(ignore=True):
            conditions.delete(obj, STALLED)
            observed = bool(obj.status.conditions)
            conditions.delete(obj, RECONCILING)
            return observed
        case Success() | NoRequeue():
            observed = bool(obj.status.conditions)
            conditions.delete(obj, STALLED)
            return observed
        case _:
            conditions.delete(obj, STALLED)
            return False


def _error(outcome: Outcome) -> str | None:
    if isinstance(outcome, Failed) and not outcome.ignore:
        return outcome.message
    return None


def _requeue(outcome: Outcome, interval: float, error: str | None) -> Result:
    if error is not None:
        return Result.failure(error)
    match outcome:
        case Waiting(requeue_after=after) if after:
            # An explicit wait is a plain delay: Flux jitters only the success interval.
            return Result.retry_after(after)
        case Success() | Waiting() | Failed():
            return Result.success(interval)
        case RequeueNow():
            # controller-runtime puts the key back through the rate limiter; its first step is
            # the minimum retry delay, which is what a single immediate requeue amounts to.
            return Result.retry_after(DEFAULT_MIN_RETRY_DELAY)
        case _:
            return Result.success(None)


def _comes_back_at_interval(outcome: Outcome) -> bool:
    match outcome:
        case Success() | Failed(ignore=True):
            return True
        case Waiting(requeue_after=after):
            return not after
        case _:
            return False


def finalize(
    obj: Reconcilable,
    outcome: Outcome,
    config: ReadySummary,
    *,
    interval: float,
    clock: Clock = utc_now,
) -> Finalized:
    """Settle ``obj``'s status after a reconcile that ended in ``outcome``; ``interval`` is the
    object's spec.interval in seconds (the worker adds the jitter)."""
    _record_reconcile_request(obj)
    advance = _settle_reconciling_and_stalled(obj, outcome, clock)
    error = _error(outcome)

    conditions.set_summary(
        obj,
        config.target,
        conditions=config.summarize,
        negative_polarity=config.negative_polarity,
        clock=clock,
    )
    bipolar = (conditions.get(obj, t) for t in config.bipolarity)
    failed = next((c for c in bipolar if c is not None and c.status == conditions.FALSE), None)
    if failed is not None:
        conditions.mark_false(obj, config.target, failed.reason, failed.message, clock=clock)

    if (
        error is None
        and not conditions.is_stalled(obj)
        and _comes_back_at_interval(outcome)
        and not conditions.is_ready(obj)
    ):
        error = conditions.get_message(obj, config.target)

    if advance:
        obj.status.observed_generation = obj.metadata.generation
    return Finalized(
        result=_requeue(outcome, interval, error), observed_generation_advanced=advance
    )
