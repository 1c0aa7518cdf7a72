"""spec.recurseSubmodules without a network: `.gitmodules` parsing, URL resolution, which
credentials a submodule gets, and whole recursive checkouts of real local repositories
(file:// URLs, which the controller allows only with --allow-file-urls)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tidal.source.git import submodules
from tidal.source.git.auth import AuthOptions, ProxyOptions
from tidal.source.git.errors import SubmoduleError
from tidal.source.git.gitmodules import SubmoduleSpec, parse_gitmodules, resolve_url
from tidal.source.git.sparse import SparseSelection
from tidal.source.git.submodules import checkout_submodules, submodule_auth
from tidal.source.git.tree import Checkout, GitTree
from tidal.source.git.url import parse_url

if TYPE_CHECKING:
    from tests.fixtures_git import BareRepo, GitRepoFactory


# -- .gitmodules ----------------------------------------------------------------------------------


def test_parse_gitmodules() -> None:
    data = (
        b'[submodule "libs/a"]\n\tpath = libs/a\n\turl = ../a.git\n'
        b"[core]\n\tbare = false\n"
        b'[submodule "b"]\n\tPath = vendor/b/\n\tURL = https://example.com/b.git\n'
        b"\tbranch = main\n"
    )
    assert parse_gitmodules(data) == [
        SubmoduleSpec("libs/a", "libs/a", "../a.git"),
        SubmoduleSpec("b", "vendor/b", "https://example.com/b.git"),
    ]
    assert parse_gitmodules(b"") == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'[submodule "a"\n\tpath = a\n', "cannot parse .gitmodules"),
        (b'[submodule "a"]\n\tpath = a\n', "submodule 'a' has no url in .gitmodules"),
        (b'[submodule "a"]\n\turl = ../a.git\n', "submodule 'a' has no path in .gitmodules"),
        (b'[submodule "a"]\n\tpath = ../up\n\turl = x\n', "path '../up' in .gitmodules is not"),
        (b'[submodule "a"]\n\tpath = /etc\n\turl = x\n', "path '/etc' in .gitmodules is not"),
        (b'[submodule "a"]\n\tpath = x/.GIT/y\n\turl = x\n', "is not a path inside"),
        (
            b'[submodule "a"]\n\tpath = p\n\turl = x\n[submodule "b"]\n\tpath = p/\n\turl = y\n',
            "submodules 'a' and 'b' share the path 'p'",
        ),
    ],
)
def test_broken_gitmodules(data: bytes, message: str) -> None:
    with pytest.raises(SubmoduleError, match=message.replace(".", r"\.")) as info:
        parse_gitmodules(data)
    assert info.value.reason == "GitOperationFailed"


# -- URLs -----------------------------------------------------------------------------------------

PARENT = parse_url("https://user:s3cret@git.example.com:8443/org/parent.git")


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        ("../other.git", "https://git.example.com:8443/org/other.git"),
        ("./sub.git", "https://git.example.com:8443/org/parent.git/sub.git"),
        ("sub.git", "https://git.example.com:8443/org/parent.git/sub.git"),  # go-git's path.Join
        ("../../../../top.git", "https://git.example.com:8443/top.git"),
        ("../with space.git", "https://git.example.com:8443/org/with%20space.git"),
        ("https://other.example.com/x.git", "https://other.example.com/x.git"),
        ("ssh://git@other.example.com/x.git", "ssh://other.example.com/x.git"),
        ("git@github.com:org/x.git", "git@github.com:org/x.git"),
    ],
)
def test_resolve_url(raw: str, url: str) -> None:
    assert resolve_url(raw, PARENT, allow_file=False).url == url


def test_relative_urls_keep_the_parents_origin_and_userinfo() -> None:
    got = resolve_url("../other.git", PARENT, allow_file=False)
    assert (got.scheme, got.host, got.port, got.path) == (
        "https",
        "git.example.com",
        8443,
        "/org/other.git",
    )
    assert (got.username, got.password) == ("user", "s3cret")
    ssh = resolve_url("../b.git", parse_url("ssh://git@h:2222/srv/a.git"), allow_file=False)
    assert (ssh.scheme, ssh.port, ssh.path, ssh.username) == ("ssh", 2222, "/srv/b.git", "git")


def test_scp_like_addresses_are_ssh_relative_to_the_login_directory() -> None:
    got = resolve_url("deploy@example.com:org/x.git", PARENT, allow_file=False)
    assert (got.scheme, got.host, got.path, got.username) == (
        "ssh",
        "example.com",
        "org/x.git",
        "deploy",
    )


@pytest.mark.parametrize("raw", ["/srv/git/x.git", "file:///srv/git/x.git"])
def test_local_repositories_need_the_flag(raw: str) -> None:
    with pytest.raises(SubmoduleError, match="only reads when started with --allow-file-urls"):
        resolve_url(raw, PARENT, allow_file=False)
    assert resolve_url(raw, PARENT, allow_file=True).url == "file:///srv/git/x.git"


def test_unsupported_schemes_and_credentials_stay_out_of_messages() -> None:
    with pytest.raises(SubmoduleError, match="should match") as info:
        resolve_url("git://user:hunter22@example.com/x.git", PARENT, allow_file=False)
    assert "hunter22" not in str(info.value)


# -- credentials ----------------------------------------------------------------------------------

PROXY = ProxyOptions("http://proxy.example.com:3128")
HTTPS_AUTH = AuthOptions(
    transport="https",
    username="git-user",
    password="pw",
    ca=b"CA",
    client_cert=b"CERT",
    client_key=b"KEY",
    proxy=PROXY,
    timeout=30,
)
SSH_AUTH = AuthOptions(transport="ssh", username="git", identity=b"KEY", known_hosts=b"KH")


def test_the_parents_origin_gets_the_parents_credentials() -> None:
    parent = parse_url("https://git.example.com/org/parent.git")
    sub = parse_url("https://git.example.com:443/org/sub.git")
    assert submodule_auth(parent, HTTPS_AUTH, sub) == HTTPS_AUTH


@pytest.mark.parametrize(
    "url",
    [
        "https://other.example.com/org/sub.git",  # another host
        "https://git.example.com:8443/org/sub.git",  # another port
        "http://git.example.com/org/sub.git",  # another scheme
    ],
)
def test_another_origin_gets_no_secret(url: str) -> None:
    parent = parse_url("https://git.example.com/org/parent.git")
    got = submodule_auth(parent, HTTPS_AUTH, parse_url(url))
    assert not (got.username or got.password or got.bearer_token or got.client_key)
    assert (got.ca, got.proxy, got.timeout) == (b"CA", PROXY, 30)


def test_another_origin_may_carry_its_own_userinfo() -> None:
    parent = parse_url("https://git.example.com/org/parent.git")
    got = submodule_auth(parent, HTTPS_AUTH, parse_url("https://bot:tok@other.example.com/x"))
    assert (got.username, got.password) == ("bot", "tok")
    assert "tok" in got.secrets()


def test_ssh_submodules_use_the_ssh_key_only() -> None:
    parent = parse_url("ssh://git@git.example.com/org/parent.git")
    got = submodule_auth(parent, SSH_AUTH, parse_url("ssh://deploy@elsewhere.example.com/x"))
    assert got == replace(SSH_AUTH, username="deploy")
    https_parent = parse_url("https://git.example.com/org/parent.git")
    with pytest.raises(SubmoduleError, match="needs an SSH key"):
        submodule_auth(https_parent, HTTPS_AUTH, parse_url("ssh://git@git.example.com/x"))


# -- recursive checkouts of local repositories ----------------------------------------------------


def gitmodules(*entries: tuple[str, str]) -> str:
    return "".join(f'[submodule "{p}"]\n\tpath = {p}\n\turl = {u}\n' for p, u in entries)


def names(checkout: Checkout, sparse: SparseSelection | None = None) -> dict[str, bytes]:
    with GitTree.of(checkout, sparse) as tree:
        return {e.path: e.content() if e.kind == "file" else b"/" for e in tree}


@pytest.fixture
def family(git_repo: GitRepoFactory) -> dict[str, BareRepo]:
    """parent -> libs/child (relative URL) -> vendor/grandchild (absolute file URL)."""
    grandchild = git_repo("grandchild", files={"g.txt": "grandchild v1\n"})
    child = git_repo("child")
    child.commit(
        {
            "c.txt": "child v1\n",
            ".gitmodules": gitmodules(("vendor/grandchild", grandchild.file_url)),
            "vendor/grandchild": grandchild.head("main") or "",
        },
        modes={"vendor/grandchild": "160000"},
    )
    parent = git_repo("parent")
    parent.commit(
        {
            "app.yaml": "parent\n",
            ".gitmodules": gitmodules(("libs/child", f"../{child.name}.git")),
            "libs/child": child.head("main") or "",
        },
        modes={"libs/child": "160000"},
    )
    return {"parent": parent, "child": child, "grandchild": grandchild}


async def checkout_of(
    repo: BareRepo, sha: str | None = None, *, allow_file: bool = True, **kwargs: object
) -> Checkout:
    commit = sha or repo.head("main")
    assert commit
    auth = AuthOptions(transport="file", timeout=30)
    return await checkout_submodules(
        repo.file_url,
        auth,
        repo.path,  # a bare repository is a mirror that already holds the commit
        commit,
        allow_file=allow_file,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_nested_submodules_at_their_pinned_commits(family: dict[str, BareRepo]) -> None:
    pinned_child = family["child"].head("main")
    # Tips that move on after the pins do not matter: the gitlinks decide.
    family["child"].commit({"c.txt": "child v2\n"})
    family["grandchild"].commit({"g.txt": "grandchild v2\n"})

    checkout = await checkout_of(family["parent"])
    got = names(checkout)
    assert got["app.yaml"] == b"parent\n"
    assert got["libs/child"] == b"/"
    assert got["libs/child/c.txt"] == b"child v1\n"
    assert got["libs/child/vendor/grandchild/g.txt"] == b"grandchild v1\n"
    child = checkout.submodules["libs/child"]
    assert child.commit == pinned_child
    assert child.mirror.parent == family["parent"].path / submodules.MODULES_DIR
    assert set(child.submodules) == {"vendor/grandchild"}

    # A second pass transfers nothing: the pinned commits are in the mirrors already.
    again = await checkout_of(family["parent"])
    assert again == checkout


async def test_sparse_fetches_only_what_it_keeps(
    family: dict[str, BareRepo], git_repo: GitRepoFactory
) -> None:
    parent = family["parent"]
    sha = parent.commit(
        {
            ".gitmodules": gitmodules(
                ("libs/child", f"../{family['child'].name}.git"),
                ("other", "../no-such-repository.git"),
            ),
            "other": family["grandchild"].head("main") or "",
        },
        modes={"other": "160000"},
    )
    sparse = SparseSelection.from_spec(["libs/child/vendor"])
    checkout = await checkout_of(parent, sha, sparse=sparse)
    assert set(checkout.submodules) == {"libs/child"}
    assert sorted(names(checkout, sparse)) == [
        "libs",
        "libs/child",
        "libs/child/vendor",
        "libs/child/vendor/grandchild",
        "libs/child/vendor/grandchild/g.txt",
    ]
    with pytest.raises(SubmoduleError, match="submodule 'other': unable to clone"):
        await checkout_of(parent, sha)


async def test_levels_below_the_limit_stay_empty(
    family: dict[str, BareRepo], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(submodules, "MAX_LEVELS", 1)
    checkout = await checkout_of(family["parent"])
    got = names(checkout)
    assert got["libs/child/c.txt"] == b"child v1\n"
    assert got["libs/child/vendor/grandchild"] == b"/"
    assert "libs/child/vendor/grandchild/g.txt" not in got


async def test_a_gitlink_without_a_gitmodules_entry(git_repo: GitRepoFactory) -> None:
    target = git_repo(files={"x": "x\n"})
    repo = git_repo()
    repo.commit({"orphan": target.head("main") or "", "a": "a\n"}, modes={"orphan": "160000"})
    with pytest.raises(SubmoduleError, match="submodule 'orphan': no url found for it"):
        await checkout_of(repo)


async def test_a_gitmodules_entry_without_a_gitlink(git_repo: GitRepoFactory) -> None:
    target = git_repo(files={"x": "x\n"})
    repo = git_repo()
    repo.commit(
        {
            ".gitmodules": gitmodules(("real", target.file_url), ("ghost", target.file_url)),
            "real": target.head("main") or "",
            "ghost/file.txt": "a directory, not a submodule\n",
        },
        modes={"real": "160000"},
    )
    with pytest.raises(SubmoduleError, match=r"submodule 'ghost': \.gitmodules names it, but"):
        await checkout_of(repo)


async def test_a_nested_broken_gitmodules_names_its_submodule(git_repo: GitRepoFactory) -> None:
    inner = git_repo(files={"x": "x\n"})
    child = git_repo()
    child.commit(
        {".gitmodules": '[submodule "y"\n', "y": inner.head("main") or ""},
        modes={"y": "160000"},
    )
    repo = git_repo()
    repo.commit(
        {".gitmodules": gitmodules(("c", child.file_url)), "c": child.head("main") or ""},
        modes={"c": "160000"},
    )
    with pytest.raises(SubmoduleError, match=r"submodule 'c': cannot parse \.gitmodules"):
        await checkout_of(repo)


async def test_a_symlinked_gitmodules_is_refused(git_repo: GitRepoFactory) -> None:
    target = git_repo(files={"x": "x\n"})
    repo = git_repo()
    repo.commit(
        {".gitmodules": "elsewhere", "s": target.head("main") or ""},
        modes={".gitmodules": "120000", "s": "160000"},
    )
    with pytest.raises(SubmoduleError, match=r"\.gitmodules is a symlink"):
        await checkout_of(repo)


async def test_a_missing_pinned_commit(git_repo: GitRepoFactory) -> None:
    target = git_repo(files={"x": "x\n"})
    repo = git_repo()
    missing = "1234567890abcdef1234567890abcdef12345678"
    repo.commit(
        {".gitmodules": gitmodules(("s", target.file_url)), "s": missing},
        modes={"s": "160000"},
    )
    with pytest.raises(SubmoduleError, match=f"submodule 's': .*{missing}"):
        await checkout_of(repo)


async def test_local_submodules_of_a_remote_parent_are_refused(
    git_repo: GitRepoFactory, tmp_path: Path
) -> None:
    target = git_repo(files={"x": "x\n"})
    repo = git_repo()
    sha = repo.commit(
        {".gitmodules": gitmodules(("s", str(target.path))), "s": target.head("main") or ""},
        modes={"s": "160000"},
    )
    auth = AuthOptions(transport="https", username="u", password="topsecret", timeout=5)
    # The URL is refused before anything is fetched: nothing listens on port 1.
    with pytest.raises(SubmoduleError, match="--allow-file-urls") as info:
        await checkout_submodules("https://127.0.0.1:1/x.git", auth, repo.path, sha)
    assert "topsecret" not in str(info.value)
    assert not (repo.path / submodules.MODULES_DIR).exists()


async def test_mirrors_of_dropped_submodules_go(family: dict[str, BareRepo]) -> None:
    parent = family["parent"]
    await checkout_of(parent)
    modules = parent.path / submodules.MODULES_DIR
    assert len(list(modules.iterdir())) == 2  # the child's and the grandchild's
    sha = parent.commit({".gitmodules": None, "libs/child": None}, "drop the submodule")
    checkout = await checkout_of(parent, sha)
    assert checkout.submodules == {}
    assert list(modules.iterdir()) == []
