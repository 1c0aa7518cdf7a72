"""The release loop of a HelmRelease: helm-controller's AtomicRelease in Python.

Each turn reads the release's state (tidal.helmrelease.state) and picks the next action:
install, upgrade, test, rollback or uninstall remediation, or unlock. An action runs through
tidal.helm.actions, its outcome becomes conditions (Released, TestSuccess, Remediated), events
and history snapshots, and the loop goes on until nothing is left to do, an action repeats
(the release did not converge: retry later), or a remediation ran (stop and requeue). Messages,
reasons and counters are helm-controller's, so alerts and dashboards read the same.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from tidal.api.base import format_duration, parse_duration
from tidal.api.helmrelease import (
    DRIFT_DETECTED,
    DRIFTED,
    INSTALL_FAILED,
    INSTALL_SUCCEEDED,
    MISSING_ROLLBACK_TARGET,
    NO_DRIFT_DETECTED,
    RELEASED,
    REMEDIATED,
    RETRIES_EXCEEDED,
    ROLLBACK_FAILED,
    ROLLBACK_SUCCEEDED,
    TEST_FAILED,
    TEST_SUCCEEDED,
    TESTED,
    UNINSTALL_FAILED,
    UNINSTALL_SUCCEEDED,
    UPGRADE_FAILED,
    UPGRADE_SUCCEEDED,
    HelmRelease,
    HelmSnapshot,
)
from tidal.api.meta import PROGRESSING, PROGRESSING_WITH_RETRY, READY, RECONCILING, STALLED
from tidal.helm import actions, storage
from tidal.helm.chart import LoadedChart
from tidal.helm.render import Rendered
from tidal.helm.storage import Release
from tidal.helmrelease import drift as drift_mod
from tidal.helmrelease import history
from tidal.helmrelease.digests import (
    common_metadata_digest,
    config_digest,
    post_renderers_digest,
)
from tidal.helmrelease.remediation import (
    INSTALL,
    ROLLBACK,
    UNINSTALL,
    UPGRADE,
    Remediation,
    active_remediation,
    active_retry,
    clear_failures,
    install_remediation,
    install_retry,
    upgrade_remediation,
    upgrade_retry,
)
from tidal.helmrelease.state import PENDING, State, StateError, Status, determine
from tidal.kube.client import ApiError, Kube
from tidal.runtime import conditions
from tidal.ssa.changeset import ChangeSet
from tidal.ssa.manager import StatusReader

log = logging.getLogger(__name__)

FORCE_ANNOTATION: Final = "reconcile.fluxcd.io/forceAt"
RESET_ANNOTATION: Final = "reconcile.fluxcd.io/resetAt"
GROUP_KEY: Final = "helm.toolkit.fluxcd.io"

FMT_INSTALL_FAILURE = (
    "Helm install failed for release {ns}/{name} with chart {chart}@{version}: {err}"
)
FMT_INSTALL_SUCCESS = "Helm install succeeded for release {release} with chart {chart}"
FMT_UPGRADE_FAILURE = (
    "Helm upgrade failed for release {ns}/{name} with chart {chart}@{version}: {err}"
)
FMT_UPGRADE_SUCCESS = "Helm upgrade succeeded for release {release} with chart {chart}"
FMT_TEST_PENDING = "Helm release {release} with chart {chart} is awaiting tests"
FMT_TEST_FAILURE = "Helm test failed for release {release} with chart {chart}: {err}"
FMT_TEST_SUCCESS = "Helm test succeeded for release {release} with chart {chart}: {hooks}"
FMT_ROLLBACK_FAILURE = (
    "Helm rollback to previous release {release} with chart {chart} failed: {err}"
)
FMT_ROLLBACK_SUCCESS = "Helm rollback to previous release {release} with chart {chart} succeeded"
FMT_UNINSTALL_REMEDIATION_FAILURE = (
    "Helm uninstall remediation for release {release} with chart {chart} failed: {err}"
)
FMT_UNINSTALL_REMEDIATION_SUCCESS = (
    "Helm uninstall remediation for release {release} with chart {chart} succeeded"
)
FMT_UNINSTALL_FAILURE = "Helm uninstall failed for release {release} with chart {chart}: {err}"
FMT_UNINSTALL_SUCCESS = "Helm uninstall succeeded for release {release} with chart {chart}"
FMT_UNLOCK_SUCCESS = "Unlocked Helm release {release} with chart {chart} in {status} state"
FMT_UNLOCK_FAILURE = (
    "Unlock of Helm release {release} with chart {chart} in {status} state failed: {err}"
)
PENDING_RELEASE: Final = "PendingRelease"
AWAITING_TESTS: Final = "AwaitingTests"


class Kind(enum.StrEnum):
    RELEASE = "release"
    TEST = "test"
    REMEDIATE = "remediate"
    UNLOCK = "unlock"
    DRIFT_CORRECTION = "drift correction"


class Outcome(enum.Enum):
    DONE = "done"  # in sync: requeue at the interval
    RETRY_AFTER_INTERVAL = "retry"  # RetryOnFailure: requeue at its retry interval
    MUST_REQUEUE = "requeue"  # try again right away (the next turn may remediate)


class ReleaseError(Exception):
    """The loop stopped with an error; `terminal` ones (retries exhausted, nothing to roll back
    to) are Stalled and wait for a change of the spec."""

    def __init__(self, message: str, *, terminal: bool = False) -> None:
        super().__init__(message)
        self.terminal = terminal


Render = Callable[[int, bool, bool], Awaitable[Rendered]]
Emit = Callable[[str, str, str, Mapping[str, str]], None]  # severity, reason, message, metadata


@dataclass
class Request:
    """Everything one reconciliation of a HelmRelease releases with."""

    obj: HelmRelease
    kube: Kube
    chart: LoadedChart
    values: dict[str, Any]
    render: Render  # (revision, is_install, is_upgrade) -> the post-rendered release
    emit: Emit
    save_status: Callable[[], Awaitable[None]]
    release_name: str
    namespace: str
    storage_namespace: str
    default_to_retry: bool = False
    inventory: Callable[[Release], None] = field(default=lambda _r: None)
    # --override-manager: fields they own are taken back before drift is judged.
    override_managers: tuple[str, ...] = ()
    # spec.healthCheckExprs as status readers for the waits of install, upgrade and rollback.
    health_readers: Mapping[tuple[str, str], StatusReader] = field(default_factory=dict)
    # Filled in by the loop when the release drifted: what the correction step undoes.
    drift: list[drift_mod.Change] = field(default_factory=list)
    drifted: Release | None = None
    # Helm's stored revisions of the release (oldest first), read at the start of each turn.
    revisions: list[Release] = field(default_factory=list)


# -- conditions and events -----------------------------------------------------------------


def _meta(revision: str, token: str, app_version: str = "", oci: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if revision:
        out[f"{GROUP_KEY}/revision"] = revision
    if token:
        out[f"{GROUP_KEY}/token"] = token
    if app_version:
        out[f"{GROUP_KEY}/app-version"] = app_version
    if oci:
        out[f"{GROUP_KEY}/oci-digest"] = oci
    return out


def _snapshot_meta(s: HelmSnapshot) -> dict[str, str]:
    return _meta(s.chart_version, s.config_digest, s.app_version, s.oci_digest)


def _request_meta(req: Request) -> dict[str, str]:
    return _meta(
        req.chart.version,
        config_digest(req.values),
        req.chart.app_version,
        req.obj.status.last_attempted_revision_digest,
    )


def _test_enabled(obj: HelmRelease) -> bool:
    return obj.spec.test is not None and obj.spec.test.enable


def _test_ignore_failures(obj: HelmRelease) -> bool:
    return obj.spec.test is not None and obj.spec.test.ignore_failures


def summarize(obj: HelmRelease) -> None:
    """Ready from Remediated, TestSuccess and Released, as helm-controller summarises them."""
    order = [REMEDIATED, RELEASED]
    if _test_enabled(obj) and not _test_ignore_failures(obj):
        order = [REMEDIATED, TESTED, RELEASED]
    if not _test_enabled(obj):
        conditions.delete(obj, TESTED)
    conds = obj.status.conditions
    if not conds:
        return
    candidates = [c for c in conds if c.type in order]
    if not candidates:
        return
    newest = max(c.observed_generation for c in candidates)
    best = min(
        (c for c in candidates if c.observed_generation == newest),
        key=lambda c: order.index(c.type),
    )
    status = "False" if best.type == REMEDIATED else best.status
    if status == "True":
        conditions.delete(obj, STALLED)
    conditions.set_condition(
        obj,
        conditions.new(READY, status, best.reason, "%s", best.message),
    )
    obj.status.observed_post_renderers_digest = post_renderers_digest(
        obj.spec.post_renderers or None
    )
    obj.status.observed_common_metadata_digest = common_metadata_digest(obj.spec.common_metadata)


def _replace_condition(obj: HelmRelease, target: str, to: str, reason: str, message: str) -> None:
    if conditions.get(obj, target) is not None:
        conditions.delete(obj, target)
        conditions.mark_true(obj, to, reason, "%s", message)


# -- the actions ---------------------------------------------------------------------------


def _action_options(
    obj: HelmRelease,
    action: str,
    readers: Mapping[tuple[str, str], StatusReader] | None = None,
) -> actions.ActionOptions:
    """Helm's options for `action` from the spec, defaulted as helm-controller does; custom
    health readers only with the poller wait strategy, as Flux uses them."""
    options = _spec_options(obj, action)
    poller = obj.spec.wait_strategy is None or obj.spec.wait_strategy.name == "poller"
    if readers and poller:
        options = dataclasses.replace(options, health_readers=dict(readers))
    return options


def _spec_options(obj: HelmRelease, action: str) -> actions.ActionOptions:
    spec = obj.spec
    default = spec.timeout_seconds()
    max_history = spec.effective_max_history()
    if action == INSTALL:
        i = spec.install
        crds = i.crds_policy() if i else "Create"
        return actions.ActionOptions(
            timeout=parse_duration(i.timeout) if i and i.timeout else default,
            wait=not (i and i.disable_wait),
            wait_for_jobs=not (i and i.disable_wait_for_jobs),
            disable_hooks=bool(i and i.disable_hooks),
            take_ownership=not (i and i.disable_take_ownership),
            server_side_apply=True if not i or i.server_side_apply is None else i.server_side_apply,
            crds=crds,  # type: ignore[arg-type]
            create_namespace=bool(i and i.create_namespace),
            max_history=max_history,
        )
    if action == UPGRADE:
        u = spec.upgrade
        mode = u.server_side_apply if u else None
        return actions.ActionOptions(
            timeout=parse_duration(u.timeout) if u and u.timeout else default,
            wait=not (u and u.disable_wait),
            wait_for_jobs=not (u and u.disable_wait_for_jobs),
            disable_hooks=bool(u and u.disable_hooks),
            take_ownership=not (u and u.disable_take_ownership),
            server_side_apply=None if mode in (None, "auto") else mode == "enabled",
            force=bool(u and u.force),
            cleanup_on_fail=bool(u and u.cleanup_on_fail),
            crds=(u.crds if u and u.crds else "Skip"),
            max_history=max_history,
        )
    if action == ROLLBACK:
        r = spec.rollback
        mode = r.server_side_apply if r else None
        return actions.ActionOptions(
            timeout=parse_duration(r.timeout) if r and r.timeout else default,
            wait=not (r and r.disable_wait),
            wait_for_jobs=not (r and r.disable_wait_for_jobs),
            disable_hooks=bool(r and r.disable_hooks),
            server_side_apply=None if mode in (None, "auto") else mode == "enabled",
            force=bool(r and r.force),
            cleanup_on_fail=bool(r and r.cleanup_on_fail),
            max_history=max_history,
        )
    if action == "test":
        t = spec.test
        return actions.ActionOptions(
            timeout=parse_duration(t.timeout) if t and t.timeout else default,
            max_history=max_history,
        )
    un = spec.uninstall
    return actions.ActionOptions(
        timeout=parse_duration(un.timeout) if un and un.timeout else default,
        wait=not (un and un.disable_wait),
        disable_hooks=bool(un and un.disable_hooks),
        max_history=max_history,
    )


def timeout_for(obj: HelmRelease, name: str) -> float:
    return _action_options(obj, name).timeout


async def _history_after(req: Request, since: int) -> list[Release]:
    """The stored revisions from `since` on: what an action may have written (a new revision,
    and the one it superseded)."""
    try:
        revisions = await storage.history(req.kube, req.storage_namespace, req.release_name)
    except ApiError:
        return []
    return [r for r in revisions if r.version >= since]


def _latest(req: Request) -> Release | None:
    """The newest stored revision, as read at the start of this turn of the loop."""
    return req.revisions[-1] if req.revisions else None


def _stored(req: Request, version: int) -> Release | None:
    return next((r for r in req.revisions if r.version == version), None)


def _record(req: Request, written: list[Release], action: str) -> None:
    obj = req.obj
    obj.status.history = history.record(
        obj.status.history,
        written,
        action=action,
        oci_digest=obj.status.last_attempted_revision_digest,
    )
    if written:
        req.inventory(max(written, key=lambda r: r.version))


@dataclass(frozen=True)
class _ReleaseAction:
    """What tells an install from an upgrade in helm-controller's Install/Upgrade reconcilers."""

    name: str  # install | upgrade
    failure_format: str
    success_format: str
    failed_reason: str
    succeeded_reason: str
    remediation: Callable[[HelmRelease], Remediation]
    retry: Callable[[HelmRelease, bool], float | None]


