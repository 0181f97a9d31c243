"""The payload-level fast paths (``esp_encrypt`` / ``esp_decrypt``, what the processor
calls) against the general path: twin SAs with the same keys, the same CBC randomness
and the same state, one with the fast paths switched off, must give the same bytes,
the same results and drop reasons, the same counters and the same replay window.

A subclass that counts the packets taking the general path shows that the fast paths
are taken where they should be (so a check that wrongly sends packets elsewhere fails
too)."""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from types import SimpleNamespace
from unittest import mock

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6

from pyipsec.crypto import esp_cipher
from pyipsec.engine.sa import SecurityAssociation
from pyipsec.errors import PacketDropped, SequenceExhausted
from pyipsec.wire.esp import PAD_BYTES

M32 = 0xFFFFFFFF
ALGS = {
    "aes128gcm16": dict(enc="aes128gcm16", enc_key=os.urandom(20)),
    "chacha20poly1305": dict(enc="chacha20poly1305", enc_key=os.urandom(36)),
    "aes128+sha256": dict(enc="aes128", enc_key=os.urandom(16), integ="sha256",
                          integ_key=os.urandom(32)),
    "aes256+sha1": dict(enc="aes256", enc_key=os.urandom(32), integ="sha1",
                        integ_key=os.urandom(20)),
    "null+sha512": dict(enc="null", integ="sha512", integ_key=os.urandom(64)),
}  # fmt: skip
OPENED = ["aes128gcm16", "chacha20poly1305", "aes128+sha256", "aes256+sha1"]
ADDRS = {4: ("192.0.2.1", "192.0.2.2"), 6: ("2001:db8::1", "2001:db8::2")}
SHAPES = [  # (family, encap, mode): the sockets strip whatever is outside ESP
    (4, None, "tunnel"),
    (6, None, "tunnel"),
    (4, (4500, 4500), "tunnel"),
    (6, (4500, 4500), "tunnel"),
    (4, None, "transport"),
]


@contextlib.contextmanager
def same_randomness() -> Iterator[None]:
    """CBC contexts built inside start from the same chaining value and IV prefix, so
    twins (and a sender and its copy) produce the same bytes."""
    fixed = os.urandom(64)
    with mock.patch.object(esp_cipher, "os", SimpleNamespace(urandom=lambda k: fixed[:k])):
        yield


def make(alg: str, family: int = 4, **kw: object) -> SecurityAssociation:
    args: dict[str, object] = dict(ALGS[alg])
    args.update(kw)
    return SecurityAssociation(0x1000, *ADDRS[family], **args)  # type: ignore[arg-type]


def twins(alg: str, family: int = 4, **kw: object) -> tuple[SecurityAssociation, ...]:
    with same_randomness():
        fast, slow = make(alg, family, **kw), make(alg, family, **kw)
    assert fast._pl_fast
    slow._pl_fast = slow._pl_open = slow._fast_v4 = False
    slow._fast_aead = None
    return fast, slow


def state(sa: SecurityAssociation) -> tuple[object, ...]:
    c = sa.counters
    return (c.packets, c.bytes, c.replay, c.integrity_failed, dict(c.drops), sa.seq_out,
            sa.replay.top, sa.replay.bitmap)  # fmt: skip


def run(fn, *args):  # type: ignore[no-untyped-def]
    try:
        return fn(*args)
    except PacketDropped as exc:
        return ("drop", exc.reason)
    except SequenceExhausted:
        return "exhausted"
    except ValueError as exc:
        return ("ValueError", str(exc))


def inner4(size: int, tos: int = 0) -> bytes:
    head = IP(src="198.51.100.1", dst="203.0.113.1", tos=tos)
    return bytes(head / UDP(sport=1, dport=2) / bytes(max(0, size - 28)))


def inner6(size: int) -> bytes:
    return bytes(IPv6(src="2001:db8:1::1", dst="2001:db8:2::1") / bytes(size))


class CountingSA(SecurityAssociation):
    """Counts the packets that leave the fast path (sequence number or open)."""

    general = 0

    def _next_seq(self) -> int:
        self.general += 1
        return super()._next_seq()

    def _open(self, esp: memoryview) -> tuple[int, bytes, int]:
        self.general += 1
        return super()._open(esp)  # type: ignore[return-value]


@pytest.mark.parametrize("alg", list(ALGS))
@pytest.mark.parametrize(("family", "encap", "mode"), SHAPES)
def test_fast_paths_apply_to_every_family_and_encapsulation(alg, family, encap, mode) -> None:
    sa = make(alg, family, encap=encap, mode=mode)
    assert sa._pl_fast
    assert sa._pl_open == (mode == "tunnel" and alg in OPENED)


