"""`tidal bootstrap git`'s flags, checked before anything touches Git or the cluster."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tidal.cli.main import cli


def _run(*args: str) -> tuple[int, str]:
    # No cluster: a command that gets past its flags stops at the kubeconfig.
    env = {"GIT_PASSWORD": "", "KUBECONFIG": "/nonexistent/kubeconfig"}
    result = CliRunner().invoke(cli, ["bootstrap", "git", *args], env=env)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "✗ --url is required"),
        (("--url=http://h/r.git", "-p", "pw"), "✗ failed to create authentication options: "
         "scheme http is insecure, pass --allow-insecure-http=true to allow it"),
        (("--url=git@h:r.git",), "scp-like addresses are not supported"),
        (("--url=https://h/r.git", "--token-auth=maybe"), '✗ invalid argument "maybe" for '
         '"--token-auth" flag: strconv.ParseBool: parsing "maybe": invalid syntax'),
        (("--url=https://h/r.git", "--components=source-controller"),
         "✗ component kustomize-controller is required"),
        (("--url=https://h/r.git", "--private-key-file=/nonexistent/key"),
         "✗ failed to open private key file: open /nonexistent/key: no such file or directory"),
        (("--url=ssh://git@h/r.git",), "--private-key-file is required for Git over SSH"),
        (("--url=https://h/r.git", "--namespace=Bad_NS"), "namespace must be a valid DNS label"),
    ],
)  # fmt: skip
def test_bad_input_is_a_one_line_error(args: tuple[str, ...], message: str) -> None:
    code, output = _run(*args)
    assert code == 1
    assert message in output
    assert "Traceback" not in output


def test_flux_style_boolean_flags_are_accepted() -> None:
    # `--allow-insecure-http=true` gets past the scheme check; `=false` does not.
    _, allowed = _run("--url=http://h/r.git", "--allow-insecure-http=true", "-p", "pw")
    assert "scheme http is insecure" not in allowed
    assert "no usable kubeconfig" in allowed
    _, refused = _run("--url=http://h/r.git", "--allow-insecure-http=false", "-p", "pw")
    assert "scheme http is insecure" in refused


def test_help_lists_flux_s_flags() -> None:
    code, output = _run("--help")
    assert code == 0
    for flag in (
        "--url", "--branch", "--path", "--interval", "--username", "--password", "--token-auth",
        "--with-bearer-token", "--private-key-file", "--ca-file", "--allow-insecure-http",
        "--silent", "--author-name", "--author-email", "--secret-name", "--components",
        "--commit-message-appendix", "--force", "--timeout", "--namespace",
    ):  # fmt: skip
        assert flag in output
