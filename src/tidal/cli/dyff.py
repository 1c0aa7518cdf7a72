"""The human-readable YAML diff `flux diff kustomization` prints for a drifted object.

flux writes the live and the would-be-applied object as YAML and compares them with dyff
(homeport/dyff v1.10, Kubernetes entity detection on, order changes reported, header omitted,
no colour when not on a terminal). This module reproduces that report:

- one block per path that differs, the path in dot style (`spec.ports.http.port`, a list entry
  named by its `name`/`key`/`id` field, `(root level)` for the top), then the details:
  `± value change` (`- old` / `+ new`), `± type change from int to string`,
  `- N map entries removed:` / `+ N list entries added:` with the entries as YAML, and
  `⇆ order changed`; a removal and an addition at one path are printed side by side when they fit
  in the terminal width (80 columns when not on a terminal);
- entries of lists of maps are matched by a field every entry has with distinct values
  (`name`, `key`, `id`, `manager`, else any string field with more than three distinct values),
  other lists by value;
- multi-line strings get a line diff (`± value change in multiline text (...)`).

Not reproduced: dyff's X.509 certificate summaries, and its choice among several non-standard
identifier fields (a Go map iteration; tidal takes the first in sorted order).
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tidal.kube import goyaml

ADDITION: Final = "+"
REMOVAL: Final = "-"
MODIFICATION: Final = "±"
ORDER_CHANGE: Final = "⇆"
_NUMBERS: Final = (
    "no one two three four five six seven eight nine ten eleven twelve".split()  # noqa: SIM905
)
_IDENTIFIERS: Final = ("name", "key", "id", "manager")
_NULLS: Final = frozenset(("", "~", "null", "Null", "NULL"))
_BOOLS: Final = frozenset(("true", "True", "TRUE", "false", "False", "FALSE"))
_INT: Final = re.compile(r"[-+]?[0-9]+")
_FLOAT: Final = re.compile(
    r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)"
)
_KNOWN_KEY_ORDERS: Final = (
    ("name", "director_uuid", "releases", "instance_groups", "networks", "resource_pools"),
    ("name", "url", "version", "sha1"),
    ("jobs", "resources", "resource_types"),
    ("name", "type", "source"),
    ("get",),
    ("put",),
    ("task",),
    ("releases", "instance_groups", "configuration", "variables"),
    ("auth", "templates"),
    ("name",),
    ("key",),
    ("id",),
)


def plural(amount: int, singular: str, many: str | None = None) -> str:
    number = _NUMBERS[amount] if amount < len(_NUMBERS) else str(amount)
    if amount == 1:
        return f"{number} {singular}"
    return f"{number} {many if many is not None else singular + 's'}"


# --- YAML nodes, typed as go-yaml v3 reads the YAML flux writes ---------------------------------


@dataclass
class YNode:
    kind: str  # "map", "seq" or "scalar"
    tag: str = ""  # for scalars: str, int, float, bool, null
    value: str = ""
    items: list[YNode] = field(default_factory=list)  # seq entries, or map keys and values


def _resolve_plain(text: str) -> str:
    if text in _NULLS:
        return "null"
    if text in _BOOLS:
        return "bool"
    if _INT.fullmatch(text):
        return "int"
    if _FLOAT.fullmatch(text):
        return "float"
    return "str"


def _convert(node: Node) -> YNode:
    if isinstance(node, MappingNode):
        items: list[YNode] = []
        for key, value in node.value:
            items += [_convert(key), _convert(value)]
        return YNode("map", "map", items=items)
    if isinstance(node, SequenceNode):
        return YNode("seq", "seq", items=[_convert(v) for v in node.value])
    assert isinstance(node, ScalarNode)
    tag = _resolve_plain(node.value) if node.style is None else "str"
    return YNode("scalar", tag, node.value)


def to_node(obj: Any) -> YNode:
    """The object as flux writes it (sigs.k8s.io/yaml), read back into typed nodes."""
    composed = yaml.compose(goyaml.marshal(obj), Loader=yaml.SafeLoader)
    return _convert(composed) if composed is not None else YNode("scalar", "null", "null")


def _pairs(node: YNode) -> list[tuple[YNode, YNode]]:
    return list(zip(node.items[::2], node.items[1::2], strict=True))


def _lookup(node: YNode, key: str) -> YNode | None:
    for k, v in _pairs(node):
        if k.value == key:
            return v
    return None


def _basic(node: YNode) -> Any:
    if node.kind == "map":
        return ("map", tuple(sorted((k.value, _basic(v)) for k, v in _pairs(node))))
    if node.kind == "seq":
        return ("seq", tuple(_basic(v) for v in node.items))
    return node.value


def _hash(node: YNode) -> str:
    return json.dumps(_basic(node))


# --- comparing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathElement:
    name: str = ""
    key: str = ""  # the identifier field of a named list entry
    idx: int = -1


@dataclass
class Detail:
    kind: str
    before: YNode | None
    after: YNode | None


@dataclass
class Diff:
    path: tuple[PathElement, ...]
    details: list[Detail]


def _k8s_name(node: YNode) -> str | None:
    if node.kind != "map":
        return None
    api_version, kind = _lookup(node, "apiVersion"), _lookup(node, "kind")
    meta = _lookup(node, "metadata")
    name = _lookup(meta, "name") if meta is not None and meta.kind == "map" else None
    if api_version is None or kind is None or name is None or meta is None:
        return None
    parts = [api_version.value, kind.value]
    namespace = _lookup(meta, "namespace")
    if namespace is not None:
        parts.append(namespace.value)
    return "/".join([*parts, name.value])


class _Identifier:
    def __init__(self, field_name: str) -> None:
        self.field = field_name

    def name(self, node: YNode) -> str | None:
        if self.field == "resource":
            return _k8s_name(node)
        if node.kind != "map":
            return None
        value = _lookup(node, self.field)
        return value.value if value is not None else None


def _identifier(before: YNode, after: YNode) -> _Identifier | None:
    def counts(seq: YNode, only: Sequence[str] | None) -> dict[str, set[str]]:
        result: dict[str, set[str]] = {}
        for entry in seq.items:
            if entry.kind != "map":
                if only is None:
                    return {}
                continue
            for k, v in _pairs(entry):
                if only is not None and k.value not in only:
                    continue
                if only is None and not (k.tag == "str" and v.tag == "str"):
                    continue
                result.setdefault(k.value, set()).add(v.value)
        return result

    a, b = counts(before, _IDENTIFIERS), counts(after, _IDENTIFIERS)
    for candidate in _IDENTIFIERS:
        if len(a.get(candidate, ())) == len(before.items) and len(b.get(candidate, ())) == len(
            after.items
        ):
            return _Identifier(candidate)
    a, b = counts(before, None), counts(after, None)
    for key in sorted(a):
        if (
            key in b
            and len(a[key]) == len(before.items)
            and len(b[key]) == len(after.items)
            and len(a[key]) > 3
        ):
            return _Identifier(key)
    if all(_k8s_name(n) is not None for n in (*before.items, *after.items)):
        return _Identifier("resource")
    return None


def _pack(
    result: list[Diff],
    path: tuple[PathElement, ...],
    order: list[Detail],
    additions: list[YNode],
    removals: list[YNode],
) -> list[Diff]:
    details = list(order)
    if removals:
        details.append(Detail(REMOVAL, YNode("seq", "seq", items=removals), None))
    if additions:
        details.append(Detail(ADDITION, None, YNode("seq", "seq", items=additions)))
    return [Diff(path, details), *result] if details else result


def _scalar_seq(names: Sequence[str]) -> YNode:
    return YNode("seq", "seq", items=[YNode("scalar", "str", n) for n in names])


def compare(path: tuple[PathElement, ...], before: YNode, after: YNode) -> list[Diff]:
    if before.kind != after.kind or before.tag != after.tag:
        return [Diff(path, [Detail(MODIFICATION, before, after)])]
    if before.kind == "map":
        return _mappings(path, before, after)
    if before.kind == "seq":
        return _sequences(path, before, after)
    if before.tag == "null":
        return []
    if before.tag == "bool":
        changed = before.value.lower() != after.value.lower()
    else:
        changed = before.value != after.value
    return [Diff(path, [Detail(MODIFICATION, before, after)])] if changed else []


def _mappings(path: tuple[PathElement, ...], before: YNode, after: YNode) -> list[Diff]:
    result: list[Diff] = []
    removals: list[YNode] = []
    additions: list[YNode] = []
    for key, value in _pairs(before):
        other = _lookup(after, key.value)
        if other is None:
            removals += [key, value]
        else:
            result += compare((*path, PathElement(name=key.value)), value, other)
    for key, value in _pairs(after):
        if _lookup(before, key.value) is None:
            additions += [key, value]
    details = []
    if removals:
        details.append(Detail(REMOVAL, YNode("map", "map", items=removals), None))
    if additions:
        details.append(Detail(ADDITION, None, YNode("map", "map", items=additions)))
    return [Diff(path, details), *result] if details else result


def _sequences(path: tuple[PathElement, ...], before: YNode, after: YNode) -> list[Diff]:
    if not before.items and not after.items:
        return []
    identifier = _identifier(before, after)
    if identifier is not None:
        return _named_lists(path, identifier, before, after)
    return _simple_lists(path, before, after)


def _named_lists(
    path: tuple[PathElement, ...], identifier: _Identifier, before: YNode, after: YNode
) -> list[Diff]:
    result: list[Diff] = []
    removals: list[YNode] = []
    additions: list[YNode] = []
    after_by_name = {identifier.name(e): e for e in reversed(after.items)}
    before_names = {identifier.name(e) for e in before.items}
    from_names: list[str] = []
    to_names: list[str] = []
    for entry in before.items:
        name = identifier.name(entry) or ""
        other = after_by_name.get(name)
        if other is not None:
            element = PathElement(name=name, key=identifier.field)
            result += compare((*path, element), entry, other)
            from_names.append(name)
        else:
            removals.append(entry)
    for entry in after.items:
        name = identifier.name(entry) or ""
        if name in before_names:
            to_names.append(name)
        else:
            additions.append(entry)
    order: list[Detail] = []
    positions = {name: i for i, name in enumerate(to_names)}
    if any(positions.get(name, 0) != i for i, name in enumerate(from_names)):
        order.append(Detail(ORDER_CHANGE, _scalar_seq(from_names), _scalar_seq(to_names)))
    return _pack(result, path, order, additions, removals)


def _simple_lists(path: tuple[PathElement, ...], before: YNode, after: YNode) -> list[Diff]:
    if len(before.items) == 1 and len(after.items) == 1:
        return compare((*path, PathElement(idx=0)), before.items[0], after.items[0])
    from_counts = Counter(map(_hash, before.items))
    to_counts = Counter(map(_hash, after.items))
    removals: list[YNode] = []
    additions: list[YNode] = []
    from_common: list[YNode] = []
    to_common: list[YNode] = []
    for items, mine, theirs, changes, common in (
        (before.items, from_counts, to_counts, removals, from_common),
        (after.items, to_counts, from_counts, additions, to_common),
    ):
        # A value this side has more often than the other is reported once, with all its
        # surplus copies, where it first appears.
        surplus_reported: set[str] = set()
        for entry in items:
            h = _hash(entry)
            if h not in theirs:
                changes.append(entry)
                continue
            common.append(entry)
            if mine[h] > theirs[h] and h not in surplus_reported:
                surplus_reported.add(h)
                changes.extend([entry] * (mine[h] - theirs[h]))
    order: list[Detail] = []
    if len(from_common) == len(to_common) and any(
        _hash(a) != _hash(b) for a, b in zip(from_common, to_common, strict=True)
    ):
        order.append(
            Detail(
                ORDER_CHANGE,
                YNode("seq", "seq", items=from_common),
                YNode("seq", "seq", items=to_common),
            )
        )
    return _pack([], path, order, additions, removals)


# --- writing the report ------------------------------------------------------------------------


def terminal_width() -> int:
    if sys.stdout.isatty():
        return shutil.get_terminal_size((80, 25)).columns
    return 80


def _go_quote(text: str) -> str:
    return (
        json.dumps(text, ensure_ascii=False)
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _needs_quotes(node: YNode) -> bool:
    if node.tag != "str":
        return False
    if node.value in ("true", "false", "null") or node.value.startswith("-"):
        return True
    return any(c in node.value for c in " *&:,")


def _neat(node: YNode, prefix: str = "", skip_indent: bool = False) -> str:
    """neat's YAML rendering of a node (what dyff shows for added or removed entries)."""
    out: list[str] = []
    if node.kind == "seq":
        for i, entry in enumerate(node.items):
            if i > 0 or not skip_indent:
                out.append(prefix)
            out.append("- " + _neat(entry, prefix + "  ", True))
    elif node.kind == "map":
        for i, (key, value) in enumerate(_pairs(node)):
            if i > 0 or not skip_indent:
                out.append(prefix)
            out.append(f"{key.value}:")
            if value.kind == "map":
                out.append(" {}\n" if not value.items else "\n" + _neat(value, prefix + "  "))
            elif value.kind == "seq":
                out.append(" []\n" if not value.items else "\n" + _neat(value, prefix))
            else:
                out.append(" " + _neat(value, prefix + "  "))
    else:
        lines = node.value.split("\n")
        if len(lines) == 1:
            out.append(_go_quote(node.value) if _needs_quotes(node) else node.value)
        else:
            out.append("|\n" + "\n".join(prefix + line for line in lines))
        out.append("\n")
    return "".join(out)


