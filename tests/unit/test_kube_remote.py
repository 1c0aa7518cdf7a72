"""spec.kubeConfig's kubeconfig checks and the remote client cache (no API server needed:
building a client opens no connection)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from testenv import pki
from testenv.plane import kubeconfig_yaml
from tidal.kube import remote
from tidal.kube.client import Kube
from tidal.kube.remote import KubeConfigOptions, RemoteClients, RemoteConfigError

CA = pki.CertificateAuthority()
ADMIN = CA.issue("tidal-admin", organizations=("system:masters",), client=True)
SERVER = "https://127.0.0.1:6443"


def kubeconfig(server: str = SERVER, **user: Any) -> bytes:
    """The test plane's admin kubeconfig, with `user` fields replacing the client certificate
    when given."""
    conf = json.loads(kubeconfig_yaml(server, CA.pair.cert_pem, ADMIN, "admin"))
    if user:
        conf["users"][0]["user"] = user
    return json.dumps(conf).encode()


def edited(**changes: Any) -> bytes:
    conf = json.loads(kubeconfig())
    conf["clusters"][0]["cluster"].update(changes.pop("cluster", {}))
    conf.update(changes)
    return json.dumps(conf).encode()


def refusal(data: bytes, options: KubeConfigOptions | None = None) -> str:
    with pytest.raises(RemoteConfigError) as e:
        remote.connect(data, options or KubeConfigOptions())
    return str(e.value)


def test_a_self_contained_kubeconfig_gives_a_client_for_its_server() -> None:
    kube = remote.connect(kubeconfig(), KubeConfigOptions())
    assert kube.server == SERVER


def test_client_certificates_stay_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # lightkube writes *-data fields to temporary files; the remote path must not use it.
    import lightkube.config.models as models

    def no_files(cls: Any, data: Any) -> Any:
        raise AssertionError("credential written to a temporary file")

    monkeypatch.setattr(models.FileStr, "__new__", no_files)
    fds = Path("/proc/self/fd")
    before = set(fds.iterdir())
    remote.connect(kubeconfig(), KubeConfigOptions())
    # the anonymous memory file holding the key is closed again
    leaked = {fd for fd in set(fds.iterdir()) - before if "tidal-remote-cert" in _target(fd)}
    assert not leaked


def _target(fd: Path) -> str:
    try:
        return str(fd.readlink())
    except OSError:
        return ""


@pytest.mark.parametrize(
    ("user", "field"),
    [
        ({"tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}, "tokenFile"),
        ({"client-certificate": "/etc/ssl/c.crt", "client-key": "/etc/ssl/c.key"}, "certificate"),
    ],
)
def test_files_on_the_controllers_disk_are_refused(user: dict[str, str], field: str) -> None:
    message = refusal(kubeconfig(**user))
    assert field in message and "self-contained" in message


def test_a_ca_file_is_refused() -> None:
    conf = json.loads(kubeconfig())
    conf["clusters"][0]["cluster"] = {"server": SERVER, "certificate-authority": "/etc/ca.crt"}
    message = refusal(json.dumps(conf).encode())
    assert "certificate-authority" in message and "self-contained" in message


def test_exec_plugins_are_refused_unless_allowed() -> None:
    data = kubeconfig(
        exec={"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws-iam-auth"}
    )
    message = refusal(data)
    assert "exec credential plugin" in message and "--insecure-kubeconfig-exec" in message
    assert "aws-iam-auth" not in message
    assert remote.connect(data, KubeConfigOptions(allow_exec=True)).server == SERVER


def test_insecure_tls_is_refused_unless_allowed() -> None:
    conf = json.loads(kubeconfig())
    conf["clusters"][0]["cluster"] = {"server": SERVER, "insecure-skip-tls-verify": True}
    data = json.dumps(conf).encode()
    message = refusal(data)
    assert "insecure-skip-tls-verify" in message and "--insecure-kubeconfig-tls" in message
    assert remote.connect(data, KubeConfigOptions(allow_insecure_tls=True)).server == SERVER


def test_auth_provider_plugins_are_refused() -> None:
    assert "auth-provider" in refusal(kubeconfig(**{"auth-provider": {"name": "gcp"}}))


def test_tokens_and_basic_auth_are_accepted() -> None:
    bearer = remote.connect(kubeconfig(token="abc"), KubeConfigOptions())
    assert bearer.server == SERVER
    assert _authorization(bearer) == "Bearer abc"
    basic = remote.connect(kubeconfig(username="u", password="p"), KubeConfigOptions())
    assert basic.server == SERVER
    assert _authorization(basic) == "Basic " + _b64(b"u:p")


def _authorization(kube: Kube) -> str:
    """The Authorization header the client's credentials put on a request."""
    request = httpx.Request("GET", SERVER)
    return str(next(kube._http.auth.sync_auth_flow(request)).headers["Authorization"])


