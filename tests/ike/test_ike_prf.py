"""pyipsec.crypto.prf: HMAC PRFs against RFC 4231 / RFC 2202, and prf+ (RFC 7296 §2.13)."""

from __future__ import annotations

import hmac as std_hmac

import pytest

from pyipsec.crypto.prf import (
    PRF_HMAC_SHA1,
    PRF_HMAC_SHA2_256,
    PRF_HMAC_SHA2_384,
    PRF_HMAC_SHA2_512,
    prf_by_id,
    supported_prf_ids,
)
from pyipsec.errors import ConfigError
from vectors.ike_rfc4231 import HMAC_VECTORS


@pytest.mark.parametrize(("source", "prf_id", "key", "data", "expected"), HMAC_VECTORS)
def test_hmac_known_answers(source: str, prf_id: int, key: str, data: str, expected: str) -> None:
    prf = prf_by_id(prf_id)
    assert prf(bytes.fromhex(key), bytes.fromhex(data)).hex() == expected, source


def test_ids_and_sizes() -> None:
    assert supported_prf_ids() == (2, 5, 6, 7)
    sizes = [p.digest_size for p in (PRF_HMAC_SHA1, PRF_HMAC_SHA2_256, PRF_HMAC_SHA2_384)]
    assert sizes == [20, 32, 48]
    assert PRF_HMAC_SHA2_512.key_size == 64
    with pytest.raises(ConfigError):
        prf_by_id(4)  # AES-XCBC-PRF: not implemented


def _prf_plus_by_definition(name: str, key: bytes, seed: bytes, n: int) -> bytes:
    # RFC 7296 §2.13 written out literally with the standard library's HMAC.
    out = b""
    t = b""
    counter = 1
    while len(out) < n:
        t = std_hmac.new(key, t + seed + bytes((counter,)), name).digest()
        out += t
        counter += 1
    return out[:n]


@pytest.mark.parametrize(
    ("prf", "name"),
    [(PRF_HMAC_SHA1, "sha1"), (PRF_HMAC_SHA2_256, "sha256"), (PRF_HMAC_SHA2_512, "sha512")],
)
@pytest.mark.parametrize("length", [0, 1, 20, 31, 32, 33, 100, 257])
def test_prf_plus_matches_definition(prf: object, name: str, length: int) -> None:
    from pyipsec.crypto.prf import Prf

    assert isinstance(prf, Prf)
    key, seed = b"k" * 17, b"seed-bytes" * 3
    assert prf.prf_plus(key, seed, length) == _prf_plus_by_definition(name, key, seed, length)


def test_prf_plus_limit() -> None:
    # 255 blocks is the most prf+ can produce: the counter is one octet.
    assert len(PRF_HMAC_SHA1.prf_plus(b"k", b"s", 255 * 20)) == 255 * 20
    with pytest.raises(ConfigError):
        PRF_HMAC_SHA1.prf_plus(b"k", b"s", 255 * 20 + 1)
    with pytest.raises(ConfigError):
        PRF_HMAC_SHA1.prf_plus(b"k", b"s", -1)


def test_prf_plus_prefix_property() -> None:
    # A longer prf+ output starts with the shorter one (it is one stream).
    long = PRF_HMAC_SHA2_384.prf_plus(b"key", b"seed", 500)
    assert PRF_HMAC_SHA2_384.prf_plus(b"key", b"seed", 123) == long[:123]
    assert PRF_HMAC_SHA2_384.prf_plus(b"key", b"seeD", 123) != long[:123]
