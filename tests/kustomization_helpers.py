"""The GitOps loop's objects for e2e tests, in one place: GitRepositories on the test Git
servers, Kustomizations on them, waits on both (failing with the controller's log tail), and
reading back what they applied."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from testenv.git_server import GitHTTPServer
from tests.controller_process import RunningController, condition, wait_for_object
from tidal.kube.client import ApiError, Kube
from tidal.runtime.poll import poll_until

SOURCE_API = "/apis/source.toolkit.fluxcd.io/v1"
KS_API = "/apis/kustomize.toolkit.fluxcd.io/v1"
REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"

Check = Callable[[dict[str, Any]], bool]


# -- any object ------------------------------------------------------------------------------------


async def get_or_none(kube: Kube, path: str) -> dict[str, Any] | None:
    try:
        return await kube.get(path)
    except ApiError as e:
        if e.status == 404:
            return None
        raise


async def wait_gone(kube: Kube, path: str, within: float = 30.0) -> None:
    """Until the object at `path` is deleted (any error but 404 fails the test)."""

    async def gone() -> bool:
        return await get_or_none(kube, path) is None

    await poll_until(gone, within, every=0.5, first=0.1)


async def wait_exists(kube: Kube, path: str, within: float = 30.0) -> None:
    """Until the object at `path` exists (any error but 404 fails the test)."""

    async def exists() -> bool:
        return await get_or_none(kube, path) is not None

    await poll_until(exists, within, every=0.5, first=0.1)


async def request_reconcile(kube: Kube, path: str, token: str) -> None:
    """What `flux reconcile` does: the controller acts on a new requestedAt at once."""
    await kube.patch(path, {"metadata": {"annotations": {REQUESTED_AT: token}}})


def condition_is(type_: str, status: str = "True") -> Check:
    """True once the object's condition `type_` has `status`."""

    def check(obj: dict[str, Any]) -> bool:
        return condition(obj, type_).get("status") == status

    return check


def cm(name: str, namespace: str = "", **data: str) -> str:
    """A ConfigMap manifest as a repository holds it."""
    ns = f"  namespace: {namespace}\n" if namespace else ""
    body = "".join(f"  {k}: {v!r}\n" for k, v in data.items())
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{ns}data:\n{body}"


async def get_cm(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    return await get_or_none(kube, f"/api/v1/namespaces/{namespace}/configmaps/{name}")


async def create_cm(
    kube: Kube,
    namespace: str,
    name: str,
    data: dict[str, str],
    labels: dict[str, str] | None = None,
) -> None:
    """A ConfigMap in the cluster, as a user creates it beside the Kustomizations."""
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = labels
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
    await kube.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", body=body)


async def events_for(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    """The Events recorded for the Kustomization `name`."""
    listing = await kube.get(f"/api/v1/namespaces/{namespace}/events")
    return [
        e
        for e in listing["items"]
        if e["involvedObject"].get("kind") == "Kustomization"
        and e["involvedObject"].get("name") == name
    ]


# -- GitRepositories -------------------------------------------------------------------------------


async def secret(kube: Kube, namespace: str, name: str, data: dict[str, bytes | str]) -> None:
    encoded = {
        k: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode()
        for k, v in data.items()
    }
    await kube.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/secrets",
        body={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded},
    )


async def auth_secret(kube: Kube, namespace: str, server: GitHTTPServer) -> str:
    """The Secret a GitRepository needs for `server`: basic auth, plus its CA over TLS."""
    assert server.username and server.password
    name = "https-auth" if server.tls else "plain"
    data: dict[str, bytes | str] = {"username": server.username, "password": server.password}
    if server.tls:
        data["ca.crt"] = server.ca_pem
    try:
        await secret(kube, namespace, name, data)
    except ApiError as e:
        if e.status != 409:
            raise
    return name


async def git_source(
    kube: Kube, namespace: str, name: str, server: GitHTTPServer, repo: Any, **spec: Any
) -> None:
    """A GitRepository on `repo`'s main branch through `server`, with its auth Secret."""
    auth = await auth_secret(kube, namespace, server)
    spec = {"ref": {"branch": "main"}, "secretRef": {"name": auth}, **spec}
    await create_repo(kube, namespace, name, server.url_for(repo.name), **spec)


async def create_repo(kube: Kube, namespace: str, name: str, url: str, **spec: Any) -> None:
    body = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"url": url, "interval": "1m", **spec},
    }
    await kube.request("POST", f"{SOURCE_API}/namespaces/{namespace}/gitrepositories", body=body)


