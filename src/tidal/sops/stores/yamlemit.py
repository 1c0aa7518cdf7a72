"""Plain YAML exactly as `sops decrypt` prints it: SOPS 3.11's YAML store over go-yaml v3's
encoder and emitter (indent 4, no line width limit).

Three stages, each reproduced because each leaves its mark on the output:

1. SOPS turns the tree into go-yaml v3 nodes: the comments before a mapping's first key (or a
   sequence's first item) become the collection's head comment, later ones the head comment of
   the next key or item, trailing ones the foot comment of the last key or item. Each scalar is
   encoded on its own first (`Node.Encode`), which fixes its style: a string goes plain when
   go-yaml v3 would read it back as a string (and it is not a YAML 1.1 boolean such as "y" or
   a base-60 number), literal (`|`) when it has a line break, double-quoted otherwise, and the
   emitter may still fall back to single or double quotes; text that is not UTF-8 becomes
   `!!binary` base64.
2. go-yaml v3's encoder turns nodes into events; a key's foot comment travels as the "tail" of
   the next key (or of the mapping's end).
3. go-yaml v3's emitter writes the events. Only the states SOPS's trees reach are here: block
   mappings and sequences, empty `{}`/`[]`, and scalars. Its quirks are kept, e.g. the foot
   comment of a mapping inside a sequence is written after the next value, and a blank line
   follows a foot comment when the next line has the same indentation.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from tidal.kube.gostrconv import format_float
from tidal.sops.gotext import GoTime, format_time
from tidal.sops.model import Branch, Comment, is_branch
from tidal.sops.stores.common import MAX_DEPTH, FormatError, depth_error
from tidal.sops.stores.yamlparse import STR
from tidal.sops.stores.yamlresolve import resolve

_INDENT: Final = 4
_BINARY_TAG: Final = "tag:yaml.org,2002:binary"
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
_YAML_TAGS: Final = "tag:yaml.org,2002:"
_BREAKS: Final = "\r\n\x85\u2028\u2029"
_BASE60: Final = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
# YAML 1.1 booleans: go-yaml v3 quotes them so that YAML 1.1 readers still see strings.
_OLD_TRUE: Final = ("y", "Y", "yes", "Yes", "YES", "on", "On", "ON")
_OLD_FALSE: Final = ("n", "N", "no", "No", "NO", "off", "Off", "OFF")
_OLD_BOOLS: Final = frozenset((*_OLD_TRUE, *_OLD_FALSE))
_DOUBLE_ESCAPES: Final = {
    0x00: "0",
    0x07: "a",
    0x08: "b",
    0x09: "t",
    0x0A: "n",
    0x0B: "v",
    0x0C: "f",
    0x0D: "r",
    0x1B: "e",
    0x22: '"',
    0x5C: "\\",
    0x85: "N",
    0xA0: "_",
    0x2028: "L",
    0x2029: "P",
}
_TAG_SAFE: Final = frozenset(";/?:@&=+$,_.~*'()[]")


def _printable(char: str) -> bool:
    code = ord(char)
    return (
        code == 0x0A
        or 0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or (0xE000 <= code <= 0xFFFD and code != 0xFEFF)
    )


# ---------------------------------------------------------------------------------------------
# Stage 1: SOPS's tree to go-yaml v3 nodes


@dataclass
class _Node:
    kind: str  # mapping, sequence or scalar
    value: str = ""
    style: str = "plain"  # plain, single, double or literal
    tag: str = ""
    head: str = ""
    foot: str = ""
    content: list[_Node] = field(default_factory=list)


@dataclass
class _Analysis:
    multiline: bool
    flow_plain: bool
    block_plain: bool
    single_quoted: bool
    block: bool


def _analyze(value: str) -> _Analysis:
    """go-yaml v3's yaml_emitter_analyze_scalar: which styles can write `value`."""
    if not value:
        return _Analysis(False, False, True, True, False)
    flow_indicators = block_indicators = value.startswith(("---", "..."))
    line_breaks = special = tabs = False
    leading_space = leading_break = trailing_space = trailing_break = False
    break_space = space_break = previous_space = previous_break = False
    preceded_by_whitespace = True
    last = len(value) - 1
    for i, char in enumerate(value):
        followed_by_whitespace = i == last or value[i + 1] in " \t"
        if i == 0:
            if char in "#,[]{}&*!|>'\"%@`":
                flow_indicators = block_indicators = True
            elif char in "?:":
                flow_indicators = True
                block_indicators = block_indicators or followed_by_whitespace
            elif char == "-" and followed_by_whitespace:
                flow_indicators = block_indicators = True
        elif char in ",?[]{}":
            flow_indicators = True
        elif char == ":":
            flow_indicators = True
            block_indicators = block_indicators or followed_by_whitespace
        elif char == "#" and preceded_by_whitespace:
            flow_indicators = block_indicators = True
        if char == "\t":
            tabs = True
        elif not _printable(char):
            special = True
        if char == " ":
            leading_space = leading_space or i == 0
            trailing_space = trailing_space or i == last
            break_space = break_space or previous_break
            previous_space, previous_break = True, False
        elif char in _BREAKS:
            line_breaks = True
            leading_break = leading_break or i == 0
            trailing_break = trailing_break or i == last
            space_break = space_break or previous_space
            previous_space, previous_break = False, True
        else:
            previous_space = previous_break = False
        preceded_by_whitespace = char in " \t" or char in _BREAKS
    analysis = _Analysis(line_breaks, True, True, True, True)
    if leading_space or leading_break or trailing_space or trailing_break:
        analysis.flow_plain = analysis.block_plain = False
    if trailing_space:
        analysis.block = False
    if break_space or space_break or tabs or special:
        analysis.flow_plain = analysis.block_plain = analysis.single_quoted = False
    if space_break or special:
        analysis.block = False
    if line_breaks:
        analysis.flow_plain = analysis.block_plain = False
    if flow_indicators:
        analysis.flow_plain = False
    if block_indicators:
        analysis.block_plain = False
    return analysis


