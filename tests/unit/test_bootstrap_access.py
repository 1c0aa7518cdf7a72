"""What `bootstrap git`'s flags mean for Git access: the CLI's credentials, the URL the
cluster syncs from, and the Secret it syncs with (flux's rules)."""

from __future__ import annotations

import pytest

from tidal.bootstrap.access import AccessError, Flags, decide, shown
from tidal.cli.gitsecret import generate_keypair


def test_token_auth_syncs_over_https_with_the_same_credentials() -> None:
    access = decide(
        Flags(
            url="https://me:pw@git.example.com:8443/org/fleet.git",
            username="me",
            password="s3cret-token",
            token_auth=True,
            ca_bundle=b"CA",
        )
    )
    assert (access.auth.transport, access.auth.username, access.auth.password) == (
        "https",
        "me",
        "s3cret-token",
    )
    assert access.auth.ca == b"CA"
    assert access.sync_url == "https://git.example.com:8443/org/fleet.git"
    secret = access.secret
    assert (secret.username, secret.password, secret.ca_crt) == ("me", "s3cret-token", "CA")
    assert access.secret_from_flags
    assert "s3cret-token" not in repr(access.auth)


def test_bearer_token() -> None:
    access = decide(Flags(url="https://h/r.git", password="tok3n-value", with_bearer_token=True))
    assert access.auth.bearer_token == "tok3n-value"
    assert not access.auth.username
    assert access.secret.bearer_token == "tok3n-value"
    assert not access.secret.username


def test_http_needs_allow_insecure_http_and_then_syncs_over_http() -> None:
    with pytest.raises(AccessError, match="scheme http is insecure, pass --allow-insecure-http"):
        decide(Flags(url="http://h/r.git", password="p", token_auth=True))
    access = decide(
        Flags(url="http://h/r.git", password="p", token_auth=True, allow_insecure_http=True)
    )
    assert access.sync_url == "http://h/r.git"
    assert access.auth.transport == "http"


def test_without_token_auth_the_cluster_syncs_over_ssh_with_a_deploy_key() -> None:
    access = decide(Flags(url="https://git.example.com/org/fleet.git", password="pw"))
    assert access.auth.transport == "https"  # the CLI still pushes over HTTPS
    assert access.sync_url == "ssh://git@git.example.com/org/fleet.git"
    assert access.secret.ssh_host == "git.example.com"
    assert access.secret.keypair is None and access.secret.key_algorithm == "ecdsa"
    assert not access.secret_from_flags  # a generated key: an existing Secret is kept


def test_ssh_with_a_private_key() -> None:
    pair = generate_keypair("ed25519")
    access = decide(
        Flags(url="ssh://root@127.0.0.1:2222/srv/fleet.git", private_key=pair.private_key.encode())
    )
    assert access.ssh
    assert (access.auth.username, access.auth.identity) == ("root", pair.private_key.encode())
    assert access.sync_url == "ssh://root@127.0.0.1:2222/srv/fleet.git"
    assert access.secret.keypair == pair
    assert access.secret.ssh_host == "127.0.0.1:2222"
    assert access.secret_from_flags
    other = decide(
        Flags(
            url="ssh://git@github.com/org/fleet",
            username="deploy",
            ssh_hostname="ssh.github.com:443",
            private_key=pair.private_key.encode(),
        )
    )
    assert other.sync_url == "ssh://deploy@ssh.github.com:443/org/fleet"
    assert other.secret.ssh_host == "ssh.github.com:443"


def test_bad_urls_and_missing_keys() -> None:
    with pytest.raises(AccessError, match="scp-like"):
        decide(Flags(url="git@github.com:org/fleet.git"))
    with pytest.raises(AccessError, match="--private-key-file is required"):
        decide(Flags(url="ssh://git@github.com/org/fleet"))
    for url in ("ftp://h/r.git", "file:///srv/r.git"):
        with pytest.raises(AccessError, match=r'scheme "(ftp|file)" is not supported'):
            decide(Flags(url=url))


def test_urls_are_shown_without_credentials() -> None:
    assert shown("https://me:pw@h/r.git") == "https://***@h/r.git"
    assert shown("https://ghp_token@github.com/o/r") == "https://***@github.com/o/r"
    assert shown("ssh://git@github.com/o/r") == "ssh://git@github.com/o/r"
    assert shown("https://h/r.git") == "https://h/r.git"
