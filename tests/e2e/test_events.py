"""Events recorded as Flux records them, read back from a real API server."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.plugin import Cluster
from tidal.kube.client import Kube
from tidal.kube.events import (
    AGGREGATE_PREFIX,
    MAX_MESSAGE_LENGTH,
    Correlator,
    EventRecord,
    EventRecorder,
)

pytestmark = pytest.mark.e2e

REVISION = "source.toolkit.fluxcd.io/revision"


async def subject(kube: Kube, namespace: str, name: str = "podinfo") -> dict[str, Any]:
    """An object to report about (a ConfigMap stands in for a Flux object: no CRDs needed)."""
    obj: dict[str, Any] = await kube.create(
        f"/api/v1/namespaces/{namespace}/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "annotations": {"event.toolkit.fluxcd.io/deploymentID": "d-42"},
            },
        },
    )
    obj.setdefault("apiVersion", "v1")
    obj.setdefault("kind", "ConfigMap")
    return obj


async def events_about(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (
        await kube.get(
            f"/api/v1/namespaces/{namespace}/events",
            params={"fieldSelector": f"involvedObject.name={name}"},
        )
    )["items"]
    return sorted(items, key=lambda e: (e["firstTimestamp"], e["metadata"]["name"]))


async def test_event_has_flux_fields_and_repeats_bump_the_count(kube: Kube, namespace: str) -> None:
    obj = await subject(kube, namespace)
    forwarded: list[EventRecord] = []
    recorder = EventRecorder(kube, "source-controller", forward=forwarded.append)
    message = "stored artifact for commit 'Add podinfo'"
    for _ in range(3):
        recorder.normal(obj, "NewArtifact", message, {REVISION: "main@sha1:0123abcd"})
    recorder.warning(obj, "GitOperationFailed", "failed to checkout: auth required")
    await recorder.close()

    events = await events_about(kube, namespace, "podinfo")
    assert len(events) == 2, [(e["reason"], e["count"]) for e in events]
    normal = next(e for e in events if e["reason"] == "NewArtifact")
    assert normal["type"] == "Normal"
    assert normal["message"] == message
    assert normal["count"] == 3
    assert normal["firstTimestamp"] <= normal["lastTimestamp"]
    assert normal["source"] == {"component": "source-controller"}
    assert normal["reportingComponent"] == "source-controller"
    assert normal["metadata"]["annotations"] == {REVISION: "main@sha1:0123abcd"}
    assert re.fullmatch(r"podinfo\.[0-9a-f]+", normal["metadata"]["name"])
    assert normal["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "podinfo",
        "namespace": namespace,
        "uid": obj["metadata"]["uid"],
        "resourceVersion": obj["metadata"]["resourceVersion"],
    }
    warning = next(e for e in events if e["reason"] == "GitOperationFailed")
    assert warning["type"] == "Warning" and warning["count"] == 1

    # Every occurrence went to the notification hook, with Flux's payload fields.
    assert [(r.severity, r.reason) for r in forwarded] == [("info", "NewArtifact")] * 3 + [
        ("error", "GitOperationFailed")
    ]
    payload = forwarded[0].to_json()
    assert payload["reportingController"] == "source-controller"
    assert payload["metadata"] == {
        REVISION: "main@sha1:0123abcd",
        "event.toolkit.fluxcd.io/deploymentID": "d-42",
    }
    assert payload["involvedObject"]["uid"] == obj["metadata"]["uid"]


async def test_trace_long_messages_and_recreating_an_expired_event(
    kube: Kube, namespace: str
) -> None:
    obj = await subject(kube, namespace)
    forwarded: list[EventRecord] = []
    recorder = EventRecorder(kube, "kustomize-controller", forward=forwarded.append)
    recorder.event(obj, "Trace", "ArtifactUpToDate", "artifact up-to-date with remote revision")
    recorder.warning(obj, "BuildFailed", "x" * (MAX_MESSAGE_LENGTH + 500))
    recorder.normal(obj, "Progressing", "ConfigMap/default/a created")
    await recorder.flush()

    events = {e["reason"]: e for e in await events_about(kube, namespace, "podinfo")}
    assert events["ArtifactUpToDate"]["type"] == "Normal"  # trace is a Normal Event...
    assert [r.reason for r in forwarded] == ["BuildFailed", "Progressing"]  # ...never forwarded
    long = events["BuildFailed"]["message"]
    assert len(long) == MAX_MESSAGE_LENGTH and long.endswith("...")

    # Events expire; a repeat of one that is gone creates it again, keeping its count going.
    first = events["Progressing"]
    await kube.delete(f"/api/v1/namespaces/{namespace}/events/{first['metadata']['name']}")
    recorder.normal(obj, "Progressing", "ConfigMap/default/a created")
    await recorder.close()
    again = {e["reason"]: e for e in await events_about(kube, namespace, "podinfo")}
    assert again["Progressing"]["metadata"]["name"] == first["metadata"]["name"]
    assert again["Progressing"]["count"] == 2


async def test_similar_events_are_combined_and_floods_are_cut(kube: Kube, namespace: str) -> None:
    obj = await subject(kube, namespace)
    recorder = EventRecorder(kube, "helm-controller")
    for i in range(12):
        recorder.warning(obj, "UpgradeFailed", f"upgrade {i} failed")
    await recorder.close()
    events = await events_about(kube, namespace, "podinfo")
    # Nine distinct Events, then the tenth and later ones folded into one combined Event.
    assert len(events) == 10
    combined = [e for e in events if e["message"].startswith(AGGREGATE_PREFIX)]
    assert len(combined) == 1
    assert combined[0]["count"] == 3
    assert combined[0]["message"] == AGGREGATE_PREFIX + "upgrade 11 failed"

    flood = await subject(kube, namespace, "flood")
    cut = EventRecorder(kube, "helm-controller", correlator=Correlator(burst=5))
    for _ in range(8):
        cut.normal(flood, "Reconciling", "same again")
    await cut.close()
    (event,) = await events_about(kube, namespace, "flood")
    assert event["count"] == 5
    assert cut.dropped == 3


async def test_write_failures_never_reach_the_caller(
    cluster: Cluster, kube: Kube, namespace: str
) -> None:
    obj = await subject(kube, namespace)
    async with Kube.from_kubeconfig(cluster.kubeconfig) as admin:
        nobody = Kube(admin.config, impersonate="nobody")
    try:
        recorder = EventRecorder(nobody, "source-controller", forward=lambda r: 1 / 0)
        recorder.normal(obj, "NewArtifact", "forbidden and the hook raises")
        gone = {**obj, "metadata": {**obj["metadata"], "namespace": "no-such-namespace"}}
        recorder.normal(gone, "NewArtifact", "no namespace")
        recorder.event(obj, "Bogus", "Reason", "an unknown type is refused, not raised")
        await recorder.close()
        assert recorder.failed == 2
    finally:
        await nobody.close()
    assert await events_about(kube, namespace, "podinfo") == []
