"""Which ConfigMap and Secret changes wake which Kustomizations."""

from __future__ import annotations

from typing import Any

from tidal.kustomize.config_watch import config_watch, digest_data, references


def ks(name: str, namespace: str = "apps", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": spec}


KUSTOMIZATIONS = [
    ks(
        "subst",
        postBuild={
            "substituteFrom": [
                {"kind": "ConfigMap", "name": "vars"},
                {"kind": "Secret", "name": "creds", "optional": True},
            ]
        },
    ),
    ks("sops", decryption={"provider": "sops", "secretRef": {"name": "age"}}),
    ks("remote", kubeConfig={"secretRef": {"name": "kubeconfig"}}),
    ks(
        "elsewhere",
        namespace="other",
        postBuild={"substituteFrom": [{"kind": "ConfigMap", "name": "vars"}]},
    ),
]


def test_references_cover_every_place_a_kustomization_reads_configs() -> None:
    assert [references(k) for k in KUSTOMIZATIONS[:3]] == [
        {("ConfigMap", "vars"), ("Secret", "creds")},
        {("Secret", "age")},
        {("Secret", "kubeconfig")},
    ]


def config(kind: str, name: str, namespace: str = "apps", **data: str) -> dict[str, Any]:
    raw = {
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
        "data": data,
    }
    return digest_data(raw)


def test_data_changes_wake_the_readers_in_the_same_namespace_only() -> None:
    woken: list[tuple[str, str]] = []
    on_add, on_update, on_delete = config_watch(
        "ConfigMap", lambda: KUSTOMIZATIONS, lambda ns, n: woken.append((ns, n))
    )
    old, new = config("ConfigMap", "vars", a="1"), config("ConfigMap", "vars", a="2")
    on_update(old, new)
    assert woken == [("apps", "subst")]
    woken.clear()
    relabelled = dict(new, metadata=dict(new["metadata"], resourceVersion="9"))
    on_update(new, relabelled)
    assert woken == [], "a metadata-only change is no reason to reconcile"
    on_delete(new)
    on_add(config("ConfigMap", "unrelated"))
    assert woken == [("apps", "subst")]


def test_secrets_are_cached_without_their_data() -> None:
    cached = config("Secret", "creds", token="s3cr3t")
    assert "s3cr3t" not in repr(cached)
    assert "data" not in cached
