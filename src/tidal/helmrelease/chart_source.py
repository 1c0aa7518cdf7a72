"""Where a HelmRelease's chart comes from, as helm-controller finds it.

- `spec.chart` (a template): the controller keeps a HelmChart named `<namespace>-<name>` in the
  source's namespace, written with server-side apply under its own field manager and owner
  labels, and deletes it when the template goes away, moves, or the HelmRelease is deleted.
- `spec.chartRef`: an existing OCIRepository or HelmChart (ExternalArtifact needs a feature gate
  tidal does not offer, and is refused as Flux refuses it with the gate off).

The source must be ready with an artifact; the artifact (a chart .tgz) is downloaded, checked
against its digest and loaded. For OCIRepository charts the chart version gets the artifact's
digest as build metadata (`1.2.3+<12 hex>`), as Flux does, so a re-pushed tag upgrades.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Mapping
from typing import Any, Final

from tidal.api.helmrelease import NAME_LABEL, NAMESPACE_LABEL, HelmRelease
from tidal.kube.client import ApiError, Kube

SOURCE_API: Final = "/apis/source.toolkit.fluxcd.io/v1"
HELM_CHART_KIND: Final = "HelmChart"
OCI_REPOSITORY_KIND: Final = "OCIRepository"
EXTERNAL_ARTIFACT_KIND: Final = "ExternalArtifact"
_PLURALS: Final = {HELM_CHART_KIND: "helmcharts", OCI_REPOSITORY_KIND: "ocirepositories"}
# A chart archive is read whole into memory to be loaded; this bounds it.
MAX_CHART_BYTES: Final = 64 * 1024 * 1024


class AccessDenied(Exception):
    """A reference the controller's flags forbid (Stalled, reason AccessDenied)."""


class SourceError(Exception):
    """The source cannot be read (reason ArtifactFailed)."""


def source_path(kind: str, namespace: str, name: str) -> str:
    return f"{SOURCE_API}/namespaces/{namespace}/{_PLURALS[kind]}/{name}"


def helm_chart_name(hr: HelmRelease) -> str:
    return f"{hr.metadata.namespace}-{hr.metadata.name}"


def chart_reference(hr: HelmRelease) -> tuple[str, str, str] | None:
    """(kind, namespace, name) of the source holding the chart."""
    if hr.spec.chart_ref is not None:
        ref = hr.spec.chart_ref
        return ref.kind, ref.namespace or hr.metadata.namespace, ref.name
    if hr.spec.chart is not None:
        ns = hr.spec.chart.spec.source_ref.namespace or hr.metadata.namespace
        return HELM_CHART_KIND, ns, helm_chart_name(hr)
    return None


def check_access(hr: HelmRelease, kind: str, namespace: str, name: str, *, locked: bool) -> None:
    if locked and namespace != hr.metadata.namespace:
        raise AccessDenied(
            f"can't access '{kind}/{namespace}/{name}', cross-namespace references have been "
            "blocked"
        )
    if kind == EXTERNAL_ARTIFACT_KIND:
        raise AccessDenied(
            f"can't access '{kind}/{namespace}/{name}', ExternalArtifact feature gate is disabled"
        )


def helm_chart_manifest(hr: HelmRelease) -> dict[str, Any]:
    """The HelmChart helm-controller makes from spec.chart, owner labels included."""
    template = hr.spec.chart
    assert template is not None
    spec = template.spec
    body: dict[str, Any] = {
        "chart": spec.chart,
        "version": spec.version,
        "sourceRef": {"kind": spec.source_ref.kind, "name": spec.source_ref.name},
        "interval": spec.interval or hr.spec.interval,
        "reconcileStrategy": spec.reconcile_strategy,
    }
    if spec.values_files:
        body["valuesFiles"] = list(spec.values_files)
    if spec.ignore_missing_values_files:
        body["ignoreMissingValuesFiles"] = True
    if spec.verify is not None:
        body["verify"] = spec.verify.to_dict()
    labels = dict(template.metadata.labels) if template.metadata else {}
    labels[NAME_LABEL] = hr.metadata.name
    labels[NAMESPACE_LABEL] = hr.metadata.namespace
    metadata: dict[str, Any] = {
        "name": helm_chart_name(hr),
        "namespace": spec.source_ref.namespace or hr.metadata.namespace,
        "labels": labels,
    }
    if template.metadata and template.metadata.annotations:
        metadata["annotations"] = dict(template.metadata.annotations)
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": HELM_CHART_KIND,
        "metadata": metadata,
        "spec": body,
    }


