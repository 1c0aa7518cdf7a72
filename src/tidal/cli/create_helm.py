"""`tidal create source helm`, as `flux create source helm` does it.

The HelmRepository gets `type: oci` (and the `--oci-provider`) for an oci:// URL. Credentials
given as flags go into a Secret `helm-<name>` that secretRef names, as flux writes it: a
kubernetes.io/tls Secret for a client certificate, kubernetes.io/basic-auth for a username and
password (with ca.crt when a CA file is given), an Opaque one for a CA alone. `--export` prints
the HelmRepository only. Without it the object is written and the command waits for it to be
reconciled; an oci repository is static, so only its existence is waited for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from tidal.api.base import format_duration
from tidal.api.source import HELM_REPOSITORY_TYPE_OCI
from tidal.cli import readiness, render
from tidal.cli.cluster import Session, run, upsert_object
from tidal.cli.flags import check_object_name, create_flags, parse_labels
from tidal.cli.objects import HELM_REPOSITORY
from tidal.cli.options import CliError, GoDuration, global_flags, options
from tidal.cli.output import log, stdout
from tidal.cli.wait import wait_for


def helm_repository(
    name: str,
    namespace: str,
    labels: dict[str, str],
    *,
    url: str,
    interval: float,
    oci_provider: str = "",
    fetch_timeout: float = 0.0,
    secret_ref: str = "",
    pass_credentials: bool = False,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"url": url, "interval": format_duration(interval)}
    if urlsplit(url).scheme == HELM_REPOSITORY_TYPE_OCI:
        spec["type"] = HELM_REPOSITORY_TYPE_OCI
        if oci_provider:
            spec["provider"] = oci_provider
    if fetch_timeout > 0:
        spec["timeout"] = format_duration(fetch_timeout)
    if secret_ref:
        spec["secretRef"] = {"name": secret_ref}
        if pass_credentials:
            spec["passCredentials"] = True
    return HELM_REPOSITORY.manifest(name, namespace, spec, labels)


def helm_secret(
    name: str,
    namespace: str,
    *,
    username: str = "",
    password: str = "",
    ca: str = "",
    cert: str = "",
    key: str = "",
) -> dict[str, Any]:
    """flux's sourcesecret.GenerateHelm: the client certificate wins over basic auth."""
    data: dict[str, str] = {}
    kind = ""
    if cert or key:
        if not (cert and key):
            missing = "private key" if cert else "certificate"
            found = "certificate" if cert else "private key"
            raise CliError(f"found {found} but missing {missing}")
        data = {"tls.crt": cert, "tls.key": key}
        kind = "kubernetes.io/tls"
    elif username or password:
        for value, what in ((username, "username"), (password, "password")):
            if not value:
                raise CliError(f"{what} is required")
        data = {"username": username, "password": password}
        kind = "kubernetes.io/basic-auth"
    elif ca:
        kind = "Opaque"
    if ca:
        data["ca.crt"] = ca
    secret: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": data,
    }
    if kind:
        secret["type"] = kind
    return secret


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        raise CliError(f"{what}: open {path}: {(e.strerror or str(e)).lower()}") from None


@click.command("helm")
@click.argument("name", required=False)
@click.option("--url", default="", help="Helm repository address.")
@click.option("-u", "--username", default="", help="Basic authentication username.")
@click.option("-p", "--password", default="", help="Basic authentication password.")
@click.option("--cert-file", default="", help="TLS authentication cert file path.")
@click.option("--key-file", default="", help="TLS authentication key file path.")
@click.option("--ca-file", default="", help="TLS authentication CA file path.")
@click.option(
    "--secret-ref",
    default="",
    help="The name of an existing secret containing TLS, basic auth or docker-config credentials.",
)
@click.option("--oci-provider", default="", help="OCI provider for authentication.")
@click.option("--pass-credentials", is_flag=True, help="Pass credentials to all domains.")
@click.option(
    "--fetch-timeout",
    type=GoDuration(),
    default="0s",
    help="Timeout for fetch operations performed by the source controller (helm repo update).",
)
@create_flags
@global_flags
@click.pass_context
def create_source_helm(
    ctx: click.Context,
    name: str | None,
    url: str,
    username: str,
    password: str,
    cert_file: str,
    key_file: str,
    ca_file: str,
    secret_ref: str,
    oci_provider: str,
    pass_credentials: bool,
    fetch_timeout: float,
    interval: float,
    export: bool,
    labels: tuple[str, ...],
) -> None:
    """Create or update a HelmRepository source and wait for it to fetch the index."""
    name = check_object_name(name)
    opts = options(ctx)
    if not url:
        raise CliError("url is required")
    parsed_labels = parse_labels(labels)
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise CliError(f"url parse failed: {e}") from None
    if parts.scheme not in ("http", "https", HELM_REPOSITORY_TYPE_OCI):
        raise CliError(f"url scheme '{parts.scheme}' not supported, can be: http, https and oci")
    if not parts.netloc.rpartition("@")[2]:
        raise CliError("url host is required")
    obj = helm_repository(
        name,
        opts.namespace,
        parsed_labels,
        url=url,
        interval=interval,
        oci_provider=oci_provider,
        fetch_timeout=fetch_timeout,
        secret_ref=secret_ref,
        pass_credentials=pass_credentials,
    )
    if export:
        stdout(render.document(render.export_object(HELM_REPOSITORY, obj)))
        return
    ca = _read(ca_file, "unable to read TLS CA file") if ca_file else ""
    cert = key = ""
    if cert_file and key_file:
        cert = _read(cert_file, "failed to read cert file")
        key = _read(key_file, "failed to read key file")
    static = obj["spec"].get("type") == HELM_REPOSITORY_TYPE_OCI

    async def work(s: Session) -> None:
        from tidal.cli.create import _upsert_secret  # the create group imports this module

        log.generate("generating HelmRepository source")
        if not secret_ref:
            secret_name = f"helm-{name}"
            secret = helm_secret(
                secret_name,
                opts.namespace,
                username=username,
                password=password,
                ca=ca,
                cert=cert,
                key=key,
            )
            if secret["stringData"]:
                log.action("applying secret with repository credentials")
                await _upsert_secret(s, secret)
                obj["spec"]["secretRef"] = {"name": secret_name}
                if pass_credentials:
                    obj["spec"]["passCredentials"] = True
                log.success("authentication configured")
        log.action("applying HelmRepository source")
        created = await upsert_object(s, HELM_REPOSITORY, obj)
        log.success(f"source {'created' if created else 'updated'}")
        log.waiting("waiting for HelmRepository source reconciliation")
        live = await wait_for(
            s,
            HELM_REPOSITORY,
            name,
            readiness.status if static else readiness.ready,
            "HelmRepository source reconciliation",
        )
        log.success("HelmRepository source reconciliation completed")
        if static:
            return
        artifact = (live.get("status") or {}).get("artifact")
        if not artifact:
            raise CliError(
                "HelmRepository source reconciliation completed but no artifact was found"
            )
        log.success(f"fetched revision: {artifact.get('revision', '')}")

    run(opts, work)
