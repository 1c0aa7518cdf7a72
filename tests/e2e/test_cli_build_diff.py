"""`tidal build|diff|tree kustomization` against a real API server, compared with the flux v2.9.5
CLI run on the same cluster and directory (stdout, stderr and exit status byte for byte).

The test plays kustomize-controller's part: it applies the built objects server-side as
`kustomize-controller` and writes the inventory into the Kustomization's status.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from testenv import flux_cli
from tests.cli_process import Out, assert_same, flux, tidal
from tests.kustomization_helpers import create_cm, create_ks, ks_path
from tests.plugin import Cluster
from tidal.kube import yamlio
from tidal.kube.client import Kube
from tidal.kube.discovery import Discovery, object_path
from tidal.kustomize.inventory import ObjRef
from tidal.ssa import objects as o

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]

CONFIG = """apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  color: ${color:=blue}
  size: "{size}"
"""
OTHER = """apiVersion: v1
kind: ConfigMap
metadata:
  name: other
data:
  keep: "yes"
"""
SECRET = """apiVersion: v1
kind: Secret
metadata:
  name: creds
stringData:
  password: {password}
"""


async def same_as_flux(cluster: Cluster, *args: str) -> Out:
    """Run both CLIs; when the flux binary is built, their outputs must be identical."""
    ours = await tidal(cluster.kubeconfig, *args)
    if flux_cli.is_built():
        assert_same(ours, await flux(flux_cli.flux_path(), cluster.kubeconfig, *args))
    return ours


def write_dir(directory: Path, *, size: str = "1", value: str = "s3cret") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(CONFIG.replace("{size}", size))
    (directory / "other.yaml").write_text(OTHER)
    (directory / "secret.yaml").write_text(SECRET.replace("{password}", value))


async def create_kustomization(kube: Kube, namespace: str) -> None:
    """The Kustomization "app" (./ of the GitRepository "repo"), substituting from the
    ConfigMap "vars"."""
    substitute = {"substituteFrom": [{"kind": "ConfigMap", "name": "vars"}]}
    await create_ks(
        kube, namespace, "app", path="./", targetNamespace=namespace, postBuild=substitute
    )
    await create_cm(kube, namespace, "vars", {"color": "green"})


async def write_inventory(
    kube: Kube, namespace: str, name: str, entries: list[dict[str, str]]
) -> None:
    """Record `entries` in the Kustomization's status.inventory, as kustomize-controller does."""
    path = ks_path(namespace, name)
    live = await kube.get(path)
    live["status"] = {"inventory": {"entries": entries}}
    await kube.request("PUT", path + "/status", body=live)


async def reconcile_like_the_controller(
    cluster: Cluster, kube: Kube, namespace: str, directory: Path
) -> None:
    """Apply what `tidal build` prints and record it in status.inventory."""
    built = await tidal(cluster.kubeconfig, "build", "kustomization", "app",
                        "--path", str(directory), "-n", namespace)  # fmt: skip
    assert built.code == 0, built.stderr
    objects = yamlio.load_all(built.stdout)
    discovery = Discovery(kube)
    entries = []
    for obj in objects:
        path = object_path(await discovery.for_object(obj), obj)
        await kube.apply(path, obj, field_manager="kustomize-controller", force=True)
        ref = ObjRef(o.namespace(obj), o.name(obj), o.group(obj), o.kind(obj))
        entries.append({"id": ref.id, "v": o.version(obj)})
    await write_inventory(kube, namespace, "app", entries)


@pytest.fixture
async def applied(cluster: Cluster, kube: Kube, namespace: str, tmp_path: Path) -> Path:
    directory = tmp_path / "app"
    write_dir(directory)
    await create_kustomization(kube, namespace)
    await reconcile_like_the_controller(cluster, kube, namespace, directory)
    return directory


async def test_build_reads_the_kustomization_and_substitute_from_the_cluster(
    cluster: Cluster, namespace: str, applied: Path
) -> None:
    out = await same_as_flux(cluster, "build", "ks", "app", "--path", str(applied), "-n", namespace)
    assert out.code == 0
    assert "color: green" in out.stdout  # from the ConfigMap named in substituteFrom
    assert f"kustomize.toolkit.fluxcd.io/namespace: {namespace}" in out.stdout


