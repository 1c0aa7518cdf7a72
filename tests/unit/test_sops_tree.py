"""Tree decryption and the MAC (tidal.sops.tree) on files the real sops encrypted.

Every fixture is made by the sops binary and every expected plain value is what sops itself
decrypts the same file to. Documents are read with a small YAML reader kept here (the real
readers live in tidal.sops.formats), which keeps comment lines where sops put them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testenv.sops_tools import AgeKey, sops_decrypt, sops_encrypt
from tidal.sops.cipher import decrypt_value
from tidal.sops.errors import DecryptError, MacError
from tidal.sops.gotext import GoTime, format_time
from tidal.sops.keys import Keyring
from tidal.sops.model import Comment, Document, Item, MasterKey, Metadata
from tidal.sops.tree import EncryptionRules, decrypt_document, decrypt_enveloped, verify_mac

# --- a YAML reader for sops's YAML files, with comment lines ---------------------------------

_KEY_FIELDS = {
    "age": "recipient",
    "pgp": "fp",
    "kms": "arn",
    "gcp_kms": "resource_id",
    "azure_kv": "vault_url",
    "hc_vault": "vault_address",
}


def read_sops_yaml(text: str) -> Document:
    """An encrypted sops YAML file (one document) as a Document."""
    branch = read_yaml_branch(text)
    meta = next(item for item in branch if item.key == "sops")
    branch.remove(meta)
    return Document([branch], _metadata(plain_values(meta.value)))


def read_yaml_branch(text: str) -> list[Item]:
    """A YAML mapping as a Branch; a comment line becomes a Comment before the next key/item."""
    comments = [
        (number, line.strip()[1:])
        for number, line in enumerate(text.splitlines())
        if line.strip().startswith("#")
    ]
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        pending = iter(comments)
        reader = _Reader(loader, pending)
        branch = reader.node(root)
        assert isinstance(branch, list)
        branch.extend(Item(Comment(value), None) for _, value in reader.rest())
        return branch
    finally:
        loader.dispose()


class _Reader:
    def __init__(self, loader: yaml.SafeLoader, comments: Iterator[tuple[int, str]]) -> None:
        self.loader = loader
        self.comments = list(comments)

    def before(self, line: int) -> list[str]:
        taken = [value for number, value in self.comments if number < line]
        self.comments = [(n, v) for n, v in self.comments if n >= line]
        return taken

    def rest(self) -> list[tuple[int, str]]:
        rest, self.comments = self.comments, []
        return rest

    def node(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode):
            items: list[Item] = []
            for key, value in node.value:
                items += [Item(Comment(c), None) for c in self.before(key.start_mark.line)]
                items.append(Item(key.value, self.node(value)))
            return items
        if isinstance(node, yaml.SequenceNode):
            values: list[Any] = []
            for element in node.value:
                values += [Comment(c) for c in self.before(element.start_mark.line)]
                values.append(self.node(element))
            return values
        return self.loader.construct_object(node)


def _metadata(sops: dict[str, Any]) -> Metadata:
    groups = sops.get("key_groups") or [sops]
    return Metadata(
        last_modified=sops["lastmodified"],
        mac=sops.get("mac", ""),
        version=sops.get("version", ""),
        key_groups=[
            [
                MasterKey(kind, entry[field], entry["enc"])
                for kind, field in _KEY_FIELDS.items()
                for entry in group.get(kind) or []
            ]
            for group in groups
        ],
        shamir_threshold=sops.get("shamir_threshold", 0),
        unencrypted_suffix=sops.get("unencrypted_suffix", ""),
        encrypted_suffix=sops.get("encrypted_suffix", ""),
        unencrypted_regex=sops.get("unencrypted_regex", ""),
        encrypted_regex=sops.get("encrypted_regex", ""),
        unencrypted_comment_regex=sops.get("unencrypted_comment_regex", ""),
        encrypted_comment_regex=sops.get("encrypted_comment_regex", ""),
        mac_only_encrypted=sops.get("mac_only_encrypted", False),
    )


def plain_values(value: Any) -> Any:
    """Branches as dicts, comments dropped, times as Go prints them: comparable with JSON."""
    if isinstance(value, list) and value and all(isinstance(v, Item) for v in value):
        return {i.key: plain_values(i.value) for i in value if not isinstance(i.key, Comment)}
    if isinstance(value, list):
        return [plain_values(v) for v in value if not isinstance(v, Comment)]
    if isinstance(value, GoTime):
        return format_time(value)
    return value


def comments_of(value: Any) -> list[str]:
    """Every comment of a branch, in walk order."""
    found: list[str] = []
    if isinstance(value, list):
        for element in value:
            if isinstance(element, Item):
                if isinstance(element.key, Comment):
                    found.append(element.key.value)
                found += comments_of(element.value)
            elif isinstance(element, Comment):
                found.append(element.value)
            else:
                found += comments_of(element)
    return found


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key() -> AgeKey:
    return AgeKey.generate()


def encrypted(key: AgeKey, plain: str, *args: str) -> tuple[bytes, Document]:
    text = sops_encrypt(plain, "yaml", age=[key], args=list(args))
    return text, read_sops_yaml(text.decode())


def encrypted_by_rule(
    key: AgeKey, plain: str, workdir: Path, **rule: Any
) -> tuple[bytes, Document]:
    """Encrypted with a .sops.yaml creation rule (some settings have no command-line flag)."""
    config = {"creation_rules": [{"age": key.recipient, **rule}]}
    (workdir / ".sops.yaml").write_text(yaml.safe_dump(config))
    text = sops_encrypt(plain, "yaml", workdir=workdir)
    return text, read_sops_yaml(text.decode())


def data_key(key: AgeKey, doc: Document) -> bytes:
    keyring = Keyring()
    keyring.import_age(key.identity)
    return keyring.data_key(doc.metadata)


def oracle(key: AgeKey, text: bytes) -> Any:
    return json.loads(sops_decrypt(text, "yaml", age=[key], out_fmt="json"))


def decrypt_and_check(key: AgeKey, plain: str, *args: str) -> Document:
    """Encrypt with sops, decrypt here with the MAC checked, compare with sops's output."""
    text, doc = encrypted(key, plain, *args)
    dk = data_key(key, doc)
    mac = decrypt_document(doc, dk)
    verify_mac(doc, dk, mac)
    assert plain_values(doc.branches[0]) == oracle(key, text)
    return doc


