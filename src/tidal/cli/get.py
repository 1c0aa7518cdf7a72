"""`tidal get sources git`, `tidal get kustomizations` and `tidal get all`: flux's status
tables.

`get all` (and `get sources all`) prints one table per kind, sources first, in flux's order,
each row's name prefixed by its lower-cased kind and each table followed by a blank line. A
kind joins it by adding its ObjectKind and row to TABLES; flux's kinds that tidal has no table
for, or whose CRD the cluster does not serve, are skipped silently, as flux skips kinds that are
not installed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import click

from tidal.cli import helmrelease, readiness, table
from tidal.cli.cluster import Session, api_error, escape_field_value, list_objects, run
from tidal.cli.kustomization import source_column
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
from tidal.cli.output import log, stdout
from tidal.kube import labels
from tidal.kube.client import ApiError
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
    """REVISION, SUSPENDED, READY and MESSAGE, long hex strings shortened as flux does. An oci
    HelmRepository has no status to show: flux calls it ready."""
    if is_static(obj):
        ready, message = "True", "Helm repository is Ready"
    else:
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
        bad_selector = label_selector and await label_selector_error(s, kind, label_selector)
        if bad_selector:
            raise CliError(bad_selector)
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


@dataclass(frozen=True)
class KindTable:
    """A kind's table in `get all`: its headers (without NAMESPACE) and row."""

    kind: ObjectKind
    headers: Sequence[str]
    row: Row


# The kinds `flux get sources all` and `flux get all` list, in flux's order.
FLUX_SOURCE_KINDS: Final = (
    "OCIRepository",
    "Bucket",
    "GitRepository",
    "HelmRepository",
    "HelmChart",
    "ExternalArtifact",
)
FLUX_ALL_KINDS: Final = (
    *FLUX_SOURCE_KINDS,
    "ImageRepository",
    "ImagePolicy",
    "ImageUpdateAutomation",
    "HelmRelease",
    "Kustomization",
    "Receiver",
    "Provider",
    "Alert",
)
# The kinds tidal has a table for; the others are not served by a tidal cluster.
TABLES: Final[Mapping[str, KindTable]] = {
    t.kind.kind: t
    for t in (
        KindTable(GIT_REPOSITORY, SOURCE_HEADERS, source_row),
        KindTable(HELM_REPOSITORY, SOURCE_HEADERS, source_row),
        KindTable(HELM_CHART, SOURCE_HEADERS, source_row),
        KindTable(OCI_REPOSITORY, SOURCE_HEADERS, source_row),
        KindTable(KUSTOMIZATION, ("Name", *_STATUS_HEADERS), kustomization_row),
        KindTable(HELM_RELEASE, helmrelease.headers(), helmrelease.row),
    )
}


def with_kind(kind: ObjectKind, row: Row) -> Row:
    """`row` with the name written `<kind>/<name>`, as `get all` shows it."""

    def prefixed(obj: Mapping[str, Any], include_namespace: bool) -> list[str]:
        cells = row(obj, include_namespace)
        at = 1 if include_namespace else 0
        cells[at] = f"{kind.kind.lower()}/{cells[at]}"
        return cells

    return prefixed


@dataclass(frozen=True)
class Printed:
    text: str
    failure: bool = False


def _not_served(e: ApiError) -> bool:
    # A 404 without a NotFound Status: the API server does not know the resource (no CRD).
    return e.status == 404 and e.reason != "NotFound"


async def label_selector_error(s: Session, kind: ObjectKind, selector: str) -> str | None:
    """flux's error for a label selector it refuses, None for one it takes. flux converts the
    selector to a LabelSelector, which has no `!=`, `<` or `>`; a selector that does not parse
    is explained in apimachinery's words, which the API server gives when listing with it."""
    try:
        parsed = labels.parse(selector)
    except labels.SelectorError as e:
        reason = str(e)
        try:
            path = kind.collection(s.namespace)
            await s.kube.get(path, {"labelSelector": selector, "limit": "1"})
        except ApiError as refused:
            if refused.status == 400:
                reason = refused.message
        reason = f'couldn\'t parse the selector string "{selector}": {reason}'
    else:
        for r in sorted(parsed.requirements, key=lambda r: r.key):
            if r.op == "!=":
                reason = '"!=" is not a valid label selector operator'
                break
            if r.op in ("gt", "lt"):
                reason = f'"{r.op}" isn\'t supported in label selectors'
                break
        else:
            return None
    return f"unable to parse label selector: {reason}"


