"""The real flux CLI driving objects that tidal's controller manages: the proof that tidal is
Flux-compatible, not just Flux-shaped.

`tidal controller` runs as a process and reconciles a GitRepository and a Kustomization from a
real Git server; the flux binary, built from its pinned Go module, then gets, reconciles,
suspends, resumes, trees and traces them. Every flux command must succeed and its effect must be
visible in the cluster; where tidal has the same verb, both must print the same bytes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from testenv.git_server import GitHTTPServer
from tests.cli_process import Out, assert_same, flux, needs_flux, tidal
from tests.controller_process import RunningController, controller_fixture
from tests.kustomization_helpers import cm, deployed, get_cm, ks_path
from tests.plugin import Cluster
from tidal.kube.client import Kube

pytestmark = pytest.mark.e2e

controller = controller_fixture()


def ok(out: Out) -> Out:
    assert out.code == 0, f"exit {out.code}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    return out


def short(revision: str) -> str:
    """A revision as `flux get` prints it: hex digests cut to 8 characters."""
    ref, _, digest = revision.partition("@sha1:")
    return f"{ref}@sha1:{digest[:8]}"


@needs_flux
async def test_flux_gets_reconciles_suspends_resumes_and_trees_tidal_s_objects(
    kube: Kube,
    namespace: str,
    cluster: Cluster,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
    flux_bin: Path,
) -> None:
    kubeconfig = cluster.kubeconfig
    repo = git_repo(
        files={
            "apps/a.yaml": cm("a", namespace, color="blue"),
            "apps/b.yaml": cm("b", namespace, size="1"),
        }
    )
    _, revision = await deployed(kube, namespace, "apps", git_http, repo, controller, path="./apps")

    async def both(*args: str) -> Out:
        ours = await tidal(kubeconfig, *args, "-n", namespace)
        theirs = await flux(flux_bin, kubeconfig, *args, "-n", namespace)
        assert_same(ours, theirs)
        return ok(theirs)

    # get: the same table from both CLIs, reading what tidal's controller wrote.
    sources = await both("get", "sources", "git")
    assert sources.stdout.split("\n")[1].split() == [
        "repo",
        short(revision),
        "False",
        "True",
        "stored",
        "artifact",
        "for",
        "revision",
        f"'{short(revision)}'",
    ]
    kustomizations = await both("get", "kustomizations")
    assert kustomizations.stdout.split("\n")[1].split()[:4] == [
        "apps",
        short(revision),
        "False",
        "True",
    ]

    # tree: the inventory tidal recorded, as flux walks it.
    tree = await both("tree", "kustomization", "apps")
    assert tree.stdout == (
        f"Kustomization/{namespace}/apps\n"
        f"├── ConfigMap/{namespace}/a\n"
        f"└── ConfigMap/{namespace}/b\n\n"
    )

    # reconcile --with-source: flux annotates, tidal fetches the new commit and applies it.
    sha = repo.commit({"apps/a.yaml": cm("a", namespace, color="green")}, "recolour")
    out = ok(
        await flux(
            flux_bin, kubeconfig, "reconcile", "ks", "apps", "--with-source", "-n", namespace
        )
    )
    assert out.stderr.splitlines()[-1] == f"✔ applied revision main@sha1:{sha}"
    assert f"✔ fetched revision main@sha1:{sha}" in out.stderr.splitlines()
    a = await get_cm(kube, namespace, "a")
    assert a is not None and a["data"] == {"color": "green"}

    # suspend: tidal's controller stops applying, even when asked to and the source moves on.
    ok(await flux(flux_bin, kubeconfig, "suspend", "ks", "apps", "-n", namespace))
    suspended = await kube.get(ks_path(namespace, "apps"))
    assert suspended["spec"]["suspend"] is True
    sha = repo.commit({"apps/a.yaml": cm("a", namespace, color="red")}, "red")
    out = ok(
        await flux(flux_bin, kubeconfig, "reconcile", "source", "git", "repo", "-n", namespace)
    )
    assert out.stderr.splitlines()[-1] == f"✔ fetched revision main@sha1:{sha}"
    await asyncio.sleep(3)  # time enough for a Kustomization woken by the new artifact to apply
    a = await get_cm(kube, namespace, "a")
    assert a is not None and a["data"] == {"color": "green"}
    table = ok(await flux(flux_bin, kubeconfig, "get", "ks", "apps", "-n", namespace))
    assert table.stdout.split("\n")[1].split()[2] == "True"  # SUSPENDED

    # resume: flux waits for tidal to reconcile the new generation and reports the revision.
    out = ok(await flux(flux_bin, kubeconfig, "resume", "ks", "apps", "-n", namespace))
    assert out.stderr.splitlines()[-1] == f"✔ applied revision main@sha1:{sha}"
    a = await get_cm(kube, namespace, "a")
    assert a is not None and a["data"] == {"color": "red"}

    # trace: from an applied object back to its Kustomization and source revision.
    trace = await both("trace", "configmap", "a")
    fields = [tuple(line.split(None, 1)) for line in trace.stdout.splitlines() if line]
    assert fields[:3] == [
        ("Object:", "ConfigMap/a"),
        ("Namespace:", namespace),
        ("Status:", "Managed by Flux"),
    ]
    assert fields[4:8] == [
        ("Kustomization:", "apps"),
        ("Namespace:", namespace),
        ("Path:", "./apps"),
        ("Revision:", f"main@sha1:{sha}"),
    ]
    assert fields[9] == ("Message:", f"Applied revision: main@sha1:{sha}")
    assert fields[11:16] == [
        ("GitRepository:", "repo"),
        ("Namespace:", namespace),
        ("URL:", git_http.url_for(repo.name)),
        ("Branch:", "main"),
        ("Revision:", f"main@sha1:{sha}"),
    ]
