"""source.toolkit.fluxcd.io: where cluster state comes from.

GitRepository and HelmRepository v1 mirror Flux's field for field (source-controller v1.10): the
same names, defaults, patterns, enums and CEL rules, so manifests written for Flux validate the
same way.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from tidal.api.base import DURATION_NO_HOURS_PATTERN, DURATION_PATTERN, Model, ObjectMeta, field
from tidal.api.meta import Artifact, Condition, LocalObjectReference

GROUP: Final = "source.toolkit.fluxcd.io"
VERSION: Final = "v1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

GIT_REPOSITORY_KIND: Final = "GitRepository"
HELM_REPOSITORY_KIND: Final = "HelmRepository"
SOURCE_FINALIZER: Final = "finalizers.fluxcd.io"

# Condition types owned by sources.
ARTIFACT_IN_STORAGE: Final = "ArtifactInStorage"
ARTIFACT_OUTDATED: Final = "ArtifactOutdated"
FETCH_FAILED: Final = "FetchFailed"
STORAGE_OPERATION_FAILED: Final = "StorageOperationFailed"
SOURCE_VERIFIED: Final = "SourceVerified"
INCLUDE_UNAVAILABLE: Final = "IncludeUnavailable"

# Reasons specific to sources.
URL_INVALID: Final = "URLInvalid"
AUTHENTICATION_FAILED: Final = "AuthenticationFailed"
VERIFICATION_ERROR: Final = "VerificationError"
GIT_OPERATION_SUCCEEDED: Final = "GitOperationSucceeded"
GIT_OPERATION_FAILED: Final = "GitOperationFailed"
EMPTY_GIT_REPOSITORY: Final = "EmptyGitRepository"
NEW_REVISION: Final = "NewRevision"
ARTIFACT_UP_TO_DATE: Final = "ArtifactUpToDate"
NEW_ARTIFACT: Final = "NewArtifact"
INDEXATION_FAILED: Final = "IndexationFailed"

REVISION_ANNOTATION: Final = f"{GROUP}/revision"
DIGEST_ANNOTATION: Final = f"{GROUP}/digest"


class GitRepositoryRef(Model):
    """Which Git reference to check out. Precedence: commit, name, tag, semver, branch."""

    branch: Annotated[str, field("The branch to check out; master when nothing is set.")] = ""
    tag: Annotated[str, field("The tag to check out; wins over branch.")] = ""
    semver: Annotated[str, field("A semver range; the highest matching tag is checked out.")] = ""
    name: Annotated[
        str,
        field(
            "A full reference such as refs/heads/main or refs/pull/420/head; wins over "
            "branch, tag and semver."
        ),
    ] = ""
    commit: Annotated[
        str,
        field(
            "A commit SHA to check out; wins over everything else. With a branch, the "
            "commit must be on that branch."
        ),
    ] = ""


class GitRepositoryVerification(Model):
    """Which signatures must be valid before an artifact is produced."""

    secret_ref: Annotated[
        LocalObjectReference,
        field("A Secret with the trusted public keys (PGP *.asc, SSH *.sshpub)."),
    ]
    mode: Annotated[
        Literal["head", "HEAD", "Tag", "TagAndHEAD"],
        field(
            "What to verify: the commit HEAD points to, the tag object, or both.",
            extra={"default": "HEAD"},
        ),
    ] = "HEAD"


class GitRepositoryInclude(Model):
    """Another GitRepository's artifact copied into this one."""

    repository: Annotated[
        LocalObjectReference, field("The GitRepository in this namespace to include.")
    ]
    from_path: Annotated[
        str, field("The path in the included artifact to copy; its root by default.")
    ] = ""
    to_path: Annotated[
        str, field("Where to copy it in this artifact; the included repository's name by default.")
    ] = ""


