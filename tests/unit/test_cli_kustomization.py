"""`create kustomization`'s flags as flux reads them, and the YAML it prints with `--export`
(expected texts printed by the flux v2.9.5 binary for the same flags)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tidal.cli.kustomization import (
    KustomizationFlags,
    SourceRef,
    depends_on,
    health_checks,
    kustomization_spec,
    parse_decryption_provider,
    parse_source,
    safe_relative_path,
)
from tidal.cli.main import cli
from tidal.cli.options import CliError


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--kubeconfig", "/nonexistent", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("podinfo", SourceRef("GitRepository", "podinfo")),
        ("podinfo.flux-system", SourceRef("GitRepository", "podinfo", "flux-system")),
        ("OCIRepository/podinfo", SourceRef("OCIRepository", "podinfo")),
        ("bucket/a.b.c", SourceRef("Bucket", "a.b", "c")),
        ("gitrepository/x", SourceRef("GitRepository", "x")),
        # More than one slash is no kind at all: the whole text is the name.
        ("a/b/c", SourceRef("GitRepository", "a/b/c")),
    ],
)
def test_source_flag(text: str, ref: SourceRef) -> None:
    assert parse_source(text) == ref


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("  ", "no Kustomization source given, please specify source that contains"),
        ("GitRepository", "no kind specified for source 'GitRepository'"),
        ("Bucket/.ns", "no name given for source of kind 'Bucket'"),
        (
            "ExternalArtifact/x",
            "source kind 'ExternalArtifact' is not supported, must be one of: OCIRepository, "
            "GitRepository, Bucket",
        ),
        ("HelmRepository/x", "source kind 'HelmRepository' is not supported"),
    ],
)
def test_source_flag_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_source(text)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("", "./"),
        (".", "./"),
        ("./", "./"),
        ("apps", "./apps"),
        ("./apps/", "./apps"),
        ("apps/../production//eu", "./production/eu"),
        ("../../etc", "./etc"),
        ("/abs/path", "./abs/path"),
        ("//abs", "./abs"),
        ("  ./apps  ", "./apps"),
    ],
)
def test_path_never_leaves_the_artifact(text: str, path: str) -> None:
    assert safe_relative_path(text) == path


def test_decryption_provider() -> None:
    assert parse_decryption_provider("sops") == "sops"
    with pytest.raises(ValueError, match="unsupported decryption provider 'age'"):
        parse_decryption_provider("age")
    with pytest.raises(ValueError, match="no decryption provider given"):
        parse_decryption_provider("")


def test_depends_on_keeps_name_and_namespace_only() -> None:
    assert depends_on(["a", "ns/b", "c@dep.status.ready", "ns/d@x/y"]) == [
        {"name": "a"},
        {"name": "b", "namespace": "ns"},
        {"name": "c"},
        {"name": "d", "namespace": "ns"},
    ]


def test_health_checks() -> None:
    assert health_checks(["Deployment/web.apps", "HelmRelease/db.data"]) == [
        {"kind": "Deployment", "name": "web", "namespace": "apps"},
        {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "name": "db",
         "namespace": "data"},
    ]  # fmt: skip
    for bad, message in (
        ("Deployment", r"must be in the format 'kind/name.namespace' \[Deployment\]"),
        ("a/b/c", r"must be in the format 'kind/name.namespace' \[a b c\]"),
        ("Pod/a.b", "invalid health check kind 'Pod'"),
        ("Deployment/web", "must be in the format 'kind/name.namespace'$"),
        ("Deployment/web.a.b", "must be in the format 'kind/name.namespace'$"),
    ):
        with pytest.raises(CliError, match=message):
            health_checks([bad])


def test_wait_replaces_health_checks_and_both_set_the_timeout() -> None:
    base = KustomizationFlags(source=SourceRef("GitRepository", "repo"), interval=60.0)
    assert kustomization_spec(base) == {
        "interval": "1m0s",
        "path": "./",
        "prune": False,
        "sourceRef": {"kind": "GitRepository", "name": "repo"},
    }
    checks = KustomizationFlags(
        source=base.source, interval=60.0, health_checks=("Deployment/a.b",)
    )
    assert kustomization_spec(checks)["timeout"] == "2m0s"
    waiting = KustomizationFlags(
        source=base.source,
        interval=60.0,
        wait=True,
        health_checks=("Deployment/a.b",),
        health_check_timeout=90.0,
    )
    spec = kustomization_spec(waiting)
    assert (spec["wait"], spec["timeout"], "healthChecks" in spec) == (True, "1m30s", False)
    # A zero retry interval means "use the interval", so it is not written.
    assert "retryInterval" not in spec


def test_create_kustomization_export_every_flag() -> None:
    code, out, err = run(
        "create", "kustomization", "podinfo", "--source=OCIRepository/podinfo.apps",
        "--path=apps/../x/", "--prune", "--wait", "--health-check-timeout=3m",
        "--depends-on=a,ns/b@x.y", "--target-namespace=default", "--label=a=b",
        "--retry-interval=30s", "--service-account=sa", "--decryption-provider=sops",
        "--decryption-secret=keys", "--kubeconfig-secret-ref=kc", "--interval=10m", "--export",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out == (
        "---\n"
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\n"
        "kind: Kustomization\n"
        "metadata:\n"
        "  labels:\n"
        "    a: b\n"
        "  name: podinfo\n"
        "  namespace: flux-system\n"
        "spec:\n"
        "  decryption:\n"
        "    provider: sops\n"
        "    secretRef:\n"
        "      name: keys\n"
        "  dependsOn:\n"
        "  - name: a\n"
        "  - name: b\n"
        "    namespace: ns\n"
        "  interval: 10m0s\n"
        "  kubeConfig:\n"
        "    secretRef:\n"
        "      name: kc\n"
        "  path: ./x\n"
        "  prune: true\n"
        "  retryInterval: 30s\n"
        "  serviceAccountName: sa\n"
        "  sourceRef:\n"
        "    kind: OCIRepository\n"
        "    name: podinfo\n"
        "    namespace: apps\n"
        "  targetNamespace: default\n"
        "  timeout: 3m0s\n"
        "  wait: true\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # Flag values are checked first, in the order given, in cobra's words.
        (
            ["x", "--source=GitRepository", "--decryption-provider=age"],
            'invalid argument "GitRepository" for "--source" flag: no kind specified for '
            "source 'GitRepository'",
        ),
        (
            ["x", "--decryption-provider=age", "--source=GitRepository"],
            'invalid argument "age" for "--decryption-provider" flag: unsupported decryption '
            "provider 'age', must be one of: sops",
        ),
        (["--source=podinfo"], "name is required"),
        (["podinfo"], "source is required"),
        (["podinfo", "--source=x", "--label=bad"], "invalid label format 'bad', must be key=value"),
    ],
)
def test_create_kustomization_errors_are_flux_s(args: list[str], message: str) -> None:
    assert run("create", "kustomization", *args, "--export") == (1, "", f"✗ {message}\n")


def test_the_deprecated_validation_flag_is_announced_on_stdout() -> None:
    code, out, _ = run("create", "ks", "app", "--source=x", "--validation=client", "--export")
    assert code == 0
    assert out.startswith(
        "Flag --validation has been deprecated, this arg is no longer used, all resources are "
        "validated using server-side apply dry-run\n---\n"
    )
