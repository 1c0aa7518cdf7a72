"""Flux's post-build variable substitution (``spec.postBuild``) applied to built objects.

Mirrors ``SubstituteVariables`` of fluxcd/pkg/kustomize v1.35.6 (kustomize-controller v1.9.5,
flux v2.9.5): variables come from ``substituteFrom`` ConfigMaps and Secrets in list order, later
ones winning, then from the inline ``substitute`` map, which wins over all, every value with its
"\\n" characters removed (only those: "\\r" stays). Per object:

1. An object labelled or annotated ``kustomize.toolkit.fluxcd.io/substitute: disabled`` is left
   alone (checked on the object as built, before anything is substituted).
2. With ``substituteStrategy: WithVariables`` (the default) nothing happens when there is no
   variable at all: a ``substituteFrom`` that resolves to empty or missing-but-optional sources
   counts as none, so ``${var:=default}`` stays as written and strict mode does not complain.
   ``Always`` substitutes regardless (defaults apply, strict mode fails on undefined names).
3. Every variable name must match ``^[_[:alpha:]][_[:alpha:][:digit:]]*$`` (ASCII), else the
   object fails, whether or not the text uses it.
4. The object is written out as Flux writes it (go-yaml v2 through sigs.k8s.io/yaml, here
   tidal.kube.goyaml: keys in go-yaml's order, strings it would misread double-quoted, lines
   folded at 80 columns), the text goes through envsubst (tidal.kustomize.envsubst) and the
   result is read back. The quoting of the source file is long gone by then, so
   ``replicas: "${n}"`` and ``replicas: ${n}`` both become the number 3 for ``n=3``: to keep a
   string, the substituted text itself must be quoted, which Flux's documentation does with a
   ``quote: '"'`` variable (``${quote}${n}${quote}``). A value containing ``{a: 1}`` becomes a
   mapping; one with a ``"`` or ``'`` can break the YAML or swallow the keys written after it.

Flux reads the substituted text with go-yaml v2, not with the go-yaml v3 rules kustomize used
when it first read the manifests, which tidal.kube.yamlio models. So where substitution produced
a plain scalar, this module applies go-yaml v2's reading on top of yamlio's: YAML 1.1 booleans
(``y n yes no on off`` in their three casings: ``country: ${c}`` with ``c=NO`` is ``false``, as
Flux applies it), timestamps kept as written (``2024-01-02``, not ``2024-01-02T00:00:00Z``), null
for an empty scalar in a flow collection, mapping keys that are not strings turned into strings
the way sigs.k8s.io/yaml does (``8080``, ``true``, ``1e+10``) rather than refused, and a repeated
key replacing the earlier one rather than being an error.

Errors carry Flux's messages (``envsubst error: ...``); post_build_failure adds the prefix
kustomize-controller puts before them in the Ready condition.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal

from yaml import YAMLError
from yaml._yaml import CParser
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tidal.kube import goyaml, yamlio
from tidal.kube.gostrconv import parse_int, parse_uint
from tidal.kustomize.envsubst import EnvsubstError, envsubst

__all__ = [
    "SUBSTITUTE_DISABLED",
    "SUBSTITUTE_KEY",
    "VARIABLE_NAME_PATTERN",
    "SubstituteStrategy",
    "SubstitutionError",
    "config_map_values",
    "merge_variables",
    "post_build_failure",
    "secret_values",
    "substitute_object",
    "substitution_disabled",
    "validate_variable_names",
]

SUBSTITUTE_KEY: Final = "kustomize.toolkit.fluxcd.io/substitute"
SUBSTITUTE_DISABLED: Final = "disabled"
# Flux's spelling, quoted in its error message.
VARIABLE_NAME_PATTERN: Final = "^[_[:alpha:]][_[:alpha:][:digit:]]*$"
# The same in Python: RE2's POSIX classes are ASCII-only and its "$" is the end of the text.
_VARIABLE_NAME: Final = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")

SubstituteStrategy = Literal["WithVariables", "Always"]
_STRATEGIES: Final = ("WithVariables", "Always")


class SubstitutionError(ValueError):
    """Post-build substitution failed for one object; the message is Flux's."""


