"""helm.toolkit.fluxcd.io: Helm charts released into the cluster and kept in sync.

HelmRelease v2 mirrors Flux's field for field (helm-controller v1.6, the release flux 2.9
ships): the same names, defaults, enums, patterns and CEL rules, so manifests written for Flux
validate the same way. Defaults that Flux applies in code rather than in the schema (timeouts,
remediation retries, strategies) are resolved by the helpers on the spec types, in one place.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Final, Literal

import msgspec

from tidal.api.base import DURATION_PATTERN, Duration, Model, ObjectMeta, field, parse_duration
from tidal.api.kustomize_types import CustomHealthCheck, Image, Patch, Selector
from tidal.api.meta import (
    Condition,
    DependencyReference,
    KubeConfigReference,
    LocalObjectReference,
)

GROUP: Final = "helm.toolkit.fluxcd.io"
VERSION: Final = "v2"
API_VERSION: Final = f"{GROUP}/{VERSION}"
HELM_RELEASE_KIND: Final = "HelmRelease"
HELM_RELEASE_FINALIZER: Final = "finalizers.fluxcd.io"

# Labels put on every object of a release (and on the HelmChart made for a chart template).
NAME_LABEL: Final = f"{GROUP}/name"
NAMESPACE_LABEL: Final = f"{GROUP}/namespace"
# Per-object opt-out of drift detection, as a label or annotation.
DRIFT_DETECTION_ANNOTATION: Final = f"{GROUP}/driftDetection"

DEFAULT_TIMEOUT: Final = "5m0s"
DEFAULT_MAX_HISTORY: Final = 5
DEFAULT_RETRY_INTERVAL: Final = "5m0s"

# Condition types of a HelmRelease, besides Ready/Reconciling/Stalled.
RELEASED: Final = "Released"
TESTED: Final = "TestSuccess"
REMEDIATED: Final = "Remediated"
DRIFTED: Final = "Drifted"

# Reasons (helm-controller's v2 API).
INSTALL_SUCCEEDED: Final = "InstallSucceeded"
INSTALL_FAILED: Final = "InstallFailed"
UPGRADE_SUCCEEDED: Final = "UpgradeSucceeded"
UPGRADE_FAILED: Final = "UpgradeFailed"
TEST_SUCCEEDED: Final = "TestSucceeded"
TEST_FAILED: Final = "TestFailed"
ROLLBACK_SUCCEEDED: Final = "RollbackSucceeded"
ROLLBACK_FAILED: Final = "RollbackFailed"
UNINSTALL_SUCCEEDED: Final = "UninstallSucceeded"
UNINSTALL_FAILED: Final = "UninstallFailed"
ARTIFACT_FAILED: Final = "ArtifactFailed"
INIT_FAILED: Final = "InitFailed"
GET_LAST_RELEASE_FAILED: Final = "GetLastReleaseFailed"
DRIFT_DETECTED: Final = "DriftDetected"
NO_DRIFT_DETECTED: Final = "NoDriftDetected"
VALUES_ERROR: Final = "ValuesError"
SOURCE_NOT_READY: Final = "SourceNotReady"
RETRIES_EXCEEDED: Final = "RetriesExceeded"
MISSING_ROLLBACK_TARGET: Final = "MissingRollbackTarget"

CRDS_SKIP: Final = "Skip"
CRDS_CREATE: Final = "Create"
CRDS_CREATE_REPLACE: Final = "CreateReplace"
CRDsPolicy = Literal["Skip", "Create", "CreateReplace"]

REMEDIATE_ON_FAILURE: Final = "RemediateOnFailure"
RETRY_ON_FAILURE: Final = "RetryOnFailure"
StrategyName = Literal["RemediateOnFailure", "RetryOnFailure"]

SSA_ENABLED: Final = "enabled"
SSA_DISABLED: Final = "disabled"
SSA_AUTO: Final = "auto"
ServerSideApplyMode = Literal["enabled", "disabled", "auto"]

DRIFT_ENABLED: Final = "enabled"
DRIFT_WARN: Final = "warn"
DRIFT_DISABLED: Final = "disabled"

POST_RENDER_NO_HOOKS: Final = "nohooks"
POST_RENDER_COMBINED: Final = "combined"
POST_RENDER_SEPARATE: Final = "separate"

# helm-controller declares both halves of the "exactly one" rule on its own KubeConfig type.
HELM_KUBECONFIG_RULES: Final = (
    {
        "message": "exactly one of spec.kubeConfig.configMapRef or spec.kubeConfig.secretRef "
        "must be specified",
        "rule": "has(self.configMapRef) || has(self.secretRef)",
    },
    {
        "message": "exactly one of spec.kubeConfig.configMapRef or spec.kubeConfig.secretRef "
        "must be specified",
        "rule": "!has(self.configMapRef) || !has(self.secretRef)",
    },
)

_INT64 = {"format": "int64"}
_DATE_TIME = {"format": "date-time"}


class CrossNamespaceObjectReference(Model):
    """The source a HelmChart made from a chart template pulls the chart from."""

    kind: Annotated[
        Literal["HelmRepository", "GitRepository", "Bucket"], field("The kind of the source.")
    ]
    name: Annotated[str, field("The name of the source.", min_length=1, max_length=253)]
    api_version: Annotated[str, field("The API version of the source.")] = ""
    namespace: Annotated[
        str,
        field(
            "The namespace of the source; the HelmRelease's own when unset.",
            min_length=1,
            max_length=63,
        ),
    ] = ""


class CrossNamespaceSourceReference(Model):
    """An existing source whose artifact is the chart."""

    kind: Annotated[
        Literal["OCIRepository", "HelmChart", "ExternalArtifact"],
        field("The kind of the source."),
    ]
    name: Annotated[str, field("The name of the source.", min_length=1, max_length=253)]
    api_version: Annotated[str, field("The API version of the source.")] = ""
    namespace: Annotated[
        str,
        field(
            "The namespace of the source; the HelmRelease's own when unset.",
            min_length=1,
            max_length=63,
        ),
    ] = ""

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"


class HelmChartTemplateVerification(Model):
    """How the signature of an OCI chart is verified."""

    provider: Annotated[
        Literal["cosign", "notation"],
        field("The verification engine.", extra={"default": "cosign"}),
    ]
    secret_ref: Annotated[
        LocalObjectReference | None,
        field("A Secret with the trusted public keys; keyless verification when unset."),
    ] = None


class HelmChartTemplateSpec(Model):
    """The HelmChart the controller makes and keeps for this release."""

    chart: Annotated[
        str,
        field(
            "The chart's name in a Helm repository, or its path in a Git or Bucket artifact.",
            min_length=1,
            max_length=2048,
        ),
    ]
    source_ref: Annotated[
        CrossNamespaceObjectReference, field("The source to pull the chart from.")
    ]
    version: Annotated[
        str,
        field(
            "A semver range the chart version must match; ignored for Git and Bucket sources.",
            extra={"default": "*"},
        ),
    ] = "*"
    interval: Annotated[
        Duration | None,
        field("How often the HelmChart checks for a new chart; the release's interval if unset."),
    ] = None
    reconcile_strategy: Annotated[
        Literal["ChartVersion", "Revision"],
        field(
            "When a new chart is produced: on a new chart version, or on every new source "
            "revision.",
            extra={"default": "ChartVersion"},
        ),
    ] = "ChartVersion"
    values_files: Annotated[
        list[str],
        field("Values files in the chart, merged in order, to use instead of values.yaml."),
    ] = []
    ignore_missing_values_files: Annotated[
        bool, field("Leave out values files that do not exist instead of failing.")
    ] = False
    verify: Annotated[
        HelmChartTemplateVerification | None,
        field("Verify the signature of an OCI chart before using it."),
    ] = None


class HelmChartTemplateObjectMeta(Model):
    """Labels and annotations for the HelmChart."""

    labels: Annotated[dict[str, str], field("Labels to set on the HelmChart.")] = {}
    annotations: Annotated[dict[str, str], field("Annotations to set on the HelmChart.")] = {}


class HelmChartTemplate(Model):
    """A chart to pull through a HelmChart that the controller creates and deletes."""

    spec: Annotated[HelmChartTemplateSpec, field("The HelmChart's spec.")]
    metadata: Annotated[
        HelmChartTemplateObjectMeta | None, field("Labels and annotations for the HelmChart.")
    ] = None


class ValuesReference(Model):
    """A ConfigMap or Secret holding values for the release."""

    kind: Annotated[Literal["Secret", "ConfigMap"], field("The kind of the object.")]
    name: Annotated[
        str,
        field(
            "The name of the object, in the HelmRelease's namespace.", min_length=1, max_length=253
        ),
    ]
    values_key: Annotated[
        str,
        field(
            "The data key holding the values; values.yaml when unset.",
            pattern=r"^[\-._a-zA-Z0-9]+$",
            max_length=253,
        ),
    ] = ""
    target_path: Annotated[
        str,
        field(
            "Where to put the key's value, as a Helm --set path; the key is then one value "
            "instead of a YAML document of values.",
            pattern=r"^([a-zA-Z0-9_\-.\\\/]|\[[0-9]{1,5}\])+$",
            max_length=250,
        ),
    ] = ""
    optional: Annotated[
        bool, field("Carry on without these values when the object or key does not exist.")
    ] = False
    literal: Annotated[
        bool, field("With targetPath, take the value as a literal string (Helm --set-literal).")
    ] = False

    def key(self) -> str:
        return self.values_key or "values.yaml"


class Remediation(Model):
    """What to do after a failed install or upgrade."""

    retries: Annotated[
        int,
        field("How many times to retry after a failure; negative for ever, 0 for never."),
    ] = 0
    ignore_test_failures: Annotated[
        bool | None,
        field("Do not count failed tests as a failure; test.ignoreFailures when unset."),
    ] = None
    remediate_last_failure: Annotated[
        bool | None,
        field("Remediate the last failure too, once retries are exhausted."),
    ] = None


class UpgradeRemediation(Remediation):
    """What to do after a failed upgrade."""

    strategy: Annotated[
        Literal["rollback", "uninstall"] | None,
        field("How to remediate: roll back to the last good release (the default) or uninstall."),
    ] = None


class InstallStrategy(Model):
    """What to do about a failed install."""

    name: Annotated[
        StrategyName,
        field(
            "RemediateOnFailure (remediation, then retries) or RetryOnFailure (retry with an "
            "upgrade every retryInterval, no remediation)."
        ),
    ]
    retry_interval: Annotated[
        Duration | None, field("How soon to retry with RetryOnFailure; 5m when unset.")
    ] = None


class UpgradeStrategy(InstallStrategy):
    """What to do about a failed upgrade."""


_CRDS_HELP = (
    "How to treat the chart's crds/ directory: Skip it, Create missing CRDs, or "
    "CreateReplace (create and update)."
)


class Install(Model):
    """How the release is installed."""

    timeout: Annotated[
        Duration | None, field("The time limit of the install; spec.timeout when unset.")
    ] = None
    remediation: Annotated[Remediation | None, field("What to do after a failed install.")] = None
    strategy: Annotated[
        InstallStrategy | None,
        field(
            "What to do about a failed install.",
            extra={
                "x-kubernetes-validations": [
                    {
                        "message": ".retryInterval cannot be set when .name is "
                        "'RemediateOnFailure'",
                        "rule": "!has(self.retryInterval) || self.name != 'RemediateOnFailure'",
                    }
                ]
            },
        ),
    ] = None
    disable_take_ownership: Annotated[
        bool, field("Do not take over objects that exist already without release annotations.")
    ] = False
    disable_wait: Annotated[bool, field("Do not wait for the objects to become ready.")] = False
    disable_wait_for_jobs: Annotated[bool, field("Do not wait for Jobs to complete.")] = False
    disable_hooks: Annotated[bool, field("Do not run the chart's install hooks.")] = False
    disable_open_api_validation: Annotated[
        bool, field("Do not validate the rendered objects against the cluster's OpenAPI schema.")
    ] = msgspec.field(default=False, name="disableOpenAPIValidation")
    disable_schema_validation: Annotated[
        bool, field("Do not validate the values against the chart's values.schema.json.")
    ] = False
    replace: Annotated[
        bool, field("Reuse the name of a release that was uninstalled with its history kept.")
    ] = False
    skip_crds: Annotated[bool, field("Deprecated: use crds: Skip.")] = msgspec.field(
        default=False, name="skipCRDs"
    )
    crds: Annotated[CRDsPolicy | None, field(_CRDS_HELP + " Create when unset.")] = None
    create_namespace: Annotated[
        bool, field("Create the target namespace if it does not exist.")
    ] = False
    server_side_apply: Annotated[
        bool | None, field("Apply with server-side apply; true when unset.")
    ] = None

    def crds_policy(self) -> str:
        if self.crds is not None:
            return self.crds
        return CRDS_SKIP if self.skip_crds else CRDS_CREATE


class Upgrade(Model):
    """How the release is upgraded."""

    timeout: Annotated[
        Duration | None, field("The time limit of an upgrade; spec.timeout when unset.")
    ] = None
    remediation: Annotated[
        UpgradeRemediation | None, field("What to do after a failed upgrade.")
    ] = None
    strategy: Annotated[
        UpgradeStrategy | None,
        field(
            "What to do about a failed upgrade.",
            extra={
                "x-kubernetes-validations": [
                    {
                        "message": ".retryInterval can only be set when .name is 'RetryOnFailure'",
                        "rule": "!has(self.retryInterval) || self.name == 'RetryOnFailure'",
                    }
                ]
            },
        ),
    ] = None
    disable_take_ownership: Annotated[
        bool, field("Do not take over objects that exist already without release annotations.")
    ] = False
    disable_wait: Annotated[bool, field("Do not wait for the objects to become ready.")] = False
    disable_wait_for_jobs: Annotated[bool, field("Do not wait for Jobs to complete.")] = False
    disable_hooks: Annotated[bool, field("Do not run the chart's upgrade hooks.")] = False
    disable_open_api_validation: Annotated[
        bool, field("Do not validate the rendered objects against the cluster's OpenAPI schema.")
    ] = msgspec.field(default=False, name="disableOpenAPIValidation")
    disable_schema_validation: Annotated[
        bool, field("Do not validate the values against the chart's values.schema.json.")
    ] = False
    force: Annotated[
        bool, field("Replace objects that cannot be patched (delete and recreate).")
    ] = False
    preserve_values: Annotated[
        bool, field("Reuse the last release's values and merge the new ones into them.")
    ] = False
    cleanup_on_fail: Annotated[bool, field("Delete the objects a failed upgrade created.")] = False
    crds: Annotated[CRDsPolicy | None, field(_CRDS_HELP + " Skip when unset.")] = None
    server_side_apply: Annotated[
        ServerSideApplyMode | None,
        field("Apply with server-side apply: enabled, disabled, or auto (as the last release)."),
    ] = None
    chart_name_change_strategy: Annotated[
        Literal["InPlaceUpdate", "Reinstall"] | None,
        field("When the chart's name changes: Reinstall (the default) or upgrade in place."),
    ] = None


class Filter(Model):
    """Which test hooks run."""

    name: Annotated[str, field("The name of a test hook.", min_length=1, max_length=253)]
    exclude: Annotated[bool, field("Run every test but this one.")] = False


class Test(Model):
    """Whether and how the chart's tests run after an install or upgrade."""

    enable: Annotated[bool, field("Run the chart's test hooks.")] = False
    timeout: Annotated[
        Duration | None, field("The time limit of the tests; spec.timeout when unset.")
    ] = None
    ignore_failures: Annotated[bool, field("Do not count failed tests as a failed release.")] = (
        False
    )
    filters: Annotated[list[Filter], field("Test hooks to run or to leave out.")] = []


