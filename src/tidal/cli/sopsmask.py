"""Hiding SOPS ciphertext in what `build kustomization` prints, as `flux build` does.

flux never decrypts on the client: a Secret whose manifest carries SOPS metadata has every value
of `data` and `stringData` replaced by the mask `**SOPS**` (base64-encoded in `data`, and for a
`kubernetes.io/dockerconfigjson` Secret wrapped in a JSON object, so that the type's validation
still passes), and its `sops` block dropped. A Secret without that metadata keeps its values,
except those that are themselves SOPS documents (a `secretGenerator` file holding an encrypted
file). Plain Secrets are printed as they are: flux masks ciphertext, not secrets.

Two quirks are kept because the output is compared byte for byte with flux's: an encrypted
value in `stringData` of an otherwise plain Secret is replaced by the *base64* form of the mask,
and the SOPS check on a whole Secret is a text search of its YAML for `sops:` and `mac: ENC[`.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Final

from tidal.kube import goyaml

MASK: Final = "**SOPS**"
MASK_BASE64: Final = base64.b64encode(MASK.encode()).decode()
_DOCKER_CONFIG_JSON: Final = "kubernetes.io/dockerconfigjson"
_DOCKER_MASK: Final = json.dumps({"mask": MASK}, separators=(",", ":"))


class MaskError(ValueError):
    pass


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items()}


def _is_sops_value(data: bytes) -> bool:
    return b"sops" in data and b"ENC[" in data


def _decode(name: str, value: str) -> bytes:
    try:
        # Go's decoder skips line breaks, which kustomize puts in long generated values.
        return base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
    except binascii.Error:
        raise MaskError(f"failed to mask secret {name} sops data: illegal base64 data") from None


def mask_secret(obj: dict[str, Any]) -> dict[str, Any]:
    """The object with its SOPS-encrypted values masked; objects other than Secrets unchanged."""
    if obj.get("kind") != "Secret":
        return obj
    name = str((obj.get("metadata") or {}).get("name", ""))
    out = dict(obj)
    data = _string_map(obj.get("data"))
    string_data = _string_map(obj.get("stringData"))
    text = goyaml.marshal(obj)
    if "sops:" in text and "mac: ENC[" in text:
        out.pop("sops", None)
        if (obj.get("type") or "Opaque") == _DOCKER_CONFIG_JSON:
            encoded = base64.b64encode(_DOCKER_MASK.encode()).decode()
            data = dict.fromkeys(data, encoded)
            string_data = dict.fromkeys(string_data, _DOCKER_MASK)
        else:
            data = dict.fromkeys(data, MASK_BASE64)
            string_data = dict.fromkeys(string_data, MASK)
    else:
        data = {k: MASK_BASE64 if _is_sops_value(_decode(name, v)) else v for k, v in data.items()}
        string_data = {
            k: MASK_BASE64 if _is_sops_value(v.encode()) else v for k, v in string_data.items()
        }
    if data:
        out["data"] = data
    if string_data:
        out["stringData"] = string_data
    return out
