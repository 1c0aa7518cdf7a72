"""`tidal create source chart`, as `flux create source chart` does it.

`--source <kind>/<name>` names a HelmRepository, GitRepository or Bucket of the namespace (the
kind in any case); `--chart` is the chart's name in a Helm repository or its path in a source
artifact. The HelmChart always carries its reconcileStrategy and carries a version only when
one is given. `--export` prints it; otherwise it is written and the command waits until the
chart is built and prints the revision fetched.
"""

from __future__ import annotations

from typing import Any, Final

import click

from tidal.api.base import format_duration
from tidal.cli import readiness, render
from tidal.cli.cluster import Session, run, upsert_object
from tidal.cli.flags import check_object_name, create_flags, parse_labels
from tidal.cli.objects import HELM_CHART
from tidal.cli.options import CliError, global_flags, options
from tidal.cli.output import log, stdout
from tidal.cli.wait import wait_for

SOURCE_KINDS: Final = ("HelmRepository", "GitRepository", "Bucket")


def parse_source(text: str) -> tuple[str, str]:
    """`<kind>/<name>` with the kind matched case-insensitively, as flux's helmChartSource."""
    kind, sep, name = text.partition("/")
    if not sep or not kind or not name:
        raise CliError(
            f'invalid argument "{text}" for "--source" flag: invalid helm chart source '
            f"'{text}', must be in format <kind>/<name>"
        )
    for known in SOURCE_KINDS:
        if known.casefold() == kind.casefold():
            return known, name
    raise CliError(
        f'invalid argument "{text}" for "--source" flag: source kind \'{kind}\' is not '
        f"supported, must be one of: {', '.join(SOURCE_KINDS)}"
    )


def helm_chart(
    name: str,
    namespace: str,
    labels: dict[str, str],
    *,
    source: tuple[str, str],
    chart: str,
    version: str,
    interval: float,
    reconcile_strategy: str,
    verify_provider: str = "",
    verify_secret_ref: str = "",
    verify_issuer: str = "",
    verify_subject: str = "",
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "chart": chart,
        "interval": format_duration(interval),
        "reconcileStrategy": reconcile_strategy,
        "sourceRef": {"kind": source[0], "name": source[1]},
    }
    if version:
        spec["version"] = version
    if verify_provider:
        verify: dict[str, Any] = {"provider": verify_provider}
        if verify_secret_ref:
            verify["secretRef"] = {"name": verify_secret_ref}
        if verify_issuer or verify_subject:
            verify["matchOIDCIdentity"] = [{"issuer": verify_issuer, "subject": verify_subject}]
        spec["verify"] = verify
    elif verify_secret_ref:
        raise CliError("a verification provider must be specified when a secret is specified")
    return HELM_CHART.manifest(name, namespace, spec, labels)


@click.command("chart")
@click.argument("name", required=False)
@click.option(
    "--source",
    default="",
    help="Source that contains the chart in the format '<kind>/<name>', where kind must be "
    f"one of: ({', '.join(SOURCE_KINDS)}).",
)
@click.option("--chart", default="", help="Helm chart name or path.")
@click.option(
    "--chart-version",
    default="",
    help="Helm chart version, accepts a semver range (ignored for charts from GitRepository "
    "sources).",
)
@click.option(
    "--reconcile-strategy",
    default="ChartVersion",
    show_default=True,
    help="The reconcile strategy for helm chart (ChartVersion or Revision).",
)
@click.option(
    "--verify-provider",
    type=click.Choice(["cosign"]),
    default=None,
    help="The OCI verify provider name to use for signature verification.",
)
@click.option("--verify-secret-ref", default="", help="Secret to use for signature verification.")
@click.option("--verify-issuer", default="", help="Regular expression for the OIDC issuer.")
@click.option("--verify-subject", default="", help="Regular expression for the OIDC subject.")
@create_flags
@global_flags
@click.pass_context
def create_source_chart(
    ctx: click.Context,
    name: str | None,
    source: str,
    chart: str,
    chart_version: str,
    reconcile_strategy: str,
    verify_provider: str | None,
    verify_secret_ref: str,
    verify_issuer: str,
    verify_subject: str,
    interval: float,
    export: bool,
    labels: tuple[str, ...],
) -> None:
    """Create or update a HelmChart source and wait for the chart to be available."""
    name = check_object_name(name)
    opts = options(ctx)
    parsed_labels = parse_labels(labels)
    # An invalid --source is a flag error in flux, reported before anything is generated.
    source_ref = parse_source(source) if source else None
    if source_ref is None:
        raise CliError("chart source is required")
    if not chart:
        raise CliError("chart name or path is required")
    log.generate("generating HelmChart source")
    obj = helm_chart(
        name,
        opts.namespace,
        parsed_labels,
        source=source_ref,
        chart=chart,
        version=chart_version,
        interval=interval,
        reconcile_strategy=reconcile_strategy,
        verify_provider=verify_provider or "",
        verify_secret_ref=verify_secret_ref,
        verify_issuer=verify_issuer,
        verify_subject=verify_subject,
    )
    if export:
        stdout(render.document(render.export_object(HELM_CHART, obj)))
        return

    async def work(s: Session) -> None:
        log.action("applying HelmChart source")
        created = await upsert_object(s, HELM_CHART, obj)
        log.success(f"source {'created' if created else 'updated'}")
        log.waiting("waiting for HelmChart source reconciliation")
        live = await wait_for(
            s, HELM_CHART, name, readiness.ready, "HelmChart source reconciliation"
        )
        log.success("HelmChart source reconciliation completed")
        artifact = (live.get("status") or {}).get("artifact")
        if not artifact:
            raise CliError("HelmChart source reconciliation completed but no artifact was found")
        log.success(f"fetched revision: {artifact.get('revision', '')}")

    run(opts, work)
