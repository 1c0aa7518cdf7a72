"""`tidal create source git` and `tidal create secret git`, as `flux create` does them,
`tidal create secret age` (tidal's own: the decryption Secret of SOPS-encrypted Kustomizations),
and the `create` group, which `create kustomization` joins from its own module.

Without `--export` the objects are written as flux writes them: read the object, create it when
missing, otherwise replace its labels and spec (flux's upsert; not a server-side apply), under
the field manager the flux CLI is recorded with. `create source git` then waits for the source
to be reconciled, as flux does, within `--timeout`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click

from tidal.api.base import format_duration
from tidal.cli import gitsecret, readiness, render
from tidal.cli.cluster import Session, create_or_update, run, upsert_object
from tidal.cli.create_kustomization import create_kustomization
from tidal.cli.flags import check_object_name, create_flags, parse_labels, string_slice
from tidal.cli.gitsecret import ECDSA_CURVES, KEY_ALGORITHMS, GitSecretOptions
from tidal.cli.objects import GIT_REPOSITORY
from tidal.cli.options import CliError, GoDuration, global_flags, options
from tidal.cli.output import log, stdout
from tidal.cli.wait import wait_for
from tidal.sops.errors import SopsError
from tidal.sops.keys import Keyring

F = TypeVar("F", bound=Callable[..., Any])

GIT_PROVIDERS = ("generic", "github", "aws", "azure")


def ssh_key_flags(f: F) -> F:
    for decorator in reversed(
        (
            click.option(
                "--ssh-key-algorithm",
                type=click.Choice(KEY_ALGORITHMS),
                default="ecdsa",
                show_default=True,
                help="SSH public key algorithm.",
            ),
            click.option(
                "--ssh-rsa-bits",
                type=int,
                default=2048,
                show_default=True,
                help="SSH RSA public key bit size (multiples of 8, min 1024).",
            ),
            click.option(
                "--ssh-ecdsa-curve",
                type=click.Choice(ECDSA_CURVES),
                default="p384",
                show_default=True,
                help="SSH ECDSA public key curve.",
            ),
        )
    ):
        f = decorator(f)
    return f


@click.group()
def create() -> None:
    """Create or update sources and resources."""


create.add_command(create_kustomization)
create.add_command(create_kustomization, "ks")


@create.group("source")
def create_source() -> None:
    """Create or update sources."""


def _add_helm() -> None:
    # Imported here: create_helm reuses this module's Secret upsert.
    from tidal.cli.create_helm import create_source_helm

    create_source.add_command(create_source_helm)

    from tidal.cli.create_chart import create_source_chart

    create_source.add_command(create_source_chart)


_add_helm()


def _add_oci() -> None:
    from tidal.cli.create_oci import create_source_oci

    create_source.add_command(create_source_oci)


_add_oci()


def _add_helm_release() -> None:
    from tidal.cli.create_helmrelease import create_helmrelease

    create.add_command(create_helmrelease)
    create.add_command(create_helmrelease, "hr")


_add_helm_release()


@create.group("secret")
def create_secret() -> None:
    """Create or update Kubernetes secrets for Flux sources."""


@dataclass(frozen=True)
class _Url:
    scheme: str
    host: str  # host[:port], without user info


def _parse_url(url: str | None) -> _Url:
    if not url:
        raise CliError("url is required")
    try:
        parts = urlsplit(url)
    except ValueError as e:
        raise CliError(f"git URL parse failed: {e}") from None
    host = parts.netloc.rpartition("@")[2]
    return _Url(parts.scheme.lower(), host)


def _check_rsa_bits(bits: int) -> None:
    if bits < 1024:
        raise CliError("RSA key bit size must be at least 1024")
    if bits % 8:
        raise CliError("RSA key bit size must be a multiples of 8")


def _os_error(path: str, e: OSError) -> str:
    # Go's wording ("open <path>: no such file or directory"), which flux prints.
    return f"open {path}: {(e.strerror or str(e)).lower()}"


def _read_file(path: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        raise CliError(f"{what}: {_os_error(path, e)}") from None


def _load_keypair(path: str, password: str) -> gitsecret.KeyPair | None:
    if not path:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise CliError(f"failed to open private key file: {_os_error(path, e)}") from None
    return gitsecret.load_keypair(data, password)


def git_repository(
    name: str,
    namespace: str,
    labels: dict[str, str],
    spec: dict[str, Any],
) -> dict[str, Any]:
    return GIT_REPOSITORY.manifest(name, namespace, spec, labels)


def git_repository_spec(
    *,
    url: str,
    interval: float,
    branch: str = "",
    tag: str = "",
    semver: str = "",
    ref_name: str = "",
    commit: str = "",
    secret_ref: str = "",
    proxy_secret_ref: str = "",
    provider: str = "",
    recurse_submodules: bool = False,
    ignore_paths: list[str] | None = None,
    sparse_checkout_paths: list[str] | None = None,
    fetch_timeout: float = 0.0,
) -> dict[str, Any]:
    """The spec `flux create source git` builds from its flags; one ref wins, in flux's order
    commit (with its branch), ref name, semver, tag, branch."""
    if commit:
        ref = {"commit": commit, "branch": branch}
    elif ref_name:
        ref = {"name": ref_name}
    elif semver:
        ref = {"semver": semver}
    elif tag:
        ref = {"tag": tag}
    else:
        ref = {"branch": branch}
    spec: dict[str, Any] = {
        "url": url,
        "interval": format_duration(interval),
        "ref": {k: v for k, v in ref.items() if v},
    }
    if fetch_timeout > 0:
        spec["timeout"] = format_duration(fetch_timeout)
    if recurse_submodules:
        spec["recurseSubmodules"] = True
    if ignore_paths:
        spec["ignore"] = "\n".join(ignore_paths)
    if sparse_checkout_paths:
        spec["sparseCheckout"] = list(sparse_checkout_paths)
    if secret_ref:
        spec["secretRef"] = {"name": secret_ref}
    if proxy_secret_ref:
        spec["proxySecretRef"] = {"name": proxy_secret_ref}
    if provider:
        spec["provider"] = provider
    return spec


async def _upsert_secret(s: Session, secret: dict[str, Any]) -> None:
    """flux's upsertSecret: create, or set stringData and merge labels and annotations."""
    meta = secret["metadata"]
    path = f"/api/v1/namespaces/{meta['namespace']}/secrets/{meta['name']}"

    def mutate(existing: dict[str, Any]) -> None:
        existing["stringData"] = secret.get("stringData") or {}
        emeta = existing.setdefault("metadata", {})
        for key in ("annotations", "labels"):
            if meta.get(key):
                emeta[key] = {**(emeta.get(key) or {}), **meta[key]}

    await create_or_update(
        s, path, f"/api/v1/namespaces/{meta['namespace']}/secrets", secret, mutate
    )


