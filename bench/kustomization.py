"""Benchmark: tidal's Kustomization controller against the floor, `kubectl apply --server-side`.

One fresh test control plane, one plain-HTTP git server, tidal's CRDs, one `tidal controller`
process (--concurrent 4, as Flux's kustomize-controller; --concurrent-ssa at its default) for the
whole run. Every tidal measurement has a kubectl twin applying the same objects into a twin
namespace (`kubectl apply --server-side --field-manager=bench -f DIR`, discovery cache warm):

1. cold apply of 1,000 objects (100 apps of a Deployment, a Service and 8 ConfigMaps, one file
   per app, one namespace): from creating the Kustomization (its GitRepository already Ready)
   until Ready=True with lastAppliedRevision at the revision, against the first kubectl apply;
2. no-op reconcile of 1,500 objects (150 apps, applied before and unchanged): from annotating
   reconcile.fluxcd.io/requestedAt until status.lastHandledReconcileAt equals it and
   Ready=True, against a second kubectl apply of the same files; median of 3 alternating pairs;
3. fan-out: 10 Kustomizations of 100 ConfigMaps each on one GitRepository; one commit changes
   one ConfigMap in each directory; from annotating the GitRepository until all 10 report the
   new revision applied, against one `kubectl apply -R` of the changed tree;
4. peak RSS over the run: VmHWM of the controller and of every child it started (the
   kustomize workers), sampled every 50 ms, and their largest simultaneous sum; kubectl's is
   the largest wait4 maxrss of its runs.

The tidal rows also split each reconcile into its steps, from the Reconciling condition's
messages as a watch sees them: pick-up (create or annotation -> "Fetching manifests"),
artifact (-> "Building manifests"), build (-> "Detecting drift"), apply (-> Ready).

Deployments (replicas 0) and Services make kube-controller-manager write ReplicaSets,
Endpoints and EndpointSlices for a while after each cold apply, at its default 20 QPS; every
measurement waits for that to finish first, so neither side pays for the other's aftermath.

--quick: 200 objects cold, 300 no-op, 10 x 20 fan-out, 2 no-op pairs.

    .venv/bin/python bench/kustomization.py [--quick]

Writes the report to stdout and, without --quick, to bench/results/kustomization.txt; the
controller's log stays in $TMPDIR/tidal-bench-kustomization.log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from testenv import plane, versions  # noqa: E402
from testenv.git_server import GitHTTPServer, commit_tree, run_git  # noqa: E402
from tidal import __version__ as tidal_version  # noqa: E402
from tidal.api import crd  # noqa: E402
from tidal.install import apply as install  # noqa: E402
from tidal.kube.client import ApiError, Kube  # noqa: E402

KUBECTL = ROOT / ".venv" / "bin" / "kubectl"
RESULTS = ROOT / "bench" / "results" / "kustomization.txt"
LOG = Path(tempfile.gettempdir()) / "tidal-bench-kustomization.log"
NAMESPACE = "bench"  # the GitRepositories and Kustomizations
SOURCE_API = "/apis/source.toolkit.fluxcd.io/v1"
KS_API = "/apis/kustomize.toolkit.fluxcd.io/v1"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
STEPS = (
    ("pick-up", "Fetching manifests"),
    ("artifact", "Building manifests"),
    ("build", "Detecting drift"),
)
Objects = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Config:
    cold_apps: int  # 10 objects each
    noop_apps: int
    fan_ks: int
    fan_objects: int  # ConfigMaps per fan-out Kustomization
    noop_pairs: int
    concurrent: int
    timeout: float  # seconds any one wait may take before it is reported stuck


DEFAULT = Config(100, 150, 10, 100, 3, 4, 300.0)
QUICK = Config(20, 30, 10, 20, 2, 4, 120.0)


# -- manifests ---------------------------------------------------------------------------------


def app(i: int, namespace: str) -> str:
    """One app as a repository would hold it: a Deployment, its Service and 8 ConfigMaps."""
    name = f"app-{i:04d}"
    docs = [
        f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
  labels: {{app: {name}, tier: backend}}
spec:
  # No Pods: the kwok nodes would take them, but 0 keeps the plane's load on the applies.
  replicas: 0
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}, tier: backend}}
    spec:
      containers:
        - name: app
          image: registry.example.com/team/{name}:1.{i % 7}.{i % 13}
          ports: [{{containerPort: 8080, name: http}}]
          env:
            - {{name: LOG_LEVEL, value: info}}
            - {{name: CONFIG_DIR, value: /etc/{name}}}
          envFrom: [{{configMapRef: {{name: {name}-env}}}}]
          resources:
            requests: {{cpu: 50m, memory: 64Mi}}
            limits: {{memory: 128Mi}}
          readinessProbe:
            httpGet: {{path: /healthz, port: http}}
          volumeMounts: [{{name: config, mountPath: /etc/{name}}}]
      volumes: [{{name: config, configMap: {{name: {name}-config}}}}]
""",
        f"""apiVersion: v1
kind: Service
metadata:
  name: {name}
  namespace: {namespace}
  labels: {{app: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: http, port: 80, targetPort: http}}]
""",
    ]
    for suffix in ("env", "config", "a", "b", "c", "d", "e", "f"):
        docs.append(configmap(f"{name}-{suffix}", namespace, f"{i}-{suffix}"))
    return "---\n".join(docs)


