"""`tidal controller`: run the controllers in the foreground against any kubeconfig.

Flags keep the names of Flux's controllers, so a Flux deployment's arguments carry over.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from tidal.api.base import DurationError, parse_duration
from tidal.api.kustomize import API_VERSION as KS_API_VERSION
from tidal.api.kustomize import KUSTOMIZATION_KIND
from tidal.kube.client import Kube, KubeConfigError
from tidal.kube.events import EventRecorder
from tidal.kustomize import config_watch
from tidal.kustomize import kustomization as ks
from tidal.kustomize.artifacts import ArtifactCache
from tidal.kustomize.build import Engine
from tidal.kustomize.drift_watch import DriftWatch
from tidal.kustomize.render import Renderer
from tidal.runtime import feature_gates, logs
from tidal.runtime.controller import Controller, ReconcileFn
from tidal.runtime.informer import Informer, collection_path, lean
from tidal.runtime.jitter import IntervalJitter
from tidal.runtime.manager import Manager, ManagerOptions
from tidal.source.gitrepository import GitRepositoryReconciler, Settings, include_watch
from tidal.source.helm.index import DEFAULT_MAX_INDEX_SIZE
from tidal.source.helmchart import HelmChartReconciler
from tidal.source.helmchart import Settings as HelmChartSettings
from tidal.source.helmchart import source_watch as chart_source_watch
from tidal.source.helmrepository import HelmRepositoryReconciler
from tidal.source.helmrepository import Settings as HelmRepositorySettings
from tidal.source.ocirepository import OCIRepositoryReconciler
from tidal.source.server import artifact_app
from tidal.source.storage import Storage, advertised_address

# The gates tidal implements, with Flux's defaults.
FEATURE_GATES = {"AdditiveCELDependencyCheck": False, "StrictPostBuildSubstitutions": True}


def _feature_gates(ctx: click.Context, param: click.Parameter, value: str) -> dict[str, bool]:
    try:
        return feature_gates.parse(value, FEATURE_GATES)
    except feature_gates.FeatureGateError as e:
        raise click.BadParameter(str(e)) from None


def _seconds(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value)
    except DurationError as e:
        raise click.BadParameter(str(e)) from None


log = logging.getLogger(__name__)


@click.command("controller")
@click.option("--concurrent", default=2, show_default=True, help="Concurrent reconciles per kind.")
@click.option(
    "--storage-path",
    default=".tidal/data",
    show_default=True,
    type=click.Path(),
    help="Directory holding the artifacts.",
)
@click.option(
    "--storage-addr",
    default=":9090",
    show_default=True,
    help="Address the artifact server binds to.",
)
@click.option("--storage-adv-addr", default="", help="Address advertised in artifact URLs.")
@click.option(
    "--git-cache-path",
    default="",
    type=click.Path(),
    help="Directory for the bare Git mirrors (default: a temporary directory).",
)
@click.option("--metrics-addr", default=":8080", show_default=True)
@click.option("--health-addr", default=":9440", show_default=True)
@click.option("--enable-leader-election", is_flag=True, help="Run only while holding the Lease.")
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "error"]), default="info", show_default=True
)
@click.option(
    "--log-encoding", type=click.Choice(["json", "console"]), default="json", show_default=True
)
@click.option(
    "--watch-all-namespaces/--no-watch-all-namespaces",
    default=True,
    show_default=True,
    help="Watch every namespace, or only the runtime namespace (-n).",
)
@click.option("--watch-label-selector", default="", help="Only reconcile objects matching it.")
@click.option(
    "--feature-gates",
    default="",
    callback=_feature_gates,
    help="Flux feature gates, e.g. AdditiveCELDependencyCheck=true "
    f"(supported: {', '.join(sorted(FEATURE_GATES))}).",
)
@click.option(
    "--build-workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Kustomize worker processes; a second one starts only when builds overlap.",
)
@click.option(
    "--watch-configs-label-selector",
    default=config_watch.DEFAULT_SELECTOR,
    show_default=True,
    help="ConfigMaps and Secrets matching it wake the Kustomizations that read them when "
    "they change ('' turns this off).",
)
@click.option("--min-retry-delay", default="750ms", show_default=True, callback=_seconds)
@click.option("--max-retry-delay", default="15m", show_default=True, callback=_seconds)
@click.option(
    "--requeue-dependency",
    default="30s",
    show_default=True,
    callback=_seconds,
    help="Retry interval while a dependency (an included source) is not ready.",
)
@click.option(
    "--interval-jitter-percentage", default=5, show_default=True, type=click.IntRange(0, 99)
)
@click.option("--artifact-retention-ttl", default="60s", show_default=True, callback=_seconds)
@click.option("--artifact-retention-records", default=2, show_default=True, type=click.IntRange(1))
@click.option("--artifact-digest-algo", default="sha256", show_default=True)
@click.option(
    "--helm-index-max-size",
    default=DEFAULT_MAX_INDEX_SIZE,
    show_default=True,
    type=click.IntRange(min=1),
    help="The max allowed size in bytes of a Helm repository index file.",
)
@click.option(
    "--allow-file-urls",
    is_flag=True,
    help="Accept file:// GitRepository URLs (off: a tenant could read the node's disk).",
)
@click.option(
    "--no-cross-namespace-refs",
    is_flag=True,
    help="Refuse Kustomizations whose source is in another namespace (multi-tenancy).",
)
@click.option(
    "--no-remote-bases",
    is_flag=True,
    help="Refuse kustomize bases and resources fetched from remote URLs.",
)
@click.option(
    "--default-service-account",
    default="",
    help="ServiceAccount to impersonate for Kustomizations that name none.",
)
@click.option(
    "--concurrent-ssa",
    default=8,
    show_default=True,
    type=click.IntRange(1),
    help="Concurrent dry-run and apply requests per Kustomization.",
)
@click.option(
    "--override-manager",
    multiple=True,
    help="Field manager whose edits the Kustomization controller takes over (repeatable).",
)
@click.option(
    "--insecure-kubeconfig-exec",
    is_flag=True,
    help="Let spec.kubeConfig kubeconfigs run exec credential plugins inside the controller.",
)
@click.option(
    "--insecure-kubeconfig-tls",
    is_flag=True,
    help="Let spec.kubeConfig kubeconfigs disable TLS verification (testing only).",
)
@click.option(
    "--drift-watch/--no-drift-watch",
    default=True,
    show_default=True,
    help="Watch the objects Kustomizations applied and re-apply within seconds when another "
    "manager edits or deletes one (off: drift waits for spec.interval, as in Flux).",
)
@click.option(
    "--sops-age-secret",
    default="",
    help="Secret (NAME in the controller's namespace, or NAMESPACE/NAME) holding the age keys "
    "(*.agekey) for Kustomizations whose spec.decryption names no Secret.",
)
@click.option(
    "--artifact-cache-path",
    default="",
    type=click.Path(),
    help="Directory for unpacked source artifacts (default: a temporary directory).",
)
@click.pass_obj
def controller(obj: Any, /, **flags: Any) -> None:
    """Run tidal's controllers in the foreground (GitRepository, HelmRepository, HelmChart,
    OCIRepository, Kustomization and, with the `helm` extra, HelmRelease)."""
    logs.configure(flags["log_level"], flags["log_encoding"])
    Path(flags["storage_path"]).mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(_run(obj, flags))
    except KubeConfigError as e:
        raise click.ClickException(str(e)) from None


def _namespaced(ref: str) -> tuple[str, str] | None:
    """NAME or NAMESPACE/NAME; a bare name is in the controller's namespace (Flux's
    RUNTIME_NAMESPACE, flux-system when unset)."""
    if not ref:
        return None
    namespace, _, name = ref.rpartition("/")
    return namespace or os.environ.get("RUNTIME_NAMESPACE", "flux-system"), name


async def _run(obj: Any, flags: dict[str, Any]) -> None:
    kube = Kube.from_kubeconfig(obj.kubeconfig, obj.context)
    storage = Storage(
        Path(flags["storage_path"]),
        advertised_address(flags["storage_addr"], flags["storage_adv_addr"]),
        retention_ttl=timedelta(seconds=flags["artifact_retention_ttl"]),
        retention_records=flags["artifact_retention_records"],
        digest_algorithm=flags["artifact_digest_algo"],
    )
    mirrors = Path(flags["git_cache_path"] or tempfile.mkdtemp(prefix="tidal-git-"))
    events = EventRecorder(kube, "source-controller")
    reconciler = GitRepositoryReconciler(
        kube,
        storage,
        events,
        Settings(
            mirrors=mirrors,
            allow_file_urls=flags["allow_file_urls"],
            digest_algorithm=flags["artifact_digest_algo"],
            requeue_dependency=flags["requeue_dependency"],
        ),
    )
    manager = Manager(
        kube,
        ManagerOptions(
            metrics_addr=flags["metrics_addr"],
            health_addr=flags["health_addr"],
            leader_election=flags["enable_leader_election"],
            lease_name="source-controller-leader-election",
            lease_namespace=obj.namespace,
        ),
    )
    namespace = "" if flags["watch_all_namespaces"] else obj.namespace
    informer = _informer(
        kube,
        flags,
        collection_path("source.toolkit.fluxcd.io/v1", "gitrepositories", namespace),
        "gitrepository",
    )
    git_controller = _controller(
        manager, flags, "gitrepository", "GitRepository", informer, reconciler.reconcile
    )
    # A new artifact wakes the GitRepositories that include it (Flux's include watch).
    informer.add_handler(on_update=include_watch(informer.list, git_controller.enqueue))
    manager.add(git_controller)

    helm_reconciler = HelmRepositoryReconciler(
        kube,
        storage,
        events,
        HelmRepositorySettings(max_index_size=flags["helm_index_max_size"]),
    )
    helm_informer = _informer(
        kube,
        flags,
        collection_path("source.toolkit.fluxcd.io/v1", "helmrepositories", namespace),
        "helmrepository",
    )
    manager.add(
        _controller(
            manager,
            flags,
            "helmrepository",
            "HelmRepository",
            helm_informer,
            helm_reconciler.reconcile,
        )
    )

    chart_informer = _informer(
        kube,
        flags,
        collection_path("source.toolkit.fluxcd.io/v1", "helmcharts", namespace),
        "helmchart",
    )
    chart_reconciler = HelmChartReconciler(
        kube,
        storage,
        events,
        HelmChartSettings(
            max_index_size=flags["helm_index_max_size"],
            requeue_dependency=flags["requeue_dependency"],
        ),
        list_helm_repositories=helm_informer.list,
    )
    chart_controller = _controller(
        manager, flags, "helmchart", "HelmChart", chart_informer, chart_reconciler.reconcile
    )
    # A new artifact of a chart's source wakes the chart (Flux's source watches).
    for source_kind, source_informer in (
        ("HelmRepository", helm_informer),
        ("GitRepository", informer),
    ):
        source_informer.add_handler(
            on_update=chart_source_watch(source_kind, chart_informer.list, chart_controller.enqueue)
        )
    manager.add(chart_controller)
    manager.on_stop.append(chart_reconciler.close)

    oci_reconciler = OCIRepositoryReconciler(kube, storage, events)
    oci_informer = _informer(
        kube,
        flags,
        collection_path("source.toolkit.fluxcd.io/v1", "ocirepositories", namespace),
        "ocirepository",
    )
    manager.add(
        _controller(
            manager, flags, "ocirepository", "OCIRepository", oci_informer, oci_reconciler.reconcile
        )
    )

    ks_events = EventRecorder(kube, "kustomize-controller")
    cache_dir = Path(flags["artifact_cache_path"] or tempfile.mkdtemp(prefix="tidal-artifacts-"))
    artifacts = ArtifactCache(cache_dir)
    # Build views are hard links into the unpacked artifacts, so they live on the same disk.
    gates = flags["feature_gates"]
    build_engine = Engine(workspace=cache_dir / ".views", workers=flags["build_workers"])
    renderer = Renderer(
        no_remote_bases=flags["no_remote_bases"],
        engine=build_engine,
        strict_substitution=gates["StrictPostBuildSubstitutions"],
        sops_age_secret=_namespaced(flags["sops_age_secret"]),
    )
    ks_informer = _informer(
        kube, flags, collection_path(KS_API_VERSION, ks.PLURAL, namespace), "kustomization"
    )
    ks_reconciler = ks.KustomizationReconciler(
        kube,
        ks_events,
        artifacts,
        renderer,
        ks.Settings(
            no_cross_namespace_refs=flags["no_cross_namespace_refs"],
            default_service_account=flags["default_service_account"],
            requeue_dependency=flags["requeue_dependency"],
            concurrent_ssa=flags["concurrent_ssa"],
            override_managers=tuple(flags["override_manager"]),
            insecure_kubeconfig_exec=flags["insecure_kubeconfig_exec"],
            insecure_kubeconfig_tls=flags["insecure_kubeconfig_tls"],
            additive_cel_dependency_check=gates["AdditiveCELDependencyCheck"],
        ),
        # Both informers run before the Kustomization workers start (Manager starts the
        # controllers in order, each after its first LIST).
        caches={
            "GitRepository": informer.get,
            "OCIRepository": oci_informer.get,
            KUSTOMIZATION_KIND: ks_informer.get,
        },
    )
    ks_controller = _controller(
        manager, flags, "kustomization", "Kustomization", ks_informer, ks_reconciler.reconcile
    )
    informer.add_handler(
        on_update=ks.source_watch("GitRepository", ks_informer.list, ks_controller.enqueue)
    )
    oci_informer.add_handler(
        on_update=ks.source_watch("OCIRepository", ks_informer.list, ks_controller.enqueue)
    )
    manager.add(ks_controller)
    if flags["watch_configs_label_selector"]:
        for kind, plural in (("ConfigMap", "configmaps"), ("Secret", "secrets")):
            configs = Informer(
                kube,
                collection_path("v1", plural, namespace),
                label_selector=flags["watch_configs_label_selector"],
                transform=config_watch.digest_data,
                name=f"watched-{plural}",
            )
            on_add, on_update, on_delete = config_watch.config_watch(
                kind, ks_informer.list, ks_controller.enqueue
            )
            configs.add_handler(on_add=on_add, on_update=on_update, on_delete=on_delete)
            manager.add_runnable(configs.start, configs.stop)
    if flags["drift_watch"]:
        drift = DriftWatch(
            kube,
            ks_informer,
            ks_controller.enqueue,
            registry=manager.registry.registry,
            discovery=ks_reconciler.discovery,
        )
        manager.add_runnable(drift.start, drift.pause)
        manager.on_stop.append(drift.close)
    _add_helm_releases(manager, kube, flags, namespace, build_engine, chart_informer, oci_informer)
    manager.serve(artifact_app(storage), flags["storage_addr"])
    manager.on_stop += [
        helm_reconciler.close,
        oci_reconciler.close,
        events.close,
        ks_events.close,
        ks_reconciler.close,
        artifacts.close,
        kube.close,
    ]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await manager.run(stop)


def _add_helm_releases(
    manager: Manager,
    kube: Kube,
    flags: dict[str, Any],
    namespace: str,
    engine: Engine,
    chart_informer: Informer,
    oci_informer: Informer,
) -> None:
    """The HelmRelease controller, when the Helm engine (the `helm` extra) is installed."""
    try:
        from tidal.helm import engine as helm_engine  # noqa: F401 - loads the SDK once
    except ImportError as e:
        log.warning("HelmRelease controller disabled: %s", e)
        return
    from tidal.helmrelease import reconciler as hr

    hr_events = EventRecorder(kube, "helm-controller")
    gates = flags["feature_gates"]
    hr_informer = _informer(
        kube,
        flags,
        collection_path("helm.toolkit.fluxcd.io/v2", hr.PLURAL, namespace),
        "helmrelease",
    )
    hr_reconciler = hr.HelmReleaseReconciler(
        kube,
        hr_events,
        engine,
        hr.Settings(
            no_cross_namespace_refs=flags["no_cross_namespace_refs"],
            default_service_account=flags["default_service_account"],
            requeue_dependency=flags["requeue_dependency"],
            additive_cel_dependency_check=gates["AdditiveCELDependencyCheck"],
            insecure_kubeconfig_exec=flags["insecure_kubeconfig_exec"],
            insecure_kubeconfig_tls=flags["insecure_kubeconfig_tls"],
            override_managers=tuple(flags["override_manager"]),
        ),
    )
    hr_controller = _controller(
        manager, flags, "helmrelease", "HelmRelease", hr_informer, hr_reconciler.reconcile
    )
    # A new chart artifact wakes the releases that use it (Flux's source watches).
    for kind, source_informer in (("HelmChart", chart_informer), ("OCIRepository", oci_informer)):
        source_informer.add_handler(
            on_update=hr.chart_watch(kind, hr_informer.list, hr_controller.enqueue)
        )
    manager.add(hr_controller)
    manager.on_stop += [hr_reconciler.close, hr_events.close]


def _informer(kube: Kube, flags: dict[str, Any], path: str, name: str) -> Informer:
    """An informer of one kind, filtered by --watch-label-selector, as every controller uses."""
    return Informer(
        kube, path, label_selector=flags["watch_label_selector"], transform=lean, name=name
    )


def _controller(
    manager: Manager,
    flags: dict[str, Any],
    name: str,
    kind: str,
    informer: Informer,
    reconcile: ReconcileFn,
) -> Controller:
    """A controller with the flags every kind shares (concurrency, retry delays, jitter)."""
    return Controller(
        name,
        kind,
        informer,
        reconcile,
        metrics=manager.registry,
        concurrency=flags["concurrent"],
        min_retry_delay=flags["min_retry_delay"],
        max_retry_delay=flags["max_retry_delay"],
        jitter=IntervalJitter(float(flags["interval_jitter_percentage"])),
    )
