"""The two CLIs as a user runs them, for tests that compare tidal with the real flux binary:
each runs as a process against the same cluster, without $KUBECONFIG, and its exit status,
stdout and stderr are compared byte for byte (`assert_same`). The flux binary comes from the
session fixture `flux_bin` (tests.plugin)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from testenv import flux_cli

F = TypeVar("F", bound=Callable[..., Any])


def needs_flux(f: F) -> F:
    """Tests comparing with flux; `slow` only when the flux binary still has to be built."""
    return f if flux_cli.is_built() else pytest.mark.slow(f)


@dataclass(frozen=True)
class Out:
    code: int
    stdout: str
    stderr: str


async def _run(argv: list[str], stdin: str | None = None) -> Out:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate((stdin or "").encode()), 120)
    assert proc.returncode is not None
    return Out(proc.returncode, out.decode(), err.decode())


async def tidal(kubeconfig: Path, *args: str, stdin: str | None = None) -> Out:
    return await _run(
        [sys.executable, "-m", "tidal", "--kubeconfig", str(kubeconfig), *args], stdin
    )


async def flux(flux_bin: Path, kubeconfig: Path, *args: str) -> Out:
    return await _run([str(flux_bin), "--kubeconfig", str(kubeconfig), *args])


def assert_same(ours: Out, theirs: Out) -> None:
    assert (ours.code, ours.stdout, ours.stderr) == (theirs.code, theirs.stdout, theirs.stderr)
