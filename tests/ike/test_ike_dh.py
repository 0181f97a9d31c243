"""pyipsec.crypto.dh: RFC 5903 §8, RFC 7748 §6 vectors, RFC 3526 primes, peer validation."""

from __future__ import annotations

import random

import pytest

from pyipsec.crypto import dh
from pyipsec.errors import ConfigError, ParseError
from vectors.ike_rfc5903 import ECP_VECTORS, unhex
from vectors.ike_rfc7748 import X_VECTORS

GROUPS = (14, 15, 16, 19, 20, 21, 31, 32)


@pytest.mark.parametrize("vec", ECP_VECTORS, ids=lambda v: v["section"])
def test_rfc5903_vectors(vec: dict[str, str | int]) -> None:
    group = vec["group"]
    assert isinstance(group, int)
    i = dh.from_private_bytes(group, unhex(str(vec["i"])))
    r = dh.from_private_bytes(group, unhex(str(vec["r"])))
    gi = unhex(str(vec["gix"])) + unhex(str(vec["giy"]))
    gr = unhex(str(vec["grx"])) + unhex(str(vec["gry"]))
    assert i.public_bytes() == gi
    assert r.public_bytes() == gr
    # The KE payload data of §8 is the same x || y after the 8-octet KE header.
    assert unhex(str(vec["kei"]))[8:] == gi
    assert unhex(str(vec["ker"]))[8:] == gr
    girx = unhex(str(vec["girx"]))
    assert i.shared_secret(gr) == girx
    assert r.shared_secret(gi) == girx


@pytest.mark.parametrize("vec", X_VECTORS, ids=lambda v: v["section"])
def test_rfc7748_vectors(vec: dict[str, str | int]) -> None:
    group = vec["group"]
    assert isinstance(group, int)
    a = dh.from_private_bytes(group, bytes.fromhex(str(vec["a_private"])))
    b = dh.from_private_bytes(group, bytes.fromhex(str(vec["b_private"])))
    assert a.public_bytes().hex() == vec["a_public"]
    assert b.public_bytes().hex() == vec["b_public"]
    assert a.shared_secret(b.public_bytes()).hex() == vec["shared"]
    assert b.shared_secret(a.public_bytes()).hex() == vec["shared"]


def _pi_scaled(bits: int) -> int:
    """floor(2^bits * pi) by Machin's formula, in integers."""
    guard = 64
    scale = 1 << (bits + guard)

    def arctan_inv(x: int) -> int:
        total = term = scale // x
        n, sign = 1, -1
        while term:
            term //= x * x
            total += sign * (term // (2 * n + 1))
            sign, n = -sign, n + 1
        return total

    return (4 * (4 * arctan_inv(5) - arctan_inv(239))) >> guard


def _probably_prime(n: int, rounds: int = 8) -> bool:
    rng = random.Random(n)
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 2), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


@pytest.mark.parametrize(("group", "bits", "k"), [(14, 2048, 124476), (15, 3072, 1690314)])
def test_modp_primes_follow_rfc3526(group: int, bits: int, k: int) -> None:
    # RFC 3526: p = 2^N - 2^(N-64) - 1 + 2^64 * ([2^(N-130) pi] + k), a safe prime.
    p = 2**bits - 2 ** (bits - 64) - 1 + 2**64 * (_pi_scaled(bits - 130) + k)
    assert dh._MODP_PRIMES[group] == p
    assert _probably_prime(p) and _probably_prime((p - 1) // 2)


def test_modp_4096_prime_formula() -> None:
    bits = 4096
    p = 2**bits - 2 ** (bits - 64) - 1 + 2**64 * (_pi_scaled(bits - 130) + 240904)
    assert dh._MODP_PRIMES[16] == p


@pytest.mark.parametrize("group", GROUPS)
def test_agreement_and_lengths(group: int) -> None:
    a, b = dh.generate(group), dh.generate(group)
    assert len(a.public_bytes()) == dh.public_length(group) == a.public_length
    assert a.public_bytes() != b.public_bytes()
    secret = a.shared_secret(b.public_bytes())
    assert secret == b.shared_secret(a.public_bytes())
    expected_len = {19: 32, 20: 48, 21: 66}.get(group, dh.public_length(group))
    assert len(secret) == expected_len
    assert repr(a) == f"{type(a).__name__}(group={group})"  # no key material


@pytest.mark.parametrize("group", GROUPS)
def test_wrong_length_is_rejected(group: int) -> None:
    a, b = dh.generate(group), dh.generate(group)
    peer = b.public_bytes()
    for bad in (b"", peer[:-1], peer + b"\x00", b"\x04" + peer):
        with pytest.raises(dh.InvalidKeyExchange):
            a.shared_secret(bad)


@pytest.mark.parametrize("group", [14, 15, 16])
def test_modp_degenerate_values(group: int) -> None:
    a = dh.generate(group)
    n = dh.public_length(group)
    p = dh._MODP_PRIMES[group]
    for y in (0, 1, p - 1, p, p + 1, 2 ** (8 * n) - 1):
        with pytest.raises(dh.InvalidKeyExchange):
            a.shared_secret(y.to_bytes(n, "big"))


@pytest.mark.parametrize("group", [19, 20, 21])
def test_ecp_point_not_on_curve(group: int) -> None:
    a, b = dh.generate(group), dh.generate(group)
    peer = bytearray(b.public_bytes())
    peer[-1] ^= 1
    with pytest.raises(dh.InvalidKeyExchange):
        a.shared_secret(bytes(peer))
    with pytest.raises(dh.InvalidKeyExchange):
        a.shared_secret(bytes(len(peer)))  # (0, 0) is not a point of these curves


@pytest.mark.parametrize("group", [31, 32])
def test_x_low_order_points(group: int) -> None:
    a = dh.generate(group)
    n = dh.public_length(group)
    # u = 0 and u = 1 are small-order points: the result would be all zeros
    # (RFC 7748 §6, RFC 8031 §2.3).
    for u in (0, 1):
        with pytest.raises(dh.InvalidKeyExchange):
            a.shared_secret(u.to_bytes(n, "little"))


def test_invalid_key_exchange_is_a_parse_error() -> None:
    assert issubclass(dh.InvalidKeyExchange, ParseError)


def test_unsupported_groups_and_private_values() -> None:
    for group in (0, 1, 2, 5, 18, 22, 99):
        with pytest.raises(ConfigError):
            dh.generate(group)
        with pytest.raises(ConfigError):
            dh.public_length(group)
    with pytest.raises(ConfigError):
        dh.from_private_bytes(14, b"\x01")
    with pytest.raises(ConfigError):
        dh.from_private_bytes(31, b"short")
    with pytest.raises(ConfigError):
        dh.from_private_bytes(19, b"\x00" * 32)