def _select_style(
    style: str, analysis: _Analysis, value: str, *, simple_key: bool, flow: bool
) -> str:
    """go-yaml v3's yaml_emitter_select_scalar_style (for scalars that need no "!" tag)."""
    if simple_key and analysis.multiline:
        style = "double"
    if style == "plain":
        if (flow and not analysis.flow_plain) or (not flow and not analysis.block_plain):
            style = "single"
        if not value and (flow or simple_key):
            style = "single"
    if style == "single" and not analysis.single_quoted:
        style = "double"
    if style == "literal" and (not analysis.block or flow or simple_key):
        style = "double"
    return style


def _encode_base64(raw: bytes) -> str:
    # go-yaml v3's encodeBase64: 70-character lines, each ended by a break once there are two.
    text = base64.b64encode(raw).decode()
    lines = len(text) // 70 + 1
    if lines == 1:
        return text
    return "".join(text[i : i + 70] + "\n" for i in range(0, len(text), 70))


def _string_node(text: str) -> _Node:
    if any(0xDC80 <= ord(c) <= 0xDCFF for c in text):
        return _binary_node(text.encode("utf-8", "surrogateescape"))
    rtag = resolve("", text)[0] if text else "!!null"
    plain_ok = rtag == STR and not _BASE60.fullmatch(text) and text not in _OLD_BOOLS
    style = "literal" if "\n" in text else "plain" if plain_ok else "double"
    # Node.Encode writes the string as a document of its own and reads back the style used.
    style = _select_style(style, _analyze(text), text, simple_key=False, flow=False)
    # Read back, a plain "<<" is a merge key, a tag the encoder then has to write out.
    tag = _MERGE_TAG if style == "plain" and text == "<<" else ""
    return _Node("scalar", text, style, tag=tag)


