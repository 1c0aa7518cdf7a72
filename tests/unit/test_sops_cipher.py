"""SOPS's value cipher (tidal.sops.cipher) and Go's text forms of values (tidal.sops.gotext).

Encrypted values come from the real sops binary; Go's own strconv/time are the oracle for the
number and time formats when a Go toolchain is installed.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
import random
from pathlib import Path

import pytest

from testenv.sops_tools import AgeKey, sops_encrypt
from tests.go_oracle import needs_go, run_go
from tests.unit.test_sops_tree import read_sops_yaml
from tidal.sops import gotext
from tidal.sops.cipher import decrypt_mac, decrypt_value, mac_additional_data
from tidal.sops.errors import CipherError, MacError
from tidal.sops.keys import Keyring
from tidal.sops.model import Comment, Document
from tidal.sops.tree import decrypt_document, verify_mac


@pytest.fixture(scope="module")
def key() -> AgeKey:
    return AgeKey.generate()


@pytest.fixture(scope="module")
def sample(key: AgeKey) -> tuple[Document, bytes]:
    text = sops_encrypt(
        "# a comment\ns: text\ni: -42\nf: 1.5\nb: true\nt: 2024-05-06T07:08:09.5Z\n",
        "yaml",
        age=[key],
    )
    doc = read_sops_yaml(text.decode())
    ring = Keyring()
    ring.import_age(key.identity)
    return doc, ring.data_key(doc.metadata)


def values(doc: Document) -> dict[str, str]:
    return {i.key: i.value for i in doc.branches[0] if isinstance(i.key, str)}


def test_each_type_is_restored(sample: tuple[Document, bytes]) -> None:
    doc, dk = sample
    enc = values(doc)
    assert decrypt_value(enc["s"], dk, "s:") == "text"
    assert decrypt_value(enc["i"], dk, "i:") == -42
    assert decrypt_value(enc["f"], dk, "f:") == 1.5
    assert decrypt_value(enc["b"], dk, "b:") is True
    when = decrypt_value(enc["t"], dk, "t:")
    assert isinstance(when, gotext.GoTime)
    assert gotext.format_time(when) == "2024-05-06T07:08:09.5Z"
    comment = doc.branches[0][0].key
    assert isinstance(comment, Comment)
    # A comment at the top has an empty path: its additional data is ":".
    assert decrypt_value(comment.value, dk, ":") == Comment(" a comment")


def test_path_is_authenticated(sample: tuple[Document, bytes]) -> None:
    doc, dk = sample
    with pytest.raises(CipherError, match="cipher: message authentication failed"):
        decrypt_value(values(doc)["s"], dk, "other:")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda v: v.replace("data:", "data:!"), "Error base64-decoding data: illegal base64 data"),
        (lambda v: v.replace(",iv:", ",iv:*"), "Error base64-decoding iv: illegal base64 data"),
        (lambda v: v.replace("tag:", "tag:%"), "Error base64-decoding tag: illegal base64 data"),
        (lambda v: v.replace("type:str", "type:blob"), "Unknown datatype: blob"),
        (lambda v: v.replace("type:str", "type:float"), "failed to convert the decrypted value"),
        (lambda v: v.replace("ENC[", "ENC ["), "Input string <redacted> does not match"),
    ],
)
def test_errors_are_sops_words_without_the_value(
    sample: tuple[Document, bytes], edit: object, message: str
) -> None:
    doc, dk = sample
    original = values(doc)["s"]
    assert callable(edit)
    with pytest.raises(CipherError) as caught:
        decrypt_value(edit(original), dk, "s:")
    assert message in str(caught.value)
    assert "text" not in str(caught.value) and original not in str(caught.value)


def test_key_and_nonce_sizes(sample: tuple[Document, bytes]) -> None:
    doc, _ = sample
    value = values(doc)["s"]
    with pytest.raises(CipherError, match=r"^crypto/aes: invalid key size 5$"):
        decrypt_value(value, b"12345", "s:")
    # A 4-byte IV: Go would take it, `cryptography` does not (SOPS only writes 32 bytes).
    short_iv = value[: value.index(",iv:")] + ",iv:AAAAAA==" + value[value.index(",tag:") :]
    with pytest.raises(CipherError, match="IV of 4 bytes not supported"):
        decrypt_value(short_iv, b"k" * 32, "s:")


def test_lastmodified_is_reformatted_as_go_rfc3339(
    key: AgeKey, sample: tuple[Document, bytes]
) -> None:
    doc, dk = sample
    stored = doc.metadata.last_modified
    assert stored.endswith("Z")
    assert decrypt_mac(doc.metadata, dk) != ""
    # The same instant written differently gives the same additional data, so the MAC still
    # decrypts: Go parses the text and prints it back in RFC 3339 (no fraction, Z for UTC).
    for variant in (stored[:-1] + ".999999999Z", stored[:-1] + "+00:00", stored[:-1] + ",5-00:00"):
        doc.metadata.last_modified = variant
        assert len(decrypt_mac(doc.metadata, dk)) == 128
    doc.metadata.last_modified = stored


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-24T23:30:13Z", "2026-11-24T23:30:13Z"),
        ("2026-11-24T23:30:13.123456Z", "2026-11-24T23:30:13Z"),
        ("2026-11-24T23:30:13+00:00", "2026-11-24T23:30:13Z"),
        ("2026-11-24T23:30:13-07:30", "2026-11-24T23:30:13-07:30"),
        ("2026-11-24T3:30:13Z", "2026-11-24T03:30:13Z"),
        ("2026-11-24T23:30:13,25+01:00", "2026-11-24T23:30:13+01:00"),
    ],
)
def test_mac_additional_data(text: str, expected: str) -> None:
    assert mac_additional_data(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "2026-11-24", "2026-02-30T00:00:00Z", "2026-11-24T24:00:00Z", "2026-11-24t23:30:13z"],
)
def test_bad_lastmodified(text: str) -> None:
    with pytest.raises(MacError, match=r"^failed to verify sops data integrity: invalid"):
        mac_additional_data(text)


def test_changed_lastmodified_fails_the_mac(key: AgeKey) -> None:
    text = sops_encrypt("a: b\n", "yaml", age=[key])
    doc = read_sops_yaml(text.decode())
    ring = Keyring()
    ring.import_age(key.identity)
    dk = ring.data_key(doc.metadata)
    mac = decrypt_document(doc, dk)
    verify_mac(doc, dk, mac)
    doc.metadata.last_modified = "1999-01-01T00:00:00Z"
    with pytest.raises(MacError, match="message authentication failed"):
        verify_mac(doc, dk, mac)


# --- Go's text forms --------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1", "+1", "-9223372036854775808", "9223372036854775807", "007"])
def test_parse_int_accepts(text: str) -> None:
    assert gotext.parse_int(text) == int(text)


@pytest.mark.parametrize(
    "text", ["", " 1", "1_000", "0x10", "9223372036854775808", "1.0", "\u0661"]
)
def test_parse_int_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"^strconv\.Atoi: ") as caught:
        gotext.parse_int(text)
    assert text not in str(caught.value) or not text


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", True), ("t", True), ("TRUE", True), ("True", True), ("0", False), ("F", False)],
)
def test_parse_bool(text: str, value: bool) -> None:
    assert gotext.parse_bool(text) is value


@pytest.mark.parametrize("text", ["yes", "on", "tRUE", " true", ""])
def test_parse_bool_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        gotext.parse_bool(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1.5", 1.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("-1e3", -1000.0),
        ("+Inf", math.inf),
        ("-infinity", -math.inf),
        ("0x1p-2", 0.25),
        ("1e-400", 0.0),
    ],
)
def test_parse_float(text: str, value: float) -> None:
    assert gotext.parse_float(text) == value


@pytest.mark.parametrize("text", ["", "1_0", " 1", "1e400", "+nan", "infin", ".", "0x1"])
def test_parse_float_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"^strconv\.ParseFloat: "):
        gotext.parse_float(text)


def test_nan_parses() -> None:
    assert math.isnan(gotext.parse_float("NaN"))


def test_go_time_keeps_nanoseconds_through_copies() -> None:
    when = gotext.parse_time("2024-01-01T10:00:00.123456789+01:00")
    assert when.nanos == 789 and when.microsecond == 123456
    for clone in (copy.copy(when), copy.deepcopy(when), pickle.loads(pickle.dumps(when))):  # noqa: S301 (own data)
        assert isinstance(clone, gotext.GoTime)
        assert gotext.format_time(clone) == "2024-01-01T10:00:00.123456789+01:00"


GO_FORMAT = """
package main

