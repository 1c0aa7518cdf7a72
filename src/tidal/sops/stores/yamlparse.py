"""YAML documents as go-yaml v3 node trees, comments attached where go-yaml v3 attaches them.

go-yaml v3 moves the comments of its scanner onto events and then onto nodes in three steps,
each reproduced here in order because the result depends on all of them:

1. when the parser looks at a token, every comment recorded for a position up to that token is
   gathered into pending head, line and foot texts (a head comment never attaches to the end of
   a block: it waits for the next token);
2. some events take the pending texts: scalars, aliases, flow collection starts, the ends of
   block mappings and flow collections, and document ends; block collection starts only take a
   comment above a `-` entry (the "stem");
3. building nodes, a foot comment on a mapping key or value moves to the key before it, and the
   foot of a block mapping moves to its last key.

Node shapes (kind, tag, style, value, children) are go-yaml v3's `yaml.Node`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from yaml.error import MarkedYAMLError, YAMLError
from yaml.reader import ReaderError
from yaml.tokens import (
    AliasToken,
    AnchorToken,
    BlockEndToken,
    BlockEntryToken,
    BlockMappingStartToken,
    BlockSequenceStartToken,
    DirectiveToken,
    DocumentEndToken,
    DocumentStartToken,
    FlowEntryToken,
    FlowMappingEndToken,
    FlowMappingStartToken,
    FlowSequenceEndToken,
    FlowSequenceStartToken,
    KeyToken,
    ScalarToken,
    StreamEndToken,
    TagToken,
    Token,
    ValueToken,
)

from tidal.sops.stores.common import MAX_DEPTH, FormatError, depth_error
from tidal.sops.stores.yamlscan import CommentScanner

LONG_TAG_PREFIX: Final = "tag:yaml.org,2002:"
STR: Final = "!!str"
MERGE: Final = "!!merge"
_DEFAULT_HANDLES: Final = {"!": "!", "!!": LONG_TAG_PREFIX}


def short_tag(tag: str) -> str:
    return "!!" + tag[len(LONG_TAG_PREFIX) :] if tag.startswith(LONG_TAG_PREFIX) else tag


@dataclass(eq=False)
class Node:
    """A go-yaml v3 node. `style` is "" (plain), "'", '"', "|" or ">" for scalars."""

    kind: str  # document, mapping, sequence, scalar or alias
    line: int
    tag: str = ""
    value: str = ""
    style: str = ""
    tagged: bool = False
    flow: bool = False
    alias: Node | None = None
    head: str = ""
    line_comment: str = ""
    foot: str = ""
    content: list[Node] = field(default_factory=list)


@dataclass
class _Event:
    kind: str
    line: int
    anchor: str | None = None
    tag: str | None = None
    value: str = ""
    style: str = ""
    flow: bool = False
    head: str = ""
    line_comment: str = ""
    foot: str = ""


class _Parser:
    """go-yaml v3's parser state machine, as generators of events."""

    def __init__(self, scanner: CommentScanner) -> None:
        self.scanner = scanner
        self.head = ""
        self.line = ""
        self.foot = ""
        self.stem = ""
        self.handles = dict(_DEFAULT_HANDLES)
        # The token `peek` returned, until `skip` takes it: looking again changes nothing.
        self.token: Token | None = None

    # -- tokens and pending comments -----------------------------------------------------

    def peek(self) -> Token:
        if self.token is not None:
            return self.token
        token = self.scanner.head_token()
        comments = self.scanner.comments
        while self.scanner.comments_head < len(comments):
            comment = comments[self.scanner.comments_head]
            if token.start_mark.index < comment.token_index:
                break
            if comment.head:
                if isinstance(token, BlockEndToken):
                    break  # a head comment waits for a token it can head
                self.head = _join(self.head, comment.head)
            if comment.foot:
                self.foot = _join(self.foot, comment.foot)
            if comment.line:
                self.line = _join(self.line, comment.line)
            comment.consume()
            self.scanner.comments_head += 1
        self.token = token
        return token

    def skip(self) -> None:
        self.token = None
        self.scanner.get_token()

    def take(self, event: _Event) -> _Event:
        event.head, event.line_comment, event.foot = self.head, self.line, self.foot
        self.head = self.line = self.foot = self.stem = ""
        return event

    @staticmethod
    def error(problem: str, token: Token, context_line: int = 0) -> FormatError:
        # go-yaml v3 prints the context's line, or the problem's, without adding one for
        # parser errors (its lines count from 0 there).
        line = context_line or token.start_mark.line
        return FormatError(f"yaml: line {line}: {problem}" if line else f"yaml: {problem}")

    # -- documents ------------------------------------------------------------------------

    def events(self) -> Iterator[_Event]:
        self.peek()
        self.skip()  # STREAM-START
        implicit = True
        while True:
            token = self.peek()
            if not implicit:
                while isinstance(token, DocumentEndToken):
                    self.skip()
                    token = self.peek()
            line = token.start_mark.line + 1
            if implicit and not isinstance(
                token, DirectiveToken | DocumentStartToken | StreamEndToken
            ):
                self.handles = dict(_DEFAULT_HANDLES)
                yield _Event("document", line, head=self._document_head())
                yield from self.node(block=True, indentless=False, depth=0)
                yield from self.document_end()
            elif not isinstance(token, StreamEndToken):
                self.directives()
                token = self.peek()
                if not isinstance(token, DocumentStartToken):
                    raise self.error("did not find expected <document start>", token)
                yield _Event("document", line)
                self.skip()
                token = self.peek()
                if isinstance(
                    token,
                    DirectiveToken | DocumentStartToken | DocumentEndToken | StreamEndToken,
                ):
                    yield _Event("scalar", token.start_mark.line + 1)
                else:
                    yield from self.node(block=True, indentless=False, depth=0)
                yield from self.document_end()
            else:
                self.skip()
                return
            implicit = False

    def _document_head(self) -> str:
        # The comment above an implicit document, up to its last blank line, is the document's;
        # the rest stays pending for the first node.
        text = self.head
        for i in range(len(text) - 1, 0, -1):
            if text[i] != "\n":
                continue
            if i == len(text) - 1:
                self.head = text[i + 1 :]
                return text[:i]
            if text[i - 1] == "\n":
                self.head = text[i + 1 :]
                return text[: i - 1]
        return ""

    def directives(self) -> None:
        self.handles = dict(_DEFAULT_HANDLES)
        seen_version = False
        while isinstance(token := self.peek(), DirectiveToken):
            if token.name == "YAML":
                if seen_version:
                    raise self.error("found duplicate %YAML directive", token)
                seen_version = True
                if token.value != (1, 1):
                    raise self.error("found incompatible YAML document", token)
            elif token.name == "TAG":
                handle, prefix = token.value
                if handle in self.handles and handle not in _DEFAULT_HANDLES:
                    raise self.error("found duplicate %TAG directive", token)
                self.handles[handle] = prefix
            self.skip()

    def document_end(self) -> Iterator[_Event]:
        token = self.peek()
        line = token.start_mark.line + 1
        if isinstance(token, DocumentEndToken):
            self.skip()
        event = self.take(_Event("document_end", line))
        if event.head and not event.foot:
            event.foot, event.head = event.head, ""
        yield event

    # -- nodes ----------------------------------------------------------------------------

    def node(self, *, block: bool, indentless: bool, depth: int) -> Iterator[_Event]:
        if depth > MAX_DEPTH:
            raise depth_error()
        token = self.peek()
        line = token.start_mark.line + 1
        if isinstance(token, AliasToken):
            event = self.take(_Event("alias", line, value=token.value))
            self.skip()
            yield event
            return
        anchor, tag = self.properties()
        token = self.peek()
        if indentless and isinstance(token, BlockEntryToken):
            yield _Event("sequence", line, anchor=anchor, tag=tag)
            yield from self.indentless_sequence(depth)
            return
        if isinstance(token, ScalarToken):
            style = token.style or ""
            event = _Event("scalar", line, anchor=anchor, tag=tag, value=token.value, style=style)
            self.take(event)
            self.skip()
            yield event
            return
        if isinstance(token, FlowSequenceStartToken | FlowMappingStartToken):
            kind = "sequence" if isinstance(token, FlowSequenceStartToken) else "mapping"
            yield self.take(_Event(kind, line, anchor=anchor, tag=tag, flow=True))
            yield from (self.flow_sequence if kind == "sequence" else self.flow_mapping)(depth)
            return
        if block and isinstance(token, BlockSequenceStartToken | BlockMappingStartToken):
            kind = "sequence" if isinstance(token, BlockSequenceStartToken) else "mapping"
            event = _Event(kind, line, anchor=anchor, tag=tag, head=self.stem)
            self.stem = ""
            yield event
            yield from (self.block_sequence if kind == "sequence" else self.block_mapping)(depth)
            return
        if anchor is not None or tag is not None:
            yield _Event("scalar", line, anchor=anchor, tag=tag)
            return
        raise self.error("did not find expected node content", token, line - 1)

    def properties(self) -> tuple[str | None, str | None]:
        anchor: str | None = None
        tag_token: Any = None
        token = self.peek()
        for _ in range(2):
            if isinstance(token, AnchorToken) and anchor is None:
                anchor = token.value
            elif isinstance(token, TagToken) and tag_token is None:
                tag_token = token
            else:
                break
            self.skip()
            token = self.peek()
        if tag_token is None:
            return anchor, None
        handle, suffix = tag_token.value
        if handle is None:
            return anchor, suffix
        if handle not in self.handles:
            raise self.error("found undefined tag handle", tag_token)
        return anchor, self.handles[handle] + suffix

    def split_stem(self, stem_length: int) -> None:
        # A comment above `- ` whose entry is a block collection belongs to that collection.
        if stem_length == 0:
            return
        if not isinstance(self.peek(), BlockSequenceStartToken | BlockMappingStartToken):
            return
        self.stem = self.head[:stem_length]
        self.head = self.head[stem_length + 1 :]

    def block_sequence(self, depth: int) -> Iterator[_Event]:
        start = self.peek().start_mark.line
        self.skip()
        while True:
            token = self.peek()
            if isinstance(token, BlockEntryToken):
                prior = len(self.head)
                self.skip()
                self.split_stem(prior)
                token = self.peek()
                if not isinstance(token, BlockEntryToken | BlockEndToken):
                    yield from self.node(block=True, indentless=False, depth=depth + 1)
                else:
                    yield _Event("scalar", token.start_mark.line + 1)
            elif isinstance(token, BlockEndToken):
                yield _Event("sequence_end", token.start_mark.line + 1)
                self.skip()
                return
            else:
                raise self.error("did not find expected '-' indicator", token, start)

    def indentless_sequence(self, depth: int) -> Iterator[_Event]:
        while True:
            token = self.peek()
            if not isinstance(token, BlockEntryToken):
                yield _Event("sequence_end", token.start_mark.line + 1)
                return
            prior = len(self.head)
            self.skip()
            self.split_stem(prior)
            token = self.peek()
            if not isinstance(token, BlockEntryToken | KeyToken | ValueToken | BlockEndToken):
                yield from self.node(block=True, indentless=False, depth=depth + 1)
            else:
                yield _Event("scalar", token.start_mark.line + 1)

    def block_mapping(self, depth: int) -> Iterator[_Event]:
        start = self.peek().start_mark.line
        self.skip()
        while True:
            token = self.peek()
            if isinstance(token, BlockEndToken):
                event = self.take(_Event("mapping_end", token.start_mark.line + 1))
                self.skip()
                yield event
                return
            if not isinstance(token, KeyToken):
                raise self.error("did not find expected key", token, start)
            yield from self._entry_part(depth)
            token = self.peek()
            if isinstance(token, ValueToken):
                yield from self._entry_part(depth)
            else:
                yield _Event("scalar", token.start_mark.line + 1)

    def _entry_part(self, depth: int) -> Iterator[_Event]:
        """A KEY or VALUE indicator of a block mapping and the node after it (maybe empty)."""
        self.skip()
        token = self.peek()
        if isinstance(token, KeyToken | ValueToken | BlockEndToken):
            yield _Event("scalar", token.start_mark.line + 1)
        else:
            yield from self.node(block=True, indentless=True, depth=depth + 1)

    def flow_sequence(self, depth: int) -> Iterator[_Event]:
        start = self.peek().start_mark.line
        self.skip()
        first = True
        while True:
            token = self.peek()
            if not isinstance(token, FlowSequenceEndToken):
                if not first:
                    if not isinstance(token, FlowEntryToken):
                        raise self.error("did not find expected ',' or ']'", token, start)
                    self.skip()
                    token = self.peek()
                first = False
                if isinstance(token, KeyToken):
                    yield _Event("mapping", token.start_mark.line + 1, flow=True)
                    self.skip()
                    yield from self.flow_pair(depth)
                    continue
                if not isinstance(token, FlowSequenceEndToken):
                    yield from self.node(block=False, indentless=False, depth=depth + 1)
                    continue
            event = self.take(_Event("sequence_end", token.start_mark.line + 1))
            self.skip()
            yield event
            return

    def flow_pair(self, depth: int) -> Iterator[_Event]:
        """The single-pair mapping `[a: b]` inside a flow sequence."""
        token = self.peek()
        if isinstance(token, ValueToken | FlowEntryToken | FlowSequenceEndToken):
            self.skip()  # go-yaml v3 (libyaml) drops this token here
            yield _Event("scalar", token.start_mark.line + 1)
        else:
            yield from self.node(block=False, indentless=False, depth=depth + 1)
        token = self.peek()
        if isinstance(token, ValueToken):
            self.skip()
            token = self.peek()
            if not isinstance(token, FlowEntryToken | FlowSequenceEndToken):
                yield from self.node(block=False, indentless=False, depth=depth + 1)
                yield _Event("mapping_end", self.peek().start_mark.line + 1)
                return
        yield _Event("scalar", token.start_mark.line + 1)
        yield _Event("mapping_end", self.peek().start_mark.line + 1)

    def flow_mapping(self, depth: int) -> Iterator[_Event]:
        start = self.peek().start_mark.line
        self.skip()
        first = True
        while True:
            token = self.peek()
            if not isinstance(token, FlowMappingEndToken):
                if not first:
                    if not isinstance(token, FlowEntryToken):
                        raise self.error("did not find expected ',' or '}'", token, start)
                    self.skip()
                    token = self.peek()
                first = False
                if isinstance(token, KeyToken):
                    self.skip()
                    token = self.peek()
                    if isinstance(token, ValueToken | FlowEntryToken | FlowMappingEndToken):
                        yield _Event("scalar", token.start_mark.line + 1)
                    else:
                        yield from self.node(block=False, indentless=False, depth=depth + 1)
                    yield from self.flow_value(depth)
                    continue
                if not isinstance(token, FlowMappingEndToken):
                    yield from self.node(block=False, indentless=False, depth=depth + 1)
                    yield _Event("scalar", self.peek().start_mark.line + 1)
                    continue
            event = self.take(_Event("mapping_end", token.start_mark.line + 1))
            self.skip()
            yield event
            return

    def flow_value(self, depth: int) -> Iterator[_Event]:
        token = self.peek()
        if isinstance(token, ValueToken):
            self.skip()
            token = self.peek()
            if not isinstance(token, FlowEntryToken | FlowMappingEndToken):
                yield from self.node(block=False, indentless=False, depth=depth + 1)
                return
        yield _Event("scalar", token.start_mark.line + 1)


