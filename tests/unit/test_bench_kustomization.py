"""bench/kustomization.py's reading of what the controllers leave behind: their logs, their
status writes and events. A misreading here would put wrong figures in the recorded result."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return _load("kustomization")


@pytest.fixture(scope="module")
def compare(bench: ModuleType) -> ModuleType:
    # The copy the bench itself reports with, not a second load of the file.
    return bench.ks_compare


def test_log_summary_reads_flux_and_tidal_lines(bench: ModuleType) -> None:
    flux = {
        "level": "info",
        "msg": "Reconciliation finished in 1.1726569s, next run in 1h0m0s",
        "controller": "kustomization",
        "Kustomization": {"name": "cold", "namespace": "flux"},
        "namespace": "flux",
        "name": "cold",
    }
    tidal = {
        "level": "info",
        "msg": "Reconciliation finished in 250.5ms, next run in 60m",
        "kustomization": "tidal/noop",
    }
    source = {"msg": "Reconciliation finished in 2s", "controller": "gitrepository"}
    error = {"level": "error", "msg": "Reconciler error", "name": "cold"}
    text = "\n".join(json.dumps(e) for e in (flux, tidal, source, error)) + "\npanic: boom\n"

    errors, finished = bench.log_summary(text)

    assert finished == {"cold": [pytest.approx(1.1726569)], "noop": [pytest.approx(0.2505)]}
    assert len(errors) == 2 and "panic: boom" in errors[1]


def _ks(message: str) -> dict[str, Any]:
    cond = {"type": "Reconciling", "status": "True", "message": message}
    return {"metadata": {"name": "cold"}, "status": {"conditions": [cond]}}


def test_steps_merge_what_a_controller_never_showed(bench: ModuleType) -> None:
    watcher = bench.Watcher(kube=None, path="/")
    watcher.trace = [
        (10.5, "cold", _ks("Fetching manifests for revision main@sha1:x")),
        (11.0, "other", _ks("Building manifests")),
        (12.0, "cold", _ks("Detecting drift for revision main@sha1:x")),
    ]

    steps = watcher.steps("cold", 10.0, 13.5)

    # "Building manifests" was only seen on another object: artifact and build are one step.
    assert steps == {"pick-up": 0.5, "artifact+build": 1.5, "apply": 1.5}
    assert watcher.steps("cold", 20.0, 21.0) == {"pick-up+artifact+build+apply": 1.0}


def test_waits_end_on_ready_at_the_awaited_value(bench: ModuleType) -> None:
    status = {
        "conditions": [{"type": "Ready", "status": "True"}],
        "lastAppliedRevision": "r1",
        "lastHandledReconcileAt": "t1",
        "artifact": {"revision": "r1"},
    }
    checks = [bench.applied("r1"), bench.handled("t1"), bench.has_artifact("r1")]
    # Ready from the previous run (another value) must not end a wait; nor the value alone.
    others = [bench.applied("r2"), bench.handled("t2"), bench.has_artifact("r2")]
    not_ready = {**status, "conditions": [{"type": "Ready", "status": "False"}]}

    assert all(check({"status": status}) for check in checks)
    assert not any(check({"status": status}) for check in others)
    assert not any(check({"status": not_ready}) or check(None) for check in checks)


def test_results_keep_rows_of_each_measurement_apart(bench: ModuleType) -> None:
    res = bench.Results()
    res.put(1, "1. cold", "tidal", 2.0)
    res.put(1, "    CPU time", "tidal", 1.0)
    res.put(2, "    CPU time", "flux", 3.0)
    res.put(2, "2. no-op", "flux", 4.0)
    res.put(1, "1. cold", "flux", 4.0)

    rows = [(label, values) for label, values, _ in res.ordered()]

    assert rows == [
        ("1. cold", {"tidal": 2.0, "flux": 4.0}),
        ("    CPU time", {"tidal": 1.0}),
        ("2. no-op", {"flux": 4.0}),
        ("    CPU time", {"flux": 3.0}),
    ]
    assert "0.50" in bench.table(res)[2]


def _snapshot(side: str, next_run: str, reason: str) -> dict[str, Any]:
    rev = "main@sha1:" + ("a" if side == "flux" else "b") * 40
    ks = {
        "metadata": {"name": "cold", "finalizers": ["finalizers.fluxcd.io"]},
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": reason,
                    "message": f"Applied revision: {rev}",
                }
            ],
            "lastAppliedRevision": rev,
            "inventory": {"entries": [{"id": f"{side}-cold_app_apps_Deployment", "v": "v1"}]},
        },
    }
    event = {
        "involvedObject": {"kind": "Kustomization", "name": "cold"},
        "type": "Normal",
        "reason": "ReconciliationSucceeded",
        "count": 1,
        "lastTimestamp": "2026-01-01T00:00:00Z",
        "source": {"component": "kustomize-controller"},
        "message": f"Reconciliation finished in 1.5s, next run in {next_run}",
    }
    applied = {"metadata": {"labels": {"kustomize.toolkit.fluxcd.io/namespace": side}}}
    return {
        "cold": ks,
        "noop": ks,
        "fan-000": ks,
        "apps": {"metadata": {}, "status": {}},
        "events": [event],
        "ConfigMap": applied,
        "Deployment": applied,
    }


def test_compare_hides_revisions_and_namespaces_but_not_spelling(compare: ModuleType) -> None:
    lines = compare.compare(
        {
            "flux": _snapshot("flux", "1h0m0s", "ReconciliationSucceeded"),
            "tidal": _snapshot("tidal", "60m", "ReconciliationSucceeded"),
        }
    )

    assert "  Kustomization cold: same" in lines
    assert "  applied ConfigMap (cold): same" in lines
    assert lines[lines.index("  events:") + 1].strip().startswith("event Kustomization/cold")
    assert any("flux:" in line and "next run in 1h0m0s" in line for line in lines)
    assert any("tidal:" in line and "next run in 60m" in line for line in lines)


def test_compare_shows_a_differing_condition(compare: ModuleType) -> None:
    lines = compare.compare(
        {
            "flux": _snapshot("flux", "1h0m0s", "ReconciliationSucceeded"),
            "tidal": _snapshot("tidal", "1h0m0s", "Succeeded"),
        }
    )

    at = lines.index("  Kustomization cold:")
    assert lines[at + 1 : at + 4] == [
        "    condition Ready",
        "      flux:  True ReconciliationSucceeded: Applied revision: main@sha1:<sha>",
        "      tidal: True Succeeded: Applied revision: main@sha1:<sha>",
    ]
    assert "  events: same" in lines
