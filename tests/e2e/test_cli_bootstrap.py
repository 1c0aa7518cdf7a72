"""`tidal bootstrap git` against the test plane and real Git servers (HTTPS with basic auth,
SSH with a key), as a user runs it.

The Deployment bootstrap installs lands on a simulated node and never runs, so tidal's
controller runs beside the tests as a process: it is what turns the GitRepository and the
Kustomization Ready. Each bootstrap goes to a namespace of its own (`-n`), so its objects,
its ClusterRoles and its directory in Git are its own; only the CRDs are shared with the rest
of the plane, and nothing here may delete them.
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testenv.git_repos import run_git
from testenv.git_server import GitHTTPServer, GitSSHServer
from tests.cli_process import Out, tidal
from tests.controller_process import RunningController, condition, controller_fixture
from tests.fixtures_git import BareRepo, GitRepoFactory
from tests.kustomization_helpers import get_or_none, wait_gone
from tidal.bootstrap import manifests
from tidal.cli.cluster import MERGE_PATCH
from tidal.cli.objects import GIT_REPOSITORY, KUSTOMIZATION
from tidal.install import manifests as install
from tidal.kube.client import ApiError, Kube

pytestmark = pytest.mark.e2e

controller = controller_fixture()

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
SHARED_CRDS = (
    f"{CRDS}/gitrepositories.source.toolkit.fluxcd.io",
    f"{CRDS}/kustomizations.kustomize.toolkit.fluxcd.io",
)
PATH = "clusters/e2e"


def unique_namespace(label: str) -> str:
    return f"boot-{label}-{secrets.token_hex(3)}"


def _cluster_scoped(namespace: str) -> list[str]:
    """The API paths of what `install` puts outside the namespace, CRDs aside."""
    paths = []
    for obj in install.rbac(install.InstallOptions(namespace=namespace)):
        if "namespace" not in obj["metadata"]:
            plural = {"ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings"}
            paths.append(
                f"/apis/rbac.authorization.k8s.io/v1/{plural[obj['kind']]}/{obj['metadata']['name']}"
            )
    return paths


async def _ignore_missing(request: Any) -> None:
    try:
        await request
    except ApiError as e:
        if e.status != 404:
            raise


async def _release(kube: Kube, crd: str, namespace: str) -> None:
    """Take this bootstrap's owner labels off a shared CRD, if they are still its own (another
    bootstrap may have applied it since: the patch's test then fails, and nothing changes)."""
    labels = "/metadata/labels/kustomize.toolkit.fluxcd.io~1"
    patch = [
        {"op": "test", "path": f"{labels}name", "value": namespace},
        {"op": "test", "path": f"{labels}namespace", "value": namespace},
        {"op": "remove", "path": f"{labels}name"},
        {"op": "remove", "path": f"{labels}namespace"},
    ]
    try:
        await kube.patch(crd, patch, patch_type="json")
    except ApiError as e:
        if e.status not in (404, 422):  # gone, or not (or no longer) this bootstrap's
            raise


async def remove_bootstrap(kube: Kube, namespace: str, *, namespaces: Sequence[str] = ()) -> None:
    """Take away what a bootstrap into `namespace` made, with or without a controller (the sync
    objects lose their finalizers), but never the shared CRDs, only the owner labels it left on
    them; `namespaces` are others its Kustomization created. Namespaces are left terminating:
    a test that reuses a fixed name waits for it to be gone first."""
    for kind in (KUSTOMIZATION, GIT_REPOSITORY):
        path = kind.path(namespace, namespace)
        await _ignore_missing(
            kube.request(
                "PATCH", path, body={"metadata": {"finalizers": None}}, content_type=MERGE_PATCH
            )
        )
        await _ignore_missing(kube.delete(path))
    for path in _cluster_scoped(namespace):
        await _ignore_missing(kube.delete(path))
    for path in SHARED_CRDS:
        await _release(kube, path, namespace)
    for ns in (namespace, *namespaces):
        # Pods would otherwise get their grace period, and hold the namespace that long.
        await _ignore_missing(
            kube.request(
                "DELETE", f"/api/v1/namespaces/{ns}/pods", params={"gracePeriodSeconds": "0"}
            )
        )
        await _ignore_missing(kube.delete(f"/api/v1/namespaces/{ns}"))


