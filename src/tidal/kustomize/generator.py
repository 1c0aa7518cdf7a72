"""The kustomization file Flux builds: found or generated, then overlaid with the spec.

This is fluxcd/pkg `kustomize` Generator.GenerateManifest (what kustomize-controller runs before
each build, spec §5.3) as a pure function over a directory: it reads the artifact and returns
the file Flux would write, without writing anything. The caller builds from a private view of
the artifact with this file in place (`tidal.kustomize.build`), so the shared, unpacked artifact
is never modified.

- An existing `kustomization.yaml`, `kustomization.yml` or `Kustomization` (first found) is
  decoded the way Flux decodes it, into kustomize's `types.Kustomization` with sigs.k8s.io/yaml:
  go-yaml v2 scalars (a bare `yes` is a boolean), Go's case-insensitive JSON field names, unknown
  fields silently dropped (kustomize itself would refuse them: Flux's rewrite hides them), empty
  values omitted. With no `resources` it gets `buildMetadata: [originAnnotations]`, replacing
  any it had (Flux's guard against kustomize's "kustomization.yaml is empty").
- Otherwise one is generated: every `*.yaml`/`*.yml` file below the path (Go's
  filepath.Walk order: names sorted bytewise, depth first) as `./rel/path.yaml`, each of which
  must decode as Kubernetes objects; a subdirectory holding a kustomization file is listed as a
  directory resource and not descended into. No files at all gives `namespace: _placeholder`.
- Then the spec: targetNamespace, namePrefix, nameSuffix replace; patches and components are
  appended (components must be local and relative; ignoreMissingComponents drops absent ones);
  an image with the name of an existing entry is merged into it (newName if set; newTag and
  digest together if either is set), others appended; a non-empty buildMetadata replaces.

The file is written as JSON (valid YAML that go-yaml v2 reads back exactly); Flux writes the
same object as YAML with sorted keys.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import msgspec
import yaml
from yaml.error import YAMLError
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from tidal.kube import goyaml, yamlio
from tidal.kube.gostrconv import INT64_MAX, INT64_MIN
from tidal.kustomize.confine import (
    KUSTOMIZATION_FILES,
    ConfinementError,
    KustomizationFileError,
    dump_json_yaml,
    join_path,
    load_kustomization_file,
    resolve_path,
)

__all__ = [
    "Generated",
    "GeneratorError",
    "Image",
    "Overlay",
    "Patch",
    "Selector",
    "generate",
    "is_local_relative_path",
    "overlay_of",
]

KUSTOMIZATION_API_VERSION: Final = "kustomize.config.k8s.io/v1beta1"
KUSTOMIZATION_KIND: Final = "Kustomization"


class GeneratorError(Exception):
    """Flux's generator would fail here; the message follows Flux's wording."""


# --- the Kustomization spec fields that shape the file ---------------------------------------


@dataclass(frozen=True, slots=True)
class Selector:
    """A patch target (Flux's kustomize.Selector)."""

    group: str = ""
    version: str = ""
    kind: str = ""
    name: str = ""
    namespace: str = ""
    label_selector: str = ""
    annotation_selector: str = ""


@dataclass(frozen=True, slots=True)
class Patch:
    """One `spec.patches` entry: a strategic-merge or JSON 6902 patch, as text."""

    patch: str
    target: Selector | None = None


@dataclass(frozen=True, slots=True)
class Image:
    """One `spec.images` entry."""

    name: str
    new_name: str = ""
    new_tag: str = ""
    digest: str = ""


@dataclass(frozen=True, slots=True)
class Overlay:
    """The Kustomization spec fields Flux writes into the kustomization file.

    None for the three strings means "not set" (the API requires them non-empty when set).
    """

    target_namespace: str | None = None
    name_prefix: str | None = None
    name_suffix: str | None = None
    patches: tuple[Patch, ...] = ()
    images: tuple[Image, ...] = ()
    components: tuple[str, ...] = ()
    ignore_missing_components: bool = False
    build_metadata: tuple[str, ...] = ()

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Overlay:
        """From a Kustomization's `spec` in its JSON form (camelCase keys)."""

        def text(key: str) -> str | None:
            value = spec.get(key)
            return value if isinstance(value, str) else None

        def selector(raw: Any) -> Selector | None:
            if not isinstance(raw, Mapping):
                return None
            return Selector(
                group=str(raw.get("group") or ""),
                version=str(raw.get("version") or ""),
                kind=str(raw.get("kind") or ""),
                name=str(raw.get("name") or ""),
                namespace=str(raw.get("namespace") or ""),
                label_selector=str(raw.get("labelSelector") or ""),
                annotation_selector=str(raw.get("annotationSelector") or ""),
            )

        patches = tuple(
            Patch(patch=str(p.get("patch") or ""), target=selector(p.get("target")))
            for p in spec.get("patches") or ()
            if isinstance(p, Mapping)
        )
        images = tuple(
            Image(
                name=str(i.get("name") or ""),
                new_name=str(i.get("newName") or ""),
                new_tag=str(i.get("newTag") or ""),
                digest=str(i.get("digest") or ""),
            )
            for i in spec.get("images") or ()
            if isinstance(i, Mapping)
        )
        return cls(
            target_namespace=text("targetNamespace"),
            name_prefix=text("namePrefix"),
            name_suffix=text("nameSuffix"),
            patches=patches,
            images=images,
            components=tuple(str(c) for c in spec.get("components") or ()),
            ignore_missing_components=bool(spec.get("ignoreMissingComponents")),
            build_metadata=tuple(str(b) for b in spec.get("buildMetadata") or ()),
        )


def overlay_of(spec: Any) -> Overlay:
    """The Overlay of a Kustomization spec: a Mapping in JSON form, or any msgspec Struct that
    encodes to it (the API model), so that this module does not depend on the model."""
    if isinstance(spec, Mapping):
        return Overlay.from_spec(spec)
    return Overlay.from_spec(msgspec.to_builtins(spec))


@dataclass(frozen=True)
class Generated:
    """The kustomization file a build must see, and where.

    `directory` is the kustomization's directory relative to the artifact root ("" for the
    root), `file_name` the file Flux writes (the existing one's name, else kustomization.yaml).
    """

    directory: str
    file_name: str
    content: bytes
    action: Literal["created", "unchanged"]
    kustomization: dict[str, Any] = field(repr=False)

    @property
    def file(self) -> str:
        """The file's path relative to the artifact root."""
        return f"{self.directory}/{self.file_name}" if self.directory else self.file_name


# --- kustomize's types.Kustomization, as sigs.k8s.io/yaml and encoding/json see it ---------------
#
# Each struct lists its fields in declaration order: (json name, Go type, omitempty), or
# (None, embedded struct name, False) for an embedded struct, whose fields encoding/json
# promotes. Types: "string", "bool", "int64", "any", "[]T", "map[string]T", "*T", struct names.

_Entry = tuple[str | None, str, bool]

_STRUCTS: Final[dict[str, tuple[_Entry, ...]]] = {
    "TypeMeta": (("kind", "string", True), ("apiVersion", "string", True)),
    "Gvk": (("group", "string", True), ("version", "string", True), ("kind", "string", True)),
    "ResId": ((None, "Gvk", False), ("name", "string", True), ("namespace", "string", True)),
    "Selector": (
        (None, "ResId", False),
        ("annotationSelector", "string", True),
        ("labelSelector", "string", True),
    ),
    "PatchArgs": (("allowNameChange", "bool", True), ("allowKindChange", "bool", True)),
    "Patch": (
        ("path", "string", True),
        ("patch", "string", True),
        ("target", "*Selector", True),
        ("options", "*PatchArgs", True),
    ),
    "Image": (
        ("name", "string", True),
        ("newName", "string", True),
        ("tagSuffix", "string", True),
        ("newTag", "string", True),
        ("digest", "string", True),
    ),
    "FieldSpec": ((None, "Gvk", False), ("path", "string", True), ("create", "bool", True)),
    "Label": (
        ("pairs", "map[string]string", True),
        ("includeSelectors", "bool", True),
        ("includeTemplates", "bool", True),
        ("fields", "[]FieldSpec", True),
    ),
    "ObjectMeta": (
        ("name", "string", True),
        ("namespace", "string", True),
        ("labels", "map[string]string", True),
        ("annotations", "map[string]string", True),
    ),
    "FieldOptions": (
        ("delimiter", "string", True),
        ("index", "int64", True),
        ("encoding", "string", True),
        ("create", "bool", True),
    ),
    "SourceSelector": (
        (None, "ResId", False),
        ("fieldPath", "string", True),
        ("options", "*FieldOptions", True),
    ),
    "TargetSelector": (
        ("select", "*Selector", False),
        ("reject", "[]*Selector", True),
        ("fieldPaths", "[]string", True),
        ("options", "*FieldOptions", True),
    ),
    "Replacement": (
        ("source", "*SourceSelector", True),
        ("targets", "[]*TargetSelector", True),
        ("sourceValue", "*string", True),
    ),
    "ReplacementField": ((None, "Replacement", False), ("path", "string", True)),
    "Replica": (("name", "string", True), ("count", "int64", False)),
    "Target": (
        ("apiVersion", "string", True),
        (None, "Gvk", False),
        ("name", "string", False),
        ("namespace", "string", True),
    ),
    "FieldSelector": (("fieldPath", "string", True),),
    # omitempty has no effect on a struct value in encoding/json: fieldref is always written.
    "Var": (
        ("name", "string", False),
        ("objref", "Target", False),
        ("fieldref", "FieldSelector", False),
    ),
    "LegacySortOptions": (("orderFirst", "[]string", False), ("orderLast", "[]string", False)),
    "SortOptions": (("order", "string", True), ("legacySortOptions", "*LegacySortOptions", True)),
    "GeneratorOptions": (
        ("labels", "map[string]string", True),
        ("annotations", "map[string]string", True),
        ("disableNameSuffixHash", "bool", True),
        ("immutable", "bool", True),
    ),
    "KvPairSources": (
        ("literals", "[]string", True),
        ("files", "[]string", True),
        ("envs", "[]string", True),
        ("env", "string", True),
    ),
    "GeneratorArgs": (
        ("namespace", "string", True),
        ("name", "string", True),
        ("behavior", "string", True),
        (None, "KvPairSources", False),
        ("options", "*GeneratorOptions", True),
    ),
    "ConfigMapArgs": ((None, "GeneratorArgs", False),),
    "SecretArgs": ((None, "GeneratorArgs", False), ("type", "string", True)),
    "HelmGlobals": (("chartHome", "string", True), ("configHome", "string", True)),
    "HelmChart": (
        ("name", "string", True),
        ("version", "string", True),
        ("repo", "string", True),
        ("releaseName", "string", True),
        ("namespace", "string", True),
        ("additionalValuesFiles", "[]string", True),
        ("valuesFile", "string", True),
        ("valuesInline", "map[string]any", True),
        ("valuesMerge", "string", True),
        ("includeCRDs", "bool", True),
        ("skipHooks", "bool", True),
        ("apiVersions", "[]string", True),
        ("kubeVersion", "string", True),
        ("nameTemplate", "string", True),
        ("skipTests", "bool", True),
        ("debug", "bool", True),
        ("devel", "bool", True),
    ),
    "HelmChartArgs": (
        ("chartName", "string", True),
        ("chartVersion", "string", True),
        ("chartRepoUrl", "string", True),
        ("chartHome", "string", True),
        ("chartRepoName", "string", True),
        ("helmBin", "string", True),
        ("helmHome", "string", True),
        ("values", "string", True),
        ("valuesLocal", "map[string]any", True),
        ("valuesMerge", "string", True),
        ("releaseName", "string", True),
        ("releaseNamespace", "string", True),
        ("extraArgs", "[]string", True),
    ),
    "Kustomization": (
        (None, "TypeMeta", False),
        ("metadata", "*ObjectMeta", True),
        ("openapi", "map[string]string", True),
        ("namePrefix", "string", True),
        ("nameSuffix", "string", True),
        ("namespace", "string", True),
        ("commonLabels", "map[string]string", True),
        ("labels", "[]Label", True),
        ("commonAnnotations", "map[string]string", True),
        ("patchesStrategicMerge", "[]string", True),
        ("patchesJson6902", "[]Patch", True),
        ("patches", "[]Patch", True),
        ("images", "[]Image", True),
        ("imageTags", "[]Image", True),
        ("replacements", "[]ReplacementField", True),
        ("replicas", "[]Replica", True),
        ("vars", "[]Var", True),
        ("sortOptions", "*SortOptions", True),
        ("resources", "[]string", True),
        ("components", "[]string", True),
        ("crds", "[]string", True),
        ("bases", "[]string", True),
        ("configMapGenerator", "[]ConfigMapArgs", True),
        ("secretGenerator", "[]SecretArgs", True),
        ("helmGlobals", "*HelmGlobals", True),
        ("helmCharts", "[]HelmChart", True),
        ("helmChartInflationGenerator", "[]HelmChartArgs", True),
        ("generatorOptions", "*GeneratorOptions", True),
        ("configurations", "[]string", True),
        ("generators", "[]string", True),
        ("transformers", "[]string", True),
        ("validators", "[]string", True),
        ("buildMetadata", "[]string", True),
    ),
}


@dataclass(frozen=True, slots=True)
class _Field:
    go_type: str
    omitempty: bool
    embedded: tuple[str, ...]  # embedded structs it is promoted through, outermost first


def _flatten(struct: str, through: tuple[str, ...] = ()) -> dict[str, _Field]:
    out: dict[str, _Field] = {}
    for name, go_type, omitempty in _STRUCTS[struct]:
        if name is None:
            for key, promoted in _flatten(go_type, (*through, go_type)).items():
                out.setdefault(key, promoted)
        else:
            out[name] = _Field(go_type, omitempty, through)
    return out


_FIELDS: Final = {name: _flatten(name) for name in _STRUCTS}


def _lookup(fields: Mapping[str, _Field], key: str) -> str | None:
    """encoding/json's field match: the exact name, else the first case-insensitive one."""
    if key in fields:
        return key
    folded = key.casefold()
    return next((name for name in fields if name.casefold() == folded), None)


def _coerce(value: Any, target: str | None) -> Any:
    """sigs.k8s.io/yaml's convertToJSONableObject: YAML numbers and booleans whose Go target is
    a string become text (`namespace: yes` is "true"; kustomize alone would refuse it).

    Like the original, a key promoted from an embedded struct is matched against that struct,
    not its own field, so nothing below it is converted (`replacements[].targets` keeps its
    booleans and fails to decode).
    """
    target = target.lstrip("*") if target is not None else None
    if isinstance(value, dict):
        if target in _FIELDS:
            fields = _FIELDS[target]
            out: dict[str, Any] = {}
            for key, child in value.items():
                name = _lookup(fields, key)
                if name is None:
                    out[key] = _coerce(child, None)
                    continue
                found = fields[name]
                out[key] = _coerce(child, found.embedded[0] if found.embedded else found.go_type)
            return out
        elem = target[11:] if target is not None and target.startswith("map[string]") else None
        return {key: _coerce(child, elem) for key, child in value.items()}
    if isinstance(value, list):
        elem = target[2:] if target is not None and target.startswith("[]") else None
        return [_coerce(item, elem) for item in value]
    if target == "string" and value is not None and not isinstance(value, str):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return goyaml.format_float32(value)
        return str(value)
    return value


class _TypeError(Exception):
    def __init__(self, value: Any, go_type: str, struct: str, path: str) -> None:
        self.value, self.go_type, self.struct, self.path = value, go_type, struct, path

    def message(self) -> str:
        go_type = self.go_type.lstrip("*")
        if go_type in _STRUCTS:
            go_type = f"types.{go_type}"
        where = f"Go struct field {self.struct}.{self.path}" if self.path else "Go value"
        return f"json: cannot unmarshal {_json_kind(self.value)} into {where} of type {go_type}"


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number" if _is_int64(value) else f"number {_go_number(value)}"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _go_number(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def _is_int64(value: Any) -> bool:
    if isinstance(value, float):
        if not value.is_integer():
            return False
        value = int(value)
    return isinstance(value, int) and INT64_MIN <= value <= INT64_MAX


def _zero(go_type: str) -> Any:
    if go_type == "string":
        return ""
    if go_type == "bool":
        return False
    if go_type == "int64":
        return 0
    if go_type in _STRUCTS:
        return {}
    return None


def _decode(value: Any, go_type: str, struct: str, path: str) -> Any:
    """encoding/json decoding of a converted value into a Go type; None is a nil value."""
    if value is None:
        return None
    if go_type == "any":
        return value
    if go_type.startswith("*"):
        return _decode(value, go_type[1:], struct, path)
    if go_type == "string":
        if isinstance(value, str):
            return value
        raise _TypeError(value, go_type, struct, path)
    if go_type == "bool":
        if isinstance(value, bool):
            return value
        raise _TypeError(value, go_type, struct, path)
    if go_type == "int64":
        if not isinstance(value, bool) and isinstance(value, int | float) and _is_int64(value):
            return int(value)
        raise _TypeError(value, go_type, struct, path)
    if go_type.startswith("[]"):
        if not isinstance(value, list):
            raise _TypeError(value, go_type, struct, path)
        elem = go_type[2:]
        # A null element is the element type's zero value.
        return [_zero(elem) if v is None else _decode(v, elem, struct, path) for v in value]
    if go_type.startswith("map[string]"):
        if not isinstance(value, dict):
            raise _TypeError(value, go_type, struct, path)
        elem = go_type[11:]
        return {
            k: _zero(elem) if v is None else _decode(v, elem, struct, path)
            for k, v in value.items()
        }
    if not isinstance(value, dict):
        raise _TypeError(value, go_type, struct, path)
    fields = _FIELDS[go_type]
    out: dict[str, Any] = {}
    # YAMLToJSON marshals a Go map, so the decoder meets the keys in sorted order; when two keys
    # name the same field (exactly or by case folding), the later one wins.
    for key in sorted(value, key=lambda k: k.encode("utf-8", "surrogatepass")):
        name = _lookup(fields, key)
        if name is None:
            continue
        found = fields[name]
        child = ".".join(p for p in (path, *found.embedded, name) if p)
        out[name] = _decode(value[key], found.go_type, go_type, child)
    return out


def _encode(value: Any, go_type: str) -> Any:
    """encoding/json's output for a decoded value, omitempty applied."""
    if go_type.startswith("*"):
        return None if value is None else _encode(value, go_type[1:])
    if value is None:
        value = _zero(go_type)
        if value is None:
            return None
    if go_type.startswith("[]"):
        return [_encode(item, go_type[2:]) for item in value]
    if go_type.startswith("map[string]"):
        return {k: _encode(v, go_type[11:]) for k, v in value.items()}
    if go_type in _FIELDS:
        out: dict[str, Any] = {}
        for key, found in _FIELDS[go_type].items():
            encoded = _encode(value.get(key), found.go_type)
            if found.omitempty and _is_empty(encoded, found.go_type):
                continue
            out[key] = encoded
        return out
    return value


def _is_empty(value: Any, go_type: str) -> bool:
    if value is None:
        return True
    if go_type.startswith("*") or go_type in _STRUCTS:
        return False
    if isinstance(value, bool):
        return value is False
    if isinstance(value, str | list | dict):
        return len(value) == 0
    return bool(value == 0)


def _unmarshal_kustomization(data: bytes, source: str) -> dict[str, Any]:
    """sigs.k8s.io/yaml Unmarshal into a preset types.Kustomization, in decoded form."""
    try:
        doc = load_kustomization_file(data, source=source)
    except KustomizationFileError as exc:
        raise GeneratorError(str(exc)) from None
    kus: dict[str, Any] = {"apiVersion": KUSTOMIZATION_API_VERSION, "kind": KUSTOMIZATION_KIND}
    try:
        decoded = _decode(_coerce(doc, "Kustomization"), "Kustomization", "Kustomization", "")
    except _TypeError as exc:
        raise GeneratorError(
            f"error unmarshaling JSON: while decoding JSON: {exc.message()}"
        ) from None
    if decoded is not None:
        # A JSON null leaves a preset field as it was.
        kus.update({k: v for k, v in decoded.items() if v is not None})
    return kus


# --- finding or generating the file ------------------------------------------------------------


def _go_ext(name: str) -> str:
    """Go's filepath.Ext: from the last dot on, so ".yaml" is a YAML file's extension too."""
    dot = name.rfind(".")
    return name[dot:] if dot >= 0 else ""


def _is_regular_file(path: Path, what: str) -> bool:
    try:
        mode = path.lstat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False
    if stat.S_ISLNK(mode):
        raise ConfinementError(f"{what} is a symlink")
    return stat.S_ISREG(mode)


def _kustomization_file(root: Path, directory: str) -> str | None:
    for name in KUSTOMIZATION_FILES:
        rel = f"{directory}/{name}" if directory else name
        if _is_regular_file(root / rel, f"kustomization {rel!r}"):
            return name
    return None


def _go_map(value: Any) -> str:
    """fmt's %v of a map[string]string: keys sorted, a nil map printed as map[]."""
    pairs = sorted(value.items()) if isinstance(value, dict) else []
    return "map[" + " ".join(f"{k}:{_text(v)}" for k, v in pairs) + "]"


def _resource_meta(doc: Mapping[str, Any]) -> str:
    """fmt's %v of kyaml's ResourceMeta, as kustomize prints it in these errors."""
    metadata = doc.get("metadata")
    meta: Mapping[str, Any] = metadata if isinstance(metadata, Mapping) else {}
    type_meta = f"{{{_text(doc.get('apiVersion'))} {_text(doc.get('kind'))}}}"
    name_meta = f"{{{_text(meta.get('name'))} {_text(meta.get('namespace'))}}}"
    maps = f"{_go_map(meta.get('labels'))} {_go_map(meta.get('annotations'))}"
    return f"{{{type_meta} {{{name_meta} {maps}}}}}"


def _text(value: Any) -> str:
    """kyaml's GetValue: a scalar's text, "" for anything else."""
    if value is None or isinstance(value, dict | list):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _check_object(doc: Any) -> None:
    """kustomize's ResourceFactory checks for one document (dropBadNodes, then the expansion
    of any *List into its items)."""
    if doc is None or doc == {} or doc == []:
        return
    if not isinstance(doc, dict):
        raise GeneratorError("missing Resource metadata")
    metadata = doc.get("metadata")
    meta: dict[str, Any] = metadata if isinstance(metadata, dict) else {}
    kind = _text(doc.get("kind"))
    if (
        not _text(doc.get("apiVersion"))
        and not kind
        and not any(meta.get(k) for k in ("name", "namespace", "labels", "annotations"))
    ):
        raise GeneratorError("missing Resource metadata")
    if not kind:
        raise GeneratorError(f"missing kind in object {_resource_meta(doc)}")
    if kind.endswith("List"):
        if "items" not in doc or doc["items"] is None:
            return
        items = doc["items"]
        if not isinstance(items, list):
            raise GeneratorError(
                f"expected array in {kind}/items, but found {_go_type_name(items)}"
            )
        for item in items:
            _check_object(item)
        return
    if not _text(meta.get("name")):
        raise GeneratorError(f"missing metadata.name in object {_resource_meta(doc)}")


def _check_kubernetes_objects(docs: Sequence[Any], chunks: int) -> None:
    """What rf.SliceFromBytes accepts: kio's reading, then the factory's checks."""
    if chunks == 1 and len(docs) == 1 and isinstance(docs[0], dict):
        only = docs[0]
        if only.get("kind") in ("List", "ResourceList") and (
            "items" in only or "functionConfig" in only
        ):
            # kio unwraps a lone List: its items' YAML nodes, whatever they are, become the
            # documents (a mapping's keys and values included; a scalar has none).
            items = only.get("items")
            if isinstance(items, dict):
                docs = [v for pair in items.items() for v in pair]
            else:
                docs = items if isinstance(items, list) else []
    for doc in docs:
        _check_object(doc)


def _chunks(data: bytes) -> list[str]:
    """kyaml's splitDocuments (UTF-16 input is never split)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return [data.decode("utf-16")]
    text = data.decode("utf-8").replace("\r\n", "\n")
    chunks = []
    prev = 0
    for match in _SEPARATOR.finditer(text):
        trailer = match.group()[4:].strip()
        if trailer and not trailer.startswith("#"):
            raise ValueError(f"invalid document separator: {match.group().strip()}")
        chunks.append(text[prev : match.start()])
        prev = match.end()
    chunks.append(text[prev:])
    return chunks


def check_manifest_file(data: bytes, where: str) -> None:
    """Flux's decode check of one manifest for a generated kustomization.

    Flux only parses here (kyaml, go-yaml v3 nodes): what tidal's reader refuses later, at the
    JSON step (non-string keys, duplicate keys, NaN), passes this check, so for those files the
    documents are read again from YAML nodes with just the fields that are checked.
    """
    try:
        chunks = _chunks(data)
        docs: list[Any] = yamlio.load_all(data, source=where)
    except (yamlio.ManifestError, UnicodeDecodeError, ValueError) as strict:
        try:
            chunks = _chunks(data)
            docs = [_node_metadata(chunk) for chunk in chunks]
        except (YAMLError, UnicodeDecodeError, ValueError):
            if isinstance(strict, yamlio.ManifestError):
                at = f"line {strict.line}: " if strict.line is not None else ""
                reason = f"yaml: {at}{strict.reason}"
            else:
                reason = str(strict)
            raise GeneratorError(
                f"failed to decode Kubernetes YAML from {where}: {reason}"
            ) from None
    try:
        _check_kubernetes_objects(docs, len(chunks))
    except GeneratorError as exc:
        raise GeneratorError(f"failed to decode Kubernetes YAML from {where}: {exc}") from None


_SEPARATOR: Final = re.compile(r"\n---.*\n")


def _node_metadata(chunk: str) -> Any:
    """One document reduced to the fields the checks read, from its YAML nodes."""
    node = yaml.compose(chunk, Loader=yaml.CSafeLoader)
    if node is None:
        return None
    if isinstance(node, ScalarNode):
        return None if node.value in ("", "~", "null", "Null", "NULL") else node.value
    if isinstance(node, SequenceNode):
        return [None] * len(node.value)
    assert isinstance(node, MappingNode)
    return _scalar_fields(node)


def _scalar_fields(node: MappingNode) -> dict[str, Any]:
    """apiVersion, kind, metadata (name, namespace, labels, annotations) and items: the first
    occurrence of each (kyaml's Field), scalars as their text."""
    out: dict[str, Any] = {}
    for key, value in node.value:
        if not isinstance(key, ScalarNode) or key.value in out:
            continue
        name = key.value
        if isinstance(value, ScalarNode):
            if name in ("apiVersion", "kind", "name", "namespace", "items"):
                out[name] = value.value or None
        elif isinstance(value, MappingNode) and name == "metadata":
            out[name] = _scalar_fields(value)
        elif isinstance(value, MappingNode) and name in ("labels", "annotations"):
            out[name] = {
                k.value: v.value
                for k, v in value.value
                if isinstance(k, ScalarNode) and isinstance(v, ScalarNode)
            }
        elif name == "items" and isinstance(value, SequenceNode):
            out[name] = [
                _scalar_fields(v) if isinstance(v, MappingNode) else "item" for v in value.value
            ]
    return out


def _go_type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    return "map[string]interface {}"


def _scan(root: Path, directory: str) -> list[str]:
    """scanManifests: resources for a directory without a kustomization file."""
    resources: list[str] = []
    base = root / directory if directory else root

    def visit(abs_dir: Path, rel: str) -> None:
        with os.scandir(abs_dir) as it:
            entries = sorted(it, key=lambda e: e.name.encode("utf-8", "surrogateescape"))
        for entry in entries:
            name = entry.name
            child_rel = f"{rel}/{name}" if rel else name
            child = abs_dir / name
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISDIR(mode):
                if _kustomization_file(root, _rel_join(directory, child_rel)) is not None:
                    resources.append(f"./{child_rel}")
                    continue
                visit(child, child_rel)
                continue
            if _go_ext(name) not in (".yaml", ".yml"):
                continue
            where = _rel_join(directory, child_rel)
            if stat.S_ISLNK(mode):
                raise ConfinementError(f"manifest {where!r} is a symlink")
            if not stat.S_ISREG(mode):
                raise ConfinementError(f"manifest {where!r} is not a regular file")
            check_manifest_file(child.read_bytes(), where)
            resources.append(f"./{child_rel}")

    visit(base, "")
    return resources


def _rel_join(directory: str, rel: str) -> str:
    return f"{directory}/{rel}" if directory else rel


def is_local_relative_path(path: str) -> bool:
    """Flux's IsLocalRelativePath for spec.components: no URL forms, nothing absolute."""
    lower = path.lower()
    for prefix in (
        "git::",
        "gh:",
        "ssh://",
        "https://",
        "http://",
        "git@",
        "github.com:",
        "github.com/",
    ):
        if len(prefix) < len(path) and lower.startswith(prefix):
            return False
    return not (path.startswith("/") or lower.removeprefix("file://").startswith("/"))


def _selector(selector: Selector | None) -> dict[str, Any] | None:
    if selector is None:
        return None
    return {
        "group": selector.group,
        "version": selector.version,
        "kind": selector.kind,
        "name": selector.name,
        "namespace": selector.namespace,
        "labelSelector": selector.label_selector,
        "annotationSelector": selector.annotation_selector,
    }


def _exists(root: Path, rel: str | None) -> bool:
    """securefs Exists: inside the root and present (symlinks are refused elsewhere)."""
    if rel is None:
        return False
    try:
        (root / rel).lstat() if rel else root.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def generate(root: Path, path: str, overlay: Overlay | None = None) -> Generated:
    """The kustomization file Flux would write for `path` (spec.path) inside `root`.

    Reads only. Raises GeneratorError with Flux's messages (a missing path, an undecodable
    manifest or kustomization file, a remote component), and for a symlink on the way.
    """
    try:
        return _generate(Path(root), path, overlay or Overlay())
    except ConfinementError as exc:
        raise GeneratorError(str(exc)) from exc


def _generate(root: Path, path: str, overlay: Overlay) -> Generated:
    directory = resolve_path(root, path)
    target = root / directory if directory else root
    if not target.exists():
        raise GeneratorError(
            f"kustomization path not found: stat {path}: no such file or directory"
        )
    if not target.is_dir():
        raise GeneratorError(f"kustomization path not found: {path}: not a directory")

    existing = _kustomization_file(root, directory)
    if existing is not None:
        file_name = existing
        action: Literal["created", "unchanged"] = "unchanged"
        source = _rel_join(directory, existing)
        kus = _unmarshal_kustomization((root / source).read_bytes(), source)
        if not kus.get("resources"):
            kus["buildMetadata"] = ["originAnnotations"]
    else:
        file_name = KUSTOMIZATION_FILES[0]
        action = "created"
        kus = {"apiVersion": KUSTOMIZATION_API_VERSION, "kind": KUSTOMIZATION_KIND}
        resources = _scan(root, directory)
        if resources:
            kus["resources"] = resources
        else:
            kus["namespace"] = "_placeholder"

    if overlay.target_namespace is not None:
        kus["namespace"] = overlay.target_namespace
    if overlay.name_prefix is not None:
        kus["namePrefix"] = overlay.name_prefix
    if overlay.name_suffix is not None:
        kus["nameSuffix"] = overlay.name_suffix
    for patch in overlay.patches:
        kus.setdefault("patches", []).append(
            {"patch": patch.patch, "target": _selector(patch.target)}
        )
    for component in overlay.components:
        if not is_local_relative_path(component):
            raise GeneratorError(f"component path '{component}' must be local and relative")
        if overlay.ignore_missing_components and not _exists(root, join_path(directory, component)):
            continue
        kus.setdefault("components", []).append(component)
    images: list[dict[str, Any]] = kus.setdefault("images", [])
    for image in overlay.images:
        match = next((i for i in images if (i.get("name") or "") == image.name), None)
        if match is None:
            images.append(
                {
                    "name": image.name,
                    "newName": image.new_name,
                    "newTag": image.new_tag,
                    "digest": image.digest,
                }
            )
            continue
        if image.new_name:
            match["newName"] = image.new_name
        if image.new_tag or image.digest:
            match["newTag"] = image.new_tag
            match["digest"] = image.digest
    if overlay.build_metadata:
        kus["buildMetadata"] = list(overlay.build_metadata)

    encoded = _encode(kus, "Kustomization")
    return Generated(
        directory=directory,
        file_name=file_name,
        content=dump_json_yaml(encoded),
        action=action,
        kustomization=encoded,
    )