def test_the_context_must_resolve() -> None:
    assert "current-context 'other'" in refusal(edited(**{"current-context": "other"}))
    conf = json.loads(kubeconfig())
    conf["contexts"].append({"name": "second", "context": {"cluster": "testenv"}})
    del conf["current-context"]
    assert "no current-context" in refusal(json.dumps(conf).encode())
    # a single context needs no current-context
    del conf["contexts"][1]
    assert remote.connect(json.dumps(conf).encode(), KubeConfigOptions()).server == SERVER


def test_a_cluster_without_server_is_refused() -> None:
    conf = json.loads(kubeconfig())
    del conf["clusters"][0]["cluster"]["server"]
    assert "has no server" in refusal(json.dumps(conf).encode())


def test_errors_never_quote_the_kubeconfig() -> None:
    secret_token = "s3cr3t-t0ken-value"
    broken = f"users:\n- name: a\n  user: {{token: {secret_token}\n\tbad: [".encode()
    message = refusal(broken)
    assert message.startswith("kubeconfig is not valid YAML")
    assert secret_token not in message
    malformed = json.dumps({"clusters": [{"cluster": {"server": secret_token}}]}).encode()
    assert secret_token not in refusal(malformed)
    bad_key = kubeconfig(**{"client-certificate-data": "!!", "client-key-data": secret_token})
    message = refusal(bad_key)
    assert "not valid base64" in message and secret_token not in message


def test_a_mismatched_certificate_and_key_is_refused() -> None:
    other = CA.issue("someone-else", client=True)
    data = kubeconfig(
        **{
            "client-certificate-data": _b64(ADMIN.cert_pem),
            "client-key-data": _b64(other.key_pem),
        }
    )
    assert "are not a PEM certificate and its key" in refusal(data)


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


async def test_the_cache_shares_clients_and_closes_them_after_rotation() -> None:
    clients = RemoteClients(KubeConfigOptions())
    first, discovery = await clients.get("ns/a", kubeconfig())
    again, _ = await clients.get("ns/a", kubeconfig())
    assert again is first
    assert clients.discovery_for(first) is discovery
    shared, _ = await clients.get("ns/b", kubeconfig())
    assert shared is first and len(clients) == 1

    # ns/a's Secret is rotated: ns/a gets a new client, ns/b still uses the old one.
    rotated, _ = await clients.get("ns/a", kubeconfig(token="rotated"))
    assert rotated is not first and not first._http.is_closed
    # ns/b's Secret follows: nobody uses the old client any more, so it is closed.
    await clients.get("ns/b", kubeconfig(token="rotated"))
    assert first._http.is_closed and len(clients) == 1

    # Impersonation is part of the identity of a client.
    as_sa, _ = await clients.get(
        "ns/a", kubeconfig(token="rotated"), impersonate="system:serviceaccount:ns:sa"
    )
    assert as_sa is not rotated

    await clients.release("ns/a")
    assert not rotated._http.is_closed  # ns/b still uses it
    assert as_sa._http.is_closed
    await clients.close()
    assert rotated._http.is_closed and len(clients) == 0


def test_memfd_is_available() -> None:
    # The in-memory key file needs Linux's memfd; fail loudly where it is missing.
    assert hasattr(os, "memfd_create") and Path("/proc/self/fd").is_dir()
