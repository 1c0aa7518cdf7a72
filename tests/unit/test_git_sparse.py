"""spec.sparseCheckout: how listed paths are read, and which entries of a real commit's tree
(built with git fast-import in a bare repository) a selection keeps."""

from __future__ import annotations

import io
import tarfile
from typing import TYPE_CHECKING

import pytest

from tidal.source.archive import Archiver
from tidal.source.git.sparse import Scope, SparseSelection, missing_message, normalise
from tidal.source.git.tree import GitTree

if TYPE_CHECKING:
    from tests.fixtures_git import BareRepo, GitRepoFactory

SUB = "0123456789abcdef0123456789abcdef01234567"

FILES = {
    "README.md": "top\n",
    "apps.yaml": "a sibling whose name starts like the listed dir\n",
    "appsettings/z.yaml": "z\n",
    "apps/a/x.yaml": "x\n",
    "apps/a/nested/n.yaml": "n\n",
    "apps/b/y.yaml": "y\n",
    "infra/k.yaml": "k\n",
    "deep/one/two/three/f.yaml": "f\n",
    "deep/other.yaml": "o\n",
    "tools/run.sh": "#!/bin/sh\n",
    "libs/sub": SUB,
}
MODES = {"tools/run.sh": "100755", "libs/sub": "160000"}


@pytest.fixture
def repo(git_repo: GitRepoFactory) -> tuple[BareRepo, str]:
    bare = git_repo()
    return bare, bare.commit(FILES, modes=MODES)


def paths(repo: tuple[BareRepo, str], listed: list[str]) -> list[str]:
    bare, sha = repo
    with GitTree(bare.path, sha, sparse=SparseSelection.from_spec(listed)) as tree:
        return [e.path for e in tree]


# -- normalisation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "path"),
    [
        ("apps", "apps"),
        ("./apps", "apps"),  # Flux trims one leading "./"
        ("apps/", "apps"),
        ("./apps/a/", "apps/a"),
        ("deep/one/two", "deep/one/two"),
        ("README.md", "README.md"),
        ("./", ""),  # an empty prefix: the whole tree, as in go-git
        ("", ""),
        (".", ""),
        # What go-git's literal prefix match can never find, so Flux reports it missing:
        ("/apps", None),
        ("././apps", None),
        ("apps//a", None),
        ("apps/./a", None),
        ("../apps", None),
        ("apps/../infra", None),
        ("apps//", None),
        ("/", None),
    ],
)
def test_normalise(written: str, path: str | None) -> None:
    assert normalise(written) == path


def test_an_empty_list_is_no_sparse_checkout() -> None:
    assert SparseSelection.from_spec([]) is None


def test_scope_by_whole_components() -> None:
    sel = SparseSelection.from_spec(["./apps/a", "infra/"])
    assert sel is not None
    assert sel.paths == ("apps/a", "infra")
    assert sel.scope("apps") is Scope.ANCESTOR
    assert sel.scope("apps/a") is Scope.INSIDE
    assert sel.scope("apps/a/x/y") is Scope.INSIDE
    assert sel.scope("apps/b") is Scope.OUTSIDE
    assert sel.scope("apps/ab") is Scope.OUTSIDE
    assert sel.scope("apps.yaml") is Scope.OUTSIDE
    assert sel.scope("infra") is Scope.INSIDE
    assert sel.scope("infrastructure") is Scope.OUTSIDE
    whole = SparseSelection.from_spec(["./"])
    assert whole is not None and whole.everything
    assert whole.scope("anything/at/all") is Scope.INSIDE


def test_missing_message_is_fluxs() -> None:
    assert missing_message("./nope") == (
        "failed to sparse checkout directories : sparse checkout dir './nope' does not exist "
        "in repository"
    )


# -- filtering a real tree ------------------------------------------------------------------------


def test_without_a_selection_everything_is_there(repo: tuple[BareRepo, str]) -> None:
    bare, sha = repo
    with GitTree(bare.path, sha) as tree:
        got = [e.path for e in tree]
    assert "README.md" in got and "apps/b/y.yaml" in got and "libs/sub" in got