def _max_depth(node: YNode) -> int:
    if node.kind == "map":
        return max((1 + _max_depth(v) for _, v in _pairs(node)), default=0)
    if node.kind == "seq":
        return max((1 + _max_depth(v) for v in node.items), default=0)
    return 0


def _restructure(node: YNode) -> YNode:
    """ytbx's reordering of map keys for readability: a known key order first (`name` first),
    then the other keys, shallow values before deep ones."""
    if node.kind == "seq":
        return YNode("seq", "seq", items=[_restructure(i) for i in node.items])
    if node.kind != "map":
        return node
    pairs = [(k, _restructure(v)) for k, v in _pairs(node)]
    keys = [k.value for k, _ in pairs]
    best, hits = None, 0
    for order in _KNOWN_KEY_ORDERS:
        count = sum(1 for k in keys if k in order)
        if count > hits:
            best, hits = order, count
    if best is not None:
        first = [k for k in best if k in keys]
        rest = sorted(
            (k for k in keys if k not in first), key=lambda k: _max_depth(_value(pairs, k))
        )
        lookup = dict((k.value, (k, v)) for k, v in pairs)
        pairs = [lookup[k] for k in (*first, *rest)]
    items: list[YNode] = []
    for k, v in pairs:
        items += [k, v]
    return YNode("map", "map", items=items)


