"""`tidal bootstrap git`: flux's `bootstrap git` (see tidal.bootstrap for the steps).

Boolean flags also take flux's `--flag=true|false` form (cobra's), since flux's documentation
and its own messages write `--token-auth=true` and `--allow-insecure-http=true`.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import click

from tidal.bootstrap import manifests
from tidal.bootstrap.access import Access, AccessError, Flags, decide
from tidal.bootstrap.checkout import signature
from tidal.bootstrap.steps import Options, bootstrap
from tidal.cli import gitsecret
from tidal.cli.cluster import Session, run
from tidal.cli.create import ssh_key_flags
from tidal.cli.flags import string_slice
from tidal.cli.install import component_flags, install_options
from tidal.cli.options import CliError, GoDuration, global_flags, options

_TRUE: Final = ("1", "t", "T", "TRUE", "true", "True")
_FALSE: Final = ("0", "f", "F", "FALSE", "false", "False")


class PflagBoolCommand(click.Command):
    """Reads `--flag=true` and `--flag=false` of its boolean flags as cobra does."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        flags = {
            opt: param
            for param in self.params
            if isinstance(param, click.Option) and param.is_flag
            for opt in param.opts
            if opt.startswith("--")
        }
        rewritten: list[str] = []
        for i, arg in enumerate(args):
            if arg == "--":
                rewritten.extend(args[i:])
                break
            name, eq, value = arg.partition("=")
            param = flags.get(name) if eq else None
            if param is None:
                rewritten.append(arg)
            elif value in _TRUE:
                rewritten.append(name)
            elif value in _FALSE:
                if param.secondary_opts:
                    rewritten.append(param.secondary_opts[0])
            else:
                raise CliError(
                    f'invalid argument "{value}" for "{name}" flag: strconv.ParseBool: '
                    f'parsing "{value}": invalid syntax'
                )
        return super().parse_args(ctx, rewritten)


@click.group("bootstrap")
def bootstrap_group() -> None:
    """Deploy tidal on a cluster the GitOps way."""


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise CliError(f"{what}: open {path}: {(e.strerror or str(e)).lower()}") from None


def _read_password(prompt: str) -> str:
    """flux's readPasswordFromStdin: the prompt on stdout, the answer hidden on a terminal."""
    if sys.stdin.isatty():
        return str(click.prompt(prompt, hide_input=True, prompt_suffix="", default=""))
    sys.stdout.write(prompt)
    sys.stdout.flush()
    line = sys.stdin.readline()
    sys.stdout.write("\n")
    return line.rstrip("\r\n")


def _components(values: Sequence[str], extra: Sequence[str]) -> tuple[str, ...]:
    components = (*string_slice(values), *string_slice(extra))
    try:
        manifests.check_components(components)
    except manifests.ComponentsError as e:
        raise CliError(str(e)) from None
    return components


