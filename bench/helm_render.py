"""Helm rendering: tidal.helm.render (helm-python-sdk in-process) against `helm template`.

    .venv/bin/python -m bench.helm_render [--objects 500] [--runs 5]

Measures, side by side in one run: import time and RSS of the SDK (fresh interpreters), then
for a generated chart of N objects the median wall time and the peak RSS of a fresh process
doing one render, for tidal (load + render + sort) and for the helm CLI (subprocess).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testenv import helm_cli
from tests.unit.test_helm_charts import many_objects_chart

_IMPORT = """
import resource, time, json
t = time.perf_counter(); import tidal.helm.engine; dt = time.perf_counter() - t
print(json.dumps({"s": dt, "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""
_BASELINE = """
import resource, json, tidal.helm.render, tidal.helm.storage
print(json.dumps({"rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""
_RENDER = """
import json, resource, sys, time
from pathlib import Path
from tidal.helm.chart import load_chart
from tidal.helm.render import render
data = Path(sys.argv[1]).read_bytes()
import tidal.helm.engine
t = time.perf_counter()
r = render(load_chart(data), {}, release_name="bench", namespace="default", revision=1,
           is_install=True, is_upgrade=False)
dt = time.perf_counter() - t
print(json.dumps({"s": dt, "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "docs": r.manifest.count("# Source:")}))
"""


def _run(cmd: list[str]) -> tuple[str, float, int]:
    """stdout, wall seconds and peak RSS (kB) of one child, from its own rusage."""
    t = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        dt = time.perf_counter() - t
        if proc.returncode:
            raise SystemExit(f"{cmd[0]} failed ({proc.returncode})")
        out.seek(0)
        return out.read().decode(), dt, usage.ru_maxrss


def _py(code: str, *args: str) -> dict[str, float]:
    result: dict[str, float] = json.loads(_run([sys.executable, "-c", code, *args])[0])
    return result


def _helm(helm: Path, chart: Path) -> tuple[float, int, int]:
    out, dt, rss = _run([str(helm), "template", "bench", str(chart)])
    return dt, rss, out.count("# Source:")


def _in_process(data: bytes, runs: int) -> float:
    from tidal.helm.chart import load_chart
    from tidal.helm.render import render

    chart = load_chart(data)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        render(chart, {}, release_name="bench", namespace="default", revision=1,
               is_install=True, is_upgrade=False)  # fmt: skip
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=500)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    helm = helm_cli.build_helm()

    imports = [_py(_IMPORT) for _ in range(args.runs)]
    base = _py(_BASELINE)["rss_kb"]
    imp_s = statistics.median(i["s"] for i in imports)
    imp_rss = statistics.median(i["rss_kb"] for i in imports)
    print(f"SDK import: {imp_s * 1000:.0f} ms, process RSS {imp_rss / 1024:.0f} MB "
          f"(tidal.helm without the SDK: {base / 1024:.0f} MB)")  # fmt: skip

    data = many_objects_chart(args.objects)
    with tempfile.TemporaryDirectory() as d:
        chart = Path(d) / "many.tgz"
        chart.write_bytes(data)
        tidal_runs = [_py(_RENDER, str(chart)) for _ in range(args.runs)]
        helm_runs = [_helm(helm, chart) for _ in range(args.runs)]
    t_s = statistics.median(r["s"] for r in tidal_runs)
    t_rss = max(r["rss_kb"] for r in tidal_runs)
    h_s = statistics.median(r[0] for r in helm_runs)
    h_rss = max(r[1] for r in helm_runs)
    warm = _in_process(data, args.runs)
    docs = (int(tidal_runs[0]["docs"]), helm_runs[0][2])
    print(f"{args.objects}-object chart (documents: tidal {docs[0]}, helm {docs[1]}):")
    print(f"  tidal.helm.render, fresh process: {t_s * 1000:.0f} ms render, "
          f"peak RSS {t_rss / 1024:.0f} MB")  # fmt: skip
    print(f"  tidal.helm.render, warm (in a running controller): {warm * 1000:.0f} ms")
    print(f"  helm template (subprocess, whole command): {h_s * 1000:.0f} ms, "
          f"peak RSS {h_rss / 1024:.0f} MB")  # fmt: skip
    print(f"  ratio tidal/helm: time {t_s / h_s:.2f}x (warm {warm / h_s:.2f}x), "
          f"peak RSS {t_rss / h_rss:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
