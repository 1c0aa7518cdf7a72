"""JSON and binary files as SOPS 3.11's JSON stores read and write them.

An encrypted binary file is a JSON file whose one value is `data` (the file's bytes as a
string); reading it is reading JSON. `sops decrypt` of a binary file prints those bytes.
"""

from __future__ import annotations

from typing import Any

from tidal.sops.model import Branch, Comment, Document, Item
from tidal.sops.stores.common import FormatError
from tidal.sops.stores.gojson import decode_document, decode_object, json_kind, marshal_indent
from tidal.sops.stores.metadata import decode_json_fields, to_internal


def _sops_value(document: Any) -> Any:
    """What json.Unmarshal puts in SopsFile.Metadata: the value of every key matching `sops`
    (case-insensitively, as encoding/json matches fields), the last one winning."""
    found: Any = None
    for item in document:
        if isinstance(item.key, str) and item.key.lower() == "sops":
            found = item.value
    return found


def load_plain(data: bytes) -> list[Branch]:
    try:
        return [decode_object(data)]
    except FormatError as exc:
        raise FormatError(f"Could not unmarshal input data: {exc}") from None


def load_encrypted(data: bytes) -> Document:
    try:
        document = decode_document(data)
        if document is not None and not isinstance(document, Branch):
            raise FormatError(
                f"json: cannot unmarshal {json_kind(document)} into Go value of type"
                " stores.SopsFile"
            )
        value = None if document is None else _sops_value(document)
        fields = None if value is None else decode_json_fields(value, outer="SopsFile", path="sops")
    except FormatError as exc:
        raise FormatError(f"Error unmarshalling input json: {exc}") from None
    if fields is None or document is None:
        raise FormatError("sops metadata not found")
    metadata = to_internal(fields)
    branch = Branch(item for item in document if item.key != "sops")
    return Document([branch], metadata)


def emit_plain(branches: list[Branch]) -> bytes:
    try:
        return (marshal_indent(Branch(branches[0])) + "\n").encode()
    except FormatError as exc:
        raise FormatError(f"Error marshaling to json: {exc}") from None


def emit_binary(branches: list[Branch]) -> bytes:
    if len(branches) != 1:
        raise FormatError("error emitting binary store: there must be exactly one tree branch")
    for item in branches[0]:
        if isinstance(item.key, Comment) or item.key != "data":
            continue
        if isinstance(item.value, bytes):
            return item.value
        if isinstance(item.value, str):
            # A decrypted binary value is a Go string of the file's bytes.
            return item.value.encode("utf-8", "surrogateescape")
        raise FormatError(
            "error emitting binary store: 'data' key in tree does not have a string value"
        )
    raise FormatError("error emitting binary store: no binary data found in tree")


def load_binary_plain(data: bytes) -> list[Branch]:
    return [Branch([Item("data", data)])]