def _join(pending: str, text: str) -> str:
    return pending + "\n" + text if pending else text


class _Builder:
    """go-yaml v3's decoder parser: nodes from events, with its comment moves."""

    def __init__(self, events: Iterator[_Event]) -> None:
        self.events = events
        self.current: _Event | None = None
        self.anchors: dict[str, Node] = {}

    def peek(self) -> _Event | None:
        if self.current is None:
            self.current = next(self.events, None)
        return self.current

    def next(self) -> _Event:
        event = self.peek()
        assert event is not None
        self.current = None
        return event

    def document(self) -> Node | None:
        """The next document, or None at the end of the stream."""
        event = self.peek()
        if event is None:
            return None
        self.next()
        doc = _node(event, "document")
        doc.content.append(self.build())
        end = self.next()
        doc.foot = end.foot
        return doc

    def build(self) -> Node:
        event = self.next()
        if event.kind == "alias":
            node = _node(event, "alias", value=event.value)
            node.alias = self.anchors.get(event.value)
            if node.alias is None:
                raise FormatError(f"yaml: unknown anchor '{event.value}' referenced")
            return node
        if event.kind == "scalar":
            default = STR if event.style else (MERGE if event.value == "<<" else "")
            node = _node(event, "scalar", value=event.value, default=default)
            node.style = event.style
            self._anchor(node, event)
            return node
        node = _node(event, event.kind)
        node.flow = event.flow
        self._anchor(node, event)
        if event.kind == "sequence":
            while (nxt := self.peek()) is not None and nxt.kind != "sequence_end":
                node.content.append(self.build())
            end = self.next()
            node.line_comment, node.foot = end.line_comment, end.foot
            return node
        while (nxt := self.peek()) is not None and nxt.kind != "mapping_end":
            key = self.build()
            node.content.append(key)
            if not node.flow and key.foot and len(node.content) > 2:
                # A foot comment read with a key closes the value before it.
                node.content[-3].foot, key.foot = key.foot, ""
            value = self.build()
            node.content.append(value)
            if not key.foot and value.foot:
                key.foot, value.foot = value.foot, ""
        end = self.next()
        node.line_comment, node.foot = end.line_comment, end.foot
        if not node.flow and node.foot and len(node.content) > 1:
            node.content[-2].foot, node.foot = node.foot, ""
        return node

    def _anchor(self, node: Node, event: _Event) -> None:
        if event.anchor is not None:
            self.anchors[event.anchor] = node


