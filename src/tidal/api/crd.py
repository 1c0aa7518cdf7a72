"""CustomResourceDefinitions generated from the API models, never written by hand.

The schema is structural, as the API server demands: every node has a type, no $ref, no
anyOf for optional values (Kubernetes expresses "optional" by leaving a field out of
`required`). `python -m tidal.api.crd --write config/crd/bases` regenerates the files; a test
fails when they differ from what the models say.
"""

from __future__ import annotations

import argparse
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import msgspec.inspect as mi

from tidal.api import helmrelease, kustomize, source, source_oci
from tidal.api import source_helmchart as helmchart
from tidal.api.base import Model, ObjectMeta
from tidal.kube import yamlio


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"

    def to_dict(self) -> dict[str, str]:
        return {"jsonPath": self.json_path, "name": self.name, "type": self.type}


READY_COLUMNS = (
    PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
    PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status'),
    PrinterColumn("Status", '.status.conditions[?(@.type=="Ready")].message'),
)


@dataclass(frozen=True)
class Kind:
    """One served kind: its names, its model, and how kubectl shows it."""

    group: str
    version: str
    kind: str
    plural: str
    model: type[Model]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    columns: tuple[PrinterColumn, ...] = READY_COLUMNS
    # CEL rules on the spec object (x-kubernetes-validations).
    spec_rules: tuple[dict[str, str], ...] = ()
    annotations: dict[str, str] = field(default_factory=dict)
    # CEL rules on the whole object (OCIRepository requires spec.url and spec.interval so).
    rules: tuple[dict[str, str], ...] = ()

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def name(self) -> str:
        return f"{self.plural}.{self.group}"


# Flux's own CRDs opt out of postBuild substitution, so a Kustomization applying them (as
# bootstrap does) never rewrites ${...} in their descriptions or CEL rules.
_NO_SUBSTITUTE = {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}

KINDS: tuple[Kind, ...] = (
    Kind(
        group=source.GROUP,
        version=source.VERSION,
        kind=source.GIT_REPOSITORY_KIND,
        plural="gitrepositories",
        model=source.GitRepository,
        short_names=("gitrepo",),
        categories=("all", "fluxcd", "fluxcd-sources"),
        columns=(PrinterColumn("URL", ".spec.url"), *READY_COLUMNS),
        spec_rules=(
            {
                "message": "serviceAccountName can only be set when provider is 'azure' or 'aws'",
                "rule": "!has(self.serviceAccountName) || (has(self.provider) && "
                "(self.provider == 'azure' || self.provider == 'aws'))",
            },
        ),
        annotations=_NO_SUBSTITUTE,
    ),
    Kind(
        group=source.GROUP,
        version=source.VERSION,
        kind=source.HELM_REPOSITORY_KIND,
        plural="helmrepositories",
        model=source.HelmRepository,
        short_names=("helmrepo",),
        categories=("all", "fluxcd", "fluxcd-sources"),
        columns=(PrinterColumn("URL", ".spec.url"), *READY_COLUMNS),
        annotations=_NO_SUBSTITUTE,
    ),
    Kind(
        group=source.GROUP,
        version=source.VERSION,
        kind=source_oci.OCI_REPOSITORY_KIND,
        plural=source_oci.OCI_REPOSITORY_PLURAL,
        model=source_oci.OCIRepository,
        short_names=("ocirepo",),
        categories=("all", "fluxcd", "fluxcd-sources"),
        columns=(PrinterColumn("URL", ".spec.url"), *READY_COLUMNS),
        rules=(
            {"message": "spec.url is required", "rule": "has(self.spec) && has(self.spec.url)"},
            {
                "message": "spec.interval is required",
                "rule": "has(self.spec) && has(self.spec.interval)",
            },
        ),
        annotations=_NO_SUBSTITUTE,
    ),
    Kind(
        group=source.GROUP,
        version=source.VERSION,
        kind=helmchart.HELM_CHART_KIND,
        plural="helmcharts",
        model=helmchart.HelmChart,
        short_names=("hc",),
        categories=("all", "fluxcd", "fluxcd-sources"),
        columns=(
            PrinterColumn("Chart", ".spec.chart"),
            PrinterColumn("Version", ".spec.version"),
            PrinterColumn("Source Kind", ".spec.sourceRef.kind"),
            PrinterColumn("Source Name", ".spec.sourceRef.name"),
            *READY_COLUMNS,
        ),
        spec_rules=(
            {
                "message": "spec.verify is only supported when spec.sourceRef.kind is "
                "'HelmRepository'",
                "rule": "!has(self.verify) || self.sourceRef.kind == 'HelmRepository'",
            },
        ),
        annotations=_NO_SUBSTITUTE,
    ),
    Kind(
        group=kustomize.GROUP,
        version=kustomize.VERSION,
        kind=kustomize.KUSTOMIZATION_KIND,
        plural="kustomizations",
        model=kustomize.Kustomization,
        short_names=("ks",),
        categories=("all", "fluxcd", "fluxcd-appliers"),
        annotations=_NO_SUBSTITUTE,
    ),
    Kind(
        group=helmrelease.GROUP,
        version=helmrelease.VERSION,
        kind=helmrelease.HELM_RELEASE_KIND,
        plural="helmreleases",
        model=helmrelease.HelmRelease,
        short_names=("hr",),
        categories=("all", "fluxcd", "fluxcd-appliers"),
        spec_rules=(
            {
                "message": "either chart or chartRef must be set",
                "rule": "(has(self.chart) && !has(self.chartRef)) || "
                "(!has(self.chart) && has(self.chartRef))",
            },
        ),
        annotations=_NO_SUBSTITUTE,
    ),
)