def flux_lines(url: str, namespace: str, components_sha: str, sync_sha: str) -> list[str]:
    """flux's progress lines for a first bootstrap with --token-auth."""
    key = f"{namespace}/{namespace}"
    return [
        f'► cloning branch "main" from Git repository "{url}"',
        "✔ cloned repository",
        "► generating component manifests",
        "✔ generated component manifests",
        f'✔ committed component manifests to "main" ("{components_sha}")',
        f'► pushing component manifests to "{url}"',
        f'► installing components in "{namespace}" namespace',
        "✔ installed components",
        "✔ reconciled components",
        f'► determining if source secret "{namespace}/flux-system" exists',
        "► generating source secret",
        f'► applying source secret "{namespace}/flux-system"',
        "✔ reconciled source secret",
        "► generating sync manifests",
        "✔ generated sync manifests",
        f'✔ committed sync manifests to "main" ("{sync_sha}")',
        f'► pushing sync manifests to "{url}"',
        "► applying sync manifests",
        "✔ reconciled sync configuration",
        f'◎ waiting for GitRepository "{key}" to be reconciled',
        "✔ GitRepository reconciled successfully",
        f'◎ waiting for Kustomization "{key}" to be reconciled',
        "✔ Kustomization reconciled successfully",
        "► confirming components are healthy",
        "✔ tidal-controller: deployment ready",
        "✔ all components are healthy",
    ]


def history(repo: BareRepo) -> list[tuple[str, str, str]]:
    """(sha, author, subject) of main, newest first."""
    out = run_git(["log", "--format=%H|%an <%ae>|%s", "main"], cwd=repo.path)
    return [tuple(line.split("|", 2)) for line in out.splitlines()]  # type: ignore[misc]


def files(repo: BareRepo, rev: str = "main") -> list[str]:
    return run_git(["ls-tree", "-r", "--name-only", rev], cwd=repo.path).splitlines()


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


# -- HTTPS with basic auth: one fleet repository, bootstrapped, re-run, changed, removed ----------


@dataclass
class Fleet:
    repo: BareRepo
    server: GitHTTPServer
    namespace: str
    url: str
    first: Out

    def args(self, *extra: str) -> list[str]:
        assert self.server.username and self.server.password
        return [
            "bootstrap", "git", f"--url={self.url}", "--token-auth",
            "-u", self.server.username, "-p", self.server.password,
            f"--ca-file={self.server.ca_pem_path}", f"--path={PATH}",
            "-n", self.namespace, "--timeout", "90s", *extra,
        ]  # fmt: skip


@pytest.fixture(scope="module")
async def fleet(
    cluster: Any,
    controller: RunningController,
    git_https: GitHTTPServer,
    git_repos_root: Path,
) -> AsyncIterator[Fleet]:
    repo = GitRepoFactory(root=git_repos_root, prefix="fleet")()  # empty: bootstrap starts main
    namespace = unique_namespace("https")
    fleet = Fleet(repo, git_https, namespace, git_https.url_for(repo.name), Out(0, "", ""))
    fleet.first = await tidal(cluster.kubeconfig, *fleet.args())
    yield fleet
    async with Kube.from_kubeconfig(cluster.kubeconfig) as kube:
        await remove_bootstrap(kube, namespace)


async def test_first_bootstrap_commits_flux_s_layout_and_syncs_it(
    fleet: Fleet, kube: Kube, controller: RunningController
) -> None:
    out, ns = fleet.first, fleet.namespace
    assert out.code == 0, out.stderr + controller.logs()[-3000:]
    log = history(fleet.repo)
    assert [(author, subject) for _, author, subject in log] == [
        ("Flux <>", "Add Flux sync manifests"),
        ("Flux <>", f"Add Flux v{install.InstallOptions().version} component manifests"),
    ]
    (sync_sha, _, _), (components_sha, _, _) = log
    assert out.stdout == ""
    assert out.stderr.splitlines() == flux_lines(fleet.url, ns, components_sha, sync_sha)
    assert fleet.server.password not in out.stdout + out.stderr

    directory = f"{PATH}/{ns}"
    assert files(fleet.repo) == [
        f"{directory}/gotk-components.yaml",
        f"{directory}/gotk-sync.yaml",
        f"{directory}/kustomization.yaml",
    ]
    assert files(fleet.repo, components_sha) == [f"{directory}/gotk-components.yaml"]
    sync = manifests.SyncOptions(
        name=ns, namespace=ns, url=fleet.url, branch="main", interval=60.0,
        secret_name="flux-system", target_path=f"./{PATH}",
    )  # fmt: skip
    assert fleet.repo.read("main", f"{directory}/gotk-sync.yaml").decode() == (
        manifests.sync_text(sync)
    )
    assert fleet.repo.read("main", f"{directory}/kustomization.yaml").decode() == (
        manifests.DEFAULT_KUSTOMIZATION
    )
    components = fleet.repo.read("main", f"{directory}/gotk-components.yaml").decode()
    assert components == manifests.components_text(
        install.InstallOptions(namespace=ns), manifests.DEFAULT_COMPONENTS
    )

    revision = f"main@sha1:{sync_sha}"
    source = await kube.get(GIT_REPOSITORY.path(ns, ns))
    assert condition(source, "Ready")["status"] == "True"
    assert source["status"]["artifact"]["revision"] == revision
    assert source["spec"]["url"] == fleet.url
    ks = await kube.get(KUSTOMIZATION.path(ns, ns))
    assert ks["status"]["lastAppliedRevision"] == revision
    assert ks["spec"]["path"] == f"./{PATH}"
    inventory = {e["id"] for e in ks["status"]["inventory"]["entries"]}
    assert {
        "_gitrepositories.source.toolkit.fluxcd.io_apiextensions.k8s.io_CustomResourceDefinition",
        f"{ns}_{install.NAME}_apps_Deployment",
        f"{ns}_{ns}_kustomize.toolkit.fluxcd.io_Kustomization",
    } <= inventory, "the Kustomization applies tidal itself, and itself"
    secret = await kube.get(f"/api/v1/namespaces/{ns}/secrets/flux-system")
    assert secret_data(secret) == {
        "username": fleet.server.username,
        "password": fleet.server.password,
        "ca.crt": fleet.server.ca_pem_path.read_text(),
    }


