"""API models: durations as Go reads them, and Flux manifests decode and encode unchanged."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tests.corpus_path import corpus_root
from tidal.api.base import DurationError, format_duration, parse_duration
from tidal.api.source import GitRepository
from tidal.kube import yamlio


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1m", 60.0),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("500ms", 0.5),
        ("2h45m", 9900.0),
        ("0", 0.0),
        ("10s", 10.0),
        ("1h0m0s", 3600.0),
        ("-5s", -5.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
    ],
)
def test_parse_duration_reads_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "1d", "m", "1m 30s", "abc", "s", ".", "-", ".s"])
def test_parse_duration_refuses_what_go_refuses(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(60, "1m0s"), (90, "1m30s"), (3600, "1h0m0s"), (0.5, "500ms"), (0, "0s"), (1.5, "1.5s")],
)
def test_format_duration_is_go_canonical(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


def corpus_git_repositories() -> list[tuple[str, dict[str, Any]]]:
    root = corpus_root()
    if root is None:
        return []
    found = []
    for path in sorted(root.rglob("*.y*ml")):
        try:
            docs = yamlio.load_all(path.read_bytes(), source=str(path))
        except yamlio.ManifestError:
            continue
        for doc in docs:
            if doc.get("kind") == "GitRepository" and doc.get("apiVersion", "").endswith("/v1"):
                found.append((str(path.relative_to(root)), doc))
    return found


@pytest.mark.parametrize(("path", "doc"), corpus_git_repositories(), ids=lambda v: str(v)[:60])
def test_corpus_git_repositories_round_trip(path: str, doc: dict[str, Any]) -> None:
    out = GitRepository.from_dict(doc).to_dict()
    # Encoding gives back what the user wrote; like Go's omitempty, a field set to its
    # default (timeout: 60s) is left out.
    expected = {k: v for k, v in doc["spec"].items() if (k, v) != ("timeout", "60s")}
    assert out["spec"] == expected
    assert out["metadata"]["name"] == doc["metadata"]["name"]


def test_corpus_has_git_repositories() -> None:
    if corpus_root() is None:
        pytest.skip("corpus not present")
    assert len(corpus_git_repositories()) >= 2


def test_invalid_spec_is_refused_with_the_field_path() -> None:
    with pytest.raises(msgspec.ValidationError) as e:
        GitRepository.from_dict(
            {
                "metadata": {"name": "x"},
                "spec": {"url": "git@github.com:org/repo", "interval": "1m"},
            }
        )
    assert "spec.url" in str(e.value)
    with pytest.raises(msgspec.ValidationError, match="interval"):
        GitRepository.from_dict({"spec": {"url": "https://example.com/r", "interval": "1d"}})


def test_unknown_fields_are_ignored_like_a_pruning_api_server() -> None:
    g = GitRepository.from_dict(
        {"spec": {"url": "https://example.com/r", "interval": "5m", "gitImplementation": "go-git"}}
    )
    assert g.to_dict()["spec"] == {"url": "https://example.com/r", "interval": "5m"}
