"""Polling an object until a readiness rule holds, within the command's deadline."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tidal.cli.cluster import POLL_INTERVAL, Session, get_object
from tidal.cli.objects import ObjectKind
from tidal.cli.options import CliError, timeout_text
from tidal.cli.output import spinner
from tidal.cli.readiness import CURRENT, FAILED, Result, sleep_until_next_poll

_NO_CONTROLLER_HINT = " (is a controller for it running?)"


class WaitTimeout(CliError):
    """The deadline passed; `reason` says what was still missing."""

    def __init__(self, what: str, after: str, reason: str) -> None:
        super().__init__(f"timed out after {after} waiting for {what}: {reason}")
        self.after = after
        self.reason = reason


async def wait_for(
    s: Session,
    kind: ObjectKind,
    name: str,
    check: Callable[[Mapping[str, Any]], Result],
    what: str,
) -> dict[str, Any]:
    """Poll every 2s (flux's interval), checking at once first, until `check` says current;
    a failed state or the deadline raises CliError naming the last thing waited for."""
    async with spinner(f"waiting for {what}") as progress:
        while True:
            obj = await get_object(s, kind, name)
            result = check(obj)
            if result.status == CURRENT:
                return obj
            if result.status == FAILED:
                raise CliError(f"{what} failed: {result.message}")
            progress.detail = result.message
            if not await sleep_until_next_poll(s.remaining(), POLL_INTERVAL):
                reason = result.message
                if reason.startswith(("not reconciled yet", "the reconcile request has not")):
                    reason += _NO_CONTROLLER_HINT
                raise WaitTimeout(what, timeout_text(s.opts.timeout), reason)
