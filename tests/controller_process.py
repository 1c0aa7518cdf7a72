"""`tidal controller` as a user runs it, for e2e tests: a foreground process on free loopback
ports, its log in a file, stopped (and reaped) when the test module is done."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningController:
    process: subprocess.Popen[bytes]
    storage: Path
    log: Path
    storage_port: int
    metrics_port: int

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def run_controller(kubeconfig: Path, work: Path, *flags: str) -> Iterator[RunningController]:
    """Start the controller with its state under `work`; extra `flags` are appended."""
    storage_port, metrics_port, health_port = free_port(), free_port(), free_port()
    log = work / "controller.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "tidal", "--kubeconfig", str(kubeconfig), "controller",
                "--storage-path", str(work / "data"),
                "--storage-addr", f"127.0.0.1:{storage_port}",
                "--metrics-addr", f"127.0.0.1:{metrics_port}",
                "--health-addr", f"127.0.0.1:{health_port}",
                "--git-cache-path", str(work / "git"),
                "--log-encoding", "console",
                *flags,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        yield RunningController(process, work / "data", log, storage_port, metrics_port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
