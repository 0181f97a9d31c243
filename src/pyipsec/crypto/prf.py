"""IKEv2 pseudo-random functions (transform type 2) over HMAC, through `cryptography`.

RFC 7296 §2.13 defines ``prf+``; RFC 2104 HMAC with SHA-1 (RFC 2404) and the SHA-2
family (RFC 4868) are the PRFs implemented here. The ids are IANA's transform type 2
values; IKE-only for now, to be unified with the ESP algorithm registry later.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes, hmac

from pyipsec.errors import ConfigError

# RFC 7296 §2.13: prf+ chains at most 255 blocks (the counter is one octet).
_MAX_PRF_PLUS_BLOCKS = 255


class Prf:
    """One HMAC-based PRF: ``prf(key, data)`` and ``prf_plus(key, seed, length)``.

    Instances hold no key material: the key is an argument of every call.
    """

    __slots__ = ("_hash", "digest_size", "key_size", "name", "transform_id")

    def __init__(self, name: str, transform_id: int, algorithm: hashes.HashAlgorithm) -> None:
        self.name = name
        self.transform_id = transform_id
        self._hash = algorithm
        self.digest_size: int = algorithm.digest_size
        # RFC 7296 §2.13/§2.14: SK_d, SK_pi and SK_pr are "the preferred key size"
        # of the PRF; for HMAC that is the output length (RFC 4868 §2.1.2).
        self.key_size: int = algorithm.digest_size

    def __repr__(self) -> str:
        return f"Prf({self.name})"

    def __call__(self, key: bytes, data: bytes) -> bytes:
        h = hmac.HMAC(key, self._hash)
        h.update(data)
        return h.finalize()

    def prf_plus(self, key: bytes, seed: bytes, length: int) -> bytes:
        """RFC 7296 §2.13: T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n)."""
        if length < 0:
            raise ConfigError("prf+ length must not be negative")
        blocks = -(-length // self.digest_size)
        if blocks > _MAX_PRF_PLUS_BLOCKS:
            raise ConfigError(
                f"prf+ cannot produce {length} octets with {self.name} "
                f"(at most {_MAX_PRF_PLUS_BLOCKS * self.digest_size})"
            )
        # Key the HMAC once and copy the keyed state for each block.
        keyed = hmac.HMAC(key, self._hash)
        out = bytearray()
        previous = b""
        for counter in range(1, blocks + 1):
            h = keyed.copy()
            h.update(previous)
            h.update(seed)
            h.update(bytes((counter,)))
            previous = h.finalize()
            out += previous
        return bytes(out[:length])


# HMAC-SHA1 is a PRF here, where SHA-1 collisions do not matter (RFC 8247 §2.3 keeps it).
PRF_HMAC_SHA1 = Prf("prfsha1", 2, hashes.SHA1())  # noqa: S303
PRF_HMAC_SHA2_256 = Prf("prfsha256", 5, hashes.SHA256())
PRF_HMAC_SHA2_384 = Prf("prfsha384", 6, hashes.SHA384())
PRF_HMAC_SHA2_512 = Prf("prfsha512", 7, hashes.SHA512())

_BY_ID: dict[int, Prf] = {
    p.transform_id: p
    for p in (PRF_HMAC_SHA1, PRF_HMAC_SHA2_256, PRF_HMAC_SHA2_384, PRF_HMAC_SHA2_512)
}


def prf_by_id(transform_id: int) -> Prf:
    """The PRF for an IANA transform type 2 id; ConfigError if we do not implement it."""
    try:
        return _BY_ID[transform_id]
    except KeyError:
        raise ConfigError(f"unsupported IKEv2 PRF transform id {transform_id}") from None


def supported_prf_ids() -> tuple[int, ...]:
    return tuple(_BY_ID)
