"""kstatus: the health of a Kubernetes object, computed as Flux's health checks compute it.

`compute` follows kstatus (Flux builds against its fork github.com/fluxcd/cli-utils, package
pkg/kstatus/status): generic rules first (deletion, observed generation, the abnormal-true
`Reconciling`/`Stalled` conditions), then the rules for built-in kinds, then a `Ready`
condition, else Current. Messages and reasons are kstatus's, byte for byte.

The rest is what Flux layers on top when it waits: `compute_job` is fluxcd/pkg
runtime/statusreaders' Job rule (a running Job is InProgress, not Current), `read_status` is
the status reader chain kustomize-controller configures, and `HealthCheck` is fluxcd/pkg ssa's
WaitForSet decision and error text ("timeout waiting for: [...]").

Where Go's `Compute` returns an error (a field of the wrong type), `compute` raises
`StatusError`; the readers turn that into an Unknown status carrying the error, as Flux does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from tidal.api.base import format_duration

__all__ = [
    "POD_OWNERS",
    "RECONCILING",
    "SCHEDULE_WINDOW",
    "STALLED",
    "Condition",
    "HealthCheck",
    "ObjRef",
    "ResourceStatus",
    "Result",
    "Status",
    "StatusError",
    "aggregate_status",
    "compute",
    "compute_job",
    "health_check_failed_message",
    "health_check_passed_message",
    "nested_int64",
    "not_found",
    "read_status",
]


class Status(StrEnum):
    IN_PROGRESS = "InProgress"
    FAILED = "Failed"
    CURRENT = "Current"
    TERMINATING = "Terminating"
    NOT_FOUND = "NotFound"
    UNKNOWN = "Unknown"


RECONCILING: Final = "Reconciling"
STALLED: Final = "Stalled"

# How long a Pod may stay unschedulable before kstatus calls it Failed.
SCHEDULE_WINDOW: Final = timedelta(seconds=15)


@dataclass(frozen=True)
class Condition:
    """A condition kstatus derives (only ever Reconciling or Stalled, status "True")."""

    type: str
    status: str
    reason: str
    message: str


@dataclass(frozen=True)
class Result:
    status: Status
    message: str
    conditions: tuple[Condition, ...] = ()


class StatusError(ValueError):
    """The object has a field of a type kstatus cannot read; Go's Compute returns an error."""


# ---------------------------------------------------------------------------------------------
# Reading unstructured objects the way apimachinery's unstructured helpers do


def _go_type(value: object) -> str:
    """Go's %T of a value decoded from JSON into interface{}."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "map[string]interface {}"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    return type(value).__name__


def _go_kind(value: object) -> str:
    """Go's reflect.Kind name, which the unstructured converter puts in its errors."""
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, list | tuple):
        return "slice"
    return _go_type(value)


