"""strongSwan proposal keywords <-> IKEv2 transforms (RFC 7296 §3.3).

A proposal string is a ``-`` separated list of algorithm keywords, e.g.
``aes128gcm16-prfsha256-x25519`` (IKE) or ``aes256-sha256-modp2048-esn`` (ESP with PFS).
Each keyword names one transform: its type (ENCR, PRF, INTEG, DH, ESN), its IANA id and,
for AES, the Key Length attribute in bits (RFC 7296 §3.3.5). Keywords of one type are
kept in the order written, which is the order of preference.

The rules follow what strongSwan accepts:

- IKE needs an encryption algorithm, a PRF and a DH group; a classic (non-AEAD) cipher
  also needs an integrity algorithm. Without an explicit PRF, one is derived from each
  integrity algorithm (``sha256`` -> ``prfsha256``), since RFC 7296 §3.3.3 pairs them.
  An AEAD cipher has no integrity transform (RFC 5282 §8), so AEAD IKE proposals must
  name their PRF.
- ESP/AH carry no PRF. DH groups in an ESP/AH proposal are the PFS groups for
  CREATE_CHILD_SA (RFC 7296 §1.3.1). ESN defaults to ``noesn``.
- A string that mixes AEAD and classic ciphers becomes two proposals, because one
  proposal cannot carry both (RFC 5282 §8).

The names of the implemented algorithms match ``pyipsec.crypto.algorithms``; the
keyword table here is broader because a peer or a config may name algorithms that we
only need to recognise (and refuse to negotiate), such as ``3des`` or ``modp1024``.
Groups that ``DhId`` in ``ike.v2.constants`` lacks (22-26, 27-30) are not known here.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from pyipsec.errors import ConfigError
from pyipsec.ike.v2 import payloads
from pyipsec.ike.v2.constants import (
    DhId,
    EncrId,
    EsnId,
    IntegId,
    PrfId,
    ProtocolId,
    TransformType,
)


@dataclass(frozen=True, slots=True)
class Transform:
    """One transform: type, IANA id and the Key Length attribute in bits (or None)."""

    type: TransformType
    id: int
    key_length: int | None = None


@dataclass(frozen=True, slots=True)
class Proposal:
    """One proposal for IKE, ESP or AH; transforms in order of preference per type."""

    protocol: ProtocolId
    transforms: tuple[Transform, ...]

    def of_type(self, transform_type: TransformType) -> tuple[Transform, ...]:
        return tuple([t for t in self.transforms if t.type == transform_type])

    @property
    def is_aead(self) -> bool:
        return any(t.id in _AEAD_IDS for t in self.of_type(TransformType.ENCR))

    def __str__(self) -> str:
        return format_proposal(self)


# -- keyword table -------------------------------------------------------------------

_AEAD_IDS = frozenset(
    {
        EncrId.AES_CCM_8,
        EncrId.AES_CCM_12,
        EncrId.AES_CCM_16,
        EncrId.AES_GCM_8,
        EncrId.AES_GCM_12,
        EncrId.AES_GCM_16,
        EncrId.NULL_AUTH_AES_GMAC,
        EncrId.CHACHA20_POLY1305,
    }
)

# keyword -> transform, canonical names first; aliases map to the same transform.
_KEYWORDS: dict[str, Transform] = {}
# transform -> canonical keyword (the first name registered for it).
_NAMES: dict[Transform, str] = {}


def _add(transform: Transform, *names: str) -> None:
    for name in names:
        _KEYWORDS[name] = transform
    _NAMES.setdefault(transform, names[0])


def _build_table() -> None:
    enc = TransformType.ENCR
    for bits in (128, 192, 256):
        _add(Transform(enc, EncrId.AES_CBC, bits), f"aes{bits}", *(("aes",) if bits == 128 else ()))
        _add(Transform(enc, EncrId.AES_CTR, bits), f"aes{bits}ctr")
        # RFC 4106/4309: the ICV length is part of the algorithm id; strongSwan accepts the
        # length in octets (gcm16) or in bits (gcm128).
        for octets, gcm_id, ccm_id in (
            (16, EncrId.AES_GCM_16, EncrId.AES_CCM_16),
            (12, EncrId.AES_GCM_12, EncrId.AES_CCM_12),
            (8, EncrId.AES_GCM_8, EncrId.AES_CCM_8),
        ):
            _add(Transform(enc, gcm_id, bits), f"aes{bits}gcm{octets}", f"aes{bits}gcm{octets * 8}")
            _add(Transform(enc, ccm_id, bits), f"aes{bits}ccm{octets}", f"aes{bits}ccm{octets * 8}")
        _add(Transform(enc, EncrId.NULL_AUTH_AES_GMAC, bits), f"aes{bits}gmac")
    _add(Transform(enc, EncrId.CHACHA20_POLY1305), "chacha20poly1305")
    _add(Transform(enc, EncrId.NULL), "null")
    _add(Transform(enc, EncrId.THREE_DES), "3des")
    _add(Transform(enc, EncrId.DES), "des")

    integ = TransformType.INTEG
    for integ_id, names in (
        (IntegId.HMAC_MD5_96, ("md5",)),
        (IntegId.HMAC_SHA1_96, ("sha1", "sha")),
        (IntegId.AES_XCBC_96, ("aesxcbc",)),
        (IntegId.AES_CMAC_96, ("aescmac",)),
        (IntegId.HMAC_SHA1_160, ("sha1_160",)),
        (IntegId.HMAC_SHA2_256_128, ("sha256", "sha2_256")),
        (IntegId.HMAC_SHA2_384_192, ("sha384", "sha2_384")),
        (IntegId.HMAC_SHA2_512_256, ("sha512", "sha2_512")),
    ):
        _add(Transform(integ, integ_id), *names)

    prf = TransformType.PRF
    for prf_id, name in (
        (PrfId.HMAC_MD5, "prfmd5"),
        (PrfId.HMAC_SHA1, "prfsha1"),
        (PrfId.AES128_XCBC, "prfaesxcbc"),
        (PrfId.AES128_CMAC, "prfaescmac"),
        (PrfId.HMAC_SHA2_256, "prfsha256"),
        (PrfId.HMAC_SHA2_384, "prfsha384"),
        (PrfId.HMAC_SHA2_512, "prfsha512"),
    ):
        _add(Transform(prf, prf_id), name)

    dh = TransformType.DH
    for dh_id, names in (
        (DhId.MODP_768, ("modp768",)),
        (DhId.MODP_1024, ("modp1024",)),
        (DhId.MODP_1536, ("modp1536",)),
        (DhId.MODP_2048, ("modp2048",)),
        (DhId.MODP_3072, ("modp3072",)),
        (DhId.MODP_4096, ("modp4096",)),
        (DhId.MODP_6144, ("modp6144",)),
        (DhId.MODP_8192, ("modp8192",)),
        (DhId.ECP_256, ("ecp256",)),
        (DhId.ECP_384, ("ecp384",)),
        (DhId.ECP_521, ("ecp521",)),
        (DhId.CURVE25519, ("x25519", "curve25519")),
        (DhId.CURVE448, ("x448", "curve448")),
    ):
        _add(Transform(dh, dh_id), *names)

    _add(Transform(TransformType.ESN, EsnId.ESN), "esn")
    _add(Transform(TransformType.ESN, EsnId.NO_ESN), "noesn")


_build_table()

# RFC 7296 §3.3.3 pairs each HMAC/AES-MAC integrity algorithm with the PRF on the same
# primitive; strongSwan uses the pairing to fill in a PRF the user did not write.
_PRF_FOR_INTEG: dict[int, int] = {
    IntegId.HMAC_MD5_96: PrfId.HMAC_MD5,
    IntegId.HMAC_SHA1_96: PrfId.HMAC_SHA1,
    IntegId.AES_XCBC_96: PrfId.AES128_XCBC,
    IntegId.AES_CMAC_96: PrfId.AES128_CMAC,
    IntegId.HMAC_SHA2_256_128: PrfId.HMAC_SHA2_256,
    IntegId.HMAC_SHA2_384_192: PrfId.HMAC_SHA2_384,
    IntegId.HMAC_SHA2_512_256: PrfId.HMAC_SHA2_512,
}

_TYPE_ORDER = (
    TransformType.ENCR,
    TransformType.INTEG,
    TransformType.PRF,
    TransformType.DH,
    TransformType.ESN,
)

# Defaults for the ``default`` keyword: strongSwan's choice of modern algorithms,
# limited to the ones pyipsec implements (crypto.algorithms, crypto.prf, crypto.dh).
_DH_DEFAULT = "x25519-ecp256-ecp384-ecp521-modp3072-modp4096-modp2048"
_DEFAULTS: dict[ProtocolId, tuple[str, ...]] = {
    ProtocolId.IKE: (
        f"aes128gcm16-aes256gcm16-chacha20poly1305-prfsha256-prfsha384-prfsha512-{_DH_DEFAULT}",
        f"aes128-aes192-aes256-sha256-sha384-sha512-{_DH_DEFAULT}",
    ),
    ProtocolId.ESP: ("aes128gcm16-aes256gcm16-chacha20poly1305", "aes128-aes256-sha256-sha384"),
    ProtocolId.AH: ("sha256-sha384-sha512",),
}


# -- parsing ---------------------------------------------------------------------------


def lookup_keyword(keyword: str) -> Transform:
    """The transform a single keyword names; ConfigError for an unknown keyword."""
    transform = _KEYWORDS.get(keyword.strip().lower())
    if transform is None:
        raise ConfigError(f"unknown algorithm keyword {keyword!r}")
    return transform


def _unique(items: Iterable[Transform]) -> tuple[Transform, ...]:
    return tuple(dict.fromkeys(items))


def parse_proposal(text: str, protocol: ProtocolId = ProtocolId.IKE) -> tuple[Proposal, ...]:
    """One proposal string -> one proposal (two when AEAD and classic ciphers are mixed)."""
    if protocol not in (ProtocolId.IKE, ProtocolId.ESP, ProtocolId.AH):
        raise ConfigError(f"proposals are for IKE, ESP or AH, not protocol {protocol}")
    words = [w for w in text.strip().lower().split("-")]
    if not text.strip() or any(not w for w in words):
        raise ConfigError(f"empty algorithm keyword in proposal {text!r}")
    by_type: dict[TransformType, list[Transform]] = {t: [] for t in _TYPE_ORDER}
    for word in words:
        transform = _KEYWORDS.get(word)
        if transform is None:
            raise ConfigError(f"unknown algorithm keyword {word!r} in proposal {text!r}")
        by_type[transform.type].append(transform)
    encr = _unique(by_type[TransformType.ENCR])
    integ = _unique(by_type[TransformType.INTEG])
    prf = _unique(by_type[TransformType.PRF])
    dh = _unique(by_type[TransformType.DH])
    esn = _unique(by_type[TransformType.ESN])

    if protocol == ProtocolId.AH:
        if encr or prf:
            raise ConfigError(f"AH proposal {text!r} takes integrity, DH and ESN keywords only")
        if not integ:
            raise ConfigError(f"AH proposal {text!r} needs an integrity algorithm")
        return (Proposal(protocol, integ + dh + (esn or _NO_ESN)),)

    if not encr:
        raise ConfigError(f"proposal {text!r} needs an encryption algorithm")
    aead = tuple(t for t in encr if t.id in _AEAD_IDS)
    classic = tuple(t for t in encr if t.id not in _AEAD_IDS)
    if classic and not integ:
        raise ConfigError(
            f"proposal {text!r} needs an integrity algorithm for {_NAMES[classic[0]]}"
        )
    if integ and not classic:
        # RFC 5282 §8: combined-mode ciphers are proposed without an integrity transform.
        raise ConfigError(f"proposal {text!r} names integrity algorithms but only AEAD ciphers")

    if protocol == ProtocolId.ESP:
        if prf:
            raise ConfigError(f"ESP proposal {text!r} cannot contain a PRF")
        tail = dh + (esn or _NO_ESN)
        out = []
        if aead:
            out.append(Proposal(protocol, aead + tail))
        if classic:
            out.append(Proposal(protocol, classic + integ + tail))
        return tuple(out)

    # IKE
    if esn:
        raise ConfigError(f"IKE proposal {text!r} cannot contain esn/noesn")
    if not dh:
        raise ConfigError(f"IKE proposal {text!r} needs a DH group")
    out = []
    if aead:
        if not prf:
            raise ConfigError(f"IKE proposal {text!r} with an AEAD cipher needs a PRF (prf...)")
        out.append(Proposal(protocol, aead + prf + dh))
    if classic:
        classic_prf = prf or _derived_prfs(integ)
        if not classic_prf:
            raise ConfigError(f"IKE proposal {text!r} needs a PRF")
        out.append(Proposal(protocol, classic + integ + classic_prf + dh))
    return tuple(out)


_NO_ESN = (Transform(TransformType.ESN, EsnId.NO_ESN),)


def _derived_prfs(integ: tuple[Transform, ...]) -> tuple[Transform, ...]:
    return _unique(
        Transform(TransformType.PRF, _PRF_FOR_INTEG[t.id]) for t in integ if t.id in _PRF_FOR_INTEG
    )


def default_proposals(protocol: ProtocolId) -> tuple[Proposal, ...]:
    """What the ``default`` keyword stands for."""
    out: list[Proposal] = []
    for text in _DEFAULTS.get(protocol, ()):
        out.extend(parse_proposal(text, protocol))
    return tuple(out)


def parse_proposals(items: Iterable[str], protocol: ProtocolId) -> tuple[Proposal, ...]:
    """A swanctl ``proposals``/``esp_proposals`` list; ``default`` expands in place."""
    out: list[Proposal] = []
    for item in items:
        if item.strip().lower() == "default":
            out.extend(default_proposals(protocol))
        else:
            out.extend(parse_proposal(item, protocol))
    if not out:
        raise ConfigError("empty proposal list")
    return tuple(dict.fromkeys(out))


# -- formatting ---------------------------------------------------------------------


def transform_name(transform: Transform) -> str:
    """The keyword for one transform, or ``TYPE_ID`` text when it has no keyword."""
    name = _NAMES.get(transform)
    if name is not None:
        return name
    suffix = f"_{transform.key_length}" if transform.key_length is not None else ""
    return f"{TransformType(transform.type).name.lower()}{transform.id}{suffix}"


# Cached: each installed CHILD SA reports its proposal as text, and proposals repeat.
@functools.lru_cache(maxsize=256)
def format_proposal(proposal: Proposal) -> str:
    """Keyword text for status output; parses back to the same proposal.

    A PRF list that equals the one derived from the integrity algorithms is left out,
    and ``noesn`` alone is left out of ESP/AH, as both are what parsing fills in.
    """
    integ = proposal.of_type(TransformType.INTEG)
    prf = proposal.of_type(TransformType.PRF)
    esn = proposal.of_type(TransformType.ESN)
    words: list[str] = []
    for ttype in _TYPE_ORDER:
        transforms = proposal.of_type(ttype)
        if ttype == TransformType.PRF and integ and prf == _derived_prfs(integ):
            continue
        if ttype == TransformType.ESN and esn == _NO_ESN:
            continue
        words.extend(transform_name(t) for t in transforms)
    return "-".join(words)


# -- conversion to and from the SA payload ----------------------------------------------


def to_payload(proposal: Proposal, number: int = 1, spi: bytes = b"") -> payloads.Proposal:
    """The SA payload proposal (RFC 7296 §3.3.1) for ``proposal``."""
    transforms: list[payloads.Transform] = []
    for t in proposal.transforms:
        if t.key_length is not None:
            transforms.append(payloads.Transform.with_key_length(t.type, t.id, t.key_length))
        else:
            transforms.append(payloads.Transform(t.type, t.id))
    return payloads.Proposal(number, proposal.protocol, spi, transforms)


def from_payload(proposal: payloads.Proposal) -> Proposal:
    """Our view of a received proposal; ConfigError for an unknown protocol or type."""
    try:
        protocol = ProtocolId(proposal.protocol_id)
        transforms = tuple(
            Transform(TransformType(t.transform_type), t.transform_id, t.key_length)
            for t in proposal.transforms
        )
    except ValueError as exc:
        raise ConfigError(f"proposal with unknown protocol or transform type: {exc}") from None
    return Proposal(protocol, transforms)