async def test_a_second_run_makes_no_commit(fleet: Fleet, cluster: Any) -> None:
    before = history(fleet.repo)
    out = await tidal(cluster.kubeconfig, *fleet.args())
    assert out.code == 0, out.stderr
    assert history(fleet.repo) == before
    lines = out.stderr.splitlines()
    assert "✔ component manifests are up to date" in lines
    assert "✔ sync manifests are up to date" in lines
    assert not any(line.startswith(("✔ committed", "► pushing", "► installing")) for line in lines)
    assert lines[-1] == "✔ all components are healthy"


async def test_a_changed_option_commits_only_the_file_it_changes(
    fleet: Fleet, cluster: Any, kube: Kube
) -> None:
    before = history(fleet.repo)
    out = await tidal(cluster.kubeconfig, *fleet.args("--interval", "5m"))
    assert out.code == 0, out.stderr
    after = history(fleet.repo)
    assert after[1:] == before
    assert after[0][1:] == ("Flux <>", "Add Flux sync manifests")
    directory = f"{PATH}/{fleet.namespace}"
    diff = run_git(["diff", "--unified=0", before[0][0], after[0][0]], cwd=fleet.repo.path)
    assert run_git(["diff", "--name-only", before[0][0], after[0][0]], cwd=fleet.repo.path) == (
        f"{directory}/gotk-sync.yaml"
    )
    assert re.findall(r"^[-+] .*$", diff, re.MULTILINE) == [
        "-  interval: 1m0s",
        "+  interval: 5m0s",
    ]
    source = await kube.get(GIT_REPOSITORY.path(fleet.namespace, fleet.namespace))
    assert source["spec"]["interval"] == "5m0s"
    assert source["status"]["artifact"]["revision"] == f"main@sha1:{after[0][0]}"


