"""The objects `tidal install` puts into a cluster, generated in code like the CRDs.

One Deployment runs `tidal controller` (every controller in one process, DESIGN.md "Process
model"). A Service named `source-controller` fronts its artifact server on port 80, so the
artifact URLs it advertises are the ones Flux's own consumers expect. The pod runs with the
restricted Pod Security Standard: non-root, read-only root filesystem, no capabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from tidal import __version__
from tidal.api import crd

NAME: Final = "tidal-controller"
DEFAULT_REGISTRY: Final = "ghcr.io/tidal-gitops"
PART_OF: Final = "tidal"


@dataclass(frozen=True)
class InstallOptions:
    namespace: str = "flux-system"
    registry: str = DEFAULT_REGISTRY
    version: str = __version__
    image_pull_secret: str = ""
    watch_all_namespaces: bool = True
    log_level: str = "info"
    cluster_domain: str = "cluster.local"
    toleration_keys: tuple[str, ...] = field(default_factory=tuple)

    @property
    def image(self) -> str:
        return f"{self.registry.rstrip('/')}/tidal:v{self.version.lstrip('v')}"


def _labels(o: InstallOptions, component: str | None = None) -> dict[str, str]:
    labels = {
        "app.kubernetes.io/instance": o.namespace,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/version": f"v{o.version.lstrip('v')}",
    }
    if component:
        labels["app.kubernetes.io/component"] = component
    return labels


def _meta(o: InstallOptions, name: str, namespaced: bool = True, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": _labels(o, extra.pop("component", None))}
    if namespaced:
        meta["namespace"] = o.namespace
    meta.update(extra)
    return meta


def namespace(o: InstallOptions) -> dict[str, Any]:
    meta = _meta(o, o.namespace, namespaced=False)
    # The controller's pod meets the restricted standard; say so, so the namespace enforces it.
    meta["labels"]["pod-security.kubernetes.io/warn"] = "restricted"
    meta["labels"]["pod-security.kubernetes.io/warn-version"] = "latest"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def _binding(o: InstallOptions, name: str, role: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _meta(o, name, namespaced=False),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": o.namespace}],
    }


def rbac(o: InstallOptions) -> list[dict[str, Any]]:
    groups = sorted({k.group for k in crd.KINDS})
    # What the runtime itself needs (its own kinds, credentials, events, the leader Lease),
    # spelled out so it stays visible what the controllers use beyond applying manifests.
    rules = [
        {"apiGroups": groups, "resources": ["*"], "verbs": ["*"]},
        {"apiGroups": [""], "resources": ["secrets", "configmaps"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
    ]  # fmt: skip
    own_role = f"{NAME}-{o.namespace}"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(o, NAME)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(o, own_role, namespaced=False),
            "rules": rules,
        },
        _binding(o, own_role, own_role),
        # Kustomizations apply whatever kinds a repository declares, RBAC objects included,
        # which Kubernetes only lets an identity grant when it holds those permissions itself,
        # and they impersonate spec.serviceAccountName. So, as Flux binds kustomize-controller,
        # the controller is cluster-admin; tenants are confined by the ServiceAccount a
        # Kustomization impersonates, not by the controller's own role.
        _binding(o, f"{NAME}-reconciler-{o.namespace}", "cluster-admin"),
    ]


def service(o: InstallOptions) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(o, "source-controller", component="source-controller"),
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": NAME},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}],
        },
    }


def deployment(o: InstallOptions) -> dict[str, Any]:
    advertised = f"source-controller.$(RUNTIME_NAMESPACE).svc.{o.cluster_domain}."
    args = [
        "--namespace=$(RUNTIME_NAMESPACE)",
        "controller",
        "--storage-path=/data",
        "--storage-addr=:9090",
        f"--storage-adv-addr={advertised}",
        "--metrics-addr=:8080",
        "--health-addr=:9440",
        "--enable-leader-election",
        "--git-cache-path=/tmp/git",
        f"--log-level={o.log_level}",
        "--log-encoding=json",
        "--watch-all-namespaces" if o.watch_all_namespaces else "--no-watch-all-namespaces",
    ]
    container = {
        "name": "manager",
        "image": o.image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "env": [
            {"name": "RUNTIME_NAMESPACE",
             "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "TMPDIR", "value": "/tmp"},  # noqa: S108 - the pod's own emptyDir
        ],
        "ports": [
            {"containerPort": 9090, "name": "http", "protocol": "TCP"},
            {"containerPort": 8080, "name": "http-prom", "protocol": "TCP"},
            {"containerPort": 9440, "name": "healthz", "protocol": "TCP"},
        ],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "healthz"}},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "healthz"}},
        "resources": {
            "limits": {"cpu": "1000m", "memory": "1Gi"},
            "requests": {"cpu": "50m", "memory": "64Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the pod's own emptyDir
        ],
    }  # fmt: skip
    pod_spec: dict[str, Any] = {
        "serviceAccountName": NAME,
        "terminationGracePeriodSeconds": 60,
        "securityContext": {"fsGroup": 1337},
        "containers": [container],
        "volumes": [
            {"name": "data", "emptyDir": {}},
            # Mirrors and temporary files live in memory: small-file writes on disk dominate
            # Git work (docs/decisions.md, Git).
            {"name": "tmp", "emptyDir": {"medium": "Memory"}},
        ],
    }
    if o.image_pull_secret:
        pod_spec["imagePullSecrets"] = [{"name": o.image_pull_secret}]
    if o.toleration_keys:
        pod_spec["tolerations"] = [{"key": key, "operator": "Exists"} for key in o.toleration_keys]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(o, NAME, component="controller"),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": NAME}},
            "template": {
                "metadata": {
                    "labels": {"app": NAME, **_labels(o, "controller")},
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"},
                },
                "spec": pod_spec,
            },
        },
    }


def all_objects(o: InstallOptions) -> list[dict[str, Any]]:
    """In apply order: CRDs and the namespace first, then what lives in it."""
    return [
        *(crd.crd(k) for k in crd.KINDS),
        namespace(o),
        *rbac(o),
        service(o),
        deployment(o),
    ]
