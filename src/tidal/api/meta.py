"""Types shared by every Flux API group (fluxcd/pkg/apis/meta): conditions, artifacts,
references, history snapshots, and the condition types and reasons controllers report."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from tidal.api.base import Model, field

# Condition types (meta.ReadyCondition and friends).
READY: Final = "Ready"
RECONCILING: Final = "Reconciling"
STALLED: Final = "Stalled"
HEALTHY: Final = "Healthy"

# Generic reasons.
SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"
PROGRESSING: Final = "Progressing"
PROGRESSING_WITH_RETRY: Final = "ProgressingWithRetry"
SUSPENDED: Final = "Suspended"
DEPENDENCY_NOT_READY: Final = "DependencyNotReady"
INVALID_PATH: Final = "InvalidPath"
INVALID_URL: Final = "InvalidURL"
INSECURE_CONNECTIONS_DISALLOWED: Final = "InsecureConnectionsDisallowed"
UNSUPPORTED_CONNECTION_TYPE: Final = "UnsupportedConnectionType"
PRUNE_FAILED: Final = "PruneFailed"
ARTIFACT_FAILED: Final = "ArtifactFailed"
BUILD_FAILED: Final = "BuildFailed"
HEALTH_CHECK_FAILED: Final = "HealthCheckFailed"
HEALTH_CHECK_CANCELED: Final = "HealthCheckCanceled"
RECONCILIATION_SUCCEEDED: Final = "ReconciliationSucceeded"
RECONCILIATION_FAILED: Final = "ReconciliationFailed"
INVALID_CEL_EXPRESSION: Final = "InvalidCELExpression"
FEATURE_GATE_DISABLED: Final = "FeatureGateDisabled"
# fluxcd/pkg/apis/acl: a cross-namespace reference the controller was told to refuse.
ACCESS_DENIED: Final = "AccessDenied"

# Annotations and labels shared across controllers.
RECONCILE_REQUEST_ANNOTATION: Final = "reconcile.fluxcd.io/requestedAt"
FORCE_REQUEST_ANNOTATION: Final = "reconcile.fluxcd.io/forceAt"
RESET_REQUEST_ANNOTATION: Final = "reconcile.fluxcd.io/resetAt"
# ConfigMaps and Secrets with this label trigger a reconcile of the objects referring to them.
WATCH_LABEL: Final = "reconcile.fluxcd.io/watch"
WATCH_LABEL_ENABLED: Final = "Enabled"

# Keys of the ConfigMap a KubeConfigReference.configMapRef names (secret-less remote access).
KUBECONFIG_KEY_PROVIDER: Final = "provider"
KUBECONFIG_KEY_CLUSTER: Final = "cluster"
KUBECONFIG_KEY_ADDRESS: Final = "address"
KUBECONFIG_KEY_CA_CERT: Final = "ca.crt"
KUBECONFIG_KEY_AUDIENCES: Final = "audiences"
KUBECONFIG_KEY_SERVICE_ACCOUNT_NAME: Final = "serviceAccountName"

# How many snapshots status.history keeps, newest first.
HISTORY_MAX_SIZE: Final = 5

_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
CONDITION_TYPE_PATTERN: Final = rf"^({_DNS_SUBDOMAIN}/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
CONDITION_REASON_PATTERN: Final = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
DIGEST_PATTERN: Final = r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$"


class Condition(Model):
    """One aspect of an object's observed state (metav1.Condition)."""

    type: Annotated[
        str,
        field(
            "The aspect this condition describes, in CamelCase (Ready, Reconciling, ...).",
            max_length=316,
            pattern=CONDITION_TYPE_PATTERN,
        ),
    ]
    status: Annotated[Literal["True", "False", "Unknown"], field("Whether the condition holds.")]
    last_transition_time: Annotated[
        str,
        field(
            "When the status last changed, in RFC 3339.",
            extra={"format": "date-time"},
        ),
    ]
    reason: Annotated[
        str,
        field(
            "Why the condition last changed, as a CamelCase identifier.",
            min_length=1,
            max_length=1024,
            pattern=CONDITION_REASON_PATTERN,
        ),
    ]
    # Always written, even when empty: Kubernetes requires the key.
    message: Annotated[str, field("What happened, for a person to read.", max_length=32768)]
    observed_generation: Annotated[
        int,
        field(
            "The metadata.generation this condition was computed from.",
            ge=0,
            extra={"format": "int64"},
        ),
    ] = 0


