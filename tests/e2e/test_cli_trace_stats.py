"""`tidal trace`, `tidal get all` and `tidal stats` against a real API server, compared with the
real flux CLI.

Both CLIs read the same objects, whose status the tests write as the controllers would (what
they print depends on nothing else), so their stdout, stderr and exit status must be the same.
Only tidal's CRDs are installed, so every other Flux kind is one whose CRD is missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.cli_process import Out, assert_same, flux, needs_flux, tidal
from tests.plugin import Cluster
from tidal.cli import cluster as cli_cluster
from tidal.cli import get
from tidal.cli.objects import GIT_REPOSITORY, KUSTOMIZATION, ObjectKind
from tidal.cli.options import GlobalOptions
from tidal.kube.client import ApiError, Kube

pytestmark = pytest.mark.e2e

SHA = "0123456789abcdef0123456789abcdef01234567"
REVISION = f"main@sha1:{SHA}"
AT = "2026-01-01T00:00:00Z"
KS_LABELS = "kustomize.toolkit.fluxcd.io"
# Processes run at once: tidal's start-up is CPU-bound and the machine is shared.
_PARALLEL = asyncio.Semaphore(4)


async def same_as_flux(flux_bin: Path, kubeconfig: Path, *args: str) -> Out:
    """Run `tidal` and `flux` with `args`: stdout, stderr and exit status must be the same.
    tidal's result."""
    async with _PARALLEL:
        ours = await tidal(kubeconfig, *args)
        assert_same(ours, await flux(flux_bin, kubeconfig, *args))
    return ours


async def all_same_as_flux(
    flux_bin: Path, kubeconfig: Path, cases: Sequence[Sequence[str]]
) -> list[Out]:
    return await asyncio.gather(*(same_as_flux(flux_bin, kubeconfig, *c) for c in cases))


async def same_as_flux_once_quiet(flux_bin: Path, kubeconfig: Path, *args: str) -> Out:
    """For views of the whole cluster, which other tests' namespaces (still being deleted)
    may change between the two runs: the same output at one of three tries."""
    for _ in range(2):
        ours = await tidal(kubeconfig, *args)
        theirs = await flux(flux_bin, kubeconfig, *args)
        if (ours.code, ours.stdout, ours.stderr) == (theirs.code, theirs.stdout, theirs.stderr):
            return ours
        await asyncio.sleep(1)
    return await same_as_flux(flux_bin, kubeconfig, *args)


def condition(status: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": AT,
        "observedGeneration": 1,
    }


async def create(
    kube: Kube, kind: ObjectKind, namespace: str, name: str, spec: dict[str, Any], **status: Any
) -> None:
    """A Flux object, and the status its controller would have written."""
    obj = {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": {"name": name, "namespace": namespace, "labels": {"tidal-test": namespace}},
        "spec": spec,
    }
    await kube.request("POST", kind.collection(namespace), body=obj)
    if not status:
        return
    for _ in range(10):
        live = await kube.get(kind.path(namespace, name))
        live["status"] = {"observedGeneration": 1, **status}
        try:
            await kube.request("PUT", kind.path(namespace, name) + "/status", body=live)
            return
        except ApiError as e:  # changed meanwhile, e.g. given a finalizer
            if e.status != 409:
                raise
    raise AssertionError(f"could not write the status of {kind.kind} {name}")


def managed_by(namespace: str, name: str, group: str = KS_LABELS) -> dict[str, str]:
    return {f"{group}/name": name, f"{group}/namespace": namespace}


async def configmap(kube: Kube, namespace: str, name: str, labels: dict[str, str]) -> None:
    body = {"metadata": {"name": name, "labels": labels}, "data": {"key": "value"}}
    await kube.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body=body)


