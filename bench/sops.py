"""Benchmark: SOPS decryption in tidal's Kustomization controller and in Flux's, in one run.

Two controllers on one fresh test control plane with Flux's own CRDs, one plain-HTTP git server,
one after the other, started, watched and measured as bench/kustomization.py does (its code):

- flux: source-controller + kustomize-controller, compiled from their pinned Go modules;
- tidal: one `tidal controller` process (it starts kustomize worker processes).

Both get --concurrent 4 and --concurrent-ssa 4 and watch only objects labelled for them. Each
has its own namespaces (`<side>` for its GitRepository, Kustomizations and the `sops-age`
decryption Secret; `<side>-sops`, `<side>-plain`, `<side>-warm` for what they apply) and its
own git repository, whose files differ only in the namespace written in them:

- sops/: N Secrets (4 data keys each), every file encrypted by the real sops binary for a fresh
  age key with --encrypted-regex '^(data|stringData)$', and a secretGenerator reading a
  sops-encrypted dotenv file (20 variables); the Kustomization has spec.decryption
  {provider: sops, secretRef: {name: sops-age}}, the Secret holding `age.agekey`;
- plain/: the same tree unencrypted, its Kustomization without spec.decryption, so the
  difference between the two is what decryption costs;
- warm/: one ConfigMap and one encrypted Secret, reconciled once (with decryption) before
  anything is timed, so no measurement pays a controller's first-use costs.

Per repeat (K, --repeat, default 3; N is --secrets, default 200), both variants, alternating
which goes first:

1. cold reconcile: from creating the Kustomization (its GitRepository already Ready) until
   Ready=True with lastAppliedRevision at the revision; CPU seconds of the controller processes
   and their children, and the largest sampled sum of their RSS during it;
2. no-op reconcile: from annotating reconcile.fluxcd.io/requestedAt until
   lastHandledReconcileAt equals it and Ready=True;

then both Kustomizations are deleted (prune removes the Secrets) for the next repeat's cold
run. Rows give the median over the repeats, with min and max.

    .venv/bin/python bench/sops.py [--secrets N] [--repeat K] [--controllers flux,tidal]

Writes the report to stdout; the controllers' logs stay in $TMPDIR/tidal-bench-sops/.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


import flux_peer  # noqa: E402
import ks_compare  # noqa: E402
import kustomization as kb  # noqa: E402
from testenv import plane, versions  # noqa: E402
from testenv.git_server import GitHTTPServer, commit_tree, run_git  # noqa: E402
from testenv.sops_tools import AgeKey, sops_encrypt  # noqa: E402
from tidal import __version__ as tidal_version  # noqa: E402
from tidal.kube.client import Kube  # noqa: E402

LOGS = Path(tempfile.gettempdir()) / "tidal-bench-sops"
SECRET_REGEX = ["--encrypted-regex", "^(data|stringData)$"]
CONTROLLERS = ("flux", "tidal")  # the default order
VARIANTS = ("sops", "plain")
KEYS_PER_SECRET = 4
ENV_VARIABLES = 20
Encrypt = Callable[[str, str], bytes]


@dataclass(frozen=True)
class Setup:
    secrets: int
    repeat: int
    timeout: float = 600.0  # seconds any one wait may take before it is reported stuck

    def controller_config(self) -> kb.Config:
        # kb's spawners read only the concurrency from it.
        return kb.Config(0, 0, 0, 0, 0, concurrent=4, concurrent_ssa=4, timeout=self.timeout)


# -- keys and files ----------------------------------------------------------------------------


def sops_encryptor(key: AgeKey) -> Encrypt:
    """encrypt(text, fmt) by the real sops binary for `key`: Secrets (yaml) only under
    data/stringData, as Flux's guide has it; other formats whole."""

    def encrypt(text: str, fmt: str) -> bytes:
        return sops_encrypt(text, fmt, age=[key], args=SECRET_REGEX if fmt == "yaml" else [])

    return encrypt


