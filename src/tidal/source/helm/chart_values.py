"""spec.valuesFiles: merged in order into the chart's default values, as Flux does.

- Merging is fluxcd/pkg transform.MergeMaps: a mapping merges into a mapping key by key, any
  other value (lists, scalars, null) replaces what was there.
- From a Helm repository the files are looked up inside the chart (`values.yaml` names the
  chart's own values); from a Git or Bucket source they are paths from the artifact's root.
- The chart's values.yaml is replaced by the merged values written as Helm writes them
  (sigs.k8s.io/yaml: keys sorted); when that is byte for byte what the chart had, nothing
  changed and no values files are reported. A chart without a values.yaml cannot take
  values files.
- A single `values.yaml` is the same as none.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from tidal.kube import goyaml, yamlio
from tidal.source.helm.chart_package import (
    MAX_CHART_FILE_SIZE,
    VALUES_FILE,
    Chart,
    ChartError,
    confined,
)

# How much a values file from a source artifact may weigh.
MAX_VALUES_FILE_SIZE: Final = MAX_CHART_FILE_SIZE


class ValuesError(ValueError):
    pass


def effective(values_files: list[str]) -> list[str]:
    """Flux's BuildOptions.GetValuesFiles: `[values.yaml]` alone means the default values."""
    if len(values_files) == 1 and posixpath.normpath(values_files[0]) == VALUES_FILE:
        return []
    return values_files


def merge_maps(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        current = out.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            out[key] = merge_maps(current, value)
        else:
            out[key] = value
    return out


def parse_values(data: bytes, where: str) -> dict[str, Any]:
    try:
        docs = yamlio.load_all(data, source=where)
    except yamlio.ManifestError as e:
        raise ValuesError(f"unmarshaling values from '{where}' failed: {e}") from None
    return docs[0] if docs else {}


def merge_chart_files(
    chart: Chart, paths: list[str], ignore_missing: bool
) -> tuple[dict[str, Any], list[str]]:
    """Values files found inside the chart (HelmRepository sources)."""
    merged: dict[str, Any] = {}
    used: list[str] = []
    files = dict(chart.files)
    for p in paths:
        clean = posixpath.normpath(p)
        if clean == VALUES_FILE:
            merged = merge_maps(merged, parse_values(chart.values or b"", p))
            used.append(p)
            continue
        data = files.get(clean)
        if data is None:
            if ignore_missing:
                continue
            raise ValuesError(f"no values file found at path '{p}'")
        merged = merge_maps(merged, parse_values(data, p))
        used.append(p)
    return merged, used


def merge_source_files(
    root: Path, paths: list[str], ignore_missing: bool
) -> tuple[dict[str, Any], list[str]]:
    """Values files from the source artifact's root (GitRepository and Bucket sources)."""
    merged: dict[str, Any] = {}
    used: list[str] = []
    for p in paths:
        try:
            path = confined(root, p)
        except ChartError:
            raise ValuesError(f"no values file found at path '{p}' (reference '{p}')") from None
        shown = "/" + os.path.relpath(path, root)
        try:
            st = path.stat()
        except FileNotFoundError:
            if ignore_missing:
                continue
            raise ValuesError(f"no values file found at path '{shown}' (reference '{p}')") from None
        except OSError as e:
            raise ValuesError(f"could not read values from file '{p}': {e.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise ValuesError(f"no values file found at path '{shown}' (reference '{p}')")
        if st.st_size > MAX_VALUES_FILE_SIZE:
            raise ValuesError(
                f"could not read values from file '{p}': size {st.st_size} exceeds the "
                f"{MAX_VALUES_FILE_SIZE} bytes limit"
            )
        merged = merge_maps(merged, parse_values(path.read_bytes(), p))
        used.append(p)
    return merged, used


def encode(values: Mapping[str, Any]) -> bytes:
    """Values as Helm writes them into a package (empty values: an empty file)."""
    return goyaml.marshal(values).encode() if values else b""


def overwrite_defaults(chart: Chart, values: Mapping[str, Any]) -> bool:
    """Flux's OverwriteChartDefaultValues: whether values.yaml changed."""
    data = encode(values)
    if chart.values is None:
        raise ValuesError(f"failed to locate values file: {VALUES_FILE}")
    if chart.values == data:
        return False
    chart.values = data
    return True
