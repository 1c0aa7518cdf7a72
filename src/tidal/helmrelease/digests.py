"""The checksums helm-controller keeps in a HelmRelease's status, computed as Flux computes them,
so a release moved between Flux and tidal is recognised instead of upgraded again.

- config digest (history[].configDigest, lastAttemptedConfigDigest): sha256 of the values written
  as go-yaml v2 YAML with every mapping's keys in byte order (fluxcd/pkg/chartutil DigestValues);
  empty values digest as nothing at all.
- post-renderers and commonMetadata digests: sha256 of Go's json.Encoder output of the spec
  fields (struct fields in Go's declaration order, omitempty, HTML-safe escaping, a final line
  break). The models in tidal.api declare their fields in the same order as the Go types.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

from tidal.api.helmrelease import CommonMetadata, PostRenderer
from tidal.kube import goyaml
from tidal.source.helm import gojson


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _yaml_ready(value: Any) -> Any:
    # Values travel as JSON (every number a float64); sigs.k8s.io/yaml turns integral floats back
    # into int64 before go-yaml writes them, so 3.0 and 3 both digest as `3`.
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value == math.trunc(value) and abs(value) < 2**63:
            return int(value)
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, Mapping):
        return {str(k): _yaml_ready(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, Sequence):
        return [_yaml_ready(v) for v in value]
    raise TypeError(f"cannot digest a {type(value).__name__}")


def config_digest(values: Mapping[str, Any] | None) -> str:
    if not values:
        return sha256(b"")
    text = goyaml.marshal_ordered(_yaml_ready(values))
    return sha256(text.encode())


def _go_json(value: Any) -> str:
    # Compact encoding/json output of plain data whose dicts are already in Go's field order.
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return gojson.string(value)
    if isinstance(value, int | float):
        return gojson.float64(float(value))
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{gojson.string(k)}:{_go_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ",".join(_go_json(v) for v in value) + "]"
    raise TypeError(f"cannot encode a {type(value).__name__}")


def post_renderers_digest(post_renderers: Sequence[PostRenderer] | None) -> str:
    """ "" when the field is unset, as Flux leaves the observed digest empty then."""
    if not post_renderers:
        return ""
    data = [r.to_dict() for r in post_renderers]
    for renderer in data:
        for patch in (renderer.get("kustomize") or {}).get("patches", []):
            patch.setdefault("patch", "")  # `json:"patch"` has no omitempty
        for image in (renderer.get("kustomize") or {}).get("images", []):
            image.setdefault("name", "")
    return sha256((_go_json(data) + "\n").encode())


def common_metadata_digest(common: CommonMetadata | None) -> str:
    if common is None:
        return ""
    data: dict[str, Any] = {}
    # Go writes map keys sorted; annotations come before labels in the Go struct.
    if common.annotations:
        data["annotations"] = dict(sorted(common.annotations.items()))
    if common.labels:
        data["labels"] = dict(sorted(common.labels.items()))
    return sha256((_go_json(data) + "\n").encode())
