"""CEL as Flux evaluates it: health check expressions and dependency ready expressions.

Flux (fluxcd/pkg runtime/cel, on cel-go) builds every expression in one environment: optional
types (`a.?b.orValue(c)`), the strings, sets and encoders extensions, cross-type numeric
comparisons. tidal runs the same language on cel-cpp through cel-expr-python (the choice and
its figures are in docs/decisions.md); sets, which that package lacks, is defined here.

Two ways to build an expression, as in Flux:

- parsed only (health checks): any identifier may appear, bound at evaluation to the object's
  top-level fields (`status`, `metadata`, `spec`, or whatever a custom resource has), since
  custom resources need not follow the usual five;
- compiled (dependency ready expressions): the named variables are declared as
  google.protobuf.Struct and the expression must type-check and yield a bool.

Error texts are Flux's: "failed to parse the CEL expression '<expr>': <issues>" (the issues
being cel-cpp's, which follow cel-go's format), "failed to evaluate the CEL expression
'<expr>': <error>", with the two errors users meet most (a missing key, a missing top-level
field) reworded as cel-go words them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cel_expr_python import cel
from cel_expr_python.ext import ext_encoders, ext_optional, ext_strings

from tidal.api.kustomize_types import CustomHealthCheck
from tidal.api.meta import DependencyReference
from tidal.kube import kstatus

__all__ = [
    "TERMINAL_ERROR_MESSAGE",
    "CelError",
    "EvaluationError",
    "Expression",
    "StatusEvaluator",
    "group_kind",
    "health_check_readers",
    "ready_expressions",
]

# kustomize-controller's prefix for configuration errors that stop reconciliation for good.
TERMINAL_ERROR_MESSAGE: Final = "Reconciliation failed terminally due to configuration error"

_STRUCT: Final = "google.protobuf.Struct"


class CelError(ValueError):
    """An expression that cannot be built; the message is Flux's."""


class EvaluationError(RuntimeError):
    """An expression that failed on the data it was given; the message is Flux's."""


# -- the environment ------------------------------------------------------------------------


def _equal(a: object, b: object) -> bool:
    # CEL equality: numbers compare across int and double, but a bool is never a number.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def _contains(items: Sequence[object], wanted: Sequence[object]) -> bool:
    return all(any(_equal(x, y) for y in items) for x in wanted)


def _sets() -> cel.CelExtension:
    """cel-go's ext.Sets(): contains, equivalent and intersects over lists."""
    lists = [cel.Type.List(cel.Type.DYN), cel.Type.List(cel.Type.DYN)]

    def decl(name: str, impl: Any) -> cel.FunctionDecl:
        overload = cel.Overload(f"list_sets_{name}_list", cel.Type.BOOL, lists, impl=impl)
        return cel.FunctionDecl(f"sets.{name}", [overload])

    return cel.CelExtension(
        "sets",
        [
            decl("contains", _contains),
            decl("equivalent", lambda a, b: _contains(a, b) and _contains(b, a)),
            decl("intersects", lambda a, b: any(_equal(x, y) for x in a for y in b)),
        ],
    )


@functools.cache
def _env(struct_variables: tuple[str, ...]) -> cel.Env:
    extensions = [
        ext_strings.ExtStrings(),
        ext_optional.ExtOptional(),
        ext_encoders.ExtEncoders(),
        _sets(),
    ]
    variables = dict.fromkeys(struct_variables, cel.Type(_STRUCT))
    return cel.NewEnv(variables=variables, extensions=extensions)


# -- expressions ----------------------------------------------------------------------------

_STATUS_PREFIX: Final = re.compile(r"^[A-Z_]+: ")
_STATUS_SUFFIX: Final = re.compile(r" \[[A-Z_]+\]$")
_MISSING_KEY: Final = re.compile(r'^Key not found in map : "(.*)"$', re.DOTALL)
_MISSING_VARIABLE: Final = re.compile(r'^No value with name "(.*)" found in Activation$')


def _issues(error: Exception) -> str:
    """cel-cpp's error text without the absl status code around it."""
    return _STATUS_SUFFIX.sub("", _STATUS_PREFIX.sub("", str(error), count=1))


def _attribute(expr: str, name: str) -> str:
    """The attribute cel-go names when the variable `name` is missing: the variable and the
    field selections after it, up to a method or macro call (`status.conditions` in
    `status.conditions.filter(...)`)."""
    found = re.search(rf"(?<![\w.]){re.escape(name)}((?:\.[A-Za-z_]\w*)*)(\s*\()?", expr)
    if found is None:
        return name
    path = [name, *filter(None, found.group(1).split("."))]
    if found.group(2) and len(path) > 1:
        path.pop()
    return ".".join(path)


def _type_name(t: cel.Type) -> str:
    # cel-go prints types lower-case with parentheses: bool, dyn, list(dyn).
    return str(t.name()).lower().replace("<", "(").replace(">", ")")


