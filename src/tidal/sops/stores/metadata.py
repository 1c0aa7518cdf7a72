"""The `sops` section of a file: its shape (SOPS 3.11's `stores.Metadata` struct), decoding it the
way Go's encoding/json fills that struct, and turning the result into the model's `Metadata` as
SOPS's `Metadata.ToInternal` does (key groups, the one encryption rule, time checks).

The YAML store fills the same struct with yaml.v3's rules instead (`tidal.sops.stores.yamlmeta`);
dotenv and INI files flatten it (`tidal.sops.stores.flatten`) and come back here through JSON,
as SOPS itself does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from tidal.kube.gostrconv import format_json_float
from tidal.sops.gotext import parse_time
from tidal.sops.model import Branch, Comment, Item, MasterKey, Metadata, is_branch
from tidal.sops.stores.common import FormatError
from tidal.sops.stores.gojson import json_kind


@dataclass(frozen=True)
class Struct:
    """A Go struct of the metadata: its type name and its fields (key -> kind).

    A kind is "string", "int", "bool", "map[string]*string", or the name of a struct with
    "[]" before it for a slice of that struct.
    """

    name: str
    fields: dict[str, str]


_KEY_FIELDS: Final = ("pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "age")

STRUCTS: Final[dict[str, Struct]] = {
    s.name: s
    for s in (
        Struct(
            "Metadata",
            {
                "shamir_threshold": "int",
                "key_groups": "[]keygroup",
                "kms": "[]kmskey",
                "gcp_kms": "[]gcpkmskey",
                "azure_kv": "[]azkvkey",
                "hc_vault": "[]vaultkey",
                "age": "[]agekey",
                "lastmodified": "string",
                "mac": "string",
                "pgp": "[]pgpkey",
                "unencrypted_suffix": "string",
                "encrypted_suffix": "string",
                "unencrypted_regex": "string",
                "encrypted_regex": "string",
                "unencrypted_comment_regex": "string",
                "encrypted_comment_regex": "string",
                "mac_only_encrypted": "bool",
                "version": "string",
            },
        ),
        Struct(
            "keygroup",
            {
                "pgp": "[]pgpkey",
                "kms": "[]kmskey",
                "gcp_kms": "[]gcpkmskey",
                "azure_kv": "[]azkvkey",
                "hc_vault": "[]vaultkey",
                "age": "[]agekey",
            },
        ),
        Struct("pgpkey", {"created_at": "string", "enc": "string", "fp": "string"}),
        Struct(
            "kmskey",
            {
                "arn": "string",
                "role": "string",
                "context": "map[string]*string",
                "created_at": "string",
                "enc": "string",
                "aws_profile": "string",
            },
        ),
        Struct("gcpkmskey", {"resource_id": "string", "created_at": "string", "enc": "string"}),
        Struct(
            "vaultkey",
            {
                "vault_address": "string",
                "engine_path": "string",
                "key_name": "string",
                "created_at": "string",
                "enc": "string",
            },
        ),
        Struct(
            "azkvkey",
            {
                "vault_url": "string",
                "name": "string",
                "version": "string",
                "created_at": "string",
                "enc": "string",
            },
        ),
        Struct("agekey", {"recipient": "string", "enc": "string"}),
    )
}


def go_type_name(kind: str) -> str:
    """The Go spelling of a field kind, as errors print it (`[]stores.agekey`)."""
    if kind.startswith("[]"):
        return "[]stores." + kind[2:]
    if kind in STRUCTS:
        return "stores." + kind
    return kind


def zero(kind: str) -> Any:
    if kind == "string":
        return ""
    if kind == "int":
        return 0
    if kind == "bool":
        return False
    if kind.startswith("[]"):
        return []
    if kind.startswith("map"):
        return {}
    return new_struct(kind)


def new_struct(name: str) -> dict[str, Any]:
    return {key: zero(kind) for key, kind in STRUCTS[name].fields.items()}


# ---------------------------------------------------------------------------------------------
# encoding/json's rules


class _JsonDecoder:
    """json.Unmarshal into the metadata structs: keys match case-insensitively, null leaves a
    field alone, and the first type mismatch is the error (decoding goes on, as in Go)."""

    def __init__(self) -> None:
        self.error: FormatError | None = None

    def mismatch(self, value: Any, kind: str, struct: str, path: str) -> None:
        if self.error is not None:
            return
        what = json_kind(value)
        if kind == "int" and what == "number":
            what = "number " + format_json_float(float(value))
        where = f"Go struct field {struct}.{path}" if struct else "Go value"
        self.error = FormatError(
            f"json: cannot unmarshal {what} into {where} of type {go_type_name(kind)}"
        )

    @staticmethod
    def field(struct: Struct, key: str) -> str | None:
        if key in struct.fields:
            return key
        folded = key.lower()
        return folded if folded in struct.fields else None

    def into_struct(
        self, value: Any, name: str, target: dict[str, Any], outer: str, path: str
    ) -> None:
        if value is None:
            return
        if not is_branch(value):
            self.mismatch(value, name, outer, path)
            return
        struct = STRUCTS[name]
        for item in value:
            if isinstance(item.key, Comment):
                continue
            field = self.field(struct, str(item.key))
            if field is None:
                continue
            sub = f"{path}.{field}" if path else field
            target[field] = self.convert(item.value, struct.fields[field], target[field], name, sub)

    def convert(self, value: Any, kind: str, current: Any, struct: str, path: str) -> Any:
        if value is None:
            # null sets slices and maps to nil and leaves other kinds as they are.
            return zero(kind) if kind.startswith(("[]", "map")) else current
        if kind == "string":
            if isinstance(value, str):
                return value
        elif kind == "bool":
            if isinstance(value, bool):
                return value
        elif kind == "int":
            number = isinstance(value, float | int) and not isinstance(value, bool)
            if number and float(value).is_integer() and abs(value) < 2**63:
                return int(value)
        elif kind.startswith("[]"):
            if isinstance(value, list) and not is_branch(value):
                out = []
                for element in value:
                    if isinstance(element, Comment):
                        continue
                    target = new_struct(kind[2:])
                    self.into_struct(element, kind[2:], target, struct, path)
                    out.append(target)
                return out
        elif kind.startswith("map"):
            if is_branch(value):
                mapping: dict[str, str | None] = {}
                for item in value:
                    if isinstance(item.key, Comment):
                        continue
                    entry = item.value
                    if entry is None or isinstance(entry, str):
                        mapping[str(item.key)] = entry
                    else:
                        self.mismatch(entry, "string", struct, path)
                return mapping
        else:
            target = current if isinstance(current, dict) else new_struct(kind)
            self.into_struct(value, kind, target, struct, path)
            return target
        self.mismatch(value, kind, struct, path)
        return current


def decode_json_fields(value: Any, *, outer: str = "", path: str = "") -> dict[str, Any]:
    """The Metadata struct filled from a decoded JSON value as json.Unmarshal fills it.

    `outer`/`path` name where the value sits for error messages (`SopsFile`, `sops`) when the
    struct is a field of an enclosing one, as for the JSON store's `{"sops": {...}}`.
    """
    decoder = _JsonDecoder()
    target = new_struct("Metadata")
    if value is not None and not is_branch(value):
        decoder.mismatch(value, "Metadata", outer, path)
    else:
        decoder.into_struct(value, "Metadata", target, outer or "Metadata", path)
    if decoder.error is not None:
        raise decoder.error
    return target


def branch_of(mapping: dict[str, Any]) -> Branch:
    """A plain dict as a branch with the keys sorted, as json.Marshal writes a Go map."""
    out = Branch()
    for key in sorted(mapping, key=lambda k: k.encode("utf-8", "surrogateescape")):
        value = mapping[key]
        if isinstance(value, dict):
            value = branch_of(value)
        elif isinstance(value, list):
            value = [branch_of(v) if isinstance(v, dict) else v for v in value]
        out.append(Item(key, value))
    return out


# ---------------------------------------------------------------------------------------------
# ToInternal


_RFC3339_LAYOUT: Final = "2006-01-02T15:04:05Z07:00"


def _check_time(text: str) -> None:
    try:
        parse_time(text)
    except ValueError:
        raise FormatError(f'parsing time "{text}" as "{_RFC3339_LAYOUT}": not RFC 3339') from None


def _recipient(kind: str, key: dict[str, Any]) -> str:
    # What `sops` prints for each key type (its MasterKey.ToString).
    if kind == "age":
        return str(key["recipient"])
    if kind == "pgp":
        return str(key["fp"])
    if kind == "kms":
        return str(key["arn"]) + ("+" + str(key["role"]) if key["role"] else "")
    if kind == "gcp_kms":
        return str(key["resource_id"])
    if kind == "azure_kv":
        return f"{key['vault_url']}/keys/{key['name']}/{key['version']}"
    return f"{key['vault_address']}/v1/{key['engine_path']}/keys/{key['key_name']}"


# SOPS builds a key group in this order of key types, whatever the file's order.
_GROUP_ORDER: Final = ("kms", "gcp_kms", "azure_kv", "hc_vault", "pgp", "age")


def _group(fields: dict[str, Any]) -> list[MasterKey]:
    group = []
    for kind in _GROUP_ORDER:
        for key in fields[kind]:
            if kind != "age":
                _check_time(str(key["created_at"]))
            group.append(MasterKey(kind, _recipient(kind, key), str(key["enc"])))
    return group


_RULES: Final = (
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
)


def to_internal(fields: dict[str, Any]) -> Metadata:
    """SOPS's Metadata.ToInternal: the checks and defaults applied to a decoded `sops` struct."""
    _check_time(fields["lastmodified"])
    if any(fields[kind] for kind in _KEY_FIELDS):
        groups = [_group(fields)]
    elif fields["key_groups"]:
        groups = [_group(group) for group in fields["key_groups"]]
    else:
        raise FormatError("No keys found in file")
    rules = [name for name in _RULES if fields[name]]
    if len(rules) > 1:
        raise FormatError(
            "Cannot use more than one of encrypted_suffix, unencrypted_suffix, encrypted_regex,"
            " unencrypted_regex, encrypted_comment_regex, or unencrypted_comment_regex in the"
            " same file"
        )
    return Metadata(
        last_modified=fields["lastmodified"],
        mac=fields["mac"],
        version=fields["version"],
        key_groups=groups,
        shamir_threshold=fields["shamir_threshold"],
        unencrypted_suffix=fields["unencrypted_suffix"] or ("" if rules else "_unencrypted"),
        encrypted_suffix=fields["encrypted_suffix"],
        unencrypted_regex=fields["unencrypted_regex"],
        encrypted_regex=fields["encrypted_regex"],
        unencrypted_comment_regex=fields["unencrypted_comment_regex"],
        encrypted_comment_regex=fields["encrypted_comment_regex"],
        mac_only_encrypted=fields["mac_only_encrypted"],
    )