def _value(pairs: list[tuple[YNode, YNode]], key: str) -> YNode:
    return next(v for k, v in pairs if k.value == key)


def _with_prefix(prefix: str, text: str, indent: int = 0) -> str:
    lines = text.split("\n")
    out = [" " * indent + prefix + lines[0] + "\n"]
    out += [" " * (len(prefix) + indent) + line + "\n" for line in lines[1:]]
    return "".join(out)


def _with_continuous_prefix(prefix: str, text: str) -> str:
    return "".join(prefix + line + "\n" for line in text.removesuffix("\n").split("\n"))


def _table(separator: str, indent: int, columns: Sequence[str]) -> str:
    split = [c.split("\n") for c in columns]
    rows = max(len(c) for c in split)
    widths = [max(len(line) for line in c) for c in split]
    matrix = [[" " * (widths[j] + indent) for j in range(len(columns))] for _ in range(rows)]
    for j, col in enumerate(split):
        for i, line in enumerate(col):
            matrix[i][j] = " " * indent + line + " " * (widths[j] - len(line))
    return "\n".join(separator.join(row).rstrip(" ") for row in matrix)


def _text_blocks(indent: int, blocks: Sequence[str], width: int) -> str:
    separator = "   "
    longest = indent + (len(blocks) - 1) * len(separator)
    longest += sum(max(len(line) for line in b.split("\n")) for b in blocks)
    if longest > width:
        return "".join(" " * indent + line + "\n" for b in blocks for line in b.split("\n"))
    return _table(separator, indent, blocks)


