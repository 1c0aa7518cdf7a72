"""Flag parsing and small formats of the CLI, as flux (pflag, Go) reads and writes them."""

from __future__ import annotations

import io
import re

import click
import pytest

from tidal.cli.flags import check_object_name, parse_labels, string_slice
from tidal.cli.gitsecret import known_hosts_name, split_host_port
from tidal.cli.options import CliError, GoDuration
from tidal.cli.output import Logger
from tidal.cli.reconcile import rfc3339_nano


def test_string_slices_are_csv_records_that_add_up() -> None:
    assert string_slice(["a,b", "c", '"d,e",f', ""]) == ["a", "b", "c", "d,e", "f"]


def test_labels() -> None:
    assert parse_labels(["a=b,example.com/c=", "d=e"]) == {"a": "b", "example.com/c": "", "d": "e"}
    for bad in ("a", "a=b=c", "-a=b", "a=b c", "Bad_/x=y"):
        with pytest.raises(CliError):
            parse_labels([bad])


def test_object_names() -> None:
    assert check_object_name("ab") == "ab"
    for bad in (None, "", "a", "A-b", "a_b", "-ab", "a" * 64):
        with pytest.raises(CliError):
            check_object_name(bad)


def test_go_durations() -> None:
    strict, lenient = GoDuration(), GoDuration(bare_seconds=True)
    assert strict.convert("1m30s", None, None) == 90.0
    assert lenient.convert("300", None, None) == 300.0
    with pytest.raises(click.BadParameter, match='time: invalid duration "60"'):
        strict.convert("60", None, None)


def test_rfc3339_nano_is_go_s_format() -> None:
    text = rfc3339_nano(1_700_000_000_120_000_000)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.12(Z|[+-]\d\d:\d\d)", text)
    assert re.fullmatch(r"[^.]*:\d\d(Z|[+-]\d\d:\d\d)", rfc3339_nano(1_700_000_000_000_000_000))


def test_known_hosts_names_are_go_s_normalized_form() -> None:
    assert split_host_port("github.com") == ("github.com", 22)
    assert split_host_port("127.0.0.1:2222") == ("127.0.0.1", 2222)
    assert split_host_port("[::1]:2222") == ("::1", 2222)
    assert known_hosts_name("github.com", 22) == "github.com"
    assert known_hosts_name("127.0.0.1", 2222) == "[127.0.0.1]:2222"


class _Tty(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_prefixes_are_coloured_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    plain, tty = _Tty(False), _Tty(True)
    Logger(plain).success("done")
    Logger(tty).success("done")
    assert plain.getvalue() == "✔ done\n"
    assert tty.getvalue() == "\033[32m✔\033[0m done\n"
    monkeypatch.setenv("NO_COLOR", "1")
    again = _Tty(True)
    Logger(again).failure("no")
    assert again.getvalue() == "✗ no\n"
