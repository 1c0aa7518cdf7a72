"""The flat form of the `sops` section in dotenv and INI files, read back as SOPS 3.11 does.

Those formats have no nesting, so SOPS flattens its metadata into keys such as
`age__list_0__map_enc`: `__map_<key>` steps into a mapping, `__list_<n>` into a list (dotenv
adds the `sops_` prefix). Reading undoes that (`Unflatten`), fixes the two non-string fields and
the escaped line breaks, and fills the struct through JSON exactly like SOPS.
"""

from __future__ import annotations

import re
from typing import Any, Final

from tidal.sops.gotext import parse_float, parse_int
from tidal.sops.model import Metadata
from tidal.sops.stores.common import FormatError
from tidal.sops.stores.metadata import branch_of, decode_json_fields, to_internal

_MAP: Final = "__map_"
_LIST: Final = "__list_"
_SEPARATOR: Final = re.compile("__map_|__list_")


def _tokens(path: str) -> list[str | int]:
    """SOPS's tokenize: a flat key as mapping keys (str) and list positions (int)."""
    tokens: list[str | int] = []
    start, kind = 0, ""
    for found in _SEPARATOR.finditer(path):
        tokens.append(_token(kind, path[start : found.start()]))
        start, kind = found.end(), found.group()
    tokens.append(_token(kind, path[start:]))
    return tokens


def _token(kind: str, text: str) -> str | int:
    if kind != _LIST:
        return text
    try:
        return parse_int(text)
    except ValueError:
        return 0  # SOPS ignores the Atoi error


def _container(holder: Any, slot: str | int, nxt: str | int) -> Any:
    """The mapping or list at holder[slot], made (or grown) for the token `nxt`."""
    current = holder.get(slot) if isinstance(holder, dict) else holder[slot]
    if isinstance(nxt, str):
        if current is None:
            current = {}
        if not isinstance(current, dict):
            raise FormatError("invalid flattened metadata: a key is both a list and a mapping")
    else:
        if nxt < 0:
            raise FormatError("invalid flattened metadata: negative list position")
        if current is None:
            current = []
        if not isinstance(current, list):
            raise FormatError("invalid flattened metadata: a key is both a list and a mapping")
        current.extend([None] * (nxt + 1 - len(current)))
    holder[slot] = current
    return current


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """SOPS's Unflatten of the metadata keys (without the `sops_` prefix)."""
    root: dict[str, Any] = {}
    for key, value in flat.items():
        tokens = _tokens(key)
        holder: Any = root
        for i, token in enumerate(tokens):
            if isinstance(holder, dict) != isinstance(token, str):
                raise FormatError("invalid flattened metadata: a key is both a list and a mapping")
            if i + 1 < len(tokens):
                holder = _container(holder, token, tokens[i + 1])
            else:
                holder[token] = value
    return root


def _decode_non_strings(flat: dict[str, Any]) -> None:
    if "mac_only_encrypted" in flat:
        flat["mac_only_encrypted"] = flat["mac_only_encrypted"] == "true"
    if "shamir_threshold" in flat:
        text = flat["shamir_threshold"]
        try:
            flat["shamir_threshold"] = parse_int(text)
        except ValueError:
            # Older SOPS wrote the threshold as a float; an integral one is accepted.
            try:
                number = parse_float(text)
            except ValueError:
                number = 0.5
            if not number.is_integer():
                raise FormatError(
                    f'shamir_threshold is not an integer: strconv.Atoi: parsing "{text}":'
                    " invalid syntax"
                ) from None
            flat["shamir_threshold"] = int(number)


def metadata_from_flat(flat: dict[str, str]) -> Metadata:
    """The metadata of a dotenv or INI file from its flat `sops` keys."""
    values: dict[str, Any] = {key: value.replace("\\n", "\n") for key, value in flat.items()}
    _decode_non_strings(values)
    # SOPS marshals the unflattened map to JSON (keys sorted) and unmarshals it into the struct.
    fields = decode_json_fields(branch_of(unflatten(values)))
    return to_internal(fields)
