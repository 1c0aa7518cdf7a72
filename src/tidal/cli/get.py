"""`tidal get sources git` and `tidal get kustomizations`: flux's status tables."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import click

from tidal.cli import readiness, table
from tidal.cli.cluster import Session, list_objects, run
from tidal.cli.kustomization import source_column
from tidal.cli.objects import GIT_REPOSITORY, KUSTOMIZATION, ObjectKind
from tidal.cli.options import CliError, global_flags, options
from tidal.cli.output import stdout
from tidal.source.revision import truncate_hex

F = TypeVar("F", bound=Callable[..., Any])

SOURCE_HEADERS = ("Name", "Revision", "Suspended", "Ready", "Message")
_STATUS_HEADERS = ("Revision", "Suspended", "Ready", "Message")

Row = Callable[[Mapping[str, Any], bool], list[str]]


def get_flags(f: F) -> F:
    """`flux get`'s persistent flags."""
    for decorator in reversed(
        (
            click.option(
                "-A",
                "--all-namespaces",
                is_flag=True,
                help="List the requested object(s) across all namespaces.",
            ),
            click.option("--no-header", is_flag=True, help="Skip the header when printing."),
            click.option(
                "--status-selector",
                default="",
                help="Filter by a status condition, e.g. ready=false or ready!=true.",
            ),
            click.option("-l", "--label-selector", default="", help="Filter by label selector."),
        )
    ):
        f = decorator(f)
    return f


def ready_and_message(obj: Mapping[str, Any]) -> tuple[str, str]:
    """The READY and MESSAGE columns: the Ready condition, or False and a fixed text."""
    c = readiness.condition(obj, "Ready")
    if c is None:
        return "False", "waiting to be reconciled"
    return str(c.get("status", "")), str(c.get("message", ""))


def _title_bool(value: Any) -> str:
    return "True" if value is True else "False"


def _status_columns(obj: Mapping[str, Any], revision: str) -> list[str]:
    """REVISION, SUSPENDED, READY and MESSAGE, long hex strings shortened as flux does."""
    ready, message = ready_and_message(obj)
    suspended = _title_bool((obj.get("spec") or {}).get("suspend"))
    return [truncate_hex(revision), suspended, ready, truncate_hex(message)]


def _name_columns(obj: Mapping[str, Any], include_namespace: bool) -> list[str]:
    meta = obj.get("metadata") or {}
    name = str(meta.get("name", ""))
    return [str(meta.get("namespace", "")), name] if include_namespace else [name]


def source_row(obj: Mapping[str, Any], include_namespace: bool) -> list[str]:
    revision = str(((obj.get("status") or {}).get("artifact") or {}).get("revision") or "")
    return [*_name_columns(obj, include_namespace), *_status_columns(obj, revision)]


def kustomization_row(
    obj: Mapping[str, Any], include_namespace: bool, show_source: bool = False
) -> list[str]:
    revision = str((obj.get("status") or {}).get("lastAppliedRevision") or "")
    source = [source_column(obj)] if show_source else []
    return [*_name_columns(obj, include_namespace), *source, *_status_columns(obj, revision)]


def status_filter(selector: str) -> Callable[[Mapping[str, Any]], bool]:
    """flux's --status-selector: `type=status` or `type!=status`, both case-insensitive; an
    object without that condition never matches `=` (and so always matches `!=`)."""
    if not selector:
        return lambda obj: True
    negate = "!=" in selector
    type_, sep, wanted = selector.partition("!=" if negate else "=")
    if not sep:
        raise CliError(
            "expected status selector in type=status or type!=status format, but found: " + selector
        )

    def matches(obj: Mapping[str, Any]) -> bool:
        found: Mapping[str, Any] | None = None
        for c in (obj.get("status") or {}).get("conditions") or []:
            if str(c.get("type", "")).casefold() == type_.casefold():
                found = c
        hit = found is not None and str(found.get("status", "")).casefold() == wanted.casefold()
        return hit != negate

    return matches


