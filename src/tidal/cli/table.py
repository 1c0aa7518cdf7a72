"""`flux get`'s tables, byte for byte.

flux renders them with olekukonko/tablewriter v0.0.5 set to no borders, left alignment and a tab
as the padding between columns, which gives these exact rules (checked against the flux binary):

- each column is as wide as its widest cell or header, in terminal cells (East Asian wide
  characters count two, ANSI colour codes none); a cell is padded with spaces to that width;
- a header cell is followed by a tab, except the last, which is followed by one space;
- every row cell is followed by a tab, the last one too;
- headers are upper-cased (after `_` becomes a space); widths are measured before that;
- a cell with line breaks spans several output lines; the shorter cells of that row continue
  with two spaces, padded like any cell;
- without a header (`--no-header`) no header line is written and only the rows set the widths.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Final

_ANSI: Final = re.compile(r"\033\[(?:[0-9]{1,3}(?:;[0-9]{1,3})*)?[m|K]")
_PADDING: Final = "\t"


def _rune_width(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    if ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0:
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(text: str) -> int:
    return sum(_rune_width(ch) for ch in _ANSI.sub("", text))


def _pad_right(text: str, width: int) -> str:
    gap = width - display_width(text)
    return text + " " * gap if gap > 0 else text


def _header_title(name: str) -> str:
    # tablewriter's Title(): `_` and non-numeric `.` become spaces, then trim and upper-case.
    chars = list(name)
    for i, ch in enumerate(chars):
        if ch == "_":
            chars[i] = " "
        elif ch == ".":
            before = chars[i - 1] if i > 0 else None
            after = chars[i + 1] if i + 1 < len(chars) else None
            if (before is not None and not (before.isdigit() or before == " ")) or (
                after is not None and not (after.isdigit() or after == " ")
            ):
                chars[i] = " "
    titled = "".join(chars).strip()
    if not titled and name:
        titled = " "
    return titled.upper()


def render(header: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> str:
    """The table as flux prints it; `header=None` for `--no-header`."""
    cells = [[cell.split("\n") for cell in row] for row in rows]
    heads = [h.split("\n") for h in header] if header else []
    widths: dict[int, int] = {}
    for line in [heads, *cells]:
        for col, parts in enumerate(line):
            widths[col] = max(widths.get(col, 0), *(display_width(p) for p in parts))

    out: list[str] = []
    if heads:
        last = len(widths) - 1
        for x in range(max(len(h) for h in heads)):
            text = ""
            for col in range(last + 1):
                part = heads[col][x] if col < len(heads) and x < len(heads[col]) else ""
                text += _pad_right(_header_title(part), widths[col])
                text += " " if col == last else _PADDING
            out.append(text + "\n")
    for row in cells:
        height = max((len(parts) for parts in row), default=1)
        for x in range(height):
            text = ""
            for col, parts in enumerate(row):
                part = parts[x] if x < len(parts) else "  "
                text += _pad_right(part, widths[col]) + _PADDING
            out.append(text + "\n")
    return "".join(out)
