"""Errors of the Helm layer; importable without the Helm SDK."""

from __future__ import annotations

INSTALL_HINT = "Helm support needs the 'helm' extra: pip install 'tidal[helm]'"


class HelmEngineUnavailable(ImportError):
    """helm-python-sdk is not installed."""

    def __init__(self, message: str = INSTALL_HINT) -> None:
        super().__init__(message)


class ChartError(Exception):
    """A chart archive could not be loaded; the message is Helm's loader message."""


class RenderError(Exception):
    """Rendering failed (values schema, template, kubeVersion, manifest parse); Helm's message."""
