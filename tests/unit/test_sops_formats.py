"""tidal.sops.formats against the real sops 3.11 binary (testenv.sops_tools).

The plain output is checked three ways on each document: what we emit for the tree we read from
a plain file equals what `sops decrypt` prints after `sops encrypt` of that file (sops reads the
plain file and prints the same tree); reading sops's own output and emitting it again gives it
back byte for byte; and sops reads what we emit back to the same bytes. The encrypted side is
checked on files sops made: their metadata (every key type it can make here, key groups, the
encryption rules) and the comment structure of YAML.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import pytest

from testenv.sops_tools import AgeKey, PgpKey, generate_pgp, sops_decrypt, sops_encrypt
from tidal.sops.errors import SopsError
from tidal.sops.formats import (
    Format,
    FormatError,
    detect_format,
    document_from_object,
    emit_plain,
    format_for_path,
    is_encrypted,
    load_encrypted,
    load_plain,
    object_from_branch,
)
from tidal.sops.gotext import GoTime
from tidal.sops.model import Branch, Comment, Item, MasterKey

KEY = AgeKey.generate()
OTHER = AgeKey.generate()
THIRD = AgeKey.generate()


def encrypt(plain: str | bytes, fmt: str, **kwargs: Any) -> bytes:
    kwargs.setdefault("age", [KEY])
    return sops_encrypt(plain, fmt, **kwargs)


def decrypt(data: bytes, fmt: str, out_fmt: str = "") -> bytes:
    return sops_decrypt(data, fmt, age=[KEY], out_fmt=out_fmt)


def assert_round_trips(plain: str | bytes, fmt: Format) -> bytes:
    """The three checks of the module docstring; returns sops's plain output."""
    raw = plain.encode() if isinstance(plain, str) else plain
    expected = decrypt(encrypt(raw, fmt), fmt)
    assert emit_plain(load_plain(raw, fmt), fmt) == expected
    assert emit_plain(load_plain(expected, fmt), fmt) == expected
    assert decrypt(encrypt(expected, fmt), fmt) == expected
    return expected


@pytest.fixture(scope="module")
def pgp(tmp_path_factory: pytest.TempPathFactory) -> PgpKey:
    return generate_pgp(tmp_path_factory.mktemp("gnupg") / "home")


def rules_dir(tmp_path: Path, rule: str) -> Path:
    """A directory whose .sops.yaml applies `rule` (what `sops encrypt` has no flag for)."""
    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - age: {KEY.recipient}\n{rule}")
    return tmp_path


# ---------------------------------------------------------------------------------------------
# Which format


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("secret.yaml", "yaml"),
        ("dir/secret.yml", "yaml"),
        ("a.json", "json"),
        ("app.env", "dotenv"),
        ("conf.ini", "ini"),
        (".dockerconfigjson", "json"),
        ("auth.dockerconfigjson", "json"),
        ("key.pem", "binary"),
        ("secret.YAML", "binary"),
        ("noext", "binary"),
    ],
)
def test_format_for_path(path: str, fmt: str) -> None:
    assert format_for_path(path) == fmt


PLAINS: dict[Format, bytes] = {
    "yaml": b"a: 1\n# c\nb: x\n",
    "json": b'{"a": 1, "b": {"c": "x"}}',
    "dotenv": b"A=1\n#c\nB=x\n",
    "ini": b"[s]\na = 1\n",
    "binary": b"\x00\xffraw",
}


@pytest.mark.parametrize("fmt", list(PLAINS))
def test_detect_format_on_files_sops_made(fmt: Format) -> None:
    data = encrypt(PLAINS[fmt], fmt)
    assert detect_format(data) == fmt
    assert is_encrypted(data, fmt)
    assert not is_encrypted(PLAINS[fmt], fmt)
    assert detect_format(PLAINS[fmt]) is None


def test_detect_format_binary_needs_a_lone_data_string() -> None:
    # JSON whose only key is `data`, but a mapping: not a binary envelope.
    data = encrypt('{"data": {"k": "v"}}', "json")
    assert detect_format(data) == "json"
    data = encrypt('{"data": "v"}', "json")
    assert detect_format(data) == "binary"