def value(*seed: object) -> str:
    """A secret-looking value, the same for both sides so their plaintext is identical."""
    return hashlib.sha256("-".join(map(str, seed)).encode()).hexdigest()[:32]


def secret_data(i: int) -> dict[str, str]:
    return {f"key-{k}": value("secret", i, k) for k in range(KEYS_PER_SECRET)}


def env_data() -> dict[str, str]:
    return {f"APP_VAR_{k:02d}": value("env", k) for k in range(ENV_VARIABLES)}


def secret_manifest(i: int, namespace: str) -> str:
    data = "".join(
        f"  {k}: {base64.b64encode(v.encode()).decode()}\n" for k, v in secret_data(i).items()
    )
    return (
        f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: secret-{i:04d}\n"
        f"  namespace: {namespace}\n  labels: {{app: bench}}\ntype: Opaque\ndata:\n{data}"
    )


def kustomization_file(n: int, namespace: str) -> str:
    resources = "".join(f"  - secret-{i:04d}.yaml\n" for i in range(n))
    return (
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources:\n{resources}"
        "generatorOptions:\n  disableNameSuffixHash: true\n"
        f"secretGenerator:\n  - name: app-env\n    namespace: {namespace}\n    envs: [app.env]\n"
    )


def secrets_tree(n: int, namespace: str, encrypt: Encrypt | None = None) -> dict[str, str | bytes]:
    """kustomization.yaml, secret-<i>.yaml and app.env; with `encrypt`, the Secrets and the
    dotenv file encrypted (in parallel: one sops process per file)."""
    plain = {f"secret-{i:04d}.yaml": secret_manifest(i, namespace) for i in range(n)}
    plain["app.env"] = "".join(f"{k}={v}\n" for k, v in env_data().items())
    files: dict[str, str | bytes] = {"kustomization.yaml": kustomization_file(n, namespace)}
    if encrypt is None:
        return {**files, **plain}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        fmts = {rel: "dotenv" if rel.endswith(".env") else "yaml" for rel in plain}
        done = dict(zip(plain, pool.map(encrypt, plain.values(), fmts.values()), strict=True))
    return {**files, **done}


def warm_tree(namespace: str, encrypt: Encrypt) -> dict[str, str | bytes]:
    return {
        "configmap.yaml": (
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: warm\n  namespace: {namespace}\n"
            "data:\n  a: b\n"
        ),
        "secret.yaml": encrypt(secret_manifest(0, namespace), "yaml"),
    }


def prefixed(prefix: str, files: dict[str, str | bytes]) -> dict[str, str | bytes | None]:
    return {f"{prefix}/{rel}": text for rel, text in files.items()}


def sops_version(encrypted: bytes) -> str:
    """The version the sops binary wrote into a file it encrypted (no network check)."""
    found = re.search(rb"^\s*version: (\S+)\s*$", encrypted, re.MULTILINE)
    return found.group(1).decode().strip('"') if found else "?"


# -- the API -----------------------------------------------------------------------------------


def kustomization(side: str, name: str, path: str, decrypt: bool) -> dict[str, Any]:
    ks = kb.kustomization(side, name, "secrets", path)
    if decrypt:
        ks["spec"]["decryption"] = {"provider": "sops", "secretRef": {"name": "sops-age"}}
    return ks


def age_secret(side: str, key: AgeKey) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "sops-age", "namespace": side, "labels": {kb.LABEL: side}},
        "stringData": {"age.agekey": key.key_file()},
    }


async def secrets_in(kube: Kube, namespace: str) -> dict[str, dict[str, Any]]:
    items = (await kube.get(f"/api/v1/namespaces/{namespace}/secrets"))["items"]
    return {s["metadata"]["name"]: s for s in items}


def decoded(obj: dict[str, Any] | None) -> dict[str, str] | None:
    if obj is None:
        return None
    return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}


def gone(obj: dict[str, Any] | None) -> bool:
    return obj is None


# -- results -----------------------------------------------------------------------------------


