"""Artifact tarballs: byte-for-byte reproducible, Flux's layout and modes, ignore rules, the
refusals; and extraction of hostile archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygit2
import pytest

from tests.go_oracle import needs_go, run_go
from tidal.source.archive import (
    ArchiveError,
    ArchiveLimitError,
    Archiver,
    ArchiveResult,
    Entry,
    UnsafePathError,
    UnsupportedDigestError,
    digest_algorithms,
    safe_extract,
)
from tidal.source.ignore import IgnoreRules


def make_tree(root: Path) -> Path:
    files = {
        "deploy/app.yaml": "kind: Deployment\n",
        "deploy/svc.yaml": "kind: Service\n",
        "a-b/x.yaml": "x: 1\n",
        "a/x.yaml": "a: 1\n",
        "scripts/run.sh": "#!/bin/sh\necho hi\n",
        "README.md": "# readme\n",
        "logo.png": "not really a png",
        ".git/HEAD": "ref: refs/heads/main\n",
        ".github/workflows/ci.yaml": "on: push\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "scripts/run.sh").chmod(0o755)
    (root / "empty").mkdir()
    return root


def archive(
    root: Path, *, ignore: IgnoreRules | None = None, **options: Any
) -> tuple[bytes, ArchiveResult]:
    out = io.BytesIO()
    result = Archiver(**options).from_directory(root, out, ignore=ignore)
    return out.getvalue(), result


def raw_names(data: bytes) -> list[str]:
    """Entry names exactly as stored (tarfile would strip a directory's trailing slash)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [m.name for m in tar.getmembers()]


def header_name_fields(data: bytes) -> list[bytes]:
    raw = gzip.decompress(data)
    names = []
    offset = 0
    while offset + 512 <= len(raw) and raw[offset : offset + 512] != b"\0" * 512:
        header = raw[offset : offset + 512]
        names.append(header[:100].rstrip(b"\0"))
        size = int(header[124:135] or b"0", 8)
        offset += 512 + (size + 511) // 512 * 512
    return names


# -- reproducibility ------------------------------------------------------------------------------


def test_same_tree_twice_gives_same_bytes(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    first, r1 = archive(root)
    second, r2 = archive(root)
    assert first == second
    assert r1 == r2


def test_mtime_owner_and_location_do_not_change_the_digest(tmp_path: Path) -> None:
    one = make_tree(tmp_path / "one")
    two = make_tree(tmp_path / "elsewhere" / "two")
    for path in two.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000), follow_symlinks=False)
        if os.geteuid() == 0:
            os.lchown(path, 4242, 4343)
    data_one, result_one = archive(one)
    data_two, result_two = archive(two)
    assert data_one == data_two
    assert result_one.digest == result_two.digest


def test_digest_and_size_describe_the_compressed_bytes(tmp_path: Path) -> None:
    data, result = archive(make_tree(tmp_path / "t"))
    assert result.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert result.size == len(data)


@pytest.mark.parametrize("algorithm", ["sha384", "sha512"])
def test_other_digest_algorithms(tmp_path: Path, algorithm: str) -> None:
    data, result = archive(make_tree(tmp_path / "t"), digest_algorithm=algorithm)
    expected = f"{algorithm}:" + hashlib.new(algorithm, data).hexdigest()
    assert result.digest == expected


def test_unknown_digest_algorithm_is_refused() -> None:
    with pytest.raises(UnsupportedDigestError, match="unsupported digest algorithm 'md5'"):
        Archiver(digest_algorithm="md5")


@pytest.mark.skipif("blake3" in digest_algorithms(), reason="blake3 is installed here")
def test_blake3_without_its_package_is_refused_clearly() -> None:
    with pytest.raises(UnsupportedDigestError, match="needs the 'blake3' Python package"):
        Archiver(digest_algorithm="blake3")


def test_gzip_header_has_no_name_and_no_time(tmp_path: Path) -> None:
    data, _ = archive(make_tree(tmp_path / "t"))
    assert data[:4] == b"\x1f\x8b\x08\x00"  # deflate, no FNAME/FEXTRA/FCOMMENT flags
    assert data[4:8] == b"\0\0\0\0"  # mtime 0
    assert data[9] == 255  # OS unknown, as Go writes it
    assert b"t" not in data[:10]


# -- layout and headers ---------------------------------------------------------------------------


