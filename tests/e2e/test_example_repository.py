"""The canonical Flux example (fluxcd/flux2-kustomize-helm-example, its last revision before
Flux 2.7, from ../shared/corpus) reconciled whole into the plane: a GitRepository `flux-system`
and the Kustomization bootstrap would make for clusters/staging, whose Kustomizations
infra-controllers -> infra-configs -> apps (dependsOn, wait) install HelmReleases of
cert-manager, ingress-nginx and podinfo.

The test's copy of the repository differs in two ways, because this machine has no network:
the HelmRepository URLs point at a local chart server, and clusters/staging/flux-system (Flux's
own controllers, which bootstrap puts there) is left out. The chart server serves the real
podinfo chart from the corpus, and stand-ins for cert-manager (its ClusterIssuer CRD and a
Deployment) and ingress-nginx (a Deployment, a Service and the nginx IngressClass).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testenv.chart_server import ChartRepository, ChartServer, package_chart
from testenv.git_server import GitHTTPServer
from tests.controller_process import (
    RunningController,
    condition,
    controller_fixture,
    wait_for_object,
)
from tests.corpus_path import corpus_root
from tests.kustomization_helpers import KS_API, SOURCE_API, auth_secret, get_or_none
from tidal.kube.client import ApiError, Kube

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

pytest.importorskip("helm_python")

CORPUS = corpus_root() or Path("/nonexistent")
EXAMPLE = CORPUS / "fluxcd__flux2-kustomize-helm-example__pre-flux-2.7"
PODINFO = CORPUS / "stefanprodan__podinfo" / "charts" / "podinfo"
UPSTREAM_URLS = (
    "https://stefanprodan.github.io/podinfo",
    "https://charts.jetstack.io",
    "https://kubernetes.github.io/ingress-nginx",
)
NAMESPACES = ("podinfo", "cert-manager", "ingress-nginx")

controller = controller_fixture("--concurrent", "4", "--requeue-dependency", "2s")

CERT_MANAGER = {
    "values.yaml": "crds:\n  enabled: false\n  keep: true\n",
    "templates/crds.yaml": """{{- if .Values.crds.enabled }}
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: clusterissuers.cert-manager.io
spec:
  group: cert-manager.io
  scope: Cluster
  names:
    kind: ClusterIssuer
    plural: clusterissuers
    singular: clusterissuer
    listKind: ClusterIssuerList
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
{{- end }}
""",
    "templates/deployment.yaml": """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: 1
  selector:
    matchLabels: {app: cert-manager}
  template:
    metadata:
      labels: {app: cert-manager}
    spec:
      containers:
        - name: controller
          image: quay.io/jetstack/cert-manager-controller
""",
}

INGRESS_NGINX = {
    "values.yaml": "controller:\n  service:\n    type: LoadBalancer\nadmissionWebhooks:\n"
    "  enabled: true\n",
    "templates/controller.yaml": """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-controller
spec:
  replicas: 1
  selector:
    matchLabels: {app: ingress-nginx}
  template:
    metadata:
      labels: {app: ingress-nginx}
    spec:
      containers:
        - name: controller
          image: registry.k8s.io/ingress-nginx/controller
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}-controller
spec:
  type: {{ .Values.controller.service.type }}
  selector: {app: ingress-nginx}
  ports:
    - name: http
      port: 80
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
spec:
  controller: k8s.io/ingress-nginx
