"""`tidal install [--export]`: the CRDs, namespace, RBAC, Service and the Deployment running
`tidal controller`, applied server-side or printed."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from tidal.cli import render
from tidal.cli.cluster import Session, run
from tidal.cli.flags import string_slice
from tidal.cli.options import CliError, global_flags, options
from tidal.cli.output import log, spinner, stdout
from tidal.install import apply, manifests
from tidal.kube.discovery import Discovery
from tidal.runtime.poll import poll_until
from tidal.ssa.objects import describe

F = TypeVar("F", bound=Callable[..., Any])


def component_flags(f: F) -> F:
    """The flags that shape the installed components, shared by `install` and `bootstrap`."""
    for decorator in reversed(
        (
            click.option(
                "--registry",
                default=manifests.DEFAULT_REGISTRY,
                show_default=True,
                help="Container registry the tidal image is pulled from.",
            ),
            click.option("--image-pull-secret", default="", help="Secret for pulling the image."),
            click.option(
                "--watch-all-namespaces/--no-watch-all-namespaces", default=True, show_default=True
            ),
            click.option(
                "--log-level",
                type=click.Choice(["debug", "info", "error"]),
                default="info",
                show_default=True,
            ),
            click.option("--cluster-domain", default="cluster.local", show_default=True),
            click.option(
                "--toleration-keys", multiple=True, help="Taint keys to tolerate, comma-separated."
            ),
        )
    ):
        f = decorator(f)
    return f


def install_options(namespace: str, flags: Mapping[str, Any]) -> manifests.InstallOptions:
    """The InstallOptions the component flags among `flags` ask for."""
    return manifests.InstallOptions(
        namespace=namespace,
        registry=flags["registry"],
        image_pull_secret=flags["image_pull_secret"],
        watch_all_namespaces=flags["watch_all_namespaces"],
        log_level=flags["log_level"],
        cluster_domain=flags["cluster_domain"],
        toleration_keys=tuple(string_slice(flags["toleration_keys"])),
    )


@click.command("install")
@click.option("--export", is_flag=True, help="Print the manifests instead of applying them.")
@component_flags
@global_flags
@click.pass_context
def install(ctx: click.Context, /, export: bool, **flags: Any) -> None:
    """Install tidal's controller and CRDs, or print them with --export."""
    opts = options(ctx)
    install_opts = install_options(opts.namespace, flags)
    objects = manifests.all_objects(install_opts)
    if export:
        stdout("".join(render.document(o) for o in objects))
        return

    async def work(s: Session) -> None:
        log.action(f"installing components in {opts.namespace} namespace")
        await apply.apply_all(s.kube, objects, within=s.remaining(), report=log.success)
        log.waiting("verifying installation")
        deployment = manifests.deployment(install_opts)
        try:
            async with spinner(f"waiting for {describe(deployment)}"):
                await poll_until(
                    functools.partial(
                        apply.deployment_ready, s.kube, Discovery(s.kube), deployment
                    ),
                    max(s.remaining(), 1.0),
                    every=1.0,
                )
        except TimeoutError:
            raise CliError(
                f"{describe(deployment)} did not become ready; is the image "
                f"{install_opts.image} reachable from the cluster?"
            ) from None
        log.success(f"{manifests.NAME}: deployment ready")
        log.success("install finished")

    run(opts, work)
