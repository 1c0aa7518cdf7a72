"""Errors of the Git client, each carrying the Flux condition reason it maps to.

Every message that leaves this package goes through `redact` first: secrets from the Secret
(passwords, tokens, key material) and URL userinfo never reach a condition, an event or a log.

Reasons follow source-controller's code, not its docs: a Secret that cannot be turned into
auth options is `AuthenticationFailed`; everything that goes wrong while talking to the
remote, a rejected password included, is `GitOperationFailed` ("failed to checkout and
determine revision: ..."); an empty repository resolved through a branch is
`EmptyGitRepository`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

AUTHENTICATION_FAILED = "AuthenticationFailed"
GIT_OPERATION_FAILED = "GitOperationFailed"
EMPTY_GIT_REPOSITORY = "EmptyGitRepository"
URL_INVALID = "URLInvalid"
VERIFICATION_ERROR = "VerificationError"
INVALID_COMMIT_SIGNATURE = "InvalidCommitSignature"
INVALID_TAG_SIGNATURE = "InvalidTagSignature"
INVALID_VERIFICATION_MODE = "InvalidVerificationMode"
INVALID_GIT_OBJECT = "InvalidGitObject"

REDACTED = "***"

# scheme://userinfo@host: the userinfo may hold a token even without a password part.
_URL_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def redact_url(text: str) -> str:
    """Replace the userinfo of every URL in text (`https://u:p@h` -> `https://***@h`)."""
    return _URL_USERINFO.sub(rf"\1{REDACTED}@", text)


def redact(text: str, secrets: Iterable[str | bytes] = ()) -> str:
    """URL userinfo and every given secret value (and its lines, for key material) removed."""
    out = redact_url(text)
    for secret in secrets:
        value = secret.decode("utf-8", "replace") if isinstance(secret, bytes) else secret
        value = value.strip()
        if len(value) < 4:
            # Too short to find without mangling unrelated words; such a value is no secret.
            continue
        out = out.replace(value, REDACTED)
        for line in value.splitlines():
            line = line.strip()
            if len(line) >= 16:
                out = out.replace(line, REDACTED)
    return out


class GitError(Exception):
    """Base of all Git client errors. `reason` is the Flux condition reason to report."""

    reason: str = GIT_OPERATION_FAILED
    # Whether the client puts "unable to clone '<url>': " in front, as Flux's clone does for
    # transport errors (and not for "git repository is empty" or a semver without a match).
    prefixed: bool = False

    def __init__(
        self, message: str, *, reason: str | None = None, prefixed: bool | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        if prefixed is not None:
            self.prefixed = prefixed

    def __str__(self) -> str:
        return self.message


class InvalidURLError(GitError):
    """The URL cannot be used: a scheme other than http, https or ssh, scp-like syntax..."""

    reason = URL_INVALID


class AuthOptionsError(GitError):
    """The Secret's data does not make valid auth options (Flux: AuthenticationFailed)."""

    reason = AUTHENTICATION_FAILED


class FetchError(GitError):
    """Talking to the remote failed: network, TLS, server error, protocol error."""

    prefixed = True


class AuthenticationError(FetchError):
    """The remote rejected the credentials (HTTP 401/403, SSH publickey refused).

    Flux reports this as GitOperationFailed (the clone failed); the distinct class lets a
    caller tell a bad credential from a flaky network.
    """


class HostKeyError(FetchError):
    """The SSH server's host key is unknown or does not match known_hosts."""


class TLSError(FetchError):
    """The TLS handshake failed (untrusted certificate, name mismatch, client cert refused)."""


class RepositoryNotFoundError(FetchError):
    """The remote says there is no repository at this URL."""


class RefNotFoundError(FetchError):
    """The requested branch, tag, ref name or commit does not exist on the remote."""


class NoSemverMatchError(FetchError):
    """No tag satisfies the semver constraint."""

    prefixed = False


class EmptyRepositoryError(FetchError):
    """The remote repository has no refs at all.

    `reason` is EmptyGitRepository when a branch was asked for (Flux clones an empty branch
    into an empty work tree and the controller reports EmptyGitRepository); for tag, semver,
    name and commit refs Flux's clone fails outright, so the reason is GitOperationFailed.
    """

    reason = EMPTY_GIT_REPOSITORY
    prefixed = False


class GitTimeoutError(FetchError):
    """The operation did not finish within its timeout."""


class UnsupportedError(GitError):
    """A feature this client does not implement (a SOCKS proxy without PySocks, ...)."""


class VerificationError(GitError):
    """Signature verification failed or could not be attempted."""

    reason = VERIFICATION_ERROR


class SubmoduleError(GitError):
    """spec.recurseSubmodules could not be honoured: a broken `.gitmodules`, a gitlink it does
    not describe, a URL the controller may not use, or a submodule that cannot be fetched
    (Flux: GitOperationFailed, the clone failed)."""