@create_source.command("git")
@click.argument("name", required=False)
@click.option("--url", help="Git address, e.g. ssh://git@host/org/repository.")
@click.option("--branch", default="", help="Git branch.")
@click.option("--tag", default="", help="Git tag.")
@click.option("--tag-semver", "semver", default="", help="Git tag semver range.")
@click.option("--ref-name", default="", help="Git reference name.")
@click.option("--commit", default="", help="Git commit.")
@click.option("-u", "--username", default="", help="Basic authentication username.")
@click.option("-p", "--password", default="", help="Basic authentication password.")
@ssh_key_flags
@click.option(
    "--secret-ref",
    default="",
    help="The name of an existing secret containing SSH or basic credentials.",
)
@click.option(
    "--proxy-secret-ref",
    default="",
    help="The name of an existing secret containing the proxy address and credentials.",
)
@click.option("--provider", type=click.Choice(GIT_PROVIDERS), help="The Git provider name.")
@click.option("--ca-file", default="", help="Path to a TLS CA file for self-signed certificates.")
@click.option(
    "--private-key-file",
    default="",
    help="Path to a private key file used for authenticating to the Git SSH server.",
)
@click.option(
    "--recurse-submodules",
    is_flag=True,
    help="Initialize and include Git submodules in the artifact.",
)
@click.option(
    "-s", "--silent", is_flag=True, help="Assume the deploy key is already set up; no prompt."
)
@click.option(
    "--ignore-paths",
    multiple=True,
    help="Paths to ignore in the Git source (several with commas: path1,path2).",
)
@click.option(
    "--sparse-checkout-paths",
    multiple=True,
    help="Paths to sparse checkout (several with commas: path1,path2).",
)
@click.option(
    "--fetch-timeout",
    type=GoDuration(),
    default="0s",
    help="Timeout for fetch operations performed by the source controller (e.g. git clone).",
)
@create_flags
@global_flags
@click.pass_context
def create_source_git(
    ctx: click.Context,
    name: str | None,
    url: str | None,
    branch: str,
    tag: str,
    semver: str,
    ref_name: str,
    commit: str,
    username: str,
    password: str,
    ssh_key_algorithm: str,
    ssh_rsa_bits: int,
    ssh_ecdsa_curve: str,
    secret_ref: str,
    proxy_secret_ref: str,
    provider: str | None,
    ca_file: str,
    private_key_file: str,
    recurse_submodules: bool,
    silent: bool,
    ignore_paths: tuple[str, ...],
    sparse_checkout_paths: tuple[str, ...],
    fetch_timeout: float,
    interval: float,
    export: bool,
    labels: tuple[str, ...],
) -> None:
    """Create or update a GitRepository source and wait for it to be reconciled."""
    name = check_object_name(name)
    opts = options(ctx)
    target = _parse_url(url)
    assert url is not None
    if target.scheme not in ("ssh", "http", "https"):
        raise CliError(
            f"git URL scheme '{target.scheme}' not supported, can be: ssh, http and https"
        )
    if not (branch or tag or semver or commit or ref_name):
        raise CliError(
            "a Git ref is required, use one of the following: --branch, --tag, --commit, "
            "--ref-name or --tag-semver"
        )
    if ca_file and target.scheme == "ssh":
        raise CliError("specifying a CA file is not supported for Git over SSH")
    _check_rsa_bits(ssh_rsa_bits)
    obj = git_repository(
        name,
        opts.namespace,
        parse_labels(labels),
        git_repository_spec(
            url=url,
            interval=interval,
            branch=branch,
            tag=tag,
            semver=semver,
            ref_name=ref_name,
            commit=commit,
            secret_ref=secret_ref,
            proxy_secret_ref=proxy_secret_ref,
            provider=provider or "",
            recurse_submodules=recurse_submodules,
            ignore_paths=string_slice(ignore_paths),
            sparse_checkout_paths=string_slice(sparse_checkout_paths),
            fetch_timeout=fetch_timeout,
        ),
    )
    if export:
        stdout(render.document(render.export_object(GIT_REPOSITORY, obj)))
        return

    secret_opts: GitSecretOptions | None = None
    if not secret_ref:
        secret_opts = GitSecretOptions(name=name, namespace=opts.namespace)
        if target.scheme == "ssh":
            secret_opts.keypair = _load_keypair(private_key_file, password)
            secret_opts.ssh_host = target.host
            secret_opts.key_algorithm = ssh_key_algorithm
            secret_opts.rsa_bits = ssh_rsa_bits
            secret_opts.ecdsa_curve = ssh_ecdsa_curve
            secret_opts.password = password
        elif target.scheme == "https":
            if ca_file:
                secret_opts.ca_crt = _read_file(ca_file, "unable to read TLS CA file")
            secret_opts.username, secret_opts.password = username, password
        else:
            secret_opts.username, secret_opts.password = username, password

    async def work(s: Session) -> None:
        log.generate("generating GitRepository source")
        if secret_opts is not None and target.scheme == "http":
            log.warning("insecure configuration: credentials configured for an HTTP URL")
        if secret_opts is not None:
            secret = gitsecret.git_secret(secret_opts)
            data = secret.get("stringData") or {}
            if data:
                if gitsecret.KNOWN_HOSTS in data:
                    log.success(
                        f"collected public key from SSH server:\n{data[gitsecret.KNOWN_HOSTS]}"
                    )
                if gitsecret.IDENTITY_PUB in data:
                    log.generate(f"deploy key: {data[gitsecret.IDENTITY_PUB]}")
                    if not silent and not click.confirm(
                        "Have you added the deploy key to your repository", err=True
                    ):
                        raise CliError("aborting")
                log.action("applying secret with repository credentials")
                await _upsert_secret(s, secret)
                obj["spec"]["secretRef"] = {"name": secret["metadata"]["name"]}
                log.success("authentication configured")

        log.action("applying GitRepository source")

        created = await upsert_object(s, GIT_REPOSITORY, obj)
        log.success(f"GitRepository source {'created' if created else 'updated'}")

        log.waiting("waiting for GitRepository source reconciliation")
        live = await wait_for(
            s, GIT_REPOSITORY, name, readiness.ready, "GitRepository source reconciliation"
        )
        log.success("GitRepository source reconciliation completed")
        artifact = (live.get("status") or {}).get("artifact")
        if not artifact:
            raise CliError(
                "GitRepository source reconciliation completed but no artifact was found"
            )
        log.success(f"fetched revision: {artifact.get('revision', '')}")

    run(opts, work)


