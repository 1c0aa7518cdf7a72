"""`tidal check` and `tidal uninstall` as a user runs them.

`check` runs on the session's plane. `uninstall` deletes tidal's CRDs, which every other test
on that plane uses at the same time, so it runs on a private plane of this module's own; the
shared plane only ever sees uninstall's in-process steps with the CRD set narrowed to none,
which is how the tests here clean up their installations.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from testenv import plane, versions
from testenv.git_server import GitHTTPServer
from tests import plugin
from tests.cli_process import Out, flux, needs_flux, tidal
from tests.controller_process import run_controller
from tests.kustomization_helpers import cm, deployed, get_cm, get_or_none, ks_path, wait_gone
from tests.plugin import Cluster
from tidal.api import crd
from tidal.install.uninstall import Plan, Uninstaller
from tidal.kube.client import Kube

pytestmark = pytest.mark.e2e

SERVER_VERSION = versions.KUBERNETES.removeprefix("v")
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
# What check and uninstall list of tidal's CRDs, in their (name) order.
CRD_NAMES = sorted(k.name for k in crd.KINDS)
CRD_CHECKS = [f"✔ {k.name}/{k.version}" for k in sorted(crd.KINDS, key=lambda k: k.name)]


def lines(out: Out) -> list[str]:
    return out.stderr.splitlines()


def in_order(got: list[str], wanted: list[str]) -> bool:
    """Whether `wanted` appears in `got` in that order (other lines may come between)."""
    rest = iter(got)
    return all(any(line == w for line in rest) for w in wanted)


class Silent:
    def success(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def failure(self, message: str) -> None:
        raise AssertionError(message)


async def remove_installation(kube: Kube, namespace: str) -> None:
    """uninstall's own steps for one installation on the shared plane, CRDs left alone."""
    steps = Uninstaller(kube, Plan(namespace, crd_selector="tidal.test/none=none"), Silent())
    await steps.components()
    await steps.namespace()


@pytest.fixture
async def installed(cluster: Cluster, kube: Kube) -> AsyncIterator[str]:
    """`tidal install -n <unique namespace>` on the shared plane, removed afterwards."""
    namespace = f"tidal-check-{secrets.token_hex(3)}"
    out = await tidal(cluster.kubeconfig, "install", "-n", namespace, "--timeout", "2m")
    try:
        assert out.code == 0, out.stderr
        yield namespace
    finally:
        await remove_installation(kube, namespace)


# -- check ----------------------------------------------------------------------------------


@needs_flux
async def test_check_pre_passes_as_flux_s_with_tidal_s_minimum(
    cluster: Cluster, flux_bin: Path
) -> None:
    ours = await tidal(cluster.kubeconfig, "check", "--pre")
    assert ours.code == 0, ours.stderr
    assert ours.stdout == ""
    assert lines(ours) == [
        "► checking prerequisites",
        f"✔ Kubernetes {SERVER_VERSION} >=1.29.0-0",
        "✔ permissions to install in flux-system namespace",
        "✔ prerequisites checks passed",
    ]
    # flux's lines are the same but for its own minimum and tidal's permissions check.
    theirs = await flux(flux_bin, cluster.kubeconfig, "check", "--pre")
    assert theirs.code == 0, theirs.stderr
    assert [line.replace(">=1.33.0-0", ">=1.29.0-0") for line in lines(theirs)] == [
        line for line in lines(ours) if not line.startswith("✔ permissions")
    ]


async def test_check_before_install_fails_saying_what_is_missing(
    cluster: Cluster, namespace: str, crds: None
) -> None:
    out = await tidal(cluster.kubeconfig, "check", "-n", namespace, "--timeout", "20s")
    assert out.code == 1, out.stderr
    got = lines(out)
    assert in_order(
        got,
        [
            "► checking prerequisites",
            f"✔ Kubernetes {SERVER_VERSION} >=1.29.0-0",
            "► checking version in cluster",
            "► checking controllers",
            f"✗ no controllers found in the '{namespace}' namespace with the label selector "
            "'app.kubernetes.io/part-of=tidal'",
            "► checking crds",
            *CRD_CHECKS,
            "✗ check failed",
        ],
    ), got
    assert got[-1] == "✗ check failed"
    assert "Traceback" not in out.stderr, out.stderr