_INSTALL = _ReleaseAction(
    INSTALL, FMT_INSTALL_FAILURE, FMT_INSTALL_SUCCESS, INSTALL_FAILED, INSTALL_SUCCEEDED,
    install_remediation, install_retry,
)  # fmt: skip
_UPGRADE = _ReleaseAction(
    UPGRADE, FMT_UPGRADE_FAILURE, FMT_UPGRADE_SUCCESS, UPGRADE_FAILED, UPGRADE_SUCCEEDED,
    upgrade_remediation, upgrade_retry,
)  # fmt: skip


def _begin(req: Request, action: _ReleaseAction) -> float:
    obj = req.obj
    obj.status.last_attempted_release_action = action.name  # type: ignore[assignment]
    conditions.delete(obj, TESTED)
    conditions.delete(obj, REMEDIATED)
    return time.monotonic()


async def _conclude(
    req: Request, action: _ReleaseAction, error: str | None, written: list[Release], made: bool
) -> None:
    """Record what the action wrote, and its outcome as conditions, events and counters."""
    obj = req.obj
    _record(req, written if made else [], action.name)
    try:
        if error is not None:
            message = action.failure_format.format(
                ns=req.namespace,
                name=req.release_name,
                chart=req.chart.name,
                version=req.chart.version,
                err=error.strip(),
            )
            obj.status.failures += 1
            conditions.mark_false(obj, RELEASED, action.failed_reason, "%s", message)
            req.emit("warning", action.failed_reason, message, _request_meta(req))
            if not made:
                raise ReleaseError(error)
            action.remediation(obj).increment(obj)
            return
        cur = obj.status.history[0]
        message = action.success_format.format(
            release=cur.full_release_name(), chart=history.chart_name(cur)
        )
        conditions.mark_true(obj, RELEASED, action.succeeded_reason, "%s", message)
        if _test_enabled(obj) and not history.has_been_tested(cur):
            conditions.mark_unknown(
                obj,
                TESTED,
                AWAITING_TESTS,
                "%s",
                FMT_TEST_PENDING.format(
                    release=cur.full_release_name(), chart=history.chart_name(cur)
                ),
            )
        if action.retry(obj, req.default_to_retry) is not None:
            clear_failures(obj)
        req.emit("normal", action.succeeded_reason, message, _snapshot_meta(cur))
    finally:
        summarize(obj)


