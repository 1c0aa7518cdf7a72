"""`tidal completion SHELL`: the printed script, sourced by a real bash, completes verbs, kinds
and flags as a user presses TAB."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tidal.cli.main import cli

BIN = Path(sys.executable).parent


def complete(line: str) -> list[str]:
    """What bash offers for `line` (the cursor at its end) with tidal's script sourced."""
    if shutil.which("bash") is None or not (BIN / "tidal").exists():
        pytest.skip("needs bash and the installed tidal entry point")
    words = line.split(" ")
    probe = (
        "source <(tidal completion bash)\n"
        f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        "_tidal_completion tidal\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    out = subprocess.run(
        ["bash", "-c", probe], capture_output=True, text=True, env=env, timeout=60, check=True
    )
    return [w for w in out.stdout.splitlines() if w]


def test_bash_completes_verbs_kinds_and_flags() -> None:
    assert {"reconcile", "resume"} <= set(complete("tidal re"))
    assert complete("tidal get so") == ["source", "sources"]
    assert complete("tidal reconcile source g") == ["git"]
    assert "--prune" in complete("tidal create kustomization app --pr")


@pytest.mark.parametrize("shell", ["bash", "fish", "powershell", "zsh"])
def test_every_shell_gets_a_script_naming_tidal(shell: str) -> None:
    result = CliRunner().invoke(cli, ["completion", shell])
    assert result.exit_code == 0, result.output
    assert "_TIDAL_COMPLETE" in result.output


def test_an_unknown_shell_is_refused_with_the_choices() -> None:
    result = CliRunner().invoke(cli, ["completion", "tcsh"])
    assert result.exit_code == 2
    assert "'tcsh' is not one of 'bash', 'fish', 'powershell', 'zsh'" in result.output
