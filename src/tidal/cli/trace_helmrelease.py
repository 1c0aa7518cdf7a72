"""`tidal trace`'s report for an object a HelmRelease installed, byte for byte as flux prints it.

flux follows the release to the HelmChart named in its status (status.helmChart, made from the
chart template) and to the chart template's source (a HelmRepository or GitRepository), or to
the `chartRef` when it is an OCIRepository or ExternalArtifact. Each section has its own label
width in flux's template (15, 16 or 17 columns), and only the Git, OCI and ExternalArtifact
sections say when their last reconciliation failed; flux's OCI section here shows no origin
annotations, unlike the Kustomization report's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from tidal.cli import readiness
from tidal.cli.objects import GIT_REPOSITORY, HELM_CHART, HELM_RELEASE, HELM_REPOSITORY
from tidal.cli.resource_args import TraceError
from tidal.cli.trace import go_time

_SOURCE_API_VERSION: Final = GIT_REPOSITORY.api_version

# Reads one object: (apiVersion, kind, namespace, name) -> object, or TraceError.
Fetch = Callable[[str, str, str, str], Awaitable[dict[str, Any]]]


def _field(label: str, value: Any, width: int) -> str:
    return f"{label + ':':<{width}}{'' if value is None else value}"


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def _status_lines(obj: Mapping[str, Any], width: int, *, failures: bool) -> list[str]:
    ready = readiness.condition(obj, "Ready")
    if ready is None:
        return [_field("Status", "Unknown", width)]
    at = go_time(ready.get("lastTransitionTime"))
    failed = failures and ready.get("status") == "False"
    status = f"Last reconciliation failed at {at}" if failed else f"Last reconciled at {at}"
    return [_field("Status", status, width), _field("Message", ready.get("message", ""), width)]


def _revision_lines(obj: Mapping[str, Any], width: int) -> list[str]:
    artifact = (obj.get("status") or {}).get("artifact")
    if not isinstance(artifact, Mapping):
        return []
    return [_field("Revision", artifact.get("revision"), width)]


def _header(kind: str, obj: Mapping[str, Any], width: int) -> list[str]:
    # flux's ExternalArtifact label fills its column: no space after the colon.
    return [
        "---",
        _field(kind, _meta(obj).get("name"), width),
        _field("Namespace", _meta(obj).get("namespace"), width),
    ]


def release_lines(hr: Mapping[str, Any]) -> list[str]:
    lines = _header("HelmRelease", hr, 16)
    if _spec(hr).get("targetNamespace"):
        lines.append(_field("Target", _spec(hr)["targetNamespace"], 16))
    revision = (hr.get("status") or {}).get("lastAttemptedRevision", "")
    lines.append(_field("Revision", revision, 16))
    return [*lines, *_status_lines(hr, 16, failures=False)]


def chart_lines(chart: Mapping[str, Any]) -> list[str]:
    lines = _header("HelmChart", chart, 16)
    lines += [
        _field("Chart", _spec(chart).get("chart", ""), 16),
        _field("Version", _spec(chart).get("version", ""), 16),
    ]
    return [*lines, *_revision_lines(chart, 16), *_status_lines(chart, 16, failures=False)]


def helm_repository_lines(repo: Mapping[str, Any]) -> list[str]:
    lines = [*_header("HelmRepository", repo, 16), _field("URL", _spec(repo).get("url"), 16)]
    return [*lines, *_revision_lines(repo, 16), *_status_lines(repo, 16, failures=False)]


def _repository_lines(
    kind: str, obj: Mapping[str, Any], refs: Sequence[tuple[str, str]], width: int
) -> list[str]:
    lines = [*_header(kind, obj, width), _field("URL", _spec(obj).get("url"), width)]
    ref = _spec(obj).get("ref")
    if isinstance(ref, Mapping):
        shown = next(((label, ref[key]) for key, label in refs if ref.get(key)), None)
        if shown is not None:
            lines.append(_field(*shown, width))
    return [*lines, *_revision_lines(obj, width), *_status_lines(obj, width, failures=True)]


def git_repository_lines(obj: Mapping[str, Any]) -> list[str]:
    refs = (("tag", "Tag"), ("semver", "Tag"), ("branch", "Branch"))
    return _repository_lines("GitRepository", obj, refs, 15)


def oci_repository_lines(obj: Mapping[str, Any]) -> list[str]:
    refs = (("tag", "Tag"), ("semver", "Tag"), ("digest", "Digest"))
    return _repository_lines("OCIRepository", obj, refs, 17)


def external_artifact_lines(obj: Mapping[str, Any]) -> list[str]:
    ref = _spec(obj).get("sourceRef")
    if not isinstance(ref, Mapping):
        meta = _meta(obj)
        raise TraceError(
            f"ExternalArtifact {meta.get('namespace', '')}/{meta.get('name', '')} is missing "
            "spec.sourceRef"
        )
    source = f"{ref.get('kind', '')}/{ref.get('namespace', '')}/{ref.get('name', '')}"
    lines = [*_header("ExternalArtifact", obj, 17), _field("Source", source, 17)]
    return [*lines, *_revision_lines(obj, 17), *_status_lines(obj, 17, failures=True)]


Lines = Callable[[Mapping[str, Any]], list[str]]

# The sources flux shows, by where the release names them: kind -> (apiVersion, lines).
_TEMPLATE_SOURCES: Final[Mapping[str, tuple[str, Lines]]] = {
    GIT_REPOSITORY.kind: (GIT_REPOSITORY.api_version, git_repository_lines),
    HELM_REPOSITORY.kind: (HELM_REPOSITORY.api_version, helm_repository_lines),
}
_CHART_REF_SOURCES: Final[Mapping[str, tuple[str, Lines]]] = {
    "OCIRepository": (_SOURCE_API_VERSION, oci_repository_lines),
    "ExternalArtifact": (_SOURCE_API_VERSION, external_artifact_lines),
}


async def _find(fetch: Fetch, api_version: str, kind: str, namespace: str, name: str) -> Any:
    try:
        return await fetch(api_version, kind, namespace, name)
    except TraceError as e:
        raise TraceError(f"failed to find {kind}: {e}") from None


async def helm_release_report(
    fetch: Fetch, namespace: str, name: str, obj: Mapping[str, Any]
) -> str:
    """flux's report for `obj`, installed by the HelmRelease `namespace`/`name`."""
    hr = await _find(fetch, HELM_RELEASE.api_version, HELM_RELEASE.kind, namespace, name)
    sections = [release_lines(hr)]
    chart_name = str((hr.get("status") or {}).get("helmChart") or "")
    if chart_name:
        chart_ns, slash, chart = chart_name.partition("/")
        if not slash:
            chart_ns, chart = "", chart_name
        found = await _find(fetch, HELM_CHART.api_version, HELM_CHART.kind, chart_ns, chart)
        sections.append(chart_lines(found))
    spec = _spec(hr)
    hr_namespace = str(_meta(hr).get("namespace", ""))
    template = spec.get("chart")
    if template is None:
        ref = spec.get("chartRef") or {}
        source = _CHART_REF_SOURCES.get(str(ref.get("kind", "")))
    else:
        ref = (template.get("spec") or {}).get("sourceRef") or {}
        source = _TEMPLATE_SOURCES.get(str(ref.get("kind", "")))
    if source is not None:
        api_version, lines = source
        where = str(ref.get("namespace") or hr_namespace)
        kind = str(ref.get("kind", ""))
        found = await _find(fetch, api_version, kind, where, str(ref.get("name", "")))
        sections.append(lines(found))
    meta = _meta(obj)
    out = [_field("Object", f"{obj.get('kind', '')}/{meta.get('name', '')}", 16)]
    if meta.get("namespace"):
        out.append(_field("Namespace", meta["namespace"], 16))
    out.append(_field("Status", "Managed by Flux", 16))
    for section in sections:
        out += section
    return "\n" + "\n".join(out) + "\n"
