"""HelmChart (source.toolkit.fluxcd.io/v1): a chart pulled from a HelmRepository, or packaged
from a directory of a GitRepository or Bucket artifact, field for field as Flux's
source-controller v1.10 serves it."""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from tidal.api.base import DURATION_PATTERN, Model, ObjectMeta, field
from tidal.api.meta import Artifact, Condition, LocalObjectReference
from tidal.api.source import API_VERSION

HELM_CHART_KIND: Final = "HelmChart"
BUCKET_KIND: Final = "Bucket"

RECONCILE_STRATEGY_CHART_VERSION: Final = "ChartVersion"
RECONCILE_STRATEGY_REVISION: Final = "Revision"

# The condition HelmChart adds to the sources' ones.
BUILD_FAILED: Final = "BuildFailed"

# Reasons of HelmChart's conditions and events.
CHART_PULL_SUCCEEDED: Final = "ChartPullSucceeded"
CHART_PACKAGE_SUCCEEDED: Final = "ChartPackageSucceeded"
NO_SOURCE_ARTIFACT: Final = "NoSourceArtifact"
SOURCE_UNAVAILABLE: Final = "SourceUnavailable"
UNSUPPORTED_SOURCE_KIND: Final = "UnsupportedSourceKind"
NEW_CHART: Final = "NewChart"


class CrossNamespaceSourceReference(Model):
    """The source of the chart, in the HelmChart's namespace."""

    kind: Annotated[
        Literal["HelmRepository", "GitRepository", "Bucket"],
        field("The kind of the source: HelmRepository, GitRepository or Bucket."),
    ]
    name: Annotated[str, field("The name of the source.")]
    api_version: Annotated[str, field("The API version of the source.")] = ""


class OIDCIdentityMatch(Model):
    """A keyless signature's OIDC issuer and subject, each a regular expression."""

    issuer: Annotated[str, field("A regular expression the OIDC issuer must match.")]
    subject: Annotated[str, field("A regular expression the certificate subject must match.")]


class OCIRepositoryVerification(Model):
    """How to verify the signature of an OCI chart."""

    provider: Annotated[
        Literal["cosign", "notation"],
        field("The verification tool: cosign or notation.", extra={"default": "cosign"}),
    ]
    secret_ref: Annotated[
        LocalObjectReference | None,
        field("A Secret with the trusted public keys or certificates."),
    ] = None
    match_oidc_identity: Annotated[
        list[OIDCIdentityMatch],
        field("For keyless cosign signatures: the identities allowed to have signed."),
    ] = msgspec.field(default_factory=list, name="matchOIDCIdentity")


class HelmChartSpec(Model):
    """The desired state of a chart artifact."""

    chart: Annotated[
        str,
        field(
            "The chart's name in a HelmRepository, or its path inside a GitRepository or "
            "Bucket artifact."
        ),
    ]
    source_ref: Annotated[
        CrossNamespaceSourceReference, field("Where the chart comes from, in this namespace.")
    ]
    interval: Annotated[
        str, field("How often to check the source for a new chart.", pattern=DURATION_PATTERN)
    ]
    version: Annotated[
        str,
        field(
            "A SemVer version or range of the chart (HelmRepository sources); ignored for Git "
            "and Bucket, where Chart.yaml gives the version.",
            extra={"default": "*"},
        ),
    ] = "*"
    reconcile_strategy: Annotated[
        Literal["ChartVersion", "Revision"],
        field(
            "When a new artifact is made: on a new chart version, or on every new revision of "
            "a Git or Bucket source.",
            extra={"default": "ChartVersion"},
        ),
    ] = "ChartVersion"
    values_files: Annotated[
        list[str],
        field(
            "Values files merged in order into the chart's values.yaml (which is not included "
            "unless listed); relative to the source's root."
        ),
    ] = []
    ignore_missing_values_files: Annotated[
        bool, field("Skip the valuesFiles that do not exist instead of failing.")
    ] = False
    suspend: Annotated[bool, field("Stop reconciling this chart until set back to false.")] = False
    verify: Annotated[
        OCIRepositoryVerification | None,
        field("Verify the chart's signature (OCI HelmRepository sources only)."),
    ] = None


class HelmChartStatus(Model):
    """What the controller last observed and produced."""

    observed_generation: Annotated[
        int,
        field("The generation last reconciled to a final state.", extra={"format": "int64"}),
    ] = -1
    observed_source_artifact_revision: Annotated[
        str, field("The source artifact revision the chart was last built from.")
    ] = ""
    observed_chart_name: Annotated[str, field("The name of the chart last built.")] = ""
    observed_values_files: Annotated[
        list[str],
        field("The values files merged into the artifact (with ignoreMissingValuesFiles)."),
    ] = []
    conditions: Annotated[list[Condition], field("The observed state, one aspect each.")] = []
    url: Annotated[
        str,
        field("A stable address of the latest chart artifact (best effort; see artifact)."),
    ] = ""
    artifact: Annotated[
        Artifact | None, field("The artifact of the last successful reconciliation.")
    ] = None
    last_handled_reconcile_at: Annotated[
        str, field("The last reconcile.fluxcd.io/requestedAt value acted on.")
    ] = ""


class HelmChart(Model, omit_defaults=False):
    """A Helm chart from a Helm repository or a source artifact, stored as a chart archive."""

    spec: HelmChartSpec

    api_version: str = API_VERSION
    kind: str = HELM_CHART_KIND
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    status: HelmChartStatus = msgspec.field(default_factory=HelmChartStatus)
