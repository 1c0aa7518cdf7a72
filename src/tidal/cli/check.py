"""`tidal check [--pre]`: flux's checks of the cluster and of an installation, in its order and
words. `--pre` checks the Kubernetes version and, unlike flux, whether the credentials may do
what `tidal install` does; without it, what is installed: the version in the cluster, the
controller Deployments (waited for until ready) and the CRDs.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from tidal.cli.cluster import Session, run
from tidal.cli.options import CliError, GoDuration, global_flags, options
from tidal.cli.output import log, spinner
from tidal.install import checks
from tidal.kube.client import ApiError
from tidal.ssa import objects

F = TypeVar("F", bound=Callable[..., Any])


def pflag_bool(*decls: str, help: str) -> Callable[[F], F]:
    """A boolean flag that also takes cobra's `--flag=true|false` (flux's own examples write
    `--keep-namespace=true`)."""
    return click.option(
        *decls, type=click.BOOL, is_flag=False, flag_value=True, default=False, metavar="",
        help=help,
    )  # fmt: skip


async def _kubernetes(s: Session) -> bool:
    text = await s.kube.server_version()
    version = checks.parse_version(text)
    if version is None:
        log.failure("Kubernetes version can't be determined")
        return False
    if not checks.supported(version):
        log.failure(f"Kubernetes version {text} does not match {checks.KUBERNETES_CONSTRAINT}")
        return False
    log.success(f"Kubernetes {version} {checks.KUBERNETES_CONSTRAINT}")
    return True


async def _permissions(s: Session) -> bool:
    try:
        wanted = await checks.install_permissions(s.kube, s.namespace)
        missing = await checks.denied(s.kube, wanted)
    except ApiError as e:
        log.failure(f"cannot check permissions: {e.message}")
        return False
    if not missing:
        log.success(f"permissions to install in {s.namespace} namespace")
        return True
    log.failure(f"missing permissions to install in {s.namespace} namespace:")
    for line in checks.describe_missing(missing):
        log.failure(line)
    return False


async def _version_in_cluster(s: Session) -> bool:
    try:
        labels = await checks.info_crd_labels(s.kube)
    except ApiError as e:
        log.failure(f"checking failed: {e.message}")
        return False
    try:
        deployments = await checks.controllers(s.kube, s.namespace)
    except ApiError:
        deployments = []  # the controllers check reports why
    info = checks.cluster_info(labels, deployments)
    if info.distribution:
        log.success(f"distribution: {info.distribution}")
    log.success(f"bootstrapped: {str(info.bootstrapped).lower()}")
    return True


async def _wait_ready(s: Session, names: list[str], every: float) -> dict[str, str]:
    """Each Deployment's state once all are ready or the deadline passed, looking at once
    and then every `every` seconds, as flux's status poller does."""
    async with spinner("waiting for the controllers") as progress:
        while True:
            found = await asyncio.gather(
                *(checks.deployment_state(s.kube, s.namespace, n) for n in names)
            )
            states = dict(zip(names, found, strict=True))
            if all(state == "ready" for state in found) or s.remaining() <= 0:
                return states
            progress.detail = ", ".join(
                f"{n}: deployment {state}" for n, state in states.items() if state != "ready"
            )
            await asyncio.sleep(min(every, max(s.remaining(), 0.0)))


async def _controllers(s: Session, every: float) -> bool:
    try:
        found = await checks.controllers(s.kube, s.namespace)
    except ApiError as e:
        log.failure(f"error listing deployments: {e.message}")
        return False
    if not found:
        log.failure(
            f"no controllers found in the '{s.namespace}' namespace with the label selector "
            f"'{checks.PART_OF_SELECTOR}'"
        )
        return False
    states = await _wait_ready(s, [objects.name(d) for d in found], every)
    ok = True
    for deployment in found:
        name = objects.name(deployment)
        if states[name] == "ready":
            log.success(f"{name}: deployment ready")
        else:
            log.failure(f"{name}: deployment {states[name]}")
            ok = False
        for image in checks.images(deployment):
            log.action(image)
    return ok


async def _crds(s: Session) -> bool:
    try:
        found = await checks.installed_crds(s.kube)
    except ApiError as e:
        log.failure(f"error listing CRDs: {e.message}")
        return False
    if not found:
        log.failure(f"no crds found with the label selector '{checks.PART_OF_SELECTOR}'")
        return False
    ok = True
    for state in checks.crd_states(found):
        if state.ok:
            log.success(state.message)
        else:
            log.failure(state.message)
            ok = False
    return ok


async def _check(s: Session, *, pre: bool, every: float) -> bool:
    log.action("checking prerequisites")
    ok = await _kubernetes(s)
    if pre:
        ok = await _permissions(s) and ok
        if ok:
            log.success("prerequisites checks passed")
        return ok
    log.action("checking version in cluster")
    ok = await _version_in_cluster(s) and ok
    log.action("checking controllers")
    ok = await _controllers(s, every) and ok
    log.action("checking crds")
    ok = await _crds(s) and ok
    if ok:
        log.success("all checks passed")
    return ok


@click.command("check")
@pflag_bool("--pre", help="Only run the pre-installation checks.")
@click.option(
    "--poll-interval",
    type=GoDuration(),
    default="5s",
    show_default=True,
    help="How often to poll the controllers while waiting for them to be ready.",
)
@global_flags
@click.pass_context
def check(ctx: click.Context, pre: bool, poll_interval: float) -> None:
    """Check the cluster's requirements (--pre) or the health of the installation.

    \b
    Examples:
      # Run pre-installation checks (Kubernetes version, permissions to install)
      tidal check --pre
      # Check the installation in the flux-system namespace
      tidal check
    """
    opts = options(ctx)
    if poll_interval <= 0:
        raise CliError(f"--poll-interval must be positive, not {poll_interval:g}s")
    if not run(opts, functools.partial(_check, pre=pre, every=poll_interval)):
        raise CliError("prerequisites checks failed" if pre else "check failed")
