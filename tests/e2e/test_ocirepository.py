"""`tidal controller` reconciling OCIRepositories from a real registry (the CNCF distribution
registry built by testenv.registry) holding artifacts pushed by the real flux CLI.

Another `tidal controller` may share the test plane and reconcile these objects too, so
artifacts are always read through status.artifact.url, whichever controller wrote it.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import socket
import subprocess
import tarfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from testenv.pki import CertificateAuthority
from testenv.registry import Registry
from tests.controller_process import RunningController, condition, controller_fixture
from tests.controller_process import wait_for_object as _wait
from tests.kustomization_helpers import (
    SOURCE_API,
    applied,
    create_ks,
    get_cm,
    request_reconcile,
    secret,
    wait_gone,
    wait_ks,
)
from tidal.kube.client import Kube

pytestmark = pytest.mark.e2e

controller = controller_fixture("--concurrent", "4")

ORIGIN_SOURCE = "https://github.com/example/app"
ORIGIN_REVISION = "main@sha1:4a5b7e8c0d1f2a3b4c5d6e7f8091a2b3c4d5e6f7"
USER, PASSWORD = "alice", "s3cret-pa55"


# -- registries and pushes ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority("tidal-oci-test-ca")


@pytest.fixture(scope="module")
def plain(oci_registry_bin: Path) -> Iterator[Registry]:
    """Anonymous, plain HTTP on loopback."""
    with Registry(binary=oci_registry_bin) as registry:
        yield registry


@pytest.fixture(scope="module")
def secure(oci_registry_bin: Path, ca: CertificateAuthority) -> Iterator[Registry]:
    """HTTPS with a certificate from a private CA, htpasswd basic auth."""
    with Registry(binary=oci_registry_bin, ca=ca, users={USER: PASSWORD}) as registry:
        yield registry


def push(
    flux_bin: Path,
    registry: Registry,
    ref: str,
    directory: Path,
    *,
    revision: str = ORIGIN_REVISION,
    creds: str = "",
    insecure: bool = False,
) -> str:
    """`flux push artifact`; returns the manifest digest flux reports."""
    argv = [str(flux_bin), "push", "artifact", f"{registry.url()}/{ref}", "--path", str(directory)]
    argv += ["--source", ORIGIN_SOURCE, "--revision", revision]
    if creds:
        argv += ["--creds", creds]
    if insecure:
        argv += ["--insecure-registry"]
    env = dict(os.environ)
    if registry.ca is not None:
        cafile = directory.parent / "registry-ca.crt"
        cafile.write_bytes(registry.ca_pem)
        env["SSL_CERT_FILE"] = str(cafile)
    out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    found = re.search(r"@(sha256:[0-9a-f]{64})", out.stdout + out.stderr)
    assert found, out.stderr
    return found.group(1)


def manifests(tmp: Path, name: str, files: dict[str, str]) -> Path:
    root = tmp / name
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def configmap(name: str, value: str) -> str:
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: '{value}'\n"
    )


# -- the object --------------------------------------------------------------------------------


def path_of(namespace: str, name: str) -> str:
    return f"{SOURCE_API}/namespaces/{namespace}/ocirepositories/{name}"


async def create_oci_repo(kube: Kube, namespace: str, name: str, url: str, **spec: Any) -> str:
    body = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "OCIRepository",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"url": url, "interval": "10m", **spec},
    }
    await kube.request("POST", f"{SOURCE_API}/namespaces/{namespace}/ocirepositories", body=body)
    return path_of(namespace, name)


def ready_with(revision: str | None = None) -> Any:
    def check(obj: dict[str, Any]) -> bool:
        ready = condition(obj, "Ready")
        artifact = (obj.get("status") or {}).get("artifact") or {}
        if ready.get("status") != "True" or not artifact:
            return False
        if obj["status"].get("observedGeneration") != obj["metadata"]["generation"]:
            return False
        return revision is None or artifact.get("revision") == revision

    return check


def failing(reason: str, text: str = "") -> Any:
    def check(obj: dict[str, Any]) -> bool:
        ready = condition(obj, "Ready")
        return (
            ready.get("status") == "False"
            and ready.get("reason") == reason
            and text in ready.get("message", "")
        )

    return check


async def wait(
    kube: Kube, path: str, check: Any, what: str, controller: RunningController
) -> dict[str, Any]:
    return await _wait(kube, path, check, what, controller, within=60)


async def download(url: str) -> bytes:
    async with httpx.AsyncClient() as client:
        resp = await client.get(url)
    resp.raise_for_status()
    return resp.content


async def artifact_files(obj: dict[str, Any]) -> dict[str, bytes]:
    data = await download(obj["status"]["artifact"]["url"])
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar:
            if member.isfile():
                f = tar.extractfile(member)
                assert f is not None
                out[member.name] = f.read()
    return out


async def events_of(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    listed = await kube.get(f"/api/v1/namespaces/{namespace}/events")
    return [e for e in listed.get("items", []) if e["involvedObject"].get("name") == name]


def docker_config(host: str, user: str, password: str) -> bytes:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return json.dumps({"auths": {host: {"auth": auth}}}).encode()


# -- tests -------------------------------------------------------------------------------------


async def test_semver_tag_and_digest_refs_and_the_flux_metadata(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    plain: Registry,
    flux_bin: Path,
    tmp_path: Path,
) -> None:
    repo = f"{namespace}/app"
    d1 = push(flux_bin, plain, f"{repo}:1.0.0", manifests(tmp_path, "v1", {"cm.yaml": "a: 1\n"}))
    d2 = push(flux_bin, plain, f"{repo}:1.1.0", manifests(tmp_path, "v2", {"cm.yaml": "a: 2\n"}))
    push(flux_bin, plain, f"{repo}:2.0.0-rc.1", manifests(tmp_path, "v3", {"cm.yaml": "a: 3\n"}))
    push(flux_bin, plain, f"{repo}:not-semver", manifests(tmp_path, "v4", {"cm.yaml": "a: 4\n"}))
    url = plain.url(repo)

    path = await create_oci_repo(kube, namespace, "semver", url, ref={"semver": ">=1.0.0 <2.0.0"})
    obj = await wait(kube, path, ready_with(f"1.1.0@{d2}"), "semver", controller)
    status = obj["status"]
    artifact = status["artifact"]
    assert artifact["path"] == f"ocirepository/{namespace}/semver/{d2}.tar.gz"
    assert artifact["metadata"]["org.opencontainers.image.source"] == ORIGIN_SOURCE
    assert artifact["metadata"]["org.opencontainers.image.revision"] == ORIGIN_REVISION
    assert "org.opencontainers.image.created" in artifact["metadata"]
    assert condition(obj, "Ready")["message"] == f"stored artifact for digest '1.1.0@{d2}'"
    assert condition(obj, "ArtifactInStorage")["reason"] == "Succeeded"
    assert status["url"].endswith(f"ocirepository/{namespace}/semver/latest.tar.gz")
    assert await artifact_files(obj) == {"cm.yaml": b"a: 2\n"}
    events = await events_of(kube, namespace, "semver")
    assert any(
        e["reason"] == "NewArtifact"
        and e["message"]
        == f"stored artifact with revision '1.1.0@{d2}' from '{url}', origin source "
        f"'{ORIGIN_SOURCE}', origin revision '{ORIGIN_REVISION}'"
        for e in events
    ), [e["message"] for e in events]

    # A tag; a digest (its revision is the digest alone).
    path = await create_oci_repo(kube, namespace, "tag", url, ref={"tag": "1.0.0"})
    await wait(kube, path, ready_with(f"1.0.0@{d1}"), "tag", controller)
    path = await create_oci_repo(kube, namespace, "digest", url, ref={"digest": d1})
    obj = await wait(kube, path, ready_with(d1), "digest", controller)
    assert await artifact_files(obj) == {"cm.yaml": b"a: 1\n"}

    # A new tag inside the range moves the semver object on.
    d5 = push(flux_bin, plain, f"{repo}:1.2.0", manifests(tmp_path, "v5", {"cm.yaml": "a: 5\n"}))
    semver_path = path_of(namespace, "semver")
    await request_reconcile(kube, semver_path, "new-tag")
    await wait(kube, semver_path, ready_with(f"1.2.0@{d5}"), "the new tag", controller)


async def test_semver_filter_and_latest_by_default(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    plain: Registry,
    flux_bin: Path,
    tmp_path: Path,
) -> None:
    repo = f"{namespace}/app"
    push(flux_bin, plain, f"{repo}:1.0.0", manifests(tmp_path, "a", {"x.yaml": "x: 1\n"}))
    dev = push(flux_bin, plain, f"{repo}:1.1.0-dev.1", manifests(tmp_path, "b", {"x.yaml": "2\n"}))
    latest = push(flux_bin, plain, f"{repo}:latest", manifests(tmp_path, "c", {"x.yaml": "3\n"}))
    url = plain.url(repo)
    path = await create_oci_repo(
        kube, namespace, "dev", url, ref={"semver": ">=0.0.0-0", "semverFilter": ".*-dev.*"}
    )
    await wait(kube, path, ready_with(f"1.1.0-dev.1@{dev}"), "filtered semver", controller)
    path = await create_oci_repo(kube, namespace, "latest", url)
    await wait(kube, path, ready_with(f"latest@{latest}"), "latest", controller)


async def test_basic_auth_over_https_with_a_private_ca(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    secure: Registry,
    flux_bin: Path,
    tmp_path: Path,
) -> None:
    repo = f"{namespace}/private"
    digest = push(
        flux_bin,
        secure,
        f"{repo}:v1",
        manifests(tmp_path, "p", {"cm.yaml": configmap("p", "1")}),
        creds=f"{USER}:{PASSWORD}",
    )
    await secret(kube, namespace, "ca", {"ca.crt": secure.ca_pem})
    await kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/secrets",
        body={
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "creds"},
            "data": {
                ".dockerconfigjson": base64.b64encode(
                    docker_config(secure.host, USER, PASSWORD)
                ).decode()
            },
        },
    )
    url = secure.url(repo)
    path = await create_oci_repo(
        kube,
        namespace,
        "private",
        url,
        ref={"tag": "v1"},
        secretRef={"name": "creds"},
        certSecretRef={"name": "ca"},
    )
    obj = await wait(kube, path, ready_with(f"v1@{digest}"), "Ready with credentials", controller)
    assert await artifact_files(obj) == {"cm.yaml": configmap("p", "1").encode()}

    # Without credentials: refused, and the reason says so.
    path = await create_oci_repo(
        kube, namespace, "anonymous", url, ref={"tag": "v1"}, certSecretRef={"name": "ca"}
    )
    obj = await wait(
        kube, path, failing("OCIArtifactPullFailed", "UNAUTHORIZED"), "unauthorized", controller
    )
    assert condition(obj, "FetchFailed")["message"].startswith(
        "failed to determine artifact digest: "
    )

    # Wrong credentials: the same, and the password is nowhere to be seen.
    await kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/secrets",
        body={
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "wrong"},
            "stringData": {".dockerconfigjson": docker_config(secure.host, USER, "nope").decode()},
        },
    )
    path = await create_oci_repo(
        kube,
        namespace,
        "wrong",
        url,
        ref={"tag": "v1"},
        secretRef={"name": "wrong"},
        certSecretRef={"name": "ca"},
    )
    obj = await wait(kube, path, failing("OCIArtifactPullFailed"), "bad credentials", controller)
    events = await events_of(kube, namespace, "wrong")
    seen = json.dumps(obj) + json.dumps(events) + controller.logs()
    assert "nope" not in seen.replace("nope\\", "")  # the wrong password never shows
    assert PASSWORD not in seen

    # Without the CA the registry's certificate is not trusted.
    path = await create_oci_repo(
        kube, namespace, "no-ca", url, ref={"tag": "v1"}, secretRef={"name": "creds"}
    )
    await wait(kube, path, failing("OCIArtifactPullFailed", "certificate"), "untrusted", controller)


def _lan_ip() -> str | None:
    """An address of this machine that is not loopback (or None): a registry there is not
    reachable over plain HTTP unless `insecure` says so."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            ip: str = s.getsockname()[0]
    except OSError:
        return None
    return None if ip.startswith("127.") else ip


