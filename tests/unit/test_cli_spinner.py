"""The spinner on every CLI wait: drawn only on a terminal, erased when the wait ends, so
piped output stays byte-identical to flux's."""

from __future__ import annotations

import asyncio
import io

import pytest

from tidal.cli.output import spinner


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_a_terminal_sees_the_spinner_with_elapsed_time_and_detail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    out = Terminal()
    async with spinner("waiting for Kustomization apps", out, every=0.01) as progress:
        progress.detail = "not reconciled yet"
        await asyncio.sleep(0.1)
    text = out.getvalue()
    frames = text.split("\r")[1:]
    assert len(frames) >= 3
    assert "waiting for Kustomization apps (0s): not reconciled yet\033[K" in frames[-2]
    assert frames[-1] == "\033[K"  # the line is erased: the next ✔ line starts clean


async def test_pipes_and_no_color_see_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    piped = io.StringIO()
    async with spinner("waiting", piped, every=0.01):
        await asyncio.sleep(0.05)
    assert piped.getvalue() == ""
    monkeypatch.setenv("NO_COLOR", "1")
    terminal = Terminal()
    async with spinner("waiting", terminal, every=0.01):
        await asyncio.sleep(0.05)
    assert terminal.getvalue() == ""


async def test_a_long_detail_is_cut_to_the_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "40")
    out = Terminal()
    async with spinner("waiting", out, every=0.01) as progress:
        progress.detail = "x" * 200
        await asyncio.sleep(0.05)
    frame = out.getvalue().split("\r")[-2]
    visible = frame.split("\033[0m ", 1)[1].removesuffix("\033[K")
    assert len(visible) == 37 and visible.endswith("…")
