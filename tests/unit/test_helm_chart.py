"""HelmChart building blocks without a cluster: version selection, values merging, chart loading
(Chart.yaml, .helmignore, dependencies, untrusted paths) and the package layout."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from tidal.source.helm.chart_build import (
    CHART_REFERENCE,
    VALUES_FILES_MERGE,
    Build,
    BuildError,
    Options,
    build_local,
    build_remote,
    stored_metadata,
)
from tidal.source.helm.chart_deps import DependencyError, DependencyManager, missing
from tidal.source.helm.chart_ignore import IgnoreError, Rules
from tidal.source.helm.chart_package import (
    ChartError,
    archive_files,
    load_archive_bytes,
    load_directory,
    package_bytes,
    parse_metadata,
)
from tidal.source.helm.chart_repository import Downloader, normalize_url, resolve_reference_url
from tidal.source.helm.chart_values import effective, merge_maps, merge_source_files
from tidal.source.helm.chart_version import (
    ChartReferenceError,
    ChartVersion,
    chart_entries,
    select,
    validate_chart_name,
    with_build_metadata,
)
from tidal.source.helmchart import revision_metadata

# -- version selection ---------------------------------------------------------------------------


def entries(*versions: str, created: str = "2024-01-01T00:00:00Z") -> list[ChartVersion]:
    return [ChartVersion(name="app", version=v, created=created) for v in versions]


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        ("", "1.10.0"),
        ("*", "1.10.0"),  # prereleases only when asked for
        ("1.x", "1.10.0"),
        ("~1.2", "1.2.9"),
        (">=2.0.0-0", "2.0.0-rc.1"),
        ("2.0.0-rc.1", "2.0.0-rc.1"),  # an exact match, prerelease or not
        ("v1.2.9", "1.2.9"),
        ("1.2", "1.2.9"),  # Masterminds: 1.2 is 1.2.x
    ],
)
def test_select_picks_the_highest_matching_version(constraint: str, expected: str) -> None:
    found = entries("1.2.0", "1.2.9", "1.10.0", "2.0.0-rc.1", "v0.9.0", "1.1")
    assert select(found, "app", constraint).version == expected


def test_select_breaks_ties_on_creation_time_and_skips_loose_versions() -> None:
    older = ChartVersion(name="app", version="1.0.0+a", created="2024-01-01T00:00:00Z")
    newer = ChartVersion(name="app", version="1.0.0+b", created="2024-01-01T00:00:00.5Z")
    assert select([older, newer], "app", "*").version == "1.0.0+b"
    # `1.3` is not strict SemVer: a range passes over it (an exact match would not).
    assert select(entries("1.3", "1.2.0"), "app", ">=1.0.0").version == "1.2.0"
    assert select(entries("1.3", "1.2.0"), "app", "1.3").version == "1.3"


def test_select_errors_are_flux_s() -> None:
    with pytest.raises(ChartReferenceError, match=r"no 'app' chart with version matching '9\.x'"):
        select(entries("1.0.0"), "app", "9.x")
    with pytest.raises(ChartReferenceError, match="improper constraint"):
        select(entries("1.0.0"), "app", "not a range")


def test_chart_entries_decodes_only_the_chart_asked_for() -> None:
    index = json.dumps(
        {
            "apiVersion": "v1",
            "entries": {
                "app": [{"name": "app", "version": "1.0.0", "urls": ["app-1.0.0.tgz"]}, None],
                "other": "not even a list",
                "empty": [],
            },
        }
    ).encode()
    assert [e.version for e in chart_entries(index, "app")] == ["1.0.0"]
    with pytest.raises(ChartReferenceError, match="no chart name found"):
        chart_entries(index, "missing")
    with pytest.raises(ChartReferenceError, match="no chart version found"):
        chart_entries(index, "empty")


def test_chart_names_and_build_metadata() -> None:
    validate_chart_name("podinfo")
    validate_chart_name("org/chart.v2")
    for bad in ("", "Upper", "a b", "-" * 10 + "!" * 3):
        with pytest.raises(ChartReferenceError):
            validate_chart_name(bad)
    # A long hostile name is refused at once (no catastrophic backtracking).
    with pytest.raises(ChartReferenceError):
        validate_chart_name("a" * 50_000 + "_")
    assert with_build_metadata("v1.2", "abc.3") == "1.2.0+abc.3"
    assert with_build_metadata("1.0.0+old", "new") == "1.0.0+new"
    assert revision_metadata("GitRepository", "main@sha1:0123456789abcdef0123") == "0123456789ab"
    assert revision_metadata("Bucket", "sha256:fedcba9876543210") == "fedcba987654"


def test_urls_resolve_as_helm_resolves_them() -> None:
    assert normalize_url("https://charts.example.com/sub//") == "https://charts.example.com/sub/"
    assert normalize_url("oci://ghcr.io/org/") == "oci://ghcr.io/org"
    base = "https://charts.example.com/sub?token=x"
    assert resolve_reference_url(base, "app-1.0.0.tgz") == (
        "https://charts.example.com/sub/app-1.0.0.tgz?token=x"
    )
    assert resolve_reference_url(base, "https://cdn.example.com/a.tgz") == (
        "https://cdn.example.com/a.tgz"
    )


# -- values --------------------------------------------------------------------------------------


def test_merge_maps_is_flux_s() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1, "e": {"f": 1}}
    over = {"a": {"c": [3], "g": None}, "d": {"x": 1}, "e": "flat"}
    assert merge_maps(base, over) == {
        "a": {"b": 1, "c": [3], "g": None},
        "d": {"x": 1},
        "e": "flat",
    }
    assert effective(["./values.yaml"]) == []
    assert effective(["values.yaml", "prod.yaml"]) == ["values.yaml", "prod.yaml"]


def test_values_files_from_the_source_root(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("x: 1\ny: {z: 1}\n")
    (tmp_path / "b.yaml").write_text("y: {w: 2}\n")
    merged, used = merge_source_files(tmp_path, ["a.yaml", "b.yaml", "gone.yaml"], True)
    assert merged == {"x": 1, "y": {"z": 1, "w": 2}} and used == ["a.yaml", "b.yaml"]
    with pytest.raises(ValueError, match=r"no values file found at path '/gone\.yaml'"):
        merge_source_files(tmp_path, ["gone.yaml"], False)
    with pytest.raises(ValueError, match="no values file found"):
        merge_source_files(tmp_path, ["../../etc/passwd"], False)


# -- loading and packaging -----------------------------------------------------------------------


async def no_remote(url: str) -> Downloader:
    raise AssertionError(f"no remote repository expected: {url}")


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


CHART = {
    "app/Chart.yaml": (
        "apiVersion: v2\nname: app\nversion: 1.0.0\nunknownKey: dropped\n"
        "dependencies:\n- name: lib\n  version: '>=0.1.0'\n  repository: file://../lib\n"
    ),
    "app/values.yaml": "\ufeffreplicas: 1\n",
    "app/values.schema.json": "{}",
    "app/templates/cm.yaml": "kind: ConfigMap\n",
    "app/templates/.hidden": "x",
    "app/files/a.txt": "a",
    "app/notes.bak": "b",
    "app/.helmignore": "# comment\n*.bak\n",
    "lib/Chart.yaml": "apiVersion: v2\nname: lib\nversion: 0.2.0\n",
    "lib/values.yaml": "",
}


def test_directory_chart_is_packaged_in_helm_s_layout(tmp_path: Path) -> None:
    write(tmp_path, CHART)

    build = asyncio.run(build_local(tmp_path, "app", DependencyManager(no_remote), Options()))
    assert build.packaged and build.resolved_dependencies == 1
    assert build.summary() == "packaged 'app' chart with version '1.0.0'"
    assert build.data is not None
    assert gzip.decompress(build.data)  # a plain gzip stream
    with tarfile.open(fileobj=io.BytesIO(build.data)) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        chart_yaml = (tar.extractfile("app/Chart.yaml") or io.BytesIO()).read().decode()
    assert names == [
        "app/Chart.yaml",
        "app/values.yaml",
        "app/values.schema.json",
        "app/templates/cm.yaml",
        "app/.helmignore",
        "app/files/a.txt",
        "app/charts/lib/Chart.yaml",
        "app/charts/lib/values.yaml",
    ]
    assert all(m.isreg() and m.mode == 0o644 for m in members)
    assert "unknownKey" not in chart_yaml
    assert chart_yaml.startswith("apiVersion: v2\ndependencies:\n- name: lib\n")
    # The same chart packages to the same bytes.
    again = load_archive_bytes(build.data)
    assert package_bytes(again) == build.data


def test_values_files_replace_the_chart_values(tmp_path: Path) -> None:
    write(tmp_path, {**CHART, "env/prod.yaml": "replicas: 3\nimage: {tag: b}\n"})

    opts = Options(values_files=["app/values.yaml", "env/prod.yaml"], version_metadata="7")
    build = asyncio.run(build_local(tmp_path, "app", DependencyManager(no_remote), opts))
    assert build.version == "1.0.0+7"
    assert build.values_files == ["app/values.yaml", "env/prod.yaml"]
    assert build.data is not None
    files = dict(archive_files(build.data))
    assert files["values.yaml"] == b"image:\n  tag: b\nreplicas: 3\n"
    assert b"version: 1.0.0+7\n" in files["Chart.yaml"]

    with pytest.raises(BuildError) as e:
        asyncio.run(
            build_local(
                tmp_path,
                "app",
                DependencyManager(no_remote),
                Options(values_files=["app/values.yaml", "missing.yaml"]),
            )
        )
    assert e.value.reason == VALUES_FILES_MERGE
    assert str(e.value) == (
        "values files merge error: no values file found at path '/missing.yaml' "
        "(reference 'missing.yaml')"
    )


def test_cached_build_reuses_the_stored_chart(tmp_path: Path) -> None:
    write(tmp_path, CHART)

    opts = Options(cached_metadata={"name": "app", "version": "1.0.0"})
    build = asyncio.run(build_local(tmp_path, "app", DependencyManager(no_remote), opts))
    assert build.cached and build.data is None and build.complete
    assert Build(name="a", version="1").summary() == "new 'a' chart with version '1'"


def test_missing_chart_path_is_an_invalid_reference(tmp_path: Path) -> None:
    for path, message in (
        ("nope", "invalid chart reference: stat nope: no such file or directory"),
        ("../../etc", "invalid chart reference: path '../../etc' leaves the source artifact"),
        ("/abs", "invalid chart reference: local chart reference path is expected to be relative"),
    ):
        with pytest.raises(BuildError) as e:
            asyncio.run(build_local(tmp_path, path, DependencyManager(no_remote), Options()))
        assert e.value.reason == CHART_REFERENCE
        assert str(e.value) == message


def test_symlinks_out_of_the_artifact_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "src"
    write(root, {"app/Chart.yaml": "apiVersion: v2\nname: app\nversion: 1.0.0\n"})
    (tmp_path / "secret.txt").write_text("do not read")
    (root / "app" / "leak.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(ChartError, match="traverses outside root boundary"):
        load_directory(root, "app")
    (root / "app" / "leak.txt").unlink()
    (root / "app" / "up").symlink_to("../../secret.txt")
    with pytest.raises(ChartError, match="outside root"):
        load_directory(root, "app")


def _tgz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("app/../../evil", "chart illegally references parent directory"),
        ("Chart.yaml", "outside the base directory"),
        ("app//abs", "absolute paths"),
    ],
)
def test_hostile_archives_are_refused(name: str, message: str) -> None:
    archive = _tgz({"app/Chart.yaml": b"apiVersion: v2\nname: app\nversion: 1.0.0\n", name: b"x"})
    with pytest.raises(ChartError, match=message):
        load_archive_bytes(archive)


def test_archive_bombs_and_garbage_are_refused() -> None:
    with pytest.raises(ChartError, match="failed to read chart archive"):
        load_archive_bytes(b"not a tarball")
    big = _tgz({"app/Chart.yaml": b"name: app\n", "app/big": b"\0" * (6 << 20)})
    with pytest.raises(ChartError, match="larger than the maximum file size"):
        load_archive_bytes(big)
    with pytest.raises(ChartError, match=r"Chart\.yaml file is missing"):
        load_archive_bytes(_tgz({"app/values.yaml": b"a: 1\n"}))
    with pytest.raises(ChartError, match=r"chart\.metadata\.version"):
        load_archive_bytes(_tgz({"app/Chart.yaml": b"apiVersion: v2\nname: app\n"}))


def test_chart_yaml_is_read_into_helm_s_fields() -> None:
    md = parse_metadata(
        b"apiVersion: v2\nname: app\nversion: 1.0\nappVersion: 2\ndeprecated: true\n"
        b"maintainers:\n- name: me\n  email: me@example.com\n"
        b"dependencies:\n- name: db\n  alias: cache\n  repository: https://x\n  version: 1.x\n"
    )
    assert md["version"] == "1" and md["appVersion"] == "2" and md["deprecated"] is True
    assert md["dependencies"][0]["alias"] == "cache"
    with pytest.raises(ChartError):
        parse_metadata(b"name: [unclosed\n")


def test_missing_dependencies_honour_the_lock_and_vendored_charts(tmp_path: Path) -> None:
    write(tmp_path, {**CHART, "app/charts/lib/Chart.yaml": "name: lib\nversion: 0.2.0\n"})
    (tmp_path / "app/charts/lib/Chart.yaml").write_text(
        "apiVersion: v2\nname: lib\nversion: 0.2.0\n"
    )
    chart = load_directory(tmp_path, "app")
    assert [c.name for c in chart.dependencies] == ["lib"]
    assert missing(chart) == {}


def test_dependency_errors_name_the_dependency(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            **CHART,
            "app/Chart.yaml": "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n"
            "- name: lib\n  version: '>=9.0.0'\n  repository: file://../lib\n"
            "- name: x\n  version: 1.x\n  repository: '@alias'\n",
        },
    )
    chart = load_directory(tmp_path, "app")

    with pytest.raises(DependencyError) as e:
        asyncio.run(DependencyManager(no_remote).build(tmp_path, "app", chart))
    assert str(e.value) == (
        "failed to add local dependency 'lib': can't get a valid version for constraint '>=9.0.0'"
    )


# -- .helmignore ---------------------------------------------------------------------------------


def test_helmignore_has_helm_s_rules() -> None:
    rules = Rules.parse(b"*.bak\n/top.txt\ndocs/\nsub/*.md\n")
    rules.add_defaults()
    assert rules.ignore("a.bak", False) and rules.ignore("deep/a.bak", False)
    assert rules.ignore("top.txt", False) and not rules.ignore("x/top.txt", False)
    assert rules.ignore("docs", True) and not rules.ignore("docs", False)
    assert rules.ignore("sub/a.md", False) and not rules.ignore("sub/x/a.md", False)
    assert rules.ignore("templates/.hidden", False)
    assert not rules.ignore("templates/ok.yaml", False)
    # Helm's negation ignores what does NOT match it.
    negated = Rules.parse(b"!keep.txt\n")
    assert negated.ignore("other.txt", False) and not negated.ignore("keep.txt", False)
    with pytest.raises(IgnoreError, match="double-star"):
        Rules.parse(b"**/x\n")


class _CountingRepository:
    """A Downloader over one in-memory chart, counting downloads."""

    def __init__(self, archive: bytes) -> None:
        self.archive = archive
        self.downloads = 0

    async def get_chart_version(self, name: str, constraint: str) -> ChartVersion:
        return select(entries("1.0.0"), name, constraint)

    async def download_chart(self, version: ChartVersion) -> bytes:
        self.downloads += 1
        return self.archive


def test_remote_build_downloads_only_what_the_artifact_lacks(tmp_path: Path) -> None:
    archive = _tgz(
        {
            "app/Chart.yaml": b"apiVersion: v2\nname: app\nversion: 1.0.0\n",
            "app/values.yaml": b"a: 1\n",
            "app/prod.yaml": b"a: 2\n",
        }
    )
    repo = _CountingRepository(archive)
    pulled = asyncio.run(build_remote(repo, "app", "*", Options()))
    assert pulled.data == archive and not pulled.packaged and repo.downloads == 1
    stored = tmp_path / "app-1.0.0.tgz"
    stored.write_bytes(archive)
    cached = Options(cached_metadata=stored_metadata(stored))
    again = asyncio.run(build_remote(repo, "app", "*", cached))
    assert again.cached and repo.downloads == 1
    forced = Options(cached_metadata=stored_metadata(stored), force=True)
    asyncio.run(build_remote(repo, "app", "*", forced))
    assert repo.downloads == 2
    packaged = asyncio.run(
        build_remote(repo, "app", "*", Options(values_files=["prod.yaml"], version_metadata="4"))
    )
    assert packaged.version == "1.0.0+4" and packaged.packaged
    assert packaged.summary() == (
        "packaged 'app' chart with version '1.0.0+4' and merged values files [prod.yaml]"
    )
    assert packaged.data is not None
    assert dict(archive_files(packaged.data))["values.yaml"] == b"a: 2\n"


def test_stored_metadata_reads_helm_s_gzip_header(tmp_path: Path) -> None:
    # Helm's packages carry a gzip FEXTRA field, which tarfile's own "r|gz" misreads.
    write(tmp_path, CHART)
    stored = tmp_path / "app.tgz"
    stored.write_bytes(package_bytes(load_directory(tmp_path, "app")))
    md = stored_metadata(stored)
    assert md is not None and (md["name"], md["version"]) == ("app", "1.0.0")
    stored.write_bytes(b"corrupt")
    assert stored_metadata(stored) is None
