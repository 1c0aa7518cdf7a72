"""Post-build variable substitution of built objects, as Flux's kustomize-controller does it.

The last tests run the same manifests through `flux build kustomization --dry-run` (the real flux
CLI, which calls the same fluxcd/pkg/kustomize code as the controller) when testenv has built it.
"""

from __future__ import annotations

import base64
import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from testenv import flux_cli
from tests.corpus_path import corpus_root
from tidal.kube import yamlio
from tidal.kustomize.envsubst import EnvsubstError, envsubst
from tidal.kustomize.substitute import (
    SUBSTITUTE_KEY,
    SubstitutionError,
    config_map_values,
    merge_variables,
    post_build_failure,
    secret_values,
    substitute_object,
    substitution_disabled,
    validate_variable_names,
)

NAME_ERROR = (
    "envsubst error: '{}' var name is invalid, must match '^[_[:alpha:]][_[:alpha:][:digit:]]*$'"
)


def _config_map(data: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", **metadata},
        "data": data,
    }


def _load(text: str) -> dict[str, Any]:
    [obj] = yamlio.load_all(text)
    return obj


def _typed(value: Any) -> Any:
    """The value with every scalar's type made part of it, so that 1 != True != "1"."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    return (type(value).__name__, value)


# ---------------------------------------------------------------------------------------------
# Variables


def test_merge_order_later_sources_win_and_substitute_wins_over_all() -> None:
    merged = merge_variables(
        [{"a": "1", "b": "1", "c": "1"}, {"b": "2", "c": "2"}], {"c": "inline", "d": "4"}
    )
    assert merged == {"a": "1", "b": "2", "c": "inline", "d": "4"}


def test_merge_removes_newlines_but_nothing_else() -> None:
    merged = merge_variables([{"a": "x\ny\n"}], {"b": "line\r\nbreak", "c": " spaced "})
    assert merged == {"a": "xy", "b": "line\rbreak", "c": " spaced "}


def test_merge_does_not_check_names() -> None:
    # Flux checks names only when it substitutes an object.
    assert merge_variables([], {"bad-name": "x"}) == {"bad-name": "x"}
    assert merge_variables([], {}) == {}


def test_config_map_values_are_its_data_only() -> None:
    cm = _config_map({"a": "1", "b": "two\nlines"}) | {"binaryData": {"bin": "AAE="}}
    assert config_map_values(cm) == {"a": "1", "b": "two\nlines"}
    assert config_map_values(_config_map({}) | {"data": None}) == {}
    with pytest.raises(ValueError, match="ConfigMap data must map strings to strings"):
        config_map_values(_config_map({"a": 1}))


def test_secret_values_are_its_decoded_data_only() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"token": base64.b64encode(b"s3cr\xc3\xa9t\n").decode(), "empty": ""},
        # The API server never returns stringData; a Secret from elsewhere may still carry it.
        "stringData": {"token": "ignored", "other": "ignored"},
    }
    assert secret_values(secret) == {"token": "s3cr\u00e9t\n", "empty": ""}
    assert merge_variables([secret_values(secret)], {})["token"] == "s3cr\u00e9t"
    with pytest.raises(ValueError, match="'token' is not valid base64"):
        secret_values({"data": {"token": "not base64!"}})


def test_secret_bytes_that_are_not_utf8_survive_until_they_break_the_manifest() -> None:
    variables = secret_values({"data": {"raw": base64.b64encode(b"a\xffb").decode()}})
    assert variables == {"raw": "a\udcffb"}
    assert envsubst("${#raw}", variables) == "3"
    with pytest.raises(SubstitutionError, match="YAMLToJSON"):
        substitute_object(_config_map({"k": "${raw}"}), variables, strict=True)


@pytest.mark.parametrize("name", ["a", "_", "A_1", "_private", "cluster_env", "X" * 300])
def test_valid_variable_names(name: str) -> None:
    validate_variable_names([name])


@pytest.mark.parametrize("name", ["bad-name", "1abc", "é", "", "a b", "a\n", "a.b", "$a"])
def test_invalid_variable_names(name: str) -> None:
    with pytest.raises(SubstitutionError) as info:
        validate_variable_names(["ok", name])
    assert str(info.value) == NAME_ERROR.format(name)


def test_the_first_invalid_name_in_sorted_order_is_reported() -> None:
    with pytest.raises(SubstitutionError, match="'a-a' var name"):
        validate_variable_names(["z-z", "ok", "a-a"])


# ---------------------------------------------------------------------------------------------
# Opting out and strategies


@pytest.mark.parametrize("field", ["labels", "annotations"])
def test_disabled_objects_are_left_alone(field: str) -> None:
    obj = _config_map({"a": "${undefined}"}, **{field: {SUBSTITUTE_KEY: "disabled"}})
    assert substitution_disabled(obj)
    # Not even the variable names are checked, nor strict mode applied.
    assert substitute_object(obj, {"bad-name": "x"}, strict=True, strategy="Always") is obj
    assert obj["data"] == {"a": "${undefined}"}


@pytest.mark.parametrize("value", ["Disabled", "false", "", "disabled "])
def test_only_the_exact_value_disabled_opts_out(value: str) -> None:
    obj = _config_map({"a": "${x}"}, labels={SUBSTITUTE_KEY: value})
    assert not substitution_disabled(obj)
    assert substitute_object(obj, {"x": "1"}, strict=True)["data"] == {"a": 1}


def test_disabled_check_tolerates_odd_metadata() -> None:
    assert not substitution_disabled({"kind": "X"})
    assert not substitution_disabled({"metadata": "x"})
    assert not substitution_disabled({"metadata": {"labels": None, "annotations": ["x"]}})


def test_with_variables_does_nothing_without_any_variable() -> None:
    obj = _config_map({"a": "${color:=blue}", "b": "${undefined}"})
    assert substitute_object(obj, {}, strict=True) is obj
    assert substitute_object(obj, {}, strict=True, strategy="WithVariables") is obj


def test_with_variables_substitutes_when_one_variable_exists_even_if_unused() -> None:
    obj = _config_map({"a": "${color:=blue}"})
    assert substitute_object(obj, {"unused": ""}, strict=True)["data"] == {"a": "blue"}


def test_always_substitutes_without_variables() -> None:
    obj = _config_map({"a": "${color:=blue}", "b": "${undefined}"})
    assert substitute_object(obj, {}, strict=False, strategy="Always")["data"] == {
        "a": "blue",
        "b": None,
    }
    with pytest.raises(SubstitutionError) as info:
        substitute_object(obj, {}, strict=True, strategy="Always")
    assert str(info.value) == (
        'envsubst error: variable substitution failed: variable not set (strict mode): "undefined"'
    )


def test_unknown_strategy_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown substitute strategy 'Sometimes'"):
        substitute_object(_config_map({}), {"a": "1"}, strict=True, strategy="Sometimes")  # type: ignore[arg-type]


def test_invalid_names_fail_the_object_even_when_unused() -> None:
    obj = _config_map({"a": "no variables"})
    with pytest.raises(SubstitutionError) as info:
        substitute_object(obj, {"ok": "1", "bad-name": "2"}, strict=False)
    assert str(info.value) == NAME_ERROR.format("bad-name")


# ---------------------------------------------------------------------------------------------
# What the substituted object holds


def test_input_is_not_modified_and_unchanged_objects_are_returned_as_is() -> None:
    obj = _config_map({"a": "${x}", "b": ["${x}", {"c": "${x}"}]})
    before = copy.deepcopy(obj)
    out = substitute_object(obj, {"x": "v"}, strict=True)
    assert obj == before
    assert out == _config_map({"a": "v", "b": ["v", {"c": "v"}]})
    plain = _config_map({"a": "no dollar", "b": "$not-a-variable"})
    assert substitute_object(plain, {"x": "v"}, strict=True) is plain


def test_escapes_and_bare_dollars() -> None:
    obj = _config_map({"a": "$${x} $x ${x} $$ $"})
    assert substitute_object(obj, {"x": "v"}, strict=True)["data"] == {"a": "${x} $x v $ $"}


def test_numbers_and_booleans_are_typed_quoting_in_the_source_does_not_help() -> None:
    manifest = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: ${replicas}
  paused: "${paused}"
  template:
    spec:
      containers:
      - name: app
        env:
        - name: FLAG
          value: "${flag}"
        - name: FLAG_AS_STRING
          value: ${quote}${flag}${quote}
        - name: VERSION
          value: '${quote}${version}${quote}'
"""
    variables = {
        "replicas": "3",
        "paused": "false",
        "flag": "true",
        "quote": '"',
        "version": "1.10",
    }
    out = substitute_object(_load(manifest), variables, strict=True)
    assert _typed(out["spec"]["replicas"]) == ("int", 3)
    assert _typed(out["spec"]["paused"]) == ("bool", False)
    env = out["spec"]["template"]["spec"]["containers"][0]["env"]
    assert _typed([e["value"] for e in env]) == [("bool", True), ("str", "true"), ("str", "1.10")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3),
        ("010", 8),
        ("0x1F", 31),
        ("1e3", 1000),
        ("1.5", 1.5),
        ("true", True),
        # go-yaml v2 reads the substituted text: YAML 1.1 booleans
        ("yes", True),
        ("NO", False),
        ("on", True),
        ("Off", False),
        ("y", True),
        ("n", False),
        ("~", None),
        ("", None),
        # timestamps stay as written (go-yaml v3 would normalise them)
        ("2024-01-02", "2024-01-02"),
        ("2024-01-02T03:04:05+01:00", "2024-01-02T03:04:05+01:00"),
        ("12:30", "12:30"),
        ('"3"', "3"),
        ("'yes'", "yes"),
        ("{a: 1, b: y}", {"a": 1, "b": True}),
        ("[1, n, x]", [1, False, "x"]),
        ("{a: , b}", {"a": None, "b": None}),
        ("!!str 5", "5"),
        ("a #comment", "a"),
        ("é😀", "é😀"),
    ],
)
def test_substituted_values_are_read_as_flux_reads_them(value: str, expected: Any) -> None:
    out = substitute_object(_config_map({"k": "${v}", "l": ["${v}"]}), {"v": value}, strict=True)
    assert _typed(out["data"]) == _typed({"k": expected, "l": [expected]})


