"""PF_KEY policies (pyipsec.keyapi.pfkey_policy): sadb_x_policy and its ipsecrequests.

Message-level checks of SPD requests are in test_pfkey.py; the C layout in
test_pfkey_golden.py. Here the extension codec is called directly.
"""

from __future__ import annotations

import struct

import pytest

from pfkey_helpers import V4A, V4B, V6A, V6B
from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.keyapi import pfkey_const as c
from pyipsec.keyapi.pfkey_address import SockAddr
from pyipsec.keyapi.pfkey_policy import IpsecRequest, Policy, build_policy, parse_policy

TUNNEL4 = IpsecRequest(
    c.IPPROTO_ESP, c.IPSEC_MODE_TUNNEL, c.IPSEC_LEVEL_REQUIRE, 1, SockAddr(V4A), SockAddr(V4B)
)
TUNNEL6 = IpsecRequest(
    c.IPPROTO_ESP, c.IPSEC_MODE_TUNNEL, c.IPSEC_LEVEL_UNIQUE, 7, SockAddr(V6A), SockAddr(V6B)
)
TRANSPORT = IpsecRequest(c.IPPROTO_ESP, c.IPSEC_MODE_TRANSPORT, c.IPSEC_LEVEL_USE)


def _parse(raw: bytes) -> Policy:
    return parse_policy(c.SADB_X_EXT_POLICY, memoryview(raw))


def test_round_trip_with_and_without_endpoints() -> None:
    pol = Policy(c.IPSEC_POLICY_IPSEC, c.IPSEC_DIR_OUTBOUND, 5, 100, (TUNNEL4, TRANSPORT, TUNNEL6))
    raw = build_policy(pol)
    assert _parse(raw) == pol
    # sadb_x_policy_len counts 64-bit words; sadb_x_ipsecrequest_len counts bytes.
    assert struct.unpack_from("=H", raw)[0] * 8 == len(raw) == 16 + (16 + 32) + 16 + (16 + 56)
    assert struct.unpack_from("=H", raw, 16)[0] == 48
    assert _parse(build_policy(Policy(c.IPSEC_POLICY_DISCARD, c.IPSEC_DIR_INBOUND))).requests == ()


def test_request_lengths_out_of_the_policy_are_einval() -> None:
    raw = bytearray(
        build_policy(Policy(c.IPSEC_POLICY_IPSEC, c.IPSEC_DIR_OUTBOUND, 0, 0, (TUNNEL4,)))
    )
    for rq_len in (8, 200):
        bad = bytes(raw[:16]) + struct.pack("=H", rq_len) + bytes(raw[18:])
        with pytest.raises(KeyApiError, match="ipsecrequest length"):
            _parse(bad)
    with pytest.raises(KeyApiError, match="trailing bytes"):
        _parse(bytes(raw) + bytes(8))


def test_request_with_one_endpoint_is_refused() -> None:
    half = IpsecRequest(c.IPPROTO_ESP, c.IPSEC_MODE_TUNNEL, c.IPSEC_LEVEL_REQUIRE, 0, SockAddr(V4A))
    with pytest.raises(ConfigError, match="both endpoints or neither"):
        build_policy(Policy(c.IPSEC_POLICY_IPSEC, c.IPSEC_DIR_OUTBOUND, 0, 0, (half,)))