@create_secret.command("git")
@click.argument("name", required=False)
@click.option("--url", help="Git address, e.g. ssh://git@host/org/repository.")
@click.option("-u", "--username", default="", help="Basic authentication username.")
@click.option("-p", "--password", default="", help="Basic authentication password.")
@ssh_key_flags
@click.option(
    "--ca-crt-file",
    default="",
    help="Path to a TLS CA certificate file for self-signed certificates.",
)
@click.option(
    "--private-key-file",
    default="",
    help="Path to a private key file used for authenticating to the Git SSH server.",
)
@click.option("--bearer-token", default="", help="Bearer authentication token.")
@create_flags
@global_flags
@click.pass_context
def create_secret_git(
    ctx: click.Context,
    name: str | None,
    url: str | None,
    username: str,
    password: str,
    ssh_key_algorithm: str,
    ssh_rsa_bits: int,
    ssh_ecdsa_curve: str,
    ca_crt_file: str,
    private_key_file: str,
    bearer_token: str,
    interval: float,
    export: bool,
    labels: tuple[str, ...],
) -> None:
    """Create or update a Kubernetes secret for Git authentication."""
    name = check_object_name(name)
    opts = options(ctx)
    target = _parse_url(url)
    secret_opts = GitSecretOptions(name=name, namespace=opts.namespace, labels=parse_labels(labels))
    if target.scheme == "ssh":
        _check_rsa_bits(ssh_rsa_bits)
        secret_opts.keypair = _load_keypair(private_key_file, password)
        secret_opts.ssh_host = target.host
        secret_opts.key_algorithm = ssh_key_algorithm
        secret_opts.rsa_bits = ssh_rsa_bits
        secret_opts.ecdsa_curve = ssh_ecdsa_curve
        secret_opts.password = password
    elif target.scheme in ("http", "https"):
        if (not username or not password) and not bearer_token:
            raise CliError(
                "for Git over HTTP/S the username and password, or a bearer token is required"
            )
        if username and password and bearer_token:
            raise CliError("user credentials and bearer token cannot be used together")
        secret_opts.username, secret_opts.password = username, password
        secret_opts.bearer_token = bearer_token
        if ca_crt_file:
            secret_opts.ca_crt = _read_file(ca_crt_file, "unable to read TLS CA file")
    else:
        raise CliError(
            f"git URL scheme '{target.scheme}' not supported, can be: ssh, http and https"
        )

    secret = gitsecret.git_secret(secret_opts)
    if export:
        stdout(gitsecret.export_text(secret))
        return

    public_key = (secret.get("stringData") or {}).get(gitsecret.IDENTITY_PUB)
    if public_key:
        log.generate(f"deploy key: {public_key}")

    async def work(s: Session) -> None:
        await _upsert_secret(s, secret)

    run(opts, work)
    log.action(f"git secret '{name}' created in '{opts.namespace}' namespace")


