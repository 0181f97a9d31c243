"""Cross-implementation check against scapy's independent ESP code
(``scapy.layers.ipsec.SecurityAssociation``): every algorithm x mode x IP family x ESN
x UDP encapsulation, in both directions."""

from __future__ import annotations

import os

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP
from scapy.layers.ipsec import SecurityAssociation as ScapySA

from pyipsec.engine.sa import SecurityAssociation

# (ours, scapy crypt, scapy auth, key length incl. salt, integrity key length)
ALGS = [
    ("aes128gcm16", None, "AES-GCM", None, 20, 0),
    ("aes256gcm16", None, "AES-GCM", None, 36, 0),
    ("chacha20poly1305", None, "CHACHA20-POLY1305", None, 36, 0),
    ("aes128", "sha1", "AES-CBC", "HMAC-SHA1-96", 16, 20),
    ("aes192", "sha256", "AES-CBC", "SHA2-256-128", 24, 32),
    ("aes256", "sha384", "AES-CBC", "SHA2-384-192", 32, 48),
    ("aes128", "sha512", "AES-CBC", "SHA2-512-256", 16, 64),
    ("null", "sha256", "NULL", "SHA2-256-128", 0, 32),
]
ADDRS = {4: ("192.0.2.1", "192.0.2.2"), 6: ("2001:db8::1", "2001:db8::2")}
ESN_HI = 3


def inner_packet(family: int, mode: str) -> bytes:
    if mode == "transport":
        src, dst = ADDRS[family]
    else:
        src, dst = (
            ("198.51.100.7", "203.0.113.9") if family == 4 else ("2001:db8:1::7", "2001:db8:2::9")
        )
    ip = IP(src=src, dst=dst, ttl=33) if family == 4 else IPv6(src=src, dst=dst, hlim=33)
    return bytes(ip / TCP(sport=40000, dport=443, flags="PA") / (b"scapy cross-check " * 3))


def build(alg, mode, family, esn, encap):
    ours, integ, s_crypt, s_auth, kl, il = alg
    key, ikey = os.urandom(kl), os.urandom(il)
    src, dst = ADDRS[family]
    sa = SecurityAssociation(
        spi=0x1234, src=src, dst=dst, mode=mode, enc=ours, enc_key=key, integ=integ,
        integ_key=ikey, esn=esn, replay_window=64, encap=encap,
    )  # fmt: skip
    tunnel = None
    if mode == "tunnel":
        tunnel = IP(src=src, dst=dst) if family == 4 else IPv6(src=src, dst=dst)
    nat = UDP(sport=encap[0], dport=encap[1]) if encap else None
    peer = ScapySA(
        ESP, spi=0x1234, crypt_algo=s_crypt, crypt_key=key or None, auth_algo=s_auth,
        auth_key=ikey or None, tunnel_header=tunnel, nat_t_header=nat, esn_en=esn,
        esn=ESN_HI if esn else 0,
    )  # fmt: skip
    if esn:
        sa.seq_out = ESN_HI << 32
        sa.replay.advance(ESN_HI << 32)
    return sa, peer


def ip_cls(family):
    return IP if family == 4 else IPv6


PARAMS = [
    pytest.param(alg, mode, family, esn, encap, id=f"{alg[0]}-{alg[1]}-{mode}-v{family}"
                 f"-{'esn' if esn else 'noesn'}-{'udp' if encap else 'plain'}")
    for alg in ALGS
    for mode in ("tunnel", "transport")
    for family in (4, 6)
    for esn in (False, True)
    for encap in (None, (4500, 4500))
]  # fmt: skip


@pytest.mark.parametrize(("alg", "mode", "family", "esn", "encap"), PARAMS)
def test_pyipsec_encrypts_scapy_decrypts(alg, mode, family, esn, encap) -> None:
    sa, peer = build(alg, mode, family, esn, encap)
    inner = inner_packet(family, mode)
    for _ in range(3):
        outer = sa.encapsulate(inner)
        got = peer.decrypt(ip_cls(family)(outer))
        assert bytes(got) == inner


@pytest.mark.parametrize(("alg", "mode", "family", "esn", "encap"), PARAMS)
def test_scapy_encrypts_pyipsec_decrypts(alg, mode, family, esn, encap) -> None:
    sa, peer = build(alg, mode, family, esn, encap)
    inner = inner_packet(family, mode)
    for seq in (1, 2, 5):
        outer = peer.encrypt(ip_cls(family)(inner), seq_num=seq)
        assert sa.decapsulate(bytes(outer)) == inner
    assert sa.counters.packets == 3
    assert sa.replay.top == (ESN_HI << 32 if esn else 0) + 5
