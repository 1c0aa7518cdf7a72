"""`tidal events` against a real API server, byte for byte with the real `flux events`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.cli_process import assert_same, flux, needs_flux, tidal
from tests.e2e.test_cli_kustomizations import create, kustomization
from tests.plugin import Cluster
from tidal.cli.events import human_duration
from tidal.cli.objects import KUSTOMIZATION
from tidal.kube.client import Kube

pytestmark = pytest.mark.e2e

# Old enough that the LAST SEEN column cannot change between the two CLIs' runs.
NOW = datetime.now(UTC)


def stamp(days: int, hours: int) -> str:
    return (NOW - timedelta(days=days, hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def event(
    kube: Kube,
    namespace: str,
    name: str,
    kind: str,
    obj: str,
    *,
    type_: str = "Normal",
    reason: str = "ReconciliationSucceeded",
    message: str = "done",
    first: tuple[int, int] = (3, 5),
    last: tuple[int, int] = (3, 5),
    count: int = 1,
    obj_namespace: str = "",
) -> None:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": {"kind": kind, "name": obj, "namespace": obj_namespace or namespace},
        "type": type_,
        "reason": reason,
        "message": message,
        "firstTimestamp": stamp(*first),
        "lastTimestamp": stamp(*last),
        "count": count,
        "source": {"component": "kustomize-controller"},
    }
    await kube.request("POST", f"/api/v1/namespaces/{namespace}/events", body=body)


@needs_flux
async def test_events_match_flux(
    kube: Kube, cluster: Cluster, namespace: str, crds: None, flux_bin: Path
) -> None:
    await create(
        kube,
        KUSTOMIZATION,
        kustomization(namespace, "app", sourceRef={"kind": "GitRepository", "name": "repo"}),
    )
    await event(
        kube, namespace, "e1", "Kustomization", "app", message="Applied revision main@sha1:1"
    )
    await event(
        kube, namespace, "e2", "Kustomization", "app", type_="Warning", reason="HealthCheckFailed",
        message="timeout waiting for: [Deployment/x/web status: 'InProgress']", first=(4, 0),
        last=(2, 1), count=3,
    )  # fmt: skip
    await event(kube, namespace, "e3", "GitRepository", "repo", reason="NewArtifact",
                message="stored artifact", first=(5, 2), last=(5, 2))  # fmt: skip
    await event(kube, namespace, "e4", "Kustomization", "other", first=(1, 3), last=(1, 3))
    await event(kube, namespace, "e5", "ConfigMap", "not-flux", first=(1, 1), last=(1, 1))
    kc = cluster.kubeconfig
    for args in (
        ["events", "-n", namespace],
        ["events", "-n", namespace, "--for", "Kustomization/app"],
        ["events", "-n", namespace, "--for", "kustomization"],
        ["events", "-n", namespace, "--types", "warning"],
        ["events", "-n", namespace, "--for", "GitRepository/repo", "--types", "Normal"],
        ["events", "-n", namespace, "--for", "Foo/bar"],
        ["events", "-n", namespace, "--for", "Kustomization/missing"],
        ["events", "-n", namespace, "--types", "Error"],
    ):
        ours, theirs = await tidal(kc, *args), await flux(flux_bin, kc, *args)
        assert_same(ours, theirs)
    # flux reports a kind whose CRD is missing with a raw discovery error; tidal says so.
    ours = await tidal(kc, "events", "-n", namespace, "--for", "Alert/none")
    assert ours.code == 1
    assert ours.stderr == (
        '✗ no matches for kind "Alert" in version "notification.toolkit.fluxcd.io/v1beta3": its '
        "CRD is not installed in this cluster\n"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"), (-0.5, "0s"), (59, "59s"), (119, "119s"), (120, "2m"), (125, "2m5s"),
        (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"), (3 * 3600 + 60, "3h1m"),
        (8 * 3600, "8h"), (47 * 3600, "47h"), (48 * 3600, "2d"), (50 * 3600, "2d2h"),
        (8 * 86400, "8d"), (729 * 86400, "729d"), (731 * 86400, "2y1d"), (9 * 365 * 86400, "9y"),
    ],
)  # fmt: skip
def test_human_durations(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


async def test_watch_streams_until_the_timeout(
    kube: Kube, cluster: Cluster, namespace: str
) -> None:
    await event(kube, namespace, "w1", "Kustomization", "app", message="first")
    await event(kube, namespace, "w2", "ConfigMap", "x", message="not flux")
    out = await tidal(cluster.kubeconfig, "events", "-n", namespace, "-w", "--timeout", "3s")
    assert out.code == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert len(lines) == 2 and lines[1].split()[-2:] == ["Kustomization/app", "first"]
