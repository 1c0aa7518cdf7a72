"""Benchmark: building a GitRepository artifact with and without spec.sparseCheckout.

A bare repository of N small YAML files (default 2,000) spread over D top-level directories
(default 20, so 100 files each) is built with git fast-import; it serves as the mirror. Each
case does what the controller's artifact step does for a fetched commit: walk the commit's
tree (GitTree, with the selection), load the .sourceignore files and the default rules, and
write the deterministic tar.gz (to a file next to the mirror, as the storage does). Each cell is the
median of --repeat runs (default 7):

- full tree;
- sparse checkout of one top-level directory (1/D of the files);
- sparse checkout of one file's directory three levels down.

    .venv/bin/python bench/git_sparse.py [--files 2000] [--dirs 20] [--repeat 7]

Writes the table to stdout and to bench/results/git_sparse.txt.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testenv.git_repos import commit_tree
from tidal.source.archive import Archiver, ArchiveResult
from tidal.source.git.sparse import SparseSelection
from tidal.source.git.tree import GitTree
from tidal.source.ignore import IGNORE_FILE, IgnoreRules

RESULTS = Path(__file__).resolve().parent / "results" / "git_sparse.txt"


def manifest(i: int) -> str:
    data = "".join(f"  key_{k}: value-{i:06d}-{k:02d}\n" for k in range(24))
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-{i}\ndata:\n{data}"


def path_of(i: int, dirs: int) -> str:
    return f"dir{i % dirs:02d}/team{(i // dirs) % 5}/app{(i // dirs) % 10}/resource-{i}.yaml"


def build(mirror: Path, commit: str, sparse: SparseSelection | None) -> ArchiveResult:
    with GitTree(mirror, commit, sparse=sparse) as tree, (mirror / "out.tar.gz").open("wb") as sink:
        entries = {e.path: e for e in tree}
        ignores = [
            (path.rpartition("/")[0], e.content().decode())
            for path, e in entries.items()
            if path.rpartition("/")[2] == IGNORE_FILE and e.kind == "file"
        ]
        rules = IgnoreRules.from_sources(ignores, None)
        return Archiver().from_entries(entries.values(), sink, ignore=rules)


def timed(mirror: Path, commit: str, listed: list[str], repeat: int) -> tuple[float, int]:
    sparse = SparseSelection.from_spec(listed)
    samples: list[float] = []
    entries = 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = build(mirror, commit, sparse)
        samples.append(time.perf_counter() - start)
        entries = result.entries
    return statistics.median(samples) * 1000, entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--dirs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tidal-bench-sparse-") as tmp:
        mirror = Path(tmp, "repo.git")
        files = {path_of(i, args.dirs): manifest(i) for i in range(args.files)}
        files["README.md"] = "bench\n"
        commit = commit_tree(mirror, files, "bench tree")
        one_leaf = path_of(0, args.dirs).rpartition("/")[0]
        cases = [
            ("full tree", []),
            (f"sparseCheckout: [dir00] (1/{args.dirs} of the files)", ["dir00"]),
            (f"sparseCheckout: [{one_leaf}]", [one_leaf]),
        ]
        timed(mirror, commit, [], 1)  # warm the page cache and the imports
        rows = [(label, *timed(mirror, commit, listed, args.repeat)) for label, listed in cases]

    full_ms = rows[0][1]
    lines = [
        f"GitRepository artifact build, {args.files} files in {args.dirs} top-level dirs "
        f"(median of {args.repeat}; Python {platform.python_version()}, {platform.machine()})",
        "",
        f"{'case':<58}{'ms':>9}{'entries':>9}{'vs full':>9}",
    ]
    for label, ms, entries in rows:
        lines.append(f"{label:<58}{ms:>9.1f}{entries:>9}{full_ms / ms:>8.1f}x")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
