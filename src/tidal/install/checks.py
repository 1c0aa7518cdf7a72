"""What `tidal check` looks at: the Kubernetes version tidal supports, the permissions
`tidal install` needs, what the cluster says about an installation, and whether its
controller Deployments are up. Printing is the CLI's job (tidal.cli.check).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from tidal.api import crd, kustomize, source
from tidal.install import manifests
from tidal.kube import kstatus
from tidal.kube.client import ApiError, Kube
from tidal.kube.discovery import Discovery, Resource
from tidal.ssa import objects

PART_OF_LABEL: Final = "app.kubernetes.io/part-of"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
VERSION_LABEL: Final = "app.kubernetes.io/version"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
PART_OF_SELECTOR: Final = f"{PART_OF_LABEL}={manifests.PART_OF}"
# Labels kustomize-controller (and tidal's) puts on what it applies: on a CRD they mean the
# installation is itself reconciled from Git, i.e. bootstrapped.
BOOTSTRAP_LABELS: Final = (kustomize.NAME_LABEL, kustomize.NAMESPACE_LABEL)
# flux reads the installation's labels off this CRD.
INFO_CRD: Final = f"gitrepositories.{source.GROUP}"
CRDS: Final = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
DEPLOYMENTS: Final = "/apis/apps/v1/namespaces/{namespace}/deployments"


@dataclass(frozen=True, order=True)
class KubeVersion:
    major: int
    minor: int
    patch: int
    prerelease: str = ""
    metadata: str = ""

    def __str__(self) -> str:
        """As Go's semver prints it: no leading v, pre-release and build metadata kept."""
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += f"-{self.prerelease}"
        if self.metadata:
            text += f"+{self.metadata}"
        return text


# The oldest Kubernetes tidal supports. tidal's GitRepository CRD carries a CEL validation
# rule (x-kubernetes-validations), which became GA, i.e. always on, in 1.29; everything else
# tidal relies on is older (server-side apply and dryRun=All in 1.22, Pod Security labels on
# the namespace in 1.25). The "-0" lets pre-release and vendor builds (1.29.0-gke.1) match.
MIN_KUBERNETES: Final = KubeVersion(1, 29, 0)
KUBERNETES_CONSTRAINT: Final = f">={MIN_KUBERNETES.major}.{MIN_KUBERNETES.minor}.0-0"

_SEMVER: Final = re.compile(
    r"v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?"
)


def parse_version(text: str) -> KubeVersion | None:
    """The server's gitVersion ("v1.37.2", "v1.30.4-eks-a737599", "v1.31.1+k3s1"), leniently
    as Go's semver reads it (a missing minor or patch is 0); None when it is not a version."""
    m = _SEMVER.fullmatch(text.strip())
    if m is None:
        return None
    major, minor, patch, pre, meta = m.groups()
    return KubeVersion(int(major), int(minor or 0), int(patch or 0), pre or "", meta or "")


def supported(version: KubeVersion) -> bool:
    """Whether `version` satisfies KUBERNETES_CONSTRAINT: any pre-release of the minimum
    counts, as "-0" is the lowest pre-release there is."""
    return (version.major, version.minor, version.patch) >= (
        MIN_KUBERNETES.major,
        MIN_KUBERNETES.minor,
        MIN_KUBERNETES.patch,
    )


# -- permissions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Permission:
    verb: str
    group: str
    resource: str
    namespace: str = ""
    name: str = ""

    def attributes(self) -> dict[str, str]:
        attrs = {"verb": self.verb, "group": self.group, "resource": self.resource}
        if self.namespace:
            attrs["namespace"] = self.namespace
        if self.name:
            attrs["name"] = self.name
        return attrs

    @property
    def what(self) -> str:
        """`plural.group` as the API server names a resource in its messages."""
        return f"{self.resource}.{self.group}" if self.group else self.resource


_RBAC: Final = "rbac.authorization.k8s.io"
# Server-side apply of an object that may not exist yet is authorised as a patch and, when it
# creates, as a create; install also reads each object back.
_APPLY_VERBS: Final = ("get", "create", "patch")


def required_permissions(applied: Iterable[tuple[Mapping[str, Any], Resource]]) -> list[Permission]:
    """What applying these objects (each with the resource serving it) asks of the caller.
    Creating a ClusterRole with rules one does not hold takes `escalate`, and binding a role
    one does not hold takes `bind` on it: the RBAC escalation checks tidal's role and its
    cluster-admin binding meet."""
    wanted: dict[Permission, None] = {}
    for obj, res in applied:
        ns = objects.namespace(obj) if res.namespaced else ""
        name = objects.name(obj)
        for verb in _APPLY_VERBS:
            wanted[Permission(verb, res.group, res.plural, ns, name)] = None
        if res.group != _RBAC:
            continue
        if res.kind in ("ClusterRole", "Role"):
            wanted[Permission("escalate", _RBAC, res.plural, ns)] = None
        if res.kind in ("ClusterRoleBinding", "RoleBinding"):
            ref = obj.get("roleRef") or {}
            plural = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
            role_ns = ns if plural == "roles" else ""
            wanted[Permission("bind", _RBAC, plural, role_ns, str(ref.get("name", "")))] = None
    return list(wanted)


