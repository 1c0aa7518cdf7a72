"""`tidal` source verbs against a real API server, compared with the real flux CLI.

Both CLIs run as processes against the same objects; where flux's output is deterministic the
two must be byte-identical (stdout, stderr and exit status). No controller runs here, so waits
are exercised by their timeout, or by the test playing the controller's part (writing status).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from testenv.git_server import GitHTTPServer
from tests.cli_process import Out, assert_same, flux, needs_flux, tidal
from tests.controller_process import run_controller
from tests.fixtures_git import GitRepoFactory, GitSSHServer
from tests.kustomization_helpers import REQUESTED_AT
from tests.kustomization_helpers import secret as create_secret
from tests.plugin import Cluster
from tidal.cli import cluster as cli_cluster
from tidal.cli.objects import GIT_REPOSITORY, ObjectKind
from tidal.cli.options import CliError, GlobalOptions
from tidal.kube import yamlio
from tidal.kube.client import ApiError, Kube

pytestmark = pytest.mark.e2e

F = TypeVar("F", bound=Callable[..., Any])
SHA = "0123456789abcdef0123456789abcdef01234567"
NOWHERE = Path("/nonexistent/kubeconfig")  # for the verbs that need no cluster


async def same_as_flux(flux_bin: Path, kubeconfig: Path, *args: str) -> Out:
    """Run `tidal` and `flux` with `args`: stdout, stderr and exit status must be the same.
    tidal's result."""
    ours = await tidal(kubeconfig, *args)
    assert_same(ours, await flux(flux_bin, kubeconfig, *args))
    return ours


def git_repository(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": GIT_REPOSITORY.api_version,
        "kind": GIT_REPOSITORY.kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"url": "https://example.com/repo.git", "interval": "1m", **spec},
    }


async def create(
    kube: Kube,
    kind: ObjectKind,
    obj: dict[str, Any],
    status: dict[str, Any] | None = None,
    **metadata: Any,
) -> dict[str, Any]:
    """Create `obj` (with `metadata` merged in) and, as its controller would, its `status`."""
    obj["metadata"].update(metadata)
    ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    live = await kube.request("POST", kind.collection(ns), body=obj)
    if status is not None:
        live = await write_status(kube, kind, ns, name, status)
    return live


async def write_status(
    kube: Kube, kind: ObjectKind, ns: str, name: str, status: dict[str, Any]
) -> dict[str, Any]:
    live = await kube.get(kind.path(ns, name))
    live["status"] = status
    return await kube.request("PUT", kind.path(ns, name) + "/status", body=live)


async def wait_for_object(
    kube: Kube,
    kind: ObjectKind,
    namespace: str,
    name: str,
    until: Callable[[dict[str, Any]], bool] = bool,
) -> dict[str, Any]:
    """The object once it exists and `until` holds: the CLI under test creates or changes it."""
    for _ in range(300):
        try:
            live = await kube.get(kind.path(namespace, name))
        except ApiError:  # not created yet
            live = {}
        if live and until(live):
            return live
        await asyncio.sleep(0.1)
    raise AssertionError(f"{name} never appeared as expected")


async def tidal_answered(
    cluster: Cluster,
    kube: Kube,
    namespace: str,
    args: list[str],
    until: Callable[[dict[str, Any]], bool],
    status: Callable[[dict[str, Any]], dict[str, Any]],
) -> Out:
    """Run `tidal *args`, which waits on the GitRepository "app", and answer as its controller
    would: once "app" meets `until`, write `status(app)`. tidal's result."""
    task = asyncio.create_task(tidal(cluster.kubeconfig, *args))
    live = await wait_for_object(kube, GIT_REPOSITORY, namespace, "app", until)
    await write_status(kube, GIT_REPOSITORY, namespace, "app", status(live))
    return await task


