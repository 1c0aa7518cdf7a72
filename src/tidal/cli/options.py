"""Global flags, accepted before the verb or after it, as cobra's persistent flags are.

`flux get sources git -n apps` and `flux -n apps get sources git` mean the same thing. click only
reads a group's options before its subcommand, so every leaf command also declares the global
flags (via `global_flags`); a value given there overrides the root's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import IO, Any, Final, TypeVar

import click

from tidal.api.base import DurationError, format_duration, parse_duration
from tidal.cli.output import Logger

DEFAULT_NAMESPACE: Final = "flux-system"
DEFAULT_TIMEOUT: Final = "5m"
_OVERRIDES: Final = "tidal.global-overrides"
_DNS1123_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """A user-facing failure: printed as `✗ <message>` on stderr, exit status 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        Logger(file).failure(self.format_message())


@dataclass(frozen=True)
class GlobalOptions:
    kubeconfig: str | None
    context: str | None
    namespace: str
    timeout: float  # seconds


class GoDuration(click.ParamType[float, Any]):
    """A Go duration ("30s", "5m", "1h30m") as seconds; with `bare_seconds` a plain number is
    read as seconds too (tidal's earlier `--timeout 300`), which Go itself rejects."""

    name = "duration"

    def __init__(self, *, bare_seconds: bool = False) -> None:
        self.bare_seconds = bare_seconds

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip()
        if self.bare_seconds:
            try:
                return float(text)
            except ValueError:
                pass
        try:
            return parse_duration(text)
        except DurationError:
            self.fail(f'time: invalid duration "{text}"', param, ctx)


def _store(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value is not None and param.name is not None:
        ctx.meta.setdefault(_OVERRIDES, {})[param.name] = value


def _kubeconfig_option(**kw: Any) -> Callable[[F], F]:
    return click.option("--kubeconfig", help="Path to the kubeconfig file.", **kw)


def root_flags(f: F) -> F:
    """The global flags on the root group, with their defaults."""
    for decorator in reversed(
        (
            _kubeconfig_option(envvar="KUBECONFIG"),
            click.option("--context", help="Kubernetes context to use."),
            click.option(
                "-n",
                "--namespace",
                default=DEFAULT_NAMESPACE,
                show_default=True,
                help="The namespace scope for this operation.",
            ),
            click.option(
                "--timeout",
                type=GoDuration(bare_seconds=True),
                default=DEFAULT_TIMEOUT,
                show_default=True,
                help="Timeout for this operation (a Go duration such as 30s or 5m).",
            ),
        )
    ):
        f = decorator(f)
    return f


def global_flags(f: F) -> F:
    """The same flags on a leaf command; they override the root's when given."""
    common: dict[str, Any] = {"expose_value": False, "callback": _store, "default": None}
    for decorator in reversed(
        (
            _kubeconfig_option(**common),
            click.option("--context", help="Kubernetes context to use.", **common),
            click.option(
                "-n", "--namespace", help="The namespace scope for this operation.", **common
            ),
            click.option(
                "--timeout",
                type=GoDuration(bare_seconds=True),
                help="Timeout for this operation.",
                **common,
            ),
        )
    ):
        f = decorator(f)
    return f


def options(ctx: click.Context) -> GlobalOptions:
    """The effective global options of this invocation; the namespace must be a DNS label."""
    root = ctx.find_object(GlobalOptions)
    if root is None:
        root = GlobalOptions(None, None, DEFAULT_NAMESPACE, parse_duration(DEFAULT_TIMEOUT))
    overrides = ctx.meta.get(_OVERRIDES, {})
    opts = replace(root, **overrides)
    if opts.kubeconfig and ":" in opts.kubeconfig:
        # $KUBECONFIG may list several files; lightkube reads that list itself when given none.
        opts = replace(opts, kubeconfig=None)
    if len(opts.namespace) > 63 or not _DNS1123_LABEL.fullmatch(opts.namespace):
        raise CliError(f'namespace must be a valid DNS label: "{opts.namespace}"')
    return opts


def timeout_text(seconds: float) -> str:
    return format_duration(seconds)
