"""Helm charts in memory: loaded from an untrusted archive or directory, and packaged the way
`helm package` writes them (Helm's chartutil.Save).

A chart is its files sorted into Helm's groups (Chart.yaml as metadata, Chart.lock,
values.yaml, values.schema.json, templates/, other files, and charts/ as sub-charts). A package
is a gzip'd tar of regular files only, `<name>/Chart.yaml` first, then Chart.lock, values.yaml,
values.schema.json, the templates, the other files, and each dependency under
`<name>/charts/<dependency>/` in the same order. Chart.yaml is written from the parsed
metadata (Helm's known fields, keys sorted), so unknown keys are dropped as Helm drops them.
Entries carry mode 0644 and a zero mtime, so the same chart packages to the same bytes.

Everything read is bounded: the archive's compressed size, each file's size, the total
inflated size; paths that are absolute or climb out are refused, and directory loading never
leaves the root it was given (symlinks are followed only when they stay inside it).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import posixpath
import stat
import struct
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final

from tidal.kube import goyaml, yamlio
from tidal.source.archive import tar_headers
from tidal.source.helm.chart_ignore import HELMIGNORE, IgnoreError, Rules
from tidal.source.helm.chart_metadata import InvalidMetadata, validate

# source-controller's limits (internal/helm): a chart archive, any one file in a chart.
MAX_CHART_SIZE: Final = 10 << 20
MAX_CHART_FILE_SIZE: Final = 5 << 20
# Helm's loader limit on what a chart archive may inflate to.
MAX_DECOMPRESSED_CHART_SIZE: Final = 100 << 20
# Deeper sub-chart nesting than any real chart has: the guard against a recursive bomb.
MAX_CHART_DEPTH: Final = 16

CHART_FILE: Final = "Chart.yaml"
LOCK_FILE: Final = "Chart.lock"
VALUES_FILE: Final = "values.yaml"
SCHEMA_FILE: Final = "values.schema.json"
REQUIREMENTS_FILE: Final = "requirements.yaml"
REQUIREMENTS_LOCK_FILE: Final = "requirements.lock"
API_V1: Final = "v1"
API_V2: Final = "v2"

_UTF8_BOM: Final = b"\xef\xbb\xbf"
# The gzip header fields Helm writes into every package it saves.
_HELM_GZIP_EXTRA: Final = b"+aHR0cHM6Ly95b3V0dS5iZS96OVV6MWljandyTQo="
_HELM_GZIP_COMMENT: Final = b"Helm"


class ChartError(Exception):
    """A chart that cannot be loaded or packaged."""


# -- the metadata Helm knows (chart.Metadata), in the form it marshals ---------------------------

_STRING_FIELDS: Final = (
    "name",
    "home",
    "version",
    "description",
    "icon",
    "apiVersion",
    "condition",
    "tags",
    "appVersion",
    "kubeVersion",
    "type",
)
_DEP_STRING_FIELDS: Final = ("name", "version", "repository", "condition", "alias")


def _as_string(value: Any, where: str) -> str:
    """sigs.k8s.io/yaml's conversion of a scalar into a Go string field."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return goyaml.format_float32(value)
    if isinstance(value, str):
        return value
    raise ChartError(f"cannot load '{where}': {type(value).__name__} where a string is expected")


def _as_strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ChartError(f"cannot load '{where}': expected a list")
    return [_as_string(v, where) for v in value]


