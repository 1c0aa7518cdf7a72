"""The process around the controllers: HTTP servers, leader election, start and stop.

Servers (metrics, health and any extra ones such as the artifact server) start first and serve
whether or not this replica leads, so probes pass on a standby replica. Controllers start when
the Lease is won (or at once without leader election) and stop when it is lost; /readyz reports
ready once every started controller's cache has synced, or while standing by.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from tidal.kube.client import Kube
from tidal.runtime.controller import Controller
from tidal.runtime.endpoints import Health, Server, metrics_app
from tidal.runtime.leader import LeaderElector
from tidal.runtime.metrics import Registry

log = logging.getLogger(__name__)


@dataclass
class ManagerOptions:
    metrics_addr: str = ":8080"
    health_addr: str = ":9440"
    leader_election: bool = False
    lease_name: str = "tidal-leader-election"
    lease_namespace: str = "flux-system"
    graceful_shutdown: float = 30.0
    lease_duration: float = 35.0
    renew_deadline: float = 30.0
    retry_period: float = 5.0


@dataclass
class Manager:
    kube: Kube
    options: ManagerOptions = field(default_factory=ManagerOptions)
    registry: Registry = field(default_factory=Registry)
    controllers: list[Controller] = field(default_factory=list)
    extra_servers: list[Server] = field(default_factory=list)
    on_stop: list[Callable[[], Awaitable[object]]] = field(default_factory=list)
    health: Health = field(default_factory=Health)
    _servers: list[Server] = field(default_factory=list)
    _started: list[Controller] = field(default_factory=list)
    _leading: bool = False
    # watches that only make sense while this replica reconciles: (start, stop) pairs
    _runnables: list[tuple[Callable[[], object], Callable[[], Awaitable[object]]]] = field(
        default_factory=list
    )
    _running: list[Callable[[], Awaitable[object]]] = field(default_factory=list)

    def add(self, controller: Controller) -> None:
        self.controllers.append(controller)

    def add_runnable(
        self, start: Callable[[], object], stop: Callable[[], Awaitable[object]]
    ) -> None:
        """Something to run beside the controllers, only while they run (while this replica
        leads): started after them, stopped before them."""
        self._runnables.append((start, stop))

    def serve(self, app: web.Application, addr: str) -> Server:
        server = Server(app, addr)
        self.extra_servers.append(server)
        return server

    def _ready(self) -> bool:
        if self.options.leader_election and not self._leading:
            return True  # a standby is healthy
        return bool(self._started) and all(c.informer.has_synced for c in self._started)

    def _sync_metrics(self) -> None:
        for c in self._started:
            c.sync_metrics()

    async def _start_controllers(self) -> None:
        self._leading = True
        for c in self.controllers:
            await c.start()
            self._started.append(c)
        for start, stop in self._runnables:
            start()
            self._running.append(stop)
        log.info("controllers started", extra={"controllers": [c.name for c in self._started]})

    async def _stop_controllers(self) -> None:
        running, self._running = self._running, []
        await asyncio.gather(*(stop() for stop in running), return_exceptions=True)
        stops = [c.stop(self.options.graceful_shutdown) for c in self._started]
        await asyncio.gather(*stops, return_exceptions=True)
        self._started.clear()
        self._leading = False

    async def run(self, stop: asyncio.Event) -> None:
        """Serve and reconcile until `stop` is set."""
        self.health.add("controllers", self._ready)
        self._servers = [
            Server(metrics_app(self.registry, [self._sync_metrics]), self.options.metrics_addr),
            Server(self.health.app(), self.options.health_addr),
            *self.extra_servers,
        ]
        for server in self._servers:
            await server.start()
        elector: LeaderElector | None = None
        try:
            if self.options.leader_election:
                elector = LeaderElector(
                    self.kube,
                    name=self.options.lease_name,
                    namespace=self.options.lease_namespace,
                    lease_duration=self.options.lease_duration,
                    renew_deadline=self.options.renew_deadline,
                    retry_period=self.options.retry_period,
                    on_started_leading=self._lead,
                )
                elector.start()
            else:
                await self._start_controllers()
            await stop.wait()
        finally:
            if elector is not None:
                await elector.stop()
            await self._stop_controllers()
            for hook in self.on_stop:
                with contextlib.suppress(Exception):
                    await hook()
            for server in self._servers:
                await server.stop()

    async def _lead(self) -> None:
        """Runs while this replica holds the Lease; cancelled when it loses it."""
        try:
            await self._start_controllers()
            await asyncio.Event().wait()
        finally:
            await self._stop_controllers()
