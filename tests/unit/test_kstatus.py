"""kstatus: each kind's states as a user sees them roll by, with kstatus's exact messages, the
Flux Job rule and reader chain, and the wait's verdicts and error text. The object table also
runs through Flux's own Go code (tests/unit/kstatus_oracle) when Go is installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tidal.kube.kstatus import (
    Condition,
    HealthCheck,
    ObjRef,
    ResourceStatus,
    Result,
    Status,
    StatusError,
    aggregate_status,
    compute,
    compute_job,
    health_check_failed_message,
    health_check_passed_message,
    not_found,
    read_status,
)

CREATED = "2026-03-02T09:14:07Z"
# Pods created here are still inside kstatus's 15s scheduling window for any test clock.
FAR_FUTURE = "2999-01-01T00:00:00Z"

Obj = dict[str, Any]


def meta(
    name: str, namespace: str | None = "apps", generation: int | None = 1, **extra: Any
) -> Obj:
    m: Obj = {
        "name": name,
        "uid": "6f1c2f0e-9a51-4d3e-8a4b-2f7d9c0e1a11",
        "resourceVersion": "48213",
        "creationTimestamp": CREATED,
    }
    if namespace is not None:
        m["namespace"] = namespace
    if generation is not None:
        m["generation"] = generation
    m.update(extra)
    return m


def cond(type_: str, status: str, reason: str = "", message: str = "", **extra: Any) -> Obj:
    c: Obj = {
        "type": type_,
        "status": status,
        "lastTransitionTime": "2026-03-02T09:14:09Z",
        "reason": reason,
        "message": message,
    }
    c.update(extra)
    return c


POD_TEMPLATE: Obj = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
}


# --- Deployment ------------------------------------------------------------------------------

AVAILABLE = cond(
    "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."
)
UNAVAILABLE = cond(
    "Available",
    "False",
    "MinimumReplicasUnavailable",
    "Deployment does not have minimum availability.",
)
PROGRESSING = cond(
    "Progressing", "True", "ReplicaSetUpdated", 'ReplicaSet "web-7d4b9c" is progressing.'
)
PROGRESSED = cond(
    "Progressing",
    "True",
    "NewReplicaSetAvailable",
    'ReplicaSet "web-7d4b9c" has successfully progressed.',
)
DEADLINE = cond(
    "Progressing",
    "False",
    "ProgressDeadlineExceeded",
    'ReplicaSet "web-7d4b9c" has timed out progressing.',
)


def deployment(
    status: Obj | None,
    *,
    replicas: int | None = 2,
    generation: int = 1,
    progress_deadline: int | None = 600,
) -> Obj:
    spec: Obj = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": POD_TEMPLATE,
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
        },
        "revisionHistoryLimit": 10,
    }
    if replicas is not None:
        spec["replicas"] = replicas
    if progress_deadline is not None:
        spec["progressDeadlineSeconds"] = progress_deadline
    obj: Obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta("web", generation=generation),
        "spec": spec,
    }
    if status is not None:
        obj["status"] = status
    return obj


def deploy_status(
    observed: int = 1,
    replicas: int = 2,
    updated: int = 2,
    ready: int = 2,
    available: int = 2,
    conditions: tuple[Obj, ...] = (AVAILABLE, PROGRESSED),
) -> Obj:
    s: Obj = {"observedGeneration": observed, "replicas": replicas, "updatedReplicas": updated}
    if ready:
        s["readyReplicas"] = ready
    if available:
        s["availableReplicas"] = available
    if replicas - available > 0:
        s["unavailableReplicas"] = replicas - available
    s["conditions"] = list(conditions)
    return s


# --- StatefulSet, DaemonSet, ReplicaSet -----------------------------------------------------


def statefulset(status: Obj | None, *, replicas: int = 3, strategy: Obj | None = None) -> Obj:
    obj: Obj = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta("db"),
        "spec": {
            "replicas": replicas,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": POD_TEMPLATE,
            "updateStrategy": strategy
            or {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "podManagementPolicy": "OrderedReady",
        },
    }
    if status is not None:
        obj["status"] = status
    return obj


def sts_status(
    replicas: int = 3,
    ready: int = 3,
    current: int = 3,
    updated: int = 3,
    current_revision: str = "db-5c6f8d7b9",
    update_revision: str = "db-5c6f8d7b9",
) -> Obj:
    return {
        "observedGeneration": 1,
        "replicas": replicas,
        "readyReplicas": ready,
        "currentReplicas": current,
        "updatedReplicas": updated,
        "currentRevision": current_revision,
        "updateRevision": update_revision,
        "collisionCount": 0,
        "availableReplicas": ready,
    }


def daemonset(status: Obj | None, *, generation: int | None = 1) -> Obj:
    obj: Obj = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta("node-exporter", namespace="monitoring", generation=generation),
        "spec": {
            "selector": {"matchLabels": {"app": "node-exporter"}},
            "template": POD_TEMPLATE,
            "updateStrategy": {"type": "RollingUpdate"},
        },
    }
    if status is not None:
        obj["status"] = status
    return obj


def ds_status(
    desired: int = 3, current: int = 3, updated: int = 3, available: int = 3, ready: int = 3
) -> Obj:
    return {
        "observedGeneration": 1,
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": current,
        "updatedNumberScheduled": updated,
        "numberAvailable": available,
        "numberReady": ready,
        "numberMisscheduled": 0,
    }


def replicaset(status: Obj | None, *, replicas: int = 2) -> Obj:
    obj: Obj = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": meta("web-7d4b9c"),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": POD_TEMPLATE,
        },
    }
    if status is not None:
        obj["status"] = status
    return obj


def rs_status(
    replicas: int = 2,
    labeled: int = 2,
    available: int = 2,
    ready: int = 2,
    conditions: tuple[Obj, ...] = (),
) -> Obj:
    s: Obj = {
        "observedGeneration": 1,
        "replicas": replicas,
        "fullyLabeledReplicas": labeled,
        "readyReplicas": ready,
        "availableReplicas": available,
    }
    if conditions:
        s["conditions"] = list(conditions)
    return s


# --- Pod ----------------------------------------------------------------------------------------


def pod(
    phase: str | None,
    *conditions: Obj,
    containers: list[Obj] | None = None,
    created: str = CREATED,
    name: str = "web-7d4b9c-x2k8p",
    **meta_extra: Any,
) -> Obj:
    obj: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(
            name, generation=None, creationTimestamp=created, labels={"app": "web"}, **meta_extra
        ),
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}], "restartPolicy": "Always"},
    }
    if phase is not None:
        status: Obj = {"phase": phase, "conditions": list(conditions), "qosClass": "BestEffort"}
        if containers is not None:
            status["containerStatuses"] = containers
        obj["status"] = status
    return obj


def container(name: str, state: Obj, ready: bool = False) -> Obj:
    return {
        "name": name,
        "image": "nginx:1.27",
        "imageID": "",
        "ready": ready,
        "restartCount": 4,
        "started": False,
        "state": state,
    }


CRASHLOOP = {
    "waiting": {
        "reason": "CrashLoopBackOff",
        "message": "back-off 1m20s restarting failed container=app pod=web-7d4b9c-x2k8p_apps(6f1c)",
    }
}
RUNNING = {"running": {"startedAt": "2026-03-02T09:14:12Z"}}
UNSCHEDULABLE = cond(
    "PodScheduled", "False", "Unschedulable", "0/3 nodes are available: 3 Insufficient cpu."
)


# --- Job, batch and core odds -------------------------------------------------------------


def job(
    status: Obj | None, *, suspend: bool = False, parallelism: int | None = None, **meta_extra: Any
) -> Obj:
    spec: Obj = {
        "backoffLimit": 6,
        "completionMode": "NonIndexed",
        "suspend": suspend,
        "template": {
            "spec": {
                "containers": [{"name": "migrate", "image": "app:1"}],
                "restartPolicy": "Never",
            }
        },
    }
    if parallelism is not None:
        spec["parallelism"] = parallelism
    else:
        spec["parallelism"] = 1
        spec["completions"] = 1
    obj: Obj = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta("migrate", **meta_extra),
        "spec": spec,
    }
    if status is not None:
        obj["status"] = status
    return obj


JOB_RUNNING: Obj = {"startTime": "2026-03-02T09:14:08Z", "active": 1, "ready": 0, "terminating": 0}
JOB_COMPLETE: Obj = {
    "startTime": "2026-03-02T09:14:08Z",
    "completionTime": "2026-03-02T09:14:30Z",
    "succeeded": 1,
    "ready": 0,
    "terminating": 0,
    "conditions": [
        cond(
            "SuccessCriteriaMet",
            "True",
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        ),
        cond("Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods"),
    ],
}
JOB_FAILED: Obj = {
    "startTime": "2026-03-02T09:14:08Z",
    "failed": 7,
    "ready": 0,
    "terminating": 0,
    "conditions": [
        cond(
            "FailureTarget",
            "True",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ),
        cond(
            "Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        ),
    ],
}


def pvc(status: Obj | None) -> Obj:
    obj: Obj = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta("data", generation=None),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    if status is not None:
        obj["status"] = status
    return obj


def service(type_: str, cluster_ip: str | None) -> Obj:
    spec: Obj = {"type": type_, "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]}
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
        spec["clusterIPs"] = [cluster_ip]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("web", generation=None),
        "spec": spec,
        "status": {"loadBalancer": {}},
    }


def crd(*conditions: Obj, with_status: bool = True) -> Obj:
    obj: Obj = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": meta("widgets.example.com", namespace=None),
        "spec": {
            "group": "example.com",
            "names": {
                "kind": "Widget",
                "listKind": "WidgetList",
                "plural": "widgets",
                "singular": "widget",
            },
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": True, "storage": True}],
        },
    }
    if with_status:
        obj["status"] = {
            "acceptedNames": {"kind": "", "plural": ""},
            "conditions": list(conditions),
            "storedVersions": ["v1"],
        }
    return obj


def kustomization(*conditions: Obj, generation: int = 1, observed: int = 1) -> Obj:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": meta("infra", namespace="flux-system", generation=generation),
        "spec": {
            "interval": "10m",
            "path": "./infra",
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
        },
        "status": {"observedGeneration": observed, "conditions": list(conditions)},
    }


WIDGET: Obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}

# (id, reader, object, status, message): "compute" is kstatus Compute, "job" Flux's Job rule.
CASES: list[tuple[str, str, Obj, Status, str]] = [
    # A Deployment from apply to available, then a second rollout.
    ("deploy-created", "compute", deployment(None), Status.IN_PROGRESS, "Replicas: 0/2"),
    (
        "deploy-pods-starting",
        "compute",
        deployment(deploy_status(ready=0, available=0, conditions=(UNAVAILABLE, PROGRESSING))),
        Status.IN_PROGRESS,
        "Available: 0/2",
    ),
    (
        "deploy-one-available",
        "compute",
        deployment(deploy_status(ready=1, available=1, conditions=(UNAVAILABLE, PROGRESSING))),
        Status.IN_PROGRESS,
        "Available: 1/2",
    ),
    (
        "deploy-available-not-progressed",
        "compute",
        deployment(deploy_status(conditions=(AVAILABLE, PROGRESSING))),
        Status.IN_PROGRESS,
        "ReplicaSet not Available",
    ),
    (
        "deploy-available",
        "compute",
        deployment(deploy_status()),
        Status.CURRENT,
        "Deployment is available. Replicas: 2",
    ),
    (
        "deploy-spec-changed",
        "compute",
        deployment(deploy_status(), generation=2),
        Status.IN_PROGRESS,
        "Deployment generation is 2, but latest observed generation is 1",
    ),
    (
        "deploy-surge",
        "compute",
        deployment(
            deploy_status(observed=2, replicas=3, updated=1, conditions=(AVAILABLE, PROGRESSING)),
            generation=2,
        ),
        Status.IN_PROGRESS,
        "Updated: 1/2",
    ),
    (
        "deploy-old-pod-terminating",
        "compute",
        deployment(
            deploy_status(observed=2, replicas=3, updated=2, conditions=(AVAILABLE, PROGRESSING)),
            generation=2,
        ),
        Status.IN_PROGRESS,
        "Pending termination: 1",
    ),
    (
        "deploy-updated-not-ready",
        "compute",
        deployment(deploy_status(ready=1, available=2, conditions=(AVAILABLE, PROGRESSED))),
        Status.IN_PROGRESS,
        "Ready: 1/2",
    ),
    (
        "deploy-deadline",
        "compute",
        deployment(deploy_status(ready=1, available=1, conditions=(UNAVAILABLE, DEADLINE))),
        Status.FAILED,
        "Progress deadline exceeded",
    ),
    (
        "deploy-no-deadline-no-available",
        "compute",
        deployment(deploy_status(conditions=()), progress_deadline=None),
        Status.IN_PROGRESS,
        "Deployment not Available",
    ),
    (
        "deploy-scaled-to-zero",
        "compute",
        deployment(deploy_status(replicas=0, updated=0, ready=0, available=0), replicas=0),
        Status.CURRENT,
        "Deployment is available. Replicas: 0",
    ),
    (
        "deploy-default-one-replica",
        "compute",
        deployment(deploy_status(replicas=1, updated=1, ready=1, available=1), replicas=None),
        Status.CURRENT,
        "Deployment is available. Replicas: 1",
    ),
    # StatefulSet.
    ("sts-created", "compute", statefulset(None), Status.IN_PROGRESS, "Replicas: 0/3"),
    (
        "sts-ready-1",
        "compute",
        statefulset(sts_status(ready=1, current=1, updated=1)),
        Status.IN_PROGRESS,
        "Ready: 1/3",
    ),
    (
        "sts-extra",
        "compute",
        statefulset(sts_status(replicas=4)),
        Status.IN_PROGRESS,
        "Pending termination: 1",
    ),
    (
        "sts-partition-waiting",
        "compute",
        statefulset(
            sts_status(updated=0, update_revision="db-6d7e9f8a1"),
            strategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
        ),
        Status.IN_PROGRESS,
        "updated: 0/1",
    ),
    (
        "sts-partition-done",
        "compute",
        statefulset(
            sts_status(current=2, updated=1, update_revision="db-6d7e9f8a1"),
            strategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
        ),
        Status.CURRENT,
        "Partition rollout complete. updated: 1",
    ),
    # The API server defaults rollingUpdate.partition to 0, so a rolling StatefulSet takes the
    # partition branch: it is done once every Pod runs the new revision.
    (
        "sts-rolling",
        "compute",
        statefulset(sts_status(current=2, updated=1, update_revision="db-6d7e9f8a1")),
        Status.IN_PROGRESS,
        "updated: 1/3",
    ),
    (
        "sts-rolled",
        "compute",
        statefulset(sts_status(current=0, update_revision="db-6d7e9f8a1")),
        Status.CURRENT,
        "Partition rollout complete. updated: 3",
    ),
    # Without a partition (an object not defaulted by an API server) the revisions decide.
    (
        "sts-rolling-no-partition",
        "compute",
        statefulset(
            sts_status(current=2, updated=1, update_revision="db-6d7e9f8a1"),
            strategy={"type": "RollingUpdate"},
        ),
        Status.IN_PROGRESS,
        "current: 2/3",
    ),
    (
        "sts-revision-mismatch",
        "compute",
        statefulset(sts_status(update_revision="db-6d7e9f8a1"), strategy={"type": "RollingUpdate"}),
        Status.IN_PROGRESS,
        "Waiting for updated revision to match current",
    ),
    (
        "sts-ondelete",
        "compute",
        statefulset(sts_status(ready=0), strategy={"type": "OnDelete"}),
        Status.CURRENT,
        "StatefulSet is using the ondelete update strategy",
    ),
    (
        "sts-current",
        "compute",
        statefulset(sts_status(), strategy={"type": "RollingUpdate"}),
        Status.CURRENT,
        "All replicas scheduled as expected. Replicas: 3",
    ),
    # DaemonSet.
    (
        "ds-no-generation",
        "compute",
        daemonset(None, generation=None),
        Status.IN_PROGRESS,
        "DaemonSet metadata.generation not found",
    ),
    (
        "ds-unobserved",
        "compute",
        daemonset(None),
        Status.IN_PROGRESS,
        "DaemonSet status.observedGeneration not found",
    ),
    (
        "ds-no-desired",
        "compute",
        daemonset(
            {
                "observedGeneration": 1,
                "currentNumberScheduled": 0,
                "numberMisscheduled": 0,
                "numberReady": 0,
            }
        ),
        Status.IN_PROGRESS,
        "Missing .status.desiredNumberScheduled",
    ),
    (
        "ds-scheduling",
        "compute",
        daemonset(ds_status(current=1, updated=1, available=0, ready=0)),
        Status.IN_PROGRESS,
        "Current: 1/3",
    ),
    ("ds-updating", "compute", daemonset(ds_status(updated=2)), Status.IN_PROGRESS, "Updated: 2/3"),
    (
        "ds-available",
        "compute",
        daemonset(ds_status(available=2, ready=2)),
        Status.IN_PROGRESS,
        "Available: 2/3",
    ),
    ("ds-ready", "compute", daemonset(ds_status(ready=2)), Status.IN_PROGRESS, "Ready: 2/3"),
    (
        "ds-current",
        "compute",
        daemonset(ds_status()),
        Status.CURRENT,
        "All replicas scheduled as expected. Replicas: 3",
    ),
    # ReplicaSet.
    (
        "rs-replica-failure",
        "compute",
        replicaset(
            rs_status(
                replicas=0,
                labeled=0,
                available=0,
                ready=0,
                conditions=(
                    cond(
                        "ReplicaFailure",
                        "True",
                        "FailedCreate",
                        'pods "web-7d4b9c-" is forbidden: exceeded quota',
                    ),
                ),
            )
        ),
        Status.IN_PROGRESS,
        "Replica Failure condition. Check Pods",
    ),
    (
        "rs-labelling",
        "compute",
        replicaset(rs_status(labeled=0, available=0, ready=0)),
        Status.IN_PROGRESS,
        "Labelled: 0/2",
    ),
    (
        "rs-available",
        "compute",
        replicaset(rs_status(available=1, ready=1)),
        Status.IN_PROGRESS,
        "Available: 1/2",
    ),
    ("rs-ready", "compute", replicaset(rs_status(ready=1)), Status.IN_PROGRESS, "Ready: 1/2"),
    (
        "rs-extra",
        "compute",
        replicaset(rs_status(replicas=3)),
        Status.IN_PROGRESS,
        "Pending termination: 1",
    ),
    (
        "rs-current",
        "compute",
        replicaset(rs_status()),
        Status.CURRENT,
        "ReplicaSet is available. Replicas: 2",
    ),
    # Pod.
    ("pod-unobserved", "compute", pod(None), Status.IN_PROGRESS, "Pod phase not available"),
    ("pod-pending", "compute", pod("Pending"), Status.IN_PROGRESS, "Pod is in the Pending phase"),
    (
        "pod-unschedulable-fresh",
        "compute",
        pod("Pending", UNSCHEDULABLE, created=FAR_FUTURE),
        Status.IN_PROGRESS,
        "Pod has not been scheduled",
    ),
    (
        "pod-unschedulable",
        "compute",
        pod("Pending", UNSCHEDULABLE),
        Status.FAILED,
        "Pod could not be scheduled",
    ),
    (
        "pod-running-not-ready",
        "compute",
        pod(
            "Running",
            cond("Ready", "False", "ContainersNotReady", "containers with unready status: [app]"),
            containers=[container("app", RUNNING)],
        ),
        Status.IN_PROGRESS,
        "Pod is running but is not Ready",
    ),
    (
        "pod-crashloop",
        "compute",
        pod(
            "Running",
            cond(
                "Ready",
                "False",
                "ContainersNotReady",
                "containers with unready status: [app sidecar]",
            ),
            containers=[
                container("app", CRASHLOOP),
                container("proxy", RUNNING, True),
                container("sidecar", CRASHLOOP),
            ],
        ),
        Status.FAILED,
        "Containers in CrashLoop state: app,sidecar",
    ),
    (
        "pod-ready",
        "compute",
        pod(
            "Running",
            cond("Ready", "True"),
            cond("ContainersReady", "True"),
            containers=[container("app", RUNNING, True)],
        ),
        Status.CURRENT,
        "Pod is Ready",
    ),
    (
        "pod-succeeded",
        "compute",
        pod("Succeeded"),
        Status.CURRENT,
        "Pod has completed successfully",
    ),
    (
        "pod-failed",
        "compute",
        pod("Failed"),
        Status.CURRENT,
        "Pod has completed, but not successfully",
    ),
    (
        "pod-terminating",
        "compute",
        pod(
            "Running",
            cond("Ready", "True"),
            deletionTimestamp="2026-03-02T10:00:00Z",
            deletionGracePeriodSeconds=30,
        ),
        Status.TERMINATING,
        "Resource scheduled for deletion",
    ),
    # PVC, Service, always-ready kinds, PDB.
    ("pvc-no-status", "compute", pvc(None), Status.IN_PROGRESS, "PVC is not Bound. phase: unknown"),
    (
        "pvc-pending",
        "compute",
        pvc({"phase": "Pending"}),
        Status.IN_PROGRESS,
        "PVC is not Bound. phase: Pending",
    ),
    (
        "pvc-bound",
        "compute",
        pvc({"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}),
        Status.CURRENT,
        "PVC is Bound",
    ),
    (
        "svc-lb-no-ip",
        "compute",
        service("LoadBalancer", None),
        Status.IN_PROGRESS,
        "ClusterIP not set. Service type: LoadBalancer",
    ),
    (
        "svc-lb",
        "compute",
        service("LoadBalancer", "10.96.12.7"),
        Status.CURRENT,
        "Service is ready",
    ),
    ("svc-headless", "compute", service("ClusterIP", "None"), Status.CURRENT, "Service is ready"),
    (
        "configmap",
        "compute",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta("cfg", generation=None),
            "data": {"a": "b"},
        },
        Status.CURRENT,
        "Resource is always ready",
    ),
    (
        "secret",
        "compute",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": meta("creds", generation=None),
            "type": "Opaque",
            "data": {},
        },
        Status.CURRENT,
        "Resource is always ready",
    ),
    (
        "cronjob",
        "compute",
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": meta("backup"),
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {}}},
            "status": {},
        },
        Status.CURRENT,
        "Resource is always ready",
    ),
    (
        "pdb",
        "compute",
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta("web"),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
            "status": {
                "observedGeneration": 1,
                "currentHealthy": 2,
                "desiredHealthy": 1,
                "disruptionsAllowed": 1,
                "expectedPods": 2,
                "conditions": [cond("DisruptionAllowed", "True", "SufficientPods")],
            },
        },
        Status.CURRENT,
        "AllowedDisruptions has been computed.",
    ),
    # Jobs through kstatus itself: a running Job counts as Current there.
    ("kjob-not-started", "compute", job(None), Status.IN_PROGRESS, "Job not started"),
    (
        "kjob-running",
        "compute",
        job(JOB_RUNNING),
        Status.CURRENT,
        "Job in progress. success:0, active: 1, failed: 0",
    ),
    (
        "kjob-complete",
        "compute",
        job(JOB_COMPLETE),
        Status.CURRENT,
        "Job Completed. succeeded: 1/1",
    ),
    ("kjob-failed", "compute", job(JOB_FAILED), Status.FAILED, "Job Failed. failed: 7/1"),
    # The same Jobs through Flux's Job rule, which waits for completion.
    (
        "fjob-not-started",
        "job",
        job(None, parallelism=3),
        Status.IN_PROGRESS,
        "Job not started. active: 0/3",
    ),
    (
        "fjob-running",
        "job",
        job(JOB_RUNNING),
        Status.IN_PROGRESS,
        "Job in progress. success:0, active: 1, failed: 0",
    ),
    ("fjob-complete", "job", job(JOB_COMPLETE), Status.CURRENT, "Job Completed. succeeded: 1/1"),
    ("fjob-failed", "job", job(JOB_FAILED), Status.FAILED, "Job Failed. failed: 7/1"),
    ("fjob-suspended", "job", job(None, suspend=True), Status.CURRENT, "Job is suspended"),
    (
        "fjob-terminating-still-running",
        "job",
        job(JOB_RUNNING, deletionTimestamp="2026-03-02T10:00:00Z"),
        Status.IN_PROGRESS,
        "Job in progress. success:0, active: 1, failed: 0",
    ),
    # CustomResourceDefinition.
    ("crd-no-status", "compute", crd(with_status=False), Status.IN_PROGRESS, "Install in progress"),
    (
        "crd-installing",
        "compute",
        crd(
            cond("NamesAccepted", "True", "NoConflicts", "no conflicts found"),
            cond("Established", "False", "Installing", "the initial names have been accepted"),
        ),
        Status.IN_PROGRESS,
        "Install in progress",
    ),
    (
        "crd-established",
        "compute",
        crd(
            cond("NamesAccepted", "True", "NoConflicts", "no conflicts found"),
            cond(
                "Established",
                "True",
                "InitialNamesAccepted",
                "the initial names have been accepted",
            ),
        ),
        Status.CURRENT,
        "CRD is established",
    ),
    (
        "crd-name-conflict",
        "compute",
        crd(
            cond("NamesAccepted", "False", "ListKindConflict", '"WidgetList" is already in use'),
            cond("Established", "False", "NotAccepted", "not all names are accepted"),
        ),
        Status.FAILED,
        '"WidgetList" is already in use',
    ),
    (
        "crd-not-established",
        "compute",
        crd(cond("Established", "False", "NotAccepted", "not all names are accepted")),
        Status.FAILED,
        "not all names are accepted",
    ),
    # Flux objects: the generic conditions, then Ready.
    (
        "flux-new",
        "compute",
        kustomization(observed=-1),
        Status.IN_PROGRESS,
        "Kustomization generation is 1, but latest observed generation is -1",
    ),
    (
        "flux-reconciling",
        "compute",
        kustomization(
            cond(
                "Reconciling",
                "True",
                "Progressing",
                "Running health checks for revision main@sha1:5e2a1f0 with a timeout of 5m0s",
            ),
            cond("Ready", "Unknown", "Progressing", "Reconciliation in progress"),
        ),
        Status.IN_PROGRESS,
        "Running health checks for revision main@sha1:5e2a1f0 with a timeout of 5m0s",
    ),
    (
        "flux-stalled",
        "compute",
        kustomization(
            cond(
                "Ready",
                "False",
                "InvalidCELExpression",
                "terminal error: failed to parse expression",
            ),
            cond(
                "Stalled",
                "True",
                "InvalidCELExpression",
                "terminal error: failed to parse expression",
            ),
        ),
        Status.FAILED,
        "terminal error: failed to parse expression",
    ),
    (
        "flux-ready-false",
        "compute",
        kustomization(
            cond("Ready", "False", "BuildFailed", "kustomize build failed: accumulating resources")
        ),
        Status.IN_PROGRESS,
        "kustomize build failed: accumulating resources",
    ),
    (
        "flux-ready-unknown",
        "compute",
        kustomization(cond("Ready", "Unknown", "Progressing", "Reconciliation in progress")),
        Status.IN_PROGRESS,
        "Reconciliation in progress",
    ),
    (
        "flux-ready",
        "compute",
        kustomization(
            cond("Ready", "True", "ReconciliationSucceeded", "Applied revision: main@sha1:5e2a1f0"),
            cond("Healthy", "True", "Succeeded", "Health check passed in 2.01s"),
        ),
        Status.CURRENT,
        "Resource is Ready",
    ),
    (
        "flux-reconciling-false-ignored",
        "compute",
        kustomization(
            cond("Reconciling", "False", "Succeeded", ""),
            cond("Ready", "True", "ReconciliationSucceeded", "ok"),
        ),
        Status.CURRENT,
        "Resource is Ready",
    ),
    # Custom resources without conditions, or without status at all.
    (
        "cr-no-status",
        "compute",
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": meta("w"),
            "spec": {"size": 3},
        },
        Status.CURRENT,
        "Resource is current",
    ),
    (
        "cr-other-conditions",
        "compute",
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": meta("w"),
            "status": {
                "observedGeneration": 1,
                "conditions": [cond("Synced", "False", "Error", "boom")],
            },
        },
        Status.CURRENT,
        "Resource is current",
    ),
    (
        "cr-ready-empty-status-skipped",
        "compute",
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": meta("w"),
            "status": {"conditions": [{"type": "Ready", "status": ""}, cond("Ready", "True")]},
        },
        Status.CURRENT,
        "Resource is Ready",
    ),
    # A Service of another group is not a core Service.
    (
        "knative-service-uses-ready",
        "compute",
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": meta("hello"),
            "spec": {"template": {}},
            "status": {
                "observedGeneration": 1,
                "conditions": [
                    cond(
                        "Ready",
                        "False",
                        "RevisionMissing",
                        'Configuration "hello" does not have any ready Revision.',
                    )
                ],
            },
        },
        Status.IN_PROGRESS,
        'Configuration "hello" does not have any ready Revision.',
    ),
]


@pytest.mark.parametrize(
    ("reader", "obj", "status", "message"),
    [pytest.param(r, o, s, m, id=i) for i, r, o, s, m in CASES],
)
def test_status_and_message(reader: str, obj: Obj, status: Status, message: str) -> None:
    result = compute(obj) if reader == "compute" else compute_job(obj)
    assert (result.status, result.message) == (status, message)


def test_status_values_are_kstatus_strings() -> None:
    assert [s.value for s in Status] == [
        "InProgress",
        "Failed",
        "Current",
        "Terminating",
        "NotFound",
        "Unknown",
    ]


def test_derived_conditions() -> None:
    """InProgress carries Reconciling, Failed carries Stalled, Current and Terminating none;
    reasons are kstatus's."""
    assert compute(deployment(None)).conditions == (
        Condition("Reconciling", "True", "LessReplicas", "Replicas: 0/2"),
    )
    assert compute(deployment(deploy_status(), generation=3)).conditions == (
        Condition(
            "Reconciling",
            "True",
            "LatestGenerationNotObserved",
            "Deployment generation is 3, but latest observed generation is 1",
        ),
    )
    # The Stalled condition keeps the Deployment's own message, not kstatus's summary.
    failed = compute(
        deployment(deploy_status(ready=1, available=1, conditions=(UNAVAILABLE, DEADLINE)))
    )
    assert failed == Result(
        Status.FAILED,
        "Progress deadline exceeded",
        (
            Condition(
                "Stalled",
                "True",
                "ProgressDeadlineExceeded",
                'ReplicaSet "web-7d4b9c" has timed out progressing.',
            ),
        ),
    )
    assert compute(pod("Pending", UNSCHEDULABLE)).conditions == (
        Condition("Stalled", "True", "PodUnschedulable", "Pod could not be scheduled"),
    )
    assert compute_job(job(JOB_FAILED)).conditions == (
        Condition("Stalled", "True", "JobFailed", "Job Failed. failed: 7/1"),
    )
    assert compute_job(job(JOB_RUNNING)).conditions[0].reason == "JobInProgress"
    reconciling = compute(
        kustomization(cond("Reconciling", "True", "ProgressingWithRetry", "retrying"))
    )
    assert reconciling.conditions == (
        Condition("Reconciling", "True", "ProgressingWithRetry", "retrying"),
    )
    ready_false = compute(
        kustomization(cond("Ready", "False", "ArtifactFailed", "Source not found"))
    )
    assert ready_false.conditions == (
        Condition("Reconciling", "True", "ArtifactFailed", "Source not found"),
    )
    assert compute(deployment(deploy_status())).conditions == ()
    assert compute(pod("Running", deletionTimestamp="2026-03-02T10:00:00Z")).conditions == ()


