"""From an unpacked artifact to the objects to apply: Flux's steps 10-13 of a reconcile.

generate/patch kustomization.yaml → kustomize build → refuse SOPS ciphertext (until decryption
exists) → post-build substitution. Every failure is a RenderError whose text is what the user
reads in the Ready condition (reason BuildFailed, or ArtifactFailed for a missing path).
"""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tidal.api.kustomize import DECRYPT_ANNOTATION, DISABLED, Kustomization
from tidal.kube import yamlio
from tidal.kube.client import ApiError, Kube
from tidal.kustomize import build as kbuild
from tidal.kustomize import generator, substitute
from tidal.ssa.objects import any_in_metadata, describe


class RenderError(Exception):
    pass


def secure_join(root: Path, path: str) -> Path:
    """`path` under `root`, with `..` clamped at the root as Flux's securejoin does."""
    clean = posixpath.normpath("/" + path.replace("\\", "/")).lstrip("/")
    return root / clean if clean not in ("", ".") else root


def _is_sops_encrypted(obj: Mapping[str, Any]) -> bool:
    sops = obj.get("sops")
    return isinstance(sops, dict) and bool(sops.get("mac") or sops.get("lastmodified"))


def refuse_ciphertext(objects: Sequence[Mapping[str, Any]]) -> None:
    """Never apply SOPS ciphertext: Flux's error for a Secret whose values are encrypted
    while the Kustomization configures no decryption."""
    for obj in objects:
        if any_in_metadata(obj, {DECRYPT_ANNOTATION: DISABLED}):
            continue
        if _is_sops_encrypted(obj):
            raise RenderError(
                f"{describe(obj)} is SOPS encrypted, configuring decryption is required for "
                "this secret to be reconciled"
            )


class Renderer:
    """Builds Kustomizations; shared by every reconcile of the controller."""

    def __init__(
        self,
        *,
        no_remote_bases: bool = False,
        build_timeout: float = 300.0,
        max_output_bytes: int = 128 << 20,
        strict_substitution: bool = True,
        engine: kbuild.Engine | None = None,
    ) -> None:
        self.engine = engine
        self.no_remote_bases = no_remote_bases
        self.build_timeout = build_timeout
        self.max_output_bytes = max_output_bytes
        self.strict_substitution = strict_substitution

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.aclose()

    def check_path(self, tree: Path, path: str) -> None:
        target = secure_join(tree, path)
        if not target.exists():
            shown = path or "./"
            raise RenderError(
                f"kustomization path not found: stat {shown}: no such file or directory"
            )

    async def _variables(self, obj: Kustomization, kube: Kube) -> dict[str, str] | None:
        post = obj.spec.post_build
        if post is None:
            return None
        sources: list[dict[str, str]] = []
        for ref in post.substitute_from:
            plural = "configmaps" if ref.kind == "ConfigMap" else "secrets"
            try:
                raw = await kube.get(
                    f"/api/v1/namespaces/{obj.metadata.namespace}/{plural}/{ref.name}"
                )
            except ApiError as e:
                if e.status == 404 and ref.optional:
                    continue
                raise RenderError(
                    f"substitute from '{ref.kind}/{ref.name}' error: {e.message}"
                ) from None
            if ref.kind == "ConfigMap":
                sources.append(substitute.config_map_values(raw))
            else:
                sources.append(substitute.secret_values(raw))
        return substitute.merge_variables(sources, post.substitute)

    async def render(
        self, tree: Path, obj: Kustomization, kube: Kube, *, digest: str = ""
    ) -> tuple[list[dict[str, Any]], bytes]:
        """The objects to apply and the manifests they came from (for the history digest).
        `digest` is the artifact's verified digest: the same build of the same immutable tree
        is then not run twice (see kustomize.build.Engine)."""
        if obj.spec.decryption is not None:
            raise RenderError(
                "decryption with provider 'sops' is not supported by tidal yet: nothing from "
                "this revision is applied, so no ciphertext can reach the cluster"
            )
        variables = await self._variables(obj, kube)
        try:
            objects = await kbuild.build_kustomization(
                tree,
                obj.spec.path,
                generator.overlay_of(obj.spec),
                allow_remote_bases=not self.no_remote_bases,
                timeout=self.build_timeout,
                max_output_bytes=self.max_output_bytes,
                engine=self.engine,
                cache_key=digest,
            )
        except (kbuild.BuildError, generator.GeneratorError) as e:
            raise RenderError(str(e)) from None
        refuse_ciphertext(objects)
        # None exactly when there is no spec.postBuild
        if variables is not None:
            strategy = obj.spec.effective_substitute_strategy()
            substituted = []
            for o in objects:
                try:
                    substituted.append(
                        substitute.substitute_object(
                            o, variables, strict=self.strict_substitution, strategy=strategy
                        )
                    )
                except substitute.SubstitutionError as e:
                    raise RenderError(substitute.post_build_failure(o, e)) from None
            objects = substituted
        manifests = await asyncio.to_thread(lambda: yamlio.dump_all(objects).encode())
        return objects, manifests