async def test_check_passes_after_install_and_fails_on_an_unready_controller(
    cluster: Cluster, kube: Kube, installed: str
) -> None:
    out = await tidal(cluster.kubeconfig, "check", "-n", installed)
    assert out.code == 0, out.stderr
    got = lines(out)
    # Other tests may apply the shared CRDs through a Kustomization (bootstrap), which
    # changes their labels; the private plane's test checks those lines exactly.
    assert got[:3] == [
        "► checking prerequisites",
        f"✔ Kubernetes {SERVER_VERSION} >=1.29.0-0",
        "► checking version in cluster",
    ]
    assert got[3].startswith("✔ distribution: ")
    assert got[4].startswith("✔ bootstrapped: ")
    assert got[5:8] == [
        "► checking controllers",
        "✔ tidal-controller: deployment ready",
        "► ghcr.io/tidal-gitops/tidal:v0.1.0",
    ]
    assert in_order(
        got,
        [
            "► checking crds",
            *CRD_CHECKS,
        ],
    ), got
    assert got[-1] == "✔ all checks passed"

    # A rollout that cannot finish: the new pod fits no node.
    await kube.patch(
        f"/apis/apps/v1/namespaces/{installed}/deployments/tidal-controller",
        {"spec": {"template": {"spec": {"nodeSelector": {"tidal.test/none": "none"}}}}},
    )
    out = await tidal(
        cluster.kubeconfig, "check", "-n", installed, "--timeout", "3s", "--poll-interval", "1s"
    )
    assert out.code == 1, out.stderr
    assert in_order(
        lines(out),
        [
            "► checking controllers",
            "✗ tidal-controller: deployment not ready",
            "► ghcr.io/tidal-gitops/tidal:v0.1.0",
            "► checking crds",
            "✗ check failed",
        ],
    ), out.stderr


async def sa_kubeconfig(cluster: Cluster, kube: Kube, namespace: str, name: str, path: Path) -> str:
    """A kubeconfig with a token of the ServiceAccount `name`: a user who is not an admin.
    Returns the token."""
    await kube.request(
        "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts", body={"metadata": {"name": name}}
    )
    issued = await kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
        body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )
    token = str(issued["status"]["token"])
    admin = json.loads(cluster.kubeconfig.read_text())
    config = dict(
        admin,
        users=[{"name": name, "user": {"token": token}}],
        contexts=[
            {"name": "sa", "context": {"cluster": admin["clusters"][0]["name"], "user": name}}
        ],
        **{"current-context": "sa"},
    )
    await asyncio.to_thread(path.write_text, json.dumps(config))
    return token


async def test_check_pre_lists_what_a_namespace_admin_may_not_do(
    cluster: Cluster, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    config = tmp_path / "kubeconfig"
    token = await sa_kubeconfig(cluster, kube, namespace, "deployer", config)
    # Kubernetes' `admin` role in the namespace: everything there, nothing cluster-wide.
    await kube.request(
        "POST",
        f"{RBAC}/namespaces/{namespace}/rolebindings",
        body={
            "metadata": {"name": "deployer-admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": namespace}],
        },
    )  # fmt: skip
    out = await tidal(config, "check", "--pre", "-n", namespace)
    assert out.code == 1, out.stderr
    assert lines(out) == [
        "► checking prerequisites",
        f"✔ Kubernetes {SERVER_VERSION} >=1.29.0-0",
        f"✗ missing permissions to install in {namespace} namespace:",
        "✗ cannot get, create, patch customresourcedefinitions.apiextensions.k8s.io",
        "✗ cannot get, create, patch namespaces",
        "✗ cannot get, create, patch, escalate clusterroles.rbac.authorization.k8s.io",
        "✗ cannot get, create, patch clusterrolebindings.rbac.authorization.k8s.io",
        f"✗ cannot bind clusterroles.rbac.authorization.k8s.io/tidal-controller-{namespace}",
        "✗ cannot bind clusterroles.rbac.authorization.k8s.io/cluster-admin",
        "✗ prerequisites checks failed",
    ]
    assert token not in out.stderr + out.stdout


# -- uninstall on a private plane -----------------------------------------------------------


@pytest.fixture(scope="module")
def private_plane() -> Iterator[plane.State]:
    with plugin.private_plane("tidal-uninstall-plane-", "private test plane") as state:
        yield state


@pytest.fixture
async def private(private_plane: plane.State) -> AsyncIterator[Kube]:
    async with Kube.from_kubeconfig(private_plane.kubeconfig) as client:
        yield client


async def create_namespace(kube: Kube, name: str) -> None:
    await kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})


async def install(config: Path, namespace: str) -> None:
    out = await tidal(config, "install", "-n", namespace, "--timeout", "2m")
    assert out.code == 0, out.stderr