class Artifact(Model):
    """A file produced by a source and served over HTTP for consumers to download."""

    path: Annotated[str, field("Where the artifact sits in the storage, relative to its root.")]
    url: Annotated[str, field("The HTTP address the artifact can be downloaded from.")]
    revision: Annotated[
        str,
        field("What the artifact was built from, traceable in the origin, e.g. main@sha1:<hash>."),
    ]
    digest: Annotated[
        str,
        field(
            "The algorithm and hex hash of the file: <algorithm>:<hash>.", pattern=DIGEST_PATTERN
        ),
    ]
    last_update_time: Annotated[
        str, field("When the artifact was written.", extra={"format": "date-time"})
    ]
    size: Annotated[
        int | None, field("The size of the file in bytes.", extra={"format": "int64"})
    ] = None
    metadata: Annotated[
        dict[str, str], field("Extra information about the artifact, e.g. OCI annotations.")
    ] = {}

    # Plain string equality, as Flux's HasRevision/HasDigest: no parsing of legacy forms.
    def has_revision(self, revision: str) -> bool:
        return self.revision == revision

    def has_digest(self, digest: str) -> bool:
        return self.digest == digest


class LocalObjectReference(Model):
    """A reference to an object in the same namespace."""

    name: Annotated[str, field("The name of the referent.")]


class NamespacedObjectKindReference(Model):
    """A typed reference to an object in any namespace."""

    kind: Annotated[str, field("The kind of the referent.")]
    name: Annotated[str, field("The name of the referent.")]
    api_version: Annotated[
        str, field("The referent's API version; the cluster's preferred version when unset.")
    ] = ""
    namespace: Annotated[
        str, field("The namespace of the referent; the referring object's own when unset.")
    ] = ""


class DependencyReference(Model):
    """An object that must be ready first, optionally judged by a CEL expression."""

    name: Annotated[str, field("The name of the referent.")]
    namespace: Annotated[
        str, field("The namespace of the referent; the referring object's own when unset.")
    ] = ""
    ready_expr: Annotated[
        str,
        field(
            "A CEL expression over `self` and `dep` deciding whether the dependency is "
            "ready; it replaces the built-in check unless the AdditiveCELDependencyCheck "
            "feature gate makes it an extra condition."
        ),
    ] = ""

    def __str__(self) -> str:
        # The `[namespace/]name[@readyExpr]` form the CLI accepts.
        text = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{text}@{self.ready_expr}" if self.ready_expr else text


class SecretKeyReference(Model):
    """A Secret in the same namespace, and optionally one of its keys."""

    name: Annotated[str, field("The name of the Secret.")]
    key: Annotated[
        str, field("The key in the Secret; a default chosen by the consumer when unset.")
    ] = ""


# Go declares this rule on the type, so every field of that type carries it.
KUBECONFIG_RULES: Final = (
    {
        "message": "exactly one of spec.kubeConfig.configMapRef or spec.kubeConfig.secretRef "
        "must be specified",
        "rule": "has(self.configMapRef) != has(self.secretRef)",
    },
)


class KubeConfigReference(Model):
    """How to reach a remote cluster: a kubeconfig in a Secret, or a ConfigMap describing a
    cloud cluster reached with workload identity. Exactly one of the two."""

    config_map_ref: Annotated[
        LocalObjectReference | None,
        field(
            "A ConfigMap with the keys `provider` (aws, azure, gcp or generic; required), "
            "`cluster` (the cluster's resource name at the cloud provider), `address` (the API "
            "server's URL; required for generic), `ca.crt` (its CA in PEM), "
            "`serviceAccountName` (whose identity to use) and `audiences` (for the token). "
            "Excludes secretRef."
        ),
    ] = None
    secret_ref: Annotated[
        SecretKeyReference | None,
        field(
            "A Secret holding a self-contained kubeconfig under `key` (`value` or "
            "`value.yaml` when unset); re-read at every reconciliation. Excludes configMapRef."
        ),
    ] = None


class Snapshot(Model):
    """One outcome of reconciling a set of objects: when it was first and last seen, how
    long the last run took, and how often it happened."""

    digest: Annotated[str, field("The checksum of the applied objects, as <algo>:<hex>.")]
    first_reconciled: Annotated[
        str, field("When this outcome was first reached.", extra={"format": "date-time"})
    ]
    last_reconciled: Annotated[
        str, field("When this outcome was last reached.", extra={"format": "date-time"})
    ]
    last_reconciled_duration: Annotated[
        str, field("How long the last reconciliation took, as a Go duration.")
    ]
    last_reconciled_status: Annotated[
        str, field("The reason the last reconciliation ended with, e.g. ReconciliationSucceeded.")
    ]
    total_reconciliations: Annotated[
        int,
        field("How many reconciliations reached this outcome.", extra={"format": "int64"}),
    ]
    metadata: Annotated[
        dict[str, str], field("Extra facts about the outcome, e.g. the source revision.")
    ] = {}
