"""Decryption keys (tidal.sops.keys), data-key recovery and Shamir, and the whole decryption
(tidal.sops.decrypt), on files the real sops encrypted with fresh age and OpenPGP keys."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testenv.sops_tools import AgeKey, PgpKey, generate_pgp, sops_decrypt, sops_encrypt
from tests.unit.test_sops_tree import plain_values, read_sops_yaml
from tidal.sops import shamir
from tidal.sops.decrypt import decrypt_document
from tidal.sops.errors import DataKeyError, KeyImportError, MacError, SopsError
from tidal.sops.keys import Keyring
from tidal.sops.model import Document, Item, MasterKey

SECRET = "flux-system/sops-keys"
PLAIN = """\
apiVersion: v1
kind: Secret
metadata:
    name: app
stringData:
    password: hunter2
    port: 5432
"""


def gpg(home: Path, *args: str, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(
        [shutil.which("gpg") or "gpg", "--batch", *args],
        env={**os.environ, "GNUPGHOME": str(home)},
        input=stdin,
        capture_output=True,
        check=True,
    )
    return done.stdout


def stop_gpg_agent(home: Path) -> None:
    # gpg starts an agent per home; it would outlive the test.
    subprocess.run(
        [shutil.which("gpgconf") or "gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
        capture_output=True,
        check=False,
    )


@pytest.fixture(autouse=True)
def _agents_stopped(tmp_path: Path) -> Iterator[None]:
    yield
    for keybox in tmp_path.rglob("pubring.kbx"):
        stop_gpg_agent(keybox.parent)


@pytest.fixture(scope="module")
def pgp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgpKey]:
    key = generate_pgp(tmp_path_factory.mktemp("gnupg"))
    yield key
    stop_gpg_agent(key.home)


@pytest.fixture(scope="module")
def age_keys() -> list[AgeKey]:
    return [AgeKey.generate() for _ in range(3)]


def plain_of(doc: Document) -> Any:
    return plain_values(doc.branches[0])


def load(text: bytes) -> Document:
    return read_sops_yaml(text.decode())


def age_ring(*keys: AgeKey) -> Keyring:
    ring = Keyring()
    for key in keys:
        ring.import_age(key.key_file())
    return ring


# --- age ------------------------------------------------------------------------------------


def test_age_key_decrypts_what_sops_decrypts(age_keys: list[AgeKey]) -> None:
    text = sops_encrypt(PLAIN, "yaml", age=age_keys[:1])
    doc = decrypt_document(load(text), age_ring(age_keys[0]), verify_mac=True)
    assert plain_of(doc) == json.loads(sops_decrypt(text, "yaml", age=age_keys[:1], out_fmt="json"))
    assert plain_of(doc)["stringData"] == {"password": "hunter2", "port": 5432}


def test_any_one_of_several_recipients_decrypts(age_keys: list[AgeKey]) -> None:
    text = sops_encrypt(PLAIN, "yaml", age=age_keys)
    for key in age_keys:
        doc = decrypt_document(load(text), age_ring(key), verify_mac=True)
        assert plain_of(doc)["stringData"]["password"] == "hunter2"


def test_age_identity_file_with_comments_and_several_keys(age_keys: list[AgeKey]) -> None:
    text = sops_encrypt(PLAIN, "yaml", age=age_keys[2:])
    ring = Keyring()
    ring.import_age(
        "# created: 2026-01-01\r\n"
        + "".join(k.key_file().replace("\n", "\r\n") for k in age_keys)
        + "\n\n# end\n"
    )
    assert plain_of(decrypt_document(load(text), ring, verify_mac=True))["kind"] == "Secret"


def test_wrong_age_key_says_why_for_each_key(age_keys: list[AgeKey]) -> None:
    text = sops_encrypt(PLAIN, "yaml", age=age_keys[:2])
    stranger = AgeKey.generate()
    with pytest.raises(DataKeyError) as caught:
        decrypt_document(load(text), age_ring(stranger), verify_mac=True)
    message = str(caught.value)
    reason = (
        "failed to create reader for decrypting sops data key with age: identity did not match "
        "any of the recipients: incorrect identity for recipient block"
    )
    assert message == (
        "cannot get sops data key: Failed to get the data key required to decrypt the SOPS "
        f"file. Group 0: FAILED ({age_keys[0].recipient}: {reason}; "
        f"{age_keys[1].recipient}: {reason}). Recovery failed because no master key was able "
        "to decrypt the file. In order for SOPS to recover the file, at least one key has to "
        "be successful, but none were."
    )
    assert stranger.identity not in message
    two = age_ring(stranger, AgeKey.generate())
    with pytest.raises(DataKeyError, match="no identity matched any of the recipients"):
        two.data_key(load(text).metadata)


def test_no_age_identity_imported(age_keys: list[AgeKey]) -> None:
    text = sops_encrypt(PLAIN, "yaml", age=age_keys[:1])
    with pytest.raises(DataKeyError, match=r"failed to load age identities: none was imported"):
        Keyring().data_key(load(text).metadata)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            "age-secret-key-1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq",
            "unknown identity type",
        ),
        ("  AGE-SECRET-KEY-1QQQQQQ", "unknown identity type"),
        ("AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQ", "malformed secret key: "),
        ("AGE-PLUGIN-YUBIKEY-1QQQQQ", "age plugin identities are not supported by tidal"),
        ("AGE-SECRET-KEY-PQ-1QQQQQQ", "post-quantum (hybrid) age identities are not supported"),
        ("garbage", "unknown identity type"),
    ],
)
def test_bad_age_identity_lines(age_keys: list[AgeKey], line: str, reason: str) -> None:
    ring = Keyring()
    with pytest.raises(SopsError) as caught:
        ring.import_age(age_keys[0].key_file() + line + "\n")
    message = str(caught.value)
    assert message.startswith("failed to parse and add to age identities: " + reason)
    assert line.strip() not in message and age_keys[0].identity not in message
    # All or nothing: the good line before the bad one was not imported either.
    text = sops_encrypt(PLAIN, "yaml", age=age_keys[:1])
    with pytest.raises(DataKeyError, match="none was imported"):
        ring.data_key(load(text).metadata)


# --- OpenPGP --------------------------------------------------------------------------------


def pgp_ring(*armored: bytes) -> Keyring:
    ring = Keyring()
    for block in armored:
        ring.import_pgp(block)
    return ring


def test_pgp_key_decrypts_what_sops_decrypts(pgp: PgpKey, age_keys: list[AgeKey]) -> None:
    text = sops_encrypt(PLAIN, "yaml", pgp=[pgp])
    doc = decrypt_document(load(text), pgp_ring(pgp.armored_secret), verify_mac=True)
    assert doc.metadata.key_groups[0][0].kind == "pgp"
    assert plain_of(doc)["stringData"]["password"] == "hunter2"


def test_pgp_key_decrypts_a_file_also_encrypted_for_age(
    pgp: PgpKey, age_keys: list[AgeKey]
) -> None:
    text = sops_encrypt(PLAIN, "yaml", age=age_keys[:1], pgp=[pgp])
    doc = decrypt_document(load(text), pgp_ring(pgp.armored_secret), verify_mac=True)
    assert plain_of(doc) == json.loads(sops_decrypt(text, "yaml", age=age_keys[:1], out_fmt="json"))


def test_wrong_pgp_key(pgp: PgpKey, tmp_path: Path) -> None:
    other = generate_pgp(tmp_path / "other")
    text = sops_encrypt(PLAIN, "yaml", pgp=[pgp])
    with pytest.raises(DataKeyError) as caught:
        decrypt_document(load(text), pgp_ring(other.armored_secret), verify_mac=False)
    assert f"Group 0: FAILED ({pgp.fingerprint}: could not decrypt data key with PGP key: " in str(
        caught.value
    )
    with pytest.raises(DataKeyError, match="no OpenPGP secret key was imported"):
        Keyring().data_key(load(text).metadata)


def test_several_keys_in_one_armored_entry(pgp: PgpKey, tmp_path: Path) -> None:
    other = generate_pgp(tmp_path / "other")
    text = sops_encrypt(PLAIN, "yaml", pgp=[pgp])
    # Two armored blocks one after the other, and one block holding two keys.
    ring = pgp_ring(other.armored_secret + pgp.armored_secret)
    assert plain_of(decrypt_document(load(text), ring, verify_mac=True))["kind"] == "Secret"
    gpg(tmp_path / "other", "--import", stdin=pgp.armored_secret)
    both = gpg(tmp_path / "other", "--armor", "--export-secret-keys")
    ring = pgp_ring(both)
    assert plain_of(decrypt_document(load(text), ring, verify_mac=True))["kind"] == "Secret"


def test_message_for_an_older_encryption_subkey(tmp_path: Path) -> None:
    home = tmp_path / "gnupg"
    key = generate_pgp(home)
    text = sops_encrypt(PLAIN, "yaml", pgp=[key])
    # A newer encryption subkey added afterwards: the file is still for the first one.
    gpg(home, "--passphrase", "", "--quick-add-key", key.fingerprint, "rsa2048", "encr", "never")
    armored = gpg(home, "--armor", "--export-secret-keys", key.fingerprint)
    doc = decrypt_document(load(text), pgp_ring(armored), verify_mac=True)
    assert plain_of(doc)["stringData"]["password"] == "hunter2"


def test_exported_subkeys_without_the_primary_secret(pgp: PgpKey) -> None:
    # gpg --export-secret-subkeys leaves a stub for the primary key: the subkey still decrypts.
    armored = gpg(pgp.home, "--armor", "--export-secret-subkeys", pgp.fingerprint)
    text = sops_encrypt(PLAIN, "yaml", pgp=[pgp])
    doc = decrypt_document(load(text), pgp_ring(armored), verify_mac=True)
    assert plain_of(doc)["stringData"]["password"] == "hunter2"


def test_passphrase_protected_key_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    uid = "locked <locked@tidal.invalid>"
    gpg(home, "--pinentry-mode", "loopback", "--passphrase", "pw", "--quick-gen-key", uid)
    armored = gpg(
        home,
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "pw",
        "--armor",
        "--export-secret-keys",
        uid,
    )
    with pytest.raises(SopsError, match="is protected by a passphrase"):
        Keyring().import_pgp(armored)


def test_public_key_is_refused(pgp: PgpKey) -> None:
    public = gpg(pgp.home, "--armor", "--export", pgp.fingerprint)
    with pytest.raises(
        SopsError, match=f"OpenPGP key {pgp.fingerprint} has no secret key material"
    ):
        Keyring().import_pgp(public)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a key",
        b"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nxx\n-----END PGP PRIVATE KEY BLOCK-----\n",
    ],
)
def test_garbage_is_not_a_key(data: bytes) -> None:
    with pytest.raises(SopsError):
        Keyring().import_pgp(data)


# --- the decryption Secret ------------------------------------------------------------------


def test_secret_entries_are_imported_by_extension(pgp: PgpKey, age_keys: list[AgeKey]) -> None:
    data = {
        "identity.agekey": age_keys[0].key_file().encode(),
        "gpg.asc": pgp.armored_secret,
        "README": b"ignored",
        "x.vault-token": b"ignored too",
        "sops.vault-token": b"s.token",
    }
    ring = Keyring.from_secret_data(data, SECRET)
    for text in (
        sops_encrypt(PLAIN, "yaml", age=age_keys[:1]),
        sops_encrypt(PLAIN, "yaml", pgp=[pgp]),
    ):
        assert plain_of(decrypt_document(load(text), ring, verify_mac=True))["kind"] == "Secret"


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        (
            "bad.agekey",
            b"nonsense",
            "failed to parse and add to age identities: unknown identity type",
        ),
        ("bad.asc", b"nonsense", "cannot read OpenPGP data: "),
    ],
)
def test_secret_entry_that_fails_to_import(name: str, value: bytes, reason: str) -> None:
    with pytest.raises(KeyImportError) as caught:
        Keyring.from_secret_data({name: value}, SECRET)
    assert str(caught.value).startswith(
        f"failed to import '{name}' data from sops decryption Secret '{SECRET}': {reason}"
    )


def test_controller_wide_age_secret_takes_only_age_keys(age_keys: list[AgeKey]) -> None:
    ring = Keyring.from_secret_data(
        {"key.agekey": age_keys[0].key_file().encode(), "gpg.asc": b"not read"},
        SECRET,
        age_only=True,
    )
    text = sops_encrypt(PLAIN, "yaml", age=age_keys[:1])
    assert plain_of(decrypt_document(load(text), ring, verify_mac=True))["kind"] == "Secret"
    with pytest.raises(
        KeyImportError,
        match=f"^failed to import 'x.agekey' data from sops SOPS age decryption Secret '{SECRET}'",
    ):
        Keyring.from_secret_data({"x.agekey": b"bad"}, SECRET, age_only=True)


def test_kms_and_vault_keys_fail_clearly(age_keys: list[AgeKey]) -> None:
    text = sops_encrypt(PLAIN, "yaml", age=age_keys[:1])
    doc = load(text)
    # sops cannot make KMS or Vault keys offline; the entries are added to a real file's
    # metadata (which the MAC does not cover), as a file encrypted for both would carry them.
    doc.metadata.key_groups[0] += [
        MasterKey("kms", "arn:aws:kms:eu-west-1:111122223333:key/k", "AQICAH..."),
        MasterKey("hc_vault", "https://vault:8200/v1/sops/keys/k", "vault:v1:..."),
        MasterKey("gcp_kms", "projects/p/locations/l/keyRings/r/cryptoKeys/k", "CiQA..."),
        MasterKey("azure_kv", "https://v.vault.azure.net/keys/k/1", "abc"),
    ]
    ring = Keyring.from_secret_data({"sops.aws-kms": b"aws_access_key_id: x"}, SECRET)
    with pytest.raises(DataKeyError) as caught:
        decrypt_document(doc, ring, verify_mac=True)
    message = str(caught.value)
    # age is tried first, then the others in file order.
    assert (
        f"({age_keys[0].recipient}: failed to load age identities: none was imported "
        "(decryption Secret entries ending in '.agekey'); "
        "arn:aws:kms:eu-west-1:111122223333:key/k: AWS KMS keys are not supported by tidal "
        "(the 'sops.aws-kms' entry of the decryption Secret is not used); "
        "https://vault:8200/v1/sops/keys/k: HashiCorp Vault keys are not supported by tidal; "
        "projects/p/locations/l/keyRings/r/cryptoKeys/k: GCP KMS keys are not supported by tidal; "
        "https://v.vault.azure.net/keys/k/1: Azure Key Vault keys are not supported by tidal)"
    ) in message
    # With the age key at hand the unsupported entries do not matter.
    assert (
        plain_of(decrypt_document(doc, age_ring(age_keys[0]), verify_mac=True))["kind"] == "Secret"
    )


# --- Shamir key groups ------------------------------------------------------------------------


def shamir_file(
    workdir: Path, groups: list[dict[str, Any]], threshold: int, env: dict[str, str] | None = None
) -> bytes:
    rule = {"shamir_threshold": threshold, "key_groups": groups}
    (workdir / ".sops.yaml").write_text(yaml.safe_dump({"creation_rules": [rule]}))
    return sops_encrypt(PLAIN, "yaml", workdir=workdir)


def test_two_groups_threshold_two(age_keys: list[AgeKey], tmp_path: Path) -> None:
    a, b, _ = age_keys
    text = shamir_file(tmp_path, [{"age": [a.recipient]}, {"age": [b.recipient]}], 2)
    doc = load(text)
    assert doc.metadata.shamir_threshold == 2 and len(doc.metadata.key_groups) == 2
    decrypt_document(doc, age_ring(a, b), verify_mac=True)
    assert plain_of(doc) == json.loads(sops_decrypt(text, "yaml", age=[a, b], out_fmt="json"))
    with pytest.raises(DataKeyError) as caught:
        age_ring(a).data_key(load(text).metadata)
    message = str(caught.value)
    assert "Group 0: SUCCESS. Group 1: FAILED (" in message
    assert message.endswith(
        "Recovery failed because the file was encrypted with a Shamir threshold of 2, but only "
        "1 part(s) were successfully recovered, one for each successful key group. In order for "
        "SOPS to recover the file, at least 2 groups have to be successful. In order for a group "
        "to be successful, decryption has to succeed with any of the keys in that key group."
    )


def test_threshold_reached_with_a_group_missing(
    age_keys: list[AgeKey], pgp: PgpKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, c = age_keys
    monkeypatch.setenv("GNUPGHOME", str(pgp.home))
    groups = [
        {"age": [a.recipient]},
        {"age": [b.recipient], "pgp": [pgp.fingerprint]},
        {"age": [c.recipient]},
    ]
    text = shamir_file(tmp_path, groups, 2)
    for ring in (age_ring(a, c), age_ring(b, c)):
        assert plain_of(decrypt_document(load(text), ring, verify_mac=True))["kind"] == "Secret"
    ring = age_ring(a)
    ring.import_pgp(pgp.armored_secret)
    assert plain_of(decrypt_document(load(text), ring, verify_mac=True))["kind"] == "Secret"


def test_shamir_combine_errors() -> None:
    with pytest.raises(SopsError, match="less than two parts"):
        shamir.combine([b"ab\x01"])
    with pytest.raises(SopsError, match="all parts must be the same length"):
        shamir.combine([b"ab\x01", b"a\x02"])
    with pytest.raises(SopsError, match="duplicate part detected"):
        shamir.combine([b"ab\x01", b"cd\x01"])
    with pytest.raises(SopsError, match="parts must be at least two bytes"):
        shamir.combine([b"\x01", b"\x02"])


# --- the whole decryption -------------------------------------------------------------------


def test_mac_check_on_and_off(age_keys: list[AgeKey]) -> None:
    text = sops_encrypt(PLAIN, "yaml", age=age_keys[:1], args=["--encrypted-regex", "^stringData$"])
    ring = age_ring(age_keys[0])

    def tampered() -> Document:
        doc = load(text)
        item = next(i for i in doc.branches[0] if i.key == "kind")
        item.value = "ConfigMap"
        return doc

    with pytest.raises(MacError, match=r"^failed to verify sops data integrity: the MAC does not"):
        decrypt_document(tampered(), ring, verify_mac=True)
    assert plain_of(decrypt_document(tampered(), ring, verify_mac=False))["kind"] == "ConfigMap"


def test_comment_regex_document_without_its_comments(
    age_keys: list[AgeKey], tmp_path: Path
) -> None:
    rule = {"age": age_keys[0].recipient, "encrypted_comment_regex": "sops:enc"}
    (tmp_path / ".sops.yaml").write_text(yaml.safe_dump({"creation_rules": [rule]}))
    text = sops_encrypt("# sops:enc\nsecret: s3cr3t\nplain: 1\n", "yaml", workdir=tmp_path)
    ring = age_ring(age_keys[0])
    with pytest.raises(MacError, match="not supported for data encrypted with comment regexes"):
        decrypt_document(load(text), ring, verify_mac=True, comments_lost=True)
    doc = decrypt_document(load(text), ring, verify_mac=False, comments_lost=True)
    assert plain_of(doc) == {"secret": "s3cr3t", "plain": 1}
    # With its comments the document decrypts as usual, MAC and all.
    assert plain_of(decrypt_document(load(text), ring, verify_mac=True)) == {
        "secret": "s3cr3t",
        "plain": 1,
    }


def test_errors_never_show_values_or_keys(age_keys: list[AgeKey]) -> None:
    text = sops_encrypt(PLAIN, "yaml", age=age_keys[:1])
    doc = load(text)
    password = doc.branches[0][3].value[0]
    assert isinstance(password, Item) and password.key == "password"
    password.value = password.value.replace("type:str", "type:bool")
    with pytest.raises(SopsError) as caught:
        decrypt_document(doc, age_ring(age_keys[0]), verify_mac=True)
    assert "hunter2" not in str(caught.value) and "ENC[" not in str(caught.value)


def test_import_age_returns_the_recipients(age_keys: list[AgeKey]) -> None:
    text = "# keys\n" + "".join(k.key_file() for k in age_keys[:2])
    assert Keyring().import_age(text) == [k.recipient for k in age_keys[:2]]
