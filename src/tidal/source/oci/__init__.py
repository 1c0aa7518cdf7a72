"""OCI registries: addresses, credentials, and an asyncio distribution-API client.

    repo = parse_repository("oci://ghcr.io/org/app")
    client = Client(session, repo, credentials=keyring.lookup(repo), tls=ctx)
    tags = await client.list_tags()
    desc = await client.resolve("1.2.3")          # HEAD, GET as a fallback
    manifest = await client.fetch_image(desc.digest)
    layer = select_layer(manifest, HELM_CHART_CONTENT)
    await client.fetch_blob(layer, out.write, max_size=limit)

Used by the OCIRepository reconciler and by HelmChart for `type: oci` HelmRepositories.
"""

from tidal.source.oci.auth import (
    Challenge,
    Credentials,
    CredentialsError,
    Keyring,
    keyring_from_secrets,
    parse_challenges,
)
from tidal.source.oci.client import Client, Proxy
from tidal.source.oci.errors import (
    DigestMismatchError,
    InvalidReferenceError,
    OCIError,
    RegistryError,
    SizeLimitError,
)
from tidal.source.oci.manifest import (
    FLUX_CONFIG,
    FLUX_CONTENT,
    HELM_CHART_CONFIG,
    HELM_CHART_CONTENT,
    Descriptor,
    Index,
    Manifest,
    select_layer,
)
from tidal.source.oci.reference import Repository, parse_repository
from tidal.source.oci.tags import TagSelectionError, filter_tags, revision, select_semver

__all__ = [
    "FLUX_CONFIG",
    "FLUX_CONTENT",
    "HELM_CHART_CONFIG",
    "HELM_CHART_CONTENT",
    "Challenge",
    "Client",
    "Credentials",
    "CredentialsError",
    "Descriptor",
    "DigestMismatchError",
    "Index",
    "InvalidReferenceError",
    "Keyring",
    "Manifest",
    "OCIError",
    "Proxy",
    "RegistryError",
    "Repository",
    "SizeLimitError",
    "TagSelectionError",
    "filter_tags",
    "keyring_from_secrets",
    "parse_challenges",
    "parse_repository",
    "revision",
    "select_layer",
    "select_semver",
]
