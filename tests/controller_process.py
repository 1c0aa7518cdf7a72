"""`tidal controller` as a user runs it, for e2e tests: a foreground process on free loopback
ports, its log in a file, stopped (and reaped) when the test module is done."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tidal.kube.client import Kube


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
def run_controller(
    kubeconfig: Path, work: Path, *flags: str, env: Mapping[str, str] | None = None
) -> Iterator[RunningController]:
    """Start the controller with its state under `work`; extra `flags` are appended, and `env`
    is set on top of this process's environment."""
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
            env=None if env is None else {**os.environ, **env},
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


def controller_fixture(*flags: str) -> Any:
    """A module-scoped pytest fixture running `tidal controller` with `flags` for the whole
    test module (assign it to a module-level name, e.g. `controller = controller_fixture()`)."""

    @pytest.fixture(scope="module")
    def controller(
        cluster: Any, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[RunningController]:
        with run_controller(
            cluster.kubeconfig, tmp_path_factory.mktemp("controller"), *flags
        ) as running:
            yield running

    return controller


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    """The condition of that type in obj's status, or {}."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return dict(c)
    return {}


async def wait_for_object(
    kube: Kube,
    path: str,
    check: Callable[[dict[str, Any]], bool],
    what: str,
    controller: RunningController,
    within: float = 30.0,
) -> dict[str, Any]:
    """Poll the object at `path` until `check` holds; on timeout, fail with its last status
    and the tail of the controller's log, which is where the reason usually is."""
    last: dict[str, Any] = {}
    try:
        async with asyncio.timeout(within):
            while True:
                last = await kube.get(path)
                if check(last):
                    return last
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(
            f"timed out waiting for {what}; last status: {last.get('status')}\n"
            f"controller log tail:\n{controller.logs()[-4000:]}"
        ) from None
