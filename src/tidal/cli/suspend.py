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
from tidal.cli.objects import (
    GIT_REPOSITORY,
    HELM_CHART,
    HELM_RELEASE,
    HELM_REPOSITORY,
    KUSTOMIZATION,
    OCI_REPOSITORY,
    ObjectKind,
    is_static,
)
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


def _suspend_command(kind: ObjectKind, plural: str) -> click.Command:
    @click.command(help=f"Suspend reconciliation of {plural}.")
    @click.argument("names", nargs=-1)
    @click.option("--all", "all_", is_flag=True, help="Suspend all resources in that namespace.")
    @global_flags
    @click.pass_context
    def command(ctx: click.Context, names: tuple[str, ...], all_: bool) -> None:
        suspend_objects(ctx, kind, names, all_)

    return command


def _resume_command(kind: ObjectKind, plural: str, until: str) -> click.Command:
    @click.command(help=f"Resume suspended {plural} and wait for them to be {until}.")
    @click.argument("names", nargs=-1)
    @click.option("--all", "all_", is_flag=True, help="Resume all resources in that namespace.")
    @click.option(
        "--wait/--no-wait",
        default=None,
        help="Wait for each resource to reconcile (the default when one name is given).",
    )
    @global_flags
    @click.pass_context
    def command(ctx: click.Context, names: tuple[str, ...], all_: bool, wait: bool | None) -> None:
        resume_objects(ctx, kind, names, all_, wait)

    return command


@click.group()
def suspend() -> None:
    """Suspend resources."""


@suspend.group("source")
def suspend_source() -> None:
    """Suspend sources."""


@click.group()
def resume() -> None:
    """Resume suspended resources."""


@resume.group("source")
def resume_source() -> None:
    """Resume sources."""


# (CLI name, kind, plural in help texts)
_SOURCES = (
    ("git", GIT_REPOSITORY, "GitRepositories"),
    ("helm", HELM_REPOSITORY, "HelmRepositories"),
    ("chart", HELM_CHART, "HelmCharts"),
    ("oci", OCI_REPOSITORY, "OCIRepositories"),
)
for _name, _kind, _plural in _SOURCES:
    suspend_source.add_command(_suspend_command(_kind, _plural), _name)
    resume_source.add_command(_resume_command(_kind, _plural, "reconciled"), _name)
for _name in ("kustomization", "ks"):
    suspend.add_command(_suspend_command(KUSTOMIZATION, "Kustomizations"), _name)
    resume.add_command(_resume_command(KUSTOMIZATION, "Kustomizations", "applied"), _name)
for _name in ("helmrelease", "hr"):
    suspend.add_command(_suspend_command(HELM_RELEASE, "HelmReleases"), _name)
    resume.add_command(_resume_command(HELM_RELEASE, "HelmReleases", "applied"), _name)
