"""JSON patches between two decoded JSON documents, shaped as Flux's drift detection makes
them (github.com/wI2L/jsondiff with its Rationalize option), and Secret masking for logs.

The shape matters beyond correctness: Flux's drift summary counts the patch's add, replace
and remove operations ("changed (1 additions, 2 changes, 0 removals)"), so the same edit must
give the same operations. Hence the rules copied from jsondiff's behaviour: object keys in
sorted order; arrays by index (the tail removed at one index, or appended at "/-"); and after
a subtree's operations, one replace of the whole subtree instead whenever its JSON is shorter
than theirs, measured as jsondiff measures (an add's value counts as empty, a replace's value
as the target's compact Go JSON).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from tidal.ssa.pointer import escape

OpType = Literal["add", "replace", "remove"]

_OP_BASE_LEN: Final = len('{"op":"","path":""}')
_VALUE_FIELD_LEN: Final = len(',"value":')
_GO_ESCAPES: Final = (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"))
_GO_LINE_ESCAPES: Final = (("\u2028", "\\u2028"), ("\u2029", "\\u2029"))

_MASK: Final = "***"
_MASK_BEFORE: Final = "*** (before)"
_MASK_AFTER: Final = "*** (after)"


@dataclass(frozen=True, slots=True)
class Operation:
    """One JSON patch operation; `old` (the source value) is kept for masking, never sent."""

    op: OpType
    path: str
    value: Any = None
    old: Any = None
    value_len: int = 0  # jsondiff's measure of the value, for rationalization

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op, "path": self.path}
        if self.op != "remove":
            out["value"] = self.value
        return out

    def json_length(self) -> int:
        n = _OP_BASE_LEN + len(self.op) + len(self.path)
        if self.op != "remove":
            n += _VALUE_FIELD_LEN + self.value_len
        return n


def go_json(value: Any) -> str:
    """Compact JSON as Go's encoding/json writes decoded JSON (sorted keys, HTML escapes)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    for ch, esc in _GO_ESCAPES + _GO_LINE_ESCAPES:
        text = text.replace(ch, esc)
    return text


def _json_type(v: Any) -> str:
    # bool before number: True == 1 in Python, never in JSON.
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, Mapping):
        return "object"
    raise TypeError(f"not a JSON value: {type(v).__name__}")


def json_equal(a: Any, b: Any) -> bool:
    """Equality of decoded JSON values by JSON type (1 == 1.0, but True != 1)."""
    ta = _json_type(a)
    if ta != _json_type(b):
        return False
    if ta == "array":
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if ta == "object":
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return bool(a == b)


class _Differ:
    def __init__(self, rationalize: bool) -> None:
        self.rationalize = rationalize
        self.ops: list[Operation] = []

    def diff(self, path: str, src: Any, tgt: Any, found: bool) -> None:
        """`found`: whether jsondiff can find `tgt`'s JSON text in its parent's, and so
        measure it; a key JSON escapes is not found, and its subtree measures as empty."""
        if _json_type(src) != _json_type(tgt):
            if path == "":
                # jsondiff replaces a whole document of another type with an add at the root.
                self.ops.append(Operation("add", "", copy.deepcopy(tgt), src))
            else:
                self.ops.append(self._replace(path, src, tgt, found))
            return
        if json_equal(src, tgt):
            return
        size = len(self.ops)
        if isinstance(src, list):
            self._arrays(path, src, tgt, found)
        elif isinstance(src, Mapping):
            self._objects(path, src, tgt, found)
        else:
            self.ops.append(self._replace(path, src, tgt, found))
            return
        if self.rationalize and len(self.ops) > size:
            replace = self._replace(path, src, tgt, found)
            tail = self.ops[size:]
            tail_len = sum(op.json_length() for op in tail) + len(tail) - 1
            if tail_len > replace.json_length():
                del self.ops[size:]
                self.ops.append(replace)

    @staticmethod
    def _replace(path: str, src: Any, tgt: Any, found: bool) -> Operation:
        length = len(go_json(tgt).encode()) if found else 0
        return Operation("replace", path, copy.deepcopy(tgt), src, length)

    def _objects(
        self, path: str, src: Mapping[str, Any], tgt: Mapping[str, Any], found: bool
    ) -> None:
        for key in sorted(set(src) | set(tgt)):
            child = f"{path}/{escape(key)}"
            if key in src and key in tgt:
                self.diff(child, src[key], tgt[key], found and go_json(key)[1:-1] == key)
            elif key in src:
                self.ops.append(Operation("remove", child, None, src[key]))
            else:
                self.ops.append(Operation("add", child, copy.deepcopy(tgt[key])))

    def _arrays(self, path: str, src: list[Any], tgt: list[Any], found: bool) -> None:
        common = min(len(src), len(tgt))
        # Removed tail elements all go at the first removed index, one after the other.
        for i in range(common, len(src)):
            self.ops.append(Operation("remove", f"{path}/{common}", None, src[i]))
        for i in range(common):
            self.diff(f"{path}/{i}", src[i], tgt[i], found)
        for i in range(common, len(tgt)):
            self.ops.append(Operation("add", f"{path}/-", copy.deepcopy(tgt[i])))


def compare(src: Any, tgt: Any, *, rationalize: bool = True) -> list[Operation]:
    """The operations that turn `src` into `tgt`."""
    d = _Differ(rationalize)
    d.diff("", src, tgt, True)
    return d.ops


# -- Secret masking -----------------------------------------------------------------------


def _mask_maps(old: Any, new: Any) -> tuple[Any, Any]:
    before = old if isinstance(old, Mapping) else {}
    after = new if isinstance(new, Mapping) else {}
    changed = {k for k in before if k in after and not json_equal(before[k], after[k])}
    # Flux leaves a value that is equal on both sides unmasked in the new map; masked here.
    masked_old = {k: _MASK_BEFORE if k in changed else _MASK for k in before}
    masked_new = {k: _MASK_AFTER if k in changed else _MASK for k in after}
    return (None if old is None else masked_old), (None if new is None else masked_new)


def _mask_one(op: Operation) -> Operation:
    path = op.path
    if path in ("/data", "/stringData"):
        old, new = _mask_maps(op.old, op.value)
        return Operation(op.op, path, new, old, op.value_len)
    if path.startswith(("/data/", "/stringData/")):
        both = op.old is not None and op.value is not None
        old = None if op.old is None else (_MASK_BEFORE if both else _MASK)
        new = None if op.value is None else (_MASK_AFTER if both else _MASK)
        return Operation(op.op, path, new, old, op.value_len)
    if path == "" and isinstance(op.value, Mapping):
        # A whole-document replacement (tiny documents only) carries the data too.
        value = dict(op.value)
        for key in ("data", "stringData"):
            if isinstance(value.get(key), Mapping):
                value[key] = dict.fromkeys(value[key], _MASK)
        return Operation(op.op, path, value, None, op.value_len)
    return op


def mask_secret(ops: Iterable[Operation]) -> list[Operation]:
    """Flux's MaskSecretPatchData: data and stringData values become "***", or
    "*** (before)"/"*** (after)" where a value changed."""
    return [_mask_one(op) for op in ops]
