"""Time of the HelmChart controller's two main paths, outside the cluster:

1. pull + store: the version chosen from a stored repository index (a generated one of about
   20 MB, as JSON, the HelmRepository artifact), the chart downloaded from a real HTTP chart
   repository on loopback, written into the artifact storage;
2. package from Git: a source tarball unpacked (safe_extract), a chart directory of 200
   templates with a file:// dependency loaded, two values files merged, packaged and stored.

Also: choosing a version in the 20 MB index with tidal's lazy decoding against json.loads of
the whole index. Run: .venv/bin/python -m bench.helm_chart [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from testenv.chart_server import ChartRepository, ChartServer
from tidal.source.archive import Archiver, safe_extract
from tidal.source.helm.chart_build import Options, build_local, build_remote
from tidal.source.helm.chart_deps import DependencyManager
from tidal.source.helm.chart_repository import Downloader, HTTPChartRepository
from tidal.source.helm.chart_version import chart_entries, select
from tidal.source.storage import Storage


def big_index(base_url: str, charts: int = 700, versions: int = 40) -> bytes:
    entries: dict[str, list[dict[str, object]]] = {}
    for c in range(charts):
        name = f"chart-{c:05d}"
        entries[name] = [
            {
                "apiVersion": "v2",
                "name": name,
                "version": f"1.{v}.0",
                "created": "2024-01-02T10:20:30.123456789Z",
                "description": "A Helm chart for Kubernetes with a longer description line " * 2,
                "digest": f"{c * 1000 + v:064x}",
                "urls": [f"{base_url}/{name}-1.{v}.0.tgz"],
            }
            for v in range(versions)
        ]
    return json.dumps({"apiVersion": "v1", "entries": entries}, indent=2).encode()


def chart_templates(n: int) -> dict[str, str]:
    files = {
        f"templates/t{i:03d}.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-"
            f"{i}\ndata:\n" + "".join(f"  k{j}: {{{{ .Values.v{j} }}}}\n" for j in range(20))
        )
        for i in range(n)
    }
    files["values.yaml"] = "".join(f"v{j}: value-{j}\n" for j in range(200))
    return files


async def median(rounds: int, work: Callable[[], Awaitable[object]]) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        await work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = ChartRepository(root / "charts")
        repo.root.mkdir()
        archive = repo.add("podinfo", "6.10.1", extra_files=chart_templates(200))
        storage_root = root / "storage"
        storage_root.mkdir()
        storage = Storage(storage_root, "localhost:9090")
        with ChartServer(repo.root) as server:
            index = big_index(server.url)
            entries = json.loads(index)["entries"]
            entries["podinfo"] = [
                {"name": "podinfo", "version": "6.10.1", "urls": ["podinfo-6.10.1.tgz"]}
            ]
            index = json.dumps({"apiVersion": "v1", "entries": entries}).encode()
            stored = storage.store(
                "helmrepository/ns/charts/index.json", "r", lambda out: out.write(index)
            )

            async def lazy_select() -> object:
                return select(chart_entries(index, "chart-00350"), "chart-00350", "1.x")

            async def full_select() -> object:
                whole = json.loads(index)
                return max(whole["entries"]["chart-00350"], key=lambda e: e["version"])

            t_lazy = await median(rounds, lazy_select)
            t_full = await median(rounds, full_select)

            async with aiohttp.ClientSession() as session:

                async def load_index() -> bytes:
                    return storage.local_path(stored.path).read_bytes()

                async def pull_and_store() -> object:
                    chart_repo = HTTPChartRepository(server.url + "/", load_index, session)
                    build = await build_remote(chart_repo, "podinfo", "6.x", Options())
                    data = build.data
                    assert data is not None
                    return storage.store(
                        "helmchart/ns/podinfo/podinfo-6.10.1.tgz",
                        build.version,
                        lambda out: out.write(data),
                    )

                t_pull = await median(rounds, pull_and_store)

        # A Git artifact holding the chart, a library chart and two values files.
        src = root / "src"
        for path, text in {
            **{f"charts/app/{k}": v for k, v in chart_templates(200).items()},
            "charts/app/Chart.yaml": (
                "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n"
                "- name: lib\n  version: 0.x\n  repository: file://../lib\n"
            ),
            "charts/lib/Chart.yaml": "apiVersion: v2\nname: lib\nversion: 0.1.0\n",
            "charts/lib/templates/_helpers.tpl": '{{- define "lib.name" -}}x{{- end }}\n',
            "env/prod.yaml": "".join(f"v{j}: prod-{j}\n" for j in range(0, 200, 2)),
        }.items():
            (src / path).parent.mkdir(parents=True, exist_ok=True)
            (src / path).write_text(text)
        tarball = io.BytesIO()
        Archiver().from_directory(src, tarball)
        data = tarball.getvalue()

        async def no_remote(url: str) -> Downloader:
            raise AssertionError(url)

        async def package_from_git() -> object:
            with tempfile.TemporaryDirectory() as work:
                tree = Path(work) / "source"
                await asyncio.to_thread(safe_extract, data, tree)
                build = await build_local(
                    tree,
                    "charts/app",
                    DependencyManager(no_remote),
                    Options(values_files=["charts/app/values.yaml", "env/prod.yaml"]),
                )
                packaged = build.data
                assert packaged is not None
                return storage.store(
                    "helmchart/ns/app/app-1.0.0.tgz", build.version, lambda o: o.write(packaged)
                )

        t_git = await median(rounds, package_from_git)

    print(f"index: {len(index) / 1e6:.1f} MB JSON; chart archive {len(archive) / 1e3:.1f} kB")
    print(f"choose a version, lazy decode (tidal)     {t_lazy * 1000:8.1f} ms")
    print(f"choose a version, json.loads of the index {t_full * 1000:8.1f} ms")
    print(f"pull + store (index read, HTTP pull)      {t_pull * 1000:8.1f} ms")
    print(f"package from Git + 2 values files + dep   {t_git * 1000:8.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    asyncio.run(main(parser.parse_args().rounds))
