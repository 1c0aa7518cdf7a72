"""The `sops` section of a YAML file, decoded as go-yaml v3 fills SOPS's `SopsFile` struct.

That is what `yaml.Unmarshal(file, &SopsFile{})` does with the first document: keys match
exactly, any scalar fills a string field with its text, an integer field takes integers (and
truncated floats), a boolean field also takes YAML 1.1's yes/no/on/off, null leaves a field
alone, and each mapping it decodes must not repeat a key. Type errors are collected and reported
together, with go-yaml v3's wording.
"""

from __future__ import annotations

from typing import Any, Final

from tidal.sops.stores.common import FormatError
from tidal.sops.stores.metadata import STRUCTS, go_type_name, new_struct, zero
from tidal.sops.stores.yamlparse import Node, duplicate_key_errors
from tidal.sops.stores.yamlresolve import (
    BINARY,
    BOOL,
    FLOAT,
    INT,
    NULL,
    ResolveError,
    UnsupportedValue,
    indicated_string,
    resolve,
    scalar_value,
    unmarshal_error,
)

_YAML11_BOOLS: Final = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "off", "Off", "OFF"), False),
}


class _Decoder:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def type_error(self, node: Node, go_type: str) -> None:
        self.errors.append(unmarshal_error(node, go_type))

    def resolved(self, node: Node) -> tuple[str, Any]:
        if indicated_string(node):
            return "!!str", node.value
        try:
            return resolve(node.tag, node.value)
        except UnsupportedValue:
            return INT, None  # beyond int64: no integer field takes it
        except ResolveError:
            return "", None

    def unique(self, node: Node) -> bool:
        errors = duplicate_key_errors(node)
        self.errors += errors
        return not errors

    def struct(self, node: Node, name: str, target: dict[str, Any]) -> None:
        node = _follow(node)
        if node.kind == "scalar" and self.resolved(node)[0] == NULL:
            return
        if node.kind != "mapping":
            self.type_error(node, go_type_name(name))
            return
        if not self.unique(node):
            return
        fields = STRUCTS[name].fields
        done: set[str] = set()
        for key, value in zip(node.content[0::2], node.content[1::2], strict=True):
            key = _follow(key)
            if key.kind != "scalar":
                continue
            field = key.value
            if field not in fields:
                continue
            if field in done:
                self.errors.append(
                    f"line {key.line}: field {field} already set in type stores.{name}"
                )
                continue
            done.add(field)
            target[field] = self.field(value, fields[field], target[field])

    def field(self, node: Node, kind: str, current: Any) -> Any:
        node = _follow(node)
        if node.kind == "scalar":
            tag, value = self.resolved(node)
            if tag == NULL:
                return zero(kind) if kind.startswith(("[]", "map")) else current
            if kind == "string":
                decoded = scalar_value(node)
                return decoded if tag == BINARY and isinstance(decoded, str) else node.value
            if kind == "int" and tag == INT and isinstance(value, int):
                return value
            if kind == "int" and tag == FLOAT and abs(value) < 2**63:
                return int(value)
            if kind == "bool" and tag == BOOL:
                return value
            if kind == "bool" and isinstance(value, str) and value in _YAML11_BOOLS:
                return _YAML11_BOOLS[value]
            self.type_error(node, go_type_name(kind))
            return current
        if kind.startswith("[]") and node.kind == "sequence":
            out = []
            for element in node.content:
                target = new_struct(kind[2:])
                self.struct(element, kind[2:], target)
                out.append(target)
            return out
        if kind.startswith("map") and node.kind == "mapping":
            if not self.unique(node):
                return current
            mapping: dict[str, str | None] = {}
            for key, value in zip(node.content[0::2], node.content[1::2], strict=True):
                value = _follow(value)
                if value.kind != "scalar":
                    self.type_error(value, "string")
                elif self.resolved(value)[0] == NULL:
                    mapping[_follow(key).value] = None
                else:
                    mapping[_follow(key).value] = value.value
            return mapping
        if kind in STRUCTS:
            target = current if isinstance(current, dict) else new_struct(kind)
            self.struct(node, kind, target)
            return target
        self.type_error(node, go_type_name(kind))
        return current


def _follow(node: Node) -> Node:
    while node.kind == "alias" and node.alias is not None:
        node = node.alias
    return node


def metadata_fields(document: Node | None) -> dict[str, Any] | None:
    """The `sops` struct of the first document, or None when it has none (null included)."""
    if document is None or not document.content:
        return None
    root = _follow(document.content[0])
    decoder = _Decoder()
    found: dict[str, Any] | None = None
    if root.kind == "mapping":
        if decoder.unique(root):
            seen = False
            for key, value in zip(root.content[0::2], root.content[1::2], strict=True):
                key = _follow(key)
                if key.kind != "scalar" or key.value != "sops":
                    continue
                if seen:
                    decoder.errors.append(
                        f"line {key.line}: field sops already set in type stores.SopsFile"
                    )
                    continue
                seen = True
                value = _follow(value)
                if value.kind == "scalar" and decoder.resolved(value)[0] == NULL:
                    continue  # null leaves the pointer nil: no metadata
                found = new_struct("Metadata")
                decoder.struct(value, "Metadata", found)
    elif not (root.kind == "scalar" and decoder.resolved(root)[0] == NULL):
        decoder.type_error(root, "stores.SopsFile")
    if decoder.errors:
        raise FormatError("yaml: unmarshal errors:\n  " + "\n  ".join(decoder.errors))
    return found