def test_only_substituted_scalars_are_read_the_go_yaml_v2_way() -> None:
    obj = _config_map({"a": "y", "b": "no", "c": "2024-01-02", "d": "${v}", "e": "x ${v}"})
    out = substitute_object(obj, {"v": "y"}, strict=True)
    assert _typed(out["data"]) == _typed(
        {"a": "y", "b": "no", "c": "2024-01-02", "d": True, "e": "x y"}
    )


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("8080", "8080"),
        ("010", "8"),
        ("0x10", "16"),
        ("yes", "true"),
        ("off", "false"),
        ("1.5", "1.5"),
        ("1e3", "1000"),
        ("0.1", "0.1"),
        ("3.14159265", "3.1415927"),
        ("1e-10", "1e-10"),
        ("1e10", "1e+10"),
        ("1e39", ".inf"),
        # Above float32's maximum but within half a unit of it: Go rounds down to the maximum.
        ("3.4028235e+38", "3.4028235e+38"),
        (".nan", ".nan"),
        ("2024-01-02", "2024-01-02"),
        ("name", "name"),
    ],
)
def test_substituted_keys_become_strings_as_in_flux(key: str, expected: str) -> None:
    obj = _config_map({"${k}": "v"}) | {"spec": {"nested": {"${k}": "v"}}}
    out = substitute_object(obj, {"k": key}, strict=True)
    assert out["data"] == {expected: "v"}
    assert out["spec"] == {"nested": {expected: "v"}}


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (
            "18446744073709551615",
            'unsupported map key of type: uint64, key: 0xffffffffffffffff, value: "v"',
        ),
        ("~", 'unsupported map key of type: %!s(<nil>), key: <nil>, value: "v"'),
    ],
)
def test_keys_flux_cannot_convert(key: str, message: str) -> None:
    with pytest.raises(SubstitutionError) as info:
        substitute_object(_config_map({"${k}": "v"}), {"k": key}, strict=True)
    assert str(info.value) == f"envsubst error: YAMLToJSON: {message}"


