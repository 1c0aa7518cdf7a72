"""bench/helmrelease.py's reading of a HelmRelease's status and its table: a misreading here
would stop a timing at the wrong event or print a wrong ratio in the recorded result."""

from __future__ import annotations

import importlib.util
import io
import sys
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_helmrelease", BENCH / "helmrelease.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


def hr(generation: int, observed: int, ready: str, history: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "metadata": {"name": "app", "generation": generation},
        "status": {
            "observedGeneration": observed,
            "conditions": [{"type": "Ready", "status": ready}],
            "history": history,
        },
    }


def snap(version: int, status: str = "deployed", chart: str = "1.0.0") -> dict[str, Any]:
    return {"version": version, "status": status, "chartVersion": chart}


def test_released_waits_for_the_revision_the_generation_and_ready(bench: ModuleType) -> None:
    check = bench.released(2)
    assert check(hr(2, 2, "True", [snap(2), snap(1)]))
    # The last generation's Ready, still showing before the controller picks up the patch.
    assert not check(hr(2, 1, "True", [snap(1)]))
    assert not check(hr(2, 2, "Unknown", [snap(2, "pending-upgrade"), snap(1)]))
    assert not check(hr(2, 2, "True", [snap(3), snap(2)]))  # released twice: not the bench's
    assert not check(hr(1, 1, "True", []))
    assert not check(None)


def test_table_prints_both_sides_and_the_ratio(bench: ModuleType) -> None:
    res = bench.Results()
    res.put(4, "3. peak RSS", "flux", 200.0, "MB")
    res.put(1, "1. install", "flux", 2.0, "s")
    res.put(1, "1. install", "tidal", 1.5, "s")
    res.put(4, "3. peak RSS", "tidal", 100.0, "MB")
    res.put(4, "    tidal controller, VmHWM", "tidal", 90.0, "MB")
    lines = bench.table(res)
    assert lines[0].split() == ["measurement", "flux", "tidal", "tidal/flux"]
    assert lines[2].split() == ["1.", "install", "2.00", "s", "1.50", "s", "0.75"]
    assert lines[3].split() == ["3.", "peak", "RSS", "200", "MB", "100", "MB", "0.50"]
    assert lines[4].split() == ["tidal", "controller,", "VmHWM", "90", "MB"]  # no ratio


def test_big_chart_asks_for_the_number_of_objects(bench: ModuleType) -> None:
    with tarfile.open(fileobj=io.BytesIO(bench.big_chart(37)), mode="r:gz") as tar:
        files = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert sorted(files) == ["many/Chart.yaml", "many/templates/configmap.yaml", "many/values.yaml"]
    assert "count: 37\n" in files["many/values.yaml"]
    assert "until (int .Values.count)" in files["many/templates/configmap.yaml"]
