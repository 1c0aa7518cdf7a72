"""`tidal create source oci`, as `flux create source oci` does it.

The OCIRepository is written as flux writes it (spec.provider always set, ref holding whichever
of --tag, --tag-semver and --digest is given, --ignore-paths joined by newlines, the layer
selector from `<media-type>:<operation>`); `--export` prints it. Otherwise the object is
created or its labels and spec replaced, and the command waits until it is Ready and prints the
fetched revision.
"""

from __future__ import annotations

from typing import Any

import click

from tidal.api.base import format_duration
from tidal.cli import readiness, render
from tidal.cli.cluster import Session, run, upsert_object
from tidal.cli.flags import (
    PflagValue,
    check_object_name,
    create_flags,
    parse_labels,
    string_slice,
)
from tidal.cli.objects import OCI_REPOSITORY
from tidal.cli.options import CliError, GoDuration, global_flags, options
from tidal.cli.output import log, stdout
from tidal.cli.wait import wait_for

PROVIDERS = ("generic", "aws", "azure", "gcp")
VERIFY_PROVIDERS = ("cosign",)


def _provider(value: str) -> str:
    if not value:
        raise ValueError("no source OCI provider given, please specify the OCI provider name")
    if value not in PROVIDERS:
        raise ValueError(
            f"source OCI provider '{value}' is not supported, must be one of: "
            + ", ".join(PROVIDERS)
        )
    return value


def _verify_provider(value: str) -> str:
    if not value:
        raise ValueError(
            "no source OCI verify provider given, please specify the OCI verify provider name "
            "to use for signature verification, available options are: ("
            + ", ".join(VERIFY_PROVIDERS)
            + ")"
        )
    if value not in VERIFY_PROVIDERS:
        raise ValueError(
            f"source OCI verify provider '{value}' is not supported, must be one of: "
            + ", ".join(VERIFY_PROVIDERS)
        )
    return value


def parse_layer_selector(selector: str) -> dict[str, str] | None:
    """flux's parseLayerSelector: `<media-type>:<operation>`."""
    if not selector:
        return None
    media_type, sep, operation = selector.partition(":")
    if not sep or not media_type or not operation:
        raise CliError(
            f'invalid --layer-selector "{selector}": must be in the format '
            "'<media-type>:<operation>'"
        )
    if operation not in ("extract", "copy"):
        raise CliError(
            f'invalid --layer-selector "{selector}": operation must be "extract" or "copy"'
        )
    return {"mediaType": media_type, "operation": operation}


def oci_repository(
    name: str,
    namespace: str,
    labels: dict[str, str],
    *,
    url: str,
    interval: float,
    provider: str = "generic",
    tag: str = "",
    semver: str = "",
    digest: str = "",
    ignore_paths: tuple[str, ...] = (),
    insecure: bool = False,
    layer_selector: dict[str, str] | None = None,
    fetch_timeout: float = 0.0,
    service_account: str = "",
    secret_ref: str = "",
    proxy_secret_ref: str = "",
    cert_ref: str = "",
    verify: dict[str, Any] | None = None,
) -> dict[str, Any]:
    ref = {k: v for k, v in (("digest", digest), ("semver", semver), ("tag", tag)) if v}
    spec: dict[str, Any] = {"provider": provider, "url": url, "ref": ref}
    if insecure:
        spec["insecure"] = True
    spec["interval"] = format_duration(interval)
    if ignore_paths:
        spec["ignore"] = "\n".join(ignore_paths)
    if layer_selector:
        spec["layerSelector"] = layer_selector
    if fetch_timeout > 0:
        spec["timeout"] = format_duration(fetch_timeout)
    if service_account:
        spec["serviceAccountName"] = service_account
    for key, value in (
        ("secretRef", secret_ref),
        ("proxySecretRef", proxy_secret_ref),
        ("certSecretRef", cert_ref),
    ):
        if value:
            spec[key] = {"name": value}
    if verify:
        spec["verify"] = verify
    return OCI_REPOSITORY.manifest(name, namespace, spec, labels)


def _verification(provider: str, secret: str, issuer: str, subject: str) -> dict[str, Any] | None:
    if not provider:
        if secret:
            raise CliError("a verification provider must be specified when a secret is specified")
        if issuer or subject:
            raise CliError(
                "a verification provider must be specified when OIDC issuer/subject is specified"
            )
        return None
    verify: dict[str, Any] = {"provider": provider}
    if secret:
        verify["secretRef"] = {"name": secret}
    if issuer or subject:
        verify["matchOIDCIdentity"] = [{"issuer": issuer, "subject": subject}]
    return verify