def _go_value(value: object) -> str:
    """Go's %v of a value decoded from JSON into interface{}."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, Mapping):
        # fmt prints map keys sorted.
        items = " ".join(f"{k}:{_go_value(value[k])}" for k in sorted(value))
        return f"map[{items}]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(_go_value(v) for v in value) + "]"
    return str(value)


_MISSING: Final = object()


def _nested(obj: Mapping[str, Any], *fields: str) -> object:
    """NestedFieldNoCopy: a null on the way means "not found"; a non-map on the way is an
    error. Returns _MISSING when not found."""
    value: object = obj
    for i, field in enumerate(fields):
        if value is None:
            return _MISSING
        if not isinstance(value, Mapping):
            path = "." + ".".join(fields[: i + 1])
            raise StatusError(
                f"{path} accessor error: {_go_value(value)} is of the type {_go_type(value)}, "
                "expected map[string]interface{}"
            )
        if field not in value:
            return _MISSING
        value = value[field]
    return value


def _accessor_error(fields: Sequence[str], value: object, expected: str) -> StatusError:
    path = "." + ".".join(fields)
    return StatusError(
        f"{path} accessor error: {_go_value(value)} is of the type {_go_type(value)}, "
        f"expected {expected}"
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def nested_int64(obj: Mapping[str, Any], *fields: str) -> int | None:
    """NestedInt64: None when absent; a present value that is not an integer is a
    StatusError (a JSON float, even 2.0, decodes to float64 in Go). Public because Flux's CEL
    health checks (tidal.kube.cel) read generations the same way."""
    value = _nested(obj, *fields)
    if value is _MISSING:
        return None
    if not _is_int(value):
        raise _accessor_error(fields, value, "int64")
    assert isinstance(value, int)
    return value


def _nested_string(obj: Mapping[str, Any], *fields: str) -> str | None:
    value = _nested(obj, *fields)
    if value is _MISSING:
        return None
    if not isinstance(value, str):
        raise _accessor_error(fields, value, "string")
    return value


def _int_field(obj: Mapping[str, Any], path: str, default: int) -> int:
    """kstatus GetIntField: anything but an integer at the path, or any lookup error, gives the
    default."""
    try:
        value = _nested(obj, *path.lstrip(".").split("."))
    except StatusError:
        return default
    if value is _MISSING or not _is_int(value):
        return default
    assert isinstance(value, int)
    return value


def _string_field(obj: Mapping[str, Any], path: str, default: str) -> str:
    try:
        value = _nested(obj, *path.lstrip(".").split("."))
    except StatusError:
        return default
    return value if isinstance(value, str) else default


def _kind(obj: Mapping[str, Any]) -> str:
    kind = obj.get("kind")
    return kind if isinstance(kind, str) else ""


def _group_kind(obj: Mapping[str, Any]) -> tuple[str, str]:
    """Unstructured.GroupVersionKind: an apiVersion with two or more slashes does not parse,
    and then Go reports an empty group *and* kind."""
    api_version = obj.get("apiVersion")
    if not isinstance(api_version, str):
        api_version = ""
    slashes = api_version.count("/")
    if api_version == "/" or slashes == 0:
        return "", _kind(obj)
    if slashes == 1:
        return api_version.split("/", 1)[0], _kind(obj)
    return "", ""


@dataclass(frozen=True)
class _BasicCondition:
    type: str
    status: str
    reason: str
    message: str


_EMPTY_CONDITION: Final = _BasicCondition("", "", "", "")


def _condition_string(value: object, go_type: str) -> str:
    # runtime.DefaultUnstructuredConverter: null is the zero value, strings pass, integers are
    # refused by name, every other kind is "unrecognized".
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if _is_int(value):
        raise StatusError(f"cannot convert int64 to {go_type}")
    raise StatusError("unrecognized type: string")


def _conditions(obj: Mapping[str, Any]) -> list[_BasicCondition]:
    """GetObjectWithConditions: status.conditions decoded into {type, status, reason,
    message}, failing where the unstructured converter fails."""
    status = obj.get("status")
    if status is None:
        return []
    if not isinstance(status, Mapping):
        raise StatusError(f"cannot restore struct from: {_go_kind(status)}")
    items = status.get("conditions")
    if items is None:
        return []
    if not isinstance(items, list | tuple):
        raise StatusError(f"cannot restore slice from {_go_kind(items)}")
    out = []
    for item in items:
        if item is None:
            out.append(_EMPTY_CONDITION)
            continue
        if not isinstance(item, Mapping):
            raise StatusError(f"cannot restore struct from: {_go_kind(item)}")
        out.append(
            _BasicCondition(
                type=_condition_string(item.get("type"), "string"),
                status=_condition_string(item.get("status"), "v1.ConditionStatus"),
                reason=_condition_string(item.get("reason"), "string"),
                message=_condition_string(item.get("message"), "string"),
            )
        )
    return out


def _find(conditions: Iterable[_BasicCondition], type_: str, status: str) -> _BasicCondition | None:
    for c in conditions:
        if c.type == type_ and c.status == status:
            return c
    return None


_RFC3339: Final = re.compile(
    r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})"
)


def _creation_time(obj: Mapping[str, Any]) -> datetime | None:
    """metadata.creationTimestamp as Unstructured.GetCreationTimestamp reads it; None stands
    for Go's zero time (absent or unparsable)."""
    try:
        text = _nested_string(obj, "metadata", "creationTimestamp")
    except StatusError:
        return None
    m = _RFC3339.fullmatch(text or "")
    if m is None:
        return None
    # fromisoformat stops at microseconds; Go keeps nanoseconds, which a 15s window ignores.
    fraction = (m.group(2) or "0")[:6].ljust(6, "0")
    try:
        return datetime.fromisoformat(f"{m.group(1)}.{fraction}{m.group(3)}")
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# kstatus Compute


