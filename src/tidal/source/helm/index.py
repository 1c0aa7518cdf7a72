"""A Helm repository index, loaded and normalised the way source-controller does it.

Flux (internal/helm/repository IndexFromBytes, on Helm's repo.IndexFile) reads the index as JSON
when it is valid JSON and otherwise as strict YAML (unknown fields and duplicate keys are
errors), requires `apiVersion`, drops null chart versions and those whose chart metadata does not
validate (no name, a version that is not semver, an unknown type, a null maintainer or
dependency, a bad alias...), cleans the texts validation sanitises, sorts each chart's versions
newest first, and stores `json.MarshalIndent(index, "", "  ")`. `normalize` returns those bytes
(tidal.source.helm.gojson writes Go's JSON exactly) and, unlike Flux, the versions it dropped, so
the controller can say so.

Memory stays near the size of the output: a YAML index is read one chart version at a time
(tidal.source.helm.yamlevents) and each version is encoded as soon as it is read, so the whole
index never exists as a tree of Python objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from yaml import events as ev

from tidal.source.git.semver import Version
from tidal.source.helm import gojson
from tidal.source.helm.chart_metadata import InvalidMetadata, validate
from tidal.source.helm.index_schema import (
    ALL_VERSION_FIELDS,
    DEPENDENCY_FIELDS,
    INDEX_FIELDS,
    KEEP,
    MAINTAINER_FIELDS,
    METADATA_FIELDS,
    OWN_VERSION_FIELDS,
    IndexLoadError,
    Reader,
    json_type,
    match_field,
    type_error,
)
from tidal.source.helm.yamlevents import (
    Events,
    Unaliasable,
    YamlError,
    compose,
    mapping_keys,
)

# source-controller's --helm-index-max-size default.
DEFAULT_MAX_INDEX_SIZE: Final = 50 << 20


@dataclass(frozen=True)
class SkippedVersion:
    """A chart version Flux drops from the index: a null entry or invalid metadata."""

    chart: str
    version: str
    reason: str

    def __str__(self) -> str:
        what = f"{self.chart} {self.version}".strip() if self.version else self.chart
        return f"{what or '<unnamed>'}: {self.reason}"


@dataclass
class NormalizedIndex:
    """The index as Flux stores it, kept as encoded fragments until written."""

    head: list[str]
    entries: dict[str, list[tuple[Version, str]]] | None
    null_charts: set[str]
    tail: list[str]
    skipped: list[SkippedVersion] = field(default_factory=list)

    @property
    def chart_count(self) -> int:
        return len(self.entries or {})

    @property
    def version_count(self) -> int:
        return sum(len(v) for v in (self.entries or {}).values())

    def chunks(self) -> Iterator[bytes]:
        """The artifact's bytes, in pieces."""
        yield "".join(self.head).encode()
        if self.entries is None:
            yield b"null"
        elif not self.entries:
            yield b"{}"
        else:
            yield b"{"
            first = True
            for chart in sorted(self.entries):
                yield (b"\n    " if first else b",\n    ") + gojson.string(chart).encode() + b": "
                first = False
                versions = self.entries[chart]
                if chart in self.null_charts:
                    yield b"null"
                elif not versions:
                    yield b"[]"
                else:
                    yield b"["
                    for i, (_, text) in enumerate(versions):
                        yield (b"\n      " if i == 0 else b",\n      ") + text.encode()
                    yield b"\n    ]"
            yield b"\n  }"
        yield "".join(self.tail).encode()

    def to_bytes(self) -> bytes:
        return b"".join(self.chunks())


# -- writing one chart version --------------------------------------------------------------------


def _maintainer_out(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: m[k] for k, _ in MAINTAINER_FIELDS if m.get(k)}