def ready_status(generation: int, revision: str, **extra: Any) -> dict[str, Any]:
    return {
        "observedGeneration": generation,
        "artifact": {
            "path": "gitrepository/x/y/artifact.tar.gz",
            "url": "http://source-controller/gitrepository/x/y/artifact.tar.gz",
            "revision": revision,
            "digest": "sha256:" + "a" * 64,
            "lastUpdateTime": "2026-01-01T00:00:00Z",
        },
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Succeeded",
                "message": f"stored artifact for revision '{revision}'",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "observedGeneration": generation,
            }
        ],
        **extra,
    }


def fetched_sha(live: dict[str, Any]) -> dict[str, Any]:
    """The status of `live` once its controller has fetched main@sha1:SHA."""
    return ready_status(live["metadata"]["generation"], "main@sha1:" + SHA)


async def ready_app(kube: Kube, namespace: str) -> None:
    """The GitRepository "app", Ready at main@sha1:SHA as if its controller had fetched it."""
    app = git_repository(namespace, "app")
    await create(kube, GIT_REPOSITORY, app, ready_status(1, "main@sha1:" + SHA))


# -- create ... --export (no cluster needed) ------------------------------------------------------

EXPORT_CASES = [
    ["--url=https://github.com/stefanprodan/podinfo", "--branch=master"],
    [
        "--url=https://github.com/stefanprodan/podinfo",
        "--tag-semver=>=3.2.0 <3.3.0",
        "--interval=90s",
        "--label=app=podinfo,enabled=true",
        "--ignore-paths=deploy/,*.md",
        "--sparse-checkout-paths=apps,y",
        "--recurse-submodules",
        "--secret-ref=creds",
        "--fetch-timeout=2m",
        "--provider=github",
    ],
    ["--url=ssh://git@github.com/org/repo", "--commit=abc123", "--branch=main", "--interval=1h"],
    ["--url=https://x.example/r", "--ref-name=refs/pull/1/head", "--tag=v1", "-n", "apps"],
    ["--url=https://x.example/r", "--tag=1.0", "--label=example.com/on=yes"],
    ["--url=https://x.example/r", "--branch=main", "--proxy-secret-ref=proxy", "--interval=45s"],
    # errors: no ref, bad scheme, no URL, invalid name handled below
    ["--url=https://x.example/r"],
    ["--url=ftp://x.example/r", "--branch=main"],
    ["--branch=main"],
]


@needs_flux
@pytest.mark.parametrize("flags", EXPORT_CASES)
async def test_create_source_git_export_is_flux_s(flux_bin: Path, flags: list[str]) -> None:
    args = ["create", "source", "git", "podinfo", *flags, "--export"]
    await same_as_flux(flux_bin, NOWHERE, *args)


@needs_flux
@pytest.mark.parametrize("name", ["x", "Bad", "a_b"])
async def test_create_refuses_names_as_flux_does(flux_bin: Path, name: str) -> None:
    args = ["create", "source", "git", name, "--url=https://x/r", "--branch=m", "--export"]
    await same_as_flux(flux_bin, NOWHERE, *args)


@needs_flux
@pytest.mark.parametrize(
    "flags",
    [
        ["--url=https://github.com/org/repo", "-u", "git", "-p", "s3cr3t"],
        ["--url=https://github.com/org/repo", "--bearer-token=tok", "--label=team=a"],
        ["--url=https://github.com/org/repo", "-u", "user", "-p", "yes", "--ca-crt-file=CA"],
        ["--url=http://github.com/org/repo", "-u", "user", "-p", "a long pass " * 8],
        ["--url=https://github.com/org/repo", "-u", "user"],
        ["--url=https://github.com/org/repo", "-u", "u", "-p", "p", "--bearer-token=t"],
    ],
)
async def test_create_secret_git_export_is_flux_s(
    flux_bin: Path, tmp_path: Path, flags: list[str]
) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIBxx\n-----END CERTIFICATE-----\n")
    flags = [f.replace("=CA", f"={ca}") for f in flags]
    args = ["create", "secret", "git", "auth", *flags, "--export"]
    await same_as_flux(flux_bin, NOWHERE, *args)


