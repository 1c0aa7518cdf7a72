"""YAML files as SOPS 3.11's YAML store reads them: each document becomes a branch, and the
comments go-yaml v3 attached to nodes become `Comment` items in SOPS's order.

For a mapping entry SOPS emits the key's head and line comments, then (when the value is a
scalar or an alias) the value's head and line comments, then the entry, then the value's and
the key's foot comments; a nested mapping or sequence carries its own head, line and foot
comments inside it. Aliases are expanded (the expansion is capped, a self-reference refused).
The metadata comes from the first document's `sops` key; every document's `sops` key is
dropped from the data.
"""

from __future__ import annotations

from typing import Any

from tidal.sops.model import Branch, Comment, Document, Item, go_type
from tidal.sops.stores.common import (
    MAX_DEPTH,
    MAX_NODES,
    FormatError,
    check_size,
    depth_error,
)
from tidal.sops.stores.metadata import to_internal
from tidal.sops.stores.yamlmeta import metadata_fields
from tidal.sops.stores.yamlparse import DocumentReader, Node, duplicate_key_errors
from tidal.sops.stores.yamlresolve import (
    NULL,
    display_tag,
    resolve_failure,
    scalar_value,
    unmarshal_error,
)


def _comments(text: str) -> list[str]:
    # SOPS splits a comment block into lines and drops the first character (the '#').
    return [line[1:] for line in text.split("\n") if line] if text else []


def _go_print(value: Any) -> str:
    """fmt's %s of a non-string key, as SOPS's error prints it."""
    if value is None:
        return "%!s(<nil>)"
    if isinstance(value, bool):
        return f"%!s(bool={'true' if value else 'false'})"
    if isinstance(value, int | float):
        return f"%!s({go_type(value)}={value})"
    return str(value)


class _Converter:
    """SOPS's nodeToTreeValue and appendYamlNodeToTreeBranch over go-yaml v3 nodes."""

    def __init__(self) -> None:
        self.produced = 0
        self.expanding: list[Node] = []

    def count(self, depth: int) -> None:
        self.produced += 1
        if self.produced > MAX_NODES:
            raise FormatError("yaml: document contains excessive aliasing")
        if depth > MAX_DEPTH:
            raise depth_error()

    def value(self, node: Node, handled: bool, depth: int) -> Any:
        self.count(depth)
        if node.kind == "sequence":
            out: list[Any] = []
            if not handled:
                out += [Comment(c) for c in _comments(node.head) + _comments(node.line_comment)]
            for item in node.content:
                out += [Comment(c) for c in _comments(item.head) + _comments(item.line_comment)]
                out.append(self.value(item, True, depth + 1))
                out += [Comment(c) for c in _comments(item.foot)]
            if not handled:
                out += [Comment(c) for c in _comments(node.foot)]
            return out
        if node.kind == "mapping":
            return self.branch(node, Branch(), handled, depth)
        if node.kind == "alias":
            return self.alias(node, depth)
        return scalar_value(node)

    def alias(self, node: Node, depth: int) -> Any:
        target = node.alias
        assert target is not None
        if any(target is active for active in self.expanding):
            raise FormatError(f"yaml: anchor '{node.value}' value contains itself")
        self.expanding.append(target)
        try:
            return self.value(target, False, depth + 1)
        finally:
            self.expanding.pop()

    def branch(self, node: Node, out: Branch, handled: bool, depth: int) -> Branch:
        def note(text: str) -> None:
            out.extend(Item(Comment(c), None) for c in _comments(text))

        if not handled:
            note(node.head)
            note(node.line_comment)
        if node.kind == "document":
            for child in node.content:
                self.branch(child, out, False, depth)
        elif node.kind == "sequence":
            raise FormatError("YAML documents that are sequences are not supported")
        elif node.kind == "mapping":
            for key, value in zip(node.content[0::2], node.content[1::2], strict=True):
                note(key.head)
                note(key.line_comment)
                simple = value.kind in ("scalar", "alias")
                if simple:
                    note(value.head)
                    note(value.line_comment)
                name = self.value(key, True, depth + 1)
                if not isinstance(name, str):
                    raise FormatError(
                        f"Tree contains a non-string key (type {go_type(name)}):"
                        f" {_go_print(name)}. Only string keys aresupported"
                    )
                out.append(Item(name, self.value(value, simple, depth + 1)))
                if simple:
                    note(value.foot)
                note(key.foot)
        elif node.kind == "scalar":
            if display_tag(node) != NULL:
                raise FormatError("YAML documents that are values are not supported")
            return out  # an empty document: SOPS returns before its foot comment
        else:
            self.branch(_target(node), out, False, depth)
        if not handled:
            note(node.foot)
        return out


def _target(node: Node) -> Node:
    assert node.alias is not None
    return node.alias


def _reader(data: bytes) -> DocumentReader:
    check_size(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("yaml: invalid leading UTF-8 octet") from None
    return DocumentReader(text)


def _convert(document: Node) -> Branch:
    try:
        return _Converter().branch(document, Branch(), False, 0)
    except FormatError as exc:
        if str(exc).startswith("Tree contains"):
            raise
        raise FormatError(f"Error unmarshaling input YAML: {exc}") from None


def _check_first(document: Node) -> None:
    """SOPS first decodes the first document into a map, which must work: a mapping (or
    nothing) at the top, and no mapping in it that repeats a key."""
    root = document.content[0]
    errors: list[str] = []
    if root.kind == "sequence" or (root.kind == "scalar" and display_tag(root) != NULL):
        errors.append(unmarshal_error(root, "map[string]interface {}"))
    stack = [(root, 0)]
    seen: set[int] = set()
    while stack:
        node, depth = stack.pop()
        if id(node) in seen or depth > MAX_DEPTH:
            continue
        seen.add(id(node))
        if node.kind == "scalar":
            failure = resolve_failure(node)
            if failure:
                errors.append(failure)
        if node.kind == "mapping":
            errors += duplicate_key_errors(node)
        stack.extend((child, depth + 1) for child in node.content)
    failures = [e for e in errors if e.startswith("cannot decode")]
    if failures:
        raise FormatError("yaml: " + failures[0])
    if errors:
        raise FormatError("yaml: unmarshal errors:\n  " + "\n  ".join(errors))


def load_plain(data: bytes) -> list[Branch]:
    reader = _reader(data)
    branches: list[Branch] = []
    first = True
    while True:
        try:
            document = reader.next_document()
        except FormatError as exc:
            if first and data:
                raise
            raise FormatError(f"Error unmarshaling input YAML: {exc}") from None
        if document is None:
            if first and data:
                # SOPS's first decode into a map finds no document at all.
                raise FormatError("EOF")
            return branches
        if first and data:
            _check_first(document)
        first = False
        branches.append(_convert(document))


def load_encrypted(data: bytes) -> Document:
    reader = _reader(data)
    try:
        first = reader.next_document()
        fields = metadata_fields(first)
    except FormatError as exc:
        raise FormatError(f"Error unmarshalling input yaml: {exc}") from None
    if fields is None or first is None:
        raise FormatError("sops metadata not found")
    metadata = to_internal(fields)
    branches: list[Branch] = []
    document: Node | None = first
    while document is not None:
        branch = _convert(document)
        branches.append(Branch(item for item in branch if item.key != "sops"))
        try:
            document = reader.next_document()
        except FormatError as exc:
            raise FormatError(f"Error unmarshaling input YAML: {exc}") from None
    return Document(branches, metadata)
