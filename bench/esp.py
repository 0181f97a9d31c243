"""ESP throughput through the public SA API, against the bare `cryptography` call doing
the same crypto on the same payload (the anchor, measured in the same run), and scapy.

Two levels of the API: ``encapsulate``/``decapsulate`` (whole outer IPv4 packets) and
``esp_encrypt``/``esp_decrypt`` (ESP payloads: what the daemon's processor calls, its
sockets adding and stripping the outer headers), tunnel mode, inner IPv4 packets.

Run: .venv/bin/python bench/esp.py [seconds-per-measurement] [--runs N] [--no-scapy]
        [--algs aes128gcm16,chacha20poly1305,aes128+sha256] [--sizes 64,1400] [--esn]
        [--cpu]

Each rate is the best of 5 timed loops, the SA's interleaved with the anchor's so that
load from elsewhere on a shared machine hits both alike; the ratio is best against best.
With ``--runs N`` every row is measured N times and the table shows the median of the N
rows, then the range of the ratios. The ratios count, not the absolute rates.
``--cpu`` times the loops by this thread's CPU time instead of the wall clock: on a
shared machine, time spent waiting for a core then counts for neither side.

To decrypt one packet over and over, the receiver's replay window is disabled (size
0); the replay check and advance still run on every call. With ``--esn`` (64-bit
sequence numbers) a disabled window still infers the high half from the top, and a
repeated packet is no longer above it, so each call first puts the top back to 0 (one
attribute store, counted against us).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from scapy.layers.inet import IP, UDP
from scapy.layers.ipsec import ESP
from scapy.layers.ipsec import SecurityAssociation as ScapySA

from pyipsec.engine.sa import SecurityAssociation

SECONDS = 0.5
ROUNDS = 5
CLOCK = time.perf_counter


def _calls_per_run(fn: Callable[[], object]) -> int:
    n = 64
    while True:
        t = CLOCK()
        for _ in range(n):
            fn()
        dt = CLOCK() - t
        if dt > 0.02:
            return max(1, int(n * (SECONDS / ROUNDS) / dt))
        n *= 4


def _run(fn: Callable[[], object], calls: int) -> float:
    t = CLOCK()
    for _ in range(calls):
        fn()
    return calls / (CLOCK() - t)


def rate(fn: Callable[[], object]) -> float:
    """Calls per second: the best of ROUNDS timed loops of about SECONDS/ROUNDS each."""
    calls = _calls_per_run(fn)
    return max(_run(fn, calls) for _ in range(ROUNDS))


def rates(fn: Callable[[], object], anchor: Callable[[], object]) -> tuple[float, float]:
    """(best rate of fn, best rate of anchor), their timed loops interleaved so that a
    burst of load from elsewhere on the machine hits both alike."""
    cf, ca = _calls_per_run(fn), _calls_per_run(anchor)
    best_f = best_a = 0.0
    for _ in range(ROUNDS):
        best_f = max(best_f, _run(fn, cf))
        best_a = max(best_a, _run(anchor, ca))
    return best_f, best_a


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
        # The anchor is the least crypto any CBC+HMAC ESP must do: long-lived CBC
        # contexts (no per-packet setup) and a copy of a pre-keyed HMAC context, over the
        # IV block and the padded payload.
        cbc = Cipher(algorithms.AES(key), modes.CBC(os.urandom(16)))
        enc, dec = cbc.encryptor(), cbc.decryptor()
        mac = hmac.HMAC(ikey, hashes.SHA256())
        data = os.urandom(16 + -(-(size + 2) // 16) * 16)

        def bare_enc() -> bytes:
            ct = enc.update(data)
            h = mac.copy()
            h.update(ct)
            return h.finalize()

        def bare_dec() -> bytes:
            h = mac.copy()
            h.update(data)
            h.finalize()
            return dec.update(data)

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


# encap/s, x, decap/s, x, esp_encrypt/s, x, esp_decrypt/s, x, scapy enc/s, scapy dec/s
Row = tuple[float, ...]


def measure(name: str, size: int, scapy: bool, esn: bool = False) -> Row:
    pkt = inner(size)
    kw, scapy_kw, bare_enc, bare_dec = setups(name, size)
    tx = SecurityAssociation(spi=0x1000, src="192.0.2.1", dst="192.0.2.2", esn=esn, **kw)
    enc_rate, bare_e = rates(lambda: tx.encapsulate(pkt), bare_enc)
    pl_enc_rate, bare_pe = rates(lambda: tx.esp_encrypt(pkt, 4), bare_enc)
    rx = SecurityAssociation(
        spi=0x1000, src="192.0.2.1", dst="192.0.2.2", replay_window=0, esn=esn, **kw
    )
    outer = tx.encapsulate(pkt)
    esp = tx.esp_encrypt(pkt, 4)
    replay = rx.replay
    replay.top = 0
    if rx.decapsulate(outer) != pkt or rx.esp_decrypt(esp) != (4, pkt):
        raise SystemExit("round trip failed")

    def decap() -> bytes:
        replay.top = 0
        return rx.decapsulate(outer)

    def esp_decrypt() -> tuple[int, bytes]:
        replay.top = 0
        return rx.esp_decrypt(esp)

    dec_rate, bare_d = rates(decap if esn else lambda: rx.decapsulate(outer), bare_dec)
    pl_dec_rate, bare_pd = rates(esp_decrypt if esn else lambda: rx.esp_decrypt(esp), bare_dec)
    scapy_e = scapy_d = float("nan")
    if scapy:
        tunnel = IP(src="192.0.2.1", dst="192.0.2.2")
        ssa = ScapySA(ESP, spi=0x1000, tunnel_header=tunnel, esn_en=esn, **scapy_kw)
        # scapy bytes in, bytes out (as our API): parse, process, build. Its decrypt
        # mutates the packet object it is given, so each call parses afresh.
        scapy_e = rate(lambda: bytes(ssa.encrypt(IP(pkt))))
        so = bytes(ssa.encrypt(IP(pkt)))
        scapy_d = rate(lambda: bytes(ssa.decrypt(IP(so))))
    return (
        enc_rate, bare_e / enc_rate, dec_rate, bare_d / dec_rate,
        pl_enc_rate, bare_pe / pl_enc_rate, pl_dec_rate, bare_pd / pl_dec_rate,
        scapy_e, scapy_d,
    )  # fmt: skip


def fmt(name: str, size: int, r: Row) -> str:
    cells = "".join(f"{r[i]:>11,.0f}{r[i + 1]:>7.2f}" for i in range(0, 8, 2))
    return f"{name:<17}{size:>5}{cells}{r[8]:>12,.0f}{r[9]:>12,.0f}"


def main() -> None:
    global SECONDS, CLOCK
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seconds", nargs="?", type=float, default=SECONDS)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--no-scapy", action="store_true")
    ap.add_argument("--algs", default="aes128gcm16,chacha20poly1305,aes128+sha256")
    ap.add_argument("--sizes", default="64,1400")
    ap.add_argument("--esn", action="store_true", help="64-bit sequence numbers (ESN)")
    ap.add_argument("--cpu", action="store_true", help="time by thread CPU time, not wall")
    args = ap.parse_args()
    SECONDS = args.seconds
    if args.cpu:
        CLOCK = time.thread_time
    head = (
        f"{'algorithm':<17}{'size':>5}{'encap/s':>11}{'x bare':>7}{'decap/s':>11}{'x bare':>7}"
        f"{'esp_enc/s':>11}{'x bare':>7}{'esp_dec/s':>11}{'x bare':>7}"
        f"{'scapy enc/s':>12}{'scapy dec/s':>12}"
    )
    clock = "thread CPU time" if args.cpu else "wall clock"
    print(f"ESN {'on' if args.esn else 'off'}; {clock}; load average {os.getloadavg()[0]:.2f}")
    print(head, flush=True)
    spread: list[str] = []
    for size in (int(x) for x in args.sizes.split(",")):
        for name in args.algs.split(","):
            rows = [measure(name, size, not args.no_scapy, args.esn) for _ in range(args.runs)]
            med = tuple(statistics.median(r[i] for r in rows) for i in range(10))
            print(fmt(name, size, med), flush=True)
            ranges = "  ".join(
                f"{label} x {min(r[i] for r in rows):.2f}-{max(r[i] for r in rows):.2f}"
                for label, i in (("encap", 1), ("decap", 3), ("esp_enc", 5), ("esp_dec", 7))
            )
            spread.append(f"{name:<17}{size:>5}  {ranges}")
    print("x bare = time per packet / time of the bare cryptography call on the same payload")
    if args.runs > 1:
        print(f"above: median of {args.runs} runs; their ratios ranged over:")
        print("\n".join(spread))


if __name__ == "__main__":
    main()
