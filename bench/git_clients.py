"""Benchmark: git CLI vs pygit2 (libgit2) vs dulwich for what a GitRepository reconcile does.

Builds a repository of N small YAML files (default 10,000 x ~1 KB in nested directories) with a
few commits, serves it over HTTPS with testenv's git http-backend server (basic auth, private CA),
and times, per client, in one run:

- the cheap remote check: resolve refs/heads/main without fetching objects (ls-remote);
- a full clone and a shallow (depth=1) clone with checkout, into tmpfs (/dev/shm) and disk (/tmp);
- the same over file:// (local path; no network, no TLS);
- an incremental update: 1 new commit touching 1 file, fetch + hard reset to it;
- producing the artifact tarball (.tar.gz and plain .tar) straight from the object database
  (no working tree) vs from a checked-out working tree vs `git archive`.

Each cell is the median of --repeat runs (3); ratios are relative to the git CLI (<1 is faster).

    .venv/bin/python bench/git_clients.py [--files 10000] [--commits 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import io
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import IO, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pygit2
from dulwich import porcelain
from dulwich.config import ConfigDict
from dulwich.refs import Ref
from dulwich.repo import Repo as DulwichRepo

from testenv.git_server import GitHTTPServer, commit_tree, git_env, run_git

CLIENTS = ("git CLI", "pygit2", "dulwich")
SINGLE_RUN_OVER = 30.0  # seconds: an op slower than this is measured once, not --repeat times


# -- the test repository --


def yaml_doc(i: int, rnd: random.Random, version: int = 0) -> str:
    """A ~1 KB Kubernetes-looking manifest; part templated, part random like real config."""
    lines = [
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        f"  name: app-{i}",
        f"  namespace: team-{i % 17}",
        "  labels:",
        f"    app.kubernetes.io/name: app-{i}",
        "    app.kubernetes.io/part-of: tidal-bench",
        f"    revision: r{version}",
        "data:",
    ]
    for k in range(24):
        lines.append(f"  key_{k}: value-{k}-{rnd.getrandbits(48):012x}")
    return "\n".join(lines) + "\n"


def file_path(i: int) -> str:
    leaf = i // 50
    return f"clusters/c{leaf % 8}/team{(leaf // 8) % 5}/app{leaf}/resource-{i}.yaml"


def build_repo(path: Path, n_files: int, n_commits: int) -> tuple[str, int]:
    rnd = random.Random(42)
    files = {file_path(i): yaml_doc(i, rnd) for i in range(n_files)}
    size = sum(len(v) for v in files.values())
    sha = commit_tree(path, files, "initial", date=1_700_000_000)
    per_commit = max(1, n_files // 100)
    for c in range(1, n_commits):
        changed = {
            file_path(j): yaml_doc(j, rnd, c)
            for j in rnd.sample(range(n_files), min(per_commit, n_files))
        }
        sha = commit_tree(path, changed, f"change {c}", date=1_700_000_000 + c)
    # like a hosted repository: one pack with bitmaps
    run_git(["repack", "-a", "-d", "-b", "-q"], cwd=path)
    run_git(["gc", "--quiet", "--prune=now"], cwd=path)
    return sha, size


# -- timing --


@dataclass
class Cell:
    times: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None


def measure(
    fn: Callable[[], object],
    repeat: int,
    *,
    before: Callable[[], object] | None = None,
    check: Callable[[object], None] | None = None,
) -> Cell:
    """Time fn() `repeat` times (before() runs untimed first each time, then os.sync())."""
    cell = Cell()
    for _ in range(repeat):
        try:
            if before is not None:
                before()
            os.sync()
            t0 = time.perf_counter()
            out = fn()
            elapsed = time.perf_counter() - t0
            if check is not None:
                check(out)
        except Exception as exc:  # a client lacking a feature is a result, not a crash
            cell.error = (
                f"{type(exc).__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''}"
            )
            return cell
        cell.times.append(elapsed)
        if elapsed > SINGLE_RUN_OVER:
            break
    return cell


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# -- clients --


class _Creds(pygit2.RemoteCallbacks):
    def __init__(self, username: str, password: str) -> None:
        super().__init__()
        self.username, self.password = username, password

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: pygit2.enums.CredentialType
    ) -> pygit2.UserPass:
        return pygit2.UserPass(self.username, self.password)


@dataclass
class Remote:
    """How each client reaches one remote (https or file)."""

    label: str
    url: str  # plain URL (pygit2, dulwich)
    cli_url: str  # URL for the git CLI (credentials embedded for https)
    env: dict[str, str]
    username: str | None = None
    password: str | None = None
    ca_path: Path | None = None

    def pygit2_callbacks(self) -> pygit2.RemoteCallbacks | None:
        if self.username is None or self.password is None:
            return None
        return _Creds(self.username, self.password)

    def dulwich_config(self) -> ConfigDict:
        cfg = ConfigDict()
        if self.ca_path is not None:
            cfg.set((b"http",), b"sslCAInfo", str(self.ca_path).encode())
        return cfg


def git(args: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    proc = subprocess.run(
        ["git", *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip() or f"git {args[0]} failed")
    return proc.stdout


def ls_remote(client: str, remote: Remote, scratch: pygit2.Repository) -> str:
    """The commit SHA of refs/heads/main on the remote, without fetching objects."""
    if client == "git CLI":
        out = git(["ls-remote", remote.cli_url, "refs/heads/main"], remote.env)
        return out.split()[0]
    if client == "pygit2":
        heads = scratch.remotes.create_anonymous(remote.url).list_heads(remote.pygit2_callbacks())
        return next(str(h.oid) for h in heads if h.name == "refs/heads/main")
    result = porcelain.ls_remote(
        remote.url,
        config=remote.dulwich_config(),
        username=remote.username,
        password=remote.password,
    )
    sha = result.refs[Ref(b"refs/heads/main")]
    assert sha is not None
    return sha.decode()


def clone(client: str, remote: Remote, dest: Path, depth: int, bare: bool = False) -> str:
    """Clone (with checkout unless `bare`); return HEAD's SHA."""
    if client == "git CLI":
        args = ["clone", "--quiet"]
        if depth:
            args += ["--depth", str(depth)]
        if bare:
            args.append("--bare")
        git([*args, remote.cli_url, str(dest)], remote.env)
        return git(["rev-parse", "HEAD"], remote.env, cwd=dest).strip()
    if client == "pygit2":
        repo = pygit2.clone_repository(
            remote.url, str(dest), bare=bare, callbacks=remote.pygit2_callbacks(), depth=depth
        )
        return str(repo.head.target)
    drepo = porcelain.clone(
        remote.url,
        str(dest),
        bare=bare,
        checkout=not bare,
        depth=depth or None,
        config=remote.dulwich_config(),
        errstream=io.BytesIO(),
        username=remote.username or "",
        password=remote.password or "",
    )
    try:
        if remote.ca_path is not None:  # fetch later reads the repo's config, not clone's
            cfg = drepo.get_config()
            cfg.set((b"http",), b"sslCAInfo", str(remote.ca_path).encode())
            cfg.write_to_path()
        return drepo.head().decode()
    finally:
        drepo.close()


