"""spec.decryption with SOPS, end to end: files encrypted by the real sops binary with fresh
age and OpenPGP keys, pushed to a Git server, reconciled by the controller into the test plane.

What a Flux user with an encrypted repository sees: Secrets arrive decrypted (whole manifests,
secretGenerator env and JSON files), a missing or wrong key gives Ready=False and applies
nothing, putting the right key into the decryption Secret is picked up within seconds, and a
tampered file leaves the last good revision in place. No plaintext ever reaches the
Kustomization's status or events.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from testenv.git_server import GitHTTPServer
from testenv.sops_tools import AgeKey, PgpKey, generate_pgp, sops_decrypt, sops_encrypt
from tests.controller_process import (
    RunningController,
    condition,
    controller_fixture,
    run_controller,
)
from tests.kustomization_helpers import (
    applied,
    create_ks,
    deployed,
    events_for,
    failed,
    fetch_now,
    get_or_none,
    git_source,
    head_revision,
    ks_path,
    secret,
    wait_ks,
)
from tests.plugin import Cluster
from tidal.kube.client import Kube

pytestmark = pytest.mark.e2e

# Kustomizations labelled GLOBAL belong to the --sops-age-secret controller of one test.
GLOBAL = "tidal.test/sops-global"

controller = controller_fixture("--watch-label-selector", f"!{GLOBAL}")

SECRET_REGEX = ["--encrypted-regex", "^(data|stringData)$"]
PASSWORD = "correct-horse-battery-staple"
# spec.decryption with the keys of the Secret "sops-keys"
SOPS_KEYS = {"provider": "sops", "secretRef": {"name": "sops-keys"}}
PLAIN = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\n"


@pytest.fixture(scope="module")
def age_key() -> AgeKey:
    return AgeKey.generate()


@pytest.fixture(scope="module")
def pgp_key(tmp_path_factory: pytest.TempPathFactory) -> PgpKey:
    return generate_pgp(tmp_path_factory.mktemp("gnupg") / "home")


def secret_manifest(name: str, namespace: str, **string_data: str) -> str:
    body = "".join(f"  {k}: {v}\n" for k, v in string_data.items())
    return (
        f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
        f"stringData:\n{body}"
    )


def kustomization_file(namespace: str) -> str:
    return (
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"namespace: {namespace}\n"
        "resources: [db.yaml, api.yaml]\n"
        "generatorOptions: {disableNameSuffixHash: true}\n"
        "secretGenerator:\n"
        "- name: generated\n  envs: [creds.env]\n  files: [config.json]\n"
    )


def encrypted_db(namespace: str, *keys: AgeKey) -> bytes:
    """The Secret "db" holding PASSWORD, its data encrypted for the age `keys`."""
    manifest = secret_manifest("db", namespace, password=PASSWORD)
    return sops_encrypt(manifest, "yaml", age=list(keys), args=SECRET_REGEX)


async def secret_data(kube: Kube, namespace: str, name: str) -> dict[str, str] | None:
    obj = await get_or_none(kube, f"/api/v1/namespaces/{namespace}/secrets/{name}")
    if obj is None:
        return None
    return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}


async def no_plaintext_in(
    kube: Kube, controller: RunningController, namespace: str, name: str, *texts: str
) -> None:
    """Neither the Kustomization's status, nor its events, nor the controller's log."""
    path = ks_path(namespace, name)
    seen = json.dumps([await kube.get(path), await events_for(kube, namespace, name)])
    log = controller.logs()
    for text in texts:
        assert text not in seen
        assert text not in log


async def test_encrypted_secrets_and_generator_sources_arrive_decrypted(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
    age_key: AgeKey,
    pgp_key: PgpKey,
) -> None:
    config = '{"endpoint": "https://db.internal", "token": "tok-123"}'
    encrypted_config = sops_encrypt(config, "json", age=[age_key])
    files = {
        "app/kustomization.yaml": kustomization_file(namespace),
        # age, two recipients (the second key is not in the cluster: any one key decrypts)
        "app/db.yaml": encrypted_db(namespace, AgeKey.generate(), age_key),
        # OpenPGP only
        "app/api.yaml": sops_encrypt(
            secret_manifest("api", namespace, key="pgp-secret-value"),
            "yaml",
            pgp=[pgp_key],
            args=SECRET_REGEX,
        ),
        "app/creds.env": sops_encrypt("USER=admin\nPASS=env-secret\n", "dotenv", age=[age_key]),
        "app/config.json": encrypted_config,
    }
    keys: dict[str, bytes | str] = {
        "age.agekey": age_key.key_file(),
        "pgp.asc": pgp_key.armored_secret,
    }
    await secret(kube, namespace, "sops-keys", keys)
    repo = git_repo(files=files)
    await deployed(
        kube, namespace, "app", git_http, repo, controller, path="app", decryption=SOPS_KEYS
    )
    assert await secret_data(kube, namespace, "db") == {"password": PASSWORD}
    assert await secret_data(kube, namespace, "api") == {"key": "pgp-secret-value"}
    generated = await secret_data(kube, namespace, "generated")
    assert generated is not None
    # The JSON file reaches the Secret exactly as `sops decrypt` prints it (Flux's output).
    assert generated == {
        "USER": "admin",
        "PASS": "env-secret",
        "config.json": sops_decrypt(encrypted_config, "json", age=[age_key]).decode(),
    }
    await no_plaintext_in(kube, controller, namespace, "app", PASSWORD, "env-secret", "tok-123")


async def test_ciphertext_without_decryption_and_a_missing_secret_are_refused(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
    age_key: AgeKey,
) -> None:
    repo = git_repo(
        files={"app/plain.yaml": PLAIN, "app/db.yaml": encrypted_db(namespace, age_key)}
    )
    await git_source(kube, namespace, "repo", git_http, repo)
    # No spec.decryption: Flux's refusal, and nothing applied.
    await create_ks(kube, namespace, "bare", path="app", targetNamespace=namespace)
    obj = await wait_ks(kube, namespace, "bare", failed("BuildFailed"), "refusal", controller)
    assert condition(obj, "Ready")["message"] == (
        f"Secret/{namespace}/db is SOPS encrypted, configuring decryption is required for "
        "this secret to be reconciled"
    )
    # A decryption Secret that does not exist: the API server's words, as in Flux.
    await create_ks(
        kube,
        namespace,
        "missing",
        path="app",
        targetNamespace=namespace,
        decryption={"provider": "sops", "secretRef": {"name": "nope"}},
    )
    obj = await wait_ks(kube, namespace, "missing", failed("BuildFailed"), "no Secret", controller)
    assert condition(obj, "Ready")["message"] == 'secrets "nope" not found'
    assert await get_or_none(kube, f"/api/v1/namespaces/{namespace}/configmaps/plain") is None


async def test_a_missing_key_applies_nothing_until_the_secret_holds_it(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
    age_key: AgeKey,
) -> None:
    repo = git_repo(
        files={"app/plain.yaml": PLAIN, "app/db.yaml": encrypted_db(namespace, age_key)}
    )
    await git_source(kube, namespace, "repo", git_http, repo)
    # A key, but not the one the file was encrypted for. The Secret carries Flux's watch label.
    await secret(kube, namespace, "sops-keys", {"age.agekey": AgeKey.generate().key_file()})
    await kube.patch(
        f"/api/v1/namespaces/{namespace}/secrets/sops-keys",
        {"metadata": {"labels": {"reconcile.fluxcd.io/watch": "Enabled"}}},
    )
    await create_ks(
        kube,
        namespace,
        "app",
        path="app",
        targetNamespace=namespace,
        decryption=SOPS_KEYS,
    )
    obj = await wait_ks(kube, namespace, "app", failed("BuildFailed"), "no key", controller)
    message = condition(obj, "Ready")["message"]
    assert "cannot get sops data key" in message
    assert age_key.recipient in message  # which key would have opened it
    # Nothing from the revision: not even the plain ConfigMap beside the Secret.
    assert await get_or_none(kube, f"/api/v1/namespaces/{namespace}/configmaps/plain") is None
    assert await secret_data(kube, namespace, "db") is None

    # The right key is put into the Secret: the Kustomization notices on its own (its
    # interval is ten minutes), as the labelled decryption Secret is watched.
    await kube.patch(
        f"/api/v1/namespaces/{namespace}/secrets/sops-keys",
        {"data": {"age.agekey": base64.b64encode(age_key.key_file().encode()).decode()}},
    )
    await wait_ks(kube, namespace, "app", applied(head_revision(repo)), "rotated", controller)
    assert await secret_data(kube, namespace, "db") == {"password": PASSWORD}
    await no_plaintext_in(kube, controller, namespace, "app", PASSWORD)


async def test_a_tampered_file_leaves_the_last_good_revision_applied(
    kube: Kube,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
    age_key: AgeKey,
    tmp_path: Path,
) -> None:
    good = sops_encrypt(
        secret_manifest("db", namespace, password=PASSWORD, user="app"),
        "yaml",
        age=[age_key],
        # Only the password is encrypted; the user name is plain text, covered by the MAC.
        args=["--encrypted-regex", "^password$"],
    )
    await secret(kube, namespace, "sops-keys", {"age.agekey": age_key.key_file()})
    repo = git_repo(files={"app/db.yaml": good})
    _, first = await deployed(
        kube, namespace, "app", git_http, repo, controller, path="app", decryption=SOPS_KEYS
    )

    # Someone without the key edits the plain value: only the MAC can tell.
    tampered = good.replace(b"user: app", b"user: root")
    assert tampered != good
    second = repo.commit({"app/db.yaml": tampered}, "tamper")
    await fetch_now(kube, namespace, "1")

    def mac_failure(obj: dict[str, Any]) -> bool:
        ready = condition(obj, "Ready")
        return (
            ready.get("reason") == "BuildFailed"
            and obj["status"].get("lastAttemptedRevision") == f"main@sha1:{second}"
        )

    obj = await wait_ks(kube, namespace, "app", mac_failure, "MAC check", controller)
    assert "failed to verify sops data integrity" in condition(obj, "Ready")["message"]
    assert obj["status"]["lastAppliedRevision"] == first
    assert await secret_data(kube, namespace, "db") == {"password": PASSWORD, "user": "app"}
    await no_plaintext_in(kube, controller, namespace, "app", PASSWORD)


async def test_the_controller_age_secret_serves_kustomizations_that_name_no_secret(
    kube: Kube,
    cluster: Cluster,
    namespace: str,
    crds: None,
    controller: RunningController,
    git_http: GitHTTPServer,
    git_repo: Any,
    age_key: AgeKey,
    tmp_path: Path,
) -> None:
    repo = git_repo(files={"app/db.yaml": encrypted_db(namespace, age_key)})
    # Only *.agekey entries count in the controller-wide Secret.
    await secret(
        kube, namespace, "global-age", {"keys.agekey": age_key.key_file(), "other": "ignored"}
    )
    with run_controller(
        cluster.kubeconfig,
        tmp_path,
        "--sops-age-secret",
        f"{namespace}/global-age",
        "--watch-label-selector",
        f"{GLOBAL}=yes",
    ) as global_keys:
        await deployed(
            kube,
            namespace,
            "app",
            git_http,
            repo,
            global_keys,
            labels={GLOBAL: "yes"},
            path="app",
            decryption={"provider": "sops"},
        )
    assert await secret_data(kube, namespace, "db") == {"password": PASSWORD}