class GitRepositorySpec(Model):
    """The desired state of a Git source."""

    url: Annotated[
        str,
        field("The repository URL: http, https or ssh.", pattern=r"^(http|https|ssh)://.*$"),
    ]
    interval: Annotated[
        str, field("How often to check the repository for changes.", pattern=DURATION_PATTERN)
    ]
    secret_ref: Annotated[
        LocalObjectReference | None,
        field(
            "A Secret with credentials: username/password or bearerToken for HTTP(S), "
            "identity and known_hosts for SSH, ca.crt and tls.crt/tls.key for TLS."
        ),
    ] = None
    provider: Annotated[
        Literal["generic", "aws", "azure", "github"] | None,
        field(
            "How to authenticate: generic uses secretRef; aws, azure and github use the "
            "platform's identity."
        ),
    ] = None
    service_account_name: Annotated[
        str,
        field("The ServiceAccount whose workload identity is used (azure and aws only)."),
    ] = ""
    timeout: Annotated[
        str,
        field(
            "The time limit of one Git operation (clone, fetch).",
            pattern=DURATION_NO_HOURS_PATTERN,
            extra={"default": "60s"},
        ),
    ] = "60s"
    ref: Annotated[
        GitRepositoryRef | None, field("The reference to check out; the master branch when unset.")
    ] = None
    verify: Annotated[
        GitRepositoryVerification | None,
        field("Verify signatures before producing an artifact."),
    ] = None
    proxy_secret_ref: Annotated[
        LocalObjectReference | None,
        field("A Secret with the proxy's address, and optionally username and password."),
    ] = None
    ignore: Annotated[
        str | None,
        field(
            "Extra exclusion patterns in .gitignore syntax; any pattern here replaces the "
            "default exclusions except the VCS ones."
        ),
    ] = None
    suspend: Annotated[bool, field("Stop reconciling this source until set back to false.")] = False
    recurse_submodules: Annotated[bool, field("Also check out the repository's submodules.")] = (
        False
    )
    include: Annotated[
        list[GitRepositoryInclude], field("Other GitRepositories' artifacts to copy into this one.")
    ] = []
    sparse_checkout: Annotated[
        list[str], field("Only these directories are checked out; each must exist.")
    ] = []


class GitRepositoryStatus(Model):
    """What the controller last observed and produced."""

    observed_generation: Annotated[
        int,
        field("The generation last reconciled to a final state.", extra={"format": "int64"}),
    ] = -1
    conditions: Annotated[list[Condition], field("The observed state, one aspect each.")] = []
    artifact: Annotated[
        Artifact | None, field("The artifact of the last successful reconciliation.")
    ] = None
    included_artifacts: Annotated[
        list[Artifact], field("The artifacts of the included repositories.")
    ] = []
    observed_ignore: Annotated[
        str | None, field("The spec.ignore the current artifact was built with.")
    ] = None
    observed_recurse_submodules: Annotated[
        bool, field("The spec.recurseSubmodules the current artifact was built with.")
    ] = False
    observed_include: Annotated[
        list[GitRepositoryInclude], field("The spec.include the current artifact was built with.")
    ] = []
    observed_sparse_checkout: Annotated[
        list[str], field("The spec.sparseCheckout the current artifact was built with.")
    ] = []
    source_verification_mode: Annotated[
        str | None, field("The verification mode the current artifact was verified with.")
    ] = None
    source_verification_fingerprint: Annotated[
        str | None, field("The fingerprint or key ID of the key that verified it.")
    ] = None
    last_handled_reconcile_at: Annotated[
        str, field("The last reconcile.fluxcd.io/requestedAt value acted on.")
    ] = ""


class GitRepository(Model, omit_defaults=False):
    """A Git repository to fetch, packaged into an artifact at every new revision."""

    spec: GitRepositorySpec

    api_version: str = API_VERSION
    kind: str = GIT_REPOSITORY_KIND
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    status: GitRepositoryStatus = msgspec.field(default_factory=GitRepositoryStatus)


# -- HelmRepository --------------------------------------------------------------------------------

HELM_REPOSITORY_TYPE_DEFAULT: Final = "default"
HELM_REPOSITORY_TYPE_OCI: Final = "oci"


class NamespaceSelector(Model):
    """The namespaces an access-control entry admits; empty matchLabels admit every one."""

    match_labels: Annotated[
        dict[str, str],
        field("Labels a namespace must carry, all of them (as a label selector's matchLabels)."),
    ] = {}