# ---------------------------------------------------------------------------------------------
# Plain output: YAML

SECRET_MANIFEST = """\
apiVersion: v1
kind: Secret
metadata:
  name: app
  namespace: default
  labels:
    app.kubernetes.io/name: app
type: Opaque
data:
  password: czNjcjN0
  empty: ""
stringData:
  user: admin
  port: "5432"
  enabled: "true"
  tls.crt: |
    -----BEGIN CERTIFICATE-----
    MIIBszCCAVmgAwIBAgIUU
    -----END CERTIFICATE-----
"""

YAML_DOCUMENTS = [
    pytest.param("a:\n  b:\n    c: d\n    e: [1, 2]\n  f: {g: h}\n", id="nested-maps"),
    pytest.param(
        "items:\n  - name: a\n    value: 1\n  - name: b\n    tags: [x, y]\n  - - nested\n",
        id="lists-of-maps",
    ),
    pytest.param(
        "lit: |\n  line1\n  line2\nfold: >\n  a\n  b\nkeep: |+\n  x\n\n"
        "strip: |-\n  y\nindented: |\n    lead\n      more\nblank_first: |\n\n  x\n",
        id="multi-line",
    ),
    pytest.param(
        'a: "true"\nb: "1"\nc: "1.5"\nd: "null"\ne: "y"\nf: "no"\ng: "0x1F"\nh: "~"\n'
        'i: ""\nj: "1e3"\nk: "12:30"\nl: "- x"\nm: "a: b"\nn: "#c"\no: "<<"\np: "010"\n',
        id="strings-like-other-types",
    ),
    pytest.param(
        "t: true\nf: False\nn: null\nt2: ~\ni: 0x1F\no: 0o17\noct: 017\nu: 1_000\nf1: 1.0\n"
        "e: 1e6\nneg: -0.5\ninf: .inf\nnan: .nan\nbig: 123456789012\nyes: yes\n",
        id="scalars",
    ),
    pytest.param("name: Grüße\njp: 日本語\nemoji: 😀\nnbsp: a\u00a0b\n", id="unicode"),
    pytest.param("a:\nb: ''\nc: []\nd: {}\ne: ' '\nf: 'trail '\n", id="empty-values"),
    pytest.param(
        "# head\na: 1 # line\n# above b\nb:\n  # inner\n  c: 2\n  # foot c\n"
        "list:\n  - x # lx\n  # between\n  - y\n  # foot list\n\n# dangling\nz: end\n# end\n",
        id="comments",
    ),
    pytest.param("a: 1\n---\nb: 2\n---\n# c\nc: [x]\n", id="multi-document"),
    pytest.param(SECRET_MANIFEST, id="kubernetes-secret"),
    pytest.param(
        '"a: b": 1\n"- x": 2\n"#c": 3\n"1": int-like\n? |\n  multi\n  key\n: v\n', id="keys"
    ),
    pytest.param("d: 2024-01-02\nt: 2024-01-02T03:04:05.5+02:00\n", id="timestamps"),
    pytest.param(
        f'tab: "a\\tb"\nctrl: "\\x01"\nnel: "a\\Nb"\nquote: "it\'s"\nlong: {"word " * 40}end\n',
        id="escapes",
    ),
    pytest.param("bin: !!binary /w==\nlonger: !!binary " + "/" * 120 + "\n", id="binary-tag"),
    pytest.param("base: &b {x: 1}\nref: *b\nlist: &l [1, 2]\nagain: *l\n", id="aliases"),
    # go-yaml v3 (unlike libyaml) reads `b:` before `}` as the key "b:".
    pytest.param("a: {b:, c: d}\nwin: a\r\n", id="flow-colon-and-crlf"),
    pytest.param(
        "a:\n  - # stem\n    b: 1\n  - c: 2\n    # foot c\n\n# after blank\n"
        "d: [x, # in flow\n  y]\n",
        id="comment-placement",
    ),
]


