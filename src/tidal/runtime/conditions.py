"""Status conditions as Flux's controllers read, write and summarise them (fluxcd/pkg
``runtime/conditions``).

Getters accept either an object (anything with ``.status.conditions``) or a plain list of
conditions. Setters take the object, because Flux stamps every condition it writes with the
object's ``metadata.generation``.

Rules kept from Flux, because clients (``flux get``, kstatus, dashboards) see their effects:

- Setting a condition whose status, reason and message are unchanged keeps its
  ``lastTransitionTime``; a change of any of the three moves it to now (UTC, whole seconds).
  ``observedGeneration`` is always rewritten to the object's generation.
- After every set the list is re-sorted: Stalled, Reconciling, Ready first, then the others by
  ``observedGeneration`` (newest first) and type. Deleting does not re-sort.
- Reconciling and Stalled are abnormal-true: present only while True, and each one removes the
  other when marked.
- A summary condition (Ready) is merged from the others by status and polarity; see ``merge``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Final, Literal, Protocol, TypeAlias

import msgspec

from tidal.api.meta import PROGRESSING, READY, RECONCILING, STALLED, Condition

Status: TypeAlias = Literal["True", "False", "Unknown"]
TRUE: Final = "True"
FALSE: Final = "False"
UNKNOWN: Final = "Unknown"

Clock: TypeAlias = Callable[[], str]


def utc_now() -> str:
    """Now in RFC 3339, UTC, truncated to the second as Flux stores lastTransitionTime."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Metadata(Protocol):
    @property
    def generation(self) -> int: ...


class _Status(Protocol):
    conditions: list[Condition]


class Conditioned(Protocol):
    """An API object whose status carries conditions (meta.ObjectWithConditions)."""

    @property
    def metadata(self) -> _Metadata: ...

    @property
    def status(self) -> _Status: ...


Source: TypeAlias = Conditioned | Sequence[Condition]


def _list(source: Source) -> Sequence[Condition]:
    if isinstance(source, Sequence):
        return source
    return source.status.conditions


# --- getters ---------------------------------------------------------------------------------


def get(source: Source, type_: str) -> Condition | None:
    for c in _list(source):
        if c.type == type_:
            return c
    return None


def has(source: Source, type_: str) -> bool:
    return get(source, type_) is not None


def is_true(source: Source, type_: str) -> bool:
    c = get(source, type_)
    return c is not None and c.status == TRUE


def is_false(source: Source, type_: str) -> bool:
    c = get(source, type_)
    return c is not None and c.status == FALSE


def is_unknown(source: Source, type_: str) -> bool:
    """True when Unknown or absent: an absent condition says nothing either way."""
    c = get(source, type_)
    return c is None or c.status == UNKNOWN


def get_reason(source: Source, type_: str) -> str:
    c = get(source, type_)
    return c.reason if c is not None else ""


def get_message(source: Source, type_: str) -> str:
    c = get(source, type_)
    return c.message if c is not None else ""


def is_stalled(source: Source) -> bool:
    """Stalled=True and not Reconciling=True (both at once is not a valid kstatus state)."""
    return is_true(source, STALLED) and not is_true(source, RECONCILING)


def is_reconciling(source: Source) -> bool:
    return is_true(source, RECONCILING) and not is_true(source, STALLED)


def is_ready(source: Source) -> bool:
    """Ready=True and neither stalled nor reconciling: what kstatus calls Current."""
    return not is_stalled(source) and not is_reconciling(source) and is_true(source, READY)


# --- setters ---------------------------------------------------------------------------------


def _format(message: str, args: tuple[object, ...]) -> str:
    # Without args the message is taken as already formatted, so a literal '%' in an error
    # text cannot break it (Flux passes such text through "%s" for the same reason).
    return message % args if args else message


def new(type_: str, status: Status, reason: str, message: str, *args: object) -> Condition:
    """A condition not yet on any object: no transition time, no generation."""
    return Condition(
        type=type_,
        status=status,
        last_transition_time="",
        reason=reason,
        message=_format(message, args),
    )


def _same_state(a: Condition, b: Condition) -> bool:
    return (a.type, a.status, a.reason, a.message) == (b.type, b.status, b.reason, b.message)


# Stalled, Reconciling and Ready lead, in this order, so `kubectl get -o yaml` and the flux CLI
# show the state of the object before the details.
_LEADING: Final = {STALLED: 0, RECONCILING: 1, READY: 2}


def _order(c: Condition) -> tuple[int, int, str]:
    lead = _LEADING.get(c.type)
    if lead is not None:
        return (lead, 0, "")
    return (len(_LEADING), -c.observed_generation, c.type)


def sort(conditions: list[Condition]) -> None:
    """Put conditions in Flux's display order, in place."""
    conditions.sort(key=_order)


def set_condition(obj: Conditioned, condition: Condition, *, clock: Clock = utc_now) -> None:
    """Add or update ``condition`` on ``obj`` (a copy is stored; the argument is not kept)."""
    c = msgspec.structs.replace(condition, observed_generation=obj.metadata.generation)
    conditions = obj.status.conditions
    for i, existing in enumerate(conditions):
        if existing.type != c.type:
            continue
        if not _same_state(existing, c):
            c.last_transition_time = clock()
            conditions[i] = c
        else:
            c.last_transition_time = existing.last_transition_time
            if existing.observed_generation != c.observed_generation:
                conditions[i] = c
        break
    else:
        # A caller may carry a condition over from elsewhere with its own transition time.
        if not c.last_transition_time:
            c.last_transition_time = clock()
        conditions.append(c)
    sort(conditions)


