"""Per-SA cipher objects: published vectors, the CBC IV construction, key checks."""

from __future__ import annotations

import os
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pyipsec.crypto.algorithms import INTEG_ALGORITHMS, enc_by_name, integ_by_name
from pyipsec.crypto.esp_cipher import (
    AeadEspCipher,
    CbcHmacEspCipher,
    NullHmacEspCipher,
    make_esp_cipher,
)
from pyipsec.errors import ConfigError, ParseError
from pyipsec.wire.esp import PAD_BYTES, split_trailer
from vectors.esp_gcm_mcgrew import CASES as GCM_CASES
from vectors.esp_rfc3602 import CASES as CBC_CASES
from vectors.esp_rfc7634 import AEAD_2_8_2, ESP_EXAMPLE, unhex
from vectors.hmac_rfc4231_rfc4868 import CASES as HMAC_CASES

GCM_BY_KEYLEN = {16: "aes128gcm16", 24: "aes192gcm16", 32: "aes256gcm16"}


@pytest.mark.parametrize("case", GCM_CASES, ids=lambda c: c["name"])
def test_gcm_vectors_encrypt_and_decrypt(case) -> None:
    key = bytes.fromhex(case["key"])
    alg = enc_by_name(GCM_BY_KEYLEN[len(key)])
    aad = bytes.fromhex(case["aad"])
    esn = len(aad) == 12
    spi = int.from_bytes(aad[:4], "big")
    seq = int.from_bytes(aad[4:], "big")  # seq_hi || seq_lo with ESN
    cipher = AeadEspCipher(alg, key + bytes.fromhex(case["salt"]), esn)
    hdr_iv = struct.pack("!II", spi, seq & 0xFFFFFFFF) + bytes.fromhex(case["iv"])
    pt = bytes.fromhex(case["plaintext"])
    expected = hdr_iv + bytes.fromhex(case["ciphertext"])
    assert cipher.seal(b"", hdr_iv, spi, seq, pt) == expected
    assert bytes(cipher.decrypt(expected, seq >> 32)) == pt
    end, nh = split_trailer(pt)
    assert nh in (1, 4) and end <= len(pt) - 2
    tampered = bytearray(expected)
    tampered[-1] ^= 0x80
    assert cipher.decrypt(bytes(tampered), seq >> 32) is None


def test_rfc8439_aead_vector_through_the_esp_cipher() -> None:
    """RFC 8439 §2.8.2 maps onto ESP with ESN: salt = the nonce's first 4 bytes, IV =
    the other 8, AAD = SPI || seq_hi || seq_lo (RFC 7634 §2.1)."""
    v = AEAD_2_8_2
    nonce, aad = unhex(v["nonce"]), unhex(v["aad"])
    cipher = AeadEspCipher(enc_by_name("chacha20poly1305"), unhex(v["key"]) + nonce[:4], True)
    spi, seq_hi, seq_lo = struct.unpack("!III", aad)
    seq = seq_hi << 32 | seq_lo
    hdr_iv = struct.pack("!II", spi, seq_lo) + nonce[4:]
    pt = unhex(v["plaintext"])
    expected = hdr_iv + unhex(v["ciphertext"]) + unhex(v["tag"])
    assert cipher.seal(b"", hdr_iv, spi, seq, pt) == expected
    assert bytes(cipher.decrypt(expected, seq_hi)) == pt
    assert cipher.decrypt(expected, seq_hi ^ 1) is None  # seq_hi is authenticated


def test_rfc7634_esp_example_through_the_esp_cipher() -> None:
    v = ESP_EXAMPLE
    packet = unhex(v["packet"])
    esp = packet[20:]
    cipher = AeadEspCipher(enc_by_name("chacha20poly1305"), unhex(v["keymat"]), False)
    pt = unhex(v["inner"]) + unhex(v["plaintext_trailer"])
    assert cipher.seal(packet[:20], esp[:16], v["spi"], v["seq"], pt) == packet
    assert bytes(cipher.decrypt(esp, 0)) == pt
    assert split_trailer(pt) == (len(pt) - 4, 4)


@pytest.mark.parametrize("case", CBC_CASES, ids=lambda c: c["name"])
def test_rfc3602_vectors(case) -> None:
    """The RFC packets carry no ICV: we append one (HMAC-SHA1-96, arbitrary key) so the
    packet goes through the production decryption path, and compare the rest."""
    key = bytes.fromhex(case["key"])
    alg = enc_by_name(f"aes{len(key) * 8}")
    cipher = CbcHmacEspCipher(alg, key, integ_by_name("sha1"), bytes(20), esn=False)
    payload = bytes.fromhex(case["payload"])
    pad = case["pad"]
    pt = payload + PAD_BYTES[:pad] + bytes((pad, case["next_header"]))
    hdr = struct.pack("!II", case["spi"], case["seq"])
    packet = bytes.fromhex(case["packet"])
    sealed = cipher.seal_with_iv(hdr, bytes.fromhex(case["iv"]), 0, pt)
    assert sealed[:-12] == packet
    got = cipher.decrypt(sealed, 0)
    assert got is not None
    assert split_trailer(got) == (len(payload), case["next_header"])
    assert bytes(got) == pt


