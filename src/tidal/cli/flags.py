"""Flag values the way cobra/pflag and the flux CLI read and check them."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeVar

import click

from tidal.cli.options import CliError, GoDuration

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_OBJECT_NAME: Final = re.compile(r"[a-z0-9]([a-z0-9\-]){0,61}[a-z0-9]")
_LABEL_NAME: Final = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS1123_LABEL: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN: Final = re.compile(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*")


def string_slice(values: Iterable[str]) -> list[str]:
    """pflag's StringSlice: every occurrence is one CSV record (so `a,b` is two values and
    `"a,b"` one), and occurrences add up."""
    out: list[str] = []
    for value in values:
        if value == "":
            continue
        out.extend(next(csv.reader([value])))
    return out


def check_object_name(name: str | None) -> str:
    """flux's name rule for objects it creates (stricter than Kubernetes: at least 2 chars)."""
    if not name:
        raise CliError("name is required")
    if not _OBJECT_NAME.fullmatch(name):
        raise CliError(
            f"name '{name}' is invalid, it should adhere to standard defined in RFC 1123, the "
            "name can only contain alphanumeric characters or '-'"
        )
    return name


def _label_key_problem(key: str) -> str | None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name or len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        return (
            "name part must be at most 63 characters, consist of alphanumeric characters, "
            "'-', '_' or '.', and start and end with an alphanumeric character"
        )
    return None


def parse_labels(values: Iterable[str]) -> dict[str, str]:
    """`--label k=v[,k2=v2]`, checked like Kubernetes label keys and values."""
    labels: dict[str, str] = {}
    for item in string_slice(values):
        parts = item.split("=")
        if len(parts) != 2:
            raise CliError(f"invalid label format '{item}', must be key=value")
        key, value = parts
        problem = _label_key_problem(key)
        if problem:
            raise CliError(f"invalid label '{key}': {problem}")
        if len(value) > 63 or (value and not _LABEL_NAME.fullmatch(value)):
            raise CliError(
                f"invalid label value '{value}': must be at most 63 characters, consist of "
                "alphanumeric characters, '-', '_' or '.', and start and end with an "
                "alphanumeric character"
            )
        labels[key] = value
    return labels


class PflagValue(click.ParamType[T, Any]):
    """A flag whose value flux checks as it parses it (a pflag.Value): `parse` returns the
    parsed value or raises ValueError, reported in cobra's words before the command runs (so
    before the name is checked, and in the order the flags were given):
    `invalid argument "<value>" for "--<flag>" flag: <reason>`."""

    def __init__(self, name: str, parse: Callable[[str], T]) -> None:
        self.name = name
        self._parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> T:
        try:
            return self._parse(str(value))
        except ValueError as e:
            flag = max(param.opts, key=len) if param is not None else "value"
            # Go's %q, which for the text a shell passes is JSON's quoting.
            quoted = json.dumps(str(value), ensure_ascii=False)
            raise CliError(f'invalid argument {quoted} for "{flag}" flag: {e}') from None


def create_flags(f: F) -> F:
    """`flux create`'s persistent flags, accepted on every create command."""
    for decorator in reversed(
        (
            click.option(
                "--interval",
                type=GoDuration(),
                default="1m",
                show_default=True,
                help="Source sync interval.",
            ),
            click.option("--export", is_flag=True, help="Export in YAML format to stdout."),
            click.option(
                "--label",
                "labels",
                multiple=True,
                help="Set labels on the resource (k=v; several with commas or repeated flags).",
            ),
        )
    ):
        f = decorator(f)
    return f
