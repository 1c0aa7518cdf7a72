"""The root command loads each command's module only when that command is used."""

from __future__ import annotations

import subprocess
import sys

import click
from click.testing import CliRunner

from tidal.cli.main import COMMANDS, cli


def test_every_command_loads_under_its_own_name() -> None:
    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None and command.name == name
    assert cli.get_command(ctx, "nope") is None


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    listed = result.output.split("Commands:\n", 1)[1].split()
    assert all(name in listed for name in COMMANDS)


def test_a_light_command_does_not_import_the_controller_stacks() -> None:
    probe = (
        "import sys\n"
        "from tidal.cli.main import cli\n"
        "try:\n"
        "    cli(['version', '--client'], prog_name='tidal')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('tidal.source.git.client', 'tidal.kustomize.kustomization',"
        " 'tidal.sops', 'dulwich') if m in sys.modules]\n"
        "print('heavy:', heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.splitlines()[-1] == "heavy: []"
