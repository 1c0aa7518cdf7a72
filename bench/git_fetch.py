"""Benchmark: tidal.source.git on the GitRepository hot paths, with the git CLI as reference.

A repository of N small YAML files (default 10,000) and C commits (default 100) is served by
testenv's HTTPS git http-backend server (basic auth, private CA). Measured in one run, each
cell the median of --repeat runs (3):

- time to first artifact: fetch into an empty mirror (depth 1) + tree_entries -> tar.gz
  (git CLI: shallow bare clone + `git archive --format=tar.gz`);
- the no-op check: remote_head on an unchanged branch (git CLI: `git ls-remote`), and the
  number of pack fetches it caused (must be 0);
- an incremental fetch of 1 new commit touching 1 file (git CLI: `git fetch --depth 1`).

    .venv/bin/python bench/git_fetch.py [--files 10000] [--commits 100] [--repeat 3]

Writes the table to stdout and to bench/results/git_fetch.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testenv.git_server import GitHTTPServer, commit_tree, git_env, run_git
from tidal.source.archive import Archiver
from tidal.source.git import AuthOptions, Ref, fetch, remote_head, tree_entries

RESULTS = Path(__file__).resolve().parent / "results" / "git_fetch.txt"


def manifest(i: int, rnd: random.Random, rev: int = 0) -> str:
    lines = [
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        f"  name: app-{i}",
        f"  namespace: team-{i % 17}",
        f"  labels: {{revision: r{rev}}}",
        "data:",
    ]
    lines += [f"  key_{k}: value-{rnd.getrandbits(48):012x}" for k in range(24)]
    return "\n".join(lines) + "\n"


def path_of(i: int) -> str:
    leaf = i // 50
    return f"clusters/c{leaf % 8}/team{(leaf // 8) % 5}/app{leaf}/resource-{i}.yaml"


def build(repo: Path, n_files: int, n_commits: int) -> None:
    rnd = random.Random(7)
    commit_tree(repo, {path_of(i): manifest(i, rnd) for i in range(n_files)}, "initial")
    for c in range(1, n_commits):
        picked = rnd.sample(range(n_files), min(20, n_files))
        commit_tree(repo, {path_of(j): manifest(j, rnd, c) for j in picked}, f"change {c}")
    run_git(["repack", "-a", "-d", "-b", "-q"], cwd=repo)


def median_ms(times: list[float]) -> str:
    return f"{statistics.median(times) * 1000:8.1f} ms"


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


def timed_sync(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--commits", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tidal-bench-git-fetch-"))
    try:
        root = work / "repos"
        repo = root / "bench.git"
        started = time.perf_counter()
        build(repo, args.files, args.commits)
        built = time.perf_counter() - started
        pack_mb = sum(p.stat().st_size for p in (repo / "objects/pack").glob("*.pack")) / 1e6
        with GitHTTPServer(root, tls=True, workdir=work / "srv") as srv:
            url = srv.url_for("bench")
            assert srv.username is not None and srv.password is not None
            auth = AuthOptions.from_secret(
                url,
                {
                    "username": srv.username.encode(),
                    "password": srv.password.encode(),
                    "ca.crt": srv.ca_pem,
                },
            )
            cli_env = srv.git_env()
            cli_url = srv.url_for("bench", credentials=True)
            ref = Ref(branch="main")
            rows: list[tuple[str, str, str]] = []

            # -- time to first artifact
            fetch_t, archive_t, total_t, cli_t = [], [], [], []
            artifact_size = 0
            for i in range(args.repeat):
                mirror = work / f"mirror-{i}"
                t0 = time.perf_counter()
                commit = await fetch(url, ref, auth, mirror)
                t1 = time.perf_counter()
                out = io.BytesIO()
                with tree_entries(mirror, commit.hash) as entries:
                    result = Archiver().from_entries(entries, out)
                t2 = time.perf_counter()
                artifact_size = result.size
                fetch_t.append(t1 - t0)
                archive_t.append(t2 - t1)
                total_t.append(t2 - t0)
                dest = work / f"cli-{i}"

                def cli_first(dest: Path = dest) -> None:
                    run_git(
                        [
                            "clone",
                            "-q",
                            "--bare",
                            "--depth",
                            "1",
                            "--single-branch",
                            cli_url,
                            str(dest),
                        ],
                        env=cli_env,
                    )
                    run_git(
                        ["archive", "--format=tar.gz", "-o", str(dest / "a.tgz"), "HEAD"],
                        cwd=dest,
                        env=cli_env,
                    )

                cli_t.append(timed_sync(cli_first))
            rows.append(("first artifact (fetch + tar.gz)", median_ms(total_t), median_ms(cli_t)))
            rows.append(("  of which fetch (depth 1)", median_ms(fetch_t), ""))
            rows.append(("  of which tree_entries -> tar.gz", median_ms(archive_t), ""))

            # -- the no-op check
            check_t, ls_t = [], []
            with srv.counting("bench") as counts:
                for _ in range(args.repeat):
                    check_t.append(await timed(lambda: remote_head(url, ref, auth)))
            for _ in range(args.repeat):
                ls_t.append(
                    timed_sync(
                        lambda: run_git(["ls-remote", cli_url, "refs/heads/main"], env=cli_env)
                    )
                )
            rows.append(("remote_head, unchanged (ls-remote)", median_ms(check_t), median_ms(ls_t)))
            noop_fetches = counts.fetches

            # -- incremental fetch of one commit
            mirror = work / "mirror-0"
            cli_mirror = work / "cli-0"
            rnd = random.Random(99)
            inc_t, inc_cli_t, inc_fetches = [], [], []
            for i in range(args.repeat):
                j = rnd.randrange(args.files)
                commit_tree(repo, {path_of(j): manifest(j, rnd, 1000 + i)}, f"bench {i}")
                with srv.counting("bench") as c:
                    inc_t.append(await timed(lambda: fetch(url, ref, auth, mirror)))
                inc_fetches.append(c.fetches)
                inc_cli_t.append(
                    timed_sync(
                        lambda: run_git(
                            [
                                "fetch",
                                "-q",
                                "--depth",
                                "1",
                                cli_url,
                                "+refs/heads/main:refs/heads/main",
                            ],
                            cwd=cli_mirror,
                            env=cli_env,
                        )
                    )
                )
            rows.append(("incremental fetch of 1 commit", median_ms(inc_t), median_ms(inc_cli_t)))

        lines = [
            "Git fetch benchmark (tidal bench/git_fetch.py)",
            f"repository: {args.files} files, {args.commits} commits, pack {pack_mb:.1f} MB "
            f"(built in {built:.1f} s); artifact {artifact_size / 1e6:.1f} MB tar.gz",
            f"dulwich {version('dulwich')}, paramiko {version('paramiko')}, "
            f"git {run_git(['--version'], env=git_env()).split()[-1]}, Python "
            f"{platform.python_version()}, {os.cpu_count()} CPUs",
            f"median of {args.repeat} runs; HTTPS git http-backend with basic auth on 127.0.0.1;"
            " mirror on local disk",
            "",
            f"{'operation':<40}{'tidal':>14}{'git CLI':>14}",
            "-" * 68,
        ]
        lines += [f"{name:<40}{ours:>14}{cli:>14}" for name, ours, cli in rows]
        lines += [
            "",
            f"pack fetches caused by {args.repeat} remote_head calls on the unchanged repo: "
            f"{noop_fetches}",
            f"pack fetches per incremental fetch: {inc_fetches}",
            "git CLI first artifact = clone --bare --depth 1 + git archive --format=tar.gz",
        ]
        text = "\n".join(lines) + "\n"
        print(text, end="")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