def _in_progress(reason: str, message: str) -> Result:
    return Result(Status.IN_PROGRESS, message, (Condition(RECONCILING, "True", reason, message),))


def _failed(reason: str, message: str) -> Result:
    return Result(Status.FAILED, message, (Condition(STALLED, "True", reason, message),))


def _current(message: str) -> Result:
    return Result(Status.CURRENT, message)


def compute(obj: Mapping[str, Any], *, now: datetime | None = None) -> Result:
    """kstatus Compute for one object as the API server returns it (status included).

    `now` only matters for a Pod that is Pending and unschedulable: kstatus gives it
    SCHEDULE_WINDOW after creation before calling it Failed (a naive `now` is taken as UTC).
    Raises StatusError where Go's Compute returns an error."""
    result = _generic(obj)
    if result is not None:
        return result
    rule = _RULES.get(_rule_key(obj))
    if rule is not None:
        if now is None:
            now = datetime.now(UTC)
        elif now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        return rule(obj, now)
    result = _ready_condition(obj)
    if result is not None:
        return result
    # Nothing kstatus knows says otherwise, so the absence of conditions means "done".
    return _current("Resource is current")


def _rule_key(obj: Mapping[str, Any]) -> str:
    group, kind = _group_kind(obj)
    return f"{group}/{kind}" if group else kind


def _generic(obj: Mapping[str, Any]) -> Result | None:
    try:
        deletion = _nested_string(obj, "metadata", "deletionTimestamp")
    except StatusError as e:
        raise StatusError(f"looking up metadata.deletionTimestamp from resource: {e}") from None
    if deletion:
        return Result(Status.TERMINATING, "Resource scheduled for deletion")
    result = _check_generation(obj)
    if result is not None:
        return result
    for c in _conditions(obj):
        if c.type == RECONCILING and c.status == "True":
            return _in_progress(c.reason, c.message)
        if c.type == STALLED and c.status == "True":
            return _failed(c.reason, c.message)
    return None


def _generation(obj: Mapping[str, Any]) -> int | None:
    try:
        return nested_int64(obj, "metadata", "generation")
    except StatusError as e:
        raise StatusError(f"looking up metadata.generation from resource: {e}") from None


def _observed_generation(obj: Mapping[str, Any]) -> int | None:
    try:
        return nested_int64(obj, "status", "observedGeneration")
    except StatusError as e:
        raise StatusError(f"looking up status.observedGeneration from resource: {e}") from None


def _check_generation(obj: Mapping[str, Any]) -> Result | None:
    generation = _generation(obj)
    if generation is None:
        return None
    observed = _observed_generation(obj)
    if observed is not None and observed != generation:
        message = (
            f"{_kind(obj)} generation is {generation}, but latest observed generation is {observed}"
        )
        return _in_progress("LatestGenerationNotObserved", message)
    return None


def _ready_condition(obj: Mapping[str, Any]) -> Result | None:
    """A `Ready` condition decides for kinds kstatus has no rule for: True is Current, False
    and Unknown are InProgress (kstatus cannot tell a doomed False from a transient one; a
    controller that gives up says so with Stalled, caught earlier)."""
    for c in _conditions(obj):
        if c.type != "Ready":
            continue
        if c.status == "True":
            return _current("Resource is Ready")
        if c.status in ("False", "Unknown"):
            return _in_progress(c.reason, c.message)
    return None


def _always_ready(_obj: Mapping[str, Any], _now: datetime) -> Result:
    return _current("Resource is always ready")


