"""`tidal controller` with `spec.provider: azure`: the controller runs with the environment the
Azure workload identity webhook sets (AZURE_CLIENT_ID, AZURE_TENANT_ID,
AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST), gets an Entra ID token from a local fake of
the token endpoint (trusted through SSL_CERT_FILE, as a real one is through the system roots)
and fetches with it as bearer token from an HTTPS Git server that takes only that token.

Flux does not restrict the host of an azure GitRepository (its docs only describe the Azure
DevOps URL format), so a local server needs no test-only switch.

Counts are of this module's controller process only (another controller may share the plane)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testenv.fake_azure import NO_FEDERATION, FakeEntraID
from testenv.git_server import GitHTTPServer
from tests.controller_process import RunningController, condition, run_controller
from tests.kustomization_helpers import SOURCE_API as API
from tests.kustomization_helpers import (
    condition_is,
    create_repo,
    head_revision,
    ready_at,
    request_reconcile,
    secret,
)
from tests.kustomization_helpers import wait_repo as wait_for
from tidal.kube.client import Kube

pytestmark = pytest.mark.e2e

FILES = {"deploy/app.yaml": "kind: ConfigMap\n"}
ACCESS_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(32)
# The projected token the controller presents. The fake only federates it once the test says
# so: until then no token can be had, whatever else the controller reconciles meanwhile.
FEDERATED = "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ." + secrets.token_urlsafe(48)


@pytest.fixture(scope="module")
def azure_git(
    git_repos_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GitHTTPServer, FakeEntraID]]:
    """A Git server taking only the bearer token the fake Entra ID hands out, and that fake,
    both with certificates of the Git server's CA."""
    git = GitHTTPServer(
        git_repos_root,
        tls=True,
        basic_auth=False,
        token=ACCESS_TOKEN,
        workdir=tmp_path_factory.mktemp("azure-git"),
    )
    entra = FakeEntraID(
        git.ca, access_token=ACCESS_TOKEN, federated_token="not-yet-" + secrets.token_hex(8)
    )
    with git, entra:
        yield git, entra


@pytest.fixture(scope="module")
def controller(
    cluster: Any,
    tmp_path_factory: pytest.TempPathFactory,
    azure_git: tuple[GitHTTPServer, FakeEntraID],
) -> Iterator[RunningController]:
    git, entra = azure_git
    work = tmp_path_factory.mktemp("controller")
    token_file = work / "azure-identity-token"
    token_file.write_text(FEDERATED)
    env = {**entra.environ(token_file), "SSL_CERT_FILE": str(git.ca_pem_path)}
    with run_controller(cluster.kubeconfig, work, "--concurrent", "4", env=env) as running:
        yield running


async def statuses_events_and_log(
    kube: Kube, namespace: str, controller: RunningController
) -> dict[str, str]:
    listing = await kube.get(f"{API}/namespaces/{namespace}/gitrepositories")
    events = await kube.get(f"/api/v1/namespaces/{namespace}/events")
    return {
        "status": str([o.get("status") for o in listing["items"]]),
        "events": "\n".join(e.get("message", "") for e in events["items"]),
        "log": controller.logs(),
    }


async def assert_nothing_leaked(
    kube: Kube, namespace: str, controller: RunningController, values: list[str]
) -> None:
    places = await statuses_events_and_log(kube, namespace, controller)
    for value in values:
        assert value
        for where, text in places.items():
            assert value not in text, f"a secret value is in the {where}"


async def test_failures_in_fluxs_words_then_ready_through_the_token_reused_across_reconciles(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    azure_git: tuple[GitHTTPServer, FakeEntraID],
    git_repo: Any,
) -> None:
    git, entra = azure_git
    pid = controller.process.pid
    repo = git_repo(files=FILES)
    url = git.url_for(repo.name)
    # The Secret's TLS is kept for Git; its username/password are replaced by the token (the
    # server takes no basic auth at all).
    await secret(
        kube,
        namespace,
        "git-tls",
        {"ca.crt": git.ca_pem, "username": "someone", "password": "not-the-token-1234"},
    )
    spec = {"ref": {"branch": "main"}, "secretRef": {"name": "git-tls"}, "provider": "azure"}

    # 1. Object-level workload identity: a feature gate tidal does not have.
    await create_repo(kube, namespace, "with-sa", url, serviceAccountName="flux-azure", **spec)
    obj = await wait_for(kube, namespace, "with-sa", condition_is("Stalled"), "stall", controller)
    fetch_failed = condition(obj, "FetchFailed")
    assert fetch_failed["reason"] == "FeatureGateDisabled"
    assert fetch_failed["message"].startswith(
        "to use spec.serviceAccountName for provider authentication please enable the "
        "ObjectLevelWorkloadIdentity feature gate in the controller"
    )
    assert condition(obj, "Ready")["reason"] == "FeatureGateDisabled"

    # 2. Entra ID refuses the federated token: AuthenticationFailed with its answer, retried.
    assert entra.federated_token != FEDERATED
    await create_repo(kube, namespace, "one", url, **spec)
    obj = await wait_for(
        kube, namespace, "one", condition_is("Ready", "False"), "refusal", controller
    )
    expected = (
        "failed to configure authentication options: failed to create provider access "
        "token for the controller: WorkloadIdentityCredential authentication failed. "
        f"POST {entra.token_url}: RESPONSE 401: invalid_client: {NO_FEDERATION}"
    )
    for type_ in ("FetchFailed", "Ready"):
        cond = condition(obj, type_)
        assert (cond["reason"], cond["message"]) == ("AuthenticationFailed", expected)
    assert not condition(obj, "Stalled")
    assert "artifact" not in obj["status"]
    refused = [c for c in entra.calls(pid) if c.status == 401]
    assert refused and all(c.form["client_assertion"] == FEDERATED for c in refused)
    entra.federated_token = FEDERATED

    # 3. Once Entra ID takes it, the object recovers; a second object shares the token.
    await request_reconcile(kube, f"{API}/namespaces/{namespace}/gitrepositories/one", "retry")
    await create_repo(kube, namespace, "two", url, **spec)
    revision = head_revision(repo)
    for name in ("one", "two"):
        obj = await wait_for(kube, namespace, name, ready_at(revision), f"{name} ready", controller)
        assert not condition(obj, "FetchFailed")
    granted = [c for c in entra.calls(pid) if c.status == 200]
    assert len(granted) == 1, "one token for both objects"
    assert granted[0].form["client_id"] == entra.client_id
    assert granted[0].form["scope"] == "499b84ac-1321-427f-aa17-267ca6975798/.default"
    assert granted[0].form["client_assertion"] == FEDERATED
    served = [r for r in git.requests(repo.name) if r.status == 200]
    assert served and all(r.user == "token" for r in served), "Git saw the bearer token"

    # 4. Later reconciles reuse the cached token: Git sees it again, Entra ID is not asked.
    before = len(served)
    for token in ("again-1", "again-2"):
        await request_reconcile(kube, f"{API}/namespaces/{namespace}/gitrepositories/one", token)
        await wait_for(
            kube,
            namespace,
            "one",
            lambda o, t=token: (o.get("status") or {}).get("lastHandledReconcileAt") == t,
            f"reconcile {token}",
            controller,
        )
    assert len([c for c in entra.calls(pid) if c.status == 200]) == 1
    assert len([r for r in git.requests(repo.name) if r.status == 200]) > before

    # 5. Neither the access token nor either federated token is anywhere a user can read.
    await assert_nothing_leaked(
        kube,
        namespace,
        controller,
        [ACCESS_TOKEN, FEDERATED],
    )
