"""Connecting to a Kubernetes API server.

Kubeconfig parsing and credentials (client certificates, tokens, token files, in-cluster
ServiceAccount) come from lightkube; this module turns them into one kept-alive async HTTP
session that speaks to the server in plain JSON, which is what a GitOps applier handles:
arbitrary kinds, most of them unknown until discovery.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import httpx2 as httpx
from lightkube.config.client_adapter import AsyncClient as _adapter_client
from lightkube.config.client_adapter import ConnectionParams
from lightkube.config.kubeconfig import KubeConfig, SingleConfig
from lightkube.core.exceptions import ConfigError

_DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)

PatchType = Literal["merge", "json", "strategic"]
_PATCH_TYPES: dict[PatchType, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}
# What a metadata-only client asks for: a LIST answers a PartialObjectMetadataList and a watch
# streams PartialObjectMetadata, so an object costs a few hundred bytes whatever its spec,
# data or status.
_PARTIAL = "application/json;as=PartialObjectMetadata{};g=meta.k8s.io;v=v1"


class KubeConfigError(RuntimeError):
    """No usable kubeconfig: missing file, unknown context, or not running in a cluster."""


class ApiError(RuntimeError):
    """The API server answered with an error Status."""

    def __init__(self, status: int, body: dict[str, Any] | None, method: str, path: str) -> None:
        self.status = status
        self.body = body or {}
        self.reason = str(self.body.get("reason", ""))
        message = str(self.body.get("message", "")) or f"HTTP {status}"
        super().__init__(f"{method} {path}: {message}")

    @property
    def message(self) -> str:
        """What the API server said (its Status message), else the whole error line: the text
        to put in a condition, an event or a CLI error."""
        return str(self.body.get("message") or self)


def load_config(
    kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None
) -> SingleConfig:
    """Resolve credentials as kubectl does: --kubeconfig, $KUBECONFIG, ~/.kube/config,
    then the in-cluster ServiceAccount."""
    try:
        if kubeconfig is not None:
            path = Path(kubeconfig).expanduser()
            if not path.is_file():
                raise KubeConfigError(f"kubeconfig {path} does not exist")
            config = KubeConfig.from_file(path)
        else:
            config = KubeConfig.from_env()
        single = config.get(context)
    except ConfigError as e:
        raise KubeConfigError(str(e)) from e
    except (OSError, ValueError, KeyError) as e:
        raise KubeConfigError(f"cannot read kubeconfig: {e}") from e
    if single is None:
        raise KubeConfigError(f"context {context!r} not found in kubeconfig")
    return single


class Kube:
    """An async session with one API server, optionally impersonating a user."""

    def __init__(
        self,
        config: SingleConfig,
        *,
        impersonate: str | None = None,
        impersonate_groups: tuple[str, ...] = (),
        timeout: httpx.Timeout = _DEFAULT_TIMEOUT,
        http: httpx.AsyncClient | None = None,
        metadata_only: bool = False,
    ) -> None:
        self.config = config
        # metadata_only is for collection reads (an informer's LIST and watch): a GET of a
        # single object would be answered 406.
        self._accept, self._watch_accept = (
            (_PARTIAL.format("List"), _PARTIAL.format(""))
            if metadata_only
            else ("application/json", "application/json")
        )
        # `http` comes ready-made when the credentials must stay in memory (tidal.kube.remote):
        # lightkube's adapter writes certificate data to temporary files.
        self._http = http or _adapter_client(
            config, ConnectionParams(timeout=timeout, trust_env=False)
        )
        # Kubernetes reads each Impersonate-Group header line as one group and does not split
        # on commas, so the groups travel as repeated headers.
        self.impersonate = impersonate
        self.impersonate_groups = impersonate_groups
        self._identity: list[tuple[str, str]] = []
        if impersonate:
            self._identity.append(("Impersonate-User", impersonate))
            self._identity += [("Impersonate-Group", g) for g in impersonate_groups]

    @classmethod
    def from_kubeconfig(
        cls, kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None
    ) -> Kube:
        return cls(load_config(kubeconfig, context))

    @property
    def server(self) -> str:
        return str(self.config.cluster.server)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        headers = [("Accept", self._accept), *self._identity]
        if body is not None:
            headers.append(("Content-Type", content_type))
        resp = await self._http.request(method, path, json=body, params=params, headers=headers)
        data: dict[str, Any] | None
        try:
            data = resp.json() if resp.content else {}
        except ValueError:
            data = {"message": resp.text[:500]}
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, data, method, path)
        return data or {}

    async def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        return await self.request("GET", path, params=params)

    async def secret_data(self, namespace: str, name: str) -> dict[str, bytes]:
        """The decoded `data` of a Secret (ApiError when it cannot be read)."""
        secret = await self.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
        data = secret.get("data") or {}
        return {k: base64.b64decode(v) for k, v in data.items() if isinstance(v, str)}

    async def apply(
        self,
        path: str,
        obj: dict[str, Any],
        *,
        field_manager: str,
        force: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Server-side apply of `obj` at its resource path (…/namespaces/NS/PLURAL/NAME)."""
        params = {"fieldManager": field_manager}
        if force:
            params["force"] = "true"
        if dry_run:
            params["dryRun"] = "All"
        # JSON is a subset of YAML, so the apply patch can travel as JSON: no YAML emitter here.
        return await self.request(
            "PATCH", path, body=obj, params=params, content_type="application/apply-patch+yaml"
        )

    async def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        """POST `obj` to its collection path; 409 AlreadyExists if the name is taken."""
        return await self.request("POST", path, body=obj)

    async def replace(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        """PUT `obj`; with metadata.resourceVersion set this is a compare-and-swap (409 on a
        stale version), which is what optimistic concurrency (e.g. a Lease) relies on."""
        return await self.request("PUT", path, body=obj)

    async def patch(
        self, path: str, patch: Any, *, patch_type: PatchType = "merge"
    ) -> dict[str, Any]:
        """PATCH with a JSON merge patch ("merge"), a JSON patch ("json") or a strategic merge
        patch ("strategic", built-in kinds only)."""
        return await self.request("PATCH", path, body=patch, content_type=_PATCH_TYPES[patch_type])

    async def delete(self, path: str) -> dict[str, Any]:
        return await self.request("DELETE", path)

    async def watch(
        self,
        path: str,
        *,
        resource_version: str = "",
        timeout_seconds: int = 300,
        params: dict[str, str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield watch events ({"type": ..., "object": ...}) of a collection until the server
        closes the stream; the caller resumes from the last resourceVersion it saw. `params`
        adds query parameters such as labelSelector or fieldSelector."""
        params = {
            **(params or {}),
            "watch": "1",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if resource_version:
            params["resourceVersion"] = resource_version
        headers = [("Accept", self._watch_accept), *self._identity]
        timeout = httpx.Timeout(timeout_seconds + 30.0, connect=5.0)
        async with self._http.stream(
            "GET", path, params=params, headers=headers, timeout=timeout
        ) as resp:
            if resp.status_code >= 400:
                body = await resp.aread()
                try:
                    data = json.loads(body)
                except ValueError:
                    data = {"message": body[:500].decode(errors="replace")}
                raise ApiError(resp.status_code, data, "WATCH", path)
            async for line in resp.aiter_lines():
                if line:
                    event: dict[str, Any] = json.loads(line)
                    yield event

    async def server_version(self) -> str:
        return str((await self.get("/version"))["gitVersion"])