class Rollback(Model):
    """How a failed upgrade is rolled back."""

    timeout: Annotated[
        Duration | None, field("The time limit of a rollback; spec.timeout when unset.")
    ] = None
    disable_wait: Annotated[bool, field("Do not wait for the objects to become ready.")] = False
    disable_wait_for_jobs: Annotated[bool, field("Do not wait for Jobs to complete.")] = False
    disable_hooks: Annotated[bool, field("Do not run the chart's rollback hooks.")] = False
    recreate: Annotated[bool, field("Deprecated; has no effect.")] = False
    force: Annotated[
        bool, field("Replace objects that cannot be patched (delete and recreate).")
    ] = False
    cleanup_on_fail: Annotated[bool, field("Delete the objects a failed rollback created.")] = False
    server_side_apply: Annotated[
        ServerSideApplyMode | None,
        field("Apply with server-side apply: enabled, disabled, or auto (as the target release)."),
    ] = None


class Uninstall(Model):
    """How the release is uninstalled."""

    timeout: Annotated[
        Duration | None, field("The time limit of the uninstall; spec.timeout when unset.")
    ] = None
    disable_hooks: Annotated[bool, field("Do not run the chart's delete hooks.")] = False
    keep_history: Annotated[bool, field("Keep the release history, marked uninstalled.")] = False
    disable_wait: Annotated[bool, field("Do not wait for the objects to be deleted.")] = False
    deletion_propagation: Annotated[
        Literal["background", "foreground", "orphan"],
        field(
            "How dependents of deleted objects are deleted.",
            extra={"default": "background"},
        ),
    ] = "background"


