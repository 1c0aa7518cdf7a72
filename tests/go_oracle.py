"""Running a throwaway Go program as the oracle of a test (Go's strconv, regexp, time,
archive/tar...): the program is written to a temporary directory and run with `go run`, outside
any module, so only the standard library is needed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

needs_go = pytest.mark.skipif(shutil.which("go") is None, reason="Go toolchain not installed")


def run_go(source: str, workdir: Path, *args: str, stdin: bytes = b"") -> bytes:
    """The standard output of `source` run with `args` and `stdin`; its stderr fails the test."""
    (workdir / "main.go").write_text(source)
    done = subprocess.run(
        ["go", "run", str(workdir / "main.go"), *args],
        input=stdin,
        capture_output=True,
        env={**os.environ, "GO111MODULE": "off", "GOFLAGS": ""},
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout
