"""The generated CRDs on a real API server: accepted, defaulted and validated as Flux's are."""

from __future__ import annotations

from typing import Any

import pytest

from tidal.api import crd
from tidal.api.source import GitRepository
from tidal.install import apply
from tidal.kube.client import ApiError, Kube

pytestmark = pytest.mark.e2e

GIT_KIND = next(k for k in crd.KINDS if k.kind == "GitRepository")


async def install(kube: Kube, kind: crd.Kind) -> None:
    """Apply a CRD as `tidal install` does and wait until it is Established."""
    await apply.apply_all(kube, [crd.crd(kind)], within=30)


def git_repository(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"url": "https://github.com/stefanprodan/podinfo", "interval": "1m", **spec},
    }


async def create(kube: Kube, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    path = f"/apis/source.toolkit.fluxcd.io/v1/namespaces/{namespace}/gitrepositories"
    return await kube.request("POST", path, body=body)


async def test_crd_is_established_and_defaults_apply(kube: Kube, namespace: str) -> None:
    await install(kube, GIT_KIND)
    created = await create(
        kube, namespace, git_repository(namespace, "podinfo", ref={"branch": "master"})
    )
    assert created["spec"]["timeout"] == "60s"
    model = GitRepository.from_dict(created)
    assert model.spec.ref is not None and model.spec.ref.branch == "master"
    assert model.metadata.generation == 1
    # Status is a subresource: a write to the main resource cannot set it.
    assert "conditions" not in created.get("status", {})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"url": "git@github.com:org/repo.git"}, "spec.url"),
        ({"interval": "1d"}, "spec.interval"),
        ({"timeout": "1h"}, "spec.timeout"),
        (
            {
                "ref": {"branch": "main"},
                "verify": {"mode": "Sometimes", "secretRef": {"name": "k"}},
            },
            "spec.verify.mode",
        ),
        ({"serviceAccountName": "sa"}, "serviceAccountName can only be set when provider is"),
        ({"provider": "gitlab"}, "spec.provider"),
    ],
)
async def test_invalid_specs_are_refused(
    kube: Kube, namespace: str, spec: dict[str, Any], expected: str
) -> None:
    await install(kube, GIT_KIND)
    with pytest.raises(ApiError) as refused:
        await create(kube, namespace, git_repository(namespace, "bad", **spec))
    assert refused.value.status == 422
    assert expected in str(refused.value)


async def test_service_account_is_allowed_with_a_cloud_provider(kube: Kube, namespace: str) -> None:
    await install(kube, GIT_KIND)
    created = await create(
        kube,
        namespace,
        git_repository(namespace, "cloud", provider="azure", serviceAccountName="sa"),
    )
    assert created["spec"]["serviceAccountName"] == "sa"