def web_yaml(namespace: str) -> str:
    return (
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
        f"  namespace: {namespace}\nspec:\n  replicas: 1\n"
        "  selector:\n    matchLabels: {app: web}\n  template:\n"
        "    metadata:\n      labels: {app: web}\n    spec:\n"
        "      containers:\n      - name: web\n        image: nginx\n"
    )


async def terminating_or_gone(kube: Kube, path: str) -> bool:
    live = await get_or_none(kube, path)
    return live is None or bool(live["metadata"].get("deletionTimestamp"))


@pytest.mark.slow
async def test_uninstall_removes_tidal_and_keeps_what_it_applied(
    private_plane: plane.State,
    private: Kube,
    git_http: GitHTTPServer,
    git_repo: Any,
    tmp_path: Path,
) -> None:
    config = private_plane.kubeconfig
    await install(config, "tidal-system")
    await create_namespace(private, "apps")
    files = {"app/cm.yaml": cm("settings", "apps", v="1"), "app/web.yaml": web_yaml("apps")}
    repo = git_repo(files=files)
    # The real controller, running through the whole uninstall: were a Kustomization deleted
    # while it still had its finalizer, this controller would prune what it applied.
    with run_controller(config, tmp_path) as controller:
        obj, _ = await deployed(private, "apps", "app", git_http, repo, controller, path="app")
        assert obj["metadata"]["finalizers"] == ["finalizers.fluxcd.io"]
        assert obj["spec"]["prune"] is True

        out = await tidal(config, "uninstall", "-n", "tidal-system", "--silent")
        assert out.code == 0, out.stderr
        assert out.stdout == ""
        assert lines(out) == [
            "► deleting components in tidal-system namespace",
            "✔ Deployment/tidal-system/tidal-controller deleted",
            "✔ Service/tidal-system/source-controller deleted",
            "✔ ServiceAccount/tidal-system/tidal-controller deleted",
            "✔ ClusterRole/tidal-controller-tidal-system deleted",
            "✔ ClusterRoleBinding/tidal-controller-reconciler-tidal-system deleted",
            "✔ ClusterRoleBinding/tidal-controller-tidal-system deleted",
            "► deleting toolkit.fluxcd.io finalizers in all namespaces",
            "✔ GitRepository/apps/repo finalizers deleted",
            "✔ Kustomization/apps/app finalizers deleted",
            "► deleting toolkit.fluxcd.io custom resource definitions",
            *(f"✔ CustomResourceDefinition/{name} deleted" for name in CRD_NAMES),
            "✔ Namespace/tidal-system deleted",
            "✔ uninstall finished",
        ]
        for k in crd.KINDS:
            await wait_gone(private, f"{CRDS}/{k.name}")
        assert controller.process.poll() is None, "the controller was meant to run throughout"

    # What the Kustomization applied is still there, as it was.
    settings = await get_cm(private, "apps", "settings")
    assert settings is not None and settings["data"] == {"v": "1"}
    assert settings["metadata"].get("deletionTimestamp") is None
    web = await private.get("/apis/apps/v1/namespaces/apps/deployments/web")
    assert web["metadata"].get("deletionTimestamp") is None
    # tidal itself is gone.
    assert await terminating_or_gone(private, "/api/v1/namespaces/tidal-system")
    assert await get_or_none(private, f"{RBAC}/clusterroles/tidal-controller-tidal-system") is None
    binding = f"{RBAC}/clusterrolebindings/tidal-controller-reconciler-tidal-system"
    assert await get_or_none(private, binding) is None