@bootstrap_group.command("git", cls=PflagBoolCommand)
@click.option("--url", default="", help="Git repository URL.")
@click.option(
    "--interval", type=GoDuration(), default="1m", show_default=True, help="Sync interval."
)
@click.option(
    "--path",
    "target_path",
    default="",
    help="Path relative to the repository root; the cluster syncs this directory.",
)
@click.option(
    "-u", "--username", default="git", show_default=True, help="Basic authentication username."
)
@click.option(
    "-p",
    "--password",
    default="",
    envvar="GIT_PASSWORD",
    show_envvar=True,
    help="Basic authentication password (or bearer token with --with-bearer-token).",
)
@click.option(
    "-s", "--silent", is_flag=True, help="Assume the deploy key is already set up; no prompt."
)
@click.option("--allow-insecure-http", is_flag=True, help="Allow insecure HTTP connections.")
@click.option(
    "--with-bearer-token",
    is_flag=True,
    help="Use the password as a bearer token for the Authorization header.",
)
@click.option("--branch", default="main", show_default=True, help="Git branch.")
@click.option(
    "--recurse-submodules",
    is_flag=True,
    help="Make the GitRepository include Git submodules in its artifact.",
)
@click.option(
    "--sparse-checkout",
    multiple=True,
    help="Directories of the GitRepository's sparse checkout (comma-separated or repeated).",
)
@click.option(
    "--components",
    multiple=True,
    default=(",".join(manifests.DEFAULT_COMPONENTS),),
    show_default=True,
    help="Components, comma-separated (tidal runs them all in one Deployment).",
)
@click.option("--components-extra", multiple=True, help="Components in addition to those.")
@component_flags
@click.option(
    "--secret-name",
    default="flux-system",
    show_default=True,
    help="Name of the Secret the sync credentials are stored in.",
)
@click.option(
    "--token-auth",
    is_flag=True,
    help="Sync with the password (token) over HTTP(S) instead of an SSH deploy key.",
)
@ssh_key_flags
@click.option("--ssh-hostname", default="", help="SSH hostname, when it differs from the URL's.")
@click.option("--ca-file", default="", help="Path to a TLS CA file for self-signed certificates.")
@click.option(
    "--private-key-file",
    default="",
    help="Path to a private key file used for authenticating to the Git SSH server.",
)
@click.option("--author-name", default="Flux", show_default=True, help="Author of the commits.")
@click.option("--author-email", default="", help="Author email of the commits.")
@click.option("--commit-message-appendix", default="", help="Text added to the commit messages.")
@click.option(
    "--force",
    is_flag=True,
    help="Take over an installation managed by another tool (such as Helm).",
)
@global_flags
@click.pass_context
def bootstrap_git(ctx: click.Context, /, **flags: Any) -> None:
    """Commit tidal's manifests to a Git branch and make the cluster sync from it."""
    # paramiko's transport thread logs a failed handshake with its traceback; the failure
    # itself is reported as a one-line error.
    logging.getLogger("paramiko").setLevel(logging.CRITICAL + 1)
    opts = options(ctx)
    if not flags["url"]:
        raise CliError("--url is required (e.g. --url=https://host/org/repository)")
    components = _components(flags["components"], flags["components_extra"])
    token_auth = bool(flags["token_auth"] or flags["with_bearer_token"])
    password: str = flags["password"]
    if token_auth and not password:
        password = _read_password("Please enter your Git repository password: ")
    access = _access(flags, opts.namespace, password)
    bootstrap_opts = Options(
        url=flags["url"],
        branch=flags["branch"],
        access=access,
        install=install_options(opts.namespace, flags),
        components=components,
        sync=manifests.SyncOptions(
            name=opts.namespace,
            namespace=opts.namespace,
            url=access.sync_url,
            branch=flags["branch"],
            interval=flags["interval"],
            secret_name=flags["secret_name"],
            target_path=manifests.safe_relative_path(flags["target_path"]),
            recurse_submodules=flags["recurse_submodules"],
            sparse_checkout=tuple(string_slice(flags["sparse_checkout"])),
        ),
        author=signature(flags["author_name"], flags["author_email"]),
        message_appendix=flags["commit_message_appendix"],
        silent=flags["silent"],
        force=flags["force"],
        token_auth=token_auth,
    )

    async def work(s: Session) -> None:
        with tempfile.TemporaryDirectory(prefix="flux-bootstrap-") as tmp:
            await bootstrap(s, bootstrap_opts, Path(tmp))

    run(opts, work)


def _access(flags: dict[str, Any], namespace: str, password: str) -> Access:
    """The Git access the flags describe; over SSH, with the server's host key as it presents
    it now (trust on first use for this run, as flux's own connection does)."""
    ca_bundle = _read(flags["ca_file"], "unable to read TLS CA file") if flags["ca_file"] else b""
    private_key = b""
    if flags["private_key_file"]:
        private_key = _read(flags["private_key_file"], "failed to open private key file")
    bits = flags["ssh_rsa_bits"]
    if bits < 1024:
        raise CliError("RSA key bit size must be at least 1024")
    if bits % 8:
        raise CliError("RSA key bit size must be a multiples of 8")
    try:
        access = decide(
            Flags(
                url=flags["url"],
                username=flags["username"],
                password=password,
                token_auth=flags["token_auth"],
                with_bearer_token=flags["with_bearer_token"],
                allow_insecure_http=flags["allow_insecure_http"],
                ca_bundle=ca_bundle,
                private_key=private_key,
                ssh_hostname=flags["ssh_hostname"],
                secret_name=flags["secret_name"],
                namespace=namespace,
                key_algorithm=flags["ssh_key_algorithm"],
                rsa_bits=bits,
                ecdsa_curve=flags["ssh_ecdsa_curve"],
            )
        )
    except AccessError as e:
        raise CliError(f"failed to create authentication options: {e}") from None
    if access.ssh:
        host = urlsplit(flags["url"]).netloc.rpartition("@")[2]
        access = access.with_known_hosts(gitsecret.scan_host_key(host))
    return access