SCALARS = """\
name: web
port: 8080
ratio: 0.25
big: 1e30
tiny: 0.0000001
negative: -3
zero: -0.0
whole: 2.0
on: true
off: false
nothing: null
empty: ""
when: 2024-01-01T10:00:00.123456789+01:00
day: 2024-02-29
text: "multi\\nline ünïcödé"
nested:
    list: [1, two, 3.5, false, {deep: value}]
    map: {a: {b: {c: leaf}}}
"""


# --- decryption against the sops oracle ------------------------------------------------------


def test_scalars_of_every_type_decrypt_as_sops_does(key: AgeKey) -> None:
    doc = decrypt_and_check(key, SCALARS)
    plain = {item.key: item.value for item in doc.branches[0]}
    assert plain["port"] == 8080 and type(plain["port"]) is int
    assert plain["ratio"] == 0.25 and type(plain["ratio"]) is float
    assert plain["on"] is True and plain["off"] is False
    assert plain["nothing"] is None
    assert plain["empty"] == ""
    assert isinstance(plain["when"], GoTime)
    assert format_time(plain["when"]) == "2024-01-01T10:00:00.123456789+01:00"
    assert format_time(plain["day"]) == "2024-02-29T00:00:00Z"


@pytest.mark.parametrize(
    ("flag", "pattern"),
    [
        ("--unencrypted-suffix", "_plain"),
        ("--encrypted-suffix", "_secret"),
        ("--unencrypted-regex", "^(public|pub_.*)$"),
        ("--encrypted-regex", "^(data|stringData)$"),
    ],
)
def test_selection_rules_cover_children_of_a_matching_key(
    key: AgeKey, flag: str, pattern: str
) -> None:
    plain = """\
kind: Secret
data:
    password: hunter2
    nested: {inner: 1}
stringData: {token: abc}
public: {keep: [1, 2]}
pub_more: visible
config_plain: {a: 1, b: [x, y]}
db_secret: {user: admin, list: [p, q]}
other: value
"""
    text, doc = encrypted(key, plain, flag, pattern)
    still_plain = {
        i.key
        for i in doc.branches[0]
        if isinstance(i.key, str) and "ENC[" not in json.dumps(plain_values(i.value))
    }
    expected = {
        "--unencrypted-suffix": {"config_plain"},
        "--encrypted-suffix": {
            "kind",
            "data",
            "stringData",
            "public",
            "pub_more",
            "config_plain",
            "other",
        },
        "--unencrypted-regex": {"public", "pub_more"},
        "--encrypted-regex": {"kind", "public", "pub_more", "config_plain", "db_secret", "other"},
    }[flag]
    assert still_plain == expected
    dk = data_key(key, doc)
    verify_mac(doc, dk, decrypt_document(doc, dk))
    assert plain_values(doc.branches[0]) == oracle(key, text)


