"""tidal.ssa.jsondiff: patch shapes as github.com/wI2L/jsondiff makes them with Rationalize
(checked against the Go library itself when it is in the module cache), and Secret masking."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.go_oracle import needs_go
from tidal.ssa.jsondiff import Operation, compare, go_json, json_equal, mask_secret

CASES: list[tuple[Any, Any]] = [
    ({"a": 1}, {"a": 1}),
    ({"data": {"message": "edited"}}, {"data": {"message": "hello"}}),
    ({"metadata": {"labels": {"a": "1", "b": "2"}}},
     {"metadata": {"labels": {"a": "x", "b": "y"}}}),
    ({"spec": {"args": ["a", "b", "c"]}}, {"spec": {"args": ["a"]}}),
    ({"x": [1, 2]}, {"x": [1, 2, 3, 4]}),
    ({"x": [1, 2, 3, 4, 5]}, {"x": [1, 2]}),
    ({"x": {"y": 1}}, {"x": [1]}),
    ({"x": True}, {"x": 1}),
    ({"x": 1}, {"x": 1.0}),
    ({"x": None}, {"x": {"a": "b"}}),
    ({"a": "b<c&d>"}, {"a": "e<f"}),
    ({"a~/b": 1}, {"a~/b": 2}),
    ({"a&b": {"c": 1, "d": 2}}, {"a&b": {"c": 3, "d": 4}}),
    ({"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80, "protocol": "TCP"}],
         "resources": {}, "imagePullPolicy": "Always"}]}}}},
     {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "nginx:2", "ports": [{"containerPort": 81, "protocol": "TCP"}],
         "resources": {}, "imagePullPolicy": "Always"}]}}}}),
    ({"k": "v", "removed": {"deep": [1, 2, 3]}, "z": 1}, {"k": "w", "added": [{"x": "é"}], "z": 1}),
    ({"data": {"a": "1", "b": "2", "c": "3", "d": "4"}},
     {"data": {"a": "9", "b": "9", "c": "9", "d": "9", "e": "9"}}),
    ({"a": 1, "b": 2}, {"c": 3}),
]  # fmt: skip


def _ops(patch: list[Operation]) -> list[dict[str, Any]]:
    return [op.to_json() for op in patch]


def test_scalar_edit_is_one_replace() -> None:
    assert _ops(compare({"data": {"m": "edited"}}, {"data": {"m": "hello"}})) == [
        {"op": "replace", "path": "/data/m", "value": "hello"}
    ]


def test_small_maps_rationalize_to_one_replace() -> None:
    patch = compare({"labels": {"a": "1", "b": "2"}}, {"labels": {"a": "x", "b": "y"}})
    assert _ops(patch) == [{"op": "replace", "path": "/labels", "value": {"a": "x", "b": "y"}}]


def test_without_rationalize_every_field() -> None:
    patch = compare({"l": {"a": "1", "b": "2"}}, {"l": {"a": "x", "b": "y"}}, rationalize=False)
    assert [op.path for op in patch] == ["/l/a", "/l/b"]


def test_array_tail_removed_at_one_index_and_appended() -> None:
    big = {"p": [{"name": f"n{i}", "value": "x" * 40} for i in range(4)]}
    small = {"p": big["p"][:2]}
    assert _ops(compare(big, small)) == [
        {"op": "remove", "path": "/p/2"},
        {"op": "remove", "path": "/p/2"},
    ]
    assert [op.path for op in compare(small, big)] == ["/p/-", "/p/-"]


def test_keys_are_escaped() -> None:
    patch = compare({"m": {"a/b": "x" * 50, "c": 1}}, {"m": {"a/b": "y" * 50, "c": 1}})
    assert [op.path for op in patch] == ["/m/a~1b"]


def test_json_types() -> None:
    assert json_equal(1, 1.0)
    assert not json_equal(True, 1)
    assert not json_equal({"a": [1]}, {"a": [True]})
    assert go_json({"b": "<&>", "a": "é"}) == '{"a":"é","b":"\\u003c\\u0026\\u003e"}'


def test_mask_changed_added_removed_values() -> None:
    ops = compare(
        {"data": {"a": "x" * 30, "b": "y" * 30, "c": "z" * 30}, "type": "Opaque"},
        {"data": {"a": "X" * 30, "c": "z" * 30, "d": "w" * 30}, "type": "Opaque"},
    )
    masked = {op.path: op.to_json() for op in mask_secret(ops)}
    assert masked == {
        "/data/a": {"op": "replace", "path": "/data/a", "value": "*** (after)"},
        "/data/b": {"op": "remove", "path": "/data/b"},
        "/data/d": {"op": "add", "path": "/data/d", "value": "***"},
    }
    assert [op.old for op in mask_secret(ops)] == ["*** (before)", "***", None]


def test_mask_whole_data_map() -> None:
    [op] = mask_secret([Operation("replace", "/data", {"a": "1", "b": "2"}, {"a": "0", "b": "2"})])
    assert (op.value, op.old) == (
        {"a": "*** (after)", "b": "***"},
        {"a": "*** (before)", "b": "***"},
    )
    [op] = mask_secret([Operation("add", "/stringData", {"k": "v"})])
    assert (op.value, op.old) == ({"k": "***"}, None)
    [op] = mask_secret([Operation("replace", "/metadata/labels/a", "x", "y")])
    assert op.value == "x"


_GO_MAIN = """package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/wI2L/jsondiff"
)

func main() {
	var cases [][2]interface{}
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		panic(err)
	}
	for _, c := range cases {
		p, err := jsondiff.Compare(c[0], c[1], jsondiff.Rationalize())
		if err != nil {
			panic(err)
		}
		b, _ := json.Marshal(p)
		if p == nil {
			b = []byte("[]")
		}
		fmt.Println(string(b))
	}
}
"""


@needs_go
def test_same_patches_as_go_jsondiff(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text(
        "module oracle\n\ngo 1.22\n\nrequire github.com/wI2L/jsondiff v0.6.1\n"
    )
    (tmp_path / "main.go").write_text(_GO_MAIN)
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOPROXY": "off", "GOSUMDB": "off"}
    done = subprocess.run(
        ["go", "run", "."], cwd=tmp_path, input=json.dumps(CASES).encode(),
        capture_output=True, env=env, timeout=240, check=False,
    )  # fmt: skip
    if done.returncode != 0 and b"module lookup disabled" in done.stderr:
        pytest.skip("github.com/wI2L/jsondiff v0.6.1 is not in the Go module cache")
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    want = [json.loads(line) for line in done.stdout.decode().splitlines()]
    got = [_ops(compare(src, tgt)) for src, tgt in CASES]
    assert got == want
