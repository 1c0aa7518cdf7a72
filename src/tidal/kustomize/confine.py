"""Keeping a kustomize build inside its artifact, checked before the build starts.

Flux builds with kustomize's load restrictions off (an overlay may read `../common/patch.yaml`)
but hands kustomize a filesystem that refuses every path outside the artifact root (fluxcd/pkg
`kustomize/filesys`, added after Flux's first security advisory: without it a Kustomization can
make the controller read files outside its artifact, its ServiceAccount token for one). The Go
kustomize tidal embeds only takes a real directory, so the same guarantee is established here
instead: `plan` follows every reference kustomize would follow from the kustomization being
built, through every kustomization it reaches, and refuses the build when one of them

- is an absolute path, or a relative one that leaves the artifact root;
- goes through a symlink (artifacts never hold any: tidal's archiver skips them and Flux's untar
  refuses them, so one here means a tampered tree);
- is remote (a Git base or an http(s) file) while remote bases are disallowed, or is a
  `file://` repository (a clone of whatever Git repository the node has);
- cannot be checked: plugin configurations built from a kustomization directory or fetched
  from a URL (their `path` fields would be resolved against the local tree), Helm charts.

The plan also lists exactly the files the build reads, so the build runs on a private tree
holding only those (see `tidal.kustomize.build`): a reference this module failed to foresee
finds nothing instead of something unchecked. Inside remote bases kustomize enforces the same
rule itself (a clone is loaded with its root-only restriction and may not reach local bases).

Kustomization files are read the way kustomize reads them: go-yaml v2 (YAML 1.1 scalars) and
Go's case-insensitive JSON field matching, so `Resources:` counts as `resources:`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from yaml._yaml import CParser
from yaml.composer import Composer, ComposerError
from yaml.error import YAMLError
from yaml.events import AliasEvent, ScalarEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver

from tidal.kube import goyaml, yamlio
from tidal.kube.gostrconv import parse_int, parse_uint

__all__ = [
    "KUSTOMIZATION_FILES",
    "ConfinementError",
    "KustomizationFileError",
    "Plan",
    "dump_json_yaml",
    "is_remote",
    "join_path",
    "load_kustomization_file",
    "plan",
    "resolve_path",
]

# kustomize's konfig.RecognizedKustomizationFileNames, in the order it tries them.
KUSTOMIZATION_FILES: Final = ("kustomization.yaml", "kustomization.yml", "Kustomization")


class ConfinementError(Exception):
    """The build would read something outside the artifact, or something that cannot be checked."""


class KustomizationFileError(ValueError):
    """A kustomization file that kustomize (and Flux's generator) cannot decode."""


# --- reading kustomization files as go-yaml v2 does -------------------------------------------

_PLAIN: Final = "tidal:plain"
_V2_NULL: Final = frozenset(("", "~", "null", "Null", "NULL"))
_V2_SPECIAL_FLOAT: Final = {
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), float("inf")),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), float("-inf")),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), float("nan")),
}
_V2_FLOAT: Final = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
# Aliases can make a tiny file expand exponentially; go-yaml v2 stops "excessive aliasing" too.
_NODE_BUDGET: Final = 1_000_000


def _v2_plain(value: str) -> Any:
    """go-yaml v2's resolve() for an untagged plain scalar decoded into interface{}."""
    if value in _V2_NULL:
        return None
    if value in goyaml.BOOLS:
        return goyaml.BOOLS[value]
    if value in _V2_SPECIAL_FLOAT:
        return _V2_SPECIAL_FLOAT[value]
    if value[0] in "0123456789+-.":
        plain = value.replace("_", "")
        number = parse_int(plain, 0)
        if number is None:
            number = parse_uint(plain, 0)
        if number is not None:
            return number
        if _V2_FLOAT.match(plain):
            try:
                f = float(plain)
            except ValueError:
                f = None
            # strconv.ParseFloat fails on overflow, and v2 then keeps the text.
            if f is not None and f not in (float("inf"), float("-inf")):
                return f
        for prefix, sign in (("0b", 1), ("-0b", -1)):
            if plain.startswith(prefix):
                bits = parse_int(plain[len(prefix) :], 2)
                if bits is not None:
                    return sign * bits
    # Timestamps stay strings when decoded into interface{} ("for backward compatibility").
    return value


