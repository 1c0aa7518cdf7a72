"""Connecting to a Kubernetes API server.

Kubeconfig parsing and credentials (client certificates, tokens, token files, in-cluster
ServiceAccount) come from lightkube; this module turns them into one kept-alive async HTTP
session that speaks to the server in plain JSON, which is what a GitOps applier handles:
arbitrary kinds, most of them unknown until discovery.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx2 as httpx
from lightkube.config.client_adapter import AsyncClient as _adapter_client
from lightkube.config.client_adapter import ConnectionParams
from lightkube.config.kubeconfig import KubeConfig, SingleConfig
from lightkube.core.exceptions import ConfigError

_DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


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


def load_config(kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None) -> SingleConfig:
    """Resolve credentials as kubectl does: --kubeconfig, $KUBECONFIG, ~/.kube/config, in-cluster."""
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
    ) -> None:
        self.config = config
        self._http = _adapter_client(config, ConnectionParams(timeout=timeout, trust_env=False))
        # Kubernetes reads each Impersonate-Group header line as one group and does not split
        # on commas, so the groups travel as repeated headers.
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
        headers = [("Accept", "application/json"), *self._identity]
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

    async def server_version(self) -> str:
        return str((await self.get("/version"))["gitVersion"])
