"""Render a chart as Helm's install/upgrade action does before applying, without applying.

Helm's engine (through the SDK) renders the templates, processes dependencies (conditions,
tags, import-values) and validates values against the charts' schemas. The rest of Helm's
`renderResources` is done here: the chart's kubeVersion check, NOTES.txt, splitting hooks from
resources and ordering them (tidal.helm.manifests), and the release manifest text. tidal applies
the result itself, after its post-renderers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tidal.helm.chart import LoadedChart
from tidal.helm.errors import RenderError
from tidal.helm.manifests import Hook, hooks_for, join_manifests, sort_manifests

__all__ = [
    "Hook",
    "RenderError",
    "Rendered",
    "RenderedFiles",
    "assemble",
    "hooks_for",
    "kube_version_compatible",
    "render",
    "render_files",
]

NOTES_SUFFIX = "NOTES.txt"


@dataclass(frozen=True)
class Rendered:
    manifest: str  # release manifest: resources, `---\n# Source: <path>\n<doc>\n`, install order
    hooks: tuple[Hook, ...]  # Helm's release hooks, kind-sorted; run order via hooks_for()
    notes: str  # the top-level chart's rendered NOTES.txt
    crds: tuple[tuple[str, str], ...]  # crds/ files of the chart and its subcharts
    config: dict[str, Any]  # the user-supplied values, as Helm stores them in the release
    values: dict[str, Any]  # chart defaults coalesced with config (`helm get values --all`)
    kube_version: str  # the Capabilities.KubeVersion rendered with


# The kubeVersion check goes through Sprig's semverCompare, which is the same Masterminds
# constraint check Helm's IsCompatibleRange does, so tidal does not re-implement semver ranges.
_SEMVER_CHART: bytes | None = None


def _semver_chart() -> bytes:
    global _SEMVER_CHART
    if _SEMVER_CHART is None:
        import io
        import tarfile

        files = {
            "semver/Chart.yaml": "apiVersion: v2\nname: semver\nversion: 0.0.0\n",
            "semver/templates/check": (
                "{{ $ok := false }}{{ with .Values.constraint }}"
                "{{ $ok = semverCompare . $.Values.version }}{{ end }}{{ $ok }}"
            ),
        }
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, text in files.items():
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        _SEMVER_CHART = buf.getvalue()
    return _SEMVER_CHART


def kube_version_compatible(constraint: str, version: str) -> bool:
    """Helm's chartutil.IsCompatibleRange: an unparsable constraint or version is incompatible."""
    from tidal.helm import engine

    chart = engine.load_archive(_semver_chart())
    try:
        out = engine.render_templates(
            chart, {"constraint": constraint, "version": version}, {"name": "semver"}, None
        )
    except RenderError:
        return False  # semverCompare errors where IsCompatibleRange says false
    finally:
        chart.close()
    return out.get("semver/templates/check", "").strip() == "true"


def _notes(files: dict[str, str], chart_name: str) -> str:
    # Helm pulls every NOTES.txt out of the files; only the top chart's is shown (no SubNotes).
    notes = ""
    top = f"{chart_name}/templates/{NOTES_SUFFIX}"
    for path in list(files):
        if path.endswith(NOTES_SUFFIX):
            text = files.pop(path)
            if path == top:
                notes = text
    return notes


@dataclass(frozen=True)
class RenderedFiles:
    """The templates as rendered, before hooks and resources are told apart: what a
    post-renderer works on."""

    files: dict[str, str]  # template path -> rendered text; NOTES.txt taken out
    notes: str
    crds: tuple[tuple[str, str], ...]
    config: dict[str, Any]
    values: dict[str, Any]
    kube_version: str


def render_files(
    chart: LoadedChart,
    values: dict[str, Any],
    *,
    release_name: str,
    namespace: str,
    revision: int,
    is_install: bool,
    is_upgrade: bool,
    kube_version: str | None = None,
    api_versions: Sequence[str] = (),
    kubeconfig: str | None = None,
) -> RenderedFiles:
    """The chart's templates rendered as Helm's install/upgrade renders them. Blocking (a C
    call that releases the GIL): run it in a thread.

    `kube_version` and `api_versions` are `.Capabilities` (discover them from the cluster with
    tidal.helm.capabilities); `api_versions` are added to Helm's built-in set, as
    `helm template --api-versions` does. With `kubeconfig` (YAML text), `lookup` reads that
    cluster.
    """
    from tidal.helm import engine

    version = kube_version or DEFAULT_KUBE_VERSION
    if chart.kube_version and not kube_version_compatible(chart.kube_version, version):
        raise RenderError(
            f"chart requires kubeVersion: {chart.kube_version} which is incompatible with "
            f"Kubernetes {version}"
        )
    options: dict[str, Any] = {
        "name": release_name,
        "namespace": namespace,
        "revision": revision,
        "is_install": is_install,
        "is_upgrade": is_upgrade,
    }
    if kube_version:
        options["kube_version"] = kube_version
    if api_versions:
        options["api_versions"] = list(api_versions)
    with chart.native() as native:
        files = engine.render_templates(native, values, options, kubeconfig)
        # After the render the handle holds the chart as processed for these values.
        merged = engine.merge_values(native, values)
    notes = _notes(files, chart.name)
    return RenderedFiles(files, notes, chart.crds, values, merged, version)


def assemble(rendered: RenderedFiles, files: dict[str, str] | None = None) -> Rendered:
    """Hooks split from resources and both sorted, as Helm does after post-rendering; `files`
    replaces the rendered files (a post-renderer's output)."""
    from tidal.helm import engine

    chosen = rendered.files if files is None else files
    hooks, manifests = sort_manifests(chosen, parse_go=engine.values_from_yaml)
    return Rendered(
        manifest=join_manifests(manifests),
        hooks=tuple(hooks),
        notes=rendered.notes,
        crds=rendered.crds,
        config=rendered.config,
        values=rendered.values,
        kube_version=rendered.kube_version,
    )


def render(
    chart: LoadedChart,
    values: dict[str, Any],
    *,
    release_name: str,
    namespace: str,
    revision: int,
    is_install: bool,
    is_upgrade: bool,
    kube_version: str | None = None,
    api_versions: Sequence[str] = (),
    kubeconfig: str | None = None,
) -> Rendered:
    """Everything Helm's install/upgrade computes before applying, without a post-renderer
    (render_files, then assemble). Blocking: run it in a thread."""
    return assemble(
        render_files(
            chart,
            values,
            release_name=release_name,
            namespace=namespace,
            revision=revision,
            is_install=is_install,
            is_upgrade=is_upgrade,
            kube_version=kube_version,
            api_versions=api_versions,
            kubeconfig=kubeconfig,
        )
    )


# What the SDK's Helm assumes without a cluster: the Kubernetes minor of the client-go it was
# built with (Helm's DefaultCapabilities). Measured: helm-python-sdk 0.2.2 renders v1.36.0.
DEFAULT_KUBE_VERSION = "v1.36.0"