def _dependency_out(d: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, _ in DEPENDENCY_FIELDS:
        value = d.get(key)
        if key in ("name", "repository"):
            out[key] = value or ""
        elif value:
            out[key] = value
    return out


def _version_out(md: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, _ in METADATA_FIELDS:
        value = md.get(key)
        if not value:
            continue
        if key == "maintainers":
            value = [_maintainer_out(m) for m in value]
        elif key == "dependencies":
            value = [_dependency_out(d) for d in value]
        elif key == "annotations":
            value = dict(sorted(value.items()))
        out[key] = value
    out["urls"] = own.get("urls")
    out["created"] = own.get("created", gojson.ZERO_TIME)
    for key in ("removed", "digest", "checksum", "engine", "tillerVersion", "url"):
        if own.get(key):
            out[key] = own[key]
    return out


# -- loading --------------------------------------------------------------------------------------


@dataclass
class _Builder:
    reader: Reader
    top: dict[str, Any] = field(default_factory=dict)
    entries: dict[str, list[tuple[Version, str]]] | None = None
    null_charts: set[str] = field(default_factory=set)
    skipped: list[SkippedVersion] = field(default_factory=list)

    def set_field(self, name: str, value: Any) -> None:
        decoded = self.reader.value(
            value, dict(INDEX_FIELDS)[name], f"IndexFile.{name}", convert=True
        )
        if decoded is not KEEP:
            self.top[name] = decoded

    def start_entries(self) -> None:
        # A repeated "entries" key (JSON only) replaces the earlier map, as in Go.
        self.entries = {}
        self.null_charts = set()

    def start_chart(self, chart: str, null: bool) -> None:
        assert self.entries is not None
        self.entries[chart] = []
        self.null_charts.discard(chart)
        if null:
            self.null_charts.add(chart)

    def add_version(self, chart: str, raw: Any) -> None:
        assert self.entries is not None
        where = "IndexFile.entries"
        if raw is None:
            self.skipped.append(SkippedVersion(chart, "", "empty entry"))
            return
        if not isinstance(raw, dict):
            raise type_error(raw, where, "repo.ChartVersion")
        md: dict[str, Any] = {}
        own: dict[str, Any] = {}
        for key, value in raw.items():
            name = match_field(key, ALL_VERSION_FIELDS)
            if name is None:
                if self.reader.yaml:
                    raise IndexLoadError(f'json: unknown field "{key}"')
                continue
            is_own = name in OWN_VERSION_FIELDS
            decoded = self.reader.value(
                value, ALL_VERSION_FIELDS[name], f"ChartVersion.{where}.{name}", convert=is_own
            )
            if decoded is KEEP:
                continue
            (own if is_own else md)[name] = decoded
        md = _copy_nested(md)
        md.setdefault("apiVersion", "")
        if not md["apiVersion"]:
            md["apiVersion"] = "v1"
        try:
            parsed = validate(md)
        except InvalidMetadata as e:
            self.skipped.append(SkippedVersion(chart, str(md.get("version", "")), str(e)))
            return
        text: list[str] = []
        gojson.encode(_version_out(md, own), 3, text)
        self.entries[chart].append((parsed, "".join(text)))

    def finish(self) -> NormalizedIndex:
        if not self.top.get("apiVersion"):
            raise IndexLoadError("no API version specified")
        if self.entries is not None:
            for versions in self.entries.values():
                # Newest first; Go's insertion sort (Helm sorts one chart's handful of versions)
                # keeps equal versions in their order, as a stable sort does.
                versions.sort(key=lambda pair: pair[0], reverse=True)
        head: list[str] = ["{"]
        server_info = self.top.get("serverInfo")
        if server_info:
            if not isinstance(server_info, dict):
                raise type_error(server_info, "IndexFile.serverInfo", "map[string]interface {}")
            head.append('\n  "serverInfo": ')
            gojson.encode(_sorted_maps(server_info), 1, head)
            head.append(",")
        head.append('\n  "apiVersion": ' + gojson.string(self.top["apiVersion"]))
        generated = self.top.get("generated", gojson.ZERO_TIME)
        head.append(',\n  "generated": ' + gojson.string(generated.rfc3339_nano()))
        head.append(',\n  "entries": ')
        tail: list[str] = []
        for key in ("publicKeys", "annotations"):
            value = self.top.get(key)
            if value:
                tail.append(f",\n  {gojson.string(key)}: ")
                gojson.encode(_sorted_maps(value), 1, tail)
        tail.append("\n}")
        return NormalizedIndex(head, self.entries, self.null_charts, tail, self.skipped)


def _sorted_maps(value: Any) -> Any:
    """Go writes map keys in sorted order."""
    if isinstance(value, dict):
        return {k: _sorted_maps(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_maps(v) for v in value]
    return value


def _copy_nested(md: dict[str, Any]) -> dict[str, Any]:
    """Fresh dicts for the parts validation rewrites: YAML aliases may share them."""
    out = dict(md)
    for key in ("maintainers", "dependencies"):
        if out.get(key):
            out[key] = [None if item is None else dict(item) for item in out[key]]
    for key in ("sources", "keywords"):
        if out.get(key):
            out[key] = list(out[key])
    return out


def _is_json(data: bytes) -> Any:
    """The decoded document when `data` is valid JSON (Go's json.Valid), else a sentinel."""
    try:
        text = data.decode("utf-8", "replace")
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return _NOT_JSON


_NOT_JSON: Final = object()


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _load_json(document: Any, builder: _Builder) -> None:
    if not isinstance(document, dict):
        if document is None:
            return
        raise IndexLoadError(
            f"json: cannot unmarshal {json_type(document)} into Go value of type repo.IndexFile"
        )
    fields = dict(INDEX_FIELDS)
    for key, value in document.items():
        name = match_field(key, fields)
        if name is None:
            continue
        if name != "entries":
            builder.set_field(name, value)
            continue
        if value is None:
            builder.entries = None
            continue
        if not isinstance(value, dict):
            raise type_error(value, "IndexFile.entries", "map[string]repo.ChartVersions")
        builder.start_entries()
        for chart, versions in value.items():
            if versions is not None and not isinstance(versions, list):
                raise type_error(versions, "IndexFile.entries", "repo.ChartVersions")
            builder.start_chart(chart, versions is None)
            for raw in versions or ():
                builder.add_version(chart, raw)


def _load_yaml(data: bytes, builder: _Builder) -> None:
    events = Events(data)
    events.next()  # StreamStart
    if isinstance(events.peek(), ev.StreamEndEvent):
        return
    events.next()  # DocumentStart
    first = events.peek()
    if isinstance(first, ev.ScalarEvent) and compose_is_null(first):
        return
    if not isinstance(first, ev.MappingStartEvent):
        value = compose(events)
        raise IndexLoadError(
            f"json: cannot unmarshal {json_type(value)} into Go value of type repo.IndexFile"
        )
    events.next()
    fields = dict(INDEX_FIELDS)
    for key in mapping_keys(events):
        name = match_field(key, fields)
        if name is None:
            raise IndexLoadError(f'json: unknown field "{key}"')
        if name == "entries":
            _stream_entries(events, builder)
        else:
            builder.set_field(name, compose(events))


def compose_is_null(event: ev.ScalarEvent) -> bool:
    return not event.style and event.value in ("", "~", "null", "Null", "NULL")


def _stream_entries(events: Events, builder: _Builder) -> None:
    start = events.peek()
    if isinstance(start, ev.ScalarEvent) and compose_is_null(start):
        events.next()
        builder.entries = None
        return
    if not isinstance(start, ev.MappingStartEvent):
        value = compose(events)
        raise type_error(value, "IndexFile.entries", "map[string]repo.ChartVersions")
    events.next()
    if start.anchor:
        events.anchors[start.anchor] = Unaliasable()
    builder.start_entries()
    for chart in mapping_keys(events):
        head = events.peek()
        if isinstance(head, ev.ScalarEvent) and compose_is_null(head):
            events.next()
            builder.start_chart(chart, True)
            continue
        if not isinstance(head, ev.SequenceStartEvent):
            value = compose(events)
            raise type_error(value, "IndexFile.entries", "repo.ChartVersions")
        events.next()
        if head.anchor:
            events.anchors[head.anchor] = Unaliasable()
        builder.start_chart(chart, False)
        while not isinstance(events.peek(), ev.SequenceEndEvent):
            builder.add_version(chart, compose(events))
        events.next()


def normalize(data: bytes) -> NormalizedIndex:
    """Load an index as Flux does and return what it stores; raise IndexLoadError."""
    if not data:
        raise IndexLoadError("empty index.yaml file")
    document = _is_json(data)
    if document is not _NOT_JSON:
        builder = _Builder(Reader(yaml=False))
        _load_json(document, builder)
        return builder.finish()
    builder = _Builder(Reader(yaml=True))
    try:
        _load_yaml(data, builder)
    except IndexLoadError as e:
        # sigs.k8s.io/yaml decodes the converted document with encoding/json.
        raise IndexLoadError(f"error unmarshaling JSON: while decoding JSON: {e}") from None
    except YamlError as e:
        raise IndexLoadError(f"error converting YAML to JSON: yaml: {e}") from None
    except RecursionError:
        raise IndexLoadError("error converting YAML to JSON: yaml: nesting too deep") from None
    return builder.finish()


def describe_skipped(skipped: list[SkippedVersion], limit: int = 5) -> str:
    """A short account of the dropped versions for an event or a log line."""
    shown = "; ".join(str(s) for s in skipped[:limit])
    more = f" and {len(skipped) - limit} more" if len(skipped) > limit else ""
    return f"skipped {len(skipped)} invalid chart version(s) in the index: {shown}{more}"
