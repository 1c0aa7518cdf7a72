"""Types of fluxcd/pkg/apis/kustomize: the kustomize vocabulary (image overrides, patches and
the selectors that target them, CEL health checks) that Kustomization and HelmRelease
post-renderers share."""

from __future__ import annotations

from typing import Annotated

from tidal.api.base import Model, field

_SELECTOR_SYNTAX = "in Kubernetes label-selector syntax"


class Image(Model):
    """An image reference to rewrite: a new name, a new tag, or a digest."""

    name: Annotated[str, field("The image name to match, without a tag.")]
    new_name: Annotated[str, field("The name to replace the matched name with.")] = ""
    new_tag: Annotated[str, field("The tag to replace the original tag with.")] = ""
    digest: Annotated[
        str, field("The digest to pin the image to; when set, newTag is not used.")
    ] = ""


class Selector(Model):
    """Which objects a patch or rule applies to; an object must match every field set."""

    group: Annotated[str, field("The API group of the objects.")] = ""
    version: Annotated[str, field("The API version of the objects.")] = ""
    kind: Annotated[str, field("The kind of the objects.")] = ""
    namespace: Annotated[str, field("The namespace of the objects.")] = ""
    name: Annotated[str, field("The name of the objects.")] = ""
    annotation_selector: Annotated[
        str, field(f"A selector over the objects' annotations, {_SELECTOR_SYNTAX}.")
    ] = ""
    label_selector: Annotated[
        str, field(f"A selector over the objects' labels, {_SELECTOR_SYNTAX}.")
    ] = ""


class Patch(Model):
    """A strategic-merge patch or a JSON 6902 operation list, and the objects it targets."""

    patch: Annotated[
        str,
        field("The patch: a strategic-merge YAML document or a JSON 6902 list of operations."),
    ]
    target: Annotated[
        Selector | None,
        field("The objects to patch; a strategic-merge patch names its own target otherwise."),
    ] = None


class CustomHealthCheck(Model):
    """CEL expressions computing the health of a custom resource kind."""

    api_version: Annotated[
        str, field("The API version of the resources; only its group is matched.")
    ]
    current: Annotated[
        str, field("A CEL expression that is true once the resource reached its desired state.")
    ]
    kind: Annotated[str, field("The kind of the resources.")] = ""
    in_progress: Annotated[
        str, field("A CEL expression that is true while the resource is still getting there.")
    ] = ""
    failed: Annotated[
        str, field("A CEL expression that is true when the resource failed to get there.")
    ] = ""
