"""Post-rendering a HelmRelease's chart as helm-controller does, in Helm 4's pipeline.

helm-controller hands Helm one post-renderer made of, in order: each `spec.postRenderers[]`
kustomize step (patches and images, a kustomize build over the rendered objects), the
`spec.commonMetadata` labels and annotations, and last the origin labels
(`helm.toolkit.fluxcd.io/name`/`namespace`), which therefore win over commonMetadata.

Helm 4 runs a post-renderer on a stream of documents before it tells hooks from resources:
every document is annotated with the template file it came from, the stream is post-rendered,
and the output is split back into files by that annotation (which is then removed; documents
without one become `generated-by-postrender[-<group>]-<i>.yaml`). `spec.postRenderStrategy`
chooses what goes through: `combined` (the default: hooks and resources in one stream),
`separate` (hooks and resources post-rendered as two streams) or `nohooks` (hooks left alone).

Documents are read and written with kyaml's typing (tidal.kube.yamlio), as kustomize reads
them in Flux; the text of a post-rendered release is therefore tidal's YAML of the same objects,
not byte for byte kyaml's.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tidal.api.helmrelease import (
    GROUP,
    POST_RENDER_COMBINED,
    POST_RENDER_NO_HOOKS,
    POST_RENDER_SEPARATE,
    CommonMetadata,
    HelmRelease,
    Kustomize,
)
from tidal.helm.manifests import sort_manifests, split_manifests
from tidal.kube import yamlio
from tidal.kustomize.build import BuildError, Engine

FILENAME_ANNOTATION: Final = "postrenderer.helm.sh/postrender-filename"
_INPUT: Final = "helm-output.yaml"
# A post-rendered release is applied whole; this bounds what one kustomize step may return.
MAX_OUTPUT_BYTES: Final = 64 * 1024 * 1024


class PostRenderError(Exception):
    """A post-renderer failed; the message says which step, as Helm words it."""


@dataclass(frozen=True)
class PostRenderers:
    """What helm-controller's BuildPostRenderers makes of a HelmRelease."""

    kustomize: tuple[Kustomize, ...] = ()
    common_metadata: CommonMetadata | None = None
    origin_labels: Mapping[str, str] = field(default_factory=dict)
    strategy: str = POST_RENDER_COMBINED

    @classmethod
    def of(cls, hr: HelmRelease) -> PostRenderers:
        return cls(
            kustomize=tuple(r.kustomize for r in hr.spec.post_renderers if r.kustomize),
            common_metadata=hr.spec.common_metadata,
            origin_labels={
                f"{GROUP}/name": hr.metadata.name,
                f"{GROUP}/namespace": hr.metadata.namespace,
            },
            strategy=hr.spec.post_render_strategy or POST_RENDER_COMBINED,
        )


def _is_partial_or_empty(path: str, content: str) -> bool:
    return path.rsplit("/", 1)[-1].startswith("_") or not content.strip()