def _dependency(raw: Any, where: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ChartError(f"cannot load '{where}': a dependency must be a mapping")
    dep: dict[str, Any] = {k: _as_string(raw.get(k), where) for k in _DEP_STRING_FIELDS}
    dep["tags"] = _as_strings(raw.get("tags"), where)
    dep["enabled"] = bool(raw.get("enabled"))
    imports = raw.get("import-values")
    dep["import-values"] = imports if isinstance(imports, list) else []
    return dep


def parse_metadata(data: bytes, where: str = CHART_FILE) -> dict[str, Any]:
    """Chart.yaml (or requirements.yaml) read into Helm's Metadata fields; unknown keys go."""
    doc = _yaml_mapping(data, where)
    md: dict[str, Any] = {k: _as_string(doc.get(k), where) for k in _STRING_FIELDS}
    md["sources"] = _as_strings(doc.get("sources"), where)
    md["keywords"] = _as_strings(doc.get("keywords"), where)
    md["deprecated"] = bool(doc.get("deprecated"))
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise ChartError(f"cannot load '{where}': annotations must be a mapping")
    md["annotations"] = {str(k): _as_string(v, where) for k, v in annotations.items()}
    maintainers = doc.get("maintainers") or []
    if not isinstance(maintainers, list):
        raise ChartError(f"cannot load '{where}': maintainers must be a list")
    md["maintainers"] = [
        None
        if m is None
        else {k: _as_string(m.get(k), where) for k in ("name", "email", "url")}
        if isinstance(m, dict)
        else _fail(f"cannot load '{where}': a maintainer must be a mapping")
        for m in maintainers
    ]
    deps = doc.get("dependencies") or []
    if not isinstance(deps, list):
        raise ChartError(f"cannot load '{where}': dependencies must be a list")
    md["dependencies"] = [_dependency(d, where) for d in deps]
    return md


def _fail(message: str) -> Any:
    raise ChartError(message)


def _yaml_mapping(data: bytes, where: str) -> dict[str, Any]:
    try:
        docs = yamlio.load_all(data, source=where)
    except yamlio.ManifestError as e:
        raise ChartError(f"cannot load '{where}': {e}") from None
    return docs[0] if docs else {}


def marshal_metadata(md: dict[str, Any]) -> str:
    """yaml.Marshal(chart.Metadata): omitempty fields left out, keys sorted."""
    out: dict[str, Any] = {}
    for key, value in md.items():
        if key == "dependencies":
            deps = [_marshal_dependency(d) for d in value if d is not None]
            if deps:
                out[key] = deps
        elif key == "maintainers":
            kept = [{k: v for k, v in m.items() if v} for m in value if m is not None]
            if kept:
                out[key] = kept
        elif value:
            out[key] = value
    return goyaml.marshal(out)


def _marshal_dependency(dep: dict[str, Any]) -> dict[str, Any]:
    # name and repository have no omitempty in Helm's struct.
    out = {"name": dep.get("name", ""), "repository": dep.get("repository", "")}
    for key, value in dep.items():
        if key not in out and value:
            out[key] = value
    return out


# -- the chart ------------------------------------------------------------------------------------


@dataclass
class Chart:
    metadata: dict[str, Any]
    lock: bytes | None = None
    values: bytes | None = None  # values.yaml as found; None when the chart has none
    schema: bytes | None = None
    templates: list[tuple[str, bytes]] = field(default_factory=list)
    files: list[tuple[str, bytes]] = field(default_factory=list)
    dependencies: list[Chart] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", ""))

    @property
    def lock_dependencies(self) -> list[dict[str, Any]] | None:
        """The dependencies of Chart.lock (requirements.lock for apiVersion v1), if any."""
        if self.lock is None:
            return None
        doc = _yaml_mapping(self.lock, LOCK_FILE)
        deps = doc.get("dependencies") or []
        if not isinstance(deps, list):
            raise ChartError(f"cannot load '{LOCK_FILE}': dependencies must be a list")
        return [d for d in (_dependency(x, LOCK_FILE) for x in deps) if d is not None]


def _build(files: list[tuple[str, bytes]], depth: int) -> Chart:
    """Helm's loader.LoadFiles: group the files of one chart, load its sub-charts."""
    if depth > MAX_CHART_DEPTH:
        raise ChartError(f"sub-charts nested deeper than {MAX_CHART_DEPTH} levels")
    chart = Chart(metadata={})
    found_metadata = False
    requirements: bytes | None = None
    sub_dirs: dict[str, list[tuple[str, bytes]]] = {}
    sub_archives: list[tuple[str, bytes]] = []
    for name, data in files:
        if name == CHART_FILE:
            chart.metadata = parse_metadata(data)
            found_metadata = True
        elif name in (LOCK_FILE, REQUIREMENTS_LOCK_FILE):
            chart.lock = data
        elif name == VALUES_FILE:
            _yaml_mapping(data, VALUES_FILE)  # Helm refuses a chart whose values do not parse
            chart.values = data
        elif name == SCHEMA_FILE:
            chart.schema = data
        elif name == REQUIREMENTS_FILE:
            requirements = data
            chart.files.append((name, data))
        elif name.startswith("templates/"):
            chart.templates.append((name, data))
        elif name.startswith("charts/") and not name.endswith(".prov"):
            rest = name[len("charts/") :]
            sub, sep, inner = rest.partition("/")
            if sep:
                sub_dirs.setdefault(sub, []).append((inner, data))
            else:
                sub_archives.append((rest, data))
        else:
            chart.files.append((name, data))
    if not found_metadata:
        raise ChartError("Chart.yaml file is missing")
    if not chart.metadata.get("apiVersion"):
        chart.metadata["apiVersion"] = API_V1
    if requirements is not None and chart.metadata["apiVersion"] == API_V1:
        chart.metadata["dependencies"] = parse_metadata(requirements, REQUIREMENTS_FILE)[
            "dependencies"
        ]
    try:
        validate(_validation_view(chart.metadata))
    except InvalidMetadata as e:
        raise ChartError(str(e)) from None
    for sub, sub_files in sorted(sub_dirs.items()):
        try:
            chart.dependencies.append(_build(sub_files, depth + 1))
        except ChartError as e:
            raise ChartError(f"error unpacking subchart {sub} in {chart.name}: {e}") from None
    for archive_name, data in sub_archives:
        try:
            chart.dependencies.append(_load_archive_bytes(data, depth + 1))
        except ChartError as e:
            raise ChartError(
                f"error unpacking subchart {archive_name} in {chart.name}: {e}"
            ) from None
    return chart


def _validation_view(md: dict[str, Any]) -> dict[str, Any]:
    """The metadata as chart_metadata.validate reads it (an index entry's JSON shape)."""
    view = {k: v for k, v in md.items() if v or k in ("maintainers", "dependencies")}
    copied: dict[str, Any] = json.loads(json.dumps(view))
    return copied


# -- loading from an archive ----------------------------------------------------------------------


def load_archive(path: Path) -> Chart:
    """A chart from a .tgz on disk, bounded by MAX_CHART_SIZE."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ChartError(f"cannot read chart archive: {e.strerror}") from None
    if size > MAX_CHART_SIZE:
        raise ChartError(f"size of chart '{path.name}' exceeds '{MAX_CHART_SIZE}' bytes limit")
    return _load_archive_bytes(path.read_bytes(), 0)


def load_archive_bytes(data: bytes) -> Chart:
    if len(data) > MAX_CHART_SIZE:
        raise ChartError(f"size of chart exceeds '{MAX_CHART_SIZE}' bytes limit")
    return _load_archive_bytes(data, 0)


def _load_archive_bytes(data: bytes, depth: int) -> Chart:
    return _build(archive_files(data), depth)


def archive_files(data: bytes) -> list[tuple[str, bytes]]:
    """The files of a chart archive, relative to its top directory (Helm's LoadArchiveFiles)."""
    files: list[tuple[str, bytes]] = []
    total = 0
    try:
        with (
            gzip.GzipFile(fileobj=io.BytesIO(data)) as gz,
            tarfile.open(fileobj=gz, mode="r|") as tar,
        ):
            for member in tar:
                if member.isdir():
                    continue
                name = member.name.replace("\\", "/")
                parts = name.split("/")
                rel = "/".join(parts[1:])
                if rel.startswith("/") or name.startswith("/"):
                    raise ChartError("chart illegally contains absolute paths")
                clean = posixpath.normpath(rel) if rel else "."
                if clean == ".":
                    raise ChartError(
                        f"chart illegally contains content outside the base directory: "
                        f"{member.name}"
                    )
                if clean.startswith(".."):
                    raise ChartError("chart illegally references parent directory")
                if len(clean) > 1 and clean[1] == ":" and clean[0].isalpha():
                    raise ChartError("chart contains illegally named files")
                if parts[0] == CHART_FILE:
                    raise ChartError("chart yaml not in base directory")
                if not member.isreg():
                    # Helm reads only what a tar reader yields as data; links carry none.
                    continue
                if member.size > MAX_CHART_FILE_SIZE:
                    raise ChartError(
                        f"decompressed chart file {clean} is larger than the maximum file size "
                        f"{MAX_CHART_FILE_SIZE}"
                    )
                total += member.size
                if total > MAX_DECOMPRESSED_CHART_SIZE:
                    raise ChartError(
                        "decompressed chart is larger than the maximum size "
                        f"{MAX_DECOMPRESSED_CHART_SIZE}"
                    )
                stream = tar.extractfile(member)
                content = stream.read() if stream is not None else b""
                files.append((clean, content.removeprefix(_UTF8_BOM)))
    except (OSError, EOFError, tarfile.TarError, zlib.error) as e:
        raise ChartError(f"failed to read chart archive: {e}") from None
    if not files:
        raise ChartError("no files in chart archive")
    return files


def archive_metadata(path: Path) -> dict[str, Any] | None:
    """The Chart.yaml of a stored chart archive, read without loading the rest (Flux's
    LoadChartMetadataFromArchive), or None when it cannot be read: Flux then builds the chart
    again."""
    try:
        if path.stat().st_size > MAX_CHART_SIZE:
            return None
        # gzip, not tarfile's "r|gz": that one misreads the FEXTRA field Helm writes.
        with gzip.open(path, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            for member in tar:
                parts = member.name.split("/")
                if len(parts) == 2 and parts[1] == CHART_FILE and member.isreg():
                    if member.size > MAX_CHART_FILE_SIZE:
                        return None
                    stream = tar.extractfile(member)
                    md = parse_metadata(stream.read() if stream is not None else b"")
                    if not md.get("apiVersion"):
                        md["apiVersion"] = API_V1
                    return md
    except (OSError, EOFError, tarfile.TarError, zlib.error, ChartError):
        return None
    return None


# -- loading from a directory ---------------------------------------------------------------------


def load_directory(
    root: Path, chart_path: str, *, max_file_size: int = MAX_CHART_FILE_SIZE
) -> Chart:
    """A chart from `root/chart_path`, never reading outside `root` (Flux's secureloader)."""
    root = Path(os.path.realpath(root))
    base = confined(root, chart_path)
    if not base.is_dir():
        raise ChartError(f"no chart directory at '{chart_path}'")
    rules = Rules()
    ignore_file = base / HELMIGNORE
    if ignore_file.is_file():
        try:
            rules = Rules.parse(_read_confined(root, ignore_file, max_file_size))
        except IgnoreError as e:
            raise ChartError(f"cannot load ignore rules for chart: {e}") from None
    rules.add_defaults()
    files: list[tuple[str, bytes]] = []
    _walk(root, base, "", rules, files, max_file_size, set())
    shown = "/" + os.path.relpath(base, root) if base != root else "/"
    try:
        return _build(files, 0)
    except ChartError as e:
        raise ChartError(f"failed to load chart from {shown}: {e}") from None


def confined(root: Path, rel: str) -> Path:
    """`root/rel` with symlinks resolved, refused unless it stays inside `root`."""
    joined = os.path.realpath(root / rel.lstrip("/"))
    if joined != str(root) and not joined.startswith(f"{root}{os.sep}"):
        raise ChartError(f"path '{rel}' leaves the source artifact")
    return Path(joined)


def _read_confined(root: Path, path: Path, max_size: int) -> bytes:
    real = confined(root, os.path.relpath(path, root))
    st = real.stat()
    if not stat.S_ISREG(st.st_mode):
        raise ChartError(f"'{os.path.relpath(path, root)}' is not a regular file")
    if st.st_size > max_size:
        raise ChartError(
            f"cannot load file {os.path.relpath(path, root)} as file size ({st.st_size}) "
            f"exceeds limit ({max_size})"
        )
    with real.open("rb") as f:
        return f.read(max_size + 1)


def _walk(
    root: Path,
    directory: Path,
    prefix: str,
    rules: Rules,
    out: list[tuple[str, bytes]],
    max_size: int,
    seen: set[str],
) -> None:
    real_dir = os.path.realpath(directory)
    if real_dir in seen:
        raise ChartError(f"cannot load '{prefix.rstrip('/')}' directory: symlink loop")
    seen.add(real_dir)
    try:
        names = sorted((p.name for p in directory.iterdir()), key=os.fsencode)
    except OSError as e:
        raise ChartError(f"failed to load files from {prefix or '/'}: {e.strerror}") from None
    for entry in names:
        rel = prefix + entry
        path = directory / entry
        try:
            real = confined(root, os.path.relpath(path, root))
        except ChartError:
            kind = "directory" if path.is_dir() else "file"
            raise ChartError(
                f"cannot load '{rel}' {kind}: absolute path traverses outside root boundary"
            ) from None
        try:
            st = real.stat()
        except OSError as e:
            raise ChartError(f"error reading {rel}: {e.strerror}") from None
        is_dir = stat.S_ISDIR(st.st_mode)
        if rules.ignore(rel, is_dir):
            continue
        if is_dir:
            _walk(root, real, rel + "/", rules, out, max_size, seen)
            continue
        if not stat.S_ISREG(st.st_mode):
            raise ChartError(f"cannot load irregular file {rel} as it has file mode type bits set")
        if st.st_size > max_size:
            raise ChartError(
                f"cannot load file {rel} as file size ({st.st_size}) exceeds limit ({max_size})"
            )
        with real.open("rb") as f:
            data = f.read(max_size + 1)
        out.append((rel, data.removeprefix(_UTF8_BOM)))
    seen.discard(real_dir)


# -- packaging ------------------------------------------------------------------------------------


def _entries(chart: Chart, prefix: str) -> list[tuple[str, bytes]]:
    name = chart.name
    if not name or name in (".", "..") or "/" in name:
        raise ChartError(f"chart name {name!r} is not valid for a package")
    base = f"{prefix}{name}/"
    md = dict(chart.metadata)
    v1 = md.get("apiVersion") == API_V1
    deps = md.get("dependencies") or []
    if v1:
        md["dependencies"] = []
    out = [(base + CHART_FILE, marshal_metadata(md).encode())]
    if chart.lock is not None:
        out.append((base + (REQUIREMENTS_LOCK_FILE if v1 else LOCK_FILE), chart.lock))
    if v1 and deps:
        out.append((base + REQUIREMENTS_FILE, goyaml.marshal({"dependencies": deps}).encode()))
    if chart.values is not None:
        out.append((base + VALUES_FILE, chart.values))
    if chart.schema is not None:
        try:
            json.loads(chart.schema)
        except ValueError:
            raise ChartError(f"Invalid JSON in {SCHEMA_FILE}") from None
        out.append((base + SCHEMA_FILE, chart.schema))
    out += [(base + n, d) for n, d in chart.templates]
    out += [(base + n, d) for n, d in chart.files if not (v1 and n == REQUIREMENTS_FILE)]
    for dep in chart.dependencies:
        out += _entries(dep, base + "charts/")
    return out


def package(chart: Chart, out: BinaryIO) -> None:
    """Write `chart` as `helm package` would (see the module docstring)."""
    entries = _entries(chart, "")
    header = b"\x1f\x8b\x08" + bytes([0x04 | 0x10]) + struct.pack("<I", 0) + b"\x00\xff"
    header += struct.pack("<H", len(_HELM_GZIP_EXTRA)) + _HELM_GZIP_EXTRA
    header += _HELM_GZIP_COMMENT + b"\x00"
    out.write(header)
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    crc = 0
    size = 0

    def write(data: bytes) -> None:
        nonlocal crc, size
        crc = zlib.crc32(data, crc)
        size += len(data)
        out.write(compressor.compress(data))

    for name, data in entries:
        write(tar_headers(name, 0o644, len(data), False))
        write(data)
        if len(data) % 512:
            write(b"\0" * (512 - len(data) % 512))
    write(b"\0" * 1024)
    out.write(compressor.flush())
    out.write(struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF))


def package_bytes(chart: Chart) -> bytes:
    buf = io.BytesIO()
    package(chart, buf)
    return buf.getvalue()