""",
}


def _package_dir(root: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=f"{root.name}/{path.relative_to(root)}")
    return buf.getvalue()


@pytest.fixture
def charts(tmp_path: Path) -> Iterator[ChartServer]:
    repo = ChartRepository(tmp_path / "charts")
    repo.root.mkdir()
    repo.publish("podinfo", "6.14.1", _package_dir(PODINFO), app_version="6.14.1")
    repo.publish("cert-manager", "1.19.1", package_chart("cert-manager", "1.19.1",
                 extra_files=CERT_MANAGER))  # fmt: skip
    repo.publish("ingress-nginx", "4.13.3", package_chart("ingress-nginx", "4.13.3",
                 extra_files=INGRESS_NGINX))  # fmt: skip
    with ChartServer(repo.root) as server:
        yield server


def repository_files(chart_url: str) -> dict[str, str]:
    files = {}
    for path in sorted(EXAMPLE.rglob("*.yaml")):
        rel = path.relative_to(EXAMPLE).as_posix()
        if "/flux-system/" in f"/{rel}":
            continue
        text = path.read_text()
        for url in UPSTREAM_URLS:
            text = text.replace(url, chart_url)
        files[rel] = text
    return files


async def ensure_namespace(kube: Kube, name: str) -> bool:
    try:
        await kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name}})
    except ApiError as e:
        if e.status == 409:
            return False
        raise
    return True


async def wait_ready(kube: Kube, path: str, controller: RunningController) -> dict[str, Any]:
    """The object once Ready (it may not exist yet: the root Kustomization creates it)."""
    for _ in range(600):
        if await get_or_none(kube, path) is not None:
            break
        await asyncio.sleep(0.2)
    return await wait_for_object(kube, path, ready, f"{path} Ready", controller, 240)


def ready(obj: dict[str, Any]) -> bool:
    c = condition(obj, "Ready")
    return (
        c.get("status") == "True"
        and (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]
    )


async def test_the_staging_cluster_of_the_flux_example_reconciles_whole(
    kube: Kube,
    crds: None,
    controller: RunningController,
    charts: ChartServer,
    git_http: GitHTTPServer,
    git_repo: Any,
    helm_bin: Path,
    cluster: Any,
) -> None:
    if not EXAMPLE.is_dir() or not PODINFO.is_dir():
        pytest.skip("the corpus with the Flux example and the podinfo chart is absent")
    for ns in NAMESPACES:
        with contextlib.suppress(ApiError):
            await kube.get(f"/api/v1/namespaces/{ns}")
            pytest.skip(f"namespace {ns} exists already; the example needs it for itself")
    created_flux_system = await ensure_namespace(kube, "flux-system")
    repo = git_repo("flux2-kustomize-helm-example", files=repository_files(charts.url))
    auth = await auth_secret(kube, "flux-system", git_http)
    source = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "flux-system", "namespace": "flux-system"},
        "spec": {
            "url": git_http.url_for(repo.name),
            "ref": {"branch": "main"},
            "secretRef": {"name": auth},
            "interval": "10m",
        },
    }
    root = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "flux-system", "namespace": "flux-system"},
        "spec": {
            "interval": "10m",
            "path": "./clusters/staging",
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
        },
    }
    ks = f"{KS_API}/namespaces/flux-system/kustomizations"
    await kube.request("POST", f"{SOURCE_API}/namespaces/flux-system/gitrepositories", body=source)
    await kube.request("POST", ks, body=root)
    try:
        apps = await wait_ready(kube, f"{ks}/apps", controller)
        configs = await kube.get(f"{ks}/infra-configs")
        controllers = await kube.get(f"{ks}/infra-controllers")
        assert ready(configs) and ready(controllers)

        # dependsOn held each one back until the one before was Ready.
        def became_ready(obj: dict[str, Any]) -> str:
            return str(condition(obj, "Ready")["lastTransitionTime"])

        assert became_ready(controllers) <= became_ready(configs) <= became_ready(apps)
        issuer = await kube.get("/apis/cert-manager.io/v1/clusterissuers/letsencrypt")
        # infra-configs' JSON 6902 patch of the ClusterIssuer.
        assert issuer["spec"]["acme"]["server"] == (
            "https://acme-staging-v02.api.letsencrypt.org/directory"
        )

        hr = "/apis/helm.toolkit.fluxcd.io/v2/namespaces"
        podinfo = await kube.get(f"{hr}/podinfo/helmreleases/podinfo")
        assert condition(podinfo, "Ready")["reason"] == "InstallSucceeded"
        assert podinfo["status"]["history"][0]["chartVersion"] == "6.14.1"
        # The staging overlay's values reached the chart: the ingress host.
        ingress = await kube.get("/apis/networking.k8s.io/v1/namespaces/podinfo/ingresses/podinfo")
        assert ingress["spec"]["rules"][0]["host"] == "podinfo.staging"
        assert ingress["spec"]["ingressClassName"] == "nginx"
        deployments = await kube.get("/apis/apps/v1/namespaces/podinfo/deployments")
        assert sorted(d["metadata"]["name"] for d in deployments["items"]) == [
            "podinfo",
            "podinfo-redis",
        ]
        out = await asyncio.to_thread(
            subprocess.run,
            [str(helm_bin), "--kubeconfig", str(cluster.kubeconfig), "list", "-A", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        releases = {(r["namespace"], r["name"], r["status"]) for r in json.loads(out.stdout)}
        assert {
            ("podinfo", "podinfo", "deployed"),
            ("cert-manager", "cert-manager", "deployed"),
            ("ingress-nginx", "ingress-nginx", "deployed"),
        } <= releases
    finally:
        # Pruning the root prunes the three Kustomizations, which prune (and uninstall) theirs.
        with contextlib.suppress(ApiError):
            await kube.delete(f"{ks}/flux-system")
        for _ in range(300):
            try:
                await kube.get(f"{ks}/flux-system")
            except ApiError:
                break
            await asyncio.sleep(0.2)
        with contextlib.suppress(ApiError):
            await kube.delete(f"{SOURCE_API}/namespaces/flux-system/gitrepositories/flux-system")
        if created_flux_system:
            with contextlib.suppress(ApiError):
                await kube.delete("/api/v1/namespaces/flux-system")