@pytest.mark.parametrize("plain", YAML_DOCUMENTS)
def test_yaml_plain_output_is_sops_output(plain: str) -> None:
    assert_round_trips(plain, "yaml")


def test_yaml_output_indents_sequences_under_keys() -> None:
    out = assert_round_trips("b:\n- x\n- y: 1\n  z: 2\n", "yaml")
    assert out == b'b:\n    - x\n    - "y": 1\n      z: 2\n'


def test_yaml_quoting_of_strings_that_read_as_other_types() -> None:
    branch = Branch(
        [Item("y", "y"), Item("n", "n"), Item("t", "true"), Item("s", "plain"), Item("e", "")]
    )
    assert emit_plain([branch], "yaml") == (b'"y": "y"\n"n": "n"\nt: "true"\ns: plain\ne: ""\n')


def test_yaml_comment_structure_of_an_encrypted_file() -> None:
    plain = (
        "# head\na: 1 # line a\nb:\n    # inner\n    c: 2\n    # foot c\n"
        "list:\n    - x # lx\n    # foot list\n# end\n"
    )
    # An encrypted-regex matching nothing leaves values and comments in the clear.
    doc = load_encrypted(encrypt(plain, "yaml", args=["--encrypted-regex", "^none$"]), "yaml")
    assert doc.branches == [
        [
            Item(Comment(" head"), None),
            Item(Comment(" line a"), None),
            Item("a", 1),
            Item(
                "b",
                [
                    Item(Comment(" inner"), None),
                    Item("c", 2),
                    Item(Comment(" foot c"), None),
                ],
            ),
            Item("list", [Comment(" lx"), "x", Comment(" foot list")]),
            Item(Comment(" end"), None),
        ]
    ]


def test_yaml_encrypted_multi_document() -> None:
    data = encrypt("a: 1\n---\n# c\nb: [x]\n", "yaml")
    doc = load_encrypted(data, "yaml")
    assert len(doc.branches) == 2
    assert [item.key for item in doc.branches[0]] == ["a"]
    assert isinstance(doc.branches[1][0].key, Comment)
    assert doc.branches[1][1].key == "b"
    assert all(item.key != "sops" for branch in doc.branches for item in branch)


def test_yaml_values_keep_yaml_v3_types() -> None:
    [branch] = load_plain(
        b"a: yes\nb: true\nc: 0x10\nd: 1.5\ne: ~\nf: 2024-01-02\ng: '1'\nh: !!float 1\n", "yaml"
    )
    values = {item.key: item.value for item in branch}
    assert values["a"] == "yes"
    assert values["b"] is True
    assert values["c"] == 16
    assert values["d"] == 1.5
    assert values["e"] is None
    assert isinstance(values["f"], GoTime)
    assert values["g"] == "1"
    assert values["h"] == 1.0
    assert isinstance(values["h"], float)


# ---------------------------------------------------------------------------------------------
# Plain output: JSON, dotenv, INI, binary


@pytest.mark.parametrize(
    "plain",
    [
        '{"a": 1, "b": [1, 2.5, "x<&>"], "c": {"d": null, "e": true}, "f": {}, "g": []}',
        '{"s": "\\u00e9\\u2028\\n\\t\\"", "n": 1e21, "m": 1e-7, "big": 12345678901234567890}',
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "app"},
                "data": {"password": "czNjcjN0"},
                "stringData": {"user": "admin", "cert": "a\nb\n"},
            }
        ),
        '{"dup": 1, "dup": 2, "日本": "語"}',
    ],
)
def test_json_plain_output_is_sops_output(plain: str) -> None:
    expected = assert_round_trips(plain, "json")
    assert expected.startswith(b"{\n\t")


def test_json_numbers_are_floats() -> None:
    [branch] = load_plain(b'{"a": 1, "b": 2.5}', "json")
    assert [type(item.value) for item in branch] == [float, float]


@pytest.mark.parametrize(
    "plain",
    [
        "A=1\nB=x=y==\n# comment\nC=\nD=multi\\nline\nE=é\n#\n",
        "KEY=value with spaces\n\n\nLAST=1",
    ],
)
def test_dotenv_plain_output_is_sops_output(plain: str) -> None:
    assert_round_trips(plain, "dotenv")