def _failure_text(e: Exception) -> str:
    # A render, post-render or storage failure fails the action as Helm's own errors do.
    return str(e) or type(e).__name__


async def _install(req: Request) -> None:
    obj = req.obj
    started = _begin(req, _INSTALL)
    obj.status.history = []
    # Helm's install always makes revision 1 (a kept, uninstalled history is replaced).
    revision = 1
    error: str | None = None
    try:
        rendered = await req.render(revision, True, False)
        await actions.install(
            req.kube,
            name=req.release_name,
            namespace=req.namespace,
            storage_namespace=req.storage_namespace,
            chart=req.chart,
            rendered=rendered,
            manifest=rendered.manifest,
            hooks=rendered.hooks,
            options=_action_options(obj, INSTALL, req.health_readers),
        )
    except Exception as e:
        error = _failure_text(e)
    obj.status.last_attempted_release_action_duration = format_duration(time.monotonic() - started)
    written = await _history_after(req, revision)
    await _conclude(req, _INSTALL, error, written, bool(written))


async def _upgrade(req: Request) -> None:
    obj = req.obj
    started = _begin(req, _UPGRADE)
    latest = _latest(req)
    error: str | None = None
    if latest is None:
        error = f'"{req.release_name}" has no deployed releases'
        revision = 1
    else:
        revision = latest.version + 1
        try:
            rendered = await req.render(revision, False, True)
            current = _current_for_upgrade(req) or latest
            await actions.upgrade(
                req.kube,
                current=current,
                storage_namespace=req.storage_namespace,
                chart=req.chart,
                rendered=rendered,
                manifest=rendered.manifest,
                hooks=rendered.hooks,
                options=_action_options(obj, UPGRADE, req.health_readers),
            )
        except Exception as e:
            error = _failure_text(e)
    obj.status.last_attempted_release_action_duration = format_duration(time.monotonic() - started)
    written = await _history_after(req, latest.version if latest else revision)
    await _conclude(req, _UPGRADE, error, written, any(r.version >= revision for r in written))