def mark_true(
    obj: Conditioned, type_: str, reason: str, message: str, *args: object, clock: Clock = utc_now
) -> None:
    set_condition(obj, new(type_, TRUE, reason, message, *args), clock=clock)


def mark_false(
    obj: Conditioned, type_: str, reason: str, message: str, *args: object, clock: Clock = utc_now
) -> None:
    set_condition(obj, new(type_, FALSE, reason, message, *args), clock=clock)


def mark_unknown(
    obj: Conditioned, type_: str, reason: str, message: str, *args: object, clock: Clock = utc_now
) -> None:
    set_condition(obj, new(type_, UNKNOWN, reason, message, *args), clock=clock)


def delete(obj: Conditioned, type_: str) -> None:
    obj.status.conditions[:] = [c for c in obj.status.conditions if c.type != type_]


def mark_reconciling(
    obj: Conditioned, reason: str, message: str, *args: object, clock: Clock = utc_now
) -> None:
    """Reconciling=True; an object making progress is by definition not stalled."""
    delete(obj, STALLED)
    mark_true(obj, RECONCILING, reason, message, *args, clock=clock)


def mark_stalled(
    obj: Conditioned, reason: str, message: str, *args: object, clock: Clock = utc_now
) -> None:
    """Stalled=True; a stalled object is by definition not progressing."""
    delete(obj, RECONCILING)
    mark_true(obj, STALLED, reason, message, *args, clock=clock)


def progressive_status(
    obj: Conditioned,
    reason: str,
    message: str,
    *args: object,
    drift: bool = False,
    clock: Clock = utc_now,
) -> None:
    """Report work in progress (fluxcd/pkg runtime/reconcile.ProgressiveStatus).

    Always marks Reconciling. Ready follows to Unknown with the same reason and message only when
    it has no value yet or ``drift`` says the last result no longer holds; otherwise the last
    verdict stays visible while the new attempt runs.
    """
    mark_reconciling(obj, reason, message, *args, clock=clock)
    if drift or is_unknown(obj, READY):
        mark_unknown(obj, READY, reason, message, *args, clock=clock)


def progressing(obj: Conditioned, observed_generation: int) -> None:
    """The progressive status a source reconcile starts with (source-controller's first step):
    a new generation is named as such."""
    generation = obj.metadata.generation
    if observed_generation != generation:
        progressive_status(
            obj,
            PROGRESSING,
            "processing object: new generation %d -> %d",
            observed_generation,
            generation,
        )
    else:
        progressive_status(obj, PROGRESSING, "reconciliation in progress")


# --- summary ---------------------------------------------------------------------------------


def _merge_priority(status: str, negative: bool) -> int:
    # An abnormal condition that holds beats a normal one that fails; both beat everything that
    # is fine; Unknown says least.
    if status == TRUE:
        return 0 if negative else 2
    if status == FALSE:
        return 3 if negative else 1
    return 4


def merge(
    conditions: Iterable[Condition],
    target: str,
    *,
    priority: Sequence[str] = (),
    negative_polarity: Iterable[str] = (),
) -> Condition | None:
    """One condition of type ``target`` standing for ``conditions``, or None when there are none.

    The conditions are grouped by (status, polarity) and the most important group decides:
    True-negative (P0), False-positive (P1), True-positive (P2), False-negative (P3), Unknown
    (P4). The target's status is the group's status, inverted when the group's polarity differs
    from the target's; Unknown stays Unknown. Reason and message are copied from one condition
    of that group: the first of ``priority`` present in it, else the first in display order.
    """
    negatives = frozenset(negative_polarity)
    groups: dict[int, list[Condition]] = {}
    for c in conditions:
        groups.setdefault(_merge_priority(c.status, c.type in negatives), []).append(c)
    if not groups:
        return None
    top_priority = min(groups)
    top = sorted(groups[top_priority], key=_order)
    chosen = next((c for p in priority for c in top if c.type == p), top[0])

    status: Status
    if top_priority == 4:
        status = UNKNOWN
    else:
        group_true = top_priority in (0, 2)
        group_negative = top_priority in (0, 3)
        holds = group_true if group_negative == (target in negatives) else not group_true
        status = TRUE if holds else FALSE
    return new(target, status, chosen.reason, chosen.message)


def summary(
    source: Source,
    target: str,
    *,
    conditions: Sequence[str] | None = None,
    negative_polarity: Iterable[str] = (),
) -> Condition | None:
    """``merge`` over the object's own conditions: those listed in ``conditions`` (which is also
    the priority order), or every one but ``target`` when no list is given."""
    in_scope = [
        c
        for c in _list(source)
        if c.type != target and (conditions is None or c.type in conditions)
    ]
    return merge(in_scope, target, priority=conditions or (), negative_polarity=negative_polarity)


def set_summary(
    obj: Conditioned,
    target: str,
    *,
    conditions: Sequence[str] | None = None,
    negative_polarity: Iterable[str] = (),
    clock: Clock = utc_now,
) -> None:
    """Write the summary condition; with nothing in scope the target is left as it was."""
    merged = summary(obj, target, conditions=conditions, negative_polarity=negative_polarity)
    if merged is not None:
        set_condition(obj, merged, clock=clock)
