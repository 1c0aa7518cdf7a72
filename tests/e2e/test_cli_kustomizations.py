"""`tidal` Kustomization verbs against a real API server, compared with the real flux CLI.

Both CLIs run as processes against the same objects; where flux's output is deterministic the
two must be byte-identical (stdout, stderr and exit status). No Kustomization controller runs
here, so waits are exercised by their timeout or by the test playing the controller's part
(writing status). `create`, `resume` and `reconcile [--with-source]` against a running
`tidal controller` still deserve a test, as test_cli_sources has for Git.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.cli_process import Out, assert_same, flux, needs_flux, tidal
from tests.e2e.test_cli_sources import SHA, create, ready_status, wait_for_object, write_status
from tests.plugin import Cluster
from tidal.cli.objects import GIT_REPOSITORY, KUSTOMIZATION, ObjectKind
from tidal.kube import yamlio
from tidal.kube.client import ApiError, Kube

pytestmark = pytest.mark.e2e

REVISION = f"main@sha1:{SHA}"
NOWHERE = Path("/nonexistent/kubeconfig")


def kustomization(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": KUSTOMIZATION.api_version,
        "kind": KUSTOMIZATION.kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "interval": "10m",
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": "repo"},
            **spec,
        },
    }


def applied_status(generation: int, revision: str, **extra: Any) -> dict[str, Any]:
    """What kustomize-controller reports after a successful apply."""
    return {
        "observedGeneration": generation,
        "lastAppliedRevision": revision,
        "lastAttemptedRevision": revision,
        "inventory": {"entries": [{"id": "default_app_apps_Deployment", "v": "v1"}]},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "ReconciliationSucceeded",
                "message": f"Applied revision: {revision}",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "observedGeneration": generation,
            }
        ],
        **extra,
    }


def failed_status(generation: int, message: str) -> dict[str, Any]:
    return {
        "observedGeneration": generation,
        "lastAttemptedRevision": REVISION,
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "BuildFailed",
                "message": message,
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "observedGeneration": generation,
            }
        ],
    }


def requested(obj: dict[str, Any]) -> bool:
    return "reconcile.fluxcd.io/requestedAt" in (obj["metadata"].get("annotations") or {})


# -- create ... --export (no cluster needed) ------------------------------------------------------

EXPORT_CASES = [
    ["--source=podinfo"],
    [
        "--source=OCIRepository/podinfo.apps",
        "--path=apps/../production/",
        "--prune",
        "--wait",
        "--health-check-timeout=3m",
        "--depends-on=infra,platform/crds@dep.status.ready",
        "--depends-on=cert-manager",
        "--target-namespace=default",
        "--label=app=podinfo,tier=web",
        "--retry-interval=30s",
        "--service-account=deployer",
        "--decryption-provider=sops",
        "--decryption-secret=sops-age",
        "--kubeconfig-secret-ref=remote",
        "--interval=10m",
    ],
    [
        "--source=bucket/secrets",
        "--health-check=Deployment/web.apps,HelmRelease/db.apps",
        "--health-check-timeout=90s",
        "-n",
        "tenants",
    ],
    # --wait wins over --health-check
    ["--source=podinfo", "--wait", "--health-check=Deployment/web.apps"],
    ["--source=podinfo", "--path=/abs/../../p", "--interval=1h30m"],
    ["--source=podinfo", "--validation=client"],
    # errors: flag values (in the order given), then the name, then what flux checks itself
    ["--source=GitRepository"],
    ["--source=ExternalArtifact/x"],
    ["--source="],
    ["--source=.ns"],
    ["--decryption-provider=age", "--source=GitRepository"],
    [],
    ["--source=x", "--health-check=Pod/web.apps"],
    ["--source=x", "--health-check=Deployment/web"],
    ["--source=x", "--health-check=Deployment"],
    ["--source=x", "--label=bad"],
]


@needs_flux
@pytest.mark.parametrize("flags", EXPORT_CASES)
async def test_create_kustomization_export_is_flux_s(flux_bin: Path, flags: list[str]) -> None:
    args = ["create", "kustomization", "podinfo", *flags, "--export"]
    assert_same(await tidal(NOWHERE, *args), await flux(flux_bin, NOWHERE, *args))


@needs_flux
@pytest.mark.parametrize(
    "args",
    [
        ["create", "ks", "podinfo", "--source=podinfo", "--export"],
        ["create", "kustomization", "x", "--source=podinfo", "--export"],
        ["create", "kustomization", "--source=podinfo", "--export"],
        ["create", "kustomization", "Bad", "--source=GitRepository", "--export"],
    ],
)
async def test_create_kustomization_alias_and_names_are_flux_s(
    flux_bin: Path,
    args: list[str],
) -> None:
    assert_same(await tidal(NOWHERE, *args), await flux(flux_bin, NOWHERE, *args))


# -- get, export -------------------------------------------------------------------------------


async def _table_objects(kube: Kube, namespace: str) -> None:
    labels = {"tidal-test": namespace}
    await create(
        kube,
        KUSTOMIZATION,
        kustomization(namespace, "apps"),
        applied_status(1, REVISION),
        labels=labels,
    )
    await create(
        kube,
        KUSTOMIZATION,
        kustomization(
            namespace,
            "broken",
            suspend=True,
            sourceRef={"kind": "OCIRepository", "name": "manifests", "namespace": "shared"},
        ),
        failed_status(1, f"kustomize build failed at {SHA}:\n日本 accumulating resources"),
        labels=labels,
        annotations={"reconcile.fluxcd.io/requestedAt": "2026-01-01T00:00:00Z"},
    )
    long_name = kustomization(namespace, "never-reconciled-with-a-long-name")
    await create(kube, KUSTOMIZATION, long_name, labels=labels)


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_get_kustomizations_table_is_flux_s(
    kube: Kube,
    namespace: str,
    cluster: Cluster,
    flux_bin: Path,
) -> None:
    await _table_objects(kube, namespace)
    cases = [
        ["kustomizations", "-n", namespace],
        ["kustomizations", "-n", namespace, "--no-header"],
        ["kustomizations", "-n", namespace, "--show-source"],
        ["ks", "-n", namespace, "--status-selector", "ready=false"],
        ["kustomization", "-n", namespace, "--status-selector", "ready!=true", "--no-header"],
        ["ks", "-n", namespace, "broken", "--show-source"],
        ["ks", "-n", namespace, "missing"],
        ["ks", "-A", "-l", f"tidal-test={namespace}", "--show-source"],
        ["ks", "-A", "-l", f"tidal-test={namespace}", "--no-header"],
        ["ks", "-n", f"{namespace}-none"],
    ]
    for flags in cases:
        args = ["get", *flags]
        ours = await tidal(cluster.kubeconfig, *args)
        assert_same(ours, await flux(flux_bin, cluster.kubeconfig, *args))
    ours = await tidal(cluster.kubeconfig, "get", "ks", "-n", namespace, "--show-source")
    assert f"GitRepository/{namespace}/repo\t{REVISION[:18]}\t" in ours.stdout
    assert "OCIRepository/shared/manifests" in ours.stdout
    assert "waiting to be reconciled" in ours.stdout


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_export_kustomization_is_flux_s(
    kube: Kube,
    namespace: str,
    cluster: Cluster,
    flux_bin: Path,
) -> None:
    await _table_objects(kube, namespace)
    await create(
        kube,
        KUSTOMIZATION,
        kustomization(
            namespace,
            "everything",
            path="./apps/production",
            interval="1h",
            retryInterval="90s",
            timeout="5m",
            wait=True,
            force=False,
            deletionPolicy="Orphan",
            targetNamespace="apps",
            namePrefix="p-",
            serviceAccountName="deployer",
            dependsOn=[{"name": "infra"}, {"name": "crds", "namespace": "x", "readyExpr": "true"}],
            healthChecks=[{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}],
            healthCheckExprs=[{"apiVersion": "example.com/v1", "kind": "Db", "current": "true"}],
            commonMetadata={"labels": {"team": "a"}},
            patches=[{"patch": "- op: remove\n  path: /metadata/labels\n",
                      "target": {"kind": "X"}}],
            images=[{"name": "nginx", "newTag": "1.27"}],
            components=["../components/a"],
            buildMetadata=["originAnnotations"],
            postBuild={"substitute": {"on": "yes", "n": "010"}, "substituteFrom": [
                {"kind": "Secret", "name": "vars", "optional": True}]},
            decryption={"provider": "sops", "secretRef": {"name": "sops-age"}},
            kubeConfig={"configMapRef": {"name": "remote"}},
            ignore=[{"paths": ["/spec/replicas"], "target": {"kind": "Deployment"}}],
        ),
        applied_status(1, REVISION),
    )  # fmt: skip
    for flags in (["apps"], ["broken"], ["everything"], ["--all"], ["missing"], []):
        args = ["export", "kustomization", "-n", namespace, *flags]
        assert_same(
            await tidal(cluster.kubeconfig, *args), await flux(flux_bin, cluster.kubeconfig, *args)
        )
    empty = ["export", "ks", "--all", "-n", f"{namespace}-none"]
    assert_same(
        await tidal(cluster.kubeconfig, *empty), await flux(flux_bin, cluster.kubeconfig, *empty)
    )
    one = await tidal(cluster.kubeconfig, "export", "ks", "-n", namespace, "everything")
    exported = yamlio.load_all(one.stdout)[0]
    assert exported["spec"]["interval"] == "1h0m0s"
    assert "force" not in exported["spec"] and "status" not in exported


# -- create (cluster) ------------------------------------------------------------------------------


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_create_kustomization_writes_what_flux_writes(
    kube: Kube,
    namespace: str,
    cluster: Cluster,
    flux_bin: Path,
) -> None:
    flags = [
        "--source=GitRepository/repo.infra",
        "--path=./apps",
        "--prune",
        "--health-check=Deployment/web.apps",
        "--depends-on=infra",
        "--label=team=a",
        "-n",
        namespace,
        "--timeout=2s",
    ]
    ours = await tidal(cluster.kubeconfig, "create", "kustomization", "ours", *flags)
    theirs = await flux(flux_bin, cluster.kubeconfig, "create", "kustomization", "theirs", *flags)
    assert ours.code == theirs.code == 1
    # Same progress lines up to the wait; then tidal says why it timed out.
    assert (
        ours.stderr.splitlines()[:4]
        == theirs.stderr.splitlines()[:4]
        == [
            "✚ generating Kustomization",
            "► applying Kustomization",
            "✔ Kustomization created",
            "◎ waiting for Kustomization reconciliation",
        ]
    )
    assert ours.stderr.splitlines()[4] == (
        "✗ timed out after 2s waiting for Kustomization reconciliation: not reconciled yet (is a "
        "controller for it running?)"
    )
    mine = await kube.get(KUSTOMIZATION.path(namespace, "ours"))
    flux_s = await kube.get(KUSTOMIZATION.path(namespace, "theirs"))
    assert mine["spec"] == flux_s["spec"]
    assert mine["spec"]["sourceRef"] == {
        "kind": "GitRepository",
        "name": "repo",
        "namespace": "infra",
    }
    assert mine["metadata"]["labels"] == flux_s["metadata"]["labels"] == {"team": "a"}
    managers = [(m["manager"], m["operation"]) for m in mine["metadata"]["managedFields"]]
    assert managers == [(m["manager"], m["operation"]) for m in flux_s["metadata"]["managedFields"]]

    # Running again updates: spec and labels replaced, as flux's upsert does.
    again = await tidal(
        cluster.kubeconfig,
        *["create", "ks", "ours", "--source=OCIRepository/other", "--wait", "-n", namespace],
        "--timeout=1s",
    )
    assert "✔ Kustomization updated" in again.stderr
    mine = await kube.get(KUSTOMIZATION.path(namespace, "ours"))
    assert mine["spec"]["sourceRef"] == {"kind": "OCIRepository", "name": "other"}
    assert (mine["spec"]["wait"], mine["spec"]["timeout"], mine["spec"]["prune"]) == (
        True,
        "2m0s",
        False,
    )
    assert "labels" not in mine["metadata"]


@pytest.mark.usefixtures("crds")
async def test_create_waits_for_ready_and_reports_the_applied_revision(
    kube: Kube, namespace: str, cluster: Cluster
) -> None:
    proc = asyncio.create_task(
        tidal(
            cluster.kubeconfig,
            *["create", "kustomization", "app", "--source=repo", "--prune"],
            *["-n", namespace, "--timeout=30s"],
        )
    )
    live = await wait_for_object(kube, KUSTOMIZATION, namespace, "app")
    await write_status(
        kube,
        KUSTOMIZATION,
        namespace,
        "app",
        applied_status(live["metadata"]["generation"], REVISION),
    )
    out = await proc
    assert out.code == 0, out.stderr
    assert out.stderr.endswith(f"✔ Kustomization app is ready\n✔ applied revision {REVISION}\n")


@pytest.mark.usefixtures("crds")
async def test_the_api_server_enforces_flux_s_rules(kube: Kube, namespace: str) -> None:
    """The generated CRD carries Flux's validation, CEL included, and the server applies it."""
    for spec, fragment in (
        (
            {"kubeConfig": {"secretRef": {"name": "a"}, "configMapRef": {"name": "b"}}},
            "exactly one of spec.kubeConfig.configMapRef or spec.kubeConfig.secretRef",
        ),
        ({"kubeConfig": {}}, "exactly one of spec.kubeConfig.configMapRef"),
        ({"sourceRef": {"kind": "HelmRepository", "name": "x"}}, "spec.sourceRef.kind"),
        ({"interval": "1d"}, "spec.interval"),
        ({"namePrefix": ""}, "spec.namePrefix"),
        ({"deletionPolicy": "Keep"}, "spec.deletionPolicy"),
    ):
        with pytest.raises(ApiError) as e:
            await create(kube, KUSTOMIZATION, kustomization(namespace, "bad", **spec))
        assert e.value.status == 422
        assert fragment in str(e.value.body.get("message")), e.value.body
    live = await create(kube, KUSTOMIZATION, kustomization(namespace, "good"))
    # Defaults come from the schema: force is false and a fresh status reports generation -1.
    assert live["spec"]["force"] is False
    assert live["status"] == {"observedGeneration": -1}