def _current_for_upgrade(req: Request) -> Release | None:
    """Helm upgrades from the last deployed revision, or the last one when none is."""
    deployed = [r for r in req.revisions if r.info.status == storage.DEPLOYED]
    return deployed[-1] if deployed else _latest(req)


async def _test(req: Request) -> None:
    obj = req.obj
    if not obj.status.history:
        raise ReleaseError("no latest release: required for test")
    cur = obj.status.history[0]
    error: str | None = None
    tested: Release | None = None
    try:
        rls = _stored(req, cur.version)
        if rls is None:
            raise actions.ActionError(f"release: not found: {cur.full_release_name()}")
        filters = [
            actions.TestFilter(f.name, f.exclude)
            for f in (obj.spec.test.filters if obj.spec.test else [])
        ]
        tested = await _run_test(req, rls, filters)
    except actions.ActionError as e:
        error = str(e)
        tested = e.release
    if tested is not None and (tested.name, tested.version) == (cur.name, cur.version):
        fresh = history.snapshot(tested, action=cur.action, oci_digest=cur.oci_digest)
        fresh.test_hooks = history.test_hooks(tested)
        obj.status.history[0] = fresh
    cur = obj.status.history[0]
    try:
        if error is not None:
            message = FMT_TEST_FAILURE.format(
                release=cur.full_release_name(), chart=history.chart_name(cur), err=error.strip()
            )
            obj.status.failures += 1
            conditions.mark_false(obj, TESTED, TEST_FAILED, "%s", message)
            req.emit("warning", TEST_FAILED, message, _snapshot_meta(cur))
            if history.has_been_tested(cur):
                remediation = active_remediation(obj)
                if remediation is not None and not remediation.must_ignore_test_failures(
                    _test_ignore_failures(obj)
                ):
                    remediation.increment(obj)
                return
            raise ReleaseError(error)
        count = len(cur.test_hooks or {})
        hooks = (
            f"{count} test hook{'s' if count > 1 else ''} completed successfully"
            if count
            else "no test hooks"
        )
        message = FMT_TEST_SUCCESS.format(
            release=cur.full_release_name(), chart=history.chart_name(cur), hooks=hooks
        )
        conditions.mark_true(obj, TESTED, TEST_SUCCEEDED, "%s", message)
        req.emit("normal", TEST_SUCCEEDED, message, _snapshot_meta(cur))
    finally:
        summarize(obj)


