"""Building a chart artifact: Flux's remote builder (a chart pulled from a Helm repository) and
local builder (a chart directory or archive in a source artifact).

Both first settle the name and version the artifact would carry (the chart's version, plus
build metadata when Flux adds some). When the stored artifact already holds that chart and
version and nothing forces a rebuild (a new generation), the stored artifact is reused and
nothing is downloaded or packaged. Otherwise the chart is pulled as is, or loaded, given its
values files and dependencies, and packaged.

Errors carry Flux's build error reasons (InvalidChartReference, ChartPullError,
ValuesFilesError, ...) and texts "<summary>: <detail>".
"""

from __future__ import annotations

import asyncio
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tidal.source.helm.chart_deps import DependencyError, DependencyManager
from tidal.source.helm.chart_metadata import InvalidMetadata, validate
from tidal.source.helm.chart_package import (
    CHART_FILE,
    REQUIREMENTS_FILE,
    ChartError,
    archive_metadata,
    confined,
    load_archive,
    load_archive_bytes,
    load_directory,
    package_bytes,
    parse_metadata,
)
from tidal.source.helm.chart_repository import Downloader, DownloadError
from tidal.source.helm.chart_values import (
    ValuesError,
    effective,
    merge_chart_files,
    merge_source_files,
    overwrite_defaults,
)
from tidal.source.helm.chart_version import (
    ChartReferenceError,
    IndexReadError,
    VersionMetadataError,
    validate_chart_name,
    with_build_metadata,
)


@dataclass(frozen=True)
class Reason:
    reason: str
    summary: str


CHART_REFERENCE: Final = Reason("InvalidChartReference", "invalid chart reference")
CHART_PULL: Final = Reason("ChartPullError", "chart pull error")
CHART_METADATA_PATCH: Final = Reason("MetadataPatchError", "chart metadata patch error")
VALUES_FILES_MERGE: Final = Reason("ValuesFilesError", "values files merge error")
DEPENDENCY_BUILD: Final = Reason("DependencyBuildError", "dependency build error")
CHART_PACKAGE: Final = Reason("ChartPackageError", "chart package error")
UNKNOWN: Final = Reason("Unknown", "unknown build error")

# Errors retrying cannot fix: the object stalls until its spec changes.
PERSISTENT: Final = (CHART_REFERENCE, CHART_METADATA_PATCH, VALUES_FILES_MERGE)
# Errors of the build itself (BuildFailed); the others are fetch errors (FetchFailed).
BUILD_REASONS: Final = (CHART_METADATA_PATCH, VALUES_FILES_MERGE, DEPENDENCY_BUILD, CHART_PACKAGE)


class BuildError(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.summary}: {detail}" if reason.summary else detail)
        self.reason = reason
        self.detail = detail


@dataclass
class Build:
    """What a build produced; `data` None with `cached` set means the stored artifact."""

    name: str = ""
    version: str = ""
    data: bytes | None = None
    cached: bool = False
    values_files: list[str] = field(default_factory=list)
    resolved_dependencies: int = 0
    packaged: bool = False

    @property
    def has_metadata(self) -> bool:
        return bool(self.name and self.version)

    @property
    def complete(self) -> bool:
        return self.has_metadata and (self.data is not None or self.cached)

    def summary(self) -> str:
        if not self.has_metadata:
            return "no chart build"
        action = "new"
        if self.complete:
            action = "packaged" if self.packaged else "pulled"
        text = f"{action} '{self.name}' chart with version '{self.version}'"
        if self.values_files:
            text += f" and merged values files [{' '.join(self.values_files)}]"
        return text


@dataclass(frozen=True)
class Options:
    values_files: list[str] = field(default_factory=list)
    ignore_missing_values_files: bool = False
    version_metadata: str = ""
    # The stored artifact's chart (its Chart.yaml) and the values files it was made with.
    cached_metadata: dict[str, Any] | None = None
    cached_values_files: list[str] | None = None
    force: bool = False

    @property
    def effective_values_files(self) -> list[str]:
        return effective(self.values_files)


def _settle(name: str, version: str, opts: Options, requires_packaging: bool) -> Build:
    """The build's name and version; a complete cached build when the artifact has them."""
    result = Build(name=name, version=version)
    if opts.version_metadata:
        try:
            result.version = with_build_metadata(version, opts.version_metadata)
        except VersionMetadataError as e:
            raise BuildError(CHART_METADATA_PATCH, str(e)) from None
    cached = opts.cached_metadata
    if (
        cached is not None
        and not opts.force
        and cached.get("name") == result.name
        and cached.get("version") == result.version
    ):
        result.cached = True
        result.values_files = list(opts.effective_values_files)
        if opts.cached_values_files is not None:
            result.values_files = list(opts.cached_values_files)
        result.packaged = requires_packaging
    return result


def stored_metadata(path: Path) -> dict[str, Any] | None:
    """The stored chart's metadata when it loads and validates (Flux ignores a corrupt one)."""
    md = archive_metadata(path)
    if md is None:
        return None
    try:
        validate({k: v for k, v in md.items() if v or k in ("maintainers", "dependencies")})
    except InvalidMetadata:
        return None
    return md


# -- from a Helm repository -----------------------------------------------------------------------


