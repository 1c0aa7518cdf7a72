"""Benchmark: how fast the drift watch corrects drift, and what it costs the API server at rest.

On one test control plane (a fresh one, or --kubeconfig), one plain-HTTP git server and one
Kustomization (interval 1h) applying --objects ConfigMaps plus one target ConfigMap:

1. idle API load: requests the API server counts (`apiserver_request_total` on its /metrics,
   summed over every series) during --idle seconds with no tidal controller running (the
   plane's own controllers and kwok), with `tidal controller --no-drift-watch`, and with the
   drift watch on; each controller measured after its start-up reconcile settled;
2. correction delay, drift watch on: a merge patch of the target by another field manager
   (`kubectl edit`) until the controller's value is back, and a delete until the object is
   there again with a new uid; median (and max) of --repeat, polled every 20 ms.

    .venv/bin/python bench/drift.py [--objects 1000] [--repeat 5] [--idle 60] [--kubeconfig K]

Prints the report; the controllers' logs stay in $TMPDIR/tidal-bench-drift/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from testenv import plane  # noqa: E402
from testenv.git_server import GitHTTPServer, commit_tree  # noqa: E402
from tidal.api import crd  # noqa: E402
from tidal.install import apply as install  # noqa: E402
from tidal.kube.client import ApiError, Kube  # noqa: E402

# Its own namespace each run, so a reused plane (--kubeconfig) needs no clean-up first.
NS = f"drift-bench-{secrets.token_hex(3)}"
KS = f"/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{NS}/kustomizations"
CM = f"/api/v1/namespaces/{NS}/configmaps"
STORAGE_PORT = plane._free_ports(1)[0]
_SAMPLE = re.compile(r"apiserver_request_total\{(.*)\} (\S+)")


def manifests(n: int) -> str:
    docs = [
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:04d}\n  namespace: {NS}\n"
        f"data:\n  index: '{i}'\n  payload: '{'x' * 64}'\n"
        for i in range(n)
    ]
    docs.append(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: target\n  namespace: {NS}\n"
        "data:\n  color: blue\n"
    )
    return "---\n".join(docs)


def apiserver_metrics(kubeconfig: Path) -> str:
    """The API server's /metrics, fetched as kubectl does (one request, counted like any)."""
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "get", "--raw", "/metrics"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def requests_by_resource(kubeconfig: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in apiserver_metrics(kubeconfig).splitlines():
        m = _SAMPLE.fullmatch(line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m[1]))
            counts[labels.get("resource") or "(non-resource)"] += int(float(m[2]))
    return counts


async def idle_load(kubeconfig: Path, seconds: float) -> tuple[int, Counter[str]]:
    """(the controller's requests, every client's requests by resource) in `seconds`."""
    before, ours = requests_by_resource(kubeconfig), tidal_requests(kubeconfig)
    await asyncio.sleep(seconds)
    after, ours = requests_by_resource(kubeconfig), tidal_requests(kubeconfig) - ours
    delta = after.copy()
    delta.subtract(before)
    delta["(non-resource)"] -= 2  # our own scrapes of /metrics
    return ours, +delta


def tidal_requests(kubeconfig: Path) -> int:
    """Requests the API server dispatched for ServiceAccounts outside kube-system: only the
    tidal controller's (API Priority and Fairness counts them per flow schema)."""
    series = 'apiserver_flowcontrol_dispatched_requests_total{flow_schema="service-accounts"'
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in apiserver_metrics(kubeconfig).splitlines()
        if line.startswith(series)
    )


async def controller_identity(kube: Kube, admin: dict[str, Any], work: Path) -> Path:
    """A kubeconfig for a cluster-admin ServiceAccount, so the controller's requests are told
    apart from the plane's (kwok and the test's client share the admin certificate)."""
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "tidal"}}
    await kube.create(f"/api/v1/namespaces/{NS}/serviceaccounts", sa)
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": NS},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "tidal", "namespace": NS}],
    }
    await kube.create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding)
    token = await kube.create(
        f"/api/v1/namespaces/{NS}/serviceaccounts/tidal/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 7200},
        },
    )
    config = copy.deepcopy(admin)
    config["users"][0]["user"] = {"token": token["status"]["token"]}
    path = work / "tidal.kubeconfig"
    path.write_text(json.dumps(config))
    return path


def scrape(port: int, series: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(series)
    )


