"""Deterministic artifact tarballs, and safe extraction of untrusted ones.

Layout follows fluxcd/pkg artifact/storage Archive: entries in Go's filepath.Walk order
(depth-first, each directory's names sorted by bytes), starting with a "." entry for the
root; directories included (names without a trailing slash); only regular files and
directories, never symlinks, devices or sockets. Headers carry uid/gid 0, empty user and group
names, mtime 0, and mode 0o750 for directories, 0o700 for files with any execute bit, 0o600
otherwise. USTAR headers, PAX for names USTAR cannot hold, as Go's archive/tar chooses.

The tar stream itself is byte-for-byte what Go's archive/tar writes with those headers (a
test checks it against a Go program when Go is installed). The gzip member has mtime 0, no
file name and OS "unknown", so the same tree gives the same bytes with the same zlib; the
digest is over those compressed bytes. Go's deflate is not zlib's, so digests are comparable
between tidal runs, not with Flux's.

Symlinks are skipped like Flux does, after a check: one that points outside the root (or at
an absolute path) is refused with UnsafePathError, because an artifact is untrusted input and
a link that escapes is a sign of a hostile tree, not of content anyone meant to ship. Links
that stay inside are skipped silently, exactly as Flux skips them.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import stat
import struct
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Protocol, cast

from tidal.source.ignore import IgnoreRules

DIR_MODE = 0o750
FILE_MODE = 0o600
EXEC_FILE_MODE = 0o700

DEFAULT_MAX_BYTES = 2 << 30  # uncompressed file content
DEFAULT_MAX_FILES = 200_000  # entries, directories included, the root "." not counted
DEFAULT_COMPRESS_LEVEL = 6  # Go's gzip default, which Flux uses

_BLOCK = 512
_CHUNK = 1 << 20
_FLUSH_AT = 256 << 10


# -- errors ---------------------------------------------------------------------------------------


class ArchiveError(Exception):
    """An archive could not be written or read."""


class UnsafePathError(ArchiveError):
    """An entry that could reach outside the tree: absolute, `..`, an escaping link, a device."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"unsafe path {path!r}: {reason}")
        self.path = path
        self.reason = reason


class ArchiveLimitError(ArchiveError):
    """The archive holds more bytes or entries than allowed."""


class UnsupportedDigestError(ValueError):
    """A digest algorithm tidal cannot compute."""


# -- digests --------------------------------------------------------------------------------------


class Sink(Protocol):
    """Where archive bytes go: a binary file, or anything else with write()."""

    def write(self, data: bytes, /) -> object: ...


class Hasher(Protocol):
    def update(self, data: bytes, /) -> object: ...
    def hexdigest(self) -> str: ...


def _blake3() -> Hasher | None:
    try:
        import blake3  # type: ignore[import-not-found]
    except ImportError:
        return None
    hasher: Hasher = blake3.blake3()
    return hasher


def digest_algorithms() -> tuple[str, ...]:
    """The values `--artifact-digest-algo` accepts here (blake3 only with its package)."""
    base = ("sha256", "sha384", "sha512")
    return (*base, "blake3") if _blake3() is not None else base


def new_hasher(algorithm: str) -> Hasher:
    if algorithm in ("sha256", "sha384", "sha512"):
        return hashlib.new(algorithm)
    if algorithm == "blake3":
        hasher = _blake3()
        if hasher is not None:
            return hasher
        raise UnsupportedDigestError(
            "digest algorithm 'blake3' needs the 'blake3' Python package, which is not installed"
        )
    raise UnsupportedDigestError(
        f"unsupported digest algorithm {algorithm!r}: use one of {', '.join(digest_algorithms())}"
    )


def parse_digest(digest: str) -> tuple[str, str]:
    algorithm, sep, value = digest.partition(":")
    if not sep or not algorithm or not value:
        raise ValueError(f"invalid digest {digest!r}: want '<algorithm>:<hex>'")
    return algorithm, value


def digest_file(path: Path, algorithm: str = "sha256") -> str:
    hasher = new_hasher(algorithm)
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
    return f"{algorithm}:{hasher.hexdigest()}"


# -- the tar.gz writer ----------------------------------------------------------------------------