def configmap(name: str, namespace: str, seed: str, rev: int = 0) -> str:
    data = "".join(f"  key_{k}: value-{seed}-{k}-r{rev}\n" for k in range(8))
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"
        f"  namespace: {namespace}\n  labels: {{app: {name}}}\ndata:\n{data}"
    )


def apps_tree(n: int, namespace: str) -> dict[str, str]:
    return {f"app-{i:04d}.yaml": app(i, namespace) for i in range(n)}


def fan_tree(cfg: Config, namespace: str, changed: bool) -> dict[str, str]:
    """fan/k<i>/cm-<j>.yaml; `changed` rewrites cm 0 of every directory."""
    files = {}
    for k in range(cfg.fan_ks):
        for j in range(cfg.fan_objects):
            rev = 1 if changed and j == 0 else 0
            files[f"k{k}/cm-{j:03d}.yaml"] = configmap(f"k{k}-cm-{j:03d}", namespace, f"{k}", rev)
    return files


def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def prefixed(prefix: str, files: dict[str, str]) -> dict[str, str | bytes | None]:
    return {f"{prefix}/{rel}": text for rel, text in files.items()}


# -- the API -----------------------------------------------------------------------------------


def ks_collection() -> str:
    return f"{KS_API}/namespaces/{NAMESPACE}/kustomizations"


def repo_collection() -> str:
    return f"{SOURCE_API}/namespaces/{NAMESPACE}/gitrepositories"


def git_repository(name: str, url: str) -> dict[str, Any]:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": name, "namespace": NAMESPACE},
        # Long intervals: only the bench's requests (and the first reconcile) drive them.
        "spec": {"url": url, "ref": {"branch": "main"}, "interval": "60m", "timeout": "5m"},
    }


def kustomization(name: str, source: str, path: str) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "interval": "60m",
            "prune": True,
            "timeout": "5m",
            "path": path,
            "sourceRef": {"kind": "GitRepository", "name": source},
        },
    }


async def install_crds(kube: Kube) -> None:
    crds = [crd.crd(k) for k in crd.KINDS]
    await install.apply_all(kube, crds, within=60)
    for c in crds:
        # Established comes before the storage is ready: lists answer 503 for a moment.
        spec = c["spec"]
        version = next(v["name"] for v in spec["versions"] if v.get("storage"))
        path = f"/apis/{spec['group']}/{version}/{spec['names']['plural']}"
        for _ in range(300):
            try:
                await kube.get(path, params={"limit": "1"})
                break
            except ApiError:
                await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"{path} is never served")


async def create_namespace(kube: Kube, name: str) -> None:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    await kube.create("/api/v1/namespaces", body)


async def annotate(kube: Kube, path: str, token: str) -> None:
    await kube.patch(path, {"metadata": {"annotations": {REQUESTED_AT: token}}})


async def count(kube: Kube, namespace: str) -> dict[str, int]:
    out = {}
    for kind, path in (
        ("ConfigMap", f"/api/v1/namespaces/{namespace}/configmaps"),
        ("Service", f"/api/v1/namespaces/{namespace}/services"),
        ("Deployment", f"/apis/apps/v1/namespaces/{namespace}/deployments"),
    ):
        items = (await kube.get(path))["items"]
        # kube-root-ca.crt is the namespace's own.
        out[kind] = sum(1 for i in items if i["metadata"]["name"] != "kube-root-ca.crt")
    return out


