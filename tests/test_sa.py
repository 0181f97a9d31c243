"""SecurityAssociation: round trips, configuration errors, drops and their reasons."""

from __future__ import annotations

import ipaddress
import os

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting

from pyipsec.engine.lifetime import Lifetime
from pyipsec.engine.replay import ReplayWindow
from pyipsec.engine.sa import SecurityAssociation
from pyipsec.errors import ConfigError, PacketDropped, Reason, SequenceExhausted
from pyipsec.wire.ip import internet_checksum

ALGS = [
    ("aes128gcm16", None, 20, 0),
    ("aes192gcm16", None, 28, 0),
    ("aes256gcm16", None, 36, 0),
    ("chacha20poly1305", None, 36, 0),
    ("aes128", "sha1", 16, 20),
    ("aes192", "sha384", 24, 48),
    ("aes256", "sha256", 32, 32),
    ("aes128", "sha512", 16, 64),
    ("null", "sha256", 0, 32),
]
ADDRS = {4: ("192.0.2.1", "192.0.2.2"), 6: ("2001:db8::1", "2001:db8::2")}

INNER4 = bytes(
    IP(src="198.51.100.1", dst="203.0.113.5", tos=0x10, flags="DF", ttl=17)
    / UDP(sport=1234, dport=53)
    / (b"x" * 100)
)
INNER6 = bytes(
    IPv6(src="2001:db8:1::1", dst="2001:db8:2::2", tc=0x20, fl=0x12345)
    / TCP(sport=1, dport=2)
    / (b"y" * 33)
)


def pair(enc: str = "aes128gcm16", integ: str | None = None, kl: int = 20, il: int = 0,
         **kw: object) -> tuple[SecurityAssociation, SecurityAssociation]:  # fmt: skip
    family = kw.pop("family", 4)
    src, dst = ADDRS[family]  # type: ignore[index]
    k, ik = os.urandom(kl), os.urandom(il)
    args = dict(spi=0x1000, src=src, dst=dst, enc=enc, enc_key=k, integ=integ, integ_key=ik)
    args.update(kw)
    return SecurityAssociation(**args), SecurityAssociation(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(("enc", "integ", "kl", "il"), ALGS)
@pytest.mark.parametrize("mode", ["tunnel", "transport"])
@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize("esn", [False, True])
@pytest.mark.parametrize("encap", [None, (4500, 4500)])
def test_round_trip(enc, integ, kl, il, mode, family, esn, encap) -> None:
    a, b = pair(enc, integ, kl, il, mode=mode, family=family, esn=esn, encap=encap)
    inners = [INNER4, INNER6] if mode == "tunnel" else [INNER4 if family == 4 else INNER6]
    for inner in inners:
        for _ in range(3):
            outer = a.encapsulate(inner)
            assert len(outer) - len(inner) <= a.overhead
            assert b.decapsulate(outer) == inner
    assert a.seq_out == 3 * len(inners)
    assert b.counters.packets == a.counters.packets == 3 * len(inners)
    assert b.counters.bytes == a.counters.bytes


def test_attributes() -> None:
    sa = SecurityAssociation(
        spi=0x1000, src="192.0.2.1", dst=ipaddress.ip_address("192.0.2.2"), mode="tunnel",
        enc="aes128gcm16", enc_key=bytes(20), esn=False, replay_window=64, encap=(4500, 4501),
        reqid=7, soft=Lifetime(packets=10), hard=Lifetime(bytes=100), tfc_pad=0,
    )  # fmt: skip
    assert sa.src == ipaddress.IPv4Address("192.0.2.1")
    assert sa.dst_packed == bytes([192, 0, 2, 2])
    assert sa.family == 4 and sa.proto == "esp" and sa.reqid == 7
    assert sa.enc == "aes128gcm16" and sa.integ is None and sa.encap == (4500, 4501)
    assert sa.soft.packets == 10 and sa.hard.bytes == 100
    assert isinstance(sa.replay, ReplayWindow) and sa.replay.size == 64
    assert sa.seq_out == 0
    assert "key" not in repr(sa).lower()


def test_tunnel_outer_header_v4() -> None:
    a, _ = pair()
    outer = IP(a.encapsulate(INNER4))
    assert outer.src == "192.0.2.1" and outer.dst == "192.0.2.2"
    assert outer.proto == 50 and outer.ttl == 64 and outer.tos == 0x10
    assert outer.flags.DF
    assert internet_checksum(bytes(outer)[:20]) == 0
    outer6 = IP(a.encapsulate(INNER6))
    assert outer6.tos == 0x20 and outer6.flags.DF


def test_tunnel_outer_header_v6_encap() -> None:
    a, _ = pair(family=6, encap=(4500, 4500))
    raw = a.encapsulate(INNER6)
    outer = IPv6(raw)
    assert outer.nh == 17 and outer.hlim == 64 and outer.tc == 0x20 and outer.fl == 0x12345
    udp = outer[UDP]
    chk = udp.chksum
    assert chk != 0
    del udp.chksum
    assert IPv6(bytes(outer))[UDP].chksum == chk


def test_tfc_padding_stripped() -> None:
    a, b = pair(tfc_pad=500)
    outer = a.encapsulate(INNER4)
    assert len(outer) >= 500 + 20 + 8 + 8 + 16
    assert b.decapsulate(outer) == INNER4


def test_esp_encrypt_decrypt_low_level() -> None:
    a, b = pair(mode="transport")
    esp = a.esp_encrypt(b"hello", 17)
    assert b.esp_decrypt(esp) == (17, b"hello")
    assert b.esp_decrypt(memoryview(a.esp_encrypt(b"", 6))) == (6, b"")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (dict(enc="aes999"), "unknown"),
        (dict(enc="aes128gcm16", enc_key=bytes(16)), "20 bytes"),
        (dict(enc="aes128gcm16", integ="sha256", integ_key=bytes(32)), "AEAD"),
        (dict(enc="aes128", enc_key=bytes(16)), "integrity"),
        (dict(enc="aes128", enc_key=bytes(16), integ="sha256", integ_key=bytes(5)), "32-byte"),
        (dict(enc="aes128", enc_key=bytes(16), integ="md5", integ_key=bytes(16)), "unknown"),
        (dict(mode="beet"), "mode"),
        (dict(dst="2001:db8::1"), "family"),
        (dict(src="not-an-address"), "src"),
        (dict(spi=0), "spi"),
        (dict(encap=(0, 4500)), "encap"),
        (dict(replay_window=-1), "replay"),
        (dict(tfc_pad=-1), "tfc_pad"),
    ],
)
def test_config_errors(kwargs, needle) -> None:
    args = dict(spi=0x1000, src="192.0.2.1", dst="192.0.2.2", enc="aes128gcm16", enc_key=bytes(20))
    args.update(kwargs)
    with pytest.raises(ConfigError, match=needle) as info:
        SecurityAssociation(**args)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)


