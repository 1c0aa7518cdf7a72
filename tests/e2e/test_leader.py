"""Leader election on a real Lease: one leader among candidates, hand-over on a graceful stop,
takeover after a crashed leader's lease runs out, and stepping down when the lease is lost."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from tidal.kube.client import Kube
from tidal.runtime.leader import LeaderElector, lease_name

pytestmark = pytest.mark.e2e

# Seconds, scaled down from Flux's 35/30/5 with the same constraints between them.
LEASE, RENEW, RETRY = 2.0, 1.5, 0.2
# A standby retries every RETRY * [1, 2.2): the longest wait between two of its tries.
MAX_RETRY_GAP = RETRY * 2.2


async def eventually(probe: Callable[[], bool], within: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < within:
        if probe():
            return time.monotonic() - start
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {within}s waiting for {what}")


class Candidate:
    """A candidate whose leading task marks itself in a shared set while it runs."""

    def __init__(self, kube: Kube, namespace: str, name: str, leading: set[str], **kw: Any):
        self.leading = leading
        self.stopped = 0
        self.elector = LeaderElector(
            kube,
            name=name,
            namespace=namespace,
            lease_duration=LEASE,
            renew_deadline=RENEW,
            retry_period=RETRY,
            on_started_leading=self._lead,
            on_stopped_leading=self._stopped,
            **kw,
        )
        self.overlaps = 0

    @property
    def identity(self) -> str:
        return self.elector.identity

    async def _lead(self) -> None:
        if self.leading:
            self.overlaps += 1
        self.leading.add(self.identity)
        try:
            await asyncio.Event().wait()
        finally:
            self.leading.discard(self.identity)

    def _stopped(self) -> None:
        self.stopped += 1


async def lease(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = (
        await kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}")
    )["spec"]
    return spec


async def test_one_leader_then_hand_over_on_graceful_stop(kube: Kube, namespace: str) -> None:
    name = lease_name("source-controller")
    assert name == "source-controller-leader-election"
    leading: set[str] = set()
    a = Candidate(kube, namespace, name, leading)
    b = Candidate(kube, namespace, name, leading)
    assert re.fullmatch(rf"{re.escape(socket.gethostname())}_[0-9a-f-]{{36}}", a.identity)
    a.elector.start()
    b.elector.start()
    try:
        await eventually(lambda: len(leading) == 1, 5, "a leader")
        # Several lease durations with both running: always exactly one leader.
        end = time.monotonic() + 2 * LEASE
        while time.monotonic() < end:
            assert len(leading) == 1
            await asyncio.sleep(0.05)
        leader, standby = (a, b) if a.identity in leading else (b, a)
        spec = await lease(kube, namespace, name)
        assert spec["holderIdentity"] == leader.identity
        assert spec["leaseDurationSeconds"] == int(LEASE)
        assert spec["leaseTransitions"] == 0
        assert spec["acquireTime"] <= spec["renewTime"]
        assert standby.elector.leader == leader.identity and not standby.elector.is_leader

        # A graceful stop releases the lease: the standby need not wait out the lease.
        stopped_at = time.monotonic()
        await leader.elector.stop()
        assert leader.stopped == 1 and leader.identity not in leading
        await eventually(lambda: standby.identity in leading, 5, "the standby to lead")
        took = time.monotonic() - stopped_at
        assert took < LEASE, f"hand-over took {took:.2f}s, as long as an expiry"
        spec = await lease(kube, namespace, name)
        assert spec["holderIdentity"] == standby.identity
        assert spec["leaseTransitions"] == 1
        assert a.overlaps == b.overlaps == 0
    finally:
        await a.elector.stop()
        await b.elector.stop()
    # The last leader released it too.
    assert (await lease(kube, namespace, name))["holderIdentity"] == ""


async def test_takeover_after_a_crashed_leader_waits_out_the_lease(
    kube: Kube, namespace: str
) -> None:
    name = lease_name("kustomize-controller")
    leading: set[str] = set()
    crashing = Candidate(kube, namespace, name, leading, release_on_cancel=False)
    crashing.elector.start()
    await eventually(lambda: crashing.identity in leading, 5, "the first leader")
    standby = Candidate(kube, namespace, name, leading)
    standby.elector.start()
    try:
        await asyncio.sleep(LEASE)  # the standby sees the lease renewed, so it waits
        assert standby.identity not in leading
        await crashing.elector.stop()  # no release: the Lease still names it
        crashed_at = time.monotonic()
        assert (await lease(kube, namespace, name))["holderIdentity"] == crashing.identity
        await eventually(lambda: standby.identity in leading, 3 * LEASE, "the takeover")
        took = time.monotonic() - crashed_at
        # The standby measures the lease from the last change *it* saw, on its own clock.
        assert LEASE - MAX_RETRY_GAP - RETRY <= took <= LEASE + MAX_RETRY_GAP + 0.5
        spec = await lease(kube, namespace, name)
        assert spec["holderIdentity"] == standby.identity
        assert spec["leaseTransitions"] == 1
    finally:
        await crashing.elector.stop()
        await standby.elector.stop()


async def test_leader_steps_down_when_its_lease_is_taken(kube: Kube, namespace: str) -> None:
    name = lease_name("helm-controller")
    leading: set[str] = set()
    new_leaders: list[str] = []
    leader = Candidate(kube, namespace, name, leading, on_new_leader=new_leaders.append)
    run = asyncio.create_task(leader.elector.run())
    try:
        await eventually(lambda: leader.identity in leading, 5, "leadership")
        path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        current = await kube.get(path)
        current["spec"].update(holderIdentity="intruder", leaseDurationSeconds=60)
        await kube.replace(path, current)
        taken_at = time.monotonic()

        async with asyncio.timeout(RENEW + 2):
            await run  # run() returns once renewing failed for a whole renew deadline
        took = time.monotonic() - taken_at
        assert RENEW - 0.1 <= took <= RENEW + 1
        assert leader.identity not in leading  # the leading task was cancelled...
        assert leader.stopped == 1  # ...and told
        assert new_leaders == [leader.identity, "intruder"]
        # Not the holder any more, so nothing was released over the intruder's record.
        assert (await lease(kube, namespace, name))["holderIdentity"] == "intruder"
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)


async def test_release_survives_a_lease_written_behind_its_back(kube: Kube, namespace: str) -> None:
    """A renew cancelled after the server applied it leaves the leader's copy of the Lease stale;
    stopping must still release it (CI once saw the holder stay after a graceful stop)."""
    name = lease_name("notification-controller")
    leading: set[str] = set()
    # Long periods: no renew refreshes the leader's copy between the outside write and the stop.
    elector = LeaderElector(
        kube,
        name=name,
        namespace=namespace,
        lease_duration=30,
        renew_deadline=20,
        retry_period=10,
        on_started_leading=lambda: leading.add("x"),
    )
    elector.start()
    try:
        await eventually(lambda: elector.is_leader, 5, "leadership")
        path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        await kube.patch(path, {"metadata": {"annotations": {"touched": "yes"}}})
    finally:
        await elector.stop()
    assert (await lease(kube, namespace, name))["holderIdentity"] == ""


def test_durations_are_validated_like_client_go(kube: Kube) -> None:
    with pytest.raises(ValueError, match="greater than renew_deadline"):
        LeaderElector(kube, name="x", namespace="y", lease_duration=30, renew_deadline=30)
    with pytest.raises(ValueError, match="retry_period"):
        LeaderElector(kube, name="x", namespace="y", renew_deadline=6, retry_period=5)


async def test_watches_beside_the_controllers_stop_when_leadership_is_lost(
    kube: Kube, namespace: str
) -> None:
    from tidal.runtime.manager import Manager, ManagerOptions

    name = lease_name("tidal-runnables")
    running: list[bool] = []

    async def stopped() -> None:
        running.append(False)

    manager = Manager(
        kube,
        ManagerOptions(
            metrics_addr="127.0.0.1:0",
            health_addr="127.0.0.1:0",
            leader_election=True,
            lease_name=name,
            lease_namespace=namespace,
            lease_duration=LEASE,
            renew_deadline=RENEW,
            retry_period=RETRY,
        ),
    )
    manager.add_runnable(lambda: running.append(True), stopped)
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run(stop))
    try:
        await eventually(lambda: running == [True], 5, "started while leading")
        path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
        current = await kube.get(path)
        current["spec"].update(holderIdentity="intruder", leaseDurationSeconds=60)
        await kube.replace(path, current)
        await eventually(lambda: running == [True, False], RENEW + 2, "stopped on losing it")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert running == [True, False], "stopped once, not again at shutdown"
