"""The informer's pure parts: applying watch events, merging a relist, backoff, 410 detection."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from tidal.runtime.informer import (
    Backoff,
    Change,
    Key,
    Relist,
    _error_from_status,
    _Gone,
    _is_gone,
    apply_event,
    collection_path,
    compact,
    diff,
    lean,
    object_key,
    strip_managed_fields,
)


def obj(name: str, rv: str, namespace: str = "ns", **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": rv},
        "data": data,
    }


def kinds(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.kind, object_key(c.new or c.old or {})[1]) for c in changes]


# -- watch events ---------------------------------------------------------------------------------


def test_apply_event_add_update_delete() -> None:
    cache: dict[Key, dict[str, Any]] = {}
    a1, a2 = obj("a", "1"), obj("a", "2")
    assert apply_event(cache, "ADDED", a1) == Change("add", None, a1)
    assert apply_event(cache, "MODIFIED", a2) == Change("update", a1, a2)
    assert cache == {("ns", "a"): a2}
    assert apply_event(cache, "DELETED", obj("a", "3")) == Change("delete", a2, None)
    assert cache == {}


def test_apply_event_tolerates_replays() -> None:
    cache: dict[Key, dict[str, Any]] = {("ns", "a"): obj("a", "1")}
    # ADDED for a cached key is an update; MODIFIED for an unknown key is an add.
    assert apply_event(cache, "ADDED", obj("a", "2")).kind == "update"  # type: ignore[union-attr]
    assert apply_event(cache, "MODIFIED", obj("b", "3")).kind == "add"  # type: ignore[union-attr]
    # DELETED of something never seen changes nothing and reports nothing.
    assert apply_event(cache, "DELETED", obj("c", "4")) is None
    assert apply_event(cache, "BOOKMARK", obj("x", "5")) is None
    assert sorted(cache) == [("ns", "a"), ("ns", "b")]


def test_cluster_scoped_objects_key_on_empty_namespace() -> None:
    node = {"metadata": {"name": "n1", "resourceVersion": "1"}}
    assert object_key(node) == ("", "n1")


# -- relist diff ----------------------------------------------------------------------------------


def test_diff_reports_every_difference_and_nothing_else() -> None:
    same, changed, gone = obj("same", "1"), obj("changed", "1"), obj("gone", "1")
    cache: dict[Key, dict[str, Any]] = {object_key(o): o for o in (same, changed, gone)}
    listing = [obj("same", "1"), obj("changed", "7"), obj("new", "8")]

    changes = diff(cache, listing)

    assert kinds(changes) == [("update", "changed"), ("add", "new"), ("delete", "gone")]
    update = changes[0]
    assert update.old is changed and update.new == obj("changed", "7")
    assert changes[2].old is gone  # the last state the cache held
    assert {k[1]: v["metadata"]["resourceVersion"] for k, v in cache.items()} == {
        "same": "1",
        "changed": "7",
        "new": "8",
    }
    # An unchanged object keeps its identity, so references handed out earlier stay current.
    assert cache[("ns", "same")] is same


def test_relist_merges_page_by_page() -> None:
    cache: dict[Key, dict[str, Any]] = {object_key(o): o for o in (obj("a", "1"), obj("z", "1"))}
    relist = Relist(cache)
    assert kinds(relist.page([obj("a", "2"), obj("b", "1")])) == [("update", "a"), ("add", "b")]
    # Pages are merged as they arrive: nothing is deleted before the last page.
    assert ("ns", "z") in cache
    assert kinds(relist.page([obj("c", "1")])) == [("add", "c")]
    assert kinds(relist.finish()) == [("delete", "z")]
    assert sorted(k[1] for k in cache) == ["a", "b", "c"]


def test_diff_of_identical_listing_is_empty_and_same_names_in_other_namespaces_differ() -> None:
    cache: dict[Key, dict[str, Any]] = {("ns", "a"): obj("a", "1")}
    assert diff(cache, [obj("a", "1")]) == []
    changes = diff(cache, [obj("a", "1"), obj("a", "1", namespace="other")])
    assert [(c.kind, object_key(c.new or {})) for c in changes] == [("add", ("other", "a"))]


def test_relist_to_empty_deletes_everything() -> None:
    cache: dict[Key, dict[str, Any]] = {object_key(o): o for o in (obj("a", "1"), obj("b", "2"))}
    assert kinds(diff(cache, [])) == [("delete", "a"), ("delete", "b")]
    assert cache == {}


# -- backoff --------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_to_the_cap_without_jitter() -> None:
    clock = FakeClock()
    backoff = Backoff(0.8, 30.0, jitter=0.0, clock=clock)
    delays = [backoff.next() for _ in range(8)]
    assert delays == pytest.approx([0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0])


def test_backoff_jitter_stretches_each_delay_by_up_to_its_own_length() -> None:
    rands = itertools.cycle([0.0, 0.5, 0.999])
    backoff = Backoff(1.0, 8.0, rand=lambda: next(rands), clock=FakeClock())
    assert [backoff.next() for _ in range(3)] == pytest.approx([1.0, 3.0, 4 * 1.999])
    # Bounded: never more than cap * (1 + jitter).
    backoff = Backoff(rand=lambda: 0.999999, clock=FakeClock())
    assert max(backoff.next() for _ in range(50)) < 60.0


def test_backoff_resets_after_a_quiet_period() -> None:
    clock = FakeClock()
    backoff = Backoff(1.0, 30.0, jitter=0.0, reset_after=120.0, clock=clock)
    assert [backoff.next() for _ in range(3)] == [1.0, 2.0, 4.0]
    clock.now += 60  # failures still close together: keep growing
    assert backoff.next() == 8.0
    clock.now += 121
    assert backoff.next() == 1.0
    backoff.reset()
    assert backoff.next() == 1.0


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(0.0, 1.0)
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)


# -- recognising an expired resume point ----------------------------------------------------------


def test_gone_is_410_or_resource_version_too_large() -> None:
    assert _is_gone(410, {})
    assert not _is_gone(500, {})
    too_large = {
        "code": 504,
        "reason": "Timeout",
        "details": {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large"}]},
    }
    assert _is_gone(504, too_large)


def test_error_events_map_to_relist_or_plain_errors() -> None:
    expired = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}
    assert isinstance(_error_from_status(expired), _Gone)
    other = _error_from_status({"kind": "Status", "code": 500, "message": "boom"})
    assert not isinstance(other, _Gone)
    assert "boom" in str(other)


# -- helpers --------------------------------------------------------------------------------------


def test_strip_managed_fields() -> None:
    o = obj("a", "1")
    o["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    assert strip_managed_fields(o) is o
    assert "managedFields" not in o["metadata"]
    assert strip_managed_fields({"kind": "Status"}) == {"kind": "Status"}


def test_compact_shares_keys_and_repeated_values_and_keeps_content() -> None:
    # Decode separately, as watch events are: equal strings, distinct objects.
    a = json.loads(json.dumps(obj("a", "1", namespace="apps")))
    b = json.loads(json.dumps(obj("b", "2", namespace="apps")))
    a["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded"}]}
    b["status"] = json.loads(json.dumps(a["status"]))
    key_a = next(k for k in a if k == "metadata")
    key_b = next(k for k in b if k == "metadata")
    assert key_a is not key_b
    ca, cb = compact(a), compact(b)
    assert ca == a and cb == b
    assert next(k for k in ca if k == "metadata") is next(k for k in cb if k == "metadata")
    assert ca["metadata"]["namespace"] is cb["metadata"]["namespace"]
    assert ca["status"]["conditions"][0]["reason"] is cb["status"]["conditions"][0]["reason"]


def test_lean_drops_managed_fields_and_compacts() -> None:
    o = obj("a", "1")
    o["metadata"]["managedFields"] = [{"manager": "kustomize-controller"}]
    expected = obj("a", "1")
    assert lean(o) == expected


def test_collection_path() -> None:
    assert collection_path("v1", "configmaps") == "/api/v1/configmaps"
    assert collection_path("v1", "configmaps", "ns") == "/api/v1/namespaces/ns/configmaps"
    assert (
        collection_path("source.toolkit.fluxcd.io/v1", "gitrepositories", "flux-system")
        == "/apis/source.toolkit.fluxcd.io/v1/namespaces/flux-system/gitrepositories"
    )