def _statefulset(obj: Mapping[str, Any], _now: datetime) -> Result:
    # The StatefulSet controller sets no conditions, so only the counters tell.
    if _string_field(obj, ".spec.updateStrategy.type", "") == "OnDelete":
        return _current("StatefulSet is using the ondelete update strategy")
    spec = _int_field(obj, ".spec.replicas", 1)
    ready = _int_field(obj, ".status.readyReplicas", 0)
    current = _int_field(obj, ".status.currentReplicas", 0)
    updated = _int_field(obj, ".status.updatedReplicas", 0)
    replicas = _int_field(obj, ".status.replicas", 0)
    partition = _int_field(obj, ".spec.updateStrategy.rollingUpdate.partition", -1)
    if spec > replicas:
        return _in_progress("LessReplicas", f"Replicas: {replicas}/{spec}")
    if spec > ready:
        return _in_progress("LessReady", f"Ready: {ready}/{spec}")
    if replicas > spec:
        return _in_progress("ExtraPods", f"Pending termination: {replicas - spec}")
    if partition != -1:
        if updated < spec - partition:
            return _in_progress("PartitionRollout", f"updated: {updated}/{spec - partition}")
        return _current(f"Partition rollout complete. updated: {updated}")
    if spec > current:
        return _in_progress("LessCurrent", f"current: {current}/{spec}")
    current_revision = _string_field(obj, ".status.currentRevision", "")
    update_revision = _string_field(obj, ".status.updateRevision", "")
    if current_revision != update_revision:
        return _in_progress("RevisionMismatch", "Waiting for updated revision to match current")
    return _current(f"All replicas scheduled as expected. Replicas: {replicas}")


_MAX_INT32: Final = 2**31 - 1


def _deployment(obj: Mapping[str, Any], _now: datetime) -> Result:
    # Without progressDeadlineSeconds (MaxInt32 is the API's "unset") the controller never
    # sets Progressing, so its absence cannot hold the Deployment back.
    progressing = _int_field(obj, ".spec.progressDeadlineSeconds", _MAX_INT32) == _MAX_INT32
    available = False
    for c in _conditions(obj):
        if c.type == "Progressing":
            if c.reason == "ProgressDeadlineExceeded":
                return Result(
                    Status.FAILED,
                    "Progress deadline exceeded",
                    (Condition(STALLED, "True", c.reason, c.message),),
                )
            if c.status == "True" and c.reason == "NewReplicaSetAvailable":
                progressing = True
        elif c.type == "Available" and c.status == "True":
            available = True
    spec = _int_field(obj, ".spec.replicas", 1)
    replicas = _int_field(obj, ".status.replicas", 0)
    updated = _int_field(obj, ".status.updatedReplicas", 0)
    ready = _int_field(obj, ".status.readyReplicas", 0)
    available_replicas = _int_field(obj, ".status.availableReplicas", 0)
    if spec > replicas:
        return _in_progress("LessReplicas", f"Replicas: {replicas}/{spec}")
    if spec > updated:
        return _in_progress("LessUpdated", f"Updated: {updated}/{spec}")
    if replicas > spec:
        return _in_progress("ExtraPods", f"Pending termination: {replicas - spec}")
    if updated > available_replicas:
        return _in_progress("LessAvailable", f"Available: {available_replicas}/{updated}")
    if spec > ready:
        return _in_progress("LessReady", f"Ready: {ready}/{spec}")
    if not progressing:
        return _in_progress("ReplicaSetNotAvailable", "ReplicaSet not Available")
    if not available:
        return _in_progress("DeploymentNotAvailable", "Deployment not Available")
    return _current(f"Deployment is available. Replicas: {replicas}")


def _replicaset(obj: Mapping[str, Any], _now: datetime) -> Result:
    if _find(_conditions(obj), "ReplicaFailure", "True") is not None:
        return _in_progress("ReplicaFailure", "Replica Failure condition. Check Pods")
    spec = _int_field(obj, ".spec.replicas", 1)
    replicas = _int_field(obj, ".status.replicas", 0)
    ready = _int_field(obj, ".status.readyReplicas", 0)
    available = _int_field(obj, ".status.availableReplicas", 0)
    labelled = _int_field(obj, ".status.fullyLabeledReplicas", 0)
    if spec > labelled:
        return _in_progress("LessLabelled", f"Labelled: {labelled}/{spec}")
    if spec > available:
        return _in_progress("LessAvailable", f"Available: {available}/{spec}")
    if spec > ready:
        return _in_progress("LessReady", f"Ready: {ready}/{spec}")
    if replicas > spec:
        return _in_progress("ExtraPods", f"Pending termination: {replicas - spec}")
    return _current(f"ReplicaSet is available. Replicas: {replicas}")