def test_default_rule_is_the_unencrypted_suffix(key: AgeKey) -> None:
    _, doc = encrypted(key, "a_unencrypted: keep\nb: secret\n")
    # A file naming no rule at all is read with SOPS's default.
    doc.metadata.unencrypted_suffix = ""
    dk = data_key(key, doc)
    verify_mac(doc, dk, decrypt_document(doc, dk))
    assert plain_values(doc.branches[0]) == {"a_unencrypted": "keep", "b": "secret"}


def test_comments_are_decrypted_and_stay_out_of_the_mac(key: AgeKey) -> None:
    plain = """\
# top comment
data:
    # about a
    a: 1
    list:
        # first element
        - x
        - y
# trailing comment
"""
    text, doc = encrypted(key, plain)
    assert all(c.startswith("ENC[") for c in comments_of(doc.branches[0]))
    dk = data_key(key, doc)
    verify_mac(doc, dk, decrypt_document(doc, dk))
    assert plain_values(doc.branches[0]) == oracle(key, text)
    assert comments_of(doc.branches[0]) == comments_of(
        read_yaml_branch(sops_decrypt(text, "yaml", age=[key]).decode())
    )
    assert comments_of(doc.branches[0]) == [
        " top comment",
        " about a",
        " first element",
        " trailing comment",
    ]


@pytest.mark.parametrize(
    ("rule", "pattern"),
    [("encrypted_comment_regex", "sops:enc"), ("unencrypted_comment_regex", "sops:plain")],
)
def test_comment_regexes(key: AgeKey, tmp_path: Path, rule: str, pattern: str) -> None:
    plain = """\
# sops:enc
secret: s3cr3t
# sops:plain
visible: hello
block:
    # sops:enc
    inner: 42
    other: 43
    # note
    more: [1, 2]
last: word
"""
    text, doc = encrypted_by_rule(key, plain, tmp_path, **{rule: pattern})
    encrypted_keys = {i.key for i in doc.branches[0] if "ENC[" in json.dumps(plain_values(i.value))}
    assert encrypted_keys == (
        {"secret", "block"} if rule == "encrypted_comment_regex" else {"secret", "block", "last"}
    )
    dk = data_key(key, doc)
    verify_mac(doc, dk, decrypt_document(doc, dk))
    assert plain_values(doc.branches[0]) == oracle(key, text)
    assert comments_of(doc.branches[0]) == comments_of(
        read_yaml_branch(sops_decrypt(text, "yaml", age=[key]).decode())
    )


def test_mac_only_encrypted_ignores_changes_to_plain_values(key: AgeKey, tmp_path: Path) -> None:
    text, doc = encrypted_by_rule(
        key,
        "data: {password: hunter2}\nreplicas: 3\n",
        tmp_path,
        encrypted_regex="^data$",
        mac_only_encrypted=True,
    )
    assert doc.metadata.mac_only_encrypted
    dk = data_key(key, doc)
    verify_mac(doc, dk, decrypt_document(doc, dk))
    assert plain_values(doc.branches[0]) == oracle(key, text)
    _, doc = encrypted_by_rule(
        key,
        "data: {password: hunter2}\nreplicas: 3\n",
        tmp_path,
        encrypted_regex="^data$",
        mac_only_encrypted=True,
    )
    doc.branches[0][1].value = 4
    dk = data_key(key, doc)
    verify_mac(doc, dk, decrypt_document(doc, dk))
    assert plain_values(doc.branches[0]) == {"data": {"password": "hunter2"}, "replicas": 4}


