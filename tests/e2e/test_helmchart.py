"""`tidal controller` reconciling HelmCharts into a real cluster: charts pulled from a real chart
repository over HTTP (with basic auth), and charts packaged from a real Git server with local
and remote dependencies.

Artifacts are always read through status.artifact.url, whichever controller wrote them.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx2 as httpx
import pytest

from testenv.chart_server import ChartRepository, ChartServer, package_chart
from testenv.git_server import GitHTTPServer
from testenv.registry import Registry
from tests.controller_process import (
    RunningController,
    condition,
    controller_fixture,
    wait_for_object,
)
from tests.kustomization_helpers import (
    SOURCE_API,
    git_source,
    head_revision,
    request_reconcile,
    secret,
    wait_gone,
    wait_repo,
)
from tidal.kube.client import Kube

pytestmark = pytest.mark.e2e

controller = controller_fixture("--concurrent", "4", "--requeue-dependency", "2s")


def chart_path(namespace: str, name: str) -> str:
    return f"{SOURCE_API}/namespaces/{namespace}/helmcharts/{name}"


def repo_path(namespace: str, name: str) -> str:
    return f"{SOURCE_API}/namespaces/{namespace}/helmrepositories/{name}"


async def create(kube: Kube, namespace: str, plural: str, kind: str, name: str, spec: Any) -> None:
    body = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    await kube.request("POST", f"{SOURCE_API}/namespaces/{namespace}/{plural}", body=body)


async def create_helm_repo(kube: Kube, namespace: str, name: str, url: str, **spec: Any) -> None:
    await create(kube, namespace, "helmrepositories", "HelmRepository", name, {"url": url, **spec})


async def create_chart(kube: Kube, namespace: str, name: str, **spec: Any) -> None:
    await create(kube, namespace, "helmcharts", "HelmChart", name, {"interval": "10m", **spec})


def ready_with(revision: str | None = None) -> Any:
    def check(obj: dict[str, Any]) -> bool:
        ready = condition(obj, "Ready")
        artifact = (obj.get("status") or {}).get("artifact") or {}
        if ready.get("status") != "True" or not artifact:
            return False
        return revision is None or artifact.get("revision") == revision

    return check


def not_ready(reason: str) -> Any:
    def check(obj: dict[str, Any]) -> bool:
        ready = condition(obj, "Ready")
        return ready.get("status") == "False" and ready.get("reason") == reason

    return check


async def download(url: str) -> bytes:
    async with httpx.AsyncClient() as client:
        resp = await client.get(url)
    resp.raise_for_status()
    return resp.content


def files_of(archive: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {
            m.name: (tar.extractfile(m) or io.BytesIO()).read().decode() for m in tar if m.isreg()
        }


@pytest.fixture
def charts(tmp_path: Path) -> ChartRepository:
    repo = ChartRepository(tmp_path / "charts")
    repo.root.mkdir()
    repo.add("podinfo", "6.5.0", created="2024-01-02T03:04:05Z")
    repo.add("podinfo", "6.10.1", created="2024-02-02T03:04:05Z")
    repo.add("podinfo", "7.0.0-rc.1", created="2024-03-02T03:04:05Z")
    repo.add(
        "app",
        "1.0.0",
        extra_files={
            "values.yaml": "replicaCount: 1\nimage:\n  repository: app\n  tag: dev\n",
            "values-prod.yaml": "replicaCount: 3\nimage:\n  tag: prod\n",
        },
    )
    repo.add("redis", "17.0.0")
    repo.add("redis", "18.1.0")
    return repo


@pytest.fixture
def server(charts: ChartRepository) -> Iterator[ChartServer]:
    with ChartServer(charts.root) as srv:
        yield srv


async def helm_repo_ready(
    kube: Kube,
    namespace: str,
    name: str,
    url: str,
    controller: RunningController,
    **spec: Any,
) -> dict[str, Any]:
    await create_helm_repo(kube, namespace, name, url, interval="10m", **spec)
    return await wait_for_object(
        kube, repo_path(namespace, name), ready_with(), "HelmRepository Ready", controller
    )


async def test_pulls_the_highest_matching_version_and_follows_new_ones(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    charts: ChartRepository,
    server: ChartServer,
) -> None:
    repo = await helm_repo_ready(kube, namespace, "charts", server.url, controller)
    await create_chart(
        kube,
        namespace,
        "podinfo",
        chart="podinfo",
        version="6.x",
        sourceRef={"kind": "HelmRepository", "name": "charts"},
    )
    path = chart_path(namespace, "podinfo")
    obj = await wait_for_object(kube, path, ready_with("6.10.1"), "Ready", controller)
    ready = condition(obj, "Ready")
    assert ready["reason"] == "ChartPullSucceeded"
    assert ready["message"] == "pulled 'podinfo' chart with version '6.10.1'"
    status = obj["status"]
    assert status["observedChartName"] == "podinfo"
    assert status["observedSourceArtifactRevision"] == repo["status"]["artifact"]["revision"]
    assert status["observedGeneration"] == 1
    artifact = status["artifact"]
    assert artifact["path"] == f"helmchart/{namespace}/podinfo/podinfo-6.10.1.tgz"
    assert status["url"].endswith(f"helmchart/{namespace}/podinfo/latest.tar.gz")
    # Pulled as is: the artifact is the repository's own archive.
    assert await download(artifact["url"]) == (charts.root / "podinfo-6.10.1.tgz").read_bytes()

    # A new version in the index: the repository's new artifact wakes the chart.
    charts.add("podinfo", "6.11.0")
    await request_reconcile(kube, repo_path(namespace, "charts"), "new-index")
    obj = await wait_for_object(kube, path, ready_with("6.11.0"), "the new version", controller)
    assert obj["status"]["artifact"]["path"].endswith("podinfo-6.11.0.tgz")

    # The `*` default never picks a prerelease; an exact version may.
    await kube.patch(path, {"spec": {"version": "7.0.0-rc.1"}})
    await wait_for_object(kube, path, ready_with("7.0.0-rc.1"), "the prerelease", controller)
    await kube.patch(path, {"spec": {"version": "*"}})
    await wait_for_object(kube, path, ready_with("6.11.0"), "back to stable", controller)


async def test_basic_auth_repository(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    charts: ChartRepository,
) -> None:
    with ChartServer(charts.root, username="helm", password="s3cret") as server:
        await secret(kube, namespace, "creds", {"username": "helm", "password": "s3cret"})
        await helm_repo_ready(
            kube, namespace, "private", server.url, controller, secretRef={"name": "creds"}
        )
        await create_chart(
            kube,
            namespace,
            "redis",
            chart="redis",
            sourceRef={"kind": "HelmRepository", "name": "private"},
        )
        obj = await wait_for_object(
            kube, chart_path(namespace, "redis"), ready_with("18.1.0"), "Ready", controller
        )
        assert condition(obj, "Ready")["reason"] == "ChartPullSucceeded"
        pulls = [auth for p, auth in server.requests if p.endswith("/redis-18.1.0.tgz")]
        assert pulls and all(a.startswith("Basic ") for a in pulls)


async def test_values_files_are_merged_into_the_package(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    server: ChartServer,
) -> None:
    await helm_repo_ready(kube, namespace, "charts", server.url, controller)
    await create_chart(
        kube,
        namespace,
        "app",
        chart="app",
        sourceRef={"kind": "HelmRepository", "name": "charts"},
        valuesFiles=["values.yaml", "values-prod.yaml"],
    )
    # With values files the version carries the object's generation (as Flux does).
    obj = await wait_for_object(
        kube, chart_path(namespace, "app"), ready_with("1.0.0+1"), "Ready", controller
    )
    ready = condition(obj, "Ready")
    assert ready["reason"] == "ChartPackageSucceeded"
    assert ready["message"] == (
        "packaged 'app' chart with version '1.0.0+1' and merged values files "
        "[values.yaml values-prod.yaml]"
    )
    files = files_of(await download(obj["status"]["artifact"]["url"]))
    assert next(iter(files)) == "app/Chart.yaml"
    assert files["app/values.yaml"] == "image:\n  repository: app\n  tag: prod\nreplicaCount: 3\n"
    assert "version: 1.0.0+1\n" in files["app/Chart.yaml"]
    assert "app/values-prod.yaml" in files

    # A values file that is not there fails the build, unless told to ignore it.
    await kube.patch(
        chart_path(namespace, "app"), {"spec": {"valuesFiles": ["values.yaml", "nope.yaml"]}}
    )
    obj = await wait_for_object(
        kube, chart_path(namespace, "app"), not_ready("ValuesFilesError"), "failed", controller
    )
    assert condition(obj, "Ready")["message"] == (
        "values files merge error: failed to merge chart values: "
        "no values file found at path 'nope.yaml'"
    )
    assert condition(obj, "Stalled")["status"] == "True"
    await kube.patch(chart_path(namespace, "app"), {"spec": {"ignoreMissingValuesFiles": True}})
    obj = await wait_for_object(
        kube, chart_path(namespace, "app"), ready_with("1.0.0+3"), "Ready again", controller
    )
    assert obj["status"]["observedValuesFiles"] == ["values.yaml"]


async def test_missing_chart_or_version_is_reported(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    server: ChartServer,
) -> None:
    await helm_repo_ready(kube, namespace, "charts", server.url, controller)
    await create_chart(
        kube,
        namespace,
        "nope",
        chart="nope",
        sourceRef={"kind": "HelmRepository", "name": "charts"},
    )
    await create_chart(
        kube,
        namespace,
        "nine",
        chart="podinfo",
        version="9.x",
        sourceRef={"kind": "HelmRepository", "name": "charts"},
    )
    for name, detail in (
        ("nope", "no chart name found"),
        ("nine", "no 'podinfo' chart with version matching '9.x' found"),
    ):
        obj = await wait_for_object(
            kube, chart_path(namespace, name), not_ready("InvalidChartReference"), name, controller
        )
        assert condition(obj, "Ready")["message"] == (
            f"invalid chart reference: failed to get chart version for remote reference: {detail}"
        )
        assert condition(obj, "Stalled")["status"] == "True"
        assert condition(obj, "FetchFailed")["reason"] == "InvalidChartReference"

    # A source that does not exist is retried, not stalled.
    await create_chart(
        kube, namespace, "orphan", chart="x", sourceRef={"kind": "HelmRepository", "name": "gone"}
    )
    obj = await wait_for_object(
        kube, chart_path(namespace, "orphan"), not_ready("SourceUnavailable"), "orphan", controller
    )
    assert condition(obj, "Ready")["message"] == (
        'failed to get source: helmrepositories.source.toolkit.fluxcd.io "gone" not found'
    )
    assert not condition(obj, "Stalled")


def push_chart(registry: Registry, repository: str, tag: str, chart: bytes) -> None:
    """Push a chart as `helm push` lays it out: a Helm config and one chart layer."""
    base = f"http://{registry.host}/v2/{repository}"
    config = json.dumps({"name": repository.rsplit("/", 1)[-1], "version": tag}).encode()
    descriptors = []
    for data, media_type in (
        (config, "application/vnd.cncf.helm.config.v1+json"),
        (chart, "application/vnd.cncf.helm.chart.content.v1.tar+gzip"),
    ):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = httpx.post(f"{base}/blobs/uploads/")
        location = urljoin(f"{base}/", start.headers["Location"])
        sep = "&" if "?" in location else "?"
        httpx.put(
            f"{location}{sep}digest={digest}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        ).raise_for_status()
        descriptors.append({"mediaType": media_type, "digest": digest, "size": len(data)})
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptors[0],
        "layers": [descriptors[1]],
    }
    httpx.put(
        f"{base}/manifests/{tag.replace('+', '_')}",
        content=json.dumps(manifest).encode(),
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    ).raise_for_status()


@pytest.fixture(scope="module")
def registry(oci_registry_bin: Path) -> Iterator[Registry]:
    with Registry(binary=oci_registry_bin) as running:
        yield running


async def test_chart_from_an_oci_helm_repository(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    registry: Registry,
) -> None:
    charts = {tag: package_chart("podinfo", tag) for tag in ("6.5.0", "6.6.0+build.1", "7.0.0")}
    for tag, archive in charts.items():
        push_chart(registry, f"{namespace}/podinfo", tag, archive)
    url = f"{registry.url(namespace)}"
    await create_helm_repo(kube, namespace, "oci", url, type="oci")
    await create_chart(
        kube,
        namespace,
        "podinfo",
        chart="podinfo",
        version="6.x",
        sourceRef={"kind": "HelmRepository", "name": "oci"},
    )
    path = chart_path(namespace, "podinfo")
    # OCI tags cannot hold `+`: the `_` of the tag is the version's build metadata.
    obj = await wait_for_object(kube, path, ready_with("6.6.0+build.1"), "Ready", controller)
    assert condition(obj, "Ready")["message"] == (
        "pulled 'podinfo' chart with version '6.6.0+build.1'"
    )
    assert await download(obj["status"]["artifact"]["url"]) == charts["6.6.0+build.1"]

    await kube.patch(path, {"spec": {"version": "8.x"}})
    obj = await wait_for_object(kube, path, not_ready("ChartPullError"), "no match", controller)
    assert condition(obj, "Ready")["message"] == (
        "chart pull error: failed to get chart version for remote reference: "
        "could not locate a version matching provided version string 8.x"
    )


APP_CHART = """apiVersion: v2
name: app
version: 0.1.0
description: An app
dependencies:
  - name: common
    version: ">=0.1.0"
    repository: file://../common
  - name: redis
    version: "17.x"
    repository: {url}
    alias: cache
