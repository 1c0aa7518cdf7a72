"""Benchmark: tidal's artifact tarball from a working tree vs straight from a Git object database.

Builds N small YAML files (default 10,000 x ~1 KB in nested directories) as a working tree
(with its .git directory, as a checkout has) and as a bare repository made with the git CLI,
then times, median of --repeat runs (3):

- tidal.source.archive from the working tree, default ignore rules (.git pruned);
- the same including IgnoreRules.from_tree (the .sourceignore scan a reconcile does);
- tidal.source.archive from the bare repository's HEAD tree through pygit2, blobs read lazily;
- `git archive --format=tar.gz HEAD` on the bare repository, as a reference floor.

The tidal outputs from the two sources must be byte-identical; the run says so.

    .venv/bin/python bench/archive.py [--files 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import pygit2

from tidal.source.archive import Archiver, ArchiveResult, Entry
from tidal.source.ignore import IgnoreRules

GIT_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_AUTHOR_DATE": "1700000000 +0000",
    "GIT_COMMITTER_DATE": "1700000000 +0000",
}


def yaml_doc(i: int, rnd: random.Random) -> str:
    lines = [
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        f"  name: app-{i}",
        f"  namespace: team-{i % 17}",
        "data:",
    ]
    lines += [f"  key_{k}: value-{k}-{rnd.getrandbits(48):012x}" for k in range(28)]
    return "\n".join(lines) + "\n"


def file_path(i: int) -> str:
    leaf = i // 50
    return f"clusters/c{leaf % 8}/team{(leaf // 8) % 5}/app{leaf}/resource-{i}.yaml"


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True
    ).stdout


def build(base: Path, n_files: int) -> tuple[Path, Path, int]:
    rnd = random.Random(42)
    worktree = base / "worktree"
    size = 0
    for i in range(n_files):
        path = worktree / file_path(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml_doc(i, rnd)
        size += len(text)
        path.write_text(text)
    git("init", "-q", "-b", "main", cwd=worktree)
    git("add", "-A", cwd=worktree)
    git("commit", "-qm", "initial", cwd=worktree)
    bare = base / "repo.git"
    git("clone", "-q", "--bare", str(worktree), str(bare), cwd=base)
    return worktree, bare, size


def git_entries(repo: pygit2.Repository, tree: pygit2.Tree, prefix: str = "") -> Iterator[Entry]:
    for obj in tree:
        path = prefix + str(obj.name)
        mode = obj.filemode
        if mode == pygit2.enums.FileMode.TREE:
            yield Entry(path, "dir", mode)
            yield from git_entries(repo, repo[obj.id], path + "/")  # type: ignore[arg-type]
        elif mode == pygit2.enums.FileMode.LINK:
            yield Entry(path, "symlink", mode, repo[obj.id].data)  # type: ignore[attr-defined]
        elif mode == pygit2.enums.FileMode.COMMIT:
            yield Entry(path, "dir", mode)
        else:
            yield Entry(path, "file", mode, lambda blob=obj: blob.data)  # type: ignore[misc]


def measure(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    times = []
    out: object = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tidal-bench-archive-") as tmp:
        base = Path(tmp)
        t0 = time.perf_counter()
        worktree, bare, size = build(base, args.files)
        built = time.perf_counter() - t0
        out_dir = base / "out"
        out_dir.mkdir()
        archiver = Archiver()
        defaults = IgnoreRules()

        def from_disk() -> ArchiveResult:
            with (out_dir / "disk.tar.gz").open("wb") as f:
                return archiver.from_directory(worktree, f, ignore=defaults)

        def from_disk_with_scan() -> ArchiveResult:
            rules = IgnoreRules.from_tree(worktree, None)
            with (out_dir / "disk2.tar.gz").open("wb") as f:
                return archiver.from_directory(worktree, f, ignore=rules)

        def from_git() -> ArchiveResult:
            repo = pygit2.Repository(str(bare))
            tree = repo.revparse_single("HEAD").peel(pygit2.Tree)
            with (out_dir / "git.tar.gz").open("wb") as f:
                return archiver.from_entries(git_entries(repo, tree), f, ignore=defaults)

        def git_archive() -> int:
            target = out_dir / "git-archive.tar.gz"
            git("archive", "--format=tar.gz", "-o", str(target), "HEAD", cwd=bare)
            return target.stat().st_size

        rows = [
            ("tidal, working tree", *measure(from_disk, args.repeat)),
            (
                "tidal, working tree + .sourceignore scan",
                *measure(from_disk_with_scan, args.repeat),
            ),
            ("tidal, pygit2 tree of a bare repo", *measure(from_git, args.repeat)),
            ("git archive --format=tar.gz (reference)", *measure(git_archive, args.repeat)),
        ]
        identical = (out_dir / "disk.tar.gz").read_bytes() == (out_dir / "git.tar.gz").read_bytes()

    floor = rows[-1][1]
    print("Artifact tarball benchmark (tidal bench/archive.py)")
    print(
        f"tree: {args.files} files, {size / 1e6:.1f} MB of YAML in nested directories "
        f"(built in {built:.1f} s)"
    )
    print(
        f"Python {platform.python_version()}, pygit2 {pygit2.__version__} "
        f"(libgit2 {pygit2.LIBGIT2_VERSION}), zlib {zlib.ZLIB_RUNTIME_VERSION}, "
        f"{os.cpu_count()} CPUs; median of {args.repeat} runs; gzip level 6 everywhere"
    )
    print()
    print(f"{'':44}{'time':>10}{'vs git archive':>16}{'output':>12}")
    for label, seconds, result in rows:
        size_out = result.size if isinstance(result, ArchiveResult) else result
        ratio = f"{seconds / floor:.2f}x"
        print(f"{label:44}{seconds * 1000:8.1f} ms{ratio:>16}{size_out:>10} B")
    print()
    print(f"working tree and pygit2 tree give identical bytes: {'yes' if identical else 'NO'}")


if __name__ == "__main__":
    main()
