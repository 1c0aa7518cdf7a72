"""Drift-ignore rules (Kustomization spec.ignore): which fields of which objects are neither
drift nor corrected, and how the apply payload is reshaped so that applying the rest of an
object leaves those fields as they are in the cluster.

For an object that exists, an ignored field whose live value differs from what the dry-run
would make it is handled one of two ways. When another Apply field manager owns it, the field
is left out of the payload, so Flux's ownership goes and the other manager's value stays.
When nobody else applies it, leaving it out would make the API server delete it (the sole
applier dropped it), so the live value is copied into the payload instead. New objects are
applied as declared."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tidal.kube import labels
from tidal.ssa import objects as o
from tidal.ssa.pointer import PointerError, lookup, parse, remove_pointer, set_value


class IgnoreRuleError(ValueError):
    """A rule's selector or path does not parse."""


def _anchored(pattern: str, what: str) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(f"^(?:{pattern})$")
    except re.error as e:
        raise IgnoreRuleError(f"invalid {what} regular expression {pattern!r}: {e}") from None


@dataclass(frozen=True, slots=True)
class _Rule:
    paths: tuple[str, ...]
    group: re.Pattern[str] | None = None
    version: re.Pattern[str] | None = None
    kind: re.Pattern[str] | None = None
    name: re.Pattern[str] | None = None
    namespace: re.Pattern[str] | None = None
    label_selector: labels.LabelSelector | None = None
    annotation_selector: labels.LabelSelector | None = None

    def matches(self, obj: Mapping[str, Any]) -> bool:
        checks = (
            (self.namespace, o.namespace(obj)),
            (self.name, o.name(obj)),
            (self.group, o.group(obj)),
            (self.version, o.version(obj)),
            (self.kind, o.kind(obj)),
        )
        if any(rx is not None and not rx.match(value) for rx, value in checks):
            return False
        m = o.meta(obj)
        if self.label_selector is not None and not self.label_selector.matches(m.get("labels")):
            return False
        return self.annotation_selector is None or self.annotation_selector.matches(
            m.get("annotations")
        )


def _selector(text: str, what: str) -> labels.LabelSelector | None:
    if not text:
        return None
    try:
        return labels.parse(text)
    except labels.SelectorError as e:
        raise IgnoreRuleError(f"invalid {what}: {e}") from None


class IgnoreRules:
    """Compiled rules: `paths_for(obj)` lists the pointers ignored for one object."""

    def __init__(self, rules: Sequence[Mapping[str, Any]], *, allow_root: bool = False) -> None:
        """`rules` as in the Kustomization spec: {paths: [...], target?: {group, version,
        kind, name, namespace, labelSelector, annotationSelector}}. `allow_root` accepts ""
        (and "/") as HelmRelease drift detection does, where "" excludes the whole object;
        the caller looks for it in `paths_for`."""
        compiled = []
        for rule in rules:
            paths = tuple(str(p) for p in rule.get("paths") or ())
            for p in paths:
                try:
                    tokens = parse(p)
                except PointerError as e:
                    raise IgnoreRuleError(str(e)) from None
                # The whole object, or a field with an empty name, cannot be left alone.
                if tokens in ([], [""]) and not allow_root:
                    raise IgnoreRuleError(f"invalid JSON pointer {p!r}: it names no field")
            t = rule.get("target") or {}
            compiled.append(
                _Rule(
                    paths,
                    group=_anchored(str(t.get("group", "")), "group"),
                    version=_anchored(str(t.get("version", "")), "version"),
                    kind=_anchored(str(t.get("kind", "")), "kind"),
                    name=_anchored(str(t.get("name", "")), "name"),
                    namespace=_anchored(str(t.get("namespace", "")), "namespace"),
                    label_selector=_selector(str(t.get("labelSelector", "")), "labelSelector"),
                    annotation_selector=_selector(
                        str(t.get("annotationSelector", "")), "annotationSelector"
                    ),
                )
            )
        self._rules = tuple(compiled)

    def __bool__(self) -> bool:
        return bool(self._rules)

    def paths_for(self, obj: Mapping[str, Any]) -> list[str]:
        """The pointers ignored for `obj` (matched as Flux does, on the dry-run object)."""
        return [p for rule in self._rules if rule.matches(obj) for p in rule.paths]


def drifted_paths(
    live: Mapping[str, Any], dry_run: Mapping[str, Any], paths: Sequence[str]
) -> list[str]:
    """The ignored paths whose live value differs from the dry-run's (or exists in one only)."""
    return [p for p in dict.fromkeys(paths) if lookup(live, p) != lookup(dry_run, p)]


# -- managedFields ownership ---------------------------------------------------------------


def _child(fields: Mapping[str, Any], node: Any, token: str) -> tuple[Any, Any] | None:
    """Descend one pointer token in a fieldsV1 tree alongside the live value it describes."""
    if isinstance(node, Mapping):
        key = f"f:{token}"
        if key in fields and token in node:
            return fields[key], node[token]
        return None
    if isinstance(node, list) and token.isdigit() and int(token) < len(node):
        item = node[int(token)]
        for key, sub in fields.items():
            if key.startswith("k:"):
                try:
                    keys = json.loads(key[2:])
                except ValueError:
                    continue
                if isinstance(item, Mapping) and all(item.get(k) == v for k, v in keys.items()):
                    return sub, item
            elif key.startswith("v:"):
                try:
                    if json.loads(key[2:]) == item:
                        return sub, item
                except ValueError:
                    continue
            elif key == f"i:{token}":
                return sub, item
    return None


def owns(fields: Mapping[str, Any], live: Mapping[str, Any], pointer: str) -> bool:
    """Does a managedFields `fieldsV1` set include the field at `pointer` of `live`?"""
    node: Any = live
    current: Any = fields
    for token in parse(pointer):
        if not isinstance(current, Mapping):
            return False
        step = _child(current, node, token)
        if step is None:
            return False
        current, node = step
    return True


def owned_by_other_appliers(live: Mapping[str, Any], pointer: str, owner: str) -> bool:
    for entry in o.meta(live).get("managedFields") or ():
        if (
            entry.get("operation") == "Apply"
            and entry.get("manager") != owner
            and not entry.get("subresource")
            and owns(entry.get("fieldsV1") or {}, live, pointer)
        ):
            return True
    return False


def reshape(
    payload: Mapping[str, Any], live: Mapping[str, Any], paths: Sequence[str], owner: str
) -> dict[str, Any]:
    """The object to apply, with each drifted ignored path stripped (another applier owns it)
    or set to its live value (nobody else does). A path absent from the live object keeps
    the declared value: adopting "nothing" would delete what the user declared."""
    out = copy.deepcopy(dict(payload))
    for pointer in paths:
        if owned_by_other_appliers(live, pointer, owner):
            remove_pointer(out, pointer)
            continue
        found, value = lookup(live, pointer)
        if found:
            set_value(out, pointer, value)
    return out