class IgnoreRule(Model):
    """Fields whose differences are not drift."""

    paths: Annotated[list[str], field("JSON pointers (RFC 6901) to the fields to leave alone.")]
    target: Annotated[
        Selector | None, field("The objects the rule applies to; every object when unset.")
    ] = None


class DriftDetection(Model):
    """Whether changes made to the release's objects in the cluster are found and undone."""

    mode: Annotated[
        Literal["enabled", "warn", "disabled"] | None,
        field("enabled corrects drift, warn reports it, disabled (the default) ignores it."),
    ] = None
    ignore: Annotated[list[IgnoreRule], field("Fields whose differences are not drift.")] = []

    def effective_mode(self) -> str:
        return self.mode or DRIFT_DISABLED


class Kustomize(Model):
    """Kustomize patches and image overrides applied to the rendered objects."""

    patches: Annotated[
        list[Patch], field("Strategic-merge or JSON 6902 patches for the rendered objects.")
    ] = []
    images: Annotated[list[Image], field("Image names, tags or digests to rewrite.")] = []


class PostRenderer(Model):
    """A step run over the rendered objects before they are applied."""

    kustomize: Annotated[Kustomize | None, field("Kustomize patches and image overrides.")] = None


class CommonMetadata(Model):
    """Labels and annotations set on every rendered object."""

    annotations: Annotated[dict[str, str], field("Annotations to set on every object.")] = {}
    labels: Annotated[dict[str, str], field("Labels to set on every object.")] = {}