def _daemonset(obj: Mapping[str, Any], _now: datetime) -> Result:
    # The generic check skips objects without generations; a DaemonSet the controller has
    # seen always has both, so their absence means "not observed yet".
    if _generation(obj) is None:
        message = f"{_kind(obj)} metadata.generation not found"
        return _in_progress("NoGeneration", message)
    if _observed_generation(obj) is None:
        message = f"{_kind(obj)} status.observedGeneration not found"
        return _in_progress("NoObservedGeneration", message)
    desired = _int_field(obj, ".status.desiredNumberScheduled", -1)
    current = _int_field(obj, ".status.currentNumberScheduled", 0)
    updated = _int_field(obj, ".status.updatedNumberScheduled", 0)
    available = _int_field(obj, ".status.numberAvailable", 0)
    ready = _int_field(obj, ".status.numberReady", 0)
    if desired == -1:
        return _in_progress("NoDesiredNumber", "Missing .status.desiredNumberScheduled")
    if desired > current:
        return _in_progress("LessCurrent", f"Current: {current}/{desired}")
    if desired > updated:
        return _in_progress("LessUpdated", f"Updated: {updated}/{desired}")
    if desired > available:
        return _in_progress("LessAvailable", f"Available: {available}/{desired}")
    if desired > ready:
        return _in_progress("LessReady", f"Ready: {ready}/{desired}")
    return _current(f"All replicas scheduled as expected. Replicas: {desired}")


def _pvc(obj: Mapping[str, Any], _now: datetime) -> Result:
    phase = _string_field(obj, ".status.phase", "unknown")
    if phase != "Bound":
        return _in_progress("NotBound", f"PVC is not Bound. phase: {phase}")
    return _current("PVC is Bound")


def _pod(obj: Mapping[str, Any], now: datetime) -> Result:
    conditions = _conditions(obj)
    phase = _string_field(obj, ".status.phase", "")
    if phase == "Succeeded":
        return _current("Pod has completed successfully")
    if phase == "Failed":
        return _current("Pod has completed, but not successfully")
    if phase == "Running":
        if _find(conditions, "Ready", "True") is not None:
            return _current("Pod is Ready")
        crashing = _crash_looping_containers(obj)
        if crashing:
            return _failed(
                "ContainerCrashLooping", f"Containers in CrashLoop state: {','.join(crashing)}"
            )
        return _in_progress("PodRunningNotReady", "Pod is running but is not Ready")
    if phase == "Pending":
        scheduled = _find(conditions, "PodScheduled", "False")
        if scheduled is not None and scheduled.reason == "Unschedulable":
            created = _creation_time(obj)
            if created is not None and now - SCHEDULE_WINDOW < created:
                return _in_progress("PodNotScheduled", "Pod has not been scheduled")
            return _failed("PodUnschedulable", "Pod could not be scheduled")
        return _in_progress("PodPending", "Pod is in the Pending phase")
    if phase == "":
        return _in_progress("PodNotObserved", "Pod phase not available")
    raise StatusError(f"unknown phase {phase}")


def _crash_looping_containers(obj: Mapping[str, Any]) -> list[str]:
    """Names of containers waiting in CrashLoopBackOff. Where Go's type assertions would panic
    on a malformed entry, this raises StatusError."""
    statuses = _nested(obj, "status", "containerStatuses")
    if statuses is _MISSING:
        return []
    if not isinstance(statuses, list | tuple):
        raise _accessor_error(("status", "containerStatuses"), statuses, "[]interface{}")
    names = []
    for item in statuses:
        if not isinstance(item, Mapping):
            raise StatusError(f"containerStatuses entry is of the type {_go_type(item)}")
        if "name" not in item:
            continue
        name = item["name"]
        if not isinstance(name, str):
            raise StatusError(f"containerStatuses name is of the type {_go_type(name)}")
        if "state" not in item:
            continue
        state = item["state"]
        if not isinstance(state, Mapping):
            raise StatusError(f"containerStatuses state is of the type {_go_type(state)}")
        if "waiting" not in state:
            continue
        waiting = state["waiting"]
        if not isinstance(waiting, Mapping):
            raise StatusError(f"containerStatuses waiting is of the type {_go_type(waiting)}")
        if "reason" not in waiting:
            continue
        reason = waiting["reason"]
        if not isinstance(reason, str):
            raise StatusError(f"containerStatuses reason is of the type {_go_type(reason)}")
        if reason == "CrashLoopBackOff":
            names.append(name)
    return names


