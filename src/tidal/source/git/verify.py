"""Signature verification of the fetched commit and/or its tag (`spec.verify`).

As in Flux (source-controller verifySignature + fluxcd/pkg git/signature):

- mode `HEAD` (or the legacy `head`) verifies the commit, `Tag` the annotated tag the ref
  went through, `TagAndHEAD` both; a tag mode without a tag is refused
  (InvalidVerificationMode), as is an unsigned tag (InvalidGitObject).
- The Secret's keys ending in `.sshpub` hold SSH public keys (authorized_keys lines); every
  other key holds an armored OpenPGP keyring. The signature's armor picks which are used.
- Success reports the primary key ID (16 upper-case hex) for OpenPGP, the `SHA256:`
  fingerprint for SSH, in Flux's message: "verified signature of\\n\\t- commit '<hash>' with
  key '<id>'".
- SSH signatures use the `git` namespace. The sshsig library verifies ed25519 and RSA keys;
  an ECDSA key is reported as unsupported.

OpenPGP uses pysequoia (Sequoia-PGP, its standard policy: SHA-1 signatures are refused).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from tidal.source.git import errors
from tidal.source.git.commit import Commit
from tidal.source.git.errors import VerificationError

PGP_PREFIX = b"-----BEGIN PGP SIGNATURE-----"
SSH_PREFIX = b"-----BEGIN SSH SIGNATURE-----"
X509_PREFIX = b"-----BEGIN SIGNED MESSAGE-----"
MODES = ("HEAD", "head", "Tag", "TagAndHEAD")


@dataclass(frozen=True, slots=True)
class Verification:
    mode: str
    message: str  # the SourceVerified=True condition message
    commit_key: str | None
    tag_key: str | None


def signature_type(signature: bytes | None) -> str:
    sig = (signature or b"").strip()
    if not sig:
        return "empty"
    if sig.startswith(PGP_PREFIX):
        return "openpgp"
    if sig.startswith(SSH_PREFIX):
        return "ssh"
    if sig.startswith(X509_PREFIX):
        return "x509"
    return "unknown"


def _split_keys(keys: Mapping[str, bytes]) -> tuple[list[bytes], list[bytes]]:
    pgp: list[bytes] = []
    ssh: list[bytes] = []
    for name in sorted(keys):
        (ssh if name.endswith(".sshpub") else pgp).append(keys[name])
    return pgp, ssh


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def verify_pgp(signature: bytes, payload: bytes, keyrings: list[bytes]) -> str:
    """The primary key ID of the keyring key that made the signature."""
    import pysequoia

    certs: list[pysequoia.Cert] = []
    parse_error: str | None = None
    for ring in keyrings:
        try:
            certs.extend(pysequoia.Cert.split_bytes(ring))
        except Exception as e:
            parse_error = parse_error or f"unable to read armored key ring: {_first_line(e)}"
    if not certs:
        raise VerificationError(parse_error or "no OpenPGP public keys given")
    try:
        sig = pysequoia.Sig.from_bytes(signature.strip())
        result = pysequoia.verify(bytes=payload, store=lambda _ids: certs, signature=sig)
    except Exception:
        raise VerificationError(
            "unable to verify payload with any of the given key rings"
        ) from None
    if not result.valid_sigs:
        raise VerificationError("unable to verify payload with any of the given key rings")
    fingerprint: str = result.valid_sigs[0].certificate
    return fingerprint[-16:].upper()


def _ssh_fingerprint(blob: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def verify_ssh(signature: bytes, payload: bytes, authorized_keys: list[bytes]) -> str:
    """The SHA256 fingerprint of the authorized key that made the signature."""
    import sshsig
    from sshsig.ssh_public_key import PublicKey

    allowed: list[PublicKey] = []
    for text in authorized_keys:
        for raw in text.decode("utf-8", "replace").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split()
            # authorized_keys lines may start with options; the key type comes before the blob
            for i in range(len(fields) - 1):
                if fields[i].startswith(("ssh-", "ecdsa-", "sk-")):
                    try:
                        allowed.append(PublicKey.from_openssh_str(f"{fields[i]} {fields[i + 1]}"))
                    except NotImplementedError:
                        pass  # a key type sshsig cannot verify with; it cannot match
                    except ValueError as e:
                        raise VerificationError(f"unable to parse authorized key: {e}") from None
                    break
    if not allowed:
        raise VerificationError("no SSH public keys given")
    try:
        key = sshsig.verify(payload, signature, allowed, namespace="git")
    except NotImplementedError as e:
        raise VerificationError(f"unsupported SSH signature: {e}") from None
    except Exception:
        raise VerificationError(
            "unable to verify payload with any of the given authorized keys"
        ) from None
    blob = base64.b64decode(key.openssh_str().split()[1])
    return _ssh_fingerprint(blob)


def verify_signature(signature: bytes | None, payload: bytes, keys: Mapping[str, bytes]) -> str:
    kind = signature_type(signature)
    if kind == "empty":
        raise VerificationError("unable to verify payload as the provided signature is empty")
    assert signature is not None
    pgp, ssh = _split_keys(keys)
    if kind == "openpgp":
        return verify_pgp(signature, payload, pgp)
    if kind == "ssh":
        return verify_ssh(signature, payload, ssh)
    raise VerificationError(f"unsupported signature format: {kind}")


def verify_commit(commit: Commit, mode: str, keys: Mapping[str, bytes]) -> Verification:
    """Verify what `mode` asks for; raises VerificationError with Flux's reason and wording."""
    if mode not in MODES:
        raise VerificationError(
            f"invalid verification mode {mode!r}: want one of {', '.join(MODES)}",
            reason=errors.INVALID_VERIFICATION_MODE,
        )
    lines: list[str] = []
    tag_key = commit_key = None
    if mode in ("Tag", "TagAndHEAD"):
        tag = commit.tag
        if tag is None:
            raise VerificationError(
                "cannot verify tag object's signature if a tag reference is not specified",
                reason=errors.INVALID_VERIFICATION_MODE,
            )
        if not tag.signature:
            raise VerificationError(
                f"cannot verify signature of tag '{tag}' since it is not signed",
                reason=errors.INVALID_GIT_OBJECT,
            )
        try:
            tag_key = verify_signature(tag.signature, tag.payload, keys)
        except VerificationError as e:
            raise VerificationError(
                f"signature verification of tag '{tag}' failed: unable to verify Git tag: {e}",
                reason=errors.INVALID_TAG_SIGNATURE,
            ) from None
        lines.append(f"tag '{tag}' with key '{tag_key}'")
    if mode in ("HEAD", "head", "TagAndHEAD"):
        try:
            commit_key = verify_signature(commit.signature, commit.payload, keys)
        except VerificationError as e:
            raise VerificationError(
                f"signature verification of commit '{commit.hash}' failed: "
                f"unable to verify Git commit: {e}",
                reason=errors.INVALID_COMMIT_SIGNATURE,
            ) from None
        lines.append(f"commit '{commit.hash}' with key '{commit_key}'")
    message = "verified signature of" + "".join(f"\n\t- {line}" for line in lines)
    return Verification(mode, message, commit_key, tag_key)