class SchemaError(TypeError):
    pass


def _description(doc: str | None) -> dict[str, str]:
    if not doc:
        return {}
    return {"description": " ".join(doc.split())}


def schema_of(t: mi.Type) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of one msgspec type."""
    extra: dict[str, Any] = {}
    if isinstance(t, mi.Metadata):
        extra = dict(t.extra_json_schema or {})
        t = t.type
    out = _schema_of_plain(t)
    # A field's description replaces the struct's own; other keys add to it.
    out.update(extra)
    return dict(sorted(out.items()))


def _schema_of_plain(t: mi.Type) -> dict[str, Any]:
    if isinstance(t, mi.UnionType):
        members = [m for m in t.types if not isinstance(m, mi.NoneType)]
        if len(members) != 1:
            raise SchemaError(f"only `X | None` unions have a structural schema, got {t}")
        return schema_of(members[0])
    if isinstance(t, mi.StrType):
        out: dict[str, Any] = {"type": "string"}
        if t.pattern is not None:
            out["pattern"] = t.pattern
        if t.min_length is not None:
            out["minLength"] = t.min_length
        if t.max_length is not None:
            out["maxLength"] = t.max_length
        return out
    if isinstance(t, mi.BoolType):
        return {"type": "boolean"}
    if isinstance(t, mi.AnyType):
        # Free-form JSON (HelmRelease values): the API server keeps it as written.
        return {"x-kubernetes-preserve-unknown-fields": True}
    if isinstance(t, mi.IntType):
        out = {"type": "integer"}
        if t.ge is not None:
            out["minimum"] = t.ge
        if t.le is not None:
            out["maximum"] = t.le
        return out
    if isinstance(t, mi.LiteralType):
        return {"type": "string", "enum": list(t.values)}
    if isinstance(t, mi.ListType):
        return {"type": "array", "items": schema_of(t.item_type)}
    if isinstance(t, mi.DictType):
        return {"type": "object", "additionalProperties": schema_of(t.value_type)}
    if isinstance(t, mi.StructType):
        return _struct_schema(t)
    raise SchemaError(f"no structural schema for {t}")


def _struct_schema(t: mi.StructType) -> dict[str, Any]:
    if t.cls is ObjectMeta:
        return {"type": "object"}
    props = {f.encode_name: schema_of(f.type) for f in t.fields}
    # msgspec sorts Literal values; keep the order they were declared in, as Flux lists them.
    hints = typing.get_type_hints(t.cls, include_extras=True)
    for f in t.fields:
        declared = _literal_values(hints[f.name])
        if declared and props[f.encode_name].get("type") == "string":
            props[f.encode_name]["enum"] = declared
    out: dict[str, Any] = {"type": "object", "properties": dict(sorted(props.items()))}
    out.update(_description(t.cls.__doc__))
    required = sorted(f.encode_name for f in t.fields if f.required)
    if required:
        out["required"] = required
    return out


def _literal_values(annotation: Any) -> list[Any] | None:
    if typing.get_origin(annotation) is Literal:
        return list(typing.get_args(annotation))
    for arg in typing.get_args(annotation):
        found = _literal_values(arg)
        if found:
            return found
    return None


def _kind_schema(k: Kind) -> dict[str, Any]:
    root = schema_of(mi.type_info(k.model))
    props = root["properties"]
    # apiVersion and kind are the API server's to check, not a schema enum; metadata stays
    # opaque so the server's own ObjectMeta validation applies.
    props["apiVersion"] = {
        "type": "string",
        "description": "The versioned schema of this representation of an object.",
    }
    props["kind"] = {"type": "string", "description": "The REST resource this object represents."}
    root.pop("required", None)
    if k.spec_rules:
        props["spec"]["x-kubernetes-validations"] = [dict(r) for r in k.spec_rules]
    if k.rules:
        root["x-kubernetes-validations"] = [dict(r) for r in k.rules]
    # Flux defaults status.observedGeneration to -1 so kstatus sees a fresh object as
    # not yet reconciled rather than reconciled at generation 0.
    props["status"]["default"] = {"observedGeneration": -1}
    return root


def crd(k: Kind) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": k.name,
            "annotations": dict(k.annotations),
            "labels": {"app.kubernetes.io/part-of": "tidal"},
        },
        "spec": {
            "group": k.group,
            "names": {
                "categories": list(k.categories),
                "kind": k.kind,
                "listKind": f"{k.kind}List",
                "plural": k.plural,
                "shortNames": list(k.short_names),
                "singular": k.singular,
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": k.version,
                    "served": True,
                    "storage": True,
                    "additionalPrinterColumns": [c.to_dict() for c in k.columns],
                    "schema": {"openAPIV3Schema": _kind_schema(k)},
                    "subresources": {"status": {}},
                }
            ],
        },
    }


def file_name(k: Kind) -> str:
    return f"{k.group}_{k.plural}.yaml"


def render(k: Kind) -> str:
    return "---\n" + yamlio.dump(crd(k))


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for k in KINDS:
        path = directory / file_name(k)
        path.write_text(render(k))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tidal.api.crd", description=__doc__)
    parser.add_argument("--write", type=Path, help="directory to write the CRD files into")
    args = parser.parse_args(argv)
    if args.write:
        for path in write_all(args.write):
            print(path)
    else:
        sys.stdout.write("".join(render(k) for k in KINDS))
    return 0


def decode_error(e: msgspec.ValidationError) -> str:
    """msgspec's message with the JSON path in Kubernetes' spelling ($.spec.url -> spec.url)."""
    return str(e).replace("`$.", "`")


if __name__ == "__main__":
    sys.exit(main())