@contextlib.contextmanager
def controller(kubeconfig: Path, work: Path, name: str, *flags: str) -> Iterator[int]:
    """`tidal controller` on a fixed storage address and directory, so the artifact the first
    one stored is served to the second as is. Yields the metrics port."""
    metrics, health = plane._free_ports(2)
    log = (work / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "tidal", "--kubeconfig", str(kubeconfig), "controller",
            "--storage-path", str(work / "data"), f"--storage-addr=127.0.0.1:{STORAGE_PORT}",
            f"--metrics-addr=127.0.0.1:{metrics}", f"--health-addr=127.0.0.1:{health}",
            "--log-encoding=console", *flags,
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield metrics
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


async def settled(port: int, *, drift: bool) -> None:
    """The start-up reconcile of the Kustomization is done (and the drift watch is up)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        series = (
            'controller_runtime_reconcile_total{controller="kustomization",result="requeue_after"'
        )
        done = scrape(port, series) >= 1
        if done and (not drift or scrape(port, "tidal_drift_watch_objects") >= 1):
            await asyncio.sleep(5)  # let status writes and events drain
            return
        await asyncio.sleep(0.5)
    raise TimeoutError("controller did not reconcile the Kustomization")


async def get(kube: Kube, path: str) -> dict[str, Any] | None:
    try:
        return await kube.get(path)
    except ApiError as e:
        if e.status == 404:
            return None
        raise


async def poll(kube: Kube, path: str, check: Any, within: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        obj = await get(kube, path)
        if obj is not None and check(obj):
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{path} not corrected within {within}s")


async def delays(kube: Kube, repeat: int) -> tuple[list[float], list[float]]:
    edits, deletes = [], []
    target = f"{CM}/target"
    for i in range(repeat):
        await kube.request(
            "PATCH", target, body={"data": {"color": f"red-{i}"}},
            params={"fieldManager": "kubectl-edit"}, content_type="application/merge-patch+json",
        )  # fmt: skip
        edits.append(await poll(kube, target, lambda o: o["data"] == {"color": "blue"}))
        await asyncio.sleep(1)
        uid = (await kube.get(target))["metadata"]["uid"]
        await kube.delete(target)
        deletes.append(await poll(kube, target, lambda o, u=uid: o["metadata"]["uid"] != u))
        await asyncio.sleep(1)
    return edits, deletes


async def run(args: argparse.Namespace, kubeconfig: Path, work: Path) -> str:
    srv_dir = work / "repos"
    with GitHTTPServer(
        srv_dir, tls=False, basic_auth=False, bearer_auth=False, workdir=work / "srv"
    ) as srv:
        sha = commit_tree(srv.repo_path("drift"), {"apps/all.yaml": manifests(args.objects)})
        async with Kube.from_kubeconfig(kubeconfig) as kube:
            await install.apply_all(kube, [crd.crd(k) for k in crd.KINDS], within=60)
            await kube.create(
                "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
            )
            admin = json.loads(kubeconfig.read_text())  # noqa: ASYNC240 - once, small
            identity = await controller_identity(kube, admin, work)
            await kube.create(
                f"/apis/source.toolkit.fluxcd.io/v1/namespaces/{NS}/gitrepositories",
                {
                    "apiVersion": "source.toolkit.fluxcd.io/v1",
                    "kind": "GitRepository",
                    "metadata": {"name": "repo", "namespace": NS},
                    "spec": {
                        "url": srv.url_for("drift"),
                        "interval": "1h",
                        "ref": {"branch": "main"},
                    },
                },
            )
            await kube.create(
                KS,
                {
                    "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                    "kind": "Kustomization",
                    "metadata": {"name": "apps", "namespace": NS},
                    "spec": {
                        "interval": "1h",
                        "prune": True,
                        "path": "./apps",
                        "sourceRef": {"kind": "GitRepository", "name": "repo"},
                    },
                },
            )
            print(f"revision main@sha1:{sha}; baseline...", file=sys.stderr)
            loads = {"no tidal controller": await idle_load(kubeconfig, args.idle)}
            startup: dict[str, int] = {}
            for name, flags in (("--no-drift-watch", ("--no-drift-watch",)), ("drift watch", ())):
                print(f"{name}...", file=sys.stderr)
                with controller(identity, work, name.strip("-").replace(" ", "-"), *flags) as port:
                    before = tidal_requests(kubeconfig)
                    await settled(port, drift=not flags)
                    startup[name] = tidal_requests(kubeconfig) - before
                    loads[name] = await idle_load(kubeconfig, args.idle)
                    if not flags:
                        edits, deletes = await delays(kube, args.repeat)
            # Kustomization first: its finalizer needs the controller, which is gone by now.
            await kube.patch(f"{KS}/apps", {"metadata": {"finalizers": None}})
            await kube.delete(f"/api/v1/namespaces/{NS}")
            await kube.delete(f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{NS}")
    lines = [
        f"drift watch: {args.objects + 1} ConfigMaps in one Kustomization (interval 1h)",
        "",
        f"API requests in {args.idle:.0f} s idle: the controller's (its ServiceAccount's flow"
        " schema); all clients' (apiserver_request_total), busiest resources",
    ]
    for name, (ours, load) in loads.items():
        top = ", ".join(f"{r} {n}" for r, n in load.most_common(4))
        lines.append(f"  {name:<20} {ours:>5}  {sum(load.values()):>6}   ({top})")
    lines.append(
        "controller's requests from start until settled (start-up reconcile, watches): "
        + ", ".join(f"{name} {n}" for name, n in startup.items())
    )
    lines += [
        "",
        f"correction delay, median of {args.repeat} (max):",
        f"  edit by another manager  {statistics.median(edits):.2f} s  ({max(edits):.2f} s)",
        f"  delete                   {statistics.median(deletes):.2f} s  ({max(deletes):.2f} s)",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--kubeconfig", type=Path, help="an existing plane (default: start one)")
    args = parser.parse_args()
    work = Path(tempfile.gettempdir()) / "tidal-bench-drift"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if args.kubeconfig:
        print(asyncio.run(run(args, args.kubeconfig, work)))
        return
    with contextlib.redirect_stdout(sys.stderr):
        state = plane.up(work / "plane")
    try:
        print(asyncio.run(run(args, Path(state.kubeconfig), work)))
    finally:
        with contextlib.redirect_stdout(sys.stderr):
            plane.down(work / "plane")


if __name__ == "__main__":
    main()
