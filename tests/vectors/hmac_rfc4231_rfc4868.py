"""HMAC vectors: RFC 2202 §3 test case 1 (HMAC-SHA-1, the base of RFC 2404's
HMAC-SHA1-96), RFC 4231 §4.2 and §4.3 test cases 1 and 2 (HMAC-SHA-256/384/512), and
RFC 4868 §2.7.2.1 AUTH256 test case 1 (32-byte key, HMAC-SHA-256-128). ``mac`` is the
full HMAC output; ESP sends its first ICV-size bytes."""

from __future__ import annotations

CASES = [
    dict(source="RFC 2202 §3 case 1", hash="SHA1", key="0b" * 20, data=b"Hi There",
         mac="b617318655057264e28bc0b6fb378c8ef146be00"),
    dict(source="RFC 4231 §4.2", hash="SHA256", key="0b" * 20, data=b"Hi There",
         mac="b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    dict(source="RFC 4231 §4.2", hash="SHA384", key="0b" * 20, data=b"Hi There",
         mac="afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c"
         "faea9ea9076ede7f4af152e8b2fa9cb6"),
    dict(source="RFC 4231 §4.2", hash="SHA512", key="0b" * 20, data=b"Hi There",
         mac="87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
         "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"),
    dict(source="RFC 4231 §4.3", hash="SHA256", key=b"Jefe".hex(),
         data=b"what do ya want for nothing?",
         mac="5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    dict(source="RFC 4868 §2.7.2.1 AUTH256-1", hash="SHA256", key="0b" * 32, data=b"Hi There",
         mac="198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7"),
    dict(source="RFC 4868 §2.7.2.1 AUTH256-2", hash="SHA256", key=b"Jefe".hex() * 8,
         data=b"what do ya want for nothing?",
         mac="167f928588c5cc2eef8e3093caa0e87c9ff566a14794aa61648d81621a2a40c6"),
]  # fmt: skip