def _octal(value: int, width: int) -> bytes:
    return b"%0*o\0" % (width - 1, value)


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) for USTAR, or None when the name needs PAX (Go's split rule)."""
    if len(name) <= 100:
        return b"", name
    if len(name) > 256:
        return None
    # The prefix ends at a slash, holds at most 155 bytes, and leaves 1..100 for the name.
    i = name.rfind(b"/", 0, min(len(name) - 1, 156))
    if i <= 0 or len(name) - i - 1 > 100:
        return None
    return name[:i], name[i + 1 :]


def _header(
    name: bytes, prefix: bytes, mode: int, size: int, typeflag: bytes, *, devices: bool = True
) -> bytes:
    block = bytearray(_BLOCK)
    block[0 : len(name)] = name
    block[100:108] = _octal(mode, 8)
    block[108:116] = _octal(0, 8)
    block[116:124] = _octal(0, 8)
    block[124:136] = _octal(size, 12)
    block[136:148] = _octal(0, 12)
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[257:263] = b"ustar\0"
    block[263:265] = b"00"
    if devices:  # Go leaves them NUL in a PAX extended header, and so do we
        block[329:337] = _octal(0, 8)
        block[337:345] = _octal(0, 8)
    block[345 : 345 + len(prefix)] = prefix
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def _pax_record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode() + b"=" + value + b"\n"
    size = len(body) + 1
    while len(str(size).encode()) + len(body) != size:
        size += 1
    return str(size).encode() + body


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


def _ascii(name: bytes, limit: int) -> bytes:
    return bytes(b for b in name if b < 0x80)[:limit]


_MAX_OCTAL_SIZE = 0o77777777777


def tar_headers(name: str, mode: int, size: int, is_dir: bool) -> bytes:
    """The header block(s) for one entry: USTAR, preceded by a PAX header when needed."""
    raw = name.encode("utf-8", "surrogateescape")
    typeflag = b"5" if is_dir else b"0"
    split = _split_ustar(raw) if raw.isascii() else None
    records = b""
    if split is None:
        records += _pax_record("path", raw)
    if size > _MAX_OCTAL_SIZE:
        records += _pax_record("size", str(size).encode())
    if not records:
        assert split is not None
        prefix, short = split
        return _header(short, prefix, mode, size, typeflag)
    head, _, base = raw.rpartition(b"/")
    pax_name = _ascii((head + b"/" if head else b"") + b"PaxHeaders.0/" + base, 100)
    main = _ascii(raw, 100)
    return (
        _header(pax_name, b"", 0, len(records), b"x", devices=False)
        + records
        + _padding(len(records))
        + _header(main, b"", mode, min(size, _MAX_OCTAL_SIZE), typeflag)
    )


class _TarGzWriter:
    """Streams tar blocks through deflate into `out`, hashing and counting what it writes."""

    def __init__(self, out: Sink, algorithm: str, level: int) -> None:
        self._out = out
        self._hash = new_hasher(algorithm)
        self._algorithm = algorithm
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._crc = 0
        self._raw_size = 0
        self._size = 0
        self._buf = bytearray()
        # Go's gzip header: mtime 0, no name, XFL by level, OS 255 ("unknown").
        xfl = 2 if level == 9 else 4 if level == 1 else 0
        self._emit(b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes((xfl, 255)))

    def _emit(self, data: bytes) -> None:
        if data:
            self._out.write(data)
            self._hash.update(data)
            self._size += len(data)

    def _flush(self) -> None:
        data = bytes(self._buf)
        self._buf.clear()
        self._crc = zlib.crc32(data, self._crc)
        self._raw_size += len(data)
        self._emit(self._deflate.compress(data))

    def write(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) >= _FLUSH_AT:
            self._flush()

    def close(self) -> tuple[str, int]:
        self.write(b"\0" * (2 * _BLOCK))
        self._flush()
        self._emit(self._deflate.flush())
        self._emit(struct.pack("<II", self._crc, self._raw_size & 0xFFFFFFFF))
        return f"{self._algorithm}:{self._hash.hexdigest()}", self._size


# -- what goes in ---------------------------------------------------------------------------------

EntryKind = Literal["file", "dir", "symlink", "other"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One path for `Archiver.from_entries`.

    `mode` is the source's mode (a Git filemode such as 0o100755 or an st_mode); only its
    execute bits matter. `data` is the content for a file, the target for a symlink, and may
    be a callable so that a large tree is read one blob at a time, after sorting.
    """

    path: str
    kind: EntryKind
    mode: int = 0
    data: bytes | Callable[[], bytes] = b""

    def content(self) -> bytes:
        return self.data() if callable(self.data) else self.data


@dataclass(frozen=True, slots=True)
class ArchiveResult:
    digest: str  # "<algorithm>:<hex>" of the compressed bytes
    size: int  # compressed bytes written
    entries: int  # entries written, directories included, "." not counted
    content_bytes: int  # total size of the files, uncompressed


# (path, is a directory, archived mode, size, a reader of the content) in walk order
_Item = tuple[str, bool, int, int, Callable[[], Iterator[bytes]]]


def _walk_key(rel: str) -> tuple[bytes, ...]:
    return tuple(os.fsencode(p) for p in rel.split("/"))


def _check_relative(path: str) -> str:
    if "\0" in path:
        raise UnsafePathError(path, "contains a NUL byte")
    if path.startswith("/"):
        raise UnsafePathError(path, "absolute path")
    parts = path.split("/")
    if ".." in parts:
        raise UnsafePathError(path, "contains a '..' component")
    if any(p in ("", ".") for p in parts):
        raise UnsafePathError(path, "not a clean relative path")
    return path


def _link_escapes(rel: str, target: str) -> bool:
    if not target or target.startswith("/"):
        return True
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    return resolved == ".." or resolved.startswith("../")


class _Filter:
    """Ignore decisions in walk order; skips what lies under an excluded directory when the
    rules allow it (no negation), which gives the same result as asking about every path."""

    def __init__(self, rules: IgnoreRules | None) -> None:
        self._rules = rules
        self._pruned: str | None = None

    def include(self, rel: str, is_dir: bool) -> bool:
        if self._rules is None:
            return True
        if self._pruned is not None:
            if rel.startswith(self._pruned):
                return False
            self._pruned = None
        if not self._rules.ignored(rel, is_dir):
            return True
        if is_dir and not self._rules.has_negation:
            self._pruned = rel + "/"
        return False

    @property
    def prunes(self) -> bool:
        return self._rules is None or not self._rules.has_negation


def _file_mode(mode: int) -> int:
    return EXEC_FILE_MODE if mode & 0o111 else FILE_MODE


class Archiver:
    """Writes artifact tarballs with one digest algorithm and size limits."""

    def __init__(
        self,
        *,
        digest_algorithm: str = "sha256",
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_files: int = DEFAULT_MAX_FILES,
        compress_level: int = DEFAULT_COMPRESS_LEVEL,
    ) -> None:
        new_hasher(digest_algorithm)  # refuse an unknown algorithm now, not mid-archive
        self.digest_algorithm = digest_algorithm
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.compress_level = compress_level

    # Both producers feed (rel, is_dir, mode, size, read) in walk order into _write.

    def from_directory(
        self, root: Path, out: Sink, *, ignore: IgnoreRules | None = None
    ) -> ArchiveResult:
        """Archive the tree under root (not following symlinks anywhere below it)."""
        root = Path(os.path.realpath(root))
        if not root.is_dir():
            raise ArchiveError(f"invalid dir path: {root}")
        return self._write(self._walk_directory(root, _Filter(ignore)), out)

    def from_entries(
        self, entries: Iterable[Entry], out: Sink, *, ignore: IgnoreRules | None = None
    ) -> ArchiveResult:
        """Archive entries from anywhere (a Git object database, say), in any order.

        Directories are written only when given as entries: yield one per tree, as a
        checkout would have them. "." is always written first.
        """
        items: dict[str, Entry] = {}
        for entry in entries:
            path = entry.path.strip("/") if entry.kind == "dir" else entry.path
            if path in ("", "."):
                continue
            _check_relative(path)
            if path in items:
                raise ArchiveError(f"duplicate entry {path!r}")
            items[path] = entry
        ordered = sorted(items.items(), key=lambda kv: _walk_key(kv[0]))
        return self._write(self._walk_entries(ordered, _Filter(ignore)), out)

    def _walk_entries(self, ordered: list[tuple[str, Entry]], keep: _Filter) -> Iterator[_Item]:
        for rel, entry in ordered:
            if entry.kind == "dir":
                if keep.include(rel, True):
                    yield rel, True, DIR_MODE, 0, _no_data
            elif entry.kind == "file":
                if keep.include(rel, False):
                    data = entry.content()
                    yield rel, False, _file_mode(entry.mode), len(data), _chunks_of(data)
            elif entry.kind == "symlink" and keep.include(rel, False):
                target = entry.content().decode("utf-8", "surrogateescape")
                if _link_escapes(rel, target):
                    raise UnsafePathError(rel, f"symlink to {target!r} leaves the tree")

    def _walk_directory(self, root: Path, keep: _Filter) -> Iterator[_Item]:
        def visit(directory: str, prefix: str) -> Iterator[_Item]:
            with os.scandir(directory) as it:
                names = sorted((e.name for e in it), key=os.fsencode)
            for name in names:
                full = f"{directory}/{name}"
                rel = prefix + name
                st = os.lstat(full)
                if stat.S_ISDIR(st.st_mode):
                    if keep.include(rel, True):
                        yield rel, True, DIR_MODE, 0, _no_data
                    elif keep.prunes:
                        continue
                    yield from visit(full, rel + "/")
                elif stat.S_ISREG(st.st_mode):
                    if keep.include(rel, False):
                        yield rel, False, _file_mode(st.st_mode), st.st_size, _reader(full, st)
                elif stat.S_ISLNK(st.st_mode) and keep.include(rel, False):
                    target = str(Path(full).readlink())
                    if _link_escapes(rel, target):
                        raise UnsafePathError(rel, f"symlink to {target!r} leaves the tree")
                # devices, sockets, FIFOs: skipped, as Flux does

        yield from visit(str(root), "")

    def _write(
        self,
        items: Iterator[_Item],
        out: Sink,
    ) -> ArchiveResult:
        writer = _TarGzWriter(out, self.digest_algorithm, self.compress_level)
        writer.write(tar_headers(".", DIR_MODE, 0, True))
        count = 0
        content = 0
        for rel, is_dir, mode, size, read in items:
            count += 1
            if count > self.max_files:
                raise ArchiveLimitError(
                    f"archive would hold more than {self.max_files} entries (at {rel!r})"
                )
            if not is_dir:
                content += size
                if content > self.max_bytes:
                    raise ArchiveLimitError(
                        f"archive content exceeds {self.max_bytes} bytes (at {rel!r})"
                    )
            writer.write(tar_headers(rel, mode, size, is_dir))
            if not is_dir:
                written = 0
                for chunk in read():
                    written += len(chunk)
                    writer.write(chunk)
                if written != size:
                    raise ArchiveError(f"{rel!r} changed while being archived")
                writer.write(_padding(size))
        digest, size = writer.close()
        return ArchiveResult(digest=digest, size=size, entries=count, content_bytes=content)


def _no_data() -> Iterator[bytes]:
    return iter(())


def _chunks_of(data: bytes) -> Callable[[], Iterator[bytes]]:
    return lambda: iter((data,))


def _reader(path: str, expected: os.stat_result) -> Callable[[], Iterator[bytes]]:
    def read() -> Iterator[bytes]:
        # O_NOFOLLOW and the inode check: a file swapped for a symlink after the walk saw it
        # is refused instead of being followed out of the tree.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != (expected.st_dev, expected.st_ino):
                raise ArchiveError(f"{path!r} changed while being archived")
            remaining = expected.st_size
            while remaining > 0:
                chunk = os.read(fd, min(remaining, _CHUNK))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            os.close(fd)

    return read


# -- safe extraction ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExtractResult:
    files: int
    directories: int
    links: int
    content_bytes: int


_HEADER_ALLOWANCE = 8 * _BLOCK  # per entry: its header, a PAX header, and data padding
_READ_AHEAD = 128 * _BLOCK  # the read buffers in front of tarfile, and end-of-archive blocks


class _Gunzip(io.RawIOBase):
    """Decompresses a gzip stream (members may be concatenated) lazily, refusing to produce
    more than its budget: the guard against a small archive that inflates without end."""

    def __init__(self, source: BinaryIO, budget: int) -> None:
        self._source = source
        self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._fed = False  # the current member has seen input
        self._carry = b""  # input left over after the previous member
        self._seen_any = False
        self.budget = budget
        self.produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _read(self, n: int) -> bytes:
        while True:
            decoder = self._decoder
            if decoder.unconsumed_tail:
                data = decoder.unconsumed_tail
            elif self._carry:
                data, self._carry = self._carry, b""
            else:
                data = self._source.read(_CHUNK)
                if not data:
                    if not self._seen_any:
                        raise ArchiveError("empty input: not a gzip stream")
                    if self._fed:
                        raise ArchiveError("truncated gzip stream")
                    return b""
            self._fed = self._seen_any = True
            try:
                out = decoder.decompress(data, n)
            except zlib.error as e:
                raise ArchiveError(f"corrupt gzip stream: {e}") from None
            if decoder.eof:
                self._carry = decoder.unused_data
                self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._fed = False
            if out:
                self.produced += len(out)
                if self.produced > self.budget:
                    raise ArchiveLimitError(
                        "archive inflates beyond its size limit (possible gzip bomb)"
                    )
                return out


def _open_source(source: Path | bytes | BinaryIO) -> tuple[BinaryIO, bool]:
    if isinstance(source, bytes | bytearray):
        return io.BytesIO(source), True
    if isinstance(source, Path | str):
        return Path(source).open("rb"), True
    return source, False


def _member_parts(name: str) -> list[str]:
    if "\0" in name:
        raise UnsafePathError(name, "contains a NUL byte")
    if "\\" in name:
        raise UnsafePathError(name, "contains a backslash")
    if name.startswith("/"):
        raise UnsafePathError(name, "absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePathError(name, "contains a '..' component")
    return parts


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Tree:
    """Creates paths under one directory through directory file descriptors, never following
    a symlink on the way: whatever the archive holds, nothing lands outside the root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._root_fd = os.open(root, _DIR_FLAGS)
        self._cached: tuple[tuple[str, ...], int] | None = None

    def close(self) -> None:
        self._drop_cache()
        os.close(self._root_fd)

    def _drop_cache(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def parent_fd(self, parts: list[str], name: str, *, create: bool) -> int:
        """A descriptor for the directory holding parts[-1] (valid until the next call)."""
        key = tuple(parts[:-1])
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        self._drop_cache()
        fd = os.dup(self._root_fd)
        try:
            for part in key:
                try:
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise UnsafePathError(name, "link target does not exist") from None
                    os.mkdir(part, 0o750, dir_fd=fd)
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    raise UnsafePathError(name, "a parent is a symlink or not a directory") from e
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        self._cached = (key, fd)
        return fd


def safe_extract(
    source: Path | bytes | BinaryIO,
    dest: Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_files: int = DEFAULT_MAX_FILES,
) -> ExtractResult:
    """Unpack a tar.gz into dest (created if missing), refusing anything unsafe.

    Refused with UnsafePathError: absolute names, `..` components, backslashes, entries that
    would pass through a symlink, links whose target leaves dest, devices and FIFOs. Refused
    with ArchiveLimitError: more than max_files entries, more than max_bytes of file content,
    or a stream that inflates beyond what those limits allow. Links inside dest are created.
    On error, what was already extracted stays in dest (the caller owns it); nothing is ever
    written outside it.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or not dest.is_dir():
        raise ArchiveError(f"destination {dest} is not a directory")
    raw, owned = _open_source(source)
    gunzip = _Gunzip(raw, _READ_AHEAD + _HEADER_ALLOWANCE)
    tree = _Tree(dest)
    files = dirs = links = 0
    content = 0
    symlinks: list[str] = []
    try:
        stream = cast(BinaryIO, io.BufferedReader(gunzip))
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                parts = _member_parts(member.name)
                if not parts:
                    continue  # the root entry "."
                if files + dirs + links + 1 > max_files:
                    raise ArchiveLimitError(f"archive holds more than {max_files} entries")
                if member.isreg() and not member.issparse():
                    content += member.size
                    if content > max_bytes:
                        raise ArchiveLimitError(
                            f"archive content exceeds {max_bytes} bytes (at {member.name!r})"
                        )
                gunzip.budget += _HEADER_ALLOWANCE + max(member.size, 0)
                rel = "/".join(parts)
                if member.isdir():
                    fd = tree.parent_fd(parts, rel, create=True)
                    _make_dir(fd, parts[-1], rel, member.mode)
                    dirs += 1
                elif member.isreg() and not member.issparse():
                    fd = tree.parent_fd(parts, rel, create=True)
                    fileobj = cast(BinaryIO, tar.extractfile(member))
                    _write_file(fd, parts[-1], rel, member.mode, fileobj, member.size)
                    files += 1
                elif member.issym():
                    if _link_escapes(rel, member.linkname):
                        raise UnsafePathError(
                            rel, f"symlink to {member.linkname!r} leaves the destination"
                        )
                    fd = tree.parent_fd(parts, rel, create=True)
                    try:
                        os.symlink(member.linkname, parts[-1], dir_fd=fd)
                    except FileExistsError:
                        raise UnsafePathError(rel, "symlink over an existing path") from None
                    symlinks.append(rel)
                    links += 1
                elif member.islnk():
                    _hard_link(tree, parts, rel, member.linkname)
                    links += 1
                else:
                    raise UnsafePathError(rel, "device, FIFO or other special file")
        _check_symlinks(dest, symlinks)
    except tarfile.TarError as e:
        raise ArchiveError(f"corrupt tar archive: {e}") from e
    finally:
        tree.close()
        if owned:
            raw.close()
    return ExtractResult(files=files, directories=dirs, links=links, content_bytes=content)


def _make_dir(parent_fd: int, name: str, rel: str, mode: int) -> None:
    try:
        os.mkdir(name, (mode & 0o777) | 0o700, dir_fd=parent_fd)
    except FileExistsError:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafePathError(rel, "directory entry over an existing non-directory") from None


def _write_file(parent_fd: int, name: str, rel: str, mode: int, src: BinaryIO, size: int) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, mode & 0o777, dir_fd=parent_fd)
    except OSError as e:
        raise UnsafePathError(rel, f"cannot create file here: {e.strerror}") from e
    written = 0
    try:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    if written != size:
        raise ArchiveError(f"{rel!r}: wrote {written} bytes, header says {size}")


def _hard_link(tree: _Tree, parts: list[str], rel: str, linkname: str) -> None:
    target_parts = _member_parts(linkname)
    if not target_parts:
        raise UnsafePathError(rel, "hard link to the destination root")
    target = "/".join(target_parts)
    src_fd = os.dup(tree.parent_fd(target_parts, rel, create=False))
    try:
        st = os.stat(target_parts[-1], dir_fd=src_fd, follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            # A hard link to a symlink would move a relative target to a new place.
            raise UnsafePathError(rel, f"hard link to {target!r}, which is not a regular file")
        dst_fd = tree.parent_fd(parts, rel, create=True)
        os.link(
            target_parts[-1],
            parts[-1],
            src_dir_fd=src_fd,
            dst_dir_fd=dst_fd,
            follow_symlinks=False,
        )
    except FileNotFoundError:
        raise UnsafePathError(rel, f"hard link to {target!r}, not in the archive") from None
    except FileExistsError:
        raise UnsafePathError(rel, "hard link over an existing path") from None
    finally:
        os.close(src_fd)


def _check_symlinks(dest: Path, symlinks: list[str]) -> None:
    # Each link was checked on its own, but links can combine (a -> ., b -> a/a/..): resolve
    # every one against the finished tree, as a reader of it would. realpath, not
    # Path.resolve: a link loop is harmless here and must not raise.
    root = os.path.realpath(dest)
    for rel in symlinks:
        link = Path(root, rel)
        resolved = os.path.realpath(link)
        if resolved != root and not resolved.startswith(root + os.sep):
            link.unlink()
            raise UnsafePathError(rel, "symlink resolves outside the destination")
