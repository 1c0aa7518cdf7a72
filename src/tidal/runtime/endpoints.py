"""The HTTP servers a controller process runs beside its reconcilers.

- metrics (`--metrics-addr`, Flux's default :8080): GET /metrics in Prometheus text format
- health (`--health-addr`, :9440): GET /healthz (the process serves) and /readyz (every
  registered readiness check passes, e.g. caches synced, leader elected or standing by)

Both are aiohttp applications so the artifact server and, later, webhook receivers and the
dashboard share one server implementation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from tidal.runtime.metrics import Registry

ReadinessCheck = Callable[[], bool | Awaitable[bool]]


def parse_addr(addr: str, *, default_host: str = "0.0.0.0") -> tuple[str, int]:  # noqa: S104
    """`:8080`, `127.0.0.1:0` or `[::1]:9090` into (host, port), as Go's net.Listen reads them."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"address {addr!r} must be host:port or :port")
    host = host.strip("[]") or default_host
    return host, int(port)


@dataclass
class Server:
    """One aiohttp application bound to one address."""

    app: web.Application
    addr: str
    _runner: web.AppRunner | None = field(default=None, init=False)
    port: int = field(default=0, init=False)

    async def start(self) -> None:
        host, port = parse_addr(self.addr)
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        # The real port, for `:0` in tests and benchmarks.
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def metrics_app(
    registry: Registry, before_scrape: list[Callable[[], None]] | None = None
) -> web.Application:
    hooks = before_scrape or []

    async def metrics(_: web.Request) -> web.Response:
        for hook in hooks:
            hook()
        return web.Response(
            body=registry.exposition(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app


@dataclass
class Health:
    """Named readiness checks; /readyz fails while any fails and says which."""

    checks: dict[str, ReadinessCheck] = field(default_factory=dict)

    def add(self, name: str, check: ReadinessCheck) -> None:
        self.checks[name] = check

    async def failing(self) -> list[str]:
        failed = []
        for name, check in self.checks.items():
            result = check()
            ok = await result if isinstance(result, Awaitable) else result
            if not ok:
                failed.append(name)
        return failed

    def app(self) -> web.Application:
        async def healthz(_: web.Request) -> web.Response:
            return web.Response(text="ok")

        async def readyz(_: web.Request) -> web.Response:
            failed = await self.failing()
            if failed:
                return web.Response(status=503, text="not ready: " + ", ".join(failed))
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        return app
