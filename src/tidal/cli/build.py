"""`tidal build kustomization`: print what a Kustomization would apply from a local directory,
as `flux build kustomization` prints it (multi-document YAML, each document ending in `---`)."""

from __future__ import annotations

import asyncio
import csv
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from tidal.cli.cluster import Session, run
from tidal.cli.localbuild import BuildFailure, BuildSettings, LocalBuilder
from tidal.cli.localkeys import local_keyring
from tidal.cli.options import CliError, GlobalOptions, global_flags, options
from tidal.cli.output import stdout
from tidal.kube import goyaml
from tidal.kube.client import Kube
from tidal.kustomize.build import Engine

T = TypeVar("T")


def split_list(values: Sequence[str]) -> tuple[str, ...]:
    """A repeatable, comma-separated flag (pflag's StringSlice: each value read as CSV)."""
    out: list[str] = []
    for value in values:
        if value:
            out.extend(next(csv.reader([value])))
    return tuple(out)


def parse_local_sources(values: Sequence[str]) -> dict[str, str]:
    """`--local-sources Kind/namespace/name=path,...` (pflag's StringToString)."""
    result: dict[str, str] = {}
    for item in split_list(values):
        key, sep, path = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item} must be formatted as key=value")
        result[key] = path
    return result


def to_yaml(objects: Sequence[dict[str, Any]]) -> str:
    return "".join(goyaml.marshal(obj) + "---\n" for obj in objects)


def build_flags(f: Callable[..., Any]) -> Callable[..., Any]:
    """The flags `build` and `diff` share."""
    for decorator in reversed(
        (
            click.option(
                "--kustomization-file",
                default="",
                help="A file holding the Kustomization to use instead of the cluster's copy.",
            ),
            click.option(
                "--ignore-paths",
                multiple=True,
                help="Paths to leave out of the build, in .gitignore syntax (comma-separated).",
            ),
            click.option(
                "--strict-substitute",
                is_flag=True,
                help="Fail when a variable without a default is missing from the postBuild "
                "variables.",
            ),
            click.option(
                "--local-sources",
                multiple=True,
                help="Local directories of the sources of nested Kustomizations, as "
                "Kind/namespace/name=path (comma-separated).",
            ),
            click.option(
                "--in-memory-build",
                is_flag=True,
                help="Accepted for flux compatibility: tidal never writes into the directory "
                "it builds.",
            ),
        )
    ):
        f = decorator(f)
    return f


async def with_engine(work: Callable[[Engine], Awaitable[T]]) -> T:
    # One build at a time, in this process: a CLI is short-lived and builds trusted input.
    engine = Engine(isolation="thread")
    try:
        return await work(engine)
    finally:
        await engine.aclose()


def run_builder(
    opts: GlobalOptions, offline: bool, work: Callable[[Kube | None, Engine], Awaitable[T]]
) -> T:
    """Run `work` with a cluster connection, or without one when `offline`."""
    try:
        if offline:
            return asyncio.run(with_engine(lambda engine: work(None, engine)))

        async def online(s: Session) -> T:
            return await with_engine(lambda engine: work(s.kube, engine))

        return run(opts, online)
    except BuildFailure as exc:
        raise CliError(str(exc)) from None


@click.group()
def build() -> None:
    """Build a Flux resource from local files."""


@build.command("kustomization")
@click.argument("name", required=False)
@click.option("--path", default="", help="The local directory to build.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Do not contact the cluster (needs --kustomization-file; substituteFrom is skipped).",
)
@click.option(
    "-r", "--recursive", is_flag=True, help="Also build the Kustomizations found in the output."
)
@click.option(
    "--decrypt",
    is_flag=True,
    help="Decrypt SOPS-encrypted sources and objects with local keys (SOPS_AGE_KEY, "
    "SOPS_AGE_KEY_FILE, ~/.config/sops/age/keys.txt, --decryption-key-file) instead of "
    "masking them.",
)
@click.option(
    "--decryption-key-file",
    multiple=True,
    help="With --decrypt: a file of age identities, or an armored OpenPGP secret key (*.asc).",
)
@build_flags
@global_flags
@click.pass_context
def build_kustomization(
    ctx: click.Context,
    name: str | None,
    path: str,
    dry_run: bool,
    recursive: bool,
    decrypt: bool,
    decryption_key_file: tuple[str, ...],
    kustomization_file: str,
    ignore_paths: tuple[str, ...],
    strict_substitute: bool,
    local_sources: tuple[str, ...],
    in_memory_build: bool,
) -> None:
    """Build a Kustomization from a local directory as the controller would, and print the
    objects (SOPS-encrypted values masked, or decrypted with --decrypt)."""
    if not name:
        raise CliError("kustomization name is required")
    if not path:
        raise CliError('invalid resource path ""')
    # Absolute but not resolved, as flux prints it in its errors.
    path = os.path.normpath(Path.cwd() / path)
    if not Path(path).is_dir():
        raise CliError(f'invalid resource path "{path}"')
    if dry_run and not kustomization_file:
        raise CliError("dry-run mode requires a kustomization file")
    if kustomization_file and not Path(kustomization_file).is_file():
        raise CliError(f'invalid kustomization file "{kustomization_file}"')
    if decryption_key_file and not decrypt:
        raise CliError("--decryption-key-file needs --decrypt")
    opts = options(ctx)
    settings = BuildSettings(
        ignore_paths=split_list(ignore_paths),
        strict_substitute=strict_substitute,
        dry_run=dry_run,
        recursive=recursive,
        local_sources=parse_local_sources(local_sources),
        timeout=opts.timeout,
        keyring=local_keyring(decryption_key_file) if decrypt else None,
    )
    directory = Path(path).resolve()

    async def work(kube: Kube | None, engine: Engine) -> str:
        builder = LocalBuilder(settings, kube, engine)
        ks = await builder.resolve(name, opts.namespace, kustomization_file=kustomization_file)
        return to_yaml(await builder.build_tree(ks, directory))

    stdout(run_builder(opts, dry_run, work))


# flux's alias.
build.add_command(build_kustomization, "ks")
