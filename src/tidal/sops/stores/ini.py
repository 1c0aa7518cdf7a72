"""INI files as SOPS 3.11's INI store reads and writes them, which is through gopkg.in/ini.v1
(v1.67, default options but non-unique sections allowed).

Reading: a document is one branch of sections, `DEFAULT` always first; a section's comment
(the `#`/`;` lines above its header) is its first item, a key's comment (the lines above it and
an inline one) follows the key. Values lose inline comments and surrounding quotes, `\\` at the
end of a line continues it, and `\"\"\"` or backquotes quote across lines.

Writing: keys aligned on `=` within a section, a blank line between sections, the comment kept
by a key (the last one after it in the tree) written above it, and values quoted when they hold
a line break, a backquote, `#`/`;` or outer spaces. The metadata is the `[sops]` section,
flattened (`tidal.sops.stores.flatten`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

from tidal.sops.model import Branch, Comment, Document, Item, is_branch
from tidal.sops.stores.common import FormatError, check_size
from tidal.sops.stores.flatten import metadata_from_flat
from tidal.sops.stores.scalars import value_to_string

# unicode.IsSpace, which Go's TrimSpace and TrimLeftFunc use.
_GO_SPACE: Final = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
_SPACE: Final = _GO_SPACE + "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
_DEFAULT: Final = "DEFAULT"
_DELIMITERS: Final = "=:"


def _strip(text: str) -> str:
    return text.strip(_SPACE)


def _first_of(text: str, chars: str) -> int:
    """Where the first of `chars` is in `text`, or -1."""
    return min((i for i in map(text.find, chars) if i >= 0), default=-1)


@dataclass
class _Key:
    name: str
    value: str
    comment: str = ""


@dataclass
class _Section:
    name: str
    comment: str = ""
    keys: dict[str, _Key] = field(default_factory=dict)


class _Parser:
    """go-ini's parser, line by line, over the text with its line breaks kept."""

    def __init__(self, text: str) -> None:
        # go-ini reads up to each "\n" (keeping it); "\r" and other breaks stay in the line.
        self.lines = re.split(r"(?<=\n)", text) if text else []
        if self.lines and self.lines[-1] == "":
            self.lines.pop()
        self.index = 0
        self.comment = ""

    def next_line(self) -> str | None:
        if self.index >= len(self.lines):
            return None
        line = self.lines[self.index]
        self.index += 1
        return line

    def parse(self) -> list[_Section]:
        section = _Section(_DEFAULT)
        sections = [section]
        auto = 1  # go-ini names the keys written "-" #1, #2... in each section
        while (raw := self.next_line()) is not None:
            line = raw.lstrip(_SPACE)
            if not line:
                continue
            if line[0] in "#;":
                self.comment += line
                continue
            if line[0] == "[":
                close = line.rfind("]")
                if close == -1:
                    raise FormatError("unclosed section")
                name = line[1:close]
                if not name:
                    raise FormatError("empty section name")
                section = _Section(name)
                sections.append(section)
                inline = _inline_comment(line[close + 1 :])
                if inline is not None:
                    self.comment += inline
                section.comment = _strip(self.comment)
                self.comment = ""
                auto = 1
                continue
            name, offset = _key_name(line)
            if name == "-":
                name, auto = f"#{auto}", auto + 1
            value = self.value(line[offset:])
            key = section.keys.get(name)
            if key is None:
                key = section.keys[name] = _Key(name, value)
            key.value = value
            key.comment = _strip(self.comment)
            self.comment = ""
        return sections

    def value(self, text: str) -> str:
        line = text.lstrip(_SPACE)
        if not line:
            return ""
        quote = '"""' if len(line) > 3 and line.startswith('"""') else "`" if line[0] == "`" else ""
        if quote:
            end = line.rfind(quote, len(quote))
            if end == -1:
                return self.multiline(line[len(quote) :], quote)
            return line[len(quote) : end]
        line = _strip(line)
        if line.endswith("\\"):
            return self.continuation(line[:-1])
        cut = _first_of(line, "#;")
        if cut >= 0:
            self.comment += line[cut:]
            line = _strip(line[:cut])
        for mark in ("'", '"'):
            if len(line) >= 2 and line[0] == mark == line[-1] and mark not in line[1:-1]:
                return line[1:-1]
        return line

    def multiline(self, value: str, quote: str) -> str:
        while True:
            nxt = self.next_line()
            if nxt is None:
                raise FormatError("missing closing key quote")
            end = nxt.rfind(quote)
            if end >= 0:
                inline = _inline_comment(nxt[end:])
                if inline is not None:
                    self.comment += _strip(inline)
                return value + nxt[:end]
            value += nxt
            if self.index >= len(self.lines) and not nxt.endswith("\n"):
                raise FormatError("missing closing key quote")

    def continuation(self, value: str) -> str:
        while True:
            nxt = self.next_line()
            if nxt is None:
                return value
            line = _strip(nxt)
            if not line:
                return value
            value += line
            if not value.endswith("\\"):
                return value
            value = value[:-1]


def _inline_comment(text: str) -> str | None:
    cut = _first_of(text, "#;")
    return text[cut:] if cut >= 0 else None


