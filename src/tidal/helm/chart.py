"""Loading chart archives (untrusted input) into what rendering and the release record need.

Helm's own loader (through the SDK) validates the archive: path traversal, decompressed size
limits, Chart.yaml, .helmignore. The release record wants the top-level chart's files as raw
bytes (Helm stores `[]byte`, the SDK hands out decoded text), so those are read again from the
archive by the names Helm's loader kept.

The SDK's render mutates its chart (Helm's ProcessDependencies removes subcharts whose
`condition`/`tags` are off, in place), so a loaded native chart must not be rendered twice:
LoadedChart keeps the archive and `native()` loads a fresh handle for each render.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml

from tidal.helm.errors import ChartError

__all__ = ["ChartError", "ChartFile", "LoadedChart", "load_chart"]

# The archive itself is checked by Helm's loader; these bound the second, Python-side read.
_MAX_MEMBERS = 20_000
_MAX_MEMBER_BYTES = 5 * 1024 * 1024  # Helm's MaxDecompressedFileSize default


@dataclass(frozen=True)
class ChartFile:
    name: str  # path inside the chart, e.g. "templates/deployment.yaml"
    data: bytes


@dataclass(frozen=True)
class LoadedChart:
    name: str
    version: str
    app_version: str
    metadata: dict[str, Any]
    values: dict[str, Any]
    templates: tuple[ChartFile, ...]
    files: tuple[ChartFile, ...]
    schema: bytes | None  # raw values.schema.json of the top-level chart
    crds: tuple[tuple[str, str], ...]  # (filename incl. chart path, text), subcharts' too
    lock: dict[str, Any] | None  # Chart.lock (or requirements.lock for apiVersion v1)
    dependencies: tuple[dict[str, Any], ...]  # metadata of the subcharts in charts/
    kube_version: str  # Chart.yaml kubeVersion constraint, "" if none
    archive: bytes = field(repr=False, compare=False)

    @contextmanager
    def native(self) -> Iterator[Any]:
        """A fresh SDK chart handle for one render (see the module docstring), then freed."""
        from tidal.helm import engine

        handle = engine.load_archive(self.archive)
        try:
            yield handle
        finally:
            handle.close()


def _raw_members(data: bytes) -> dict[str, bytes]:
    """Regular files of the top-level chart by chart-relative path (first component dropped)."""
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for count, member in enumerate(tar):
                if count > _MAX_MEMBERS:
                    raise ChartError(f"chart archive has more than {_MAX_MEMBERS} entries")
                if not member.isfile() or member.size > _MAX_MEMBER_BYTES:
                    continue
                parts = member.name.lstrip("./").split("/", 1)
                if len(parts) != 2 or parts[1].startswith("charts/"):
                    continue
                f = tar.extractfile(member)
                if f is not None:
                    out[parts[1]] = f.read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ChartError(f"reading chart archive: {e}") from None
    return out


def _files(listed: list[dict[str, str]], raw: dict[str, bytes]) -> tuple[ChartFile, ...]:
    # Helm's list decides which files exist (.helmignore applied); bytes come from the archive.
    return tuple(ChartFile(f["name"], raw.get(f["name"], f["data"].encode())) for f in listed)


def _lock(raw: dict[str, bytes]) -> dict[str, Any] | None:
    text = raw.get("Chart.lock") or raw.get("requirements.lock")
    if text is None:
        return None
    try:
        lock = yaml.safe_load(text)
    except yaml.YAMLError:
        return None  # Helm's loader already accepted the chart; a lock is informational
    return lock if isinstance(lock, dict) else None


def load_chart(data: bytes) -> LoadedChart:
    """Load a chart .tgz; ChartError with Helm's loader message if it is not a valid chart."""
    from tidal.helm import engine

    handle = engine.load_archive(data)
    try:
        info = engine.chart_info(handle)
    finally:
        handle.close()
    raw = _raw_members(data)
    meta: dict[str, Any] = info["metadata"]
    return LoadedChart(
        name=str(meta.get("name", "")),
        version=str(meta.get("version", "")),
        app_version=str(meta.get("appVersion", "")),
        metadata=meta,
        values=info["values"] or {},
        templates=_files(info["templates"], raw),
        files=_files(info["files"], raw),
        schema=raw.get("values.schema.json") if info["schema"] is not None else None,
        crds=tuple((c["filename"], c["data"]) for c in info["crds"]),
        lock=_lock(raw),
        dependencies=tuple(info["dependencies"]),
        kube_version=str(meta.get("kubeVersion", "")),
        archive=data,
    )