async def settle(kube: Kube, namespaces: list[str], within: float = 240.0) -> float:
    """Wait until kube-controller-manager is done with the namespaces' Deployments (a
    ReplicaSet each, status) and Services (Endpoints, an EndpointSlice); seconds waited."""
    t0 = time.perf_counter()
    deadline = t0 + within
    while time.perf_counter() < deadline:
        pending = 0
        for ns in namespaces:
            deps = (await kube.get(f"/apis/apps/v1/namespaces/{ns}/deployments"))["items"]
            pending += sum(
                1
                for d in deps
                if (d.get("status") or {}).get("observedGeneration") != d["metadata"]["generation"]
            )
            services = len((await kube.get(f"/api/v1/namespaces/{ns}/services"))["items"])
            eps = (await kube.get(f"/api/v1/namespaces/{ns}/endpoints"))["items"]
            slices = await kube.get(f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices")
            pending += max(0, services - len(eps)) + max(0, services - len(slices["items"]))
        if pending == 0:
            # ReplicaSets' own status writes can trail their Deployment's by a moment.
            await asyncio.sleep(1.0)
            return time.perf_counter() - t0
        await asyncio.sleep(0.5)
    raise RuntimeError(f"kube-controller-manager did not settle {namespaces} in {within:.0f} s")


class Watcher:
    """A collection as a watch sees it, so a wait ends on the event that satisfies it; every
    event is also kept with its arrival time, for the step breakdown."""

    def __init__(self, kube: Kube, path: str) -> None:
        self.kube = kube
        self.path = path
        self.objects: Objects = {}
        self.trace: list[tuple[float, str, dict[str, Any]]] = []
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
        listing = await self.kube.get(self.path)
        self.objects = {o["metadata"]["name"]: o for o in listing["items"]}
        self._rv = listing["metadata"]["resourceVersion"]

    async def _run(self) -> None:
        while True:
            try:
                async for event in self.kube.watch(self.path, resource_version=self._rv):
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
            raise ApiError(int(obj.get("code", 500)), obj, "WATCH", self.path)
        self._rv = obj["metadata"]["resourceVersion"]
        if event["type"] == "BOOKMARK":
            return
        name = obj["metadata"]["name"]
        self.trace.append((time.perf_counter(), name, obj))
        if event["type"] in ("ADDED", "MODIFIED"):
            self.objects[name] = obj
        elif event["type"] == "DELETED":
            self.objects.pop(name, None)
        async with self._changed:
            self._changed.notify_all()

    async def until(self, names: list[str], ok: Check, within: float) -> float:
        """perf_counter() at the first event after which `ok` holds for every name."""

        def done() -> bool:
            return all(ok(self.objects.get(n)) for n in names)

        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(done)
        except TimeoutError:
            stuck = [n for n in names if not ok(self.objects.get(n))]
            lines = [f"{n}: {describe(self.objects.get(n))}" for n in stuck[:3]]
            raise TimeoutError(
                f"{len(stuck)} of {len(names)} not there after {within:.0f} s:\n    "
                + "\n    ".join(lines)
            ) from None
        return time.perf_counter()

    def steps(self, name: str, t0: float, t_done: float) -> dict[str, float]:
        """Seconds per step of `name`'s reconcile between t0 and t_done, from its Reconciling
        condition's messages; a step that was not seen is left out."""
        marks = {}
        for t, n, obj in self.trace:
            if n != name or not t0 <= t <= t_done:
                continue
            message = condition(obj, "Reconciling").get("message", "")
            for step, prefix in STEPS:
                if step not in marks and message.startswith(prefix):
                    marks[step] = t
        out, last = {}, t0
        for step, _ in STEPS:
            if step in marks:
                out[step] = marks[step] - last
                last = marks[step]
        if marks:
            out["apply"] = t_done - last
        return out


Check = Callable[[dict[str, Any] | None], bool]


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return dict(c)
    return {}


def applied(revision: str) -> Check:
    def check(obj: dict[str, Any] | None) -> bool:
        return (
            obj is not None
            and condition(obj, "Ready").get("status") == "True"
            and (obj.get("status") or {}).get("lastAppliedRevision") == revision
        )

    return check


def handled(token: str) -> Check:
    def check(obj: dict[str, Any] | None) -> bool:
        return (
            obj is not None
            and condition(obj, "Ready").get("status") == "True"
            and (obj.get("status") or {}).get("lastHandledReconcileAt") == token
        )

    return check


def has_artifact(revision: str) -> Check:
    def check(obj: dict[str, Any] | None) -> bool:
        artifact = ((obj or {}).get("status") or {}).get("artifact") or {}
        return (
            artifact.get("revision") == revision
            and obj is not None
            and (condition(obj, "Ready").get("status") == "True")
        )

    return check


def describe(obj: dict[str, Any] | None) -> str:
    if obj is None:
        return "missing"
    status = obj.get("status") or {}
    conds = "; ".join(
        f"{c['type']}={c['status']} {c.get('reason', '')}: {c.get('message', '')[:200]}"
        for c in status.get("conditions") or []
    )
    return (
        f"applied={status.get('lastAppliedRevision')} "
        f"handled={status.get('lastHandledReconcileAt')} [{conds}]"
    )


# -- processes ---------------------------------------------------------------------------------


def _status_kb(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0])
    return out


def _cpu_s(pid: int, *, reaped: bool) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime, stime (fields 14, 15), then cutime, cstime; stat[0] is field 3.
    ticks = sum(int(x) for x in stat[11 : 15 if reaped else 13])
    return ticks / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                out += [int(c) for c in (task / "children").read_text().split()]
    return out + [d for c in out for d in _children(c)]


