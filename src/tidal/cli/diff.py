"""`tidal diff kustomization`: what applying a local directory would change in the cluster, as
`flux diff kustomization` prints it. Exit status 0: no change; 1: changes; 2: the diff failed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import click

from tidal.cli.build import build_flags, parse_local_sources, run_builder, split_list
from tidal.cli.ksdiff import Differ, DiffResult
from tidal.cli.localbuild import BuildFailure, BuildSettings, LocalBuilder
from tidal.cli.options import CliError, global_flags, options
from tidal.cli.output import Logger, stdout
from tidal.kube.client import Kube
from tidal.kustomize.build import Engine


class DiffError(CliError):
    """The diff could not be made (flux's exit status 2)."""

    exit_code = 2


class ChangesFound(CliError):
    """Differences were found: exit status 1, reported as a warning as flux does."""

    def show(self, file: IO[Any] | None = None) -> None:
        Logger(file).warning(self.format_message())


def aggregate(errors: Sequence[str]) -> str:
    """Kubernetes' aggregate error text: one message, or all of them (deduplicated) in []."""
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else f"[{', '.join(unique)}]"


@click.group()
def diff() -> None:
    """Compare local files with what is in the cluster."""


@diff.command("kustomization")
@click.argument("name", required=False)
@click.option(
    "--path", default="", help="The local directory matching the Kustomization's spec.path."
)
@click.option(
    "--progress-bar",
    type=bool,
    default=True,
    show_default=True,
    help="Accepted for flux compatibility; tidal shows no progress bar.",
)
@click.option(
    "-r", "--recursive", is_flag=True, help="Also diff the Kustomizations found in the build."
)
@click.option(
    "--ignore-not-found",
    is_flag=True,
    help="Diff a Kustomization missing from the cluster from --kustomization-file alone.",
)
@build_flags
@global_flags
@click.pass_context
def diff_kustomization(
    ctx: click.Context,
    name: str | None,
    path: str,
    progress_bar: bool,
    recursive: bool,
    ignore_not_found: bool,
    kustomization_file: str,
    ignore_paths: tuple[str, ...],
    strict_substitute: bool,
    local_sources: tuple[str, ...],
    in_memory_build: bool,
) -> None:
    """Build a Kustomization from a local directory, dry-run it against the cluster and print
    what would be created, changed or pruned."""
    if not name:
        raise CliError("kustomization name is required")
    if not path or not Path(path).is_dir():
        raise DiffError(f'invalid resource path "{path}"')
    if kustomization_file and not Path(kustomization_file).is_file():
        raise CliError(f'invalid kustomization file "{kustomization_file}"')
    if ignore_not_found and not kustomization_file:
        raise DiffError("kustomization file is required when assuming new kustomizations")
    opts = options(ctx)
    settings = BuildSettings(
        ignore_paths=split_list(ignore_paths),
        strict_substitute=strict_substitute,
        recursive=recursive,
        local_sources=parse_local_sources(local_sources),
        timeout=opts.timeout,
    )
    directory = Path(path).resolve()

    async def work(kube: Kube | None, engine: Engine) -> DiffResult:
        assert kube is not None
        builder = LocalBuilder(settings, kube, engine)
        try:
            ks = await builder.resolve(
                name,
                opts.namespace,
                kustomization_file=kustomization_file,
                ignore_not_found=ignore_not_found,
            )
            return await Differ(builder, kube).diff(ks, directory)
        except BuildFailure as exc:
            raise DiffError(str(exc)) from None

    result = run_builder(opts, False, work)
    if result.errors:
        raise DiffError(aggregate(result.errors))
    stdout(result.output)
    if result.changed:
        raise ChangesFound("identified at least one change, exiting with non-zero exit code")


# flux's alias.
diff.add_command(diff_kustomization, "ks")
