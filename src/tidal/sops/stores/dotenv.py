"""dotenv files as SOPS 3.11's dotenv store reads and writes them.

A line is `KEY=VALUE` (split at the first `=`, nothing trimmed) or a `#` comment; empty lines
are dropped; `\\n` in a value stands for a line break. The metadata is the `sops_`-prefixed
keys, flattened (`tidal.sops.stores.flatten`).
"""

from __future__ import annotations

from typing import Any, Final

from tidal.sops.model import Branch, Comment, Document, Item, is_branch
from tidal.sops.stores.common import FormatError, check_size
from tidal.sops.stores.flatten import metadata_from_flat
from tidal.sops.stores.scalars import value_to_string

_PREFIX: Final = "sops_"


def load_plain(data: bytes) -> list[Branch]:
    check_size(data)
    # Go keeps the bytes as they are; surrogateescape carries bytes that are not UTF-8.
    text = data.decode("utf-8", "surrogateescape")
    branch = Branch()
    for number, line in enumerate(text.split("\n"), start=1):
        if not line:
            continue
        if line[0] == "#":
            branch.append(Item(Comment(line[1:]), None))
            continue
        key, sep, value = line.partition("=")
        if not sep:
            # SOPS prints the line; it may hold a secret, so only its number is given.
            raise FormatError(f"invalid dotenv input line {number}: no '=' found")
        branch.append(Item(key, value.replace("\\n", "\n")))
    return [branch]


def load_encrypted(data: bytes) -> Document:
    branch = load_plain(data)[0]
    kept = Branch()
    flat: dict[str, str] = {}
    for item in branch:
        if isinstance(item.key, str) and item.key.startswith(_PREFIX):
            flat[item.key[len(_PREFIX) :]] = item.value
        else:
            kept.append(item)
    return Document([kept], metadata_from_flat(flat))


def emit_plain(branches: list[Branch]) -> bytes:
    lines: list[str] = []
    for item in branches[0]:
        if is_branch(item.value) or isinstance(item.value, list):
            raise FormatError(f"cannot use complex value in dotenv file; offending key {item.key}")
        if isinstance(item.key, Comment):
            lines.append(f"#{item.key.value}\n")
            continue
        value: Any = item.value
        text = value.replace("\n", "\\n") if isinstance(value, str) else value_to_string(value)
        lines.append(f"{item.key}={text}\n")
    return "".join(lines).encode("utf-8", "surrogateescape")
