"""Which entries of a local kustomization `build kustomization` leaves out (`--ignore-paths`).

The flux CLI builds with fluxcd/pkg's generator in its filtering mode, which kustomize-controller
does not use: the patterns are the VCS and default exclusions, every `.sourceignore` found below
the built directory, then `--ignore-paths`, all scoped to that directory (last match wins). A
generated kustomization lists no ignored manifest, and the `resources`, `components` and `crds`
of any kustomization file (found or generated) lose the entries that match. An entry that is a
URL is kept untouched; any other entry must exist, as flux `lstat`s it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from tidal.kustomize.confine import dump_json_yaml
from tidal.kustomize.generator import Generated
from tidal.source.ignore import (
    CI_PATTERNS,
    EXTENSION_PATTERNS,
    EXTRA_PATTERNS,
    VCS_PATTERNS,
    Match,
    Pattern,
    collect_sourceignores,
    read_patterns,
)

_FIELDS: Final = ("resources", "components", "crds")
_URL: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


class IgnoreError(ValueError):
    pass


class IgnoreFilter:
    """The exclusion decision for absolute paths, with the patterns of one built directory."""

    def __init__(self, directory: Path, ignore_paths: Sequence[str]) -> None:
        self.directory = directory
        domain = tuple(str(directory).split("/"))
        defaults = (*VCS_PATTERNS, *EXTENSION_PATTERNS, *CI_PATTERNS, *EXTRA_PATTERNS)
        patterns = [Pattern.parse(p, domain) for p in defaults]
        for rel, text in collect_sourceignores(directory):
            scope = (*domain, *rel.split("/")) if rel else domain
            patterns.extend(read_patterns(text, scope))
        patterns.extend(read_patterns("\n".join(ignore_paths), domain))
        self._reversed = tuple(reversed(patterns))

    def ignored(self, path: str, is_dir: bool) -> bool:
        parts = path.split("/")
        for pattern in self._reversed:
            result = pattern.match(parts, is_dir)
            if result is not Match.NONE:
                return result is Match.EXCLUDE
        return False

    def keep(self, entry: str, field: str) -> bool:
        if field != "crds" and _URL.match(entry):
            return True
        target = os.path.normpath(f"{self.directory}/{entry}")
        try:
            st = os.lstat(target)
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            raise IgnoreError(f"lstat {target}: {reason}") from None
        return not self.ignored(target, stat.S_ISDIR(st.st_mode))

    def apply(self, generated: Generated) -> Generated:
        """The kustomization file without the ignored entries."""
        kus: dict[str, Any] = dict(generated.kustomization)
        changed = False
        for field in _FIELDS:
            entries = kus.get(field)
            if not isinstance(entries, list):
                continue
            kept = [e for e in entries if not isinstance(e, str) or self.keep(e, field)]
            if len(kept) != len(entries):
                changed = True
                if kept:
                    kus[field] = kept
                else:
                    del kus[field]
        if generated.action == "created" and "resources" not in kus and "namespace" not in kus:
            # What flux writes for a directory whose manifests are all ignored.
            kus["namespace"] = "_placeholder"
            changed = True
        if not changed:
            return generated
        return dataclasses.replace(generated, content=dump_json_yaml(kus), kustomization=kus)