# -- suspend, resume, reconcile, delete --------------------------------------------------------


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_suspend_and_resume_as_flux_sees_them(
    kube: Kube,
    namespace: str,
    cluster: Cluster,
    flux_bin: Path,
) -> None:
    await create(kube, KUSTOMIZATION, kustomization(namespace, "app"), applied_status(1, REVISION))
    out = await tidal(cluster.kubeconfig, "suspend", "kustomization", "app", "-n", namespace)
    assert (out.code, out.stderr) == (
        0,
        f"► suspending kustomization app in {namespace} namespace\n✔ kustomization suspended\n",
    )
    table = await flux(flux_bin, cluster.kubeconfig, "get", "ks", "-n", namespace)
    assert "\tTrue     \tTrue \t" in table.stdout
    live = await kube.get(KUSTOMIZATION.path(namespace, "app"))
    assert live["spec"]["suspend"] is True

    reconcile = await tidal(cluster.kubeconfig, "reconcile", "ks", "app", "-n", namespace)
    assert (reconcile.code, reconcile.stderr) == (1, "✗ resource is suspended\n")

    out = await tidal(
        cluster.kubeconfig, "resume", "kustomization", "app", "-n", namespace, "--timeout=2s"
    )
    assert out.code == 1
    assert out.stderr.splitlines() == [
        f"► resuming kustomization app in {namespace} namespace",
        "✔ kustomization resumed",
        "◎ waiting for Kustomization reconciliation",
        "✗ Kustomization app reconciliation failed: timed out after 2s: the Ready condition is "
        "older than generation 3",
        "✗ reconciliation failed for 1 Kustomization(s)",
    ]
    live = await kube.get(KUSTOMIZATION.path(namespace, "app"))
    assert "suspend" not in live["spec"]
    table = await flux(flux_bin, cluster.kubeconfig, "get", "ks", "-n", namespace)
    assert "\tFalse    \tTrue \t" in table.stdout

    # --all acts on every Kustomization in the namespace and, as flux, waits for none.
    for verb, done in (("suspend", "suspended"), ("resume", "resumed")):
        args = [verb, "ks", "--all", "-n", namespace, "--timeout=2s"]
        ours = await tidal(cluster.kubeconfig, *args)
        assert_same(ours, await flux(flux_bin, cluster.kubeconfig, *args))
        assert ours.stderr.endswith(f"✔ kustomization {done}\n")
    missing = await tidal(cluster.kubeconfig, "suspend", "ks", "nope", "-n", namespace)
    assert (missing.code, missing.stderr) == (
        1,
        f"✗ Kustomization nope not found in {namespace} namespace\n",
    )
    no_name = ["suspend", "kustomization"]
    assert_same(
        await tidal(cluster.kubeconfig, *no_name),
        await flux(flux_bin, cluster.kubeconfig, *no_name),
    )