def table(res: kb.Results, sides: list[str]) -> list[str]:
    rows = res.ordered()
    width = max(len(label) for label, _, _ in rows) + 2
    both = "tidal" in sides and "flux" in sides
    head = f"{'measurement':<{width}}" + "".join(f"{c:>10}" for c in sides)
    head += f"{'t/f':>7}" if both else ""
    lines = [head, "-" * len(head)]
    for label, values, unit in rows:
        line = f"{label:<{width}}" + "".join(f"{kb.fmt(values.get(c), unit):>10}" for c in sides)
        tidal, flux = values.get("tidal"), values.get("flux")
        # A ratio of differences is meaningless once one of them is negative (noise).
        if both and tidal is not None and flux is not None and tidal >= 0 and flux > 0:
            line += f"{kb.ratio(tidal, flux):>7}"
        lines.append(line.rstrip())
    return lines


def spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


@dataclass
class Run:
    """One measured reconcile."""

    seconds: float
    cpu_s: float
    peak_mb: float
    steps: dict[str, float] = field(default_factory=dict)


def cold_label(variant: str, setup: Setup) -> str:
    what = "SOPS-encrypted" if variant == "sops" else "plain"
    number = "1" if variant == "sops" else "2"
    return (
        f"{number}. cold, {setup.secrets} {what} Secrets + 1 generated (median of {setup.repeat})"
    )


def noop_label(variant: str, setup: Setup) -> str:
    what = "encrypted" if variant == "sops" else "plain"
    number = "3" if variant == "sops" else "4"
    return f"{number}. no-op, the {what} tree (median of {setup.repeat})"


SECTION = {("cold", "sops"): 1, ("cold", "plain"): 2, ("noop", "sops"): 3, ("noop", "plain"): 4}
MEMORY = 8


# -- measurements ------------------------------------------------------------------------------


@dataclass
class Shared:
    setup: Setup
    kube: Kube
    kubeconfig: Path
    work: Path
    srv: GitHTTPServer
    key: AgeKey
    res: kb.Results
    tokens: int = 0

    def token(self) -> str:
        # A fresh, RFC 3339-shaped value per request, as `flux reconcile` writes.
        self.tokens += 1
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{self.tokens:09d}Z"


