"""Types shared by every Flux API group (fluxcd/pkg/apis/meta): conditions, artifacts,
references, and the condition types and reasons controllers report."""

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
ARTIFACT_FAILED: Final = "ArtifactFailed"

# Annotations and labels shared across controllers.
RECONCILE_REQUEST_ANNOTATION: Final = "reconcile.fluxcd.io/requestedAt"
FORCE_REQUEST_ANNOTATION: Final = "reconcile.fluxcd.io/forceAt"
RESET_REQUEST_ANNOTATION: Final = "reconcile.fluxcd.io/resetAt"

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
