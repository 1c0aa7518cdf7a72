"""Building a local directory the way kustomize-controller would build it for a Kustomization:
the engine behind `tidal build kustomization` and `tidal diff kustomization`.

The steps and their order are flux's (`flux build kustomization`, v2.9.5):

1. The Kustomization comes from the cluster, or from `--kustomization-file` (then only its
   status is taken from the cluster, for the inventory a diff compares with), or from the file
   alone with `--dry-run`, which never talks to the cluster.
2. The kustomization file is found or generated with the spec's overlay (targetNamespace,
   patches, images, components...) and filtered with the `.sourceignore` files and
   `--ignore-paths` (`tidal.cli.buildignore`).
3. kustomize builds it with load restrictions off and remote bases allowed, as the flux CLI
   does: the directory is the user's own checkout, not an untrusted artifact. Unlike flux, tidal
   never writes the generated file into that directory; the build runs on a private view.
4. postBuild substitution (`substituteFrom` read from the cluster, skipped with `--dry-run`),
   lenient unless `--strict-substitute`.
5. The owner labels `kustomize.toolkit.fluxcd.io/name|namespace`, SOPS values masked
   (`tidal.cli.sopsmask`), then spec.commonMetadata. With `--decrypt` (tidal's own), SOPS
   sources and objects are decrypted with the local keys (`tidal.cli.localkeys`) as the
   controller decrypts them (`tidal.kustomize.decryption`), before substitution, and nothing
   is masked.
6. With `--recursive`, every Flux Kustomization built is built in turn from the directory
   `--local-sources` maps its source to, its objects appended after the parent's.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tidal.api.kustomize import GROUP
from tidal.cli import sopsmask
from tidal.cli.buildignore import IgnoreError, IgnoreFilter
from tidal.cli.objects import KUSTOMIZATION
from tidal.kube import yamlio
from tidal.kube.client import ApiError, Kube
from tidal.kustomize import substitute
from tidal.kustomize.build import BuildError, Engine
from tidal.kustomize.decryption import DecryptionError, SopsDecryptor
from tidal.kustomize.generator import GeneratorError, Overlay, generate
from tidal.sops.keys import Keyring

# The flux CLI's default when --timeout is not given to the builder.
DEFAULT_TIMEOUT: Final = 80.0
_ROOT: Final = Path("/")
_MAX_OUTPUT: Final = 1 << 30
_KUSTOMIZE_CONFIG_GROUP: Final = "kustomize.config.k8s.io/"


class BuildFailure(Exception):
    """The build cannot be done; the message is what flux prints."""


@dataclass(frozen=True)
class BuildSettings:
    ignore_paths: tuple[str, ...] = ()
    strict_substitute: bool = False
    dry_run: bool = False
    recursive: bool = False
    # "Kind/namespace/name" of a source -> the local directory holding its contents
    local_sources: Mapping[str, str] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT
    # --decrypt: the local keys; None masks SOPS values as flux does
    keyring: Keyring | None = None


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def is_flux_kustomization(obj: Mapping[str, Any]) -> bool:
    return str(obj.get("apiVersion", "")).startswith(f"{GROUP}/") and (
        obj.get("kind") == "Kustomization"
    )


def same_kustomization(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return _meta(a).get("name") == _meta(b).get("name") and (
        _meta(a).get("namespace", "") == _meta(b).get("namespace", "")
    )


def read_kustomization_file(path: str, name: str, namespace: str) -> dict[str, Any]:
    """The first Kustomization document named `name` in `namespace` (or in none) in the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BuildFailure(
            f"failed to read kustomization file {path}: {exc.strerror or exc}"
        ) from None
    try:
        documents = yamlio.load_all(data, source=path)
    except yamlio.ManifestError as exc:
        raise BuildFailure(f"failed to unmarshall kustomization file {path}: {exc}") from None
    for doc in documents:
        doc_namespace = _meta(doc).get("namespace") or ""
        if (
            is_flux_kustomization(doc)
            and _meta(doc).get("name") == name
            and doc_namespace in (namespace, "")
        ):
            return doc
    raise BuildFailure(
        f"failed find kustomization with name '{name}' and namespace '{namespace}' in file '{path}'"
    )


