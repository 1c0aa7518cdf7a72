"""Entry point and global flags of the `tidal` command."""

from __future__ import annotations

import click

from tidal import __version__
from tidal.cli.bootstrap import bootstrap_group
from tidal.cli.build import build
from tidal.cli.check import check
from tidal.cli.completion import completion
from tidal.cli.controller import controller
from tidal.cli.create import create
from tidal.cli.delete import delete
from tidal.cli.diff import diff
from tidal.cli.events import events
from tidal.cli.export import export
from tidal.cli.get import get
from tidal.cli.install import install
from tidal.cli.options import GlobalOptions, root_flags
from tidal.cli.reconcile import reconcile
from tidal.cli.stats import stats
from tidal.cli.suspend import resume, suspend
from tidal.cli.trace import trace
from tidal.cli.tree import tree
from tidal.cli.uninstall import uninstall
from tidal.cli.version import version

__all__ = ["GlobalOptions", "cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


for command in (
    version,
    controller,
    install,
    bootstrap_group,
    uninstall,
    check,
    create,
    get,
    suspend,
    resume,
    delete,
    export,
    reconcile,
    build,
    diff,
    events,
    tree,
    trace,
    stats,
    completion,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="tidal")