@dataclass
class Side:
    """One controller (tidal, or Flux's pair) doing every measurement in its own namespaces."""

    p: Shared
    side: str
    revision: str
    c: kb.Controller
    ks: kb.Watcher
    runs: dict[tuple[str, str], list[Run]] = field(default_factory=dict)
    left: list[str] = field(default_factory=list)

    def put(self, section: int, label: str, value: float | None, unit: str = "s") -> None:
        self.p.res.put(section, label, self.side, value, unit)

    def note(self, text: str) -> None:
        self.p.res.notes.append(f"{self.side}: {text}")

    def path(self, name: str) -> str:
        return f"{kb.ks_collection(self.side)}/{name}"

    async def measured(self, name: str, start: Callable[[], Awaitable[Any]], ok: kb.Check) -> Run:
        """Run `start` and wait for `ok` on Kustomization `name`, with its CPU and peak RSS."""
        sampler = self.c.sampler
        # The sampler thread may write its older peak back once if it is mid-sample now; 50 ms
        # apart, that is rare enough not to matter.
        sampler.peak_sum_kb = 0
        cpu0 = sampler.cpu_s()
        t0 = time.perf_counter()
        await start()
        done = await self.ks.until([name], ok, self.p.setup.timeout)
        cpu = sampler.cpu_s() - cpu0
        sampler.sample()
        return Run(done - t0, cpu, sampler.peak_sum_kb / 1024, self.ks.steps(name, t0, done))

    async def cold(self, variant: str) -> Run:
        body = kustomization(self.side, variant, f"./{variant}", decrypt=variant == "sops")
        collection = kb.ks_collection(self.side)
        run = await self.measured(
            variant,
            lambda: self.p.kube.create(collection, body),
            kb.applied(self.revision),
        )
        self.runs.setdefault(("cold", variant), []).append(run)
        return run

    async def noop(self, variant: str) -> Run:
        token = self.p.token()
        run = await self.measured(
            variant,
            lambda: kb.annotate(self.p.kube, self.path(variant), token),
            kb.handled(token),
        )
        self.runs.setdefault(("noop", variant), []).append(run)
        return run

    async def remove(self, variant: str) -> None:
        """Delete the Kustomization; prune takes its Secrets with it."""
        namespace = f"{self.side}-{variant}"
        await self.p.kube.delete(self.path(variant))
        await self.ks.until([variant], gone, self.p.setup.timeout)
        deadline = time.perf_counter() + 60
        while await secrets_in(self.p.kube, namespace):
            if time.perf_counter() > deadline:
                self.note(f"{namespace} still holds Secrets a minute after the delete; removed")
                await self.p.kube.delete(f"/api/v1/namespaces/{namespace}/secrets")
                deadline = time.perf_counter() + 60
            await asyncio.sleep(0.2)

    async def check(self, variant: str) -> None:
        """The Secrets arrived, decrypted."""
        n = self.p.setup.secrets
        got = await secrets_in(self.p.kube, f"{self.side}-{variant}")
        names = {f"secret-{i:04d}" for i in range(n)} | {"app-env"}
        if set(got) != names:
            self.note(f"{variant}: expected {len(names)} Secrets, found {len(got)}")
            return
        for i in {0, n - 1}:
            if decoded(got[f"secret-{i:04d}"]) != secret_data(i):
                self.note(f"{variant}: secret-{i:04d} holds other data than the plaintext")
        if decoded(got["app-env"]) != env_data():
            self.note(f"{variant}: app-env holds other data than the plaintext")

    async def run(self) -> None:
        p, side = self.p, self.side
        await p.kube.create(f"/api/v1/namespaces/{side}/secrets", age_secret(side, p.key))
        t0 = time.perf_counter()
        body = kustomization(side, "warm", "./warm", decrypt=True)
        await p.kube.create(kb.ks_collection(side), body)
        await self.ks.until(["warm"], kb.applied(self.revision), p.setup.timeout)
        self.put(MEMORY, "    (before: warm-up, 1 ConfigMap + 1 encrypted Secret)",
                 time.perf_counter() - t0)  # fmt: skip
        for r in range(p.setup.repeat):
            # Alternate which variant goes first, so neither always follows the other's work.
            order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                print(f"{side}: cold {variant} ({r + 1}/{p.setup.repeat}) ...", file=sys.stderr)
                await self.cold(variant)
                if r == 0:
                    await self.check(variant)
            for variant in order:
                await self.noop(variant)
            if r < p.setup.repeat - 1:
                for variant in order:
                    await self.remove(variant)
        await self.check("sops")
        self.report()
        await self.snapshot()

    async def snapshot(self) -> None:
        """What the controller left on the encrypted tree's Kustomization and a Secret it
        applied, normalized as bench/kustomization.py compares them."""
        kube, side = self.p.kube, self.side
        obj = await kube.get(self.path("sops"))
        for c in (obj.get("status") or {}).get("conditions") or []:
            message = ks_compare.normalize(str(c.get("message", "")), side)
            self.left.append(f"condition {c['type']}={c['status']} {c.get('reason')}: {message}")
        events = (await kube.get(f"/api/v1/namespaces/{side}/events"))["items"]
        seen: dict[str, int] = {}
        for e in events:
            if (e.get("involvedObject") or {}).get("name") != "sops":
                continue
            message = ks_compare.normalize(str(e.get("message", "")), side).replace("\n", " | ")
            line = f"event {e.get('type')} {e.get('reason')}: {message[:160]}"
            seen[line] = seen.get(line, 0) + int(e.get("count") or 1)
        self.left += [f"{line} (x{n})" for line, n in seen.items()]
        secret = await kube.get(f"/api/v1/namespaces/{side}-sops/secrets/secret-0000")
        managers = [
            f"{m.get('manager')} ({m.get('operation')})"
            for m in secret["metadata"].get("managedFields") or []
        ]
        self.left.append(f"Secret secret-0000 field managers: {', '.join(managers)}")
        labels = secret["metadata"].get("labels") or {}
        self.left.append(f"Secret secret-0000 labels: {', '.join(sorted(labels))}")

    def report(self) -> None:
        setup = self.p.setup
        for (kind, variant), runs in self.runs.items():
            section = SECTION[(kind, variant)]
            label = cold_label(variant, setup) if kind == "cold" else noop_label(variant, setup)
            median, low, high = spread([r.seconds for r in runs])
            self.put(section, label, median)
            steps: dict[str, list[float]] = {}
            for run in runs:
                for step, seconds in run.steps.items():
                    steps.setdefault(step, []).append(seconds)
            for step, values in steps.items():
                self.put(section, f"    of which {step}", statistics.median(values))
            self.put(section, "    CPU time (all processes)",
                     statistics.median(r.cpu_s for r in runs))  # fmt: skip
            self.put(section, "    peak RSS during it (sum)", max(r.peak_mb for r in runs), "MB")
            if len(runs) > 1:
                self.put(section, "    min", low)
                self.put(section, "    max", high)
        for kind in ("cold", "noop"):
            sops, plain = self.runs.get((kind, "sops")), self.runs.get((kind, "plain"))
            if not sops or not plain:
                continue
            section, what = (6, "cold (1 - 2)") if kind == "cold" else (7, "no-op (3 - 4)")
            self.put(section, f"{section}. encrypted minus plain, {what}",
                     statistics.median(r.seconds for r in sops)
                     - statistics.median(r.seconds for r in plain))  # fmt: skip
            self.put(section, "    CPU time",
                     statistics.median(r.cpu_s for r in sops)
                     - statistics.median(r.cpu_s for r in plain))  # fmt: skip
        self.memory()

    def memory(self) -> None:
        s = self.c.sampler
        s.sample()
        for proc in self.c.procs:
            label = (
                "    Flux source-controller"
                if proc.name == "source-controller"
                else "    tidal controller / Flux kustomize-controller"
            )
            self.put(MEMORY, f"{label}, VmHWM", s.hwm_kb.get(proc.proc.pid, 0) / 1024, "MB")
        workers = s.workers()
        if workers:
            self.put(MEMORY, f"    tidal kustomize workers ({len(workers)}), largest VmHWM",
                     max(workers.values()) / 1024, "MB")  # fmt: skip
        self.put(MEMORY, "    RSS when idle after start-up (sum)", self.c.idle_rss_mb, "MB")
        self.put(MEMORY, "    start-up (spawn -> all /readyz)", self.c.startup_s)
        self.put(MEMORY, "8. whole session: CPU time (all processes)", s.cpu_s())


