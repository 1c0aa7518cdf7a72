"""Flux's artifact exclusion rules: defaults, gitignore syntax as go-git reads it, scoping,
and a cross-check against `git check-ignore` wherever git and go-git agree."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tidal.source.ignore import IgnoreRules, collect_sourceignores

# -- the defaults (no user pattern anywhere) ------------------------------------------------------

DEFAULTS = [
    # VCS
    (".git", True, True),
    (".git/config", False, True),
    ("vendor/lib/.git", True, True),
    (".gitignore", False, True),
    ("a/.gitmodules", False, True),
    (".gitattributes", False, True),
    # extensions, case-sensitive, any depth
    ("logo.png", False, True),
    ("docs/img/a.jpg", False, True),
    ("a.JPG", False, False),
    ("release.tar.gz", False, True),
    ("release.tar", False, False),
    ("bundle.zip", False, True),
    ("anim.gif", False, True),
    # CI: directories only for the trailing-slash ones
    (".github", True, True),
    (".github/workflows/ci.yaml", False, True),
    (".github", False, False),
    (".circleci/config.yml", False, True),
    (".travis.yml", False, True),
    ("sub/.gitlab-ci.yml", False, True),
    ("cloudbuild.yaml", False, True),
    ("codeship-steps.yml", False, True),
    # extra, at the root as well as deeper
    (".sops.yaml", False, True),
    ("clusters/prod/.sops.yaml", False, True),
    ("x/.flux.yaml", False, True),
    (".goreleaser.yml", False, True),
    # ordinary content
    ("deploy/app.yaml", False, False),
    ("README.md", False, False),
    ("deploy", True, False),
]


@pytest.mark.parametrize(("path", "is_dir", "ignored"), DEFAULTS)
def test_defaults(path: str, is_dir: bool, ignored: bool) -> None:
    assert IgnoreRules.from_sources([], None).ignored(path, is_dir) is ignored


def test_root_is_never_ignored() -> None:
    rules = IgnoreRules.from_sources([], "*\n")
    assert not rules.ignored("", True)
    assert not rules.ignored(".", True)


# -- any user pattern drops the non-VCS defaults --------------------------------------------------


@pytest.mark.parametrize(
    ("sourceignores", "spec_ignore"),
    [
        ([], "/nothing-matches-this\n"),
        ([("", "/nothing-matches-this\n")], None),
        ([("deep/dir", "whatever\n")], None),
    ],
)
def test_user_pattern_drops_non_vcs_defaults(
    sourceignores: list[tuple[str, str]], spec_ignore: str | None
) -> None:
    rules = IgnoreRules.from_sources(sourceignores, spec_ignore)
    assert not rules.ignored("logo.png", False)
    assert not rules.ignored(".github", True)
    assert not rules.ignored(".sops.yaml", False)
    assert rules.ignored(".git", True)
    assert rules.ignored(".gitignore", False)


@pytest.mark.parametrize("spec_ignore", ["", "# only a comment\n\n   \n", "\r\n"])
def test_comments_and_blank_lines_are_not_user_patterns(spec_ignore: str) -> None:
    rules = IgnoreRules.from_sources([], spec_ignore)
    assert rules.ignored("logo.png", False)


# -- gitignore syntax, go-git flavour -------------------------------------------------------------

SYNTAX = [
    # unanchored names match at any depth, files and directories
    ("*.txt", "a.txt", False, True),
    ("*.txt", "d/e/a.txt", False, True),
    ("*.txt", "a.txt.bak", False, False),
    ("secret", "x/secret/file", False, True),
    # a leading slash anchors to the ignore file's directory
    ("/root.txt", "root.txt", False, True),
    ("/root.txt", "sub/root.txt", False, False),
    # so does a slash in the middle
    ("docs/*.md", "docs/a.md", False, True),
    ("docs/*.md", "docs/sub/a.md", False, False),
    ("docs/*.md", "x/docs/a.md", False, False),
    # directory-only patterns
    ("build/", "build", True, True),
    ("build/", "build", False, False),
    ("build/", "build/out.bin", False, True),
    ("build/", "src/build", True, True),
    ("out/bin/", "out/bin", False, False),
    ("out/bin/", "out/bin/x", False, True),
    # **
    ("**/temp", "temp", False, True),
    ("**/temp", "a/b/temp", True, True),
    ("**/temp", "a/b/temp/x", False, True),
    ("a/**/b", "a/b", False, True),
    ("a/**/b", "a/x/y/b", False, True),
    ("a/**/b", "a/x/y/c", False, False),
    ("logs/**", "logs/x/y", False, True),
    ("**", "anything/at/all", False, True),
    ("**/temp/", "a/temp", False, False),
    ("**/temp/", "a/temp", True, True),
    ("**/temp/", "a/temp/f", False, True),
    ("**/a**b", "axb", False, False),
    ("a**b", "axb", False, True),
    # wildcards and classes (Go filepath.Match)
    ("?.txt", "a.txt", False, True),
    ("?.txt", "ab.txt", False, False),
    ("[ab].txt", "b.txt", False, True),
    ("[ab].txt", "c.txt", False, False),
    ("[a-c]x", "bx", False, True),
    ("[^a]x", "bx", False, True),
    ("[^a]x", "ax", False, False),
    ("\\[x]", "[x]", False, True),
    # escapes, comments, whitespace
    ("\\#notacomment", "#notacomment", False, True),
    ("\\!bang", "!bang", False, True),
    ("trailing   ", "trailing", False, True),
    ("kept\\ ", "kept ", False, True),
    ("kept\\ ", "kept", False, False),
    (" lead", " lead", False, True),
    (" lead", "lead", False, False),
    # case-sensitive
    ("Makefile", "makefile", False, False),
]


@pytest.mark.parametrize(("pattern", "path", "is_dir", "ignored"), SYNTAX)
def test_syntax(pattern: str, path: str, is_dir: bool, ignored: bool) -> None:
    assert IgnoreRules.from_sources([], pattern + "\n").ignored(path, is_dir) is ignored


NEGATION = [
    ("*.yaml\n!keep.yaml\n", "keep.yaml", False),
    ("*.yaml\n!keep.yaml\n", "d/keep.yaml", False),
    ("*.yaml\n!keep.yaml\n", "other.yaml", True),
    # the last matching pattern wins, whichever way round
    ("!keep.yaml\n*.yaml\n", "keep.yaml", True),
    ("*\n!*.yaml\n", "a.yaml", False),
    ("*\n!*.yaml\n", "a.json", True),
]


@pytest.mark.parametrize(("spec", "path", "ignored"), NEGATION)
def test_negation(spec: str, path: str, ignored: bool) -> None:
    assert IgnoreRules.from_sources([], spec).ignored(path, False) is ignored


def test_crlf_ignore_files() -> None:
    rules = IgnoreRules.from_sources([("", "*.tmp\r\n# c\r\n!keep.tmp\r\n")], None)
    assert rules.ignored("a.tmp", False)
    assert not rules.ignored("keep.tmp", False)


# -- where go-git (and so Flux) is not git --------------------------------------------------------

GO_GIT_QUIRKS = [
    # (patterns, path, is_dir, go-git says ignored, why)
    ("dir/\n!dir/keep\n", "dir/keep", False, False, "re-include under an excluded parent"),
    ("*\n!*/\n", "a/b.txt", False, False, "`!*/` matches the ancestor `a`"),
    ("logs/**\n", "logs", True, True, "`a/**` also matches `a`"),
    ("/**\n", "x", False, False, "`/**` matches nothing"),
    ("doc/**.txt\n", "doc/a.txt", False, False, "`**` inside a segment never matches"),
    ("**/x/y\n", "x/z/x/y", False, False, "`**/` does not backtrack"),
    ("[!a]x\n", "bx", False, False, "`[!...]` is a class holding `!`"),
    ("[!a]x\n", "ax", False, True, "`[!...]` is a class holding `!`"),
    ("[]a]\n", "a", False, False, "malformed class matches nothing"),
]


@pytest.mark.parametrize(("spec", "path", "is_dir", "ignored", "why"), GO_GIT_QUIRKS)
def test_go_git_quirks(spec: str, path: str, is_dir: bool, ignored: bool, why: str) -> None:
    assert IgnoreRules.from_sources([], spec).ignored(path, is_dir) is ignored, why


# -- .sourceignore scoping and collection ---------------------------------------------------------


def test_sourceignore_is_scoped_to_its_directory() -> None:
    rules = IgnoreRules.from_sources([("sub", "*.yaml\n/only-here\n")], None)
    assert rules.ignored("sub/a.yaml", False)
    assert rules.ignored("sub/deeper/a.yaml", False)
    assert not rules.ignored("a.yaml", False)
    assert not rules.ignored("other/a.yaml", False)
    assert rules.ignored("sub/only-here", False)
    assert not rules.ignored("sub/deeper/only-here", False)


def test_pattern_never_matches_its_own_directory() -> None:
    rules = IgnoreRules.from_sources([("sub", "sub\n*\n")], None)
    assert not rules.ignored("sub", True)
    assert rules.ignored("sub/x", False)


def test_spec_ignore_comes_after_sourceignore() -> None:
    rules = IgnoreRules.from_sources([("", "*.yaml\n")], "!keep.yaml\n")
    assert not rules.ignored("keep.yaml", False)
    assert rules.ignored("other.yaml", False)


def test_sourceignore_order_is_depth_first_by_name() -> None:
    # The deeper file comes later, so its negation wins over the root's pattern, whatever
    # order the texts are handed in.
    texts = [("a", "!*.yaml\n"), ("", "*.yaml\n")]
    rules = IgnoreRules.from_sources(texts, None)
    assert not rules.ignored("a/x.yaml", False)
    assert rules.ignored("b/x.yaml", False)


def test_sourceignore_under_dot_git_is_not_read() -> None:
    rules = IgnoreRules.from_sources([(".git", "*.yaml\n"), ("x/.git/y", "*.yaml\n")], None)
    assert rules.ignored("logo.png", False)  # still no user patterns: defaults apply
    assert not rules.ignored("a.yaml", False)


def test_from_tree(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / ".sourceignore").write_text("*\n")
    (tmp_path / "b" / "c").mkdir(parents=True)
    (tmp_path / "a-b").mkdir()
    (tmp_path / ".sourceignore").write_text("# root\n*.tmp\n")
    (tmp_path / "b" / ".sourceignore").write_text("local.yaml\n")
    (tmp_path / "b" / "c" / ".sourceignore").write_text("!keep.tmp\n")
    (tmp_path / "a-b" / ".sourceignore").write_bytes(b"x\r\n")
    (tmp_path / "link").symlink_to(tmp_path / "b")

    assert collect_sourceignores(tmp_path) == [
        ("", "# root\n*.tmp\n"),
        ("a-b", "x\r\n"),
        ("b", "local.yaml\n"),
        ("b/c", "!keep.tmp\n"),
    ]
    rules = IgnoreRules.from_tree(tmp_path, "/extra\n")
    assert rules.ignored("x.tmp", False)
    assert not rules.ignored("b/c/keep.tmp", False)
    assert rules.ignored("b/local.yaml", False)
    assert not rules.ignored("local.yaml", False)
    assert not rules.ignored("link/local.yaml", False)  # symlinked dirs are not followed
    assert rules.ignored("extra", False)
    assert not rules.ignored("logo.png", False)  # user patterns exist: no extension defaults


# -- cross-check against git ----------------------------------------------------------------------

# Trees and ignore files on which git and go-git must agree for every path.
AGREEING = {
    "names and anchors": (
        {"": "*.log\n/top.txt\nbuild/\ndocs/*.md\n"},
        [
            "a.log",
            "x/y/b.log",
            "top.txt",
            "x/top.txt",
            "build/out.bin",
            "src/build/o",
            "docs/a.md",
            "docs/sub/a.md",
            "x/docs/a.md",
            "keep.txt",
        ],
        ["build", "src/build", "docs/sub"],
    ),
    "double star": (
        {"": "**/temp\na/**/b\nlogs/*\n"},
        ["temp", "p/q/temp", "a/b", "a/x/y/b", "a/x/c", "logs/x/y", "logs/f", "other/logs/z"],
        [],
    ),
    "negation of files": (
        {"": "*.yaml\n!keep.yaml\n*.json\n!important.json\n"},
        ["a.yaml", "keep.yaml", "d/keep.yaml", "d/other.yaml", "x.json", "important.json"],
        [],
    ),
    "scoped files": (
        {"": "*.tmp\n", "sub": "*.yaml\n/anchored\n!x.tmp\n"},
        [
            "a.tmp",
            "sub/x.tmp",
            "sub/y.tmp",
            "sub/a.yaml",
            "sub/d/a.yaml",
            "a.yaml",
            "sub/anchored",
            "sub/d/anchored",
        ],
        [],
    ),
    "classes and escapes": (
        {"": "[ab].txt\n?.md\n\\#hash\nsp\\ \ntrail   \n[a-c]z\n"},
        ["a.txt", "c.txt", "x.md", "xy.md", "#hash", "sp ", "trail", "bz", "dz"],
        [],
    ),
}


def _git(tmp: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp),
        "XDG_CONFIG_HOME": str(tmp / ".config"),
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    return subprocess.run(
        ["git", *args], cwd=tmp / "repo", env=env, input=stdin, capture_output=True, text=True
    )


def _git_ignored(tmp: Path, paths: list[str]) -> set[str]:
    result = _git(tmp, "check-ignore", "--no-index", "--stdin", stdin="\n".join(paths) + "\n")
    assert result.returncode in (0, 1), result.stderr
    return set(result.stdout.splitlines())


def _build(tmp: Path, ignore_files: dict[str, str], files: list[str], dirs: list[str]) -> Path:
    repo = tmp / "repo"
    repo.mkdir()
    assert _git(tmp, "init", "-q").returncode == 0
    for d in dirs:
        (repo / d).mkdir(parents=True, exist_ok=True)
    for f in files:
        (repo / f).parent.mkdir(parents=True, exist_ok=True)
        (repo / f).write_text("x")
    for d, text in ignore_files.items():
        (repo / d).mkdir(parents=True, exist_ok=True)
        (repo / d / ".gitignore").write_text(text)
    return repo


def _all_paths(repo: Path) -> list[tuple[str, bool]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(repo):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            rel = full.relative_to(repo).as_posix()
            if name != ".gitignore":
                out.append((rel, full.is_dir()))
    return sorted(out)


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git CLI not installed")


@needs_git
@pytest.mark.parametrize("scenario", sorted(AGREEING))
def test_agrees_with_git_check_ignore(tmp_path: Path, scenario: str) -> None:
    ignore_files, files, dirs = AGREEING[scenario]
    repo = _build(tmp_path, ignore_files, files, dirs)
    paths = _all_paths(repo)
    expected = _git_ignored(tmp_path, [p for p, _ in paths])
    rules = IgnoreRules.from_sources(ignore_files.items(), None)
    ours = {p for p, is_dir in paths if rules.ignored(p, is_dir)}
    assert ours == expected


@needs_git
@pytest.mark.parametrize(("spec", "path", "is_dir", "ignored", "why"), GO_GIT_QUIRKS)
def test_quirks_really_differ_from_git(
    tmp_path: Path, spec: str, path: str, is_dir: bool, ignored: bool, why: str
) -> None:
    """The intentional differences: git decides the other way on each of them."""
    repo = _build(tmp_path, {"": spec}, [] if is_dir else [path], [path] if is_dir else [])
    assert (repo / path).exists()
    git_says = path in _git_ignored(tmp_path, [path])
    assert git_says is not ignored, why
