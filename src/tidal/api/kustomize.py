"""kustomize.toolkit.fluxcd.io: how source artifacts become cluster state.

Kustomization v1 mirrors Flux's field for field (kustomize-controller v1.10): the same names,
defaults, patterns, enums and CEL rules, so manifests written for Flux validate the same way.
The labels, annotations and values below are the ones Flux reads from the objects it applies.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from tidal.api.base import DURATION_PATTERN, Duration, Model, ObjectMeta, field, parse_duration
from tidal.api.kustomize_types import CustomHealthCheck, Image, Patch, Selector
from tidal.api.meta import (
    KUBECONFIG_RULES,
    Condition,
    DependencyReference,
    KubeConfigReference,
    LocalObjectReference,
    NamespacedObjectKindReference,
    Snapshot,
)

GROUP: Final = "kustomize.toolkit.fluxcd.io"
VERSION: Final = "v1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

KUSTOMIZATION_KIND: Final = "Kustomization"
KUSTOMIZATION_FINALIZER: Final = "finalizers.fluxcd.io"
# The cap Flux's API declares for condition messages, well under the CRD's 32768: an apply log
# quoted in a message can be long.
MAX_CONDITION_MESSAGE_LENGTH: Final = 20000

# Ownership labels put on every applied object; pruning requires both to match.
NAME_LABEL: Final = f"{GROUP}/name"
NAMESPACE_LABEL: Final = f"{GROUP}/namespace"

# Per-object opt-outs, read from labels or annotations of the applied (or live) object. Values
# are compared case-insensitively.
RECONCILE_ANNOTATION: Final = f"{GROUP}/reconcile"  # disabled: neither apply nor prune
SSA_ANNOTATION: Final = f"{GROUP}/ssa"  # the apply policy, one of the SSA_* values
PRUNE_ANNOTATION: Final = f"{GROUP}/prune"  # disabled: never garbage-collect
FORCE_ANNOTATION: Final = f"{GROUP}/force"  # enabled: recreate on immutable-field changes
SUBSTITUTE_ANNOTATION: Final = f"{GROUP}/substitute"  # disabled: no post-build substitution
DECRYPT_ANNOTATION: Final = f"{GROUP}/decrypt"  # disabled: leave SOPS content alone
# Written by Flux v1 and early v2; removed from live objects during apply.
LEGACY_CHECKSUM_ANNOTATION: Final = f"{GROUP}/checksum"

ENABLED: Final = "enabled"
DISABLED: Final = "disabled"
SSA_OVERRIDE: Final = "Override"  # the default: Flux owns every field it declares
SSA_MERGE: Final = "Merge"  # keep other managers' fields
SSA_IF_NOT_PRESENT: Final = "IfNotPresent"  # create only, never update
SSA_IGNORE: Final = "Ignore"  # never apply, never prune

# Keys of the metadata attached to events (prefixed with the group, as Flux does).
REVISION_KEY: Final = f"{GROUP}/revision"
ORIGIN_REVISION_KEY: Final = f"{GROUP}/originRevision"
COMMIT_STATUS_KEY: Final = f"{GROUP}/commit_status"
COMMIT_STATUS_UPDATE: Final = "update"

# spec.deletionPolicy.
DELETION_POLICY_MIRROR_PRUNE: Final = "MirrorPrune"
DELETION_POLICY_DELETE: Final = "Delete"
DELETION_POLICY_WAIT_FOR_TERMINATION: Final = "WaitForTermination"
DELETION_POLICY_ORPHAN: Final = "Orphan"
DeletionPolicy = Literal["MirrorPrune", "Delete", "WaitForTermination", "Orphan"]

# spec.postBuild.substituteStrategy.
SUBSTITUTE_WITH_VARIABLES: Final = "WithVariables"
SUBSTITUTE_ALWAYS: Final = "Always"

# spec.buildMetadata.
BUILD_METADATA_ORIGIN_ANNOTATIONS: Final = "originAnnotations"
BUILD_METADATA_TRANSFORMER_ANNOTATIONS: Final = "transformerAnnotations"

DECRYPTION_PROVIDER_SOPS: Final = "sops"

SOURCE_KINDS: Final = ("OCIRepository", "GitRepository", "Bucket", "ExternalArtifact")


class CrossNamespaceSourceReference(Model):
    """The source whose artifact holds the manifests."""

    kind: Annotated[
        Literal["OCIRepository", "GitRepository", "Bucket", "ExternalArtifact"],
        field("The kind of the source."),
    ]
    name: Annotated[str, field("The name of the source.")]
    api_version: Annotated[str, field("The API version of the source.")] = ""
    namespace: Annotated[
        str, field("The namespace of the source; the Kustomization's own when unset.")
    ] = ""

    def __str__(self) -> str:
        # Kind/[namespace/]name, as Flux names the source in messages.
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"


class CommonMetadata(Model):
    """Labels and annotations set on every applied object, replacing the same keys."""

    annotations: Annotated[dict[str, str], field("Annotations to set on every object.")] = {}
    labels: Annotated[dict[str, str], field("Labels to set on every object.")] = {}


class Decryption(Model):
    """How to decrypt SOPS-encrypted Secrets and generator inputs before applying."""

    provider: Annotated[Literal["sops"], field("The decryption engine; only sops.")]
    service_account_name: Annotated[
        str,
        field(
            "A ServiceAccount whose cloud identity unlocks KMS keys; static credentials in "
            "the Secret win over it."
        ),
    ] = ""
    secret_ref: Annotated[
        LocalObjectReference | None,
        field(
            "A Secret with private keys (*.agekey, *.asc) or cloud KMS credentials "
            "(sops.aws-kms, sops.azure-kv, sops.gcp-kms, sops.vault-token)."
        ),
    ] = None


class SubstituteReference(Model):
    """A ConfigMap or Secret whose data keys are substitution variables."""

    kind: Annotated[Literal["Secret", "ConfigMap"], field("The kind of the object.")]
    name: Annotated[
        str,
        field(
            "The name of the object, in the Kustomization's namespace.",
            min_length=1,
            max_length=253,
        ),
    ]
    optional: Annotated[
        bool,
        field(
            "Carry on without its variables when the object does not exist, instead of failing.",
            extra={"default": False},
        ),
    ] = False


class PostBuild(Model):
    """Variable substitution run over the built manifests."""

    substitute_strategy: Annotated[
        Literal["WithVariables", "Always"] | None,
        field(
            "WithVariables (the default) substitutes only when at least one variable is "
            "defined; Always substitutes even with none, so defaults such as ${x:=y} apply."
        ),
    ] = None
    substitute: Annotated[
        dict[str, str],
        field(
            "Variables and their values, replacing ${name} in the manifests (bash-style "
            "forms such as ${var:=default} and ${var/from/to} included); they override "
            "substituteFrom."
        ),
    ] = {}
    substitute_from: Annotated[
        list[SubstituteReference],
        field("ConfigMaps and Secrets to read variables from, later ones overriding earlier."),
    ] = []


class IgnoreRule(Model):
    """Fields whose differences are neither reported as drift nor corrected."""

    paths: Annotated[list[str], field("JSON pointers (RFC 6901) to the fields to leave alone.")]
    target: Annotated[
        Selector | None, field("The objects the rule applies to; every object when unset.")
    ] = None


class KustomizationSpec(Model):
    """Which source path to build with kustomize, and how to apply, prune and check it."""

    source_ref: Annotated[
        CrossNamespaceSourceReference, field("The source whose artifact holds the manifests.")
    ]
    interval: Annotated[
        str,
        field(
            "How often to reconcile (and correct drift), give or take jitter.",
            pattern=DURATION_PATTERN,
        ),
    ]
    prune: Annotated[
        bool, field("Delete the objects that were applied before and are no longer built.")
    ]
    common_metadata: Annotated[
        CommonMetadata | None,
        field("Labels and annotations to set on every applied object, replacing the same keys."),
    ] = None
    depends_on: Annotated[
        list[DependencyReference],
        field("Kustomizations that must be ready before this one is reconciled."),
    ] = []
    decryption: Annotated[
        Decryption | None, field("Decrypt SOPS-encrypted Secrets before applying them.")
    ] = None
    retry_interval: Annotated[
        Duration | None, field("How soon to retry after a failure; the interval when unset.")
    ] = None
    kube_config: Annotated[
        KubeConfigReference | None,
        field(
            "Apply to a remote cluster instead of this one; with serviceAccountName, that "
            "account is impersonated in the remote cluster.",
            extra={"x-kubernetes-validations": [dict(r) for r in KUBECONFIG_RULES]},
        ),
    ] = None
    path: Annotated[
        str,
        field(
            "The directory in the artifact with a kustomization.yaml or plain manifests; the "
            "artifact's root when unset. It cannot point outside the artifact."
        ),
    ] = ""
    post_build: Annotated[
        PostBuild | None, field("Variable substitution over the built manifests.")
    ] = None
    deletion_policy: Annotated[
        DeletionPolicy | None,
        field(
            "What happens to the applied objects when the Kustomization is deleted: "
            "MirrorPrune (the default) deletes them when prune is true, Delete always does, "
            "WaitForTermination also waits for them to be gone, Orphan leaves them."
        ),
    ] = None
    health_checks: Annotated[
        list[NamespacedObjectKindReference],
        field("Objects that must become healthy for the reconciliation to succeed."),
    ] = []
    name_prefix: Annotated[
        str,
        field("A prefix added to the name of every object.", min_length=1, max_length=200),
    ] = ""
    name_suffix: Annotated[
        str,
        field("A suffix added to the name of every object.", min_length=1, max_length=200),
    ] = ""
    patches: Annotated[
        list[Patch],
        field("Strategic-merge or JSON 6902 patches added to the kustomization."),
    ] = []
    images: Annotated[
        list[Image], field("Image names, tags or digests to rewrite, as kustomize images do.")
    ] = []
    service_account_name: Annotated[
        str, field("A ServiceAccount to impersonate for applying, pruning and health checks.")
    ] = ""
    suspend: Annotated[
        bool, field("Stop reconciling until set back to false; a running one finishes.")
    ] = False
    target_namespace: Annotated[
        str,
        field(
            "The namespace to put every namespaced object in, overriding the kustomization's.",
            min_length=1,
            max_length=63,
        ),
    ] = ""
    timeout: Annotated[
        Duration | None,
        field(
            "The time limit of health checks and deletion waits; the interval minus 30s (at "
            "least 30s) when unset."
        ),
    ] = None
    force: Annotated[
        bool,
        field(
            "Delete and recreate objects whose change touches an immutable field.",
            extra={"default": False},
        ),
    ] = False
    wait: Annotated[
        bool,
        field("Wait for every applied object to become healthy; healthChecks is then unused."),
    ] = False
    build_metadata: Annotated[
        list[Literal["originAnnotations", "transformerAnnotations"]],
        field(
            "kustomize build metadata to add to the objects: originAnnotations (where each "
            "came from), transformerAnnotations (what changed it)."
        ),
    ] = []
    components: Annotated[
        list[str], field("Relative paths of kustomize Components to add to the kustomization.")
    ] = []
    ignore_missing_components: Annotated[
        bool, field("Leave out components whose path is not in the artifact instead of failing.")
    ] = False
    health_check_exprs: Annotated[
        list[CustomHealthCheck],
        field("CEL expressions computing the health of custom resources during health checks."),
    ] = []
    ignore: Annotated[
        list[IgnoreRule],
        field("Fields of the applied objects whose changes are not drift and not corrected."),
    ] = []

    def timeout_seconds(self) -> float:
        """spec.timeout, or the interval less 30s; never under 30s."""
        if self.timeout is not None:
            seconds = parse_duration(self.timeout)
        else:
            seconds = parse_duration(self.interval) - 30.0
        return max(seconds, 30.0)

    def retry_interval_seconds(self) -> float:
        if self.retry_interval is not None:
            return parse_duration(self.retry_interval)
        return parse_duration(self.interval)

    def effective_deletion_policy(self) -> str:
        return self.deletion_policy or DELETION_POLICY_MIRROR_PRUNE

    def effective_substitute_strategy(self) -> Literal["WithVariables", "Always"]:
        if self.post_build is None or self.post_build.substitute_strategy is None:
            return SUBSTITUTE_WITH_VARIABLES
        return self.post_build.substitute_strategy


class ResourceRef(Model):
    """One applied object."""

    id: Annotated[
        str,
        field("The object's identity: <namespace>_<name>_<group>_<kind>."),
    ]
    version: Annotated[str, field("The API version the object was applied with.")] = msgspec.field(
        name="v"
    )


class ResourceInventory(Model):
    """The objects a Kustomization applied."""

    entries: Annotated[list[ResourceRef], field("The applied objects.")]


class KustomizationStatus(Model):
    """What the controller last observed and applied."""

    observed_generation: Annotated[
        int,
        field("The generation last reconciled to a final state.", extra={"format": "int64"}),
    ] = -1
    conditions: Annotated[list[Condition], field("The observed state, one aspect each.")] = []
    last_applied_revision: Annotated[
        str, field("The source revision last applied successfully.")
    ] = ""
    last_applied_origin_revision: Annotated[
        str,
        field(
            "The origin revision of the artifact last applied successfully, e.g. an OCI "
            "artifact's org.opencontainers.image.revision."
        ),
    ] = ""
    last_attempted_revision: Annotated[
        str, field("The source revision of the last reconciliation attempt.")
    ] = ""
    inventory: Annotated[
        ResourceInventory | None, field("The objects applied by the last reconciliation.")
    ] = None
    history: Annotated[
        list[Snapshot],
        field("The last reconciliation outcomes, newest first, at most five."),
    ] = []
    last_handled_reconcile_at: Annotated[
        str, field("The last reconcile.fluxcd.io/requestedAt value acted on.")
    ] = ""


class Kustomization(Model, omit_defaults=False):
    """A path in a source, built with kustomize and applied to the cluster, kept in sync."""

    spec: KustomizationSpec

    api_version: str = API_VERSION
    kind: str = KUSTOMIZATION_KIND
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    status: KustomizationStatus = msgspec.field(default_factory=KustomizationStatus)