@pytest.mark.parametrize(
    "plain",
    [
        "[a]\nk = v\n; comment on x\nx = 1\n\n[b]\nurl = http://h/#frag\nq = 'quoted'\n",
        "top = level\n# section comment\n[s] ; inline\nlong_key_name = 1\nk = `a;b`\n"
        'm = """one\ntwo"""\ncont = a\\\n  b\n[s]\ndup = again\n',
    ],
)
def test_ini_plain_output_is_sops_output(plain: str) -> None:
    assert_round_trips(plain, "ini")


def test_binary_plain_output_is_the_bytes() -> None:
    data = bytes(range(256)) * 3
    assert assert_round_trips(data, "binary") == data
    [branch] = load_plain(data, "binary")
    assert branch == [Item("data", data)]


@pytest.mark.parametrize(
    ("plain", "out_fmt"),
    [
        ("a: 1\nb: x\nc: [1, {d: 2}]\n# c\n", "json"),
        ("a: 1\nb: multi\n# comment\nc: 1.5\n", "dotenv"),
        ("s:\n  k: v\n  # c\n  n: 1.5\nt:\n  x: true\n", "ini"),
        ("data: aGk=\n", "binary"),
    ],
)
def test_yaml_tree_in_another_output_format(plain: str, out_fmt: Format) -> None:
    # Flux decrypts a Secret value in the format its marker says and writes it in the format of
    # the Secret key's name.
    expected = decrypt(encrypt(plain, "yaml"), "yaml", out_fmt)
    assert emit_plain(load_plain(plain.encode(), "yaml"), out_fmt) == expected


def test_emit_errors_of_flat_formats() -> None:
    nested = [Branch([Item("a", Branch([Item("b", 1)]))])]
    with pytest.raises(FormatError, match="cannot use complex value in dotenv file"):
        emit_plain(nested, "dotenv")
    with pytest.raises(FormatError, match="no binary data found in tree"):
        emit_plain(nested, "binary")
    with pytest.raises(FormatError, match="Section values should always be TreeBranches"):
        emit_plain([Branch([Item("a", 1)])], "ini")


def test_empty_mapping_and_empty_sequence_stay_apart() -> None:
    branch = Branch([Item("m", Branch()), Item("s", [])])
    assert emit_plain([branch], "yaml") == b"m: {}\ns: []\n"
    assert emit_plain([branch], "json") == b'{\n\t"m": {},\n\t"s": []\n}\n'


# ---------------------------------------------------------------------------------------------
# Metadata


def test_metadata_of_age_and_pgp_in_every_format(pgp: PgpKey) -> None:
    for fmt, plain in PLAINS.items():
        data = encrypt(plain, fmt, age=[KEY, OTHER], pgp=[pgp])
        metadata = load_encrypted(data, fmt).metadata
        [group] = metadata.key_groups
        # SOPS orders a group by key type: pgp before age.
        assert [(k.kind, k.recipient) for k in group] == [
            ("pgp", pgp.fingerprint),
            ("age", KEY.recipient),
            ("age", OTHER.recipient),
        ], fmt
        assert all(k.enc for k in group)
        assert group[1].enc.startswith("-----BEGIN AGE ENCRYPTED FILE-----\n"), fmt
        assert metadata.mac.startswith("ENC[AES256_GCM,"), fmt
        assert metadata.version == "3.11.0"
        assert metadata.shamir_threshold == 0
        assert metadata.unencrypted_suffix == "_unencrypted"
        assert not metadata.mac_only_encrypted
        assert len(metadata.last_modified) == len("2024-01-02T03:04:05Z")


