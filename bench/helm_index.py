"""Peak memory and time of loading a large Helm repository index, as the HelmRepository
controller does (tidal.source.helm.index.normalize), on a generated index of about 20 MB.

Run: .venv/bin/python -m bench.helm_index [--size-mb 20]
Each measurement runs in a fresh process so the peak RSS is the load's own.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def generate(target_bytes: int) -> bytes:
    """An index shaped like a large public repository's: many charts, many versions each."""
    out = ["apiVersion: v1\nentries:\n"]
    size = len(out[0])
    chart = 0
    while size < target_bytes:
        name = f"chart-{chart:05d}"
        out.append(f"  {name}:\n")
        for minor in range(40):
            block = (
                f"  - apiVersion: v2\n"
                f"    appVersion: 1.{minor}.0\n"
                f'    created: "2024-01-{1 + minor % 28:02d}T10:20:30.123456789Z"\n'
                f"    dependencies:\n"
                f"    - condition: redis.enabled\n"
                f"      name: redis\n"
                f"      repository: https://charts.example.com/common\n"
                f"      version: 17.x.x\n"
                f"    description: A Helm chart for Kubernetes, number {chart}, with a longer "
                f"description line\n"
                f"    digest: {(chart * 1000 + minor):064x}\n"
                f"    home: https://example.com/{name}\n"
                f"    keywords:\n    - web\n    - example\n"
                f"    maintainers:\n    - email: team@example.com\n      name: Example Team\n"
                f"    name: {name}\n"
                f"    sources:\n    - https://github.com/example/{name}\n"
                f"    urls:\n    - https://charts.example.com/{name}-1.{minor}.0.tgz\n"
                f"    version: 1.{minor}.0\n"
            )
            out.append(block)
            size += len(block)
        chart += 1
    out.append('generated: "2024-02-01T00:00:00Z"\n')
    return "".join(out).encode()


def measure_full_tree(path: str) -> None:
    """The naive way, for comparison: the whole index as one tree of Python objects."""
    import yaml

    data = Path(path).read_bytes()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    tree = yaml.load(data, Loader=yaml.CSafeLoader)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"reference: yaml.load(CSafeLoader) of the same index: {elapsed:.2f} s, "
        f"+{(peak - before) / 1024:.0f} MiB ({len(tree['entries'])} charts)"
    )


def measure(path: str) -> None:
    from tidal.source.helm.index import normalize

    data = Path(path).read_bytes()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    index = normalize(data)
    size = sum(len(c) for c in index.chunks())
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"input {len(data) / 1e6:.1f} MB, {index.chart_count} charts, "
        f"{index.version_count} versions -> artifact {size / 1e6:.1f} MB; "
        f"{elapsed:.2f} s, peak RSS {peak / 1024:.0f} MiB "
        f"(before loading {before / 1024:.0f} MiB, +{(peak - before) / 1024:.0f} MiB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=float, default=20.0)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--measure-tree", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure)
        return
    if args.measure_tree:
        measure_full_tree(args.measure_tree)
        return
    with tempfile.NamedTemporaryFile(suffix=".yaml") as f:
        f.write(generate(int(args.size_mb * 1e6)))
        f.flush()
        for flag in ("--measure", "--measure-tree"):
            subprocess.run([sys.executable, "-m", "bench.helm_index", flag, f.name], check=True)


if __name__ == "__main__":
    main()
