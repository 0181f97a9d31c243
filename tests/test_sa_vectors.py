"""SecurityAssociation against published whole-packet vectors: RFC 7634 Appendix A."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from pyipsec.crypto.esp_cipher import AeadEspCipher
from pyipsec.engine.sa import SecurityAssociation
from pyipsec.errors import PacketDropped, Reason
from pyipsec.wire.esp import trailer
from pyipsec.wire.ip import internet_checksum
from vectors.esp_rfc7634 import ESP_EXAMPLE as EX
from vectors.esp_rfc7634 import unhex

KEYMAT = unhex(EX["keymat"])
INNER = unhex(EX["inner"])
PACKET = unhex(EX["packet"])
SPI = EX["spi"]
SEQ = EX["seq"]


def make_sa() -> SecurityAssociation:
    return SecurityAssociation(
        spi=SPI, src=EX["src"], dst=EX["dst"], enc="chacha20poly1305", enc_key=KEYMAT
    )


def test_vector_is_self_consistent() -> None:
    """The transcription: lengths, checksums, and the fields the RFC lists apart."""
    assert len(INNER) == INNER[2] << 8 | INNER[3] == 84
    assert internet_checksum(INNER[:20]) == 0
    assert internet_checksum(PACKET[:20]) == 0
    assert len(PACKET) == PACKET[2] << 8 | PACKET[3] == 20 + 8 + 8 + 84 + 4 + 16
    assert PACKET[20:28].hex() == EX["aad"]
    assert PACKET[28:36].hex() == EX["iv"]
    assert PACKET[-16:].hex() == EX["tag"]
    assert KEYMAT[32:] + PACKET[28:36] == unhex(EX["nonce"])


def test_trailer_matches_the_example() -> None:
    """Our padding rule gives the same ESP trailer as the RFC (4-byte alignment)."""
    assert trailer(len(INNER), 4, 4) == unhex(EX["plaintext_trailer"])


def test_encapsulate_reproduces_the_packet() -> None:
    """With the sequence number and the IPv4 identification injected, and the RFC's
    explicit IV in place of ours (we send the sequence number as the IV, which RFC 7634
    §2 allows), the SA's output is the RFC's packet byte for byte."""
    sa = make_sa()
    sa.seq_out = SEQ - 1
    sa._ident = (PACKET[4] << 8 | PACKET[5]) - 1
    out = sa.encapsulate(INNER)
    assert len(out) == len(PACKET)
    # Outer IPv4 header (length, identification, TTL, protocol, checksum), SPI, seq.
    assert out[:28] == PACKET[:28]
    assert out[28:36] == SEQ.to_bytes(8, "big")
    # Same key, salt and AAD: the RFC's IV through the SA's own AEAD object.
    cipher = sa._cipher
    assert isinstance(cipher, AeadEspCipher)
    pt = INNER + unhex(EX["plaintext_trailer"])
    assert cipher.seal(out[:20], PACKET[20:36], SPI, SEQ, pt) == PACKET
    # And our own packet is the same construction with IV = seq: a bare AEAD opens it.
    aead = ChaCha20Poly1305(KEYMAT[:32])
    assert aead.decrypt(KEYMAT[32:] + out[28:36], out[36:], out[20:28]) == pt


def test_decapsulate_the_rfc_packet() -> None:
    rx = make_sa()
    assert rx.decapsulate(PACKET) == INNER
    assert rx.replay.top == SEQ
    assert (rx.counters.packets, rx.counters.bytes) == (1, len(INNER))
    with pytest.raises(PacketDropped) as exc:
        rx.decapsulate(PACKET)
    assert exc.value.reason == Reason.IN_STATE_SEQ_ERROR


@pytest.mark.parametrize("at", [20, 27, 28, 35, 36, 100, len(PACKET) - 1])
def test_any_flipped_bit_is_refused(at: int) -> None:
    """SPI, sequence number (both in the AAD), IV (in the nonce), ciphertext and tag."""
    rx = make_sa()
    bad = bytearray(PACKET)
    bad[at] ^= 0x10
    with pytest.raises(PacketDropped) as exc:
        rx.decapsulate(bytes(bad))
    assert exc.value.reason in (Reason.IN_STATE_PROTO_ERROR, Reason.IN_STATE_MISMATCH)
    assert rx.replay.top == 0
    assert rx.decapsulate(PACKET) == INNER


def test_esp_decrypt_of_the_rfc_esp_packet() -> None:
    rx = make_sa()
    assert rx.esp_decrypt(PACKET[20:]) == (4, INNER)
