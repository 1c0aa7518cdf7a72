"""What every store shares: the error type and the limits on untrusted input."""

from __future__ import annotations

from typing import Final

from tidal.sops.errors import SopsError

# Encrypted files come from Git repositories and Secrets; these bounds keep a hostile one from
# exhausting memory or the stack. A Kubernetes object is at most ~1.5 MiB, and files SOPS
# encrypts are configuration: both are far below.
MAX_INPUT_BYTES: Final = 4 << 20
MAX_DEPTH: Final = 256
# YAML aliases can multiply a small file; the tree built from one is capped in nodes.
MAX_NODES: Final = 1_000_000


class FormatError(SopsError):
    """A file could not be read or written in its format; the text never holds a value."""


def check_size(data: bytes | str) -> None:
    if len(data) > MAX_INPUT_BYTES:
        raise FormatError(f"input is larger than {MAX_INPUT_BYTES} bytes")


def depth_error() -> FormatError:
    return FormatError(f"exceeded max depth of {MAX_DEPTH}")
