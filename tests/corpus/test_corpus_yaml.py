"""Every YAML file of the real-repository corpus goes through tidal.kube.yamlio.load_all.

Files load, or fail with ManifestError when they are listed in KNOWN_INVALID (Go and Helm
templates, JSON 6902 patch lists); a change in either direction fails the test. Files that
PyYAML's safe_load_all can read must give the same objects, except for the differences
yamlio documents (YAML 1.1 booleans and timestamps, number syntax, go-yaml's folded scalars).

The corpus is ../shared/corpus next to the repository, or $TIDAL_CORPUS.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.corpus_path import corpus_root
from tidal.kube.yamlio import ManifestError, load_all

_root = corpus_root()
if _root is None:
    pytest.skip("corpus not found (set TIDAL_CORPUS)", allow_module_level=True)
CORPUS: Path = _root

GO_TEMPLATE = "Go template: flux CLI fixture with {{ .fluxns }} placeholders"
HELM_TEMPLATE = "Helm chart template ({{ ... }}), rendered by Helm first"
JSON_PATCH = "JSON 6902 patch: a top-level list of operations, not an object"
_FLUX_BUILD = "fluxcd__flux2/cmd/flux/testdata/build-kustomization/"
_FLUX_DIFF = "fluxcd__flux2/cmd/flux/testdata/diff-kustomization/"
_PODINFO = "stefanprodan__podinfo/charts/podinfo/templates/"

KNOWN_INVALID: dict[str, str] = {
    _FLUX_BUILD + "podinfo-kustomization.yaml": GO_TEMPLATE,
    _FLUX_BUILD + "podinfo-result.yaml": GO_TEMPLATE,
    _FLUX_BUILD + "podinfo-source.yaml": GO_TEMPLATE,
    _FLUX_BUILD + "podinfo-with-ignore-result.yaml": GO_TEMPLATE,
    _FLUX_BUILD + "podinfo-with-my-app-result.yaml": GO_TEMPLATE,
    _FLUX_BUILD + "podinfo-with-var-substitution-result.yaml": GO_TEMPLATE,
    _FLUX_BUILD + "podinfo-without-service-result.yaml": GO_TEMPLATE,
    _FLUX_DIFF + "deployment.yaml": GO_TEMPLATE,
    _FLUX_DIFF + "dockerconfigjson-sops-secret.yaml": GO_TEMPLATE,
    _FLUX_DIFF + "key-sops-secret.yaml": GO_TEMPLATE,
    _FLUX_DIFF + "my-app.yaml": GO_TEMPLATE,
    _FLUX_DIFF + "secret.yaml": GO_TEMPLATE,
    _FLUX_DIFF + "service.yaml": GO_TEMPLATE,
    _FLUX_DIFF + "stringdata-sops-secret.yaml": GO_TEMPLATE,
    _FLUX_DIFF + "value-sops-secret.yaml": GO_TEMPLATE,
    "fluxcd__flux2/manifests/bases/helm-controller/patch.yaml": JSON_PATCH,
    "fluxcd__flux2/manifests/bases/image-automation-controller/patch.yaml": JSON_PATCH,
    "fluxcd__flux2/manifests/bases/image-reflector-controller/patch.yaml": JSON_PATCH,
    "fluxcd__flux2/manifests/bases/kustomize-controller/patch.yaml": JSON_PATCH,
    "fluxcd__flux2/manifests/bases/notification-controller/patch.yaml": JSON_PATCH,
    "fluxcd__flux2/manifests/bases/source-controller/patch.yaml": JSON_PATCH,
    "fluxcd__flux2/manifests/bases/source-watcher/patch.yaml": JSON_PATCH,
    _PODINFO + "certificate.yaml": HELM_TEMPLATE,
    _PODINFO + "deployment.yaml": HELM_TEMPLATE,
    _PODINFO + "grpcroute.yaml": HELM_TEMPLATE,
    _PODINFO + "hooks/job.yaml": HELM_TEMPLATE,
    _PODINFO + "hpa.yaml": HELM_TEMPLATE,
    _PODINFO + "httproute.yaml": HELM_TEMPLATE,
    _PODINFO + "ingress.yaml": HELM_TEMPLATE,
    _PODINFO + "pdb.yaml": HELM_TEMPLATE,
    _PODINFO + "redis/config.yaml": HELM_TEMPLATE,
    _PODINFO + "redis/deployment.yaml": HELM_TEMPLATE,
    _PODINFO + "redis/service.yaml": HELM_TEMPLATE,
    _PODINFO + "service.yaml": HELM_TEMPLATE,
    _PODINFO + "serviceaccount.yaml": HELM_TEMPLATE,
    _PODINFO + "servicemonitor.yaml": HELM_TEMPLATE,
    _PODINFO + "tests/cache.yaml": HELM_TEMPLATE,
    _PODINFO + "tests/fail.yaml": HELM_TEMPLATE,
    _PODINFO + "tests/grpc.yaml": HELM_TEMPLATE,
    _PODINFO + "tests/jwt.yaml": HELM_TEMPLATE,
    _PODINFO + "tests/service.yaml": HELM_TEMPLATE,
    _PODINFO + "tests/timeout.yaml": HELM_TEMPLATE,
    _PODINFO + "tests/tls.yaml": HELM_TEMPLATE,
}

FILES = sorted(
    path.relative_to(CORPUS).as_posix()
    for path in CORPUS.rglob("*")
    if path.suffix in (".yaml", ".yml") and path.is_file()
)


def test_corpus_is_there() -> None:
    assert len(FILES) > 500


def test_known_invalid_files_exist() -> None:
    assert sorted(set(KNOWN_INVALID) - set(FILES)) == []


@pytest.mark.parametrize("name", FILES)
def test_file_loads_or_is_known_invalid(name: str) -> None:
    data = (CORPUS / name).read_bytes()
    if name in KNOWN_INVALID:
        with pytest.raises(ManifestError) as info:
            load_all(data, source=name)
        assert info.value.source == name and info.value.line is not None
        return
    documents = load_all(data, source=name)
    assert all(isinstance(doc, dict) and doc for doc in documents)


YAML11_BOOLEANS = {"yes", "no", "on", "off", "y", "n"}


def _as_utc(value: dt.date) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)


def _explain(ref: Any, ours: Any) -> str | None:
    """Which documented difference turns PyYAML's value into ours, if any."""
    if isinstance(ref, bool) and isinstance(ours, str) and ours.lower() in YAML11_BOOLEANS:
        return "YAML 1.1 boolean word stays a string"
    if isinstance(ref, dt.date) and isinstance(ours, str):
        parsed = dt.datetime.fromisoformat(ours.replace("Z", "+00:00"))
        if parsed == _as_utc(ref):
            return "timestamp becomes an RFC 3339 string"
    if isinstance(ref, int | float) and isinstance(ours, str) and ":" in ours:
        return "no base-60 numbers"
    if isinstance(ref, float) and type(ours) is int and ref == ours:
        return "integral float becomes an int"
    if isinstance(ref, str) and isinstance(ours, int | float) and not isinstance(ours, bool):
        return "go-yaml number syntax (0o, 1e3, ...)"
    if ref is None and ours == "":
        return "empty value in a flow collection is a string"
    if (
        isinstance(ref, str)
        and isinstance(ours, str)
        and ours.count("\n") > ref.count("\n")
        and [line for line in ours.split("\n") if line]
        == [line for line in ref.split("\n") if line]
    ):
        return "go-yaml re-emits a folded scalar with extra line breaks"
    return None