def test_tampered_plain_value_fails_the_mac_check(key: AgeKey) -> None:
    _, doc = encrypted(
        key, "data: {password: hunter2}\nreplicas: 3\n", "--encrypted-regex", "^data$"
    )
    doc.branches[0][1].value = 4
    dk = data_key(key, doc)
    mac = decrypt_document(doc, dk)
    with pytest.raises(MacError) as caught:
        verify_mac(doc, dk, mac)
    message = str(caught.value)
    assert message == (
        "failed to verify sops data integrity: the MAC does not match the values "
        "(a value was changed, added or removed without the key)"
    )
    assert mac not in message  # a hash of the plaintext is never shown


def test_document_without_mac_says_no_mac(key: AgeKey) -> None:
    _, doc = encrypted(key, "a: b\n")
    doc.metadata.mac = ""
    dk = data_key(key, doc)
    mac = decrypt_document(doc, dk)
    with pytest.raises(MacError, match=r"data integrity: the file has no MAC$"):
        verify_mac(doc, dk, mac)


def test_mac_authenticated_with_lastmodified(key: AgeKey) -> None:
    _, doc = encrypted(key, "a: b\n")
    doc.metadata.last_modified = "2001-01-01T00:00:00Z"
    dk = data_key(key, doc)
    mac = decrypt_document(doc, dk)
    with pytest.raises(
        MacError,
        match=r"^failed to verify sops data integrity: Could not decrypt with AES_GCM: "
        r"cipher: message authentication failed$",
    ):
        verify_mac(doc, dk, mac)


def test_tampered_ciphertext_fails_without_leaking(key: AgeKey) -> None:
    _, doc = encrypted(key, "password: hunter2\n")
    item = doc.branches[0][0]
    original = item.value
    # Another value's ciphertext moved here: valid, but authenticated for another path.
    _, other = encrypted(key, "elsewhere: hunter2\n")
    item.value = other.branches[0][0].value
    with pytest.raises(DecryptError) as caught:
        decrypt_document(doc, data_key(key, doc))
    assert str(caught.value) == (
        "error decrypting sops tree: Error walking tree: Could not decrypt value: "
        "Could not decrypt with AES_GCM: cipher: message authentication failed"
    )
    item.value = original.replace("ENC[AES256_GCM,data:", "ENC[AES256_GCM,dta:")
    with pytest.raises(DecryptError) as caught:
        decrypt_document(doc, data_key(key, doc))
    assert str(caught.value) == (
        "error decrypting sops tree: Error walking tree: Could not decrypt value: "
        "Input string <redacted> does not match sops' data format"
    )
    assert "ENC[" not in str(caught.value)


def test_wrong_type_tag_is_redacted(key: AgeKey) -> None:
    _, doc = encrypted(key, "password: hunter2\n")
    item = doc.branches[0][0]
    # The type is not authenticated: a str relabelled int fails to convert, and the decrypted
    # text must not show in the message (Flux redacts strconv's errors).
    item.value = item.value.replace("type:str]", "type:int]")
    with pytest.raises(DecryptError) as caught:
        decrypt_document(doc, data_key(key, doc))
    assert str(caught.value) == (
        "error decrypting sops tree: Error walking tree: Could not decrypt value: "
        "failed to convert the decrypted value to its data type: <redacted>"
    )


def test_plain_value_where_an_encrypted_one_is_expected(key: AgeKey) -> None:
    _, doc = encrypted(key, "count: 3\n")
    doc.branches[0][0].value = 3
    with pytest.raises(DecryptError, match=r"Expected encrypted value as string, but got int$"):
        decrypt_document(doc, data_key(key, doc))