async def wait_repo(
    kube: Kube,
    namespace: str,
    name: str,
    check: Any,
    what: str,
    controller: RunningController,
    within: float = 30.0,
) -> dict[str, Any]:
    path = f"{SOURCE_API}/namespaces/{namespace}/gitrepositories/{name}"
    return await wait_for_object(kube, path, check, what, controller, within)


def ready_at(revision: str) -> Any:
    def check(obj: dict[str, Any]) -> bool:
        ready = condition(obj, "Ready")
        artifact = obj.get("status", {}).get("artifact") or {}
        return ready.get("status") == "True" and artifact.get("revision") == revision

    return check


def head_revision(repo: Any) -> str:
    """The revision Flux names for the head of `repo`'s main branch: `main@sha1:<sha>`."""
    return f"main@sha1:{repo.head('main')}"


async def source_ready(
    kube: Kube,
    namespace: str,
    name: str,
    server: GitHTTPServer,
    repo: Any,
    controller: RunningController,
    **spec: Any,
) -> tuple[dict[str, Any], str]:
    """The GitRepository `name` on `repo` (see git_source; `spec` adds or overrides fields),
    once Ready with an artifact of main's head: the object then, and that revision."""
    revision = head_revision(repo)
    await git_source(kube, namespace, name, server, repo, **spec)
    obj = await wait_repo(kube, namespace, name, ready_at(revision), "Ready", controller)
    return obj, revision


async def fetch_now(kube: Kube, namespace: str, token: str) -> None:
    """Ask the GitRepository "repo" to look for the push now (its interval is a minute); the
    new artifact then wakes the Kustomizations on it by itself."""
    path = f"{SOURCE_API}/namespaces/{namespace}/gitrepositories/repo"
    await request_reconcile(kube, path, token)


# -- Kustomizations --------------------------------------------------------------------------------


def ks_path(namespace: str, name: str) -> str:
    return f"{KS_API}/namespaces/{namespace}/kustomizations/{name}"


async def create_ks(
    kube: Kube, namespace: str, name: str, labels: dict[str, str] | None = None, **spec: Any
) -> None:
    """A Kustomization on the GitRepository "repo", pruning, every 10m; `spec` adds or
    overrides fields."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = labels
    body = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": metadata,
        "spec": {
            "interval": "10m",
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": "repo"},
            **spec,
        },
    }
    await kube.request("POST", f"{KS_API}/namespaces/{namespace}/kustomizations", body=body)


async def wait_ks(
    kube: Kube,
    namespace: str,
    name: str,
    check: Check,
    what: str,
    controller: RunningController,
    within: float = 40.0,
) -> dict[str, Any]:
    return await wait_for_object(kube, ks_path(namespace, name), check, what, controller, within)


async def reconcile_now(kube: Kube, namespace: str, name: str, token: str) -> None:
    await request_reconcile(kube, ks_path(namespace, name), token)


async def deployed(
    kube: Kube,
    namespace: str,
    name: str,
    server: GitHTTPServer,
    repo: Any,
    controller: RunningController,
    *,
    source: dict[str, Any] | None = None,
    within: float = 40.0,
    **spec: Any,
) -> tuple[dict[str, Any], str]:
    """The GitRepository "repo" on `repo` (`source` adds spec fields) and the Kustomization
    `name` on it (see create_ks: `spec` may hold labels= and spec fields), once it has applied
    main's head: the Kustomization then, and that revision."""
    revision = head_revision(repo)
    await git_source(kube, namespace, "repo", server, repo, **(source or {}))
    await create_ks(kube, namespace, name, **spec)
    obj = await wait_ks(kube, namespace, name, applied(revision), "apply", controller, within)
    return obj, revision


def applied(revision: str) -> Check:
    def check(obj: dict[str, Any]) -> bool:
        ready = condition(obj, "Ready")
        return (
            ready.get("status") == "True"
            and (obj.get("status") or {}).get("lastAppliedRevision") == revision
        )

    return check


def failed(reason: str) -> Check:
    def check(obj: dict[str, Any]) -> bool:
        ready = condition(obj, "Ready")
        return ready.get("status") == "False" and ready.get("reason") == reason

    return check