async def test_insecure_allows_a_plain_http_registry(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    oci_registry_bin: Path,
    flux_bin: Path,
    tmp_path: Path,
) -> None:
    ip = _lan_ip()
    if ip is None:
        pytest.skip("no non-loopback address to serve a plain-HTTP registry on")
    with Registry(binary=oci_registry_bin, bind=ip) as registry:
        repo = f"{namespace}/app"
        digest = push(
            flux_bin,
            registry,
            f"{repo}:1.0.0",
            manifests(tmp_path, "a", {"x.yaml": "x: 1\n"}),
            insecure=True,
        )
        url = registry.url(repo)
        path = await create_oci_repo(kube, namespace, "tls", url, ref={"tag": "1.0.0"})
        await wait(kube, path, failing("OCIArtifactPullFailed"), "https refused", controller)
        path = await create_oci_repo(
            kube, namespace, "insecure", url, ref={"tag": "1.0.0"}, insecure=True
        )
        await wait(kube, path, ready_with(f"1.0.0@{digest}"), "insecure", controller)


def _layer_blob(registry: Registry, repo: str, digest: str) -> bytes:
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    base = f"{registry.scheme}://{registry.host}/v2/{repo}"
    request = urllib.request.Request(f"{base}/manifests/{digest}", headers=accept)  # noqa: S310
    with urllib.request.urlopen(request) as r:  # noqa: S310 - the loopback test registry
        manifest = json.load(r)
    layer = manifest["layers"][0]
    assert layer["mediaType"] == "application/vnd.cncf.flux.content.v1.tar+gzip"
    with urllib.request.urlopen(f"{base}/blobs/{layer['digest']}") as r:  # noqa: S310
        data: bytes = r.read()
    return data