async def test_a_changed_component_option_commits_only_the_components(
    fleet: Fleet, cluster: Any, kube: Kube
) -> None:
    """The sync manifests stay as they were, so nothing changes the GitRepository's spec: it
    is asked to fetch the new commit at once, rather than at its next interval (a minute)."""
    before = history(fleet.repo)
    started = time.monotonic()
    out = await tidal(cluster.kubeconfig, *fleet.args("--interval", "5m", "--log-level=debug"))
    assert out.code == 0, out.stderr
    assert time.monotonic() - started < 30
    after = history(fleet.repo)
    assert after[1:] == before
    assert after[0][2] == f"Add Flux v{install.InstallOptions().version} component manifests"
    assert run_git(["diff", "--name-only", before[0][0], after[0][0]], cwd=fleet.repo.path) == (
        f"{PATH}/{fleet.namespace}/gotk-components.yaml"
    )
    lines = out.stderr.splitlines()
    assert "✔ sync manifests are up to date" in lines
    assert f'► installing components in "{fleet.namespace}" namespace' not in lines
    path = f"/apis/apps/v1/namespaces/{fleet.namespace}/deployments/{install.NAME}"
    args = (await kube.get(path))["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--log-level=debug" in args


async def test_deleting_the_sync_kustomization_keeps_the_shared_crds(
    fleet: Fleet, kube: Kube
) -> None:
    """As in Flux, deleting the Kustomization prunes what it applied (prune: true), but only
    what it owns and what pruning may take: the CRDs, which every namespace shares, stay."""
    ns = fleet.namespace
    crds = [await kube.get(path) for path in SHARED_CRDS]
    for crd in crds:
        annotations = crd["metadata"].get("annotations") or {}
        # Without the guard this test would delete the CRDs of everything on the plane.
        assert annotations.get(manifests.PRUNE_ANNOTATION) == "disabled", "not deleting"
    await kube.delete(KUSTOMIZATION.path(ns, ns))
    await wait_gone(kube, KUSTOMIZATION.path(ns, ns), within=60)
    for before in crds:
        after = await kube.get(SHARED_CRDS[crds.index(before)])
        assert after["metadata"]["uid"] == before["metadata"]["uid"]
        assert "deletionTimestamp" not in after["metadata"]
    for path in _cluster_scoped(ns):
        assert await get_or_none(kube, path) is None, f"{path} was not pruned"
    namespace = await get_or_none(kube, f"/api/v1/namespaces/{ns}")
    assert namespace is None or "deletionTimestamp" in namespace["metadata"]


# -- failures and SSH ------------------------------------------------------------------------------


@pytest.fixture
async def boot_namespace(kube: Kube, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A namespace for one bootstrap, which creates it; what it made is removed afterwards."""
    label = request.node.name.removeprefix("test_")[:12].replace("_", "-").strip("-")
    namespace = unique_namespace(label)
    yield namespace
    await remove_bootstrap(kube, namespace)


async def test_bad_credentials_fail_before_anything_changes(
    cluster: Any,
    kube: Kube,
    git_https: GitHTTPServer,
    git_repo: GitRepoFactory,
    boot_namespace: str,
) -> None:
    repo = git_repo(files={"README.md": "fleet\n"})
    refs = repo.refs()
    namespace = boot_namespace
    wrong = "not-the-" + secrets.token_hex(8)
    url = git_https.url_for(repo.name)
    out = await tidal(
        cluster.kubeconfig, "bootstrap", "git", f"--url={url}", "--token-auth",
        "-u", "git-user", "-p", wrong, f"--ca-file={git_https.ca_pem_path}",
        "-n", namespace, "--timeout", "30s",
    )  # fmt: skip
    assert out.code == 1
    assert out.stderr.splitlines()[-1] == (
        f"✗ failed to clone repository: unable to clone '{url}': authentication required: the "
        "server rejected the credentials (check --username and --password, or "
        "--private-key-file over SSH)"
    )
    assert wrong not in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert repo.refs() == refs
    assert await get_or_none(kube, f"/api/v1/namespaces/{namespace}") is None


# flux's documented way to customise the controllers: the kustomization.yaml, with patches, is
# committed before bootstrap, beside empty gotk-*.yaml files for bootstrap to fill in.
CUSTOMISED = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - gotk-components.yaml
  - gotk-sync.yaml
patches:
  - patch: |
      - op: add
        path: /spec/template/spec/containers/0/args/-
        value: --concurrent=8
    target:
      kind: Deployment
      name: tidal-controller
"""


async def test_bootstrap_over_ssh_with_a_private_key_keeps_a_customised_kustomization(
    cluster: Any,
    kube: Kube,
    controller: RunningController,
    git_ssh: GitSSHServer,
    git_repo: GitRepoFactory,
    boot_namespace: str,
) -> None:
    namespace = boot_namespace
    directory = f"clusters/ssh/{namespace}"
    repo = git_repo(
        files={
            "README.md": "fleet\n",
            f"{directory}/kustomization.yaml": CUSTOMISED,
            f"{directory}/gotk-components.yaml": "",
            f"{directory}/gotk-sync.yaml": "",
        }
    )
    url = git_ssh.url_for(repo.name)
    out = await tidal(
        cluster.kubeconfig, "bootstrap", "git", f"--url={url}",
        f"--private-key-file={git_ssh.private_key_path}", "--silent", "--path=clusters/ssh",
        "-n", namespace, "--timeout", "90s",
    )  # fmt: skip
    assert out.code == 0, out.stderr + controller.logs()[-3000:]
    lines = out.stderr.splitlines()
    assert f"✔ public key: {git_ssh.public_key}" in lines
    assert lines[-1] == "✔ all components are healthy"
    private = git_ssh.private_key_pem.decode().splitlines()[1]
    assert private not in out.stdout + out.stderr
    assert [subject for _, _, subject in history(repo)] == [
        "Add Flux sync manifests",
        f"Add Flux v{install.InstallOptions().version} component manifests",
        "initial",
    ]
    assert repo.read("main", f"{directory}/kustomization.yaml").decode() == CUSTOMISED
    deployment = await kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{install.NAME}")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"][-1] == "--concurrent=8"
    source = await kube.get(GIT_REPOSITORY.path(namespace, namespace))
    assert source["spec"]["url"] == url
    assert condition(source, "Ready")["status"] == "True"
    data = secret_data(await kube.get(f"/api/v1/namespaces/{namespace}/secrets/flux-system"))
    assert sorted(data) == ["identity", "identity.pub", "known_hosts"]
    assert data["identity"] == git_ssh.private_key_pem.decode()
    assert data["known_hosts"] == git_ssh.known_hosts
