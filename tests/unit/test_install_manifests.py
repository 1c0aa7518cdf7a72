"""The install manifests: what `tidal install --export` prints."""

from __future__ import annotations

import subprocess
import sys

from tidal.api import crd
from tidal.install import manifests
from tidal.kube import yamlio


def test_export_prints_the_manifests_without_a_cluster() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tidal",
            "--kubeconfig",
            "/nonexistent",
            "install",
            "--export",
            "--registry",
            "registry.example/me",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    docs = yamlio.load_all(out.stdout)
    kinds = [d["kind"] for d in docs]
    assert kinds == [
        *["CustomResourceDefinition"] * len(crd.KINDS),
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "Service",
        "Deployment",
    ]
    names = [d["metadata"]["name"] for d in docs[: len(crd.KINDS)]]
    assert names == [k.name for k in crd.KINDS]
    assert names[:2] == [
        "gitrepositories.source.toolkit.fluxcd.io",
        "helmrepositories.source.toolkit.fluxcd.io",
    ]
    image = docs[-1]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.startswith("registry.example/me/tidal:v")


def test_pod_meets_the_restricted_standard_and_serves_flux_urls() -> None:
    o = manifests.InstallOptions(namespace="gitops", toleration_keys=("dedicated",))
    pod = manifests.deployment(o)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert (
        "--storage-adv-addr=source-controller.$(RUNTIME_NAMESPACE).svc.cluster.local."
        in (container["args"])
    )
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]
    assert manifests.service(o)["metadata"]["name"] == "source-controller"


def test_the_controller_may_apply_anything_as_flux_s_kustomize_controller_may() -> None:
    o = manifests.InstallOptions(namespace="gitops")
    bindings = [d for d in manifests.rbac(o) if d["kind"] == "ClusterRoleBinding"]
    admin = [b for b in bindings if b["roleRef"]["name"] == "cluster-admin"]
    assert len(admin) == 1
    assert admin[0]["subjects"] == [
        {"kind": "ServiceAccount", "name": "tidal-controller", "namespace": "gitops"}
    ]
    # Named per install namespace, so two installs (or Flux's own binding) never collide.
    assert admin[0]["metadata"]["name"] == "tidal-controller-reconciler-gitops"
    own = next(d for d in manifests.rbac(o) if d["kind"] == "ClusterRole")
    assert own["rules"][0]["apiGroups"] == sorted({k.group for k in crd.KINDS})
    assert "source.toolkit.fluxcd.io" in own["rules"][0]["apiGroups"]