@needs_flux
async def test_create_secret_git_ssh_with_a_key_file_is_flux_s(
    flux_bin: Path, git_ssh: GitSSHServer
) -> None:
    url = f"ssh://git@{git_ssh.host}:{git_ssh.port}/repo.git"
    for key in (git_ssh.private_key_path, git_ssh.rsa_private_key_path):
        args = ["create", "secret", "git", "ssh-auth", f"--url={url}", f"--private-key-file={key}"]
        ours = await same_as_flux(flux_bin, NOWHERE, *args, "--export")
        secret = yamlio.load_all(ours.stdout)[0]
        assert secret["stringData"]["known_hosts"] == git_ssh.known_hosts


@needs_flux
@pytest.mark.parametrize(
    ("flags", "key_type"),
    [
        ([], "ecdsa-sha2-nistp384"),
        (["--ssh-key-algorithm=ed25519"], "ssh-ed25519"),
        (["--ssh-key-algorithm=rsa", "--ssh-rsa-bits=2048"], "ssh-rsa"),
        (["--ssh-key-algorithm=ecdsa", "--ssh-ecdsa-curve=p256"], "ecdsa-sha2-nistp256"),
    ],
)
async def test_create_secret_git_ssh_generated_keys_look_like_flux_s(
    flux_bin: Path, git_ssh: GitSSHServer, flags: list[str], key_type: str
) -> None:
    url = f"ssh://git@{git_ssh.host}:{git_ssh.port}/repo.git"
    args = ["create", "secret", "git", "ssh-auth", f"--url={url}", *flags, "--export"]
    ours, theirs = await tidal(NOWHERE, *args), await flux(flux_bin, NOWHERE, *args)
    assert ours.code == theirs.code == 0, ours.stderr
    mine, flux_s = yamlio.load_all(ours.stdout)[0], yamlio.load_all(theirs.stdout)[0]
    assert mine["metadata"] == flux_s["metadata"]
    assert list(mine["stringData"]) == list(flux_s["stringData"])
    assert mine["stringData"]["known_hosts"] == flux_s["stringData"]["known_hosts"]
    for secret in (mine, flux_s):
        data = secret["stringData"]
        assert data["identity"].startswith("-----BEGIN PRIVATE KEY-----\n")
        assert data["identity.pub"].startswith(key_type + " ")
        assert data["identity.pub"].endswith("\n")
    # Same layout line by line (the literal blocks, their order, the quoting of known_hosts).
    shape = [line.split(":")[0] for line in ours.stdout.splitlines() if not line.startswith(" ")]
    assert shape == [line.split(":")[0] for line in theirs.stdout.splitlines() if line[:1] != " "]


# -- get, export -------------------------------------------------------------------------------