def fetch_and_reset(client: str, remote: Remote, dest: Path, split: list[float]) -> str:
    """Fetch origin and hard-reset the working tree to origin/main; return the new HEAD.
    Appends the fetch's duration to `split` (the rest of the total is the reset)."""
    t0 = time.perf_counter()
    if client == "git CLI":
        git(["fetch", "--quiet", "origin"], remote.env, cwd=dest)
        split.append(time.perf_counter() - t0)
        git(["reset", "--quiet", "--hard", "origin/main"], remote.env, cwd=dest)
        return git(["rev-parse", "HEAD"], remote.env, cwd=dest).strip()
    if client == "pygit2":
        repo = pygit2.Repository(str(dest))
        repo.remotes["origin"].fetch(callbacks=remote.pygit2_callbacks())
        target = repo.references["refs/remotes/origin/main"].target
        split.append(time.perf_counter() - t0)
        repo.reset(target, pygit2.enums.ResetMode.HARD)
        return str(target)
    with DulwichRepo(str(dest)) as drepo:
        porcelain.fetch(
            drepo,
            "origin",
            outstream=io.StringIO(),
            errstream=io.BytesIO(),
            username=remote.username,
            password=remote.password,
        )
        dtarget = drepo.refs[Ref(b"refs/remotes/origin/main")]
        split.append(time.perf_counter() - t0)
        porcelain.reset(drepo, "hard", dtarget)
        return dtarget.decode()