async def test_copy_ignore_rules_and_layer_selector_changes(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    plain: Registry,
    flux_bin: Path,
    tmp_path: Path,
) -> None:
    repo = f"{namespace}/app"
    files = {
        "deploy/cm.yaml": "a: 1\n",
        "docs/readme.md": "hello\n",
        "notes.txt": "notes\n",
        ".sourceignore": "*.md\n",
    }
    digest = push(flux_bin, plain, f"{repo}:1.0.0", manifests(tmp_path, "a", files))
    url = plain.url(repo)
    flux_layer = "application/vnd.cncf.flux.content.v1.tar+gzip"

    # copy: the layer's bytes, as the registry holds them.
    path = await create_oci_repo(
        kube,
        namespace,
        "copy",
        url,
        ref={"tag": "1.0.0"},
        layerSelector={"mediaType": flux_layer, "operation": "copy"},
    )
    obj = await wait(kube, path, ready_with(f"1.0.0@{digest}"), "copy", controller)
    assert await download(obj["status"]["artifact"]["url"]) == _layer_blob(plain, repo, digest)
    assert obj["status"]["observedLayerSelector"] == {"mediaType": flux_layer, "operation": "copy"}

    # Switching to extract rebuilds the same revision, with the .sourceignore rules.
    first = obj["status"]["artifact"]
    await kube.patch(path, {"spec": {"layerSelector": {"operation": "extract"}}})
    obj = await wait(
        kube,
        path,
        lambda o: (
            ready_with(f"1.0.0@{digest}")(o)
            and o["status"]["artifact"]["digest"] != first["digest"]
        ),
        "extract",
        controller,
    )
    assert sorted(await artifact_files(obj)) == [".sourceignore", "deploy/cm.yaml", "notes.txt"]

    # spec.ignore adds to it, and its change alone rebuilds the artifact.
    await kube.patch(path, {"spec": {"ignore": "*.txt\n"}})
    obj = await wait(
        kube,
        path,
        lambda o: ready_with()(o) and (o.get("status") or {}).get("observedIgnore") == "*.txt\n",
        "ignore",
        controller,
    )
    assert sorted(await artifact_files(obj)) == [".sourceignore", "deploy/cm.yaml"]

    # A media type the artifact lacks.
    path = await create_oci_repo(
        kube,
        namespace,
        "nolayer",
        url,
        ref={"tag": "1.0.0"},
        layerSelector={"mediaType": "application/vnd.example.none"},
    )
    await wait(
        kube,
        path,
        failing(
            "OCIArtifactLayerOperationFailed",
            "failed to find layer with media type 'application/vnd.example.none' in artifact",
        ),
        "missing layer",
        controller,
    )


