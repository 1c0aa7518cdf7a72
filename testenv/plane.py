"""Start, probe and stop one test control plane on loopback.

A plane lives in one directory: certificates, etcd data, logs, the admin kubeconfig and
state.json (ports and PIDs). `down` stops exactly the PIDs recorded there, after checking that
each still runs the binary we started, so a recycled PID is never killed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from testenv import build, pki, versions

NODE_COUNT = 2
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"


class PlaneError(RuntimeError):
    pass


@dataclass
class Process:
    name: str
    pid: int
    binary: str


@dataclass
class State:
    dir: str
    etcd_port: int
    etcd_peer_port: int
    apiserver_port: int
    processes: list[Process] = field(default_factory=list)
    versions: str = versions.cache_key()

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        return Path(self.dir) / "kubeconfig"

    def save(self) -> None:
        (Path(self.dir) / "state.json").write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, directory: Path) -> State:
        raw = json.loads((directory / "state.json").read_text())
        raw["processes"] = [Process(**p) for p in raw["processes"]]
        # A state file written by an older testenv must still let `down` stop its processes.
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


def _free_ports(n: int) -> list[int]:
    # Hold all sockets open until every port is chosen so the n ports are distinct.
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def kubeconfig_yaml(server: str, ca_pem: bytes, cert: pki.KeyPair, user: str) -> str:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    # JSON is YAML; writing it avoids needing a YAML emitter here.
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "testenv",
                    "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate-data": b64(cert.cert_pem),
                        "client-key-data": b64(cert.key_pem),
                    },
                }
            ],
            "contexts": [{"name": "testenv", "context": {"cluster": "testenv", "user": user}}],
            "current-context": "testenv",
        },
        indent=2,
    )


class _Api:
    """Just enough of an HTTPS client to wait for readiness without importing a k8s library."""

    def __init__(self, server: str, directory: Path) -> None:
        self.server = server
        self.ctx = ssl.create_default_context(cafile=str(directory / "pki" / "ca.crt"))
        self.ctx.load_cert_chain(directory / "pki" / "admin.crt", directory / "pki" / "admin.key")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.server + path, context=self.ctx, timeout=5) as r:  # noqa: S310
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except (urllib.error.URLError, OSError):
            return 0, b""

    def post(self, path: str, body: dict[str, Any]) -> int:
        req = urllib.request.Request(  # noqa: S310
            self.server + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=5) as r:  # noqa: S310
                return int(r.status)
        except urllib.error.HTTPError as e:
            return e.code


def _wait(what: str, check: Callable[[], bool], timeout: float, procs: list[Process]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        for p in procs:
            if not _alive(p):
                raise PlaneError(f"{p.name} exited while waiting for {what}; see its log")
        time.sleep(0.1)
    raise PlaneError(f"timed out after {timeout:.0f}s waiting for {what}")


def _alive(p: Process) -> bool:
    try:
        cmdline = Path(f"/proc/{p.pid}/cmdline").read_bytes()
    except OSError:
        return False
    stat = Path(f"/proc/{p.pid}/stat").read_text()
    # A zombie still has a cmdline until reaped; it is not running our binary any more.
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        return False
    return cmdline.split(b"\0", 1)[0].decode(errors="replace") == p.binary


def _spawn(name: str, binary: Path, args: list[str], directory: Path) -> Process:
    log = (directory / "logs" / f"{name}.log").open("ab")
    # A new session detaches the process from our terminal so `up` can return and Ctrl-C in the
    # shell does not take the plane down.
    proc = subprocess.Popen(
        [str(binary), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=directory,
    )
    log.close()
    return Process(name=name, pid=proc.pid, binary=str(binary))


def _kwok_node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/role": "agent",
                "type": "kwok",
            },
        },
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "nodeInfo": {
                "architecture": "amd64",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
                "operatingSystem": "linux",
            },
        },
    }


def default_dir() -> Path:
    return Path(".testenv")


def _write_pki(directory: Path, apiserver_port: int) -> pki.CertificateAuthority:
    pdir = directory / "pki"
    pdir.mkdir(parents=True)
    ca = pki.CertificateAuthority()
    ca.pair.write(pdir, "ca")
    ca.issue(
        "kube-apiserver",
        server=True,
        dns_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
        ips=("127.0.0.1", "10.96.0.1"),
    ).write(pdir, "apiserver")
    sa_key, sa_pub = pki.service_account_keys()
    (pdir / "sa.key").write_bytes(sa_key)
    (pdir / "sa.pub").write_bytes(sa_pub)
    (pdir / "sa.key").chmod(0o600)
    server = f"https://127.0.0.1:{apiserver_port}"
    users = {
        # system:masters for the admin and kwok; the built-in identities get the built-in RBAC
        # roles, so the controller-manager and scheduler run with exactly their real rights.
        "admin": ("tidal-admin", ("system:masters",)),
        "kwok": ("kwok", ("system:masters",)),
        "controller-manager": ("system:kube-controller-manager", ()),
        "scheduler": ("system:kube-scheduler", ()),
    }
    for stem, (cn, orgs) in users.items():
        pair = ca.issue(cn, organizations=orgs, client=True)
        pair.write(pdir, stem)
        path = directory / "kubeconfig" if stem == "admin" else pdir / f"{stem}.kubeconfig"
        path.write_text(kubeconfig_yaml(server, ca.pair.cert_pem, pair, cn))
        path.chmod(0o600)
    return ca


def up(directory: Path | None = None, *, timeout: float = 90.0, attempts: int = 2) -> State:
    """Start a plane in `directory`. A component that exits during start-up is most likely a
    port taken between choosing it and binding it (planes starting side by side), so the
    start is retried once on fresh ports."""
    for attempt in range(1, attempts + 1):
        try:
            return _up_once(directory, timeout=timeout)
        except PlaneError as e:
            if "exited while waiting" not in str(e) or attempt == attempts:
                raise
            print(f"testenv: {e}; retrying on new ports", flush=True)
    raise AssertionError("unreachable")


def _up_once(directory: Path | None, *, timeout: float) -> State:
    directory = (directory or default_dir()).resolve()
    if (directory / "state.json").exists():
        state = State.load(directory)
        if all(_alive(p) for p in state.processes):
            raise PlaneError(f"a plane already runs in {directory}; run `down` first")
        down(directory)
    if not build.plane_built():
        raise PlaneError("the control plane is not built; run `python -m testenv build` first")
    bins = build.bin_dir()
    shutil.rmtree(directory, ignore_errors=True)
    (directory / "logs").mkdir(parents=True)
    etcd_port, peer_port, api_port = _free_ports(3)
    state = State(str(directory), etcd_port, peer_port, api_port)
    _write_pki(directory, api_port)
    p = directory / "pki"
    started = time.monotonic()
    try:
        state.processes.append(
            _spawn(
                "etcd",
                bins / "etcd",
                [
                    "--name=testenv",
                    f"--data-dir={directory / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                    f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                    f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                    f"--initial-cluster=testenv=http://127.0.0.1:{peer_port}",
                    # A throwaway test store: durability costs seconds per test run.
                    "--unsafe-no-fsync",
                    "--log-level=warn",
                    "--listen-metrics-urls=",
                ],
                directory,
            )
        )
        state.save()
        state.processes.append(
            _spawn(
                "kube-apiserver",
                bins / "kube-apiserver",
                [
                    f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={api_port}",
                    f"--tls-cert-file={p / 'apiserver.crt'}",
                    f"--tls-private-key-file={p / 'apiserver.key'}",
                    f"--client-ca-file={p / 'ca.crt'}",
                    f"--service-account-key-file={p / 'sa.pub'}",
                    f"--service-account-signing-key-file={p / 'sa.key'}",
                    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                    "--api-audiences=https://kubernetes.default.svc.cluster.local",
                    "--authorization-mode=Node,RBAC",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    "--allow-privileged=true",
                    "--profiling=false",
                    "--endpoint-reconciler-type=none",
                    f"--cert-dir={p}",
                ],
                directory,
            )
        )
        state.save()
        api = _Api(state.server, directory)
        common = ["--bind-address=127.0.0.1", "--secure-port=0", "--leader-elect=false"]
        # The other components retry until the apiserver answers, so start them now and let
        # their start-up overlap with the apiserver's.
        state.processes.append(
            _spawn(
                "kube-controller-manager",
                bins / "kube-controller-manager",
                [
                    *common,
                    f"--kubeconfig={p / 'controller-manager.kubeconfig'}",
                    f"--authentication-kubeconfig={p / 'controller-manager.kubeconfig'}",
                    f"--authorization-kubeconfig={p / 'controller-manager.kubeconfig'}",
                    "--use-service-account-credentials=true",
                    f"--service-account-private-key-file={p / 'sa.key'}",
                    f"--root-ca-file={p / 'ca.crt'}",
                    f"--cluster-signing-cert-file={p / 'ca.crt'}",
                    f"--cluster-signing-key-file={p / 'ca.key'}",
                    f"--service-cluster-ip-range={SERVICE_CIDR}",
                    f"--cluster-cidr={POD_CIDR}",
                    "--allocate-node-cidrs=false",
                    "--controllers=*",
                    "--concurrent-deployment-syncs=10",
                    "--concurrent-replicaset-syncs=10",
                    "--concurrent-namespace-syncs=10",
                    # kwok renews the fake nodes' leases; on a starved 2-core machine a late
                    # renewal must not turn a node NotReady and every pod on it unready.
                    "--node-monitor-grace-period=3m",
                ],
                directory,
            )
        )
        state.processes.append(
            _spawn(
                "kube-scheduler",
                bins / "kube-scheduler",
                [
                    *common,
                    f"--kubeconfig={p / 'scheduler.kubeconfig'}",
                    f"--authentication-kubeconfig={p / 'scheduler.kubeconfig'}",
                    f"--authorization-kubeconfig={p / 'scheduler.kubeconfig'}",
                ],
                directory,
            )
        )
        state.processes.append(
            _spawn(
                "kwok",
                bins / "kwok",
                [
                    f"--kubeconfig={p / 'kwok.kubeconfig'}",
                    f"--config={bins / build.KWOK_STAGES}",
                    "--manage-all-nodes=false",
                    "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                    "--disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom",
                    "--node-ip=10.244.0.1",
                    f"--cidr={POD_CIDR}",
                    # kwok's own port-forward/exec server is not needed; without it, one
                    # fewer port can collide with a plane starting beside this one.
                    "--server-address=",
                ],
                directory,
            )
        )
        state.save()
        _wait(
            "kube-apiserver /readyz", lambda: api.get("/readyz")[0] == 200, timeout, state.processes
        )
        for i in range(NODE_COUNT):
            status = api.post("/api/v1/nodes", _kwok_node(f"kwok-node-{i}"))
            if status not in (201, 409):
                raise PlaneError(f"creating node kwok-node-{i} answered HTTP {status}")

        def nodes_ready() -> bool:
            code, body = api.get("/api/v1/nodes")
            if code != 200:
                return False
            items = json.loads(body)["items"]
            ready = [
                n
                for n in items
                for c in n.get("status", {}).get("conditions", [])
                if c["type"] == "Ready" and c["status"] == "True"
            ]
            return len(ready) >= NODE_COUNT

        _wait("Ready nodes", nodes_ready, timeout, state.processes)
        _wait(
            "the default ServiceAccount",
            lambda: api.get("/api/v1/namespaces/default/serviceaccounts/default")[0] == 200,
            timeout,
            state.processes,
        )
    except BaseException:
        down(directory, remove=False)
        raise
    state.save()
    print(f"control plane ready in {time.monotonic() - started:.1f}s at {state.server}")
    return state


def _stop(p: Process, grace: float) -> None:
    if not _alive(p):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _alive(p) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(p):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
    # Reap it if it is our child; `down` from another process finds no child, which is fine.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(p.pid, os.WNOHANG)


def down(directory: Path | None = None, *, remove: bool = True) -> None:
    directory = (directory or default_dir()).resolve()
    if not (directory / "state.json").exists():
        if remove:
            shutil.rmtree(directory, ignore_errors=True)
        return
    state = State.load(directory)
    # Clients first, etcd last, so nothing logs a storm of connection errors on the way down.
    for p in reversed(state.processes):
        _stop(p, grace=5.0)
    if remove:
        shutil.rmtree(directory, ignore_errors=True)


def status(directory: Path | None = None) -> Iterator[tuple[str, str]]:
    directory = (directory or default_dir()).resolve()
    if not (directory / "state.json").exists():
        yield ("plane", f"not running (no state in {directory})")
        return
    state = State.load(directory)
    for p in state.processes:
        yield (p.name, f"running, pid {p.pid}" if _alive(p) else f"stopped (was pid {p.pid})")
    code, _ = _Api(state.server, directory).get("/readyz")
    yield ("apiserver /readyz", f"{state.server}: " + ("ok" if code == 200 else f"HTTP {code}"))
    yield ("kubeconfig", str(state.kubeconfig))