class WaitStrategy(Model):
    """How readiness of the release's objects is judged."""

    name: Annotated[
        Literal["poller", "legacy"],
        field("poller (kstatus, the default) or legacy (Helm 3's wait)."),
    ]


class HelmReleaseSpec(Model):
    """A chart, the values to render it with, and how to install, upgrade, test and remediate."""

    interval: Annotated[
        str,
        field("How often to reconcile the release.", pattern=DURATION_PATTERN),
    ]
    chart: Annotated[
        HelmChartTemplate | None,
        field("A chart to pull through a HelmChart the controller manages. Excludes chartRef."),
    ] = None
    chart_ref: Annotated[
        CrossNamespaceSourceReference | None,
        field("An existing OCIRepository, HelmChart or ExternalArtifact. Excludes chart."),
    ] = None
    kube_config: Annotated[
        KubeConfigReference | None,
        field(
            "Release into a remote cluster instead of this one.",
            extra={"x-kubernetes-validations": [dict(r) for r in HELM_KUBECONFIG_RULES]},
        ),
    ] = None
    suspend: Annotated[bool, field("Stop reconciling until set back to false.")] = False
    release_name: Annotated[
        str,
        field(
            "The Helm release name; [<targetNamespace>-]<name> when unset.",
            min_length=1,
            max_length=53,
        ),
    ] = ""
    target_namespace: Annotated[
        str,
        field(
            "The namespace to release into; the HelmRelease's own when unset.",
            min_length=1,
            max_length=63,
        ),
    ] = ""
    storage_namespace: Annotated[
        str,
        field(
            "The namespace of Helm's release records; the HelmRelease's own when unset.",
            min_length=1,
            max_length=63,
        ),
    ] = ""
    depends_on: Annotated[
        list[DependencyReference],
        field("HelmReleases that must be ready before this one is reconciled."),
    ] = []
    timeout: Annotated[
        Duration | None,
        field("The time limit of each Kubernetes operation of a Helm action; 5m when unset."),
    ] = None
    max_history: Annotated[
        int | None,
        field("How many release revisions Helm keeps; 5 when unset, 0 for no limit."),
    ] = None
    service_account_name: Annotated[
        str,
        field("A ServiceAccount to impersonate for Helm actions.", min_length=1, max_length=253),
    ] = ""
    persistent_client: Annotated[
        bool | None,
        field("Reuse one Kubernetes client for a whole reconciliation; true when unset."),
    ] = None
    drift_detection: Annotated[
        DriftDetection | None, field("Find (and undo) changes made in the cluster.")
    ] = None
    install: Annotated[Install | None, field("How the release is installed.")] = None
    upgrade: Annotated[Upgrade | None, field("How the release is upgraded.")] = None
    test: Annotated[Test | None, field("Whether and how the chart's tests run.")] = None
    rollback: Annotated[Rollback | None, field("How a failed upgrade is rolled back.")] = None
    uninstall: Annotated[Uninstall | None, field("How the release is uninstalled.")] = None
    values_from: Annotated[
        list[ValuesReference],
        field("ConfigMaps and Secrets with values, merged in order before spec.values."),
    ] = []
    values: Annotated[Any, field("Values to render the chart with, over those of valuesFrom.")] = (
        None
    )
    common_metadata: Annotated[
        CommonMetadata | None,
        field("Labels and annotations to set on every rendered object."),
    ] = None
    post_renderers: Annotated[
        list[PostRenderer], field("Steps run over the rendered objects, in order.")
    ] = []
    post_render_strategy: Annotated[
        Literal["nohooks", "combined", "separate"] | None,
        field(
            "Whether hooks go through the post-renderers: nohooks, combined (the default: "
            "hooks and objects together) or separate."
        ),
    ] = None
    wait_strategy: Annotated[
        WaitStrategy | None, field("How readiness of the release's objects is judged.")
    ] = None
    health_check_exprs: Annotated[
        list[CustomHealthCheck],
        field("CEL expressions computing the health of custom resources while waiting."),
    ] = []

    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout or DEFAULT_TIMEOUT)

    def effective_max_history(self) -> int:
        return DEFAULT_MAX_HISTORY if self.max_history is None else self.max_history


