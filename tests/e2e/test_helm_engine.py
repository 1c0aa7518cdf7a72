"""tidal.helm against the real helm CLI (same Helm version as the SDK) and the test plane:
renders equal `helm template`, and releases written by one are read by the other."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.plugin import Cluster
from tests.unit.test_helm_charts import (
    PODINFO,
    package_dir,
    parent_chart,
    required_chart,
    schema_chart,
)
from tidal.kube.client import Kube

pytest.importorskip("helm_python")

from tidal.helm import capabilities, storage
from tidal.helm.chart import load_chart
from tidal.helm.render import Rendered, RenderError, render

pytestmark = pytest.mark.e2e

# podinfo's test Pods carry `randAlphaNum 5` suffixes; they differ on every render.
_RANDOM = re.compile(r"(-test-)[a-z0-9]{5}\b")


def _template_output(r: Rendered) -> str:
    """What `helm template` prints for a release: its manifest, then its hooks."""
    out = r.manifest.strip() + "\n"
    for h in r.hooks:
        out += f"---\n# Source: {h.path}\n{h.manifest}\n"
    return out


def _helm(helm_bin: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([str(helm_bin), *args], capture_output=True, text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {p.stderr}")
    return p


def _compare(
    helm_bin: Path,
    tmp_path: Path,
    archive: bytes,
    set_args: list[str],
    values: dict[str, Any],
    **caps: Any,
) -> None:
    tgz = tmp_path / "chart.tgz"
    tgz.write_bytes(archive)
    args = ["template", "rel", str(tgz), "-n", "apps", *set_args]
    if caps.get("kube_version"):
        args += ["--kube-version", caps["kube_version"]]
    for a in caps.get("api_versions", ()):
        args += ["--api-versions", a]
    want = _helm(helm_bin, *args).stdout
    got = render(
        load_chart(archive),
        values,
        release_name="rel",
        namespace="apps",
        revision=1,
        is_install=True,
        is_upgrade=False,
        **caps,
    )
    assert _RANDOM.sub(r"\1x", _template_output(got)) == _RANDOM.sub(r"\1x", want)


def test_podinfo_default_values_equal_helm_template(helm_bin: Path, tmp_path: Path) -> None:
    _compare(helm_bin, tmp_path, package_dir(PODINFO), [], {})


def test_podinfo_non_default_values_equal_helm_template(helm_bin: Path, tmp_path: Path) -> None:
    values = {
        "replicaCount": 3,
        "hpa": {"enabled": True},
        "ingress": {"enabled": True},
        "redis": {"enabled": True},
        "serviceMonitor": {"enabled": True},
        "certificate": {"create": True},
        "hooks": {"postUpgrade": {"enabled": True}},
        "ui": {"message": "hello <b>&</b> 'quoted'"},
    }
    values_file = tmp_path / "values.yaml"
    import json

    values_file.write_text(json.dumps(values))
    _compare(helm_bin, tmp_path, package_dir(PODINFO), ["-f", str(values_file)], values)


@pytest.mark.parametrize(
    ("caps"),
    [
        {},
        {"kube_version": "v1.31.4", "api_versions": ["example.com/v1", "example.com/v1/Widget"]},
    ],
)
def test_parent_chart_equal_helm_template(
    helm_bin: Path, tmp_path: Path, caps: dict[str, Any]
) -> None:
    """Subchart with override and globals, library chart, disabled subchart, hooks, NOTES,
    crds/, Capabilities."""
    _compare(helm_bin, tmp_path, parent_chart(), ["--set", "replicas=4"], {"replicas": 4}, **caps)


def test_notes_and_crds_match_helm(helm_bin: Path, tmp_path: Path) -> None:
    tgz = tmp_path / "parent.tgz"
    tgz.write_bytes(parent_chart())
    with_crds = _helm(helm_bin, "template", "rel", str(tgz), "-n", "apps", "--include-crds").stdout
    got = render(
        load_chart(parent_chart()), {}, release_name="rel", namespace="apps", revision=1,
        is_install=True, is_upgrade=False,
    )  # fmt: skip
    crd_text = "".join(f"---\n# Source: {name}\n{text}\n" for name, text in got.crds)
    assert with_crds.startswith(crd_text)
    assert got.notes == "Installed rel in apps (prod).\n"


def _helm_error(helm_bin: Path, archive: bytes, tmp_path: Path, *args: str) -> str:
    tgz = tmp_path / "c.tgz"
    tgz.write_bytes(archive)
    p = _helm(helm_bin, "template", "x", str(tgz), *args, check=False)
    assert p.returncode != 0
    return p.stderr.splitlines()[0].removeprefix("Error: ")


def test_required_failure_message_is_helms(helm_bin: Path, tmp_path: Path) -> None:
    want = _helm_error(helm_bin, required_chart(), tmp_path)
    with pytest.raises(RenderError) as e:
        render(load_chart(required_chart()), {}, release_name="x", namespace="default",
               revision=1, is_install=True, is_upgrade=False)  # fmt: skip
    assert str(e.value).splitlines()[0] == want
    assert "image.tag is required" in want


def test_schema_violation_message_is_helms(helm_bin: Path, tmp_path: Path) -> None:
    tgz = tmp_path / "c.tgz"
    tgz.write_bytes(schema_chart())
    p = _helm(helm_bin, "template", "x", str(tgz), "--set", "replicas=0", check=False)
    with pytest.raises(RenderError) as e:
        render(load_chart(schema_chart()), {"replicas": 0}, release_name="x",
               namespace="default", revision=1, is_install=True, is_upgrade=False)  # fmt: skip
    assert p.stderr.removeprefix("Error: ").strip() == str(e.value).strip()
    assert "minimum: got 0, want 1" in str(e.value)


def test_kube_version_constraint_is_checked() -> None:
    with pytest.raises(RenderError, match=r"chart requires kubeVersion: >=1\.20\.0-0 which is"):
        render(load_chart(parent_chart()), {}, release_name="x", namespace="default",
               revision=1, is_install=True, is_upgrade=False, kube_version="v1.19.0")  # fmt: skip


# --- storage, both directions through the plane -------------------------------------------


async def test_tidal_release_reads_in_helm_cli(
    helm_bin: Path, cluster: Cluster, kube: Kube, namespace: str
) -> None:
    kc = str(cluster.kubeconfig)
    kv, av = await capabilities.discover(kube)
    chart = load_chart(parent_chart())
    common = {"release_name": "web", "namespace": namespace, "kube_version": kv,
              "api_versions": av}  # fmt: skip
    r1 = render(chart, {"replicas": 3}, revision=1, is_install=True, is_upgrade=False, **common)
    rel1 = storage.new_release(chart, r1, name="web", namespace=namespace, version=1,
                               status=storage.DEPLOYED, description="Install complete")  # fmt: skip
    await storage.create(kube, rel1)
    # An upgrade: the old revision is superseded (Update), the new one created.
    rel1.info.status = storage.SUPERSEDED
    await storage.update(kube, rel1)
    r2 = render(chart, {"replicas": 5, "note": "<&>"}, revision=2, is_install=False,
                is_upgrade=True, **common)  # fmt: skip
    rel2 = storage.new_release(chart, r2, name="web", namespace=namespace, version=2,
                               status=storage.DEPLOYED, description="Upgrade complete",
                               first_deployed=rel1.info.first_deployed)  # fmt: skip
    await storage.create(kube, rel2)

    base = ["-n", namespace, "--kubeconfig", kc]
    listed = _helm(helm_bin, "list", *base, "-o", "json").stdout
    import json

    (row,) = json.loads(listed)
    assert (row["name"], row["revision"], row["status"], row["chart"], row["app_version"]) == (
        "web", "2", "deployed", "parent-0.3.0", "2.0",
    )  # fmt: skip
    hist = json.loads(_helm(helm_bin, "history", "web", *base, "-o", "json").stdout)
    assert [(h["revision"], h["status"], h["description"]) for h in hist] == [
        (1, "superseded", "Install complete"),
        (2, "deployed", "Upgrade complete"),
    ]
    assert _helm(helm_bin, "get", "manifest", "web", *base).stdout == r2.manifest + "\n"
    got_values = json.loads(_helm(helm_bin, "get", "values", "web", *base, "-o", "json").stdout)
    assert got_values == {"replicas": 5, "note": "<&>"}
    v1 = json.loads(
        _helm(helm_bin, "get", "values", "web", *base, "--revision", "1", "-o", "json").stdout
    )
    assert v1 == {"replicas": 3}
    notes = _helm(helm_bin, "get", "notes", "web", *base).stdout
    assert f"Installed web in {namespace} (prod)." in notes
    hooks = _helm(helm_bin, "get", "hooks", "web", *base).stdout
    assert "name: web-migrate" in hooks

    secret = await kube.get(f"/api/v1/namespaces/{namespace}/secrets/sh.helm.release.v1.web.v2")
    assert secret["type"] == "helm.sh/release.v1"
    assert {k: v for k, v in secret["metadata"]["labels"].items() if k != "createdAt"} == {
        "name": "web", "owner": "helm", "status": "deployed", "version": "2",
    }  # fmt: skip
    old = await kube.get(f"/api/v1/namespaces/{namespace}/secrets/sh.helm.release.v1.web.v1")
    assert "modifiedAt" in old["metadata"]["labels"]


async def test_helm_install_reads_in_tidal(
    helm_bin: Path, cluster: Cluster, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    tgz = tmp_path / "needs.tgz"
    tgz.write_bytes(schema_chart())
    base = ["-n", namespace, "--kubeconfig", str(cluster.kubeconfig)]
    _helm(helm_bin, "install", "db", str(tgz), "--set", "replicas=2", *base)
    _helm(helm_bin, "upgrade", "db", str(tgz), "--set", "replicas=3", *base)
    manifest = _helm(helm_bin, "get", "manifest", "db", *base).stdout
    hist = await storage.history(kube, namespace, "db")
    assert [(r.version, r.info.status) for r in hist] == [(1, "superseded"), (2, "deployed")]
    latest = hist[-1]
    assert latest.manifest + "\n" == manifest
    assert latest.config == {"replicas": 3}
    assert latest.chart["metadata"]["name"] == "strict"
    assert latest.info.description == "Upgrade complete"
    assert storage.parse_go_time(latest.info.last_deployed) is not None
    # Re-encoding what Helm wrote gives JSON Helm's decoder reads to the same release.
    assert storage.decode_release(storage.encode_release(latest)) == latest
    # tidal's render of the same chart and values gives Helm's stored manifest.
    kv, av = await capabilities.discover(kube)
    ours = render(load_chart(schema_chart()), {"replicas": 3}, release_name="db",
                  namespace=namespace, revision=2, is_install=False, is_upgrade=True,
                  kube_version=kv, api_versions=av)  # fmt: skip
    assert ours.manifest == latest.manifest


async def test_prune_history_keeps_the_deployed_revision(
    helm_bin: Path, cluster: Cluster, kube: Kube, namespace: str
) -> None:
    chart = load_chart(required_chart())
    rendered = render(chart, {"image": {"tag": "1"}}, release_name="p", namespace=namespace,
                      revision=1, is_install=True, is_upgrade=False)  # fmt: skip
    statuses = {1: "superseded", 2: "deployed", 3: "failed", 4: "failed"}
    for v, status in statuses.items():
        rel = storage.new_release(chart, rendered, name="p", namespace=namespace, version=v,
                                  status=status, description="x")  # fmt: skip
        await storage.create(kube, rel)
    # Helm's Create with maxHistory 3 makes room for one more: keep 2, never the deployed one.
    rel5 = storage.new_release(chart, rendered, name="p", namespace=namespace, version=5,
                               status="failed", description="x")  # fmt: skip
    await storage.create(kube, rel5, max_history=3)
    left = [r.version for r in await storage.history(kube, namespace, "p")]
    assert left == [2, 4, 5]
    hist = _helm(helm_bin, "history", "p", "-n", namespace, "--kubeconfig",
                 str(cluster.kubeconfig)).stdout  # fmt: skip
    assert [line.split()[0] for line in hist.splitlines()[1:]] == ["2", "4", "5"]
