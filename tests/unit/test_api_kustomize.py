"""The Kustomization model: Flux manifests decode and encode unchanged, defaults are Flux's,
and what Flux's CRD refuses is refused with the field's path."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tests.corpus_path import corpus_root
from tidal.api import kustomize
from tidal.api.kustomize import Kustomization, KustomizationSpec, ResourceInventory
from tidal.api.meta import DependencyReference
from tidal.kube import yamlio

MINIMAL: dict[str, Any] = {
    "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
    "kind": "Kustomization",
    "metadata": {"name": "apps", "namespace": "flux-system"},
    "spec": {
        "interval": "10m",
        "prune": True,
        "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
    },
}


def with_spec(**spec: Any) -> dict[str, Any]:
    return {**MINIMAL, "spec": {**MINIMAL["spec"], **spec}}


def test_a_minimal_kustomization_gets_flux_s_defaults() -> None:
    ks = Kustomization.from_dict(MINIMAL)
    spec = ks.spec
    assert (spec.path, spec.force, spec.wait, spec.suspend) == ("", False, False, False)
    assert spec.timeout is None and spec.retry_interval is None
    assert spec.effective_deletion_policy() == "MirrorPrune"
    assert spec.effective_substitute_strategy() == "WithVariables"
    # A never-reconciled object reports generation -1, so kstatus sees it as not yet done.
    assert ks.status.observed_generation == -1
    assert ks.to_dict()["spec"] == MINIMAL["spec"]


@pytest.mark.parametrize(
    ("interval", "timeout", "seconds"),
    [("10m", None, 570.0), ("45s", None, 30.0), ("1m", None, 30.0), ("10m", "2m", 120.0)],
)
def test_timeout_defaults_to_the_interval_less_30s_but_never_under_30s(
    interval: str, timeout: str | None, seconds: float
) -> None:
    spec = KustomizationSpec.from_dict(
        {**MINIMAL["spec"], "interval": interval, **({"timeout": timeout} if timeout else {})}
    )
    assert spec.timeout_seconds() == seconds


def test_retry_interval_defaults_to_the_interval() -> None:
    assert Kustomization.from_dict(MINIMAL).spec.retry_interval_seconds() == 600.0
    assert Kustomization.from_dict(with_spec(retryInterval="2m")).spec.retry_interval_seconds() == (
        120.0
    )


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ({"interval": "1d"}, "spec.interval"),
        ({"timeout": "5"}, "spec.timeout"),
        ({"retryInterval": "soon"}, "spec.retryInterval"),
        ({"sourceRef": {"kind": "HelmRepository", "name": "x"}}, "spec.sourceRef.kind"),
        ({"sourceRef": {"kind": "GitRepository"}}, "spec.sourceRef"),
        ({"deletionPolicy": "Keep"}, "spec.deletionPolicy"),
        ({"decryption": {"provider": "age"}}, "spec.decryption.provider"),
        ({"targetNamespace": "n" * 64}, "spec.targetNamespace"),
        ({"namePrefix": ""}, "spec.namePrefix"),
        ({"nameSuffix": "s" * 201}, "spec.nameSuffix"),
        ({"buildMetadata": ["managedByLabel"]}, "spec.buildMetadata[0]"),
        ({"postBuild": {"substituteStrategy": "Never"}}, "spec.postBuild.substituteStrategy"),
        (
            {"postBuild": {"substituteFrom": [{"kind": "Namespace", "name": "x"}]}},
            "spec.postBuild.substituteFrom[0].kind",
        ),
        (
            {"postBuild": {"substituteFrom": [{"kind": "Secret", "name": ""}]}},
            "spec.postBuild.substituteFrom[0].name",
        ),
        ({"healthChecks": [{"name": "app"}]}, "spec.healthChecks[0]"),
        ({"healthCheckExprs": [{"apiVersion": "v1", "kind": "X"}]}, "spec.healthCheckExprs[0]"),
        ({"ignore": [{"target": {"kind": "Secret"}}]}, "spec.ignore[0]"),
        ({"patches": [{"target": {"kind": "Secret"}}]}, "spec.patches[0]"),
        ({"kubeConfig": {"secretRef": {"key": "value"}}}, "spec.kubeConfig.secretRef"),
    ],
)
def test_invalid_specs_are_refused_with_the_field_path(spec: dict[str, Any], where: str) -> None:
    with pytest.raises(msgspec.ValidationError) as e:
        Kustomization.from_dict(with_spec(**spec))
    assert f"`$.{where}`" in str(e.value)


@pytest.mark.parametrize("required", ["interval", "prune", "sourceRef"])
def test_flux_s_required_fields_are_required(required: str) -> None:
    doc = {**MINIMAL, "spec": {k: v for k, v in MINIMAL["spec"].items() if k != required}}
    with pytest.raises(msgspec.ValidationError, match=f"missing required field `{required}`"):
        Kustomization.from_dict(doc)


def test_every_spec_field_round_trips() -> None:
    spec = {
        **MINIMAL["spec"],
        "path": "./apps/production",
        "retryInterval": "2m",
        "timeout": "5m",
        "targetNamespace": "apps",
        "namePrefix": "p-",
        "nameSuffix": "-s",
        "serviceAccountName": "deployer",
        "suspend": True,
        "force": True,
        "wait": True,
        "deletionPolicy": "WaitForTermination",
        "dependsOn": [{"name": "infra"}, {"name": "crds", "namespace": "x", "readyExpr": "true"}],
        "healthChecks": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "a"}],
        "healthCheckExprs": [
            {"apiVersion": "example.com/v1", "kind": "Db", "current": "true", "failed": "false"}
        ],
        "commonMetadata": {"labels": {"team": "a"}, "annotations": {"owner": "b"}},
        "patches": [{"patch": "- op: remove\n  path: /x\n", "target": {"kind": "Deployment"}}],
        "images": [{"name": "nginx", "newTag": "1.27", "digest": "sha256:" + "0" * 64}],
        "components": ["../components/a"],
        "ignoreMissingComponents": True,
        "buildMetadata": ["originAnnotations"],
        "postBuild": {
            "substituteStrategy": "Always",
            "substitute": {"cluster": "prod"},
            "substituteFrom": [{"kind": "ConfigMap", "name": "vars", "optional": True}],
        },
        "decryption": {"provider": "sops", "secretRef": {"name": "sops-age"}},
        "kubeConfig": {"secretRef": {"name": "remote", "key": "value.yaml"}},
        "ignore": [{"paths": ["/spec/replicas"], "target": {"labelSelector": "app=a"}}],
    }
    ks = Kustomization.from_dict({**MINIMAL, "spec": spec})
    assert ks.to_dict()["spec"] == spec
    assert str(ks.spec.depends_on[1]) == "x/crds@true"
    assert str(ks.spec.source_ref) == "GitRepository/flux-system"


def test_status_keeps_inventory_history_and_revisions() -> None:
    status = {
        "observedGeneration": 3,
        "lastAppliedRevision": "main@sha1:abc",
        "lastAppliedOriginRevision": "v1.0.0@sha1:abc",
        "lastAttemptedRevision": "main@sha1:def",
        "lastHandledReconcileAt": "2026-01-01T00:00:00Z",
        "inventory": {
            "entries": [
                {"id": "default_podinfo_apps_Deployment", "v": "v1"},
                {"id": "_podinfo__Namespace", "v": "v1"},
            ]
        },
        "history": [
            {
                "digest": "sha256:" + "a" * 64,
                "firstReconciled": "2026-01-01T00:00:00Z",
                "lastReconciled": "2026-01-01T00:10:00Z",
                "lastReconciledDuration": "1.2s",
                "lastReconciledStatus": "ReconciliationSucceeded",
                "totalReconciliations": 3,
                "metadata": {"revision": "main@sha1:abc"},
            }
        ],
    }
    ks = Kustomization.from_dict({**MINIMAL, "status": status})
    assert ks.status.inventory == ResourceInventory.from_dict(status["inventory"])
    assert ks.status.inventory is not None
    assert ks.status.inventory.entries[0].version == "v1"
    assert ks.status.history[0].total_reconciliations == 3
    assert ks.to_dict()["status"] == status


def test_flux_s_constants() -> None:
    assert kustomize.API_VERSION == "kustomize.toolkit.fluxcd.io/v1"
    assert (kustomize.NAME_LABEL, kustomize.NAMESPACE_LABEL) == (
        "kustomize.toolkit.fluxcd.io/name",
        "kustomize.toolkit.fluxcd.io/namespace",
    )
    assert kustomize.SSA_ANNOTATION == "kustomize.toolkit.fluxcd.io/ssa"
    assert str(DependencyReference(name="a")) == "a"


def corpus_kustomizations() -> list[tuple[str, dict[str, Any]]]:
    root = corpus_root()
    if root is None:
        return []
    found = []
    for path in sorted(root.rglob("*.y*ml")):
        try:
            docs = yamlio.load_all(path.read_bytes(), source=str(path))
        except yamlio.ManifestError:
            continue
        for doc in docs:
            # Patch files and `flux build` fixtures hold partial objects; only whole ones count.
            if (
                isinstance(doc, dict)
                and doc.get("apiVersion") == kustomize.API_VERSION
                and doc.get("kind") == "Kustomization"
                and "sourceRef" in (doc.get("spec") or {})
            ):
                found.append((str(path.relative_to(root)), doc))
    return found


@pytest.mark.parametrize(("path", "doc"), corpus_kustomizations(), ids=lambda v: str(v)[:60])
def test_corpus_kustomizations_round_trip(path: str, doc: dict[str, Any]) -> None:
    out = Kustomization.from_dict(doc).to_dict()
    # Like Go's omitempty, a field set to its zero value (wait: false) is left out.
    expected = {k: v for k, v in doc["spec"].items() if v is not False or k == "prune"}
    assert out["spec"] == expected


def test_corpus_has_kustomizations() -> None:
    if corpus_root() is None:
        pytest.skip("corpus not present")
    assert len(corpus_kustomizations()) >= 50