def test_generic_rules_come_before_kind_rules() -> None:
    # A Deployment being deleted is Terminating even mid-rollout.
    obj = deployment(None)
    obj["metadata"]["deletionTimestamp"] = "2026-03-02T10:00:00Z"
    assert compute(obj).status is Status.TERMINATING
    # An empty deletionTimestamp is no deletion.
    obj["metadata"]["deletionTimestamp"] = ""
    assert compute(obj).message == "Replicas: 0/2"
    # Stalled=True on a built-in kind wins over its counters.
    sts = statefulset(sts_status())
    sts["status"]["conditions"] = [cond("Stalled", "True", "Broken", "the operator gave up")]
    assert compute(sts) == Result(
        Status.FAILED,
        "the operator gave up",
        (Condition("Stalled", "True", "Broken", "the operator gave up"),),
    )
    # The first of Reconciling/Stalled in list order decides.
    both = kustomization(
        cond("Stalled", "True", "A", "stalled"), cond("Reconciling", "True", "B", "busy")
    )
    assert compute(both).status is Status.FAILED
    # A Ready condition never overrides a kind rule: a Pod's Ready=True alone is not Current.
    assert compute(pod("Pending", cond("Ready", "True"))).message == "Pod is in the Pending phase"


def test_flux_job_rule_skips_generic_checks() -> None:
    """Flux reads Jobs with its own rule only, so neither deletion nor a stale
    observedGeneration changes the verdict, unlike kstatus Compute."""
    deleting = job(JOB_COMPLETE, deletionTimestamp="2026-03-02T10:00:00Z")
    assert compute(deleting).status is Status.TERMINATING
    assert compute_job(deleting).status is Status.CURRENT
    assert read_status(ObjRef.of(deleting), deleting).status is Status.CURRENT


