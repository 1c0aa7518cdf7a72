"""OCI and Docker v2 manifests and indexes, and the media types Flux and Helm put in them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tidal.source.oci.errors import OCIError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
# What a manifest request accepts: every kind a tag may point at.
ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))

# fluxcd/pkg/oci
FLUX_CONFIG = "application/vnd.cncf.flux.config.v1+json"
FLUX_CONTENT = "application/vnd.cncf.flux.content.v1.tar+gzip"
# helm.sh/helm registry
HELM_CHART_CONTENT = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
HELM_CHART_CONFIG = "application/vnd.cncf.helm.config.v1+json"

SOURCE_ANNOTATION = "org.opencontainers.image.source"
REVISION_ANNOTATION = "org.opencontainers.image.revision"
CREATED_ANNOTATION = "org.opencontainers.image.created"

MAX_MANIFEST_SIZE = 4 << 20


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Manifest:
    """An image manifest: its config, its layers in order, its annotations."""

    media_type: str
    digest: str  # of the bytes as served
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str]


@dataclass(frozen=True, slots=True)
class Index:
    """An image index (manifest list): the manifests it points at."""

    media_type: str
    digest: str
    manifests: tuple[Descriptor, ...]
    annotations: dict[str, str]


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, str)}


def _descriptor(raw: Any, what: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise OCIError(f"invalid {what}: not an object")
    digest, size = raw.get("digest"), raw.get("size")
    if not isinstance(digest, str) or ":" not in digest:
        raise OCIError(f"invalid {what}: missing digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise OCIError(f"invalid {what}: missing or negative size")
    return Descriptor(
        media_type=str(raw.get("mediaType") or ""),
        digest=digest,
        size=size,
        annotations=_strings(raw.get("annotations")),
        platform=_strings(raw.get("platform")),
    )


def parse(data: bytes, digest: str, content_type: str = "") -> Manifest | Index:
    """A manifest or an index from the bytes the registry served; the body's own mediaType
    wins over the Content-Type header, which some registries get wrong."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise OCIError(f"failed to parse manifest: {e}") from None
    if not isinstance(raw, dict):
        raise OCIError("failed to parse manifest: not a JSON object")
    media_type = str(raw.get("mediaType") or content_type.split(";")[0].strip())
    if media_type in INDEX_TYPES or (not media_type and "manifests" in raw):
        manifests = raw.get("manifests") or []
        if not isinstance(manifests, list):
            raise OCIError("invalid index: manifests is not a list")
        return Index(
            media_type=media_type or OCI_INDEX,
            digest=digest,
            manifests=tuple(_descriptor(m, "index entry") for m in manifests),
            annotations=_strings(raw.get("annotations")),
        )
    if media_type and media_type not in MANIFEST_TYPES:
        raise OCIError(f"unsupported manifest media type {media_type!r}")
    layers = raw.get("layers") or []
    if not isinstance(layers, list):
        raise OCIError("invalid manifest: layers is not a list")
    config = raw.get("config")
    return Manifest(
        media_type=media_type or OCI_MANIFEST,
        digest=digest,
        config=_descriptor(config, "config") if config is not None else None,
        layers=tuple(_descriptor(layer, "layer") for layer in layers),
        annotations=_strings(raw.get("annotations")),
    )


def pick_platform(index: Index, os: str = "linux", architecture: str = "amd64") -> Descriptor:
    """The index entry an image pull would take: the only one, else the one for the platform
    (entries without a platform count as matching, as artifacts rarely carry one)."""
    if len(index.manifests) == 1:
        return index.manifests[0]
    for entry in index.manifests:
        p = entry.platform
        if not p or (p.get("os") == os and p.get("architecture") == architecture):
            return entry
    raise OCIError(f"no child with platform {os}/{architecture} in index {index.digest}")


def select_layer(manifest: Manifest, media_type: str = "") -> Descriptor:
    """Flux's selectLayer: the first layer of `media_type`, or the first layer."""
    if not manifest.layers:
        raise OCIError("no layers found in artifact")
    if not media_type:
        return manifest.layers[0]
    for layer in manifest.layers:
        if layer.media_type == media_type:
            return layer
    raise OCIError(f"failed to find layer with media type '{media_type}' in artifact")