async def _table_objects(kube: Kube, namespace: str, label: str) -> None:
    labels = {"tidal-test": label}
    await create(
        kube,
        GIT_REPOSITORY,
        git_repository(namespace, "ready", ref={"branch": "main"}),
        ready_status(1, f"main@sha1:{SHA}"),
        labels=labels,
    )
    await create(
        kube,
        GIT_REPOSITORY,
        git_repository(namespace, "suspended", suspend=True, ignore="", timeout="90s"),
        {
            "observedGeneration": 1,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "GitOperationFailed",
                    "message": f"failed to checkout {SHA}:\n認証 failed",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
        },
        labels=labels,
        annotations={"reconcile.fluxcd.io/requestedAt": "2026-01-01T00:00:00Z"},
    )
    long_name = git_repository(namespace, "never-reconciled-with-a-long-name")
    await create(kube, GIT_REPOSITORY, long_name, labels=labels)


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_get_sources_git_table_is_flux_s(
    kube: Kube, namespace: str, cluster: Cluster, flux_bin: Path
) -> None:
    await _table_objects(kube, namespace, namespace)
    cases = [
        ["-n", namespace],
        ["-n", namespace, "--no-header"],
        ["-n", namespace, "--status-selector", "ready=false"],
        ["-n", namespace, "--status-selector", "ready!=true", "--no-header"],
        ["-n", namespace, "--status-selector", "Ready=True"],
        ["-n", namespace, "suspended"],
        ["-n", namespace, "missing"],
        ["-A", "-l", f"tidal-test={namespace}"],
        ["-A", "-l", f"tidal-test={namespace}", "--no-header"],
        ["-n", f"{namespace}-none"],
        ["-n", namespace, "--status-selector", "nonsense"],
    ]
    for flags in cases:
        await same_as_flux(flux_bin, cluster.kubeconfig, "get", "sources", "git", *flags)
    ours = await tidal(cluster.kubeconfig, "get", "sources", "git", "-n", namespace)
    assert f"main@sha1:{SHA[:8]}\t" in ours.stdout
    assert "waiting to be reconciled" in ours.stdout


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_export_source_git_is_flux_s(
    kube: Kube, namespace: str, cluster: Cluster, flux_bin: Path
) -> None:
    await _table_objects(kube, namespace, namespace)
    await create_secret(kube, namespace, "creds", {"username": "git", "password": "s3cr3t"})
    await create(
        kube,
        GIT_REPOSITORY,
        git_repository(
            namespace,
            "with-creds",
            secretRef={"name": "creds"},
            ref={"tag": "v1.0"},
            include=[{"repository": {"name": "ready"}, "toPath": "sub"}],
            verify={"secretRef": {"name": "keys"}},
            sparseCheckout=["./apps"],
        ),
    )
    for flags in (
        ["ready"],
        ["suspended"],
        ["with-creds"],
        ["with-creds", "--with-credentials"],
        ["--all"],
        ["missing"],
    ):
        await same_as_flux(
            flux_bin, cluster.kubeconfig, "export", "source", "git", "-n", namespace, *flags
        )
    empty = ["export", "source", "git", "--all", "-n", f"{namespace}-none"]
    await same_as_flux(flux_bin, cluster.kubeconfig, *empty)
    one = await tidal(cluster.kubeconfig, "export", "source", "git", "-n", namespace, "suspended")
    exported = yamlio.load_all(one.stdout)[0]
    assert exported["spec"]["timeout"] == "1m30s"
    assert "status" not in exported
    assert set(exported["metadata"]) == {"name", "namespace", "labels", "annotations"}


# -- create (cluster) ------------------------------------------------------------------------------


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_create_source_git_writes_what_flux_writes(
    kube: Kube, namespace: str, cluster: Cluster, flux_bin: Path
) -> None:
    flags = ["--url=https://example.com/r.git", "--branch=main", "--label=team=a", "-n", namespace]
    ours = await tidal(
        cluster.kubeconfig, "create", "source", "git", "ours", *flags, "--timeout=2s"
    )
    theirs = await flux(
        flux_bin, cluster.kubeconfig, "create", "source", "git", "theirs", *flags, "--timeout=2s"
    )
    assert ours.code == theirs.code == 1
    # Same progress lines up to the wait; then tidal says why it timed out.
    assert (
        ours.stderr.splitlines()[:4]
        == theirs.stderr.splitlines()[:4]
        == [
            "✚ generating GitRepository source",
            "► applying GitRepository source",
            "✔ GitRepository source created",
            "◎ waiting for GitRepository source reconciliation",
        ]
    )
    assert ours.stderr.splitlines()[4] == (
        "✗ timed out after 2s waiting for GitRepository source reconciliation: not reconciled "
        "yet (is a controller for it running?)"
    )
    mine = await kube.get(GIT_REPOSITORY.path(namespace, "ours"))
    flux_s = await kube.get(GIT_REPOSITORY.path(namespace, "theirs"))
    assert mine["spec"] == flux_s["spec"]
    assert mine["metadata"]["labels"] == flux_s["metadata"]["labels"] == {"team": "a"}
    managers = [(m["manager"], m["operation"]) for m in mine["metadata"]["managedFields"]]
    assert managers == [(m["manager"], m["operation"]) for m in flux_s["metadata"]["managedFields"]]

    # Running again updates: spec and labels replaced, as flux's upsert does.
    again = await tidal(
        cluster.kubeconfig,
        *["create", "source", "git", "ours", "--url=https://example.com/r.git", "--tag=v2"],
        *["-n", namespace, "--timeout=1s"],
    )
    assert "✔ GitRepository source updated" in again.stderr
    mine = await kube.get(GIT_REPOSITORY.path(namespace, "ours"))
    assert mine["spec"]["ref"] == {"tag": "v2"}
    assert "labels" not in mine["metadata"]


