"""Cosign signatures checked with public keys, as Flux checks them for OCIRepository
`spec.verify` with a `secretRef` (offline, transparency log ignored).

A signature made by `cosign sign --key` lives in the same repository under the tag
`sha256-<hex>.sig`: an image whose layers are simple-signing payloads (JSON naming the signed
manifest digest), each with its base64 signature in the `dev.cosignproject.cosign/signature`
annotation. A digest is verified when one payload names it and its signature checks out under
one of the keys (ECDSA and RSA PKCS#1 v1.5 with SHA-256, or Ed25519, as cosign's default
verifiers). Keyless signatures and cosign v3's bundle format (OCI referrers) are not read:
with those, verification fails, it never passes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from tidal.source.oci.client import Client
from tidal.source.oci.errors import OCIError, RegistryError
from tidal.source.oci.manifest import Manifest

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
MAX_PAYLOAD = 1 << 20
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


class VerificationError(OCIError):
    """The verification material itself is unusable (not a bad signature)."""


def signature_tag(digest: str) -> str:
    """Where cosign stores a digest's signatures: `sha256:<hex>` -> `sha256-<hex>.sig`."""
    return digest.replace(":", "-", 1) + ".sig"


def public_keys(secret: Mapping[str, bytes]) -> list[bytes]:
    """The `*.pub` values of a verification Secret, in key order."""
    return [secret[k] for k in sorted(secret) if k.endswith(".pub")]


def fingerprint(provider: str, secret: Mapping[str, bytes] | None) -> str:
    """Flux's verificationMaterialFingerprint for cosign: independent of Secret and key names,
    so a rotated key re-verifies the current revision and a renamed one does not."""
    parts = [f"provider:{provider}\0".encode()]
    if secret is not None:
        parts += [b"pub:" + key + b"\0" for key in sorted(public_keys(secret))]
    return "sha256:" + hashlib.sha256(b"".join(parts)).hexdigest()


def load_public_key(pem: bytes) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise VerificationError(f"invalid public key: {e}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise VerificationError(f"unsupported public key type {type(key).__name__}")
    return key


def signature_valid(key: PublicKey, signature: bytes, payload: bytes) -> bool:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, payload)
    except InvalidSignature:
        return False
    return True


def payload_names(payload: bytes, digest: str) -> bool:
    """Whether a simple-signing payload is about `digest` (cosign's SimpleClaimVerifier)."""
    try:
        doc = json.loads(payload)
        signed = doc["critical"]["image"]["docker-manifest-digest"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(signed, str) and signed == digest


async def _signature_image(client: Client, digest: str) -> Manifest | None:
    try:
        return await client.fetch_image(signature_tag(digest))
    except RegistryError as e:
        if e.not_found or "MANIFEST_UNKNOWN" in e.codes:
            return None
        raise


async def verify(client: Client, digest: str, keys: Iterable[bytes]) -> bool:
    """Whether a cosign signature of `digest` in the client's repository verifies under one of
    `keys` (PEM public keys). Registry failures raise; a missing or bad signature is False."""
    loaded = [load_public_key(k) for k in keys]
    if not loaded:
        return False
    image = await _signature_image(client, digest)
    if image is None:
        return False
    for layer in image.layers:
        encoded = layer.annotations.get(SIGNATURE_ANNOTATION, "")
        if layer.media_type != SIMPLE_SIGNING or not encoded:
            continue
        try:
            signature = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        payload = await client.fetch_blob_bytes(layer, max_size=MAX_PAYLOAD)
        if not payload_names(payload, digest):
            continue
        if any(signature_valid(key, signature, payload) for key in loaded):
            return True
    return False
