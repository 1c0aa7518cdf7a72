"""Artifact files on disk, the way source-controller keeps them (fluxcd/pkg artifact/storage).

Layout: `<root>/<kind-lowercase>/<namespace>/<name>/<filename>`, served over HTTP at
`http://<advertised-address>/<path>`. Writes are atomic (temp file in the same directory,
chmod 0600, rename). Every path is confined to the root: one that would leave it, lexically
or through a symlink inside the storage, raises StoragePathError.

The API is blocking file I/O; asyncio callers run it in a worker thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import posixpath
import shutil
import socket
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import msgspec

from tidal.api.meta import Artifact
from tidal.source.archive import Hasher, Sink, digest_file, new_hasher, parse_digest

DEFAULT_RETENTION_TTL = timedelta(minutes=1)
DEFAULT_RETENTION_RECORDS = 2
GARBAGE_COUNT_LIMIT = 1000  # files looked at per GC run, as in Flux
LOCK_SUFFIX = ".lock"


class StorageError(Exception):
    """A storage operation failed."""


class StoragePathError(StorageError, ValueError):
    """A path that would leave the storage root, or is not a valid artifact path."""


# -- time -----------------------------------------------------------------------------------------


def format_time(when: datetime) -> str:
    """RFC3339 the way metav1.Time serialises: UTC, whole seconds, `Z`."""
    if when.tzinfo is None:
        raise ValueError("naive datetime: give a timezone-aware one")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """An RFC3339 timestamp (`Z` or an offset, fractional seconds allowed) as aware UTC."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no timezone")
    return parsed.astimezone(UTC)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# -- the artifact ---------------------------------------------------------------------------------


# -- addresses ------------------------------------------------------------------------------------


def advertised_address(storage_address: str = ":9090", advertised: str = "") -> str:
    """`--storage-adv-addr` if set; else the bind address with its host made reachable:
    empty -> localhost, 0.0.0.0 -> $HOSTNAME or the host name."""
    if advertised:
        return advertised
    host, sep, port = storage_address.rpartition(":")
    if not sep:
        raise ValueError(f"invalid storage address {storage_address!r}: want host:port")
    host = host.strip("[]")
    if host == "":
        host = "localhost"
    elif host == "0.0.0.0":  # noqa: S104 - comparing, not binding
        host = os.environ.get("HOSTNAME") or socket.gethostname()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _component(value: str, what: str) -> str:
    if not value or value in (".", "..") or "/" in value or "\0" in value:
        raise StoragePathError(f"invalid artifact {what} {value!r}")
    return value


def artifact_dir(kind: str, namespace: str, name: str) -> str:
    """`<kind-lowercase>/<namespace>/<name>`."""
    return "/".join(
        (
            _component(kind.lower(), "kind"),
            _component(namespace, "namespace"),
            _component(name, "name"),
        )
    )


def artifact_path(kind: str, namespace: str, name: str, filename: str) -> str:
    """`<kind-lowercase>/<namespace>/<name>/<filename>`."""
    return f"{artifact_dir(kind, namespace, name)}/{_component(filename, 'file name')}"


class _HashingSink:
    def __init__(self, out: Sink, algorithm: str) -> None:
        self._out = out
        self._algorithm = algorithm
        self._hasher: Hasher = new_hasher(algorithm)
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self._out.write(data)
        self._hasher.update(data)
        self.size += len(data)
        return len(data)

    @property
    def digest(self) -> str:
        return f"{self._algorithm}:{self._hasher.hexdigest()}"


# -- storage --------------------------------------------------------------------------------------


