"""The values a HelmRelease renders its chart with (flux-spec §6.2).

valuesFrom entries are read in order from ConfigMaps and Secrets of the HelmRelease's namespace
and deep-merged (later wins); spec.values goes on top. An entry with targetPath sets one value at
a Helm `--set` path instead, and that value wins over everything, inline values included, as
Flux documents it. (Flux's code reaches the same result through map aliasing, except for a
top-level targetPath key that also exists inline, where the inline value comes back; the
documented rule is taken here and the quirk treated as a bug.)

Error texts are fluxcd/pkg/chartutil's, so alerts read the same.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tidal.api.helmrelease import ValuesReference

Values = dict[str, Any]
# (namespace, kind, name) -> the object's data as text per key, or None when it does not exist.
DataReader = Callable[[str, str, str], Awaitable[Mapping[str, str] | None]]


class ValuesParser(Protocol):
    """Helm's own readers (tidal.helm.engine), so values are typed exactly as Helm types them."""

    def read_values(self, text: str) -> Values:
        """common.ReadValues: a YAML document of values; ValueError with Helm's message."""
        ...

    def parse_set(self, expression: str, as_string: bool) -> Values:
        """strvals.ParseInto (or ParseIntoString when as_string) of one `path=value`."""
        ...


NOT_FOUND = "resource not found"
KEY_NOT_FOUND = "key not found"


class ValuesError(Exception):
    """A values reference that cannot be resolved; the message is Flux's."""


@dataclass(frozen=True)
class Composed:
    values: Values
    # Optional references that were skipped, for the log (Flux logs them at info).
    skipped: tuple[str, ...] = ()


def merge_maps(a: Mapping[str, Any], b: Mapping[str, Any]) -> Values:
    """chartutil.MergeMaps: b over a, maps merged key by key, anything else replaced."""
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, Mapping):
            current = out.get(k)
            if isinstance(current, Mapping):
                out[k] = merge_maps(current, v)
                continue
        out[k] = v
    return out


def reference_error(
    namespace: str, ref: ValuesReference, reason: str, *, detail: str = ""
) -> ValuesError:
    text = "could not resolve"
    if ref.optional:
        text += " optional"
    text += f" {ref.kind} chart values reference '{namespace}/{ref.name}'"
    text += f" with key '{ref.key()}': {detail or reason}"
    return ValuesError(text)


def set_expression(path: str, value: str, literal: bool) -> tuple[str, bool]:
    """The `--set` expression and its string flag for a targetPath value, as Flux builds it:
    a quoted value is kept as a string without its quotes; a literal one is escaped so that
    commas, brackets and braces stay part of the value."""
    if literal:
        for ch in ("\\", ",", "[", "]", "{", "}"):
            value = value.replace(ch, "\\" + ch)
        return f"{path}={value}", True
    quoted = len(value) >= 1 and (
        (value.startswith("'") and value.endswith("'"))
        or (value.startswith('"') and value.endswith('"'))
    )
    if quoted:
        return f"{path}={value.strip(chr(39) + chr(34))}", True
    return f"{path}={value}", False


async def compose(
    namespace: str,
    refs: Sequence[ValuesReference],
    inline: Mapping[str, Any] | None,
    read: DataReader,
    helm: ValuesParser,
) -> Composed:
    """The final values of a release, or ValuesError naming the reference at fault."""
    inline_values: Values = copy.deepcopy(dict(inline or {}))
    result: Values = {}
    overrides: list[Values] = []
    skipped: list[str] = []
    cache: dict[tuple[str, str], Mapping[str, str] | None] = {}
    for ref in refs:
        cache_key = (ref.kind, ref.name)
        if cache_key not in cache:
            cache[cache_key] = await read(namespace, ref.kind, ref.name)
        data = cache[cache_key]
        if data is None:
            err = reference_error(namespace, ref, NOT_FOUND)
            if ref.optional:
                skipped.append(str(err))
                continue
            raise err
        text = data.get(ref.key())
        if text is None:
            err = reference_error(namespace, ref, KEY_NOT_FOUND)
            if ref.optional:
                skipped.append(str(err))
                continue
            raise err
        if ref.target_path:
            expression, as_string = set_expression(ref.target_path, text, ref.literal)
            try:
                parsed = helm.parse_set(expression, as_string)
            except ValueError as e:
                raise reference_error(
                    namespace, ref, "failed to merge value", detail=str(e)
                ) from None
            result = merge_maps(merge_maps(result, inline_values), parsed)
            overrides.append(parsed)
            continue
        try:
            document = helm.read_values(text)
        except ValueError as e:
            raise reference_error(
                namespace, ref, "failed to read values data", detail=str(e)
            ) from None
        result = merge_maps(result, document)
    result = merge_maps(result, inline_values)
    for parsed in overrides:
        result = merge_maps(result, parsed)
    return Composed(result, tuple(skipped))


class HelmValuesParser:
    """ValuesParser through Helm's own code (needs the `helm` extra)."""

    def read_values(self, text: str) -> Values:
        from tidal.helm import engine

        return engine.values_from_yaml(text)

    def parse_set(self, expression: str, as_string: bool) -> Values:
        from tidal.helm import engine

        return engine.parse_set(expression, as_string=as_string)