async def pipeline(kube: Kube, namespace: str) -> None:
    """Sources and the Kustomizations applying from them, as their controllers would leave
    them, and objects they applied, or not.

    What the tests check of an object's status must not depend on whether some controller (a
    developer's, on a shared plane) reconciles it: the ready objects are suspended, which every
    controller leaves alone, and the running ones are failing already."""
    artifact = {
        "path": f"gitrepository/{namespace}/app/{SHA}.tar.gz",
        "url": f"http://source-controller/gitrepository/{namespace}/app/{SHA}.tar.gz",
        "revision": REVISION,
        "digest": "sha256:" + "a" * 64,
        "lastUpdateTime": AT,
        "size": 1536,
    }
    stored = f"stored artifact for revision '{REVISION}'"
    await create(
        kube,
        GIT_REPOSITORY,
        namespace,
        "app",
        {
            "url": "https://example.com/app.git",
            "interval": "1m",
            "ref": {"branch": "main"},
            "suspend": True,
        },
        artifact=artifact,
        conditions=[condition("True", "Succeeded", stored)],
    )
    unreachable = "https://unreachable.invalid/broken.git"
    await create(
        kube,
        GIT_REPOSITORY,
        namespace,
        "broken",
        {"url": unreachable, "interval": "1m", "ref": {"tag": "v1.0"}},
        conditions=[condition("False", "GitOperationFailed", f"unable to clone '{unreachable}'")],
    )

    def ks(source: str, path: str, kind: str = "GitRepository", **extra: Any) -> dict[str, Any]:
        ref = {"kind": kind, "name": source}
        return {"interval": "10m", "path": path, "prune": True, "sourceRef": ref, **extra}

    await create(
        kube,
        KUSTOMIZATION,
        namespace,
        "apps",
        ks("app", "./deploy", targetNamespace=namespace, suspend=True),
        lastAppliedRevision=REVISION,
        conditions=[condition("True", "ReconciliationSucceeded", f"Applied revision: {REVISION}")],
    )
    await create(
        kube,
        KUSTOMIZATION,
        namespace,
        "broken",
        ks("broken", "./broken"),
        conditions=[condition("False", "ArtifactFailed", "Source artifact not found")],
    )
    await create(
        kube, KUSTOMIZATION, namespace, "oci", ks("app", "./", "OCIRepository", suspend=True)
    )

    await configmap(kube, namespace, "settings", managed_by(namespace, "apps"))
    await configmap(kube, namespace, "fragile", managed_by(namespace, "broken"))
    await configmap(kube, namespace, "from-oci", managed_by(namespace, "oci"))
    await configmap(kube, namespace, "orphan", managed_by(namespace, "gone"))
    await configmap(kube, namespace, "loose", {})
    helm = "helm.toolkit.fluxcd.io"
    await configmap(kube, namespace, "charted", managed_by(namespace, "web", helm))
    deployment = {
        "metadata": {"name": "podinfo", "labels": managed_by(namespace, "apps")},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "podinfo"}},
            "template": {
                "metadata": {"labels": {"app": "podinfo"}},
                "spec": {"containers": [{"name": "podinfo", "image": "podinfo:6"}]},
            },
        },
    }
    await kube.request("POST", f"/apis/apps/v1/namespaces/{namespace}/deployments", body=deployment)
    # A cluster-scoped object: the test's namespace, as if the Kustomization had applied it.
    await kube.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}",
        body={"metadata": {"labels": managed_by(namespace, "apps")}},
        content_type="application/merge-patch+json",
    )


# -- trace -------------------------------------------------------------------------------------


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_trace_reports_as_flux_does(
    kube: Kube, namespace: str, cluster: Cluster, flux_bin: Path
) -> None:
    await pipeline(kube, namespace)
    ns = ["-n", namespace]
    cases = [
        ["trace", *ns, "configmap", "settings"],
        ["trace", *ns, "deploy/podinfo", "cm/settings"],
        ["trace", *ns, "podinfo", "--kind", "Deployment", "--api-version", "apps/v1"],
        ["trace", *ns, "cm", "fragile"],  # a failing Kustomization and source
        ["trace", "namespace", namespace],
        # Not traceable: not applied by Flux, its Kustomization or source kind is missing.
        # Each is reported, the others still traced, and the exit status stays 0.
        ["trace", *ns, "cm", "loose", "settings", "orphan", "from-oci"],
        # not found: nothing is traced
        ["trace", *ns, "cm", "missing", "settings", "nothing"],
        ["trace", *ns, "missing", "--kind", "ConfigMap", "--api-version", "v1"],
    ]
    results = await all_same_as_flux(flux_bin, cluster.kubeconfig, cases)
    out = {" ".join(case[3:]): result for case, result in zip(cases, results, strict=True)}

    settings = out["configmap settings"]
    assert settings.code == 0
    assert settings.stdout.startswith(
        "\nObject:          ConfigMap/settings\n"
        f"Namespace:       {namespace}\n"
        "Status:          Managed by Flux\n"
        "---\n"
        "Kustomization:   apps\n"
    )
    assert f"Revision:        {REVISION}\n" in settings.stdout
    assert "Branch:          main\n" in settings.stdout
    assert "Status:          Last reconciled at " in settings.stdout
    mixed = out["cm loose settings orphan from-oci"]
    assert (mixed.code, mixed.stdout) == (0, f"---\n{settings.stdout}---\n---\n")
    assert mixed.stderr == (
        f"failed to trace ConfigMap/loose in namespace {namespace}: object not managed by Flux"
        f"failed to trace ConfigMap/orphan in namespace {namespace}: failed to find "
        f'kustomization: kustomizations.kustomize.toolkit.fluxcd.io "gone" not found'
        f"failed to trace ConfigMap/from-oci in namespace {namespace}: failed to find "
        'OCIRepository: ocirepositories.source.toolkit.fluxcd.io "app" not found'
    )
    missing = out["cm missing settings nothing"]
    assert (missing.code, missing.stdout) == (1, "")
    assert missing.stderr == (
        '✗ x: [configmaps "missing" not found, configmaps "nothing" not found]\n'
    )


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_trace_follows_owner_references_to_the_managed_object(
    kube: Kube, namespace: str, cluster: Cluster, flux_bin: Path
) -> None:
    await pipeline(kube, namespace)
    pods: list[dict[str, Any]] = []
    for _ in range(150):  # the Deployment's ReplicaSet creates the Pod
        pods = (await kube.get(f"/api/v1/namespaces/{namespace}/pods")).get("items") or []
        if pods:
            break
        await asyncio.sleep(0.2)
    assert pods, "the Deployment never got a Pod"
    pod = pods[0]["metadata"]
    replica_set = pod["ownerReferences"][0]["name"]
    args = ["trace", "-n", namespace, f"pod/{pod['name']}", f"replicasets.apps/{replica_set}"]
    traced = await same_as_flux(flux_bin, cluster.kubeconfig, *args)
    assert traced.stdout.startswith(f"\nObject:          Pod/{pod['name']}\n")
    assert f"\n---\n\nObject:          ReplicaSet/{replica_set}\n" in traced.stdout
    assert "Kustomization:   apps\n" in traced.stdout


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_trace_reports_a_missing_helm_release_as_flux_does(
    kube: Kube, namespace: str, cluster: Cluster, flux_bin: Path
) -> None:
    await pipeline(kube, namespace)
    ours = await same_as_flux(
        flux_bin, cluster.kubeconfig, "trace", "-n", namespace, "cm", "charted"
    )
    assert (ours.code, ours.stdout) == (0, "")
    assert ours.stderr == (
        f"failed to trace ConfigMap/charted in namespace {namespace}: failed to find "
        'HelmRelease: helmreleases.helm.toolkit.fluxcd.io "web" not found'
    )


