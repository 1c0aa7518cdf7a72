"""`tidal suspend|resume source git|kustomization`: set or clear spec.suspend with a merge
patch.

As flux: several names or `--all`; resume then waits for the object to be reconciled when one
name is given (or `--wait`), and reports each object with flux's success line ("fetched
revision ..." for sources, "applied revision ..." for Kustomizations). flux computes its patch
as the difference to the object it read, which for `suspend: false` (an omitempty field) means
removing the field, so resume sends `{"spec": {"suspend": null}}`.
"""

from __future__ import annotations

from typing import Any

import click

from tidal.cli import readiness
from tidal.cli.cluster import Session, list_objects, merge_patch, run
from tidal.cli.objects import GIT_REPOSITORY, HELM_REPOSITORY, KUSTOMIZATION, ObjectKind, is_static
from tidal.cli.options import CliError, global_flags, options
from tidal.cli.output import log
from tidal.cli.wait import WaitTimeout, wait_for


def _unique(names: tuple[str, ...]) -> list[str]:
    return list(dict.fromkeys(names))


async def _targets(
    s: Session, kind: ObjectKind, names: tuple[str, ...], all_: bool
) -> tuple[list[dict[str, Any]], list[str]]:
    """The objects named and the names not found, or with `--all` every object in the
    namespace."""
    if not names and all_:
        items = await list_objects(s, kind)
        if not items:
            raise CliError(f"no {kind.kind} objects found in {s.namespace} namespace")
        return items, []
    found: list[dict[str, Any]] = []
    missing: list[str] = []
    for name in _unique(names):
        items = await list_objects(s, kind, name=name)
        if items:
            found.extend(items)
        else:
            missing.append(name)
    return found, missing


def _missing_error(template: str, missing: list[str], namespace: str) -> CliError:
    # flux only logs missing objects and exits 0; a script deserves a failing status.
    return CliError("; ".join(template.format(name=n, namespace=namespace) for n in missing))


def suspend_objects(
    ctx: click.Context, kind: ObjectKind, names: tuple[str, ...], all_: bool
) -> None:
    if not names and not all_:
        raise CliError(f"{kind.human} name is required")
    opts = options(ctx)

    async def work(s: Session) -> list[str]:
        found, missing = await _targets(s, kind, names, all_)
        for obj in found:
            name = obj["metadata"]["name"]
            log.action(f"suspending {kind.human} {name} in {s.namespace} namespace")
            await merge_patch(s, kind, name, {"spec": {"suspend": True}})
            log.success(f"{kind.human} suspended")
        return missing

    missing = run(opts, work)
    if missing:
        raise _missing_error(
            f"{kind.kind} {{name}} not found in {{namespace}} namespace", missing, opts.namespace
        )


def resume_objects(
    ctx: click.Context, kind: ObjectKind, names: tuple[str, ...], all_: bool, wait: bool | None
) -> None:
    if not names and not all_:
        raise CliError(f"{kind.human} name is required")
    opts = options(ctx)
    # flux waits when exactly one object is named, unless --wait says otherwise.
    should_wait = wait if wait is not None else len(names) == 1

    async def work(s: Session) -> tuple[int, list[str]]:
        resumed: list[str] = []
        static: set[str] = set()
        found, missing = await _targets(s, kind, names, all_)
        for obj in found:
            name = obj["metadata"]["name"]
            if is_static(obj):
                static.add(name)
            log.action(f"resuming {kind.human} {name} in {s.namespace} namespace")
            await merge_patch(s, kind, name, {"spec": {"suspend": None}})
            resumed.append(name)
            log.success(f"{kind.human} resumed")
        if not should_wait:
            return 0, missing
        failures = 0
        for name in sorted(resumed):
            log.waiting(f"waiting for {kind.kind} reconciliation")
            try:
                # An oci HelmRepository is never reconciled: flux only checks it is current.
                check = readiness.status if name in static else readiness.ready
                live = await wait_for(s, kind, name, check, f"{kind.kind} {name} reconciliation")
            except WaitTimeout as e:
                failures += 1
                log.failure(
                    f"{kind.kind} {name} reconciliation failed: timed out after {e.after}: "
                    + e.reason
                )
                continue
            except CliError as e:
                failures += 1
                log.failure(f"{kind.kind} {name} reconciliation failed: {e.format_message()}")
                continue
            log.success(f"{kind.kind} {name} reconciliation completed")
            message = kind.success(live)
            if message is not None:
                log.success(message)
        return failures, missing

    failures, missing = run(opts, work)
    if failures:
        raise CliError(f"reconciliation failed for {failures} {kind.kind}(s)")
    if missing:
        raise _missing_error(
            f"{kind.kind} object '{{name}}' not found in {{namespace}} namespace",
            missing,
            opts.namespace,
        )