class _PlainResolver(BaseResolver):
    """Marks plain scalars so that go-yaml v2's rules, not PyYAML's, decide their type."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is ScalarNode and implicit[0]:
            return _PLAIN
        return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]


class _FastLoader(CParser, _PlainResolver):
    def __init__(self, stream: str) -> None:
        CParser.__init__(self, stream)
        _PlainResolver.__init__(self)


class _TolerantLoader(Composer, _FastLoader):
    """The C parser composed in Python, so that an anchor may be defined twice, as in go-yaml."""

    def __init__(self, stream: str) -> None:
        _FastLoader.__init__(self, stream)
        Composer.__init__(self)

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(AliasEvent):
            event: Any = self.get_event()
            if event.anchor not in self.anchors:
                raise ComposerError(
                    None, None, f"found undefined alias {event.anchor!r}", event.start_mark
                )
            node: Node = self.anchors[event.anchor]
            return node
        anchor: Any = getattr(self.peek_event(), "anchor", None)
        if self.check_event(ScalarEvent):
            return self.compose_scalar_node(anchor)
        if self.check_event(SequenceStartEvent):
            return self.compose_sequence_node(anchor)
        return self.compose_mapping_node(anchor)


def _compose_first(text: str) -> Node | None:
    for loader_class in (_FastLoader, _TolerantLoader):
        loader = loader_class(text)
        try:
            return loader.get_node() if loader.check_node() else None
        except ComposerError as exc:
            if loader_class is _FastLoader and "found duplicate anchor" in (exc.context or ""):
                continue
            raise
        finally:
            loader.dispose()
    return None  # pragma: no cover - the tolerant loader either returns or raises


class _V2Decoder:
    def __init__(self) -> None:
        self.budget = _NODE_BUDGET

    def value(self, node: Node) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise KustomizationFileError("document contains excessive aliasing")
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        if isinstance(node, SequenceNode):
            return [self.value(child) for child in node.value]
        assert isinstance(node, MappingNode)
        return self.mapping(node)

    def scalar(self, node: ScalarNode) -> Any:
        tag, text = node.tag, node.value
        if tag == _PLAIN:
            return _v2_plain(text)
        short = tag.removeprefix("tag:yaml.org,2002:")
        if short == "binary":
            try:
                return base64.b64decode(text, validate=False).decode("utf-8", "replace")
            except (binascii.Error, ValueError) as exc:
                raise KustomizationFileError(f"invalid !!binary value: {exc}") from None
        if short in ("int", "float", "bool", "null") and text:
            resolved = _v2_plain(text)
            if short == "null" and resolved is None:
                return None
            if short == "bool" and isinstance(resolved, bool):
                return resolved
            if not isinstance(resolved, bool) and isinstance(resolved, int | float):
                if short == "float":
                    return float(resolved)
                if isinstance(resolved, int):
                    return resolved
            raise KustomizationFileError(f"cannot decode !!{short} `{text}`")
        return text

    def key(self, node: Node) -> str:
        value = self.value(node)
        # sigs.k8s.io/yaml turns every map key into a JSON string.
        if isinstance(value, str):
            return value
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return goyaml.format_float32(value)
        if isinstance(value, int):
            return str(value)
        raise KustomizationFileError(f"unsupported map key at line {node.start_mark.line + 1}")

    def mapping(self, node: MappingNode) -> dict[str, Any]:
        own: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if (
                isinstance(key_node, ScalarNode)
                and key_node.value == "<<"
                and key_node.tag in (_PLAIN, "tag:yaml.org,2002:merge")
            ):
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                # v2 merges the list in reverse, so the first source wins over later ones.
                for source in reversed(sources):
                    decoded = self.value(source)
                    if not isinstance(decoded, dict):
                        raise KustomizationFileError(
                            "map merge requires map or sequence of maps as the value"
                        )
                    merged.update(decoded)
                continue
            own[self.key(key_node)] = self.value(value_node)
        if not merged:
            return own
        merged.update(own)
        return merged


def load_kustomization_file(data: bytes | str, *, source: str) -> Any:
    """The first YAML document of a kustomization file, as go-yaml v2 decodes it.

    Returns what sigs.k8s.io/yaml's YAMLToJSON would hand to the JSON decoder (None for an empty
    file). Raises KustomizationFileError with kustomize's wording where it has one.
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise KustomizationFileError(
                f"error converting YAML to JSON: yaml: invalid UTF-8 in {source}: {exc}"
            ) from None
    else:
        text = data
    try:
        node = _compose_first(text)
    except YAMLError as exc:
        raise KustomizationFileError(
            f"error converting YAML to JSON: yaml: {source}: {_yaml_message(exc)}"
        ) from None
    if node is None:
        return None
    try:
        return _V2Decoder().value(node)
    except RecursionError:
        raise KustomizationFileError(f"{source}: YAML nests too deeply") from None


