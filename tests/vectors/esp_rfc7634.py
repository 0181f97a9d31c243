"""RFC 7634 (ChaCha20, Poly1305, and Their Use in IKE and IPsec), Appendix A
"ESP Example": a tunnel-mode ESP packet protected with ChaCha20-Poly1305.

Also RFC 8439 §2.8.2 (ChaCha20 and Poly1305 for IETF Protocols, "Example and Test
Vector for AEAD_CHACHA20_POLY1305"; same as RFC 7539 §2.8.2), the bare AEAD example.

Hex strings as printed in the RFCs, spaces removed. In Appendix A the KEYMAT is the
32-byte key followed by the 4-byte salt (RFC 7634 §2); the nonce is salt || IV and the
AAD is SPI || sequence number (no ESN).
"""

from __future__ import annotations

# RFC 7634 Appendix A.
ESP_EXAMPLE = dict(
    keymat="808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3",
    spi=0x01020304,
    seq=5,
    iv="1011121314151617",
    nonce="a0a1a2a31011121314151617",
    aad="0102030400000005",
    # Outer tunnel endpoints of the example's IPv4 header: 203.0.113.153 -> 203.0.113.5.
    src="203.0.113.153",
    dst="203.0.113.5",
    # The protected packet: ICMP echo request 198.51.100.5 -> 192.0.2.5.
    inner="4500 0054 a6f2 0000 4001 e778 c633 6405 c000 0205 0800 5b7a 3a08 0000 553b ec10"
    " 0007 3627 0809 0a0b 0c0d 0e0f 1011 1213 1415 1617 1819 1a1b 1c1d 1e1f 2021 2223"
    " 2425 2627 2829 2a2b 2c2d 2e2f 3031 3233 3435 3637",
    # ESP payload as encrypted: the inner packet, padding 01 02, pad length 2, next header 4.
    plaintext_trailer="01020204",
    # The whole IPv4/ESP packet of the example (outer header, SPI, seq, IV, ciphertext, tag).
    packet="4500 008c 2345 0000 4032 de5b cb00 7199 cb00 7105"
    " 0102 0304 0000 0005 1011 1213 1415 1617"
    " 2403 9428 b97f 417e 3c13 753a 4f05 087b 67c3 52e6 a7fa b1b9 82d4 66ef 407a e5c6"
    " 14ee 8099 d528 44eb 61aa 95df ab4c 02f7 2aa7 1e7c 4c4f 64c9 befe 2fac c638 e8f3"
    " cbec 163f ac46 9b50 2773 f6fb 94e6 64da 9165 b828 29f6 41e0"
    " 76aa a826 6b7f b0f7 b11b 3699 07e1 ad43",
    # Poly1305 tag (the ICV): the packet's last 16 bytes.
    tag="76aaa8266b7fb0f7b11b369907e1ad43",
)

# RFC 8439 §2.8.2: 12-byte AAD, nonce = 32-bit constant || 64-bit IV.
AEAD_2_8_2 = dict(
    key="808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
    nonce="070000004041424344454647",
    aad="50515253c0c1c2c3c4c5c6c7",
    plaintext=b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
    b"for the future, sunscreen would be it.".hex(),
    ciphertext="d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
    "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
    "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
    "3ff4def08e4b7a9de576d26586cec64b6116",
    tag="1ae10b594f09e26a7e902ecbd0600691",
)


def unhex(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", ""))
