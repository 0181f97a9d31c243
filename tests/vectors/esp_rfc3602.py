"""RFC 3602 §4 (The AES-CBC Cipher Algorithm and Its Use with IPsec), test cases 5-8:
ESP packets (SPI, sequence number, IV, ciphertext) without an ICV. The payload is the
packet's data before padding; ``pad`` and ``next_header`` are the trailer's values."""

from __future__ import annotations

CASES = [
    dict(
        name="case 5: 64-byte ESP packet, transport mode ICMP",
        key="90d382b410eeba7ad938c46cec1a82bf",
        spi=0x4321,
        seq=1,
        iv="e96e8c08ab465763fd098d45dd3ff893",
        payload="08000ebda70a00008e9c083db95b070008090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        "202122232425262728292a2b2c2d2e2f3031323334353637",
        pad=14,
        next_header=1,
        packet="0000432100000001e96e8c08ab465763fd098d45dd3ff893f663c25d325c18c6a9453e194e120849"
        "a4870b66cc6b9965330013b4898dc856a4699e523a55db080b59ec3a8e4b7e52775b07d1db34ed9c538ab5"
        "0c551b874aa269add047ad2d5913ac19b7cfbad4a6",
    ),
    dict(
        name="case 6: 80-byte ESP packet, transport mode ICMP",
        key="90d382b410eeba7ad938c46cec1a82bf",
        spi=0x4321,
        seq=8,
        iv="69d08df7d203329db093fc4924e5bd80",
        payload="0800b5e8a80a0500a69c083d0b660e00777777777777777777777777",
        pad=2,
        next_header=1,
        packet="000043210000000869d08df7d203329db093fc4924e5bd80f51995881ec4e0c4488987ce742e8109"
        "689bb379d2d750c0d915dca346a89f75",
    ),
    dict(
        name="case 7: tunnel mode, inner IPv4 ICMP",
        key="0123456789abcdef0123456789abcdef",
        spi=0x8765,
        seq=2,
        iv="f4e765244f6407adf13dc1380f673f37",
        payload="45000054090400004001f988c0a87b03c0a87bc808009f76a90a0100b49c083d02a2040008090a0b"
        "0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637",
        pad=10,
        next_header=4,
        packet="0000876500000002f4e765244f6407adf13dc1380f673f37773b5241a4c449225e4f3ce5ed611b0c"
        "237ca96cf74a93013c1b0ea1a0cf70f8e4ecaec78ac53aad7a0f022b859243c647752e94a859352b8a4d4d"
        "2decd136e5c177f132ad3fbfb2201ac9904c74ee0a109e0ca1e4dfe9d5a100b842f1c22f0d",
    ),
    dict(
        name="case 8: tunnel mode, inner IPv4 ICMP",
        key="0123456789abcdef0123456789abcdef",
        spi=0x8765,
        seq=5,
        iv="85d47224b5f3dd5d2101d4ea8dffab22",
        payload="45000044090c00004001f990c0a87b03c0a87bc80800d63caa0a0200c69c083da3de0300ffffffff"
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        pad=10,
        next_header=4,
        packet="000087650000000585d47224b5f3dd5d2101d4ea8dffab2215b92683819596a8047232cc00f7048f"
        "e45318e11f8a0f62ede3c3fc61203bb50f980a08c9843fd3a1b06d5c07ff9639b7eb7dfb3512e5de435e72"
        "07ed971ef3d2726d9b5ef6affc6d17a0decbb13892",
    ),
]