def _scalar_text(node: YNode | None) -> str:
    if node is None or node.tag == "null":
        return "<nil>"
    return _neat(node)


def _type_name(node: YNode) -> str:
    if node.kind == "map":
        return "map"
    if node.kind == "seq":
        return "list"
    return "<nil>" if node.tag == "null" else ("string" if node.tag == "str" else node.tag)


def _string_change(before: str, after: str) -> str:
    if before.strip(" \n") == after.strip(" \n"):

        def shown(s: str) -> str:
            return s.replace("\n", "↵\n").replace(" ", "·")

        return f"{MODIFICATION} whitespace only change\n" + _table(
            "   ", 0, [_with_prefix("- ", shown(before)), _with_prefix("+ ", shown(after))]
        )
    if "\n" in before or "\n" in after:
        a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
        body: list[str] = []
        inserts = deletions = 0
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(
            None, a, b, autojunk=False
        ).get_opcodes():
            if tag in ("delete", "replace"):
                body.append(_with_continuous_prefix("- ", "".join(a[i1:i2])))
                deletions += 1
            if tag in ("insert", "replace"):
                body.append(_with_continuous_prefix("+ ", "".join(b[j1:j2])))
                inserts += 1
        return (
            f"{MODIFICATION} value change in multiline text "
            f"({plural(inserts, 'insert')}, {plural(deletions, 'deletion')})\n"
            + "".join(body)
            + "\n"
        )
    return f"{MODIFICATION} value change\n" + _with_prefix("- ", before) + _with_prefix("+ ", after)