def _binary_node(raw: bytes) -> _Node:
    text = _encode_base64(raw)
    style = "literal" if "\n" in text else "plain"
    style = _select_style(style, _analyze(text), text, simple_key=False, flow=False)
    return _Node("scalar", text, style, tag=_BINARY_TAG)


def _scalar_node(value: Any) -> _Node:
    if isinstance(value, str):
        return _string_node(value)
    if isinstance(value, bytes):
        try:
            return _string_node(value.decode("utf-8"))
        except UnicodeDecodeError:
            return _binary_node(value)
    if value is None:
        return _Node("scalar", "null")
    if isinstance(value, bool):
        return _Node("scalar", "true" if value else "false")
    if isinstance(value, int):
        return _Node("scalar", str(value))
    if isinstance(value, float):
        if math.isnan(value):
            return _Node("scalar", ".nan")
        if math.isinf(value):
            return _Node("scalar", ".inf" if value > 0 else "-.inf")
        return _Node("scalar", format_float(value))
    if isinstance(value, GoTime):
        return _Node("scalar", format_time(value))
    raise FormatError(f"Error marshaling to yaml: cannot marshal type {type(value).__name__}")


def _comment_text(comments: list[str]) -> str:
    return "#" + "\n#".join(comments)


def _collection(node: _Node, entries: Iterable[str | list[_Node]]) -> _Node:
    """`node` holding `entries`, each a comment or the nodes of an item (a sequence element, or
    a mapping key and value), with the comments placed as SOPS places them: those before the
    first item head the collection, later ones head the next item, and the ones after the last
    item are its foot (or, with no item at all, head the collection)."""
    comments: list[str] = []
    last: _Node | None = None
    for entry in entries:
        if isinstance(entry, str):
            comments.append(entry)
            continue
        if comments:
            target = node if last is None else entry[0]
            text = _comment_text(comments)
            target.head = text + "\n" + target.head if target.head else text
            comments = []
        last = entry[0]
        node.content += entry
    if comments and last is not None:
        last.foot = _comment_text(comments)
    elif comments:
        node.head = _comment_text(comments)
    return node


def _tree_node(value: Any, depth: int) -> _Node:
    if depth > MAX_DEPTH:
        raise depth_error()
    if is_branch(value):
        return _mapping_node(value, depth)
    if isinstance(value, list):
        return _collection(
            _Node("sequence"),
            (e.value if isinstance(e, Comment) else [_tree_node(e, depth + 1)] for e in value),
        )
    return _scalar_node(value)


def _mapping_node(branch: Branch, depth: int) -> _Node:
    return _collection(
        _Node("mapping"),
        (
            item.key.value
            if isinstance(item.key, Comment)
            else [_scalar_node(item.key), _tree_node(item.value, depth + 1)]
            for item in branch
        ),
    )


# ---------------------------------------------------------------------------------------------
# Stage 2: nodes to events


@dataclass
class _Event:
    kind: str  # document_start, document_end, mapping_start, mapping_end, ...
    value: str = ""
    style: str = "plain"
    tag: str = ""
    head: str = ""
    foot: str = ""
    tail: str = ""


def _events(node: _Node, out: list[_Event], tail: str = "") -> None:
    if node.kind == "scalar":
        out.append(
            _Event("scalar", node.value, node.style, node.tag, node.head, node.foot, tail=tail)
        )
    elif node.kind == "sequence":
        out.append(_Event("sequence_start", head=node.head))
        for child in node.content:
            _events(child, out)
        out.append(_Event("sequence_end", foot=node.foot))
    else:
        out.append(_Event("mapping_start", head=node.head, tail=tail))
        pending = ""
        for key, value in zip(node.content[0::2], node.content[1::2], strict=True):
            foot, key.foot = key.foot, ""
            _events(key, out, pending)
            pending = foot
            _events(value, out)
        out.append(_Event("mapping_end", foot=node.foot, tail=pending))


# ---------------------------------------------------------------------------------------------
# Stage 3: go-yaml v3's emitter, for the events above (no line comments, flows only empty)