def config_map_values(configmap: Mapping[str, Any]) -> dict[str, str]:
    """The variables a ConfigMap supplies: its ``data`` (``binaryData`` is ignored, as in Flux).

    Values are returned as stored; merge_variables removes their newlines.
    """
    return dict(_string_map(configmap, "ConfigMap"))


def secret_values(secret: Mapping[str, Any]) -> dict[str, str]:
    """The variables a Secret supplies: its base64 ``data``, decoded.

    ``stringData`` is ignored: the API server folds it into ``data`` on write and never returns
    it, so Flux never sees it. Bytes that are not UTF-8 are kept as lone surrogates
    (``surrogateescape``), as the envsubst engine expects; substituted into a manifest they make
    it invalid, as they do in Flux.
    """
    variables = {}
    for key, value in _string_map(secret, "Secret").items():
        try:
            raw = base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"Secret data {key!r} is not valid base64: {exc}") from None
        variables[key] = raw.decode("utf-8", "surrogateescape")
    return variables


def _string_map(obj: Mapping[str, Any], kind: str) -> Mapping[str, str]:
    data = obj.get("data")
    if data is None:
        return {}
    if not isinstance(data, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError(f"{kind} data must map strings to strings")
    return data


def merge_variables(
    sources: Sequence[Mapping[str, str]], substitute: Mapping[str, str]
) -> dict[str, str]:
    """The variables of a Kustomization: ``sources`` in order, then ``substitute`` over all.

    ``sources`` are the ``substituteFrom`` references already read (config_map_values,
    secret_values; a missing optional one is simply left out). Newlines are removed from every
    value, as Flux does. Names are not checked here: Flux checks them only when an object is
    actually substituted (validate_variable_names, substitute_object).
    """
    merged: dict[str, str] = {}
    for source in (*sources, substitute):
        for name, value in source.items():
            merged[name] = value.replace("\n", "")
    return merged


def validate_variable_names(names: Iterable[str]) -> None:
    """Raise SubstitutionError with Flux's message for the first invalid name (sorted order).

    Flux iterates a Go map, so which of several invalid names it reports varies between runs.
    """
    invalid = sorted(name for name in names if not _VARIABLE_NAME.fullmatch(name))
    if invalid:
        raise SubstitutionError(
            f"envsubst error: '{invalid[0]}' var name is invalid, "
            f"must match '{VARIABLE_NAME_PATTERN}'"
        )


def substitution_disabled(obj: Mapping[str, Any]) -> bool:
    """Whether the object opts out with the label or annotation ``...substitute: disabled``."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        return False
    for field in ("labels", "annotations"):
        values = metadata.get(field)
        if isinstance(values, Mapping) and values.get(SUBSTITUTE_KEY) == SUBSTITUTE_DISABLED:
            return True
    return False


def substitute_object(
    obj: dict[str, Any],
    variables: Mapping[str, str],
    *,
    strict: bool,
    strategy: SubstituteStrategy = "WithVariables",
) -> dict[str, Any]:
    """The object as Flux applies it after post-build substitution (see the module docstring).

    ``variables`` is the merged set (merge_variables); ``strict`` is kustomize-controller's
    ``StrictPostBuildSubstitutions`` feature gate (on by default) or ``flux build
    --strict-substitute``. Returns a new object, or ``obj`` itself when substitution is skipped
    or changes nothing; ``obj`` is never modified. Raises SubstitutionError.
    """
    if strategy not in _STRATEGIES:
        raise ValueError(f"unknown substitute strategy {strategy!r}: want one of {_STRATEGIES}")
    if substitution_disabled(obj):
        return obj
    if strategy == "WithVariables" and not variables:
        return obj
    validate_variable_names(variables)
    # The text Flux substitutes is the object as go-yaml v2 writes it: keys sorted its way,
    # strings it would misread double-quoted, long lines folded at 80 columns. All of that
    # decides what a substituted value turns into (a quote in a value may swallow the keys
    # that follow it, for one).
    text = goyaml.marshal(obj)
    try:
        output = envsubst(text, variables, strict=strict)
    except EnvsubstError as exc:
        raise SubstitutionError(f"envsubst error: variable substitution failed: {exc}") from None
    if output == text:
        return obj
    reading = _GoYamlV2Reading(output, obj)
    try:
        # As bytes, so that bytes from a Secret that are not UTF-8 are reported, as go-yaml does.
        data = reading.text.encode("utf-8", "surrogateescape")
        documents = yamlio.load_all(data, source="substituted object")
    except yamlio.ManifestError as exc:
        where = f"line {exc.line}: " if exc.line is not None else ""
        raise SubstitutionError(f"envsubst error: YAMLToJSON: yaml: {where}{exc.reason}") from None
    if not documents:
        raise SubstitutionError("envsubst error: YAMLToJSON: the object substituted to nothing")
    # go-yaml v2 decodes only the first document, should a value have produced more.
    result = documents[0]
    reading.apply(result)
    for field in ("apiVersion", "kind"):
        # What kustomize-controller trips over next when a value swallowed these.
        if field in obj and (not isinstance(result.get(field), str) or not result[field]):
            shown = json.dumps(result, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            name = "Kind" if field == "kind" else field
            raise SubstitutionError(
                f"error unmarshaling JSON: while decoding JSON: Object '{name}' is missing "
                f"in '{shown}'"
            )
    return result


def post_build_failure(obj: Mapping[str, Any], error: SubstitutionError) -> str:
    """kustomize-controller's text for a failed object: ``post build failed for '<id>': <error>``.

    The id is kustomize's ``Kind.version.group/name``, with ``[noGrp]`` for the core group (and
    ``[noVer]``/``[noKind]`` for missing parts).
    """
    api_version = obj.get("apiVersion")
    group, _, version = (api_version if isinstance(api_version, str) else "").rpartition("/")
    kind = obj.get("kind")
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    gvk = ".".join(
        (
            kind if isinstance(kind, str) and kind else "[noKind]",
            version or "[noVer]",
            group or "[noGrp]",
        )
    )
    return f"post build failed for '{gvk}/{name if isinstance(name, str) else ''}': {error}"


# ---------------------------------------------------------------------------------------------
# Reading the substituted text as go-yaml v2 does

_PLAIN: Final = "plain"
_OTHER: Final = "other"


class _NotInOriginal:
    """Marks a place the object did not have before substitution (a value injected structure)."""


_NEW: Final = _NotInOriginal()
_Path = tuple[str | int, ...]


class _StyleLoader(CParser):
    """libyaml's composer, keeping only what matters here: which scalars were plain."""

    def resolve(self, kind: type[Node], value: Any, implicit: Any) -> str:
        return _PLAIN if kind is ScalarNode and implicit[0] else _OTHER

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        return None

    def ascend_resolver(self) -> None:
        return None