def _node(event: _Event, kind: str, *, value: str = "", default: str = "") -> Node:
    node = Node(kind, event.line, value=value)
    if event.tag is not None and event.tag != "!":
        node.tag, node.tagged = short_tag(event.tag), True
    elif default:
        node.tag = default
    node.head, node.line_comment, node.foot = event.head, event.line_comment, event.foot
    return node


class DocumentReader:
    """The documents of a YAML text, one at a time, as go-yaml v3's Decoder yields them."""

    def __init__(self, text: str) -> None:
        if text.startswith("\ufeff"):
            text = text[1:]
        try:
            scanner = CommentScanner(text or "\n")
        except ReaderError:
            # go-yaml v3's words; PyYAML's would name the character.
            raise FormatError("yaml: control characters are not allowed") from None
        self._builder = _Builder(_Parser(scanner).events())

    def next_document(self) -> Node | None:
        try:
            return self._builder.document()
        except MarkedYAMLError as exc:
            raise _yaml_error(exc) from None
        except YAMLError as exc:
            raise FormatError(f"yaml: {exc}") from None
        except RecursionError:
            raise depth_error() from None


# PyYAML's scanner words some problems differently from go-yaml v3; the common ones in
# go-yaml v3's words (a problem that names a character keeps PyYAML's text).
_SCANNER_PROBLEMS: Final = {
    "mapping values are not allowed here": "mapping values are not allowed in this context",
    "mapping keys are not allowed here": "mapping keys are not allowed in this context",
    "sequence entries are not allowed here": (
        "block sequence entries are not allowed in this context"
    ),
    "found unexpected document separator": "found unexpected document indicator",
    "expected a comment or a line break": "did not find expected comment or line break",
    "found character": "found character that cannot start any token",
    "found unknown escape character": "found unknown escape character",
    "expected indentation indicator in the range 1-9": (
        "found an indentation indicator equal to 0"
    ),
}


def _yaml_error(exc: MarkedYAMLError) -> FormatError:
    # go-yaml v3 names the context's line if it has one, else the problem's, counted from 1.
    line = 0
    for mark in (exc.context_mark, exc.problem_mark):
        if mark is not None and mark.line:
            line = mark.line + 1
            break
    problem = exc.problem or exc.context or "unknown problem parsing YAML content"
    for prefix, wording in _SCANNER_PROBLEMS.items():
        if problem.startswith(prefix):
            problem = wording
            break
    where = f"line {line}: " if line else ""
    return FormatError(f"yaml: {where}{problem}")


def duplicate_key_errors(mapping: Node) -> list[str]:
    """go-yaml v3's complaints about keys a mapping repeats (same kind and text), in its order:
    for each key, every later one equal to it."""
    keys = mapping.content[0::2]
    seen: dict[tuple[str, str], list[int]] = {}
    pairs = []
    for j, key in enumerate(keys):
        earlier = seen.setdefault((key.kind, key.value), [])
        pairs += [(i, j) for i in earlier]
        earlier.append(j)
    return [
        f"line {keys[j].line}: mapping key {_go_quote(keys[i].value)} already defined at line"
        f" {keys[i].line}"
        for i, j in sorted(pairs)
    ]


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