"""


async def test_chart_from_git_with_local_and_remote_dependencies(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    server: ChartServer,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    await helm_repo_ready(kube, namespace, "deps", server.url, controller)
    repo = git_repo(
        files={
            "charts/app/Chart.yaml": APP_CHART.format(url=server.url),
            "charts/app/values.yaml": "replicaCount: 1\ncache:\n  enabled: false\n",
            "charts/app/templates/cm.yaml": "kind: ConfigMap\n",
            "charts/app/templates/.draft.yaml": "kind: Secret\n",
            "charts/app/notes.bak": "left out\n",
            "charts/app/.helmignore": "*.bak\n",
            "charts/common/Chart.yaml": "apiVersion: v2\nname: common\nversion: 0.2.0\n",
            "charts/common/values.yaml": "shared: true\n",
            "env/prod.yaml": "replicaCount: 5\n",
        }
    )
    await git_source(kube, namespace, "repo", git_http, repo)
    revision = head_revision(repo)
    await wait_repo(kube, namespace, "repo", ready_with(revision), "Git Ready", controller)

    await create_chart(
        kube,
        namespace,
        "app",
        chart="charts/app",
        sourceRef={"kind": "GitRepository", "name": "repo"},
        valuesFiles=["charts/app/values.yaml", "env/prod.yaml"],
    )
    obj = await wait_for_object(
        kube, chart_path(namespace, "app"), ready_with("0.1.0+1"), "Ready", controller
    )
    assert condition(obj, "Ready")["reason"] == "ChartPackageSucceeded"
    assert obj["status"]["observedSourceArtifactRevision"] == revision
    files = files_of(await download(obj["status"]["artifact"]["url"]))
    names = list(files)
    assert names[0] == "app/Chart.yaml"
    assert "app/charts/common/Chart.yaml" in files
    assert "name: cache\n" in files["app/charts/cache/Chart.yaml"]
    assert "version: 17.0.0\n" in files["app/charts/cache/Chart.yaml"]
    assert files["app/values.yaml"] == "cache:\n  enabled: false\nreplicaCount: 5\n"
    assert "app/notes.bak" not in files and "app/templates/.draft.yaml" not in files

    # A new chart version whose remote dependency the repository does not have. (The same
    # version would not be rebuilt: ChartVersion is the default reconcileStrategy.)
    broken = APP_CHART.format(url=server.url).replace("17.x", "99.x").replace("0.1.0", "0.2.0")
    commit = repo.commit({"charts/app/Chart.yaml": broken}, "bump")
    await request_reconcile(kube, f"{SOURCE_API}/namespaces/{namespace}/gitrepositories/repo", "1")
    await wait_repo(
        kube, namespace, "repo", ready_with(f"main@sha1:{commit}"), "new commit", controller
    )
    obj = await wait_for_object(
        kube, chart_path(namespace, "app"), not_ready("DependencyBuildError"), "failed", controller
    )
    assert condition(obj, "Ready")["message"].startswith(
        "dependency build error: failed to add remote dependency 'cache': failed to get chart "
        f"'redis' version '99.x' from '{server.url}': no 'redis' chart with version matching"
    )
    assert condition(obj, "BuildFailed")["status"] == "True"


async def test_revision_strategy_and_deletion(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
) -> None:
    files = {
        "chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 1.2.3\n",
        "chart/values.yaml": "a: 1\n",
        "chart/templates/cm.yaml": "kind: ConfigMap\n",
    }
    repo = git_repo(files=files)
    await git_source(kube, namespace, "repo", git_http, repo)
    first = repo.head("main")
    await wait_repo(kube, namespace, "repo", ready_with(head_revision(repo)), "Ready", controller)
    source = {"kind": "GitRepository", "name": "repo"}
    await create_chart(
        kube, namespace, "by-rev", chart="chart", sourceRef=source, reconcileStrategy="Revision"
    )
    await create_chart(kube, namespace, "by-ver", chart="chart", sourceRef=source)
    await wait_for_object(
        kube, chart_path(namespace, "by-rev"), ready_with(f"1.2.3+{first[:12]}"), "rev", controller
    )
    by_ver = await wait_for_object(
        kube, chart_path(namespace, "by-ver"), ready_with("1.2.3"), "ver", controller
    )
    assert condition(by_ver, "Ready")["message"] == "packaged 'web' chart with version '1.2.3'"

    second = repo.commit({**files, "chart/values.yaml": "a: 2\n"}, "values")
    await request_reconcile(kube, f"{SOURCE_API}/namespaces/{namespace}/gitrepositories/repo", "2")
    await wait_for_object(
        kube, chart_path(namespace, "by-rev"), ready_with(f"1.2.3+{second[:12]}"), "new", controller
    )

    def observed(obj: dict[str, Any]) -> bool:
        return obj["status"].get("observedSourceArtifactRevision") == f"main@sha1:{second}"

    # ChartVersion: the same Chart.yaml version keeps the artifact.
    same = await wait_for_object(
        kube, chart_path(namespace, "by-ver"), observed, "seen", controller
    )
    assert same["status"]["artifact"]["digest"] == by_ver["status"]["artifact"]["digest"]

    url = same["status"]["artifact"]["url"]
    await kube.delete(chart_path(namespace, "by-ver"))
    await wait_gone(kube, chart_path(namespace, "by-ver"))
    async with httpx.AsyncClient() as client:
        assert (await client.get(url)).status_code == 404