class TestHookStatus(Model):
    """How one test hook last ran."""

    last_started: Annotated[str, field("When the test last started.", extra=_DATE_TIME)] = ""
    last_completed: Annotated[str, field("When the test last completed.", extra=_DATE_TIME)] = ""
    phase: Annotated[str, field("How it ended: Succeeded, Failed, Running or Unknown.")] = ""


class HelmSnapshot(Model):
    """One release revision as the controller saw it."""

    digest: Annotated[str, field("The checksum of the release object.")]
    name: Annotated[str, field("The release name.")]
    namespace: Annotated[str, field("The namespace of the release.")]
    version: Annotated[int, field("The release revision.")]
    status: Annotated[str, field("The release status, e.g. deployed or failed.")]
    chart_name: Annotated[str, field("The name of the chart.")]
    chart_version: Annotated[str, field("The version of the chart.")]
    config_digest: Annotated[str, field("The checksum of the values the release was made with.")]
    first_deployed: Annotated[str, field("When the release was first deployed.", extra=_DATE_TIME)]
    last_deployed: Annotated[str, field("When this revision was deployed.", extra=_DATE_TIME)]
    api_version: Annotated[str, field("The digest scheme of this snapshot.")] = ""
    action: Annotated[str, field("The Helm action that made this revision.")] = ""
    app_version: Annotated[str, field("The chart's appVersion.")] = ""
    deleted: Annotated[str, field("When the release was uninstalled.", extra=_DATE_TIME)] = ""
    test_hooks: Annotated[
        dict[str, TestHookStatus] | None, field("The test hooks of this revision and how they ran.")
    ] = None
    oci_digest: Annotated[str, field("The digest of the OCI chart artifact.")] = ""

    def full_release_name(self) -> str:
        return f"{self.namespace}/{self.name}.v{self.version}"