def test_config_error_never_shows_key() -> None:
    key = bytes(range(0x41, 0x41 + 17))
    with pytest.raises(ConfigError) as info:
        SecurityAssociation(spi=1, src="192.0.2.1", dst="192.0.2.2", enc="aes128gcm16", enc_key=key)
    assert key.hex() not in str(info.value) and "ABCDEF" not in str(info.value)


def drop_reason(sa: SecurityAssociation, pkt: bytes) -> str:
    with pytest.raises(PacketDropped) as info:
        sa.decapsulate(pkt)
    return info.value.reason


def test_replay_dropped_and_counted() -> None:
    a, b = pair()
    outer = a.encapsulate(INNER4)
    b.decapsulate(outer)
    assert drop_reason(b, outer) == Reason.IN_STATE_SEQ_ERROR
    assert b.counters.replay == 1
    assert b.counters.drops == {Reason.IN_STATE_SEQ_ERROR: 1}


def test_too_old_dropped() -> None:
    a, b = pair(replay_window=32)
    first = a.encapsulate(INNER4)
    for _ in range(40):
        b.decapsulate(a.encapsulate(INNER4))
    assert drop_reason(b, first) == Reason.IN_STATE_SEQ_ERROR


def test_out_of_order_within_window_accepted() -> None:
    a, b = pair(replay_window=64)
    pkts = [a.encapsulate(INNER4) for _ in range(50)]
    for p in reversed(pkts):
        assert b.decapsulate(p) == INNER4


def test_icv_failure_does_not_advance_window() -> None:
    a, b = pair()
    outer = bytearray(a.encapsulate(INNER4))
    outer[-1] ^= 1
    assert drop_reason(b, bytes(outer)) == Reason.IN_STATE_PROTO_ERROR
    assert b.counters.integrity_failed == 1
    outer[-1] ^= 1
    assert b.decapsulate(bytes(outer)) == INNER4  # same seq still accepted


def test_wrong_spi() -> None:
    a, _ = pair()
    b = SecurityAssociation(spi=0x2000, src="192.0.2.1", dst="192.0.2.2", enc_key=bytes(20))
    assert drop_reason(b, a.encapsulate(INNER4)) == Reason.IN_STATE_MISMATCH