class Expression:
    """One CEL expression, built once and evaluated many times."""

    def __init__(self, text: str, *, variables: Sequence[str] = (), boolean: bool = False) -> None:
        """Parse `text` or, with `variables` (declared as google.protobuf.Struct), compile and
        type-check it; `boolean` requires a compiled expression's type to be bool. Raises
        CelError."""
        self.text = text
        env = _env(tuple(variables))
        try:
            self._program = env.compile(text, disable_check=not variables)
        except RuntimeError as e:
            raise CelError(f"failed to parse the CEL expression '{text}': {_issues(e)}") from None
        if boolean and variables:
            got = self._program.return_type()
            if got != cel.Type.BOOL:
                raise CelError(
                    f"CEL expression output type mismatch: expected bool, got {_type_name(got)}"
                )

    def evaluate(self, data: Mapping[str, Any]) -> object:
        """The value of the expression with `data` bound as its variables; EvaluationError."""
        try:
            value = self._program.eval(data=data)
        except (RuntimeError, TypeError, ValueError) as e:
            # A value cel-cpp cannot take in (a Python object that is no JSON value).
            raise self._failed(str(e)) from None
        if value.type() == cel.Type.ERROR:
            raise self._failed(str(value.value()))
        return value.plain_value()

    def evaluate_bool(self, data: Mapping[str, Any]) -> bool:
        result = self.evaluate(data)
        if not isinstance(result, bool):
            raise EvaluationError(f"failed to evaluate CEL expression as boolean: '{self.text}'")
        return result

    def _failed(self, error: str) -> EvaluationError:
        error = _STATUS_PREFIX.sub("", error, count=1)
        if (key := _MISSING_KEY.match(error)) is not None:
            error = f"no such key: {key.group(1)}"
        elif (variable := _MISSING_VARIABLE.match(error)) is not None:
            error = f"no such attribute(s): {_attribute(self.text, variable.group(1))}"
        return EvaluationError(f"failed to evaluate the CEL expression '{self.text}': {error}")


# -- health checks --------------------------------------------------------------------------


def group_kind(api_version: str, kind: str) -> tuple[str, str]:
    """apimachinery's FromAPIVersionAndKind(...).GroupKind(): the group is what precedes the
    one "/" of the API version; none for a core version, or for a malformed one."""
    group = api_version.split("/", 1)[0] if api_version.count("/") == 1 else ""
    return group, kind


def _format_group_kind(gk: tuple[str, str]) -> str:
    group, kind = gk
    return f"{kind}.{group}" if group else kind


def _optional(text: str, name: str) -> Expression | None:
    if not text:
        return None
    try:
        return Expression(text)
    except CelError as e:
        raise CelError(f"failed to parse the expression {name}: {e}") from None


@dataclass(frozen=True)
class StatusEvaluator:
    """fluxcd/pkg runtime/cel StatusEvaluator: one kind's health by its CEL expressions."""

    current: Expression
    in_progress: Expression | None = None
    failed: Expression | None = None

    @classmethod
    def of(cls, check: CustomHealthCheck) -> StatusEvaluator:
        if not check.current:
            raise CelError("expression Current not specified")
        current = _optional(check.current, "Current")
        assert current is not None
        return cls(
            current=current,
            failed=_optional(check.failed, "Failed"),
            in_progress=_optional(check.in_progress, "InProgress"),
        )

    def evaluate(self, obj: Mapping[str, Any]) -> kstatus.Result:
        """InProgress while status.observedGeneration lags metadata.generation; otherwise the
        first of inProgress, failed, current to be true decides, and InProgress if none is.
        Raises EvaluationError, or kstatus.StatusError for a generation that is no integer."""
        observed = kstatus.nested_int64(obj, "status", "observedGeneration")
        if observed is not None:
            generation = kstatus.nested_int64(obj, "metadata", "generation")
            if generation is not None and generation != observed:
                return kstatus.Result(kstatus.Status.IN_PROGRESS, "")
        # Flux binds the object's top-level fields as the expressions' variables.
        for expr, status in (
            (self.in_progress, kstatus.Status.IN_PROGRESS),
            (self.failed, kstatus.Status.FAILED),
            (self.current, kstatus.Status.CURRENT),
        ):
            if expr is not None and expr.evaluate_bool(obj):
                return kstatus.Result(status, "")
        return kstatus.Result(kstatus.Status.IN_PROGRESS, "")

    def read(self, ref: kstatus.ObjRef, obj: Mapping[str, Any] | None) -> kstatus.ResourceStatus:
        """The status a poll reports: NotFound when the object is gone, Unknown carrying the
        error when an expression fails (the wait then runs into its timeout)."""
        if obj is None:
            missing = kstatus.not_found()
            return kstatus.ResourceStatus(ref, missing.status, missing.message)
        try:
            result = self.evaluate(obj)
        except (EvaluationError, kstatus.StatusError) as e:
            return kstatus.ResourceStatus(ref, kstatus.Status.UNKNOWN, error=str(e))
        return kstatus.ResourceStatus(ref, result.status, result.message)


def health_check_readers(
    checks: Iterable[CustomHealthCheck],
) -> dict[tuple[str, str], StatusEvaluator]:
    """spec.healthCheckExprs as evaluators per (group, kind); CelError with Flux's text when
    an expression does not parse or a kind is listed twice."""
    evaluators: dict[tuple[str, str], StatusEvaluator] = {}
    for i, check in enumerate(checks):
        gk = group_kind(check.api_version, check.kind)
        if gk in evaluators:
            raise CelError(
                f"duplicate custom health check for GroupKind {_format_group_kind(gk)} "
                f"at healthchecks[{i}]"
            )
        try:
            evaluators[gk] = StatusEvaluator.of(check)
        except CelError as e:
            raise CelError(
                f"failed to create custom status evaluator for healthchecks[{i}]: {e}"
            ) from None
    return evaluators


# -- dependencies ---------------------------------------------------------------------------


def ready_expressions(dependencies: Iterable[DependencyReference]) -> dict[str, Expression]:
    """The readyExpr of each dependency, compiled over `self` and `dep` (both objects) and
    bound to yield a bool, keyed by its text; CelError with Flux's text otherwise."""
    compiled: dict[str, Expression] = {}
    for dep in dependencies:
        if not dep.ready_expr or dep.ready_expr in compiled:
            continue
        try:
            compiled[dep.ready_expr] = Expression(
                dep.ready_expr, variables=("self", "dep"), boolean=True
            )
        except CelError as e:
            raise CelError(f"failed to evaluate dependency {dep.name}: {e}") from None
    return compiled
