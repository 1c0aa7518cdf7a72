"""Removing an installation in flux's order, so that nothing it applied goes with it.

1. The components: everything `tidal install` labelled part-of=tidal and instance=<namespace>
   (Deployment, Service, ServiceAccount, ClusterRole and bindings; NetworkPolicies too, which
   flux installs). Then, unlike flux, wait until the controller's pods are gone: a controller
   still running could put its finalizer back and prune on the deletion to come.
2. tidal's finalizer off every object of the CRDs that go next. Without it the API server
   deletes those objects at once, instead of handing them to a controller that would delete
   what they applied (a Kustomization's prune). The objects themselves are never deleted here.
3. The CRDs (part-of=tidal, groups under toolkit.fluxcd.io); the API server then deletes the
   objects of each.
4. The namespace, if tidal's install labelled it as its own (the CLI may skip it).

Cluster-scoped CRDs are shared by every installation in a cluster, as with flux. Every step
reports one line per object and carries on after a failure, counting it; with `dry_run` each
request is sent with dryRun=All, so the server validates it and changes nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from tidal.api.kustomize import KUSTOMIZATION_FINALIZER
from tidal.install import manifests
from tidal.install.checks import INSTANCE_LABEL, PART_OF_LABEL, PART_OF_SELECTOR
from tidal.kube.client import ApiError, Kube
from tidal.kube.discovery import Resource
from tidal.runtime.poll import poll_until
from tidal.ssa import objects

FINALIZER: Final = KUSTOMIZATION_FINALIZER  # the same name on every tidal (and Flux) kind
CRD_GROUP_SUFFIX: Final = ".toolkit.fluxcd.io"
_MERGE_PATCH: Final = "application/merge-patch+json"
# Seconds between attempts at a read the server answers "try again" (429, 5xx); a CRD created
# moments ago answers 429 "storage is (re)initializing" for a while. None: give up.
_RETRIES: Final = (0.5, 1.0, 2.0, 4.0, None)

# In flux's order.
COMPONENTS: Final = (
    Resource("apps", "v1", "Deployment", "deployments", True),
    Resource("", "v1", "Service", "services", True),
    Resource("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True),
    Resource("", "v1", "ServiceAccount", "serviceaccounts", True),
    Resource("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    Resource("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
)
# What is left running of a deleted Deployment until the garbage collector is through.
_RUNNING: Final = (
    Resource("apps", "v1", "ReplicaSet", "replicasets", True),
    Resource("", "v1", "Pod", "pods", True),
)
_NAMESPACES: Final = Resource("", "v1", "Namespace", "namespaces", False)
_CRDS: Final = Resource(
    "apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False
)


def _transient(e: ApiError) -> bool:
    return e.status == 429 or e.status >= 500


class Reporter(Protocol):
    def success(self, message: str) -> None: ...
    def warning(self, message: str) -> None: ...
    def failure(self, message: str) -> None: ...


@dataclass(frozen=True)
class Plan:
    namespace: str
    dry_run: bool = False
    # Which CRDs go, and whose objects lose the finalizer first. Only tests narrow these, to
    # a throwaway group, on a cluster whose real CRDs others use.
    crd_selector: str = PART_OF_SELECTOR
    crd_group_suffix: str = CRD_GROUP_SUFFIX

    @property
    def components_selector(self) -> str:
        """This installation's objects only: another one's cluster-scoped RBAC stays."""
        return f"{PART_OF_LABEL}={manifests.PART_OF},{INSTANCE_LABEL}={self.namespace}"

    @property
    def params(self) -> dict[str, str] | None:
        return {"dryRun": "All"} if self.dry_run else None

    def done(self, what: str) -> str:
        return f"{what} (dry run)" if self.dry_run else what


def crd_resource(definition: dict[str, Any]) -> Resource:
    """Where the objects of a CRD are served: its storage version (served, as the API server
    requires of the storage version while it has objects)."""
    spec = definition.get("spec") or {}
    versions = spec.get("versions") or []
    storage = next((v for v in versions if v.get("storage")), versions[0] if versions else {})
    names = spec.get("names") or {}
    return Resource(
        str(spec.get("group", "")),
        str(storage.get("name", "")),
        str(names.get("kind", "")),
        str(names.get("plural", "")),
        spec.get("scope") == "Namespaced",
    )


@dataclass
class Uninstaller:
    kube: Kube
    plan: Plan
    report: Reporter
    failures: int = 0
    _crds: list[dict[str, Any]] | None = field(default=None, repr=False)

    def _failed(self, message: str) -> None:
        self.failures += 1
        self.report.failure(message)

    async def _list(self, res: Resource, namespace: str, selector: str) -> list[dict[str, Any]]:
        params = {"labelSelector": selector} if selector else None
        for delay in _RETRIES:
            try:
                listing = await self.kube.get(res.collection(namespace), params)
                return sorted(listing.get("items") or [], key=objects.name)
            except ApiError as e:
                if not _transient(e) or delay is None:
                    self._failed(f"listing {res.kind} objects failed: {e.message}")
                    return []
            await asyncio.sleep(delay)
        return []  # not reached: the last delay is None

    async def _delete(self, res: Resource, name: str, namespace: str = "") -> None:
        subject = objects.subject(res.kind, namespace, name)
        try:
            await self.kube.request("DELETE", res.path(name, namespace), params=self.plan.params)
        except ApiError as e:
            if e.status != 404:  # gone meanwhile is what we wanted
                self._failed(f"{subject} deletion failed: {e.message}")
                return
        self.report.success(self.plan.done(f"{subject} deleted"))

    async def components(self) -> None:
        for res in COMPONENTS:
            namespace = self.plan.namespace if res.namespaced else ""
            for obj in await self._list(res, namespace, self.plan.components_selector):
                await self._delete(res, objects.name(obj), namespace)

    async def controller_stopped(self, within: float) -> bool:
        """Whether the deleted Deployments' ReplicaSets and pods are gone, waiting up to
        `within` seconds. A dry run deleted nothing, so there is nothing to wait for."""
        if self.plan.dry_run:
            return True

        async def stopped() -> bool:
            for res in _RUNNING:
                listing = await self.kube.get(
                    res.collection(self.plan.namespace),
                    {"labelSelector": self.plan.components_selector, "limit": "1"},
                )
                if listing.get("items"):
                    return False
            return True

        try:
            await poll_until(stopped, within, every=1.0, first=0.2)
        except TimeoutError:
            return False
        return True

    async def crds(self) -> list[dict[str, Any]]:
        """The CRDs that go, read once so both steps work on the same set."""
        if self._crds is None:
            found = await self._list(_CRDS, "", self.plan.crd_selector)
            self._crds = [
                c
                for c in found
                if str((c.get("spec") or {}).get("group", "")).endswith(self.plan.crd_group_suffix)
            ]
        return self._crds

    async def finalizers(self) -> None:
        for definition in await self.crds():
            res = crd_resource(definition)
            for obj in await self._list(res, "", ""):
                await self._release(res, obj)

    async def _release(self, res: Resource, obj: dict[str, Any]) -> None:
        """Take tidal's finalizer off `obj`, other finalizers staying; the resourceVersion in
        the patch makes a concurrent change a conflict, retried on a fresh read."""
        namespace, name = objects.namespace(obj), objects.name(obj)
        subject = objects.subject(res.kind, namespace, name)
        path = res.path(name, namespace)
        for _ in range(5):
            meta = objects.meta(obj)
            finalizers = list(meta.get("finalizers") or [])
            if FINALIZER not in finalizers:
                break
            remaining = [f for f in finalizers if f != FINALIZER]
            patch = {
                "metadata": {
                    "resourceVersion": meta.get("resourceVersion"),
                    # null, not []: the field then goes, as when a controller removes the last
                    "finalizers": remaining or None,
                }
            }
            try:
                await self.kube.request(
                    "PATCH", path, body=patch, params=self.plan.params, content_type=_MERGE_PATCH
                )
                break
            except ApiError as e:
                if e.status == 404:
                    break
                if e.status != 409:
                    self._failed(f"{subject} removing finalizers failed: {e.message}")
                    return
            try:
                obj = await self.kube.get(path)
            except ApiError as e:
                if e.status == 404:
                    break
                self._failed(f"{subject} removing finalizers failed: {e.message}")
                return
        else:
            self._failed(f"{subject} removing finalizers failed: it keeps changing")
            return
        self.report.success(self.plan.done(f"{subject} finalizers deleted"))

    async def custom_resource_definitions(self) -> None:
        for definition in await self.crds():
            await self._delete(_CRDS, objects.name(definition))

    async def namespace(self) -> None:
        """Delete the namespace if tidal's install labelled it as its own: `-n` naming a
        namespace tidal never ran in must not take that namespace's workloads with it."""
        name = self.plan.namespace
        subject = objects.subject("Namespace", "", name)
        try:
            live = await self.kube.get(_NAMESPACES.path(name))
        except ApiError as e:
            if e.status == 404:
                self.report.warning(f"{subject} not found")
                return
            self._failed(f"{subject} deletion failed: {e.message}")
            return
        labels = objects.meta(live).get("labels") or {}
        if labels.get(PART_OF_LABEL) != manifests.PART_OF:
            self.report.warning(
                f"{subject} not deleted: it has no {PART_OF_SELECTOR} label, "
                "so tidal did not install into it"
            )
            return
        await self._delete(_NAMESPACES, name)