def test_layout_order_and_headers(tmp_path: Path) -> None:
    data, result = archive(make_tree(tmp_path / "t"), ignore=IgnoreRules())
    assert raw_names(data) == [
        ".",
        "README.md",
        "a",
        "a/x.yaml",
        "a-b",
        "a-b/x.yaml",
        "deploy",
        "deploy/app.yaml",
        "deploy/svc.yaml",
        "empty",
        "scripts",
        "scripts/run.sh",
    ]
    # directory names are stored without a trailing slash, like Go's tar writer
    assert header_name_fields(data)[:3] == [b".", b"README.md", b"a"]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    for m in members.values():
        assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", 0)
    assert members["."].isdir() and members["."].mode == 0o750
    assert members["deploy"].mode == 0o750
    assert members["deploy/app.yaml"].mode == 0o600
    assert members["scripts/run.sh"].mode == 0o700
    assert result.entries == 11


@pytest.mark.parametrize(
    ("mode", "archived"),
    [
        (0o644, 0o600),
        (0o755, 0o700),
        (0o604, 0o600),
        (0o601, 0o700),
        (0o610, 0o700),
        (0o400, 0o600),
    ],
)
def test_file_modes(tmp_path: Path, mode: int, archived: int) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / "f").write_text("x")
    (root / "f").chmod(mode)
    data, _ = archive(root)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getmember("f").mode == archived