class ResourceRef(Model):
    """One object of the release."""

    id: Annotated[str, field("The object's identity: <namespace>_<name>_<group>_<kind>.")]
    version: Annotated[str, field("The API version of the object.")] = msgspec.field(name="v")


class ResourceInventory(Model):
    """The objects of the release, hooks excluded."""

    entries: Annotated[list[ResourceRef], field("The objects.")]


class HelmReleaseStatus(Model):
    """What the controller last observed, attempted and released."""

    observed_generation: Annotated[int, field("The generation last reconciled.", extra=_INT64)] = -1
    observed_post_renderers_digest: Annotated[
        str, field("The checksum of the post-renderers last applied.")
    ] = ""
    observed_common_metadata_digest: Annotated[
        str, field("The checksum of the commonMetadata last applied.")
    ] = ""
    last_attempted_generation: Annotated[
        int, field("The generation of the last release attempt.", extra=_INT64)
    ] = 0
    conditions: Annotated[list[Condition], field("The observed state, one aspect each.")] = []
    helm_chart: Annotated[
        str, field("The <namespace>/<name> of the HelmChart made for spec.chart.")
    ] = ""
    storage_namespace: Annotated[
        str,
        field("The namespace of the release records.", min_length=1, max_length=63),
    ] = ""
    history: Annotated[
        list[HelmSnapshot], field("Release revisions the controller made, newest first.")
    ] = []
    last_attempted_release_action: Annotated[
        Literal["install", "upgrade"] | None, field("The last release action attempted.")
    ] = None
    last_attempted_release_action_duration: Annotated[
        str, field("How long the last release action took.")
    ] = ""
    failures: Annotated[
        int, field("Failed reconciliations since the last success.", extra=_INT64)
    ] = 0
    install_failures: Annotated[
        int, field("Failed installs since the last success.", extra=_INT64)
    ] = 0
    upgrade_failures: Annotated[
        int, field("Failed upgrades since the last success.", extra=_INT64)
    ] = 0
    last_attempted_revision: Annotated[
        str, field("The chart version of the last release attempt.")
    ] = ""
    last_attempted_revision_digest: Annotated[
        str, field("The digest of the OCI chart of the last release attempt.")
    ] = ""
    last_attempted_values_checksum: Annotated[
        str, field("Deprecated: see lastAttemptedConfigDigest.")
    ] = ""
    last_release_revision: Annotated[int, field("Deprecated: see history.")] = 0
    last_attempted_config_digest: Annotated[
        str, field("The checksum of the values of the last release attempt.")
    ] = ""
    inventory: Annotated[ResourceInventory | None, field("The objects of the current release.")] = (
        None
    )
    last_handled_reconcile_at: Annotated[
        str, field("The last reconcile.fluxcd.io/requestedAt value acted on.")
    ] = ""
    last_handled_force_at: Annotated[
        str, field("The last reconcile.fluxcd.io/forceAt value acted on.")
    ] = ""
    last_handled_reset_at: Annotated[
        str, field("The last reconcile.fluxcd.io/resetAt value acted on.")
    ] = ""


class HelmRelease(Model, omit_defaults=False):
    """A Helm chart released into the cluster with values, upgraded, tested and remediated."""

    spec: HelmReleaseSpec

    api_version: str = API_VERSION
    kind: str = HELM_RELEASE_KIND
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    status: HelmReleaseStatus = msgspec.field(default_factory=HelmReleaseStatus)

    def release_name(self) -> str:
        """spec.releaseName, or [<targetNamespace>-]<name> shortened as Flux does past 53."""
        if self.spec.release_name:
            return self.spec.release_name
        name = self.metadata.name
        if self.spec.target_namespace:
            name = f"{self.spec.target_namespace}-{name}"
        return shorten_release_name(name)

    def target_namespace(self) -> str:
        return self.spec.target_namespace or self.metadata.namespace

    def storage_namespace(self) -> str:
        return self.spec.storage_namespace or self.metadata.namespace


def shorten_release_name(name: str) -> str:
    """Helm caps release names at 53 characters; Flux keeps 40 of them and a hash of the rest."""
    if len(name) <= 53:
        return name
    return f"{name[:40]}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"
