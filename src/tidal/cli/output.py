"""The flux CLI's progress lines on stderr: one symbol, a space, the message.

Data (tables, YAML) goes to stdout and progress to stderr, so `tidal ... > file` captures only
the data, as with flux. flux prints the symbols without colour; tidal colours them when stderr
is a terminal (and NO_COLOR is unset), which leaves piped and captured output byte-identical.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator
from typing import IO, Any, Final

ACTION: Final = "►"
GENERATE: Final = "✚"
WAITING: Final = "◎"
SUCCESS: Final = "✔"
WARNING: Final = "⚠️"
FAILURE: Final = "✗"

_COLOURS: Final = {
    ACTION: "\033[36m",
    GENERATE: "\033[36m",
    WAITING: "\033[33m",
    SUCCESS: "\033[32m",
    WARNING: "\033[33m",
    FAILURE: "\033[31m",
}
_RESET: Final = "\033[0m"


def _use_colour(stream: IO[Any]) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Logger:
    """Writes `<symbol> <message>` lines; the stream is looked up at each call so that test
    runners that swap sys.stderr see the output."""

    def __init__(self, stream: IO[Any] | None = None) -> None:
        self._stream = stream

    @property
    def stream(self) -> IO[Any]:
        return self._stream or sys.stderr

    def line(self, symbol: str, message: str) -> None:
        stream = self.stream
        prefix = symbol
        if _use_colour(stream):
            prefix = f"{_COLOURS[symbol]}{symbol}{_RESET}"
        stream.write(f"{prefix} {message}\n")
        stream.flush()

    def action(self, message: str) -> None:
        self.line(ACTION, message)

    def generate(self, message: str) -> None:
        self.line(GENERATE, message)

    def waiting(self, message: str) -> None:
        self.line(WAITING, message)

    def success(self, message: str) -> None:
        self.line(SUCCESS, message)

    def warning(self, message: str) -> None:
        self.line(WARNING, message)

    def failure(self, message: str) -> None:
        self.line(FAILURE, message)


class Progress:
    """What a spinner shows next to its message; `detail` may change while it spins."""

    def __init__(self) -> None:
        self.detail = ""


_FRAMES: Final = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


@contextlib.asynccontextmanager
async def spinner(
    message: str, stream: IO[Any] | None = None, every: float = 0.1
) -> AsyncIterator[Progress]:
    """A spinner with the elapsed time on one self-erasing line while the body runs, only when
    the stream is a terminal: piped or captured output stays exactly flux's lines."""
    progress = Progress()
    out = stream or sys.stderr
    if not _use_colour(out):
        yield progress
        return
    start = time.monotonic()

    async def spin() -> None:
        for n in itertools.count():
            detail = f": {progress.detail}" if progress.detail else ""
            text = f"{message} ({time.monotonic() - start:.0f}s){detail}"
            # A line that wraps could not be erased by the next carriage return.
            width = shutil.get_terminal_size().columns - 3
            if len(text) > width:
                text = text[: max(width - 1, 0)] + "…"
            frame = _FRAMES[n % len(_FRAMES)]
            out.write(f"\r\033[33m{frame}\033[0m {text}\033[K")
            out.flush()
            await asyncio.sleep(every)

    task = asyncio.create_task(spin())
    try:
        yield progress
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        out.write("\r\033[K")
        out.flush()


log = Logger()


def stdout(text: str) -> None:
    """Data output, written as is (the caller supplies the line breaks)."""
    sys.stdout.write(text)
    sys.stdout.flush()