def test_a_substituted_key_replaces_an_existing_one() -> None:
    # go-yaml v2 keeps the last of repeated keys; "${k}" sorts before "k2".
    obj = _config_map({"k2": "second", "${k}": "first", "y": "untouched"})
    out = substitute_object(obj, {"k": "k2"}, strict=True)
    assert out["data"] == {"k2": "second", "y": "untouched"}


def test_multi_line_strings_keep_their_lines_and_take_values_literally() -> None:
    obj = _config_map({"script": "echo ${greeting}\npath=${path}\n"})
    out = substitute_object(obj, {"greeting": "'hi' \"there\"", "path": "C:\\temp"}, strict=True)
    assert out["data"] == {"script": "echo 'hi' \"there\"\npath=C:\\temp\n"}


def test_strings_written_double_quoted_interpret_escapes_in_values() -> None:
    # A trailing space before a line break rules out a literal block, so Flux writes this string
    # double-quoted: a substituted backslash sequence becomes an escape.
    obj = _config_map({"a": "x ${v} \ny"})
    assert substitute_object(obj, {"v": "a\\tb"}, strict=True)["data"] == {"a": "x a\tb \ny"}


def test_long_lines_are_substituted_as_flux_folds_them() -> None:
    words = "word " * 20
    obj = _config_map({"a": f"{words}${{missing:=two words}} {words}"})
    out = substitute_object(obj, {"x": "1"}, strict=True)
    assert out["data"] == {"a": f"{words}two words {words}"}