class _Emitter:
    def __init__(self, events: list[_Event]) -> None:
        self.events = events
        self.position = 0
        self.out: list[str] = []
        self.states: list[str] = []
        self.state = "first_document"
        self.indents: list[int] = []
        self.indent = -1
        self.column = 0
        # Whether the last character written was blank, and whether only indentation was.
        self.whitespace = True
        self.indention = True
        # The indentation of the last foot comment: a line there next gets a blank line first.
        self.foot_indent = -1
        self.simple_key_context = False
        # Comments are pending until a state writes them, possibly for a later event.
        self.head = self.foot = self.tail = ""
        self.tag_handle = self.tag_suffix = ""
        self.analysis = _Analysis(False, False, True, True, False)

    # -- writing primitives ---------------------------------------------------------------

    def put(self, text: str) -> None:
        self.out.append(text)
        self.column += len(text)

    def put_break(self) -> None:
        self.out.append("\n")
        self.column = 0
        self.indention = True

    def write_break(self, char: str) -> None:
        if char == "\n":
            self.put_break()
            return
        self.out.append(char)
        self.column = 0
        self.indention = True

    def write_indent(self) -> None:
        indent = max(self.indent, 0)
        if (
            not self.indention
            or self.column > indent
            or (self.column == indent and not self.whitespace)
        ):
            self.put_break()
        if self.foot_indent == indent:
            self.put_break()
        if self.column < indent:
            self.put(" " * (indent - self.column))
        self.whitespace = True
        self.foot_indent = -1

    def write_indicator(
        self, indicator: str, need_whitespace: bool, is_whitespace: bool, is_indention: bool
    ) -> None:
        if need_whitespace and not self.whitespace:
            self.put(" ")
        self.put(indicator)
        self.whitespace = is_whitespace
        self.indention = self.indention and is_indention

    def write_comment(self, comment: str) -> None:
        breaks = pound = False
        for char in comment:
            if char in _BREAKS:
                self.write_break(char)
                breaks, pound = True, False
                continue
            if breaks:
                self.write_indent()
            if not pound:
                if char != "#":
                    self.put("# ")
                pound = True
            self.put(char)
            self.indention = False
            breaks = False
        if not breaks:
            self.put_break()
        self.whitespace = True

    # -- comments -------------------------------------------------------------------------

    def head_comment(self) -> None:
        if self.tail:
            self.write_indent()
            self.write_comment(self.tail)
            self.tail = ""
            self.foot_indent = max(self.indent, 0)
        if self.head:
            self.write_indent()
            self.write_comment(self.head)
            self.head = ""

    def foot_comment(self) -> None:
        if not self.foot:
            return
        self.write_indent()
        self.write_comment(self.foot)
        self.foot = ""
        self.foot_indent = max(self.indent, 0)

    # -- the state machine ----------------------------------------------------------------

    def run(self) -> str:
        while self.position < len(self.events):
            event = self.events[self.position]
            self.analyze(event)
            getattr(self, "state_" + self.state)(event)
            self.position += 1
        return "".join(self.out)

    def analyze(self, event: _Event) -> None:
        self.tag_handle = self.tag_suffix = ""
        if event.head:
            self.head = event.head
        if event.foot:
            self.foot = event.foot
        if event.tail:
            self.tail = event.tail
        if event.kind == "scalar":
            if event.tag.startswith(_YAML_TAGS):
                self.tag_handle, self.tag_suffix = "!!", event.tag[len(_YAML_TAGS) :]
            else:
                self.tag_suffix = event.tag
            self.analysis = _analyze(event.value)

    def push_indent(self, *, flow: bool) -> None:
        self.indents.append(self.indent)
        if self.indent < 0:
            self.indent = _INDENT if flow else 0
        elif self.states[-1] == "block_sequence_item":
            self.indent += 2  # inside a sequence, just past the "- "
        else:
            self.indent = _INDENT * ((self.indent + _INDENT) // _INDENT)

    def pop_indent(self) -> None:
        self.indent = self.indents.pop()

    def pop_state(self) -> None:
        self.state = self.states.pop()

    def state_first_document(self, event: _Event) -> None:
        self.document_start(event, first=True)

    def state_document(self, event: _Event) -> None:
        self.document_start(event, first=False)

    def document_start(self, event: _Event, *, first: bool) -> None:
        if event.kind != "document_start":
            # The end of the stream; go-yaml v3's encoder has cleared "open ended", so no "...".
            self.state = "end"
            return
        if not first:
            self.write_indent()
            self.write_indicator("---", True, False, False)
            self.write_indent()
        if self.head:
            self.head_comment()
            self.put_break()
        self.state = "document_content"

    def state_document_content(self, event: _Event) -> None:
        self.states.append("document_end")
        self.head_comment()
        self.emit_node(event, simple_key=False)
        self.foot_comment()

    def state_document_end(self, event: _Event) -> None:
        del event
        self.foot_indent = 0  # go-yaml v3 forces a separation before a document's foot
        self.foot_comment()
        self.foot_indent = -1
        self.write_indent()
        self.state = "document"

    def emit_node(self, event: _Event, *, simple_key: bool) -> None:
        self.simple_key_context = simple_key
        if event.kind == "scalar":
            self.emit_scalar(event)
            return
        kind = event.kind.removesuffix("_start")
        nxt = self.position + 1
        empty = nxt < len(self.events) and self.events[nxt].kind == kind + "_end"
        self.state = ("flow_" if empty else "block_") + kind + "_first"

    def emit_scalar(self, event: _Event) -> None:
        style = _select_style(
            event.style, self.analysis, event.value, simple_key=self.simple_key_context, flow=False
        )
        if self.tag_handle or self.tag_suffix:
            if not self.whitespace:
                self.put(" ")
            self.put(self.tag_handle + "".join(_tag_char(c) for c in self.tag_suffix))
            self.whitespace = self.indention = False
        self.push_indent(flow=True)
        self.write_scalar(event.value, style)
        self.pop_indent()
        self.pop_state()

    # -- empty collections ----------------------------------------------------------------

    def state_flow_sequence_first(self, event: _Event) -> None:
        del event  # the end event; the start was taken by emit_node
        self.write_indicator("[", True, True, False)
        # go-yaml v3 leaves a head comment of an empty sequence pending here.
        self.write_indicator("]", False, False, False)
        self.foot_comment()
        self.pop_state()

    def state_flow_mapping_first(self, event: _Event) -> None:
        del event
        self.write_indicator("{", True, True, False)
        self.push_indent(flow=True)
        self.head_comment()
        self.pop_indent()
        self.write_indicator("}", False, False, False)
        self.foot_comment()
        self.pop_state()

    # -- block sequences ------------------------------------------------------------------

    def state_block_sequence_first(self, event: _Event) -> None:
        self.push_indent(flow=False)
        self.state_block_sequence_item(event)

    def state_block_sequence_item(self, event: _Event) -> None:
        if event.kind == "sequence_end":
            self.pop_indent()
            self.pop_state()
            return
        self.head_comment()
        self.write_indent()
        self.write_indicator("-", True, False, True)
        self.states.append("block_sequence_item")
        self.emit_node(event, simple_key=False)
        self.foot_comment()

    # -- block mappings -------------------------------------------------------------------

    def state_block_mapping_first(self, event: _Event) -> None:
        self.push_indent(flow=False)
        self.state_block_mapping_key(event)

    def state_block_mapping_key(self, event: _Event) -> None:
        self.head_comment()
        if event.kind == "mapping_end":
            self.pop_indent()
            self.pop_state()
            return
        self.write_indent()
        if self.simple_key(event):
            self.states.append("block_mapping_simple_value")
            self.emit_node(event, simple_key=True)
            return
        self.write_indicator("?", True, False, True)
        self.states.append("block_mapping_value")
        self.emit_node(event, simple_key=False)

    def simple_key(self, event: _Event) -> bool:
        if event.kind != "scalar" or self.analysis.multiline:
            return False
        size = len(self.tag_handle.encode()) + len(self.tag_suffix.encode())
        return size + len(event.value.encode("utf-8", "surrogateescape")) <= 128

    def state_block_mapping_simple_value(self, event: _Event) -> None:
        self.write_indicator(":", False, False, False)
        self.block_mapping_value(event)

    def state_block_mapping_value(self, event: _Event) -> None:
        self.write_indent()
        self.write_indicator(":", True, False, True)
        self.block_mapping_value(event)

    def block_mapping_value(self, event: _Event) -> None:
        self.states.append("block_mapping_key")
        self.emit_node(event, simple_key=False)
        self.foot_comment()

    # -- scalars --------------------------------------------------------------------------

    def write_scalar(self, value: str, style: str) -> None:
        if style == "plain":
            # Never multi-line: text with a line break is never plain.
            if value and not self.whitespace:
                self.put(" ")
            self.put(value)
            if value:
                self.whitespace = False
            self.indention = False
        elif style == "single":
            self.write_single_quoted(value)
        elif style == "double":
            self.write_indicator('"', True, False, False)
            self.put(_double_quoted(value))
            self.write_indicator('"', False, False, False)
            self.whitespace = self.indention = False
        else:
            self.write_literal(value)

    def write_single_quoted(self, value: str) -> None:
        self.write_indicator("'", True, False, False)
        breaks = False
        for char in value:
            if char in _BREAKS:
                if not breaks and char == "\n":
                    self.put_break()
                self.write_break(char)
                breaks = True
                continue
            if breaks:
                self.write_indent()
            self.put("''" if char == "'" else char)
            self.indention = breaks = False
        self.write_indicator("'", False, False, False)
        self.whitespace = self.indention = False

    def write_literal(self, value: str) -> None:
        self.write_indicator("|", True, False, False)
        if value[:1] == " " or value[:1] in _BREAKS:
            self.write_indicator(str(_INDENT), False, False, False)
        # Chomping: strip without a final line break, keep with more than one.
        if not value or value[-1] not in _BREAKS:
            self.write_indicator("-", False, False, False)
        elif len(value) == 1 or value[-2] in _BREAKS:
            self.write_indicator("+", False, False, False)
        self.put_break()
        self.whitespace = True
        breaks = True
        for char in value:
            if char in _BREAKS:
                self.write_break(char)
                breaks = True
                continue
            if breaks:
                self.write_indent()
            self.put(char)
            self.indention = False
            breaks = False


def _tag_char(char: str) -> str:
    if char.isascii() and (char.isalnum() or char in "-_" or char in _TAG_SAFE):
        return char
    return "".join(f"%{byte:02X}" for byte in char.encode())


def _double_quoted(value: str) -> str:
    # go-yaml v3 escapes every character when the text starts with a byte order mark.
    bom = value.startswith("\ufeff")
    out = []
    for char in value:
        code = ord(char)
        if bom or not _printable(char) or char in _BREAKS or char in '"\\':
            escape = _DOUBLE_ESCAPES.get(code)
            if escape is not None:
                out.append("\\" + escape)
            elif code <= 0xFF:
                out.append(f"\\x{code:02X}")
            elif code <= 0xFFFF:
                out.append(f"\\u{code:04X}")
            else:
                out.append(f"\\U{code:08X}")
        else:
            out.append(char)
    return "".join(out)


def emit_plain(branches: list[Branch]) -> bytes:
    events: list[_Event] = []
    for branch in branches:
        node = _mapping_node(branch, 0)
        events.append(_Event("document_start"))
        _events(node, events)
        events.append(_Event("document_end"))
    events.append(_Event("stream_end"))
    return _Emitter(events).run().encode("utf-8", "surrogateescape")