def test_pod_scheduling_window() -> None:
    created = datetime(2026, 3, 2, 9, 14, 7, tzinfo=UTC)
    obj = pod("Pending", UNSCHEDULABLE)
    assert compute(obj, now=created + timedelta(seconds=14)).status is Status.IN_PROGRESS
    assert compute(obj, now=created + timedelta(seconds=15)).status is Status.FAILED
    # A naive clock is read as UTC.
    assert compute(obj, now=datetime(2026, 3, 2, 9, 14, 10)).status is Status.IN_PROGRESS
    # Fractional seconds in the timestamp are honoured.
    obj["metadata"]["creationTimestamp"] = "2026-03-02T09:14:07.900000001Z"
    assert (
        compute(obj, now=created + timedelta(seconds=15, milliseconds=500)).status
        is Status.IN_PROGRESS
    )
    # An unreadable creation time is Go's zero time: long past the window.
    obj["metadata"]["creationTimestamp"] = "yesterday"
    assert compute(obj, now=created).status is Status.FAILED
    # Unschedulable only counts while PodScheduled is False with that reason.
    other = pod("Pending", cond("PodScheduled", "False", "SchedulingGated", "gated"))
    assert compute(other, now=created + timedelta(hours=1)).message == "Pod is in the Pending phase"