@click.group()
def suspend() -> None:
    """Suspend resources."""


@suspend.group("source")
def suspend_source() -> None:
    """Suspend sources."""


@suspend_source.command("git")
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Suspend all resources in that namespace.")
@global_flags
@click.pass_context
def suspend_source_git(ctx: click.Context, names: tuple[str, ...], all_: bool) -> None:
    """Suspend reconciliation of GitRepositories."""
    suspend_objects(ctx, GIT_REPOSITORY, names, all_)


@suspend_source.command("helm")
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Suspend all resources in that namespace.")
@global_flags
@click.pass_context
def suspend_source_helm(ctx: click.Context, names: tuple[str, ...], all_: bool) -> None:
    """Suspend reconciliation of HelmRepositories."""
    suspend_objects(ctx, HELM_REPOSITORY, names, all_)


@suspend.command("kustomization")
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Suspend all resources in that namespace.")
@global_flags
@click.pass_context
def suspend_kustomization(ctx: click.Context, names: tuple[str, ...], all_: bool) -> None:
    """Suspend reconciliation of Kustomizations."""
    suspend_objects(ctx, KUSTOMIZATION, names, all_)


suspend.add_command(suspend_kustomization, "ks")


@click.group()
def resume() -> None:
    """Resume suspended resources."""


@resume.group("source")
def resume_source() -> None:
    """Resume sources."""


@resume_source.command("git")
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Resume all resources in that namespace.")
@click.option(
    "--wait/--no-wait",
    default=None,
    help="Wait for each resource to reconcile (the default when one name is given).",
)
@global_flags
@click.pass_context
def resume_source_git(
    ctx: click.Context, names: tuple[str, ...], all_: bool, wait: bool | None
) -> None:
    """Resume suspended GitRepositories and wait for them to be reconciled."""
    resume_objects(ctx, GIT_REPOSITORY, names, all_, wait)


@resume_source.command("helm")
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Resume all resources in that namespace.")
@click.option(
    "--wait/--no-wait",
    default=None,
    help="Wait for each resource to reconcile (the default when one name is given).",
)
@global_flags
@click.pass_context
def resume_source_helm(
    ctx: click.Context, names: tuple[str, ...], all_: bool, wait: bool | None
) -> None:
    """Resume suspended HelmRepositories and wait for them to be reconciled."""
    resume_objects(ctx, HELM_REPOSITORY, names, all_, wait)


@resume.command("kustomization")
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Resume all resources in that namespace.")
@click.option(
    "--wait/--no-wait",
    default=None,
    help="Wait for each resource to reconcile (the default when one name is given).",
)
@global_flags
@click.pass_context
def resume_kustomization(
    ctx: click.Context, names: tuple[str, ...], all_: bool, wait: bool | None
) -> None:
    """Resume suspended Kustomizations and wait for them to be applied."""
    resume_objects(ctx, KUSTOMIZATION, names, all_, wait)


resume.add_command(resume_kustomization, "ks")