@click.command("oci")
@click.argument("name", required=False)
@click.option("--url", default="", help="the OCI repository URL")
@click.option("--tag", default="", help="the OCI artifact tag")
@click.option("--tag-semver", "semver", default="", help="the OCI artifact tag semver range")
@click.option("--digest", default="", help="the OCI artifact digest")
@click.option(
    "--secret-ref",
    default="",
    help="the name of the Kubernetes image pull secret (type 'kubernetes.io/dockerconfigjson')",
)
@click.option(
    "--proxy-secret-ref",
    default="",
    help="the name of an existing secret containing the proxy address and credentials",
)
@click.option(
    "--service-account",
    default="",
    help="the name of the Kubernetes service account that refers to an image pull secret",
)
@click.option("--cert-ref", default="", help="the name of a secret to use for TLS certificates")
@click.option(
    "--provider",
    type=PflagValue("provider", _provider),
    default="generic",
    help="the OCI provider name, available options are: (generic, aws, azure, gcp)",
)
@click.option(
    "--verify-provider",
    type=PflagValue("verify-provider", _verify_provider),
    default=None,
    help="the OCI verification provider name to use for signature verification",
)
@click.option(
    "--verify-secret-ref", default="", help="the name of a secret to use for signature verification"
)
@click.option(
    "--verify-subject",
    default="",
    help="regular expression to use for the OIDC subject during signature verification",
)
@click.option(
    "--verify-issuer",
    default="",
    help="regular expression to use for the OIDC issuer during signature verification",
)
@click.option(
    "--ignore-paths",
    multiple=True,
    help="set paths to ignore resources (can specify multiple paths with commas: path1,path2)",
)
@click.option(
    "--insecure", is_flag=True, help="for when connecting to a non-TLS registries over plain HTTP"
)
@click.option(
    "--layer-selector",
    default="",
    help="the OCI artifact layer selector in the format '<media-type>:<operation>'",
)
@click.option(
    "--fetch-timeout",
    type=GoDuration(),
    default="0s",
    help="set a timeout for fetch operations performed by source-controller",
)
@create_flags
@global_flags
@click.pass_context
def create_source_oci(
    ctx: click.Context,
    name: str | None,
    url: str,
    tag: str,
    semver: str,
    digest: str,
    secret_ref: str,
    proxy_secret_ref: str,
    service_account: str,
    cert_ref: str,
    provider: str,
    verify_provider: str | None,
    verify_secret_ref: str,
    verify_subject: str,
    verify_issuer: str,
    ignore_paths: tuple[str, ...],
    insecure: bool,
    layer_selector: str,
    fetch_timeout: float,
    interval: float,
    export: bool,
    labels: tuple[str, ...],
) -> None:
    """Create or update an OCIRepository and wait for it to be ready."""
    name = check_object_name(name)
    opts = options(ctx)
    if not url:
        raise CliError("url is required")
    if not (semver or tag or digest):
        raise CliError("--tag, --tag-semver or --digest is required")
    selector = parse_layer_selector(layer_selector)
    parsed_labels = parse_labels(labels)
    verify = _verification(verify_provider or "", verify_secret_ref, verify_issuer, verify_subject)
    obj = oci_repository(
        name,
        opts.namespace,
        parsed_labels,
        url=url,
        interval=interval,
        provider=provider,
        tag=tag,
        semver=semver,
        digest=digest,
        ignore_paths=tuple(string_slice(ignore_paths)),
        insecure=insecure,
        layer_selector=selector,
        fetch_timeout=fetch_timeout,
        service_account=service_account,
        secret_ref=secret_ref,
        proxy_secret_ref=proxy_secret_ref,
        cert_ref=cert_ref,
        verify=verify,
    )
    if export:
        stdout(render.document(render.export_object(OCI_REPOSITORY, obj)))
        return

    async def work(s: Session) -> None:
        log.action("applying OCIRepository")
        created = await upsert_object(s, OCI_REPOSITORY, obj)
        log.success(f"OCIRepository {'created' if created else 'updated'}")
        log.waiting("waiting for OCIRepository reconciliation")
        live = await wait_for(
            s, OCI_REPOSITORY, name, readiness.ready, "OCIRepository reconciliation"
        )
        log.success("OCIRepository reconciliation completed")
        artifact = (live.get("status") or {}).get("artifact")
        if not artifact:
            raise CliError("no artifact was found")
        log.success(f"fetched revision: {artifact.get('revision', '')}")

    run(opts, work)