@pytest.mark.usefixtures("crds")
async def test_create_source_git_with_credentials_creates_the_secret(
    kube: Kube, namespace: str, cluster: Cluster
) -> None:
    out = await tidal(
        cluster.kubeconfig,
        *["create", "source", "git", "private", "--url=https://example.com/r.git"],
        *["--branch=main", "-u", "git", "-p", "s3cr3t", "-n", namespace, "--timeout=1s"],
    )
    assert out.code == 1
    assert "► applying secret with repository credentials\n✔ authentication configured\n" in (
        out.stderr
    )
    secret = await kube.get(f"/api/v1/namespaces/{namespace}/secrets/private")
    assert set(secret["data"]) == {"username", "password"}
    source = await kube.get(GIT_REPOSITORY.path(namespace, "private"))
    assert source["spec"]["secretRef"] == {"name": "private"}


@pytest.mark.usefixtures("crds")
async def test_create_waits_for_ready_and_reports_the_revision(
    kube: Kube, namespace: str, cluster: Cluster
) -> None:
    args = ["create", "source", "git", "app", "--url=https://example.com/r.git"]
    args += ["--branch=main", "-n", namespace, "--timeout=30s"]
    out = await tidal_answered(cluster, kube, namespace, args, bool, fetched_sha)
    assert out.code == 0, out.stderr
    assert out.stderr.endswith(
        f"✔ GitRepository source reconciliation completed\n✔ fetched revision: main@sha1:{SHA}\n"
    )


@pytest.mark.usefixtures("crds")
async def test_create_secret_git_writes_the_secret(
    kube: Kube, namespace: str, cluster: Cluster
) -> None:
    args = ["create", "secret", "git", "auth", "--url=https://x/r", "--bearer-token=tok"]
    out = await tidal(cluster.kubeconfig, *args, "-n", namespace)
    assert out.code == 0, out.stderr
    assert out.stderr == f"► git secret 'auth' created in '{namespace}' namespace\n"
    secret = await kube.get(f"/api/v1/namespaces/{namespace}/secrets/auth")
    assert secret["data"] == {"bearerToken": "dG9r"}


# -- suspend, resume, reconcile, delete --------------------------------------------------------


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_suspend_and_resume_as_flux_sees_them(
    kube: Kube, namespace: str, cluster: Cluster, flux_bin: Path
) -> None:
    await ready_app(kube, namespace)
    out = await tidal(cluster.kubeconfig, "suspend", "source", "git", "app", "-n", namespace)
    assert out.code == 0, out.stderr
    assert out.stderr == (
        f"► suspending source git app in {namespace} namespace\n✔ source git suspended\n"
    )
    table = await flux(flux_bin, cluster.kubeconfig, "get", "sources", "git", "-n", namespace)
    assert "\tTrue     \tTrue \t" in table.stdout
    assert (await kube.get(GIT_REPOSITORY.path(namespace, "app")))["spec"]["suspend"] is True

    reconcile = await tidal(
        cluster.kubeconfig, "reconcile", "source", "git", "app", "-n", namespace
    )
    assert (reconcile.code, reconcile.stderr) == (1, "✗ resource is suspended\n")

    out = await tidal(
        cluster.kubeconfig, "resume", "source", "git", "app", "-n", namespace, "--timeout=2s"
    )
    assert out.code == 1
    assert out.stderr.splitlines() == [
        f"► resuming source git app in {namespace} namespace",
        "✔ source git resumed",
        "◎ waiting for GitRepository reconciliation",
        "✗ GitRepository app reconciliation failed: timed out after 2s: the Ready condition is "
        "older than generation 3",
        "✗ reconciliation failed for 1 GitRepository(s)",
    ]
    live = await kube.get(GIT_REPOSITORY.path(namespace, "app"))
    assert "suspend" not in live["spec"]
    table = await flux(flux_bin, cluster.kubeconfig, "get", "sources", "git", "-n", namespace)
    assert "\tFalse    \tTrue \t" in table.stdout

    missing = await tidal(cluster.kubeconfig, "suspend", "source", "git", "nope", "-n", namespace)
    assert (missing.code, missing.stderr) == (
        1,
        f"✗ GitRepository nope not found in {namespace} namespace\n",
    )