def _yaml_message(exc: YAMLError) -> str:
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return f"line {mark.line + 1}: {problem}"
    return str(problem)


# --- paths -------------------------------------------------------------------------------------


def join_path(base: str, ref: str) -> str | None:
    """base/ref cleaned like Go's filepath.Join, relative to the root; None if it leaves it."""
    parts = [p for p in base.split("/") if p]
    for part in ref.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def resolve_path(root: Path, path: str) -> str:
    """Where `spec.path` points, relative to the root ("" for the root itself).

    Flux secure-joins the path onto the artifact directory: `..` stops at the root instead of
    leaving it, and a leading `/` means the root. Returns a POSIX path without `.` or `..`.
    Raises ConfinementError when the way there goes through a symlink.
    """
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    rel = "/".join(parts)
    _check_no_symlink(root, rel, f"path {path!r}")
    return rel


def _check_no_symlink(root: Path, rel: str, what: str) -> None:
    current = root
    for part in rel.split("/") if rel else ():
        current = current / part
        try:
            mode = current.lstat().st_mode
        except FileNotFoundError:
            return
        if stat.S_ISLNK(mode):
            raise ConfinementError(f"{what} goes through a symlink: {_rel_of(root, current)!r}")


def _rel_of(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


# fileloader.IsRemoteFile: url.Parse gives an http(s) scheme. repospec.NewRepoSpecFromURL: after
# an optional "git::", a ssh/https/http/file scheme, an scp-style "user@", or a GitHub host.
_HTTP_SCHEME: Final = re.compile(r"https?:", re.IGNORECASE)
_SCP_USER: Final = re.compile(r"[A-Za-z][A-Za-z0-9-]*@")
_REPO_PREFIXES: Final = ("ssh://", "https://", "http://", "file://", "github.com/", "github.com:")


def is_remote(ref: str) -> bool:
    """Whether kustomize would fetch `ref` (git clone or HTTP GET) instead of reading a file."""
    if _HTTP_SCHEME.match(ref):
        return True
    rest = ref[5:] if ref[:5].lower() == "git::" else ref
    return rest.lower().startswith(_REPO_PREFIXES) or _SCP_USER.match(rest) is not None


def _is_file_repo(ref: str) -> bool:
    rest = ref[5:] if ref[:5].lower() == "git::" else ref
    return rest.lower().startswith("file://")


# --- the walk ------------------------------------------------------------------------------------

_KIND_FILE: Final = "file"
_KIND_DIR: Final = "dir"
_KIND_MISSING: Final = "missing"
_KIND_OTHER: Final = "other"

# Fields of builtin plugin configurations (generators:, transformers:, validators: entries) that
# name files, each resolved against the kustomization that lists the configuration.
_PLUGIN_PATH_FIELDS: Final[dict[str, tuple[tuple[str, ...], ...]]] = {
    "patchtransformer": (("path",),),
    "patchjson6902transformer": (("path",),),
    "patchstrategicmergetransformer": (("paths", "[]"),),
    "replacementtransformer": (("replacements", "[]", "path"),),
    "valueaddtransformer": (("targetfilepath",),),
    "configmapgenerator": (("files", "[]", "="), ("envs", "[]"), ("env",)),
    "secretgenerator": (("files", "[]", "="), ("envs", "[]"), ("env",)),
}
_HELM_KINDS: Final = frozenset(("helmchartinflationgenerator",))
_HELM_FIELDS: Final = {
    name.casefold(): name for name in ("helmCharts", "helmGlobals", "helmChartInflationGenerator")
}


@dataclass(frozen=True)
class Plan:
    """What a build reads, once every reference has been checked.

    `files` and `dirs` are POSIX paths relative to the artifact root; `dirs` are the
    directories kustomize opens (kustomization roots and directories referenced in place of a
    file, whose error must stay kustomize's own). `remote` lists the remote references (only
    ever non-empty when remote bases are allowed); `openapi` is true when some kustomization
    sets `openapi`, which changes kustomize's process-wide schema.
    """

    files: frozenset[str]
    dirs: frozenset[str]
    remote: tuple[str, ...] = ()
    openapi: bool = False
    secret_sources: tuple[SecretSource, ...] = ()


@dataclass(frozen=True)
class SecretSource:
    """A file Flux decrypts before the build when the Kustomization has spec.decryption.

    `role` is "file" (a secretGenerator `files` entry), "env" (`envs`/`env`) or "patch"
    (`patches[].path`); `name` is what decides its SOPS format: the data key for a file entry
    (`key=path`), the path otherwise.
    """

    rel: str
    role: str
    name: str


@dataclass
class _Walker:
    root: Path
    overrides: Mapping[str, bytes]
    allow_remote: bool
    files: set[str] = field(default_factory=set)
    dirs: set[str] = field(default_factory=set)
    remote: list[str] = field(default_factory=list)
    openapi: bool = False
    secret_sources: dict[str, SecretSource] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    visited: set[str] = field(default_factory=set)
    # Kustomization directories still to read: a queue, not recursion, as bases nest freely.
    pending: list[str] = field(default_factory=list)

    def kind(self, rel: str, what: str) -> str:
        """file / dir / missing / other, refusing any symlink on the way."""
        if rel in self.overrides:
            return _KIND_FILE
        known = self.kinds.get(rel)
        if known is not None:
            return known
        parent, _, _ = rel.rpartition("/")
        if rel and self.kind(parent, what) != _KIND_DIR:
            result = _KIND_MISSING
        else:
            try:
                mode = (self.root / rel).lstat().st_mode
            except (FileNotFoundError, NotADirectoryError):
                mode = None
            if mode is None:
                result = _KIND_MISSING
            elif stat.S_ISLNK(mode):
                raise ConfinementError(f"{what} goes through a symlink: {rel!r}")
            elif stat.S_ISDIR(mode):
                result = _KIND_DIR
            elif stat.S_ISREG(mode):
                result = _KIND_FILE
            else:
                result = _KIND_OTHER
        self.kinds[rel] = result
        return result

    def local(self, base: str, ref: str, source: str) -> str | None:
        """The checked location of a reference, or None when it is remote (and allowed)."""
        what = f"{source}: {ref!r}"
        if _is_file_repo(ref):
            raise ConfinementError(f"{what}: file:// repositories are not allowed")
        if is_remote(ref):
            if not self.allow_remote:
                raise ConfinementError(
                    f"{what}: remote bases are not allowed (--no-remote-bases): all resources "
                    "must refer to local files included in the source artifact"
                )
            self.remote.append(ref)
            return None
        if ref.startswith("/"):
            raise ConfinementError(f"{what}: absolute paths are not allowed")
        rel = join_path(base, ref)
        if rel is None:
            raise ConfinementError(f"{what}: path leaves the artifact root")
        kind = self.kind(rel, what)
        if kind == _KIND_FILE:
            self.files.add(rel)
        elif kind == _KIND_DIR:
            self.dirs.add(rel)
        elif kind == _KIND_OTHER:
            raise ConfinementError(f"{what}: not a regular file or directory")
        return rel

    def file_ref(self, base: str, ref: Any, source: str) -> str | None:
        if isinstance(ref, str):
            return self.local(base, ref, source)
        return None

    def secret_source(self, base: str, ref: Any, source: str, role: str, name: str) -> None:
        rel = self.file_ref(base, ref, source)
        # The first reference decides, as Flux decrypts a file once per build.
        if rel is not None and self.kind(rel, source) == _KIND_FILE:
            self.secret_sources.setdefault(rel, SecretSource(rel, role, name))

    def resource_ref(self, base: str, ref: Any, source: str) -> None:
        if not isinstance(ref, str):
            return
        rel = self.local(base, ref, source)
        if rel is not None and self.kind(rel, source) == _KIND_DIR:
            self.pending.append(rel)

    def directory(self, rel: str) -> None:
        """A kustomization root: every kustomization file in it, and what they reference."""
        if rel in self.visited:
            return
        self.visited.add(rel)
        if self.kind(rel, f"directory {rel!r}") != _KIND_DIR:
            return
        self.dirs.add(rel)
        for name in KUSTOMIZATION_FILES:
            file_rel = f"{rel}/{name}" if rel else name
            if self.kind(file_rel, f"kustomization {file_rel!r}") != _KIND_FILE:
                continue
            self.files.add(file_rel)
            data = self.overrides.get(file_rel)
            if data is None:
                data = (self.root / file_rel).read_bytes()
            try:
                doc = load_kustomization_file(data, source=file_rel)
            except KustomizationFileError as exc:
                raise ConfinementError(f"invalid Kustomization {file_rel!r}: {exc}") from None
            if isinstance(doc, dict):
                self.kustomization(rel, doc, file_rel)

    def kustomization(self, base: str, doc: dict[str, Any], source: str) -> None:
        for name, value in _fields(doc):
            if name in ("resources", "bases"):
                for ref in _strings(value):
                    self.resource_ref(base, ref, source)
            elif name == "components":
                for ref in _strings(value):
                    rel = self.local(base, ref, source)
                    if rel is not None and self.kind(rel, source) == _KIND_DIR:
                        self.pending.append(rel)
            elif name in ("crds", "configurations"):
                for ref in _strings(value):
                    self.file_ref(base, ref, source)
            elif name == "patches":
                for item in _dicts(value):
                    for key, path in _fields(item):
                        if key == "path" and isinstance(path, str):
                            self.secret_source(base, path, source, "patch", path)
            elif name in ("patchesjson6902", "replacements"):
                for item in _dicts(value):
                    for key, path in _fields(item):
                        if key == "path":
                            self.file_ref(base, path, source)
            elif name == "patchesstrategicmerge":
                for entry in _strings(value):
                    self.maybe_inline_path(base, entry, source)
            elif name in ("configmapgenerator", "secretgenerator"):
                for item in _dicts(value):
                    self.generator_sources(base, item, source, secret=name == "secretgenerator")
            elif name == "openapi":
                if value:
                    self.openapi = True
                for key, path in _fields(value) if isinstance(value, dict) else ():
                    if key == "path":
                        self.file_ref(base, path, source)
            elif name in ("generators", "transformers", "validators"):
                for entry in _strings(value):
                    self.plugin_entry(base, entry, source)
            elif name in _HELM_FIELDS and value:
                raise ConfinementError(
                    f"{source}: {_HELM_FIELDS[name]} is not supported: Helm chart inflation is "
                    "disabled (kustomize would need --enable-helm)"
                )

    def generator_sources(
        self, base: str, args: dict[str, Any], source: str, *, secret: bool
    ) -> None:
        """The files a generator reads; a secretGenerator's are also recorded for decryption
        (Flux decrypts those of secretGenerators only)."""
        for key, value in _fields(args):
            if key == "files":
                for entry in _strings(value):
                    # "key=path" or "path"; a second "=" makes kustomize fail before any read.
                    data_key, _, path = entry.partition("=")
                    path = path if "=" in entry else entry
                    if secret:
                        self.secret_source(base, path, source, "file", data_key)
                    else:
                        self.file_ref(base, path, source)
            elif key in ("envs", "env"):
                # Flux reads `envs` only; the deprecated `env` is decrypted too, or its
                # ciphertext would reach the Secret unnoticed.
                for entry in _strings(value):
                    if secret:
                        self.secret_source(base, entry, source, "env", entry)
                    else:
                        self.file_ref(base, entry, source)

    def maybe_inline_path(self, base: str, entry: str, source: str) -> None:
        """An entry kustomize first tries as inline YAML and, failing that, reads as a file."""
        if "\n" in entry and _parses_as_manifests(entry):
            return
        self.file_ref(base, entry, source)

    def plugin_entry(self, base: str, entry: str, source: str) -> None:
        inline = _parses_as_manifests(entry)
        if inline is not None:
            self.plugin_configs(base, inline, source)
            if "\n" in entry:
                return
        if is_remote(entry) and not _is_file_repo(entry) and self.allow_remote:
            raise ConfinementError(
                f"{source}: {entry!r}: plugin configurations from URLs are not allowed (their "
                "paths would be read from the local tree unchecked)"
            )
        rel = self.local(base, entry, source)
        if rel is None:
            return
        kind = self.kind(rel, source)
        if kind == _KIND_DIR:
            raise ConfinementError(
                f"{source}: {entry!r}: plugin configurations built from a kustomization "
                "directory are not supported (their paths cannot be checked before the build)"
            )
        if kind == _KIND_FILE:
            data = self.overrides.get(rel)
            if data is None:
                data = (self.root / rel).read_bytes()
            try:
                configs = yamlio.load_all(data, source=rel)
            except yamlio.ManifestError as exc:
                # kustomize's reader accepts some YAML tidal's refuses (duplicate keys, for
                # one), and unread configurations cannot be checked.
                raise ConfinementError(
                    f"{source}: {entry!r}: cannot check plugin configuration: {exc}"
                ) from None
            self.plugin_configs(base, configs, rel)

    def plugin_configs(self, base: str, configs: Iterable[Any], source: str) -> None:
        for config in configs:
            if not isinstance(config, dict):
                continue
            kind = config.get("kind")
            if not isinstance(kind, str):
                continue
            items = config.get("items")
            if kind.endswith("List") and isinstance(items, list):
                # kustomize's resource factory expands any *List into its items first.
                self.plugin_configs(base, items, source)
                continue
            folded = kind.casefold()
            if folded in _HELM_KINDS:
                raise ConfinementError(
                    f"{source}: {kind} is not supported: Helm chart inflation is disabled "
                    "(kustomize would need --enable-helm)"
                )
            for path in _PLUGIN_PATH_FIELDS.get(folded, ()):
                for value in _follow(config, path):
                    if path[-1] == "=":
                        value = value.split("=", 1)[-1]
                    if folded == "patchstrategicmergetransformer":
                        self.maybe_inline_path(base, value, source)
                    else:
                        self.file_ref(base, value, source)


def _fields(doc: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(case-folded key, value) pairs: Go's encoding/json matches field names case-insensitively."""
    for key, value in doc.items():
        if isinstance(key, str):
            yield key.casefold(), value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _dicts(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def _follow(value: Any, path: tuple[str, ...]) -> Iterator[str]:
    """The strings at a case-insensitive field path; "[]" steps into list items, "=" ends it."""
    if not path or path[0] == "=":
        yield from _strings(value)
        return
    step, rest = path[0], path[1:]
    if step == "[]":
        for item in value if isinstance(value, list) else [value]:
            yield from _follow(item, rest)
        return
    if isinstance(value, dict):
        for key, child in _fields(value):
            if key == step:
                yield from _follow(child, rest)


def _parses_as_manifests(text: str) -> list[dict[str, Any]] | None:
    try:
        return yamlio.load_all(text, source="<inline>")
    except yamlio.ManifestError:
        return None


def plan(
    root: Path,
    directory: str,
    *,
    overrides: Mapping[str, bytes] | None = None,
    allow_remote: bool = False,
) -> Plan:
    """Check a build of `directory` (relative to `root`) and list what it reads.

    `overrides` maps root-relative file paths to the content the build will see there instead
    (the kustomization file Flux's generator writes). Raises ConfinementError naming the
    kustomization file and the reference at fault.
    """
    walker = _Walker(root=root, overrides=overrides or {}, allow_remote=allow_remote)
    rel = join_path("", directory)
    if rel is None:
        raise ConfinementError(f"path {directory!r} leaves the artifact root")
    walker.pending.append(rel)
    while walker.pending:
        walker.directory(walker.pending.pop())
    return Plan(
        files=frozenset(walker.files),
        dirs=frozenset(walker.dirs),
        remote=tuple(walker.remote),
        openapi=walker.openapi,
        secret_sources=tuple(walker.secret_sources[k] for k in sorted(walker.secret_sources)),
    )


# Raw in a double-quoted YAML scalar these would be folded (NEL, LS and PS are YAML 1.1 line
# breaks) or refused (not printable); JSON's \u escapes keep them as they are.
_UNSAFE: Final = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def dump_json_yaml(obj: Any) -> bytes:
    """Kustomization file text that go-yaml v2 reads back exactly: JSON, which is YAML.

    Writing YAML would need go-yaml v2's quoting rules (a bare `yes` is a boolean there); JSON
    strings are always double-quoted, so only YAML 1.1's extra line breaks need escaping.
    """
    text = json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode("utf-8") + b"\n"
