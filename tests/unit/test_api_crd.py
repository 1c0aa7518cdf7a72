"""Generated CRDs: committed files match the models, and the schema matches Flux's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import flux_reference
from tidal.api import crd

REPO = Path(__file__).resolve().parents[2]
BASES = REPO / "config" / "crd" / "bases"


@pytest.mark.parametrize("kind", crd.KINDS, ids=lambda k: k.kind)
def test_committed_crd_matches_the_models(kind: crd.Kind) -> None:
    committed = (BASES / crd.file_name(kind)).read_text()
    assert committed == crd.render(kind), (
        f"config/crd/bases/{crd.file_name(kind)} is stale: "
        "run `python -m tidal.api.crd --write config/crd/bases`"
    )


def test_every_committed_crd_has_a_model() -> None:
    assert sorted(p.name for p in BASES.glob("*.yaml")) == sorted(
        crd.file_name(k) for k in crd.KINDS
    )


# What a user can observe of a schema: everything but the prose.
_FACTS = (
    "type",
    "enum",
    "pattern",
    "default",
    "format",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "x-kubernetes-validations",
)


def schema_facts(schema: dict[str, Any], path: str = "") -> dict[str, dict[str, Any]]:
    facts = {path or ".": {k: schema[k] for k in _FACTS if k in schema}}
    facts[path or "."]["required"] = sorted(schema.get("required", []))
    for name, sub in schema.get("properties", {}).items():
        facts.update(schema_facts(sub, f"{path}.{name}"))
    if "items" in schema:
        facts.update(schema_facts(schema["items"], f"{path}[]"))
    if isinstance(schema.get("additionalProperties"), dict):
        facts.update(schema_facts(schema["additionalProperties"], f"{path}{{}}"))
    return facts


FLUX_FILES = {
    "GitRepository": (
        flux_reference.SOURCE_CONTROLLER,
        "source.toolkit.fluxcd.io_gitrepositories.yaml",
    ),
    "HelmRepository": (
        flux_reference.SOURCE_CONTROLLER,
        "source.toolkit.fluxcd.io_helmrepositories.yaml",
    ),
    "OCIRepository": (
        flux_reference.SOURCE_CONTROLLER,
        "source.toolkit.fluxcd.io_ocirepositories.yaml",
    ),
    "HelmChart": (
        flux_reference.SOURCE_CONTROLLER,
        "source.toolkit.fluxcd.io_helmcharts.yaml",
    ),
    "Kustomization": (
        flux_reference.KUSTOMIZE_CONTROLLER,
        "kustomize.toolkit.fluxcd.io_kustomizations.yaml",
    ),
    "HelmRelease": (
        flux_reference.HELM_CONTROLLER,
        "helm.toolkit.fluxcd.io_helmreleases.yaml",
    ),
}


@pytest.mark.parametrize("kind", crd.KINDS, ids=lambda k: k.kind)
def test_schema_matches_flux_field_for_field(kind: crd.Kind) -> None:
    (module, version), file = FLUX_FILES[kind.kind]
    theirs = flux_reference.flux_crd(module, version, file)
    ours = crd.crd(kind)
    assert ours["spec"]["names"] == theirs["spec"]["names"]
    # Flux's own annotations (the postBuild opt-out), not the generator's version stamp.
    flux_annotations = theirs["metadata"].get("annotations") or {}
    assert ours["metadata"]["annotations"] == {
        k: v for k, v in flux_annotations.items() if not k.startswith("controller-gen.")
    }
    assert ours["spec"]["scope"] == theirs["spec"]["scope"]
    assert [v["name"] for v in ours["spec"]["versions"]] == [
        v["name"] for v in theirs["spec"]["versions"] if v.get("served", True)
    ]
    for mine, flux in zip(ours["spec"]["versions"], theirs["spec"]["versions"], strict=False):
        assert sorted(map(str, mine["additionalPrinterColumns"])) == sorted(
            map(str, flux["additionalPrinterColumns"])
        )
        assert mine["subresources"] == flux["subresources"]
        a = schema_facts(mine["schema"]["openAPIV3Schema"])
        b = schema_facts(flux["schema"]["openAPIV3Schema"])
        assert sorted(a) == sorted(b), "field sets differ"
        for path in b:
            assert a[path] == b[path], f"{path} differs"
