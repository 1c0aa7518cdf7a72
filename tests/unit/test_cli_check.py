"""`tidal check` and `tidal uninstall` without a cluster: the version rule, the permissions
install needs, how an installation is read and reported, and bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tidal.api import crd
from tidal.cli.main import cli
from tidal.install import checks, manifests
from tidal.install.checks import ClusterInfo, KubeVersion, Permission
from tidal.install.uninstall import Plan, crd_resource
from tidal.kube.discovery import Resource

# What discovery answers for the kinds `tidal install` applies.
_BUILT_IN = {
    "CustomResourceDefinition": Resource(
        "apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False
    ),
    "Namespace": Resource("", "v1", "Namespace", "namespaces", False),
    "ServiceAccount": Resource("", "v1", "ServiceAccount", "serviceaccounts", True),
    "ClusterRole": Resource(
        "rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False
    ),
    "ClusterRoleBinding": Resource(
        "rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False
    ),
    "Service": Resource("", "v1", "Service", "services", True),
    "Deployment": Resource("apps", "v1", "Deployment", "deployments", True),
}


@pytest.mark.parametrize(
    ("text", "parsed", "printed"),
    [
        ("v1.37.2", KubeVersion(1, 37, 2), "1.37.2"),
        ("v1.30.4-eks-a737599", KubeVersion(1, 30, 4, "eks-a737599"), "1.30.4-eks-a737599"),
        ("v1.31.1+k3s1", KubeVersion(1, 31, 1, "", "k3s1"), "1.31.1+k3s1"),
        ("1.29", KubeVersion(1, 29, 0), "1.29.0"),
    ],
)
def test_server_versions_read_as_go_semver_prints_them(
    text: str, parsed: KubeVersion, printed: str
) -> None:
    assert checks.parse_version(text) == parsed
    assert str(parsed) == printed


def test_a_version_that_is_not_one_is_refused() -> None:
    assert checks.parse_version("latest") is None
    assert checks.parse_version("") is None


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("v1.28.15", False),
        ("v1.29.0-gke.1", True),  # "-0" in the constraint lets vendor builds of 1.29.0 in
        ("v1.29.0", True),
        ("v1.37.2", True),
        ("v2.0.0", True),
        ("v0.99.0", False),
    ],
)
def test_the_minimum_is_1_29(text: str, ok: bool) -> None:
    version = checks.parse_version(text)
    assert version is not None
    assert checks.supported(version) is ok
    assert checks.KUBERNETES_CONSTRAINT == ">=1.29.0-0"


def _install_permissions(namespace: str) -> list[Permission]:
    objects = manifests.all_objects(manifests.InstallOptions(namespace=namespace))
    return checks.required_permissions((o, _BUILT_IN[o["kind"]]) for o in objects)


def test_install_needs_to_apply_each_kind_and_to_grant_its_roles() -> None:
    wanted = _install_permissions("gitops")
    verbs = {(p.verb, p.what, p.namespace) for p in wanted}
    for verb in ("get", "create", "patch"):
        assert (verb, "customresourcedefinitions.apiextensions.k8s.io", "") in verbs
        assert (verb, "namespaces", "") in verbs
        assert (verb, "deployments.apps", "gitops") in verbs
        assert (verb, "serviceaccounts", "gitops") in verbs
        assert (verb, "clusterrolebindings.rbac.authorization.k8s.io", "") in verbs
    rbac = "rbac.authorization.k8s.io"
    assert Permission("escalate", rbac, "clusterroles") in wanted
    assert Permission("bind", rbac, "clusterroles", name="cluster-admin") in wanted
    assert Permission("bind", rbac, "clusterroles", name="tidal-controller-gitops") in wanted
    assert len(wanted) == len(set(wanted))
    crd_get = next(p for p in wanted if p.resource == "customresourcedefinitions")
    assert crd_get.attributes() == {
        "verb": "get",
        "group": "apiextensions.k8s.io",
        "resource": "customresourcedefinitions",
        "name": "gitrepositories.source.toolkit.fluxcd.io",
    }


def test_missing_permissions_read_one_line_per_resource() -> None:
    wanted = _install_permissions("gitops")
    refused = [p for p in wanted if p.namespace != "gitops"]  # a namespace admin's lot
    assert checks.describe_missing(refused) == [
        "cannot get, create, patch customresourcedefinitions.apiextensions.k8s.io",
        "cannot get, create, patch namespaces",
        "cannot get, create, patch, escalate clusterroles.rbac.authorization.k8s.io",
        "cannot get, create, patch clusterrolebindings.rbac.authorization.k8s.io",
        "cannot bind clusterroles.rbac.authorization.k8s.io/tidal-controller-gitops",
        "cannot bind clusterroles.rbac.authorization.k8s.io/cluster-admin",
    ]
    only_deployments = [p for p in wanted if p.resource == "deployments" and p.verb != "get"]
    assert checks.describe_missing(only_deployments) == [
        "cannot create, patch deployments.apps in namespace gitops"
    ]


def _deployment(version: str) -> dict[str, Any]:
    return {"metadata": {"name": "tidal-controller", "labels": {checks.VERSION_LABEL: version}}}


def test_the_distribution_is_flux_s_or_tidal_s() -> None:
    flux_labels = {checks.PART_OF_LABEL: "flux", checks.VERSION_LABEL: "v2.9.5"}
    assert checks.cluster_info(flux_labels).distribution == "flux-v2.9.5"
    # tidal's CRDs carry no version: the controller's Deployment tells it.
    tidal_labels = {checks.PART_OF_LABEL: "tidal"}
    info = checks.cluster_info(tidal_labels, [_deployment("v0.1.0")])
    assert info == ClusterInfo(part_of="tidal", version="v0.1.0")
    assert info.distribution == "tidal-v0.1.0"
    assert checks.cluster_info(tidal_labels).distribution == "tidal"
    assert checks.cluster_info({}).distribution == ""


def test_bootstrapped_means_a_kustomization_applied_the_crds() -> None:
    applied = {
        "kustomize.toolkit.fluxcd.io/name": "flux-system",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
        checks.MANAGED_BY_LABEL: "helm",
    }
    info = checks.cluster_info(applied)
    assert info.bootstrapped is True
    assert info.managed_by == "helm"
    assert checks.cluster_info({checks.PART_OF_LABEL: "tidal"}).bootstrapped is False


def _crd(name: str, stored: list[str], established: str = "True") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {
            "storedVersions": stored,
            "conditions": [{"type": "Established", "status": established}],
        },
    }


def test_crds_are_listed_with_their_last_stored_version_and_gaps_fail() -> None:
    names = [k.name for k in crd.KINDS]
    git, others = names[0], names[1:]
    assert git == "gitrepositories.source.toolkit.fluxcd.io"
    states = checks.crd_states(
        [_crd(git, ["v1beta2", "v1"]), *(_crd(name, ["v1"]) for name in others)]
    )
    assert [(s.ok, s.message) for s in states] == [
        (True, f"{git}/v1"),
        *((True, f"{name}/v1") for name in others),
    ]
    states = checks.crd_states([_crd(git, []), _crd("other.example.com", ["v1"], "False")])
    assert [(s.ok, s.message) for s in states] == [
        (False, f"no stored versions for {git}"),
        (False, "other.example.com/v1 is not established"),
        *((False, f"{name} not found") for name in others),
    ]


def test_uninstall_selects_one_installation_and_says_dry_run() -> None:
    plan = Plan("gitops")
    assert plan.components_selector == (
        "app.kubernetes.io/part-of=tidal,app.kubernetes.io/instance=gitops"
    )
    assert plan.crd_selector == "app.kubernetes.io/part-of=tidal"
    assert plan.params is None
    assert plan.done("Namespace/gitops deleted") == "Namespace/gitops deleted"
    dry = Plan("gitops", dry_run=True)
    assert dry.params == {"dryRun": "All"}
    assert dry.done("Namespace/gitops deleted") == "Namespace/gitops deleted (dry run)"


def test_custom_objects_are_read_at_the_crd_s_storage_version() -> None:
    definition = {
        "spec": {
            "group": "source.toolkit.fluxcd.io",
            "scope": "Namespaced",
            "names": {"kind": "GitRepository", "plural": "gitrepositories"},
            "versions": [{"name": "v1beta2", "storage": False}, {"name": "v1", "storage": True}],
        }
    }
    res = crd_resource(definition)
    assert res == Resource(
        "source.toolkit.fluxcd.io", "v1", "GitRepository", "gitrepositories", True
    )
    assert res.collection() == "/apis/source.toolkit.fluxcd.io/v1/gitrepositories"


def test_a_poll_interval_must_be_a_positive_duration() -> None:
    zero = CliRunner().invoke(cli, ["check", "--poll-interval", "0s"])
    assert zero.exit_code == 1
    assert zero.output == "✗ --poll-interval must be positive, not 0s\n"
    bogus = CliRunner().invoke(cli, ["check", "--poll-interval", "soon"])
    assert bogus.exit_code == 2
    assert 'time: invalid duration "soon"' in bogus.output


@pytest.mark.parametrize("args", [["check"], ["check", "--pre"], ["uninstall", "-s"]])
def test_no_kubeconfig_is_one_clear_line(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "nope"
    result = CliRunner().invoke(cli, ["--kubeconfig", str(missing), *args])
    assert result.exit_code == 1
    assert f"✗ no usable kubeconfig: kubeconfig {missing} does not exist\n" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