async def session(p: Shared, side: str, revision: str, cfg: kb.Config) -> Side:
    ks = kb.Watcher(p.kube, kb.ks_collection(side))
    repos = kb.Watcher(p.kube, kb.repo_collection(side))
    await ks.start()
    await repos.start()
    started = time.perf_counter()
    spawn = kb.spawn_tidal if side == "tidal" else kb.spawn_flux
    c = spawn(p.kubeconfig, p.work / side, cfg)
    s = Side(p, side, revision, c, ks)
    try:
        await kb.wait_ready(c, started)
        url = p.srv.url_for(f"secrets-{side}")
        await p.kube.create(kb.repo_collection(side), kb.git_repository(side, "secrets", url))
        await repos.until(["secrets"], kb.has_artifact(revision), p.setup.timeout)
        await s.run()
    except Exception as e:
        p.res.notes.append(f"{side}: {type(e).__name__}: {e}")
        if s.runs:  # what was measured before the failure still counts
            with contextlib.suppress(Exception):
                s.report()
    finally:
        kb.stop(c)
        await ks.stop()
        await repos.stop()
    return s


def build_repos(
    setup: Setup, srv: GitHTTPServer, sides: list[str], key: AgeKey
) -> tuple[dict[str, str], float, str]:
    """Per controller, one repository (sops/, plain/, warm/). Returns each side's revision,
    the seconds sops took and its version."""
    encrypt = sops_encryptor(key)
    revisions = {}
    t0 = time.perf_counter()
    version = "?"
    for side in sides:
        encrypted = secrets_tree(setup.secrets, f"{side}-sops", encrypt)
        first = encrypted["secret-0000.yaml"]
        version = sops_version(first) if isinstance(first, bytes) else "?"
        files = {
            **prefixed("sops", encrypted),
            **prefixed("plain", secrets_tree(setup.secrets, f"{side}-plain")),
            **prefixed("warm", warm_tree(f"{side}-warm", encrypt)),
        }
        sha = commit_tree(srv.repo_path(f"secrets-{side}"), files, "secrets")
        revisions[side] = f"main@sha1:{sha}"
    return revisions, time.perf_counter() - t0, version