async def _run_test(req: Request, rls: Release, filters: list[actions.TestFilter]) -> Release:
    return await actions.test(
        req.kube,
        release=rls,
        storage_namespace=req.storage_namespace,
        filters=filters,
        options=_action_options(req.obj, "test"),
    )


async def _rollback(req: Request) -> None:
    obj = req.obj
    remediation = upgrade_remediation(obj)
    ignore = remediation.must_ignore_test_failures(_test_ignore_failures(obj))
    prev = history.previous(obj.status.history, ignore)
    if prev is None:
        raise ReleaseError(
            "missing target release for rollback: required to rollback", terminal=True
        )
    cur = obj.status.history[0]
    error: str | None = None
    try:
        await actions.rollback(
            req.kube,
            name=prev.name,
            storage_namespace=req.storage_namespace,
            to_version=prev.version,
            options=_action_options(obj, ROLLBACK, req.health_readers),
        )
    except actions.ActionError as e:
        error = str(e)
    written = await _history_after(req, cur.version)
    _record_rollback(req, written)
    try:
        if error is not None:
            message = FMT_ROLLBACK_FAILURE.format(
                release=prev.full_release_name(), chart=history.chart_name(prev), err=error.strip()
            )
            obj.status.failures += 1
            conditions.mark_false(obj, REMEDIATED, ROLLBACK_FAILED, "%s", message)
            req.emit("warning", ROLLBACK_FAILED, message, _snapshot_meta(prev))
            if obj.status.history[0].digest == cur.digest:
                raise ReleaseError(error)
            return
        message = FMT_ROLLBACK_SUCCESS.format(
            release=prev.full_release_name(), chart=history.chart_name(prev)
        )
        conditions.mark_true(obj, REMEDIATED, ROLLBACK_SUCCEEDED, "%s", message)
        req.emit("normal", ROLLBACK_SUCCEEDED, message, _snapshot_meta(prev))
    finally:
        summarize(obj)


def _record_rollback(req: Request, written: list[Release]) -> None:
    snaps = list(req.obj.status.history)
    for r in sorted(written, key=lambda x: x.version):
        if not history.refresh(snaps, r, ROLLBACK):
            snaps.insert(0, history.snapshot(r, action=ROLLBACK))
            req.inventory(r)
    req.obj.status.history = snaps


async def _uninstall_remediation(req: Request) -> None:
    obj = req.obj
    if not obj.status.history:
        raise ReleaseError("no latest release: required to uninstall")
    cur = obj.status.history[0]
    error: str | None = None
    rls: Release | None = None
    try:
        rls = await uninstall_release(req.kube, obj, cur.name, req.storage_namespace)
    except actions.ActionError as e:
        error = str(e)
        rls = e.release
    if rls is not None:
        history.refresh(obj.status.history, rls, "uninstall-remediation")
    unchanged = obj.status.history[0].digest == cur.digest
    if error is None and unchanged and rls is None:
        error = "uninstall completed with error: no storage update"
    latest = obj.status.history[0]
    if error is not None:
        message = FMT_UNINSTALL_REMEDIATION_FAILURE.format(
            release=latest.full_release_name(), chart=history.chart_name(latest), err=error.strip()
        )
        obj.status.failures += 1
        conditions.mark_false(obj, REMEDIATED, UNINSTALL_FAILED, "%s", message)
        req.emit("warning", UNINSTALL_FAILED, message, _snapshot_meta(latest))
        if unchanged:
            raise ReleaseError(error)
        return
    message = FMT_UNINSTALL_REMEDIATION_SUCCESS.format(
        release=latest.full_release_name(), chart=history.chart_name(latest)
    )
    conditions.mark_true(obj, REMEDIATED, UNINSTALL_SUCCEEDED, "%s", message)
    req.emit("normal", UNINSTALL_SUCCEEDED, message, _snapshot_meta(latest))