def test_metadata_key_groups_with_shamir(
    tmp_path: Path, pgp: PgpKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".sops.yaml").write_text(
        "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n"
        f"      - age: [{KEY.recipient}]\n        pgp: [{pgp.fingerprint}]\n"
        f"      - age: [{OTHER.recipient}]\n      - age: [{THIRD.recipient}]\n"
    )
    # The groups come from the config alone (a --pgp flag would replace them).
    monkeypatch.setenv("GNUPGHOME", str(pgp.home))
    for fmt, plain in PLAINS.items():
        data = sops_encrypt(plain, fmt, workdir=tmp_path)
        metadata = load_encrypted(data, fmt).metadata
        assert metadata.shamir_threshold == 2, fmt
        recipients = [[(k.kind, k.recipient) for k in group] for group in metadata.key_groups]
        assert recipients == [
            [("pgp", pgp.fingerprint), ("age", KEY.recipient)],
            [("age", OTHER.recipient)],
            [("age", THIRD.recipient)],
        ], fmt


@pytest.mark.parametrize(
    ("rule", "field", "value"),
    [
        ("    encrypted_regex: ^a$\n", "encrypted_regex", "^a$"),
        ("    unencrypted_suffix: _pub\n", "unencrypted_suffix", "_pub"),
        ("    encrypted_suffix: _sec\n", "encrypted_suffix", "_sec"),
        ("    unencrypted_regex: ^b\n", "unencrypted_regex", "^b"),
        ("    encrypted_comment_regex: sec\n", "encrypted_comment_regex", "sec"),
        ("    unencrypted_comment_regex: pub\n", "unencrypted_comment_regex", "pub"),
        (
            "    mac_only_encrypted: true\n    encrypted_regex: ^a$\n",
            "mac_only_encrypted",
            True,
        ),
    ],
)
def test_metadata_encryption_rules(tmp_path: Path, rule: str, field: str, value: Any) -> None:
    workdir = rules_dir(tmp_path, rule)
    for fmt in ("yaml", "json", "dotenv", "ini"):
        data = sops_encrypt(PLAINS[fmt], fmt, workdir=workdir)
        metadata = load_encrypted(data, fmt).metadata
        assert getattr(metadata, field) == value, fmt
        # The default suffix applies only when the file names no rule.
        if field != "unencrypted_suffix":
            assert metadata.unencrypted_suffix == "", fmt


def test_metadata_of_other_key_types_from_json() -> None:
    # sops cannot reach KMS or Vault here; their entries are written by hand, as sops would.
    data = json.loads(encrypt(PLAINS["json"], "json"))
    created = "2024-01-02T03:04:05Z"
    data["sops"].update(
        kms=[{"arn": "arn:aws:kms:eu:1:key/k", "role": "r", "created_at": created, "enc": "K"}],
        gcp_kms=[{"resource_id": "projects/p/k", "created_at": created, "enc": "G"}],
        azure_kv=[
            {
                "vault_url": "https://v.vault.azure.net",
                "name": "n",
                "version": "1",
                "created_at": created,
                "enc": "A",
            }
        ],
        hc_vault=[
            {
                "vault_address": "https://vault:8200",
                "engine_path": "sops",
                "key_name": "k",
                "created_at": created,
                "enc": "V",
            }
        ],
    )
    [group] = load_encrypted(json.dumps(data).encode(), "json").metadata.key_groups
    assert group[:4] == [
        MasterKey("kms", "arn:aws:kms:eu:1:key/k+r", "K"),
        MasterKey("gcp_kms", "projects/p/k", "G"),
        MasterKey("azure_kv", "https://v.vault.azure.net/keys/n/1", "A"),
        MasterKey("hc_vault", "https://vault:8200/v1/sops/keys/k", "V"),
    ]
    assert group[4].kind == "age"


# ---------------------------------------------------------------------------------------------
# Errors, as sops words them


def sops_error(data: bytes, fmt: str) -> str:
    with pytest.raises(RuntimeError) as failure:
        decrypt(data, fmt)
    return str(failure.value)


