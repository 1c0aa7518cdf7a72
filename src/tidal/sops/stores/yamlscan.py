"""A YAML scanner that keeps comments where go-yaml v3 (the YAML library of SOPS) keeps them.

PyYAML's pure-Python scanner produces the tokens (its token stream is libyaml's, which is also
go-yaml v3's); this subclass replaces the parts that skip whitespace and comments with go-yaml
v3's behaviour, which records every comment with:

- a kind: a *line* comment ends the line of the token before it; a *head* comment is a block of
  comment lines above the next token; a *foot* comment is a block that closes the content above
  it: it starts right after that content (no blank line) or is less indented than the current
  block;
- the position of the token it belongs to: the parser hands a comment to the first token at or
  after that position (see `tidal.sops.stores.yamlparse`).

It also places the BLOCK-END tokens before foot comments of the blocks they close, and reads
two tokens ahead, both as go-yaml v3 does, because which node a comment lands on depends on it.
Tabs count as blanks where go-yaml v3 allows them (after an indicator, inside a plain scalar).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from yaml.reader import Reader
from yaml.scanner import Scanner, ScannerError
from yaml.tokens import (
    BlockEndToken,
    BlockEntryToken,
    BlockSequenceStartToken,
    FlowEntryToken,
    ScalarToken,
    Token,
    ValueToken,
)

from tidal.sops.stores.common import MAX_DEPTH, FormatError

# PyYAML's scanner methods carry no annotations; calls go through this untyped handle.
_BASE: Any = Scanner

BREAKS: Final = "\r\n\x85\u2028\u2029"
_BREAKS_OR_END: Final = "\0" + BREAKS
_BLANKS_OR_BREAKS: Final = "\0 \t" + BREAKS
_BLANKS: Final = " \t"
# go-yaml v3 looks at most this far ahead over blanks for the next comment.
_PEEK_LIMIT: Final = 512
# What moves `forward` to a new line or skips a column; a run without any stays on its line.
_LINE_MOVES: Final = re.compile("[\ufeff" + BREAKS + "]")
_LINE_END: Final = re.compile(f"[{_BREAKS_OR_END}]")
_BLANK_RUN: Final = re.compile(f"[{_BLANKS}]*")
_SPACE_RUN: Final = re.compile(" *")
# Where a run of a plain scalar stops: a blank or break, or ':' before one (in a flow, also a
# flow indicator).
_PLAIN_STOP: Final = re.compile(f"[{_BLANKS_OR_BREAKS}]|:(?=[{_BLANKS_OR_BREAKS}])")
_FLOW_PLAIN_STOP: Final = re.compile(
    f"[{_BLANKS_OR_BREAKS}{re.escape(',?[]{}')}]|:(?=[{_BLANKS_OR_BREAKS}])"
)


@dataclass
class ScannedComment:
    """A comment block as go-yaml v3's scanner records it (marks reduced to what is used).

    Columns of `start_column` are counted from 1 for head and foot comments and from 0 for line
    comments, a quirk of go-yaml v3 that its block-end placement depends on.
    """

    token_index: int
    start_index: int
    start_line: int
    start_column: int
    scan_index: int = 0
    end_index: int = 0
    head: str = ""
    line: str = ""
    foot: str = ""

    def consume(self) -> None:
        """Forget the text and marks once the parser took it, as go-yaml v3 zeroes it."""
        self.head = self.line = self.foot = ""
        self.end_index = self.scan_index = self.token_index = 0
        self.start_column = 0


class _Mark:
    """A token position; only what the parser and error messages read."""

    __slots__ = ("column", "index", "line", "name")

    def __init__(self, index: int, line: int, column: int) -> None:
        self.name = "<sops>"
        self.index = index
        self.line = line
        self.column = column


class CommentScanner(Reader, Scanner):
    """Tokens of a YAML text plus its comments (`self.comments`, in text order)."""

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        self.comments: list[ScannedComment] = []
        self.comments_head = 0
        # Line breaks since the last character that was neither blank nor a break.
        self.newlines = 0
        # The last two tokens taken off the queue; with the queue they stand for go-yaml v3's
        # token list, whose last entries some comment rules look at.
        self.taken: list[Token] = []

    # -- reading characters --------------------------------------------------------------

    def peek(self, index: int = 0) -> str:
        try:
            char: str = self.buffer[self.pointer + index]
            return char
        except IndexError:
            return "\0"

    def run_length(self, run: re.Pattern[str]) -> int:
        """The length of the text `run` (which matches "") matches here."""
        pointer: int = self.pointer
        found = run.match(self.buffer, pointer)
        assert found is not None
        return found.end() - pointer

    def forward(self, length: int = 1) -> None:
        buffer = self.buffer
        chunk = buffer[self.pointer : self.pointer + length]
        if len(chunk) == length and _LINE_MOVES.search(chunk) is None:
            # Within one line: the marks move by the length.
            self.pointer += length
            self.index += length
            self.column += length
            if chunk.strip(_BLANKS):
                self.newlines = 0
            return
        for _ in range(length):
            char = buffer[self.pointer]
            self.pointer += 1
            self.index += 1
            nxt = buffer[self.pointer] if self.pointer < len(buffer) else "\0"
            if char in "\n\x85\u2028\u2029" or (char == "\r" and nxt != "\n"):
                self.line += 1
                self.column = 0
                self.newlines += 1
            elif char == "\r":
                pass  # the first half of CR LF: the LF counts the break
            else:
                if char not in _BLANKS:
                    self.newlines = 0
                if char != "\ufeff":
                    self.column += 1

    # -- the token queue -----------------------------------------------------------------

    def _recent(self) -> list[Token]:
        """The last tokens of go-yaml v3's list (taken ones included), oldest first."""
        tokens = self.tokens
        return tokens[-2:] if len(tokens) >= 2 else (self.taken + tokens)[-2:]

    def get_token(self) -> Any:
        token = _BASE.get_token(self)
        if token is not None:
            self.taken = [*self.taken[-1:], token]
        return token

    def head_token(self) -> Token:
        """The next token, left in the queue."""
        token: Token = _BASE.peek_token(self)
        return token

    def need_more_tokens(self) -> bool:
        # go-yaml v3 keeps three tokens queued so that comments after a token are read before
        # the parser assigns the comments of that token.
        if self.done:
            return False
        if len(self.tokens) < 3:
            return True
        self.stale_possible_simple_keys()
        return bool(_BASE.next_possible_simple_key(self) == self.tokens_taken)

    def fetch_more_tokens(self) -> None:
        scan_index = self.index
        self.scan_to_next_token()
        self.stale_possible_simple_keys()
        self._unroll(self.column, scan_index)
        char = self.peek()
        # The end of the stream, a directive and a document marker take no line comment.
        if (
            char == "\0"
            or (char == "%" and _BASE.check_directive(self))
            or (char == "-" and _BASE.check_document_start(self))
            or (char == "." and _BASE.check_document_end(self))
        ):
            _BASE.fetch_more_tokens(self)
            return
        # A comment after a ':' (or ',' in a flow) belongs to the token before the indicator.
        comment_index = self.index
        recent = self._recent()
        if recent and ((not self.flow_level and char == ":") or (self.flow_level and char == ",")):
            comment_index = recent[-1].start_mark.index
        if self.flow_level >= MAX_DEPTH or len(self.indents) >= MAX_DEPTH:
            raise FormatError(f"yaml: exceeded max depth of {MAX_DEPTH}")
        _BASE.fetch_more_tokens(self)
        recent = self._recent()
        # A sequence indicator alone takes no line comment: it heads what follows.
        if not (recent and isinstance(recent[-1], BlockEntryToken)):
            self._scan_line_comment(comment_index)

    # -- indentation ---------------------------------------------------------------------

    def unwind_indent(self, column: int) -> None:
        self._unroll(column, self.index)

    def _unroll(self, column: int, scan_index: int) -> None:
        if self.flow_level:
            return
        block_index = scan_index - 1
        while self.indent > column:
            # The BLOCK-END goes before foot comments written at the indentation of the block
            # being closed, so that they end up inside it.
            stop_index = block_index
            for comment in reversed(self.comments):
                if comment.end_index < stop_index:
                    break
                if comment.start_column == self.indent + 1:
                    block_index = comment.start_index
                stop_index = comment.scan_index
            mark = _Mark(block_index, self.line, self.column)
            self.tokens.append(BlockEndToken(mark, mark))
            self.indent = self.indents.pop()

    # -- whitespace and comments ---------------------------------------------------------

    def scan_to_next_token(self) -> None:
        # go-yaml v3 hands each comment scan the position where this skip began.
        scan_index, scan_line = self.index, self.line
        while True:
            if self.column == 0 and self.peek() == "\ufeff":
                self.forward()
            # Tabs are blanks here only where no simple key may start.
            blanks = _BLANK_RUN if self.flow_level or not self.allow_simple_key else _SPACE_RUN
            length = self.run_length(blanks)
            if length:
                self.forward(length)
            self._line_comment_to_head()
            if self.peek() == "#":
                self._scan_comments(scan_index, scan_line)
            if self.peek() in BREAKS:
                _BASE.scan_line_break(self)
                if not self.flow_level:
                    self.allow_simple_key = True
            else:
                return

    def _line_comment_to_head(self) -> None:
        # "- # comment" followed by content on the next lines: the comment heads that content.
        recent = self._recent()
        if not self.comments or len(recent) < 2:
            return
        first, second = recent
        comment = self.comments[-1]
        if (
            isinstance(first, BlockSequenceStartToken)
            and isinstance(second, BlockEntryToken)
            and comment.line
            and self.peek() not in BREAKS
        ):
            comment.head, comment.line = comment.line, ""
            if comment.start_line == self.line - 1:
                comment.token_index = self.index

    def _read_comment(self, offset: int) -> tuple[int, int, int, str]:
        """Skip `offset` characters, then read a comment to the end of its line."""
        self.forward(offset)
        start = (self.index, self.line, self.column)
        end = _LINE_END.search(self.buffer, self.pointer)
        length = (end.start() if end else len(self.buffer)) - self.pointer
        text = self.prefix(length)
        self.forward(length)
        return (*start, text)

    def _scan_line_comment(self, token_index: int) -> None:
        if self.newlines > 0:
            return
        offset = 0
        while offset < _PEEK_LIMIT and self.peek(offset) in _BLANKS:
            offset += 1
        if offset >= _PEEK_LIMIT or self.peek(offset) != "#":
            return
        index, line, column, text = self._read_comment(offset)
        self.comments.append(ScannedComment(token_index, index, line, column, line=text))

    def scan_block_scalar_ignored_line(self, start_mark: Any) -> None:
        # The header line of a block scalar may end with a line comment.
        while self.peek() in _BLANKS:
            self.forward()
        if self.peek() == "#":
            self._scan_line_comment(start_mark.index)
        _BASE.scan_block_scalar_ignored_line(self, start_mark)

    def _scan_comments(self, scan_index: int, scan_line: int) -> None:
        """go-yaml v3's scan of a run of comment lines into foot and head comments."""
        recent = self._recent()
        token = recent[-1]
        if isinstance(token, FlowEntryToken) and len(recent) > 1:
            token = recent[-2]
        token_index = token.start_mark.index
        start_index = start_line = start_column = 0
        next_indent = max(self.indent, 0)
        recent_empty = False
        first_empty = self.newlines <= 1
        line = self.line
        column = self.column
        text = ""
        foot_line = -1
        if scan_line > 0:
            foot_line = self.line - self.newlines + 1
            if self.newlines == 0 and self.column > 1:
                foot_line += 1

        def foot(end: int, end_line: int) -> None:
            nonlocal scan_index, scan_line, token_index, text
            self.comments.append(
                ScannedComment(
                    token_index,
                    start_index,
                    start_line,
                    start_column,
                    scan_index=scan_index,
                    end_index=end,
                    foot=text,
                )
            )
            scan_index, scan_line, token_index, text = end, end_line, end, ""

        peek = 0
        while peek < _PEEK_LIMIT:
            column += 1
            char = self.peek(peek)
            if char in _BLANKS:
                peek += 1
                continue
            close_flow = self.flow_level > 0 and char in "]}"
            if close_flow or char in _BREAKS_OR_END:
                if close_flow or not recent_empty:
                    after_content = start_line == foot_line and not isinstance(token, ValueToken)
                    dedented = start_column - 1 < next_indent
                    if close_flow or (first_empty and (after_content or dedented)):
                        # The first empty line after a comment right below content (or a
                        # dedented comment) ends a foot comment of that content.
                        if text:
                            if dedented:
                                token_index = start_index
                            foot(self.index + peek, line)
                    elif text and char != "\0":
                        text += "\n"
                if char not in BREAKS:
                    break
                first_empty = False
                recent_empty = True
                column = 0
                line += 1
                peek += 1
                continue
            if text and (close_flow or (column - 1 < next_indent and column != start_column)):
                # A comment less indented than the block, unlike the one above it: what came
                # before is a foot of the preceding content.
                foot(self.index + peek, line)
            if char != "#":
                break
            if text:
                text += "\n"
            recent_empty = False
            index, _, _, body = self._read_comment(peek)
            if len(text) == 0:
                start_index, start_line, start_column = index, line, column
            text += body
            # go-yaml v3 resumes one character on, past the line break of the comment, still
            # counting from the comment's line.
            peek = 1
            column = 0
            line = self.line
            next_indent = max(self.indent, 0)
        if text:
            self.comments.append(
                ScannedComment(
                    start_index,
                    start_index,
                    start_line,
                    start_column,
                    scan_index=scan_index,
                    end_index=self.index + peek - 1,
                    head=text,
                )
            )

    # -- plain scalars, with go-yaml v3's rules ---------------------------------------------

    def scan_plain(self) -> ScalarToken:
        # Unlike PyYAML, go-yaml v3 ends a plain scalar at ':' only before a blank (so `{a:}`
        # holds the key "a:"), and counts tabs as blanks inside it.
        chunks: list[str] = []
        start_mark = end_mark = self.get_mark()
        indent = self.indent + 1
        spaces: list[str] | None = []
        while self.peek() != "#":
            stop = (_FLOW_PLAIN_STOP if self.flow_level else _PLAIN_STOP).search(
                self.buffer, self.pointer
            )
            length = (stop.start() if stop else len(self.buffer)) - self.pointer
            if length == 0:
                break
            self.allow_simple_key = False
            chunks.extend(spaces or [])
            chunks.append(self.prefix(length))
            self.forward(length)
            end_mark = self.get_mark()
            spaces = self.scan_plain_spaces(indent, start_mark)
            if not spaces or self.peek() == "#" or (not self.flow_level and self.column < indent):
                break
        return ScalarToken("".join(chunks), True, start_mark, end_mark)

    def scan_plain_spaces(self, indent: int, start_mark: Any) -> list[str] | None:
        length = self.run_length(_BLANK_RUN)
        whitespaces = self.prefix(length)
        self.forward(length)
        if self.peek() not in BREAKS:
            return [whitespaces] if whitespaces else []
        line_break = _BASE.scan_line_break(self)
        self.allow_simple_key = True
        if self._at_document_marker():
            return None
        breaks = []
        while self.peek() in _BLANKS + BREAKS:
            if self.peek() in _BLANKS:
                if self.peek() == "\t" and self.column < indent:
                    raise ScannerError(
                        "while scanning a plain scalar",
                        start_mark,
                        "found a tab character that violates indentation",
                        self.get_mark(),
                    )
                self.forward()
                continue
            breaks.append(_BASE.scan_line_break(self))
            if self._at_document_marker():
                return None
        chunks = []
        if line_break != "\n":
            chunks.append(line_break)
        elif not breaks:
            chunks.append(" ")
        chunks.extend(breaks)
        return chunks

    def _at_document_marker(self) -> bool:
        return self.prefix(3) in ("---", "...") and self.peek(3) in _BLANKS_OR_BREAKS