# -- get all -----------------------------------------------------------------------------------


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_get_all_is_flux_s(
    kube: Kube, namespace: str, cluster: Cluster, flux_bin: Path
) -> None:
    await pipeline(kube, namespace)
    ns = ["-n", namespace]
    mine = ["-A", "-l", f"tidal-test={namespace}"]
    cases = [
        ["get", "all", *ns],
        ["get", "all", *ns, "--status-selector", "ready=false", "--no-header"],
        ["get", "all", *ns, "--status-selector", "nonsense"],
        ["get", "all", *ns, "app"],  # a GitRepository, and no such Kustomization
        ["get", "all", *mine],
        ["get", "sources", "all", *mine, "--no-header"],
        # refused for every kind flux has: one that does not parse, one flux cannot convert
        ["get", "all", *ns, "-l", "tidal-test in (a"],
        ["get", "all", *ns, "-l", "tidal-test!=a"],
        ["get", "kustomizations", *ns, "-l", "tidal-test!=a"],
    ]
    table, *_ = await all_same_as_flux(flux_bin, cluster.kubeconfig, cases)
    sources, appliers = table.stdout.split("\n\n", 1)
    assert sources.startswith("NAME ")
    assert [line.split("\t")[0].strip() for line in sources.splitlines()[1:]] == [
        "gitrepository/app",
        "gitrepository/broken",
    ]
    assert appliers.endswith("\t\n\n")  # each table is followed by a blank line
    assert [line.split("\t")[0].strip() for line in appliers[:-1].splitlines()[1:]] == [
        "kustomization/apps",
        "kustomization/broken",
        "kustomization/oci",
    ]

    await same_as_flux_once_quiet(flux_bin, cluster.kubeconfig, "get", "all", "-A")


async def test_get_all_skips_kinds_the_cluster_does_not_serve(
    kube: Kube, namespace: str, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    await pipeline(kube, namespace)
    absent = ObjectKind(
        "Nothing", "nothing.tidal.test", "v1", "nothings", "nothing", GIT_REPOSITORY.spec_model
    )
    tables = {"Nothing": get.KindTable(absent, ("Name",), lambda obj, ns: []), **get.TABLES}
    monkeypatch.setattr(get, "TABLES", tables)
    opts = GlobalOptions(str(cluster.kubeconfig), None, namespace, 10.0)

    async def work(s: cli_cluster.Session) -> Any:
        return await get.list_all(
            s,
            ["Nothing", *get.FLUX_ALL_KINDS],
            name=None,
            all_namespaces=False,
            no_header=False,
            status_selector="",
            label_selector="",
        )

    shown = await asyncio.to_thread(cli_cluster.run, opts, work)
    assert [p.failure for p in shown] == [False, False]
    assert shown[0].text.startswith("NAME")
    assert "gitrepository/app" in shown[0].text
    assert "kustomization/apps" in shown[1].text


# -- stats -------------------------------------------------------------------------------------


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_stats_is_flux_s(
    kube: Kube, namespace: str, cluster: Cluster, flux_bin: Path
) -> None:
    await pipeline(kube, namespace)
    ours = await same_as_flux(flux_bin, cluster.kubeconfig, "stats", "-n", namespace)
    rows = {line.split("\t")[0].strip(): line.split("\t")[1:5] for line in ours.stdout.splitlines()}
    cells = {kind: [c.strip() for c in row] for kind, row in rows.items()}
    assert cells["GitRepository"] == ["1", "1", "1", "1.5 KiB"]
    assert cells["Kustomization"] == ["1", "1", "2", "-"]
    assert cells["HelmRelease"] == ["0", "0", "0", "-"]
    assert len(rows) == 14

    await same_as_flux_once_quiet(flux_bin, cluster.kubeconfig, "stats", "-A")
    await same_as_flux_once_quiet(flux_bin, cluster.kubeconfig, "stats")
