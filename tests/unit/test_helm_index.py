"""Loading and normalising Helm repository indexes (tidal.source.helm.index), byte for byte what
source-controller stores; checked against Flux's own Go code (tests/unit/helmindex_oracle) when
Go is installed."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidal.source.helm import gojson
from tidal.source.helm.chart_metadata import sanitize
from tidal.source.helm.fetch import index_url, redact
from tidal.source.helm.index import normalize
from tidal.source.helm.index_schema import IndexLoadError
from tidal.source.helm.yamlevents import format_float32_g, resolve_plain
from tidal.source.helmrepository import human_size

ORACLE = Path(__file__).parent / "helmindex_oracle"

INDEXES: dict[str, bytes] = {
    "helm-repo-index": b"""apiVersion: v1
entries:
  nginx:
  - apiVersion: v2
    appVersion: 1.16.0
    created: "2021-06-09T16:23:20.499814565-06:00"
    description: A <b>Helm</b> chart & "more"
    digest: abc
    name: nginx
    type: application
    urls:
    - https://example.com/nginx-0.1.0.tgz
    version: 0.1.0
  - name: nginx
    version: 0.10.0
    created: 2021-06-10T16:23:20Z
    urls: [x]
    maintainers: [{name: me, email: a@b}]
    dependencies:
    - name: redis
      version: 1.x
      repository: https://charts
      import-values: [a, {child: b, parent: c}, 1.5, 10, 1e21, 0.0000001]
  - name: nginx
    version: bad
  - null
  alpha:
  - name: alpha
    version: v1.2
    keywords: [a, "b\\tc"]
    annotations: {b: "2", a: "1"}
