"""`tidal export --all` (beyond flux): every Flux object of every kind in one stream, sources
first, each document exactly what flux's per-kind `export --all` prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_process import flux, needs_flux, tidal
from tests.e2e.test_cli_kustomizations import kustomization
from tests.e2e.test_cli_sources import create, git_repository
from tests.kustomization_helpers import secret
from tests.plugin import Cluster
from tidal.cli.objects import GIT_REPOSITORY, KUSTOMIZATION
from tidal.kube import yamlio
from tidal.kube.client import Kube

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds")]


@needs_flux
async def test_export_all_is_flux_s_exports_of_every_kind_together(
    kube: Kube, namespace: str, cluster: Cluster, flux_bin: Path
) -> None:
    await secret(kube, namespace, "auth", {"username": "git", "password": "s3cret"})
    await create(
        kube, GIT_REPOSITORY, git_repository(namespace, "repo", secretRef={"name": "auth"})
    )
    await create(kube, GIT_REPOSITORY, git_repository(namespace, "infra"))
    await create(kube, KUSTOMIZATION, kustomization(namespace, "apps", path="./apps"))
    k = cluster.kubeconfig

    ours = await tidal(k, "export", "--all", "--with-credentials", "-n", namespace)
    assert ours.code == 0, ours.stderr
    sources = await flux(
        flux_bin, k, "export", "source", "git", "--all", "--with-credentials", "-n", namespace
    )
    kustomizations = await flux(flux_bin, k, "export", "ks", "--all", "-n", namespace)
    assert ours.stdout == sources.stdout + kustomizations.stdout
    kinds = [(d["kind"], d["metadata"]["name"]) for d in yamlio.load_all(ours.stdout, source="out")]
    assert kinds == [
        ("GitRepository", "infra"),
        ("GitRepository", "repo"),
        ("Secret", "auth"),
        ("Kustomization", "apps"),
    ]

    # -A: every namespace, each object with its own namespace (and its own Secret).
    everywhere = await tidal(k, "export", "--all", "-A")
    assert everywhere.code == 0, everywhere.stderr
    docs = yamlio.load_all(everywhere.stdout, source="out")
    assert {
        (d["kind"], d["metadata"]["name"]) for d in docs if d["metadata"]["namespace"] == namespace
    } == {
        ("GitRepository", "infra"),
        ("GitRepository", "repo"),
        ("Kustomization", "apps"),
    }


async def test_export_needs_a_kind_or_all(cluster: Cluster, namespace: str) -> None:
    empty = await tidal(cluster.kubeconfig, "export", "--all", "-n", namespace)
    assert (empty.code, empty.stderr) == (1, f"✗ no objects found in {namespace} namespace\n")
    bare = await tidal(cluster.kubeconfig, "export")
    assert bare.code == 1
    assert "a kind or --all is required" in bare.stderr
