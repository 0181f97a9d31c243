"""Hypothesis: whatever the bytes, decapsulate either returns or raises PacketDropped
with the right reason, and counts it."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP

from pyipsec.engine.sa import SecurityAssociation
from pyipsec.errors import PacketDropped, Reason

KEYS = {"gcm": os.urandom(20), "cbc": os.urandom(16), "mac": os.urandom(32)}
INNER = bytes(IP(src="198.51.100.1", dst="203.0.113.1") / UDP(sport=1, dport=2) / (b"q" * 40))


def make(kind: str, encap=None, **kw) -> SecurityAssociation:
    if kind == "gcm":
        return SecurityAssociation(0x1000, "192.0.2.1", "192.0.2.2", "tunnel", "aes128gcm16",
                                   KEYS["gcm"], encap=encap, **kw)  # fmt: skip
    return SecurityAssociation(0x1000, "192.0.2.1", "192.0.2.2", "tunnel", "aes128", KEYS["cbc"],
                               "sha256", KEYS["mac"], encap=encap, **kw)  # fmt: skip


def outcome(sa: SecurityAssociation, pkt: bytes) -> str:
    try:
        sa.decapsulate(pkt)
    except PacketDropped as exc:
        return exc.reason
    return "ok"


kinds = st.sampled_from(["gcm", "cbc"])


@settings(max_examples=300, deadline=None)
@given(kinds, st.binary(max_size=200), st.booleans())
def test_random_bytes_only_drop(kind, data, encap) -> None:
    sa = make(kind, (4500, 4500) if encap else None)
    result = outcome(sa, data)
    assert result != "ok"
    assert sum(sa.counters.drops.values()) == 1


@settings(max_examples=200, deadline=None)
@given(kinds, st.data())
def test_truncated_is_header_or_proto_error(kind, data) -> None:
    tx, rx = make(kind), make(kind)
    outer = tx.encapsulate(INNER)
    cut = data.draw(st.integers(0, len(outer) - 1))
    pkt = bytearray(outer[:cut])
    if cut >= 4:
        pkt[2:4] = cut.to_bytes(2, "big")  # a consistent IPv4 length: only ESP is short
    result = outcome(rx, bytes(pkt))
    assert result in (Reason.IN_HDR_ERROR, Reason.IN_STATE_PROTO_ERROR)
    assert rx.replay.top == 0


@settings(max_examples=300, deadline=None)
@given(kinds, st.data())
def test_bit_flip_after_ip_header(kind, data) -> None:
    tx, rx = make(kind), make(kind)
    outer = bytearray(tx.encapsulate(INNER))
    pos = data.draw(st.integers(20, len(outer) - 1))
    outer[pos] ^= 1 << data.draw(st.integers(0, 7))
    result = outcome(rx, bytes(outer))
    if pos < 24:
        assert result == Reason.IN_STATE_MISMATCH  # the SPI
        assert rx.counters.integrity_failed == 0
    elif pos < 28:
        # The sequence number: 0 is refused before crypto, any other value fails the ICV.
        assert result in (Reason.IN_STATE_PROTO_ERROR, Reason.IN_STATE_SEQ_ERROR)
    else:
        assert result == Reason.IN_STATE_PROTO_ERROR
        assert rx.counters.integrity_failed == 1
    assert rx.replay.top == 0


@settings(max_examples=100, deadline=None)
@given(kinds, st.lists(st.integers(0, 19), min_size=1, max_size=40))
def test_replays_dropped(kind, order) -> None:
    tx, rx = make(kind, replay_window=64), make(kind, replay_window=64)
    pkts = [tx.encapsulate(INNER) for _ in range(20)]
    seen: set[int] = set()
    for i in order:
        result = outcome(rx, pkts[i])
        assert result == ("ok" if i not in seen else Reason.IN_STATE_SEQ_ERROR)
        seen.add(i)
    assert rx.counters.replay == len(order) - len(seen)
    assert rx.counters.packets == len(seen)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 255), st.integers(1, 15))
def test_bad_padding_is_proto_error(bad_byte, pad_len) -> None:
    """Build ESP with wrong padding contents through the low-level path."""
    from pyipsec.wire.esp import PAD_BYTES

    tx, rx = make("gcm"), make("gcm")
    pad = bytearray(PAD_BYTES[:pad_len])
    pad[-1] = bad_byte
    if bytes(pad) == PAD_BYTES[:pad_len]:
        return
    pt = INNER + bytes(pad) + bytes((pad_len, 4))
    tx.seq_out += 1
    esp = tx._cipher.encrypt(b"", tx.spi, tx.seq_out, pt)
    hdr = bytearray(bytes(IP(src="192.0.2.1", dst="192.0.2.2", proto=50)))
    hdr[2:4] = (20 + len(esp)).to_bytes(2, "big")
    assert outcome(rx, bytes(hdr) + esp) == Reason.IN_STATE_PROTO_ERROR
    assert rx.replay.top == 1  # authenticated, so the window moved


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 0xFFFFFFFF).filter(lambda s: s != 0x1000))
def test_wrong_spi(spi) -> None:
    tx = SecurityAssociation(spi, "192.0.2.1", "192.0.2.2", "tunnel", "aes128gcm16", KEYS["gcm"]) \
        if spi else None  # fmt: skip
    if tx is None:
        return
    assert outcome(make("gcm"), tx.encapsulate(INNER)) == Reason.IN_STATE_MISMATCH


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 1 << 20))
def test_esn_wrap_of_the_low_half(start) -> None:
    tx = make("gcm", esn=True, replay_window=256)
    rx = make("gcm", esn=True, replay_window=256)
    base = 0xFFFFFFFF - start % 200
    tx.seq_out = base
    rx.replay.advance(base)
    for _ in range(260):
        assert rx.decapsulate(tx.encapsulate(INNER)) == INNER
    assert rx.replay.top == tx.seq_out > 0xFFFFFFFF
