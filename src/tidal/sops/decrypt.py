"""Decrypting one SOPS document with a Kustomization's keys, as Flux's decryptor does.

The steps of Flux's `SopsDecryptWithFormat` once the file is loaded: recover the data key,
decrypt the tree, and, when asked, check the MAC. Errors are SopsError subclasses whose text
is Flux's ("cannot get sops data key: ...", "error decrypting sops tree: ...", "failed to
verify sops data integrity: ...").
"""

from __future__ import annotations

from tidal.sops import tree
from tidal.sops.errors import MacError
from tidal.sops.keys import Keyring
from tidal.sops.model import Document


def decrypt_document(
    doc: Document, keyring: Keyring, *, verify_mac: bool, comments_lost: bool = False
) -> Document:
    """Decrypt `doc` in place (and return it).

    `comments_lost` says the document went through a format without comments (Flux: JSON
    input, as for a resource after the kustomize build). If its metadata then selects values
    by comment regex, values that carry SOPS's envelope are decrypted instead, and the MAC
    cannot be checked (an error when `verify_mac`), as in Flux.
    """
    data_key = keyring.data_key(doc.metadata)
    metadata = doc.metadata
    if comments_lost and (metadata.encrypted_comment_regex or metadata.unencrypted_comment_regex):
        if verify_mac:
            raise MacError(
                "failed to verify sops data integrity: "
                "not supported for data encrypted with comment regexes"
            )
        tree.decrypt_enveloped(doc, data_key)
        return doc
    mac = tree.decrypt_document(doc, data_key)
    if verify_mac:
        tree.verify_mac(doc, data_key, mac)
    return doc
