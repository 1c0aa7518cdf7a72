"""`tidal uninstall [--keep-namespace] [--dry-run] [-s]`: flux's uninstall, which removes the
controller, tidal's finalizers, the CRDs (and with them the custom objects) and the namespace,
and leaves every workload the Kustomizations applied where it is (tidal.install.uninstall).
"""

from __future__ import annotations

import click

from tidal.cli.check import pflag_bool
from tidal.cli.cluster import Session, run
from tidal.cli.options import CliError, global_flags, options, timeout_text
from tidal.cli.output import log, spinner
from tidal.install import checks
from tidal.install.uninstall import Plan, Uninstaller
from tidal.kube.client import ApiError

PROMPT = "Are you sure you want to delete tidal and its custom resource definitions"


async def _managed_by(s: Session) -> str:
    """The tool the installation says manages it; "" when none is installed."""
    try:
        labels = await checks.info_crd_labels(s.kube)
    except ApiError as e:
        if e.status == 404:
            return ""
        raise CliError(f"cluster info unavailable: {e.message}") from None
    return checks.cluster_info(labels).managed_by


def _confirm(managed_by: str) -> bool:
    prompt = PROMPT
    if managed_by not in ("", "flux", "tidal"):
        prompt = (
            f"tidal is managed by {managed_by}! Are you sure you want to delete tidal and its "
            "CRDs using the tidal CLI"
        )
    try:
        return click.confirm(prompt, err=True)
    except click.Abort:  # end of input, or ^C
        return False


@click.command("uninstall")
@pflag_bool("--keep-namespace", help="Skip the namespace deletion.")
@pflag_bool("--dry-run", help="Only print the objects that would be deleted.")
@pflag_bool("-s", "--silent", help="Delete the components without asking for confirmation.")
@global_flags
@click.pass_context
def uninstall(ctx: click.Context, keep_namespace: bool, dry_run: bool, silent: bool) -> None:
    """Uninstall tidal and its custom resource definitions.

    The workloads tidal applied stay: the custom objects lose tidal's finalizer before the
    CRDs are deleted, so no controller prunes on their deletion.

    \b
    Examples:
      # Uninstall tidal, its custom resources and namespace
      tidal uninstall --namespace=flux-system
      # Uninstall tidal but keep the namespace
      tidal uninstall --namespace=infra --keep-namespace=true
    """
    opts = options(ctx)
    # Ask outside the event loop: the prompt blocks.
    if not dry_run and not silent and not _confirm(run(opts, _managed_by)):
        raise CliError("aborting")

    async def work(s: Session) -> None:
        steps = Uninstaller(s.kube, Plan(s.namespace, dry_run=dry_run), log)
        log.action(f"deleting components in {s.namespace} namespace")
        await steps.components()
        try:
            async with spinner("waiting for the controller to stop"):
                stopped = await steps.controller_stopped(max(s.remaining(), 1.0))
        except ApiError as e:
            raise CliError(
                f"cannot tell whether the controller stopped, so nothing else was deleted: "
                f"{e.message}"
            ) from None
        if not stopped:
            raise CliError(
                f"the controller's pods in {s.namespace} namespace were still running after "
                f"{timeout_text(opts.timeout)}; nothing else was deleted, so that it cannot "
                "prune what it applied: run uninstall again once they are gone"
            )
        log.action("deleting toolkit.fluxcd.io finalizers in all namespaces")
        await steps.finalizers()
        log.action("deleting toolkit.fluxcd.io custom resource definitions")
        await steps.custom_resource_definitions()
        if not keep_namespace:
            await steps.namespace()
        if steps.failures:
            noun = "error" if steps.failures == 1 else "errors"
            raise CliError(f"uninstall failed: {steps.failures} {noun} (see above)")
        log.success("uninstall finished")

    run(opts, work)
