"""Structured logs as Flux's controllers write them: one JSON object per line with level, ts,
msg and the object's coordinates, or a human-readable line with `--log-encoding console`."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

# Attributes every LogRecord has; anything else was passed through `extra=` and is a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def _ts(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + (
        f".{int(record.msecs):03d}Z"
    )


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "level": record.levelname.lower().replace("warning", "warn"),
            "ts": _ts(record),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{_ts(record)}\t{record.levelname}\t{record.name}\t{record.getMessage()}"
        if extra:
            line += f"\t{extra}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(level: str = "info", encoding: str = "json") -> None:
    """Route every logger of the process to stderr in the chosen encoding."""
    if encoding not in ("json", "console"):
        raise ValueError(f"log encoding must be json or console, not {encoding!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if encoding == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    levels = {"debug": logging.DEBUG, "info": logging.INFO, "error": logging.ERROR}
    if level not in levels:
        raise ValueError(f"log level must be one of {', '.join(levels)}, not {level!r}")
    root.setLevel(levels[level])
    # Third-party chatter (HTTP clients) stays at warning unless we debug.
    for noisy in ("httpx", "httpcore", "httpx2", "httpcore2", "paramiko", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
