"""A controller's finalizer on the objects it reconciles: added before the first change it
makes outside the object, removed once deletion has cleaned up, the same way for every kind.

Both write metadata.finalizers with a merge patch, which replaces the whole list, so the list
sent is the one just read plus or minus this controller's entry.
"""

from __future__ import annotations

from collections.abc import Sequence

from tidal.kube.client import ApiError, Kube


async def add_finalizer(kube: Kube, path: str, finalizers: Sequence[str], finalizer: str) -> None:
    """Add `finalizer` to the object at `path`, whose finalizers are `finalizers`, if missing."""
    if finalizer in finalizers:
        return
    await kube.patch(path, {"metadata": {"finalizers": [*finalizers, finalizer]}})


async def remove_finalizer(
    kube: Kube, path: str, finalizers: Sequence[str], finalizer: str
) -> None:
    """Remove `finalizer` from the object at `path`; an object already gone is not an error."""
    if finalizer not in finalizers:
        return
    remaining = [f for f in finalizers if f != finalizer]
    try:
        # null, not []: the field then disappears, as it does when Flux removes the last one.
        await kube.patch(path, {"metadata": {"finalizers": remaining or None}})
    except ApiError as e:
        if e.status != 404:
            raise