def test_values_of_the_wrong_type() -> None:
    """Go ignores a counter that is not an integer (GetIntField falls back to its default), but
    Compute fails on malformed generations and conditions."""
    obj = deployment(deploy_status())
    obj["status"]["availableReplicas"] = 2.0  # a JSON float is never an int64 in Go
    assert compute(obj).message == "Available: 0/2"
    obj["status"]["availableReplicas"] = True
    assert compute(obj).message == "Available: 0/2"
    cases: list[tuple[Obj, str]] = [
        (
            {**deployment(None), "metadata": {"name": "web", "generation": "1"}},
            "looking up metadata.generation from resource: .metadata.generation accessor error:"
            " 1 is of the type string, expected int64",
        ),
        (
            {**deployment(None), "metadata": {"name": "web", "deletionTimestamp": 5}},
            "looking up metadata.deletionTimestamp from resource: .metadata.deletionTimestamp"
            " accessor error: 5 is of the type int64, expected string",
        ),
        (
            {
                **deployment(None),
                "metadata": {"name": "web", "generation": 1},
                "status": {"observedGeneration": None},
            },
            "looking up status.observedGeneration from resource: .status.observedGeneration"
            " accessor error: <nil> is of the type <nil>, expected int64",
        ),
        (kustomization() | {"status": {"conditions": "Ready"}}, "cannot restore slice from string"),
        (
            kustomization() | {"status": ["Ready"]},
            "looking up status.observedGeneration from resource: .status.observedGeneration"
            " accessor error: [Ready] is of the type []interface {},"
            " expected map[string]interface{}",
        ),
        (WIDGET | {"status": ["Ready"]}, "cannot restore struct from: slice"),
        (
            WIDGET | {"metadata": {"name": "w", "generation": 1}, "status": [1, {"b": None}]},
            "looking up status.observedGeneration from resource: .status.observedGeneration"
            " accessor error: [1 map[b:<nil>]] is of the type []interface {},"
            " expected map[string]interface{}",
        ),
        (
            pod("Running") | {"status": {"phase": "Running", "containerStatuses": {"app": 1}}},
            ".status.containerStatuses accessor error: map[app:1] is of the type"
            " map[string]interface {}, expected []interface{}",
        ),
        (
            kustomization() | {"status": {"conditions": ["Ready"]}},
            "cannot restore struct from: string",
        ),
        (
            kustomization() | {"status": {"conditions": [{"type": "Ready", "status": True}]}},
            "unrecognized type: string",
        ),
        (
            kustomization() | {"status": {"conditions": [{"type": "Ready", "status": 1}]}},
            "cannot convert int64 to v1.ConditionStatus",
        ),
        (
            kustomization() | {"status": {"conditions": [{"type": 7}]}},
            "cannot convert int64 to string",
        ),
        (pod("Unknown"), "unknown phase Unknown"),
    ]
    for bad, message in cases:
        with pytest.raises(StatusError) as e:
            compute(bad)
        assert str(e.value) == message
    # Nulls are empty, as Go's converter makes them.
    nulls = kustomization() | {
        "status": {"conditions": [None, {"type": "Ready", "status": "True", "reason": None}]}
    }
    assert compute(nulls).message == "Resource is Ready"
    assert compute(
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": None, "status": None}
    ).message == ("Resource is current")
    # A malformed crash-looping entry is an error (Go would panic), not a silent pass.
    broken = pod("Running", containers=[{"name": "app", "state": {"waiting": None}}])
    with pytest.raises(StatusError):
        compute(broken)


