"""`tidal version` without a cluster: the client half always prints, the server half explains."""

from __future__ import annotations

import json
import platform
import socket
from pathlib import Path

from click.testing import CliRunner

from testenv import pki
from testenv.plane import kubeconfig_yaml
from tidal import __version__
from tidal.cli.main import cli


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_client_only_json() -> None:
    result = CliRunner().invoke(cli, ["version", "--client", "-o", "json"])
    assert result.exit_code == 0
    assert json.loads(result.output) == {
        "tidal": __version__,
        "python": platform.python_version(),
    }


def test_missing_kubeconfig_is_explained(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = CliRunner().invoke(cli, ["--kubeconfig", str(missing), "version"])
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        f"tidal: v{__version__}",
        f"python: {platform.python_version()}",
        f"kubernetes: no kubeconfig: kubeconfig {missing} does not exist",
    ]


def test_unreachable_server_is_explained(tmp_path: Path) -> None:
    ca = pki.CertificateAuthority()
    user = ca.issue("someone", client=True)
    config = tmp_path / "kubeconfig"
    config.write_text(
        kubeconfig_yaml(f"https://127.0.0.1:{closed_port()}", ca.pair.cert_pem, user, "someone")
    )
    result = CliRunner().invoke(cli, ["--kubeconfig", str(config), "version"])
    assert result.exit_code == 0
    assert result.output.splitlines()[2].startswith("kubernetes: unreachable: ")


def test_unknown_context_is_explained(tmp_path: Path) -> None:
    ca = pki.CertificateAuthority()
    config = tmp_path / "kubeconfig"
    config.write_text(
        kubeconfig_yaml("https://127.0.0.1:1", ca.pair.cert_pem, ca.issue("u", client=True), "u")
    )
    result = CliRunner().invoke(cli, ["--kubeconfig", str(config), "--context", "prod", "version"])
    assert result.exit_code == 0
    assert "kubernetes: no kubeconfig:" in result.output
    assert "prod" in result.output
