"""Benchmark: tidal's GitRepository controller against Flux's source-controller, in one run.

One test control plane, one HTTPS git server (basic auth, private CA in the Secret), Flux's own
CRDs (tidal serves the same kinds). The two controllers alternate, one at a time, each started
fresh for each phase with empty storage and caches and the same --concurrent (4):

a. one repository of 10,000 files and 1,000 commits: time from creating the GitRepository to
   Ready=True with the artifact at the branch head (the artifact is then downloaded from its
   URL); then 5 no-op reconciles (reconcile.fluxcd.io/requestedAt until
   status.lastHandledReconcileAt equals it), median, and the pack fetches and ref listings the
   server saw meanwhile (a no-op must not fetch);
b. 10 repositories with 10 GitRepositories each (interval 10m, so only requests drive them):
   time until all are Ready; then one commit pushed to every repository and every object
   annotated at once: time until all report the new revisions, and the server's counts;
c. for each controller process: peak RSS (VmHWM) and CPU seconds (utime+stime of the process
   and its reaped children) at the end of each phase, and its start-up time (spawn -> /readyz).

All of it runs 5 times (rounds, alternating who goes first); the report shows medians.
--quick: 2,000 files and 100 commits, 5 x 4 GitRepositories, 3 no-ops, 2 rounds.

    .venv/bin/python bench/gitrepository.py [--quick] [--concurrent N]

Writes the report to stdout and, without --quick, to bench/results/gitrepository.txt; the
controllers' logs of the last round stay in $TMPDIR/tidal-bench-gitrepository-logs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testenv import flux_controllers, plane, versions
from testenv.git_server import (
    GitHTTPServer,
    RepoStats,
    commit_tree,
    git_env,
    init_bare,
    run_git,
)
from tidal import __version__ as tidal_version
from tidal.kube.client import ApiError, Kube

RESULTS = Path(__file__).resolve().parent / "results" / "gitrepository.txt"
LOGS = Path(tempfile.gettempdir()) / "tidal-bench-gitrepository-logs"
API = "/apis/source.toolkit.fluxcd.io/v1"
NAMESPACE = "bench"
AUTH_REF = "https-auth"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
CONTROLLERS = ("tidal", "flux")
Objects = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Config:
    files: int
    commits: int
    repos: int
    per_repo: int
    small_files: int
    noop: int
    concurrent: int
    timeout: float  # seconds any one wait may take before the phase is reported stuck
    rounds: int  # each round runs every phase with both controllers; the report shows medians


DEFAULT = Config(10_000, 1_000, 10, 10, 200, 5, 4, 300.0, 5)
QUICK = Config(2_000, 100, 5, 4, 100, 3, 4, 120.0, 2)


# -- repositories ------------------------------------------------------------------------------


def manifest(i: int, rnd: random.Random, rev: int) -> bytes:
    lines = [
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        f"  name: app-{i}",
        f"  namespace: team-{i % 17}",
        f"  labels: {{revision: r{rev}}}",
        "data:",
    ]
    lines += [f"  key_{k}: value-{rnd.getrandbits(48):012x}" for k in range(12)]
    return ("\n".join(lines) + "\n").encode()


def path_of(i: int) -> str:
    leaf = i // 50
    return f"clusters/c{leaf % 8}/team{(leaf // 8) % 5}/app{leaf}/resource-{i}.yaml"


def _fast_import_commit(files: dict[str, bytes], n: int, date: int) -> bytes:
    ident = f"bench <bench@example.invalid> {date} +0000"
    msg = f"change {n}".encode()
    out = [f"commit refs/heads/main\nauthor {ident}\ncommitter {ident}\n".encode()]
    out.append(b"data %d\n%s\n" % (len(msg), msg))
    for name, data in files.items():
        out.append(f"M 100644 inline {name}\ndata {len(data)}\n".encode() + data + b"\n")
    return b"".join(out)


def build_history(repo: Path, n_files: int, n_commits: int, seed: int) -> None:
    """The whole history in one fast-import stream (one process instead of one per commit);
    each commit after the first rewrites five files, as a busy config repository would."""
    rnd = random.Random(seed)
    init_bare(repo)
    start = int(time.time()) - n_commits * 60
    stream = [
        _fast_import_commit({path_of(i): manifest(i, rnd, 0) for i in range(n_files)}, 0, start)
    ]
    for c in range(1, n_commits):
        picked = rnd.sample(range(n_files), min(5, n_files))
        files = {path_of(j): manifest(j, rnd, c) for j in picked}
        stream.append(_fast_import_commit(files, c, start + c * 60))
    stream.append(b"done\n")
    run_git(["fast-import", "--quiet", "--done"], cwd=repo, input=b"".join(stream), timeout=600)
    run_git(["repack", "-a", "-d", "-q"], cwd=repo, timeout=600)


def head(repo: Path) -> str:
    return run_git(["rev-parse", "refs/heads/main"], cwd=repo)


def push_one_commit(repo: Path, rev: int) -> str:
    rnd = random.Random(rev)
    return commit_tree(repo, {path_of(0): manifest(0, rnd, rev)}, f"bench push {rev}")


# -- the API -----------------------------------------------------------------------------------


def collection() -> str:
    return f"{API}/namespaces/{NAMESPACE}/gitrepositories"


def git_repository(name: str, url: str) -> dict[str, Any]:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "url": url,
            "ref": {"branch": "main"},
            "secretRef": {"name": AUTH_REF},
            # Long enough that only requests (and the first reconcile) drive them.
            "interval": "10m",
            "timeout": "5m",
        },
    }


async def install_crds(kube: Kube) -> None:
    for crd in flux_controllers.flux_crds():
        name = crd["metadata"]["name"]
        path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
        await kube.apply(path, crd, field_manager="bench", force=True)
        for _ in range(200):
            conds = (await kube.get(path)).get("status", {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"CRD {name} never became Established")
        await until_served(kube, crd)


async def until_served(kube: Kube, crd: dict[str, Any]) -> None:
    # Established comes before the storage is ready: lists answer 503 for a moment.
    spec = crd["spec"]
    version = next(v["name"] for v in spec["versions"] if v.get("storage"))
    path = f"/apis/{spec['group']}/{version}/{spec['names']['plural']}"
    for _ in range(300):
        try:
            await kube.get(path, params={"limit": "1"})
            return
        except ApiError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{path} is never served")


async def prepare_namespace(kube: Kube, srv: GitHTTPServer) -> None:
    await kube.create(
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
    )
    assert srv.username is not None and srv.password is not None
    data = {
        "username": srv.username.encode(),
        "password": srv.password.encode(),
        "ca.crt": srv.ca_pem,
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": AUTH_REF},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }
    await kube.create(f"/api/v1/namespaces/{NAMESPACE}/secrets", secret)


async def annotate(kube: Kube, name: str, token: str) -> None:
    patch = {"metadata": {"annotations": {REQUESTED_AT: token}}}
    await kube.patch(f"{collection()}/{name}", patch)


class Watcher:
    """The namespace's GitRepositories as a watch sees them, so a wait ends on the event that
    satisfies it (polling would add its period to every measurement)."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.objects: Objects = {}
        self._rv = ""
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._relist()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _relist(self) -> None:
        listing = await self.kube.get(collection())
        self.objects = {o["metadata"]["name"]: o for o in listing["items"]}
        self._rv = listing["metadata"]["resourceVersion"]

    async def _run(self) -> None:
        while True:
            try:
                async for event in self.kube.watch(collection(), resource_version=self._rv):
                    await self._apply(event)
            except ApiError as e:
                if e.status == 410:
                    await self._relist()
                else:
                    await asyncio.sleep(0.2)
            except Exception:  # a dropped stream resumes from the last resourceVersion
                await asyncio.sleep(0.2)

    async def _apply(self, event: dict[str, Any]) -> None:
        obj = event["object"]
        if event["type"] == "ERROR":
            raise ApiError(int(obj.get("code", 500)), obj, "WATCH", collection())
        self._rv = obj["metadata"]["resourceVersion"]
        name = obj["metadata"].get("name")
        if event["type"] in ("ADDED", "MODIFIED"):
            self.objects[name] = obj
        elif event["type"] == "DELETED":
            self.objects.pop(name, None)
        async with self._changed:
            self._changed.notify_all()

    async def until(self, check: Callable[[Objects], bool], within: float) -> float:
        """perf_counter() at the first event after which `check` holds; TimeoutError after
        `within` seconds."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: check(self.objects))
        return time.perf_counter()


def ready_at(obj: dict[str, Any] | None, revision: str) -> bool:
    if obj is None:
        return False
    status = obj.get("status", {})
    ready = any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
    )
    artifact = status.get("artifact") or {}
    return ready and artifact.get("revision") == revision


Check = Callable[[str, dict[str, Any] | None], bool]  # (name, object or None) -> done?


def ready(expected: dict[str, str]) -> Check:
    return lambda name, obj: ready_at(obj, expected[name])


def handled(token: str) -> Check:
    return lambda name, obj: (obj or {}).get("status", {}).get("lastHandledReconcileAt") == token


def gone(name: str, obj: dict[str, Any] | None) -> bool:
    return obj is None


def artifact_size(obj: dict[str, Any]) -> float:
    """Download the artifact from status.artifact.url: proves the controller serves it."""
    artifact = obj["status"]["artifact"]
    with urllib.request.urlopen(artifact["url"], timeout=30) as r:  # noqa: S310
        data = r.read()
    if len(data) != artifact.get("size", len(data)):
        raise RuntimeError(f"artifact size {len(data)} != status.artifact.size {artifact['size']}")
    return len(data) / 1e6


def describe(obj: dict[str, Any] | None) -> str:
    if obj is None:
        return "missing"
    status = obj.get("status", {})
    conds = "; ".join(
        f"{c['type']}={c['status']} {c.get('reason', '')}: {c.get('message', '')[:160]}"
        for c in status.get("conditions", [])
    )
    rev = (status.get("artifact") or {}).get("revision")
    return f"artifact={rev} handled={status.get('lastHandledReconcileAt')} [{conds}]"


# -- controller processes ----------------------------------------------------------------------


@dataclass
class Usage:
    hwm_mb: float
    rss_mb: float
    cpu_s: float


def usage(pid: int) -> Usage:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime are fields 14-17; stat[0] is field 3.
    ticks = sum(int(x) for x in stat[11:15])
    return Usage(
        hwm_mb=int(fields["VmHWM"].split()[0]) / 1024,
        rss_mb=int(fields["VmRSS"].split()[0]) / 1024,
        cpu_s=ticks / os.sysconf("SC_CLK_TCK"),
    )


def free_ports(n: int) -> list[int]:
    return plane._free_ports(n)


@dataclass
class Controller:
    kind: str
    proc: subprocess.Popen[bytes]
    log: Path
    health: str
    startup_s: float = 0.0

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _tidal_argv(kubeconfig: Path, data: Path, ports: list[int], concurrent: int) -> list[str]:
    storage, metrics, health = ports
    return [
        sys.executable,
        "-m",
        "tidal",
        "--kubeconfig",
        str(kubeconfig),
        "controller",
        f"--storage-path={data / 'storage'}",
        f"--storage-addr=127.0.0.1:{storage}",
        f"--metrics-addr=127.0.0.1:{metrics}",
        f"--health-addr=127.0.0.1:{health}",
        f"--git-cache-path={data / 'git'}",
        f"--concurrent={concurrent}",
        "--log-encoding=json",
    ]


def spawn(kind: str, kubeconfig: Path, data: Path, log: Path, concurrent: int) -> Controller:
    ports = free_ports(3)
    # Both clone into temporary directories (Flux always, tidal for checkouts), so those land on
    # the same file system as the storage.
    env = {**os.environ, "TMPDIR": str(data / "tmp")}
    (data / "tmp").mkdir(parents=True, exist_ok=True)
    health = f"127.0.0.1:{ports[2]}"
    if kind == "tidal":
        with log.open("ab") as out:
            proc = subprocess.Popen(
                _tidal_argv(kubeconfig, data, ports, concurrent),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
    else:
        args = flux_controllers.SourceControllerArgs(
            kubeconfig=kubeconfig,
            storage_path=data / "storage",
            storage_addr=f"127.0.0.1:{ports[0]}",
            metrics_addr=f"127.0.0.1:{ports[1]}",
            health_addr=health,
            concurrent=concurrent,
        )
        proc = flux_controllers.start_source_controller(args, log, env)
    return Controller(kind, proc, log, health)


def healthy(addr: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{addr}/readyz", timeout=1) as r:
            return int(r.status) == 200
    except (urllib.error.URLError, OSError):
        return False


async def wait_ready(c: Controller, started: float, within: float = 90.0) -> None:
    deadline = started + within
    while time.perf_counter() < deadline:
        if c.proc.poll() is not None:
            raise RuntimeError(f"{c.kind} exited ({c.proc.returncode}):\n{c.log_text()[-3000:]}")
        if await asyncio.to_thread(healthy, c.health):
            c.startup_s = time.perf_counter() - started
            # /readyz answers before the informers' first list; give the watch time to start
            # so the first measurement is not a cache sync.
            await asyncio.sleep(2.0)
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{c.kind} never became ready:\n{c.log_text()[-3000:]}")


def stop(c: Controller) -> None:
    if c.proc.poll() is None:
        c.proc.terminate()
        try:
            c.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            c.proc.kill()
            c.proc.wait()


def error_lines(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            # Tracebacks and panics are not JSON.
            if line.strip() and not line.startswith("{"):
                out.append(line)
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "warn", "warning", "fatal"):
            out.append(line)
    return out


# -- measurements ------------------------------------------------------------------------------


@dataclass
class Bench:
    cfg: Config
    kube: Kube
    srv: GitHTTPServer
    watcher: Watcher
    kubeconfig: Path
    work: Path
    rows: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    tokens: Iterator[int] = field(default_factory=lambda: iter(range(1, 1 << 30)))

    def record(self, metric: str, kind: str, value: float, unit: str) -> None:
        self.rows.setdefault(metric, {}).setdefault(kind, []).append(value)
        self.units[metric] = unit

    def record_listings(self, phase: str, when: str, kind: str, counts: RepoStats) -> None:
        # Protocol v0/v1 lists refs in the GET; v2 asks for the capabilities there and lists
        # the refs in a POST (ls-refs): one more round trip per listing.
        self.record(f"{phase}: GET info/refs {when}", kind, counts.info_refs, "")
        self.record(f"{phase}: protocol v2 ls-refs {when}", kind, counts.ls_refs, "")

    def token(self) -> str:
        # A fresh, RFC 3339-shaped value per request, as `flux reconcile` writes.
        n = next(self.tokens)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{n:09d}Z"

    async def wait(self, c: Controller, what: str, names: list[str], ok: Check) -> float | None:
        """perf_counter() when `ok` holds for every name; None (and a problem) on a timeout."""
        try:
            return await self.watcher.until(
                lambda objs: all(ok(n, objs.get(n)) for n in names), self.cfg.timeout
            )
        except TimeoutError:
            objs = self.watcher.objects
            stuck = [n for n in names if not ok(n, objs.get(n))]
            lines = [f"{n}: {describe(objs.get(n))}" for n in stuck[:3]]
            self.problems.append(
                f"{c.kind}: timed out after {self.cfg.timeout:.0f}s waiting for {what} "
                f"({len(stuck)} of {len(names)} not there)\n    " + "\n    ".join(lines)
            )
            return None

    async def with_controller(
        self, kind: str, phase: str, body: Callable[[Controller], Awaitable[None]]
    ) -> None:
        data = self.work / f"{kind}-{phase}"
        log = LOGS / f"{kind}-{phase}.log"
        log.unlink(missing_ok=True)
        started = time.perf_counter()
        c = spawn(kind, self.kubeconfig, data, log, self.cfg.concurrent)
        try:
            await wait_ready(c, started)
            self.record(f"{phase}: start-up (spawn -> /readyz)", kind, c.startup_s, "s")
            at_ready = usage(c.proc.pid)
            await body(c)
            u = usage(c.proc.pid)
            self.record(f"{phase}: peak RSS (VmHWM)", kind, u.hwm_mb, "MB")
            self.record(f"{phase}: CPU time, whole process", kind, u.cpu_s, "s")
            self.record(f"{phase}: CPU time after /readyz", kind, u.cpu_s - at_ready.cpu_s, "s")
            await self.delete_all(c)
        finally:
            # What a controller logs once told to stop (reconciles cut short) is not its doing.
            before_stop = len(c.log_text())
            stop(c)
            shutil.rmtree(data, ignore_errors=True)
        errors = error_lines(c.log_text()[:before_stop])
        self.record(f"{phase}: error/warn log lines", kind, len(errors), "")
        if errors:
            excerpt = "\n    ".join(e[:400] for e in errors[:5])
            self.problems.append(
                f"{kind} ({phase}): {len(errors)} error/warn lines, e.g.\n    {excerpt}"
            )

    async def delete_all(self, c: Controller) -> None:
        names = list(self.watcher.objects)
        await asyncio.gather(*(self.kube.delete(f"{collection()}/{n}") for n in names))
        if await self.wait(c, "deletion (finalizers)", names, gone) is None:
            # Strip the finalizers so the next controller starts from an empty namespace.
            for n in list(self.watcher.objects):
                with contextlib.suppress(ApiError):
                    await self.kube.patch(f"{collection()}/{n}", {"metadata": {"finalizers": None}})
            await self.watcher.until(lambda objs: not objs, 30)

    # -- phase a -------------------------------------------------------------------------------

    async def phase_a(self, c: Controller) -> None:
        repo = self.srv.repo_path("big")
        revision = f"main@sha1:{head(repo)}"
        obj = git_repository("big", self.srv.url_for("big"))
        with self.srv.counting("big") as first:
            t0 = time.perf_counter()
            await self.kube.create(collection(), obj)
            done = await self.wait(c, "the first artifact", ["big"], ready({"big": revision}))
        if done is None:
            return
        self.record("a: time to first artifact", c.kind, done - t0, "s")
        self.record("a: pack fetches for the first artifact", c.kind, first.fetches, "")
        size = await asyncio.to_thread(artifact_size, self.watcher.objects["big"])
        self.record("a: artifact size (downloaded from its URL)", c.kind, size, "MB")
        await self.noops(c, revision)

    async def noops(self, c: Controller, revision: str) -> None:
        times: list[float] = []
        with self.srv.counting("big") as during:
            for _ in range(self.cfg.noop):
                token = self.token()
                t0 = time.perf_counter()
                await annotate(self.kube, "big", token)
                done = await self.wait(c, "a no-op reconcile", ["big"], handled(token))
                if done is None:
                    return
                times.append(done - t0)
        if not ready_at(self.watcher.objects.get("big"), revision):
            self.problems.append(f"{c.kind}: not Ready at {revision} after the no-ops")
        self.record(
            f"a: no-op reconcile (median of {self.cfg.noop})", c.kind, statistics.median(times), "s"
        )
        self.record("a: pack fetches during the no-ops", c.kind, during.fetches, "")
        self.record_listings("a", "during the no-ops", c.kind, during)

    # -- phase b -------------------------------------------------------------------------------

    def small_names(self) -> dict[str, str]:
        """GitRepository name -> repository name."""
        return {
            f"s{r}-{i}": f"small-{r}"
            for r in range(self.cfg.repos)
            for i in range(self.cfg.per_repo)
        }

    def expected(self, names: dict[str, str]) -> dict[str, str]:
        heads = {r: head(self.srv.repo_path(r)) for r in set(names.values())}
        return {n: f"main@sha1:{heads[r]}" for n, r in names.items()}

    async def phase_b(self, c: Controller) -> None:
        names = self.small_names()
        n = len(names)
        with self.srv.counting() as first:
            t0 = time.perf_counter()
            await asyncio.gather(
                *(
                    self.kube.create(collection(), git_repository(k, self.srv.url_for(r)))
                    for k, r in names.items()
                )
            )
            expected = self.expected(names)
            done = await self.wait(c, f"{n} first artifacts", list(names), ready(expected))
        if done is None:
            return
        self.record(f"b: {n} GitRepositories Ready", c.kind, done - t0, "s")
        self.record(f"b: pack fetches for the {n} first artifacts", c.kind, first.fetches, "")
        await self.update_all(c, names)

    async def update_all(self, c: Controller, names: dict[str, str]) -> None:
        n = len(names)
        with self.srv.counting() as during:
            for r in sorted(set(names.values())):
                push_one_commit(self.srv.repo_path(r), next(self.tokens))
            expected = self.expected(names)
            token = self.token()
            t0 = time.perf_counter()
            await asyncio.gather(*(annotate(self.kube, k, token) for k in names))
            done = await self.wait(c, f"{n} new revisions", list(names), ready(expected))
        if done is None:
            return
        self.record(f"b: {self.cfg.repos} pushes -> {n} new revisions", c.kind, done - t0, "s")
        self.record("b: pack fetches for the new revisions", c.kind, during.fetches, "")
        self.record_listings("b", "for the new revisions", c.kind, during)


# -- report ------------------------------------------------------------------------------------


def fmt(values: list[float] | None, unit: str) -> str:
    if not values:
        return "-"
    value = statistics.median(values)
    if unit == "" and min(values) != max(values):
        return f"{min(values):.0f}..{max(values):.0f}"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "MB":
        return f"{value:.1f} MB" if value < 10 else f"{value:.0f} MB"
    return f"{value:.0f}"


def ratio(t: list[float] | None, f: list[float] | None) -> str:
    if not t or not f or statistics.median(f) == 0:
        return "-"
    return f"{statistics.median(t) / statistics.median(f):.2f}"


def table(b: Bench) -> list[str]:
    lines = [f"{'measurement':<52}{'tidal':>12}{'flux':>12}{'tidal/flux':>12}", "-" * 88]
    for metric, values in b.rows.items():
        t, f = values.get("tidal"), values.get("flux")
        unit = b.units[metric]
        lines.append(f"{metric:<52}{fmt(t, unit):>12}{fmt(f, unit):>12}{ratio(t, f):>12}")
    return lines


def machine_info() -> list[str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        line.split()[1]
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    git = run_git(["--version"], env=git_env()).split()[-1]
    go = subprocess.run(
        ["go", "version"], capture_output=True, text=True, check=False
    ).stdout.split()
    return [
        f"machine: {cpu}, {os.cpu_count()} CPUs, {int(mem) / 1024 / 1024:.1f} GiB, "
        f"Linux {platform.release()}",
        f"tidal {tidal_version} (Python {platform.python_version()}); Flux source-controller "
        f"{flux_controllers.SOURCE_CONTROLLER_VERSION} ({go[2] if len(go) > 2 else 'go ?'})",
        f"kube-apiserver {versions.KUBERNETES} (testenv), git {git} http-backend over HTTPS "
        "with basic auth + CA Secret",
    ]


def work_root() -> tuple[Path, str]:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="tidal-bench-gitrepo-", dir=shm)), "/dev/shm (tmpfs)"
    return Path(tempfile.mkdtemp(prefix="tidal-bench-gitrepo-")), "local disk (no /dev/shm)"


def build_repos(cfg: Config, root: Path) -> list[str]:
    t = time.perf_counter()
    big = root / "big.git"
    build_history(big, cfg.files, cfg.commits, seed=7)
    for r in range(cfg.repos):
        build_history(root / f"small-{r}.git", cfg.small_files, 20, seed=100 + r)
    pack_mb = sum(p.stat().st_size for p in (big / "objects/pack").glob("*.pack")) / 1e6
    return [
        f"a: repository of {cfg.files} files, {cfg.commits} commits (pack {pack_mb:.1f} MB); "
        f"b: {cfg.repos} repositories of {cfg.small_files} files, 20 commits, "
        f"{cfg.per_repo} GitRepositories each (built in {time.perf_counter() - t:.1f} s)",
    ]


async def run_phases(b: Bench) -> None:
    for r in range(b.cfg.rounds):
        # Who goes first alternates, so neither always meets a machine the other just warmed.
        order = CONTROLLERS if r % 2 == 0 else CONTROLLERS[::-1]
        for phase, body in (("a", b.phase_a), ("b", b.phase_b)):
            for kind in order:
                print(f"round {r + 1}, phase {phase}: {kind}", file=sys.stderr, flush=True)
                try:
                    await b.with_controller(kind, phase, body)
                except Exception as e:  # report and go on: the other measurements still count
                    b.problems.append(f"{kind} ({phase}): {type(e).__name__}: {e}")


def start_plane(directory: Path) -> plane.State:
    # Ports are picked free and then bound by the plane's processes; on a machine where other
    # planes start at the same time one may be taken in between, so a failed start is retried.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            return plane.up(directory)
        except plane.PlaneError as e:
            print(f"plane start failed ({e}); retrying once", file=sys.stderr)
            for log in sorted((directory / "logs").glob("*.log")):
                print(f"--- {log.name}\n{log.read_text(errors='replace')[-1500:]}", file=sys.stderr)
            return plane.up(directory)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def measure(cfg: Config, work: Path) -> tuple[Bench, list[str]]:
    """Repositories, plane, git server, CRDs; then every phase. Returns the results and what
    describes the workload."""
    described = build_repos(cfg, work / "repos")
    try:
        state = start_plane(work / "plane")
        with GitHTTPServer(work / "repos", tls=True, workdir=work / "srv") as srv:
            async with Kube.from_kubeconfig(state.kubeconfig) as kube:
                await install_crds(kube)
                await prepare_namespace(kube, srv)
                watcher = Watcher(kube)
                await watcher.start()
                b = Bench(cfg, kube, srv, watcher, state.kubeconfig, work)
                try:
                    await run_phases(b)
                finally:
                    await watcher.stop()
    finally:
        plane.down(work / "plane")
    return b, described


def report(b: Bench, header: list[str], quick: bool) -> str:
    lines = [
        "GitRepository controller benchmark: tidal vs Flux source-controller",
        f"(bench/gitrepository.py{' --quick' if quick else ''})",
        *header,
        "",
        *table(b),
        "",
        f"Each cell is the median of {b.cfg.rounds} rounds (a count that varied shows its range).",
        "tidal/flux < 1: tidal is faster or smaller. CPU time includes reaped children; RSS is",
        "the process's high-water mark at the end of the phase.",
        "",
    ]
    if not b.problems:
        return "\n".join([*lines, "problems: none"]) + "\n"
    return "\n".join([*lines, "problems:", *(f"  {p}" for p in b.problems)]) + "\n"


async def bench(cfg: Config, quick: bool) -> str:
    cached = flux_controllers.source_controller_path().is_file()
    flux_controllers.build_source_controller()
    work, where = work_root()
    LOGS.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load_before = load_average()
    try:
        b, described = await measure(cfg, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    header = [
        *machine_info(),
        *described,
        f"both run with --concurrent {cfg.concurrent}, one at a time, started fresh per phase; "
        f"storage, git caches, TMPDIR and the served repositories on {where}",
        f"Flux's CRDs installed for both; source-controller binary "
        f"{'cached' if cached else 'built in this run'}; the run took "
        f"{time.perf_counter() - started:.0f} s; controller logs in {LOGS}",
        f"load average (1, 5, 15 min) before the run: {load_before}, after: {load_average()}",
    ]
    return report(b, header, quick)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smaller workload, under 3 minutes")
    parser.add_argument("--concurrent", type=int, help="--concurrent for both controllers")
    args = parser.parse_args()
    cfg = QUICK if args.quick else DEFAULT
    if args.concurrent:
        cfg = Config(**{**cfg.__dict__, "concurrent": args.concurrent})
    text = asyncio.run(bench(cfg, args.quick))
    print(text, end="")
    if not args.quick:  # the recorded result is the full workload's
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