def _pdb(_obj: Mapping[str, Any], _now: datetime) -> Result:
    # Reaching this rule means the generic check saw observedGeneration == generation, which
    # is all kstatus asks of a PodDisruptionBudget.
    return _current("AllowedDisruptions has been computed.")


def _job_status(obj: Mapping[str, Any], *, flux: bool) -> Result:
    """The Job rule kstatus and Flux share. They differ only on an unfinished Job: kstatus
    calls a started one Current, Flux (which waits for Jobs to finish) keeps it InProgress and
    says how many pods a Job not started yet runs."""
    parallelism = _int_field(obj, ".spec.parallelism", 1)
    completions = _int_field(obj, ".spec.completions", parallelism)
    succeeded = _int_field(obj, ".status.succeeded", 0)
    active = _int_field(obj, ".status.active", 0)
    failed = _int_field(obj, ".status.failed", 0)
    start_time = _string_field(obj, ".status.startTime", "")
    for c in _conditions(obj):
        if c.type == "Complete" and c.status == "True":
            return _current(f"Job Completed. succeeded: {succeeded}/{completions}")
        if c.type == "Failed" and c.status == "True":
            return _failed("JobFailed", f"Job Failed. failed: {failed}/{completions}")
    if start_time == "":
        detail = f". active: 0/{parallelism}" if flux else ""
        return _in_progress("JobNotStarted", f"Job not started{detail}")
    running = f"Job in progress. success:{succeeded}, active: {active}, failed: {failed}"
    return _in_progress("JobInProgress", running) if flux else _current(running)


def _job(obj: Mapping[str, Any], _now: datetime) -> Result:
    """kstatus's own Job rule: a started Job is Current while it runs. Flux replaces it with
    compute_job."""
    return _job_status(obj, flux=False)


def _service(obj: Mapping[str, Any], _now: datetime) -> Result:
    spec_type = _string_field(obj, ".spec.type", "ClusterIP")
    cluster_ip = _string_field(obj, ".spec.clusterIP", "")
    if spec_type == "LoadBalancer" and cluster_ip == "":
        return _in_progress("NoIPAssigned", "ClusterIP not set. Service type: LoadBalancer")
    return _current("Service is ready")


def _crd(obj: Mapping[str, Any], _now: datetime) -> Result:
    for c in _conditions(obj):
        if c.type == "NamesAccepted" and c.status == "False":
            return _failed(c.reason, c.message)
        if c.type == "Established":
            if c.status == "False" and c.reason != "Installing":
                return _failed(c.reason, c.message)
            if c.status == "True":
                return _current("CRD is established")
    return _in_progress("Installing", "Install in progress")


_Rule = Callable[[Mapping[str, Any], datetime], Result]

# kstatus's legacyTypes, keyed "group/Kind" ("Kind" for the core group).
_RULES: Final[Mapping[str, _Rule]] = {
    "Service": _service,
    "Pod": _pod,
    "Secret": _always_ready,
    "PersistentVolumeClaim": _pvc,
    "apps/StatefulSet": _statefulset,
    "apps/DaemonSet": _daemonset,
    "extensions/DaemonSet": _daemonset,
    "apps/Deployment": _deployment,
    "extensions/Deployment": _deployment,
    "apps/ReplicaSet": _replicaset,
    "extensions/ReplicaSet": _replicaset,
    "policy/PodDisruptionBudget": _pdb,
    "batch/CronJob": _always_ready,
    "ConfigMap": _always_ready,
    "batch/Job": _job,
    "apiextensions.k8s.io/CustomResourceDefinition": _crd,
}


def not_found() -> Result:
    """What cli-utils' readers report for an object the cluster does not have."""
    return Result(Status.NOT_FOUND, "Resource not found")


# ---------------------------------------------------------------------------------------------
# Flux's Job rule


