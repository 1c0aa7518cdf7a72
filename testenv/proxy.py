"""A tiny HTTP CONNECT proxy for tests: tunnels to loopback targets only, records every request,
and may require `Proxy-Authorization: Basic` credentials (407 otherwise).

It runs its own asyncio loop in a thread, so a test that blocks (a git subprocess, a sleep)
never stalls the connections it is proxying::

    with ConnectProxy(username="u", password="p") as proxy:
        proxy.url                        # http://127.0.0.1:PORT
        proxy.requests()                 # [ProxyRequest(target="127.0.0.1:443", status=200, ...)]
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import ipaddress
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from testenv.socket_owner import peer_pid

_HEAD_LIMIT = 64 * 1024
_IO_TIMEOUT = 10.0


@dataclass(frozen=True)
class ProxyRequest:
    """One request the proxy answered."""

    time: float
    method: str
    target: str  # host:port of a CONNECT
    user: str | None  # from Proxy-Authorization, when sent
    status: int  # 200 tunnel established, 407, 403 (not loopback), 405, 502
    pid: int | None  # the sending process, when it could be told


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split_target(target: str) -> tuple[str, int] | None:
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


class ConnectProxy:
    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.username = username
        self.password = password
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._requests: list[ProxyRequest] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            # The loop is built and run in the thread: the caller may be inside a loop of its
            # own (an async test), where run_until_complete is refused.
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._accept, self.host, self.port)
                )
            except BaseException as e:
                failure.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        thread = threading.Thread(target=run, name="connect-proxy", daemon=True)
        thread.start()
        ready.wait(10)
        if failure or self._server is None:
            thread.join(5)
            loop.close()
            raise RuntimeError(f"proxy did not start: {failure[0] if failure else 'timeout'}")
        self.port = self._server.sockets[0].getsockname()[1]
        self._loop, self._thread = loop, thread
        return self

    def stop(self) -> None:
        loop, thread, server = self._loop, self._thread, self._server
        if loop is None or thread is None or server is None:
            return

        async def shutdown() -> None:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def requests(self, pid: int | None = None) -> list[ProxyRequest]:
        """The request log, optionally only the requests sent by process `pid`."""
        with self._lock:
            recorded = list(self._requests)
        return recorded if pid is None else [r for r in recorded if r.pid == pid]

    # -- serving -------------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()

    def _user(self, header: str) -> tuple[str | None, bool]:
        """(user named by a Proxy-Authorization header, whether it is accepted)."""
        scheme, _, value = header.partition(" ")
        user: str | None = None
        password = ""
        if scheme.lower() == "basic":
            with contextlib.suppress(binascii.Error, UnicodeDecodeError, ValueError):
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        if self.username is None:
            return user, True
        ok = (
            user is not None
            and hmac.compare_digest(user, self.username)
            and hmac.compare_digest(password, self.password or "")
        )
        return user, ok

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _IO_TIMEOUT)
        if len(head) > _HEAD_LIMIT:
            return
        lines = head.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        target = rest.rpartition(" ")[0] or rest
        headers = {}
        for line in lines[1:]:
            key, sep, value = line.partition(":")
            if sep:
                headers[key.strip().lower()] = value.strip()
        user, authorized = self._user(headers.get("proxy-authorization", ""))
        pid = peer_pid(writer.get_extra_info("socket"))

        def answer(status: int, text: str, extra: str = "") -> None:
            with self._lock:
                self._requests.append(ProxyRequest(time.time(), method, target, user, status, pid))
            writer.write(
                f"HTTP/1.1 {status} {text}\r\n{extra}Content-Length: 0\r\n\r\n".encode()
                if status != 200
                else b"HTTP/1.1 200 Connection established\r\n\r\n"
            )

        split = _split_target(target)
        if method != "CONNECT" or split is None:
            answer(405, "Method Not Allowed")
            return
        if not authorized:
            answer(
                407,
                "Proxy Authentication Required",
                'Proxy-Authenticate: Basic realm="tidal-test-proxy"\r\n',
            )
            return
        if not _is_loopback(split[0]):
            answer(403, "Forbidden")  # a test proxy never leaves this machine
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*split), _IO_TIMEOUT
            )
        except (OSError, TimeoutError):
            answer(502, "Bad Gateway")
            return
        answer(200, "Connection established")
        await writer.drain()
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await up_writer.wait_closed()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            if writer.can_write_eof():
                writer.write_eof()
