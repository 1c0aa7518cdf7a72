"""The one module that imports the Helm SDK (helm-python-sdk: ctypes over libhelm_c, Helm v4).

Only what needs Helm's Go code goes through here: loading chart archives, rendering templates
(Sprig, `lookup`, subcharts, library charts, values schema) and `--set` parsing. Everything
else of a release (sorting, hooks, storage, apply) is tidal's own Python.

Two render options of the C ABI are not surfaced by helm_python's `Chart.render`:
`kube_version` and `api_versions` (`.Capabilities`, as `helm template --kube-version
--api-versions`). libhelm_c accepts them in its options JSON, so this module calls the same C
function with them; the SDK is pinned (==0.2.2) because of that.

ctypes releases the GIL for the duration of each C call, so renders run in threads in parallel;
the library documents charts as immutable and safe to share between threads.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

from tidal.helm.errors import ChartError, HelmEngineUnavailable, RenderError

try:
    import helm_python as _helm
    from helm_python import _native
except ImportError as e:  # the optional `helm` extra is not installed
    raise HelmEngineUnavailable() from e
except Exception as e:  # a wheel whose native library cannot load (wrong arch, libc)
    raise HelmEngineUnavailable(f"the Helm SDK could not load: {e}") from e

NativeChart = _helm.Chart
HelmError = _helm.HelmError

# libhelm_c rejects larger archives itself; checking first keeps the bytes out of a C copy.
MAX_ARCHIVE_BYTES = 64 * 1024 * 1024


def sdk_version() -> str:
    """The Helm Go SDK version compiled into the library, e.g. "v4.2.3"."""
    return _helm.helm_sdk_version()


def load_archive(data: bytes) -> Any:
    """A native chart handle for a chart .tgz; Helm's loader does the path and size checks."""
    if not data:
        raise ChartError("chart archive is empty")
    if len(data) > MAX_ARCHIVE_BYTES:
        raise ChartError(f"chart archive is {len(data)} bytes, more than {MAX_ARCHIVE_BYTES}")
    try:
        return NativeChart.load_archive(data)
    except HelmError as e:
        raise ChartError(e.detail) from None


def chart_info(chart: Any) -> dict[str, Any]:
    """What Helm's loader read: metadata, default values and the file lists."""
    try:
        return {
            "metadata": chart.metadata,
            "values": chart.values,
            "templates": chart.templates,
            "files": chart.files,
            "crds": chart.crds,
            "schema": chart.schema,
            "dependencies": chart.dependencies,
        }
    except HelmError as e:
        raise ChartError(e.detail) from None


_configs: dict[str, Any] = {}
_configs_lock = threading.Lock()


def _config(kubeconfig: str) -> Any:
    # One Config per kubeconfig (its YAML text, which the SDK keeps in a private temporary
    # file while the Config lives): it only parses options until `lookup` contacts the server.
    key = hashlib.sha256(kubeconfig.encode()).hexdigest()
    with _configs_lock:
        cfg = _configs.get(key)
        if cfg is None:
            cfg = _helm.Config(kubeconfig_content=kubeconfig)
            _configs[key] = cfg
        return cfg


def render_templates(
    chart: Any, values: dict[str, Any], options: dict[str, Any], kubeconfig: str | None
) -> dict[str, str]:
    """Helm's engine.Render: template path -> rendered text (NOTES.txt and empty files too).

    With `kubeconfig` (a kubeconfig's YAML text), `lookup` reads the live cluster (Helm's
    install without dry-run);
    without, it returns empty results as in `helm template`.
    """
    payload = json.dumps(values)
    opts = json.dumps(options)
    try:
        if kubeconfig is None:
            out = _native.call_string("helm_render", chart._raw(), payload, opts)
        else:
            cfg = _config(kubeconfig)
            out = _native.call_string(
                "helm_render_with_config", cfg._raw(), chart._raw(), payload, opts
            )
    except HelmError as e:
        raise RenderError(e.detail) from None
    rendered: dict[str, str] = json.loads(out)
    return rendered


def merge_values(chart: Any, values: dict[str, Any]) -> dict[str, Any]:
    """Chart defaults coalesced with `values`, as an install computes them."""
    try:
        merged: dict[str, Any] = chart.merge_values(values)
    except HelmError as e:
        raise RenderError(e.detail) from None
    return merged


def parse_set(expression: str, *, as_string: bool = False) -> dict[str, Any]:
    """Helm's `--set` parsing (strvals.Parse), or `--set-string` (strvals.ParseString) with
    as_string, for valuesFrom targetPath: Flux uses these two, never --set-literal."""
    try:
        if as_string:
            return _helm.parse_set_string_values(expression)
        return _helm.parse_set_string(expression)
    except HelmError as e:
        raise ValueError(e.detail) from None


def values_from_yaml(text: str) -> dict[str, Any]:
    """A YAML document parsed by Helm's (sigs.k8s.io/yaml) parser; ValueError with its message."""
    try:
        return _helm.values_from_yaml(text)
    except HelmError as e:
        raise ValueError(e.detail) from None
