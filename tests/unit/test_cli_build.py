"""`tidal build kustomization` offline (`--dry-run --kustomization-file`), checked against
Flux's own golden files (fluxcd/flux2 cmd/flux/testdata/build-kustomization) and, where the
flux v2.9.5 binary is built, against its output on the same directories byte for byte; and the
dyff report `tidal diff kustomization` prints, checked against flux's diff golden files."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from testenv import flux_cli
from tidal.cli import dyff, sopsmask
from tidal.cli.main import cli

CORPUS = Path("/work/shared/corpus")
FLUX2 = CORPUS / "fluxcd__flux2" / "cmd" / "flux" / "testdata"
HELM_EXAMPLE = CORPUS / "fluxcd__flux2-kustomize-helm-example"
NAMESPACE = "flux-test"

pytestmark = pytest.mark.skipif(not FLUX2.is_dir(), reason="the fluxcd/flux2 corpus is absent")


def _writable_copy(src: Path, dst: Path) -> Path:
    # flux writes a generated kustomization.yaml into the directory it builds; corpus files are
    # read-only.
    shutil.copytree(src, dst)
    for p in [dst, *dst.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    return dst


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = _writable_copy(
        FLUX2 / "build-kustomization", tmp_path_factory.mktemp("flux2") / "build-kustomization"
    )
    text = (root / "podinfo-kustomization.yaml").read_text()
    (root / "ks.yaml").write_text(text.replace("{{ .fluxns }}", NAMESPACE))
    return root


def tidal_build(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["build", "kustomization", *args])
    return result.exit_code, result.stdout, result.stderr


def golden(name: str) -> str:
    return (FLUX2 / "build-kustomization" / name).read_text().replace("{{ .fluxns }}", NAMESPACE)


GOLDEN_CASES = [
    ("podinfo", [], "podinfo-result.yaml"),
    ("delete-service", [], "podinfo-without-service-result.yaml"),
    ("var-substitution", [], "podinfo-with-var-substitution-result.yaml"),
    ("ignore", ["--ignore-paths", "!configmap.yaml,!secret.yaml"],
     "podinfo-with-ignore-result.yaml"),
    (
        "podinfo-with-my-app",
        ["--recursive", "--local-sources", "GitRepository/default/podinfo={root}"],
        "podinfo-with-my-app-result.yaml",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("directory", "extra", "result"), GOLDEN_CASES)
def test_build_matches_flux_golden_files(
    fixtures: Path, directory: str, extra: list[str], result: str
) -> None:
    args = [a.replace("{root}", str(fixtures)) for a in extra]
    code, out, err = tidal_build(
        "podinfo", "--path", str(fixtures / directory), "--kustomization-file",
        str(fixtures / "ks.yaml"), "--dry-run", "-n", NAMESPACE, *args,
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out == golden(result)


def test_build_never_writes_into_the_directory(fixtures: Path, tmp_path: Path) -> None:
    target = _writable_copy(fixtures / "ignore", tmp_path / "ignore")
    before = sorted(p.relative_to(target) for p in target.rglob("*"))
    code, _, _ = tidal_build(
        "podinfo", "--path", str(target), "--kustomization-file", str(fixtures / "ks.yaml"),
        "--dry-run", "-n", NAMESPACE,
    )  # fmt: skip
    assert code == 0
    assert sorted(p.relative_to(target) for p in target.rglob("*")) == before


def test_sops_ciphertext_is_masked_and_plain_secrets_are_not(fixtures: Path) -> None:
    _, out, _ = tidal_build(
        "podinfo", "--path", str(fixtures / "podinfo"), "--kustomization-file",
        str(fixtures / "ks.yaml"), "--dry-run", "-n", NAMESPACE,
    )  # fmt: skip
    assert "ENC[" not in out and "sops:" not in out
    assert "password: MWYyZDFlMmU2N2Rm" in out  # the literal secretGenerator value


def test_plain_secret_with_an_encrypted_value_keeps_the_others() -> None:
    enc = "c29wczogRU5DW0FFU10="  # "sops: ENC[AES]"
    masked = sopsmask.mask_secret(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
         "data": {"a": enc, "b": "cGxhaW4="}, "stringData": {"c": "x"}}
    )  # fmt: skip
    assert masked["data"] == {"a": sopsmask.MASK_BASE64, "b": "cGxhaW4="}
    assert masked["stringData"] == {"c": "x"}


ERROR_CASES: list[tuple[list[str], str]] = [
    ([], "✗ kustomization name is required\n"),
    (["podinfo"], '✗ invalid resource path ""\n'),
    (["podinfo", "--path", "{root}/podinfo", "--dry-run"],
     "✗ dry-run mode requires a kustomization file\n"),
    (["podinfo", "--path", "{root}/podinfo", "--dry-run", "--kustomization-file", "{root}/nope"],
     '✗ invalid kustomization file "{root}/nope"\n'),
    (["other", "--path", "{root}/podinfo", "--dry-run", "--kustomization-file", "{root}/ks.yaml"],
     "✗ failed to get kustomization object: failed find kustomization with name 'other' and "
     "namespace 'flux-system' in file '{root}/ks.yaml'\n"),
    (["podinfo", "--path", "{root}/podinfo-with-my-app", "--dry-run", "--kustomization-file",
      "{root}/ks.yaml", "-r", "-n", NAMESPACE],
     "✗ cannot get local path for GitRepository/default/podinfo of kustomization my-app\n"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), ERROR_CASES)
def test_build_errors_read_as_flux_prints_them(
    fixtures: Path, args: list[str], message: str
) -> None:
    code, out, err = tidal_build(*[a.replace("{root}", str(fixtures)) for a in args])
    assert (code, out, err) == (1, "", message.replace("{root}", str(fixtures)))


# -- byte for byte against the flux binary --------------------------------------------------------

needs_flux = pytest.mark.skipif(not flux_cli.is_built(), reason="flux CLI not built")


def _run(argv: list[str]) -> tuple[int, str, str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def _corpus_cases() -> list[tuple[str, str, str]]:
    """(name, --path, --kustomization-file) for the Kustomizations of a corpus repository."""
    clusters = "clusters/staging"
    return [
        ("apps", "apps/staging", f"{clusters}/apps.yaml"),
        ("infra-controllers", "infrastructure/controllers", f"{clusters}/infrastructure.yaml"),
        ("infra-configs", "infrastructure/configs", f"{clusters}/infrastructure.yaml"),
        ("infra-configs", "infrastructure/configs", "clusters/production/infrastructure.yaml"),
        ("apps", "apps/production", "clusters/production/apps.yaml"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def helm_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not HELM_EXAMPLE.is_dir():
        pytest.skip("the flux2-kustomize-helm-example corpus is absent")
    return _writable_copy(HELM_EXAMPLE, tmp_path_factory.mktemp("corpus") / "repo")


def _both(args: list[str]) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    ours = _run([sys.executable, "-m", "tidal", "build", "kustomization", *args])
    theirs = _run([str(flux_cli.flux_path()), "build", "kustomization", *args])
    return ours, theirs


@needs_flux
@pytest.mark.parametrize(("name", "path", "file"), _corpus_cases())
def test_build_of_corpus_repository_equals_flux(
    helm_example: Path, name: str, path: str, file: str
) -> None:
    ours, theirs = _both(
        [name, "--path", str(helm_example / path), "--kustomization-file",
         str(helm_example / file), "--dry-run"]
    )  # fmt: skip
    assert theirs[0] == 0
    assert ours == theirs


@needs_flux
def test_build_errors_equal_flux(fixtures: Path) -> None:
    cases = [
        ["podinfo", "--path", str(fixtures / "nope")],
        ["podinfo", "--path", str(fixtures / "podinfo-with-my-app"), "--kustomization-file",
         str(fixtures / "ks.yaml"), "--dry-run", "-r", "-n", NAMESPACE, "--local-sources",
         f"GitRepository/default/podinfo={fixtures}/nope"],
    ]  # fmt: skip
    for args in cases:
        ours, theirs = _both(args)
        assert ours == theirs


# -- the diff report ------------------------------------------------------------------------------


def _golden_diff(name: str) -> str:
    return (FLUX2 / "diff-kustomization" / name).read_text()


def _service(port: int, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "podinfo", "namespace": "default"}
    if labels:
        meta["labels"] = labels
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": meta,
        "spec": {"ports": [{"name": "http", "port": port, "protocol": "TCP"},
                           {"name": "grpc", "port": 9999, "protocol": "TCP"}]},
    }  # fmt: skip


def test_dyff_value_change_in_a_named_list_entry() -> None:
    text = dyff.report(_service(9899), _service(9898))
    assert f"► Service/default/podinfo drifted\n{text}" in _golden_diff(
        "diff-with-drifted-service.golden"
    )


def test_dyff_map_entry_added() -> None:
    labels = {"kustomize.toolkit.fluxcd.io/name": "podinfo",
              "kustomize.toolkit.fluxcd.io/namespace": ""}  # fmt: skip
    text = dyff.report(_service(9898), _service(9898, labels))
    assert f"► Service/default/podinfo drifted\n{text}" in _golden_diff(
        "diff-with-drift-ignore.golden"
    )


def test_dyff_removal_and_addition_side_by_side() -> None:
    def secret(key: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "podinfo-token-77t89m9b67", "namespace": "default"},
                "data": {key: "*****"}}  # fmt: skip

    text = dyff.report(secret("drift-key"), secret("token"))
    assert f"drifted\n{text}" in _golden_diff("diff-with-drifted-key-sops-secret.golden")


def test_dyff_masked_secret_values() -> None:
    def secret(value: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "db-user-pass-bkbd782d2c", "namespace": "default"},
                "data": {"password": value}}  # fmt: skip

    text = dyff.report(secret("*** (before)"), secret("*** (after)"))
    assert _golden_diff("diff-with-drifted-secret.golden").endswith(f"drifted\n{text}")


def test_dyff_without_difference_is_a_blank_line() -> None:
    assert dyff.report(_service(1), _service(1)) == "\n"
