"""ESP algorithm registry: one record per algorithm, with every name the stack meets.

Users type strongSwan proposal keywords (``aes128gcm16``, ``sha256``); IKEv2 negotiates
IANA transform ids (RFC 7296 §3.3.2, with a key length attribute for AES); xfrm netlink
carries the Linux kernel's crypto API names plus ICV/truncation lengths in bits; PF_KEY
carries ``SADB_*ALG_*`` numbers (<linux/pfkeyv2.h>); setkey files use ipsec-tools names.
The records are immutable; lookups never raise anything but ``ConfigError``.

PF_KEY has no ChaCha20-Poly1305 in Linux. We use ``SADB_X_EALG_CHACHA20POLY1305 = 249``,
the first value of the private range (249-255) that <linux/pfkeyv2.h> reserves per
RFC 2407 and that no Linux or KAME algorithm occupies; only our own PF_KEY server knows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pyipsec.errors import ConfigError

# IKEv2 transform types (RFC 7296 §3.3.2).
TRANSFORM_ENCR = 1
TRANSFORM_INTEG = 3

# IKEv2 transform ids (IANA "IKEv2 Parameters").
ENCR_NULL = 11
ENCR_AES_CBC = 12
ENCR_AES_GCM_16 = 20
ENCR_CHACHA20_POLY1305 = 28
AUTH_HMAC_SHA1_96 = 2
AUTH_HMAC_SHA2_256_128 = 12
AUTH_HMAC_SHA2_384_192 = 13
AUTH_HMAC_SHA2_512_256 = 14

# PF_KEY v2 numbers as Linux assigns them (<linux/pfkeyv2.h>).
SADB_EALG_NULL = 11
SADB_X_EALG_AESCBC = 12
SADB_X_EALG_AES_GCM_ICV16 = 20
SADB_X_EALG_CHACHA20POLY1305 = 249  # private range: see the module docstring
SADB_AALG_SHA1HMAC = 3
SADB_X_AALG_SHA2_256HMAC = 5
SADB_X_AALG_SHA2_384HMAC = 6
SADB_X_AALG_SHA2_512HMAC = 7

EncKind = Literal["aead", "cbc", "null"]


@dataclass(frozen=True, slots=True)
class EncAlgorithm:
    """An ESP encryption (or combined-mode) algorithm. Sizes are in bytes."""

    name: str  # strongSwan keyword
    kind: EncKind
    iana_id: int
    key_size: int  # cipher key, without salt
    salt_size: int  # RFC 4106 §8.1 / RFC 7634 §2: keying material ends with the salt
    iv_size: int  # explicit IV carried in each packet
    block_size: int  # padding unit (1 for stream/AEAD ciphers)
    icv_size: int  # AEAD tag; 0 when integrity comes from a separate algorithm
    kernel_name: str
    pfkey_id: int
    setkey_names: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    iana_key_attr: bool = False  # IKEv2 carries a Key Length attribute (AES)

    @property
    def keymat_size(self) -> int:
        """Bytes of keying material: key followed by salt."""
        return self.key_size + self.salt_size

    @property
    def is_aead(self) -> bool:
        return self.kind == "aead"

    @property
    def kernel_icv_bits(self) -> int:
        """``alg_icv_len`` of ``struct xfrm_algo_aead`` (0 for non-AEAD)."""
        return self.icv_size * 8

    @property
    def key_bits(self) -> int:
        """Key length the kernel and PF_KEY see: key plus salt, in bits."""
        return self.keymat_size * 8


@dataclass(frozen=True, slots=True)
class IntegAlgorithm:
    """An ESP integrity algorithm (HMAC truncated to ``icv_size`` bytes)."""

    name: str
    iana_id: int
    hash_name: str  # name of the hash in ``cryptography.hazmat.primitives.hashes``
    key_size: int
    icv_size: int  # truncated output
    kernel_name: str
    pfkey_id: int
    setkey_names: tuple[str, ...]
    aliases: tuple[str, ...] = ()

    @property
    def kernel_trunc_bits(self) -> int:
        """``alg_trunc_len`` of ``struct xfrm_algo_auth``."""
        return self.icv_size * 8


def _gcm(bits: int) -> EncAlgorithm:
    # RFC 4106: 8-byte explicit IV, 4-byte salt after the key, 16-byte ICV here.
    return EncAlgorithm(
        name=f"aes{bits}gcm16",
        kind="aead",
        iana_id=ENCR_AES_GCM_16,
        key_size=bits // 8,
        salt_size=4,
        iv_size=8,
        block_size=1,
        icv_size=16,
        kernel_name="rfc4106(gcm(aes))",
        pfkey_id=SADB_X_EALG_AES_GCM_ICV16,
        setkey_names=("aes-gcm-16",),
        aliases=(f"aes{bits}gcm128",),
        iana_key_attr=True,
    )


def _cbc(bits: int) -> EncAlgorithm:
    # RFC 3602: 16-byte IV and block; integrity must come from a separate algorithm.
    return EncAlgorithm(
        name=f"aes{bits}",
        kind="cbc",
        iana_id=ENCR_AES_CBC,
        key_size=bits // 8,
        salt_size=0,
        iv_size=16,
        block_size=16,
        icv_size=0,
        kernel_name="cbc(aes)",
        pfkey_id=SADB_X_EALG_AESCBC,
        setkey_names=("aes-cbc", "rijndael-cbc"),
        iana_key_attr=True,
    )


def _hmac_sha2(bits: int, iana_id: int, pfkey_id: int) -> IntegAlgorithm:
    # RFC 4868 §2.1: the key is as long as the hash output, the ICV is half of it.
    return IntegAlgorithm(
        name=f"sha{bits}",
        iana_id=iana_id,
        hash_name=f"SHA{bits}",
        key_size=bits // 8,
        icv_size=bits // 16,
        kernel_name=f"hmac(sha{bits})",
        pfkey_id=pfkey_id,
        setkey_names=(f"hmac-sha{bits}", f"hmac-sha2-{bits}"),
        aliases=(f"sha2_{bits}",),
    )


ENC_ALGORITHMS: tuple[EncAlgorithm, ...] = (
    _gcm(128),
    _gcm(192),
    _gcm(256),
    EncAlgorithm(
        # RFC 7634 §2: 32-byte key + 4-byte salt, 8-byte IV, 16-byte tag.
        name="chacha20poly1305",
        kind="aead",
        iana_id=ENCR_CHACHA20_POLY1305,
        key_size=32,
        salt_size=4,
        iv_size=8,
        block_size=1,
        icv_size=16,
        kernel_name="rfc7539esp(chacha20,poly1305)",
        pfkey_id=SADB_X_EALG_CHACHA20POLY1305,
        # FreeBSD's setkey spells it so; ipsec-tools has no name for it.
        setkey_names=("chacha20-poly1305",),
    ),
    _cbc(128),
    _cbc(192),
    _cbc(256),
    EncAlgorithm(
        # RFC 2410: no IV, no padding beyond the 4-byte trailer alignment.
        name="null",
        kind="null",
        iana_id=ENCR_NULL,
        key_size=0,
        salt_size=0,
        iv_size=0,
        block_size=1,
        icv_size=0,
        kernel_name="ecb(cipher_null)",
        pfkey_id=SADB_EALG_NULL,
        setkey_names=("null",),
    ),
)

INTEG_ALGORITHMS: tuple[IntegAlgorithm, ...] = (
    # RFC 2404: HMAC-SHA1-96.
    IntegAlgorithm(
        name="sha1",
        iana_id=AUTH_HMAC_SHA1_96,
        hash_name="SHA1",
        key_size=20,
        icv_size=12,
        kernel_name="hmac(sha1)",
        pfkey_id=SADB_AALG_SHA1HMAC,
        setkey_names=("hmac-sha1",),
        aliases=("sha",),
    ),
    _hmac_sha2(256, AUTH_HMAC_SHA2_256_128, SADB_X_AALG_SHA2_256HMAC),
    _hmac_sha2(384, AUTH_HMAC_SHA2_384_192, SADB_X_AALG_SHA2_384HMAC),
    _hmac_sha2(512, AUTH_HMAC_SHA2_512_256, SADB_X_AALG_SHA2_512HMAC),
)

_ENC_BY_NAME: dict[str, EncAlgorithm] = {}
for _e in ENC_ALGORITHMS:
    for _n in (_e.name, *_e.aliases):
        _ENC_BY_NAME[_n] = _e
_INTEG_BY_NAME: dict[str, IntegAlgorithm] = {}
for _i in INTEG_ALGORITHMS:
    for _n in (_i.name, *_i.aliases):
        _INTEG_BY_NAME[_n] = _i


def enc_by_name(name: str) -> EncAlgorithm:
    """The encryption algorithm for a strongSwan keyword (``aes128gcm16``, ``aes256``)."""
    alg = _ENC_BY_NAME.get(name.lower()) if isinstance(name, str) else None
    if alg is None:
        raise ConfigError(f"unknown ESP encryption algorithm {name!r}")
    return alg


def integ_by_name(name: str) -> IntegAlgorithm:
    """The integrity algorithm for a strongSwan keyword (``sha1``, ``sha256``, ...)."""
    alg = _INTEG_BY_NAME.get(name.lower()) if isinstance(name, str) else None
    if alg is None:
        raise ConfigError(f"unknown ESP integrity algorithm {name!r}")
    return alg


def _pick_enc(cands: list[EncAlgorithm], key_bits: int | None, what: str) -> EncAlgorithm:
    """Choose among same-id candidates by key length (AES comes in three sizes)."""
    if not cands:
        raise ConfigError(f"unknown ESP encryption algorithm {what}")
    if key_bits is None:
        if len(cands) == 1:
            return cands[0]
        raise ConfigError(f"{what} needs a key length to pick the algorithm")
    for alg in cands:
        if key_bits in (alg.key_bits, alg.key_size * 8):
            return alg
    raise ConfigError(f"{what} does not support a {key_bits}-bit key")


def enc_by_kernel_name(name: str, key_bits: int | None = None) -> EncAlgorithm:
    """Reverse lookup from an xfrm ``alg_name``; ``key_bits`` is ``alg_key_len``.

    ``key_bits`` may count the salt (as xfrm does) or not.
    """
    cands = [a for a in ENC_ALGORITHMS if a.kernel_name == name]
    return _pick_enc(cands, key_bits, f"kernel name {name!r}")


def enc_by_iana(transform_id: int, key_bits: int | None = None) -> EncAlgorithm:
    """Reverse lookup from an IKEv2 ENCR id and its Key Length attribute (RFC 7296 §3.3.5).

    For AES the attribute gives the AES key size, salt excluded (RFC 4106 §8.4).
    """
    cands = [a for a in ENC_ALGORITHMS if a.iana_id == transform_id]
    return _pick_enc(cands, key_bits, f"IKEv2 ENCR id {transform_id}")


def enc_by_pfkey(alg_id: int, key_bits: int | None = None) -> EncAlgorithm:
    """Reverse lookup from ``sadb_sa_encrypt`` and ``sadb_key_bits`` (salt included)."""
    cands = [a for a in ENC_ALGORITHMS if a.pfkey_id == alg_id]
    return _pick_enc(cands, key_bits, f"PF_KEY encryption id {alg_id}")


def enc_by_setkey(name: str, key_bits: int | None = None) -> EncAlgorithm:
    """Reverse lookup from a setkey ``-E`` name; the key length picks the AES size.

    ipsec-tools counts the GCM salt in the key (``aes-gcm-16`` takes 160/224/288 bits).
    """
    low = name.lower() if isinstance(name, str) else ""
    cands = [a for a in ENC_ALGORITHMS if low in a.setkey_names]
    return _pick_enc(cands, key_bits, f"setkey name {name!r}")


def _find_integ(pred: str, value: object) -> IntegAlgorithm:
    for alg in INTEG_ALGORITHMS:
        if getattr(alg, pred) == value:
            return alg
    raise ConfigError(f"unknown ESP integrity algorithm ({pred} {value!r})")


def integ_by_kernel_name(name: str) -> IntegAlgorithm:
    """Reverse lookup from an xfrm ``struct xfrm_algo_auth`` name (``hmac(sha256)``)."""
    return _find_integ("kernel_name", name)


def integ_by_iana(transform_id: int) -> IntegAlgorithm:
    """Reverse lookup from an IKEv2 INTEG transform id."""
    return _find_integ("iana_id", transform_id)


def integ_by_pfkey(alg_id: int) -> IntegAlgorithm:
    """Reverse lookup from ``sadb_sa_auth``."""
    return _find_integ("pfkey_id", alg_id)


def integ_by_setkey(name: str) -> IntegAlgorithm:
    """Reverse lookup from a setkey ``-A`` name (``hmac-sha256``)."""
    low = name.lower() if isinstance(name, str) else ""
    for alg in INTEG_ALGORITHMS:
        if low in alg.setkey_names:
            return alg
    raise ConfigError(f"unknown setkey integrity algorithm {name!r}")