def annotate_and_merge(files: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every document of every file, in file-name order, marked with its file."""
    objects: list[dict[str, Any]] = []
    for path in sorted(files):
        content = files[path]
        if _is_partial_or_empty(path, content):
            continue
        for doc in split_manifests(content):
            if not doc.strip():
                continue
            try:
                parsed = yamlio.load_all(doc, source=path)
            except yamlio.ManifestError as e:
                raise PostRenderError(f"error merging manifests: parsing {path}: {e}") from None
            for obj in parsed:
                metadata = obj.setdefault("metadata", {})
                if not isinstance(metadata, dict):
                    raise PostRenderError(
                        f"error merging manifests: annotating {path}: metadata is not a mapping"
                    )
                annotations = metadata.get("annotations")
                if not isinstance(annotations, dict):
                    annotations = metadata["annotations"] = {}
                annotations[FILENAME_ANNOTATION] = path
                objects.append(obj)
    return objects


def split_and_deannotate(objects: Iterable[dict[str, Any]], fallback: str = "") -> dict[str, str]:
    """The objects written back into the files their annotation names."""
    by_file: dict[str, list[dict[str, Any]]] = {}
    for i, obj in enumerate(objects):
        metadata = obj.get("metadata")
        annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
        path = ""
        if isinstance(annotations, dict):
            path = str(annotations.pop(FILENAME_ANNOTATION, "") or "")
            if not annotations and isinstance(metadata, dict):
                del metadata["annotations"]
        if not path:
            path = (
                f"generated-by-postrender-{fallback}-{i}.yaml"
                if fallback
                else f"generated-by-postrender-{i}.yaml"
            )
        by_file.setdefault(path, []).append(obj)
    return {path: yamlio.dump_all(docs) for path, docs in by_file.items()}


def _kustomization(step: Kustomize) -> dict[str, Any]:
    # The kustomization helm-controller writes for one kustomize post-renderer.
    out: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [_INPUT],
    }
    if step.images:
        out["images"] = [image.to_dict() for image in step.images]
    if step.patches:
        out["patches"] = [patch.to_dict() for patch in step.patches]
    return out


async def _kustomize(
    step: Kustomize, objects: list[dict[str, Any]], engine: Engine, build_timeout: float
) -> list[dict[str, Any]]:
    workspace = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="postrender-"))
    try:

        def write() -> None:
            (workspace / _INPUT).write_text(yamlio.dump_all(objects))
            (workspace / "kustomization.yaml").write_text(json.dumps(_kustomization(step)))

        await asyncio.to_thread(write)
        return await engine.build(
            workspace, ".", timeout=build_timeout, max_output_bytes=MAX_OUTPUT_BYTES
        )
    except BuildError as e:
        raise PostRenderError(str(e)) from None
    finally:
        await asyncio.to_thread(shutil.rmtree, workspace, True)


def _set_metadata(objects: Sequence[dict[str, Any]], key: str, values: Mapping[str, str]) -> None:
    # kustomize's label/annotation transformers with only metadata/<key> as field spec: create
    # the map when missing, overwrite the keys given.
    if not values:
        return
    for obj in objects:
        metadata = obj.setdefault("metadata", {})
        current = metadata.get(key)
        if not isinstance(current, dict):
            current = metadata[key] = {}
        current.update(values)


async def _run(
    renderers: PostRenderers, objects: list[dict[str, Any]], engine: Engine, build_timeout: float
) -> list[dict[str, Any]]:
    for step in renderers.kustomize:
        objects = await _kustomize(step, objects, engine, build_timeout)
    common = renderers.common_metadata
    if common is not None:
        _set_metadata(objects, "labels", common.labels)
        _set_metadata(objects, "annotations", common.annotations)
    _set_metadata(objects, "labels", renderers.origin_labels)
    return objects


def _group_files(files: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    # Helm's separate/nohooks split: hook documents and resource documents, per file.
    hooks, manifests = sort_manifests(files)
    hook_files: dict[str, str] = {}
    for hook in hooks:
        hook_files[hook.path] = (
            f"{hook_files[hook.path]}\n---\n{hook.manifest}"
            if hook.path in hook_files
            else hook.manifest
        )
    manifest_files: dict[str, str] = {}
    for m in manifests:
        manifest_files[m.path] = (
            f"{manifest_files[m.path]}\n---\n{m.content}" if m.path in manifest_files else m.content
        )
    return hook_files, manifest_files


def _add(into: dict[str, str], files: Mapping[str, str]) -> None:
    for path, text in files.items():
        into[path] = f"{into[path]}\n---\n{text}" if path in into else text


async def post_render(
    files: Mapping[str, str], renderers: PostRenderers, engine: Engine, *, build_timeout: float
) -> dict[str, str]:
    """The rendered files (template path -> text) after the post-renderers."""
    if renderers.strategy == POST_RENDER_COMBINED:
        objects = await asyncio.to_thread(annotate_and_merge, files)
        objects = await _run(renderers, objects, engine, build_timeout)
        return await asyncio.to_thread(split_and_deannotate, objects)
    if renderers.strategy not in (POST_RENDER_SEPARATE, POST_RENDER_NO_HOOKS):
        raise PostRenderError(f"unknown post-render strategy: '{renderers.strategy}'")
    hook_files, manifest_files = await asyncio.to_thread(_group_files, files)
    out: dict[str, str] = {}
    groups = (
        ("hooks", hook_files, renderers.strategy == POST_RENDER_SEPARATE),
        ("manifests", manifest_files, True),
    )
    for name, group, transform in groups:
        if not group:
            continue
        if not transform:
            _add(out, group)
            continue
        objects = await asyncio.to_thread(annotate_and_merge, group)
        objects = await _run(renderers, objects, engine, build_timeout)
        _add(out, await asyncio.to_thread(split_and_deannotate, objects, name))
    return out