@pytest.mark.parametrize(
    ("value", "start"),
    [
        ("a: b", "envsubst error: YAMLToJSON: yaml: line "),
        ('"unterminated', "envsubst error: YAMLToJSON: yaml: line "),
        ("*alias", "envsubst error: YAMLToJSON: yaml: line "),
        (".inf", "envsubst error: YAMLToJSON: json: unsupported value: +Inf"),
        ("-.Inf", "envsubst error: YAMLToJSON: json: unsupported value: -Inf"),
        (".NaN", "envsubst error: YAMLToJSON: json: unsupported value: NaN"),
    ],
)
def test_values_that_break_the_yaml(value: str, start: str) -> None:
    with pytest.raises(SubstitutionError) as info:
        substitute_object(_config_map({"k": "${v}"}), {"v": value}, strict=True)
    assert str(info.value).startswith(start)


def test_a_value_that_swallows_the_kind_fails_like_flux_does_next() -> None:
    # The quote opens a scalar that runs over "kind: ConfigMap" up to the quote in "list" (keys
    # are written in go-yaml v2's order).
    obj = _config_map({"k": "${v}"}) | {"list": ["${v}"]}
    with pytest.raises(SubstitutionError, match="Object 'Kind' is missing in '"):
        substitute_object(obj, {"v": "'"}, strict=True)


def test_parse_errors_win_over_undefined_variables() -> None:
    obj = _config_map({"a": "${undefined}", "b": "${x-default}"})
    with pytest.raises(SubstitutionError) as info:
        substitute_object(obj, {"x": "1"}, strict=True)
    assert str(info.value) == "envsubst error: variable substitution failed: missing closing brace"


def test_post_build_failure_names_the_object_as_kustomize_does() -> None:
    error = SubstitutionError("envsubst error: x")
    assert post_build_failure(_config_map({}), error) == (
        "post build failed for 'ConfigMap.v1.[noGrp]/c': envsubst error: x"
    )
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app"}}
    assert post_build_failure(deployment, error) == (
        "post build failed for 'Deployment.v1.apps/app': envsubst error: x"
    )


# ---------------------------------------------------------------------------------------------
# The flux CLI's own golden fixtures


def _flux_testdata(path: str) -> Path:
    root = corpus_root()
    if root is None:
        pytest.skip("the Flux corpus (../shared/corpus) is not available")
    return root / "fluxcd__flux2" / path


def test_flux_envsubst_golden_file() -> None:
    # cmd/flux/envsubst_test.go: REPO_NAME=test, REPO_NAMESPACE unset (defaulted).
    directory = _flux_testdata("cmd/flux/testdata/envsubst")
    source = (directory / "file.yaml").read_text()
    gold = (directory / "file.gold").read_text()
    assert envsubst(source, {"REPO_NAME": "test"}) == gold
    assert substitute_object(_load(source), {"REPO_NAME": "test"}, strict=True) == _load(gold)
    # TestEnvsubst_Strinct: without REPO_NAME, strict mode fails.
    with pytest.raises(EnvsubstError, match=r"variable not set \(strict mode\)"):
        envsubst(source, {}, strict=True)


@pytest.mark.parametrize(
    ("kustomization", "color", "shape"),
    [
        ("with-variables.yaml", "${color:=blue}", "${shape:=square}"),
        ("always.yaml", "blue", "square"),
    ],
)
def test_flux_build_substitute_strategy(kustomization: str, color: str, shape: str) -> None:
    # internal/build/build_test.go, TestBuildSubstituteStrategy.
    directory = _flux_testdata("internal/build/testdata/substitute-strategy")
    post_build = _load((directory / kustomization).read_text())["spec"]["postBuild"]
    variables = merge_variables([], post_build.get("substitute") or {})
    configmap = _load((directory / "resources" / "configmap.yaml").read_text())
    out = substitute_object(
        configmap,
        variables,
        strict=True,
        strategy=post_build.get("substituteStrategy", "WithVariables"),
    )
    assert out["data"] == {"color": color, "shape": shape}