def json_file(**changes: Any) -> bytes:
    data = json.loads(encrypt(PLAINS["json"], "json"))
    for key, value in changes.items():
        if key == "sops":
            data["sops"] = value
        else:
            data["sops"][key] = value
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        pytest.param(PLAINS["yaml"], "yaml", id="yaml-without-metadata"),
        pytest.param(PLAINS["json"], "json", id="json-without-metadata"),
        pytest.param(b"[s]\na = 1\n", "ini", id="ini-without-metadata"),
        pytest.param(b"[1]", "json", id="json-array"),
        pytest.param(b'{"a": tru}', "json", id="json-syntax"),
        pytest.param(b"", "json", id="json-empty"),
        pytest.param(b"a: 1\nb: [\n", "yaml", id="yaml-syntax"),
        pytest.param(b"just text\n", "yaml", id="yaml-scalar-document"),
        pytest.param(b"sops: 1\n", "yaml", id="yaml-metadata-scalar"),
    ],
)
def test_load_errors_match_sops(data: bytes, fmt: Format) -> None:
    with pytest.raises(FormatError) as failure:
        load_encrypted(data, fmt)
    message = str(failure.value).split("\n")[0]
    if "yaml: line" in message:
        # PyYAML names parse problems in its own words; the line and the prefix are sops's.
        message = message.split(": line")[0]
    assert message in sops_error(data, fmt)


def test_plain_yaml_document_errors_match_sops() -> None:
    # go-yaml v3 names a tagged top-level sequence with its (empty) value, an untagged one not.
    for data in (b"!!foo [a]\n", b"[a]\n"):
        with pytest.raises(FormatError) as failure:
            load_plain(data, "yaml")
        with pytest.raises(RuntimeError) as sops_failure:
            encrypt(data, "yaml")
        assert str(failure.value) in str(sops_failure.value)


@pytest.mark.parametrize(
    "changes",
    [
        {"mac": 1},
        {"version": 1},
        {"shamir_threshold": 2.5},
        {"age": {}},
        {"sops": None},
        {"sops": 1},
        {"age": [], "pgp": None},
        {"encrypted_regex": "x"},
    ],
)
def test_json_metadata_errors_match_sops(changes: dict[str, Any]) -> None:
    data = json_file(**changes)
    with pytest.raises(FormatError) as failure:
        load_encrypted(data, "json")
    assert str(failure.value) in sops_error(data, "json")


def test_case_insensitive_sops_key_in_json() -> None:
    # encoding/json matches struct fields without regard to case.
    data = json.loads(json_file())
    data["SOPS"] = data.pop("sops")
    data["SOPS"]["MAC"] = data["SOPS"].pop("mac")
    doc = load_encrypted(json.dumps(data).encode(), "json")
    assert doc.metadata.mac.startswith("ENC[")
    assert [item.key for item in doc.branches[0]] == ["a", "b", "SOPS"]


def test_dotenv_metadata_is_unflattened() -> None:
    data = encrypt(PLAINS["dotenv"], "dotenv", age=[KEY, OTHER])
    assert b"sops_age__list_1__map_recipient=" + OTHER.recipient.encode() in data
    doc = load_encrypted(data, "dotenv")
    assert [k.recipient for k in doc.metadata.key_groups[0]] == [KEY.recipient, OTHER.recipient]
    keys = [item.key for item in doc.branches[0]]
    assert keys[0] == "A" and keys[2] == "B" and len(keys) == 3
    assert isinstance(keys[1], Comment) and keys[1].value.startswith("ENC[")


def test_errors_never_hold_values() -> None:
    secret = "hunter2-s3cret"
    for data, fmt in [
        (f"A=1\n{secret}\n".encode(), "dotenv"),
        (f"[s]\n{secret}\n".encode(), "ini"),
        (f"a: !!int {secret}\n".encode(), "yaml"),
        (f'{{"a": "{secret}" x}}'.encode(), "json"),
    ]:
        with pytest.raises(FormatError) as failure:
            load_plain(data, fmt)
        assert secret not in str(failure.value), fmt


def test_control_characters_are_refused() -> None:
    with pytest.raises(FormatError, match="control characters are not allowed"):
        load_plain(b"a: \x01\n", "yaml")


def test_non_string_keys_are_refused_as_sops_refuses_them() -> None:
    with pytest.raises(FormatError, match=r"non-string key \(type int\)"):
        load_plain(b"1: a\n", "yaml")


