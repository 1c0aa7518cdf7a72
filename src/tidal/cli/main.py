"""Entry point and global flags of the `tidal` command."""

from __future__ import annotations

import importlib

import click

from tidal import __version__
from tidal.cli.options import GlobalOptions, root_flags

# Each command's module, imported only when the command runs (or help lists it): the controller
# and the Git, kustomize and SOPS stacks take half a second to import, which every `tidal get`
# would otherwise pay.
COMMANDS: dict[str, str] = {
    "version": "tidal.cli.version:version",
    "controller": "tidal.cli.controller:controller",
    "install": "tidal.cli.install:install",
    "bootstrap": "tidal.cli.bootstrap:bootstrap_group",
    "uninstall": "tidal.cli.uninstall:uninstall",
    "check": "tidal.cli.check:check",
    "create": "tidal.cli.create:create",
    "get": "tidal.cli.get:get",
    "suspend": "tidal.cli.suspend:suspend",
    "resume": "tidal.cli.suspend:resume",
    "delete": "tidal.cli.delete:delete",
    "export": "tidal.cli.export:export",
    "reconcile": "tidal.cli.reconcile:reconcile",
    "build": "tidal.cli.build:build",
    "diff": "tidal.cli.diff:diff",
    "events": "tidal.cli.events:events",
    "tree": "tidal.cli.tree:tree",
    "trace": "tidal.cli.trace:trace",
    "stats": "tidal.cli.stats:stats",
    "completion": "tidal.cli.completion:completion",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


__all__ = ["GlobalOptions", "cli", "main"]


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="tidal", message="%(prog)s %(version)s")
@root_flags
@click.pass_context
def cli(
    ctx: click.Context,
    kubeconfig: str | None,
    context: str | None,
    namespace: str,
    timeout: float,
) -> None:
    """tidal keeps Kubernetes clusters equal to what Git declares (Flux-compatible)."""
    # $KUBECONFIG may list several files; lightkube reads that list itself when we pass nothing.
    if kubeconfig and ":" in kubeconfig:
        kubeconfig = None
    ctx.obj = GlobalOptions(kubeconfig, context, namespace, timeout)


def main() -> None:
    cli(prog_name="tidal")