@pytest.mark.usefixtures("crds")
async def test_resume_waits_for_the_new_generation_and_reports_the_applied_revision(
    kube: Kube, namespace: str, cluster: Cluster
) -> None:
    await create(kube, KUSTOMIZATION, kustomization(namespace, "app", suspend=True))
    task = asyncio.create_task(
        tidal(cluster.kubeconfig, "resume", "ks", "app", "-n", namespace, "--timeout=30s")
    )
    live = await wait_for_object(
        kube, KUSTOMIZATION, namespace, "app", lambda o: "suspend" not in o["spec"]
    )
    generation = live["metadata"]["generation"]
    await write_status(kube, KUSTOMIZATION, namespace, "app", applied_status(generation, REVISION))
    out = await task
    assert out.code == 0, out.stderr
    assert out.stderr.endswith(
        f"✔ Kustomization app reconciliation completed\n✔ applied revision {REVISION}\n"
    )


@pytest.mark.usefixtures("crds")
async def test_reconcile_annotates_and_times_out_without_a_controller(
    kube: Kube, namespace: str, cluster: Cluster
) -> None:
    await create(kube, KUSTOMIZATION, kustomization(namespace, "app"), applied_status(1, REVISION))
    out = await tidal(
        cluster.kubeconfig, "reconcile", "kustomization", "app", "-n", namespace, "--timeout=2s"
    )
    assert out.code == 1
    assert out.stderr.splitlines() == [
        f"► annotating Kustomization app in {namespace} namespace",
        "✔ Kustomization annotated",
        "◎ waiting for Kustomization reconciliation",
        "✗ timed out after 2s waiting for Kustomization app reconciliation: the reconcile "
        "request has not been handled yet (is a controller for it running?)",
    ]
    live = await kube.get(KUSTOMIZATION.path(namespace, "app"))
    token = live["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", token)


