"""Prometheus metrics under the names Flux's controllers export, so existing dashboards and
alerts (flux2-monitoring-example, kube-prometheus-stack rules) work unchanged.

- gotk_reconcile_duration_seconds{kind,name,namespace}: per-object reconcile time (fluxcd/pkg)
- gotk_suspend_status{kind,name,namespace}: 1 while an object is suspended
- controller_runtime_reconcile_total{controller,result}: result in success, error, requeue,
  requeue_after
- controller_runtime_reconcile_errors_total{controller}
- controller_runtime_reconcile_time_seconds{controller}
- controller_runtime_active_workers{controller}, controller_runtime_max_concurrent_reconciles
- workqueue_depth / _adds_total / _retries_total / _queue_duration_seconds /
  _work_duration_seconds {name,controller}

Each controller process owns one Registry (not the library's global one), so two controllers in
one test process never share counters.
"""

from __future__ import annotations

import contextlib
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tidal.runtime.queue import QUEUE_DURATION, WORK_DURATION, QueueMetrics, WorkQueue

# controller-runtime's buckets for reconcile time, so histogram_quantile behaves the same.
RECONCILE_TIME_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8,
    0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30,
    40, 50, 60,
)  # fmt: skip
# client-go's workqueue buckets: 1 ns to 10 s in powers of ten.
QUEUE_BUCKETS = tuple(10.0**e for e in range(-9, 2))

RESULTS = ("success", "error", "requeue", "requeue_after")


class Registry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.reconcile_duration = Histogram(
            "gotk_reconcile_duration_seconds",
            "The duration in seconds of a GitOps Toolkit resource reconciliation.",
            ["kind", "name", "namespace"],
            registry=r,
        )
        self.suspend_status = Gauge(
            "gotk_suspend_status",
            "The current suspend status of a GitOps Toolkit resource.",
            ["kind", "name", "namespace"],
            registry=r,
        )
        self.reconcile_total = Counter(
            "controller_runtime_reconcile",
            "Total number of reconciliations per controller",
            ["controller", "result"],
            registry=r,
        )
        self.reconcile_errors = Counter(
            "controller_runtime_reconcile_errors",
            "Total number of reconciliation errors per controller",
            ["controller"],
            registry=r,
        )
        self.reconcile_time = Histogram(
            "controller_runtime_reconcile_time_seconds",
            "Length of time per reconciliation per controller",
            ["controller"],
            buckets=RECONCILE_TIME_BUCKETS,
            registry=r,
        )
        self.active_workers = Gauge(
            "controller_runtime_active_workers",
            "Number of currently used workers per controller",
            ["controller"],
            registry=r,
        )
        self.max_concurrent = Gauge(
            "controller_runtime_max_concurrent_reconciles",
            "Maximum number of concurrent reconciles per controller",
            ["controller"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "workqueue_depth", "Current depth of workqueue", ["name", "controller"], registry=r
        )
        self.queue_adds = Counter(
            "workqueue_adds",
            "Total number of adds handled by workqueue",
            ["name", "controller"],
            registry=r,
        )
        self.queue_retries = Counter(
            "workqueue_retries",
            "Total number of retries handled by workqueue",
            ["name", "controller"],
            registry=r,
        )
        self.queue_latency = Histogram(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested",
            ["name", "controller"],
            buckets=QUEUE_BUCKETS,
            registry=r,
        )
        self.work_duration = Histogram(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes",
            ["name", "controller"],
            buckets=QUEUE_BUCKETS,
            registry=r,
        )

    def observe_reconcile(self, controller: str, result: str, seconds: float) -> None:
        if result not in RESULTS:
            raise ValueError(f"unknown reconcile result {result!r}")
        self.reconcile_total.labels(controller, result).inc()
        if result == "error":
            self.reconcile_errors.labels(controller).inc()
        self.reconcile_time.labels(controller).observe(seconds)

    def observe_object(
        self, kind: str, name: str, namespace: str, seconds: float, suspended: bool
    ) -> None:
        self.reconcile_duration.labels(kind, name, namespace).observe(seconds)
        self.suspend_status.labels(kind, name, namespace).set(1 if suspended else 0)

    def forget_object(self, kind: str, name: str, namespace: str) -> None:
        """Drop a deleted object's series so /metrics does not grow with churn."""
        for metric in (self.reconcile_duration, self.suspend_status):
            with contextlib.suppress(KeyError):
                metric.remove(kind, name, namespace)

    def queue_observer(self, controller: str) -> QueueObserver:
        return QueueObserver(self, controller)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class QueueObserver:
    """Feeds a WorkQueue's counters into the workqueue_* series of one controller."""

    def __init__(self, registry: Registry, controller: str) -> None:
        self._r = registry
        self._labels = (controller, controller)
        self._adds = 0
        self._retries = 0

    def __call__(self, metric: str, seconds: float) -> None:
        if metric == QUEUE_DURATION:
            self._r.queue_latency.labels(*self._labels).observe(seconds)
        elif metric == WORK_DURATION:
            self._r.work_duration.labels(*self._labels).observe(seconds)

    def sync(self, queue: WorkQueue[Any]) -> None:
        """Bring depth and the add/retry counters up to date (called before a scrape)."""
        m: QueueMetrics = queue.metrics
        self._r.queue_depth.labels(*self._labels).set(queue.depth)
        self._r.queue_adds.labels(*self._labels).inc(m.adds - self._adds)
        self._r.queue_retries.labels(*self._labels).inc(m.retries - self._retries)
        self._adds, self._retries = m.adds, m.retries