async def build_remote(repository: Downloader, chart: str, constraint: str, opts: Options) -> Build:
    try:
        validate_chart_name(chart)
    except ChartReferenceError as e:
        raise BuildError(CHART_REFERENCE, str(e)) from None
    try:
        entry = await repository.get_chart_version(chart, constraint)
    except ChartReferenceError as e:
        raise BuildError(
            CHART_REFERENCE, f"failed to get chart version for remote reference: {e}"
        ) from None
    except (IndexReadError, DownloadError) as e:
        raise BuildError(
            CHART_PULL, f"failed to get chart version for remote reference: {e}"
        ) from None
    requires_packaging = bool(opts.effective_values_files or opts.version_metadata)
    result = _settle(entry.name, entry.version, opts, requires_packaging)
    if result.cached:
        return result
    try:
        data = await repository.download_chart(entry)
    except DownloadError as e:
        raise BuildError(
            CHART_PULL, f"failed to download chart for remote reference: {e}"
        ) from None
    if not requires_packaging:
        try:
            await asyncio.to_thread(load_archive_bytes, data)
        except ChartError as e:
            raise BuildError(
                CHART_PULL, f"failed to load chart metadata from written chart: {e}"
            ) from None
        result.data = data
        return result
    try:
        loaded = await asyncio.to_thread(load_archive_bytes, data)
    except ChartError as e:
        raise BuildError(CHART_PACKAGE, f"failed to load downloaded chart: {e}") from None
    loaded.metadata["version"] = result.version
    try:
        merged, used = merge_chart_files(
            loaded, opts.values_files, opts.ignore_missing_values_files
        )
    except ValuesError as e:
        raise BuildError(VALUES_FILES_MERGE, f"failed to merge chart values: {e}") from None
    try:
        if overwrite_defaults(loaded, merged):
            result.values_files = used
    except ValuesError as e:
        raise BuildError(VALUES_FILES_MERGE, str(e)) from None
    try:
        result.data = await asyncio.to_thread(package_bytes, loaded)
    except ChartError as e:
        raise BuildError(CHART_PACKAGE, str(e)) from None
    result.packaged = True
    return result


# -- from a source artifact -----------------------------------------------------------------------


def _local_metadata(root: Path, chart_path: str) -> tuple[dict[str, Any], bool]:
    """The chart's metadata at `chart_path` and whether it is a directory."""
    path = confined(root, chart_path)
    if not path.exists():
        raise ChartError(f"stat {chart_path}: no such file or directory")
    if path.is_dir():
        chart_file = path / CHART_FILE
        if not chart_file.is_file():
            raise ChartError(
                f"open {posixpath.join(chart_path, CHART_FILE)}: no such file or directory"
            )
        md = parse_metadata(confined(root, str(chart_file.relative_to(root))).read_bytes())
        if not md.get("apiVersion"):
            md["apiVersion"] = "v1"
        requirements = path / REQUIREMENTS_FILE
        if requirements.is_file():
            md["dependencies"] = parse_metadata(requirements.read_bytes(), REQUIREMENTS_FILE)[
                "dependencies"
            ]
        return md, True
    return load_archive(path).metadata, False


def _checked_metadata(root: Path, chart_path: str) -> tuple[dict[str, Any], bool]:
    if not chart_path:
        raise BuildError(CHART_REFERENCE, "no path set for local chart reference")
    if chart_path.startswith("/"):
        raise BuildError(CHART_REFERENCE, "local chart reference path is expected to be relative")
    try:
        md, is_dir = _local_metadata(root, chart_path)
        validate({k: v for k, v in md.items() if v or k in ("maintainers", "dependencies")})
    except (ChartError, InvalidMetadata, OSError) as e:
        raise BuildError(CHART_REFERENCE, str(e)) from None
    return md, is_dir


async def build_local(root: Path, chart_path: str, deps: DependencyManager, opts: Options) -> Build:
    md, is_dir = await asyncio.to_thread(_checked_metadata, root, chart_path)
    requires_packaging = bool(is_dir or opts.version_metadata or opts.effective_values_files)
    result = _settle(str(md.get("name")), str(md.get("version")), opts, requires_packaging)
    if result.cached:
        return result
    if not requires_packaging:
        try:
            result.data = await asyncio.to_thread(confined(root, chart_path).read_bytes)
        except (ChartError, OSError) as e:
            raise BuildError(CHART_PULL, str(e)) from None
        return result
    merged: dict[str, Any] | None = None
    used: list[str] = []
    if opts.effective_values_files:
        try:
            merged, used = await asyncio.to_thread(
                merge_source_files, root, opts.values_files, opts.ignore_missing_values_files
            )
        except ValuesError as e:
            raise BuildError(VALUES_FILES_MERGE, str(e)) from None
    try:
        if is_dir:
            loaded = await asyncio.to_thread(load_directory, root, chart_path)
        else:
            loaded = await asyncio.to_thread(load_archive, confined(root, chart_path))
    except ChartError as e:
        raise BuildError(CHART_PACKAGE, str(e)) from None
    loaded.metadata["version"] = result.version
    if merged is not None:
        try:
            if overwrite_defaults(loaded, merged):
                result.values_files = used
        except ValuesError as e:
            raise BuildError(VALUES_FILES_MERGE, str(e)) from None
    if is_dir:
        try:
            result.resolved_dependencies = await deps.build(root, chart_path, loaded)
        except DependencyError as e:
            raise BuildError(DEPENDENCY_BUILD, str(e)) from None
    try:
        result.data = await asyncio.to_thread(package_bytes, loaded)
    except ChartError as e:
        raise BuildError(CHART_PACKAGE, str(e)) from None
    result.packaged = requires_packaging
    return result
