"""OCIRepository (source.toolkit.fluxcd.io/v1): an OCI artifact in a container registry,
pulled into an artifact at every new digest. Fields, enums and patterns mirror Flux's CRD
(source-controller v1.10); in that CRD neither url nor interval is required by the schema.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from tidal.api.base import DURATION_NO_HOURS_PATTERN, DURATION_PATTERN, Model, ObjectMeta, field
from tidal.api.meta import Artifact, Condition, LocalObjectReference
from tidal.api.source import API_VERSION

OCI_REPOSITORY_KIND: Final = "OCIRepository"
OCI_REPOSITORY_PLURAL: Final = "ocirepositories"

# Reasons specific to OCIRepository.
OCI_PULL_FAILED: Final = "OCIArtifactPullFailed"
OCI_LAYER_OPERATION_FAILED: Final = "OCIArtifactLayerOperationFailed"
READ_OPERATION_FAILED: Final = "ReadOperationFailed"

LAYER_EXTRACT: Final = "extract"
LAYER_COPY: Final = "copy"
OCI_DEFAULT_TIMEOUT: Final = "60s"
OCI_LATEST_LINK: Final = "latest.tar.gz"


class OCIRepositoryRef(Model):
    """Which artifact to pull. Precedence: digest, semver, tag; the latest tag when unset."""

    digest: Annotated[
        str, field("The manifest digest to pull (sha256:<hash>); wins over semver and tag.")
    ] = ""
    semver: Annotated[
        str, field("A semver range over the repository's tags; the highest match is pulled.")
    ] = ""
    semver_filter: Annotated[
        str, field("A Go regular expression the tags must match before the semver range applies.")
    ] = ""
    tag: Annotated[str, field("The tag to pull; latest when nothing is set.")] = ""


class OCILayerSelector(Model):
    """Which layer of the artifact becomes the artifact, and how."""

    media_type: Annotated[
        str, field("The media type of the layer to take; the first layer when unset.")
    ] = ""
    operation: Annotated[
        Literal["extract", "copy"] | None,
        field(
            "extract (default): unpack the tar+gzip layer and re-archive it with the ignore "
            "rules; copy: store the layer's bytes as they are."
        ),
    ] = None


class OIDCIdentityMatch(Model):
    """An identity of a cosign keyless signature: Go regular expressions for its issuer and
    subject."""

    issuer: Annotated[str, field("A Go regular expression the OIDC issuer must match.")]
    subject: Annotated[str, field("A Go regular expression the identity subject must match.")]


class OCIRepositoryVerification(Model):
    """How the artifact's signature is checked before it is used."""

    provider: Annotated[
        Literal["cosign", "notation"],
        # Required with a default: the API server always fills it in.
        field("The signing technology.", extra={"default": "cosign"}),
    ]
    secret_ref: Annotated[
        LocalObjectReference | None,
        field("A Secret with the trusted public keys (cosign *.pub) or notation's trust policy."),
    ] = None
    match_oidc_identity: Annotated[
        list[OIDCIdentityMatch],
        field("Identities accepted for cosign keyless signatures; any one suffices."),
    ] = msgspec.field(default_factory=list, name="matchOIDCIdentity")
    trusted_root_secret_ref: Annotated[
        LocalObjectReference | None,
        field("A Secret with trusted_root.json for a self-hosted Sigstore (cosign only)."),
    ] = None


class OCIRepositorySpec(Model):
    """The desired state of an OCI source."""

    url: Annotated[
        str,
        field(
            "The repository address, oci://<registry>/<repository>, without a tag or digest.",
            pattern=r"^oci://.*$",
        ),
    ] = ""
    ref: Annotated[
        OCIRepositoryRef | None, field("The artifact to pull; the latest tag when unset.")
    ] = None
    layer_selector: Annotated[
        OCILayerSelector | None,
        field("Which layer becomes the artifact; the first one, extracted, when unset."),
    ] = None
    provider: Annotated[
        Literal["generic", "aws", "azure", "gcp"] | None,
        field("How to authenticate: generic uses secretRef; the others the cloud's identity."),
    ] = None
    secret_ref: Annotated[
        LocalObjectReference | None,
        field("A kubernetes.io/dockerconfigjson Secret with registry credentials."),
    ] = None
    verify: Annotated[
        OCIRepositoryVerification | None,
        field("Verify the artifact's signature before using it."),
    ] = None
    service_account_name: Annotated[
        str,
        field(
            "A ServiceAccount whose image pull secrets are used (or whose identity, for clouds)."
        ),
    ] = ""
    cert_secret_ref: Annotated[
        LocalObjectReference | None,
        field("A Secret with tls.crt and tls.key for a client certificate and/or ca.crt to trust."),
    ] = None
    proxy_secret_ref: Annotated[
        LocalObjectReference | None,
        field("A Secret with the proxy's address, and optionally username and password."),
    ] = None
    interval: Annotated[
        str, field("How often to check the registry for changes.", pattern=DURATION_PATTERN)
    ] = ""
    timeout: Annotated[
        str,
        field(
            "The time limit of one pull (tags, manifests and the layer); 60s when unset.",
            pattern=DURATION_NO_HOURS_PATTERN,
        ),
    ] = ""
    ignore: Annotated[
        str | None,
        field(
            "Extra exclusion patterns in .gitignore syntax; any pattern here replaces the "
            "default exclusions except the VCS ones."
        ),
    ] = None
    insecure: Annotated[bool, field("Allow a plain-HTTP registry.")] = False
    suspend: Annotated[bool, field("Stop reconciling this source until set back to false.")] = False


class OCIRepositoryStatus(Model):
    """What the controller last observed and produced."""

    observed_generation: Annotated[
        int,
        field("The generation last reconciled to a final state.", extra={"format": "int64"}),
    ] = -1
    conditions: Annotated[list[Condition], field("The observed state, one aspect each.")] = []
    url: Annotated[
        str, field("A stable address of the latest artifact (best effort; artifact is exact).")
    ] = ""
    artifact: Annotated[
        Artifact | None, field("The artifact of the last successful reconciliation.")
    ] = None
    observed_ignore: Annotated[
        str | None, field("The spec.ignore the current artifact was built with.")
    ] = None
    observed_layer_selector: Annotated[
        OCILayerSelector | None,
        field("The spec.layerSelector the current artifact was built with."),
    ] = None
    source_verification_fingerprint: Annotated[
        str, field("A fingerprint of the verification material last used successfully.")
    ] = ""
    last_handled_reconcile_at: Annotated[
        str, field("The last reconcile.fluxcd.io/requestedAt value acted on.")
    ] = ""


class OCIRepository(Model, omit_defaults=False):
    """An OCI artifact in a registry, pulled into an artifact at every new digest."""

    spec: OCIRepositorySpec

    api_version: str = API_VERSION
    kind: str = OCI_REPOSITORY_KIND
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    status: OCIRepositoryStatus = msgspec.field(default_factory=OCIRepositoryStatus)

    @property
    def layer_operation(self) -> str:
        selector = self.spec.layer_selector
        return (selector.operation if selector else None) or LAYER_EXTRACT

    @property
    def layer_media_type(self) -> str:
        return self.spec.layer_selector.media_type if self.spec.layer_selector else ""
