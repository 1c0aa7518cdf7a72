"""Benchmark: tidal's HelmRelease controller against Flux's helm-controller, in one run.

Two contenders on the shared test plane (`.testenv/kubeconfig`; `python -m testenv up` starts
one when none runs), one after the other, never both at once, each on fresh namespaces:

- flux: source-controller v1.9.5 + helm-controller v1.6.4, compiled from their Go modules
  (testenv.peers) and run as plain processes (no leader election, loopback ports, no
  notification-controller);
- tidal: one `tidal controller` process (the `helm` extra installed).

Both get --concurrent 4 and watch only objects labelled for them (the HelmCharts through
spec.chart.metadata.labels), so neither sees the other's objects nor anyone else's on the plane.
A local chart server (testenv.chart_server) serves two generated charts:

1. install of one HelmRelease of a chart rendering N ConfigMaps (500; --quick 200), its
   HelmRepository already Ready: from the create until Ready=True at the chart version with
   release revision 1; split into "HelmChart artifact" (create -> the HelmChart Ready) and
   "release" (-> the HelmRelease Ready);
2. 50 HelmReleases (--quick 20) of a 2-ConfigMap chart: (a) install, from the creates until
   all are Ready at revision 1; (b) one values change of all of them (the 50 merge patches
   sent at once): from the first patch until all are Ready at release revision 2;
3. memory: every controller process's VmHWM and the largest simultaneous sum of their VmRSS,
   sampled every 50 ms (bench/kustomization.py's Sampler), over each workload and the run;
   CPU seconds of the controllers per workload.

Helm's default of waiting for the released objects (kstatus) is left on for both; ConfigMaps
are Ready at once. Flux's Kubernetes client keeps its defaults (--kube-api-qps 50,
--kube-api-burst 300); tidal's client has no rate limit.

    .venv/bin/python bench/helmrelease.py [--quick] [--kubeconfig .testenv/kubeconfig]

Prints the table; a full run with both controllers also writes bench/results/helmrelease.txt.
The controllers' logs stay in $TMPDIR/tidal-bench-helmrelease/. Missing Flux CRDs the
source-controller watches (Bucket, ExternalArtifact) are created and removed afterwards if the
bench was their only field manager; existing CRDs are never replaced.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import flux_peer  # noqa: E402
import kustomization as ks  # noqa: E402
from testenv import flux_controllers, peers, plane  # noqa: E402
from testenv.chart_server import ChartRepository, ChartServer, package_chart  # noqa: E402
from tidal import __version__ as tidal_version  # noqa: E402
from tidal.kube.client import ApiError, Kube  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "helmrelease.txt"
LOGS = Path(tempfile.gettempdir()) / "tidal-bench-helmrelease"
HR_API = "/apis/helm.toolkit.fluxcd.io/v2"
SOURCE_API = "/apis/source.toolkit.fluxcd.io/v1"
CRD_API = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
LABEL = "bench.tidal.dev/helmrelease"
FIELD_MANAGER = "tidal-bench-helmrelease"
SIDES = ("flux", "tidal")
BIG_CHART, SMALL_CHART = "many", "small"


@dataclass(frozen=True)
class Config:
    big_objects: int
    small_releases: int
    concurrent: int
    timeout: float  # seconds any one wait may take
    flux_client: tuple[int, int] | None = None  # (--kube-api-qps, --kube-api-burst); None: Flux's


DEFAULT = Config(500, 50, 4, 600.0)
QUICK = Config(200, 20, 4, 300.0)


# -- charts ------------------------------------------------------------------------------------


def big_chart(objects: int) -> bytes:
    """A chart of `objects` ConfigMaps from one ranged template (cheap on the API server)."""
    template = (
        "{{- range $i := until (int .Values.count) }}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
        "  name: {{ $.Release.Name }}-{{ $i }}\n"
        "  labels: {app: {{ $.Release.Name }}, index: {{ $i | quote }}}\n"
        "data:\n"
        "  index: {{ $i | quote }}\n"
        '  digest: {{ printf "%d-%s" $i $.Values.salt | sha256sum | trunc 16 | quote }}\n'
        "  greeting: {{ $.Values.greeting | quote }}\n"
        "{{- end }}\n"
    )
    return package_chart(
        BIG_CHART,
        "1.0.0",
        extra_files={
            "values.yaml": f"count: {objects}\nsalt: bench\ngreeting: hello\n",
            # Replaces package_chart's own one-ConfigMap template: exactly `objects` objects.
            "templates/configmap.yaml": template,
        },
    )


def small_chart() -> bytes:
    """Two ConfigMaps whose data follows `.Values.rev`."""
    template = "".join(
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n"
        f"  name: {{{{ .Release.Name }}}}-{suffix}\n"
        f"data:\n  rev: {{{{ .Values.rev | quote }}}}\n  part: {suffix}\n"
        for suffix in ("a", "b")
    )
    return package_chart(
        SMALL_CHART,
        "1.0.0",
        extra_files={"values.yaml": "rev: 1\n", "templates/configmap.yaml": template},
    )


# -- objects -----------------------------------------------------------------------------------


def helm_repository(side: str, namespace: str, url: str) -> dict[str, Any]:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "HelmRepository",
        "metadata": {"name": "charts", "namespace": namespace, "labels": {LABEL: side}},
        "spec": {"url": url, "interval": "60m"},
    }


def helm_release(
    side: str, namespace: str, name: str, chart: str, values: dict[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": "helm.toolkit.fluxcd.io/v2",
        "kind": "HelmRelease",
        "metadata": {"name": name, "namespace": namespace, "labels": {LABEL: side}},
        "spec": {
            # Long intervals: only the bench's changes (and the first reconcile) drive them.
            "interval": "60m",
            "timeout": "5m",
            "chart": {
                # The HelmChart the controller writes carries the label its own selector needs.
                "metadata": {"labels": {LABEL: side}},
                "spec": {
                    "chart": chart,
                    "version": "1.0.0",
                    "interval": "60m",
                    "sourceRef": {"kind": "HelmRepository", "name": "charts"},
                },
            },
            "values": values,
        },
    }


def released(revision: int, chart_version: str = "1.0.0") -> ks.Check:
    """Ready=True for the current generation, the latest release at `revision` and deployed."""

    def check(obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        status = obj.get("status") or {}
        history = status.get("history") or [{}]
        return (
            ks.condition(obj, "Ready").get("status") == "True"
            and status.get("observedGeneration") == obj["metadata"].get("generation")
            and history[0].get("version") == revision
            and history[0].get("status") == "deployed"
            and history[0].get("chartVersion") == chart_version
        )

    return check


def ready_now(obj: dict[str, Any] | None) -> bool:
    return (
        obj is not None
        and ks.condition(obj, "Ready").get("status") == "True"
        and (obj.get("status") or {}).get("observedGeneration") == obj["metadata"].get("generation")
    )


def describe(obj: dict[str, Any] | None) -> str:
    if obj is None:
        return "missing"
    status = obj.get("status") or {}
    conds = "; ".join(
        f"{c['type']}={c['status']} {c.get('reason', '')}: {c.get('message', '')[:200]}"
        for c in status.get("conditions") or []
    )
    history = [(h.get("version"), h.get("status")) for h in status.get("history") or []]
    return f"gen={obj['metadata'].get('generation')} observed={status.get('observedGeneration')} history={history} [{conds}]"  # noqa: E501


# -- CRDs --------------------------------------------------------------------------------------


async def ensure_crds(kube: Kube) -> list[str]:
    """Create the CRDs Flux's two controllers need and the plane lacks; never touch one that
    exists (tidal's own CRDs serve the same schemas). Returns the names created."""
    created = []
    for crd in await asyncio.to_thread(peers.helm_crds):
        name = crd["metadata"]["name"]
        try:
            await kube.get(f"{CRD_API}/{name}")
            continue
        except ApiError as e:
            if e.status != 404:
                raise
        body = {k: v for k, v in crd.items() if k != "status"}
        try:
            await kube.request("POST", CRD_API, body=body, params={"fieldManager": FIELD_MANAGER})
            created.append(name)
        except ApiError as e:
            if e.status != 409:  # someone else created it meanwhile
                raise
    for name in created:
        for _ in range(300):
            got = await kube.get(f"{CRD_API}/{name}")
            conds = (got.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                break
            await asyncio.sleep(0.1)
    return created


async def remove_crds(kube: Kube, names: list[str]) -> list[str]:
    """Delete the CRDs this run created, unless another manager has written to one since or
    objects of its kind exist. Returns the names kept."""
    kept = []
    for name in names:
        try:
            crd = await kube.get(f"{CRD_API}/{name}")
        except ApiError:
            continue
        managers = {m.get("manager") for m in crd["metadata"].get("managedFields") or []}
        spec = crd["spec"]
        version = next(v["name"] for v in spec["versions"] if v.get("storage"))
        items = await kube.get(f"/apis/{spec['group']}/{version}/{spec['names']['plural']}")
        if managers - {FIELD_MANAGER, "kube-apiserver"} or items["items"]:
            kept.append(name)
            continue
        await kube.delete(f"{CRD_API}/{name}")
    return kept


# -- controllers -------------------------------------------------------------------------------


def spawn_tidal(kubeconfig: Path, data: Path, cfg: Config) -> ks.Controller:
    storage, metrics, health = plane._free_ports(3)
    (data / "tmp").mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / "tidal-controller.log"
    log.unlink(missing_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "tidal", "--kubeconfig", str(kubeconfig), "controller",
                f"--storage-path={data / 'storage'}",
                f"--storage-addr=127.0.0.1:{storage}",
                f"--storage-adv-addr=127.0.0.1:{storage}",
                f"--metrics-addr=127.0.0.1:{metrics}",
                f"--health-addr=127.0.0.1:{health}",
                f"--git-cache-path={data / 'git'}",
                f"--artifact-cache-path={data / 'artifacts'}",
                f"--concurrent={cfg.concurrent}",
                f"--watch-label-selector={LABEL}=tidal",
                "--log-encoding=json",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "TMPDIR": str(data / "tmp")},
        )  # fmt: skip
    started = [flux_peer.Started("tidal controller", proc, f"127.0.0.1:{health}", log)]
    sampler = ks.Sampler([proc.pid])
    sampler.start()
    return ks.Controller("tidal", started, sampler)


def spawn_flux(kubeconfig: Path, data: Path, cfg: Config) -> ks.Controller:
    storage, s_metrics, s_health, h_metrics, h_health = plane._free_ports(5)
    (data / "tmp").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TMPDIR": str(data / "tmp")}
    selector = [f"--watch-label-selector={LABEL}=flux"]
    if cfg.flux_client is not None:
        qps, burst = cfg.flux_client
        selector += [f"--kube-api-qps={qps}", f"--kube-api-burst={burst}"]
    LOGS.mkdir(parents=True, exist_ok=True)
    source_log, helm_log = LOGS / "source-controller.log", LOGS / "helm-controller.log"
    for log in (source_log, helm_log):
        log.unlink(missing_ok=True)
    source = flux_controllers.start_source_controller(
        flux_controllers.SourceControllerArgs(
            kubeconfig=kubeconfig,
            storage_path=data / "storage",
            storage_addr=f"127.0.0.1:{storage}",
            metrics_addr=f"127.0.0.1:{s_metrics}",
            health_addr=f"127.0.0.1:{s_health}",
            concurrent=cfg.concurrent,
            extra=selector,
        ),
        source_log,
        env,
    )
    helm = peers.start_helm_controller(
        peers.HelmControllerArgs(
            kubeconfig=kubeconfig,
            metrics_addr=f"127.0.0.1:{h_metrics}",
            health_addr=f"127.0.0.1:{h_health}",
            concurrent=cfg.concurrent,
            extra=selector,
        ),
        helm_log,
        env,
    )
    started = [
        flux_peer.Started("source-controller", source, f"127.0.0.1:{s_health}", source_log),
        flux_peer.Started("helm-controller", helm, f"127.0.0.1:{h_health}", helm_log),
    ]
    sampler = ks.Sampler([s.proc.pid for s in started])
    sampler.start()
    return ks.Controller("flux", started, sampler)


# -- results -----------------------------------------------------------------------------------


@dataclass
class Results:
    """Rows by section (1-3), in order of first arrival within a section."""

    rows: dict[tuple[int, str], tuple[dict[str, float | None], str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def put(self, section: int, label: str, side: str, value: float | None, unit: str) -> None:
        self.rows.setdefault((section, label), ({}, unit))[0][side] = value

    def ordered(self) -> list[tuple[str, dict[str, float | None], str]]:
        order = {key: i for i, key in enumerate(self.rows)}
        keys = sorted(self.rows, key=lambda k: (k[0], order[k]))
        return [(k[1], *self.rows[k]) for k in keys]


def table(res: Results) -> list[str]:
    """One row per measurement: flux, tidal and tidal/flux (< 1: tidal is faster or smaller)."""
    rows = res.ordered()
    width = max((len(label) for label, _, _ in rows), default=20) + 2
    head = f"{'measurement':<{width}}{'flux':>10}{'tidal':>10}{'tidal/flux':>12}"
    lines = [head, "-" * len(head)]
    for label, values, unit in rows:
        flux, tidal = values.get("flux"), values.get("tidal")
        line = f"{label:<{width}}{ks.fmt(flux, unit):>10}{ks.fmt(tidal, unit):>10}"
        lines.append((line + f"{ks.ratio(tidal, flux):>12}").rstrip())
    return lines


# -- the workloads -----------------------------------------------------------------------------


@dataclass
class Session:
    cfg: Config
    kube: Kube
    kubeconfig: Path
    side: str
    url: str
    res: Results
    suffix: str
    namespaces: list[str] = field(default_factory=list)
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)

    def put(self, section: int, label: str, value: float | None, unit: str = "s") -> None:
        self.res.put(section, label, self.side, value, unit)

    async def namespace(self, what: str) -> str:
        name = f"hrb-{self.side}-{what}-{self.suffix}"
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        await self.kube.create("/api/v1/namespaces", body)
        self.namespaces.append(name)
        repo = helm_repository(self.side, name, self.url)
        await self.kube.create(f"{SOURCE_API}/namespaces/{name}/helmrepositories", repo)
        return name

    async def repository_ready(self, namespace: str) -> None:
        repos = ks.Watcher(self.kube, f"{SOURCE_API}/namespaces/{namespace}/helmrepositories")
        await repos.start()
        try:
            await repos.until(["charts"], ready_now, 120)
        finally:
            await repos.stop()

    async def big(self, c: ks.Controller) -> None:
        cfg = self.cfg
        ns = await self.namespace("big")
        await self.repository_ready(ns)
        hrs = ks.Watcher(self.kube, f"{HR_API}/namespaces/{ns}/helmreleases")
        charts = ks.Watcher(self.kube, f"{SOURCE_API}/namespaces/{ns}/helmcharts")
        await hrs.start()
        await charts.start()
        label = f"1. install of one HelmRelease of {cfg.big_objects} ConfigMaps"
        try:
            c.sampler.peak_sum_kb = 0
            cpu0 = c.sampler.cpu_s()
            body = helm_release(self.side, ns, "big", BIG_CHART, {"greeting": "hi"})
            t0 = time.perf_counter()
            await self.kube.create(f"{HR_API}/namespaces/{ns}/helmreleases", body)
            try:
                t1 = await hrs.until(["big"], released(1), cfg.timeout)
            except TimeoutError as e:
                raise TimeoutError(f"{e}\n    {describe(hrs.objects.get('big'))}") from None
            self.windows["install"] = (t0, t1)
            self.put(1, label, t1 - t0)
            chart = f"{ns}-big"
            with contextlib.suppress(StopIteration):
                t_chart = charts.first(chart, t0, ready_now)
                self.put(
                    1, "    of which HelmChart artifact (create -> HelmChart Ready)", t_chart - t0
                )
                self.put(1, "    of which release (HelmChart Ready -> Ready)", t1 - t_chart)
            self.put(1, "    controllers' CPU", c.sampler.cpu_s() - cpu0, "s")
            c.sampler.sample()
            self.put(1, "    peak RSS (sum) during", c.sampler.peak_sum_kb / 1024, "MB")
            await self.check_releases(ns, 1)
            got = await self.kube.get(f"/api/v1/namespaces/{ns}/configmaps")
            n = sum(1 for i in got["items"] if i["metadata"]["name"].startswith("big-"))
            if n != cfg.big_objects:
                self.res.notes.append(f"{self.side}: {n} ConfigMaps of {cfg.big_objects}")
        finally:
            await hrs.stop()
            await charts.stop()

    async def fleet(self, c: ks.Controller) -> None:
        cfg = self.cfg
        ns = await self.namespace("fleet")
        await self.repository_ready(ns)
        names = [f"small-{i:03d}" for i in range(cfg.small_releases)]
        hrs = ks.Watcher(self.kube, f"{HR_API}/namespaces/{ns}/helmreleases")
        await hrs.start()
        n = cfg.small_releases
        collection = f"{HR_API}/namespaces/{ns}/helmreleases"
        try:
            c.sampler.peak_sum_kb = 0
            cpu0 = c.sampler.cpu_s()
            t0 = time.perf_counter()
            await asyncio.gather(
                *(
                    self.kube.create(collection, helm_release(self.side, ns, m, SMALL_CHART, {}))
                    for m in names
                )
            )
            t1 = await self.wait(hrs, names, released(1))
            self.windows["fleet install"] = (t0, t1)
            self.put(2, f"2a. install of {n} HelmReleases (2 ConfigMaps each)", t1 - t0)
            self.put(2, "    controllers' CPU", c.sampler.cpu_s() - cpu0, "s")
            cpu1 = c.sampler.cpu_s()
            t2 = time.perf_counter()
            await asyncio.gather(
                *(
                    self.kube.patch(f"{collection}/{m}", {"spec": {"values": {"rev": 2}}})
                    for m in names
                )
            )
            t3 = await self.wait(hrs, names, released(2))
            self.windows["fleet upgrade"] = (t2, t3)
            self.put(3, f"2b. values change of all {n} -> all upgraded", t3 - t2)
            self.put(3, "    controllers' CPU", c.sampler.cpu_s() - cpu1, "s")
            c.sampler.sample()
            self.put(3, "    peak RSS (sum) during 2a and 2b", c.sampler.peak_sum_kb / 1024, "MB")
            await self.check_releases(ns, 2 * n)
            got = await self.kube.get(f"/api/v1/namespaces/{ns}/configmaps/{names[-1]}-a")
            if got["data"].get("rev") != "2":
                self.res.notes.append(f"{self.side}: {names[-1]}-a not upgraded: {got['data']}")
        finally:
            await hrs.stop()

    async def check_releases(self, namespace: str, expected: int) -> None:
        """As many Helm release Secrets as the bench made revisions: more means another
        controller (one without a label selector) released them too, and the figures are void."""
        got = await self.kube.get(
            f"/api/v1/namespaces/{namespace}/secrets", params={"labelSelector": "owner=helm"}
        )
        if len(got["items"]) != expected:
            self.res.notes.append(
                f"{self.side}: {len(got['items'])} Helm release Secrets in {namespace}, "
                f"expected {expected}: another controller on the plane reconciled them?"
            )

    async def wait(self, hrs: ks.Watcher, names: list[str], ok: ks.Check) -> float:
        try:
            return await hrs.until(names, ok, self.cfg.timeout)
        except TimeoutError as e:
            stuck = [m for m in names if not ok(hrs.objects.get(m))]
            lines = [f"{m}: {describe(hrs.objects.get(m))}" for m in stuck[:3]]
            head = str(e).split("\n")[0]
            raise TimeoutError("\n    ".join([head, *lines])) from None

    async def cleanup(self, within: float = 300.0) -> None:
        """Delete the namespaces while the controllers still run (they uninstall and drop their
        finalizers) and wait until they are gone."""
        for ns in self.namespaces:
            with contextlib.suppress(ApiError):
                await self.kube.delete(f"/api/v1/namespaces/{ns}")
        await wait_gone(self.kube, self.namespaces, within)


async def wait_gone(kube: Kube, namespaces: list[str], within: float) -> list[str]:
    deadline = time.perf_counter() + within
    left = list(namespaces)
    while left and time.perf_counter() < deadline:
        for ns in list(left):
            try:
                await kube.get(f"/api/v1/namespaces/{ns}")
            except ApiError as e:
                if e.status == 404:
                    left.remove(ns)
        await asyncio.sleep(0.5)
    return left


async def strip_finalizers(kube: Kube, namespaces: list[str]) -> None:
    """Last resort after the controllers stopped: let the namespaces go."""
    for ns in namespaces:
        for path in (
            f"{HR_API}/namespaces/{ns}/helmreleases",
            f"{SOURCE_API}/namespaces/{ns}/helmcharts",
            f"{SOURCE_API}/namespaces/{ns}/helmrepositories",
        ):
            with contextlib.suppress(ApiError):
                for obj in (await kube.get(path))["items"]:
                    name = obj["metadata"]["name"]
                    await kube.patch(f"{path}/{name}", {"metadata": {"finalizers": None}})


def memory(s: Session, c: ks.Controller) -> None:
    sampler = c.sampler
    sampler.sample()
    s.put(4, "    RSS when idle after start-up (sum)", c.idle_rss_mb, "MB")
    s.put(4, "    start-up (spawn -> all /readyz)", c.startup_s)
    for proc in c.procs:
        s.put(4, f"    {proc.name}, VmHWM", sampler.hwm_kb.get(proc.proc.pid, 0) / 1024, "MB")
    roots = set(sampler.roots)
    others = [kb for pid, kb in sampler.hwm_kb.items() if pid not in roots]
    if others:
        label = f"    {s.side} child processes ({len(others)}), largest VmHWM"
        s.put(4, label, max(others) / 1024, "MB")


async def session(s: Session, workdir: Path) -> None:
    spawn = spawn_tidal if s.side == "tidal" else spawn_flux
    started = time.perf_counter()
    c = spawn(s.kubeconfig, workdir / s.side, s.cfg)
    try:
        await ks.wait_ready(c, started)
        peak = 0
        for step in (s.big, s.fleet):
            try:
                await step(c)
            except Exception as e:  # one failed workload does not hide the other's figures
                s.res.notes.append(f"{s.side} {step.__name__}: {type(e).__name__}: {e}")
            peak = max(peak, c.sampler.peak_sum_kb)
        s.put(4, "3. peak RSS over the run (sum of the controllers)", peak / 1024, "MB")
        memory(s, c)
        try:
            await s.cleanup()
        except Exception as e:
            s.res.notes.append(f"{s.side} cleanup: {type(e).__name__}: {e}")
    except Exception as e:
        s.res.notes.append(f"{s.side}: {type(e).__name__}: {e}")
    finally:
        ks.stop(c)
    for proc in c.procs:
        errors, _ = ks.log_summary(ks.log_tail(proc.log, 50_000_000))
        # Events refused in the namespaces the clean-up deletes are not the workloads' errors.
        errors = [e for e in errors if "unable to create new content in namespace" not in e]
        if errors:
            s.res.notes.append(
                f"{s.side} {proc.name}: {len(errors)} error/warn lines in {proc.log}, e.g.\n    "
                + "\n    ".join(e[:300] for e in errors[:3])
            )
    left = await wait_gone(s.kube, s.namespaces, 1)
    if left:
        await strip_finalizers(s.kube, left)
        left = await wait_gone(s.kube, left, 120)
        if left:
            s.res.notes.append(f"{s.side}: namespaces still terminating: {', '.join(left)}")


# -- the run -----------------------------------------------------------------------------------


def default_kubeconfig() -> Path:
    return plane.default_dir() / "kubeconfig"


async def measure(
    cfg: Config, kubeconfig: Path | None, sides: list[str], work: Path
) -> tuple[Results, dict[str, Session], list[str], Path]:
    """kubeconfig None: on a private plane of the run's own, stopped after."""
    res = Results()
    charts = ChartRepository(work / "charts")
    charts.root.mkdir(parents=True)
    charts.publish(BIG_CHART, "1.0.0", big_chart(cfg.big_objects))
    charts.publish(SMALL_CHART, "1.0.0", small_chart())
    sessions: dict[str, Session] = {}
    suffix = secrets.token_hex(3)
    private = kubeconfig is None
    if kubeconfig is None:
        kubeconfig = ks.start_plane(work / "plane").kubeconfig
    created: list[str] = []
    try:
        async with Kube.from_kubeconfig(kubeconfig) as kube:
            if private:
                await install_all_crds(kube)
            else:
                created = await ensure_crds(kube)
            try:
                with ChartServer(charts.root) as srv:
                    for side in sides:
                        s = Session(cfg, kube, kubeconfig, side, srv.url, res, suffix)
                        sessions[side] = s
                        await session(s, work)
            finally:
                kept = await remove_crds(kube, created)
                if kept:
                    res.notes.append(f"CRDs created by the bench and kept (in use): {kept}")
    finally:
        if private:
            with contextlib.redirect_stdout(sys.stderr):
                plane.down(work / "plane")
    return res, sessions, created, kubeconfig


async def install_all_crds(kube: Kube) -> None:
    """A private plane has none: Flux's source and HelmRelease CRDs, and Kustomization (tidal's
    controller watches it too)."""
    from tidal.install import apply as install

    crds = await asyncio.to_thread(peers.flux_crds)
    names = {c["metadata"]["name"] for c in crds}
    crds += [
        c for c in await asyncio.to_thread(peers.helm_crds) if c["metadata"]["name"] not in names
    ]
    await install.apply_all(kube, crds, within=60)
    for c in crds:
        spec = c["spec"]
        version = next(v["name"] for v in spec["versions"] if v.get("storage"))
        path = f"/apis/{spec['group']}/{version}/{spec['names']['plural']}"
        for _ in range(300):  # Established comes before the storage serves lists
            try:
                await kube.get(path, params={"limit": "1"})
                break
            except ApiError:
                await asyncio.sleep(0.1)


def ensure_built() -> float | None:
    if peers.helm_peers_built():
        return None
    t = time.monotonic()
    with flux_peer._stdout_to_stderr():
        peers.build_helm_peers()
    return time.monotonic() - t


async def bench(cfg: Config, quick: bool, sides: list[str], kubeconfig: Path | None) -> str:
    built = ensure_built() if "flux" in sides else None
    work = Path(tempfile.mkdtemp(prefix="tidal-bench-hr-"))
    t = time.perf_counter()
    load_before = ks.load_average()
    load = ks.Load()
    load.start()
    try:
        res, sessions, created, used = await measure(cfg, kubeconfig, sides, work)
    finally:
        load.stop()
        shutil.rmtree(work, ignore_errors=True)
    windows = {f"{side} {w}": span for side, s in sessions.items() for w, span in s.windows.items()}
    others = ", ".join(f"{k} ({v:.0f}% CPU)" for k, v in sorted(load.others.items())) or "none"
    header = [
        f"machine: {ks.cpu_model()}, {os.cpu_count()} CPUs, {ks.mem_gib():.1f} GiB, "
        f"Linux {platform.release()}",
        f"tidal {tidal_version} (Python {platform.python_version()}); Flux source-controller "
        f"{flux_controllers.SOURCE_CONTROLLER_VERSION} + helm-controller "
        f"{peers.HELM_CONTROLLER_VERSION} ({ks.go_version()}"
        + (f", compiled in this run in {built:.0f} s" if built is not None else "")
        + ")",
        f"both: --concurrent {cfg.concurrent} (every kind), no leader election, events to the API "
        "server only; Flux's client "
        + (
            "at its defaults (--kube-api-qps 50, --kube-api-burst 300)"
            if cfg.flux_client is None
            else f"at --kube-api-qps {cfg.flux_client[0]} --kube-api-burst {cfg.flux_client[1]}"
        )
        + ", tidal's client has no rate limit",
        f"workload: 1 HelmRelease of {cfg.big_objects} ConfigMaps; {cfg.small_releases} "
        "HelmReleases of 2 ConfigMaps, installed, then all their values changed at once; "
        "charts from a local HTTP chart server (HelmRepository, HelmChart per HelmRelease)",
        f"order: {', '.join(sides)}, one after the other on "
        + ("a private plane started for the run" if kubeconfig is None else f"the plane {used}")
        + ", fresh namespaces each"
        + (f"; CRDs created for Flux and removed after: {', '.join(created)}" if created else ""),
        f"the run took {time.perf_counter() - t:.0f} s; load average before: {load_before}, "
        f"after: {ks.load_average()}; controllers' logs in {LOGS}",
        f"largest 1-min load during: {load.during(windows)}",
        f"other processes seen above 20% CPU during the run: {others}",
    ]
    lines = [
        "HelmRelease controller benchmark: tidal vs Flux (source-controller + helm-controller)",
        f"(.venv/bin/python bench/helmrelease.py{''.join(' ' + a for a in sys.argv[1:])})",
        *header,
        "",
        *table(res),
        "",
        "tidal/flux < 1: tidal is faster or smaller. Times run from the create or patch to the",
        "watch event showing Ready=True for the new generation with the release at the expected",
        "revision, so they include the HelmChart (index fetch, chart download, artifact), the",
        "render, the install or upgrade, the release Secret and the status writes.",
        "cpu = CPU seconds of the controller processes (and their children) during the step.",
        "Flux's pick-up of a new HelmRelease holds two round trips of its own: helm-controller's",
        "first reconcile only adds the finalizer and requeues through the rate limiter (at least",
        "750 ms) before it writes the HelmChart, and source-controller does the same with the",
        "HelmChart; tidal adds each finalizer and goes on in the same reconcile.",
        "",
    ]
    if not res.notes:
        return "\n".join([*lines, "problems: none"]) + "\n"
    return "\n".join([*lines, "problems:", *(f"  {n}" for n in res.notes)]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smaller workload")
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="the plane (default: "
        ".testenv/kubeconfig, started with `python -m testenv up` if none runs)",
    )
    parser.add_argument(
        "--controllers",
        default="flux,tidal",
        help="which controllers, in which order; default flux,tidal",
    )
    parser.add_argument(
        "--private-plane",
        action="store_true",
        help="start a plane of the run's own and stop it after (when other controllers without "
        "a label selector, e.g. e2e tests', run on the shared one and would reconcile the "
        "bench's HelmReleases too)",
    )
    parser.add_argument(
        "--flux-kube-api-qps",
        type=int,
        nargs=2,
        metavar=("QPS", "BURST"),
        help="raise Flux's client rate limit (default 50 and 300) to take it out of the times",
    )
    args = parser.parse_args()
    sides = [s for s in args.controllers.split(",") if s]
    if not sides or any(s not in SIDES for s in sides) or len(set(sides)) != len(sides):
        parser.error(f"--controllers takes a comma-separated subset of {', '.join(SIDES)}")
    kubeconfig = args.kubeconfig
    if args.private_plane:
        if kubeconfig is not None:
            parser.error("--private-plane and --kubeconfig exclude each other")
    elif kubeconfig is None:
        kubeconfig = default_kubeconfig()
        running = (
            any(
                what == "apiserver /readyz" and text.endswith(": ok")
                for what, text in plane.status(plane.default_dir())
            )
            if kubeconfig.exists()
            else False
        )
        if not running:
            with contextlib.redirect_stdout(sys.stderr):
                kubeconfig = plane.up(plane.default_dir()).kubeconfig
    cfg = QUICK if args.quick else DEFAULT
    if args.flux_kube_api_qps:
        cfg = dataclasses.replace(cfg, flux_client=tuple(args.flux_kube_api_qps))
    text = asyncio.run(bench(cfg, args.quick, sides, kubeconfig))
    print(text, end="")
    # The recorded result is the full one, with both controllers at their defaults.
    if not args.quick and sides == list(SIDES) and cfg.flux_client is None:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
