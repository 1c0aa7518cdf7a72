"""Ref precedence, revisions, the ls-remote check, and Masterminds-compatible semver."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidal.source.git.errors import NoSemverMatchError
from tidal.source.git.refs import (
    Ref,
    RefError,
    RefKind,
    SemverCandidate,
    peeled_target,
    pick_semver,
    remote_revision,
    semver_candidates,
)
from tidal.source.git.semver import Constraint, SemverError, Version

SHA = "5394cb7f48332b2de7c17dd8b8384bbc84b7e738"
TAG_OBJ = "1111111111111111111111111111111111111111"
OTHER = "2222222222222222222222222222222222222222"


# -- precedence and revisions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "kind"),
    [
        (Ref(), RefKind.BRANCH),
        (Ref(branch="dev"), RefKind.BRANCH),
        (Ref(branch="dev", semver="1.x"), RefKind.SEMVER),
        # Flux's code checks the tag before semver (its docs say the opposite).
        (Ref(tag="v1", semver="1.x", branch="dev"), RefKind.TAG),
        (Ref(name="refs/heads/x", tag="v1", semver="*"), RefKind.NAME),
        (Ref(commit=SHA, name="refs/heads/x", tag="v1", semver="*", branch="b"), RefKind.COMMIT),
    ],
)
def test_precedence(ref: Ref, kind: RefKind) -> None:
    assert ref.kind is kind


@pytest.mark.parametrize(
    ("ref", "revision", "reference"),
    [
        (Ref(), f"master@sha1:{SHA}", "refs/heads/master"),
        (Ref(branch="feature/x"), f"feature/x@sha1:{SHA}", "refs/heads/feature/x"),
        (Ref(tag="v1.2.0"), f"v1.2.0@sha1:{SHA}", "refs/tags/v1.2.0"),
        (Ref(name="refs/pull/420/head"), f"refs/pull/420/head@sha1:{SHA}", "refs/pull/420/head"),
        (Ref(name="refs/tags/v1^{}"), f"refs/tags/v1^{{}}@sha1:{SHA}", "refs/tags/v1^{}"),
        (Ref(commit=SHA), f"sha1:{SHA}", ""),
        (Ref(commit=SHA, branch="main"), f"main@sha1:{SHA}", "refs/heads/main"),
        # With spec.ref.name set Flux names the commit after it, whatever wins.
        (Ref(commit=SHA, name="refs/tags/v1"), f"refs/tags/v1@sha1:{SHA}", "refs/tags/v1"),
    ],
)
def test_revisions(ref: Ref, revision: str, reference: str) -> None:
    assert ref.revision(SHA) == revision
    assert ref.reference() == reference


def test_semver_revision_names_the_chosen_tag() -> None:
    assert Ref(semver="~1").revision(SHA, "v1.4.2") == f"v1.4.2@sha1:{SHA}"
    assert Ref(semver="~1").reference("v1.4.2") == "refs/tags/v1.4.2"


def test_depth_and_cheap_check_follow_flux() -> None:
    assert Ref().shallow and Ref(tag="v1").shallow and Ref(semver="*").shallow
    assert not Ref(commit=SHA).shallow
    assert Ref().remote_checkable and Ref(tag="x").remote_checkable
    assert Ref(name="refs/x/y").remote_checkable
    assert not Ref(semver="*").remote_checkable and not Ref(commit=SHA).remote_checkable


def test_ref_prefixes() -> None:
    assert Ref().ref_prefixes() == [b"HEAD", b"refs/heads/master"]
    assert Ref(tag="v1").ref_prefixes() == [b"HEAD", b"refs/tags/v1"]
    assert Ref(semver="1.x").ref_prefixes() == [b"HEAD", b"refs/tags/"]
    assert Ref(name="refs/tags/v1^{}").ref_prefixes() == [b"HEAD", b"refs/tags/v1"]
    assert Ref(commit=SHA).ref_prefixes() == [b"HEAD", b"refs/heads/"]
    assert Ref(commit=SHA, branch="b").ref_prefixes() == [b"HEAD", b"refs/heads/b"]


def test_from_spec() -> None:
    assert Ref.from_spec(None) == Ref()
    assert Ref.from_spec({"branch": "main", "commit": None}) == Ref(branch="main")


@pytest.mark.parametrize(
    "ref",
    [
        Ref(name="/refs/heads/x"),
        Ref(name="refs/heads/"),
        Ref(commit="abc123"),
        Ref(commit="z" * 40),
        Ref(semver="not a constraint"),
    ],
)
def test_invalid_refs(ref: Ref) -> None:
    with pytest.raises(RefError) as info:
        ref.validate()
    assert info.value.reason == "GitOperationFailed"


# -- the ls-remote check --------------------------------------------------------------------------


def test_remote_revision_peels_annotated_tags() -> None:
    refs = {
        b"refs/heads/main": SHA.encode(),
        b"refs/tags/light": SHA.encode(),
        b"refs/tags/v1": TAG_OBJ.encode(),
        b"refs/tags/v1^{}": OTHER.encode(),
    }
    assert remote_revision(Ref(branch="main"), refs) == f"main@sha1:{SHA}"
    assert remote_revision(Ref(tag="light"), refs) == f"light@sha1:{SHA}"
    assert remote_revision(Ref(tag="v1"), refs) == f"v1@sha1:{OTHER}"
    assert remote_revision(Ref(name="refs/tags/v1"), refs) == f"refs/tags/v1@sha1:{OTHER}"
    assert remote_revision(Ref(name="refs/tags/v1^{}"), refs) == f"refs/tags/v1^{{}}@sha1:{OTHER}"
    assert remote_revision(Ref(branch="gone"), refs) is None
    assert remote_revision(Ref(semver="*"), refs) is None
    assert remote_revision(Ref(commit=SHA), refs) is None
    # a branch whose name looks like a prefix of another is not confused with it
    assert remote_revision(Ref(branch="mai"), refs) is None


def test_peeled_target_accepts_str_maps() -> None:
    assert peeled_target({"refs/tags/a": "x", "refs/tags/a^{}": "y"}, "refs/tags/a") == "y"
    assert peeled_target({"refs/heads/a": "x", "refs/heads/a^{}": "y"}, "refs/heads/a") == "x"


# -- semver: versions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "ok"),
    [
        # fluxcd/pkg version.ParseVersion's own table
        ("v1.2.3", True),
        ("v1.0", False),
        ("v1", False),
        ("v1.2.beta", False),
        ("v1.2-5", False),
        ("v1.2-beta.5", False),
        ("\nv1.2", False),
        ("v1.2.0-x.Y.0+metadata", True),
        ("v1.2.0-x.Y.0+metadata-width-hypen", True),
        ("v1.2.3-rc1-with-hypen", True),
        ("v1.2.3.4", False),
        # strictness
        ("1.2.3", True),
        ("vv1.2.3", False),
        ("V1.2.3", False),
        ("01.2.3", False),
        ("1.2.3-01", False),
        ("1.2.3-0", True),
    ],
)
def test_parse_tag(tag: str, ok: bool) -> None:
    if ok:
        assert Version.parse_tag(tag).original == tag
    else:
        with pytest.raises(SemverError):
            Version.parse_tag(tag)


def test_ordering() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.10.0",
        "2.0.0",
    ]
    versions = [Version.parse(v) for v in ordered]
    assert sorted(reversed(versions)) == versions
    assert Version.parse("1.0.0+a") == Version.parse("1.0.0+b")
    assert Version.parse("v1.0.0") == Version.parse("1.0.0")


# -- semver: constraints (Masterminds v3 semantics) -----------------------------------------------


@pytest.mark.parametrize(
    ("constraint", "version", "expected"),
    [
        ("1.2.3", "1.2.3", True),
        ("=1.2.3", "1.2.4", False),
        ("!=1.2.3", "1.2.4", True),
        ("!=1.2.3", "1.2.3", False),
        (">1.2.3", "1.2.4", True),
        (">1.2.3", "1.2.3", False),
        (">=1.2.3", "1.2.3", True),
        ("<1.2.3", "1.2.2", True),
        ("<=1.2.3", "1.2.3", True),
        ("=>1.2", "1.2.0", True),
        ("=<1.2", "1.2.9", True),
        # wildcards and missing parts
        ("1.2", "1.2.9", True),
        ("1.2", "1.3.0", False),
        ("1.2.x", "1.2.5", True),
        ("1.x", "1.9.0", True),
        ("1.x", "2.0.0", False),
        ("*", "5.6.7", True),
        ("x", "0.0.1", True),
        ("!=1.x", "1.4.0", False),
        ("!=1.x", "2.0.0", True),
        (">1", "1.9.9", False),
        (">1", "2.0.0", True),
        (">1.1", "1.1.9", False),
        (">1.1", "1.2.0", True),
        ("<=1.2", "1.2.7", True),
        ("<=1.2", "1.3.0", False),
        # tilde
        ("~1.2.3", "1.2.9", True),
        ("~1.2.3", "1.3.0", False),
        ("~1.2.3", "1.2.2", False),
        ("~1", "1.9.0", True),
        ("~1", "2.0.0", False),
        ("~>1.2", "1.2.0", True),
        ("~0.0.0", "4.0.0", True),
        # caret
        ("^1.2.3", "1.9.0", True),
        ("^1.2.3", "2.0.0", False),
        ("^1.2.3", "1.2.2", False),
        ("^0.2.3", "0.2.9", True),
        ("^0.2.3", "0.3.0", False),
        ("^0.0.3", "0.0.3", True),
        ("^0.0.3", "0.0.4", False),
        ("^0.0", "0.0.9", True),
        ("^0.0", "0.1.0", False),
        ("^0", "0.9.0", True),
        ("^0", "1.0.0", False),
        ("^1.x", "1.5.0", True),
        # prereleases only when the term has one
        (">=1.0.0", "1.1.0-rc.1", False),
        (">=1.0.0-0", "1.1.0-rc.1", True),
        ("^1.0.0-0", "1.3.0-beta", True),
        (">=1.0.0-0 <2.0.0", "1.3.0-beta", False),  # each AND term checks on its own
        (">=1.0.0-0, <2.0.0-0", "1.3.0-beta", True),
        ("1.2.3-beta.1", "1.2.3-beta.1", True),
        ("!=1.2.3", "1.3.0-beta", True),  # a plain != does not filter prereleases
        # AND, OR, ranges
        (">=1.2, <1.4", "1.3.5", True),
        (">= 1.2 < 1.4", "1.4.0", False),
        ("<1 || >=3", "0.5.0", True),
        ("<1 || >=3", "2.0.0", False),
        ("1.2 - 1.4.5", "1.4.5", True),
        ("1.2 - 1.4.5", "1.4.6", False),
        ("1.2 - 1.4", "1.4.9", True),
        ("v1.2.3", "1.2.3", True),
        ("1.0.0+build", "1.0.0+other", True),
    ],
)
def test_constraints(constraint: str, version: str, expected: bool) -> None:
    assert Constraint.parse(constraint).check(Version.parse(version)) is expected


@pytest.mark.parametrize("bad", ["", "foo", ">= ", "1.2.3 ||", "1.2.3 - ", "~>", ">1.2.3abc"])
def test_bad_constraints(bad: str) -> None:
    with pytest.raises(SemverError):
        Constraint.parse(bad)


# -- semver: picking a tag ------------------------------------------------------------------------


def test_semver_candidates() -> None:
    tags = ["v1.0.0", "1.1.0", "v1.2.0-rc.1", "v2.0.0", "latest", "1.1.0+b2", "v1.1.0"]
    best = semver_candidates("~1", tags)
    assert [c.tag for c in best] == ["1.1.0", "1.1.0+b2", "v1.1.0"]
    assert [c.tag for c in semver_candidates(">=1.2.0-0, <2.0.0-0", tags)] == ["v1.2.0-rc.1"]
    with pytest.raises(NoSemverMatchError, match=r"^no match found for semver: >=3$"):
        semver_candidates(">=3", tags)
    with pytest.raises(RefError, match="semver parse error"):
        semver_candidates("nope", tags)


def test_pick_semver_breaks_ties_by_commit_time() -> None:
    v = Version.parse_tag("1.0.0")
    candidates = [SemverCandidate("1.0.0+a", v), SemverCandidate("1.0.0+b", v)]
    older, newer = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
    assert pick_semver(candidates, {"1.0.0+a": newer, "1.0.0+b": older}) == "1.0.0+a"
    assert pick_semver(candidates, {"1.0.0+a": older, "1.0.0+b": newer}) == "1.0.0+b"
    assert pick_semver(candidates, {"1.0.0+a": older, "1.0.0+b": older}) == "1.0.0+b"
