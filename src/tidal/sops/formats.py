"""The file formats of SOPS: reading encrypted files into the model, writing decrypted ones.

Everything here behaves as SOPS 3.11's stores do, the ones Flux's kustomize-controller calls:
`load_encrypted` is `LoadEncryptedFile`, `load_plain` is `LoadPlainFile`, `emit_plain` is
`EmitPlainFile` (what `sops decrypt --output-type FMT` prints). The per-format details live in
`tidal.sops.stores`.

Leaves of the tree are str, int, float, bool, None, `GoTime` (a YAML timestamp) and bytes (a
binary file's content). A mapping read here is a `Branch`, so an empty one stays `{}`.
Text that is not UTF-8 (a binary file, `!!binary` YAML) is carried in str as lone surrogates
(Python's "surrogateescape"), as Go carries it in a string.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Literal, NamedTuple

from tidal.sops.model import Branch, Comment, Document, is_branch
from tidal.sops.stores import dotenv, ini, jsonstore, yamlemit, yamlstore
from tidal.sops.stores.common import MAX_DEPTH, FormatError, depth_error
from tidal.sops.stores.gojson import decode_object, marshal_compact

__all__ = [
    "Format",
    "FormatError",
    "detect_format",
    "document_from_object",
    "emit_plain",
    "format_for_path",
    "is_encrypted",
    "load_encrypted",
    "load_plain",
    "object_from_branch",
]

Format = Literal["yaml", "json", "dotenv", "ini", "binary"]


class _Store(NamedTuple):
    load_encrypted: Callable[[bytes], Document]
    load_plain: Callable[[bytes], list[Branch]]
    emit_plain: Callable[[list[Branch]], bytes]


_STORES: Final[dict[str, _Store]] = {
    "yaml": _Store(yamlstore.load_encrypted, yamlstore.load_plain, yamlemit.emit_plain),
    "json": _Store(jsonstore.load_encrypted, jsonstore.load_plain, jsonstore.emit_plain),
    "dotenv": _Store(dotenv.load_encrypted, dotenv.load_plain, dotenv.emit_plain),
    "ini": _Store(ini.load_encrypted, ini.load_plain, ini.emit_plain),
    # An encrypted binary file is a JSON file whose one value is the file's bytes.
    "binary": _Store(jsonstore.load_encrypted, jsonstore.load_binary_plain, jsonstore.emit_binary),
}

# The bytes by which Flux recognises an encrypted file of each format (binary files are JSON).
MARKERS: Final[dict[Format, bytes]] = {
    "binary": b'"mac": "ENC[',
    "dotenv": b"sops_mac=ENC[",
    "ini": b"[sops]",
    "json": b'"mac": "ENC[',
    "yaml": b"mac: ENC[",
}


def format_for_path(path: str) -> Format:
    """The format of a file by its name: SOPS's FormatForPath, plus Flux's rule that a
    `.dockerconfigjson` key (a docker config Secret) is JSON."""
    if path.endswith((".dockerconfigjson", ".json")):
        return "json"
    if path.endswith((".yaml", ".yml")):
        return "yaml"
    if path.endswith(".env"):
        return "dotenv"
    if path.endswith(".ini"):
        return "ini"
    return "binary"


def detect_format(data: bytes) -> Format | None:
    """The format of an encrypted document by its marker bytes, as Flux picks it for a Secret
    value, or None when no marker is there.

    Flux looks the markers up in a Go map, so when several match (binary and JSON share theirs)
    its pick is random. Here the order is fixed, the most specific marker first: dotenv, YAML,
    JSON, INI (`[sops]` could also be text inside another format). Among JSON documents, one
    whose only key besides `sops` is `data` holding a string is binary, anything else JSON.
    Either way the document is read alike (SOPS's binary store reads with its JSON store).
    """
    for fmt in ("dotenv", "yaml"):
        if MARKERS[fmt] in data:
            return fmt
    if MARKERS["json"] in data:
        return "binary" if _binary_envelope(data) else "json"
    if MARKERS["ini"] in data:
        return "ini"
    return None


def _binary_envelope(data: bytes) -> bool:
    try:
        branch = decode_object(data)
    except FormatError:
        return False
    items = [item for item in branch if item.key != "sops"]
    return len(items) == 1 and items[0].key == "data" and isinstance(items[0].value, str)


def is_encrypted(data: bytes, fmt: Format) -> bool:
    """Whether Flux takes `data` for a SOPS file of format `fmt` (its marker check)."""
    return MARKERS[fmt] in data


def _store(fmt: str) -> _Store:
    store = _STORES.get(fmt)
    if store is None:
        raise FormatError(f"unknown format {fmt!r}")
    return store


def load_encrypted(data: bytes, fmt: Format) -> Document:
    """An encrypted file: its branches (values still encrypted) and its `sops` metadata."""
    return _store(fmt).load_encrypted(data)


def load_plain(data: bytes, fmt: Format) -> list[Branch]:
    """A plain file as SOPS reads it before encrypting it."""
    return _store(fmt).load_plain(data)


def emit_plain(branches: list[Branch], fmt: Format) -> bytes:
    """The decrypted file as `sops decrypt --output-type FMT` prints it.

    JSON and dotenv write the first branch only, binary needs exactly one branch with a
    `data` string; YAML writes one document per branch and INI a section per top-level key.
    """
    store = _store(fmt)
    if not branches and fmt not in ("yaml", "ini"):
        raise FormatError("no document to write")
    return store.emit_plain(branches)


# ---------------------------------------------------------------------------------------------
# Plain Python data


def _to_object(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise depth_error()
    if is_branch(value):
        return {
            item.key: _to_object(item.value, depth + 1)
            for item in value
            if not isinstance(item.key, Comment)
        }
    if isinstance(value, list):
        return [_to_object(v, depth + 1) for v in value if not isinstance(v, Comment)]
    return value


def object_from_branch(branch: Branch) -> dict[str, Any]:
    """A branch as plain Python data; comments are dropped, a repeated key keeps its last value.

    Values keep the types of the tree: a number read from JSON is a float, as in SOPS. For
    the exact JSON Flux writes back, emit the branch with `emit_plain([branch], "json")`.
    """
    result: dict[str, Any] = _to_object(Branch(branch), 0)
    return result


def document_from_object(obj: dict[str, Any]) -> Document:
    """An in-memory object carrying a `sops` key (a built Kubernetes resource), read as Flux
    reads it: serialised to JSON the way Go marshals a map (keys sorted), then loaded as an
    encrypted JSON document (so every number becomes a float)."""
    if not isinstance(obj, dict):
        raise FormatError(f"a document comes from a mapping, not a {type(obj).__name__}")
    return jsonstore.load_encrypted(marshal_compact(obj).encode())