def compute_job(obj: Mapping[str, Any]) -> Result:
    """fluxcd/pkg runtime/statusreaders' Job status: Flux waits for a Job to finish, so a
    running Job is InProgress and a suspended one Current. Flux reads Jobs with this rule
    alone; the generic checks of `compute` (deletion, generation, Reconciling/Stalled) do not
    apply to them."""
    try:
        suspend = _nested(obj, "spec", "suspend")
    except StatusError:
        suspend = None
    # NestedBool: only a real boolean true suspends; any other value is ignored.
    if suspend is True:
        return _current("Job is suspended")
    return _job_status(obj, flux=True)


# ---------------------------------------------------------------------------------------------
# Flux's status readers and wait


@dataclass(frozen=True)
class ObjRef:
    """An object's identity as cli-utils' ObjMetadata holds it (group, not version)."""

    group: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjRef:
        group, kind = _group_kind(obj)
        metadata = obj.get("metadata")
        meta: Mapping[str, Any] = metadata if isinstance(metadata, Mapping) else {}
        namespace, name = meta.get("namespace"), meta.get("name")
        return cls(
            group,
            kind,
            namespace if isinstance(namespace, str) else "",
            name if isinstance(name, str) else "",
        )

    def __str__(self) -> str:
        # fluxcd/pkg ssa utils.FmtObjMetadata: Kind/namespace/name, Kind/name when cluster-wide.
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class ResourceStatus:
    """One object's status as a poll saw it; `error` is set only with Status.UNKNOWN."""

    ref: ObjRef
    status: Status
    message: str = ""
    error: str | None = None


def _is_transient_pod_failure(pod: Mapping[str, Any]) -> bool:
    # A Pod being deleted or waiting for a node may still come good; only the rest (crash
    # loops, a Stalled condition) condemn their controller.
    if _string_field(pod, ".metadata.deletionTimestamp", ""):
        return True
    try:
        conditions = _conditions(pod)
    except StatusError:
        return False
    scheduled = _find(conditions, "PodScheduled", "False")
    return scheduled is not None and scheduled.reason == "Unschedulable"


# The kinds whose Pods `read_status` looks at (cli-utils' ReplicaSet and StatefulSet readers).
POD_OWNERS: Final = frozenset({("apps", "ReplicaSet"), ("apps", "StatefulSet")})


def read_status(
    ref: ObjRef,
    obj: Mapping[str, Any] | None,
    *,
    pods: Sequence[Mapping[str, Any]] = (),
    now: datetime | None = None,
) -> ResourceStatus:
    """The status Flux's poller (kustomize-controller's reader chain) reports for `ref`.

    `obj` is the object read from the cluster, None when it does not exist. `pods` matters for
    an apps/v1 ReplicaSet or StatefulSet only: the Pods in its namespace that match its
    spec.selector. One of them failing for good (not unschedulable, not terminating) turns an
    InProgress controller into Failed, "<n> pods have failed"."""
    if obj is None:
        missing = not_found()
        return ResourceStatus(ref, missing.status, missing.message)
    try:
        if (ref.group, ref.kind) == ("batch", "Job"):
            result = compute_job(obj)
        else:
            result = compute(obj, now=now)
    except StatusError as e:
        return ResourceStatus(ref, Status.UNKNOWN, error=str(e))
    if result.status is Status.IN_PROGRESS and (ref.group, ref.kind) in POD_OWNERS:
        failed = 0
        for pod in pods:
            try:
                pod_status = compute(pod, now=now).status
            except StatusError:
                continue
            if pod_status is Status.FAILED and not _is_transient_pod_failure(pod):
                failed += 1
        if failed:
            return ResourceStatus(ref, Status.FAILED, f"{failed} pods have failed")
    return ResourceStatus(ref, result.status, result.message)


def aggregate_status(statuses: Iterable[Status], desired: Status = Status.CURRENT) -> Status:
    """cli-utils aggregator.AggregateStatus: Failed wins, then Unknown; all `desired` is
    `desired` (so is an empty set); anything else is InProgress."""
    all_desired, any_unknown = True, False
    for s in statuses:
        if s is Status.FAILED:
            return Status.FAILED
        if s is Status.UNKNOWN:
            any_unknown = True
        if s is not desired:
            all_desired = False
    if any_unknown:
        return Status.UNKNOWN
    return desired if all_desired else Status.IN_PROGRESS