async def test_missing_tag_bad_url_and_deletion(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    plain: Registry,
    flux_bin: Path,
    tmp_path: Path,
) -> None:
    repo = f"{namespace}/app"
    digest = push(flux_bin, plain, f"{repo}:1.0.0", manifests(tmp_path, "a", {"x.yaml": "1\n"}))
    url = plain.url(repo)
    path = await create_oci_repo(kube, namespace, "missing", url, ref={"tag": "nope"})
    obj = await wait(
        kube, path, failing("OCIArtifactPullFailed", "MANIFEST_UNKNOWN"), "no tag", controller
    )
    assert condition(obj, "FetchFailed")["status"] == "True"

    path = await create_oci_repo(kube, namespace, "badurl", f"{url}:1.0.0")
    obj = await wait(kube, path, failing("URLInvalid"), "invalid URL", controller)
    assert condition(obj, "Stalled")["status"] == "True"
    assert "URL must not contain a tag; remove ':1.0.0'" in condition(obj, "Ready")["message"]

    path = await create_oci_repo(kube, namespace, "aws", url, provider="aws")
    obj = await wait(kube, path, failing("UnsupportedConfiguration"), "aws", controller)
    assert condition(obj, "Ready")["message"] == "spec.provider 'aws' not supported by tidal yet"

    # Keyless cosign and notation are not checked yet: stalled, never reported verified.
    for name, verify, what in (
        ("keyless", {"provider": "cosign"}, "cosign keyless"),
        ("notation", {"provider": "notation", "secretRef": {"name": "k"}}, "notation"),
    ):
        path = await create_oci_repo(kube, namespace, name, url, verify=verify)
        obj = await wait(kube, path, failing("VerificationError"), name, controller)
        assert condition(obj, "SourceVerified")["status"] == "False"
        assert condition(obj, "Stalled")["status"] == "True"
        assert condition(obj, "Ready")["message"] == (
            f"failed to verify the signature using provider '{what}': {what} verification is "
            "not supported by tidal yet"
        )
        assert "artifact" not in obj["status"]

    path = await create_oci_repo(kube, namespace, "gone", url, ref={"tag": "1.0.0"})
    obj = await wait(kube, path, ready_with(f"1.0.0@{digest}"), "Ready", controller)
    assert obj["metadata"]["finalizers"] == ["finalizers.fluxcd.io"]
    await kube.request("DELETE", path)
    await wait_gone(kube, path)
    assert not (controller.storage / "ocirepository" / namespace / "gone").exists()