@pytest.mark.parametrize("case", HMAC_CASES, ids=lambda c: f"{c['source']} {c['hash']}")
def test_hmac_vectors_through_esp_contexts(case) -> None:
    integ = next(a for a in INTEG_ALGORITHMS if a.hash_name == case["hash"])
    cipher = NullHmacEspCipher(integ, bytes.fromhex(case["key"]), esn=False)
    mac = bytes.fromhex(case["mac"])
    data = case["data"]
    # Twice, and split: the pre-keyed context must not be consumed by a copy.
    assert cipher.compute_icv(data) == mac[: integ.icv_size]
    assert cipher.compute_icv(data[:3], data[3:]) == mac[: integ.icv_size]


def test_icv_sizes_are_the_rfc_truncations() -> None:
    sizes = {a.name: a.icv_size * 8 for a in INTEG_ALGORITHMS}
    assert sizes == {"sha1": 96, "sha256": 128, "sha384": 192, "sha512": 256}


def test_cbc_running_context_is_plain_cbc_with_the_sent_iv() -> None:
    """Each packet's IV is in the packet; the rest must be CBC(key, that IV, plaintext)."""
    key = os.urandom(16)
    cipher = CbcHmacEspCipher(enc_by_name("aes128"), key, integ_by_name("sha256"), bytes(32), False)
    ivs = set()
    for i in range(50):
        pt = os.urandom(16 * (1 + i % 5))
        esp = cipher.encrypt(b"", 0x1234, i + 1, pt)
        iv, ct = esp[8:24], esp[24:-16]
        ivs.add(iv)
        enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        assert ct == enc.update(pt) + enc.finalize()
        assert bytes(cipher.decrypt(esp, 0)) == pt
    assert len(ivs) == 50


def test_cbc_iv_is_not_the_previous_ciphertext_block() -> None:
    """RFC 3602 §2: the IV must not be predictable, e.g. the last block sent."""
    cipher = CbcHmacEspCipher(enc_by_name("aes128"), os.urandom(16), integ_by_name("sha1"),
                              bytes(20), False)  # fmt: skip
    prev = cipher.encrypt(b"", 1, 1, bytes(32))
    for seq in range(2, 20):
        esp = cipher.encrypt(b"", 1, seq, bytes(32))
        assert esp[8:24] != prev[-12 - 16 : -12]
        prev = esp


def test_cbc_decrypt_out_of_order_and_after_bad_packets() -> None:
    """The decryptor's chaining state is steered by each IV: order does not matter,
    and rejected packets leave no trace."""
    key = os.urandom(32)
    tx = CbcHmacEspCipher(enc_by_name("aes256"), key, integ_by_name("sha512"), bytes(64), True)
    rx = CbcHmacEspCipher(enc_by_name("aes256"), key, integ_by_name("sha512"), bytes(64), True)
    pts = [os.urandom(16 * (i % 3 + 1)) for i in range(10)]
    esps = [tx.encrypt(b"", 9, (7 << 32) + i, p) for i, p in enumerate(pts)]
    with pytest.raises(ParseError):
        rx.decrypt(esps[0][:-1], 7)
    forged = bytearray(esps[1])
    forged[30] ^= 1
    assert rx.decrypt(bytes(forged), 7) is None
    assert rx.decrypt(esps[1], 8) is None  # wrong ESN high half
    for i in reversed(range(10)):
        assert bytes(rx.decrypt(esps[i], 7)) == pts[i]


def test_aead_iv_is_the_sequence_number() -> None:
    cipher = make_esp_cipher(enc_by_name("chacha20poly1305"), os.urandom(36), None, b"", False)
    esp = cipher.encrypt(b"pre", 0x77, 0x1_0000_0005, b"\x01\x02\x02\x04")
    assert esp[:3] == b"pre"
    assert esp[3:11] == struct.pack("!II", 0x77, 5)
    assert esp[11:19] == (0x1_0000_0005).to_bytes(8, "big")


@pytest.mark.parametrize(
    ("enc", "key", "integ", "ikey", "needle"),
    [
        ("aes128gcm16", 16, None, 0, "20 bytes"),
        ("chacha20poly1305", 32, None, 0, "36 bytes"),
        ("aes128gcm16", 20, "sha1", 20, "AEAD"),
        ("aes128gcm16", 20, None, 4, "integ_key"),
        ("aes256", 32, None, 0, "integrity"),
        ("aes256", 32, "sha384", 32, "48-byte"),
        ("null", 0, None, 0, "integrity"),
        ("null", 1, "sha1", 20, "0 bytes"),
    ],
)
def test_key_and_combination_errors(enc, key, integ, ikey, needle) -> None:
    integ_alg = None if integ is None else integ_by_name(integ)
    with pytest.raises(ConfigError, match=needle):
        make_esp_cipher(enc_by_name(enc), bytes(key), integ_alg, bytes(ikey), False)