class _GoYamlV2Reading:
    """Where go-yaml v2 (Flux's reader after substitution) and yamlio disagree on the text.

    yamlio types plain scalars as kustomize's go-yaml v3 reading does. For what substitution
    produced, go-yaml v2 differs: YAML 1.1 booleans, timestamps kept as written, an empty scalar
    in a flow collection is null, mapping keys that are not strings are turned into their string
    form (``8080``, ``true``, ``1.5``) instead of being refused, and a repeated key replaces the
    earlier one instead of being an error. Keys are fixed in ``text`` before yamlio reads it
    (a dropped duplicate gets a placeholder name), values in the result afterwards (apply).

    Only places where the object had a string containing "$", or nothing at all, are touched:
    everything else was written by goyaml.marshal, quoted wherever go-yaml v2 needs it.
    """

    def __init__(self, text: str, original: dict[str, Any]) -> None:
        self.text = text
        self._values: list[tuple[_Path, str]] = []
        self._renames: dict[tuple[int, int], str] = {}
        self._dropped: list[_Path] = []
        self._unsupported_float: str | None = None
        try:
            loader = _StyleLoader(text)
        except UnicodeEncodeError:
            return  # bytes that are not UTF-8 (from a Secret): yamlio reports them
        try:
            root = loader.get_node() if loader.check_node() else None
        except YAMLError:
            # yamlio reports the error, or accepts what libyaml's composer refuses (a re-defined
            # anchor); either way there is nothing to correct with confidence.
            return
        finally:
            loader.dispose()
        if root is None:
            return
        self._walk(root, original, ())
        if self._unsupported_float is not None:
            # sigs.k8s.io/yaml converts keys first, then encoding/json refuses the value.
            raise SubstitutionError(
                f"envsubst error: YAMLToJSON: json: unsupported value: {self._unsupported_float}"
            )
        for (start, end), key in sorted(self._renames.items(), reverse=True):
            self.text = text = text[:start] + json.dumps(key, ensure_ascii=False) + text[end:]

    def _rename(self, node: ScalarNode, key: str) -> None:
        self._renames[node.start_mark.index, node.end_mark.index] = key

    def _walk(self, node: Node, original: Any, path: _Path) -> None:
        if isinstance(node, ScalarNode):
            if _fresh(original) and _plain(node):
                text = node.value
                self._values.append((path, text))
                if (
                    text
                    and self._unsupported_float is None
                    and goyaml.resolve(text) == goyaml.FLOAT
                ):
                    number = _go_yaml_v2_float(text)
                    if math.isnan(number):
                        self._unsupported_float = "NaN"
                    elif math.isinf(number):
                        self._unsupported_float = "+Inf" if number > 0 else "-Inf"
        elif isinstance(node, MappingNode):
            self._walk_mapping(node, original, path)
        elif isinstance(node, SequenceNode):
            items = node.value
            same = isinstance(original, list) and len(original) == len(items)
            for index, item in enumerate(items):
                self._walk(item, original[index] if same else _NEW, (*path, index))

    def _walk_mapping(self, node: MappingNode, original: Any, path: _Path) -> None:
        pairs = node.value
        if any(isinstance(key, ScalarNode) and key.value == "<<" for key, _ in pairs):
            # Merge keys: yamlio expands them, the nodes no longer line up with its result.
            return
        # The text lists the keys in go-yaml v2's order, which is how the original lines up.
        before: list[tuple[Any, Any]] = []
        if isinstance(original, dict) and len(original) == len(pairs):
            before = [(k, original[k]) for k in sorted(original, key=goyaml.sort_key)]
        entries: list[tuple[ScalarNode, Node, str, Any]] = []
        for index, (key_node, value_node) in enumerate(pairs):
            old_key, old_value = before[index] if before else (_NEW, _NEW)
            if not isinstance(key_node, ScalarNode):
                continue
            key = key_node.value
            if _fresh(old_key) and _plain(key_node):
                key = self._key(key_node, value_node)
            entries.append((key_node, value_node, key, old_value))
        last = {key: index for index, (_, _, key, _) in enumerate(entries)}
        for index, (key_node, value_node, key, old_value) in enumerate(entries):
            if last[key] != index:
                placeholder = f"\ue000tidal-replaced-{len(self._dropped)}"
                self._rename(key_node, placeholder)
                self._dropped.append((*path, placeholder))
                continue
            self._walk(value_node, old_value, (*path, key))

    def _key(self, node: ScalarNode, value: Node) -> str:
        """The JSON key sigs.k8s.io/yaml makes of a plain key (renaming it in the text)."""
        text: str = node.value
        tag = goyaml.resolve(text) if text else goyaml.NULL
        if tag in (goyaml.STR, goyaml.MERGE):
            return text
        if tag == goyaml.TIMESTAMP:
            # go-yaml v2 decodes timestamps as the text itself; quoted, yamlio agrees.
            key = text
        elif tag == goyaml.BOOL:
            key = "true" if goyaml.BOOLS[text] else "false"
        elif tag == goyaml.INT:
            number = _go_yaml_v2_int(text)
            if number is None:
                shown = f"{parse_uint(text.replace('_', ''), 0) or 0:#x}"
                raise _unsupported_key("uint64", shown, value)
            key = str(number)
        elif tag == goyaml.FLOAT:
            key = _float_key(_go_yaml_v2_float(text))
        else:
            raise _unsupported_key("%!s(<nil>)", "<nil>", value)
        self._rename(node, key)
        return key

    def apply(self, document: dict[str, Any]) -> None:
        """Drop the replaced duplicates from ``document`` and give the plain scalars found in
        the text their go-yaml v2 values."""
        for path in self._dropped:
            parent = _lookup(document, path[:-1])
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
        for path, text in self._values:
            if not path:
                continue
            parent = _lookup(document, path[:-1])
            try:
                value = parent[path[-1]]
            except (KeyError, IndexError, TypeError):
                continue
            if not isinstance(value, str):
                continue
            if text in goyaml.BOOLS:
                fixed: Any = goyaml.BOOLS[text]
            elif not text:
                # kustomize's first reading makes "" of an empty scalar in [..] or {..}.
                fixed = None
            elif value != text and goyaml.resolve(text) == goyaml.TIMESTAMP:
                fixed = text
            else:
                continue
            parent[path[-1]] = fixed


