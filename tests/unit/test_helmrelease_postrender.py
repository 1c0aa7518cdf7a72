"""Post-rendering as helm-controller does it on Helm 4: kustomize patches and images, then
commonMetadata, then the origin labels, with Helm's file bookkeeping around them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tidal.api.helmrelease import CommonMetadata, Kustomize
from tidal.api.kustomize_types import Image, Patch, Selector
from tidal.helmrelease.postrender import (
    FILENAME_ANNOTATION,
    PostRenderers,
    annotate_and_merge,
    post_render,
    split_and_deannotate,
)
from tidal.kube import yamlio
from tidal.kustomize.build import Engine

pytest.importorskip("helm_python")

FILES = {
    "app/templates/deploy.yaml": (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
        "  labels:\n    helm.toolkit.fluxcd.io/name: spoofed\nspec:\n  template:\n    spec:\n"
        "      containers:\n      - name: web\n        image: nginx:1.0\n"
    ),
    "app/templates/cms.yaml": (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n"
    ),
    "app/templates/hook.yaml": (
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n"
        "    helm.sh/hook: pre-install\n"
    ),
    "app/templates/_helpers.tpl": "",
    "app/templates/empty.yaml": "\n",
}
ORIGIN = {"helm.toolkit.fluxcd.io/name": "web", "helm.toolkit.fluxcd.io/namespace": "apps"}


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    e = Engine(isolation="thread")
    yield e
    await e.aclose()


def _objects(files: dict[str, str]) -> dict[str, dict[str, object]]:
    out = {}
    for path, text in files.items():
        for obj in yamlio.load_all(text):
            out[f"{path}:{obj['metadata']['name']}"] = obj
    return out


def test_files_round_trip_through_the_annotation() -> None:
    objects = annotate_and_merge(FILES)
    assert [o["metadata"]["annotations"][FILENAME_ANNOTATION] for o in objects] == [
        "app/templates/cms.yaml",
        "app/templates/cms.yaml",
        "app/templates/deploy.yaml",
        "app/templates/hook.yaml",
    ]
    files = split_and_deannotate(objects)
    assert sorted(files) == ["app/templates/cms.yaml", "app/templates/deploy.yaml",
                             "app/templates/hook.yaml"]  # fmt: skip
    back = _objects(files)
    # The annotation is gone, and so is an annotations map it alone made.
    assert "annotations" not in back["app/templates/cms.yaml:a"]["metadata"]  # type: ignore[operator]
    hook = back["app/templates/hook.yaml:migrate"]["metadata"]
    assert hook["annotations"] == {"helm.sh/hook": "pre-install"}  # type: ignore[index]
    strays = split_and_deannotate([{"kind": "X", "metadata": {"name": "x"}}], "hooks")
    assert list(strays) == ["generated-by-postrender-hooks-0.yaml"]


async def test_kustomize_then_common_metadata_then_origin_labels(engine: Engine) -> None:
    renderers = PostRenderers(
        kustomize=(
            Kustomize(
                patches=[
                    Patch(
                        patch='[{"op": "add", "path": "/data", "value": {"k": "v"}}]',
                        target=Selector(kind="ConfigMap", name="a"),
                    )
                ],
                images=[Image(name="nginx", new_tag="2.0")],
            ),
        ),
        common_metadata=CommonMetadata(
            labels={"team": "web", "helm.toolkit.fluxcd.io/name": "common"},
            annotations={"owner": "ops"},
        ),
        origin_labels=ORIGIN,
    )
    files = await post_render(FILES, renderers, engine, build_timeout=30)
    objects = _objects(files)
    assert objects["app/templates/cms.yaml:a"]["data"] == {"k": "v"}
    assert "data" not in objects["app/templates/cms.yaml:b"]
    deploy = objects["app/templates/deploy.yaml:web"]
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2.0"  # type: ignore[index]
    for obj in objects.values():
        labels = obj["metadata"]["labels"]  # type: ignore[index]
        # Origin labels win over commonMetadata and over what the chart wrote.
        assert labels["helm.toolkit.fluxcd.io/name"] == "web"
        assert labels["team"] == "web"
        assert obj["metadata"]["annotations"]["owner"] == "ops"  # type: ignore[index]


async def test_nohooks_leaves_hooks_alone_and_separate_renders_them(engine: Engine) -> None:
    nohooks = PostRenderers(origin_labels=ORIGIN, strategy="nohooks")
    files = await post_render(FILES, nohooks, engine, build_timeout=30)
    objects = _objects(files)
    assert "labels" not in objects["app/templates/hook.yaml:migrate"]["metadata"]  # type: ignore[operator]
    assert objects["app/templates/cms.yaml:a"]["metadata"]["labels"] == ORIGIN  # type: ignore[index]
    separate = PostRenderers(origin_labels=ORIGIN, strategy="separate")
    objects = _objects(await post_render(FILES, separate, engine, build_timeout=30))
    assert objects["app/templates/hook.yaml:migrate"]["metadata"]["labels"] == ORIGIN  # type: ignore[index]


async def test_a_patch_kustomize_rejects_is_a_post_render_error(engine: Engine) -> None:
    from tidal.helmrelease.postrender import PostRenderError

    bad = PostRenderers(
        kustomize=(Kustomize(patches=[Patch(patch="not: [valid", target=Selector(kind="X"))]),),
        origin_labels=ORIGIN,
    )
    with pytest.raises(PostRenderError):
        await post_render(FILES, bad, engine, build_timeout=30)