def test_flux_build_var_substitution_golden_result() -> None:
    # cmd/flux/build_kustomization_test.go, "build deployment and configmap with var
    # substitution": the Kustomization substitutes cluster_env and cluster_region.
    directory = _flux_testdata("cmd/flux/testdata/build-kustomization")
    variables = merge_variables([], {"cluster_env": "prod", "cluster_region": "eu-central-1"})
    golden = yamlio.load_all(
        (directory / "podinfo-with-var-substitution-result.yaml")
        .read_text()
        .replace("{{ .fluxns }}", "flux-system")
    )
    deployment = _load((directory / "var-substitution" / "deployment.yaml").read_text())
    # The generated ConfigMap carries the opt-out label (generatorOptions).
    dashboards = _config_map(
        {"cluster.json": (directory / "var-substitution" / "cluster.json").read_text()},
        labels={SUBSTITUTE_KEY: "disabled"},
    )
    results = [substitute_object(o, variables, strict=True) for o in (deployment, dashboards)]
    for result, expected in zip(results, golden, strict=True):
        # Other build steps add the owner labels, the target namespace and the name hash.
        for key in ("kustomize.toolkit.fluxcd.io/name", "kustomize.toolkit.fluxcd.io/namespace"):
            del expected["metadata"]["labels"][key]
        del expected["metadata"]["namespace"]
        result["metadata"]["name"] = expected["metadata"]["name"]
        assert _typed(result) == _typed(expected)
    assert "${DS_PROMETHEUS}" in results[1]["data"]["cluster.json"]


# ---------------------------------------------------------------------------------------------
# The real flux CLI as the oracle: flux build kustomization --dry-run

_BASE = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"
_LONG = "word " * 15

ORACLE_CASES: list[tuple[str, str, dict[str, str] | None, bool, str | None]] = [
    # (id, manifest, postBuild.substitute, strict, substituteStrategy)
    (
        "types",
        _BASE + "data:\n"
        '  plain: ${v}\n  quoted: "${v}"\n  inside: "x ${v}"\n  hash: \'#${v}\'\n'
        '  lines: "a\\n${v}\\nb"\n  spaced: "a \\n${v}\\nb"\n'
        "list:\n- ${v}\n- y\n- '${v}'\n",
        {"v": "yes"},
        True,
        None,
    ),
    *(
        (
            f"value {value!r}",
            _BASE + 'data:\n  plain: ${v}\n  quoted: "${v}"\n  lines: "a \\n${v}\\nb"\n'
            "  key:\n    ${v}: x\n",
            {"v": value},
            False,
            None,
        )
        for value in [
            "n",
            "On",
            "~",
            "1.5",
            "1e3",
            "0x1F",
            "010",
            "08",
            "-0",
            "+1",
            "1_000",
            "2024-1-2",
            "2024-01-02 03:04:05",
            "2024-01-02t03:04:05+01:00",
            "12:30",
            "1e400",
            "0.0000001",
            "99999999999999999999",
            "'s'",
            '"d"',
            "{a: 1}",
            "{a: }",
            "[a, ]",
            "&anchor x",
            "!!str 5",
            "a\\tb",
            "C:\\temp",
            "é😀",
            "=",
            "<<",
            ".inf",
        ]
    ),
    (
        "folded long lines",
        _BASE + f"data:\n  a: {_LONG}${{x:=hello big world}} {_LONG}\n"
        f"  b: '{_LONG}${{x/a b/c}} {_LONG}'\n  c: {_LONG}${{#x}}\n",
        {"x": "a b c"},
        True,
        None,
    ),
    (
        "deployment",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n"
        "  namespace: ${ns:=default}\nspec:\n  replicas: ${replicas}\n  template:\n    spec:\n"
        '      containers:\n      - name: app\n        image: "ghcr.io/x/app:${tag}"\n'
        '        env:\n        - name: A\n          value: "${flag}"\n'
        "        - name: B\n          value: ${quote}${flag}${quote}\n        resources: {}\n",
        {"replicas": "3", "tag": "1.2.3", "flag": "true", "quote": '"'},
        True,
        None,
    ),
    (
        "opt-out and strategy",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: off\n  annotations:\n"
        "    kustomize.toolkit.fluxcd.io/substitute: disabled\ndata:\n  a: ${undefined}\n---\n"
        + _BASE
        + "data:\n  a: ${x:=def}\n",
        None,
        True,
        None,
    ),
    ("always", _BASE + "data:\n  a: ${x:=def}\n  b: ${u}\n", None, False, "Always"),
    ("always strict", _BASE + "data:\n  a: ${x:=def}\n  b: ${u}\n", None, True, "Always"),
    ("strict", _BASE + "data:\n  a: ${x}\n  b: ${u}\n", {"x": "1"}, True, None),
    ("name", _BASE + "data:\n  a: ${x}\n", {"x": "1", "bad-name": "2"}, True, None),
    ("syntax", _BASE + "data:\n  a: ${x-1}\n", {"x": "1"}, False, None),
    ("duplicate", _BASE + "data:\n  ${k}: v\n  k2: w\n", {"k": "k2"}, False, None),
    ("key uint64", _BASE + "data:\n  ${k}: v\n", {"k": "18446744073709551615"}, False, None),
    ("swallowed kind", _BASE + "data:\n  a: ${q}\n", {"q": "'"}, False, None),
]

