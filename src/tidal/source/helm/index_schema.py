"""The fields of a Helm repository index and of its chart versions, read as Go's decoders read
them into Helm's repo.IndexFile: names matched as encoding/json matches them, values converted to
the Go type of their field, and type errors worded as Go words them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from tidal.source.helm import gojson
from tidal.source.helm.gojson import GoTime, TimeError
from tidal.source.helm.yamlevents import format_float32_g

# How far aliases may multiply a value of free form (serverInfo, import-values) when written out.
_MAX_EXPANDED_NODES: Final = 1_000_000


class IndexLoadError(ValueError):
    """The index cannot be loaded; the message says why, in Helm's words where it has them."""


# -- the schema ------------------------------------------------------------------------------------

# Field kinds: str, bool, time, strlist, strmap, any, anylist, maintainers, dependencies.
METADATA_FIELDS: Final = (
    ("name", "str"),
    ("home", "str"),
    ("sources", "strlist"),
    ("version", "str"),
    ("description", "str"),
    ("keywords", "strlist"),
    ("maintainers", "maintainers"),
    ("icon", "str"),
    ("apiVersion", "str"),
    ("condition", "str"),
    ("tags", "str"),
    ("appVersion", "str"),
    ("deprecated", "bool"),
    ("annotations", "strmap"),
    ("kubeVersion", "str"),
    ("dependencies", "dependencies"),
    ("type", "str"),
)
_CHART_VERSION_FIELDS: Final = (
    ("urls", "strlist"),
    ("created", "time"),
    ("removed", "bool"),
    ("digest", "str"),
    ("checksum", "str"),
    ("engine", "str"),
    ("tillerVersion", "str"),
    ("url", "str"),
)
MAINTAINER_FIELDS: Final = (("name", "str"), ("email", "str"), ("url", "str"))
DEPENDENCY_FIELDS: Final = (
    ("name", "str"),
    ("version", "str"),
    ("repository", "str"),
    ("condition", "str"),
    ("tags", "strlist"),
    ("enabled", "bool"),
    ("import-values", "anylist"),
    ("alias", "str"),
)
INDEX_FIELDS: Final = (
    ("serverInfo", "any"),
    ("apiVersion", "str"),
    ("generated", "time"),
    ("entries", "entries"),
    ("publicKeys", "strlist"),
    ("annotations", "strmap"),
)
ALL_VERSION_FIELDS: Final = dict(METADATA_FIELDS + _CHART_VERSION_FIELDS)
OWN_VERSION_FIELDS: Final = frozenset(name for name, _ in _CHART_VERSION_FIELDS)
_GO_TYPES: Final = {
    "str": "string",
    "bool": "bool",
    "time": "time.Time",
    "strlist": "[]string",
    "strmap": "map[string]string",
    "anylist": "[]interface {}",
    "maintainers": "[]*chart.Maintainer",
    "dependencies": "[]*chart.Dependency",
}


def match_field(key: str, fields: Mapping[str, str]) -> str | None:
    """encoding/json's field lookup: the exact name, else a case-insensitive match."""
    if key in fields:
        return key
    folded = key.casefold()
    return next((name for name in fields if name.casefold() == folded), None)


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def type_error(value: Any, where: str, kind: str) -> IndexLoadError:
    return IndexLoadError(
        f"json: cannot unmarshal {json_type(value)} into Go struct field {where} of type "
        f"{_GO_TYPES.get(kind, kind)}"
    )


def _to_string(value: Any) -> Any:
    """sigs.k8s.io/yaml's rewrite of a YAML number or boolean bound for a string field."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float32_g(value)
    return value


@dataclass
class Reader:
    """Decodes composed values into the index's Go types.

    `yaml` selects the YAML path's rules: unknown fields are errors, and scalars bound for a
    string field that sigs.k8s.io/yaml can see become strings (not through the embedded chart
    metadata, whose fields it does not look into: `version: 1.0` fails there, as in Helm)."""

    yaml: bool

    def fields(self, raw: Any, spec: Mapping[str, str], where: str) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise type_error(raw, where, "object")
        out: dict[str, Any] = {}
        for key, value in raw.items():
            name = match_field(key, spec)
            if name is None:
                if self.yaml:
                    raise IndexLoadError(f'json: unknown field "{key}"')
                continue
            decoded = self.value(value, spec[name], f"{where}.{name}", convert=False)
            if decoded is not KEEP:
                out[name] = decoded
        return out

    def value(self, value: Any, kind: str, where: str, *, convert: bool) -> Any:
        if convert and self.yaml and kind in ("str", "strlist", "strmap"):
            value = _convert(value, kind)
        if kind in ("str", "bool", "time"):
            if value is None:
                return KEEP  # JSON null leaves a Go scalar as it was
            if kind == "str" and isinstance(value, str):
                return value
            if kind == "bool" and isinstance(value, bool):
                return value
            if kind == "time" and isinstance(value, str):
                try:
                    return GoTime.parse(value)
                except TimeError as e:
                    raise IndexLoadError(str(e)) from None
            raise type_error(value, where, kind)
        if value is None:
            return None
        if kind == "strlist":
            if not isinstance(value, list):
                raise type_error(value, where, kind)
            out = []
            for item in value:
                if item is not None and not isinstance(item, str):
                    raise type_error(item, where, "str")
                out.append(item or "")
            return out
        if kind == "strmap":
            if not isinstance(value, dict):
                raise type_error(value, where, kind)
            for item in value.values():
                if item is not None and not isinstance(item, str):
                    raise type_error(item, where, "str")
            return {k: v or "" for k, v in value.items()}
        if kind in ("any", "anylist"):
            if kind == "anylist" and not isinstance(value, list):
                raise type_error(value, where, kind)
            _check_free_form(value)
            return value
        if kind in ("maintainers", "dependencies"):
            if not isinstance(value, list):
                raise type_error(value, where, kind)
            spec = dict(MAINTAINER_FIELDS if kind == "maintainers" else DEPENDENCY_FIELDS)
            return [None if item is None else self.fields(item, spec, where) for item in value]
        raise AssertionError(kind)


KEEP: Final = object()


def _convert(value: Any, kind: str) -> Any:
    if kind == "str":
        return _to_string(value)
    if kind == "strlist" and isinstance(value, list):
        return [_to_string(v) for v in value]
    if kind == "strmap" and isinstance(value, dict):
        return {k: _to_string(v) for k, v in value.items()}
    return value


def _check_free_form(value: Any) -> None:
    """A free-form value must be writable as JSON (no NaN or infinity) and, written out, not
    explode through aliases repeating one node over and over."""
    budget = [_MAX_EXPANDED_NODES]

    def walk(v: Any) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise IndexLoadError("document contains excessive aliasing")
        if isinstance(v, float):
            gojson.float64(v)
        elif isinstance(v, dict):
            for item in v.values():
                walk(item)
        elif isinstance(v, list):
            for item in v:
                walk(item)

    try:
        walk(value)
    except gojson.UnsupportedValueError as e:
        raise IndexLoadError(str(e)) from None
