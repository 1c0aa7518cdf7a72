"""What `flux create helmrelease` makes of its flags, and the row `flux get helmreleases` prints
for an object; no cluster involved.

The rules are flux's own (cmd/flux/create_helmrelease.go, internal/flags and internal/utils,
v2.9.5), quirks included: `--source` and `--chart-ref` split a namespace off at the last dot,
`--chart-ref` kinds are matched case-sensitively while `--source` and `--values-from` kinds are
not, `--depends-on` drops an `@readyExpr`, `--storage-namespace` defaults to
`--target-namespace`, and `--crds` sets the install policy to Create whatever it says (only the
upgrade policy takes its value). The HELM REVISION column is not shortened, unlike the
Kustomization's.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import yaml
import yaml.scanner
from yaml import events as yaml_events

from tidal.api.base import DurationError, format_duration, parse_duration
from tidal.api.helmrelease import CRDS_CREATE, CRDS_CREATE_REPLACE, CRDS_SKIP
from tidal.cli import readiness
from tidal.cli.objects import HELM_RELEASE, helm_release_revision
from tidal.cli.options import CliError
from tidal.source.helm import yamlevents

SOURCE_KINDS: Final = ("HelmRepository", "GitRepository", "Bucket")
CHART_REF_KINDS: Final = ("OCIRepository", "HelmChart")
VALUES_FROM_KINDS: Final = ("Secret", "ConfigMap")
CRDS_POLICIES: Final = (CRDS_SKIP, CRDS_CREATE, CRDS_CREATE_REPLACE)
STRATEGIES: Final = ("Revision", "ChartVersion")

SOURCE_HELP: Final = (
    "source that contains the chart in the format '<kind>/<name>.<namespace>', where kind must "
    f"be one of: ({', '.join(SOURCE_KINDS)})"
)


@dataclass(frozen=True)
class Ref:
    kind: str
    name: str
    namespace: str = ""

    def to_dict(self) -> dict[str, str]:
        # Go leaves out an empty kind and namespace, never the name.
        out = {"kind": self.kind} if self.kind else {}
        out["name"] = self.name
        if self.namespace:
            out["namespace"] = self.namespace
        return out


def kind_name_namespace(text: str) -> Ref:
    """`<kind>/<name>[.<namespace>]`: a kind only when there is exactly one slash, the namespace
    after the last dot of the name."""
    kind, name = "", text
    parts = text.split("/")
    if len(parts) == 2:
        kind, name = parts
    namespace = ""
    if "." in name:
        name, _, namespace = name.rpartition(".")
    return Ref(kind, name, namespace)


def _equal_fold(known: Iterable[str], kind: str) -> str | None:
    return next((k for k in known if k.casefold() == kind.casefold()), None)


def parse_source(text: str) -> Ref:
    """`--source`, checked as flux's flag value: ValueError says why it is refused."""
    if not text.strip():
        raise ValueError(f"no helm chart source given, please specify {SOURCE_HELP}")
    ref = kind_name_namespace(text)
    if not ref.kind or not ref.name:
        raise ValueError(f"invalid helm chart source '{text}', must be in format <kind>/<name>")
    kind = _equal_fold(SOURCE_KINDS, ref.kind)
    if kind is None:
        raise ValueError(
            f"source kind '{ref.kind}' is not supported, must be one of: " + ", ".join(SOURCE_KINDS)
        )
    return Ref(kind, ref.name, ref.namespace)


def parse_crds(text: str) -> str:
    """`--crds`: one of the policies, as written."""
    if not text.strip():
        raise ValueError(
            f"no upgrade CRDs policy given, must be one of: {', '.join(CRDS_POLICIES)}"
        )
    if text not in CRDS_POLICIES:
        raise ValueError(
            f"unsupported upgrade CRDs policy '{text}', must be one of: {', '.join(CRDS_POLICIES)}"
        )
    return text


def go_duration(text: str) -> float:
    """A pflag Duration flag: refused in time.ParseDuration's words."""
    try:
        return parse_duration(text.strip())
    except DurationError:
        raise ValueError(f'time: invalid duration "{text}"') from None


def chart_ref(text: str) -> Ref:
    ref = kind_name_namespace(text)
    if ref.kind not in CHART_REF_KINDS:
        raise CliError(
            f"chart reference kind '{ref.kind}' is not supported, must be one of: "
            + ", ".join(CHART_REF_KINDS)
        )
    return ref


def values_from(values: Sequence[str]) -> list[dict[str, str]]:
    refs = []
    for value in values:
        parts = value.split("/")
        kind, name = (parts[0], parts[1]) if len(parts) == 2 else ("", value)
        if not kind:
            raise CliError(
                f"invalid Kubernetes object reference '{value}', must be in format <kind>/<name>"
            )
        known = _equal_fold(VALUES_FROM_KINDS, kind)
        if known is None:
            raise CliError(
                f"reference kind '{kind}' is not supported, must be one of: "
                + ", ".join(VALUES_FROM_KINDS)
            )
        refs.append({"kind": known, "name": name})
    return refs


