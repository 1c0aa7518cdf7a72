"""The Kustomization reconciler's pure parts: timeouts, history, owner labels, source watch,
where sources and dependencies are read from."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from tidal.api.kustomize import Kustomization
from tidal.api.meta import Snapshot
from tidal.kube.client import ApiError, Kube
from tidal.kube.events import EventRecorder
from tidal.kustomize import history
from tidal.kustomize.artifacts import ArtifactCache
from tidal.kustomize.kustomization import (
    KustomizationReconciler,
    Settings,
    _Run,
    object_path,
    set_common_metadata,
    set_owner_labels,
    source_watch,
)
from tidal.kustomize.render import Renderer, RenderError, refuse_ciphertext, secure_join


def ks(name: str = "apps", namespace: str = "flux-system", **spec: Any) -> Kustomization:
    body = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": {
            "interval": "10m",
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": "repo"},
            **spec,
        },
    }
    return Kustomization.from_dict(body)


def test_timeout_and_retry_interval_follow_flux() -> None:
    assert ks().spec.timeout_seconds() == 570.0  # interval minus 30 s
    assert ks(interval="40s").spec.timeout_seconds() == 30.0  # never below 30 s
    assert ks(timeout="2m").spec.timeout_seconds() == 120.0
    assert ks().spec.retry_interval_seconds() == 600.0
    assert ks(retryInterval="1m").spec.retry_interval_seconds() == 60.0


def test_owner_labels_and_common_metadata_override_what_the_build_set() -> None:
    objs: list[dict[str, Any]] = [
        {"kind": "ConfigMap", "metadata": {"name": "a", "labels": {"team": "x", "env": "dev"}}},
        {"kind": "ConfigMap", "metadata": {"name": "b"}},
    ]
    obj = ks(commonMetadata={"labels": {"env": "prod"}, "annotations": {"owner": "me"}})
    set_owner_labels(objs, obj)
    set_common_metadata(objs, obj)
    assert objs[0]["metadata"]["labels"] == {
        "team": "x",
        "env": "prod",
        "kustomize.toolkit.fluxcd.io/name": "apps",
        "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
    }
    assert objs[1]["metadata"]["annotations"] == {"owner": "me"}


def snap(digest: str, status: str, total: int = 1) -> Snapshot:
    return Snapshot(
        digest=digest,
        first_reconciled="t0",
        last_reconciled="t0",
        last_reconciled_duration="1s",
        last_reconciled_status=status,
        total_reconciliations=total,
    )


def test_history_counts_repeats_moves_them_first_and_keeps_five() -> None:
    past = [snap(f"sha256:{i}", "ReconciliationSucceeded") for i in range(5)]
    out = history.upsert(
        past,
        checksum="sha256:3",
        now="t1",
        duration=2.5,
        status="ReconciliationSucceeded",
        metadata={"revision": "main@sha1:abc"},
    )
    assert [s.digest for s in out] == ["sha256:3", "sha256:0", "sha256:1", "sha256:2", "sha256:4"]
    assert out[0].total_reconciliations == 2
    assert out[0].first_reconciled == "t0" and out[0].last_reconciled == "t1"
    assert out[0].last_reconciled_duration == "2.5s"
    failed = history.upsert(
        out, checksum="sha256:3", now="t2", duration=1, status="ReconciliationFailed", metadata={}
    )
    assert len(failed) == 5
    assert (failed[0].digest, failed[0].last_reconciled_status) == (
        "sha256:3",
        "ReconciliationFailed",
    )
    assert failed[0].total_reconciliations == 1


def test_source_watch_wakes_only_kustomizations_on_that_source_with_a_new_revision() -> None:
    def k(name: str, ns: str, src: str, src_ns: str = "", attempted: str = "") -> dict[str, Any]:
        ref = {"kind": "GitRepository", "name": src}
        if src_ns:
            ref["namespace"] = src_ns
        return {
            "metadata": {"name": name, "namespace": ns},
            "spec": {"sourceRef": ref},
            "status": {"lastAttemptedRevision": attempted},
        }

    kustomizations = [
        k("a", "apps", "repo"),
        k("b", "apps", "other"),
        k("c", "team", "repo", src_ns="apps"),
        k("d", "team", "repo"),
        k("e", "apps", "repo", attempted="main@sha1:2"),
    ]
    woken: list[tuple[str, str]] = []
    handler = source_watch(
        "GitRepository", lambda: kustomizations, lambda ns, n: woken.append((ns, n))
    )

    def repo(revision: str) -> dict[str, Any]:
        return {
            "metadata": {"name": "repo", "namespace": "apps"},
            "status": {"artifact": {"revision": revision}},
        }

    handler(repo("main@sha1:1"), repo("main@sha1:1"))
    assert woken == []
    handler(repo("main@sha1:1"), repo("main@sha1:2"))
    assert woken == [("apps", "a"), ("team", "c")]


def test_paths_are_clamped_to_the_artifact_root(tmp_path: Any) -> None:
    assert secure_join(tmp_path, "../../etc") == tmp_path / "etc"
    assert secure_join(tmp_path, "./apps/../infra") == tmp_path / "infra"
    assert secure_join(tmp_path, "") == tmp_path


def test_sops_ciphertext_is_never_applied_without_decryption() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "apps"},
        "data": {"k": "ENC[AES256_GCM,data:...]"},
        "sops": {"mac": "ENC[...]", "lastmodified": "2026-01-01T00:00:00Z"},
    }
    with pytest.raises(RenderError) as err:
        refuse_ciphertext([secret])
    assert str(err.value) == (
        "Secret/apps/s is SOPS encrypted, configuring decryption is required for this "
        "secret to be reconciled"
    )
    secret["metadata"]["annotations"] = {"kustomize.toolkit.fluxcd.io/decrypt": "Disabled"}
    refuse_ciphertext([secret])


class _Api:
    """An API server answering GETs from `objects`, remembering the paths asked."""

    def __init__(self, objects: dict[str, dict[str, Any]]) -> None:
        self.objects = objects
        self.asked: list[str] = []

    async def get(self, path: str) -> dict[str, Any]:
        self.asked.append(path)
        if path not in self.objects:
            raise ApiError(404, {"message": "not found"}, "GET", path)
        return self.objects[path]


REVISION = "main@sha1:1"


def ready_dependency(name: str) -> dict[str, Any]:
    body = ks(name).to_dict()
    body["status"] = {
        "observedGeneration": 1,
        "lastAppliedRevision": REVISION,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "ReconciliationSucceeded",
                "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
    }
    return body


async def test_dependencies_are_read_from_the_cache_and_a_miss_asks_the_api_server(
    tmp_path: Path,
) -> None:
    # "uncached" stands for a dependency --watch-label-selector keeps out of the informer.
    api = _Api({object_path("flux-system", "uncached"): ready_dependency("uncached")})
    cache = {("flux-system", "cached"): ready_dependency("cached")}
    kube = cast(Kube, api)
    reconciler = KustomizationReconciler(
        kube,
        EventRecorder(kube, "kustomize-controller"),
        ArtifactCache(tmp_path),
        Renderer(),
        Settings(),
        caches={"Kustomization": lambda ns, name: cache.get((ns, name))},
    )
    source = {"status": {"artifact": {"revision": REVISION}}}

    async def problem(dependency: str) -> str | None:
        run = _Run(ks(dependsOn=[{"name": dependency}]), {})
        return await reconciler._check_dependencies(run, source)

    assert await problem("cached") is None
    assert api.asked == [], "a cached dependency costs no request"
    assert await problem("uncached") is None
    assert await problem("gone") == "dependency 'flux-system/gone' not found: not found"
    assert api.asked == [object_path("flux-system", "uncached"), object_path("flux-system", "gone")]
    await reconciler.close()


def test_api_errors_read_as_the_servers_message_or_the_whole_line() -> None:
    said = ApiError(409, {"message": 'configmaps "a" already exists'}, "POST", "/api/v1/x")
    assert said.message == 'configmaps "a" already exists'
    silent = ApiError(502, None, "GET", "/api/v1/x")
    assert silent.message == "GET /api/v1/x: HTTP 502"
