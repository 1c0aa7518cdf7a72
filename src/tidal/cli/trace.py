"""`tidal trace <resource> <name>...`: which Flux object applied an in-cluster object, from which
source and revision, and how their last reconciliations went; flux's report, byte for byte.

The object is found the way kubectl finds it (tidal.cli.resource_args), or by `--kind` with
`--api-version`. Its manager is named by the labels `<group>/name` and `<group>/namespace` of the
object or, failing that, of the owners up its ownerReferences chain.

flux's quirks are kept, since scripts and users read this output: a failure to trace one object
is written to stderr without a line break and does not change the exit status, and objects that
cannot be fetched are reported as `x: <API errors>`.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import click

from tidal.api import kustomize
from tidal.cli import readiness
from tidal.cli.cluster import Session, run
from tidal.cli.objects import GIT_REPOSITORY, KUSTOMIZATION
from tidal.cli.options import global_flags, options
from tidal.cli.output import stdout
from tidal.cli.resource_args import (
    ApiCatalog,
    TraceError,
    find_by_arguments,
    find_by_kind,
    get_object,
)

_HELM_GROUP: Final = "helm.toolkit.fluxcd.io"
_SOURCE_API_VERSION: Final = GIT_REPOSITORY.api_version
# The OCI annotations flux shows for artifacts pulled from a registry, under their labels in
# the order flux prints them (its template ranges over a Go map, so by sorted label).
_ORIGIN_ANNOTATIONS: Final = (
    ("Origin Revision", "org.opencontainers.image.revision"),
    ("Origin Source", "org.opencontainers.image.source"),
)
_LABEL_WIDTH: Final = 17


# -- the report ---------------------------------------------------------------------------------


def _field(label: str, value: Any) -> str:
    return f"{label + ':':<{_LABEL_WIDTH}}{'' if value is None else value}"


def go_time(text: Any) -> str:
    """An RFC 3339 timestamp as Go prints a Kubernetes time: in the local zone, like
    `2026-01-01 00:00:00 +0000 UTC`."""
    if not text:
        return "0001-01-01 00:00:00 +0000 UTC"
    try:
        local = datetime.fromisoformat(str(text)).astimezone()
    except ValueError:
        return str(text)
    fraction = f"{local.microsecond:06d}".rstrip("0") if local.microsecond else ""
    stamp = local.strftime("%Y-%m-%d %H:%M:%S") + (f".{fraction}" if fraction else "")
    return f"{stamp} {local.strftime('%z')} {local.tzname() or local.strftime('%z')}"


def _ready_lines(obj: Mapping[str, Any], *, failures: bool) -> list[str]:
    """The Status and Message lines of the Ready condition; sources say when it failed."""
    ready = readiness.condition(obj, "Ready")
    if ready is None:
        return [_field("Status", "Unknown")]
    at = go_time(ready.get("lastTransitionTime"))
    failed = failures and ready.get("status") == "False"
    status = f"Last reconciliation failed at {at}" if failed else f"Last reconciled at {at}"
    return [_field("Status", status), _field("Message", ready.get("message", ""))]


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def _artifact(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    artifact = (obj.get("status") or {}).get("artifact")
    return artifact if isinstance(artifact, Mapping) else None


def _named(kind: str, obj: Mapping[str, Any]) -> list[str]:
    return [
        "---",
        _field(kind, _meta(obj).get("name")),
        _field("Namespace", _meta(obj).get("namespace")),
    ]


def _revision_lines(obj: Mapping[str, Any], *, origin: bool) -> list[str]:
    artifact = _artifact(obj)
    if artifact is None:
        return []
    lines = [_field("Revision", artifact.get("revision"))]
    metadata = artifact.get("metadata") or {}
    if origin and metadata:
        # flux writes a line per annotation, empty when the artifact lacks it.
        for label, key in _ORIGIN_ANNOTATIONS:
            value = metadata.get(key)
            lines.append(_field(label, value) if value else "")
    return lines


def _repository_lines(
    kind: str, obj: Mapping[str, Any], refs: Sequence[tuple[str, str]], *, origin: bool
) -> list[str]:
    """A repository source's section: the first of `refs` ((spec.ref field, label), in flux's
    precedence) that is set is shown."""
    spec = _spec(obj)
    lines = [*_named(kind, obj), _field("URL", spec.get("url"))]
    ref = spec.get("ref")
    if isinstance(ref, Mapping):
        shown = next(((label, ref[key]) for key, label in refs if ref.get(key)), None)
        if shown is not None:
            lines.append(_field(*shown))
    return [*lines, *_revision_lines(obj, origin=origin), *_ready_lines(obj, failures=True)]


def git_repository_lines(obj: Mapping[str, Any]) -> list[str]:
    refs = (("tag", "Tag"), ("semver", "Tag"), ("branch", "Branch"))
    return _repository_lines("GitRepository", obj, refs, origin=False)


def oci_repository_lines(obj: Mapping[str, Any]) -> list[str]:
    refs = (("tag", "Tag"), ("semver", "Tag"), ("digest", "Digest"))
    return _repository_lines("OCIRepository", obj, refs, origin=True)


def external_artifact_lines(obj: Mapping[str, Any]) -> list[str]:
    meta = _meta(obj)
    ref = _spec(obj).get("sourceRef")
    if not isinstance(ref, Mapping):
        raise TraceError(
            f"ExternalArtifact {meta.get('namespace', '')}/{meta.get('name', '')} is missing "
            "spec.sourceRef"
        )
    source = f"{ref.get('kind', '')}/{ref.get('namespace', '')}/{ref.get('name', '')}"
    lines = [*_named("ExternalArtifact", obj), _field("Source", source)]
    return [*lines, *_revision_lines(obj, origin=True), *_ready_lines(obj, failures=True)]


@dataclass(frozen=True)
class SourceKind:
    """A kind a Kustomization can take its artifact from, and its part of the report."""

    kind: str
    api_version: str
    lines: Callable[[Mapping[str, Any]], list[str]]


# The sources flux shows; a Kustomization with another sourceRef kind (a Bucket) gets no source
# part. Their CRDs need not be installed: flux then reports that it cannot find the source.
SOURCE_KINDS: Final = {
    s.kind: s
    for s in (
        SourceKind(GIT_REPOSITORY.kind, GIT_REPOSITORY.api_version, git_repository_lines),
        SourceKind("OCIRepository", _SOURCE_API_VERSION, oci_repository_lines),
        SourceKind("ExternalArtifact", _SOURCE_API_VERSION, external_artifact_lines),
    )
}


def kustomization_report(
    obj: Mapping[str, Any], ks: Mapping[str, Any], source_lines: Sequence[str]
) -> str:
    """flux's report for an object applied by the Kustomization `ks`."""
    meta = _meta(obj)
    lines = [_field("Object", f"{obj.get('kind', '')}/{meta.get('name', '')}")]
    if meta.get("namespace"):
        lines.append(_field("Namespace", meta["namespace"]))
    lines += [_field("Status", "Managed by Flux"), *_named("Kustomization", ks)]
    spec = _spec(ks)
    if spec.get("targetNamespace"):
        lines.append(_field("Target", spec["targetNamespace"]))
    lines += [
        _field("Path", spec.get("path", "")),
        _field("Revision", (ks.get("status") or {}).get("lastAppliedRevision", "")),
        *_ready_lines(ks, failures=False),
        *source_lines,
    ]
    return "\n" + "\n".join(lines) + "\n"