async def test_kustomization_applies_an_oci_artifact_and_follows_new_tags(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    plain: Registry,
    flux_bin: Path,
    tmp_path: Path,
) -> None:
    repo = f"{namespace}/manifests"
    d1 = push(
        flux_bin,
        plain,
        f"{repo}:1.0.0",
        manifests(tmp_path, "v1", {"app/cm.yaml": configmap("greeting", "hello")}),
    )
    source = await create_oci_repo(
        kube, namespace, "manifests", plain.url(repo), ref={"semver": "1.x"}
    )
    await create_ks(
        kube,
        namespace,
        "app",
        path="./app",
        targetNamespace=namespace,
        sourceRef={"kind": "OCIRepository", "name": "manifests"},
    )
    obj = await wait_ks(kube, namespace, "app", applied(f"1.0.0@{d1}"), "apply", controller, 60)
    assert obj["status"]["lastAppliedOriginRevision"] == ORIGIN_REVISION
    cm = await get_cm(kube, namespace, "greeting")
    assert cm is not None and cm["data"] == {"value": "hello"}

    # A new tag in the range: the source moves, and its watch wakes the Kustomization (whose
    # own interval is 10m).
    new_origin = "main@sha1:" + "b" * 40
    d2 = push(
        flux_bin,
        plain,
        f"{repo}:1.1.0",
        manifests(tmp_path, "v2", {"app/cm.yaml": configmap("greeting", "bonjour")}),
        revision=new_origin,
    )
    await request_reconcile(kube, source, "new-tag")
    obj = await wait_ks(kube, namespace, "app", applied(f"1.1.0@{d2}"), "update", controller, 60)
    assert obj["status"]["lastAppliedOriginRevision"] == new_origin
    cm = await get_cm(kube, namespace, "greeting")
    assert cm is not None and cm["data"] == {"value": "bonjour"}


