"""`tidal completion bash|fish|powershell|zsh`: the script a shell sources to complete tidal's
commands and flags, as `flux completion SHELL` prints flux's.

Click answers the completion requests itself when `_TIDAL_COMPLETE` is set (that is what the
script's function does), so this command only prints the script for the chosen shell.
"""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

SHELLS = ("bash", "fish", "powershell", "zsh")
PROG = "tidal"
COMPLETE_VAR = "_TIDAL_COMPLETE"

_HINTS = {
    "bash": "source <(tidal completion bash)   # add it to ~/.bashrc to keep it",
    "fish": "tidal completion fish > ~/.config/fish/completions/tidal.fish",
    "powershell": "tidal completion powershell | Out-String | Invoke-Expression",
    "zsh": 'tidal completion zsh > "${fpath[1]}/_tidal"',
}


def script(shell: str) -> str:
    cls = get_completion_class(shell)
    if cls is None:
        raise click.BadParameter(f"unsupported shell {shell!r}", param_hint="SHELL")
    root = click.get_current_context().find_root().command
    return cls(root, {}, PROG, COMPLETE_VAR).source()


@click.command("completion", epilog="\b\n" + "\n".join(_HINTS.values()))
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for bash, fish, powershell or zsh."""
    click.echo(script(shell), nl=False)