_OWNER_LABELS = ("kustomize.toolkit.fluxcd.io/name", "kustomize.toolkit.fluxcd.io/namespace")


def _flux_build(
    tmp: Path, manifest: str, variables: dict[str, str] | None, strict: bool, strategy: str | None
) -> tuple[str, Any]:
    (tmp / "res").mkdir()
    (tmp / "res" / "objects.yaml").write_text(manifest)
    (tmp / "res" / "kustomization.yaml").write_text("resources: [objects.yaml]\n")
    post_build: dict[str, Any] = {}
    if variables is not None:
        post_build["substitute"] = variables
    if strategy is not None:
        post_build["substituteStrategy"] = strategy
    kustomization = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "t", "namespace": "flux-system"},
        "spec": {"path": "./res", "postBuild": post_build},
    }
    # JSON keeps the variable names strings (flux reads a plain `y:` key as a boolean).
    (tmp / "ks.yaml").write_text(json.dumps(kustomization))
    args = [str(flux_cli.flux_path()), "build", "ks", "t", "--dry-run"]
    args += ["--path", str(tmp / "res"), "--kustomization-file", str(tmp / "ks.yaml")]
    args += ["--strict-substitute"] if strict else []
    done = subprocess.run(args, capture_output=True, text=True, env={"HOME": str(tmp)}, timeout=60)
    if done.returncode != 0:
        message = done.stderr.strip().removeprefix("✗ ")
        if message.startswith("var substitution failed for '"):
            return ("error", message.split("': ", 1)[1])
        return ("later error", message)
    objects = yamlio.load_all(done.stdout)
    for obj in objects:
        labels = obj["metadata"]["labels"]
        for key in _OWNER_LABELS:
            del labels[key]
        if not labels:
            del obj["metadata"]["labels"]
    return ("ok", objects)


def _ours(
    manifest: str, variables: dict[str, str] | None, strict: bool, strategy: str | None
) -> tuple[str, Any]:
    merged = merge_variables([], variables or {})
    try:
        return (
            "ok",
            [
                substitute_object(o, merged, strict=strict, strategy=strategy or "WithVariables")  # type: ignore[arg-type]
                for o in yamlio.load_all(manifest)
            ],
        )
    except SubstitutionError as e:
        return ("error", str(e))


@pytest.mark.parametrize(
    ("manifest", "variables", "strict", "strategy"),
    [pytest.param(*case[1:], id=case[0]) for case in ORACLE_CASES],
)
def test_same_as_flux_build(
    tmp_path: Path,
    manifest: str,
    variables: dict[str, str] | None,
    strict: bool,
    strategy: str | None,
) -> None:
    if not flux_cli.is_built():
        pytest.skip("the flux CLI is not built (python -m testenv builds it)")
    theirs = _flux_build(tmp_path, manifest, variables, strict, strategy)
    ours = _ours(manifest, variables, strict, strategy)
    if theirs[0] == "later error":
        # Substitution succeeded in Flux but left an object the next step refuses; tidal
        # refuses it at once.
        assert ours[0] == "error", ours
        return
    if theirs[0] == "error" and "YAMLToJSON: yaml:" in theirs[1]:
        # YAML parser messages are worded differently; where they happen is what matters.
        assert ours[0] == "error" and ours[1].startswith(theirs[1].split(": yaml:")[0]), ours
        return
    assert theirs[0] == ours[0], (theirs, ours)
    if theirs[0] == "error":
        assert ours[1] == theirs[1]
    else:
        by_name = {o["metadata"]["name"]: o for o in ours[1]}
        assert [_typed(o) for o in theirs[1]] == [
            _typed(by_name[o["metadata"]["name"]]) for o in theirs[1]
        ]
