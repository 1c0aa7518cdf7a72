"""Wake Kustomizations when a ConfigMap or Secret they read changes (Flux's config watchers).

Flux watches only objects matching `--watch-configs-label-selector` (by default
`reconcile.fluxcd.io/watch=Enabled`), so that labelling a ConfigMap or Secret is an opt-in
to "a change here is applied at once" rather than at the next interval. A Kustomization
reads ConfigMaps and Secrets through postBuild.substituteFrom, decryption.secretRef and
kubeConfig.secretRef/configMapRef, always in its own namespace. Optional references wake
it too: an optional ConfigMap appearing or going away changes the variables.

Secrets are cached without their data: the informer transform keeps a digest, so that a
change of data can be told from a change of metadata without holding plaintext in memory."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any, Final

from tidal.api.meta import WATCH_LABEL, WATCH_LABEL_ENABLED

DEFAULT_SELECTOR: Final = f"{WATCH_LABEL}={WATCH_LABEL_ENABLED}"
_DIGEST: Final = "tidal.digest"

Obj = dict[str, Any]


def references(ks: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The (kind, name) pairs of the ConfigMaps and Secrets a Kustomization reads."""
    spec = ks.get("spec") or {}
    refs: set[tuple[str, str]] = set()
    for ref in (spec.get("postBuild") or {}).get("substituteFrom") or ():
        if ref.get("kind") in ("ConfigMap", "Secret") and ref.get("name"):
            refs.add((str(ref["kind"]), str(ref["name"])))
    secret = ((spec.get("decryption") or {}).get("secretRef") or {}).get("name")
    if secret:
        refs.add(("Secret", str(secret)))
    kube_config = spec.get("kubeConfig") or {}
    for key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
        name = (kube_config.get(key) or {}).get("name")
        if name:
            refs.add((kind, str(name)))
    return refs


def digest_data(obj: Obj) -> Obj:
    """Informer transform: name, namespace, labels and a digest of the data, nothing else."""
    meta = obj.get("metadata") or {}
    payload = {k: obj.get(k) for k in ("data", "binaryData", "stringData", "type")}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return {
        "kind": obj.get("kind"),
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        _DIGEST: digest,
    }


def config_watch(
    kind: str,
    list_kustomizations: Callable[[], list[Obj]],
    enqueue: Callable[[str, str], None],
) -> tuple[Callable[[Obj], None], Callable[[Obj, Obj], None], Callable[[Obj], None]]:
    """on_add, on_update and on_delete handlers for a ConfigMap or Secret informer whose
    objects went through `digest_data`."""

    def wake(obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        for ks in list_kustomizations():
            ks_meta = ks.get("metadata") or {}
            if ks_meta.get("namespace") == namespace and (kind, name) in references(ks):
                enqueue(namespace, str(ks_meta.get("name", "")))

    def on_update(old: Obj, new: Obj) -> None:
        if old.get(_DIGEST) != new.get(_DIGEST):
            wake(new)

    return wake, on_update, wake
