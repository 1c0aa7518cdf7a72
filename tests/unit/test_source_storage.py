"""Artifact storage on disk: layout, URLs, atomic writes, locking, status round trip, garbage
collection with Flux's rule, removal, and confinement to the root."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tidal.api.meta import Artifact
from tidal.source.archive import Archiver, Sink
from tidal.source.storage import (
    Storage,
    StorageError,
    StoragePathError,
    advertised_address,
    artifact_dir,
    artifact_path,
    format_time,
    parse_time,
)

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
NOW_TEXT = "2026-05-01T12:00:00Z"


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    root = tmp_path / "data"
    root.mkdir()
    return Storage(root, "source-controller.flux-system.svc.cluster.local.")


# -- layout and URLs ------------------------------------------------------------------------------


def test_layout() -> None:
    assert artifact_dir("GitRepository", "flux-system", "podinfo") == (
        "gitrepository/flux-system/podinfo"
    )
    assert artifact_path("OCIRepository", "apps", "web", "abc.tar.gz") == (
        "ocirepository/apps/web/abc.tar.gz"
    )


@pytest.mark.parametrize(
    ("kind", "namespace", "name", "filename"),
    [
        ("GitRepository", "..", "x", "f"),
        ("GitRepository", "ns", "a/b", "f"),
        ("GitRepository", "ns", "x", ""),
        ("GitRepository", "ns", "x", "../../etc"),
        ("", "ns", "x", "f"),
    ],
)
def test_invalid_components(kind: str, namespace: str, name: str, filename: str) -> None:
    with pytest.raises(StoragePathError):
        artifact_path(kind, namespace, name, filename)


@pytest.mark.parametrize(
    ("hostname", "url"),
    [
        ("source-controller.flux-system.svc.cluster.local.", "http://source-controller.flux-system.svc.cluster.local./gitrepository/ns/x/f.tar.gz"),
        ("localhost:9090", "http://localhost:9090/gitrepository/ns/x/f.tar.gz"),
        ("https://artifacts.example.com", "https://artifacts.example.com/gitrepository/ns/x/f.tar.gz"),
        ("http://10.0.0.1:8080", "http://10.0.0.1:8080/gitrepository/ns/x/f.tar.gz"),
    ],
)  # fmt: skip
def test_url(tmp_path: Path, hostname: str, url: str) -> None:
    storage = Storage(tmp_path, hostname)
    assert storage.url_for("gitrepository/ns/x/f.tar.gz") == url
    assert storage.url_for("/gitrepository/ns/x/f.tar.gz") == url


def test_set_hostname_keeps_scheme_and_path(tmp_path: Path) -> None:
    storage = Storage(tmp_path, "new-host:9090")
    assert storage.set_hostname("http://old:80/helmrepository/ns/x/index.yaml") == (
        "http://new-host:9090/helmrepository/ns/x/index.yaml"
    )
    assert Storage(tmp_path, "https://h").set_hostname("http://old/p") == "http://h/p"


def test_with_current_url(storage: Storage) -> None:
    old = Artifact("gitrepository/ns/x/f.tar.gz", "http://old/f", "r", "sha256:0", NOW_TEXT)
    assert storage.with_current_url(old).url == storage.url_for(old.path)


@pytest.mark.parametrize(
    ("bind", "advertised", "expected"),
    [
        (":9090", "", "localhost:9090"),
        ("127.0.0.1:9090", "", "127.0.0.1:9090"),
        ("[::]:9090", "", "[::]:9090"),
        (":9090", "source-controller.flux-system.svc.", "source-controller.flux-system.svc."),
    ],
)
def test_advertised_address(bind: str, advertised: str, expected: str) -> None:
    assert advertised_address(bind, advertised) == expected


def test_advertised_address_wildcard_uses_hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTNAME", "source-controller-7d9f")
    assert advertised_address("0.0.0.0:9090") == "source-controller-7d9f:9090"


# -- confinement ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["../escape", "gitrepository/../../escape", "..", ".", "", "a/\0/b"]
)
def test_paths_outside_the_root_are_refused(storage: Storage, path: str) -> None:
    with pytest.raises(StoragePathError):
        storage.local_path(path)


def test_leading_slash_stays_inside(storage: Storage) -> None:
    assert storage.local_path("/gitrepository/ns/x/f") == storage.root / "gitrepository/ns/x/f"


def test_symlink_inside_storage_cannot_lead_out(storage: Storage, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (storage.root / "gitrepository").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StoragePathError):
        storage.local_path("gitrepository/ns/x/f.tar.gz")
    with pytest.raises(StoragePathError):
        storage.store("gitrepository/ns/x/f.tar.gz", "r", lambda out: out.write(b"x"))
    assert list((tmp_path / "elsewhere").iterdir()) == []


# -- writing --------------------------------------------------------------------------------------


def test_store_writes_atomically_with_digest_and_mode(storage: Storage, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "app.yaml").write_text("kind: ConfigMap\n")
    path = artifact_path("GitRepository", "flux-system", "podinfo", "abc.tar.gz")
    artifact = storage.store(
        path, "main@sha1:abc", lambda out: Archiver().from_directory(tree, out)
    )
    local = storage.root / path
    data = local.read_bytes()
    assert artifact.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert artifact.size == len(data)
    assert artifact.url == storage.url_for(path)
    assert artifact.revision == "main@sha1:abc"
    assert local.stat().st_mode & 0o777 == 0o600
    assert (storage.root / "gitrepository").stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in local.parent.iterdir()) == ["abc.tar.gz"]  # no temp left
    assert storage.exists(artifact)
    storage.verify(artifact)
    age = datetime.now(UTC) - parse_time(artifact.last_update_time)
    assert timedelta(0) <= age < timedelta(seconds=5)
    assert parse_time(artifact.last_update_time).microsecond == 0


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(storage: Storage) -> None:
    path = "gitrepository/ns/x/f.tar.gz"
    storage.store(path, "r1", lambda out: out.write(b"old"))

    def broken(out: Sink) -> None:
        out.write(b"partial")
        raise RuntimeError("producer failed")

    with pytest.raises(RuntimeError):
        storage.store(path, "r2", broken)
    local = storage.root / path
    assert local.read_bytes() == b"old"
    assert [p.name for p in local.parent.iterdir()] == ["f.tar.gz"]


def test_configured_digest_algorithm(tmp_path: Path) -> None:
    storage = Storage(tmp_path, "h", digest_algorithm="sha512")
    artifact = storage.store("k/n/x/f", "r", lambda out: out.write(b"data"))
    assert artifact.digest == "sha512:" + hashlib.sha512(b"data").hexdigest()


def test_verify_detects_tampering(storage: Storage) -> None:
    artifact = storage.store("k/n/x/f", "r", lambda out: out.write(b"data"))
    (storage.root / "k/n/x/f").write_bytes(b"evil")
    with pytest.raises(StorageError, match="doesn't match"):
        storage.verify(artifact)


def test_exists_is_false_for_missing_or_non_regular(storage: Storage) -> None:
    artifact = storage.store("k/n/x/f", "r", lambda out: out.write(b"data"))
    (storage.root / "k/n/x/f").unlink()
    assert not storage.exists(artifact)
    (storage.root / "k/n/x/f").mkdir()
    assert not storage.exists(artifact)
    escaped = Artifact("../outside", "u", "r", "", NOW_TEXT)
    assert not storage.exists(escaped)


def test_lock_excludes_other_threads(storage: Storage) -> None:
    path = "gitrepository/ns/x/f.tar.gz"
    order: list[str] = []
    inside = threading.Event()

    def other() -> None:
        inside.wait()
        with storage.lock(path):
            order.append("other")

    thread = threading.Thread(target=other)
    thread.start()
    with storage.lock(path):
        inside.set()
        time.sleep(0.2)
        order.append("first")
    thread.join(timeout=5)
    assert order == ["first", "other"]
    assert (storage.root / (path + ".lock")).exists()


# -- the status object ----------------------------------------------------------------------------


def test_status_uses_flux_field_names() -> None:
    artifact = Artifact(
        path="gitrepository/flux-system/podinfo/abc.tar.gz",
        url="http://h/gitrepository/flux-system/podinfo/abc.tar.gz",
        revision="main@sha1:abc",
        digest="sha256:0123",
        last_update_time="2026-05-01T12:00:00Z",
        size=1234,
        metadata={"org.opencontainers.image.revision": "main@sha1:abc"},
    )
    status = artifact.to_dict()
    assert status == {
        "path": "gitrepository/flux-system/podinfo/abc.tar.gz",
        "url": "http://h/gitrepository/flux-system/podinfo/abc.tar.gz",
        "revision": "main@sha1:abc",
        "digest": "sha256:0123",
        "lastUpdateTime": "2026-05-01T12:00:00Z",
        "size": 1234,
        "metadata": {"org.opencontainers.image.revision": "main@sha1:abc"},
    }


def test_empty_optional_fields_are_omitted() -> None:
    status = Artifact("p", "u", "r", "sha256:00", NOW_TEXT).to_dict()
    assert status == {
        "path": "p",
        "url": "u",
        "revision": "r",
        "digest": "sha256:00",
        "lastUpdateTime": "2026-05-01T12:00:00Z",
    }


def test_status_round_trip() -> None:
    artifact = Artifact("p", "u", "r", "sha256:00", NOW_TEXT, 10, {"a": "b"})
    assert Artifact.from_dict(artifact.to_dict()) == artifact


def test_stored_artifact_time_is_whole_seconds_utc(storage: Storage) -> None:
    artifact = storage.store("k/n/x/f", "r", lambda out: out.write(b"data"))
    assert parse_time(artifact.last_update_time).microsecond == 0
    assert artifact.last_update_time.endswith("Z")


@pytest.mark.parametrize(
    "status",
    [
        {"url": "u", "revision": "r", "digest": "sha256:0", "lastUpdateTime": NOW_TEXT},
        {"path": "p", "url": "u", "revision": "r", "digest": "sha256:0"},
        {"path": "p", "url": "u", "revision": "r", "digest": "nocolon", "lastUpdateTime": NOW_TEXT},
        {
            "path": "p",
            "url": "u",
            "revision": "r",
            "digest": "sha256:0",
            "lastUpdateTime": NOW_TEXT,
            "size": "12",
        },
    ],
)
def test_bad_status_is_refused(status: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Artifact.from_dict(status)


def test_time_format() -> None:
    assert format_time(datetime(2026, 1, 2, 4, 5, 6, 789, tzinfo=UTC)) == "2026-01-02T04:05:06Z"
    plus_two = datetime.fromisoformat("2026-01-02T06:05:06+02:00")
    assert format_time(plus_two) == "2026-01-02T04:05:06Z"
    assert parse_time("2026-01-02T04:05:06Z") == datetime(2026, 1, 2, 4, 5, 6, tzinfo=UTC)
    with pytest.raises(ValueError):
        format_time(datetime(2026, 1, 2))


def test_revision_and_digest_equality_is_plain() -> None:
    artifact = Artifact("p", "u", "main@sha1:" + "a" * 40, "sha256:00", NOW_TEXT)
    assert artifact.has_revision("main@sha1:" + "a" * 40)
    assert not artifact.has_revision("main/" + "a" * 40)
    assert artifact.has_digest("sha256:00")
    assert not artifact.has_digest("sha256:01")


# -- garbage collection ---------------------------------------------------------------------------

DIR = "gitrepository/ns/app"


def put(storage: Storage, name: str, age: timedelta) -> Path:
    path = storage.root / DIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(name.encode())
    stamp = (NOW - age).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def names(paths: list[Path]) -> list[str]:
    return sorted(p.name for p in paths)


def left(storage: Storage) -> list[str]:
    return sorted(p.name for p in (storage.root / DIR).iterdir())


def test_gc_deletes_expired_and_keeps_current(storage: Storage) -> None:
    put(storage, "old1.tar.gz", timedelta(minutes=10))
    put(storage, "old2.tar.gz", timedelta(minutes=5))
    put(storage, "current.tar.gz", timedelta(minutes=30))  # current is kept however old
    deleted = storage.collect_garbage(f"{DIR}/current.tar.gz", at=NOW)
    assert names(deleted) == ["old1.tar.gz", "old2.tar.gz"]
    assert left(storage) == ["current.tar.gz"]


def test_gc_keeps_recent_files_within_the_record_count(storage: Storage) -> None:
    put(storage, "recent.tar.gz", timedelta(seconds=20))
    put(storage, "current.tar.gz", timedelta(seconds=1))
    assert storage.collect_garbage(f"{DIR}/current.tar.gz", at=NOW) == []
    assert left(storage) == ["current.tar.gz", "recent.tar.gz"]


def test_gc_trims_recent_files_down_to_the_record_count(storage: Storage) -> None:
    for i in range(5):
        put(storage, f"r{i}.tar.gz", timedelta(seconds=50 - i))
    put(storage, "current.tar.gz", timedelta(seconds=1))
    deleted = storage.collect_garbage(f"{DIR}/current.tar.gz", at=NOW)
    assert names(deleted) == ["r0.tar.gz", "r1.tar.gz", "r2.tar.gz", "r3.tar.gz"]  # oldest first
    assert left(storage) == ["current.tar.gz", "r4.tar.gz"]


def test_gc_with_expired_and_too_many_recent_follows_flux_arithmetic(storage: Storage) -> None:
    # Flux subtracts each newly collected file twice once something expired: of 6 files with
    # one expired and records=2, it deletes the expired one and two more, keeping 3, not 2.
    put(storage, "expired.tar.gz", timedelta(minutes=5))
    for i in range(4):
        put(storage, f"r{i}.tar.gz", timedelta(seconds=50 - i))
    put(storage, "current.tar.gz", timedelta(seconds=1))
    deleted = storage.collect_garbage(f"{DIR}/current.tar.gz", at=NOW)
    assert names(deleted) == ["expired.tar.gz", "r0.tar.gz", "r1.tar.gz"]
    assert left(storage) == ["current.tar.gz", "r2.tar.gz", "r3.tar.gz"]


def test_gc_options_and_lock_files(tmp_path: Path) -> None:
    storage = Storage(tmp_path, "h", retention_ttl=timedelta(hours=1), retention_records=5)
    for i in range(3):
        put(storage, f"r{i}.tar.gz", timedelta(minutes=30 + i))
    put(storage, "r2.tar.gz.lock", timedelta(days=1))
    put(storage, "ancient.tar.gz", timedelta(hours=2))
    put(storage, "ancient.tar.gz.lock", timedelta(days=1))
    put(storage, "current.tar.gz", timedelta(0))
    deleted = storage.collect_garbage(f"{DIR}/current.tar.gz", at=NOW)
    assert names(deleted) == ["ancient.tar.gz"]
    assert left(storage) == [
        "current.tar.gz",
        "r0.tar.gz",
        "r1.tar.gz",
        "r2.tar.gz",
        "r2.tar.gz.lock",
    ]


def test_gc_skips_symlinks(storage: Storage) -> None:
    put(storage, "current.tar.gz", timedelta(minutes=5))
    (storage.root / DIR / "latest.tar.gz").symlink_to(storage.root / DIR / "current.tar.gz")
    assert storage.collect_garbage(f"{DIR}/current.tar.gz", at=NOW) == []
    assert left(storage) == ["current.tar.gz", "latest.tar.gz"]


def test_gc_of_missing_directory_is_a_no_op(storage: Storage) -> None:
    assert storage.collect_garbage(f"{DIR}/current.tar.gz", at=NOW) == []


# -- removal --------------------------------------------------------------------------------------


def test_remove_all(storage: Storage) -> None:
    put(storage, "a.tar.gz", timedelta(0))
    put(storage, "a.tar.gz.lock", timedelta(0))
    other = storage.root / "gitrepository/ns/other/keep.tar.gz"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"x")
    removed = storage.remove_all("GitRepository", "ns", "app")
    assert removed == storage.root / DIR
    assert not (storage.root / DIR).exists()
    assert other.exists()
    assert storage.remove_all("GitRepository", "ns", "app") is None


def test_remove_all_but_current(storage: Storage) -> None:
    put(storage, "a.tar.gz", timedelta(0))
    put(storage, "b.tar.gz", timedelta(0))
    put(storage, "current.tar.gz", timedelta(0))
    deleted = storage.remove_all_but_current(f"{DIR}/current.tar.gz")
    assert names(deleted) == ["a.tar.gz", "b.tar.gz"]
    assert left(storage) == ["current.tar.gz"]


def test_storage_root_must_exist(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="invalid dir path"):
        Storage(tmp_path / "missing", "h")