import (
	"encoding/json"
	"os"
	"strconv"
	"time"
)

func main() {
	var in struct {
		Floats []float64
		Times  []string
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	var out struct {
		Floats []string
		Times  []string
	}
	for _, f := range in.Floats {
		out.Floats = append(out.Floats, strconv.FormatFloat(f, 'f', -1, 64))
	}
	for _, s := range in.Times {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			out.Times = append(out.Times, "error")
			continue
		}
		b, _ := t.MarshalText()
		out.Times = append(out.Times, string(b)+" "+t.Format(time.RFC3339))
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
"""


@pytest.mark.slow
@needs_go
def test_formats_equal_go(tmp_path: Path) -> None:
    rng = random.Random(7)  # noqa: S311 (test data, not secrets)
    floats = [0.0, -0.0, 1.0, 0.1, 1 / 3, 1e21, 1e-7, 123456789.125, 5e-324, 1.7976931348623157e308]
    floats += [rng.uniform(-1e6, 1e6) for _ in range(200)]
    floats += [rng.random() * 10 ** rng.randint(-30, 30) for _ in range(200)]
    times = [
        "2026-11-24T23:30:13Z",
        "2026-11-24T23:30:13.100Z",
        "2026-11-24T23:30:13.123456789123+05:45",
        "2026-11-24T3:04:05,5-00:00",
        "2024-02-29T00:00:00+14:00",
        "2023-02-29T00:00:00Z",
        "2026-11-24T23:30:60Z",
    ]
    payload = json.dumps({"Floats": floats, "Times": times}).encode()
    expected = json.loads(run_go(GO_FORMAT, tmp_path, stdin=payload))
    assert [gotext.format_float(f) for f in floats] == expected["Floats"]
    ours = []
    for text in times:
        try:
            when = gotext.parse_time(text)
        except ValueError:
            ours.append("error")
        else:
            ours.append(f"{gotext.format_time(when)} {gotext.format_time(when, nanos=False)}")
    assert ours == expected["Times"]
