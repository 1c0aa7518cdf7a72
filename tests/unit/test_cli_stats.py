"""`tidal stats`: what counts as running, failing, suspended and stored, and flux's table; the
expected bytes were printed by the flux v2.9.5 binary."""

from __future__ import annotations

from typing import Any

import pytest

from tidal.cli.stats import RECONCILERS, Stats, count, format_size, render


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "-"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1048575, "1024.0 KiB"),  # rounded up, still counted in KiB
        (1048576, "1.0 MiB"),
        (123456789, "117.7 MiB"),
        (5000000000, "4.7 GiB"),
        (2**60, "1.0 EiB"),
    ],
)
def test_storage_is_shown_in_binary_units(size: int, shown: str) -> None:
    assert format_size(size) == shown


def obj(
    suspend: Any = None, ready: str | None = None, size: Any = None, **status: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {"spec": {}, "status": dict(status)}
    if suspend is not None:
        out["spec"]["suspend"] = suspend
    if ready is not None:
        out["status"]["conditions"] = [{"type": "Ready", "status": ready}]
    if size is not None:
        out["status"]["artifact"] = {"size": size}
    return out


def test_counts_suspended_failing_and_stored() -> None:
    items = [
        obj(ready="True", size=1000),
        obj(suspend=True, ready="False", size=24),  # suspended and failing at once
        obj(ready="Unknown"),
        obj(suspend="true", ready="false", size=1.5),  # not a bool, not False, not an integer
        obj(size=True),
        {},
    ]
    assert count(items) == Stats(total=6, failing=1, suspended=1, storage=1024)


def test_every_ready_false_condition_counts() -> None:
    item = {"status": {"conditions": [{"type": "Ready", "status": "False"}] * 2}}
    assert count([item]).failing == 2


def test_the_table_lists_flux_s_kinds_in_flux_s_order() -> None:
    rows = [(kind, Stats()) for kind, _ in RECONCILERS]
    rows[0] = ("GitRepository", Stats(total=3, failing=1, suspended=1, storage=1536))
    assert render(rows) == (
        "RECONCILERS          \tRUNNING\tFAILING\tSUSPENDED\tSTORAGE \n"
        "GitRepository        \t2      \t1      \t1        \t1.5 KiB\t\n"
        "OCIRepository        \t0      \t0      \t0        \t-      \t\n"
        "HelmRepository       \t0      \t0      \t0        \t-      \t\n"
        "HelmChart            \t0      \t0      \t0        \t-      \t\n"
        "Bucket               \t0      \t0      \t0        \t-      \t\n"
        "Kustomization        \t0      \t0      \t0        \t-      \t\n"
        "HelmRelease          \t0      \t0      \t0        \t-      \t\n"
        "Alert                \t0      \t0      \t0        \t-      \t\n"
        "Provider             \t0      \t0      \t0        \t-      \t\n"
        "Receiver             \t0      \t0      \t0        \t-      \t\n"
        "ImageUpdateAutomation\t0      \t0      \t0        \t-      \t\n"
        "ImagePolicy          \t0      \t0      \t0        \t-      \t\n"
        "ImageRepository      \t0      \t0      \t0        \t-      \t\n"
    )
