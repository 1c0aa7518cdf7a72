"""Revision strings: every row of the Git table, the algorithm marker, legacy parsing, and the
CLI's hex shortening."""

from __future__ import annotations

import pytest

from tidal.source.revision import (
    Revision,
    absolute_reference_revision,
    branch_revision,
    commit_revision,
    extract_hash,
    git_revision,
    hash_algorithm,
    parse_revision,
    ref_name_revision,
    same_revision,
    short_reference_revision,
    tag_revision,
    transform_legacy,
    truncate_hex,
)

SHA = "5394cb7f48332b2de7c17dd8b8384bbc84b7e738"
SHA256 = "55609ff9d959589ed917ce32e6bc0f0a36809565f308602c15c3668965979edc"


# -- producing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"branch": "main"}, f"main@sha1:{SHA}"),
        ({"branch": "feature/x"}, f"feature/x@sha1:{SHA}"),
        ({"tag": "v1.2.0"}, f"v1.2.0@sha1:{SHA}"),
        ({"semver_tag": "v1.3.0"}, f"v1.3.0@sha1:{SHA}"),
        ({"name": "refs/heads/main"}, f"refs/heads/main@sha1:{SHA}"),
        ({"name": "refs/pull/420/head"}, f"refs/pull/420/head@sha1:{SHA}"),
        ({"name": "refs/merge-requests/1/head"}, f"refs/merge-requests/1/head@sha1:{SHA}"),
        ({"commit_ref": True}, f"sha1:{SHA}"),
        ({"commit_ref": True, "branch": "main"}, f"main@sha1:{SHA}"),
        ({}, f"master@sha1:{SHA}"),
    ],
)
def test_git_revision_table(kwargs: dict[str, object], expected: str) -> None:
    assert git_revision(SHA, **kwargs) == expected  # type: ignore[arg-type]


def test_git_revision_precedence_follows_flux_code() -> None:
    # commit > name > tag > semver > branch
    assert git_revision(SHA, commit_ref=True, name="refs/heads/x", tag="t") == f"sha1:{SHA}"
    assert git_revision(SHA, name="refs/heads/x", tag="t") == f"refs/heads/x@sha1:{SHA}"
    assert git_revision(SHA, tag="t", semver_tag="v2", branch="b") == f"t@sha1:{SHA}"
    assert git_revision(SHA, semver_tag="v2", branch="b") == f"v2@sha1:{SHA}"


def test_helpers_per_ref_kind() -> None:
    assert branch_revision("main", SHA) == f"main@sha1:{SHA}"
    assert tag_revision("v1", SHA) == f"v1@sha1:{SHA}"
    assert ref_name_revision("refs/tags/v1", SHA) == f"refs/tags/v1@sha1:{SHA}"
    assert commit_revision(SHA) == f"sha1:{SHA}"
    assert commit_revision(SHA, "dev") == f"dev@sha1:{SHA}"


@pytest.mark.parametrize(
    ("reference", "short", "absolute"),
    [
        ("refs/heads/main", f"main@sha1:{SHA}", f"refs/heads/main@sha1:{SHA}"),
        ("refs/tags/v1/rc", f"v1/rc@sha1:{SHA}", f"refs/tags/v1/rc@sha1:{SHA}"),
        ("", f"sha1:{SHA}", f"sha1:{SHA}"),
        ("HEAD", f"sha1:{SHA}", f"HEAD@sha1:{SHA}"),
    ],
)
def test_reference_forms(reference: str, short: str, absolute: str) -> None:
    assert short_reference_revision(reference, SHA) == short
    assert absolute_reference_revision(reference, SHA) == absolute


@pytest.mark.parametrize(
    ("commit", "algorithm"),
    [(SHA, "sha1"), (SHA256, "<unknown>"), (SHA[:12], "<unknown>")],
)
def test_algorithm_marker_is_by_length(commit: str, algorithm: str) -> None:
    assert hash_algorithm(commit) == algorithm
    assert branch_revision("main", commit) == f"main@{algorithm}:{commit}"


def test_empty_hash_has_no_digest() -> None:
    assert commit_revision("") == ""


# -- parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("revision", "name", "algorithm", "hash_"),
    [
        (f"main@sha1:{SHA}", "main", "sha1", SHA),
        (f"feature/x@sha1:{SHA}", "feature/x", "sha1", SHA),
        (f"refs/pull/420/head@sha1:{SHA}", "refs/pull/420/head", "sha1", SHA),
        (f"sha1:{SHA}", "", "sha1", SHA),
        (f"main@<unknown>:{SHA256}", "main", "<unknown>", SHA256),
        (f"v1.0.0@sha256:{SHA256}", "v1.0.0", "sha256", SHA256),
        # legacy forms
        (f"main/{SHA}", "main", "sha1", SHA),
        (f"feature/branch/{SHA}", "feature/branch", "sha1", SHA),
        (f"HEAD/{SHA}", "", "sha1", SHA),
        (f"tag/{SHA256}", "tag", "sha256", SHA256),
        (SHA, "", "sha1", SHA),
        (SHA256, "", "sha256", SHA256),
        # no digest at all
        ("6.0.3", "6.0.3", "", ""),
        ("6.0.3+abcdef123456", "6.0.3+abcdef123456", "", ""),
        ("main/notahash", "main/notahash", "", ""),
    ],
)
def test_parse(revision: str, name: str, algorithm: str, hash_: str) -> None:
    parsed = parse_revision(revision)
    assert parsed == Revision(name, algorithm, hash_)


@pytest.mark.parametrize(
    "revision",
    [f"main@sha1:{SHA}", f"sha1:{SHA}", "6.0.3", f"refs/pull/1/head@sha1:{SHA}"],
)
def test_parse_round_trips(revision: str) -> None:
    assert str(parse_revision(revision)) == revision


def test_legacy_is_rewritten_to_the_current_form() -> None:
    assert str(parse_revision(f"main/{SHA}")) == f"main@sha1:{SHA}"
    assert transform_legacy(f"HEAD/{SHA}") == f"sha1:{SHA}"
    assert transform_legacy(f"main@sha1:{SHA}") == f"main@sha1:{SHA}"
    assert transform_legacy(f"main/{SHA.upper()}") == f"main/{SHA.upper()}"  # hex is lowercase


@pytest.mark.parametrize(
    "revision",
    [f"main@sha1:{SHA}", f"sha1:{SHA}", f"main/{SHA}", f"a/b/{SHA}", SHA],
)
def test_extract_hash(revision: str) -> None:
    assert extract_hash(revision) == SHA


def test_same_revision_across_forms() -> None:
    assert same_revision(f"main/{SHA}", f"main@sha1:{SHA}")
    assert same_revision(f"HEAD/{SHA}", f"sha1:{SHA}")
    assert not same_revision(f"main/{SHA}", f"dev@sha1:{SHA}")
    assert not same_revision(f"main@sha1:{SHA}", f"sha1:{SHA}")


# -- CLI shortening -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"main@sha1:{SHA}", "main@sha1:5394cb7f"),
        (f"v1@sha256:{SHA256}", "v1@sha256:55609ff9"),
        ("sha512:" + "a" * 128, "sha512:aaaaaaaa"),
        ("x " + "b" * 39, "x " + "b" * 39),  # too short
        ("c" * 129, "c" * 129),  # too long: no word boundary inside the run
        (SHA.upper(), SHA.upper()),  # uppercase is not shortened
        (f"applied {SHA}, then {SHA}", "applied 5394cb7f, then 5394cb7f"),
        ("", ""),
    ],
)
def test_truncate_hex(text: str, expected: str) -> None:
    assert truncate_hex(text) == expected