AGE_SECRET_KEY = "age.agekey"  # noqa: S105 - a data key name


@create_secret.command("age")
@click.argument("name", required=False)
@click.option(
    "--age-key-file",
    default="",
    help="Path to an age identity file (as age-keygen writes it; '-' reads standard input).",
)
@create_flags
@global_flags
@click.pass_context
def create_secret_age(
    ctx: click.Context,
    name: str | None,
    age_key_file: str,
    interval: float,
    export: bool,
    labels: tuple[str, ...],
) -> None:
    """Create or update a Kubernetes secret with age keys for SOPS decryption
    (spec.decryption.secretRef of a Kustomization)."""
    name = check_object_name(name)
    opts = options(ctx)
    if not age_key_file:
        raise CliError("--age-key-file is required")
    if age_key_file == "-":
        text = sys.stdin.read()
    else:
        text = _read_file(age_key_file, "unable to read age key file")
    try:
        recipients = Keyring().import_age(text)
    except SopsError as e:
        raise CliError(f"invalid age key file: {e}") from None
    secret = gitsecret.secret_manifest(
        name, opts.namespace, parse_labels(labels), {AGE_SECRET_KEY: text}
    )
    if export:
        stdout(gitsecret.export_text(secret))
        return
    for recipient in recipients:
        log.generate(f"age recipient: {recipient}")

    async def work(s: Session) -> None:
        await _upsert_secret(s, secret)

    run(opts, work)
    log.action(f"age secret '{name}' created in '{opts.namespace}' namespace")
