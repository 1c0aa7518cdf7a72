"""RFC 6901 JSON pointers over decoded JSON (dicts and lists): spec.ignore paths, the drift
comparison and the JSON patches the applier sends all address fields this way, so the
escaping and the walk live here once."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


class PointerError(ValueError):
    """The text is not a JSON pointer."""


def escape(key: str) -> str:
    """One key as a pointer token ("a/b" → "a~1b")."""
    return key.replace("~", "~0").replace("/", "~1")


def parse(pointer: str) -> list[str]:
    """The unescaped tokens of `pointer`; "" is the whole document."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PointerError(f"invalid JSON pointer {pointer!r}: it must start with '/'")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _is_index(node: list[Any], token: str) -> bool:
    return token.isdigit() and int(token) < len(node)


def _resolve(doc: Any, tokens: list[str]) -> tuple[bool, Any]:
    node = doc
    for token in tokens:
        if isinstance(node, Mapping) and token in node:
            node = node[token]
        elif isinstance(node, list) and _is_index(node, token):
            node = node[int(token)]
        else:
            return False, None
    return True, node


def lookup(doc: Any, pointer: str) -> tuple[bool, Any]:
    """(found, value) at `pointer`; a path that does not resolve is not found."""
    return _resolve(doc, parse(pointer))


def set_value(doc: Any, pointer: str, value: Any) -> None:
    """Put a copy of `value` at `pointer`, creating missing objects on the way; a path that
    runs into a list index that does not exist, or into a scalar, is left alone."""
    tokens = parse(pointer)
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(token, {})
        elif isinstance(node, list) and _is_index(node, token):
            node = node[int(token)]
        else:
            return
    last = tokens[-1]
    if isinstance(node, dict):
        node[last] = copy.deepcopy(value)
    elif isinstance(node, list) and _is_index(node, last):
        node[int(last)] = copy.deepcopy(value)


def remove_pointer(doc: Any, pointer: str) -> None:
    """Remove the value at `pointer` if present (missing paths are fine). Lenient, as it has
    always been: a missing leading "/" is implied, and "" and "/" remove nothing."""
    if not pointer or pointer == "/":
        return
    tokens = parse("/" + pointer.lstrip("/"))
    found, parent = _resolve(doc, tokens[:-1])
    if not found:
        return
    last = tokens[-1]
    if isinstance(parent, dict):
        parent.pop(last, None)
    elif isinstance(parent, list) and _is_index(parent, last):
        del parent[int(last)]