async def list_all(
    s: Session,
    kinds: Sequence[str],
    *,
    name: str | None,
    all_namespaces: bool,
    no_header: bool,
    status_selector: str,
    label_selector: str,
) -> list[Printed]:
    """Each kind's table, or the failure flux logs for that kind before going on to the next:
    nothing for a kind without objects (unless one was asked for by name) or not served."""
    tables = [TABLES[k] for k in kinds if k in TABLES]
    if label_selector and tables:
        bad_selector = await label_selector_error(s, tables[0].kind, label_selector)
        if bad_selector:
            # flux parses the selector for each kind, served or not, before listing it.
            return [Printed(bad_selector, failure=True)] * len(kinds)
    where = _where(all_namespaces, s.namespace)
    params: dict[str, str] = {}
    if name:
        params["fieldSelector"] = "metadata.name=" + escape_field_value(name)
    if label_selector:
        params["labelSelector"] = label_selector
    out: list[Printed] = []
    for t in tables:
        path = t.kind.collection(None if all_namespaces else s.namespace)
        try:
            items = (await s.kube.get(path, params or None)).get("items") or []
        except ApiError as e:
            if not _not_served(e):
                out.append(Printed(api_error(e, t.kind).format_message(), failure=True))
            continue
        if not items:
            if name:
                message = f"{t.kind.kind} object '{name}' not found in {where} namespace"
                out.append(Printed(message, failure=True))
            continue
        try:
            keep = status_filter(status_selector)
        except CliError as e:
            out.append(Printed(e.format_message(), failure=True))
            continue
        kept = [obj for obj in items if keep(obj)]
        if kept:
            text = render_table(
                kept,
                t.headers,
                with_kind(t.kind, t.row),
                all_namespaces=all_namespaces,
                no_header=no_header,
            )
            out.append(Printed(text + "\n"))
    return out


def print_all(
    ctx: click.Context,
    kinds: Sequence[str],
    name: str | None,
    all_namespaces: bool,
    no_header: bool,
    status_selector: str,
    label_selector: str,
) -> None:
    """`get all`'s output. A kind that cannot be listed is logged and the next one listed;
    the exit status stays 0, as with flux."""
    opts = options(ctx)

    async def work(s: Session) -> list[Printed]:
        return await list_all(
            s,
            kinds,
            name=name,
            all_namespaces=all_namespaces,
            no_header=no_header,
            status_selector=status_selector,
            label_selector=label_selector,
        )

    for printed in run(opts, work):
        if printed.failure:
            log.failure(printed.text)
        else:
            stdout(printed.text)


@click.group()
def get() -> None:
    """Get the resources and their status."""


@get.group("sources")
def get_sources_group() -> None:
    """Get source statuses."""


def _get_source_command(kind: ObjectKind) -> click.Command:
    @click.command(help=f"Get {kind.kind} source statuses.")
    @click.argument("name", required=False)
    @get_flags
    @global_flags
    @click.pass_context
    def command(
        ctx: click.Context,
        name: str | None,
        all_namespaces: bool,
        no_header: bool,
        status_selector: str,
        label_selector: str,
    ) -> None:
        def render(items: list[dict[str, Any]]) -> str:
            return render_sources(
                items,
                all_namespaces=all_namespaces,
                no_header=no_header,
                status_selector=status_selector,
            )

        get_objects(ctx, kind, name, all_namespaces, status_selector, label_selector, render)

    return command


for _name, _kind in (
    ("git", GIT_REPOSITORY),
    ("helm", HELM_REPOSITORY),
    ("chart", HELM_CHART),
    ("oci", OCI_REPOSITORY),
):
    get_sources_group.add_command(_get_source_command(_kind), _name)


@get_sources_group.command("all")
@click.argument("name", required=False)
@get_flags
@global_flags
@click.pass_context
def get_sources_all(
    ctx: click.Context,
    name: str | None,
    all_namespaces: bool,
    no_header: bool,
    status_selector: str,
    label_selector: str,
) -> None:
    """Get all source statuses."""
    print_all(
        ctx, FLUX_SOURCE_KINDS, name, all_namespaces, no_header, status_selector, label_selector
    )


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


@get.command("helmreleases")
@click.argument("name", required=False)
@click.option("--show-source", is_flag=True, help="Show the source reference for each release.")
@get_flags
@global_flags
@click.pass_context
def get_helmreleases(
    ctx: click.Context,
    name: str | None,
    show_source: bool,
    all_namespaces: bool,
    no_header: bool,
    status_selector: str,
    label_selector: str,
) -> None:
    """Get HelmRelease statuses."""

    def render(items: list[dict[str, Any]]) -> str:
        return render_table(
            items,
            helmrelease.headers(show_source),
            lambda obj, include_namespace: helmrelease.row(obj, include_namespace, show_source),
            all_namespaces=all_namespaces,
            no_header=no_header,
            status_selector=status_selector,
        )

    get_objects(ctx, HELM_RELEASE, name, all_namespaces, status_selector, label_selector, render)


get.add_command(get_helmreleases, "hr")
get.add_command(get_helmreleases, "helmrelease")


@get.command("all")
@click.argument("name", required=False)
@get_flags
@global_flags
@click.pass_context
def get_all(
    ctx: click.Context,
    name: str | None,
    all_namespaces: bool,
    no_header: bool,
    status_selector: str,
    label_selector: str,
) -> None:
    """Get all resources and statuses: the sources, then the other kinds."""
    print_all(ctx, FLUX_ALL_KINDS, name, all_namespaces, no_header, status_selector, label_selector)
