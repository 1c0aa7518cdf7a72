"""The artifact file server: plain HTTP GET of `/<artifact path>` under the storage root, at
the address Flux's consumers expect (`--storage-addr`, default :9090).

Only regular files inside the root are served: no directory listings, no symlinks followed out
of the root (a link inside it, such as a HelmRepository's `index.yaml`, is served), no lock or
temporary files. Consumers verify the digest themselves, so no content
negotiation or compression happens here.
"""

from __future__ import annotations

from aiohttp import web

from tidal.source.storage import Storage, StoragePathError

_HIDDEN_SUFFIXES = (".lock", ".tmp")


def artifact_app(storage: Storage) -> web.Application:
    async def serve(request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        if path.endswith(_HIDDEN_SUFFIXES) or "/." in f"/{path}":
            raise web.HTTPNotFound()
        try:
            local = storage.local_path(path)
        except StoragePathError:
            raise web.HTTPNotFound() from None
        # local_path has already refused a link that resolves outside the root.
        if not local.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(local, headers={"Content-Type": "application/octet-stream"})

    app = web.Application()
    app.router.add_get("/{path:.+}", serve)
    return app
