"""The bootstrap's Git working copy against real local repositories (file:// URLs): clone,
commit only what changed, push only from where the clone was."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from testenv.git_repos import run_git
from tidal.bootstrap.checkout import Checkout, PushConflictError, signature
from tidal.source.git import AuthOptions, RefNotFoundError

if TYPE_CHECKING:
    from tests.fixtures_git import BareRepo, GitRepoFactory

FLUX = signature("Flux", "")


def _checkout(repo: BareRepo, tmp_path: Path, branch: str = "main") -> Checkout:
    return Checkout(
        repo.file_url, branch, AuthOptions(transport="file"), tmp_path / "clone", allow_file=True
    )


def _log(repo: BareRepo) -> list[str]:
    return run_git(["log", "--format=%an <%ae>|%s", "main"], cwd=repo.path).splitlines()


async def test_an_empty_repository_starts_the_branch(
    git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo()
    checkout = _checkout(repo, tmp_path)
    await checkout.clone(30)
    assert checkout.base is None
    checkout.write({"clusters/a/flux-system/gotk-components.yaml": b"a: 1\n"})
    sha = checkout.commit("Add Flux v1 component manifests", FLUX)
    await checkout.push(30)
    assert repo.head("main") == sha
    assert _log(repo) == ["Flux <>|Add Flux v1 component manifests"]
    assert repo.read("main", "clusters/a/flux-system/gotk-components.yaml") == b"a: 1\n"
    checkout.close()


async def test_only_a_change_makes_a_commit(git_repo: GitRepoFactory, tmp_path: Path) -> None:
    repo = git_repo(files={"README.md": "hi\n", "clusters/a/app.yaml": "x: 1\n"})
    before = repo.head("main")
    checkout = _checkout(repo, tmp_path)
    await checkout.clone(30)
    assert checkout.read("README.md") == b"hi\n"
    assert checkout.read("clusters") is None  # a directory is no file
    assert checkout.read("README.md/x") is None
    assert checkout.files_under("README.md") == {}
    assert checkout.files_under("clusters") == {"a/app.yaml": b"x: 1\n"}
    checkout.write({"clusters/a/app.yaml": b"x: 1\n"})
    assert checkout.commit("nothing changed", FLUX) is None
    await checkout.push(30)
    assert repo.head("main") == before

    checkout.write({"clusters/a/app.yaml": b"x: 2\n", "clusters/a/new.yaml": b"y: 1\n"})
    sha = checkout.commit("Add Flux sync manifests\n\n[ci skip]", FLUX)
    await checkout.push(30)
    assert repo.head("main") == sha
    changed = run_git(["diff", "--name-only", f"{before}..main"], cwd=repo.path).splitlines()
    assert changed == ["clusters/a/app.yaml", "clusters/a/new.yaml"]
    message = run_git(["log", "-1", "--format=%B", "main"], cwd=repo.path)
    assert message == "Add Flux sync manifests\n\n[ci skip]"
    run_git(["fsck", "--strict"], cwd=repo.path)
    checkout.close()


async def test_a_branch_that_moved_is_not_overwritten(
    git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(files={"README.md": "hi\n"})
    checkout = _checkout(repo, tmp_path)
    await checkout.clone(30)
    theirs = repo.commit({"other.txt": "someone else\n"}, "meanwhile")
    checkout.write({"mine.txt": b"1\n"})
    checkout.commit("mine", FLUX)
    with pytest.raises(PushConflictError, match="non-fast-forward"):
        await checkout.push(30)
    assert repo.head("main") == theirs
    await checkout.clone(30)  # a fresh clone sees their commit and starts over
    assert checkout.read("other.txt") == b"someone else\n"
    assert checkout.read("mine.txt") is None
    checkout.close()


async def test_a_missing_branch_of_a_repository_with_others_is_an_error(
    git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    repo = git_repo(files={"README.md": "hi\n"})
    checkout = _checkout(repo, tmp_path, branch="nope")
    with pytest.raises(RefNotFoundError, match='couldn\'t find remote ref "refs/heads/nope"'):
        await checkout.clone(30)
