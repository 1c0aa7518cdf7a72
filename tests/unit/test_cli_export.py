"""YAML as `flux export` / `flux create ... --export` print it (expected texts come from the
flux v2.9.5 binary run on the same input)."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from tidal.cli import render
from tidal.cli.gitsecret import GitSecretOptions, export_text, git_secret
from tidal.cli.main import cli
from tidal.cli.objects import GIT_REPOSITORY
from tidal.kube import goyaml


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--kubeconfig", "/nonexistent", *args])
    return result.exit_code, result.stdout, result.stderr


def test_create_source_git_export_minimal() -> None:
    code, out, err = run(
        "create", "source", "git", "podinfo", "--url=https://github.com/stefanprodan/podinfo",
        "--branch=master", "--export",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out == (
        "---\n"
        "apiVersion: source.toolkit.fluxcd.io/v1\n"
        "kind: GitRepository\n"
        "metadata:\n"
        "  name: podinfo\n"
        "  namespace: flux-system\n"
        "spec:\n"
        "  interval: 1m0s\n"
        "  ref:\n"
        "    branch: master\n"
        "  url: https://github.com/stefanprodan/podinfo\n"
    )


def test_create_source_git_export_every_flag() -> None:
    code, out, _ = run(
        "create", "source", "git", "podinfo", "--url=https://github.com/stefanprodan/podinfo",
        "--tag-semver", ">=3.2.0 <3.3.0", "--interval", "90s", "--label", "a=b,c=true",
        "--ignore-paths", "a/,b/", "--sparse-checkout-paths", "x,y", "--recurse-submodules",
        "--secret-ref", "s", "--fetch-timeout", "2m", "--provider", "github", "--export",
    )  # fmt: skip
    assert code == 0
    assert out == (
        "---\n"
        "apiVersion: source.toolkit.fluxcd.io/v1\n"
        "kind: GitRepository\n"
        "metadata:\n"
        "  labels:\n"
        "    a: b\n"
        '    c: "true"\n'
        "  name: podinfo\n"
        "  namespace: flux-system\n"
        "spec:\n"
        "  ignore: |-\n"
        "    a/\n"
        "    b/\n"
        "  interval: 1m30s\n"
        "  provider: github\n"
        "  recurseSubmodules: true\n"
        "  ref:\n"
        "    semver: '>=3.2.0 <3.3.0'\n"
        "  secretRef:\n"
        "    name: s\n"
        "  sparseCheckout:\n"
        "  - x\n"
        '  - "y"\n'
        "  timeout: 2m0s\n"
        "  url: https://github.com/stefanprodan/podinfo\n"
    )


@pytest.mark.parametrize(
    ("flags", "ref"),
    [
        (["--branch=b", "--tag=t", "--tag-semver=s", "--ref-name=n", "--commit=c"], "commit"),
        (["--branch=b", "--tag=t", "--tag-semver=s", "--ref-name=n"], "name"),
        (["--branch=b", "--tag=t", "--tag-semver=s"], "semver"),
        (["--branch=b", "--tag=t"], "tag"),
    ],
)
def test_ref_precedence(flags: list[str], ref: str) -> None:
    code, out, _ = run("create", "source", "git", "app", "--url=https://x/r", *flags, "--export")
    assert code == 0
    spec_ref = out.split("  ref:\n", 1)[1].split("  url:", 1)[0]
    keys = [line.split(":")[0].strip() for line in spec_ref.splitlines()]
    assert ref in keys
    # --commit keeps the branch next to it, as flux does.
    assert keys == (["branch", "commit"] if ref == "commit" else [ref])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url=https://x/r"], "a Git ref is required, use one of the following: --branch, "
         "--tag, --commit, --ref-name or --tag-semver"),
        (["--url=ftp://x/r", "--branch=m"], "git URL scheme 'ftp' not supported, can be: ssh, "
         "http and https"),
        (["--branch=m"], "url is required"),
        (["--url=ssh://x/r", "--branch=m", "--ca-file=/x"], "specifying a CA file is not "
         "supported for Git over SSH"),
        (["--url=https://x/r", "--branch=m", "--label=a"], "invalid label format 'a', must be "
         "key=value"),
    ],
)  # fmt: skip
def test_create_errors_are_flux_s(args: list[str], message: str) -> None:
    assert run("create", "source", "git", "app", *args, "--export") == (1, "", f"✗ {message}\n")


def test_create_names_follow_flux_s_rule() -> None:
    code, _, err = run("create", "source", "git", "x", "--url=https://x/r", "--branch=m")
    assert code == 1
    assert err.startswith("✗ name 'x' is invalid, it should adhere to standard defined in RFC 1123")
    assert run("create", "source", "git")[2] == "✗ name is required\n"


def test_global_flags_work_after_the_verb() -> None:
    _, out, _ = run("create", "source", "git", "app", "--url=https://x/r", "--branch=m", "--export",
                    "-n", "apps")  # fmt: skip
    assert "  namespace: apps\n" in out
    _, out, _ = run("-n", "apps", "create", "source", "git", "app", "--url=https://x/r",
                    "--branch=m", "--export")  # fmt: skip
    assert "  namespace: apps\n" in out
    code, _, err = run("create", "source", "git", "app", "--url=https://x/r", "--branch=m",
                       "-n", "Bad_NS")  # fmt: skip
    assert (code, err) == (1, '✗ namespace must be a valid DNS label: "Bad_NS"\n')


def test_create_secret_git_export_basic_auth() -> None:
    code, out, _ = run(
        "create", "secret", "git", "auth", "--url=https://github.com/x/y", "-u", "user", "-p",
        "pass", "--export",
    )  # fmt: skip
    assert code == 0
    # flux prints the manifest (ending in a line break) with Println: one empty line follows.
    assert out == (
        "---\n"
        "apiVersion: v1\n"
        "kind: Secret\n"
        "metadata:\n"
        "  name: auth\n"
        "  namespace: flux-system\n"
        "stringData:\n"
        "  password: pass\n"
        "  username: user\n"
        "\n"
    )


def test_create_secret_git_export_bearer_and_ca(tmp_path: Any) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    code, out, _ = run(
        "create", "secret", "git", "auth", "--url=https://x/y", "--bearer-token", "tok",
        f"--ca-crt-file={ca}", "--label", "a=b", "--export",
    )  # fmt: skip
    assert code == 0
    assert out == (
        "---\n"
        "apiVersion: v1\n"
        "kind: Secret\n"
        "metadata:\n"
        "  labels:\n"
        "    a: b\n"
        "  name: auth\n"
        "  namespace: flux-system\n"
        "stringData:\n"
        "  bearerToken: tok\n"
        "  ca.crt: |\n"
        "    -----BEGIN CERTIFICATE-----\n"
        "    MIIB\n"
        "    -----END CERTIFICATE-----\n"
        "\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-u", "user"], "for Git over HTTP/S the username and password, or a bearer token is "
         "required"),
        (["-u", "u", "-p", "p", "--bearer-token=t"], "user credentials and bearer token cannot "
         "be used together"),
    ],
)  # fmt: skip
def test_create_secret_git_errors(args: list[str], message: str) -> None:
    result = run("create", "secret", "git", "auth", "--url=https://x/y", *args, "--export")
    assert result == (1, "", f"✗ {message}\n")


def test_git_secret_with_a_key_pair_needs_a_host_key() -> None:
    secret = git_secret(GitSecretOptions(name="s", namespace="ns", bearer_token="t"))
    assert secret["stringData"] == {"bearerToken": "t"}
    assert export_text(secret).endswith("bearerToken: t\n\n")


def _cluster_object(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {
            "name": "app",
            "namespace": "apps",
            "uid": "0d3c8c0e-0000-0000-0000-000000000000",
            "resourceVersion": "42",
            "generation": 3,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "finalizers": ["finalizers.fluxcd.io"],
            "managedFields": [{"manager": "flux", "operation": "Update"}],
            "labels": {"team": "a"},
            "annotations": {"reconcile.fluxcd.io/requestedAt": "2026-01-01T00:00:00Z"},
        },
        "spec": {"url": "https://x/r", "interval": "1m", "timeout": "60s", **spec},
        "status": {"observedGeneration": 3, "conditions": []},
    }


def test_export_keeps_labels_and_annotations_and_drops_the_rest_of_metadata() -> None:
    exported = render.export_object(GIT_REPOSITORY, _cluster_object(ref={"branch": "main"}))
    assert render.document(exported) == (
        "---\n"
        "apiVersion: source.toolkit.fluxcd.io/v1\n"
        "kind: GitRepository\n"
        "metadata:\n"
        "  annotations:\n"
        '    reconcile.fluxcd.io/requestedAt: "2026-01-01T00:00:00Z"\n'
        "  labels:\n"
        "    team: a\n"
        "  name: app\n"
        "  namespace: apps\n"
        "spec:\n"
        "  interval: 1m0s\n"
        "  ref:\n"
        "    branch: main\n"
        "  timeout: 1m0s\n"
        "  url: https://x/r\n"
    )


def test_export_follows_go_omitempty_and_pointer_rules() -> None:
    spec = render.export_object(
        GIT_REPOSITORY,
        _cluster_object(
            ignore="",
            ref={},
            suspend=False,
            recurseSubmodules=False,
            sparseCheckout=[],
            provider="generic",
            include=[{"repository": {"name": "other"}, "fromPath": "", "toPath": "sub"}],
            verify={"mode": "HEAD", "secretRef": {"name": "keys"}},
            unknownField="dropped",
        ),
    )["spec"]
    assert spec == {
        "url": "https://x/r",
        "interval": "1m0s",
        "provider": "generic",
        "timeout": "1m0s",
        "ref": {},
        "verify": {"secretRef": {"name": "keys"}, "mode": "HEAD"},
        "ignore": "",
        "include": [{"repository": {"name": "other"}, "toPath": "sub"}],
    }


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("main", True),
        ("1m0s", True),
        ("v1.2.3", True),
        ("yes", False),
        ("y", False),
        ("On", False),
        ("true", False),
        ("~", False),
        ("", False),
        ("010", False),
        ("0x1F", False),
        ("1_000", False),
        ("1.0", False),
        (".5", False),
        ("1e3", False),
        ("2024-01-02", False),
        ("2024-01-02T03:04:05Z", False),
        ("2024-02-30", True),
        ("1:20", False),
        ("190:20:30.15", False),
        ("0b101", False),
        ("0o17", False),
        ("<<", False),
        ("tRUE", True),
        ("1.2.3", True),
    ],
)
def test_go_yaml_v2_decides_which_strings_need_quotes(text: str, plain: bool) -> None:
    assert goyaml.plain_ok(text) is plain


def test_go_yaml_key_order() -> None:
    keys = ["a10", "a2", "b", "A", "_x", "a.b", "a", "ab", "10", "2", "identity.pub", "identity"]
    assert sorted(keys, key=goyaml.sort_key) == [
        "_x", "2", "10", "A", "a", "a.b", "a2", "a10", "ab", "b", "identity", "identity.pub",
    ]  # fmt: skip


def test_go_yaml_scalars_and_layout() -> None:
    text = goyaml.marshal(
        {
            "s": "yes",
            "n": None,
            "t": True,
            "i": 7,
            "f": 1234567.5,
            "e": {},
            "l": [],
            "m": "a\nb\n",
            "long": "word " * 20 + "end",
        }
    )
    assert text == (
        "e: {}\n"
        "f: 1.2345675e+06\n"
        "i: 7\n"
        "l: []\n"
        "long: word word word word word word word word word word word word word word word word\n"
        "  word word word word end\n"
        "m: |\n"
        "  a\n"
        "  b\n"
        '"n": null\n'
        's: "yes"\n'
        "t: true\n"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.5, "1.5"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (123456.5, "123456.5"),
        (-2.25, "-2.25"),
    ],
)
def test_go_float_format(value: float, text: str) -> None:
    assert goyaml.format_float(value) == text