async def measure(
    setup: Setup, work: Path, sides: list[str]
) -> tuple[Shared, dict[str, Side], float, str]:
    key = AgeKey.generate()
    cfg = setup.controller_config()
    sessions: dict[str, Side] = {}
    state = kb.start_plane(work / "plane")
    try:
        with GitHTTPServer(
            work / "repos", tls=False, basic_auth=False, bearer_auth=False, workdir=work / "srv"
        ) as srv:
            print("encrypting with sops ...", file=sys.stderr, flush=True)
            revisions, sops_s, version = build_repos(setup, srv, sides, key)
            async with Kube.from_kubeconfig(state.kubeconfig) as kube:
                await kb.install_crds(kube)
                for side in sides:
                    for ns in (side, *(f"{side}-{v}" for v in (*VARIANTS, "warm"))):
                        await kb.create_namespace(kube, ns)
                p = Shared(setup, kube, state.kubeconfig, work, srv, key, kb.Results())
                for side in sides:
                    sessions[side] = await session(p, side, revisions[side], cfg)
    finally:
        with contextlib.redirect_stdout(sys.stderr):
            plane.down(work / "plane")
    return p, sessions, sops_s, version


# -- logs --------------------------------------------------------------------------------------


def log_lines(sessions: dict[str, Side]) -> tuple[list[str], list[str]]:
    """Per controller: its Kustomizations' "Reconciliation finished" durations, and any
    error or warning line, or line about decryption."""
    out, notes = [], []
    for side, s in sessions.items():
        for proc in s.c.procs:
            text = kb.log_tail(proc.log, 50_000_000)
            errors, finished = kb.log_summary(text)
            if errors:
                notes.append(
                    f"{side} {proc.name}: {len(errors)} error/warn lines in {proc.log}, e.g.\n    "
                    + "\n    ".join(e[:400] for e in errors[:5])
                )
            about = [line for line in text.splitlines() if mentions_decryption(line)]
            if about:
                notes.append(
                    f"{side} {proc.name}: {len(about)} lines about decryption, e.g.\n    "
                    + "\n    ".join(line[:400] for line in about[:3])
                )
            for name, took in finished.items():
                out.append(f"  {side} {name}: " + ", ".join(kb.fmt(t, "s") for t in took))
    return out, notes


def mentions_decryption(line: str) -> bool:
    """A log line whose message or error (not the names in it: a Kustomization is called
    "sops") is about decryption."""
    try:
        entry = json.loads(line)
    except ValueError:
        return False
    if not isinstance(entry, dict):
        return False
    text = f"{entry.get('msg', '')} {entry.get('error', '')}"
    return re.search(r"decrypt|sops|age key|\bage\b", text, re.IGNORECASE) is not None


# -- the run -----------------------------------------------------------------------------------


