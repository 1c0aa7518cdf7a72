"""`tidal install` on a real cluster, and its --export output."""

from __future__ import annotations

import secrets
import subprocess
import sys

import pytest

from tests.plugin import Cluster
from tidal.kube.client import Kube

pytestmark = pytest.mark.e2e


def tidal(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidal", "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


async def test_install_applies_everything_and_is_idempotent(cluster: Cluster, kube: Kube) -> None:
    ns = f"tidal-{secrets.token_hex(3)}"
    first = tidal(cluster, "install", "-n", ns, "--timeout", "2m")
    assert first.returncode == 0, first.stderr
    assert "✔ install finished" in first.stderr
    assert f"Deployment/{ns}/tidal-controller created" in first.stderr

    deployment = await kube.get(f"/apis/apps/v1/namespaces/{ns}/deployments/tidal-controller")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["--namespace=$(RUNTIME_NAMESPACE)", "controller"]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert deployment["status"]["availableReplicas"] == 1
    service = await kube.get(f"/api/v1/namespaces/{ns}/services/source-controller")
    assert service["spec"]["ports"][0]["port"] == 80
    crd = await kube.get(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
        "gitrepositories.source.toolkit.fluxcd.io"
    )
    assert crd["spec"]["versions"][0]["name"] == "v1"
    binding = await kube.get(
        f"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/tidal-controller-{ns}"
    )
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "tidal-controller", "namespace": ns}
    ]
    ks_crd = await kube.get(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
        "kustomizations.kustomize.toolkit.fluxcd.io"
    )
    assert ks_crd["spec"]["names"]["shortNames"] == ["ks"]
    # Kustomizations apply arbitrary objects, RBAC included, and impersonate ServiceAccounts:
    # the controller's identity may do all of that anywhere, as Flux's kustomize-controller.
    user = f"system:serviceaccount:{ns}:tidal-controller"
    for attributes in (
        {"verb": "delete", "resource": "deployments", "group": "apps", "namespace": "default"},
        {"verb": "create", "resource": "clusterroles", "group": "rbac.authorization.k8s.io"},
        {"verb": "impersonate", "resource": "serviceaccounts", "namespace": "default"},
    ):
        assert await _allowed(kube, user, attributes), attributes
    assert not await _allowed(
        kube,
        f"system:serviceaccount:{ns}:default",
        {"verb": "list", "resource": "kustomizations", "group": "kustomize.toolkit.fluxcd.io"},
    )

    second = tidal(cluster, "install", "-n", ns, "--timeout", "2m")
    if second.returncode != 0:
        # Say why the Deployment was not ready (a flake seen once under load).
        nodes = await kube.get("/api/v1/nodes")
        pods = await kube.get(f"/api/v1/namespaces/{ns}/pods")
        detail = {
            "nodes": [
                (n["metadata"]["name"], n["status"].get("conditions")) for n in nodes["items"]
            ],
            "pods": [(p["metadata"]["name"], p.get("status")) for p in pods["items"]],
            "deployment": (
                await kube.get(f"/apis/apps/v1/namespaces/{ns}/deployments/tidal-controller")
            ).get("status"),
        }
        pytest.fail(f"{second.stderr}\n{detail}")
    assert "created" not in second.stderr and "configured" not in second.stderr


async def _allowed(kube: Kube, user: str, attributes: dict[str, str]) -> bool:
    review = await kube.request(
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        body={
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {"user": user, "resourceAttributes": attributes},
        },
    )
    return bool(review["status"]["allowed"])
