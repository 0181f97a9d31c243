"""strongSwan proposal keywords and the IANA transform they name.

Sources: strongSwan documentation, "IKEv2 Cipher Suites" (keyword column), and the IANA
"Internet Key Exchange Version 2 (IKEv2) Parameters" registry, Transform Type Values
1 (ENCR), 2 (PRF), 3 (INTEG), 4 (Key Exchange Method) and 5 (ESN), for the id column.
Key lengths are the Key Length attribute in bits (RFC 7296 §3.3.5).
"""

# keyword: (transform type, transform id, key length or None)
KEYWORDS: dict[str, tuple[int, int, int | None]] = {
    "aes128": (1, 12, 128),
    "aes192": (1, 12, 192),
    "aes256": (1, 12, 256),
    "aes128ctr": (1, 13, 128),
    "aes256ctr": (1, 13, 256),
    "aes128ccm8": (1, 14, 128),
    "aes128ccm12": (1, 15, 128),
    "aes256ccm16": (1, 16, 256),
    "aes128gcm8": (1, 18, 128),
    "aes192gcm12": (1, 19, 192),
    "aes128gcm16": (1, 20, 128),
    "aes256gcm16": (1, 20, 256),
    "aes256gcm128": (1, 20, 256),
    "aes128gmac": (1, 21, 128),
    "chacha20poly1305": (1, 28, None),
    "3des": (1, 3, None),
    "null": (1, 11, None),
    "prfmd5": (2, 1, None),
    "prfsha1": (2, 2, None),
    "prfaesxcbc": (2, 4, None),
    "prfsha256": (2, 5, None),
    "prfsha384": (2, 6, None),
    "prfsha512": (2, 7, None),
    "prfaescmac": (2, 8, None),
    "md5": (3, 1, None),
    "sha1": (3, 2, None),
    "aesxcbc": (3, 5, None),
    "aescmac": (3, 8, None),
    "sha256": (3, 12, None),
    "sha384": (3, 13, None),
    "sha512": (3, 14, None),
    "modp768": (4, 1, None),
    "modp1024": (4, 2, None),
    "modp1536": (4, 5, None),
    "modp2048": (4, 14, None),
    "modp3072": (4, 15, None),
    "modp4096": (4, 16, None),
    "modp6144": (4, 17, None),
    "modp8192": (4, 18, None),
    "ecp256": (4, 19, None),
    "ecp384": (4, 20, None),
    "ecp521": (4, 21, None),
    "x25519": (4, 31, None),
    "curve25519": (4, 31, None),
    "x448": (4, 32, None),
    "noesn": (5, 0, None),
    "esn": (5, 1, None),
}