# -- tracing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manager:
    """A Flux kind that applies objects and labels them `<group>/name` and `/namespace`."""

    group: str
    trace: Callable[[_Tracer, str, str, Mapping[str, Any]], Awaitable[str]]


def manager_of(obj: Mapping[str, Any], group: str) -> tuple[str, str] | None:
    labels = _meta(obj).get("labels") or {}
    name = labels.get(f"{group}/name")
    return (str(labels.get(f"{group}/namespace", "")), str(name)) if name else None


class _Tracer:
    def __init__(self, s: Session, catalog: ApiCatalog) -> None:
        self.kube = s.kube
        self.catalog = catalog

    async def managed_by(self, obj: Mapping[str, Any], group: str) -> tuple[str, str] | None:
        """The manager named on the object or up its owners; the first owner that cannot be
        read, or that has owners of its own, ends the search (as in flux)."""
        found = manager_of(obj, group)
        if found is not None:
            return found
        namespace = str(_meta(obj).get("namespace", ""))
        for ref in _meta(obj).get("ownerReferences") or []:
            api_version = str(ref.get("apiVersion", ""))
            if api_version.count("/") > 1:
                return None
            try:
                owner = await get_object(
                    self.kube,
                    self.catalog,
                    api_version,
                    str(ref.get("kind", "")),
                    namespace,
                    str(ref.get("name", "")),
                )
            except TraceError:
                return None
            found = manager_of(owner, group)
            if found is not None:
                return found
            if _meta(owner).get("ownerReferences"):
                return await self.managed_by(owner, group)
        return None

    async def trace(self, obj: Mapping[str, Any]) -> str:
        for manager in MANAGERS:
            found = await self.managed_by(obj, manager.group)
            if found is not None:
                return await manager.trace(self, *found, obj)
        raise TraceError("object not managed by Flux")


