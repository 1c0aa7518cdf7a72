"""Which local process is at the other end of a loopback TCP connection (Linux /proc).

Test servers record it with each request so a test can count only what its own controller
did, even when another controller on the same control plane reconciles the same objects.
Best effort: None when /proc is unreadable or the client has already gone.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
from pathlib import Path
from typing import Any, Protocol

_TABLES: dict[int, str] = {socket.AF_INET: "/proc/net/tcp", socket.AF_INET6: "/proc/net/tcp6"}


class Connection(Protocol):
    """A socket, or the socket view an asyncio transport gives (get_extra_info("socket"))."""

    @property
    def family(self) -> int: ...

    def getpeername(self) -> Any: ...

    def getsockname(self) -> Any: ...


def _proc_address(host: str, port: int) -> str:
    # /proc/net/tcp prints each 32-bit word of the address in host byte order.
    packed = ipaddress.ip_address(host.split("%", 1)[0]).packed
    words = [packed[i : i + 4] for i in range(0, len(packed), 4)]
    hexed = "".join(f"{int.from_bytes(w, sys.byteorder):08X}" for w in words)
    return f"{hexed}:{port:04X}"


def _client_inode(conn: Connection) -> int | None:
    """The inode of the client's socket: its local address is our peer's, its remote ours."""
    try:
        peer, local = conn.getpeername(), conn.getsockname()
    except OSError:
        return None
    want_local, want_remote = _proc_address(peer[0], peer[1]), _proc_address(local[0], local[1])
    try:
        lines = Path(_TABLES[conn.family]).read_text().splitlines()[1:]
    except (OSError, KeyError):
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 9 and fields[1] == want_local and fields[2] == want_remote:
            return int(fields[9])
    return None


def peer_pid(conn: Connection | None) -> int | None:
    """The PID holding the client end of `conn`, a connection accepted on this machine."""
    if conn is None:
        return None
    inode = _client_inode(conn)
    if not inode:
        return None
    target = f"socket:[{inode}]"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if str(fd.readlink()) == target:
                        return int(proc.name)
    return None