def test_api_version_decides_the_rule() -> None:
    # extensions/v1beta1 workloads share the apps rules.
    legacy = deployment(None)
    legacy["apiVersion"] = "extensions/v1beta1"
    assert compute(legacy).message == "Replicas: 0/2"
    # A malformed apiVersion hides the kind from kstatus entirely.
    odd = deployment(None)
    odd["apiVersion"] = "apps/v1/extra"
    assert compute(odd).message == "Resource is current"
    # The kind rule needs the right group: a "Deployment" of another group is generic.
    other = deployment(None)
    other["apiVersion"] = "example.com/v1"
    assert compute(other).message == "Resource is current"


# --- Flux's reader chain --------------------------------------------------------------------


def test_read_status_not_found_and_unknown() -> None:
    ref = ObjRef("apps", "Deployment", "apps", "web")
    assert read_status(ref, None) == ResourceStatus(ref, Status.NOT_FOUND, "Resource not found")
    assert not_found() == Result(Status.NOT_FOUND, "Resource not found")
    bad = kustomization() | {"status": {"conditions": "Ready"}}
    kref = ObjRef.of(bad)
    assert read_status(kref, bad) == ResourceStatus(
        kref, Status.UNKNOWN, "", "cannot restore slice from string"
    )
    assert read_status(ref, deployment(deploy_status())) == ResourceStatus(
        ref, Status.CURRENT, "Deployment is available. Replicas: 2"
    )