def source_key(ks: Mapping[str, Any]) -> str:
    """The source reference as flux prints it: Kind/namespace/name, namespace defaulted."""
    ref = (ks.get("spec") or {}).get("sourceRef") or {}
    namespace = ref.get("namespace") or _meta(ks).get("namespace") or ""
    kind, name = ref.get("kind", ""), ref.get("name", "")
    return f"{kind}/{namespace}/{name}" if namespace else f"{kind}/{name}"


def _set_labels(obj: dict[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    meta = dict(_meta(obj))
    meta["labels"] = {**(meta.get("labels") or {}), **labels}
    return {**obj, "metadata": meta}


def _common_metadata(obj: dict[str, Any], common: Mapping[str, Any]) -> dict[str, Any]:
    meta = dict(_meta(obj))
    for key in ("labels", "annotations"):
        merged = {**(meta.get(key) or {}), **(common.get(key) or {})}
        if merged:
            meta[key] = merged
    return {**obj, "metadata": meta}


def _read_objects(objects: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """flux's ReadObjects: lists expanded, kustomize configs and nameless objects dropped."""
    out: list[dict[str, Any]] = []
    for obj in objects:
        items = obj.get("items")
        if str(obj.get("kind", "")).endswith("List") and isinstance(items, list):
            out.extend(_read_objects([i for i in items if isinstance(i, dict)]))
            continue
        if not (obj.get("apiVersion") and obj.get("kind") and _meta(obj).get("name")):
            continue
        if str(obj.get("kind", "")).lower() == "kustomization" and str(
            obj.get("apiVersion", "")
        ).startswith(_KUSTOMIZE_CONFIG_GROUP):
            continue
        out.append(obj)
    return out


class LocalBuilder:
    """Builds Kustomizations from local directories; `kube` is None in dry-run mode."""

    def __init__(self, settings: BuildSettings, kube: Kube | None, engine: Engine) -> None:
        self.settings = settings
        self.kube = kube
        self.engine = engine

    async def resolve(
        self,
        name: str,
        namespace: str,
        *,
        kustomization_file: str = "",
        fallback: dict[str, Any] | None = None,
        ignore_not_found: bool = False,
    ) -> dict[str, Any]:
        """The Kustomization to build (flux's build(): live object, file, or fallback)."""
        live: dict[str, Any] | None = fallback
        if not self.settings.dry_run:
            assert self.kube is not None
            try:
                live = await self.kube.get(KUSTOMIZATION.path(namespace, name))
            except ApiError as exc:
                local = fallback is not None or ignore_not_found
                if exc.status != 404 or not local:
                    message = exc.message
                    raise BuildFailure(f"failed to get kustomization object: {message}") from None
        if kustomization_file:
            try:
                ks = read_kustomization_file(kustomization_file, name, namespace)
            except BuildFailure as exc:
                raise BuildFailure(f"failed to get kustomization object: {exc}") from None
            status = (live or {}).get("status") or {}
            if not self.settings.dry_run and status.get("inventory") is not None:
                ks = {**ks, "status": status}
            return ks
        if live is None:
            raise BuildFailure("failed to get kustomization object: not found")
        return live

    async def _variables(self, ks: Mapping[str, Any]) -> dict[str, str]:
        post = (ks.get("spec") or {}).get("postBuild") or {}
        sources: list[dict[str, str]] = []
        if not self.settings.dry_run:
            assert self.kube is not None
            namespace = _meta(ks).get("namespace") or ""
            for ref in post.get("substituteFrom") or ():
                kind, ref_name = ref.get("kind", ""), ref.get("name", "")
                plural = {"ConfigMap": "configmaps", "Secret": "secrets"}.get(kind)
                if plural is None:
                    continue
                try:
                    raw = await self.kube.get(f"/api/v1/namespaces/{namespace}/{plural}/{ref_name}")
                except ApiError as exc:
                    if exc.status == 404 and ref.get("optional"):
                        continue
                    message = exc.message
                    raise substitute.SubstitutionError(
                        f"substitute from '{kind}/{ref_name}' error: {message}"
                    ) from None
                if kind == "ConfigMap":
                    sources.append(substitute.config_map_values(raw))
                else:
                    sources.append(substitute.secret_values(raw))
        return substitute.merge_variables(sources, post.get("substitute") or {})

    async def _substitute(
        self, ks: Mapping[str, Any], objects: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        post = (ks.get("spec") or {}).get("postBuild")
        if post is None:
            return objects
        strategy: substitute.SubstituteStrategy = (
            "Always" if post.get("substituteStrategy") == "Always" else "WithVariables"
        )
        out = []
        loaded: dict[str, str] | None = None
        for obj in objects:
            try:
                if substitute.substitution_disabled(obj):
                    out.append(obj)
                    continue
                # flux reads substituteFrom for every object; once is enough to get its answer.
                if loaded is None:
                    loaded = await self._variables(ks)
                out.append(
                    substitute.substitute_object(
                        obj, loaded, strict=self.settings.strict_substitute, strategy=strategy
                    )
                )
            except (substitute.SubstitutionError, ValueError) as exc:
                name = _meta(obj).get("name", "")
                raise BuildFailure(f"var substitution failed for '{name}': {exc}") from None
        return out

    async def build(self, ks: dict[str, Any], directory: Path) -> list[dict[str, Any]]:
        """The objects of one Kustomization built from `directory` (an absolute path)."""
        spec = ks.get("spec") or {}
        rel = str(directory.relative_to(_ROOT))
        overlay = Overlay.from_spec(spec)
        if not await asyncio.to_thread(directory.is_dir):
            raise BuildFailure(
                "failed to generate kustomization.yaml: failed to load ignore patterns: "
                f"open {directory}: no such file or directory <nil>"
            )
        try:
            generated = await asyncio.to_thread(generate, _ROOT, rel, overlay)
            # Reading the patterns walks the whole directory for .sourceignore files: off the
            # event loop, like the filtering itself.
            ignore = await asyncio.to_thread(IgnoreFilter, directory, self.settings.ignore_paths)
            generated = await asyncio.to_thread(ignore.apply, generated)
        except (GeneratorError, IgnoreError) as exc:
            # flux appends the (nil) error of restoring the directory it wrote into.
            raise BuildFailure(f"failed to generate kustomization.yaml: {exc} <nil>") from None
        keyring = self.settings.keyring
        decryptor = SopsDecryptor(keyring) if keyring is not None else None
        try:
            objects = await self.engine.build(
                _ROOT,
                rel,
                generated=generated,
                allow_remote_bases=True,
                timeout=self.settings.timeout,
                max_output_bytes=_MAX_OUTPUT,
                decryptor=decryptor,
            )
            if decryptor is not None:
                objects = await asyncio.to_thread(decryptor.decrypt_objects, objects)
        except (BuildError, DecryptionError) as exc:
            raise BuildFailure(str(exc)) from None
        objects = await self._substitute(ks, objects)
        owner = {
            f"{GROUP}/name": str(_meta(ks).get("name", "")),
            f"{GROUP}/namespace": str(_meta(ks).get("namespace", "")),
        }
        try:
            objects = [
                _set_labels(o, owner)
                if decryptor is not None
                else sopsmask.mask_secret(_set_labels(o, owner))
                for o in objects
            ]
        except sopsmask.MaskError as exc:
            raise BuildFailure(str(exc)) from None
        objects = _read_objects(objects)
        common = spec.get("commonMetadata")
        if isinstance(common, Mapping):
            objects = [_common_metadata(o, common) for o in objects]
        return objects

    def local_directory(self, ks: Mapping[str, Any]) -> Path:
        key = source_key(ks)
        local = self.settings.local_sources.get(key)
        if local is None:
            name = _meta(ks).get("name", "")
            raise BuildFailure(f"cannot get local path for {key} of kustomization {name}")
        path = str((ks.get("spec") or {}).get("path") or "")
        return Path(os.path.normpath(Path.cwd() / local / path))

    async def build_tree(self, ks: dict[str, Any], directory: Path) -> list[dict[str, Any]]:
        """`build`, plus (with `recursive`) the Kustomizations it contains, depth first."""
        objects = await self.build(ks, directory)
        if not self.settings.recursive:
            return objects
        nested: list[dict[str, Any]] = []
        for obj in objects:
            if not is_flux_kustomization(obj) or same_kustomization(obj, ks):
                continue
            child_dir = self.local_directory(obj)
            child = await self.resolve(
                str(_meta(obj).get("name", "")),
                str(_meta(obj).get("namespace", "")),
                fallback=obj,
            )
            nested.extend(await self.build_tree(child, child_dir))
        return objects + nested
