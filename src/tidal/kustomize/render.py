"""From an unpacked artifact to the objects to apply: Flux's steps 10-13 of a reconcile.

generate/patch kustomization.yaml → decrypt SOPS sources (spec.decryption) → kustomize build →
decrypt SOPS objects → refuse any ciphertext left → post-build substitution. Every failure is a
RenderError whose text is what the user reads in the Ready condition (reason BuildFailed, or
ArtifactFailed for a missing path).
"""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tidal.api.kustomize import Kustomization
from tidal.kube import yamlio
from tidal.kube.client import ApiError, Kube
from tidal.kustomize import build as kbuild
from tidal.kustomize import generator, substitute
from tidal.kustomize.decryption import DecryptionError, SopsDecryptor, decryption_disabled
from tidal.sops.errors import SopsError
from tidal.sops.keys import Keyring
from tidal.ssa.objects import describe


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
        if decryption_disabled(obj):
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
        sops_age_secret: tuple[str, str] | None = None,
    ) -> None:
        """`sops_age_secret` (namespace, name): Flux's --sops-age-secret, the age keys for
        Kustomizations whose spec.decryption names no Secret."""
        self.engine = engine
        self.sops_age_secret = sops_age_secret
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

    async def keyring(self, obj: Kustomization, kube: Kube) -> Keyring:
        """The keys of spec.decryption.secretRef (or the age keys of --sops-age-secret), with
        Flux's errors; read with the controller's own client, as Flux does."""
        decryption = obj.spec.decryption
        assert decryption is not None
        if decryption.secret_ref is not None:
            namespace, name, what = obj.metadata.namespace, decryption.secret_ref.name, ""
        elif self.sops_age_secret is not None:
            (namespace, name), what = self.sops_age_secret, "SOPS age "
        else:
            return Keyring()
        try:
            data = await kube.secret_data(namespace, name)
        except ApiError as e:
            if e.status == 404:
                raise RenderError(e.message) from None
            raise RenderError(
                f"cannot get sops {what}decryption Secret '{namespace}/{name}': {e.message}"
            ) from None
        try:
            return await asyncio.to_thread(
                Keyring.from_secret_data,
                data,
                f"{namespace}/{name}",
                age_only=decryption.secret_ref is None,
            )
        except SopsError as e:
            raise RenderError(str(e)) from None

    async def render(
        self, tree: Path, obj: Kustomization, kube: Kube, *, digest: str = ""
    ) -> tuple[list[dict[str, Any]], bytes]:
        """The objects to apply and the manifests they came from (for the history digest).
        `digest` is the artifact's verified digest: the same build of the same immutable tree
        is then not run twice (see kustomize.build.Engine)."""
        decryptor = None
        if obj.spec.decryption is not None:
            decryptor = SopsDecryptor(await self.keyring(obj, kube))
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
                decryptor=decryptor,
            )
        except (kbuild.BuildError, generator.GeneratorError, DecryptionError) as e:
            raise RenderError(str(e)) from None
        if decryptor is not None:
            try:
                objects = await asyncio.to_thread(decryptor.decrypt_objects, objects)
            except DecryptionError as e:
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