def depends_on(values: Sequence[str]) -> list[dict[str, str]]:
    """`[<namespace>/]<name>[@readyExpr]`; flux keeps only the name and namespace."""
    refs = []
    for value in values:
        ref = value.partition("@")[0]
        namespace, slash, name = ref.partition("/")
        if not slash:
            namespace, name = "", ref
        refs.append({"name": name, **({"namespace": namespace} if namespace else {})})
    return refs


def _json_number(value: Any) -> Any:
    """A value after encoding/json decoded it into interface{}: every number a float64, which
    json.Marshal writes back without a fraction when it has none."""
    if isinstance(value, dict):
        return {k: _json_number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_number(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    f = float(value)
    if math.isfinite(f) and f == int(f) and abs(f) < 1e21:
        # Go writes the shortest digits that identify the float, then zeros (Python's repr
        # has the same digits).
        return int(Decimal(repr(f)))
    return f


def _merge_maps(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """fluxcd/pkg transform.MergeMaps: b over a, mappings merged key by key."""
    out = dict(a)
    for key, value in b.items():
        current = out.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            out[key] = _merge_maps(current, value)
        else:
            out[key] = value
    return out


def _go_os_error(path: str, e: OSError) -> str:
    return f"open {path}: {(e.strerror or str(e)).lower()}"


def _type_name(value: Any) -> str:
    # encoding/json's name for what it found where it wanted a map.
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    return "number"


def _compose(events: yamlevents.Events) -> Any:
    """One node as sigs.k8s.io/yaml reads it outside strict mode: like yamlevents.compose, but a
    repeated mapping key replaces the earlier value instead of failing."""
    start = events.peek()
    if isinstance(start, yaml_events.MappingStartEvent):
        events.next()
        mapping: dict[str, Any] = {}
        while not isinstance(events.peek(), yaml_events.MappingEndEvent):
            first = events.peek()
            key = _compose(events)
            if isinstance(key, list | dict):
                raise yamlevents.YamlError(
                    f"line {yamlevents.line_of(first)}: invalid map key: {key!r}"
                )
            mapping[yamlevents.key_text(key)] = _compose(events)
        events.next()
        value: Any = mapping
    elif isinstance(start, yaml_events.SequenceStartEvent):
        events.next()
        items: list[Any] = []
        while not isinstance(events.peek(), yaml_events.SequenceEndEvent):
            items.append(_compose(events))
        events.next()
        value = items
    else:
        return yamlevents.compose(events)  # a scalar or an alias
    if start.anchor:
        events.anchors[start.anchor] = value
    return value


def _go_yaml_syntax_error(data: bytes) -> str | None:
    """go-yaml v2's words for YAML that does not parse: `yaml: line N: <problem>`, N being the
    0-based line of the problem for a parser error and the 1-based one for a scanner error
    (go-yaml's quirk), or the context's line when the problem has none."""
    try:
        for _ in yaml.parse(data, Loader=yaml.CSafeLoader):
            pass
    except yaml.MarkedYAMLError as e:
        line = 0
        if e.problem_mark is not None and e.problem_mark.line:
            line = e.problem_mark.line + (1 if isinstance(e, yaml.scanner.ScannerError) else 0)
        elif e.context_mark is not None:
            line = e.context_mark.line
        where = f"line {line}: " if line else ""
        return f"yaml: {where}{e.problem or 'unknown problem parsing YAML content'}"
    except yaml.YAMLError as e:
        return f"yaml: {e}"
    return None


def load_values(path: str) -> dict[str, Any]:
    """One `--values` file read as flux reads it: sigs.k8s.io/yaml (go-yaml v2 rules) into a
    JSON object; empty or null is an empty mapping."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise CliError(f"reading values from {path} failed: {_go_os_error(path, e)}") from None
    try:
        syntax_error = _go_yaml_syntax_error(data)
        if syntax_error:
            raise yamlevents.YamlError(syntax_error)
        events = yamlevents.Events(data)
        events.next()  # the stream start
        document: Any = None
        if not isinstance(events.peek(), yaml_events.StreamEndEvent):
            events.next()  # the document start
            document = _compose(events)
    except yamlevents.YamlError as e:
        raise CliError(f"converting values to JSON from {path} failed: {e}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise CliError(
            f"unmarshaling values from {path} failed: json: cannot unmarshal "
            f"{_type_name(document)} into Go value of type map[string]interface {{}}"
        )
    out: dict[str, Any] = _json_number(document)
    return out


def merged_values(paths: Sequence[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in paths:
        values = _merge_maps(values, load_values(path))
    return values


@dataclass(frozen=True)
class HelmReleaseFlags:
    interval: float
    source: Ref | None = None
    chart: str = ""
    chart_version: str = ""
    chart_ref: str = ""
    chart_interval: float = 0.0
    release_name: str = ""
    target_namespace: str = ""
    storage_namespace: str = ""
    create_target_namespace: bool = False
    depends_on: tuple[str, ...] = ()
    values_files: tuple[str, ...] = ()
    values_from: tuple[str, ...] = ()
    kubeconfig_secret_ref: str = ""
    service_account: str = ""
    crds: str = ""
    reconcile_strategy: str = "ChartVersion"


def check_chart_flags(f: HelmReleaseFlags) -> None:
    """The checks flux makes before it says anything."""
    if not f.chart and not f.chart_ref:
        raise CliError("chart or chart-ref is required")
    if f.chart and f.chart_ref:
        raise CliError("cannot use --chart in combination with --chart-ref")


def check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise CliError(
            f"'{strategy}' is an invalid reconcile strategy(valid: Revision, ChartVersion)"
        )


def helm_release_spec(f: HelmReleaseFlags) -> dict[str, Any]:
    """The spec flux builds from the flags, in flux's order of checks (fields at their zero
    value left out)."""
    spec: dict[str, Any] = {"interval": format_duration(f.interval)}
    if f.release_name:
        spec["releaseName"] = f.release_name
    if f.target_namespace:
        spec["targetNamespace"] = f.target_namespace
    storage_namespace = f.storage_namespace or f.target_namespace
    if storage_namespace:
        spec["storageNamespace"] = storage_namespace
    if f.depends_on:
        spec["dependsOn"] = depends_on(f.depends_on)
    if f.chart:
        template: dict[str, Any] = {
            "chart": f.chart,
            "sourceRef": (f.source or Ref("", "")).to_dict(),
            "reconcileStrategy": f.reconcile_strategy,
        }
        if f.chart_version:
            template["version"] = f.chart_version
        if f.chart_interval:
            template["interval"] = format_duration(f.chart_interval)
        spec["chart"] = {"spec": template}
    elif f.chart_ref:
        spec["chartRef"] = chart_ref(f.chart_ref).to_dict()
    if f.kubeconfig_secret_ref:
        spec["kubeConfig"] = {"secretRef": {"name": f.kubeconfig_secret_ref}}
    if f.create_target_namespace:
        spec.setdefault("install", {})["createNamespace"] = True
    if f.service_account:
        spec["serviceAccountName"] = f.service_account
    if f.crds:
        spec.setdefault("install", {})["crds"] = CRDS_CREATE
        spec["upgrade"] = {"crds": f.crds}
    if f.values_files:
        spec["values"] = merged_values(f.values_files)
    if f.values_from:
        spec["valuesFrom"] = values_from(f.values_from)
    return spec


def helm_release(
    name: str, namespace: str, labels: Mapping[str, str], spec: dict[str, Any]
) -> dict[str, Any]:
    return HELM_RELEASE.manifest(name, namespace, spec, labels)


# -- `get helmreleases` ---------------------------------------------------------------------------


def source_column(obj: Mapping[str, Any]) -> str:
    """`--show-source`: <Kind>/<namespace>/<name> of the chartRef, else of the chart template's
    source, the namespace defaulting to the HelmRelease's."""
    spec = obj.get("spec") or {}
    ref = spec.get("chartRef") or ((spec.get("chart") or {}).get("spec") or {}).get("sourceRef")
    ref = ref or {}
    namespace = ref.get("namespace") or (obj.get("metadata") or {}).get("namespace", "")
    return f"{ref.get('kind', '')}/{namespace}/{ref.get('name', '')}"


def headers(show_source: bool = False) -> tuple[str, ...]:
    return (
        "Name",
        *(("Source",) if show_source else ()),
        "Revision",
        "Suspended",
        "Ready",
        "Message",
    )


def row(obj: Mapping[str, Any], include_namespace: bool, show_source: bool = False) -> list[str]:
    meta = obj.get("metadata") or {}
    cells = [str(meta.get("namespace", ""))] if include_namespace else []
    cells.append(str(meta.get("name", "")))
    if show_source:
        cells.append(source_column(obj))
    c = readiness.condition(obj, "Ready")
    ready, message = (
        ("False", "waiting to be reconciled")
        if c is None
        else (str(c.get("status", "")), str(c.get("message", "")))
    )
    suspended = "True" if (obj.get("spec") or {}).get("suspend") is True else "False"
    return [*cells, helm_release_revision(obj), suspended, ready, message]