# ---------------------------------------------------------------------------------------------
# Hostile input


def test_alias_bomb_is_capped() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefg", "bcdefgh", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    with pytest.raises(FormatError, match="excessive aliasing"):
        load_plain("\n".join(lines).encode(), "yaml")


def test_self_referencing_alias_is_refused() -> None:
    with pytest.raises(FormatError, match="contains itself"):
        load_plain(b"a: &x [*x]\n", "yaml")


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"a: " + b"[" * 5000 + b"]" * 5000, "yaml"),
        (b"".join(b"  " * i + b"k:\n" for i in range(400)), "yaml"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "json"),
    ],
)
def test_deep_nesting_is_refused(data: bytes, fmt: Format) -> None:
    with pytest.raises(FormatError, match="max depth"):
        load_plain(data, fmt)


def test_oversized_input_is_refused() -> None:
    with pytest.raises(FormatError, match="larger than"):
        load_plain(b"a: " + b"x" * (5 << 20), "yaml")


# ---------------------------------------------------------------------------------------------
# Plain Python objects


def test_objects_and_branches() -> None:
    obj = {"b": 1, "a": {"c": [1, {"d": None}], "e": {}}, "f": []}
    [branch] = load_plain(b"b: 1\na: {c: [1, {d: null}], e: {}}\nf: []\n", "yaml")
    assert [item.key for item in branch] == ["b", "a", "f"]
    assert object_from_branch(branch) == obj
    with_comments = Branch([Item(Comment("x"), None), Item("k", [Comment("y"), 1])])
    assert object_from_branch(with_comments) == {"k": [1]}
    assert (
        emit_plain([branch], "yaml") == b"b: 1\na:\n    c:\n        - 1\n        - d: null\n"
        b"    e: {}\nf: []\n"
    )


def test_document_from_an_object_is_read_as_flux_reads_a_built_resource() -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "app"},
        "stringData": {"password": "s3cret", "port": 5432},
    }
    data = encrypt(json.dumps(manifest), "json", args=["--encrypted-regex", "^stringData$"])
    obj = json.loads(data)
    doc = document_from_object(obj)
    assert doc.metadata == load_encrypted(data, "json").metadata
    # Go marshals the map with its keys sorted; numbers come back as floats.
    assert [item.key for item in doc.branches[0]] == [
        "apiVersion",
        "kind",
        "metadata",
        "stringData",
    ]
    reread = document_from_object({**obj, "spec": {"replicas": 2}})
    spec = object_from_branch(reread.branches[0])["spec"]
    assert spec == {"replicas": 2.0}
    assert isinstance(spec["replicas"], float)
    with pytest.raises(FormatError, match="unsupported value"):
        document_from_object({**obj, "x": math.nan})


def test_secret_value_round_trip_through_base64() -> None:
    # A Secret's data value holding a whole encrypted dotenv file, as a secretGenerator makes.
    encrypted = encrypt("USER=admin\nPASS=s3cret\n", "dotenv")
    value = base64.b64encode(encrypted).decode()
    raw = base64.b64decode(value)
    assert detect_format(raw) == "dotenv"
    doc = load_encrypted(raw, "dotenv")
    assert [item.key for item in doc.branches[0]] == ["USER", "PASS"]


def test_plain_scalars_resolve_as_go_yaml_v3() -> None:
    # Underscores in a float starting with "." are Go's (strconv keeps and checks them); a
    # uint64 decodes in Go but SOPS cannot walk it; a time Python cannot hold stays a string.
    [branch] = load_plain(b"a: .5_0\nb: 0x_1F\nc: 2001-12-14T21:59:43+24:00\n", "yaml")
    assert [(i.key, i.value) for i in branch] == [
        ("a", 0.5),
        ("b", 31),
        ("c", "2001-12-14T21:59:43+24:00"),
    ]
    with pytest.raises(SopsError, match="unknown type: uint64"):
        load_plain(b"a: 18446744073709551615\n", "yaml")
