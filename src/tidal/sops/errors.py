"""The errors of SOPS decryption.

Their text is what a user reads in a Kubernetes condition, so it carries Flux's wording (and
SOPS's beneath it) and never a decrypted value, a ciphertext or key material.
"""

from __future__ import annotations


class SopsError(Exception):
    """Decrypting a SOPS document failed; the message is fit for a status condition."""


class KeyImportError(SopsError):
    """An entry of the decryption Secret could not be imported."""


class DataKeyError(SopsError):
    """No (or not enough) master keys could unwrap the document's data key."""


class DecryptError(SopsError):
    """A value of the document could not be decrypted with the data key."""


class MacError(SopsError):
    """The document's MAC could not be read, or does not match its content."""


class CipherError(SopsError):
    """One encrypted value could not be decrypted (SOPS's text, already redacted)."""