def test_read_status_job_waits_for_completion() -> None:
    obj = job(JOB_RUNNING)
    ref = ObjRef.of(obj)
    assert ref == ObjRef("batch", "Job", "apps", "migrate")
    assert read_status(ref, obj).status is Status.IN_PROGRESS
    assert compute(obj).status is Status.CURRENT


def test_failed_pods_fail_their_statefulset_or_replicaset() -> None:
    sts = statefulset(sts_status(ready=1, current=1, updated=1))
    ref = ObjRef.of(sts)
    crashing = pod(
        "Running",
        cond("Ready", "False"),
        containers=[container("app", CRASHLOOP)],
        name="db-1",
    )
    waiting = pod("Pending", UNSCHEDULABLE, name="db-2")
    ready = pod("Running", cond("Ready", "True"), name="db-0")
    assert read_status(ref, sts, pods=[ready, crashing, waiting]) == ResourceStatus(
        ref, Status.FAILED, "1 pods have failed"
    )
    # Unschedulable and terminating pods may still come good: no escalation.
    gone = pod(
        "Running",
        containers=[container("app", CRASHLOOP)],
        name="db-1",
        deletionTimestamp="2026-03-02T10:00:00Z",
    )
    assert read_status(ref, sts, pods=[ready, waiting, gone]).status is Status.IN_PROGRESS
    # Only an InProgress controller is escalated.
    done = statefulset(sts_status())
    assert read_status(ObjRef.of(done), done, pods=[crashing]).status is Status.CURRENT
    rs = replicaset(rs_status(available=1, ready=1))
    assert read_status(ObjRef.of(rs), rs, pods=[crashing, crashing]).message == "2 pods have failed"
    # Deployments are read without escalation, whatever their pods do.
    dep = deployment(deploy_status(ready=1, available=1, conditions=(UNAVAILABLE, PROGRESSING)))
    assert read_status(ObjRef.of(dep), dep, pods=[crashing]).status is Status.IN_PROGRESS