def test_encap_mismatch() -> None:
    """UDP-encapsulated ESP to a plain SA is refused; plain ESP to a NAT-T SA is
    accepted (the socket layer strips UDP and checks the encapsulation itself)."""
    a, _ = pair(encap=(4500, 4500))
    c, d = pair()
    d_udp = SecurityAssociation(
        spi=0x1000, src="192.0.2.1", dst="192.0.2.2", enc_key=bytes(20),
        encap=(4500, 4500),
    )  # fmt: skip
    assert drop_reason(d, a.encapsulate(INNER4)) == Reason.IN_STATE_MISMATCH
    with pytest.raises(PacketDropped):
        d_udp.decapsulate(c.encapsulate(INNER4))  # other key: ICV fails, but not a mismatch
    assert d_udp.counters.integrity_failed == 1


def test_natt_sa_accepts_stripped_udp() -> None:
    a, b = pair(encap=(4500, 4500), mode="transport")
    inner = bytes(IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1, dport=2) / b"abc")
    outer = a.encapsulate(inner)
    stripped = bytearray(outer[:20] + outer[28:])
    stripped[9] = 50
    stripped[2:4] = len(stripped).to_bytes(2, "big")
    assert b.decapsulate(bytes(stripped)) == inner


def test_nat_keepalive_and_non_esp() -> None:
    _, b = pair(encap=(4500, 4500))
    ka = bytes(IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=4500, dport=4500) / b"\xff")
    assert drop_reason(b, ka) == Reason.NAT_KEEPALIVE
    ike = bytes(
        IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=4500, dport=4500) / (bytes(4) + b"ike...")
    )
    assert drop_reason(b, ike) == Reason.NON_ESP
    assert b.counters.drops == {Reason.NAT_KEEPALIVE: 1, Reason.NON_ESP: 1}


def test_dummy_packet_dropped_after_icv_and_advances_window() -> None:
    a, b = pair(mode="tunnel")
    esp = a.esp_encrypt(b"", 59)
    outer = bytes(IP(src="192.0.2.1", dst="192.0.2.2", proto=50)) + esp
    fixed = bytearray(outer)
    fixed[2:4] = len(outer).to_bytes(2, "big")
    assert drop_reason(b, bytes(fixed)) == Reason.DUMMY
    assert b.replay.top == 1
    assert drop_reason(b, bytes(fixed)) == Reason.IN_STATE_SEQ_ERROR


def test_wrong_next_header_for_tunnel_mode() -> None:
    a, b = pair(mode="tunnel")
    with pytest.raises(PacketDropped) as info:
        b.esp_decrypt(a.esp_encrypt(b"\x45" + bytes(30), 6))
    assert info.value.reason == Reason.IN_STATE_MODE_ERROR


def test_sequence_exhausted_32() -> None:
    a, _b = pair()
    a.seq_out = 0xFFFFFFFE
    a.encapsulate(INNER4)
    with pytest.raises(SequenceExhausted):
        a.encapsulate(INNER4)
    with pytest.raises(SequenceExhausted):
        a.esp_encrypt(b"x", 17)
    assert a.seq_out == 0xFFFFFFFF
    assert a.counters.drops[Reason.OUT_STATE_SEQ_ERROR] == 2


def test_sequence_exhausted_64() -> None:
    a, _ = pair(esn=True)
    a.seq_out = (1 << 64) - 1
    with pytest.raises(SequenceExhausted):
        a.encapsulate(INNER4)


def test_esn_crosses_low_half() -> None:
    a, b = pair(esn=True, replay_window=128)
    a.seq_out = 0xFFFFFFF0
    b.replay.advance(0xFFFFFFF0)
    for _ in range(40):
        assert b.decapsulate(a.encapsulate(INNER4)) == INNER4
    assert a.seq_out == 0x1_0000_0018
    assert b.replay.top == a.seq_out


def test_esn_wrong_high_half_fails_icv() -> None:
    """seq_hi is not sent: a receiver guessing another high half fails the ICV."""
    a, b = pair(esn=True)
    a.seq_out = 0x5_0000_0010
    outer = a.encapsulate(INNER4)
    assert drop_reason(b, outer) == Reason.IN_STATE_PROTO_ERROR


@pytest.mark.parametrize(("outer_ecn", "inner_ecn", "expected"),
                         [(3, 2, 3), (3, 1, 3), (3, 3, 3), (1, 2, 1), (2, 1, 1), (0, 2, 2),
                          (3, 0, None)])  # fmt: skip