@pytest.mark.usefixtures("crds")
async def test_resume_waits_for_the_new_generation(
    kube: Kube, namespace: str, cluster: Cluster
) -> None:
    await create(kube, GIT_REPOSITORY, git_repository(namespace, "app", suspend=True))
    args = ["resume", "source", "git", "app", "-n", namespace, "--timeout=30s"]

    def resumed(live: dict[str, Any]) -> bool:
        return "suspend" not in live["spec"]

    out = await tidal_answered(cluster, kube, namespace, args, resumed, fetched_sha)
    assert out.code == 0, out.stderr
    assert out.stderr.endswith(
        f"✔ GitRepository app reconciliation completed\n✔ fetched revision main@sha1:{SHA}\n"
    )


@pytest.mark.usefixtures("crds")
async def test_reconcile_annotates_and_times_out_without_a_controller(
    kube: Kube, namespace: str, cluster: Cluster
) -> None:
    await ready_app(kube, namespace)
    out = await tidal(
        cluster.kubeconfig, "reconcile", "source", "git", "app", "-n", namespace, "--timeout=2s"
    )
    assert out.code == 1
    assert out.stderr.splitlines() == [
        f"► annotating GitRepository app in {namespace} namespace",
        "✔ GitRepository annotated",
        "◎ waiting for GitRepository reconciliation",
        "✗ timed out after 2s waiting for GitRepository app reconciliation: the reconcile "
        "request has not been handled yet (is a controller for it running?)",
    ]
    live = await kube.get(GIT_REPOSITORY.path(namespace, "app"))
    token = live["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]
    # RFC 3339 with up to nine fraction digits, as Go's time.RFC3339Nano writes it.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", token)
    assert not re.search(r"\.\d*0(Z|[+-])", token)  # no trailing zeros in the fraction


@pytest.mark.usefixtures("crds")
async def test_reconcile_reports_the_fetched_revision(
    kube: Kube, namespace: str, cluster: Cluster
) -> None:
    await ready_app(kube, namespace)
    new = "main@sha1:" + "f" * 40

    def requested(live: dict[str, Any]) -> bool:
        return REQUESTED_AT in (live["metadata"].get("annotations") or {})

    def handled(live: dict[str, Any]) -> dict[str, Any]:
        token = live["metadata"]["annotations"][REQUESTED_AT]
        return ready_status(1, new, lastHandledReconcileAt=token)

    args = ["reconcile", "source", "git", "app", "-n", namespace, "--timeout=30s"]
    out = await tidal_answered(cluster, kube, namespace, args, requested, handled)
    assert out.code == 0, out.stderr
    assert out.stderr.endswith(f"✔ fetched revision {new}\n")


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_delete_asks_first(
    kube: Kube, namespace: str, cluster: Cluster, flux_bin: Path
) -> None:
    await create(kube, GIT_REPOSITORY, git_repository(namespace, "app"))
    refused = await tidal(
        cluster.kubeconfig, "delete", "source", "git", "app", "-n", namespace, stdin="n\n"
    )
    assert refused.code == 1
    assert refused.stderr.endswith("✗ aborting\n")
    await kube.get(GIT_REPOSITORY.path(namespace, "app"))  # still there

    out = await tidal(cluster.kubeconfig, "delete", "source", "git", "app", "-n", namespace, "-s")
    assert (out.code, out.stderr) == (
        0,
        f"► deleting source git app in {namespace} namespace\n✔ source git deleted\n",
    )
    gone = ["delete", "source", "git", "app", "-n", namespace, "-s"]
    await same_as_flux(flux_bin, cluster.kubeconfig, *gone)


async def test_a_missing_crd_is_reported_as_not_installed(cluster: Cluster) -> None:
    missing = ObjectKind(
        "Nothing", "nothing.tidal.test", "v1", "nothings", "nothing", GIT_REPOSITORY.spec_model
    )
    opts = GlobalOptions(str(cluster.kubeconfig), None, "default", 10.0)

    async def work(s: cli_cluster.Session) -> list[dict[str, Any]]:
        return await cli_cluster.list_objects(s, missing)

    with pytest.raises(CliError, match="CRD is not installed; install tidal"):
        await asyncio.to_thread(cli_cluster.run, opts, work)


# -- with a running controller -----------------------------------------------------------------

LIVE_LABEL = "tidal-cli-e2e=live"


@pytest.fixture(scope="module")
def live_controller(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`tidal controller`, limited by label to the objects of the tests that want it, so the
    other tests here still see no controller."""
    work = tmp_path_factory.mktemp("cli-controller")
    with run_controller(cluster.kubeconfig, work, "--watch-label-selector", LIVE_LABEL) as running:
        yield running.log


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_create_reconcile_resume_with_a_running_controller(
    kube: Kube,
    namespace: str,
    cluster: Cluster,
    flux_bin: Path,
    live_controller: Path,
    git_https: GitHTTPServer,
    git_repo: GitRepoFactory,
    tmp_path: Path,
) -> None:
    repo = git_repo(files={"README.md": "one\n"})
    first = repo.head("main")
    ca = tmp_path / "ca.pem"
    ca.write_bytes(git_https.ca_pem)
    assert git_https.username and git_https.password
    out = await tidal(
        cluster.kubeconfig,
        *["create", "source", "git", "live", f"--url={git_https.url_for(repo.name)}"],
        *["--branch=main", "-u", git_https.username, "-p", git_https.password],
        *[f"--ca-file={ca}", f"--label={LIVE_LABEL}", "-n", namespace, "--timeout=60s"],
    )
    if out.code != 0:
        logs = await asyncio.to_thread(live_controller.read_text, errors="replace")
        pytest.fail(out.stderr + logs[-3000:])
    assert out.stderr.endswith(
        f"✔ GitRepository source reconciliation completed\n✔ fetched revision: main@sha1:{first}\n"
    )

    second = repo.commit({"README.md": "two\n"})
    args = ["reconcile", "source", "git", "live", "-n", namespace, "--timeout=60s"]
    out = await tidal(cluster.kubeconfig, *args)
    assert out.code == 0, out.stderr
    assert out.stderr.endswith(f"✔ fetched revision main@sha1:{second}\n")

    table = ["get", "sources", "git", "-n", namespace]
    ours = await same_as_flux(flux_bin, cluster.kubeconfig, *table)
    assert f"main@sha1:{second[:8]}\tFalse    \tTrue \t" in ours.stdout

    assert (
        await tidal(cluster.kubeconfig, "suspend", "source", "git", "live", "-n", namespace)
    ).code == 0
    out = await tidal(cluster.kubeconfig, "resume", "source", "git", "live", "-n", namespace)
    assert out.code == 0, out.stderr
    assert out.stderr.endswith(
        f"✔ GitRepository live reconciliation completed\n✔ fetched revision main@sha1:{second}\n"
    )


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_get_a_name_with_selector_characters_is_flux_s(
    cluster: Cluster, namespace: str, flux_bin: Path
) -> None:
    """A name is a field selector value: `,` `=` and `\\` are escaped, not parsed."""
    for name in ("a,b", "a=b", "a\\\\b"):
        await same_as_flux(
            flux_bin, cluster.kubeconfig, "get", "sources", "git", name, "-n", namespace
        )
        await same_as_flux(flux_bin, cluster.kubeconfig, "get", "ks", name, "-n", namespace)
