"""`tidal trace`: how its arguments name objects (kubectl's rules, as flux uses them) and the
report's layout; the expected texts are what the flux v2.9.5 binary prints."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tidal.cli.options import CliError
from tidal.cli.resource_args import (
    ApiResource,
    Request,
    TraceError,
    expand_categories,
    parse_arguments,
    resolve_type,
)
from tidal.cli.trace import (
    external_artifact_lines,
    git_repository_lines,
    go_time,
    kustomization_report,
    oci_repository_lines,
)

# In kubectl's order of preference: the core group first, then as the server lists the groups.
CONFIGMAPS = ApiResource("", "v1", "configmaps", "configmap", "ConfigMap", True, ("cm",))
PODS = ApiResource("", "v1", "pods", "pod", "Pod", True, ("po",), ("all",))
CORE_EVENTS = ApiResource("", "v1", "events", "event", "Event", True, ("ev",))
NAMESPACES = ApiResource("", "v1", "namespaces", "namespace", "Namespace", False, ("ns",))
DEPLOYMENTS = ApiResource(
    "apps", "v1", "deployments", "deployment", "Deployment", True, ("deploy",), ("all",)
)
EVENTS = ApiResource("events.k8s.io", "v1", "events", "event", "Event", True, ("ev",))
STORAGE_CLASSES = ApiResource(
    "storage.k8s.io", "v1", "storageclasses", "storageclass", "StorageClass", False, ("sc",)
)
KUSTOMIZATIONS = ApiResource(
    "kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "kustomization", "Kustomization", True,
    ("ks",),
)  # fmt: skip
CATALOG = [
    CONFIGMAPS,
    PODS,
    CORE_EVENTS,
    NAMESPACES,
    DEPLOYMENTS,
    EVENTS,
    STORAGE_CLASSES,
    KUSTOMIZATIONS,
]


# -- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "request_"),
    [
        (["deployment", "podinfo"], Request(types="deployment", names=("podinfo",))),
        (["cm", "a", "b"], Request(types="cm", names=("a", "b"))),
        (["cm"], Request(types="cm")),
        (["deploy/podinfo", "cm/cfg"], Request(pairs=(("deploy", "podinfo"), ("cm", "cfg")))),
        # A list of types with names means every type with every name.
        (
            ["cm,secret", "a", "b"],
            Request(pairs=(("cm", "a"), ("cm", "b"), ("secret", "a"), ("secret", "b"))),
        ),
        (["cm,cm", "a"], Request(types="cm,cm", names=("a",))),
    ],
)
def test_arguments_name_types_and_objects_as_kubectl_reads_them(
    args: list[str], request_: Request
) -> None:
    assert parse_arguments(args) == request_


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "either `<resource>/<name>` or `<resource> <name>` is required as an argument"),
        (["cm/a/b"], "arguments in resource/name form may not have more than one slash"),
        (["cm/"], "arguments in resource/name form must have a single resource and name"),
        (["cm,secret/a"], "arguments in resource/name form must have a single resource and name"),
        (
            ["cm", "a/b"],
            "there is no need to specify a resource type as a separate argument when passing "
            "arguments in resource/name form (e.g. 'tidal get resource/<resource_name>' instead "
            "of 'tidal get resource resource/<resource_name>'",
        ),
    ],
)
def test_malformed_arguments_are_refused_with_kubectl_s_words(
    args: list[str], message: str
) -> None:
    with pytest.raises(CliError) as e:
        parse_arguments(args)
    assert e.value.format_message() == message


@pytest.mark.parametrize(
    ("arg", "resource"),
    [
        ("configmaps", CONFIGMAPS),
        ("configmap", CONFIGMAPS),
        ("cm", CONFIGMAPS),
        ("ConfigMap", CONFIGMAPS),
        ("Configmap", CONFIGMAPS),  # resource names are matched case-insensitively
        ("ConfigMap.v1.", CONFIGMAPS),
        ("deploy", DEPLOYMENTS),
        ("deployments.apps", DEPLOYMENTS),
        ("deployment.v1.apps", DEPLOYMENTS),
        ("Deployment.apps", DEPLOYMENTS),
        ("deploy.v1.apps", DEPLOYMENTS),
        ("deploy.app", DEPLOYMENTS),  # a group prefix is enough
        ("storageclass.storage", STORAGE_CLASSES),
        ("ks", KUSTOMIZATIONS),
        ("ks.kustomize.toolkit.fluxcd.io", KUSTOMIZATIONS),
        # Two groups serve events: the core group is preferred, unless a group is named.
        ("events", CORE_EVENTS),
        ("ev", CORE_EVENTS),
        ("events.events.k8s.io", EVENTS),
        ("ns", NAMESPACES),
    ],
)
def test_a_type_is_a_plural_singular_short_name_or_kind(arg: str, resource: ApiResource) -> None:
    assert resolve_type(CATALOG, arg) == resource


@pytest.mark.parametrize(
    ("arg", "shown"),
    [("CM", "CM"), ("configmaps.v1", "configmaps"), ("nothing.apps", "nothing"), ("", "")],
)
def test_an_unknown_type_is_named_in_the_error(arg: str, shown: str) -> None:
    with pytest.raises(CliError) as e:
        resolve_type(CATALOG, arg)
    assert e.value.format_message() == f'the server doesn\'t have a resource type "{shown}"'


def test_a_category_stands_for_its_members() -> None:
    assert expand_categories(CATALOG, "all") == "pods,deployments.apps"
    assert expand_categories(CATALOG, "cm,all") == "cm,pods,deployments.apps"
    assert expand_categories(CATALOG, "cm") == "cm"


def test_resource_paths_leave_out_the_namespace_of_cluster_objects() -> None:
    assert DEPLOYMENTS.path("apps", "web") == "/apis/apps/v1/namespaces/apps/deployments/web"
    assert CONFIGMAPS.path("a", "b") == "/api/v1/namespaces/a/configmaps/b"
    assert NAMESPACES.path("ignored", "x") == "/api/v1/namespaces/x"


# -- the report -------------------------------------------------------------------------------


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Go prints times in the local zone; these tests pin it."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def ready(status: str, message: str, at: str = "2026-01-02T03:04:05Z") -> dict[str, Any]:
    return {"type": "Ready", "status": status, "message": message, "lastTransitionTime": at}


CONFIGMAP = {"kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "apps"}}
KUSTOMIZATION = {
    "metadata": {"name": "apps", "namespace": "flux-system"},
    "spec": {"path": "./apps", "targetNamespace": "apps"},
    "status": {
        "lastAppliedRevision": "main@sha1:0123",
        "conditions": [ready("False", "health check failed")],
    },
}
REPOSITORY = {
    "metadata": {"name": "app", "namespace": "flux-system"},
    "spec": {"url": "https://example.com/app.git", "ref": {"branch": "main"}},
    "status": {
        "artifact": {"revision": "main@sha1:0123"},
        "conditions": [ready("True", "stored artifact for revision 'main@sha1:0123'")],
    },
}


@pytest.mark.usefixtures("utc")
def test_the_report_of_a_kustomization_s_object() -> None:
    report = kustomization_report(CONFIGMAP, KUSTOMIZATION, git_repository_lines(REPOSITORY))
    assert report == (
        "\n"
        "Object:          ConfigMap/settings\n"
        "Namespace:       apps\n"
        "Status:          Managed by Flux\n"
        "---\n"
        "Kustomization:   apps\n"
        "Namespace:       flux-system\n"
        "Target:          apps\n"
        "Path:            ./apps\n"
        "Revision:        main@sha1:0123\n"
        # The Kustomization's status never says "failed", even when it is not Ready.
        "Status:          Last reconciled at 2026-01-02 03:04:05 +0000 UTC\n"
        "Message:         health check failed\n"
        "---\n"
        "GitRepository:   app\n"
        "Namespace:       flux-system\n"
        "URL:             https://example.com/app.git\n"
        "Branch:          main\n"
        "Revision:        main@sha1:0123\n"
        "Status:          Last reconciled at 2026-01-02 03:04:05 +0000 UTC\n"
        "Message:         stored artifact for revision 'main@sha1:0123'\n"
    )


def test_a_cluster_object_without_a_source_part_or_status() -> None:
    namespace = {"kind": "Namespace", "metadata": {"name": "apps"}}
    ks = {"metadata": {"name": "infra", "namespace": "flux-system"}, "spec": {}}
    assert kustomization_report(namespace, ks, []) == (
        "\n"
        "Object:          Namespace/apps\n"
        "Status:          Managed by Flux\n"
        "---\n"
        "Kustomization:   infra\n"
        "Namespace:       flux-system\n"
        "Path:            \n"
        "Revision:        \n"
        "Status:          Unknown\n"
    )


@pytest.mark.parametrize(
    ("ref", "line"),
    [
        ({"tag": "v1", "semver": ">=1", "branch": "main"}, "Tag:             v1"),
        ({"semver": ">=1", "branch": "main"}, "Tag:             >=1"),
        ({"branch": "main", "commit": "0123"}, "Branch:          main"),
        ({"commit": "0123"}, None),
        (None, None),
    ],
)
def test_a_git_repository_shows_its_tag_else_semver_else_branch(
    ref: dict[str, str] | None, line: str | None
) -> None:
    repo: dict[str, Any] = {"metadata": {"name": "r", "namespace": "n"}, "spec": {"url": "u"}}
    if ref is not None:
        repo["spec"]["ref"] = ref
    lines = git_repository_lines(repo)
    assert lines[:4] == ["---", "GitRepository:   r", "Namespace:       n", "URL:             u"]
    assert lines[4:] == ([line] if line else []) + ["Status:          Unknown"]


@pytest.mark.usefixtures("utc")
def test_a_failing_source_says_when_it_failed() -> None:
    repo = {"metadata": {}, "spec": {}, "status": {"conditions": [ready("False", "no\nway")]}}
    assert git_repository_lines(repo)[-2:] == [
        "Status:          Last reconciliation failed at 2026-01-02 03:04:05 +0000 UTC",
        "Message:         no\nway",
    ]


def test_an_oci_artifact_shows_its_origin_with_a_line_per_annotation() -> None:
    repo = {
        "metadata": {"name": "o", "namespace": "n"},
        "spec": {"url": "oci://r/app", "ref": {"digest": "sha256:ab"}},
        "status": {
            "artifact": {
                "revision": "latest@sha256:ab",
                "metadata": {"org.opencontainers.image.source": "https://github.com/x/y"},
            }
        },
    }
    assert oci_repository_lines(repo) == [
        "---",
        "OCIRepository:   o",
        "Namespace:       n",
        "URL:             oci://r/app",
        "Digest:          sha256:ab",
        "Revision:        latest@sha256:ab",
        "",  # no revision annotation: flux leaves its line empty
        "Origin Source:   https://github.com/x/y",
        "Status:          Unknown",
    ]


def test_an_external_artifact_needs_its_source_reference() -> None:
    artifact = {
        "metadata": {"name": "ea", "namespace": "n"},
        "spec": {"sourceRef": {"kind": "GitRepository", "name": "app"}},
    }
    assert external_artifact_lines(artifact)[1:4] == [
        "ExternalArtifact:ea",
        "Namespace:       n",
        "Source:          GitRepository//app",
    ]
    artifact["spec"] = {}
    with pytest.raises(TraceError, match=r"^ExternalArtifact n/ea is missing spec\.sourceRef$"):
        external_artifact_lines(artifact)


@pytest.mark.parametrize(
    ("zone", "stamp", "shown"),
    [
        ("UTC", "2026-01-01T10:11:12Z", "2026-01-01 10:11:12 +0000 UTC"),
        ("UTC", "2026-01-01T10:11:12.50+02:00", "2026-01-01 08:11:12.5 +0000 UTC"),
        ("Europe/Berlin", "2026-07-01T10:11:12Z", "2026-07-01 12:11:12 +0200 CEST"),
        ("UTC", None, "0001-01-01 00:00:00 +0000 UTC"),
    ],
)
def test_times_are_printed_as_go_prints_them_in_the_local_zone(
    monkeypatch: pytest.MonkeyPatch, zone: str, stamp: str | None, shown: str
) -> None:
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        assert go_time(stamp) == shown
    finally:
        monkeypatch.undo()
        time.tzset()