def _key_name(line: str) -> tuple[str, int]:
    quote = ""
    if line[0] == '"':
        quote = '"""' if len(line) > 6 and line.startswith('"""') else '"'
    elif line[0] == "`":
        quote = "`"
    if quote:
        end = line.find(quote, len(quote))
        if end == -1:
            raise FormatError("missing closing key quote")
        rest = line[end + len(quote) :]
        cut = _first_of(rest, _DELIMITERS)
        if cut < 0:
            raise FormatError("key-value delimiter not found")
        return _strip(line[len(quote) : end]), end + cut + len(quote) + 1
    cut = _first_of(line, _DELIMITERS)
    if cut < 0:
        # go-ini prints the line, which may be a secret: only the problem is named.
        raise FormatError("key-value delimiter not found")
    if cut == 0:
        raise FormatError("empty key name")
    return _strip(line[:cut]), cut + 1


def _strip_comment_char(comment: str) -> str:
    if comment.startswith(";"):
        return comment.lstrip("; ")
    if comment.startswith("#"):
        return comment.lstrip("# ")
    return comment


def _sections(data: bytes) -> list[_Section]:
    check_size(data)
    text = data.decode("utf-8", "surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    return _Parser(text).parse()


def _branch(sections: list[_Section]) -> Branch:
    branch = Branch()
    for section in sections:
        items = Branch()
        if section.comment:
            items.append(Item(Comment(_strip_comment_char(section.comment)), None))
        for key in section.keys.values():
            items.append(Item(key.name, key.value))
            if key.comment:
                items.append(Item(Comment(_strip_comment_char(key.comment)), None))
        branch.append(Item(section.name, items))
    return branch


def load_plain(data: bytes) -> list[Branch]:
    try:
        return [_branch(_sections(data))]
    except FormatError as exc:
        raise FormatError(f"Could not unmarshal input data: {exc}") from None


def load_encrypted(data: bytes) -> Document:
    sections = _sections(data)
    found = next((s for s in sections if s.name == "sops"), None)
    if found is None:
        raise FormatError("sops metadata not found")
    flat = {key.name: key.value for key in found.keys.values()}
    metadata = metadata_from_flat(flat)
    return Document([_branch([s for s in sections if s.name != "sops"])], metadata)


# ---------------------------------------------------------------------------------------------
# Writing


def _go_value_text(value: Any) -> str:
    """fmt's %v of a nested value (SOPS writes one in a section as text)."""
    if is_branch(value):
        parts = [f"{{{_go_value_text(i.key)} {_go_value_text(i.value)}}}" for i in value]
        return "[" + " ".join(parts) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_value_text(v) for v in value) + "]"
    if isinstance(value, Comment):
        return "{" + value.value + "}"
    return value_to_string(value)


def _comment_lines(comment: str, *, strip_plain: bool) -> str:
    out = []
    for line in comment.split("\n"):
        if not line:
            # go-ini indexes the first byte of every comment line and panics on an empty one.
            raise FormatError("Error marshaling to ini: empty comment line")
        if line[0] in "#;":
            out.append(line[:1] + " " + _strip(line[1:]) + "\n")
        else:
            out.append("; " + (_strip(line) if strip_plain else line) + "\n")
    return "".join(out)


def _key_text(name: str) -> str:
    if '"' in name or any(d in name for d in _DELIMITERS):
        return "`" + name + "`"
    if "`" in name:
        return '"""' + name + '"""'
    return name


def _value_text(value: str) -> str:
    if "\n" in value or "`" in value:
        return '"""' + value + '"""'
    if "#" in value or ";" in value:
        return "`" + value + "`"
    if len(_strip(value)) != len(value):
        return '"' + value + '"'
    return value


def _byte_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


def _build(branches: list[Branch]) -> list[_Section]:
    sections: list[_Section] = []
    for branch in branches:
        for item in branch:
            if isinstance(item.key, Comment):
                continue
            name = str(item.key)
            if not name:
                raise FormatError("Error encoding section : empty section name")
            if not is_branch(item.value) and item.value != []:
                raise FormatError(
                    "Error encoding section: Section values should always be TreeBranches"
                )
            section = _Section(name)
            sections.append(section)
            entries = list(item.value)
            if entries and isinstance(entries[0].key, Comment):
                section.comment = entries.pop(0).key.value
            last: _Key | None = None
            for entry in entries:
                if isinstance(entry.key, Comment):
                    if last is not None:
                        last.comment = entry.key.value
                    continue
                key_name = str(entry.key)
                if not key_name:
                    raise FormatError("Error encoding key: error creating new key: empty key name")
                text = entry.value if isinstance(entry.value, str) else _go_value_text(entry.value)
                last = section.keys.get(key_name)
                if last is None:
                    last = section.keys[key_name] = _Key(key_name, text)
                last.value = text
    return sections


def emit_plain(branches: list[Branch]) -> bytes:
    try:
        sections = _build(branches)
    except FormatError as exc:
        raise FormatError(f"Error marshaling to ini: {exc}") from None
    out: list[str] = []
    for index, section in enumerate(sections):
        if section.comment:
            out.append(_comment_lines(section.comment, strip_plain=False))
        if index > 0 or section.name.upper() != _DEFAULT:
            out.append(f"[{section.name}]\n")
        elif not section.keys:
            continue
        # Keys are aligned on "=", as written (quotes included), counted in bytes.
        names = [_key_text(name) for name in section.keys]
        width = max(map(_byte_len, names), default=0)
        for key, name in zip(section.keys.values(), names, strict=True):
            if key.comment:
                out.append(_comment_lines(key.comment, strip_plain=True))
            padding = " " * (width - _byte_len(name))
            out.append(f"{name}{padding} = {_value_text(key.value)}\n")
        if index < len(sections) - 1:
            out.append("\n")
    return "".join(out).encode("utf-8", "surrogateescape")