def source_ready(source: Mapping[str, Any]) -> str:
    """ "" when the source can be used, else helm-controller's reason why not."""
    meta = source.get("metadata") or {}
    status = source.get("status") or {}
    kind = source.get("kind", "")
    subject = f"{kind} '{meta.get('namespace')}/{meta.get('name')}' is not ready"
    conds = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
    if meta.get("generation") != status.get("observedGeneration"):
        ready = conds.get("Ready")
        message = "latest generation of object has not been reconciled"
        if ready is not None and ready.get("status") == "False":
            message = str(ready.get("message", ""))
        return f"{subject}: {message}"
    stalled = conds.get("Stalled")
    if stalled is not None and stalled.get("status") == "True":
        return f"{subject}: {stalled.get('message', '')}"
    if not status.get("artifact"):
        return f"{subject}: does not have an artifact"
    return ""


_SEMVER_TAG = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


def digest_version(version: str, revision: str) -> tuple[str, str]:
    """(the chart version with the artifact digest as build metadata, the digest) for an
    OCIRepository revision (`<tag>@sha256:<hex>` or `sha256:<hex>`)."""
    tag, at, rest = revision.partition("@")
    digest = rest if at else revision
    hex_digest = digest.partition(":")[2]
    if not hex_digest or len(hex_digest) < 12:
        raise SourceError(f"failed to extract digest from revision '{revision}'")
    if at and _SEMVER_TAG.match(tag) and _core(tag) != _core(version):
        raise SourceError(f"artifact revision {tag} does not match chart version {version}")
    base = version.split("+", 1)[0]
    return f"{base}+{hex_digest[:12]}", digest


_VERSION_LINE = re.compile(rb"^version:([^\r\n]*)", re.MULTILINE)


def _core(version: str) -> str:
    return version.lstrip("v").split("+", 1)[0]


def track_digest(archive: bytes, revision: str) -> tuple[bytes, str]:
    """The chart archive with the OCI artifact's digest in its version (`x.y.z+<12 hex>`, see
    digest_version), and that digest. Only the top Chart.yaml's `version:` line changes:
    re-dumping the YAML could retype other fields (an appVersion of 1.0) on their way back
    into Helm. Rendering and the release record then carry the new version, as Flux's
    in-memory change of the loaded chart does."""
    out = io.BytesIO()
    digest = ""
    with (
        tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as src,
        tarfile.open(fileobj=out, mode="w:gz") as dst,
    ):
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            parts = member.name.split("/")
            if data is not None and len(parts) == 2 and parts[1] == "Chart.yaml":
                found = _VERSION_LINE.search(data)
                if found is None:
                    raise SourceError("chart has no top-level version in Chart.yaml")
                old = found.group(1).decode().strip().strip("'\"")
                version, digest = digest_version(old, revision)
                data = _VERSION_LINE.sub(f"version: {version}".encode(), data, count=1)
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    if not digest:
        raise SourceError("chart archive has no Chart.yaml")
    return out.getvalue(), digest


async def read_source(kube: Kube, kind: str, namespace: str, name: str) -> Mapping[str, Any]:
    try:
        return await kube.get(source_path(kind, namespace, name))
    except ApiError as e:
        if e.status == 404:
            raise SourceError(
                f"could not get Source object: {_PLURALS[kind]}.source.toolkit.fluxcd.io "
                f'"{name}" not found'
            ) from None
        raise SourceError(f"could not get Source object: {e.message}") from None