class Sampler(threading.Thread):
    """Memory of the controller and its descendants, every 50 ms: each process's VmHWM (a
    worker that exits keeps the last value seen) and the largest simultaneous sum of VmRSS."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.hwm_kb: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self.peak_sum_kb = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(0.05):
            self.sample()

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def sample(self) -> None:
        total = 0
        for pid in [self.pid, *_children(self.pid)]:
            try:
                kb = _status_kb(pid)
                if pid not in self.names:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                    self.names[pid] = cmd.decode(errors="replace")
            except (OSError, ValueError):
                continue
            self.hwm_kb[pid] = max(self.hwm_kb.get(pid, 0), kb.get("VmHWM", 0))
            total += kb.get("VmRSS", 0)
        self.peak_sum_kb = max(self.peak_sum_kb, total)

    def cpu_s(self) -> float:
        """CPU seconds of the controller, its reaped children and its live descendants."""
        total = _cpu_s(self.pid, reaped=True)
        for pid in _children(self.pid):
            with contextlib.suppress(OSError):
                total += _cpu_s(pid, reaped=True)
        return total

    def workers(self) -> dict[int, int]:
        return {p: kb for p, kb in self.hwm_kb.items() if "_worker_main" in self.names.get(p, "")}


@dataclass
class Controller:
    proc: subprocess.Popen[bytes]
    health: str
    sampler: Sampler
    startup_s: float = 0.0
    idle_rss_mb: float = 0.0


def free_ports(n: int) -> list[int]:
    return plane._free_ports(n)


def spawn(kubeconfig: Path, data: Path, concurrent: int) -> Controller:
    storage, metrics, health = free_ports(3)
    (data / "tmp").mkdir(parents=True, exist_ok=True)
    LOG.unlink(missing_ok=True)
    with LOG.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "tidal", "--kubeconfig", str(kubeconfig), "controller",
                f"--storage-path={data / 'storage'}",
                f"--storage-addr=127.0.0.1:{storage}",
                f"--metrics-addr=127.0.0.1:{metrics}",
                f"--health-addr=127.0.0.1:{health}",
                f"--git-cache-path={data / 'git'}",
                f"--artifact-cache-path={data / 'artifacts'}",
                f"--concurrent={concurrent}",
                "--log-encoding=json",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Checkouts and build views go next to the storage, on the same file system.
            env={**os.environ, "TMPDIR": str(data / "tmp")},
        )  # fmt: skip
    sampler = Sampler(proc.pid)
    sampler.start()
    return Controller(proc, f"127.0.0.1:{health}", sampler)


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
            raise RuntimeError(f"controller exited ({c.proc.returncode}):\n{log_tail()}")
        if await asyncio.to_thread(healthy, c.health):
            c.startup_s = time.perf_counter() - started
            # /readyz answers before the informers' first list; let the watches start so the
            # first measurement is not a cache sync.
            await asyncio.sleep(2.0)
            c.idle_rss_mb = _status_kb(c.proc.pid)["VmRSS"] / 1024
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"controller never became ready:\n{log_tail()}")


def stop(c: Controller) -> None:
    c.sampler.stop()
    if c.proc.poll() is None:
        c.proc.terminate()
        try:
            c.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            c.proc.kill()
            c.proc.wait()


def log_tail(n: int = 3000) -> str:
    return LOG.read_text(errors="replace")[-n:] if LOG.exists() else ""


def log_summary(text: str) -> tuple[list[str], list[str]]:
    """(error/warn lines, "Reconciliation finished" lines) of a JSON controller log."""
    errors, finished = [], []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            if line.strip():  # tracebacks are not JSON
                errors.append(line)
            continue
        if not isinstance(entry, dict):
            continue
        if entry.get("level") in ("error", "warn", "fatal"):
            errors.append(line)
        elif str(entry.get("msg", "")).startswith("Reconciliation finished"):
            finished.append(f"{entry.get('kustomization', '?')}: {entry['msg']}")
    return errors, finished


@dataclass
class KubectlRun:
    wall_s: float
    cpu_s: float
    maxrss_mb: float


def kubectl_apply(kubeconfig: Path, cache: Path, target: Path, recursive: bool) -> KubectlRun:
    argv = [
        str(KUBECTL), "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache),
        "apply", "--server-side", "--field-manager=bench", "-f", str(target),
    ]  # fmt: skip
    if recursive:
        argv.append("-R")
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        # wait4 rather than wait: the child's own rusage (maxrss, CPU) comes with it.
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"kubectl apply failed: {err.read()[-2000:].decode()}")
    return KubectlRun(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024)


# -- measurements ------------------------------------------------------------------------------


@dataclass
class Bench:
    cfg: Config
    kube: Kube
    kubeconfig: Path
    work: Path
    srv: GitHTTPServer
    ks: Watcher
    repos: Watcher
    c: Controller
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    settled_s: list[float] = field(default_factory=list)
    kubectl_rss_mb: float = 0.0
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)
    tokens: int = 0

    def token(self) -> str:
        # A fresh, RFC 3339-shaped value per request, as `flux reconcile` writes.
        self.tokens += 1
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{self.tokens:09d}Z"

    def row(self, metric: str, tidal: float | None, floor: float | None, unit: str = "s") -> None:
        ratio = f"{tidal / floor:.2f}" if tidal is not None and floor else ""
        self.rows.append((metric, fmt(tidal, unit), fmt(floor, unit), ratio))

    def step_rows(self, name: str, spans: list[tuple[float, float]]) -> None:
        """Per step, the median over the reconciles of `name` in `spans` (start, done)."""
        steps: dict[str, list[float]] = {}
        for t0, t_done in spans:
            for step, seconds in self.ks.steps(name, t0, t_done).items():
                steps.setdefault(step, []).append(seconds)
        for step, values in steps.items():
            self.row(f"    of which {step}", statistics.median(values), None)

    async def kubectl(self, target: Path, recursive: bool = False) -> KubectlRun:
        run = await asyncio.to_thread(
            kubectl_apply, self.kubeconfig, self.work / "kubectl-cache", target, recursive
        )
        self.kubectl_rss_mb = max(self.kubectl_rss_mb, run.maxrss_mb)
        return run

    async def settle(self, *namespaces: str) -> None:
        self.settled_s.append(await settle(self.kube, list(namespaces)))

    async def expect(self, namespace: str, apps: int = 0, configmaps: int = 0) -> None:
        want = {"ConfigMap": apps * 8 + configmaps, "Service": apps, "Deployment": apps}
        got = await count(self.kube, namespace)
        if got != want:
            self.notes.append(f"{namespace}: expected {want}, found {got}")

    async def reconcile_new(self, name: str, path: str, revision: str) -> tuple[float, float]:
        """Create a Kustomization on the apps source; (created, applied) perf_counter()s."""
        t0 = time.perf_counter()
        await self.kube.create(ks_collection(), kustomization(name, "apps", path))
        return t0, await self.ks.until([name], applied(revision), self.cfg.timeout)

    # -- 1. cold apply --------------------------------------------------------------------

    async def cold(self, revision: str) -> None:
        n = self.cfg.cold_apps * 10
        cpu0 = self.c.sampler.cpu_s()
        span = await self.reconcile_new("cold", "./cold", revision)
        tidal_cpu = self.c.sampler.cpu_s() - cpu0
        await self.settle("ks-cold")
        floor = await self.kubectl(self.work / "floor" / "cold")
        await self.settle("floor-cold")
        self.row(f"1. cold apply of {n} objects", span[1] - span[0], floor.wall_s)
        self.step_rows("cold", [span])
        self.row("    CPU time (tidal: controller + workers)", tidal_cpu, floor.cpu_s)
        await self.expect("ks-cold", apps=self.cfg.cold_apps)
        await self.expect("floor-cold", apps=self.cfg.cold_apps)

    # -- 2. no-op reconcile ---------------------------------------------------------------

    async def noop(self, revision: str) -> None:
        n = self.cfg.noop_apps * 10
        created, applied_at = await self.reconcile_new("noop", "./noop", revision)
        first = applied_at - created
        await self.settle("ks-noop")
        floor_first = await self.kubectl(self.work / "floor" / "noop")
        await self.settle("floor-noop")
        await self.expect("ks-noop", apps=self.cfg.noop_apps)
        await self.expect("floor-noop", apps=self.cfg.noop_apps)

        tidal: list[float] = []
        floor: list[KubectlRun] = []
        cpu: list[float] = []
        spans: list[tuple[float, float]] = []
        for pair in range(self.cfg.noop_pairs):
            # Who goes first alternates, so neither always meets a machine the other warmed.
            for side in ("tidal", "kubectl") if pair % 2 == 0 else ("kubectl", "tidal"):
                if side == "kubectl":
                    floor.append(await self.kubectl(self.work / "floor" / "noop"))
                    continue
                token = self.token()
                cpu0 = self.c.sampler.cpu_s()
                t0 = time.perf_counter()
                await annotate(self.kube, f"{ks_collection()}/noop", token)
                done = await self.ks.until(["noop"], handled(token), self.cfg.timeout)
                tidal.append(done - t0)
                cpu.append(self.c.sampler.cpu_s() - cpu0)
                spans.append((t0, done))
        self.row(
            f"2. no-op reconcile of {n} objects (median of {len(tidal)})",
            statistics.median(tidal),
            statistics.median(r.wall_s for r in floor),
        )
        self.step_rows("noop", spans)
        self.row(
            "    CPU time (tidal: controller + workers)",
            statistics.median(cpu),
            statistics.median(r.cpu_s for r in floor),
        )
        self.row("    all no-op runs, min", min(tidal), min(r.wall_s for r in floor))
        self.row("    all no-op runs, max", max(tidal), max(r.wall_s for r in floor))
        self.row(f"    (before: first apply of the {n} objects)", first, floor_first.wall_s)
        changed = await count(self.kube, "ks-noop")
        if changed != {"ConfigMap": n * 8 // 10, "Service": n // 10, "Deployment": n // 10}:
            self.notes.append(f"ks-noop after the no-ops: {changed}")

    # -- 3. fan-out -----------------------------------------------------------------------

    async def fan(self) -> None:
        cfg = self.cfg
        names = [f"fan-{k}" for k in range(cfg.fan_ks)]
        repo = self.srv.repo_path("fan")
        revision = f"main@sha1:{run_git(['rev-parse', 'refs/heads/main'], cwd=repo)}"
        await self.kube.create(repo_collection(), git_repository("fan", self.srv.url_for("fan")))
        await self.repos.until(["fan"], has_artifact(revision), cfg.timeout)
        t0 = time.perf_counter()
        await asyncio.gather(
            *(
                self.kube.create(ks_collection(), kustomization(n, "fan", f"./k{k}"))
                for k, n in enumerate(names)
            )
        )
        done = await self.ks.until(names, applied(revision), cfg.timeout)
        first = done - t0
        floor_first = await self.kubectl(self.work / "floor" / "fan", recursive=True)
        total = cfg.fan_ks * cfg.fan_objects

        sha = commit_tree(repo, dict(fan_tree(cfg, "ks-fan", changed=True)), "one each")
        write_tree(self.work / "floor" / "fan", fan_tree(cfg, "floor-fan", changed=True))
        revision = f"main@sha1:{sha}"
        cpu0 = self.c.sampler.cpu_s()
        t0 = time.perf_counter()
        await annotate(self.kube, f"{repo_collection()}/fan", self.token())
        source_at = await self.repos.until(["fan"], has_artifact(revision), cfg.timeout)
        done = await self.ks.until(names, applied(revision), cfg.timeout)
        cpu = self.c.sampler.cpu_s() - cpu0
        floor = await self.kubectl(self.work / "floor" / "fan", recursive=True)
        self.row(
            f"3. one commit -> {cfg.fan_ks} Kustomizations applied ({total} objects, "
            f"{cfg.fan_ks} changed)",
            done - t0,
            floor.wall_s,
        )
        self.row("    of which the GitRepository's new artifact", source_at - t0, None)
        firsts = []
        steps: dict[str, list[float]] = {}
        for n in names:
            applied_at = next(
                t
                for t, name, obj in self.ks.trace
                if name == n and t >= t0 and applied(revision)(obj)
            )
            firsts.append(applied_at - source_at)
            for step, seconds in self.ks.steps(n, source_at, applied_at).items():
                steps.setdefault(step, []).append(seconds)
        self.row("    artifact -> first Kustomization applied", min(firsts), None)
        self.row("    artifact -> median Kustomization applied", statistics.median(firsts), None)
        # Pick-up counts from the new artifact, so it holds the wait for a free worker slot.
        for step, values in steps.items():
            self.row(f"    per Kustomization, median {step}", statistics.median(values), None)
        self.row("    CPU time (tidal: controller + workers)", cpu, floor.cpu_s)
        self.row(
            f"    (before: {cfg.fan_ks} new Kustomizations x {cfg.fan_objects} ConfigMaps)",
            first,
            floor_first.wall_s,
        )
        got = await self.kube.get("/api/v1/namespaces/ks-fan/configmaps/k0-cm-000")
        if not got["data"]["key_0"].endswith("-r1"):
            self.notes.append(f"ks-fan/k0-cm-000 not updated: {got['data']}")

    # -- 4. memory ------------------------------------------------------------------------

    def memory(self) -> None:
        s = self.c.sampler
        s.sample()
        workers = s.workers()
        others = {p: kb for p, kb in s.hwm_kb.items() if p != self.c.proc.pid and p not in workers}
        self.row(
            "4. peak RSS over the run, controller process (VmHWM)",
            s.hwm_kb[self.c.proc.pid] / 1024,
            self.kubectl_rss_mb,
            "MB",
        )
        largest = max(workers.values(), default=0) / 1024
        self.row(f"    kustomize workers: {len(workers)}, largest VmHWM", largest, None, "MB")
        if others:
            self.row(
                f"    other children: {len(others)}, largest VmHWM",
                max(others.values()) / 1024,
                None,
                "MB",
            )
        self.row(
            "    controller + children, largest sampled sum of RSS",
            s.peak_sum_kb / 1024,
            self.kubectl_rss_mb,
            "MB",
        )
        self.row("    controller RSS when idle after start-up", self.c.idle_rss_mb, None, "MB")


# -- report ------------------------------------------------------------------------------------


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "MB":
        return f"{value:.0f} MB"
    return f"{value:.0f}"


def table(rows: list[tuple[str, str, str, str]]) -> list[str]:
    width = max(len(r[0]) for r in rows) + 2
    head = f"{'measurement':<{width}}{'tidal':>11}{'kubectl':>11}{'ratio':>8}"
    lines = [head, "-" * len(head)]
    lines += [f"{m:<{width}}{t:>11}{f:>11}{r:>8}" for m, t, f, r in rows]
    return lines


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def mem_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class OtherJob(threading.Thread):
    """When the CI run from a clone in /tmp/cc (another job on this machine, competing for the
    CPU) had processes, polled every second."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen: list[float] = []
        self.example = ""
        self._halt = threading.Event()

    def run(self) -> None:
        while True:
            out = subprocess.run(
                ["pgrep", "-af", "/tmp/cc"], capture_output=True, text=True, check=False
            )
            if out.stdout.strip():
                self.seen.append(time.perf_counter())
                self.example = self.example or out.stdout.splitlines()[0][:200]
            if self._halt.wait(1.0):
                return

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def during(self, windows: dict[str, tuple[float, float]]) -> str:
        busy = [n for n, (t0, t1) in windows.items() if any(t0 <= t <= t1 for t in self.seen)]
        if busy:
            return (
                f"ACTIVE during {', '.join(busy)} (figures there are perturbed), e.g. "
                f"`{self.example}`"
            )
        return (
            "not running during any measurement"
            if not self.seen
            else "active only between measurements"
        )


