"""Kubernetes label selectors in their string form (`app=web,tier!=db,env in (a,b),!legacy`),
parsed and matched as apimachinery's `labels.Parse` does. Flux uses the same syntax for
annotation selectors, so the matcher takes any string map."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

# A qualified name with an optional DNS-subdomain prefix, as label keys are.
_KEY: Final = re.compile(
    r"^(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_VALUE: Final = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_TOKEN: Final = re.compile(r"\s*(==|!=|=|\(|\)|,|!|[^\s=!(),<>]+|<|>)")


class SelectorError(ValueError):
    """The selector string does not parse."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key, "")
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if not present:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        bound = int(self.values[0])
        return number > bound if self.op == "gt" else number < bound


@dataclass(frozen=True, slots=True)
class LabelSelector:
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Every requirement holds; the empty selector matches everything."""
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)


def _tokens(text: str) -> list[str]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise SelectorError(f"unable to parse requirement: {text[pos:]!r}")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


def _check_key(key: str) -> str:
    if not _KEY.match(key) or len(key.rpartition("/")[0]) > 253:
        raise SelectorError(f"invalid label key {key!r}")
    return key


def _check_value(value: str) -> str:
    if not _VALUE.match(value):
        raise SelectorError(f"invalid label value {value!r}")
    return value


def parse(text: str) -> LabelSelector:
    """Parse a selector; SelectorError says what is wrong."""
    tokens = _tokens(text)
    requirements: list[Requirement] = []
    i = 0

    def take() -> str:
        nonlocal i
        if i >= len(tokens):
            raise SelectorError(f"unexpected end of selector {text!r}")
        i += 1
        return tokens[i - 1]

    def peek() -> str | None:
        return tokens[i] if i < len(tokens) else None

    while i < len(tokens):
        word = take()
        if word == "!":
            requirements.append(Requirement(_check_key(take()), "!"))
        else:
            key = _check_key(word)
            op = peek()
            if op in (None, ","):
                requirements.append(Requirement(key, "exists"))
            elif op in ("=", "==", "!="):
                take()
                value = "" if peek() in (None, ",") else take()
                requirements.append(
                    Requirement(key, "!=" if op == "!=" else "=", (_check_value(value),))
                )
            elif op in ("in", "notin"):
                take()
                if take() != "(":
                    raise SelectorError(f"expected '(' after {op!r} in {text!r}")
                values: list[str] = []
                while True:
                    item = take()
                    if item == ")":
                        break
                    if item == ",":
                        continue
                    values.append(_check_value(item))
                requirements.append(Requirement(key, op, tuple(values)))
            elif op in ("<", ">"):
                take()
                bound = take()
                if not re.fullmatch(r"-?\d+", bound):
                    raise SelectorError(f"for {op!r}, {bound!r} is not an integer")
                requirements.append(Requirement(key, "gt" if op == ">" else "lt", (bound,)))
            else:
                raise SelectorError(f"unexpected {op!r} after key {key!r} in {text!r}")
        nxt = peek()
        if nxt is not None:
            if nxt != ",":
                raise SelectorError(f"expected ',' before {nxt!r} in {text!r}")
            take()
            if peek() is None:
                raise SelectorError(f"trailing ',' in {text!r}")
    return LabelSelector(tuple(requirements))
