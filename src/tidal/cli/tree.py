"""`tidal tree kustomization`: the objects a Kustomization applied (its status.inventory) as a
tree, descending into the Kustomizations and HelmReleases among them, as `flux tree
kustomization` prints it (text, or `-o json|yaml` with flux's field names)."""

from __future__ import annotations

import base64
import binascii
import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import click

from tidal.api.kustomize import GROUP
from tidal.cli.cluster import Session, run
from tidal.cli.objects import KUSTOMIZATION
from tidal.cli.options import CliError, global_flags, options
from tidal.cli.output import stdout
from tidal.kube import goyaml, yamlio
from tidal.kube.client import ApiError
from tidal.kube.discovery import Discovery, NoMatchError
from tidal.kustomize.inventory import InventoryError, ObjRef, parse_id
from tidal.ssa.objects import subject

_TOOLKIT: Final = "toolkit.fluxcd.io"
_HELM_GROUP: Final = "helm.toolkit.fluxcd.io"


@dataclass
class Node:
    ref: ObjRef
    children: list[Node] = field(default_factory=list)

    def text(self) -> str:
        return subject(self.ref.kind, self.ref.namespace, self.ref.name)

    def to_dict(self) -> dict[str, Any]:
        # flux marshals cli-utils' ObjMetadata, whose fields carry no JSON tags.
        out: dict[str, Any] = {
            "resource": {
                "Namespace": self.ref.namespace,
                "Name": self.ref.name,
                "GroupKind": {"Group": self.ref.group, "Kind": self.ref.kind},
            }
        }
        if self.children:
            out["resources"] = [c.to_dict() for c in self.children]
        return out


def render(root: Node) -> str:
    """The tree as text: one object per line, drawn with box characters."""
    lines = [root.text()]

    def items(nodes: list[Node], spaces: list[bool]) -> None:
        for i, node in enumerate(nodes):
            last = i == len(nodes) - 1
            indent = "".join("    " if space else "│   " for space in spaces)
            lines.append(indent + ("└── " if last else "├── ") + node.text())
            if node.children:
                items(node.children, [*spaces, last])

    items(root.children, [])
    return "\n".join(lines) + "\n"


class _Walker:
    def __init__(self, s: Session, compact: bool) -> None:
        self.s = s
        self.compact = compact
        self.discovery = Discovery(s.kube)

    def _shown(self, ref: ObjRef) -> bool:
        return not self.compact or _TOOLKIT in ref.group

    async def kustomization(self, node: Node, ks: Mapping[str, Any]) -> None:
        entries = ((ks.get("status") or {}).get("inventory") or {}).get("entries") or []
        meta = ks.get("metadata") or {}
        remote = (ks.get("spec") or {}).get("kubeConfig") is not None
        for entry in entries:
            try:
                ref = parse_id(str(entry.get("id", "")), str(entry.get("v", "")))
            except InventoryError as exc:
                raise CliError(str(exc)) from None
            if not self._shown(ref):
                continue
            is_ks = ref.group == GROUP and ref.kind == "Kustomization"
            if is_ks and ref.namespace == meta.get("namespace") and ref.name == meta.get("name"):
                continue
            child = Node(ref)
            node.children.append(child)
            if ref.group == _HELM_GROUP and ref.kind == "HelmRelease":
                child.children.extend(
                    Node(r) for r in await self.helm_release(ref) if self._shown(r)
                )
            if is_ks and not remote:
                try:
                    nested = await self.s.kube.get(KUSTOMIZATION.path(ref.namespace, ref.name))
                except ApiError as exc:
                    message = exc.message
                    raise CliError(f"failed to find object: {message}") from None
                await self.kustomization(child, nested)

    async def helm_release(self, ref: ObjRef) -> list[ObjRef]:
        """The objects of the release's latest Helm storage Secret."""
        version = ref.version or "v2"
        hr = await self.s.kube.get(
            f"/apis/{_HELM_GROUP}/{version}/namespaces/{ref.namespace}/helmreleases/{ref.name}"
        )
        if (hr.get("spec") or {}).get("kubeConfig") is not None:
            return []
        status = hr.get("status") or {}
        history = status.get("history") or []
        storage_namespace = status.get("storageNamespace") or ""
        if not storage_namespace or not history:
            return []
        latest = history[0]
        secret_name = f"sh.helm.release.v1.{latest.get('name')}.v{latest.get('version')}"
        try:
            secret = await self.s.kube.get(
                f"/api/v1/namespaces/{storage_namespace}/secrets/{secret_name}"
            )
        except ApiError as exc:
            if exc.status == 404:
                return []
            raise
        where = f"{ref.namespace}/{ref.name}"
        try:
            raw = base64.b64decode(base64.b64decode((secret.get("data") or {})["release"]))
            if raw[:3] == b"\x1f\x8b\x08":
                raw = gzip.decompress(raw)
            manifest = str(json.loads(raw).get("manifest") or "")
            objects = yamlio.load_all(manifest, source=f"HelmRelease {where}")
        except (KeyError, binascii.Error, OSError, ValueError) as exc:
            raise CliError(
                f"failed to decode the Helm storage object for HelmRelease '{where}': {exc}"
            ) from None
        refs = []
        for obj in objects:
            meta = obj.get("metadata") or {}
            namespace = str(meta.get("namespace") or "")
            if not namespace:
                try:
                    resource = await self.discovery.for_object(obj)
                    if resource.namespaced:
                        namespace = str(latest.get("namespace") or "")
                except NoMatchError:
                    pass
            group = str(obj.get("apiVersion", "")).rpartition("/")[0]
            refs.append(ObjRef(namespace, str(meta.get("name", "")), group, str(obj["kind"])))
        return refs


@click.group()
def tree() -> None:
    """Print the objects a Flux resource manages."""


@tree.command("kustomization")
@click.argument("name", required=False)
@click.option("--compact", is_flag=True, help="Only list Flux objects.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["json", "yaml"]),
    default=None,
    help="Print the tree as json or yaml instead of text.",
)
@global_flags
@click.pass_context
def tree_kustomization(
    ctx: click.Context, name: str | None, compact: bool, output: str | None
) -> None:
    """Print the objects a Kustomization applied, and those of the Kustomizations and
    HelmReleases among them."""
    if not name:
        raise CliError("kustomization name is required")
    opts = options(ctx)

    async def work(s: Session) -> Node:
        ks = await s.kube.get(KUSTOMIZATION.path(opts.namespace, name))
        meta = ks.get("metadata") or {}
        root = Node(ObjRef(str(meta.get("namespace", "")), name, GROUP, "Kustomization"))
        await _Walker(s, compact).kustomization(root, ks)
        return root

    root = run(opts, work)
    if output == "json":
        stdout(json.dumps(root.to_dict(), indent=2, ensure_ascii=False) + "\n")
    elif output == "yaml":
        stdout(goyaml.marshal(root.to_dict()) + "\n")
    else:
        stdout(render(root) + "\n")


# flux's aliases.
tree.add_command(tree_kustomization, "ks")
