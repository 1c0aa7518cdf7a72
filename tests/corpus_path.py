"""Where the real-world Flux repositories used as test data live."""

from __future__ import annotations

import os
from pathlib import Path


def corpus_root() -> Path | None:
    """../shared/corpus beside the repository, or $TIDAL_CORPUS; None when absent."""
    default = Path(__file__).resolve().parents[2] / "shared" / "corpus"
    root = Path(os.environ.get("TIDAL_CORPUS") or default)
    # Resolved, so that paths in tools' messages (which resolve symlinks) compare equal.
    return root.resolve() if root.is_dir() else None
