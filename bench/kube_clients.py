"""Kubernetes client libraries side by side, in one run, against one real test plane.

For each client: cold import time and RSS (in a fresh interpreter), then server-side apply of N
ConfigMaps at a fixed concurrency (create pass, then an unchanged re-apply pass, which is what a
no-op reconcile costs), then a LIST of them. Prints a table with ratios to tidal's client.

    python bench/kube_clients.py [--kubeconfig K] [--objects 500] [--concurrency 20]

Without --kubeconfig it starts its own plane and stops it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

IMPORTS = {
    "tidal (lightkube config + httpx2 JSON)": "import tidal.kube.client",
    "lightkube AsyncClient": "import lightkube; from lightkube.resources.core_v1 import ConfigMap",
    "kubernetes.aio (official)": "from kubernetes.aio import client, config",
}


def cold_import(stmt: str) -> tuple[float, float]:
    code = (
        "import time, resource; t=time.perf_counter(); "
        f"{stmt}; "
        "print(time.perf_counter()-t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)"
    )
    runs = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        t, rss = out.stdout.split()
        runs.append((float(t), float(rss)))
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def cm(ns: str, i: int, rev: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"cm-{i:05d}", "namespace": ns, "labels": {"bench": "kube-clients"}},
        "data": {"revision": rev, "payload": "x" * 512},
    }


async def bounded(n: int, concurrency: int, one: Callable[[int], Awaitable[object]]) -> float:
    sem = asyncio.Semaphore(concurrency)

    async def run(i: int) -> None:
        async with sem:
            await one(i)

    start = time.perf_counter()
    await asyncio.gather(*(run(i) for i in range(n)))
    return time.perf_counter() - start


async def bench_tidal(kubeconfig: str, ns: str, n: int, c: int) -> dict[str, float]:
    from tidal.kube.client import Kube

    async with Kube.from_kubeconfig(kubeconfig) as kube:
        await kube.request(
            "POST", "/api/v1/namespaces", body={"metadata": {"name": ns}, "kind": "Namespace"}
        )

        async def apply(i: int) -> object:
            path = f"/api/v1/namespaces/{ns}/configmaps/cm-{i:05d}"
            return await kube.apply(path, cm(ns, i, "1"), field_manager="bench", force=True)

        create = await bounded(n, c, apply)
        noop = await bounded(n, c, apply)
        t = time.perf_counter()
        items = (await kube.get(f"/api/v1/namespaces/{ns}/configmaps"))["items"]
        listed = time.perf_counter() - t
        assert len(items) >= n
    return {"create": create, "noop": noop, "list": listed}


async def bench_lightkube(kubeconfig: str, ns: str, n: int, c: int) -> dict[str, float]:
    from lightkube import AsyncClient, KubeConfig
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import ConfigMap, Namespace

    client = AsyncClient(KubeConfig.from_file(kubeconfig), field_manager="bench")
    await client.create(Namespace(metadata=ObjectMeta(name=ns)))

    async def apply(i: int) -> object:
        return await client.apply(ConfigMap.from_dict(cm(ns, i, "1")), force=True)

    create = await bounded(n, c, apply)
    noop = await bounded(n, c, apply)
    t = time.perf_counter()
    items = [x async for x in client.list(ConfigMap, namespace=ns)]
    listed = time.perf_counter() - t
    assert len(items) >= n
    await client.close()
    return {"create": create, "noop": noop, "list": listed}


async def bench_official(kubeconfig: str, ns: str, n: int, c: int) -> dict[str, float]:
    from kubernetes.aio import client, config

    configuration = client.Configuration()
    await config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    configuration.connection_pool_maxsize = c
    async with client.ApiClient(configuration) as api_client:
        core = client.CoreV1Api(api_client)
        await core.create_namespace({"metadata": {"name": ns}})

        async def apply(i: int) -> object:
            return await core.patch_namespaced_config_map(
                f"cm-{i:05d}",
                ns,
                cm(ns, i, "1"),
                field_manager="bench",
                force=True,
                _content_type="application/apply-patch+yaml",
            )

        create = await bounded(n, c, apply)
        noop = await bounded(n, c, apply)
        t = time.perf_counter()
        items = (await core.list_namespaced_config_map(ns)).items
        listed = time.perf_counter() - t
        assert len(items) >= n
    return {"create": create, "noop": noop, "list": listed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig")
    parser.add_argument("--objects", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()

    own_plane = None
    if not args.kubeconfig:
        from testenv import plane

        own_plane = Path(tempfile.mkdtemp(prefix="bench-plane-"))
        args.kubeconfig = str(plane.up(own_plane).kubeconfig)
    try:
        benches = {
            "tidal (lightkube config + httpx2 JSON)": bench_tidal,
            "lightkube AsyncClient": bench_lightkube,
            "kubernetes.aio (official)": bench_official,
        }
        rows = {}
        stamp = int(time.time()) % 100000
        for k, (name, fn) in enumerate(benches.items()):
            imp_t, imp_rss = cold_import(IMPORTS[name])
            ns = f"bench-{stamp}-{k}"
            r = asyncio.run(fn(args.kubeconfig, ns, args.objects, args.concurrency))
            rows[name] = {"import_s": imp_t, "import_rss_mb": imp_rss, **r}
    finally:
        if own_plane:
            from testenv import plane

            plane.down(own_plane)

    base = rows["tidal (lightkube config + httpx2 JSON)"]
    n, c = args.objects, args.concurrency
    print(f"SSA of {n} ConfigMaps at concurrency {c} (seconds; ratio to tidal in brackets)")
    header = f"{'client':<40}{'import s':>10}{'RSS MB':>9}{'create':>16}{'no-op':>16}{'list':>14}"
    print(header)
    for name, r in rows.items():
        cells = [
            f"{r[k]:.2f} ({r[k] / base[k]:.1f}x)" if base[k] else "-"
            for k in ("create", "noop", "list")
        ]
        print(
            f"{name:<40}{r['import_s']:>10.3f}{r['import_rss_mb']:>9.0f}"
            f"{cells[0]:>16}{cells[1]:>16}{cells[2]:>14}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