@pytest.mark.parametrize("alg", OPENED)
@pytest.mark.parametrize("esn", [False, True])
@pytest.mark.parametrize("window", [0, 64, 4096])
@pytest.mark.parametrize(("family", "encap"), [(4, None), (6, (4500, 4500))])
def test_in_order_traffic_takes_the_fast_paths(alg, esn, window, family, encap) -> None:
    """From the first packet on, and across the 2^32 boundary of the low half with ESN."""
    kw = dict(esn=esn, replay_window=window, encap=encap)
    for start in [0, M32 - 3] if esn else [0, M32 - 6]:
        with same_randomness():
            tx = CountingSA(0x1000, *ADDRS[family], **ALGS[alg], **kw)  # type: ignore[arg-type]
            rx = CountingSA(0x1000, *ADDRS[family], **ALGS[alg], **kw)  # type: ignore[arg-type]
        tx.seq_out = rx.replay.top = start
        rx.replay.bitmap = 1 if start and window else 0
        for i, size in enumerate((40, 1400, 41, 64, 1000)):
            pkt = inner4(size) if i % 2 else inner6(size)
            nh = 4 if i % 2 else 41
            assert rx.esp_decrypt(tx.esp_encrypt(pkt, nh)) == (nh, pkt)
        assert rx.counters.packets == tx.counters.packets == 5
        assert rx.replay.top == tx.seq_out == start + 5
        assert tx.general == 0
        # Only the packet whose low half wraps to 0 takes the general path (the fast
        # path keeps to the window's 2^32 subspace).
        assert rx.general == (1 if start == M32 - 3 else 0)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(list(ALGS)),
    st.sampled_from(SHAPES),
    st.booleans(),
    st.integers(0, 1600),
    st.sampled_from([4, 41, 6, 17, 59, 0, 255, -1, 256]),
    st.sampled_from([0, 0, 100, 900]),
    st.sampled_from([0, 0, M32 - 1, M32, (1 << 64) - 2, (1 << 64) - 1]),
)
def test_esp_encrypt_agrees(alg, shape, esn, size, nh, tfc, seq) -> None:
    family, encap, mode = shape
    fast, slow = twins(alg, family, esn=esn, encap=encap, mode=mode, tfc_pad=tfc)
    if not esn:
        seq &= M32
    fast.seq_out = slow.seq_out = seq
    payload = os.urandom(size)
    for view in (payload, bytearray(payload), memoryview(payload)):
        a, b = run(fast.esp_encrypt, view, nh), run(slow.esp_encrypt, view, nh)
        assert a == b
        assert state(fast) == state(slow)
    if isinstance(a, bytes):
        # What a receiver makes of it (padding to the block, TFC, ESN high half),
        # in transport mode so that any payload comes back.
        with same_randomness():
            rx = make(alg, family, esn=esn, encap=encap, mode="transport", replay_window=0)
        rx.replay.top = seq  # so that the ESN high half is inferred right
        tfc_due = mode == "tunnel" and nh in (4, 41) and tfc > size
        expected = payload + bytes(tfc - size) if tfc_due else payload
        assert run(rx.esp_decrypt, a) == (("drop", "dummy") if nh == 59 else (nh, expected))


def stream_for(data, tx: SecurityAssociation, pkts: list[bytes]) -> list[bytes]:  # type: ignore[no-untyped-def]
    """Some packets out of order and twice, then mutated and truncated copies."""
    order = data.draw(st.lists(st.integers(0, len(pkts) - 1), min_size=1, max_size=10))
    stream = [pkts[i] for i in order]
    for _ in range(data.draw(st.integers(0, 5))):
        pkt = bytearray(data.draw(st.sampled_from(pkts)))
        at = data.draw(st.integers(0, len(pkt) - 1))
        pkt[at] ^= data.draw(st.integers(1, 255))
        cut = data.draw(st.sampled_from([0, 0, 1, 16, 17]))
        stream.append(bytes(pkt[: len(pkt) - cut]))
    stream.append(b"\0" * data.draw(st.integers(0, 60)))
    return stream


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(OPENED), st.booleans(), st.sampled_from([0, 32, 1024]), st.data())
def test_esp_decrypt_agrees_on_streams(alg, esn, window, data) -> None:
    family, encap, _ = data.draw(st.sampled_from(SHAPES[:4]))
    tx = make(alg, family, esn=esn, encap=encap)
    if esn:
        tx.seq_out = data.draw(st.sampled_from([0, M32 - 2, (7 << 32) + 5]))
    sizes = [data.draw(st.integers(28, 1500)) for _ in range(4)]
    pkts = [tx.esp_encrypt(inner4(s, data.draw(st.integers(0, 255))), 4) for s in sizes]
    fast, slow = twins(alg, family, esn=esn, encap=encap, replay_window=window)
    if esn and tx.seq_out > 4:
        fast.replay.top = slow.replay.top = tx.seq_out - 4
    for pkt in stream_for(data, tx, pkts):
        for view in (pkt, memoryview(pkt)):
            assert run(fast.esp_decrypt, view) == run(slow.esp_decrypt, view)
            assert state(fast) == state(slow)


