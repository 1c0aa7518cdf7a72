"""The dependencies of a chart packaged from a source artifact (Flux's DependencyManager).

Only the dependencies missing from the chart's charts/ directory are resolved. They come from
Chart.lock when there is one, from Chart.yaml otherwise (requirements.yaml for apiVersion v1):

- `file://<path>` or no repository: a chart directory (or archive) at that path from the chart
  directory, confined to the source artifact; its version must satisfy the constraint;
- `http(s)://...` and `oci://...`: pulled through `repository_for(url)`, which finds the
  HelmRepository of that URL (see the reconciler); the highest version matching the
  constraint; `@alias` repositories are refused, as in Flux.

An alias renames the dependency inside the package. Errors name the dependency and are
Flux's texts.
"""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tidal.source.git.semver import Constraint, SemverError, Version
from tidal.source.helm.chart_package import (
    Chart,
    ChartError,
    confined,
    load_archive,
    load_archive_bytes,
    load_directory,
)
from tidal.source.helm.chart_repository import (
    Downloader,
    DownloadError,
    normalize_url,
)
from tidal.source.helm.chart_version import ChartReferenceError, IndexReadError

RepositoryFor = Callable[[str], Awaitable[Downloader]]


class DependencyError(Exception):
    pass


def _name(dep: dict[str, Any]) -> str:
    return str(dep.get("alias") or dep.get("name") or "")


def missing(chart: Chart) -> dict[str, dict[str, Any]]:
    """Flux's collectMissing: wanted dependencies with no chart of that name in charts/."""
    wanted = chart.lock_dependencies
    if wanted is None:
        wanted = [d for d in chart.metadata.get("dependencies") or [] if d is not None]
    if len(chart.dependencies) == len(wanted):
        return {}
    present = {c.name for c in chart.dependencies}
    return {_name(d): d for d in wanted if _name(d) not in present}


def _is_local(dep: dict[str, Any]) -> bool:
    repo = str(dep.get("repository") or "")
    return repo == "" or repo.startswith("file://")


def _local_path(chart_path: str, dep: dict[str, Any]) -> str:
    repo = str(dep.get("repository") or "")
    if not repo:
        return posixpath.join(chart_path, "charts", str(dep.get("name", "")))
    parts = urlsplit(repo)
    if parts.scheme not in ("", "file"):
        raise DependencyError(f"'{repo}' is not a local chart reference")
    return posixpath.join(chart_path, parts.netloc + parts.path)


def _load_local(root: Path, chart_path: str, dep: dict[str, Any]) -> Chart:
    rel = _local_path(chart_path, dep)
    repo = str(dep.get("repository") or "")
    try:
        path = confined(root, rel)
    except ChartError:
        raise DependencyError(f"no chart found at '/{rel}' (reference '{repo}')") from None
    shown = "/" + str(path.relative_to(root)) if path != root else "/"
    if not path.exists():
        raise DependencyError(f"no chart found at '{shown}' (reference '{repo}')")
    constraint_text = str(dep.get("version") or "")
    try:
        constraint = Constraint.parse(constraint_text or "*")
    except SemverError as e:
        raise DependencyError(
            f"invalid version/constraint format '{constraint_text}': {e}"
        ) from None
    try:
        if path.is_dir():
            loaded = load_directory(root, str(path.relative_to(root)))
        else:
            loaded = load_archive(path)
    except ChartError as e:
        raise DependencyError(
            f"failed to load chart from '{shown}' (reference '{repo}'): {e}"
        ) from None
    try:
        version = Version.parse(loaded.version)
    except SemverError as e:
        raise DependencyError(str(e)) from None
    if not constraint.check(version):
        raise DependencyError(f"can't get a valid version for constraint '{constraint_text}'")
    return loaded


def _validate_dep_url(url: str) -> None:
    if url.startswith(("oci://", "https://", "http://")):
        return
    if url.startswith("@"):
        raise DependencyError(f"aliased repository dependency is not supported: {url}")
    raise DependencyError(f"invalid dependency repository URL: {url}")


class DependencyManager:
    """Resolves the missing dependencies of one build; repositories are asked for once."""

    def __init__(self, repository_for: RepositoryFor) -> None:
        self._repository_for = repository_for
        self._repositories: dict[str, Downloader] = {}

    async def _repository(self, url: str) -> Downloader:
        normalized = normalize_url(url)
        _validate_dep_url(normalized)
        if normalized not in self._repositories:
            try:
                self._repositories[normalized] = await self._repository_for(normalized)
            except (DownloadError, DependencyError) as e:
                raise DependencyError(
                    f"failed to get chart repository for URL '{normalized}': {e}"
                ) from None
        return self._repositories[normalized]

    async def _remote(self, dep: dict[str, Any]) -> Chart:
        repo_url = str(dep.get("repository") or "")
        name, constraint = str(dep.get("name") or ""), str(dep.get("version") or "")
        repository = await self._repository(repo_url)
        try:
            version = await repository.get_chart_version(name, constraint)
        except (ChartReferenceError, IndexReadError, DownloadError) as e:
            raise DependencyError(
                f"failed to get chart '{name}' version '{constraint}' from '{repo_url}': {e}"
            ) from None
        try:
            data = await repository.download_chart(version)
        except DownloadError as e:
            raise DependencyError(
                f"chart download of version '{version.version}' failed: {e}"
            ) from None
        try:
            return await asyncio.to_thread(load_archive_bytes, data)
        except ChartError as e:
            raise DependencyError(
                f"failed to load downloaded archive of version '{version.version}': {e}"
            ) from None

    async def build(self, root: Path, chart_path: str, chart: Chart) -> int:
        """Add the missing dependencies to `chart`; return how many were added."""
        wanted = missing(chart)
        added: list[Chart] = []
        for name, dep in sorted(wanted.items()):
            if _is_local(dep):
                try:
                    loaded = await asyncio.to_thread(_load_local, root, chart_path, dep)
                except DependencyError as e:
                    raise DependencyError(f"failed to add local dependency '{name}': {e}") from None
            else:
                try:
                    loaded = await self._remote(dep)
                except DependencyError as e:
                    raise DependencyError(
                        f"failed to add remote dependency '{name}': {e}"
                    ) from None
            if dep.get("alias"):
                loaded.metadata["name"] = dep["alias"]
            added.append(loaded)
        chart.dependencies.extend(added)
        return len(added)
