"""How the flat stores (dotenv, INI) turn a non-string value into text: SOPS's ValToString."""

from __future__ import annotations

import math
from typing import Any

from tidal.kube.gostrconv import format_float
from tidal.sops.gotext import GoTime, format_time


def value_to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = format_float(value, "G")
        # A float that would read as an integer keeps one decimal.
        if "." not in text and "E" not in text:
            text = text if math.isnan(value) or math.isinf(value) else f"{value:.1f}"
        return text
    if isinstance(value, GoTime):
        return format_time(value, nanos=False)
    if value is None:
        return "<nil>"
    if isinstance(value, bytes):
        return "[" + " ".join(str(b) for b in value) + "]"
    return str(value)