def boundary_cases(window: int) -> Iterator[tuple[int, int, int]]:
    """(window top, sequence number sent, bitmap) around the edges of ESN inference
    (RFC 4303 Appendix A2.2) and of the window."""
    w = window or 1 << 31
    for top in (0, 1, w - 2, w - 1, w, M32 - 1, M32, 1 << 32, (1 << 32) + w - 2,
                (1 << 32) + w - 1, (5 << 32) + 7, (9 << 32) + M32):  # fmt: skip
        tl, th = top & M32, top >> 32
        los = {tl - 1, tl, tl + 1, tl - w, tl - w + 1, tl - w + 2, 0, 1, M32,
               tl + (1 << 32) - w, tl + (1 << 32) - w + 1, tl + (1 << 32) - w + 2}  # fmt: skip
        for lo in los:
            for hi in (th - 1, th, th + 1):
                seq = hi << 32 | (lo & M32)
                if 0 < seq < 1 << 64:
                    yield top, seq, 0b1011 if top else 0


@pytest.mark.parametrize("alg", ["aes128gcm16", "aes128+sha256"])
@pytest.mark.parametrize("window", [0, 64, 1024])
@pytest.mark.parametrize("esn", [False, True])
def test_esp_decrypt_agrees_at_the_window_and_esn_edges(alg, window, esn) -> None:
    """esp_decrypt, and decapsulate of the same packets under an IPv4 header."""
    tx = make(alg, esn=esn)
    for top, seq, bitmap in boundary_cases(window):
        if not esn and (top > M32 or seq > M32):
            continue
        tx.seq_out = seq - 1
        outer = tx.encapsulate(inner4(100))
        for api, pkt in (("esp_decrypt", outer[20:]), ("decapsulate", outer)):
            fast, slow = twins(alg, esn=esn, replay_window=window)
            for sa in (fast, slow):
                sa.replay.top, sa.replay.bitmap = top, bitmap & sa.replay.mask
            for _ in range(2):  # the second time, a replay (or, without a window, not)
                got = run(getattr(fast, api), pkt)
                assert got == run(getattr(slow, api), pkt), (api, top, seq)
                assert state(fast) == state(slow), (api, top, seq)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(OPENED),
    st.booleans(),
    st.sampled_from([4, 41, 59, 6]),
    st.integers(0, 300),
    st.integers(0, 40),
    st.booleans(),
    st.integers(-30, 30),
    st.sampled_from([None, None, 0, 4, 6, 15]),
)
def test_esp_decrypt_agrees_on_authenticated_odd_payloads(
    alg, esn, nh, size, pad, bad_pad, skew, version
):
    """Payloads only a peer with the key can send: wrong padding (also past 15 bytes or
    longer than the payload), dummy packets, IPv6 or non-IP inner packets, TFC
    padding, inner lengths and IP versions that lie."""
    tx = make(alg, esn=esn)
    fast, slow = twins(alg, esn=esn)
    body = bytearray(inner4(size + 28) if nh == 4 else inner6(size) if nh == 41
                     else os.urandom(size))  # fmt: skip
    if len(body) >= 4 and nh in (4, 41):
        at = 2 if nh == 4 else 4
        length = int.from_bytes(body[at : at + 2], "big")
        body[at : at + 2] = ((length + skew) & 0xFFFF).to_bytes(2, "big")
    if body and version is not None:
        body[0] = version << 4 | body[0] & 15
    padding = bytearray(PAD_BYTES[:pad])
    if bad_pad and pad:
        padding[-1] ^= 0x40
    tfc = -(len(body) + pad + 2) % 16 if tx._cbc else 0  # CBC needs whole blocks
    pt = bytes(body) + bytes(tfc) + bytes(padding) + bytes((pad, nh))
    tx.seq_out += 1
    esp = tx._cipher.encrypt(b"", tx.spi, tx.seq_out, pt)
    assert run(fast.esp_decrypt, esp) == run(slow.esp_decrypt, esp)
    assert state(fast) == state(slow)


@pytest.mark.parametrize("esn", [False, True])
def test_cbc_iv_is_the_enciphered_nonce_on_every_path(esn: bool) -> None:
    """RFC 3602 §2: unpredictable IVs. Each IV must be E_k(C_prev XOR N), N = the secret
    prefix || the 64-bit sequence number (crypto/esp_cipher), with C_prev the last
    ciphertext block sent by any path (one running encryptor per SA), never C_prev
    itself."""
    key = ALGS["aes128+sha256"]["enc_key"]
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    tx = make("aes128+sha256", esn=esn)
    prefix = tx._cipher.iv_prefix  # type: ignore[attr-defined]
    tx.seq_out = (3 << 32) - 2 if esn else 0
    last = None
    ivs = set()
    for i in range(12):
        pkt = inner4(60 + 37 * i)
        if i % 3 == 0:
            esp = tx.encapsulate(pkt)[20:]
        elif i % 3 == 1:
            esp = tx.esp_encrypt(pkt, 4)
        else:
            tx._pl_fast = False  # the general path, through the cipher object
            esp = tx.esp_encrypt(pkt, 4)
            tx._pl_fast = True
        iv = esp[8:24]
        ivs.add(iv)
        if last is not None:
            nonce = struct.pack("!QQ", prefix, tx.seq_out)
            assert iv == ecb.update(bytes(a ^ b for a, b in zip(last, nonce, strict=True)))
            assert iv != last
        last = esp[-32:-16]  # last ciphertext block, before the 16-byte ICV
    assert len(ivs) == 12