def test_several_yaml_documents_share_one_mac(key: AgeKey) -> None:
    text = sops_encrypt("a: 1\n---\nb: [x]\n", "yaml", age=[key])
    parts = text.decode().split("\n---\n")
    docs = [read_sops_yaml(part) for part in parts]
    doc = Document([d.branches[0] for d in docs], docs[0].metadata)
    dk = data_key(key, doc)
    verify_mac(doc, dk, decrypt_document(doc, dk))
    assert [plain_values(b) for b in doc.branches] == [{"a": 1}, {"b": ["x"]}]


def test_enveloped_values_without_comments(key: AgeKey, tmp_path: Path) -> None:
    _, doc = encrypted_by_rule(
        key,
        "# sops:enc\nsecret: s3cr3t\nlist: ['ENC[not really]']\nplain: 1\n",
        tmp_path,
        encrypted_comment_regex="sops:enc",
    )
    # Flux's path for a resource that lost its comments (JSON after the kustomize build).
    doc.branches[0] = [i for i in doc.branches[0] if not isinstance(i.key, Comment)]
    decrypt_enveloped(doc, data_key(key, doc))
    assert plain_values(doc.branches[0]) == {
        "secret": "s3cr3t",
        "list": ["ENC[not really]"],
        "plain": 1,
    }


def test_enveloped_value_error_names_the_path(key: AgeKey, tmp_path: Path) -> None:
    _, doc = encrypted_by_rule(
        key, "data: {secret: s3cr3t}\n", tmp_path, encrypted_comment_regex="x"
    )
    doc.branches[0][0].value[0].value = "ENC[AES256_GCM,garbage]"
    with pytest.raises(DecryptError) as caught:
        decrypt_enveloped(doc, data_key(key, doc))
    assert str(caught.value) == (
        "error decrypting sops tree: could not decrypt value at 'data.secret': "
        "Input string <redacted> does not match sops' data format"
    )


def test_empty_ciphertext_is_the_empty_string() -> None:
    assert decrypt_value("", b"k" * 32, "a:") == ""


def test_more_than_one_rule_is_refused() -> None:
    meta = Metadata("2026-01-01T00:00:00Z", "", encrypted_regex="a", unencrypted_suffix="_u")
    with pytest.raises(Exception, match="Cannot use more than one of encrypted_suffix"):
        EncryptionRules.of(meta)
    doc = Document([[Item("a", "b")]], meta)
    with pytest.raises(
        DecryptError, match=r"^error decrypting sops tree: Cannot use more than one"
    ):
        decrypt_document(doc, b"k" * 32)


def test_rules_follow_go_regexp_semantics() -> None:
    # "$" is the end of the text in Go, not before a final newline as in Python.
    rules = EncryptionRules(encrypted_regex="^key$")
    assert rules.encrypted(["key"], [[]], False)
    assert not rules.encrypted(["key\n"], [[]], False)
    # \d is ASCII-only in Go.
    rules = EncryptionRules(encrypted_regex=r"^\d+$")
    assert rules.encrypted(["123"], [[]], False)
    assert not rules.encrypted(["١٢٣"], [[]], False)
    # A pattern Go refuses never matches (SOPS ignores the compile error).
    rules = EncryptionRules(encrypted_regex="(?=x)x")
    assert not rules.encrypted(["x"], [[]], False)


@pytest.mark.parametrize(
    ("fmt", "plain"),
    [
        ("json", '{"a": 1, "b": [1.5, "x", {"c": true}], "d": null, "e": "", "big": 12345678901}'),
        ("binary", "any bytes\nat all: [not yaml\n"),
    ],
)
def test_json_and_binary_files(key: AgeKey, fmt: str, plain: str) -> None:
    text = sops_encrypt(plain, fmt, age=[key])
    # sops's JSON is also YAML, which the reader here takes (once its tab indents are spaces;
    # a tab inside a JSON string is always escaped).
    doc = read_sops_yaml(text.decode().replace("\t", "  "))
    dk = data_key(key, doc)
    verify_mac(doc, dk, decrypt_document(doc, dk))
    expected = sops_decrypt(text, fmt, age=[key])
    if fmt == "binary":
        assert plain_values(doc.branches[0]) == {"data": expected.decode()}
    else:
        assert plain_values(doc.branches[0]) == json.loads(expected)
