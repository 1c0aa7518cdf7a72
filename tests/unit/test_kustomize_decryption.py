"""spec.decryption inside a build: which files Flux decrypts before kustomize runs, in which
format, without writing to the shared artifact; the objects decrypted after the build; the MAC
checked on the files as committed; and builds with plaintext never cached.

Every encrypted file is made by the real sops binary (testenv.sops_tools).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testenv.sops_tools import AgeKey, sops_decrypt, sops_encrypt
from tidal.kustomize import build as kb
from tidal.kustomize.confine import SecretSource, plan
from tidal.kustomize.decryption import DecryptionError, SopsDecryptor
from tidal.sops.keys import Keyring

LIMIT = 64 << 20
KEY = AgeKey.generate()
OTHER = AgeKey.generate()
REGEX = ["--encrypted-regex", "^(data|stringData)$"]
DISABLED = "  annotations:\n    kustomize.toolkit.fluxcd.io/decrypt: Disabled\n"


def keyring(*keys: AgeKey) -> Keyring:
    ring = Keyring()
    for key in keys:
        ring.import_age(key.key_file())
    return ring


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def secret(name: str, **string_data: str) -> str:
    body = "".join(f"  {k}: {v}\n" for k, v in string_data.items())
    return f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\nstringData:\n{body}"


def snapshot(root: Path) -> list[tuple[str, int, bytes]]:
    return sorted(
        (p.relative_to(root).as_posix(), p.stat().st_ino, p.read_bytes())
        for p in root.rglob("*")
        if p.is_file()
    )


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[kb.Engine]:
    engine = kb.Engine(isolation="thread")
    yield engine
    await engine.aclose()


async def build(
    engine: kb.Engine, root: Path, decryptor: SopsDecryptor | None, cache_key: str = ""
) -> list[dict[str, Any]]:
    objects = await kb.build_kustomization(
        root,
        "app",
        timeout=60,
        max_output_bytes=LIMIT,
        engine=engine,
        decryptor=decryptor,
        cache_key=cache_key,
    )
    return decryptor.decrypt_objects(objects) if decryptor is not None else objects


def data_of(objects: list[dict[str, Any]], name: str) -> dict[str, str]:
    obj = next(o for o in objects if o["metadata"]["name"] == name)
    return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}


def test_the_plan_lists_what_flux_decrypts(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "app/kustomization.yaml": (
                "resources: [s.yaml]\n"
                "patches: [{path: p.yaml}]\n"
                "secretGenerator:\n- name: g\n  envs: [a.env, b.yaml]\n"
                "  files: [c.json, key.yaml=d.bin]\n"
                "configMapGenerator:\n- name: c\n  envs: [cm.env]\n"
            ),
            "app/s.yaml": secret("s", a="b"),
            "app/p.yaml": "",
            "app/a.env": "",
            "app/b.yaml": "",
            "app/c.json": "",
            "app/d.bin": "",
            "app/cm.env": "",
        },
    )
    assert plan(tmp_path, "app").secret_sources == (
        SecretSource("app/a.env", "env", "a.env"),
        SecretSource("app/b.yaml", "env", "b.yaml"),
        SecretSource("app/c.json", "file", "c.json"),
        # a `key=path` entry: the format is the data key's
        SecretSource("app/d.bin", "file", "key.yaml"),
        SecretSource("app/p.yaml", "patch", "p.yaml"),
    )


async def test_generator_sources_are_decrypted_in_the_view_only(
    tmp_path: Path, engine: kb.Engine
) -> None:
    encrypted_json = sops_encrypt('{"token": "t-1", "n": 2}', "json", age=[KEY])
    encrypted_yaml = sops_encrypt("db:\n  password: y-1\n  port: 5432\n", "yaml", age=[KEY])
    encrypted_ini = sops_encrypt("[db]\npassword = i-1\n", "ini", age=[KEY])
    write(
        tmp_path,
        {
            "app/kustomization.yaml": (
                "generatorOptions: {disableNameSuffixHash: true}\n"
                "secretGenerator:\n- name: gen\n  envs: [creds.env]\n"
                "  files: [config.json, raw.txt, values.yaml, app.ini, cert.bin]\n"
            ),
            "app/creds.env": sops_encrypt("USER=admin\nPASS=p-1\n", "dotenv", age=[KEY]),
            "app/config.json": encrypted_json,
            "app/values.yaml": encrypted_yaml,
            "app/app.ini": encrypted_ini,
            "app/cert.bin": sops_encrypt(b"-----BEGIN CERT-----\nb-1\n", "binary", age=[KEY]),
            "app/raw.txt": "not encrypted at all\n",
        },
    )
    before = snapshot(tmp_path)
    decryptor = SopsDecryptor(keyring(KEY))
    objects = await build(engine, tmp_path, decryptor)
    assert data_of(objects, "gen") == {
        "USER": "admin",
        "PASS": "p-1",
        "config.json": sops_decrypt(encrypted_json, "json", age=[KEY]).decode(),
        "values.yaml": sops_decrypt(encrypted_yaml, "yaml", age=[KEY]).decode(),
        "app.ini": sops_decrypt(encrypted_ini, "ini", age=[KEY]).decode(),
        "cert.bin": "-----BEGIN CERT-----\nb-1\n",
        "raw.txt": "not encrypted at all\n",
    }
    assert snapshot(tmp_path) == before, "the artifact still holds only ciphertext"


async def test_secrets_are_decrypted_after_the_build_with_kustomize_changes(
    tmp_path: Path, engine: kb.Engine
) -> None:
    write(
        tmp_path,
        {
            # kustomize adds a namespace and a label: the MAC is still checked on the file.
            "app/kustomization.yaml": (
                "namespace: prod\nlabels: [{pairs: {team: a}}]\nresources: [s.yaml, off.yaml]\n"
            ),
            "app/s.yaml": sops_encrypt(
                secret("s", password="pw", port="5432"), "yaml", age=[KEY], args=REGEX
            ),
            # left encrypted on purpose, for keys this cluster does not have
            "app/off.yaml": sops_encrypt(
                secret("off", password="x").replace("metadata:\n", f"metadata:\n{DISABLED}"),
                "yaml",
                age=[OTHER],
                args=REGEX,
            ),
        },
    )
    decryptor = SopsDecryptor(keyring(KEY))
    objects = await build(engine, tmp_path, decryptor)
    s = next(o for o in objects if o["metadata"]["name"] == "s")
    # sops keeps the type it encrypted: the port comes back as the number it was
    assert s["stringData"] == {"password": "pw", "port": 5432}
    assert "sops" not in s
    assert s["metadata"]["namespace"] == "prod" and s["metadata"]["labels"] == {"team": "a"}
    off = next(o for o in objects if o["metadata"]["name"] == "off")
    assert "sops" in off and off["stringData"]["password"].startswith("ENC[")


async def test_objects_other_than_secrets_keep_their_integers(tmp_path: Path) -> None:
    manifest = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  replicas: 3\n"
        "  template:\n    spec:\n      containers:\n      - name: a\n        env:\n"
        "        - {name: TOKEN, value: t-1}\n        - {name: RATIO, value: '0.5'}\n"
    )
    encrypted = sops_encrypt(manifest, "yaml", age=[KEY], args=["--encrypted-regex", "^value$"])
    obj = yaml.safe_load(encrypted)
    out = SopsDecryptor(keyring(KEY)).decrypt_object(obj)
    assert out["spec"]["replicas"] == 3 and isinstance(out["spec"]["replicas"], int)
    env = out["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "TOKEN", "value": "t-1"}, {"name": "RATIO", "value": "0.5"}]
    assert "sops" not in out


async def test_a_secret_data_value_holding_a_sops_file_is_decrypted(tmp_path: Path) -> None:
    encrypted = sops_encrypt("a: 1\nb: secret\n", "yaml", age=[KEY])
    obj = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "ns"},
        "data": {
            "values.yaml": base64.b64encode(encrypted).decode(),
            "plain": base64.b64encode(b"hello").decode(),
        },
    }
    out = SopsDecryptor(keyring(KEY)).decrypt_object(obj)
    assert base64.b64decode(out["data"]["values.yaml"]) == sops_decrypt(
        encrypted, "yaml", age=[KEY]
    )
    assert base64.b64decode(out["data"]["plain"]) == b"hello"


async def test_a_tampered_plain_value_fails_the_mac_check(
    tmp_path: Path, engine: kb.Engine
) -> None:
    good = sops_encrypt(
        secret("s", password="pw", user="app"),
        "yaml",
        age=[KEY],
        args=["--encrypted-regex", "^password$"],
    )
    write(
        tmp_path,
        {"app/kustomization.yaml": "resources: [s.yaml]\n", "app/s.yaml": good},
    )
    assert await build(engine, tmp_path, SopsDecryptor(keyring(KEY)))
    (tmp_path / "app/s.yaml").write_bytes(good.replace(b"user: app", b"user: root"))
    with pytest.raises(DecryptionError) as err:
        await build(engine, tmp_path, SopsDecryptor(keyring(KEY)))
    message = str(err.value)
    assert "app/s.yaml" in message and "failed to verify sops data integrity" in message
    assert "pw" not in message.replace("sops", "")


async def test_a_missing_key_names_the_recipients(tmp_path: Path, engine: kb.Engine) -> None:
    write(
        tmp_path,
        {
            "app/kustomization.yaml": "resources: [s.yaml]\n",
            "app/s.yaml": sops_encrypt(secret("s", password="pw"), "yaml", age=[KEY], args=REGEX),
        },
    )
    with pytest.raises(DecryptionError) as err:
        await build(engine, tmp_path, SopsDecryptor(keyring(OTHER)))
    assert "cannot get sops data key" in str(err.value)
    assert KEY.recipient in str(err.value)


async def test_builds_that_read_plaintext_are_not_cached(tmp_path: Path, engine: kb.Engine) -> None:
    write(
        tmp_path,
        {
            "app/kustomization.yaml": (
                "generatorOptions: {disableNameSuffixHash: true}\n"
                "secretGenerator:\n- name: gen\n  envs: [creds.env]\n"
            ),
            "app/creds.env": sops_encrypt("PASS=p-1\n", "dotenv", age=[KEY]),
        },
    )
    objects = await build(engine, tmp_path, SopsDecryptor(keyring(KEY)), cache_key="sha256:x")
    assert data_of(objects, "gen") == {"PASS": "p-1"}
    # The key is rotated out of the Secret: the same artifact must fail, not come from a cache.
    with pytest.raises(DecryptionError):
        await build(engine, tmp_path, SopsDecryptor(keyring(OTHER)), cache_key="sha256:x")


async def test_builds_without_plaintext_are_cached(tmp_path: Path, engine: kb.Engine) -> None:
    write(
        tmp_path,
        {
            "app/kustomization.yaml": "resources: [s.yaml]\n",
            "app/s.yaml": sops_encrypt(secret("s", password="pw"), "yaml", age=[KEY], args=REGEX),
        },
    )
    first = await build(engine, tmp_path, SopsDecryptor(keyring(KEY)), cache_key="sha256:y")
    (tmp_path / "app/s.yaml").unlink()  # a cache hit never reads the tree
    again = await build(engine, tmp_path, SopsDecryptor(keyring(KEY)), cache_key="sha256:y")
    assert again == first and json.dumps(again).count("ENC[") == 0
    # The objects are still decrypted at each reconcile: without the key, no plaintext.
    with pytest.raises(DecryptionError):
        await build(engine, tmp_path, SopsDecryptor(keyring(OTHER)), cache_key="sha256:y")