async def uninstall_release(
    kube: Kube, obj: HelmRelease, name: str, storage_namespace: str
) -> Release:
    un = obj.spec.uninstall
    return await actions.uninstall(
        kube,
        name=name,
        storage_namespace=storage_namespace,
        keep_history=bool(un and un.keep_history),
        deletion_propagation=un.deletion_propagation if un else "background",
        options=_action_options(obj, UNINSTALL),
    )


async def _unlock(req: Request) -> None:
    obj = req.obj
    try:
        latest = _latest(req)
        if latest is None or latest.info.status not in PENDING:
            return
        status = latest.info.status
        cur = history.snapshot(latest)
        for s in obj.status.history:
            if (s.name, s.namespace, s.version) == (latest.name, latest.namespace, latest.version):
                cur.oci_digest = s.oci_digest
        latest.info.status = storage.FAILED
        latest.info.description = f"Release unlocked from stale '{status}' state"
        try:
            await storage.update(req.kube, latest, namespace=req.storage_namespace)
        except ApiError as e:
            message = FMT_UNLOCK_FAILURE.format(
                release=cur.full_release_name(), chart=history.chart_name(cur), status=status,
                err=e.message,
            )  # fmt: skip
            obj.status.failures += 1
            conditions.mark_false(obj, RELEASED, PENDING_RELEASE, "%s", message)
            req.emit("warning", PENDING_RELEASE, message, _snapshot_meta(cur))
            raise ReleaseError(message) from None
        history.refresh(obj.status.history, latest)
        message = FMT_UNLOCK_SUCCESS.format(
            release=cur.full_release_name(), chart=history.chart_name(cur), status=status
        )
        conditions.mark_false(obj, RELEASED, PENDING_RELEASE, "%s", message)
        req.emit("normal", PENDING_RELEASE, message, _snapshot_meta(cur))
    finally:
        summarize(obj)


async def _correct_drift(req: Request) -> None:
    obj = req.obj
    rls = req.drifted
    if rls is None or not req.drift or _drift_mode(obj) != "enabled":
        return
    conditions.mark_unknown(obj, READY, PROGRESSING, "%s", drift_mod.CORRECTING_MESSAGE)
    try:
        async with asyncio.timeout(obj.spec.timeout_seconds()):
            result = await drift_mod.correct(req.kube, rls, req.drift)
    except TimeoutError:
        result = drift_mod.CorrectionResult(ChangeSet(), ["context deadline exceeded"])
    event = drift_mod.correction_event(rls, result)
    if event is not None:
        severity, reason, message = event
        cur = obj.status.history[0] if obj.status.history else None
        meta = _snapshot_meta(cur) if cur is not None else {}
        req.emit("warning" if severity == "Warning" else "normal", reason, message, meta)


def _drift_mode(obj: HelmRelease) -> str:
    dd = obj.spec.drift_detection
    return dd.effective_mode() if dd is not None else "disabled"


# -- choosing the next action ----------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    name: str  # install | upgrade | test | rollback | uninstall | unlock
    kind: Kind
    run: Callable[[Request], Awaitable[None]]


INSTALL_STEP = Step("install", Kind.RELEASE, _install)
UPGRADE_STEP = Step("upgrade", Kind.RELEASE, _upgrade)
TEST_STEP = Step("test", Kind.TEST, _test)
ROLLBACK_STEP = Step("rollback", Kind.REMEDIATE, _rollback)
UNINSTALL_REMEDIATION_STEP = Step("uninstall", Kind.REMEDIATE, _uninstall_remediation)
UNLOCK_STEP = Step("unlock", Kind.UNLOCK, _unlock)
CORRECT_DRIFT_STEP = Step("correct cluster drift", Kind.DRIFT_CORRECTION, _correct_drift)


def _should_handle(obj: HelmRelease, annotation: str, handled: str) -> str | None:
    """Flux's ShouldHandle*Request: the annotation's token when it equals requestedAt and was
    not acted on yet."""
    value = obj.metadata.annotations.get(annotation)
    requested = obj.metadata.annotations.get("reconcile.fluxcd.io/requestedAt")
    if value and value == requested and value != handled:
        return value
    return None


def take_force_request(obj: HelmRelease) -> bool:
    """Whether a forced upgrade was requested and not yet acted on; marks it handled, so one
    request forces one action."""
    token = _should_handle(obj, FORCE_ANNOTATION, obj.status.last_handled_force_at)
    if token is None:
        return False
    obj.status.last_handled_force_at = token
    return True


def take_reset_request(obj: HelmRelease) -> bool:
    """Whether a reset of the failure counters was requested and not yet acted on; marks it."""
    token = _should_handle(obj, RESET_ANNOTATION, obj.status.last_handled_reset_at)
    if token is None:
        return False
    obj.status.last_handled_reset_at = token
    return True


