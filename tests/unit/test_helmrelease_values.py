"""How a HelmRelease's values are composed from valuesFrom and spec.values (flux-spec §6.2),
with Helm's own YAML and --set readers doing the typing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from tidal.api.helmrelease import ValuesReference
from tidal.helmrelease.values import HelmValuesParser, ValuesError, compose, merge_maps

pytest.importorskip("helm_python")

HELM = HelmValuesParser()


def _reader(objects: dict[tuple[str, str], dict[str, str]]) -> Any:
    async def read(namespace: str, kind: str, name: str) -> Mapping[str, str] | None:
        assert namespace == "apps"
        return objects.get((kind, name))

    return read


def _ref(kind: str, name: str, **kw: Any) -> ValuesReference:
    return ValuesReference(kind=kind, name=name, **kw)  # type: ignore[arg-type]


def test_merge_maps_merges_maps_and_replaces_everything_else() -> None:
    a = {"x": {"y": 1, "z": [1, 2]}, "keep": True}
    b = {"x": {"z": [3], "w": None}, "new": "v"}
    assert merge_maps(a, b) == {"x": {"y": 1, "z": [3], "w": None}, "keep": True, "new": "v"}
    assert a == {"x": {"y": 1, "z": [1, 2]}, "keep": True}


async def test_documents_merge_in_order_and_inline_values_win() -> None:
    objects = {
        ("ConfigMap", "base"): {
            "values.yaml": "replicas: 1\nimage:\n  tag: a\n  pull: IfNotPresent\n"
        },
        ("Secret", "prod"): {"custom.yaml": "replicas: 3\nimage:\n  tag: b\n"},
    }
    refs = [_ref("ConfigMap", "base"), _ref("Secret", "prod", values_key="custom.yaml")]
    out = await compose("apps", refs, {"image": {"tag": "c"}}, _reader(objects), HELM)
    assert out.values == {"replicas": 3, "image": {"tag": "c", "pull": "IfNotPresent"}}


async def test_target_path_wins_over_inline_values_even_at_the_top_level() -> None:
    objects = {("Secret", "s"): {"token": "abc", "port": "8080", "raw": "'0123'"}}
    refs = [
        _ref("Secret", "s", values_key="token", target_path="auth.token"),
        _ref("Secret", "s", values_key="port", target_path="port"),
        _ref("Secret", "s", values_key="raw", target_path="code"),
    ]
    inline = {"auth": {"token": "inline", "user": "u"}, "port": 1}
    out = await compose("apps", refs, inline, _reader(objects), HELM)
    # --set typing for plain values; a quoted value stays a string, without its quotes.
    assert out.values == {"auth": {"token": "abc", "user": "u"}, "port": 8080, "code": "0123"}


async def test_literal_target_path_keeps_commas_and_brackets() -> None:
    objects = {("ConfigMap", "c"): {"list": "a,b[0]{x}"}}
    refs = [_ref("ConfigMap", "c", values_key="list", target_path="raw", literal=True)]
    out = await compose("apps", refs, None, _reader(objects), HELM)
    assert out.values == {"raw": "a,b[0]{x}"}


async def test_missing_objects_and_keys_fail_unless_optional() -> None:
    objects = {("ConfigMap", "c"): {"values.yaml": "a: 1\n"}}
    with pytest.raises(ValuesError) as e:
        await compose("apps", [_ref("Secret", "gone")], None, _reader(objects), HELM)
    assert str(e.value) == (
        "could not resolve Secret chart values reference 'apps/gone' with key 'values.yaml': "
        "resource not found"
    )
    with pytest.raises(ValuesError) as e:
        await compose(
            "apps", [_ref("ConfigMap", "c", values_key="other")], None, _reader(objects), HELM
        )
    assert str(e.value).endswith("with key 'other': key not found")
    refs = [
        _ref("Secret", "gone", optional=True),
        _ref("ConfigMap", "c", values_key="other", optional=True),
        _ref("ConfigMap", "c"),
    ]
    out = await compose("apps", refs, None, _reader(objects), HELM)
    assert out.values == {"a": 1}
    assert len(out.skipped) == 2
    assert out.skipped[0].startswith("could not resolve optional Secret")


async def test_a_values_document_that_is_not_a_mapping_is_an_error() -> None:
    objects = {("ConfigMap", "c"): {"values.yaml": "- a\n- b\n"}}
    with pytest.raises(ValuesError) as e:
        await compose("apps", [_ref("ConfigMap", "c")], None, _reader(objects), HELM)
    assert str(e.value).startswith(
        "could not resolve ConfigMap chart values reference 'apps/c' with key 'values.yaml': "
        "error unmarshaling JSON"
    )


async def test_helm_reads_yaml_1_1_booleans_and_keeps_dates_as_text() -> None:
    objects = {("ConfigMap", "c"): {"values.yaml": "enabled: yes\nday: 2024-01-02\n"}}
    out = await compose("apps", [_ref("ConfigMap", "c")], None, _reader(objects), HELM)
    assert out.values == {"enabled": True, "day": "2024-01-02"}