class HealthCheck:
    """fluxcd/pkg ssa WaitForSet's bookkeeping for one wait, without the polling.

    Feed every status a poll reads to `observe`, in order; stop polling as soon as it returns
    True (Flux cancels its poll at that event). When polling stops, `error` gives Flux's error
    text, or None when every object is healthy.

    Objects not read yet count as Unknown, as in cli-utils' status collector. A Job listed in
    `jobs_with_ttl` that is NotFound counts as Current: its TTL controller deleted it after it
    finished."""

    def __init__(
        self,
        refs: Iterable[ObjRef],
        *,
        fail_fast: bool = True,
        jobs_with_ttl: Iterable[ObjRef] = (),
        hopeless: Iterable[Status] = (),
    ) -> None:
        self.refs: tuple[ObjRef, ...] = tuple(dict.fromkeys(refs))
        self.fail_fast = fail_fast
        # Statuses that count as Failed here, for waits where they can never turn Current.
        self.hopeless = frozenset(hopeless)
        self.jobs_with_ttl = frozenset(jobs_with_ttl)
        self._latest: dict[ObjRef, ResourceStatus] = {
            ref: ResourceStatus(ref, Status.UNKNOWN) for ref in self.refs
        }
        self._observed = False

    @property
    def statuses(self) -> tuple[ResourceStatus, ...]:
        """The latest status of every object, in the order given."""
        return tuple(self._latest[ref] for ref in self.refs)

    def _effective(self, rs: ResourceStatus) -> Status:
        if rs.status is Status.NOT_FOUND and rs.ref in self.jobs_with_ttl:
            return Status.CURRENT
        if rs.status in self.hopeless:
            return Status.FAILED
        return rs.status

    def observe(self, status: ResourceStatus) -> bool:
        """Record one status; True when the wait is over (all Current, or decided by a
        failure)."""
        if status.ref not in self._latest:
            raise KeyError(f"{status.ref} is not part of this health check")
        self._latest[status.ref] = status
        self._observed = True
        return self.finished()

    def finished(self) -> bool:
        """Whether the statuses seen so far end the wait: all Current (aggregated over the
        raw statuses), any Failed under fail-fast, or only Failed and Current left, since a
        Failed object will never turn Current and waiting would only run into the timeout."""
        if not self.refs:
            return True
        if not self._observed:
            return False
        latest = self.statuses
        effective = {self._effective(rs) for rs in latest}
        terminal = effective <= {Status.FAILED, Status.CURRENT}
        if aggregate_status(rs.status for rs in latest) is Status.CURRENT:
            return True
        return (self.fail_fast and Status.FAILED in effective) or terminal

    def error(self, *, timed_out: bool) -> str | None:
        """Flux's wait error once polling stopped, or None if every object is healthy.

        `timed_out`: the timeout ended the wait (then every object not Current is listed),
        rather than `finished()` (then only Failed objects are). Flux lists objects in map
        order, which Go randomises; here they keep the order they were given in."""
        errors = []
        for ref in self.refs:
            if not self._observed:
                if ref not in self.jobs_with_ttl:
                    errors.append(f"can't determine status for {ref}")
                continue
            rs = self._latest[ref]
            if rs.status is Status.NOT_FOUND and ref in self.jobs_with_ttl:
                continue
            failed = self._effective(rs) is Status.FAILED
            if failed or (timed_out and rs.status is not Status.CURRENT):
                entry = f"{ref} status: '{rs.status}'"
                if rs.error is not None:
                    entry += f": {rs.error}"
                elif rs.status in self.hopeless and rs.message:
                    entry += f": {rs.message}"
                errors.append(entry)
        if not errors:
            return None
        prefix = "timeout waiting for" if timed_out else "failed early due to stalled resources"
        return f"{prefix}: [{', '.join(errors)}]"


def health_check_failed_message(elapsed: float, error: str) -> str:
    """kustomize-controller's error (and Ready/Healthy message) for a failed health check;
    `elapsed` in seconds, printed as Go prints a time.Duration."""
    return f"health check failed after {format_duration(elapsed)}: {error}"


def health_check_passed_message(elapsed: float) -> str:
    """kustomize-controller's Healthy=True message and event text."""
    return f"Health check passed in {format_duration(elapsed)}"
