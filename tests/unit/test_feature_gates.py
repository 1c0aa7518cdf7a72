"""`--feature-gates` parsing."""

from __future__ import annotations

import pytest

from tidal.runtime.feature_gates import FeatureGateError, parse

KNOWN = {"AdditiveCELDependencyCheck": False, "StrictPostBuildSubstitutions": True}


def test_defaults_and_overrides() -> None:
    assert parse("", KNOWN) == KNOWN
    assert parse("AdditiveCELDependencyCheck=true, StrictPostBuildSubstitutions=false", KNOWN) == {
        "AdditiveCELDependencyCheck": True,
        "StrictPostBuildSubstitutions": False,
    }


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("CacheSecretsAndConfigMaps=true", "unrecognized feature gate: CacheSecretsAndConfigMaps"),
        ("AdditiveCELDependencyCheck", "missing bool value"),
        ("AdditiveCELDependencyCheck=yes", "not a bool"),
    ],
)
def test_bad_gates_are_refused(text: str, error: str) -> None:
    with pytest.raises(FeatureGateError, match=error):
        parse(text, KNOWN)