async def next_step(req: Request, state: State) -> Step | None:
    obj = req.obj
    forced = take_force_request(obj)
    status = state.status
    if status is Status.IN_SYNC:
        retry = active_retry(obj, req.default_to_retry)
        if retry is not None:
            obj.status.history = history.truncate_ignoring_previous(obj.status.history)
        else:
            ignore = _test_ignore_failures(obj)
            remediation = active_remediation(obj)
            if remediation is not None:
                ignore = remediation.must_ignore_test_failures(ignore)
            obj.status.history = history.truncate(obj.status.history, ignore)
        if forced:
            return UPGRADE_STEP
        cur = obj.status.history[0]
        if conditions.is_true(obj, REMEDIATED):
            _replace_condition(
                obj,
                REMEDIATED,
                RELEASED,
                UPGRADE_SUCCEEDED,
                FMT_UPGRADE_SUCCESS.format(
                    release=cur.full_release_name(), chart=history.chart_name(cur)
                ),
            )
        if not conditions.is_ready(obj) or not conditions.is_true(obj, RELEASED):
            reason = conditions.get_reason(obj, RELEASED)
            fmt = {
                INSTALL_FAILED: (INSTALL_SUCCEEDED, FMT_INSTALL_SUCCESS),
                UPGRADE_FAILED: (UPGRADE_SUCCEEDED, FMT_UPGRADE_SUCCESS),
            }.get(reason)
            if fmt is not None:
                message = fmt[1].format(
                    release=cur.full_release_name(), chart=history.chart_name(cur)
                )
                conditions.mark_true(obj, RELEASED, fmt[0], "%s", message)
                summarize(obj)
        if _drift_mode(obj) != "disabled":
            conditions.mark_false(obj, DRIFTED, NO_DRIFT_DETECTED, "%s", drift_mod.NO_DRIFT_MESSAGE)
        return None
    if status is Status.DRIFTED:
        assert req.drifted is not None
        message = drift_mod.drifted_message(req.drifted, req.drift)
        snap = obj.status.history[0] if obj.status.history else None
        req.emit("warning", DRIFT_DETECTED, message, _snapshot_meta(snap) if snap else {})
        conditions.mark_true(obj, DRIFTED, DRIFT_DETECTED, "%s", message)
        if _drift_mode(obj) == "enabled":
            return CORRECT_DRIFT_STEP
        return None
    if status is Status.LOCKED:
        return UNLOCK_STEP
    if status is Status.ABSENT:
        if install_remediation(obj).retries_exhausted(obj) and not forced:
            raise ReleaseError("exceeded maximum retries: cannot install release", terminal=True)
        return INSTALL_STEP
    if status is Status.UNMANAGED:
        obj.status.history = []
        return UPGRADE_STEP
    if status is Status.OUT_OF_SYNC:
        if upgrade_remediation(obj).retries_exhausted(obj) and not forced:
            raise ReleaseError("exceeded maximum retries: cannot upgrade release", terminal=True)
        return UPGRADE_STEP
    if status is Status.UNTESTED:
        if conditions.is_true(obj, REMEDIATED):
            cur = obj.status.history[0]
            _replace_condition(
                obj,
                REMEDIATED,
                RELEASED,
                UPGRADE_SUCCEEDED,
                FMT_UPGRADE_SUCCESS.format(
                    release=cur.full_release_name(), chart=history.chart_name(cur)
                ),
            )
        return TEST_STEP
    if status is Status.FAILED:
        if active_retry(obj, req.default_to_retry) is not None:
            obj.status.history = history.truncate_ignoring_previous(obj.status.history)
            return UPGRADE_STEP
        remediation = active_remediation(obj)
        if remediation is None or remediation.failure_count(obj) <= 0 or forced:
            return UPGRADE_STEP
        if remediation.retries_exhausted(obj) and not remediation.remediate_last_failure:
            raise ReleaseError(
                "exceeded maximum retries: cannot remediate failed release", terminal=True
            )
        ignore = remediation.must_ignore_test_failures(_test_ignore_failures(obj))
        obj.status.history = history.truncate(obj.status.history, ignore)
        if remediation.strategy == ROLLBACK:
            prev = history.previous(obj.status.history, ignore)
            if prev is None:
                raise ReleaseError(
                    "missing target release for rollback: cannot remediate failed release",
                    terminal=True,
                )
            stored = _stored(req, prev.version)
            if stored is None:
                # The rollback target is gone from storage: upgrade instead.
                return UPGRADE_STEP
            from tidal.helmrelease.state import verify_release_object

            if verify_release_object(prev, stored):
                return UPGRADE_STEP
            return ROLLBACK_STEP
        if remediation.strategy == UNINSTALL:
            return UNINSTALL_REMEDIATION_STEP
        raise ReleaseError(f"unknown remediation strategy: {remediation.strategy}")
    raise ReleaseError(f"unknown release status: {status}")


