"""The SA's fast paths (tunnel mode, IPv4 outer header, no UDP; the AEAD object or the
CBC contexts called directly) against its general path: twin SAs with the same keys and state,
one with the fast paths switched off, must give the same bytes, the same drop reasons,
the same counters and the same window."""

from __future__ import annotations

import os
from types import SimpleNamespace
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6

from pyipsec.crypto import esp_cipher
from pyipsec.engine.sa import SecurityAssociation
from pyipsec.errors import PacketDropped, SequenceExhausted
from pyipsec.wire.esp import PAD_BYTES

KEY = {"aes128gcm16": os.urandom(20), "chacha20poly1305": os.urandom(36)}
ENC = list(KEY)
# encapsulate's fast path also serves these (through the cipher object).
OTHER = {
    "aes128+sha256": dict(enc="aes128", enc_key=os.urandom(16), integ="sha256",
                          integ_key=os.urandom(32)),
    "null+sha1": dict(enc="null", integ="sha1", integ_key=os.urandom(20)),
    "gcm+esn": dict(enc="aes128gcm16", enc_key=KEY["aes128gcm16"], esn=True),
    "aes256+sha384+esn": dict(enc="aes256", enc_key=os.urandom(32), integ="sha384",
                              integ_key=os.urandom(48), esn=True),
}  # fmt: skip


def twins(enc: str, **kw: object) -> tuple[SecurityAssociation, SecurityAssociation]:
    args = dict(OTHER[enc]) if enc in OTHER else dict(enc=enc, enc_key=KEY[enc])
    args.update(kw)
    # Same CBC randomness (initial chaining value, IV prefix): the same bytes out.
    fixed = os.urandom(64)
    with mock.patch.object(esp_cipher, "os", SimpleNamespace(urandom=lambda k: fixed[:k])):
        fast = SecurityAssociation(0x1000, "192.0.2.1", "192.0.2.2", **args)  # type: ignore[arg-type]
        slow = SecurityAssociation(0x1000, "192.0.2.1", "192.0.2.2", **args)  # type: ignore[arg-type]
    assert fast._fast_v4
    assert (fast._fast_aead is not None) == (enc in ENC or enc == "gcm+esn")
    slow._fast_v4 = False
    slow._fast_aead = None
    slow._pl_fast = slow._pl_open = (
        False  # esp_encrypt/esp_decrypt's (see test_sa_payload_fastpath)
    )
    return fast, slow


def state(sa: SecurityAssociation) -> tuple[object, ...]:
    c = sa.counters
    return (c.packets, c.bytes, c.replay, c.integrity_failed, dict(c.drops), sa.seq_out,
            sa._ident, sa.replay.top, sa.replay.bitmap)  # fmt: skip


def run(fn, pkt):  # type: ignore[no-untyped-def]
    try:
        return fn(pkt)
    except PacketDropped as exc:
        return ("drop", exc.reason)
    except SequenceExhausted:
        return "exhausted"


def inner4(size: int, tos: int = 0, df: bool = False) -> bytes:
    head = IP(src="198.51.100.1", dst="203.0.113.1", tos=tos, flags="DF" if df else 0)
    return bytes(head / UDP(sport=1, dport=2) / bytes(max(0, size - 28)))


@pytest.mark.parametrize("enc", ENC)
def test_fast_path_is_taken_only_where_it_applies(enc: str) -> None:
    assert twins(enc)[0]._fast_aead is not None
    esn = SecurityAssociation(0x1000, "192.0.2.1", "192.0.2.2", enc=enc, enc_key=KEY[enc],
                              esn=True)  # fmt: skip
    assert esn._fast_v4 and esn._fast_aead is not None
    for kw in ({"encap": (4500, 4500)}, {"mode": "transport"}):
        sa = SecurityAssociation(0x1000, "192.0.2.1", "192.0.2.2", enc=enc, enc_key=KEY[enc], **kw)
        assert not sa._fast_v4 and sa._fast_aead is None
    v6 = SecurityAssociation(0x1000, "2001:db8::1", "2001:db8::2", enc=enc, enc_key=KEY[enc])
    assert not v6._fast_v4 and v6._fast_aead is None


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(ENC + list(OTHER)),
    st.integers(0, 1600),
    st.integers(0, 255),
    st.booleans(),
    st.sampled_from([0, 0, 100, 900]),
    st.sampled_from([0, 0, 0xFFFFFFFE, 0xFFFFFFFF]),
    st.integers(0, 0xFFFF),
)
def test_encapsulate_agrees(enc, size, tos, df, tfc, seq, ident) -> None:
    fast, slow = twins(enc, tfc_pad=tfc)
    for sa in (fast, slow):
        sa.seq_out, sa._ident = seq, ident
    pkts = [inner4(size, tos, df) if size >= 28 else os.urandom(size),
            bytes(IPv6(src="2001:db8::1", dst="2001:db8::2", tc=tos) / bytes(size))]  # fmt: skip
    for pkt in pkts:
        for view in (pkt, bytearray(pkt), memoryview(pkt)):
            assert run(fast.encapsulate, view) == run(slow.encapsulate, view)
            assert state(fast) == state(slow)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ENC + list(OTHER)), st.integers(28, 1500), st.data())
