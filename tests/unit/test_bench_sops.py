"""bench/sops.py's trees and readings: both sides must get the same plaintext, only the
encrypted files may go through sops, and a log line is about decryption by its message, not by
the names in it."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_sops", BENCH / "sops.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


def test_plain_tree_builds_what_the_checks_expect(bench: ModuleType) -> None:
    files = bench.secrets_tree(3, "flux-plain")

    assert set(files) == {
        "kustomization.yaml",
        "secret-0000.yaml",
        "secret-0001.yaml",
        "secret-0002.yaml",
        "app.env",
    }
    ks = yaml.safe_load(files["kustomization.yaml"])
    assert ks["resources"] == ["secret-0000.yaml", "secret-0001.yaml", "secret-0002.yaml"]
    assert ks["secretGenerator"] == [
        {"name": "app-env", "namespace": "flux-plain", "envs": ["app.env"]}
    ]
    secret = yaml.safe_load(files["secret-0001.yaml"])
    assert secret["metadata"]["namespace"] == "flux-plain"
    assert bench.decoded(secret) == bench.secret_data(1)
    env = dict(line.split("=", 1) for line in str(files["app.env"]).splitlines())
    assert env == bench.env_data()


def test_sides_differ_only_in_namespace(bench: ModuleType) -> None:
    tidal, flux = bench.secrets_tree(2, "tidal-sops"), bench.secrets_tree(2, "flux-sops")

    assert {k: str(v).replace("tidal-", "flux-") for k, v in tidal.items()} == flux


def test_encrypt_sees_secrets_as_yaml_and_the_env_file_as_dotenv(bench: ModuleType) -> None:
    calls: list[tuple[str, str]] = []

    def encrypt(text: str, fmt: str) -> bytes:
        calls.append((text, fmt))
        return f"ENC[{fmt}]".encode()

    files = bench.secrets_tree(2, "ns", encrypt)

    # kustomization.yaml stays readable: kustomize must find its resources.
    assert "resources:" in str(files["kustomization.yaml"])
    assert files["secret-0000.yaml"] == b"ENC[yaml]"
    assert files["app.env"] == b"ENC[dotenv]"
    assert sorted(fmt for _, fmt in calls) == ["dotenv", "yaml", "yaml"]


def test_sops_version_is_read_from_the_metadata(bench: ModuleType) -> None:
    doc = b"data:\n    k: ENC[...]\nsops:\n    mac: ENC[...]\n    version: 3.11.0\n"

    assert bench.sops_version(doc) == "3.11.0"
    assert bench.sops_version(b"data: {}\n") == "?"


def test_decryption_lines_are_told_by_message_not_by_name(bench: ModuleType) -> None:
    named = {"msg": "server-side apply completed", "name": "sops", "namespace": "flux-sops"}
    failed = {"msg": "Reconciliation failed", "error": "failed to decrypt with sops: no key"}

    assert not bench.mentions_decryption(json.dumps(named))
    assert bench.mentions_decryption(json.dumps(failed))
    assert not bench.mentions_decryption("panic: sops")


def test_table_has_a_ratio_only_with_both_sides_and_no_negatives(bench: ModuleType) -> None:
    res = bench.kb.Results()
    res.put(1, "1. cold", "tidal", 0.5)
    res.put(1, "1. cold", "flux", 2.0)
    res.put(1, "    peak RSS", "flux", 100.0, "MB")
    res.put(6, "6. difference", "tidal", -0.1)
    res.put(6, "6. difference", "flux", 0.2)

    both = bench.table(res, ["flux", "tidal"])
    alone = bench.table(res, ["flux"])

    assert both[0].split() == ["measurement", "flux", "tidal", "t/f"]
    assert both[2].split()[-1] == "0.25"
    assert both[3].endswith("100 MB")
    assert both[4].endswith("-100 ms")  # no ratio of a negative difference
    assert alone[2].split()[-2:] == ["2.00", "s"]


def test_age_key_file_is_what_flux_reads(bench: ModuleType) -> None:
    key = bench.AgeKey.generate()

    secret = bench.age_secret("tidal", key)

    text = secret["stringData"]["age.agekey"]
    assert text.splitlines()[-1].startswith("AGE-SECRET-KEY-1")
    assert key.recipient in text
    assert secret["metadata"]["labels"] == {bench.kb.LABEL: "tidal"}