def pending_request(obj: dict[str, Any]) -> bool:
    token = (obj["metadata"].get("annotations") or {}).get("reconcile.fluxcd.io/requestedAt")
    return token is not None and token != (obj.get("status") or {}).get("lastHandledReconcileAt")


async def answer_requests(
    kube: Kube, answers: list[tuple[ObjectKind, str, str, dict[str, Any]]]
) -> None:
    """Play the controllers: wait for each object's next reconcile request, in order, and
    answer it with the status given (marking that request handled)."""
    for kind, ns, name, status in answers:
        live = await wait_for_object(kube, kind, ns, name, pending_request)
        token = live["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]
        await write_status(kube, kind, ns, name, {**status, "lastHandledReconcileAt": token})


async def both_answered(
    cluster: Cluster,
    flux_bin: Path,
    args: list[str],
    answer: Callable[[], Awaitable[None]],
) -> tuple[Out, Out]:
    """Run `args` with tidal, then with flux, each while the test answers its requests."""
    outs = []
    for cli in (
        lambda: tidal(cluster.kubeconfig, *args),
        lambda: flux(flux_bin, cluster.kubeconfig, *args),
    ):
        task = asyncio.create_task(cli())
        await answer()
        outs.append(await task)
    return outs[0], outs[1]


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_reconcile_reports_the_applied_revision_as_flux_does(
    kube: Kube,
    namespace: str,
    cluster: Cluster,
    flux_bin: Path,
) -> None:
    await create(kube, KUSTOMIZATION, kustomization(namespace, "app"), applied_status(1, REVISION))
    new = "main@sha1:" + "f" * 40
    ours, theirs = await both_answered(
        cluster,
        flux_bin,
        ["reconcile", "kustomization", "app", "-n", namespace, "--timeout=30s"],
        lambda: answer_requests(kube, [(KUSTOMIZATION, namespace, "app", applied_status(1, new))]),
    )
    assert (ours.code, ours.stderr) == (theirs.code, theirs.stderr)
    assert ours.stderr.splitlines() == [
        f"► annotating Kustomization app in {namespace} namespace",
        "✔ Kustomization annotated",
        "◎ waiting for Kustomization reconciliation",
        f"✔ applied revision {new}",
    ]


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_reconcile_waits_through_failures_as_flux_does(
    kube: Kube,
    namespace: str,
    cluster: Cluster,
    flux_bin: Path,
) -> None:
    """A failed but not stalled Kustomization is retried by its controller, so both CLIs keep
    waiting until the deadline; tidal then says what the last failure was."""
    await create(kube, KUSTOMIZATION, kustomization(namespace, "app"), applied_status(1, REVISION))
    failing = failed_status(1, "kustomize build failed")
    ours, theirs = await both_answered(
        cluster,
        flux_bin,
        ["reconcile", "ks", "app", "-n", namespace, "--timeout=4s"],
        lambda: answer_requests(kube, [(KUSTOMIZATION, namespace, "app", failing)]),
    )
    assert ours.code == theirs.code == 1
    assert ours.stderr.splitlines()[:3] == theirs.stderr.splitlines()[:3]
    assert theirs.stderr.splitlines()[3] == "✗ context deadline exceeded"
    assert ours.stderr.splitlines()[3] == (
        "✗ timed out after 4s waiting for Kustomization app reconciliation: kustomize build failed"
    )
    # Stalled is final: no waiting for the deadline.
    stall = {"type": "Stalled", "status": "True", "message": "invalid CEL expression"}
    stalled = {
        **failing,
        "conditions": [*failing["conditions"], {**failing["conditions"][0], **stall}],
    }
    ours, theirs = await both_answered(
        cluster,
        flux_bin,
        ["reconcile", "ks", "app", "-n", namespace, "--timeout=30s"],
        lambda: answer_requests(kube, [(KUSTOMIZATION, namespace, "app", stalled)]),
    )
    assert ours.code == theirs.code == 1
    assert theirs.stderr.splitlines()[3] == "✗ invalid CEL expression"
    assert ours.stderr.splitlines()[3] == (
        "✗ Kustomization app reconciliation failed: invalid CEL expression"
    )


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_reconcile_with_source_reconciles_the_source_first_as_flux_does(
    kube: Kube,
    namespace: str,
    cluster: Cluster,
    flux_bin: Path,
) -> None:
    source_ns = f"{namespace}-src"
    await kube.request(
        "POST",
        "/api/v1/namespaces",
        body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": source_ns}},
    )
    try:
        await create(
            kube,
            GIT_REPOSITORY,
            {
                "apiVersion": GIT_REPOSITORY.api_version,
                "kind": GIT_REPOSITORY.kind,
                "metadata": {"name": "repo", "namespace": source_ns},
                "spec": {"url": "https://example.com/r.git", "interval": "1m"},
            },
            ready_status(1, REVISION),
        )
        source_ref = {"kind": "GitRepository", "name": "repo", "namespace": source_ns}
        await create(
            kube,
            KUSTOMIZATION,
            kustomization(namespace, "app", sourceRef=source_ref),
            applied_status(1, REVISION),
        )
        new = "main@sha1:" + "e" * 40
        # Play source-controller, then kustomize-controller, each answering its own request.
        answers = [
            (GIT_REPOSITORY, source_ns, "repo", ready_status(1, new)),
            (KUSTOMIZATION, namespace, "app", applied_status(1, new)),
        ]
        ours, theirs = await both_answered(
            cluster,
            flux_bin,
            ["reconcile", "ks", "app", "--with-source", "-n", namespace, "--timeout=30s"],
            lambda: answer_requests(kube, answers),
        )
        assert (ours.code, ours.stderr) == (theirs.code, theirs.stderr)
        assert ours.stderr.splitlines() == [
            f"► annotating GitRepository repo in {source_ns} namespace",
            "✔ GitRepository annotated",
            "◎ waiting for GitRepository reconciliation",
            f"✔ fetched revision {new}",
            f"► annotating Kustomization app in {namespace} namespace",
            "✔ Kustomization annotated",
            "◎ waiting for Kustomization reconciliation",
            f"✔ applied revision {new}",
        ]
    finally:
        await kube.request("DELETE", f"/api/v1/namespaces/{source_ns}")


@pytest.mark.usefixtures("crds")
async def test_reconcile_with_source_refuses_a_source_it_cannot_reconcile(
    kube: Kube, namespace: str, cluster: Cluster
) -> None:
    await create(
        kube,
        KUSTOMIZATION,
        kustomization(namespace, "app", sourceRef={"kind": "ExternalArtifact", "name": "a"}),
        applied_status(1, REVISION),
    )
    out = await tidal(
        cluster.kubeconfig, "reconcile", "ks", "app", "--with-source", "-n", namespace
    )
    assert (out.code, out.stderr) == (1, "✗ cannot reconcile source of kind ExternalArtifact\n")
    live = await kube.get(KUSTOMIZATION.path(namespace, "app"))
    assert not requested(live)


@needs_flux
@pytest.mark.usefixtures("crds")
async def test_delete_asks_first(
    kube: Kube,
    namespace: str,
    cluster: Cluster,
    flux_bin: Path,
) -> None:
    await create(kube, KUSTOMIZATION, kustomization(namespace, "app"))
    refused = await tidal(
        cluster.kubeconfig, "delete", "kustomization", "app", "-n", namespace, stdin="n\n"
    )
    assert refused.code == 1
    assert refused.stderr.endswith("✗ aborting\n")
    await kube.get(KUSTOMIZATION.path(namespace, "app"))  # still there

    out = await tidal(cluster.kubeconfig, "delete", "ks", "app", "-n", namespace, "-s")
    assert (out.code, out.stderr) == (
        0,
        f"► deleting kustomization app in {namespace} namespace\n✔ kustomization deleted\n",
    )
    with pytest.raises(ApiError):
        await kube.get(KUSTOMIZATION.path(namespace, "app"))
    for args in (["delete", "ks", "app", "-n", namespace, "-s"], ["delete", "kustomization"]):
        assert_same(
            await tidal(cluster.kubeconfig, *args), await flux(flux_bin, cluster.kubeconfig, *args)
        )