async def test_bearer_token_auth_through_the_registry_s_token_service(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    oci_registry_bin: Path,
    ca: CertificateAuthority,
    flux_bin: Path,
    tmp_path: Path,
) -> None:
    with Registry(binary=oci_registry_bin, ca=ca, users={USER: PASSWORD}, token=True) as reg:
        assert reg.token_server is not None
        repo = f"{namespace}/app"
        digest = push(
            flux_bin,
            reg,
            f"{repo}:1.0.0",
            manifests(tmp_path, "a", {"x.yaml": "x: 1\n"}),
            creds=f"{USER}:{PASSWORD}",
        )
        await secret(kube, namespace, "ca", {"ca.crt": reg.ca_pem})
        await secret(
            kube, namespace, "pull", {".dockerconfigjson": docker_config(reg.host, USER, PASSWORD)}
        )
        url = reg.url(repo)
        reg.token_server.requests.clear()
        path = await create_oci_repo(
            kube,
            namespace,
            "token",
            url,
            ref={"tag": "1.0.0"},
            secretRef={"name": "pull"},
            certSecretRef={"name": "ca"},
        )
        await wait(kube, path, ready_with(f"1.0.0@{digest}"), "Ready with a token", controller)
        assert (USER, (f"repository:{repo}:pull",)) in reg.token_server.requests

        # Anonymous: the token service hands out a token with no access, the registry refuses.
        path = await create_oci_repo(
            kube, namespace, "anonymous", url, ref={"tag": "1.0.0"}, certSecretRef={"name": "ca"}
        )
        await wait(
            kube, path, failing("OCIArtifactPullFailed", "UNAUTHORIZED"), "refused", controller
        )


@pytest.fixture(scope="module")
def cosign_bin() -> Path:
    """The real cosign CLI (testenv.cosign), built from its pinned Go module when missing."""
    from testenv import cosign

    return cosign.build_cosign()


