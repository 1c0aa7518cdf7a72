"""One command's conversation with the API server, and the errors a user can act on.

Every verb runs one coroutine under `run`, which opens the connection, gives the whole command
one deadline (`--timeout`, as flux's context does) and turns what can go wrong outside tidal's
control (no kubeconfig, unreachable server, missing CRD, missing object, RBAC) into a one-line
`CliError` instead of a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import httpx2 as httpx

from tidal.cli.objects import ObjectKind
from tidal.cli.options import CliError, GlobalOptions, timeout_text
from tidal.kube.client import ApiError, Kube, KubeConfigError

T = TypeVar("T")

# The flux CLI writes with plain create/update/patch requests and no explicit field manager, so
# the API server names the manager after its user agent: "flux". tidal records the same name so
# objects touched by either CLI carry the same managedFields (checked against flux v2.9.5).
FIELD_MANAGER: Final = "flux"
# How often flux polls an object it waits for.
POLL_INTERVAL: Final = 2.0
MERGE_PATCH: Final = "application/merge-patch+json"


@dataclass
class Session:
    kube: Kube
    opts: GlobalOptions
    deadline: float  # on the event loop's clock

    @property
    def namespace(self) -> str:
        return self.opts.namespace

    def remaining(self) -> float:
        return self.deadline - asyncio.get_running_loop().time()


def run(opts: GlobalOptions, work: Callable[[Session], Awaitable[T]]) -> T:
    """Run `work` against the cluster of `opts`; user-facing failures become CliError."""

    server = ""

    async def main() -> T:
        nonlocal server
        async with Kube.from_kubeconfig(opts.kubeconfig, opts.context) as kube:
            server = kube.server
            loop = asyncio.get_running_loop()
            session = Session(kube, opts, loop.time() + opts.timeout)
            # A little grace beyond the deadline, so that waits report their own, more
            # specific, timeout first.
            async with asyncio.timeout(opts.timeout + 5.0):
                return await work(session)

    try:
        return asyncio.run(main())
    except KubeConfigError as e:
        raise CliError(f"no usable kubeconfig: {e}") from None
    except TimeoutError:
        raise CliError(f"timed out after {timeout_text(opts.timeout)}") from None
    except ApiError as e:
        raise CliError(_api_message(e)) from None
    except (httpx.HTTPError, OSError) as e:
        where = f" at {server}" if server else ""
        reason = str(e) or type(e).__name__
        raise CliError(f"cannot reach the Kubernetes API server{where}: {reason}") from None


def _api_message(e: ApiError) -> str:
    return e.message.strip() or str(e)


def api_error(e: ApiError, kind: ObjectKind) -> CliError:
    """The message for a failed request about `kind`; a 404 without a Status body means the
    resource type itself is missing, i.e. its CRD is not installed."""
    if e.status == 404 and e.reason != "NotFound":
        return CliError(
            f'no matches for kind "{kind.kind}" in version "{kind.api_version}": the '
            f"{kind.resource} CRD is not installed; install tidal (or Flux) in this cluster first"
        )
    return CliError(_api_message(e))


async def get_object(s: Session, kind: ObjectKind, name: str) -> dict[str, Any]:
    try:
        return await s.kube.get(kind.path(s.namespace, name))
    except ApiError as e:
        raise api_error(e, kind) from None


async def find_object(s: Session, kind: ObjectKind, name: str) -> dict[str, Any] | None:
    """The object, or None when it does not exist (a missing CRD is still an error)."""
    try:
        return await s.kube.get(kind.path(s.namespace, name))
    except ApiError as e:
        if e.status == 404 and e.reason == "NotFound":
            return None
        raise api_error(e, kind) from None


def escape_field_value(value: str) -> str:
    """A field selector value as apimachinery writes it, so that any name selects itself."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


async def list_objects(
    s: Session,
    kind: ObjectKind,
    *,
    all_namespaces: bool = False,
    name: str | None = None,
    label_selector: str | None = None,
) -> list[dict[str, Any]]:
    params: dict[str, str] = {}
    if name:
        params["fieldSelector"] = "metadata.name=" + escape_field_value(name)
    if label_selector:
        params["labelSelector"] = label_selector
    path = kind.collection(None if all_namespaces else s.namespace)
    try:
        items: list[dict[str, Any]] = (await s.kube.get(path, params or None)).get("items") or []
    except ApiError as e:
        raise api_error(e, kind) from None
    return items


async def merge_patch(
    s: Session, kind: ObjectKind, name: str, patch: dict[str, Any]
) -> dict[str, Any]:
    try:
        return await s.kube.request(
            "PATCH",
            kind.path(s.namespace, name),
            body=patch,
            params={"fieldManager": FIELD_MANAGER},
            content_type=MERGE_PATCH,
        )
    except ApiError as e:
        raise api_error(e, kind) from None


async def create_or_update(
    s: Session,
    path: str,
    collection: str,
    desired: dict[str, Any],
    mutate: Callable[[dict[str, Any]], None],
    kind: ObjectKind | None = None,
) -> tuple[dict[str, Any], bool]:
    """flux's upsert: create `desired`, or apply `mutate` to the live object and update it (a
    full replace guarded by its resourceVersion). Returns the result and whether it was created."""
    params = {"fieldManager": FIELD_MANAGER}
    try:
        try:
            existing = await s.kube.get(path)
        except ApiError as e:
            if e.status == 404 and e.reason == "NotFound":
                created = await s.kube.request("POST", collection, body=desired, params=params)
                return created, True
            raise
        mutate(existing)
        updated = await s.kube.request("PUT", path, body=existing, params=params)
        return updated, False
    except ApiError as e:
        if kind is not None:
            raise api_error(e, kind) from None
        raise CliError(_api_message(e)) from None


def replace_labels_and_spec(desired: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """The mutation flux's upsert applies to an existing object of its own kinds: the labels
    (removed when none are wanted) and the spec become the desired ones; annotations, status
    and everything else stay."""

    def mutate(existing: dict[str, Any]) -> None:
        meta = existing.setdefault("metadata", {})
        labels = desired["metadata"].get("labels")
        if labels:
            meta["labels"] = labels
        else:
            meta.pop("labels", None)
        existing["spec"] = desired["spec"]

    return mutate


async def upsert_object(s: Session, kind: ObjectKind, desired: dict[str, Any]) -> bool:
    """`create`'s write of a Flux object: its labels and spec replace the live ones. Whether it
    was created."""
    meta = desired["metadata"]
    _, created = await create_or_update(
        s,
        kind.path(meta["namespace"], meta["name"]),
        kind.collection(meta["namespace"]),
        desired,
        replace_labels_and_spec(desired),
        kind,
    )
    return created
