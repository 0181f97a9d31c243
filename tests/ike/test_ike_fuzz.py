"""Fuzzing the IKEv2 parsers: nothing but ParseError may escape (RFC 7296 §2.21).

``fuzz_one_input`` is an atheris-style harness (``atheris.Setup(sys.argv,
fuzz_one_input)``); here hypothesis drives it, with raw bytes and with mutations of
valid messages so the search gets past the header checks.
"""

from __future__ import annotations

import contextlib
import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyipsec.crypto import dh
from pyipsec.errors import ParseError
from pyipsec.ike.v2 import sk
from pyipsec.ike.v2.constants import EncrId, ExchangeType, IntegId, PayloadType
from pyipsec.ike.v2.message import IkeHeader, build_message, parse_message
from pyipsec.ike.v2.payloads import (
    KNOWN_TYPES,
    CfgAttribute,
    CpPayload,
    DeletePayload,
    IdPayload,
    KePayload,
    NoncePayload,
    NotifyPayload,
    Proposal,
    SaPayload,
    TrafficSelector,
    Transform,
    TsPayload,
    parse_body,
)

_CBC = sk.SkCipher(EncrId.AES_CBC, b"k" * 16, IntegId.HMAC_SHA1_96, b"a" * 20)
_GCM = sk.SkCipher(EncrId.AES_GCM_16, b"g" * 20)
_X25519 = dh.generate(31)
_ECP256 = dh.generate(19)

_HEADER = IkeHeader(b"I" * 8, b"R" * 8, ExchangeType.IKE_SA_INIT, 0, 0x08)
_SEED_MESSAGES = (
    build_message(
        _HEADER,
        [
            SaPayload([Proposal(1, 1, b"", [Transform.with_key_length(1, 12, 128)])]),
            KePayload(31, b"k" * 32),
            NoncePayload(b"n" * 32),
            NotifyPayload(16388, b"h" * 20),
            IdPayload(2, b"x.example"),
            DeletePayload(3, [b"abcd"], 4),
            CpPayload(1, [CfgAttribute(1)]),
            TsPayload(
                [
                    TrafficSelector(
                        ipaddress.ip_address("192.0.2.0"), ipaddress.ip_address("192.0.2.255")
                    )
                ]
            ),
        ],
    ),
    sk.encrypt_message(_HEADER, [NoncePayload(b"n" * 16)], _CBC),
    sk.encrypt_message(_HEADER, [NoncePayload(b"n" * 16)], _GCM),
    sk.encrypt_fragment(_HEADER, b"chunk", 1, 2, _GCM, PayloadType.NONCE),
)


def fuzz_one_input(data: bytes) -> None:
    """Feed ``data`` to every IKEv2 parser; only ParseError (and subclasses) may escape."""
    try:
        msg = parse_message(data)
    except ParseError:
        pass
    else:
        for cipher in (_CBC, _GCM):
            try:
                if msg.encrypted is not None and msg.encrypted.payload_type == PayloadType.SKF:
                    sk.decrypt_fragment(msg, cipher)
                else:
                    sk.decrypt_message(msg, cipher)
            except (ParseError, sk.IntegrityError):
                pass
    if data:
        # The first octet picks a payload type; the rest is its body.
        ptype = sorted(KNOWN_TYPES)[data[0] % len(KNOWN_TYPES)]
        with contextlib.suppress(ParseError):
            parse_body(ptype, memoryview(data[1:]), data[0])
    for kx in (_X25519, _ECP256):
        with contextlib.suppress(ParseError):
            kx.shared_secret(data)
    with contextlib.suppress(ParseError):
        sk.parse_inner(data[0] if data else 0, data[1:])


_FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FAST
@given(st.binary(max_size=300))
def test_fuzz_raw_bytes(data: bytes) -> None:
    fuzz_one_input(data)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    seed = bytearray(draw(st.sampled_from(_SEED_MESSAGES)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.integers(0, 2))
        pos = draw(st.integers(0, len(seed) - 1))
        if op == 0:
            seed[pos] = draw(st.integers(0, 255))
        elif op == 1:
            del seed[pos : pos + draw(st.integers(1, 8))]
        else:
            seed[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        if not seed:
            seed = bytearray(b"\x00")
    if draw(st.booleans()) and len(seed) >= 28:
        # Keep the header length right so the mutation reaches the payload parsers.
        seed[24:28] = len(seed).to_bytes(4, "big")
    return bytes(seed)


@_FAST
@given(_mutated())
def test_fuzz_mutated_messages(data: bytes) -> None:
    fuzz_one_input(data)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(KNOWN_TYPES)), st.binary(max_size=120), st.integers(0, 255))
def test_every_payload_parser_raises_only_parse_error(ptype: int, body: bytes, nxt: int) -> None:
    try:
        parsed = parse_body(ptype, memoryview(body), nxt)
    except ParseError:
        return
    assert parsed.payload_type == ptype


def test_seed_messages_parse() -> None:
    # The mutation seeds must be valid, or the mutated fuzzing explores nothing.
    for raw in _SEED_MESSAGES:
        assert parse_message(raw).header.length == len(raw)