async def _trace_kustomization(
    t: _Tracer, namespace: str, name: str, obj: Mapping[str, Any]
) -> str:
    try:
        ks = await get_object(
            t.kube, t.catalog, KUSTOMIZATION.api_version, KUSTOMIZATION.kind, namespace, name
        )
    except TraceError as e:
        raise TraceError(f"failed to find kustomization: {e}") from None
    ref = _spec(ks).get("sourceRef") or {}
    source = SOURCE_KINDS.get(str(ref.get("kind", "")))
    lines: list[str] = []
    if source is not None:
        where = str(ref.get("namespace") or _meta(ks).get("namespace", ""))
        try:
            found = await get_object(
                t.kube, t.catalog, source.api_version, source.kind, where, str(ref.get("name", ""))
            )
        except TraceError as e:
            raise TraceError(f"failed to find {source.kind}: {e}") from None
        lines = source.lines(found)
    return kustomization_report(obj, ks, lines)


async def _trace_helm_release(t: _Tracer, namespace: str, name: str, obj: Mapping[str, Any]) -> str:
    # Imported here: the HelmRelease report builds on this module's helpers.
    from tidal.cli.trace_helmrelease import helm_release_report

    async def fetch(api_version: str, kind: str, at: str, named: str) -> dict[str, Any]:
        return await get_object(t.kube, t.catalog, api_version, kind, at, named)

    return await helm_release_report(fetch, namespace, name, obj)


# Looked for in this order, as flux does: an object labelled by both is a Kustomization's.
MANAGERS: Final = (
    Manager(kustomize.GROUP, _trace_kustomization),
    Manager(_HELM_GROUP, _trace_helm_release),
)


@dataclass(frozen=True)
class Outcome:
    text: str
    failed: bool


def _failure(obj: Mapping[str, Any], reason: str) -> str:
    meta = _meta(obj)
    return (
        f"failed to trace {obj.get('kind', '')}/{meta.get('name', '')} in namespace "
        f"{meta.get('namespace', '')}: {reason}"
    )


@click.command("trace")
@click.argument("args", nargs=-1, metavar="<resource> <name> [<name> ...]")
@click.option("--kind", default="", help="The Kubernetes object kind, e.g. Deployment.")
@click.option(
    "--api-version", default="", help="The Kubernetes object API version, e.g. 'apps/v1'."
)
@global_flags
@click.pass_context
def trace(ctx: click.Context, args: tuple[str, ...], kind: str, api_version: str) -> None:
    """Trace in-cluster objects throughout the GitOps delivery pipeline: the Kustomization
    that applied each one, its source, revisions and last reconciliations.

    \b
    tidal trace -n apps deployment podinfo
    tidal trace -n apps deployment/podinfo configmap/podinfo-env
    tidal trace -n apps podinfo --kind Deployment --api-version apps/v1
    """
    opts = options(ctx)

    async def work(s: Session) -> list[Outcome]:
        catalog = ApiCatalog(s.kube)
        if kind or api_version:
            objects = [await find_by_kind(s, catalog, args, kind, api_version)]
        else:
            objects = await find_by_arguments(s, catalog, args)
        tracer = _Tracer(s, catalog)
        outcomes = []
        for obj in objects:
            try:
                outcomes.append(Outcome(await tracer.trace(obj), False))
            except TraceError as e:
                outcomes.append(Outcome(_failure(obj, str(e)), True))
        return outcomes

    outcomes = run(opts, work)
    for i, outcome in enumerate(outcomes):
        if outcome.failed:
            sys.stderr.write(outcome.text)
            sys.stderr.flush()
        else:
            stdout(outcome.text)
        if i < len(outcomes) - 1:
            stdout("---\n")