def test_obj_ref_format() -> None:
    assert str(ObjRef("apps", "Deployment", "apps", "web")) == "Deployment/apps/web"
    assert str(ObjRef.of(crd())) == "CustomResourceDefinition/widgets.example.com"
    assert ObjRef.of(crd()).group == "apiextensions.k8s.io"
    assert ObjRef.of(pvc(None)) == ObjRef("", "PersistentVolumeClaim", "apps", "data")


# --- aggregation and the wait ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], Status.CURRENT),
        ([Status.CURRENT, Status.CURRENT], Status.CURRENT),
        ([Status.CURRENT, Status.IN_PROGRESS], Status.IN_PROGRESS),
        ([Status.NOT_FOUND, Status.CURRENT], Status.IN_PROGRESS),
        ([Status.TERMINATING], Status.IN_PROGRESS),
        ([Status.UNKNOWN, Status.IN_PROGRESS], Status.UNKNOWN),
        ([Status.UNKNOWN, Status.FAILED], Status.FAILED),
    ],
)
def test_aggregate_status(statuses: list[Status], expected: Status) -> None:
    assert aggregate_status(statuses) is expected


WEB = ObjRef("apps", "Deployment", "apps", "web")
DB = ObjRef("apps", "StatefulSet", "apps", "db")
MIGRATE = ObjRef("batch", "Job", "apps", "migrate")
WIDGETS = ObjRef("apiextensions.k8s.io", "CustomResourceDefinition", "", "widgets.example.com")


def rs(ref: ObjRef, status: Status, message: str = "", error: str | None = None) -> ResourceStatus:
    return ResourceStatus(ref, status, message, error)


def test_wait_healthy_when_all_current() -> None:
    check = HealthCheck([WEB, DB])
    assert not check.observe(rs(WEB, Status.CURRENT))
    assert check.observe(rs(DB, Status.CURRENT))
    assert check.error(timed_out=False) is None


def test_wait_timeout_lists_every_object_not_current() -> None:
    check = HealthCheck([WEB, DB, WIDGETS])
    check.observe(rs(WEB, Status.IN_PROGRESS, "Available: 1/2"))
    check.observe(rs(DB, Status.CURRENT))
    assert not check.observe(rs(WIDGETS, Status.NOT_FOUND, "Resource not found"))
    assert check.error(timed_out=True) == (
        "timeout waiting for: [Deployment/apps/web status: 'InProgress', "
        "CustomResourceDefinition/widgets.example.com status: 'NotFound']"
    )


def test_hopeless_statuses_end_the_wait_with_their_message() -> None:
    """The CRD/Namespace stage: an object being deleted, or gone, will not turn Current."""
    check = HealthCheck([WIDGETS, DB], hopeless=(Status.TERMINATING, Status.NOT_FOUND))
    check.observe(rs(DB, Status.CURRENT))
    assert check.observe(rs(WIDGETS, Status.TERMINATING, "Resource scheduled for deletion"))
    assert check.error(timed_out=False) == (
        "failed early due to stalled resources: [CustomResourceDefinition/widgets.example.com "
        "status: 'Terminating': Resource scheduled for deletion]"
    )
    # Elsewhere Terminating is only "not yet" and the wait goes on.
    patient = HealthCheck([WIDGETS])
    assert not patient.observe(rs(WIDGETS, Status.TERMINATING, "Resource scheduled for deletion"))


def test_wait_fails_fast() -> None:
    check = HealthCheck([WEB, MIGRATE, DB])
    check.observe(rs(WEB, Status.IN_PROGRESS))
    assert check.observe(rs(MIGRATE, Status.FAILED, "Job Failed. failed: 7/1"))
    # Only failures are listed when the wait ends early; DB was never read.
    assert check.error(timed_out=False) == (
        "failed early due to stalled resources: [Job/apps/migrate status: 'Failed']"
    )
    assert [s.status for s in check.statuses] == [Status.IN_PROGRESS, Status.FAILED, Status.UNKNOWN]


def test_wait_without_fail_fast_stops_once_only_failed_and_current_remain() -> None:
    check = HealthCheck([WEB, MIGRATE], fail_fast=False)
    check.observe(rs(WEB, Status.IN_PROGRESS))
    assert not check.observe(rs(MIGRATE, Status.FAILED))
    assert check.observe(rs(WEB, Status.CURRENT))
    assert check.error(timed_out=False) == (
        "failed early due to stalled resources: [Job/apps/migrate status: 'Failed']"
    )
    # At the deadline failed and waiting objects are both listed.
    late = HealthCheck([WEB, MIGRATE], fail_fast=False)
    late.observe(rs(WEB, Status.IN_PROGRESS))
    late.observe(rs(MIGRATE, Status.FAILED))
    assert late.error(timed_out=True) == (
        "timeout waiting for: [Deployment/apps/web status: 'InProgress', "
        "Job/apps/migrate status: 'Failed']"
    )


def test_wait_keeps_waiting_for_missing_and_unread_objects() -> None:
    check = HealthCheck([WEB, DB])
    assert not check.observe(rs(WEB, Status.CURRENT))
    # DB has not been read: it is Unknown, which is not terminal.
    assert not check.finished()
    assert (
        check.error(timed_out=True)
        == "timeout waiting for: [StatefulSet/apps/db status: 'Unknown']"
    )
    assert not check.observe(rs(DB, Status.NOT_FOUND, "Resource not found"))
    assert not check.observe(rs(DB, Status.TERMINATING))