def _detail(detail: Detail, width: int) -> str:
    if detail.kind in (ADDITION, REMOVAL):
        node = detail.after if detail.kind == ADDITION else detail.before
        assert node is not None
        count = len(node.items) // 2 if node.kind == "map" else len(node.items)
        what = (
            ("map entry", "map entries") if node.kind == "map" else ("list entry", "list entries")
        )
        verb = "added" if detail.kind == ADDITION else "removed"
        head = f"{detail.kind} {plural(count, *what)} {verb}:\n"
        return head + _text_blocks(
            2 if detail.kind == ADDITION else 0, [_neat(_restructure(node))], width
        )
    if detail.kind == ORDER_CHANGE:
        assert detail.before is not None and detail.after is not None
        old = [e.value or _neat(e) for e in detail.before.items]
        new = [e.value or _neat(e) for e in detail.after.items]
        length = max(
            sum(len(s) for s in old) + (len(old) - 1) * 2,
            sum(len(s) for s in new) + (len(new) - 1) * 2,
        )
        if length < width // 2:
            return f"{ORDER_CHANGE} order changed\n- {', '.join(old)}\n+ {', '.join(new)}\n"
        return f"{ORDER_CHANGE} order changed\n" + _table(" ", 2, ["\n".join(old), "\n".join(new)])
    before, after = detail.before, detail.after
    if before is not None and after is not None and before.tag == after.tag == "str":
        return _string_change(before.value, after.value)
    from_type = _type_name(before) if before is not None else "<nil>"
    to_type = _type_name(after) if after is not None else "<nil>"
    head = (
        f"{MODIFICATION} type change from {from_type} to {to_type}\n"
        if from_type != to_type
        else f"{MODIFICATION} value change\n"
    )
    return (
        head
        + _with_prefix("- ", _scalar_text(before).rstrip("\n"))
        + _with_prefix("+ ", _scalar_text(after).rstrip("\n"))
    )


def _path_text(path: tuple[PathElement, ...]) -> str:
    if not path:
        return "(root level)"
    return ".".join(e.name if e.name or e.key else str(e.idx) for e in path)


def report(live: Any, merged: Any, width: int | None = None) -> str:
    """dyff's report (HumanReport, header omitted) between two objects."""
    width = terminal_width() if width is None else width
    out: list[str] = []
    for diff in compare((), to_node(live), to_node(merged)):
        out.append("\n" + _path_text(diff.path) + "\n")
        blocks = [_detail(d, width) for d in diff.details]
        out.append(_text_blocks(0, blocks, width))
    out.append("\n")
    return "".join(out)
