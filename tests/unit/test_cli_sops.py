"""The CLI's SOPS verbs offline: `tidal create secret age --export` and
`tidal build kustomization --decrypt` with local keys, on files made by the real sops binary."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from testenv.sops_tools import AgeKey, sops_decrypt, sops_encrypt
from tidal.cli.main import cli

KEY = AgeKey.generate()
REGEX = ["--encrypted-regex", "^(data|stringData)$"]


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_create_secret_age_exports_the_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "age.agekey"
    key_file.write_text(KEY.key_file())
    code, out, err = invoke(
        "create", "secret", "age", "sops-age", "--age-key-file", str(key_file), "--export"
    )
    assert code == 0, err
    assert out.startswith("---\n")
    secret = yaml.safe_load(out)
    assert secret == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "sops-age", "namespace": "flux-system"},
        "stringData": {"age.agekey": KEY.key_file()},
    }


def test_create_secret_age_refuses_what_is_not_an_age_key(tmp_path: Path) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text("-----BEGIN PGP PRIVATE KEY BLOCK-----\n")
    code, _, err = invoke(
        "create", "secret", "age", "sops-age", "--age-key-file", str(key_file), "--export"
    )
    assert code != 0
    assert "invalid age key file" in err
    code, _, err = invoke("create", "secret", "age", "sops-age", "--export")
    assert code != 0 and "--age-key-file is required" in err


@pytest.fixture
def encrypted_dir(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    app.mkdir()
    (app / "kustomization.yaml").write_text(
        "resources: [db.yaml]\ngeneratorOptions: {disableNameSuffixHash: true}\n"
        "secretGenerator:\n- name: gen\n  envs: [creds.env]\n"
    )
    (app / "db.yaml").write_bytes(
        sops_encrypt(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: pw-1\n",
            "yaml",
            age=[KEY],
            args=REGEX,
        )
    )
    (app / "creds.env").write_bytes(sops_encrypt("PASS=env-1\n", "dotenv", age=[KEY]))
    (tmp_path / "ks.yaml").write_text(
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"
        "metadata: {name: app, namespace: flux-system}\n"
        "spec:\n  interval: 10m\n  path: ./app\n  prune: true\n"
        "  sourceRef: {kind: GitRepository, name: repo}\n"
        "  decryption: {provider: sops, secretRef: {name: sops-age}}\n"
    )
    return tmp_path


def build(root: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    return invoke(
        "build",
        "kustomization",
        "app",
        "--path",
        str(root / "app"),
        "--kustomization-file",
        str(root / "ks.yaml"),
        "--dry-run",
        *extra,
        env={
            "SOPS_AGE_KEY": "",
            "SOPS_AGE_KEY_FILE": "",
            "XDG_CONFIG_HOME": str(root),
            **(env or {}),
        },
    )


def by_name(out: str) -> dict[str, dict[str, object]]:
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all(out) if d}


def test_build_masks_without_decrypt_and_decrypts_with_local_keys(encrypted_dir: Path) -> None:
    code, out, err = build(encrypted_dir)
    assert code == 0, err
    assert "pw-1" not in out and "**SOPS**" in out

    code, out, err = build(encrypted_dir, "--decrypt", env={"SOPS_AGE_KEY": KEY.identity})
    assert code == 0, err
    objects = by_name(out)
    assert objects["db"]["stringData"] == {"password": "pw-1"}
    assert "sops" not in objects["db"]
    assert objects["gen"]["data"] == {"PASS": "ZW52LTE="}  # base64 of env-1


def test_build_decrypt_reads_key_files_and_the_sops_default_location(
    encrypted_dir: Path, tmp_path: Path
) -> None:
    key_file = tmp_path / "k.agekey"
    key_file.write_text(KEY.key_file())
    code, out, err = build(encrypted_dir, "--decrypt", "--decryption-key-file", str(key_file))
    assert code == 0, err
    assert by_name(out)["db"]["stringData"] == {"password": "pw-1"}

    default = encrypted_dir / "sops" / "age" / "keys.txt"  # XDG_CONFIG_HOME is the root here
    default.parent.mkdir(parents=True)
    default.write_text(KEY.key_file())
    code, out, err = build(encrypted_dir, "--decrypt")
    assert code == 0, err
    assert by_name(out)["db"]["stringData"] == {"password": "pw-1"}


def test_build_decrypt_without_the_key_fails_clearly(encrypted_dir: Path) -> None:
    code, out, err = build(
        encrypted_dir, "--decrypt", env={"SOPS_AGE_KEY": AgeKey.generate().identity}
    )
    assert code != 0
    assert "cannot get sops data key" in err and KEY.recipient in err
    assert "pw-1" not in out + err


def test_the_decrypted_env_file_equals_sops_output() -> None:
    encrypted = sops_encrypt("A=1\nB=two words\n", "dotenv", age=[KEY])
    assert sops_decrypt(encrypted, "dotenv", age=[KEY]) == b"A=1\nB=two words\n"
