"""`tidal version`: the client's versions and, when reachable, the server's and the version of
each tidal Deployment installed in the namespace (as `flux version` lists its controllers)."""

from __future__ import annotations

import asyncio
import json
import platform
from typing import Any

import click
import httpx2 as httpx

from tidal import __version__
from tidal.cli.options import global_flags, options
from tidal.install import manifests
from tidal.kube.client import ApiError, Kube, KubeConfigError


def _image_tag(image: str) -> str:
    """The tag of `registry/name:tag[@digest]`; the whole reference when it has no tag."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else image


async def _server(
    kubeconfig: str | None, context: str | None, namespace: str, seconds: float
) -> dict[str, str]:
    async with asyncio.timeout(seconds), Kube.from_kubeconfig(kubeconfig, context) as kube:
        info = {"kubernetes": await kube.server_version()}
        try:
            listing = await kube.get(
                f"/apis/apps/v1/namespaces/{namespace}/deployments",
                {"labelSelector": f"app.kubernetes.io/part-of={manifests.PART_OF}"},
            )
        except ApiError:
            return info  # not allowed to list Deployments there: the server version still helps
        for deployment in listing.get("items") or []:
            containers = deployment["spec"]["template"]["spec"].get("containers") or []
            if containers:
                info[deployment["metadata"]["name"]] = _image_tag(containers[0]["image"])
        return info


def collect(
    kubeconfig: str | None,
    context: str | None,
    timeout: float,
    client_only: bool,
    namespace: str = manifests.InstallOptions.namespace,
) -> dict[str, Any]:
    info: dict[str, Any] = {"tidal": __version__, "python": platform.python_version()}
    if client_only:
        return info
    try:
        info.update(asyncio.run(_server(kubeconfig, context, namespace, timeout)))
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
@global_flags
@click.pass_context
def version(ctx: click.Context, client_only: bool, output: str) -> None:
    """Print tidal's, Python's and the cluster's Kubernetes versions, and the installed
    controller's."""
    opts = options(ctx)
    info = collect(
        opts.kubeconfig, opts.context, min(opts.timeout, 10.0), client_only, opts.namespace
    )
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
    for key, value in info.items():
        if key not in ("tidal", "python", "kubernetes", "kubernetes_error"):
            click.echo(f"{key}: {value}")