class Storage:
    def __init__(
        self,
        root: Path,
        hostname: str,
        *,
        retention_ttl: timedelta = DEFAULT_RETENTION_TTL,
        retention_records: int = DEFAULT_RETENTION_RECORDS,
        digest_algorithm: str = "sha256",
    ) -> None:
        if not root.is_dir():
            raise StorageError(f"invalid dir path: {root}")
        new_hasher(digest_algorithm)
        self.root = Path(os.path.realpath(root))
        self.hostname = hostname
        self.retention_ttl = retention_ttl
        self.retention_records = retention_records
        self.digest_algorithm = digest_algorithm

    # paths and URLs

    def local_path(self, path: str) -> Path:
        """The file for an artifact path, which must stay inside the root."""
        if not path or "\0" in path:
            raise StoragePathError(f"invalid artifact path {path!r}")
        clean = posixpath.normpath(path.lstrip("/"))
        if clean in (".", "..") or clean.startswith("../"):
            raise StoragePathError(f"artifact path {path!r} leaves the storage root")
        local = self.root / clean
        # A symlink inside the storage must not lead out of it either.
        real = os.path.realpath(local)
        if real != str(self.root) and not real.startswith(f"{self.root}{os.sep}"):
            raise StoragePathError(f"artifact path {path!r} leaves the storage root")
        return local

    def url_for(self, path: str) -> str:
        path = path.lstrip("/")
        if self.hostname.startswith(("http://", "https://")):
            return f"{self.hostname}/{path}"
        return f"http://{self.hostname}/{path}"

    def with_current_url(self, artifact: Artifact) -> Artifact:
        """The artifact with its URL rebuilt from its path for today's advertised address."""
        return msgspec.structs.replace(artifact, url=self.url_for(artifact.path))

    def set_hostname(self, url: str) -> str:
        """`url` with its host replaced by the advertised address (for `status.url`).

        A scheme in the advertised address is dropped here; Flux would put it into the host.
        """
        parts = urlsplit(url)
        host = self.hostname.split("://", 1)[-1].rstrip("/")
        return urlunsplit(parts._replace(netloc=host))

    # writing

    def _make_dirs(self, directory: Path) -> None:
        missing: list[Path] = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for d in reversed(missing):
            with contextlib.suppress(FileExistsError):
                d.mkdir(mode=0o700)

    def write_atomic(
        self, path: str, produce: Callable[[Sink], object], *, mode: int = 0o600
    ) -> tuple[str, int]:
        """Write the artifact file from what `produce` writes; return (digest, size).

        Readers see the old file or the new one, never a partial one.
        """
        local = self.local_path(path)
        self._make_dirs(local.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{local.name}.", suffix=".tmp", dir=local.parent)
        try:
            with os.fdopen(fd, "wb") as raw:
                sink = _HashingSink(raw, self.digest_algorithm)
                produce(sink)
                raw.flush()
                os.fsync(raw.fileno())
            Path(tmp).chmod(mode)
            Path(tmp).replace(local)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                Path(tmp).unlink()
            raise
        return sink.digest, sink.size

    def store(
        self,
        path: str,
        revision: str,
        produce: Callable[[Sink], object],
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> Artifact:
        """Write an artifact file atomically and describe it for `status.artifact`."""
        digest, size = self.write_atomic(path, produce)
        return Artifact(
            path=path,
            url=self.url_for(path),
            revision=revision,
            digest=digest,
            last_update_time=format_time(now()),
            size=size,
            metadata=dict(metadata or {}),
        )

    def symlink(self, path: str, name: str) -> str:
        """Point `name`, beside the artifact file `path`, at it and return the link's URL (Flux's
        Storage.Symlink, for a stable `status.url`). The link is relative and replaced
        atomically, so readers never miss it."""
        local = self.local_path(path)
        link = local.parent / _component(name, "link name")
        tmp = local.parent / f".{name}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(local.name)
        tmp.replace(link)
        return self.url_for(f"{posixpath.dirname(path)}/{name}")

    @contextlib.contextmanager
    def lock(self, path: str) -> Iterator[None]:
        """Hold the artifact's lock (`<file>.lock`, flock) for the duration.

        flock excludes both other processes and other threads of this one, since each
        acquisition opens the lock file anew. It blocks: never call it on the event loop.
        """
        lock_path = self.local_path(path + LOCK_SUFFIX)
        self._make_dirs(lock_path.parent)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # reading

    def exists(self, artifact: Artifact) -> bool:
        """Whether the recorded artifact file is still there, as a regular file."""
        try:
            st = self.local_path(artifact.path).lstat()
        except (OSError, StoragePathError):
            return False
        return stat.S_ISREG(st.st_mode)

    def verify(self, artifact: Artifact) -> None:
        """Raise StorageError unless the file's bytes match `artifact.digest`."""
        if not artifact.digest:
            raise StorageError("artifact has no digest")
        algorithm, _ = parse_digest(artifact.digest)
        actual = digest_file(self.local_path(artifact.path), algorithm)
        if actual != artifact.digest:
            raise StorageError(f"computed digest doesn't match '{artifact.digest}'")

    # removing

    def garbage_files(self, current: str, *, at: datetime | None = None) -> list[Path]:
        """Files next to `current` (an artifact path) that garbage collection would delete.

        Flux's rule (GetGarbageFiles): every file but the current one whose mtime is older
        than the TTL; then, if at least `retention_records` files would remain, the oldest
        others too while the count allows. That count subtracts each newly collected file
        twice once any file expired, so fewer go than "keep N" suggests: kept for
        compatibility. Lock files and symlinks never count; at most 1000 files are looked at.
        Unlike Flux (which indexes files by mtime, losing all but one of those sharing a
        timestamp), ties are broken by path.
        """
        local = self.local_path(current)
        moment = (at or datetime.now(UTC)).timestamp()
        ttl = self.retention_ttl.total_seconds()
        files: list[tuple[float, str, Path]] = []
        garbage: list[Path] = []
        for path, st in self._artifact_files(local.parent):
            if path != local and moment - st.st_mtime > ttl:
                garbage.append(path)
            files.append((st.st_mtime, str(path), path))
        if len(files) - len(garbage) < self.retention_records:
            return garbage
        had_expired = bool(garbage)
        collected = 0
        for _, _, path in sorted(files):
            if path == local or path in garbage:
                continue
            remaining = len(files) - collected - (len(garbage) if had_expired else 0)
            if remaining > self.retention_records:
                garbage.append(path)
                collected += 1
        return garbage

    def _artifact_files(self, directory: Path) -> Iterator[tuple[Path, os.stat_result]]:
        count = 0
        for dirpath, dirnames, filenames in os.walk(directory):
            dirnames.sort()
            for name in sorted(filenames):
                if count >= GARBAGE_COUNT_LIMIT:
                    return
                if name.endswith(LOCK_SUFFIX):
                    continue
                path = Path(dirpath, name)
                try:
                    st = path.lstat()
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    count += 1
                    yield path, st

    def collect_garbage(self, current: str, *, at: datetime | None = None) -> list[Path]:
        """Delete the garbage files (and their lock files); return what was deleted."""
        deleted: list[Path] = []
        errors: list[str] = []
        for path in self.garbage_files(current, at=at):
            try:
                path.unlink()
                deleted.append(path)
            except FileNotFoundError:
                pass
            except OSError as e:
                errors.append(f"{path}: {e.strerror}")
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{LOCK_SUFFIX}").unlink()
        if errors:
            raise StorageError("failed to remove files: " + "; ".join(errors))
        return deleted

    def remove_all(self, kind: str, namespace: str, name: str) -> Path | None:
        """Delete an object's whole artifact directory; return it if it existed."""
        directory = self.local_path(artifact_dir(kind, namespace, name))
        if not directory.exists():
            return None
        shutil.rmtree(directory)
        return directory

    def remove_all_but_current(self, current: str) -> list[Path]:
        local = self.local_path(current)
        deleted: list[Path] = []
        for dirpath, _, filenames in os.walk(local.parent):
            for name in filenames:
                path = Path(dirpath, name)
                if path != local and not path.is_symlink():
                    path.unlink()
                    deleted.append(path)
        return deleted