@pytest.mark.parametrize("family", [4, 6])
def test_ecn_decapsulation_rfc6040(outer_ecn, inner_ecn, expected, family) -> None:
    a, b = pair(family=family)
    inner = bytes(IP(src="198.51.100.1", dst="203.0.113.5", tos=0xB8 | inner_ecn) / UDP() / b"z")
    outer = bytearray(a.encapsulate(inner))
    if family == 4:
        assert outer[1] & 3 == inner_ecn  # copied on encapsulation (normal mode)
        outer[1] = (outer[1] & 0xFC) | outer_ecn
        outer[10:12] = b"\0\0"
        outer[10:12] = internet_checksum(outer[:20]).to_bytes(2, "big")
    else:
        outer[1] = (outer[1] & 0xCF) | outer_ecn << 4
    if expected is None:
        assert drop_reason(b, bytes(outer)) == Reason.IN_STATE_MODE_ERROR
        return
    got = b.decapsulate(bytes(outer))
    assert got[1] == 0xB8 | expected
    assert internet_checksum(got[:20]) == 0
    assert got[:1] + got[2:10] + got[12:] == inner[:1] + inner[2:10] + inner[12:]


def test_transport_v4_options_kept() -> None:
    a, b = pair(mode="transport")
    inner = bytes(
        IP(src="192.0.2.1", dst="192.0.2.2", options=[b"\x94\x04\x00\x00"]) / TCP() / b"d"
    )
    outer = a.encapsulate(inner)
    assert outer[:1] == inner[:1] and outer[9] == 50 and outer[20:24] == inner[20:24]
    assert internet_checksum(outer[:24]) == 0
    assert b.decapsulate(outer) == inner


def test_transport_v6_extension_headers() -> None:
    a, b = pair(mode="transport", family=6)
    inner = bytes(
        IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting(addresses=["2001:db8::3"], segleft=0)
        / UDP(sport=7, dport=9)
        / b"payload"
    )
    outer = a.encapsulate(inner)
    parsed = IPv6(outer)
    assert parsed.nh == 0 and parsed[IPv6ExtHdrRouting].nh == 50
    assert b.decapsulate(outer) == inner


def test_transport_v6_fragment_header_stays_in_front() -> None:
    a, b = pair(mode="transport", family=6)
    inner = bytes(
        IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(id=5) / UDP() / b"p"
    )
    outer = a.encapsulate(inner)
    assert IPv6(outer)[IPv6ExtHdrFragment].nh == 50
    assert b.decapsulate(outer) == inner


def test_transport_natt_fixes_l4_checksum() -> None:
    """RFC 3948 §3.1.2: after a NAT changed the outer source, TCP checksums are fixed."""
    a, b = pair(mode="transport", encap=(4500, 4500))
    inner = bytes(IP(src="192.0.2.1", dst="192.0.2.2") / TCP(sport=5, dport=6) / b"data")
    outer = bytearray(a.encapsulate(inner))
    outer[12:16] = bytes([192, 0, 2, 99])  # NAT rewrote the source (and IP checksum)
    outer[10:12] = b"\0\0"
    outer[10:12] = internet_checksum(outer[:20]).to_bytes(2, "big")
    got = IP(b.decapsulate(bytes(outer)))
    assert got.src == "192.0.2.99"
    chk = got[TCP].chksum
    del got[TCP].chksum
    assert IP(bytes(got))[TCP].chksum == chk


def test_transport_refuses_fragments() -> None:
    a, _ = pair(mode="transport")
    frag = bytes(IP(src="192.0.2.1", dst="192.0.2.2", flags="MF") / UDP() / b"x")
    with pytest.raises(PacketDropped) as info:
        a.encapsulate(frag)
    assert info.value.reason == Reason.OUT_STATE_MODE_ERROR


@pytest.mark.parametrize(("enc", "integ", "kl", "il"), ALGS)
@pytest.mark.parametrize("encap", [None, (4500, 4500)])
def test_max_inner_size_fits_mtu(enc, integ, kl, il, encap) -> None:
    a, _ = pair(enc, integ, kl, il, encap=encap)
    for mtu in (576, 1280, 1400, 1500):
        n = a.max_inner_size(mtu)
        assert len(a.encapsulate(INNER4[:20] + bytes(n - 20))) <= mtu
        assert len(a.encapsulate(INNER4[:20] + bytes(n - 19))) > mtu


def test_overhead_is_the_maximum() -> None:
    a, _ = pair("aes128", "sha256", 16, 32)
    added = {len(a.encapsulate(INNER4[:20] + bytes(k))) - 20 - k for k in range(64)}
    assert max(added) == a.overhead
