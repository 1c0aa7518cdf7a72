"""Benchmark: pulling an OCI artifact of about 1,000 files into an OCIRepository artifact, tidal's
controller against Flux's source-controller, in one run.

One private test control plane with Flux's own CRDs, one CNCF distribution registry (plain HTTP
on loopback), one artifact pushed by the real `flux push artifact` (1,000 YAML files, ~1 KiB
each, in 20 directories). The controllers alternate, one at a time, each started fresh with
empty storage and the same --concurrent; for each:

a. cold pull: time from creating the OCIRepository (ref.tag) to Ready=True with the artifact at
   the pushed digest;
b. no-op: 5 requested reconciles of the unchanged tag (requestedAt until
   status.lastHandledReconcileAt equals it), median (a HEAD of the manifest, nothing pulled);
c. the controller process's peak RSS (VmHWM) and CPU seconds at the end, and its start-up time.

`flux pull artifact` (the CLI, one process, pull + extract to a directory) is timed as a
reference floor. Rounds alternate who goes first; the report shows medians.

    .venv/bin/python bench/oci_pull.py [--rounds 3] [--files 1000]

Writes the report to stdout and to bench/results/oci_pull.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gitrepository import (
    install_crds,
    spawn,
    start_plane,
    stop,
    usage,
    wait_ready,
)
from testenv import flux_cli, flux_controllers, plane, registry
from tidal import __version__ as tidal_version
from tidal.kube.client import Kube

RESULTS = Path(__file__).resolve().parent / "results" / "oci_pull.txt"
API = "/apis/source.toolkit.fluxcd.io/v1"
NAMESPACE = "bench"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"


def write_tree(root: Path, files: int, seed: int = 1) -> int:
    rnd = random.Random(seed)
    total = 0
    for i in range(files):
        path = root / f"app-{i % 20:02d}" / f"cm-{i:04d}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(f"  k{j}: '{rnd.getrandbits(64):016x}'\n" for j in range(40))
        text = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:04d}\ndata:\n{data}"
        path.write_text(text)
        total += len(text)
    return total


def push(flux: Path, reg: registry.Registry, ref: str, path: Path) -> tuple[str, float]:
    t = time.perf_counter()
    out = subprocess.run(
        [str(flux), "push", "artifact", f"{reg.url()}/{ref}", "--path", str(path),
         "--source", "https://example.com/bench", "--revision", "main@sha1:" + "a" * 40],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    took = time.perf_counter() - t
    digest = (out.stdout + out.stderr).rsplit("@", 1)[1].split()[0]
    return digest, took


def flux_pull(flux: Path, reg: registry.Registry, ref: str, work: Path) -> float:
    dest = work / "pulled"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    t = time.perf_counter()
    subprocess.run(
        [str(flux), "pull", "artifact", f"{reg.url()}/{ref}", "--output", str(dest)],
        capture_output=True, check=True,
    )  # fmt: skip
    return time.perf_counter() - t


def oci_repository(name: str, url: str) -> dict[str, Any]:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "OCIRepository",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"url": url, "interval": "10m", "ref": {"tag": "1.0.0"}},
    }


async def until(kube: Kube, path: str, check: Any, within: float = 300) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < within:
        obj = await kube.get(path)
        if check(obj):
            return time.perf_counter() - start
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{path}: {obj.get('status')}")


def ready_at(revision: str) -> Any:
    def check(obj: dict[str, Any]) -> bool:
        status = obj.get("status") or {}
        conds = {c["type"]: c for c in status.get("conditions") or []}
        return (
            conds.get("Ready", {}).get("status") == "True"
            and (status.get("artifact") or {}).get("revision") == revision
        )

    return check


async def one_controller(
    kind: str, kube: Kube, kubeconfig: Path, work: Path, url: str, revision: str, run: int
) -> dict[str, float]:
    data = work / f"{kind}-{run}"
    data.mkdir(parents=True)
    started = time.perf_counter()
    c = spawn(kind, kubeconfig, data, data / "controller.log", 4)
    try:
        await wait_ready(c, started)
        name = f"{kind}-{run}"
        path = f"{API}/namespaces/{NAMESPACE}/ocirepositories/{name}"
        t = time.perf_counter()
        await kube.request(
            "POST", f"{API}/namespaces/{NAMESPACE}/ocirepositories", body=oci_repository(name, url)
        )
        await until(kube, path, ready_at(revision))
        cold = time.perf_counter() - t
        noops = []
        for i in range(5):
            token = f"noop-{run}-{i}"
            t = time.perf_counter()
            await kube.patch(path, {"metadata": {"annotations": {REQUESTED_AT: token}}})
            await until(
                kube,
                path,
                lambda o, tk=token: (o.get("status") or {}).get("lastHandledReconcileAt") == tk,
            )
            noops.append(time.perf_counter() - t)
        use = usage(c.proc.pid)
        await kube.request("DELETE", path)
        for _ in range(200):
            try:
                await kube.get(path)
            except Exception:
                break
            await asyncio.sleep(0.05)
        return {
            "cold_s": cold,
            "noop_s": statistics.median(noops),
            "hwm_mb": use.hwm_mb,
            "cpu_s": use.cpu_s,
            "startup_s": c.startup_s,
        }
    finally:
        stop(c)


async def bench(rounds: int, files: int) -> str:
    flux = flux_cli.build_flux()
    flux_controllers.build_source_controller()
    work = Path(tempfile.mkdtemp(prefix="tidal-bench-oci-"))
    content = work / "content"
    raw_bytes = write_tree(content, files)
    with registry.Registry() as reg:
        digest, push_s = push(flux, reg, "bench/app:1.0.0", content)
        revision = f"1.0.0@{digest}"
        pulls = [flux_pull(flux, reg, "bench/app:1.0.0", work) for _ in range(rounds)]
        state = start_plane(work / "plane")
        try:
            async with Kube.from_kubeconfig(state.kubeconfig) as kube:
                await install_crds(kube)
                await kube.request(
                    "POST",
                    "/api/v1/namespaces",
                    body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
                )
                results: dict[str, list[dict[str, float]]] = {"tidal": [], "flux": []}
                for r in range(rounds):
                    order = ("tidal", "flux") if r % 2 == 0 else ("flux", "tidal")
                    for kind in order:
                        print(f"round {r + 1}: {kind}", file=sys.stderr, flush=True)
                        results[kind].append(
                            await one_controller(
                                kind,
                                kube,
                                state.kubeconfig,
                                work,
                                reg.url("bench/app"),
                                revision,
                                r,
                            )
                        )
        finally:
            plane.down(work / "plane")
            shutil.rmtree(work, ignore_errors=True)

    def med(kind: str, key: str) -> float:
        return statistics.median(x[key] for x in results[kind])

    lines = [
        "OCIRepository pull: tidal vs Flux source-controller "
        f"{flux_controllers.SOURCE_CONTROLLER_VERSION} (medians of {rounds} rounds)",
        f"host: {platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores; "
        f"tidal {tidal_version}",
        f"artifact: {files} files, {raw_bytes / 1e6:.1f} MB of YAML, pushed by flux CLI "
        f"{flux_cli.versions.FLUX} in {push_s:.2f}s",
        "",
        f"{'':28}{'tidal':>10}{'flux':>10}{'ratio':>8}",
    ]
    for key, label, unit in (
        ("cold_s", "cold pull to Ready", "s"),
        ("noop_s", "no-op reconcile", "s"),
        ("hwm_mb", "peak RSS", "MB"),
        ("cpu_s", "CPU (whole run)", "s"),
        ("startup_s", "start-up to /readyz", "s"),
    ):
        a, b = med("tidal", key), med("flux", key)
        lines.append(f"{label + ' (' + unit + ')':28}{a:>10.3f}{b:>10.3f}{a / b:>7.2f}x")
    lines.append(f"{'flux pull artifact (CLI)':28}{statistics.median(pulls):>10.3f}s")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args()
    text = asyncio.run(bench(args.rounds, args.files))
    print(text, end="")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
