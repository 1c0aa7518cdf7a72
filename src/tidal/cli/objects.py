"""The kinds the CLI verbs act on, by their CLI names (`source git` -> GitRepository).

Each entry knows its API coordinates (from the served CRDs in tidal.api.crd), the words flux
uses for it in messages ("source git" for humans, "GitRepository" for objects), its model, from
which `export` learns the Go field semantics (see tidal.cli.render), and what flux reports once
it is reconciled ("fetched revision ..." for sources, "applied revision ..." for appliers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tidal.api import crd, helmrelease, kustomize, source, source_oci
from tidal.api import source_helmchart as helmchart
from tidal.api.base import Model


def fetched_revision(obj: Mapping[str, Any]) -> str | None:
    """A source's success line; None while it has no artifact (flux would crash on it)."""
    revision = ((obj.get("status") or {}).get("artifact") or {}).get("revision")
    return None if revision is None else f"fetched revision {revision}"


def is_static(obj: Mapping[str, Any]) -> bool:
    """An object flux treats as a data holder that is never reconciled: an oci HelmRepository."""
    return (
        obj.get("kind") == source.HELM_REPOSITORY_KIND
        and (obj.get("spec") or {}).get("type") == source.HELM_REPOSITORY_TYPE_OCI
    )


def helm_repository_success(obj: Mapping[str, Any]) -> str | None:
    """An oci HelmRepository reports its Ready message (empty without one), others their
    revision."""
    if is_static(obj):
        for c in (obj.get("status") or {}).get("conditions") or []:
            if c.get("type") == "Ready":
                return str(c.get("message", ""))
        return ""
    return fetched_revision(obj)


def applied_revision(obj: Mapping[str, Any]) -> str | None:
    return f"applied revision {(obj.get('status') or {}).get('lastAppliedRevision') or ''}"


def helm_release_revision(obj: Mapping[str, Any]) -> str:
    """flux's revision of a HelmRelease: the chart version of the newest release in its history,
    else the last revision it attempted."""
    status = obj.get("status") or {}
    history = status.get("history") or []
    if history and isinstance(history[0], Mapping):
        return str(history[0].get("chartVersion") or "")
    return str(status.get("lastAttemptedRevision") or "")


def helm_release_success(obj: Mapping[str, Any]) -> str | None:
    return f"applied revision {helm_release_revision(obj)}"


@dataclass(frozen=True)
class ObjectKind:
    kind: str
    group: str
    version: str
    plural: str
    human: str  # what flux calls it in progress lines: "source git"
    spec_model: type[Model]
    success: Callable[[Mapping[str, Any]], str | None] = fetched_revision

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def resource(self) -> str:
        """`<plural>.<group>`, as the API server names the resource in its messages."""
        return f"{self.plural}.{self.group}"

    def collection(self, namespace: str | None) -> str:
        """The list path in one namespace, or across all when `namespace` is None."""
        base = f"/apis/{self.group}/{self.version}"
        if namespace is None:
            return f"{base}/{self.plural}"
        return f"{base}/namespaces/{quote(namespace, safe='')}/{self.plural}"

    def path(self, namespace: str, name: str) -> str:
        return f"{self.collection(namespace)}/{quote(name, safe='')}"

    def manifest(
        self,
        name: str,
        namespace: str,
        spec: dict[str, Any],
        labels: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """A new object of this kind as `create` writes it (labels only when there are any)."""
        metadata: dict[str, Any] = {"name": name, "namespace": namespace}
        if labels:
            metadata["labels"] = dict(labels)
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": metadata,
            "spec": spec,
        }


def _from_crd(
    kind: str,
    human: str,
    spec_model: type[Model],
    success: Callable[[Mapping[str, Any]], str | None] = fetched_revision,
) -> ObjectKind:
    served = next(k for k in crd.KINDS if k.kind == kind)
    return ObjectKind(kind, served.group, served.version, served.plural, human, spec_model, success)


GIT_REPOSITORY = _from_crd(source.GIT_REPOSITORY_KIND, "source git", source.GitRepositorySpec)
HELM_REPOSITORY = _from_crd(
    source.HELM_REPOSITORY_KIND, "source helm", source.HelmRepositorySpec, helm_repository_success
)
KUSTOMIZATION = _from_crd(
    kustomize.KUSTOMIZATION_KIND, "kustomization", kustomize.KustomizationSpec, applied_revision
)
HELM_CHART = _from_crd(helmchart.HELM_CHART_KIND, "source chart", helmchart.HelmChartSpec)
OCI_REPOSITORY = _from_crd(
    source_oci.OCI_REPOSITORY_KIND, "source oci", source_oci.OCIRepositorySpec
)
HELM_RELEASE = _from_crd(
    helmrelease.HELM_RELEASE_KIND, "helmrelease", helmrelease.HelmReleaseSpec, helm_release_success
)

_ALL = (GIT_REPOSITORY, HELM_REPOSITORY, HELM_CHART, OCI_REPOSITORY, KUSTOMIZATION, HELM_RELEASE)
BY_CLI_NAME: dict[str, ObjectKind] = {k.human: k for k in _ALL}
BY_KIND: dict[str, ObjectKind] = {k.kind: k for k in _ALL}