def write_files_floor(base: Path, n_files: int) -> None:
    """The filesystem floor: create the same number of ~1 KB files with a plain loop."""
    payload = b"x" * 1024
    for i in range(n_files):
        path = base / file_path(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)


# -- tarballs --


@contextlib.contextmanager
def tar_writer(out: Path, gz: bool) -> Iterator[tarfile.TarFile]:
    with out.open("wb") as raw:
        gzf = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) if gz else None
        fileobj = cast("IO[bytes]", gzf) if gzf is not None else raw
        with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            yield tar
        if gzf is not None:
            gzf.close()


def _tarinfo(name: str, size: int, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o755 if mode & 0o111 else 0o644
    info.mtime = 0
    return info


def tar_from_pygit2_odb(repo_path: Path, out: Path, gz: bool) -> int:
    """Walk HEAD's tree in the object database (no working tree) into a tarball."""
    repo = pygit2.Repository(str(repo_path))
    tree = repo.head.peel(pygit2.Commit).tree
    count = 0
    with tar_writer(out, gz) as tar:
        stack: list[tuple[str, pygit2.Tree]] = [("", tree)]
        while stack:
            prefix, current = stack.pop()
            for entry in current:
                name = prefix + (entry.name or "")
                if entry.filemode == pygit2.enums.FileMode.TREE:
                    stack.append((name + "/", repo[entry.id]))  # type: ignore[arg-type]
                elif entry.filemode in (
                    pygit2.enums.FileMode.BLOB,
                    pygit2.enums.FileMode.BLOB_EXECUTABLE,
                ):
                    data = repo[entry.id].read_raw()
                    tar.addfile(_tarinfo(name, len(data), entry.filemode), io.BytesIO(data))
                    count += 1
    return count


def tar_from_dulwich_odb(repo_path: Path, out: Path, gz: bool) -> int:
    count = 0
    with DulwichRepo(str(repo_path)) as repo, tar_writer(out, gz) as tar:
        store = repo.object_store
        tree_id = repo[repo.head()].tree  # type: ignore[attr-defined]
        for entry in store.iter_tree_contents(tree_id):
            if entry.mode is None or entry.sha is None or entry.path is None:
                continue
            if (entry.mode & 0o170000) != 0o100000:
                continue  # symlinks and submodules are not in this repo
            data = store[entry.sha].as_raw_string()
            tar.addfile(_tarinfo(entry.path.decode(), len(data), entry.mode), io.BytesIO(data))
            count += 1
    return count


def tar_from_worktree(worktree: Path, out: Path, gz: bool) -> int:
    count = 0
    with tar_writer(out, gz) as tar:
        for dirpath, dirnames, filenames in os.walk(worktree):
            dirnames[:] = sorted(d for d in dirnames if d != ".git")
            for fname in sorted(filenames):
                full = Path(dirpath) / fname
                st = full.stat()
                rel = str(full.relative_to(worktree))
                with full.open("rb") as fh:
                    tar.addfile(_tarinfo(rel, st.st_size, st.st_mode), fh)
                count += 1
    return count


def tar_git_archive(repo_path: Path, out: Path, gz: bool) -> int:
    fmt = "tar.gz" if gz else "tar"
    subprocess.run(
        ["git", "archive", f"--format={fmt}", "-o", str(out), "HEAD"],
        cwd=repo_path,
        env=git_env(),
        check=True,
    )
    return 0


# -- report --


def fmt_cell(cell: Cell, base: Cell | None, note: int = 0) -> str:
    if cell.error:
        return f"     n/a [{note}]"
    med = cell.median
    assert med is not None
    star = "*" if len(cell.times) == 1 else ""
    text = f"{med * 1000:8.1f} ms{star}" if med < 10 else f"{med:8.2f} s{star} "
    if base is not None and base.median:
        text += f" ({med / base.median:4.2f}x)"
    return text


def print_table(title: str, headers: list[str], rows: list[tuple[str, list[Cell]]]) -> str:
    lines = [title, ""]
    width0 = max(len(r[0]) for r in rows) + 2
    widths = [26] * len(headers)
    lines.append(
        "".join([" " * width0, *(h.ljust(w) for h, w in zip(headers, widths, strict=True))])
    )
    lines.append("-" * (width0 + sum(widths)))
    notes: list[str] = []
    for label, cells in rows:
        base = cells[0]
        rendered = []
        for i, cell in enumerate(cells):
            if cell.error:
                notes.append(f"[{len(notes) + 1}] {headers[i]}, {label.strip()}: {cell.error}")
            rendered.append(fmt_cell(cell, None if i == 0 else base, len(notes)))
        lines.append(
            label.ljust(width0) + "".join(t.ljust(w) for t, w in zip(rendered, widths, strict=True))
        )
    lines += notes
    lines.append("")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


# -- main --


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--commits", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--output", type=Path, default=None, help="also write the report here")
    args = ap.parse_args()

    started = time.perf_counter()
    tmpfs_base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    work_tmpfs = Path(tempfile.mkdtemp(prefix="tidal-bench-git-", dir=tmpfs_base))
    work_disk = Path(tempfile.mkdtemp(prefix="tidal-bench-git-", dir="/tmp"))
    report: list[str] = []
    server: GitHTTPServer | None = None
    try:
        root = work_disk / "repos"
        repo_path = root / "bench.git"
        t0 = time.perf_counter()
        head, size = build_repo(repo_path, args.files, args.commits)
        build_s = time.perf_counter() - t0
        pack_bytes = sum(p.stat().st_size for p in (repo_path / "objects/pack").glob("*.pack"))

        server = GitHTTPServer(root, workdir=work_disk / "server").start()
        assert server.username is not None and server.password is not None
        https = Remote(
            label="https",
            url=server.url_for("bench"),
            cli_url=server.url_for("bench", credentials=True),
            env=server.git_env(),
            username=server.username,
            password=server.password,
            ca_path=server.ca_pem_path,
        )
        local = Remote(
            label="file", url=f"file://{repo_path}", cli_url=f"file://{repo_path}", env=git_env()
        )
        # pygit2 has no per-call CA; add the bench CA to libgit2's global trust store.
        pygit2.settings.set_ssl_cert_locations(str(server.ca_pem_path), None)
        scratch = pygit2.init_repository(str(work_tmpfs / "scratch.git"), bare=True)

        header = [
            "Git client benchmark (tidal bench/git_clients.py)",
            f"repository: {args.files} files, {size / 1e6:.1f} MB of YAML, {args.commits} commits, "
            f"pack {pack_bytes / 1e6:.1f} MB (built in {build_s:.1f} s)",
            f"git {run_git(['version']).split()[-1]}, pygit2 {version('pygit2')} "
            f"(libgit2 {pygit2.LIBGIT2_VERSION}), dulwich {version('dulwich')}, "
            f"Python {platform.python_version()}, {os.cpu_count()} CPUs",
            f"median of {args.repeat} runs; (x) = time relative to git CLI, <1 is faster; "
            "* = measured once (slow)",
            "https = testenv git http-backend server over TLS with basic auth on 127.0.0.1",
            "",
        ]
        print("\n".join(header), flush=True)
        report += header

        def expect(sha: str) -> Callable[[object], None]:
            def check(out: object) -> None:
                if out != sha:
                    raise RuntimeError(f"got {out!r}, want {sha}")

            return check

        # 1. cheap remote check
        rows: list[tuple[str, list[Cell]]] = []
        for remote in (https, local):
            cells = [
                measure(
                    functools.partial(ls_remote, c, remote, scratch),
                    max(args.repeat, 5),
                    check=expect(head),
                )
                for c in CLIENTS
            ]
            rows.append((f"ls-remote main ({remote.label})", cells))
        report.append(print_table("Cheap remote check (no objects fetched)", list(CLIENTS), rows))

        # 2. clones
        rows = []
        keep: dict[tuple[str, str], Path] = {}
        plan: list[tuple[Remote, int, bool, str]] = [
            (https, 0, False, "tmpfs"),
            (https, 0, False, "disk"),
            (https, 1, False, "tmpfs"),
            (https, 1, False, "disk"),
            (https, 0, True, "tmpfs"),
            (https, 1, True, "tmpfs"),
            (local, 0, False, "tmpfs"),
            (local, 1, False, "tmpfs"),
        ]
        for remote, depth, bare, fs in plan:
            base = work_tmpfs if fs == "tmpfs" else work_disk
            cells = []
            for client in CLIENTS:
                dest = base / f"clone-{remote.label}-{depth}-{bare}-{client.replace(' ', '')}"
                cells.append(
                    measure(
                        functools.partial(clone, client, remote, dest, depth, bare),
                        args.repeat,
                        before=functools.partial(rmtree, dest),
                        check=expect(head),
                    )
                )
                if remote is https and depth == 0 and not bare:
                    keep[(client, fs)] = dest
                else:
                    rmtree(dest)
            kind = ("full" if depth == 0 else "shallow") + (" bare" if bare else "")
            rows.append((f"{kind} clone ({remote.label} -> {fs})", cells))
        report.append(print_table("Clone (with checkout unless bare)", list(CLIENTS), rows))

        floor = {}
        for fs, base in (("tmpfs", work_tmpfs), ("disk", work_disk)):
            dest = base / "floor"
            cell = measure(
                functools.partial(write_files_floor, dest, args.files),
                args.repeat,
                before=functools.partial(rmtree, dest),
            )
            rmtree(dest)
            floor[fs] = fmt_cell(cell, None).strip()
        line = (
            f"filesystem floor, writing {args.files} 1 KB files in the same dirs with a Python "
            f"loop: tmpfs {floor['tmpfs']}, disk {floor['disk']}\n"
        )
        print(line, flush=True)
        report.append(line)

        # 3. incremental: one new commit touching one file, fetch + hard reset
        rows = []
        counter = [0]

        def new_commit() -> str:
            counter[0] += 1
            n = counter[0]
            return commit_tree(
                repo_path, {file_path(n % args.files): f"changed: {n}\n"}, f"incremental {n}"
            )

        for fs in ("tmpfs", "disk"):
            totals: list[Cell] = []
            fetches: list[Cell] = []
            resets: list[Cell] = []
            for client in CLIENTS:
                kept = keep.get((client, fs))
                if kept is None or not kept.exists():
                    for lst in (totals, fetches, resets):
                        lst.append(Cell(error="no clone"))
                    continue
                want: dict[str, str] = {}
                split: list[float] = []

                def before(w: dict[str, str] = want) -> None:
                    w["sha"] = new_commit()

                def check(out: object, w: dict[str, str] = want) -> None:
                    if out != w["sha"]:
                        raise RuntimeError(f"got {out!r}, want {w['sha']}")

                total = measure(
                    functools.partial(fetch_and_reset, client, https, kept, split),
                    args.repeat,
                    before=before,
                    check=check,
                )
                totals.append(total)
                if total.error:
                    fetches.append(Cell(error=total.error))
                    resets.append(Cell(error=total.error))
                else:
                    fetches.append(Cell(times=split[: len(total.times)]))
                    resets.append(
                        Cell(times=[t - f for t, f in zip(total.times, split, strict=False)])
                    )
            rows.append((f"fetch 1 commit + reset ({fs})", totals))
            rows.append((f"  of which fetch ({fs})", fetches))
            rows.append((f"  of which reset --hard ({fs})", resets))
        report.append(print_table("Incremental update (https)", list(CLIENTS), rows))

        # 4. tarballs
        worktree = keep.get(("git CLI", "tmpfs"))
        assert worktree is not None
        rows = []
        for gz in (True, False):
            out = work_tmpfs / ("artifact.tar.gz" if gz else "artifact.tar")
            methods: list[Callable[[], int]] = [
                functools.partial(tar_git_archive, worktree, out, gz),
                functools.partial(tar_from_pygit2_odb, worktree, out, gz),
                functools.partial(tar_from_dulwich_odb, worktree, out, gz),
                functools.partial(tar_from_worktree, worktree, out, gz),
            ]
            cells = [measure(m, args.repeat) for m in methods]
            rows.append(("tar.gz (gzip -6)" if gz else "tar (no compression)", cells))
        report.append(
            print_table(
                f"Artifact tarball of HEAD's tree ({args.files} files, from a tmpfs clone)",
                ["git archive", "pygit2 ODB walk", "dulwich ODB walk", "working tree walk"],
                rows,
            )
        )

        stats = server.stats("bench")
        footer = (
            f"server: {stats.info_refs} ref advertisements, {stats.ls_refs} v2 ls-refs, "
            f"{stats.fetches} upload-pack fetches, {stats.unauthorized} 401 challenges; "
            f"total wall time {time.perf_counter() - started:.0f} s"
        )
        print(footer)
        report.append(footer)
    finally:
        if server is not None:
            server.close()
        rmtree(work_tmpfs)
        rmtree(work_disk)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text("\n".join(report) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