def kubectl_version() -> str:
    out = subprocess.run(
        [str(KUBECTL), "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return str(json.loads(out.stdout)["clientVersion"]["gitVersion"])
    except (ValueError, KeyError):
        return "?"


# -- the run -----------------------------------------------------------------------------------


def work_root() -> tuple[Path, str]:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="tidal-bench-ks-", dir=shm)), "/dev/shm (tmpfs)"
    return Path(tempfile.mkdtemp(prefix="tidal-bench-ks-")), "local disk (no /dev/shm)"


def build_repos(cfg: Config, srv: GitHTTPServer, work: Path) -> str:
    """The apps repository (cold/ and noop/), the fan repository, and kubectl's twins of them
    with the namespaces swapped; returns the apps revision."""
    cold = apps_tree(cfg.cold_apps, "ks-cold")
    noop = apps_tree(cfg.noop_apps, "ks-noop")
    sha = commit_tree(
        srv.repo_path("apps"), {**prefixed("cold", cold), **prefixed("noop", noop)}, "apps"
    )
    commit_tree(srv.repo_path("fan"), fan_tree(cfg, "ks-fan", changed=False), "fan")
    floor = work / "floor"
    write_tree(floor / "cold", apps_tree(cfg.cold_apps, "floor-cold"))
    write_tree(floor / "noop", apps_tree(cfg.noop_apps, "floor-noop"))
    write_tree(floor / "fan", fan_tree(cfg, "floor-fan", changed=False))
    return f"main@sha1:{sha}"