def report(
    setup: Setup, p: Shared, sessions: dict[str, Side], sides: list[str], header: list[str]
) -> str:
    finished, notes = log_lines(sessions)
    p.res.notes.extend(notes)
    argv = ["--secrets", str(setup.secrets), "--repeat", str(setup.repeat)]
    if sides != list(CONTROLLERS):
        argv += ["--controllers", ",".join(sides)]
    lines = [
        "SOPS decryption benchmark: tidal vs Flux (source-controller + kustomize-controller)",
        f"(.venv/bin/python bench/sops.py {' '.join(argv)})",
        *header,
        "",
        *table(p.res, sides),
        "",
        "t/f = tidal / flux (< 1: tidal is faster or smaller). Times run from the create or",
        "annotation to the watch event showing the result. 'of which' rows split them by the",
        "Reconciling condition's messages (pick-up -> Fetching, artifact -> Building, build ->",
        "Detecting drift, apply -> Ready; '+' joins steps not visible apart); decryption is in",
        "'build'. Sections 6 and 7 are the differences: decryption's own cost. Flux's pick-up",
        "of a new Kustomization holds a round trip of its own: the first reconcile only adds the",
        "finalizer and requeues through the rate limiter (at least --min-retry-delay, 750 ms).",
        "",
        "what each controller left on Kustomization sops and Secret secret-0000 (normalized):",
        *(f"  {side} {line}" for side, s in sessions.items() for line in s.left),
        "",
        "controllers' logs, Reconciliation finished in:",
        *finished,
        "",
    ]
    if not p.res.notes:
        return "\n".join([*lines, "problems: none"]) + "\n"
    return "\n".join([*lines, "problems:", *(f"  {n}" for n in p.res.notes)]) + "\n"


async def bench(setup: Setup, sides: list[str]) -> str:
    built = flux_peer.ensure_built() if "flux" in sides else None
    # kb's spawners write the controllers' logs where its LOGS says: keep ours apart.
    kb.LOGS = LOGS
    work, where = kb.work_root()
    t = time.perf_counter()
    load_before = kb.load_average()
    try:
        p, sessions, sops_s, version = await measure(setup, work, sides)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    startup = ", ".join(f"{s} {kb.fmt(x.c.startup_s, 's')}" for s, x in sessions.items())
    header = [
        f"machine: {kb.cpu_model()}, {os.cpu_count()} CPUs, {kb.mem_gib():.1f} GiB, "
        f"Linux {platform.release()}",
        f"tidal {tidal_version} (Python {platform.python_version()}); Flux "
        f"{flux_peer.versions()} ({kb.go_version()}"
        + (f", compiled in this run in {built:.0f} s" if built is not None else "")
        + f"); sops {version}; kube-apiserver {versions.KUBERNETES} (testenv); "
        f"git {run_git(['--version']).split()[-1]}",
        "both controllers: --concurrent 4 --concurrent-ssa 4; Flux's client at its defaults "
        "(--kube-api-qps 50, --kube-api-burst 300), tidal's client has no rate limit",
        f"workload: {setup.secrets} Secrets of {KEYS_PER_SECRET} data keys (a file each, sops "
        f"--age --encrypted-regex '^(data|stringData)$') + a secretGenerator of a sops dotenv "
        f"file ({ENV_VARIABLES} variables); encrypting both sides' trees took {sops_s:.1f} s",
        f"order: {', '.join(sides)}, one plane (Flux's CRDs) and one git server; each controller "
        f"started fresh (start-up: {startup}) and warmed up once; everything on {where}",
        f"the run took {time.perf_counter() - t:.0f} s; load average before: {load_before}, "
        f"after: {kb.load_average()}; controllers' logs in {LOGS}",
    ]
    return report(setup, p, sessions, sides, header)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--secrets", type=int, default=200, help="Secrets per tree (200)")
    parser.add_argument("--repeat", type=int, default=3, help="cold and no-op runs per variant (3)")
    parser.add_argument(
        "--controllers",
        default="flux,tidal",
        help="which controllers, in which order; default flux,tidal",
    )
    args = parser.parse_args()
    sides = [s for s in args.controllers.split(",") if s]
    if not sides or any(s not in CONTROLLERS for s in sides) or len(set(sides)) != len(sides):
        parser.error(f"--controllers takes a comma-separated subset of {', '.join(CONTROLLERS)}")
    if args.secrets < 1 or args.repeat < 1:
        parser.error("--secrets and --repeat take a positive number")
    text = asyncio.run(bench(Setup(args.secrets, args.repeat), sides))
    print(text, end="")


if __name__ == "__main__":
    main()
