"""Entry point and global flags of the `tidal` command."""

from __future__ import annotations

from dataclasses import dataclass

import click

from tidal import __version__
from tidal.cli.controller import controller
from tidal.cli.version import version


@dataclass(frozen=True)
class GlobalOptions:
    kubeconfig: str | None
    context: str | None
    namespace: str
    timeout: float


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="tidal", message="%(prog)s %(version)s")
@click.option("--kubeconfig", envvar="KUBECONFIG", help="Path to the kubeconfig file.")
@click.option("--context", help="Kubernetes context to use.")
@click.option(
    "-n",
    "--namespace",
    default="flux-system",
    show_default=True,
    help="The namespace scope for this operation.",
)
@click.option(
    "--timeout",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds to wait for an operation against the cluster.",
)
@click.pass_context
def cli(
    ctx: click.Context, kubeconfig: str | None, context: str | None, namespace: str, timeout: float
) -> None:
    """tidal keeps Kubernetes clusters equal to what Git declares (Flux-compatible)."""
    # $KUBECONFIG may list several files; lightkube reads that list itself when we pass nothing.
    if kubeconfig and ":" in kubeconfig:
        kubeconfig = None
    ctx.obj = GlobalOptions(kubeconfig, context, namespace, timeout)


cli.add_command(version)
cli.add_command(controller)


def main() -> None:
    cli(prog_name="tidal")