async def _detect_drift(req: Request, latest: Release | None) -> State:
    assert latest is not None
    dd = req.obj.spec.drift_detection
    try:
        changes = await drift_mod.detect(
            req.kube,
            latest,
            ignore=dd.ignore if dd is not None else [],
            disallowed_managers=req.override_managers,
        )
    except drift_mod.DetectError as e:
        raise StateError(f"unable to determine cluster state: {e}") from None
    req.drift, req.drifted = changes, latest if changes else None
    log.debug(
        "drift detection: %s",
        drift_mod.summarize_brief(changes) if changes else "none",
        extra={"helmrelease": f"{req.obj.metadata.namespace}/{req.obj.metadata.name}"},
    )
    if changes:
        return State(Status.DRIFTED, drift_mod.summarize_brief(changes))
    return State(Status.IN_SYNC)


async def release(req: Request) -> Outcome:
    """Run actions until the release is in sync, or must be retried; ReleaseError on errors."""
    obj = req.obj
    previous: list[Kind] = []
    while True:
        # One read of Helm's storage per turn: the state and the next action use it.
        req.revisions = await storage.history(req.kube, req.storage_namespace, req.release_name)
        latest = _latest(req)
        try:
            state = determine(obj, latest, req.chart.metadata, req.values)
            if state.status is Status.IN_SYNC and _drift_mode(obj) != "disabled":
                state = await _detect_drift(req, latest)
        except StateError as e:
            conditions.mark_false(
                obj, READY, "StateError", "Could not determine release state: %s", e
            )
            raise ReleaseError(f"cannot determine release state: {e}") from None
        try:
            step = await next_step(req, state)
        except ReleaseError as e:
            if e.terminal:
                if str(e).startswith("exceeded maximum retries"):
                    remediation = active_remediation(obj)
                    count = remediation.failure_count(obj) if remediation else 0
                    conditions.mark_stalled(
                        obj,
                        RETRIES_EXCEEDED,
                        "Failed to %s after %d attempt(s)",
                        obj.status.last_attempted_release_action or "",
                        count,
                    )
                else:
                    conditions.mark_stalled(
                        obj, MISSING_ROLLBACK_TARGET, "Failed to perform remediation: %s", e
                    )
            raise
        if step is None:
            conditions.delete(obj, RECONCILING)
            summarize(obj)
            return Outcome.DONE
        if step.kind in previous:
            retry = active_retry(obj, req.default_to_retry)
            if retry is not None:
                conditions.mark_reconciling(
                    obj, PROGRESSING_WITH_RETRY, "retrying after %s", format_duration(retry)
                )
                return Outcome.RETRY_AFTER_INTERVAL
            remediation = active_remediation(obj)
            if remediation is None or not remediation.retries_exhausted(obj):
                conditions.mark_reconciling(
                    obj, PROGRESSING_WITH_RETRY, "%s", conditions.get_message(obj, READY)
                )
                return Outcome.MUST_REQUEUE
            conditions.delete(obj, RECONCILING)
            return Outcome.DONE
        message = (
            f"Running '{step.name}' action with timeout of "
            f"{format_duration(timeout_for(obj, step.name))}"
        )
        conditions.mark_reconciling(obj, PROGRESSING, "%s", message)
        if step.kind is Kind.RELEASE:
            conditions.mark_unknown(obj, READY, PROGRESSING, "%s", message)
        await req.save_status()
        try:
            await step.run(req)
        except ReleaseError as e:
            retry = active_retry(obj, req.default_to_retry)
            if retry is not None:
                conditions.mark_reconciling(
                    obj, PROGRESSING_WITH_RETRY, "retrying after %s", format_duration(retry)
                )
                return Outcome.RETRY_AFTER_INTERVAL
            if conditions.is_ready(obj):
                conditions.mark_false(obj, READY, "ReconcileError", "%s", e)
            raise
        if step.kind is Kind.REMEDIATE:
            retry = active_retry(obj, req.default_to_retry)
            if retry is not None:
                conditions.mark_reconciling(
                    obj, PROGRESSING_WITH_RETRY, "retrying after %s", format_duration(retry)
                )
                return Outcome.RETRY_AFTER_INTERVAL
            remediation = active_remediation(obj)
            if (
                remediation is None
                or not remediation.retries_exhausted(obj)
                or remediation.is_uninstall_after_upgrade()
            ):
                conditions.mark_reconciling(
                    obj, PROGRESSING_WITH_RETRY, "%s", conditions.get_message(obj, READY)
                )
                return Outcome.MUST_REQUEUE
            conditions.mark_stalled(
                obj,
                RETRIES_EXCEEDED,
                "Failed to %s after %d attempt(s)",
                obj.status.last_attempted_release_action or "",
                remediation.failure_count(obj),
            )
            raise ReleaseError("exceeded maximum retries", terminal=True)
        previous.append(step.kind)
        await req.save_status()
        # Give the API server's watch a moment: the next state read starts from storage anyway.
        await asyncio.sleep(0)
