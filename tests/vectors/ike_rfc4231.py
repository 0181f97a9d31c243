"""HMAC known answers for the IKEv2 PRFs.

RFC 4231 §4.2, §4.3, §4.7 (test cases 1, 2 and 6) for HMAC-SHA-256/384/512, and
RFC 2202 §3 (test cases 1 and 2) for HMAC-SHA-1. Keys and data in hex.
"""

from __future__ import annotations

_TC1_KEY = "0b" * 20
_TC1_DATA = b"Hi There".hex()
_TC2_KEY = b"Jefe".hex()
_TC2_DATA = b"what do ya want for nothing?".hex()
_TC6_KEY = "aa" * 131
_TC6_DATA = b"Test Using Larger Than Block-Size Key - Hash Key First".hex()

HMAC_VECTORS = (
    ("RFC 2202 tc1", 2, _TC1_KEY, _TC1_DATA, "b617318655057264e28bc0b6fb378c8ef146be00"),
    ("RFC 2202 tc2", 2, _TC2_KEY, _TC2_DATA, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
    (
        "RFC 4231 tc1",
        5,
        _TC1_KEY,
        _TC1_DATA,
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    ),
    (
        "RFC 4231 tc1",
        6,
        _TC1_KEY,
        _TC1_DATA,
        "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c"
        "faea9ea9076ede7f4af152e8b2fa9cb6",
    ),
    (
        "RFC 4231 tc1",
        7,
        _TC1_KEY,
        _TC1_DATA,
        "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
        "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
    ),
    (
        "RFC 4231 tc2",
        5,
        _TC2_KEY,
        _TC2_DATA,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (
        "RFC 4231 tc2",
        6,
        _TC2_KEY,
        _TC2_DATA,
        "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e"
        "8e2240ca5e69e2c78b3239ecfab21649",
    ),
    (
        "RFC 4231 tc2",
        7,
        _TC2_KEY,
        _TC2_DATA,
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
        "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
    ),
    (
        "RFC 4231 tc6",
        5,
        _TC6_KEY,
        _TC6_DATA,
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
)