generated: "2021-06-09T16:23:20.499029981+00:00"
serverInfo: {contextPath: /v1/helm, z: [1, 2.5, true, null]}
""",
    "json": json.dumps(
        {
            "apiVersion": "v1",
            "entries": {"x": [{"Name": "x", "version": "1.0.0", "unknown": 1}]},
            "publicKeys": ["k"],
        }
    ).encode(),
    "no-api-version": b"entries: {}\n",
    "unknown-field": b"apiVersion: v1\nfoo: bar\n",
    "number-version": b"apiVersion: v1\nentries:\n  a:\n  - name: a\n    version: 1.0\n",
    "number-digest": (
        b"apiVersion: v1\nentries:\n  a:\n  - name: a\n    version: 1.0.0\n    digest: 1.10\n"
        b"    urls: [1, true]\n"
    ),
    "empty": b"",
    "null-charts": b"apiVersion: v1\nentries:\n  a:\n  b: []\n  c: [null]\n",
    "duplicate-key": b"apiVersion: v1\napiVersion: v2\n",
    "sanitised": (
        b'apiVersion: v1\nentries:\n  a:\n  - name: "a\\u00a0b"\n'
        b'    description: "x\\u200by\\u2028z"\n    version: 1.0.0-rc.1+b\n'
        b"  - name: a\n    version: 1.0.0\n  - name: a\n    version: 01.0.0\n    type: foo\n"
        b"  - name: a/b\n    version: 1.0.0\n"
    ),
    "bad-time": (
        b"apiVersion: v1\nentries:\n  a:\n  - name: a\n    version: 1.0.0\n"
        b"    created: 2021-06-10 16:23:20\n"
    ),
    "yaml-1.1-booleans": (
        b"apiVersion: v1\nentries:\n  a:\n  - name: a\n    version: 1.0.0\n    deprecated: yes\n"
        b"    removed: on\n"
    ),
    "sorting": (
        b"apiVersion: v1\nentries:\n  a:\n"
        + b"".join(
            f"  - {{name: a, version: '{v}'}}\n".encode()
            for v in ("1.0.0", "2.0.0-rc.1", "2.0.0", "1.10.0", "1.9.0", "v2.0.0", "0.1", "3")
        )
    ),
    "dependencies": (
        b"apiVersion: v1\nentries:\n  a:\n"
        b"  - {name: a, version: 1.0.0, dependencies: [{name: x, repository: r}, "
        b"{name: y, alias: x, repository: r}, {name: z, repository: ' \\t'}]}\n"
        b"  - {name: a, version: 2.0.0, dependencies: [{name: x, alias: 'bad alias'}]}\n"
        b"  - {name: a, version: 3.0.0, dependencies: [null]}\n"
        b"  - {name: a, version: 4.0.0, maintainers: [null]}\n"
    ),
    "aliases": (
        b"apiVersion: v1\nentries:\n  a:\n  - &v {name: a, version: 1.0.0, urls: &u [x, y]}\n"
        b"  - {name: a, version: 2.0.0, urls: *u}\n  - *v\n"
    ),
    "unknown-chart-field": b"apiVersion: v1\nentries:\n  a:\n  - {name: a, version: 1.0.0, x: 1}\n",
    "top-level-list": b"- a\n",
    "scalar-document": b"hello\n",
    "html-and-unicode": (
        'apiVersion: v1\nentries:\n  a:\n  - name: a\n    version: 1.0.0\n    home: "<&>é\\u2029"\n'
        "    annotations: {k: '\\x01'}\n"
    ).encode(),
}


def load(data: bytes) -> bytes | str:
    try:
        return normalize(data).to_bytes()
    except IndexLoadError as e:
        return f"error: {e}"


def test_versions_are_sorted_newest_first_and_invalid_ones_reported() -> None:
    index = normalize(INDEXES["sorting"])
    text = index.to_bytes().decode()
    order = [v for v in ("3", '2.0.0"', "v2.0.0", "2.0.0-rc.1", "1.10.0", "1.9.0") if v in text]
    positions = [text.index(f'"version": "{v}') for v in order]
    assert positions == sorted(positions)
    assert index.version_count == 8 and index.skipped == []

    index = normalize(INDEXES["helm-repo-index"])
    assert sorted(str(s) for s in index.skipped) == [
        'nginx bad: validation: chart.metadata.version "bad" is invalid',
        "nginx: empty entry",
    ]
    assert index.chart_count == 2 and index.version_count == 3


def test_the_artifact_is_go_s_json() -> None:
    data = normalize(INDEXES["helm-repo-index"]).to_bytes()
    assert data.startswith(b'{\n  "serverInfo": {\n    "contextPath": "/v1/helm",')
    assert (
        b'"description": "A \\u003cb\\u003eHelm\\u003c/b\\u003e chart \\u0026 \\"more\\""' in data
    )
    assert b'"generated": "2021-06-09T16:23:20.499029981Z"' in data
    assert b'"created": "2021-06-09T16:23:20.499814565-06:00"' in data
    assert b'"urls": null,\n        "created": "0001-01-01T00:00:00Z"' in data
    assert b"1e+21" in data and b"1e-7" in data
    assert json.loads(data)["entries"]["nginx"][0]["version"] == "0.10.0"


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("empty", "empty index.yaml file"),
        ("no-api-version", "no API version specified"),
        ("unknown-field", 'json: unknown field "foo"'),
        ("unknown-chart-field", 'json: unknown field "x"'),
        ("number-version", "cannot unmarshal number into Go struct field"),
        ("bad-time", 'parsing time "2021-06-10 16:23:20"'),
        ("duplicate-key", "already set in map"),
        ("top-level-list", "cannot unmarshal array into Go value of type repo.IndexFile"),
    ],
)
def test_bad_indexes_are_refused_with_a_reason(name: str, error: str) -> None:
    with pytest.raises(IndexLoadError) as caught:
        normalize(INDEXES[name])
    assert error in str(caught.value)


def test_json_indexes_are_lenient_as_encoding_json() -> None:
    data = normalize(INDEXES["json"]).to_bytes()
    assert json.loads(data)["entries"]["x"][0]["name"] == "x"


def test_alias_bombs_do_not_explode() -> None:
    lines = ["apiVersion: v1", "serverInfo:", "  l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):
        lines.append(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    with pytest.raises(IndexLoadError, match="excessive aliasing"):
        normalize("\n".join(lines).encode() + b"\n")


def test_malformed_yaml_never_raises_anything_else() -> None:
    for text in (b"apiVersion: v1\nentries: [a\n", b"\xff\xfe", b"a: *nope\n", b"{{{"):
        with pytest.raises(IndexLoadError):
            normalize(text)


def test_sanitize_and_scalars() -> None:
    assert sanitize("a\u00a0b\tc\u200bd\x07") == "a b cd"
    assert resolve_plain("yes") is True
    assert resolve_plain("0x1F") == 31
    assert resolve_plain("08") == 8.0
    assert resolve_plain("1.2.3") == "1.2.3"
    assert format_float32_g(1.10) == "1.1"
    assert format_float32_g(1234567.0) == "1.234567e+06"
    assert gojson.float64(1.5e-7) == "1.5e-7"
    assert gojson.float64(1e20) == "100000000000000000000"


def test_urls_and_sizes() -> None:
    assert index_url("https://h/charts/") == "https://h/charts/index.yaml"
    assert index_url("https://h/a/../b?x=1") == "https://h/b/index.yaml?x=1"
    assert redact("https://u:pw@h/index.yaml") == "https://u:xxxxx@h/index.yaml"
    assert human_size(40898) == "40.9kB"
    assert human_size(999) == "999B"


# --- the Go oracle --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go is not installed")
    binary = tmp_path_factory.mktemp("helmindex-oracle") / "oracle"
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly -buildvcs=false"}
    build = subprocess.run(
        [go, "build", "-o", str(binary), "."],
        cwd=ORACLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr
    yield binary


def _generated(versions: int) -> bytes:
    from bench.helm_index import generate

    return generate(versions)


@pytest.mark.slow
def test_matches_flux_go_code(oracle: Path) -> None:
    cases = dict(INDEXES, generated=_generated(200_000))
    requests = "".join(
        json.dumps({"id": k, "data": base64.b64encode(v).decode()}) + "\n" for k, v in cases.items()
    )
    run = subprocess.run([str(oracle)], input=requests, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    mismatches = {}
    for line in run.stdout.splitlines():
        answer = json.loads(line)
        ours = load(cases[answer["id"]])
        if "json" in answer:
            if ours != base64.b64decode(answer["json"]):
                mismatches[answer["id"]] = (base64.b64decode(answer["json"])[:2000], ours)
        elif not isinstance(ours, str):
            mismatches[answer["id"]] = (answer["error"], ours[:2000])
    assert mismatches == {}
