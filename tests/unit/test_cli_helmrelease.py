"""The flag rules of `create helmrelease` and the row of `get helmreleases` (tidal.cli.helmrelease),
without a cluster; the e2e tests compare the same with the flux binary."""

from __future__ import annotations

from pathlib import Path

import pytest

from tidal.cli import helmrelease as hr
from tidal.cli.objects import helm_release_revision
from tidal.cli.options import CliError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("HelmRepository/podinfo", hr.Ref("HelmRepository", "podinfo")),
        ("helmrepository/podinfo.flux-system", hr.Ref("HelmRepository", "podinfo", "flux-system")),
        ("GitRepository/a.b.c", hr.Ref("GitRepository", "a.b", "c")),
    ],
)
def test_source_kind_is_matched_case_insensitively_and_the_namespace_split_at_the_last_dot(
    text: str, expected: hr.Ref
) -> None:
    assert hr.parse_source(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("podinfo", "invalid helm chart source 'podinfo', must be in format <kind>/<name>"),
        ("a/b/c", "invalid helm chart source 'a/b/c', must be in format <kind>/<name>"),
        ("Foo/x", "source kind 'Foo' is not supported, must be one of: HelmRepository, "),
        (" ", "no helm chart source given, please specify source that contains the chart"),
    ],
)
def test_a_bad_source_is_refused_in_flux_s_words(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match="^" + reason.replace("(", r"\(")):
        hr.parse_source(text)


def test_chart_ref_kinds_are_case_sensitive() -> None:
    assert hr.chart_ref("OCIRepository/x.ns").to_dict() == {
        "kind": "OCIRepository",
        "name": "x",
        "namespace": "ns",
    }
    with pytest.raises(CliError, match="chart reference kind 'helmchart' is not supported"):
        hr.chart_ref("helmchart/x")


def test_depends_on_and_values_from() -> None:
    assert hr.depends_on(["a", "ns/b", "c@true"]) == [
        {"name": "a"},
        {"name": "b", "namespace": "ns"},
        {"name": "c"},
    ]
    assert hr.values_from(["secret/s", "ConfigMap/c"]) == [
        {"kind": "Secret", "name": "s"},
        {"kind": "ConfigMap", "name": "c"},
    ]
    with pytest.raises(CliError, match="reference kind 'Pod' is not supported"):
        hr.values_from(["Pod/x"])


def test_crds_policy() -> None:
    assert hr.parse_crds("CreateReplace") == "CreateReplace"
    with pytest.raises(ValueError, match="unsupported upgrade CRDs policy 'create'"):
        hr.parse_crds("create")


def test_values_files_merge_in_order_as_json_numbers(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("a: {x: 1, w: [1]}\nb: on\nbig: 12345678901234567890\n")
    (tmp_path / "b.yaml").write_text("a: {w: [2], z: 1.0}\nc: 1.5\nd: 1\nd: 2\n")
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    values = hr.merged_values([str(tmp_path / f) for f in ("a.yaml", "b.yaml", "empty.yaml")])
    assert values == {
        "a": {"x": 1, "w": [2], "z": 1},
        "b": True,  # go-yaml v2: YAML 1.1 booleans
        "big": 12345678901234567000,  # a float64 on its way through encoding/json
        "c": 1.5,
        "d": 2,  # sigs.k8s.io/yaml is not strict: the last key wins
    }


def test_values_errors_are_flux_s(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text("- a\n")
    (tmp_path / "bad.yaml").write_text("a: [\n")
    with pytest.raises(CliError, match="cannot unmarshal array into Go value of type map"):
        hr.load_values(str(tmp_path / "list.yaml"))
    with pytest.raises(CliError, match=r"yaml: line 1: did not find expected node content$"):
        hr.load_values(str(tmp_path / "bad.yaml"))
    with pytest.raises(CliError, match=r"open .*: no such file or directory$"):
        hr.load_values(str(tmp_path / "missing.yaml"))


def test_spec_from_flags() -> None:
    flags = hr.HelmReleaseFlags(
        interval=60,
        source=hr.Ref("HelmRepository", "p"),
        chart="p",
        target_namespace="apps",
        crds="Skip",
        create_target_namespace=True,
    )
    assert hr.helm_release_spec(flags) == {
        "interval": "1m0s",
        "targetNamespace": "apps",
        "storageNamespace": "apps",
        "chart": {
            "spec": {
                "chart": "p",
                "sourceRef": {"kind": "HelmRepository", "name": "p"},
                "reconcileStrategy": "ChartVersion",
            }
        },
        "install": {"createNamespace": True, "crds": "Create"},
        "upgrade": {"crds": "Skip"},
    }
    with pytest.raises(CliError, match="chart or chart-ref is required"):
        hr.check_chart_flags(hr.HelmReleaseFlags(interval=60))


def test_row_revision_and_source() -> None:
    obj = {
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"chartRef": {"kind": "OCIRepository", "name": "oci"}, "suspend": True},
        "status": {
            "history": [{"chartVersion": "2.0.0"}, {"chartVersion": "1.0.0"}],
            "lastAttemptedRevision": "2.0.1",
        },
    }
    assert helm_release_revision(obj) == "2.0.0"
    assert hr.row(obj, True, True) == [
        "apps",
        "web",
        "OCIRepository/apps/oci",
        "2.0.0",
        "True",
        "False",
        "waiting to be reconciled",
    ]
    assert helm_release_revision({"status": {"lastAttemptedRevision": "1.2.3"}}) == "1.2.3"