@pytest.mark.slow
async def test_uninstall_dry_run_and_prompt_delete_nothing_and_keep_namespace_keeps_it(
    private_plane: plane.State, private: Kube
) -> None:
    config = private_plane.kubeconfig
    await install(config, "tidal-dry")
    await create_namespace(private, "apps-dry")
    # A Kustomization as the controller leaves it: with tidal's finalizer and another one's.
    await private.request(
        "POST",
        "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/apps-dry/kustomizations",
        body={
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "kind": "Kustomization",
            "metadata": {"name": "app", "finalizers": ["finalizers.fluxcd.io"]},
            "spec": {
                "interval": "10m",
                "prune": True,
                "sourceRef": {"kind": "GitRepository", "name": "repo"},
            },
        },
    )
    ks = ks_path("apps-dry", "app")

    async def everything_there() -> None:
        assert await get_or_none(
            private, "/apis/apps/v1/namespaces/tidal-dry/deployments/tidal-controller"
        )
        assert await get_or_none(private, f"{RBAC}/clusterroles/tidal-controller-tidal-dry")
        for k in crd.KINDS:
            live = await private.get(f"{CRDS}/{k.name}")
            assert live["metadata"].get("deletionTimestamp") is None
        live_ks = await private.get(ks)
        assert live_ks["metadata"]["finalizers"] == ["finalizers.fluxcd.io"]
        ns = await private.get("/api/v1/namespaces/tidal-dry")
        assert ns["status"]["phase"] == "Active"  # fmt: skip

    check = await tidal(config, "check", "-n", "tidal-dry")
    assert check.code == 0, check.stderr
    assert lines(check) == [
        "► checking prerequisites",
        f"✔ Kubernetes {SERVER_VERSION} >=1.29.0-0",
        "► checking version in cluster",
        "✔ distribution: tidal-v0.1.0",
        "✔ bootstrapped: false",
        "► checking controllers",
        "✔ tidal-controller: deployment ready",
        "► ghcr.io/tidal-gitops/tidal:v0.1.0",
        "► checking crds",
        *CRD_CHECKS,
        "✔ all checks passed",
    ]

    dry = await tidal(config, "uninstall", "-n", "tidal-dry", "--dry-run=true")
    assert dry.code == 0, dry.stderr
    assert in_order(
        lines(dry),
        [
            "► deleting components in tidal-dry namespace",
            "✔ Deployment/tidal-dry/tidal-controller deleted (dry run)",
            "✔ ClusterRole/tidal-controller-tidal-dry deleted (dry run)",
            "► deleting toolkit.fluxcd.io finalizers in all namespaces",
            "✔ Kustomization/apps-dry/app finalizers deleted (dry run)",
            "► deleting toolkit.fluxcd.io custom resource definitions",
            "✔ CustomResourceDefinition/kustomizations.kustomize.toolkit.fluxcd.io deleted"
            " (dry run)",
            "✔ Namespace/tidal-dry deleted (dry run)",
            "✔ uninstall finished",
        ],
    ), dry.stderr
    await everything_there()

    declined = await tidal(config, "uninstall", "-n", "tidal-dry", stdin="n\n")
    assert declined.code == 1, declined.stderr
    assert (
        "Are you sure you want to delete tidal and its custom resource definitions"
        in declined.stderr
    )
    # Piped input is not echoed, so the answer's line is the prompt's.
    assert declined.stderr.endswith("]: ✗ aborting\n")
    await everything_there()

    kept = await tidal(config, "uninstall", "-n", "tidal-dry", "--keep-namespace=true", stdin="y\n")
    assert kept.code == 0, kept.stderr
    assert not any(line.startswith("✔ Namespace/") for line in lines(kept))
    assert lines(kept)[-1] == "✔ uninstall finished"
    # The finalizer was off, so deleting the CRD took the Kustomization at once.
    for k in crd.KINDS:
        await wait_gone(private, f"{CRDS}/{k.name}")
    ns = await private.get("/api/v1/namespaces/tidal-dry")
    assert ns["status"]["phase"] == "Active"
    assert (
        await get_or_none(
            private, "/apis/apps/v1/namespaces/tidal-dry/deployments/tidal-controller"
        )
        is None
    )

    # A namespace tidal never installed into is not deleted, whatever -n says.
    stray = await tidal(config, "uninstall", "-n", "apps-dry", "-s")
    assert stray.code == 0, stray.stderr
    assert (
        "⚠️ Namespace/apps-dry not deleted: it has no app.kubernetes.io/part-of=tidal label, "
        "so tidal did not install into it"
    ) in lines(stray)
    ns = await private.get("/api/v1/namespaces/apps-dry")
    assert ns["status"]["phase"] == "Active"


async def test_uninstall_reports_what_it_may_not_delete(
    cluster: Cluster, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """A user without rights gets one ✗ line per step and a failing exit, and nothing on
    the shared plane is touched (their requests are all refused)."""
    config = tmp_path / "kubeconfig"
    await sa_kubeconfig(cluster, kube, namespace, "nobody", config)
    out = await tidal(config, "uninstall", "-n", namespace, "--dry-run")
    assert out.code == 1, out.stderr
    got = lines(out)
    assert got[0] == f"► deleting components in {namespace} namespace"
    assert got[1].startswith("✗ listing Deployment objects failed: deployments.apps is forbidden")
    assert got[-1].startswith("✗ uninstall failed: ")
    assert "Traceback" not in out.stderr, out.stderr