def _differences(ref: Any, ours: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, explanation or 'UNEXPLAINED ...') for every place the two values differ."""
    if isinstance(ref, dict) and isinstance(ours, dict):
        for key in ref.keys() | ours.keys():
            if key not in ref or key not in ours:
                yield f"{path}/{key}", "UNEXPLAINED: key on one side only"
            else:
                yield from _differences(ref[key], ours[key], f"{path}/{key}")
    elif isinstance(ref, list) and isinstance(ours, list) and len(ref) == len(ours):
        for i, (a, b) in enumerate(zip(ref, ours, strict=True)):
            yield from _differences(a, b, f"{path}/{i}")
    elif type(ref) is not type(ours) or ref != ours:
        yield path, _explain(ref, ours) or f"UNEXPLAINED: {ref!r} -> {ours!r}"


@pytest.mark.parametrize("name", [name for name in FILES if name not in KNOWN_INVALID])
def test_same_objects_as_pyyaml_but_for_documented_differences(name: str) -> None:
    text = (CORPUS / name).read_text(encoding="utf-8")
    try:
        reference = list(yaml.safe_load_all(text))
    except yaml.YAMLError:
        pytest.skip("PyYAML cannot load it (e.g. a re-defined anchor)")
    # load_all skips empty documents, as kustomize does
    reference = [doc for doc in reference if doc not in (None, {}, [])]
    ours = load_all(text, source=name)
    assert len(ours) == len(reference)
    unexplained = [
        (path, why)
        for path, why in _differences(reference, ours, "")
        if why.startswith("UNEXPLAINED")
    ]
    assert unexplained == []


def test_pyyaml_rejects_what_flux_accepts() -> None:
    # The corpus README: re-defined anchors are valid YAML for go-yaml, refused by PyYAML.
    name = "onedr0p__home-ops/kubernetes/apps/network/cloudflare-dns/app/helmrelease.yaml"
    text = (CORPUS / name).read_text(encoding="utf-8")
    with pytest.raises(yaml.YAMLError, match="duplicate anchor"):
        list(yaml.safe_load_all(text))
    [release] = load_all(text, source=name)
    env = release["spec"]["values"]["env"]
    assert [(e["name"], e["valueFrom"]["secretKeyRef"]["key"]) for e in env] == [
        ("CF_API_TOKEN", "CF_API_TOKEN"),
        ("CF_ZONE_ID", "CF_ZONE_ID"),
    ]
    assert release["spec"]["values"]["podAnnotations"] == {
        "secret.reloader.stakater.com/reload": "cloudflare-dns-secret"
    }
    name = "onedr0p__home-ops/kubernetes/apps/network/certificates/export/pushsecret.yaml"
    [push] = load_all((CORPUS / name).read_bytes(), source=name)
    assert [d["match"]["remoteRef"]["property"] for d in push["spec"]["data"]] == [
        "tls.crt",
        "tls.key",
    ]