def test_readable_by_gnu_tar(tmp_path: Path) -> None:
    if shutil.which("tar") is None:
        pytest.skip("no tar")
    root = make_tree(tmp_path / "t")
    long_dir = "d" * 120
    (root / long_dir).mkdir()
    (root / long_dir / ("f" * 90)).write_text("long")
    (root / ("x" * 300)[:200]).write_text("very long name")
    (root / "ünïcödé.yaml").write_text("u: 1\n")
    data, _ = archive(root)
    (tmp_path / "a.tar.gz").write_bytes(data)
    listing = subprocess.run(
        ["tar", "-tzf", str(tmp_path / "a.tar.gz")], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert f"{long_dir}/{'f' * 90}" in listing
    assert "x" * 200 in listing
    assert "ünïcödé.yaml" in listing
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xzf", str(tmp_path / "a.tar.gz"), "-C", str(out)], check=True)
    assert (out / long_dir / ("f" * 90)).read_text() == "long"
    assert (out / "ünïcödé.yaml").read_text() == "u: 1\n"


# -- what is left out -----------------------------------------------------------------------------


def test_default_ignore_rules(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    data, _ = archive(root, ignore=IgnoreRules.from_tree(root))
    names = raw_names(data)
    assert "deploy/app.yaml" in names
    assert not [n for n in names if n.startswith((".git", ".github"))]
    assert "logo.png" not in names


def test_spec_ignore_drops_defaults_but_not_vcs(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    data, _ = archive(root, ignore=IgnoreRules.from_tree(root, "/deploy/svc.yaml\n"))
    names = raw_names(data)
    assert "logo.png" in names
    assert ".github/workflows/ci.yaml" in names
    assert "deploy/svc.yaml" not in names
    assert not [n for n in names if n.startswith(".git/") or n == ".git"]


def test_reinclude_under_excluded_dir_keeps_the_file_not_the_dir(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    (root / ".sourceignore").write_text("deploy/\n!deploy/app.yaml\n")
    data, _ = archive(root, ignore=IgnoreRules.from_tree(root))
    names = raw_names(data)
    assert "deploy/app.yaml" in names
    assert "deploy" not in names
    assert "deploy/svc.yaml" not in names
    assert ".sourceignore" in names  # Flux ships the ignore file itself


def test_symlinks_devices_and_fifos_are_skipped(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    (root / "link-to-file").symlink_to("deploy/app.yaml")
    (root / "link-to-dir").symlink_to("deploy")
    (root / "deploy" / "up").symlink_to("../README.md")
    os.mkfifo(root / "fifo")
    data, _ = archive(root)
    names = raw_names(data)
    assert not {"link-to-file", "link-to-dir", "deploy/up", "fifo"} & set(names)
    assert "deploy/app.yaml" in names


@pytest.mark.parametrize("target", ["../../outside", "/etc/passwd", "a/../../../x"])
def test_symlink_leaving_the_tree_is_refused(tmp_path: Path, target: str) -> None:
    root = make_tree(tmp_path / "t")
    (root / "deploy" / "evil").symlink_to(target)
    with pytest.raises(UnsafePathError) as err:
        archive(root)
    assert err.value.path == "deploy/evil"
    assert target in str(err.value)


def test_escaping_symlink_that_is_ignored_is_not_an_error(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    (root / "evil").symlink_to("/etc/passwd")
    data, _ = archive(root, ignore=IgnoreRules.from_tree(root, "evil\n"))
    assert "evil" not in raw_names(data)


# -- limits ---------------------------------------------------------------------------------------


def test_file_count_limit(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    with pytest.raises(ArchiveLimitError, match="more than 5 entries"):
        archive(root, max_files=5)


def test_byte_limit(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / "big").write_bytes(b"x" * 5000)
    with pytest.raises(ArchiveLimitError, match="exceeds 4096 bytes"):
        archive(root, max_bytes=4096)
    archive(root, max_bytes=5000)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="invalid dir path"):
        archive(tmp_path / "missing")


# -- from entries (a Git object database) ---------------------------------------------------------


def git_entries(repo: pygit2.Repository, tree: pygit2.Tree, prefix: str = "") -> Iterator[Entry]:
    for obj in tree:
        path = prefix + str(obj.name)
        mode = obj.filemode
        if mode == pygit2.enums.FileMode.TREE:
            yield Entry(path, "dir", mode)
            yield from git_entries(repo, repo[obj.id], path + "/")  # type: ignore[arg-type]
        elif mode == pygit2.enums.FileMode.LINK:
            yield Entry(path, "symlink", mode, repo[obj.id].data)
        elif mode == pygit2.enums.FileMode.COMMIT:
            yield Entry(path, "dir", mode)  # a checkout leaves an empty submodule directory
        else:
            yield Entry(path, "file", mode, lambda blob=obj: blob.data)  # type: ignore[misc]


def commit_all(worktree: Path) -> pygit2.Repository:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "m"],
    ):
        subprocess.run(["git", *args], cwd=worktree, env=env, check=True)
    return pygit2.Repository(str(worktree))


def test_git_tree_and_checkout_give_the_same_bytes(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    shutil.rmtree(root / ".git")
    (root / "empty").rmdir()  # git does not keep empty directories
    (root / "link").symlink_to("deploy/app.yaml")
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "sub" / "deeper" / "f.yaml").write_text("f: 1\n")
    (root / "sub" / ".sourceignore").write_text("*.yaml\n")
    repo = commit_all(root)
    tree = repo.head.peel(pygit2.Commit).tree

    rules_disk = IgnoreRules.from_tree(root, "README.md\n")
    rules_git = IgnoreRules.from_sources(
        [
            (e.path.rpartition("/")[0], e.content().decode())
            for e in git_entries(repo, tree)
            if e.path.endswith(".sourceignore")
        ],
        "README.md\n",
    )
    disk, disk_result = archive(root, ignore=rules_disk)
    out = io.BytesIO()
    git_result = Archiver().from_entries(git_entries(repo, tree), out, ignore=rules_git)
    assert out.getvalue() == disk
    assert git_result == disk_result
    names = raw_names(disk)
    assert "sub/deeper/f.yaml" not in names and "sub/deeper" in names
    assert "README.md" not in names and "link" not in names


def test_entries_in_any_order_give_the_same_bytes() -> None:
    entries = [
        Entry("b", "dir"),
        Entry("b/x", "file", 0o100644, b"x"),
        Entry("a", "dir"),
        Entry("a/run", "file", 0o100755, lambda: b"#!/bin/sh\n"),
    ]
    first, second = io.BytesIO(), io.BytesIO()
    Archiver().from_entries(entries, first)
    Archiver().from_entries(reversed(entries), second)
    assert first.getvalue() == second.getvalue()
    assert raw_names(first.getvalue()) == [".", "a", "a/run", "b", "b/x"]


@pytest.mark.parametrize(
    ("path", "reason"),
    [("/etc/passwd", "absolute"), ("a/../../x", "'..'"), ("../x", "'..'"), ("a//b", "clean")],
)
def test_entries_with_unsafe_paths_are_refused(path: str, reason: str) -> None:
    with pytest.raises(UnsafePathError, match=reason) as err:
        Archiver().from_entries([Entry(path, "file", 0o644, b"x")], io.BytesIO())
    assert err.value.path == path


def test_entry_symlink_leaving_the_tree_is_refused() -> None:
    entries = [Entry("a", "dir"), Entry("a/l", "symlink", 0o120000, b"../../etc")]
    with pytest.raises(UnsafePathError) as err:
        Archiver().from_entries(entries, io.BytesIO())
    assert err.value.path == "a/l"


def test_duplicate_entries_are_refused() -> None:
    with pytest.raises(ArchiveError, match="duplicate"):
        Archiver().from_entries([Entry("f", "file"), Entry("f", "file")], io.BytesIO())


def test_entry_limits() -> None:
    big = [Entry("f", "file", 0o644, b"x" * 100)]
    with pytest.raises(ArchiveLimitError):
        Archiver(max_bytes=99).from_entries(big, io.BytesIO())
    many = [Entry(f"f{i}", "file") for i in range(4)]
    with pytest.raises(ArchiveLimitError):
        Archiver(max_files=3).from_entries(many, io.BytesIO())


# -- extraction -----------------------------------------------------------------------------------


def test_extract_round_trip(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    data, _ = archive(root)
    dest = tmp_path / "dest"
    result = safe_extract(data, dest)
    assert (dest / "deploy" / "app.yaml").read_text() == "kind: Deployment\n"
    assert (dest / "scripts" / "run.sh").stat().st_mode & 0o777 == 0o700
    assert (dest / "empty").is_dir()
    assert result.files == 9 and result.directories == 8
    # the same from a path and from a stream
    (tmp_path / "a.tgz").write_bytes(data)
    safe_extract(tmp_path / "a.tgz", tmp_path / "dest2")
    with (tmp_path / "a.tgz").open("rb") as f:
        safe_extract(f, tmp_path / "dest3")
    assert (tmp_path / "dest3" / "README.md").read_text() == "# readme\n"


def tarball(*members: tuple[tarfile.TarInfo, bytes | None], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=fmt) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(raw.getvalue())


def file_member(name: str, data: bytes = b"pwned") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    return info, data


def dir_member(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info, None


def special_member(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def outside_files(tmp_path: Path, dest: Path) -> list[str]:
    """Everything under tmp_path that is not dest, nor in it, nor the test's own inputs."""
    found = []
    for path in tmp_path.rglob("*"):
        if path == dest or dest in path.parents or path.name in ("outside", "evil.tgz"):
            continue
        found.append(str(path.relative_to(tmp_path)))
    return found


HOSTILE = {
    "absolute path": ([file_member("/tmp/pwned-by-tidal-test")], "absolute"),
    "dot-dot": ([file_member("../escaped")], "'..'"),
    "dot-dot inside": ([file_member("a/../../escaped")], "'..'"),
    "backslash": ([file_member("a\\..\\..\\escaped")], "backslash"),
    "symlink out, absolute": ([special_member("l", tarfile.SYMTYPE, "/etc")], "leaves"),
    "symlink out, relative": ([special_member("a/l", tarfile.SYMTYPE, "../../outside")], "leaves"),
    "write through symlink": (
        [
            special_member("l", tarfile.SYMTYPE, "sub"),
            dir_member("sub"),
            file_member("l/escaped"),
        ],
        "symlink",
    ),
    "symlink chain": (
        [special_member("a", tarfile.SYMTYPE, "."), special_member("b", tarfile.SYMTYPE, "a/a/..")],
        "resolves outside",
    ),
    "hard link out": ([special_member("h", tarfile.LNKTYPE, "../outside/secret")], "'..'"),
    "hard link absolute": ([special_member("h", tarfile.LNKTYPE, "/etc/passwd")], "absolute"),
    "char device": ([special_member("dev", tarfile.CHRTYPE)], "device"),
    "block device": ([special_member("blk", tarfile.BLKTYPE)], "device"),
    "fifo": ([special_member("fifo", tarfile.FIFOTYPE)], "FIFO"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_tarball_is_refused_and_nothing_lands_outside(tmp_path: Path, case: str) -> None:
    members, reason = HOSTILE[case]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    data = tarball(*members)
    dest = tmp_path / "dest"
    with pytest.raises(UnsafePathError, match=reason):
        safe_extract(data, dest)
    assert outside_files(tmp_path, dest) == ["outside/secret"]
    assert not Path("/tmp/pwned-by-tidal-test").exists()
    for path in dest.rglob("*"):
        assert not path.is_symlink() or os.path.realpath(path).startswith(str(dest))


def test_links_inside_the_destination_are_kept(tmp_path: Path) -> None:
    data = tarball(
        dir_member("d"),
        file_member("d/f", b"content"),
        special_member("d/l", tarfile.SYMTYPE, "f"),
        special_member("top", tarfile.SYMTYPE, "d/f"),
        special_member("hard", tarfile.LNKTYPE, "d/f"),
    )
    dest = tmp_path / "dest"
    result = safe_extract(data, dest)
    assert (dest / "d" / "l").read_text() == "content"
    assert (dest / "top").read_text() == "content"
    assert (dest / "hard").read_text() == "content"
    assert not (dest / "hard").is_symlink()
    assert result.links == 3


def test_declared_size_over_the_limit_is_refused_before_writing(tmp_path: Path) -> None:
    data = tarball(file_member("big", b"\0" * (4 << 20)))
    assert len(data) < 64 << 10  # a small download
    dest = tmp_path / "dest"
    with pytest.raises(ArchiveLimitError, match="exceeds 1048576 bytes"):
        safe_extract(data, dest, max_bytes=1 << 20)
    assert not (dest / "big").exists()


def test_gzip_bomb_in_tar_metadata_is_stopped(tmp_path: Path) -> None:
    # A GNU long-name record is metadata tarfile reads into memory: 16 MB of it must be cut off
    # by the decompression budget, not read.
    info = tarfile.TarInfo("n" * (16 << 20))
    data = tarball((info, b"x"), fmt=tarfile.GNU_FORMAT)
    assert len(data) < 64 << 10
    with pytest.raises(ArchiveLimitError, match="inflates beyond"):
        safe_extract(data, tmp_path / "dest", max_bytes=1 << 20, max_files=10)


def test_file_count_limit_on_extract(tmp_path: Path) -> None:
    data = tarball(*(file_member(f"f{i}", b"") for i in range(11)))
    with pytest.raises(ArchiveLimitError, match="more than 10 entries"):
        safe_extract(data, tmp_path / "dest", max_files=10)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty input"),
        (b"not gzip at all", "corrupt gzip"),
        (gzip.compress(b"\0" * 10)[:-12], "truncated gzip"),
    ],
)
def test_broken_input(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(ArchiveError, match=message):
        safe_extract(data, tmp_path / "dest")


def test_destination_must_not_be_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "dest").symlink_to(tmp_path / "real")
    with pytest.raises(ArchiveError, match="not a directory"):
        safe_extract(tarball(file_member("f")), tmp_path / "dest")


# -- the tar layer is Go's ------------------------------------------------------------------------

GO_TAR = """
package main

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Writes an uncompressed tar of a directory with headers set as Flux's spec says.
func main() {
	dir := os.Args[1]
	tw := tar.NewWriter(os.Stdout)
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !(fi.Mode().IsRegular() || fi.IsDir()) {
			return err
		}
		h, err := tar.FileInfoHeader(fi, p)
		if err != nil {
			return err
		}
		h.Name, _ = filepath.Rel(dir, p)
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		h.ModTime, h.AccessTime, h.ChangeTime = time.Time{}, time.Time{}, time.Time{}
		h.Mode = 0o600
		if fi.IsDir() {
			h.Mode = 0o750
		} else if fi.Mode()&0o111 != 0 {
			h.Mode = 0o700
		}
		if err := tw.WriteHeader(h); err != nil || fi.IsDir() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		panic(err)
	}
	tw.Close()
}
"""


@pytest.mark.slow
@needs_go
def test_tar_stream_equals_go_archive_tar(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "t")
    (root / ("d" * 120)).mkdir()
    (root / ("d" * 120) / ("f" * 90)).write_text("ustar prefix split")
    (root / ("x" * 200)).write_text("needs PAX")
    (root / "ünïcödé.yaml").write_text("needs PAX too")
    (root / "big").write_bytes(os.urandom(70_000))
    expected = run_go(GO_TAR, tmp_path, str(root))
    data, _ = archive(root)
    assert gzip.decompress(data) == expected
