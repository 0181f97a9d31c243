"""PF_KEY v2 parser fuzzing: random and mutated bytes only ever raise KeyApiError.

Whatever the parser accepts must also survive the rest of the pipeline the PF_KEY server
runs: ``check_message`` raises nothing but KeyApiError, and the message builds again and
parses back to itself.
"""

from __future__ import annotations

import errno
import struct
from ipaddress import ip_address

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pfkey_helpers import V4A, V4B, V6A, V6B, sadb_msg
from pyipsec.errors import KeyApiError
from pyipsec.keyapi import pfkey_const as c
from pyipsec.keyapi.pfkey import (
    Address,
    Alg,
    Comb,
    Filter,
    Identity,
    IpsecRequest,
    Key,
    KmAddress,
    KmPrivate,
    Lifetime,
    NatTPort,
    NatTType,
    PfkeyMessage,
    Policy,
    Proposal,
    Sa,
    Sa2,
    SecCtx,
    Sensitivity,
    SockAddr,
    SpiRange,
    Supported,
    build_message,
    check_message,
    parse_message,
    split_messages,
)

TUNNEL4 = IpsecRequest(50, 2, 2, 1, SockAddr(V4A), SockAddr(V4B))
TUNNEL6 = IpsecRequest(50, 2, 3, 7, SockAddr(V6A, 0, 1, 2), SockAddr(V6B))

SEEDS = [
    build_message(msg)
    for msg in (
        PfkeyMessage(
            c.SADB_ADD,
            c.SADB_SATYPE_ESP,
            1,
            2,
            extensions=(
                Sa(0x1000, 32, 1, 5, 12),
                Lifetime(c.SADB_EXT_LIFETIME_CURRENT, 1, 2, 3, 4),
                Lifetime(c.SADB_EXT_LIFETIME_HARD, 0, 0, 3600, 0),
                Lifetime(c.SADB_EXT_LIFETIME_SOFT, 0, 0, 3000, 0),
                Address.host(c.SADB_EXT_ADDRESS_SRC, V4A),
                Address.host(c.SADB_EXT_ADDRESS_DST, V4B, port=4500, proto=17),
                Address(c.SADB_EXT_ADDRESS_PROXY, ip_address("198.51.100.0"), 24),
                Key.of(c.SADB_EXT_KEY_AUTH, bytes(32)),
                Key(c.SADB_EXT_KEY_ENCRYPT, 156, bytes(20)),
                Identity(c.SADB_EXT_IDENTITY_SRC, c.SADB_IDENTTYPE_FQDN, b"gw.example"),
                Identity(c.SADB_EXT_IDENTITY_DST, c.SADB_IDENTTYPE_PREFIX, b"192.0.2.0/24"),
                Sensitivity(1, 2, 3, (4,), (5, 6)),
                Sa2(c.IPSEC_MODE_TUNNEL, 9),
                NatTType(c.UDP_ENCAP_ESPINUDP),
                NatTPort(c.SADB_X_EXT_NAT_T_SPORT, 4500),
                NatTPort(c.SADB_X_EXT_NAT_T_DPORT, 4500),
                Address.host(c.SADB_X_EXT_NAT_T_OA, V4A),
                SecCtx(1, 1, b"ctx"),
            ),
        ),
        PfkeyMessage(
            c.SADB_ACQUIRE,
            c.SADB_SATYPE_ESP,
            3,
            extensions=(
                Address.host(c.SADB_EXT_ADDRESS_SRC, V6A),
                Address.host(c.SADB_EXT_ADDRESS_DST, V6B),
                Policy(2, 2, 0x209, 0, (TUNNEL6, TUNNEL4)),
                Proposal(32, (Comb(5, 12, 0, 256, 256, 128, 256), Comb(3))),
                Supported(c.SADB_EXT_SUPPORTED_AUTH, (Alg(3, 0, 160, 160),)),
                Supported(c.SADB_EXT_SUPPORTED_ENCRYPT, (Alg(12, 16, 128, 256),)),
                SpiRange(0x100, 0xFFFF),
                KmPrivate(b"12345678"),
                KmAddress(SockAddr(V4A), SockAddr(V4B), 1),
                Filter(V6A, V6B, 64, 64),
            ),
        ),
        PfkeyMessage(
            c.SADB_X_MIGRATE,
            extensions=(
                Address.host(c.SADB_EXT_ADDRESS_SRC, V4A),
                Address.host(c.SADB_EXT_ADDRESS_DST, V4B),
                Policy(2, 2, 0, 0, (TUNNEL4, TUNNEL4)),
            ),
        ),
    )
]


def survive(buf: bytes) -> None:
    """Parse ``buf`` both ways; what parses must check, build and re-parse cleanly."""
    for strict in (True, False):
        try:
            msg = parse_message(buf, strict=strict)
        except KeyApiError as exc:
            assert 0 < exc.errno < 256
            continue
        try:
            check_message(msg)
        except KeyApiError as exc:
            assert 0 < exc.errno < 256
        assert parse_message(build_message(msg), strict=strict) == msg


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    buf = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["byte", "u16", "cut", "insert", "msglen"]))
        pos = draw(st.integers(0, len(buf) - 1)) if buf else 0
        if kind == "byte" and buf:
            buf[pos] = draw(st.integers(0, 255))
        elif kind == "u16" and len(buf) >= 2:
            # Lengths, types, families and prefix/key sizes are all 16-bit fields.
            pos -= pos % 2
            pos = min(pos, len(buf) - 2)
            buf[pos : pos + 2] = struct.pack(
                "=H", draw(st.sampled_from([0, 1, 2, 3, 10, 255, 0xFFFF]))
            )
        elif kind == "cut":
            del buf[pos : pos + draw(st.integers(1, 16))]
        elif kind == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "msglen" and len(buf) >= 16:
            # Keep the header consistent so the mutation reaches the extensions.
            buf[4:6] = struct.pack("=H", len(buf) // 8)
    return bytes(buf)


FAST = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(mutated())
def test_mutated_messages(buf: bytes) -> None:
    survive(buf)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=160))
def test_random_bytes(buf: bytes) -> None:
    survive(buf)
    try:
        messages = split_messages(buf)
    except KeyApiError as exc:
        assert exc.errno in (errno.EINVAL, errno.EMSGSIZE)
    else:
        assert all(parse_message(build_message(m)) == m for m in messages)


@st.composite
def random_extensions(draw: st.DrawFn) -> bytes:
    # A valid header followed by extension headers with random types and bodies.
    body = bytearray()
    for _ in range(draw(st.integers(0, 4))):
        words = draw(st.integers(1, 8))
        exttype = draw(st.integers(0, c.SADB_EXT_MAX + 2))
        body += struct.pack("=HH", words, exttype) + draw(
            st.binary(min_size=8 * words - 4, max_size=8 * words - 4)
        )
    msg_type = draw(st.integers(1, c.SADB_MAX))
    head = sadb_msg(msg_type, 2 + len(body) // 8, satype=draw(st.integers(0, 9)))
    return head + bytes(body)


@settings(max_examples=1500, deadline=None)
@given(random_extensions())
def test_random_extensions(buf: bytes) -> None:
    survive(buf)


def test_seeds_are_valid() -> None:
    for seed in SEEDS:
        assert build_message(parse_message(seed)) == seed