def render_table(
    items: Sequence[Mapping[str, Any]],
    headers: Sequence[str],
    row: Row,
    *,
    all_namespaces: bool,
    no_header: bool,
    status_selector: str = "",
) -> str:
    keep = status_filter(status_selector)
    rows = [row(obj, all_namespaces) for obj in items if keep(obj)]
    header: list[str] | None = None
    if not no_header:
        header = ["Namespace", *headers] if all_namespaces else list(headers)
    return table.render(header, rows)


def render_sources(
    items: Sequence[Mapping[str, Any]],
    *,
    all_namespaces: bool,
    no_header: bool,
    status_selector: str = "",
) -> str:
    return render_table(
        items,
        SOURCE_HEADERS,
        source_row,
        all_namespaces=all_namespaces,
        no_header=no_header,
        status_selector=status_selector,
    )


def render_kustomizations(
    items: Sequence[Mapping[str, Any]],
    *,
    all_namespaces: bool,
    no_header: bool,
    status_selector: str = "",
    show_source: bool = False,
) -> str:
    headers = ("Name", *(("Source",) if show_source else ()), *_STATUS_HEADERS)
    return render_table(
        items,
        headers,
        lambda obj, include_namespace: kustomization_row(obj, include_namespace, show_source),
        all_namespaces=all_namespaces,
        no_header=no_header,
        status_selector=status_selector,
    )


def _where(all_namespaces: bool, namespace: str) -> str:
    return "any" if all_namespaces else f'"{namespace}"'


def get_objects(
    ctx: click.Context,
    kind: ObjectKind,
    name: str | None,
    all_namespaces: bool,
    status_selector: str,
    label_selector: str,
    render: Callable[[list[dict[str, Any]]], str],
) -> None:
    """List `kind` (one name, a namespace, or all namespaces) and print `render`'s table."""
    opts = options(ctx)
    status_filter(status_selector)  # a malformed selector fails before any request

    async def work(s: Session) -> list[dict[str, Any]]:
        return await list_objects(
            s, kind, all_namespaces=all_namespaces, name=name, label_selector=label_selector
        )

    items = run(opts, work)
    where = _where(all_namespaces, opts.namespace)
    if not items:
        if name:
            raise CliError(f"{kind.kind} object '{name}' not found in {where} namespace")
        raise CliError(f"no {kind.kind} objects found in {where} namespace")
    stdout(render(items))


@click.group()
def get() -> None:
    """Get the resources and their status."""


@get.group("sources")
def get_sources_group() -> None:
    """Get source statuses."""


@get_sources_group.command("git")
@click.argument("name", required=False)
@get_flags
@global_flags
@click.pass_context
def get_sources_git(
    ctx: click.Context,
    name: str | None,
    all_namespaces: bool,
    no_header: bool,
    status_selector: str,
    label_selector: str,
) -> None:
    """Get GitRepository source statuses."""

    def render(items: list[dict[str, Any]]) -> str:
        return render_sources(
            items,
            all_namespaces=all_namespaces,
            no_header=no_header,
            status_selector=status_selector,
        )

    get_objects(ctx, GIT_REPOSITORY, name, all_namespaces, status_selector, label_selector, render)


# flux accepts `get source` for `get sources`.
get.add_command(get_sources_group, "source")


@get.command("kustomizations")
@click.argument("name", required=False)
@click.option(
    "--show-source", is_flag=True, help="Show the source reference for each kustomization."
)
@get_flags
@global_flags
@click.pass_context
def get_kustomizations(
    ctx: click.Context,
    name: str | None,
    show_source: bool,
    all_namespaces: bool,
    no_header: bool,
    status_selector: str,
    label_selector: str,
) -> None:
    """Get Kustomization statuses."""

    def render(items: list[dict[str, Any]]) -> str:
        return render_kustomizations(
            items,
            all_namespaces=all_namespaces,
            no_header=no_header,
            status_selector=status_selector,
            show_source=show_source,
        )

    get_objects(ctx, KUSTOMIZATION, name, all_namespaces, status_selector, label_selector, render)


# flux's aliases.
get.add_command(get_kustomizations, "ks")
get.add_command(get_kustomizations, "kustomization")
