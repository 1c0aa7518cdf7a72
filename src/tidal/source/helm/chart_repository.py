"""A Helm repository charts are pulled from: its index (the HelmRepository's stored artifact,
or fetched from the URL for a dependency without one) and the chart downloads; or an OCI
registry (tidal.source.oci), whose tags are the chart versions.

Chart URLs in the index may be relative: they resolve against the repository URL (Helm's
ResolveReferenceURL: the URL's path as a directory, its query kept). Credentials go only to
the repository's own scheme and host unless the HelmRepository sets passCredentials, as
Helm's HTTP getter decides. A download is bounded in time and to MAX_CHART_SIZE bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol
from urllib.parse import urljoin, urlsplit, urlunsplit

import aiohttp

from tidal.source.git.semver import Constraint, SemverError, Version
from tidal.source.helm.auth import BasicAuth
from tidal.source.helm.chart_package import MAX_CHART_SIZE
from tidal.source.helm.chart_version import ChartVersion, chart_entries, select
from tidal.source.helm.fetch import FetchError, IndexTooLarge, _get, redact
from tidal.source.oci.client import Client
from tidal.source.oci.errors import OCIError
from tidal.source.oci.manifest import select_layer
from tidal.source.oci.reference import Repository, parse_repository


class DownloadError(Exception):
    """A chart or index could not be downloaded (Flux's ErrExternal)."""


class Downloader(Protocol):
    """What the remote chart builder and the dependency manager need of a repository."""

    async def get_chart_version(self, name: str, constraint: str) -> ChartVersion: ...

    async def download_chart(self, version: ChartVersion) -> bytes: ...


def normalize_url(url: str) -> str:
    """Flux's repository.NormalizeURL: one trailing slash on http(s) paths, none on oci."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.scheme == "oci":
        return urlunsplit(parts._replace(path=parts.path.rstrip("/")))
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/"))


def resolve_reference_url(base: str, ref: str) -> str:
    """Helm's repo.ResolveReferenceURL."""
    if urlsplit(ref).scheme:
        return ref
    parts = urlsplit(base)
    directory = urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/", query=""))
    resolved = urlsplit(urljoin(directory, ref))
    return urlunsplit(resolved._replace(query=parts.query))


def _same_host(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return pa.scheme == pb.scheme and pa.netloc.rpartition("@")[2] == pb.netloc.rpartition("@")[2]


@dataclass
class HTTPChartRepository:
    """One repository: `url` (normalised), where the index comes from, and how to talk to it."""

    url: str
    load_index: Callable[[], Awaitable[bytes]]  # the index as normalised JSON
    session: aiohttp.ClientSession
    basic: BasicAuth | None = None
    tls: ssl.SSLContext | None = None
    pass_credentials: bool = False
    time_limit: float = 60.0
    _index: bytes | None = None

    async def _entries(self, name: str) -> list[ChartVersion]:
        if self._index is None:
            self._index = await self.load_index()
        return await asyncio.to_thread(chart_entries, self._index, name)

    async def get_chart_version(self, name: str, constraint: str) -> ChartVersion:
        return select(await self._entries(name), name, constraint)

    async def download_chart(self, version: ChartVersion) -> bytes:
        if not version.urls:
            raise DownloadError(f"chart '{version.name}' has no downloadable URLs")
        url = resolve_reference_url(self.url, version.urls[0])
        basic = self.basic if (self.pass_credentials or _same_host(self.url, url)) else None
        first = urlsplit(url)
        try:
            async with asyncio.timeout(self.time_limit):
                # fetch's GET: redirects, auth kept to the same host, a size bound.
                return await _get(self.session, first, basic, self.tls, MAX_CHART_SIZE)
        except TimeoutError:
            raise DownloadError(
                f'Get "{redact(url)}": context deadline exceeded '
                "(Client.Timeout exceeded while awaiting headers)"
            ) from None
        except IndexTooLarge:
            raise DownloadError(
                f"chart '{version.name}' exceeds the maximum chart size of {MAX_CHART_SIZE} bytes"
            ) from None
        except FetchError as e:
            raise DownloadError(str(e)) from None


# -- OCI registries -------------------------------------------------------------------------------

CHART_LAYER_MEDIA_TYPE: Final = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


def _tag_to_version(tag: str) -> str:
    # OCI tags cannot hold `+`: Helm pushes build metadata with `_` instead.
    return tag.replace("_", "+")


def latest_tag(tags: list[str], constraint: str) -> str:
    """Flux's getLastMatchingVersionOrConstraint over the chart versions of the tags."""
    if constraint and constraint in tags:
        return constraint
    try:
        parsed = Constraint.parse("*" if constraint in ("", "*") else constraint)
    except SemverError as e:
        raise DownloadError(str(e)) from None
    best: Version | None = None
    for tag in tags:
        try:
            version = Version.parse_tag(tag)
        except SemverError:
            continue
        if parsed.check(version) and (best is None or version > best):
            best = version
    if best is None:
        raise DownloadError(
            f"could not locate a version matching provided version string {constraint}"
        )
    return best.original


@dataclass
class OCIChartRepository:
    """Charts in an OCI registry: `<url>/<chart>:<version>`, the version chosen among the
    repository's tags unless it is an exact SemVer version already."""

    url: str  # normalised, oci://host/path
    client_for: Callable[[Repository], Client]
    time_limit: float = 60.0

    def _client(self, reference_url: str) -> Client:
        try:
            return self.client_for(parse_repository(reference_url))
        except OCIError as e:
            raise DownloadError(f"invalid chart URL format '{reference_url}': {e}") from None

    async def get_chart_version(self, name: str, constraint: str) -> ChartVersion:
        ref = f"{self.url}/{name}"
        with contextlib.suppress(SemverError):
            Version.parse_tag(constraint)
            return ChartVersion(name=name, version=constraint, urls=[f"{ref}:{constraint}"])
        client = self._client(ref)
        try:
            async with asyncio.timeout(self.time_limit):
                tags = [_tag_to_version(t) for t in await client.list_tags()]
        except (OCIError, TimeoutError, aiohttp.ClientError) as e:
            detail = str(e) or "context deadline exceeded"
            raise DownloadError(
                f'could not get tags for "{name}": could not fetch tags for "{ref}": {detail}'
            ) from None
        if not tags:
            raise DownloadError(
                f'could not get tags for "{name}": unable to locate any tags in provided '
                f"repository: {ref}"
            )
        tag = latest_tag(tags, constraint)
        return ChartVersion(name=name, version=tag, urls=[f"{ref}:{tag}"])

    async def download_chart(self, version: ChartVersion) -> bytes:
        if not version.urls:
            raise DownloadError(f"chart '{version.name}' has no downloadable URLs")
        ref = version.urls[0]
        repository_url, _, tag = ref.rpartition(":")
        client = self._client(repository_url)
        try:
            async with asyncio.timeout(self.time_limit):
                manifest = await client.fetch_image(tag.replace("+", "_"))
                layer = select_layer(manifest, CHART_LAYER_MEDIA_TYPE)
                return await client.fetch_blob_bytes(layer, max_size=MAX_CHART_SIZE)
        except (OCIError, TimeoutError, aiohttp.ClientError) as e:
            raise DownloadError(
                f"failed to get '{ref}': {e or 'context deadline exceeded'}"
            ) from None