async def test_diff_without_changes_exits_zero(
    cluster: Cluster, namespace: str, applied: Path
) -> None:
    out = await same_as_flux(cluster, "diff", "ks", "app", "--path", str(applied), "-n", namespace)
    assert (out.code, out.stdout) == (0, "")


async def test_diff_shows_a_drifted_field_and_exits_one(
    cluster: Cluster, namespace: str, applied: Path
) -> None:
    write_dir(applied, size="2", value="changed")
    out = await same_as_flux(cluster, "diff", "ks", "app", "--path", str(applied), "-n", namespace)
    assert out.code == 1
    assert (
        f"► ConfigMap/{namespace}/app-config drifted\n\ndata.size\n± value change\n- 1\n+ 2\n\n"
        in out.stdout
    )
    assert f"► Secret/{namespace}/creds drifted\n" in out.stdout
    assert "changed" not in out.stdout and "s3cret" not in out.stdout  # values masked
    assert out.stderr == "⚠️ identified at least one change, exiting with non-zero exit code\n"


async def test_diff_reports_removed_and_new_objects(
    cluster: Cluster, namespace: str, applied: Path
) -> None:
    (applied / "other.yaml").unlink()
    (applied / "new.yaml").write_text(OTHER.replace("name: other", "name: fresh"))
    out = await same_as_flux(cluster, "diff", "ks", "app", "--path", str(applied), "-n", namespace)
    assert out.code == 1
    assert f"► ConfigMap/{namespace}/fresh created\n" in out.stdout
    assert out.stdout.endswith(f"► ConfigMap/{namespace}/other deleted\n")


async def test_tree_lists_the_inventory(cluster: Cluster, namespace: str, applied: Path) -> None:
    out = await same_as_flux(cluster, "tree", "ks", "app", "-n", namespace)
    assert out.stdout == (
        f"Kustomization/{namespace}/app\n"
        f"├── ConfigMap/{namespace}/app-config\n"
        f"├── ConfigMap/{namespace}/other\n"
        f"└── Secret/{namespace}/creds\n\n"
    )
    await same_as_flux(cluster, "tree", "ks", "app", "-n", namespace, "-o", "json")
    await same_as_flux(cluster, "tree", "ks", "app", "-n", namespace, "-o", "yaml")


async def test_tree_descends_into_nested_kustomizations(
    cluster: Cluster, kube: Kube, namespace: str, applied: Path, tmp_path: Path
) -> None:
    parent = tmp_path / "parent"
    parent.mkdir()
    await create_ks(kube, namespace, "parent", path="./")
    app = ObjRef(namespace, "app", "kustomize.toolkit.fluxcd.io", "Kustomization").id
    await write_inventory(kube, namespace, "parent", [{"id": app, "v": "v1"}])
    out = await same_as_flux(cluster, "tree", "ks", "parent", "-n", namespace, "--compact")
    assert out.stdout == (
        f"Kustomization/{namespace}/parent\n└── Kustomization/{namespace}/app\n\n"
    )
    full = await same_as_flux(cluster, "tree", "ks", "parent", "-n", namespace)
    assert f"    ├── ConfigMap/{namespace}/app-config\n" in full.stdout
    shutil.rmtree(parent)


async def test_missing_kustomization_is_an_error(cluster: Cluster, namespace: str) -> None:
    out = await tidal(cluster.kubeconfig, "diff", "ks", "nope", "--path", "/", "-n", namespace)
    assert out.code == 2
    assert "failed to get kustomization object" in out.stderr


async def test_diff_leaves_out_fields_the_ignore_rules_name(
    cluster: Cluster, kube: Kube, namespace: str, applied: Path
) -> None:
    (applied / "other.yaml").write_text(OTHER.replace('keep: "yes"', 'keep: "no"'))
    out = await same_as_flux(cluster, "diff", "ks", "app", "--path", str(applied), "-n", namespace)
    assert out.code == 1 and f"► ConfigMap/{namespace}/other drifted" in out.stdout
    await kube.patch(
        ks_path(namespace, "app"),
        {"spec": {"ignore": [{"paths": ["/data/keep"], "target": {"kind": "ConfigMap"}}]}},
    )
    out = await same_as_flux(cluster, "diff", "ks", "app", "--path", str(applied), "-n", namespace)
    assert (out.code, out.stdout) == (0, "")