async def test_cosign_signatures_are_verified_with_public_keys(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    plain: Registry,
    flux_bin: Path,
    cosign_bin: Path,
    tmp_path: Path,
) -> None:
    from testenv import cosign

    repo = f"{namespace}/signed"
    signed = push(flux_bin, plain, f"{repo}:1.0.0", manifests(tmp_path, "a", {"x.yaml": "1\n"}))
    unsigned = push(flux_bin, plain, f"{repo}:1.1.0", manifests(tmp_path, "b", {"x.yaml": "2\n"}))
    key, pub = await asyncio.to_thread(cosign.generate_key_pair, cosign_bin, tmp_path / "keys")
    _, other_pub = await asyncio.to_thread(cosign.generate_key_pair, cosign_bin, tmp_path / "other")
    await asyncio.to_thread(cosign.sign, cosign_bin, key, f"{plain.host}/{repo}@{signed}")
    await secret(kube, namespace, "cosign-pub", {"cosign.pub": pub.read_bytes()})
    await secret(kube, namespace, "other-pub", {"cosign.pub": other_pub.read_bytes()})
    url = plain.url(repo)
    verify = {"provider": "cosign", "secretRef": {"name": "cosign-pub"}}

    path = await create_oci_repo(
        kube, namespace, "signed", url, ref={"tag": "1.0.0"}, verify=verify
    )
    obj = await wait(kube, path, ready_with(f"1.0.0@{signed}"), "verified", controller)
    verified = condition(obj, "SourceVerified")
    assert (verified["status"], verified["reason"]) == ("True", "Succeeded")
    assert verified["message"] == f"verified signature of revision 1.0.0@{signed}"
    assert obj["status"]["sourceVerificationFingerprint"].startswith("sha256:")

    # Not signed, or signed by another key: no artifact, and the reason says why.
    for name, tag, digest, keys in (
        ("unsigned", "1.1.0", unsigned, "cosign-pub"),
        ("other-key", "1.0.0", signed, "other-pub"),
    ):
        path = await create_oci_repo(
            kube,
            namespace,
            name,
            url,
            ref={"tag": tag},
            verify={"provider": "cosign", "secretRef": {"name": keys}},
        )
        obj = await wait(kube, path, failing("VerificationError"), name, controller)
        assert condition(obj, "Ready")["message"] == (
            "failed to verify the signature using provider 'cosign': no matching signatures "
            f"were found for '{plain.host}/{repo}@{digest}'"
        )
        assert condition(obj, "SourceVerified")["status"] == "False"
        assert "artifact" not in obj["status"]


async def test_through_an_authenticating_proxy(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    secure: Registry,
    flux_bin: Path,
    tmp_path: Path,
) -> None:
    from testenv.proxy import ConnectProxy

    repo = f"{namespace}/app"
    digest = push(
        flux_bin,
        secure,
        f"{repo}:1.0.0",
        manifests(tmp_path, "a", {"x.yaml": "1\n"}),
        creds=f"{USER}:{PASSWORD}",
    )
    with ConnectProxy(username="proxy-user", password="proxy-pass") as proxy:
        await secret(kube, namespace, "ca", {"ca.crt": secure.ca_pem})
        await secret(
            kube,
            namespace,
            "pull",
            {".dockerconfigjson": docker_config(secure.host, USER, PASSWORD)},
        )
        await secret(
            kube,
            namespace,
            "proxy",
            {"address": proxy.url, "username": "proxy-user", "password": "proxy-pass"},
        )
        path = await create_oci_repo(
            kube,
            namespace,
            "proxied",
            secure.url(repo),
            ref={"tag": "1.0.0"},
            secretRef={"name": "pull"},
            certSecretRef={"name": "ca"},
            proxySecretRef={"name": "proxy"},
        )
        await wait(kube, path, ready_with(f"1.0.0@{digest}"), "through the proxy", controller)
        tunnels = [r for r in proxy.requests() if r.target == secure.host]
        assert tunnels and all(r.user == "proxy-user" and r.status == 200 for r in tunnels)