class AccessFrom(Model):
    """Which namespaces may refer to this object (provisional in Flux, not enforced)."""

    namespace_selectors: Annotated[
        list[NamespaceSelector],
        field("The namespaces allowed to refer to this object; any one selector suffices."),
    ]


class HelmRepositorySpec(Model):
    """The desired state of a Helm repository: an HTTP/S index to fetch, or an OCI registry
    address HelmCharts pull from."""

    url: Annotated[
        str,
        field(
            "The repository address: http(s):// for an index, oci:// for a registry.",
            pattern=r"^(http|https|oci)://.*$",
        ),
    ]
    secret_ref: Annotated[
        LocalObjectReference | None,
        field(
            "A Secret with username/password for basic auth (or a dockerconfigjson for oci); "
            "its certFile/keyFile/caFile keys are deprecated in favour of certSecretRef."
        ),
    ] = None
    cert_secret_ref: Annotated[
        LocalObjectReference | None,
        field(
            "A Secret (Opaque or kubernetes.io/tls) with tls.crt and tls.key for client "
            "certificate auth and/or ca.crt to trust; wins over secretRef's TLS keys."
        ),
    ] = None
    pass_credentials: Annotated[
        bool,
        field(
            "Send the secretRef credentials also to hosts other than the URL's, e.g. chart "
            "URLs in the index on another host. A man-in-the-middle could steal them."
        ),
    ] = False
    interval: Annotated[
        str,
        field(
            "How often to fetch the index; 1m when unset. Not used for oci.",
            pattern=DURATION_PATTERN,
        ),
    ] = ""
    insecure: Annotated[bool, field("Allow a plain-HTTP registry (oci only).")] = False
    timeout: Annotated[
        str,
        field(
            "The time limit of the index fetch, and of HelmCharts' OCI operations; 60s when unset.",
            pattern=DURATION_NO_HOURS_PATTERN,
        ),
    ] = ""
    suspend: Annotated[bool, field("Stop reconciling this source until set back to false.")] = False
    access_from: Annotated[
        AccessFrom | None,
        field("Namespaces allowed to refer to this object (provisional, not enforced)."),
    ] = None
    type: Annotated[
        Literal["default", "oci"] | None,
        field("default for an HTTP/S index; oci for a registry (the URL must start with oci://)."),
    ] = None
    provider: Annotated[
        Literal["generic", "aws", "azure", "gcp"],
        field(
            "How to authenticate to an oci registry: generic uses secretRef, the others the "
            "cloud's identity.",
            extra={"default": "generic"},
        ),
    ] = "generic"


# Flux's defaults for the optional durations (HelmRepository.GetRequeueAfter/GetTimeout).
HELM_REPOSITORY_DEFAULT_INTERVAL: Final = "1m"
HELM_REPOSITORY_DEFAULT_TIMEOUT: Final = "60s"


class HelmRepositoryStatus(Model):
    """What the controller last observed and produced."""

    observed_generation: Annotated[
        int,
        field("The generation last reconciled to a final state.", extra={"format": "int64"}),
    ] = -1
    conditions: Annotated[list[Condition], field("The observed state, one aspect each.")] = []
    url: Annotated[
        str,
        field(
            "A stable address of the latest index artifact (best effort; status.artifact is exact)."
        ),
    ] = ""
    artifact: Annotated[
        Artifact | None, field("The artifact of the last successful reconciliation.")
    ] = None
    last_handled_reconcile_at: Annotated[
        str, field("The last reconcile.fluxcd.io/requestedAt value acted on.")
    ] = ""


class HelmRepository(Model, omit_defaults=False):
    """A Helm chart repository: its index fetched into an artifact, or an OCI registry address."""

    spec: HelmRepositorySpec

    api_version: str = API_VERSION
    kind: str = HELM_REPOSITORY_KIND
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    status: HelmRepositoryStatus = msgspec.field(default_factory=HelmRepositoryStatus)

    @property
    def is_oci(self) -> bool:
        return self.spec.type == HELM_REPOSITORY_TYPE_OCI
