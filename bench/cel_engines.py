"""Benchmark: Python CEL libraries against the expressions Flux users write.

Candidates (each is skipped when not installed; install the others in a scratch venv):

- cel-expr-python: the CEL team's wrapper of cel-cpp (`from cel_expr_python import cel`);
- common-expression-language: Rust bindings (`import cel`);
- cel-python: pure Python (`import celpy`).

For each: how many of the cases below give the result Flux (cel-go with OptionalTypes, the
strings, sets and encoders extensions, cross-type numeric comparisons) gives, including the
cases that must be an evaluation error rather than false; whether syntax errors are caught at
compile time; then compile and evaluation time of a typical health expression (median of
`--repeat` rounds of 1000).

    python bench/cel_engines.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

READY = {
    "apiVersion": "example.com/v1",
    "kind": "Widget",
    "metadata": {"name": "w", "generation": 2, "labels": {"app/version": "v1.2.3"}},
    "status": {
        "observedGeneration": 2,
        "phase": "Provisioned",
        "replicas": 3,
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Succeeded"},
            {"type": "Synced", "status": "True"},
        ],
    },
}
EMPTY_STATUS = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {}, "status": {}}
NO_STATUS = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {}}
NO_CONDITIONS = {**EMPTY_STATUS, "status": {"conditions": []}}

ERROR = "error"
READY_IS_TRUE = "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True')"
CASES: list[tuple[str, dict[str, Any], object]] = [
    (READY_IS_TRUE, READY, True),
    ("status.conditions.exists(e, e.type == 'Synced' && e.status == 'True')", READY, True),
    ("status.conditions.exists_one(e, e.type == 'Ready')", READY, True),
    ("'Ready' in status.conditions.map(e, e.type)", READY, True),
    (
        "has(status.observedGeneration) && metadata.generation == status.observedGeneration",
        READY,
        True,
    ),
    ("has(status.foo)", READY, False),
    ("status.phase in ['Failed', 'Deleting']", READY, False),
    ("metadata.labels['app/version'] == 'v1.2.3'", READY, True),
    ("status.phase.startsWith('Prov') && status.phase.matches('^Pro.*ed$')", READY, True),
    ("size(status.conditions) == 2", READY, True),
    ("status.replicas > 2.5", READY, True),
    ("1 == 1.0", READY, True),
    ("status.phase.lowerAscii() == 'provisioned'", READY, True),
    ("'a,b'.split(',').size() == 2", READY, True),
    ("status.?conditions.orValue([]).exists(e, e.type == 'Ready')", EMPTY_STATUS, False),
    ("status.conditions[?0].hasValue()", READY, True),
    ("sets.contains([1, 2, 3], [2])", READY, True),
    ("base64.encode(b'hi') == 'aGk='", READY, True),
    ("duration('1m') > duration('30s')", READY, True),
    ("false && status.nope", READY, False),
    (READY_IS_TRUE, NO_CONDITIONS, True),
    (READY_IS_TRUE, EMPTY_STATUS, ERROR),  # no such key: conditions
    (READY_IS_TRUE, NO_STATUS, ERROR),  # no such attribute(s): status.conditions
    ("has(status.observedGeneration)", NO_STATUS, ERROR),
]
SYNTAX_ERRORS = ["data.", "foo ==", "status.conditions.filter(e, ", "a &&& b"]

Compile = Callable[[str], Any]
Evaluate = Callable[[Any, dict[str, Any]], object]


def cel_expr_python() -> tuple[Compile, Evaluate]:
    from cel_expr_python import cel  # type: ignore[import-not-found]
    from cel_expr_python.ext import (  # type: ignore[import-not-found]
        ext_encoders,
        ext_optional,
        ext_strings,
    )

    top = ("apiVersion", "kind", "metadata", "spec", "status")
    env = cel.NewEnv(
        variables=dict.fromkeys(top, cel.Type.DYN),
        extensions=[
            ext_strings.ExtStrings(),
            ext_optional.ExtOptional(),
            ext_encoders.ExtEncoders(),
        ],
    )

    def evaluate(program: Any, data: dict[str, Any]) -> object:
        value = program.eval(data=data)
        if value.type() == cel.Type.ERROR:
            raise RuntimeError(value.value())
        return value.plain_value()

    return (lambda expr: env.compile(expr, disable_check=True)), evaluate


def common_expression_language() -> tuple[Compile, Evaluate]:
    import cel  # type: ignore[import-not-found]

    return cel.compile, lambda program, data: program.execute(data)


def cel_python() -> tuple[Compile, Evaluate]:
    import celpy  # type: ignore[import-not-found]

    env = celpy.Environment()

    def evaluate(program: Any, data: dict[str, Any]) -> object:
        result = program.evaluate({k: celpy.json_to_cel(v) for k, v in data.items()})
        if isinstance(result, Exception):
            raise result
        return bool(result) if isinstance(result, celpy.celtypes.BoolType) else result

    return (lambda expr: env.program(env.compile(expr))), evaluate


ENGINES = {
    "cel-expr-python": cel_expr_python,
    "common-expression-language": common_expression_language,
    "cel-python": cel_python,
}


def coverage(compile_: Compile, evaluate: Evaluate) -> tuple[int, list[str]]:
    passed, failures = 0, []
    for expr, data, want in CASES:
        try:
            got: object = evaluate(compile_(expr), data)
        except Exception as e:
            got = ERROR
            detail = f"{type(e).__name__}: {str(e).splitlines()[0][:90]}"
        else:
            detail = repr(got)
        if got == want and type(got) is type(want):
            passed += 1
        else:
            failures.append(f"{expr!r} on {data.get('status', '-')!r:.40}: {detail}")
    return passed, failures


def timing(compile_: Compile, evaluate: Evaluate, repeat: int) -> tuple[float, float]:
    n = 1000
    compiles, evals = [], []
    program = compile_(READY_IS_TRUE)
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(n):
            compile_(READY_IS_TRUE)
        compiles.append((time.perf_counter() - start) / n)
        start = time.perf_counter()
        for _ in range(n):
            evaluate(program, READY)
        evals.append((time.perf_counter() - start) / n)
    return statistics.median(compiles) * 1e6, statistics.median(evals) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for name, load in ENGINES.items():
        start = time.perf_counter()
        try:
            compile_, evaluate = load()
        except ImportError:
            print(f"{name}: not installed")
            continue
        imported = (time.perf_counter() - start) * 1e3
        passed, failures = coverage(compile_, evaluate)
        caught = 0
        for text in SYNTAX_ERRORS:
            try:
                compile_(text)
            except Exception:
                caught += 1
        compile_us, eval_us = timing(compile_, evaluate, args.repeat)
        print(
            f"{name}: {passed}/{len(CASES)} cases as Flux, {caught}/{len(SYNTAX_ERRORS)} syntax "
            f"errors at compile, import {imported:.0f} ms, compile {compile_us:.1f} us, "
            f"eval {eval_us:.1f} us"
        )
        for failure in failures:
            print(f"    differs: {failure}")


if __name__ == "__main__":
    main()