def _lookup(document: Any, path: _Path) -> Any:
    value = document
    for step in path:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _unsupported_key(go_type: str, key: str, value: Node) -> SubstitutionError:
    message = f"envsubst error: YAMLToJSON: unsupported map key of type: {go_type}, key: {key}"
    # Go's %#v of the value, for the scalars it is easy to be sure of; collections are left out
    # rather than misquoted.
    if isinstance(value, ScalarNode):
        tag = goyaml.STR if value.style else goyaml.resolve(value.value)
        if tag == goyaml.STR:
            message += f", value: {json.dumps(value.value, ensure_ascii=False)}"
        elif tag == goyaml.NULL:
            message += ", value: <nil>"
        elif tag == goyaml.BOOL:
            message += f", value: {str(goyaml.BOOLS[value.value]).lower()}"
    return SubstitutionError(message)


def _fresh(original: Any) -> bool:
    return original is _NEW or (isinstance(original, str) and "$" in original)


def _plain(node: ScalarNode) -> bool:
    return node.tag == _PLAIN and not node.style


def _go_yaml_v2_int(text: str) -> int | None:
    """The int64 go-yaml v2 decodes from a scalar it resolves as !!int; None if only uint64."""
    plain = text.replace("_", "")
    number = parse_int(plain, 0)
    if number is None and plain.startswith("0b"):
        number = parse_int(plain[2:], 2)
    elif number is None and plain.startswith("-0b"):
        number = parse_int("-" + plain[3:], 2)
    return number


def _go_yaml_v2_float(text: str) -> float:
    """The float64 of a scalar go-yaml v2 resolves as !!float (.inf, .nan and decimals)."""
    lowered = text.lower()
    if lowered == ".nan":
        return math.nan
    if lowered in (".inf", "+.inf", "-.inf"):
        return -math.inf if lowered[0] == "-" else math.inf
    return float(text.replace("_", ""))


# sigs.k8s.io/yaml renames these for a float key (not for a value).
_FLOAT_KEY_SPECIALS: Final = {"NaN": ".nan", "+Inf": ".inf", "-Inf": "-.inf"}


def _float_key(value: float) -> str:
    """The JSON key sigs.k8s.io/yaml makes of a float key: float32 digits, go-yaml's specials."""
    text = goyaml.format_float32(value)
    return _FLOAT_KEY_SPECIALS.get(text, text)
