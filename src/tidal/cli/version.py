"""`tidal version`: the client's versions and, when reachable, the server's."""

from __future__ import annotations

import asyncio
import json
import platform
from typing import Any

import click
import httpx2 as httpx

from tidal import __version__
from tidal.kube.client import ApiError, Kube, KubeConfigError


async def _server_version(kubeconfig: str | None, context: str | None, seconds: float) -> str:
    async with asyncio.timeout(seconds), Kube.from_kubeconfig(kubeconfig, context) as kube:
        return await kube.server_version()


def collect(
    kubeconfig: str | None, context: str | None, timeout: float, client_only: bool
) -> dict[str, Any]:
    info: dict[str, Any] = {"tidal": __version__, "python": platform.python_version()}
    if client_only:
        return info
    try:
        info["kubernetes"] = asyncio.run(_server_version(kubeconfig, context, timeout))
    except KubeConfigError as e:
        info["kubernetes_error"] = f"no kubeconfig: {e}"
    except (httpx.HTTPError, ApiError, OSError, TimeoutError) as e:
        info["kubernetes_error"] = f"unreachable: {e or type(e).__name__}"
    return info


@click.command()
@click.option("--client", "client_only", is_flag=True, help="Print only the client's versions.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json", "yaml"]),
    default="text",
    help="Output format.",
)
@click.pass_obj
def version(obj: Any, client_only: bool, output: str) -> None:
    """Print tidal's, Python's and the cluster's Kubernetes versions."""
    info = collect(obj.kubeconfig, obj.context, min(obj.timeout, 10.0), client_only)
    if output == "json":
        click.echo(json.dumps(info, indent=2))
        return
    if output == "yaml":
        for key, value in info.items():
            click.echo(f"{key}: {json.dumps(value)}")
        return
    click.echo(f"tidal: v{info['tidal']}")
    click.echo(f"python: {info['python']}")
    if "kubernetes" in info:
        click.echo(f"kubernetes: {info['kubernetes']}")
    elif "kubernetes_error" in info:
        click.echo(f"kubernetes: {info['kubernetes_error']}")
