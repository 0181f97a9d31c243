"""ESP throughput through the public SA API, against the bare `cryptography` call doing
the same crypto on the same payload (the anchor, measured in the same run), and scapy.

Run: .venv/bin/python bench/esp.py [seconds-per-measurement]
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from scapy.layers.inet import IP, UDP
from scapy.layers.ipsec import ESP
from scapy.layers.ipsec import SecurityAssociation as ScapySA

from pyipsec.engine.sa import SecurityAssociation

SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5


def rate(fn: Callable[[], object]) -> float:
    """Calls per second, best of 3 runs of about SECONDS/3 each."""
    n = 64
    while True:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t
        if dt > 0.05:
            break
        n *= 4
    per_run = max(1, int(n * (SECONDS / 3) / dt))
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(per_run):
            fn()
        best = max(best, per_run / (time.perf_counter() - t))
    return best


def inner(size: int) -> bytes:
    head = bytes(IP(src="198.51.100.1", dst="203.0.113.1") / UDP(sport=1, dport=2))
    pkt = bytearray(head + bytes(size - len(head)))
    pkt[2:4] = size.to_bytes(2, "big")
    return bytes(pkt)


def setups(name: str, size: int):
    if name == "aes128+sha256":
        key, ikey = os.urandom(16), os.urandom(32)
        kw = dict(enc="aes128", enc_key=key, integ="sha256", integ_key=ikey)
        scapy_kw = dict(
            crypt_algo="AES-CBC", crypt_key=key, auth_algo="SHA2-256-128", auth_key=ikey
        )
        enc = Cipher(algorithms.AES(key), modes.CBC(os.urandom(16)))
        mac = hmac.HMAC(ikey, hashes.SHA256())
        data = os.urandom(-(-(size + 2) // 16) * 16)

        def bare_enc() -> bytes:
            ct = enc.encryptor().update(data)
            h = mac.copy()
            h.update(ct)
            return h.finalize()

        def bare_dec() -> bytes:
            h = mac.copy()
            h.update(data)
            h.finalize()
            return enc.decryptor().update(data)

        return kw, scapy_kw, bare_enc, bare_dec
    if name == "aes128gcm16":
        key = os.urandom(20)
        aead = AESGCM(key[:16])
        scapy_kw = dict(crypt_algo="AES-GCM", crypt_key=key)
    else:
        key = os.urandom(36)
        aead = ChaCha20Poly1305(key[:32])
        scapy_kw = dict(crypt_algo="CHACHA20-POLY1305", crypt_key=key)
    kw = dict(enc=name, enc_key=key)
    nonce, aad = os.urandom(12), os.urandom(8)
    data = os.urandom(size + 4)
    ct = aead.encrypt(nonce, data, aad)
    return (kw, scapy_kw, lambda: aead.encrypt(nonce, data, aad),
            lambda: aead.decrypt(nonce, ct, aad))  # fmt: skip


def measure(name: str, size: int) -> str:
    pkt = inner(size)
    kw, scapy_kw, bare_enc, bare_dec = setups(name, size)
    tx = SecurityAssociation(spi=0x1000, src="192.0.2.1", dst="192.0.2.2", **kw)
    enc_rate = rate(lambda: tx.encapsulate(pkt))
    # To decapsulate one packet repeatedly, the receiver's window is disabled (size 0);
    # the replay check and advance still run on every call.
    rx = SecurityAssociation(spi=0x1000, src="192.0.2.1", dst="192.0.2.2", replay_window=0, **kw)
    outer = tx.encapsulate(pkt)
    if rx.decapsulate(outer) != pkt:
        raise SystemExit("round trip failed")
    dec_rate = rate(lambda: rx.decapsulate(outer))
    bare_e, bare_d = rate(bare_enc), rate(bare_dec)
    tunnel = IP(src="192.0.2.1", dst="192.0.2.2")
    ssa = ScapySA(ESP, spi=0x1000, tunnel_header=tunnel, **scapy_kw)
    # scapy bytes in, bytes out (as our API): parse, process, build. Its decrypt mutates
    # the packet object it is given, so each call parses afresh.
    scapy_e = rate(lambda: bytes(ssa.encrypt(IP(pkt))))
    so = bytes(ssa.encrypt(IP(pkt)))
    scapy_d = rate(lambda: bytes(ssa.decrypt(IP(so))))
    return (
        f"{name:<18}{size:>6}{enc_rate:>11,.0f}{bare_e / enc_rate:>8.2f}"
        f"{dec_rate:>11,.0f}{bare_d / dec_rate:>8.2f}{scapy_e:>13,.0f}{scapy_d:>13,.0f}"
    )


def main() -> None:
    print(
        f"{'algorithm':<18}{'size':>6}{'encap/s':>11}{'x bare':>8}{'decap/s':>11}{'x bare':>8}"
        f"{'scapy enc/s':>13}{'scapy dec/s':>13}",
        flush=True,
    )
    for size in (64, 1400):
        for name in ("aes128gcm16", "chacha20poly1305", "aes128+sha256"):
            print(measure(name, size), flush=True)
    print("x bare = time per packet / time of the bare cryptography call on the same payload")


if __name__ == "__main__":
    main()
