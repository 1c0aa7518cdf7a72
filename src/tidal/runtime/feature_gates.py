"""`--feature-gates`: Flux's `Name=true,Other=false` switches for behaviour that is off (or
on) by default. Only gates tidal implements are accepted; naming any other is an error at
start-up rather than a switch that silently does nothing."""

from __future__ import annotations

from collections.abc import Mapping


class FeatureGateError(ValueError):
    """The flag names an unknown gate or a value that is not a boolean."""


def parse(text: str, known: Mapping[str, bool]) -> dict[str, bool]:
    """The effective gates: `known` (name → default) overridden by `text`."""
    gates = dict(known)
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise FeatureGateError(f"missing bool value for {name}")
        if name not in known:
            supported = ", ".join(sorted(known))
            raise FeatureGateError(f"unrecognized feature gate: {name} (supported: {supported})")
        lowered = value.strip().lower()
        if lowered not in ("true", "false", "1", "0", "t", "f"):
            raise FeatureGateError(f"invalid value of {name}={value.strip()}, err: not a bool")
        gates[name] = lowered in ("true", "1", "t")
    return gates