async def prepare(kube: Kube, kubeconfig: Path, work: Path) -> None:
    await install_crds(kube)
    for ns in (NAMESPACE, "ks-cold", "floor-cold", "ks-noop", "floor-noop", "ks-fan", "floor-fan"):
        await create_namespace(kube, ns)
    # kubectl's discovery cache is filled here, so no timed apply pays for it.
    await asyncio.to_thread(
        subprocess.run,
        [str(KUBECTL), "--kubeconfig", str(kubeconfig), "--cache-dir",
         str(work / "kubectl-cache"), "api-resources"],
        stdout=subprocess.DEVNULL,
        check=True,
    )  # fmt: skip


async def run_all(b: Bench, revision: str) -> None:
    await b.kube.create(repo_collection(), git_repository("apps", b.srv.url_for("apps")))
    await b.repos.until(["apps"], has_artifact(revision), b.cfg.timeout)
    steps: list[tuple[str, Awaitable[None]]] = [
        ("cold apply", b.cold(revision)),
        ("no-op", b.noop(revision)),
        ("fan-out", b.fan()),
    ]
    for name, step in steps:
        print(f"{name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            await step
        except Exception as e:  # report and go on: the other measurements still count
            b.notes.append(f"{name}: {type(e).__name__}: {e}")
        b.windows[name] = (t0, time.perf_counter())
    b.memory()


async def measure(cfg: Config, work: Path) -> tuple[Bench, float]:
    state = start_plane(work / "plane")
    try:
        with GitHTTPServer(
            work / "repos", tls=False, basic_auth=False, bearer_auth=False, workdir=work / "srv"
        ) as srv:
            revision = build_repos(cfg, srv, work)
            async with Kube.from_kubeconfig(state.kubeconfig) as kube:
                await prepare(kube, state.kubeconfig, work)
                ks, repos = Watcher(kube, ks_collection()), Watcher(kube, repo_collection())
                await ks.start()
                await repos.start()
                started = time.perf_counter()
                c = spawn(state.kubeconfig, work / "controller", cfg.concurrent)
                b = Bench(cfg, kube, state.kubeconfig, work, srv, ks, repos, c)
                try:
                    await wait_ready(c, started)
                    await run_all(b, revision)
                finally:
                    stop(c)
                    await ks.stop()
                    await repos.stop()
    finally:
        with contextlib.redirect_stdout(sys.stderr):
            plane.down(work / "plane")
    return b, c.startup_s


def start_plane(directory: Path) -> plane.State:
    # Ports are picked free and then bound; planes started meanwhile by other jobs (the CI
    # run) can take one in between, and up() retries only once itself.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            return plane.up(directory)
        except plane.PlaneError as e:
            print(f"plane start failed ({e}); retrying", file=sys.stderr)
            plane.down(directory)
            return plane.up(directory)


def report(cfg: Config, b: Bench, quick: bool, header: list[str]) -> str:
    errors, finished = log_summary(LOG.read_text(errors="replace"))
    if errors:
        b.notes.append(
            f"{len(errors)} error/warn lines in the controller log, e.g.\n    "
            + "\n    ".join(e[:400] for e in errors[:5])
        )
    lines = [
        "Kustomization controller benchmark: tidal vs `kubectl apply --server-side` (the floor)",
        f"(.venv/bin/python bench/kustomization.py{' --quick' if quick else ''})",
        *header,
        "",
        *table(b.rows),
        "",
        "ratio = tidal / kubectl (< 1: tidal is faster or smaller). tidal's time runs from the",
        "create or annotation to the watch event showing the result, so it includes the queue,",
        "the status writes and (row 3) the git fetch; kubectl's is the process's wall time,",
        "reading the files included. 'of which' rows split tidal's time by the Reconciling",
        "condition's messages (pick-up -> Fetching, artifact -> Building, build -> Detecting",
        "drift, apply -> Ready: dry-run of every object, then the writes and the inventory).",
        "",
        "controller log, Reconciliation finished:",
        *(f"  {line}" for line in finished),
        "",
    ]
    if not b.notes:
        return "\n".join([*lines, "problems: none"]) + "\n"
    return "\n".join([*lines, "problems:", *(f"  {n}" for n in b.notes)]) + "\n"


async def bench(cfg: Config, quick: bool) -> str:
    work, where = work_root()
    t = time.perf_counter()
    load_before = load_average()
    other = OtherJob()
    other.start()
    try:
        b, startup = await measure(cfg, work)
    finally:
        other.stop()
        shutil.rmtree(work, ignore_errors=True)
    git = run_git(["--version"]).split()[-1]
    header = [
        f"machine: {cpu_model()}, {os.cpu_count()} CPUs, {mem_gib():.1f} GiB, "
        f"Linux {platform.release()}",
        f"tidal {tidal_version} (Python {platform.python_version()}), --concurrent "
        f"{cfg.concurrent}, --concurrent-ssa default; kubectl {kubectl_version()}; "
        f"kube-apiserver {versions.KUBERNETES} (testenv), git {git}",
        f"workload: cold {cfg.cold_apps * 10} objects and no-op {cfg.noop_apps * 10} objects "
        "(apps of 1 Deployment, 1 Service, 8 ConfigMaps, a file each); fan-out "
        f"{cfg.fan_ks} x {cfg.fan_objects} ConfigMaps",
        f"plane, repositories, controller data and kubectl's files on {where}; one controller "
        f"process for the whole run (start-up {startup:.2f} s)",
        "waited for kube-controller-manager to settle before each measurement: "
        + ", ".join(f"{s:.1f}" for s in b.settled_s)
        + " s",
        f"the run took {time.perf_counter() - t:.0f} s; load average before: {load_before}, "
        f"after: {load_average()}; controller log in {LOG}",
        f"the other job on this machine (CI run in /tmp/cc): {other.during(b.windows)}",
    ]
    return report(cfg, b, quick, header)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smaller workload")
    args = parser.parse_args()
    cfg = QUICK if args.quick else DEFAULT
    text = asyncio.run(bench(cfg, args.quick))
    print(text, end="")
    if not args.quick:  # the recorded result is the full workload's
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
