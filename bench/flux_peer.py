"""Flux's source-controller and kustomize-controller as local processes, for bench/kustomization.py.

Both binaries come from testenv.peers (compiled from their pinned Go modules and cached; the first
call builds whatever is missing). They run outside a Pod against the plane's kubeconfig: no leader
election, metrics and health on free loopback ports, source-controller's artifact server on
loopback and advertised there, so kustomize-controller downloads artifacts the way it does in a
cluster, over HTTP.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testenv import flux_controllers, peers, plane


@dataclass
class Started:
    name: str
    proc: Popen[bytes]
    health: str  # host:port answering /readyz
    log: Path


def versions() -> str:
    return (
        f"source-controller {flux_controllers.SOURCE_CONTROLLER_VERSION}, "
        f"kustomize-controller {peers.KUSTOMIZE_CONTROLLER_VERSION}"
    )


def ensure_built() -> float | None:
    """Seconds spent compiling the peers now, or None when both were cached."""
    if peers.is_built():
        return None
    t = time.monotonic()
    with _stdout_to_stderr():
        peers.build_peers()
    return time.monotonic() - t


class _stdout_to_stderr:
    """The Go build's progress lines belong with the bench's progress, on stderr."""

    def __enter__(self) -> None:
        sys.stdout.flush()
        self._saved = os.dup(1)
        os.dup2(2, 1)

    def __exit__(self, *exc: object) -> None:
        sys.stdout.flush()
        os.dup2(self._saved, 1)
        os.close(self._saved)


def start(
    kubeconfig: Path,
    data: Path,
    logs: Path,
    *,
    concurrent: int,
    concurrent_ssa: int,
    label_selector: str,
) -> list[Started]:
    """source-controller, then kustomize-controller; both watch only objects matching
    `label_selector`, as tidal does in the same run, so neither sees the other's leftovers."""
    storage, s_metrics, s_health, k_metrics, k_health = plane._free_ports(5)
    (data / "tmp").mkdir(parents=True, exist_ok=True)
    # Both extract and clone into temporary directories; keep them on the data's file system.
    env = {**os.environ, "TMPDIR": str(data / "tmp")}
    selector = [f"--watch-label-selector={label_selector}"]
    logs.mkdir(parents=True, exist_ok=True)
    source_log, kustomize_log = logs / "source-controller.log", logs / "kustomize-controller.log"
    for log in (source_log, kustomize_log):
        log.unlink(missing_ok=True)
    source = flux_controllers.start_source_controller(
        flux_controllers.SourceControllerArgs(
            kubeconfig=kubeconfig,
            storage_path=data / "storage",
            storage_addr=f"127.0.0.1:{storage}",
            metrics_addr=f"127.0.0.1:{s_metrics}",
            health_addr=f"127.0.0.1:{s_health}",
            concurrent=concurrent,
            extra=selector,
        ),
        source_log,
        env,
    )
    kustomize = peers.start_kustomize_controller(
        peers.KustomizeControllerArgs(
            kubeconfig=kubeconfig,
            metrics_addr=f"127.0.0.1:{k_metrics}",
            health_addr=f"127.0.0.1:{k_health}",
            concurrent=concurrent,
            extra=[*selector, f"--concurrent-ssa={concurrent_ssa}"],
        ),
        kustomize_log,
        env,
    )
    return [
        Started("source-controller", source, f"127.0.0.1:{s_health}", source_log),
        Started("kustomize-controller", kustomize, f"127.0.0.1:{k_health}", kustomize_log),
    ]