def test_wait_reports_read_errors() -> None:
    check = HealthCheck([WEB])
    check.observe(rs(WEB, Status.UNKNOWN, error="cannot restore slice from string"))
    assert not check.finished()
    assert check.error(timed_out=True) == (
        "timeout waiting for: [Deployment/apps/web status: 'Unknown': "
        "cannot restore slice from string]"
    )


def test_wait_with_nothing_read() -> None:
    check = HealthCheck([WEB, MIGRATE], jobs_with_ttl=[MIGRATE])
    assert not check.finished()
    assert (
        check.error(timed_out=True)
        == "timeout waiting for: [can't determine status for Deployment/apps/web]"
    )


def test_wait_counts_vanished_ttl_jobs_as_done() -> None:
    check = HealthCheck([WEB, MIGRATE], jobs_with_ttl=[MIGRATE])
    check.observe(rs(WEB, Status.CURRENT))
    assert check.observe(rs(MIGRATE, Status.NOT_FOUND, "Resource not found"))
    assert check.error(timed_out=False) is None
    # Without the TTL a missing Job is waited for.
    plain = HealthCheck([WEB, MIGRATE])
    plain.observe(rs(WEB, Status.CURRENT))
    assert not plain.observe(rs(MIGRATE, Status.NOT_FOUND))


def test_wait_edge_cases() -> None:
    empty = HealthCheck([])
    assert empty.finished()
    assert empty.error(timed_out=True) is None
    dup = HealthCheck([WEB, WEB])
    assert dup.refs == (WEB,)
    assert dup.observe(rs(WEB, Status.CURRENT))
    with pytest.raises(KeyError):
        dup.observe(rs(DB, Status.CURRENT))


def test_health_check_messages() -> None:
    err = "timeout waiting for: [Deployment/apps/web status: 'InProgress']"
    assert health_check_failed_message(300.004, err) == (
        "health check failed after 5m0.004s: "
        "timeout waiting for: [Deployment/apps/web status: 'InProgress']"
    )
    assert health_check_passed_message(2.010562317) == "Health check passed in 2.010562317s"


def test_end_to_end_rollout_through_the_wait() -> None:
    """A Deployment and a migration Job polled three times, as kustomize-controller would."""
    polls = [
        (deployment(None), job(None)),
        (
            deployment(deploy_status(ready=1, available=1, conditions=(UNAVAILABLE, PROGRESSING))),
            job(JOB_RUNNING),
        ),
        (deployment(deploy_status()), job(JOB_COMPLETE)),
    ]
    check = HealthCheck([ObjRef.of(polls[0][0]), ObjRef.of(polls[0][1])])
    finished_at = None
    for n, objects in enumerate(polls):
        for obj in objects:
            if check.observe(read_status(ObjRef.of(obj), obj)):
                finished_at = n
                break
        if finished_at is not None:
            break
    assert finished_at == 2
    assert check.error(timed_out=False) is None


# --- the Go oracle --------------------------------------------------------------------------

ORACLE = Path(__file__).parent / "kstatus_oracle"


def python_answer(reader: str, obj: Obj) -> dict[str, Any]:
    try:
        result = compute(obj) if reader == "compute" else compute_job(obj)
    except StatusError as e:
        if reader == "job":
            # ComputeJobStatus folds errors into an Unknown result.
            return {
                "status": "Unknown",
                "message": f"Failed to compute job status: {e}",
                "conditions": [],
            }
        return {"message": "", "conditions": [], "error": str(e)}
    return {
        "status": result.status.value,
        "message": result.message,
        "conditions": [
            {"type": c.type, "status": c.status, "reason": c.reason, "message": c.message}
            for c in result.conditions
        ],
    }


ORACLE_EXTRA: list[tuple[str, str, Obj]] = [
    (
        "err-generation",
        "compute",
        {**deployment(None), "metadata": {"name": "web", "generation": "1"}},
    ),
    (
        "err-deletion",
        "compute",
        {**deployment(None), "metadata": {"name": "web", "deletionTimestamp": 5}},
    ),
    (
        "err-observed-null",
        "compute",
        {
            **deployment(None),
            "metadata": {"name": "web", "generation": 1},
            "status": {"observedGeneration": None},
        },
    ),
    ("err-conditions-string", "compute", kustomization() | {"status": {"conditions": "Ready"}}),
    ("err-status-list-generation", "compute", kustomization() | {"status": ["Ready"]}),
    ("err-status-list", "compute", WIDGET | {"status": ["Ready"]}),
    (
        "err-status-nested",
        "compute",
        WIDGET | {"metadata": {"name": "w", "generation": 1}, "status": [1, {"b": None}]},
    ),
    (
        "err-container-statuses",
        "compute",
        pod("Running") | {"status": {"phase": "Running", "containerStatuses": {"app": 1}}},
    ),
    ("err-condition-string", "compute", kustomization() | {"status": {"conditions": ["Ready"]}}),
    (
        "err-condition-bool",
        "compute",
        kustomization() | {"status": {"conditions": [{"type": "Ready", "status": True}]}},
    ),
    (
        "err-condition-int",
        "compute",
        kustomization() | {"status": {"conditions": [{"type": "Ready", "status": 1}]}},
    ),
    (
        "err-condition-type-int",
        "compute",
        kustomization() | {"status": {"conditions": [{"type": 7}]}},
    ),
    ("err-pod-phase", "compute", pod("Unknown")),
    ("err-job-conditions", "job", job(None) | {"status": {"conditions": "Complete"}}),
    ("float-counter", "compute", deployment(deploy_status() | {"availableReplicas": 2.0})),
    (
        "null-conditions",
        "compute",
        kustomization()
        | {"status": {"conditions": [None, {"type": "Ready", "status": "True", "reason": None}]}},
    ),
    (
        "null-metadata",
        "compute",
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": None, "status": None},
    ),
    ("bad-api-version", "compute", deployment(None) | {"apiVersion": "apps/v1/extra"}),
    ("extensions-deployment", "compute", deployment(None) | {"apiVersion": "extensions/v1beta1"}),
    ("job-suspend-string", "job", job(None) | {"spec": {"suspend": "true", "parallelism": 2}}),
]


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go is not installed")
    binary = tmp_path_factory.mktemp("kstatus-oracle") / "oracle"
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly -buildvcs=false"}
    build = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=ORACLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr
    yield binary


@pytest.mark.slow
def test_matches_flux_go_code(oracle: Path) -> None:
    table = [(i, r, o) for i, r, o, _, _ in CASES] + ORACLE_EXTRA
    requests = "".join(json.dumps({"reader": r, "object": o}) + "\n" for _, r, o in table)
    run = subprocess.run([str(oracle)], input=requests, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    answers = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(answers) == len(table)
    mismatches = {
        case_id: (go, python_answer(reader, obj))
        for (case_id, reader, obj), go in zip(table, answers, strict=True)
        if go != python_answer(reader, obj)
    }
    assert not mismatches