def test_listed_dirs_their_ancestors_and_nothing_else(repo: tuple[BareRepo, str]) -> None:
    got = paths(repo, ["./apps/a", "infra/", "deep/one/two"])
    assert got == [
        "apps",
        "apps/a",
        "apps/a/nested",
        "apps/a/nested/n.yaml",
        "apps/a/x.yaml",
        "deep",
        "deep/one",
        "deep/one/two",
        "deep/one/two/three",
        "deep/one/two/three/f.yaml",
        "infra",
        "infra/k.yaml",
    ]


def test_root_files_and_prefix_siblings_stay_out(repo: tuple[BareRepo, str]) -> None:
    # go-git's string prefix would also keep apps.yaml and appsettings/; tidal does not.
    got = paths(repo, ["apps"])
    assert "README.md" not in got
    assert "apps.yaml" not in got
    assert not any(p.startswith("appsettings") for p in got)
    assert "apps/b/y.yaml" in got


def test_a_listed_file_and_a_listed_submodule(repo: tuple[BareRepo, str]) -> None:
    assert paths(repo, ["README.md"]) == ["README.md"]
    # Without recurseSubmodules a submodule is the empty directory a checkout makes.
    assert paths(repo, ["libs/sub"]) == ["libs", "libs/sub"]


def test_the_whole_tree_and_an_unmatchable_path(repo: tuple[BareRepo, str]) -> None:
    bare, sha = repo
    with GitTree(bare.path, sha) as tree:
        everything = [e.path for e in tree]
    assert paths(repo, ["./"]) == everything
    assert paths(repo, ["/apps"]) == []


def test_kinds_and_modes_survive_the_filter(repo: tuple[BareRepo, str]) -> None:
    bare, sha = repo
    with GitTree(bare.path, sha, sparse=SparseSelection.from_spec(["tools"])) as tree:
        entries = {e.path: e for e in tree}
    assert entries["tools"].kind == "dir"
    assert entries["tools/run.sh"].kind == "file"
    assert entries["tools/run.sh"].mode & 0o111
    assert entries["tools/run.sh"].content() == b"#!/bin/sh\n"


def test_archive_of_a_selection(repo: tuple[BareRepo, str]) -> None:
    bare, sha = repo
    out = io.BytesIO()
    with GitTree(bare.path, sha, sparse=SparseSelection.from_spec(["apps/b"])) as tree:
        Archiver().from_entries(tree, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue()), mode="r:gz") as tar:
        names = [m.name for m in tar.getmembers()]
    assert names == [".", "apps", "apps/b", "apps/b/y.yaml"]


# -- existence, as Flux checks it after its checkout ----------------------------------------------


@pytest.mark.parametrize(
    ("path", "there"),
    [
        ("", True),
        ("apps", True),
        ("apps/a/nested", True),
        ("apps/a/x.yaml", True),
        ("README.md", True),
        ("libs/sub", True),
        ("apps/c", False),
        ("README.md/x", False),
        ("libs/sub/inside", False),  # a submodule not fetched is empty
        ("Apps", False),
    ],
)
def test_exists(repo: tuple[BareRepo, str], path: str, there: bool) -> None:
    bare, sha = repo
    with GitTree(bare.path, sha) as tree:
        assert tree.exists(path) is there


@pytest.mark.parametrize(
    ("listed", "missing"),
    [
        (["apps", "./infra/"], None),
        (["apps", "nope", "gone"], "nope"),
        (["/apps"], "/apps"),
        (["apps//a"], "apps//a"),
        (["./"], None),
    ],
)
def test_first_missing(repo: tuple[BareRepo, str], listed: list[str], missing: str | None) -> None:
    bare, sha = repo
    sel = SparseSelection.from_spec(listed)
    assert sel is not None
    with GitTree(bare.path, sha) as tree:
        assert sel.first_missing(tree.exists) == missing


def test_gitlinks_follow_the_selection(repo: tuple[BareRepo, str]) -> None:
    bare, sha = repo
    with GitTree(bare.path, sha) as tree:
        assert tree.gitlinks() == {"libs/sub": SUB}
        assert tree.gitlinks(SparseSelection.from_spec(["apps"])) == {}
        assert tree.gitlinks(SparseSelection.from_spec(["libs"])) == {"libs/sub": SUB}
        # A listed path inside the submodule leads into it.
        assert tree.gitlinks(SparseSelection.from_spec(["libs/sub/deploy"])) == {"libs/sub": SUB}
