"""HelmRelease status digests equal helm-controller's, so a release moved from Flux is known.

The expected digests are the published outputs of fluxcd/pkg/chartutil's DigestValues for the
same values (its test vectors), not values computed by this code."""

from __future__ import annotations

from tidal.api.helmrelease import CommonMetadata, Kustomize, PostRenderer
from tidal.api.kustomize_types import Image, Patch, Selector
from tidal.helmrelease.digests import (
    common_metadata_digest,
    config_digest,
    post_renderers_digest,
    sha256,
)

EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_no_values_digest_as_nothing() -> None:
    assert config_digest({}) == EMPTY
    assert config_digest(None) == EMPTY


def test_values_digest_does_not_depend_on_key_order() -> None:
    a = {
        "replicas": 3,
        "image": {"tag": "latest", "repository": "nginx"},
        "ports": [{"protocol": "TCP", "port": 8080}, {"port": 9090, "protocol": "UDP"}],
    }
    b = {
        "image": {"repository": "nginx", "tag": "latest"},
        "ports": [{"port": 8080, "protocol": "TCP"}, {"port": 9090, "protocol": "UDP"}],
        "replicas": 3,
    }
    want = "sha256:fcdc2b0de1581a3633ada4afee3f918f6eaa5b5ab38c3fef03d5b48d3f85d9f6"
    assert config_digest(a) == want
    assert config_digest(b) == want


def test_numeric_looking_keys_sort_as_bytes() -> None:
    values = {
        "replicas": 3,
        "test": {
            "632bd82398e71231a98004b6": "value4",
            "632bd817c559818a52307da2": "value3",
            "632bd80ddf416cf32fd50679": "value2",
            "632bd80235a05f4192aefade": "value1",
        },
    }
    want = "sha256:8a980fcbeadd6f05818f07e8aec14070c22250ca3d96af1fcd5f93b3e85b4d70"
    assert config_digest(values) == want


def test_integral_floats_digest_like_ints() -> None:
    # Values decoded from JSON are float64 in Go; 3.0 and 3 are the same value there.
    assert config_digest({"replicas": 3.0}) == config_digest({"replicas": 3})
    assert config_digest({"ratio": 0.5}) != config_digest({"ratio": 1})


def test_post_renderers_digest_is_go_json_of_the_spec() -> None:
    renderers = [
        PostRenderer(
            kustomize=Kustomize(
                patches=[Patch(patch="- op: add\n", target=Selector(kind="Deployment"))],
                images=[Image(name="nginx", new_tag="1.2")],
            )
        )
    ]
    text = (
        '[{"kustomize":{"patches":[{"patch":"- op: add\\n","target":{"kind":"Deployment"}}],'
        '"images":[{"name":"nginx","newTag":"1.2"}]}}]\n'
    )
    assert post_renderers_digest(renderers) == sha256(text.encode())
    assert post_renderers_digest([]) == ""
    assert post_renderers_digest([PostRenderer()]) == sha256(b"[{}]\n")


def test_common_metadata_digest_sorts_map_keys_and_escapes_html() -> None:
    common = CommonMetadata(labels={"b": "2", "a": "<x>"}, annotations={"z": "&"})
    text = '{"annotations":{"z":"\\u0026"},"labels":{"a":"\\u003cx\\u003e","b":"2"}}\n'
    assert common_metadata_digest(common) == sha256(text.encode())
    assert common_metadata_digest(None) == ""
    assert common_metadata_digest(CommonMetadata()) == sha256(b"{}\n")
