"""Shamir's secret sharing as SOPS uses it to split a data key across key groups.

SOPS uses HashiCorp Vault's scheme: each byte of the secret is the constant term of its own
random polynomial over GF(2^8) (the AES field, x^8 + x^4 + x^3 + x + 1); a share holds that
polynomial's value at x for every byte, followed by the single byte x. Combining interpolates
the polynomials at 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from tidal.sops.errors import SopsError

_REDUCTION: Final = 0x11B


def _tables() -> tuple[list[int], list[int]]:
    # 3 generates the multiplicative group of this field: powers of 3 give every non-zero byte.
    exp = [0] * 510
    log = [0] * 256
    x = 1
    for power in range(255):
        exp[power] = exp[power + 255] = x
        log[x] = power
        doubled = x << 1
        if doubled & 0x100:
            doubled ^= _REDUCTION
        x ^= doubled  # x * 3 == x * 2 + x
    return exp, log


_EXP, _LOG = _tables()


def _mul(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    return _EXP[_LOG[a] + _LOG[b]]


def _div(a: int, b: int) -> int:
    if a == 0:
        return 0
    return _EXP[_LOG[a] + 255 - _LOG[b]]


class ShamirError(SopsError):
    """The shares do not combine (SOPS's messages)."""


def combine(parts: Sequence[bytes]) -> bytes:
    """The secret the shares were split from; all shares given are used."""
    if len(parts) < 2:
        raise ShamirError("less than two parts cannot be used to reconstruct the secret")
    size = len(parts[0])
    if size < 2:
        raise ShamirError("parts must be at least two bytes")
    if any(len(part) != size for part in parts):
        raise ShamirError("all parts must be the same length")
    xs = [part[-1] for part in parts]
    if len(set(xs)) != len(xs):
        raise ShamirError("duplicate part detected")
    # The Lagrange basis polynomials at 0 depend only on the x's, not on the byte position.
    weights = []
    for i, xi in enumerate(xs):
        weight = 1
        for j, xj in enumerate(xs):
            if i != j:
                # (0 - xj) / (xi - xj); subtraction is XOR in GF(2^8).
                weight = _mul(weight, _div(xj, xi ^ xj))
        weights.append(weight)
    secret = bytearray(size - 1)
    for position in range(size - 1):
        value = 0
        for part, weight in zip(parts, weights, strict=True):
            value ^= _mul(part[position], weight)
        secret[position] = value
    return bytes(secret)
