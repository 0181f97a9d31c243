"""RFC 7427 (Signature Authentication in IKEv2), Appendix A "Commonly Used ASN.1 Objects",
and RFC 8420 §2 (Ed25519/Ed448 in IKEv2): DER AlgorithmIdentifier encodings as the RFCs
print them (hex, with their spacing), keyed by the appendix section.

Provenance: transcribed without the RFC text at hand, so each encoding pyipsec sends is
checked against an independent encoder — the signatureAlgorithm OpenSSL writes into a
certificate signed with the same algorithm (tests/ike/test_ike_rfc7427_vectors.py). The
SHA-1 and DSA entries, which nothing here can sign with, are unchecked.

``scheme`` names the pyipsec.ike.v2.auth scheme the encoding selects (None: an algorithm
pyipsec refuses or does not implement); ``sent`` says whether pyipsec sends exactly
this encoding for that scheme.
"""

from __future__ import annotations

ALGORITHM_IDENTIFIERS = (
    # A.1: PKCS#1 1.5 RSA Encryption.
    {"section": "A.1.1", "name": "sha1WithRSAEncryption", "scheme": "rsa-pkcs1-sha1",
     "sent": False, "hex": "300d 0609 2a86 4886 f70d 0101 0505 00"},
    {"section": "A.1.2", "name": "sha256WithRSAEncryption", "scheme": "rsa-pkcs1-sha256",
     "sent": True, "hex": "300d 0609 2a86 4886 f70d 0101 0b05 00"},
    {"section": "A.1.3", "name": "sha384WithRSAEncryption", "scheme": "rsa-pkcs1-sha384",
     "sent": True, "hex": "300d 0609 2a86 4886 f70d 0101 0c05 00"},
    {"section": "A.1.4", "name": "sha512WithRSAEncryption", "scheme": "rsa-pkcs1-sha512",
     "sent": True, "hex": "300d 0609 2a86 4886 f70d 0101 0d05 00"},
    # A.2: DSA (not implemented: IKE DSS signatures are obsolete, RFC 8247 §3.1).
    {"section": "A.2.1", "name": "dsa-with-sha1", "scheme": None,
     "sent": False, "hex": "3009 0607 2a86 48ce 3804 03"},
    {"section": "A.2.2", "name": "dsa-with-sha256", "scheme": None,
     "sent": False, "hex": "300b 0609 6086 4801 6503 0403 02"},
    # A.3: ECDSA.
    {"section": "A.3.1", "name": "ecdsa-with-sha1", "scheme": "ecdsa-sha1",
     "sent": False, "hex": "3009 0607 2a86 48ce 3d04 01"},
    {"section": "A.3.2", "name": "ecdsa-with-sha256", "scheme": "ecdsa-sha256",
     "sent": True, "hex": "300a 0608 2a86 48ce 3d04 0302"},
    {"section": "A.3.3", "name": "ecdsa-with-sha384", "scheme": "ecdsa-sha384",
     "sent": True, "hex": "300a 0608 2a86 48ce 3d04 0303"},
    {"section": "A.3.4", "name": "ecdsa-with-sha512", "scheme": "ecdsa-sha512",
     "sent": True, "hex": "300a 0608 2a86 48ce 3d04 0304"},
    # A.4.3: RSASSA-PSS with SHA-256, MGF1 with SHA-256, salt length 32.
    {"section": "A.4.3", "name": "RSASSA-PSS with SHA-256", "scheme": "rsa-pss-sha256",
     "sent": True,
     "hex": "3041 0609 2a86 4886 f70d 0101 0a30 34a0 0f30 0d06 0960 8648 0165 0304 0201"
            "0500 a11c 301a 0609 2a86 4886 f70d 0101 0830 0d06 0960 8648 0165 0304 0201"
            "0500 a203 0201 20"},
    # RFC 8420 §2: Ed25519 and Ed448 (id-Ed25519 / id-Ed448 of RFC 8410, no parameters).
    {"section": "RFC 8420 §2", "name": "id-Ed25519", "scheme": "ed25519",
     "sent": True, "hex": "30 05 06 03 2B 65 70"},
    {"section": "RFC 8420 §2", "name": "id-Ed448", "scheme": "ed448",
     "sent": True, "hex": "30 05 06 03 2B 65 71"},
)  # fmt: skip