def test_decapsulate_agrees_on_mutated_packets(enc, size, data) -> None:
    tx = twins(enc)[0]
    window = data.draw(st.sampled_from([0, 32, 1024]))
    fast, slow = twins(enc, replay_window=window)
    pkts = [tx.encapsulate(inner4(size, tos=data.draw(st.integers(0, 255)))) for _ in range(4)]
    # Deliver some out of order and some twice, then mutated copies.
    order = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=8))
    stream = [pkts[i] for i in order]
    for _ in range(data.draw(st.integers(0, 4))):
        pkt = bytearray(data.draw(st.sampled_from(pkts)))
        at = data.draw(st.integers(0, len(pkt) - 1))
        pkt[at] ^= data.draw(st.integers(1, 255))
        cut = data.draw(st.sampled_from([0, 0, 1, 17]))
        stream.append(bytes(pkt[: len(pkt) - cut]))
    for pkt in stream:
        for view in (pkt, memoryview(pkt)):
            assert run(fast.decapsulate, view) == run(slow.decapsulate, view)
            assert state(fast) == state(slow)
    # esp_decrypt (the outer header stripped by the socket) on fresh twins.
    fast, slow = twins(enc, replay_window=window)
    for pkt in stream:
        esp = pkt[20:]
        assert run(fast.esp_decrypt, esp) == run(slow.esp_decrypt, esp)
        assert state(fast) == state(slow)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(ENC),
    st.sampled_from([4, 41, 59, 6]),
    st.integers(0, 300),
    st.integers(0, 20),
    st.booleans(),
    st.integers(-30, 30),
)
def test_decapsulate_agrees_on_authenticated_odd_payloads(enc, nh, size, pad, bad_pad, skew):
    """Payloads only a peer with the key can send: wrong padding, dummy packets, IPv6 or
    non-IP inner packets, TFC padding, inner lengths that lie."""
    tx = twins(enc)[0]
    fast, slow = twins(enc)
    body = bytearray(
        inner4(size + 28)
        if nh == 4
        else bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / bytes(size))
        if nh == 41
        else os.urandom(size)
    )
    if len(body) >= 4 and nh == 4:
        body[2:4] = ((len(body) + skew) & 0xFFFF).to_bytes(2, "big")
    padding = bytearray(PAD_BYTES[:pad])
    if bad_pad and pad:
        padding[-1] ^= 0x40
    pt = bytes(body) + bytes(padding) + bytes((pad, nh))
    tx.seq_out += 1
    esp = tx._cipher.encrypt(b"", tx.spi, tx.seq_out, pt)
    outer = bytearray(bytes(IP(src="192.0.2.1", dst="192.0.2.2", proto=50)))
    outer[2:4] = (20 + len(esp)).to_bytes(2, "big")
    pkt = bytes(outer) + esp
    assert run(fast.decapsulate, pkt) == run(slow.decapsulate, pkt)
    assert state(fast) == state(slow)
    fast, slow = twins(enc)
    assert run(fast.esp_decrypt, esp) == run(slow.esp_decrypt, esp)
    assert state(fast) == state(slow)


@pytest.mark.parametrize("enc", ENC + list(OTHER))
@pytest.mark.parametrize("outer_ecn", range(4))
@pytest.mark.parametrize("inner_ecn", range(4))
def test_decapsulate_agrees_on_ecn(enc: str, outer_ecn: int, inner_ecn: int) -> None:
    """RFC 6040 §4.2 changes or drops some combinations: the fast path leaves all
    marked packets to the general path."""
    tx = twins(enc)[0]
    fast, slow = twins(enc)
    pkt = bytearray(tx.encapsulate(inner4(100, tos=0x28 | inner_ecn)))
    pkt[1] = pkt[1] & 0xFC | outer_ecn
    result = run(fast.decapsulate, bytes(pkt))
    assert result == run(slow.decapsulate, bytes(pkt))
    assert state(fast) == state(slow)
    if outer_ecn == 3 and inner_ecn == 0:
        assert result == ("drop", "XfrmInStateModeError")
    elif isinstance(result, bytes):
        assert result[1] & 3 == (3 if outer_ecn == 3 else 1 if (outer_ecn, inner_ecn) == (1, 2)
                                 else inner_ecn)  # fmt: skip


@pytest.mark.parametrize("enc", ENC + list(OTHER))
@pytest.mark.parametrize(
    ("at", "value"), [(9, 17), (9, 51), (0, 0x46), (0, 0x65), (6, 0x20), (7, 1), (2, 0)]
)
def test_decapsulate_agrees_on_outer_headers_the_fast_paths_refuse(enc, at, value) -> None:
    """Not ESP, options, not IPv4, fragments, a total length that lies: general path."""
    tx = twins(enc)[0]
    fast, slow = twins(enc)
    pkt = bytearray(tx.encapsulate(inner4(200)))
    pkt[at] = value
    assert run(fast.decapsulate, bytes(pkt)) == run(slow.decapsulate, bytes(pkt))
    assert state(fast) == state(slow)
    assert isinstance(run(slow.decapsulate, bytes(pkt)), tuple)  # refused
