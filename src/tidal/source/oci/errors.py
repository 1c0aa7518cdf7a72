"""Errors of the OCI client, worded as go-containerregistry words them where Flux shows them."""

from __future__ import annotations


class OCIError(Exception):
    """A registry operation failed."""


class RegistryError(OCIError):
    """The registry answered with an error status.

    The message is `<METHOD> <url>: <CODE>: <message>[; <detail>]` for each error in the
    registry's body (go-containerregistry's transport.Error), or
    `unexpected status code <n> <text>` when the body says nothing.
    """

    def __init__(self, message: str, status: int, codes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.codes = codes

    @property
    def unauthorized(self) -> bool:
        return self.status in (401, 403)

    @property
    def not_found(self) -> bool:
        return self.status == 404


class InvalidReferenceError(OCIError, ValueError):
    """An address that is not a valid repository reference."""


class DigestMismatchError(OCIError):
    """Content whose digest is not the one it was asked for."""


class SizeLimitError(OCIError):
    """Content larger than allowed."""
