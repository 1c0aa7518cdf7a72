"""`tidal create helmrelease` (alias `hr`), as `flux create helmrelease` does it.

Without `--export` the object is written as flux writes it (created, or its labels and spec
replaced), then the command waits until the release is reconciled at its generation and Ready,
and prints the chart version installed, within `--timeout`. The flags and their checks are in
tidal.cli.helmrelease.
"""

from __future__ import annotations

import click

from tidal.cli import readiness, render
from tidal.cli.cluster import Session, run, upsert_object
from tidal.cli.flags import PflagValue, check_object_name, create_flags, parse_labels, string_slice
from tidal.cli.helmrelease import (
    CRDS_POLICIES,
    SOURCE_HELP,
    HelmReleaseFlags,
    Ref,
    check_chart_flags,
    check_strategy,
    go_duration,
    helm_release,
    helm_release_spec,
    parse_crds,
    parse_source,
)
from tidal.cli.objects import HELM_RELEASE
from tidal.cli.options import global_flags, options
from tidal.cli.output import log, stdout
from tidal.cli.wait import wait_for


@click.command("helmrelease")
@click.argument("name", required=False)
@click.option(
    "--release-name",
    default="",
    help="Name used for the Helm release, defaults to a composition of "
    "'[<target-namespace>-]<HelmRelease-name>'.",
)
@click.option(
    "--source",
    type=PflagValue("source", parse_source),
    metavar="KIND/NAME[.NAMESPACE]",
    help=SOURCE_HELP[0].upper() + SOURCE_HELP[1:] + ".",
)
@click.option("--chart", default="", help="Helm chart name or path.")
@click.option(
    "--chart-version",
    default="",
    help="Helm chart version, accepts a semver range (ignored for charts from GitRepository "
    "sources).",
)
@click.option(
    "--chart-ref",
    default="",
    help="The chart source (instead of --chart), as '<kind>/<name>.<namespace>', where kind "
    "must be one of: (OCIRepository,HelmChart).",
)
@click.option(
    "--depends-on",
    multiple=True,
    help="HelmReleases that must be ready before this release can be installed, as '<name>' "
    "or '<namespace>/<name>' (several with commas).",
)
@click.option(
    "--target-namespace",
    default="",
    help="Namespace to install this release, defaults to the HelmRelease namespace.",
)
@click.option(
    "--storage-namespace",
    default="",
    help="Namespace to store the Helm release, defaults to the target namespace.",
)
@click.option(
    "--create-target-namespace",
    is_flag=True,
    help="Create the target namespace if it does not exist.",
)
@click.option(
    "--service-account",
    default="",
    help="The name of the service account to impersonate when reconciling this HelmRelease.",
)
@click.option(
    "--reconcile-strategy",
    default="ChartVersion",
    show_default=True,
    help="The reconcile strategy for the HelmChart made for the release (Revision or "
    "ChartVersion).",
)
@click.option(
    "--chart-interval",
    type=PflagValue("duration", go_duration),
    default="0s",
    help="The interval at which to check for new chart versions.",
)
@click.option(
    "--values",
    "values_files",
    multiple=True,
    help="Local path to values.yaml files, merged in order (several with commas).",
)
@click.option(
    "--values-from",
    multiple=True,
    help="A Secret or ConfigMap with a values.yaml data key, as '<kind>/<name>' (several with "
    "commas).",
)
@click.option(
    "--crds",
    type=PflagValue("crds", parse_crds),
    metavar="|".join(CRDS_POLICIES),
    help="Upgrade CRDs policy.",
)
@click.option(
    "--kubeconfig-secret-ref",
    default="",
    help="The name of the Kubernetes Secret that contains a key with the kubeconfig file for "
    "connecting to a remote cluster.",
)
@create_flags
@global_flags
@click.pass_context
def create_helmrelease(
    ctx: click.Context,
    name: str | None,
    release_name: str,
    source: Ref | None,
    chart: str,
    chart_version: str,
    chart_ref: str,
    depends_on: tuple[str, ...],
    target_namespace: str,
    storage_namespace: str,
    create_target_namespace: bool,
    service_account: str,
    reconcile_strategy: str,
    chart_interval: float,
    values_files: tuple[str, ...],
    values_from: tuple[str, ...],
    crds: str | None,
    kubeconfig_secret_ref: str,
    interval: float,
    export: bool,
    labels: tuple[str, ...],
) -> None:
    """Create or update a HelmRelease resource and wait for the release to be installed.

    \b
    tidal create hr podinfo --source=HelmRepository/podinfo --chart=podinfo
    tidal create hr podinfo --source=HelmRepository/podinfo.flux-system --chart=podinfo \\
      --chart-version=">4.0.0" --values=./values.yaml --export
    tidal create hr podinfo --chart-ref=OCIRepository/podinfo.flux-system
    """
    name = check_object_name(name)
    opts = options(ctx)
    flags = HelmReleaseFlags(
        interval=interval,
        source=source,
        chart=chart,
        chart_version=chart_version,
        chart_ref=chart_ref,
        chart_interval=chart_interval,
        release_name=release_name,
        target_namespace=target_namespace,
        storage_namespace=storage_namespace,
        create_target_namespace=create_target_namespace,
        depends_on=tuple(string_slice(depends_on)),
        values_files=tuple(string_slice(values_files)),
        values_from=tuple(string_slice(values_from)),
        kubeconfig_secret_ref=kubeconfig_secret_ref,
        service_account=service_account,
        crds=crds or "",
        reconcile_strategy=reconcile_strategy,
    )
    check_chart_flags(flags)
    parsed_labels = parse_labels(labels)
    if not export:
        # flux says so before it checks the strategy and the rest of the flags.
        log.generate("generating HelmRelease")
    check_strategy(reconcile_strategy)
    obj = helm_release(name, opts.namespace, parsed_labels, helm_release_spec(flags))
    if export:
        stdout(render.document(render.export_object(HELM_RELEASE, obj)))
        return

    async def work(s: Session) -> None:
        log.action("applying HelmRelease")
        created = await upsert_object(s, HELM_RELEASE, obj)
        log.success(f"HelmRelease {'created' if created else 'updated'}")
        log.waiting("waiting for HelmRelease reconciliation")
        live = await wait_for(s, HELM_RELEASE, name, readiness.ready, "HelmRelease reconciliation")
        log.success(f"HelmRelease {name} is ready")
        log.success(HELM_RELEASE.success(live) or "")

    run(opts, work)