def describe_missing(denied: Sequence[Permission]) -> list[str]:
    """One line per resource: the verbs refused on it, where. A `bind` names the role, since
    that is what the caller must be allowed to hand out."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for p in denied:
        target = f"{p.what}/{p.name}" if p.verb == "bind" else p.what
        verbs = grouped.setdefault((target, p.namespace), [])
        if p.verb not in verbs:
            verbs.append(p.verb)
    lines = []
    for (target, namespace), verbs in grouped.items():
        where = f" in namespace {namespace}" if namespace else ""
        lines.append(f"cannot {', '.join(verbs)} {target}{where}")
    return lines


async def install_permissions(kube: Kube, namespace: str) -> list[Permission]:
    """What `tidal install -n namespace` will apply, as permissions (kinds from discovery)."""
    discovery = Discovery(kube)
    install_objects = manifests.all_objects(manifests.InstallOptions(namespace=namespace))
    resources = [await discovery.for_object(o) for o in install_objects]
    return required_permissions(zip(install_objects, resources, strict=True))


async def denied(kube: Kube, permissions: Sequence[Permission]) -> list[Permission]:
    """The permissions the API server refuses the current credentials, each asked with a
    SelfSubjectAccessReview (every authenticated user may create those)."""

    async def allowed(p: Permission) -> bool:
        review = await kube.request(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            body={
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": p.attributes()},
            },
        )
        return bool((review.get("status") or {}).get("allowed"))

    answers = await asyncio.gather(*(allowed(p) for p in permissions))
    return [p for p, ok in zip(permissions, answers, strict=True) if not ok]


# -- the installation ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterInfo:
    part_of: str = ""
    version: str = ""
    managed_by: str = ""
    bootstrapped: bool = False

    @property
    def distribution(self) -> str:
        """flux's `<part-of>-<version>` ("flux-v2.9.5", "tidal-v0.1.0"); tidal leaves out
        whichever half is unknown rather than print a dangling dash."""
        return "-".join(part for part in (self.part_of, self.version) if part)


def cluster_info(
    crd_labels: Mapping[str, str], controllers: Sequence[Mapping[str, Any]] = ()
) -> ClusterInfo:
    """The installation as flux reads it off the GitRepository CRD's labels. tidal's CRDs
    carry no version label, so the version then comes from the controller Deployments."""
    version = crd_labels.get(VERSION_LABEL, "")
    if not version:
        versions = {
            (objects.meta(d).get("labels") or {}).get(VERSION_LABEL, "") for d in controllers
        }
        versions.discard("")
        version = ",".join(sorted(versions))
    return ClusterInfo(
        part_of=crd_labels.get(PART_OF_LABEL, ""),
        version=version,
        managed_by=crd_labels.get(MANAGED_BY_LABEL, ""),
        bootstrapped=all(label in crd_labels for label in BOOTSTRAP_LABELS),
    )


async def info_crd_labels(kube: Kube) -> dict[str, str]:
    """The GitRepository CRD's labels; ApiError 404 when no installation is there."""
    found = await kube.get(f"{CRDS}/{INFO_CRD}")
    return dict(objects.meta(found).get("labels") or {})


async def controllers(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    """The installation's Deployments in `namespace`, sorted by name as flux reports them."""
    listing = await kube.get(
        DEPLOYMENTS.format(namespace=namespace), {"labelSelector": PART_OF_SELECTOR}
    )
    return sorted(listing.get("items") or [], key=objects.name)


def deployment_current(live: Mapping[str, Any]) -> bool:
    """kstatus Current, which is what flux's status poller waits for."""
    try:
        return kstatus.compute(live).status is kstatus.Status.CURRENT
    except kstatus.StatusError:
        return False


async def deployment_state(kube: Kube, namespace: str, name: str) -> str:
    """The words flux reports a Deployment with: "ready", "not ready" or "not found"."""
    try:
        live = await kube.get(f"{DEPLOYMENTS.format(namespace=namespace)}/{name}")
    except ApiError as e:
        if e.status == 404:
            return "not found"
        raise
    return "ready" if deployment_current(live) else "not ready"


def images(deployment: Mapping[str, Any]) -> list[str]:
    pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [str(c.get("image", "")) for c in pod.get("containers") or []]


@dataclass(frozen=True)
class CrdState:
    name: str
    ok: bool
    message: str


def crd_states(found: Sequence[Mapping[str, Any]]) -> list[CrdState]:
    """Each CRD as flux lists it (`name/storedVersion`, its last stored version), failed when
    it has none or is not Established; then every CRD tidal installs that is missing."""
    states = []
    for c in found:
        name = objects.name(c)
        status = c.get("status") or {}
        stored = status.get("storedVersions") or []
        established = any(
            cond.get("type") == "Established" and cond.get("status") == "True"
            for cond in status.get("conditions") or []
        )
        if not stored:
            states.append(CrdState(name, False, f"no stored versions for {name}"))
        elif not established:
            states.append(CrdState(name, False, f"{name}/{stored[-1]} is not established"))
        else:
            states.append(CrdState(name, True, f"{name}/{stored[-1]}"))
    present = {objects.name(c) for c in found}
    for k in crd.KINDS:
        if k.name not in present:
            states.append(CrdState(k.name, False, f"{k.name} not found"))
    return states


async def installed_crds(kube: Kube) -> list[dict[str, Any]]:
    listing = await kube.get(CRDS, {"labelSelector": PART_OF_SELECTOR})
    return sorted(listing.get("items") or [], key=objects.name)
