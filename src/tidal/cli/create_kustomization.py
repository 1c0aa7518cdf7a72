"""`tidal create kustomization`, as `flux create kustomization` does it.

Without `--export` the object is written as flux writes it (created, or its labels and spec
replaced; see tidal.cli.cluster.create_or_update), then the command waits for the controller to
reconcile it and reports the applied revision, within `--timeout`.
"""

from __future__ import annotations

from typing import Any

import click

from tidal.cli import readiness, render
from tidal.cli.cluster import Session, run, upsert_object
from tidal.cli.flags import PflagValue, check_object_name, create_flags, parse_labels, string_slice
from tidal.cli.kustomization import (
    KustomizationFlags,
    SourceRef,
    kustomization,
    kustomization_spec,
    parse_decryption_provider,
    parse_source,
    safe_relative_path,
)
from tidal.cli.objects import KUSTOMIZATION
from tidal.cli.options import CliError, GoDuration, global_flags, options
from tidal.cli.output import log, stdout
from tidal.cli.wait import wait_for

_VALIDATION_DEPRECATED = (
    "Flag --validation has been deprecated, this arg is no longer used, all resources are "
    "validated using server-side apply dry-run\n"
)


def _deprecated_validation(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    # cobra announces a deprecated flag where it parses it, on stdout.
    if value is not None:
        stdout(_VALIDATION_DEPRECATED)


@click.command("kustomization")
@click.argument("name", required=False)
@click.option(
    "--source",
    type=PflagValue("source", parse_source),
    metavar="[KIND/]NAME[.NAMESPACE]",
    help="The source with the manifests; KIND is OCIRepository, GitRepository (the default) or "
    "Bucket.",
)
@click.option(
    "--path",
    type=PflagValue("path", safe_relative_path),
    default="./",
    show_default=True,
    help="Path to the directory containing a kustomization.yaml file.",
)
@click.option("--prune", is_flag=True, help="Enable garbage collection.")
@click.option("--wait", is_flag=True, help="Enable health checking of all the applied resources.")
@click.option(
    "--health-check",
    "health_checks",
    multiple=True,
    help="Workload to be included in the health assessment, as '<kind>/<name>.<namespace>'.",
)
@click.option(
    "--health-check-timeout",
    type=GoDuration(),
    default="2m",
    show_default=True,
    help="Timeout of health checking operations.",
)
@click.option(
    "--validation",
    hidden=True,
    expose_value=False,
    callback=_deprecated_validation,
    help="Deprecated: every resource is validated with a server-side apply dry-run.",
)
@click.option(
    "--depends-on",
    multiple=True,
    help="Kustomization that must be ready first, as '<name>' or '<namespace>/<name>' "
    "(several with commas).",
)
@click.option(
    "--service-account",
    default="",
    help="The name of the service account to impersonate when reconciling this Kustomization.",
)
@click.option(
    "--decryption-provider",
    type=PflagValue("provider", parse_decryption_provider),
    help="Decryption provider, available options are: (sops).",
)
@click.option(
    "--decryption-secret",
    default="",
    help="The Kubernetes secret that holds the OpenPGP private keys used for sops decryption.",
)
@click.option(
    "--target-namespace",
    default="",
    help="Overrides the namespace of all objects reconciled by this Kustomization.",
)
@click.option(
    "--kubeconfig-secret-ref",
    default="",
    help="The Kubernetes Secret holding the kubeconfig of a remote cluster to apply to.",
)
@click.option(
    "--retry-interval",
    type=GoDuration(),
    default="0s",
    help="The interval at which to retry a previously failed reconciliation.",
)
@create_flags
@global_flags
@click.pass_context
def create_kustomization(
    ctx: click.Context,
    name: str | None,
    source: SourceRef | None,
    path: str,
    prune: bool,
    wait: bool,
    health_checks: tuple[str, ...],
    health_check_timeout: float,
    depends_on: tuple[str, ...],
    service_account: str,
    decryption_provider: str | None,
    decryption_secret: str,
    target_namespace: str,
    kubeconfig_secret_ref: str,
    retry_interval: float,
    interval: float,
    export: bool,
    labels: tuple[str, ...],
) -> None:
    """Create or update a Kustomization resource and wait for it to be applied."""
    name = check_object_name(name)
    opts = options(ctx)
    if source is None:
        raise CliError("source is required")
    if not export:
        # flux says so before it checks labels and health checks.
        log.generate("generating Kustomization")
    obj = kustomization(
        name,
        opts.namespace,
        parse_labels(labels),
        kustomization_spec(
            KustomizationFlags(
                source=source,
                interval=interval,
                path=path,
                prune=prune,
                wait=wait,
                health_checks=tuple(string_slice(health_checks)),
                health_check_timeout=health_check_timeout,
                depends_on=tuple(string_slice(depends_on)),
                service_account=service_account,
                decryption_provider=decryption_provider or "",
                decryption_secret=decryption_secret,
                target_namespace=target_namespace,
                kubeconfig_secret_ref=kubeconfig_secret_ref,
                retry_interval=retry_interval,
            )
        ),
    )
    if export:
        stdout(render.document(render.export_object(KUSTOMIZATION, obj)))
        return

    async def work(s: Session) -> None:
        log.action("applying Kustomization")
        created = await upsert_object(s, KUSTOMIZATION, obj)
        log.success(f"Kustomization {'created' if created else 'updated'}")
        log.waiting("waiting for Kustomization reconciliation")
        live = await wait_for(
            s, KUSTOMIZATION, name, readiness.ready, "Kustomization reconciliation"
        )
        log.success(f"Kustomization {name} is ready")
        log.success(KUSTOMIZATION.success(live) or "")

    run(opts, work)
