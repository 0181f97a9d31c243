"""PF_KEY v2 extensions: one frozen dataclass per ``sadb_*`` structure, with its codec.

Layouts are those of ``<linux/pfkeyv2.h>``: every field in host byte order except the SPI,
the ports and the sockaddrs' addresses and flowinfo, in network byte order (RFC 2367
§2.3.1, §2.3.3). PF_KEY is a local socket, so "host order" is the order of this machine;
the structs use ``=`` (native order, no alignment), as the packed C structs do.

Parsing follows net/key/af_key.c (``parse_exthdrs``, ``verify_address_len``,
``verify_key_len``, ``verify_sec_ctx_len``, ``parse_ipsecrequests``,
``parse_sockaddr_pair``): whatever Linux refuses raises ``KeyApiError(EINVAL)``.
Deviations, each because the dataclass could not give the same bytes back, also raise
EINVAL and are marked "stricter than Linux" below: a sensitivity extension whose length
is not its bitmaps', a proposal with a partial ``sadb_comb``, a sockaddr pair longer than
two sockaddrs, trailing bytes after the last ipsecrequest, a filter with a family other
than AF_INET/AF_INET6. Reserved fields and padding are ignored on input and written as
zeros, as the kernel does.

Builders raise ``ConfigError`` for values that do not fit the wire format.

Addresses and sockaddrs live in ``pfkey_address``, policies and their ipsecrequests in
``pfkey_policy``; this module holds the other extensions and dispatches on the type,
and re-exports those names so that ``pfkey_ext`` offers every extension.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import astuple, dataclass, field
from typing import ClassVar, Final, TypeAlias

from pyipsec.errors import ConfigError
from pyipsec.keyapi import pfkey_const as k
from pyipsec.keyapi.pfkey_address import (
    ADDRESS,
    ADDRESS_TYPES,
    FILTER,
    KMADDRESS,
    Address,
    Filter,
    IPAddress,
    KmAddress,
    SockAddr,
    build_address,
    build_filter,
    build_kmaddress,
    parse_address,
    parse_filter,
    parse_kmaddress,
    sockaddr_len,
)
from pyipsec.keyapi.pfkey_policy import (
    POLICY,
    IpsecRequest,
    Policy,
    build_policy,
    parse_policy,
)
from pyipsec.keyapi.pfkey_wire import (
    BE16,
    BE32,
    EXT_HDR,
    align8,
    check_type,
    einval,
    pad8,
    words,
)

__all__ = [
    "ADDRESS_TYPES",
    "FIXED_LEN",
    "IDENTITY_TYPES",
    "KEY_TYPES",
    "LIFETIME_TYPES",
    "MIN_LEN",
    "NAT_T_PORT_TYPES",
    "SUPPORTED_TYPES",
    "Address",
    "Alg",
    "Comb",
    "Extension",
    "Filter",
    "IPAddress",
    "Identity",
    "IpsecRequest",
    "Key",
    "KmAddress",
    "KmPrivate",
    "Lifetime",
    "NatTPort",
    "NatTType",
    "Policy",
    "Proposal",
    "Sa",
    "Sa2",
    "SecCtx",
    "Sensitivity",
    "SockAddr",
    "SpiRange",
    "Supported",
    "UnknownExtension",
    "align8",
    "build_extension",
    "parse_extension",
    "sockaddr_len",
]

# Extension headers, in the order of <linux/pfkeyv2.h>. "x" bytes are reserved fields.
_SA: Final = struct.Struct("=HH4sBBBBI")  # sadb_sa, 16
_LIFETIME: Final = struct.Struct("=HHIQQQ")  # sadb_lifetime, 32
_KEY: Final = struct.Struct("=HHH2x")  # sadb_key, 8
_IDENT: Final = struct.Struct("=HHH2xQ")  # sadb_ident, 16
_SENS: Final = struct.Struct("=HHIBBBB4x")  # sadb_sens, 16
_PROP: Final = struct.Struct("=HHB3x")  # sadb_prop, 8
_COMB: Final = struct.Struct("=BBHHHHH4xIIQQQQQQ")  # sadb_comb, 72
_SUPPORTED: Final = struct.Struct("=HH4x")  # sadb_supported, 8
_ALG: Final = struct.Struct("=BBHH2x")  # sadb_alg, 8
_SPIRANGE: Final = struct.Struct("=HHII4x")  # sadb_spirange, 16
_KMPRIVATE: Final = struct.Struct("=HH4x")  # sadb_x_kmprivate, 8
_SA2: Final = struct.Struct("=HHB3xII")  # sadb_x_sa2, 16
_NAT_T_TYPE: Final = struct.Struct("=HHB3x")  # sadb_x_nat_t_type, 8
_NAT_T_PORT: Final = struct.Struct("=HH2s2x")  # sadb_x_nat_t_port, 8
_SEC_CTX: Final = struct.Struct("=HHBBH")  # sadb_x_sec_ctx, 8

LIFETIME_TYPES: Final = frozenset(
    {k.SADB_EXT_LIFETIME_CURRENT, k.SADB_EXT_LIFETIME_HARD, k.SADB_EXT_LIFETIME_SOFT}
)
KEY_TYPES: Final = frozenset({k.SADB_EXT_KEY_AUTH, k.SADB_EXT_KEY_ENCRYPT})
IDENTITY_TYPES: Final = frozenset({k.SADB_EXT_IDENTITY_SRC, k.SADB_EXT_IDENTITY_DST})
SUPPORTED_TYPES: Final = frozenset({k.SADB_EXT_SUPPORTED_AUTH, k.SADB_EXT_SUPPORTED_ENCRYPT})
NAT_T_PORT_TYPES: Final = frozenset({k.SADB_X_EXT_NAT_T_SPORT, k.SADB_X_EXT_NAT_T_DPORT})


# --- extension dataclasses ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sa:
    """``sadb_sa`` (RFC 2367 §2.3.1). ``spi`` is the SPI as a number."""

    exttype: ClassVar[int] = k.SADB_EXT_SA
    spi: int
    replay: int = 0
    state: int = k.SADB_SASTATE_MATURE
    auth: int = 0
    encrypt: int = 0
    flags: int = 0


@dataclass(frozen=True, slots=True)
class Lifetime:
    """``sadb_lifetime`` (§2.3.2); ``exttype`` is LIFETIME_CURRENT, _HARD or _SOFT."""

    exttype: int
    allocations: int = 0
    nbytes: int = 0
    addtime: int = 0
    usetime: int = 0


@dataclass(frozen=True, slots=True)
class Key:
    """``sadb_key`` (§2.3.4): ``bits`` of key material; the key is never in the repr."""

    exttype: int
    bits: int
    key: bytes = field(repr=False)

    @classmethod
    def of(cls, exttype: int, key: bytes) -> Key:
        return cls(exttype, 8 * len(key), key)


@dataclass(frozen=True, slots=True)
class Identity:
    """``sadb_ident`` (§2.3.5) and its identity string, without the terminating NUL."""

    exttype: int
    ident_type: int
    ident: bytes = b""
    ident_id: int = 0


@dataclass(frozen=True, slots=True)
class Sensitivity:
    """``sadb_sens`` (§2.3.6) with its sensitivity and integrity bitmaps (64-bit words)."""

    exttype: ClassVar[int] = k.SADB_EXT_SENSITIVITY
    dpd: int
    sens_level: int = 0
    integ_level: int = 0
    sens_bitmap: tuple[int, ...] = ()
    integ_bitmap: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Comb:
    """``sadb_comb``: one algorithm combination of a proposal (§2.3.7)."""

    auth: int = 0
    encrypt: int = 0
    flags: int = 0
    auth_minbits: int = 0
    auth_maxbits: int = 0
    encrypt_minbits: int = 0
    encrypt_maxbits: int = 0
    soft_allocations: int = 0
    hard_allocations: int = 0
    soft_bytes: int = 0
    hard_bytes: int = 0
    soft_addtime: int = 0
    hard_addtime: int = 0
    soft_usetime: int = 0
    hard_usetime: int = 0


@dataclass(frozen=True, slots=True)
class Proposal:
    """``sadb_prop`` and its ``sadb_comb`` list (§2.3.7)."""

    exttype: ClassVar[int] = k.SADB_EXT_PROPOSAL
    replay: int
    combs: tuple[Comb, ...] = ()


@dataclass(frozen=True, slots=True)
class Alg:
    """``sadb_alg``: one supported algorithm (§2.3.8)."""

    alg_id: int
    ivlen: int = 0
    minbits: int = 0
    maxbits: int = 0


@dataclass(frozen=True, slots=True)
class Supported:
    """``sadb_supported`` (§2.3.8): SUPPORTED_AUTH or SUPPORTED_ENCRYPT."""

    exttype: int
    algs: tuple[Alg, ...] = ()


@dataclass(frozen=True, slots=True)
class SpiRange:
    """``sadb_spirange`` (§2.3.9), in host order like the kernel reads it."""

    exttype: ClassVar[int] = k.SADB_EXT_SPIRANGE
    spi_min: int
    spi_max: int


@dataclass(frozen=True, slots=True)
class KmPrivate:
    """``sadb_x_kmprivate``: opaque key-manager data, a multiple of 8 bytes."""

    exttype: ClassVar[int] = k.SADB_X_EXT_KMPRIVATE
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class Sa2:
    """``sadb_x_sa2``: mode (IPSEC_MODE_*) and reqid of an SA."""

    exttype: ClassVar[int] = k.SADB_X_EXT_SA2
    mode: int
    reqid: int = 0
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class NatTType:
    """``sadb_x_nat_t_type``: the UDP encapsulation (UDP_ENCAP_ESPINUDP)."""

    exttype: ClassVar[int] = k.SADB_X_EXT_NAT_T_TYPE
    encap_type: int


@dataclass(frozen=True, slots=True)
class NatTPort:
    """``sadb_x_nat_t_port``: X_NAT_T_SPORT or X_NAT_T_DPORT."""

    exttype: int
    port: int


@dataclass(frozen=True, slots=True)
class SecCtx:
    """``sadb_x_sec_ctx``: an LSM security context string."""

    exttype: ClassVar[int] = k.SADB_X_EXT_SEC_CTX
    alg: int
    doi: int
    ctx: bytes = b""


@dataclass(frozen=True, slots=True)
class UnknownExtension:
    """An extension type beyond SADB_EXT_MAX, kept opaque (only with ``strict=False``)."""

    exttype: int
    data: bytes = b""


# The RFC 2367 extensions, then the Linux/KAME ones.
_SadbExtension: TypeAlias = Sa | Lifetime | Address | Key | Identity | Sensitivity | Proposal
_KameExtension: TypeAlias = SpiRange | KmPrivate | Sa2 | Policy | NatTType | NatTPort | SecCtx
Extension: TypeAlias = (
    _SadbExtension | Supported | _KameExtension | KmAddress | Filter | UnknownExtension
)

# --- parsers -----------------------------------------------------------------------
# Each takes the whole extension (header included); its length is a multiple of 8, at
# least MIN_LEN[exttype], and the message checked it fits.


def _parse_sa(exttype: int, ext: memoryview) -> Sa:
    _, _, spi, replay, state, auth, encrypt, flags = _SA.unpack_from(ext)
    return Sa(BE32.unpack(spi)[0], replay, state, auth, encrypt, flags)


def _parse_lifetime(exttype: int, ext: memoryview) -> Lifetime:
    _, _, allocations, nbytes, addtime, usetime = _LIFETIME.unpack_from(ext)
    return Lifetime(exttype, allocations, nbytes, addtime, usetime)


def _parse_key(exttype: int, ext: memoryview) -> Key:
    # af_key.c verify_key_len: the key bits must fit in the extension.
    _, _, bits = _KEY.unpack_from(ext)
    nbytes = (bits + 7) // 8
    if align8(_KEY.size + nbytes) > len(ext):
        raise einval("key bits beyond the key extension")
    return Key(exttype, bits, bytes(ext[_KEY.size : _KEY.size + nbytes]))


def _parse_identity(exttype: int, ext: memoryview) -> Identity:
    # RFC 2367 §2.3.5: a NUL-terminated string padded to 64 bits follows the header.
    _, _, ident_type, ident_id = _IDENT.unpack_from(ext)
    text = bytes(ext[_IDENT.size :])
    end = text.find(0)
    return Identity(exttype, ident_type, text if end < 0 else text[:end], ident_id)


def _parse_sensitivity(exttype: int, ext: memoryview) -> Sensitivity:
    _, _, dpd, sens_level, sens_len, integ_level, integ_len = _SENS.unpack_from(ext)
    if len(ext) != _SENS.size + 8 * (sens_len + integ_len):  # stricter than Linux
        raise einval("sensitivity length does not match its bitmaps")
    bitmaps = ext[_SENS.size :].cast("Q")
    return Sensitivity(
        dpd, sens_level, integ_level, tuple(bitmaps[:sens_len]), tuple(bitmaps[sens_len:])
    )


def _parse_proposal(exttype: int, ext: memoryview) -> Proposal:
    _, _, replay = _PROP.unpack_from(ext)
    if (len(ext) - _PROP.size) % _COMB.size:  # stricter than Linux
        raise einval("proposal holds a partial sadb_comb")
    combs = tuple(Comb(*c) for c in _COMB.iter_unpack(ext[_PROP.size :]))
    return Proposal(replay, combs)


def _parse_supported(exttype: int, ext: memoryview) -> Supported:
    algs = tuple(Alg(*a) for a in _ALG.iter_unpack(ext[_SUPPORTED.size :]))
    return Supported(exttype, algs)


def _parse_spirange(exttype: int, ext: memoryview) -> SpiRange:
    _, _, spi_min, spi_max = _SPIRANGE.unpack_from(ext)
    return SpiRange(spi_min, spi_max)


def _parse_kmprivate(exttype: int, ext: memoryview) -> KmPrivate:
    return KmPrivate(bytes(ext[_KMPRIVATE.size :]))


def _parse_sa2(exttype: int, ext: memoryview) -> Sa2:
    _, _, mode, sequence, reqid = _SA2.unpack_from(ext)
    return Sa2(mode, reqid, sequence)


def _parse_nat_t_type(exttype: int, ext: memoryview) -> NatTType:
    return NatTType(_NAT_T_TYPE.unpack_from(ext)[2])


def _parse_nat_t_port(exttype: int, ext: memoryview) -> NatTPort:
    port: int = BE16.unpack(_NAT_T_PORT.unpack_from(ext)[2])[0]
    return NatTPort(exttype, port)


def _parse_sec_ctx(exttype: int, ext: memoryview) -> SecCtx:
    # af_key.c verify_sec_ctx_len: at most a page, and exactly the padded length.
    _, _, alg, doi, ctx_len = _SEC_CTX.unpack_from(ext)
    if ctx_len > k.SEC_CTX_MAX:
        raise einval("security context longer than a page")
    if len(ext) != align8(_SEC_CTX.size + ctx_len):
        raise einval("security context length does not match the extension")
    return SecCtx(alg, doi, bytes(ext[_SEC_CTX.size : _SEC_CTX.size + ctx_len]))


_Parser: TypeAlias = Callable[[int, memoryview], Extension]

# Each type's parser and, as af_key.c's sadb_ext_min_len, the size of its fixed part.
_TABLE: Final[dict[int, tuple[_Parser, int]]] = {
    k.SADB_EXT_SA: (_parse_sa, _SA.size),
    k.SADB_EXT_LIFETIME_CURRENT: (_parse_lifetime, _LIFETIME.size),
    k.SADB_EXT_LIFETIME_HARD: (_parse_lifetime, _LIFETIME.size),
    k.SADB_EXT_LIFETIME_SOFT: (_parse_lifetime, _LIFETIME.size),
    k.SADB_EXT_ADDRESS_SRC: (parse_address, ADDRESS.size),
    k.SADB_EXT_ADDRESS_DST: (parse_address, ADDRESS.size),
    k.SADB_EXT_ADDRESS_PROXY: (parse_address, ADDRESS.size),
    k.SADB_EXT_KEY_AUTH: (_parse_key, _KEY.size),
    k.SADB_EXT_KEY_ENCRYPT: (_parse_key, _KEY.size),
    k.SADB_EXT_IDENTITY_SRC: (_parse_identity, _IDENT.size),
    k.SADB_EXT_IDENTITY_DST: (_parse_identity, _IDENT.size),
    k.SADB_EXT_SENSITIVITY: (_parse_sensitivity, _SENS.size),
    k.SADB_EXT_PROPOSAL: (_parse_proposal, _PROP.size),
    k.SADB_EXT_SUPPORTED_AUTH: (_parse_supported, _SUPPORTED.size),
    k.SADB_EXT_SUPPORTED_ENCRYPT: (_parse_supported, _SUPPORTED.size),
    k.SADB_EXT_SPIRANGE: (_parse_spirange, _SPIRANGE.size),
    k.SADB_X_EXT_KMPRIVATE: (_parse_kmprivate, _KMPRIVATE.size),
    k.SADB_X_EXT_POLICY: (parse_policy, POLICY.size),
    k.SADB_X_EXT_SA2: (_parse_sa2, _SA2.size),
    k.SADB_X_EXT_NAT_T_TYPE: (_parse_nat_t_type, _NAT_T_TYPE.size),
    k.SADB_X_EXT_NAT_T_SPORT: (_parse_nat_t_port, _NAT_T_PORT.size),
    k.SADB_X_EXT_NAT_T_DPORT: (_parse_nat_t_port, _NAT_T_PORT.size),
    k.SADB_X_EXT_NAT_T_OA: (parse_address, ADDRESS.size),
    k.SADB_X_EXT_SEC_CTX: (_parse_sec_ctx, _SEC_CTX.size),
    k.SADB_X_EXT_KMADDRESS: (parse_kmaddress, KMADDRESS.size),
    k.SADB_X_EXT_FILTER: (parse_filter, FILTER.size),
}
MIN_LEN: Final = {t: size for t, (_, size) in _TABLE.items()}

# Extensions with no variable part. Linux accepts them longer and ignores the tail; a
# strict parse refuses the tail, which no dataclass could give back.
FIXED_LEN: Final[dict[int, int]] = {
    t: MIN_LEN[t]
    for t in (
        k.SADB_EXT_SA,
        k.SADB_EXT_LIFETIME_CURRENT,
        k.SADB_EXT_LIFETIME_HARD,
        k.SADB_EXT_LIFETIME_SOFT,
        k.SADB_EXT_SPIRANGE,
        k.SADB_X_EXT_SA2,
        k.SADB_X_EXT_NAT_T_TYPE,
        k.SADB_X_EXT_NAT_T_SPORT,
        k.SADB_X_EXT_NAT_T_DPORT,
        k.SADB_X_EXT_FILTER,
    )
}


def parse_extension(exttype: int, ext: memoryview, *, strict: bool = True) -> Extension:
    """Decode one extension (header included) whose outer length the caller checked.

    Raises ``KeyApiError(EINVAL)`` as af_key.c's ``parse_exthdrs`` would; an unknown
    type is an error when ``strict`` and an ``UnknownExtension`` otherwise.
    """
    if exttype == 0:
        raise einval("reserved extension type 0")
    if exttype > k.SADB_EXT_MAX:
        if strict:  # Linux skips these; a codec that cannot name them refuses them
            raise einval(f"unknown extension type {exttype}")
        return UnknownExtension(exttype, bytes(ext[EXT_HDR.size :]))
    if len(ext) < MIN_LEN[exttype]:
        raise einval(f"extension {exttype} shorter than its structure")
    fixed = FIXED_LEN.get(exttype)
    if strict and fixed is not None and len(ext) != fixed:
        raise einval(f"extension {exttype} longer than its structure")
    return _TABLE[exttype][0](exttype, ext)


# --- builders ----------------------------------------------------------------------


def _build_sa(e: Sa) -> bytes:
    return _SA.pack(
        words(_SA.size),
        e.exttype,
        BE32.pack(e.spi),
        e.replay,
        e.state,
        e.auth,
        e.encrypt,
        e.flags,
    )


def _build_lifetime(e: Lifetime) -> bytes:
    check_type(e.exttype, LIFETIME_TYPES, "lifetime")
    return _LIFETIME.pack(
        words(_LIFETIME.size), e.exttype, e.allocations, e.nbytes, e.addtime, e.usetime
    )


def _build_key(e: Key) -> bytes:
    check_type(e.exttype, KEY_TYPES, "key")
    if (e.bits + 7) // 8 != len(e.key):
        raise ConfigError("key bits do not match the key length")
    size = align8(_KEY.size + len(e.key))
    return pad8(_KEY.pack(words(size), e.exttype, e.bits) + e.key)


def _build_identity(e: Identity) -> bytes:
    check_type(e.exttype, IDENTITY_TYPES, "identity")
    if 0 in e.ident:
        raise ConfigError("an identity string cannot hold a NUL byte")
    text = pad8(e.ident + b"\0") if e.ident else b""
    size = _IDENT.size + len(text)
    return _IDENT.pack(words(size), e.exttype, e.ident_type, e.ident_id) + text


def _build_sensitivity(e: Sensitivity) -> bytes:
    ns, ni = len(e.sens_bitmap), len(e.integ_bitmap)
    size = _SENS.size + 8 * (ns + ni)
    head = _SENS.pack(words(size), e.exttype, e.dpd, e.sens_level, ns, e.integ_level, ni)
    return head + struct.pack(f"={ns + ni}Q", *e.sens_bitmap, *e.integ_bitmap)


def _build_proposal(e: Proposal) -> bytes:
    size = _PROP.size + _COMB.size * len(e.combs)
    parts = [_PROP.pack(words(size), e.exttype, e.replay)]
    parts += [_COMB.pack(*astuple(comb)) for comb in e.combs]
    return b"".join(parts)


def _build_supported(e: Supported) -> bytes:
    check_type(e.exttype, SUPPORTED_TYPES, "supported")
    size = _SUPPORTED.size + _ALG.size * len(e.algs)
    parts = [_SUPPORTED.pack(words(size), e.exttype)]
    parts += [_ALG.pack(a.alg_id, a.ivlen, a.minbits, a.maxbits) for a in e.algs]
    return b"".join(parts)


def _build_spirange(e: SpiRange) -> bytes:
    return _SPIRANGE.pack(words(_SPIRANGE.size), e.exttype, e.spi_min, e.spi_max)


def _build_kmprivate(e: KmPrivate) -> bytes:
    if len(e.data) % 8:
        raise ConfigError("X_KMPRIVATE data must be a multiple of 8 bytes")
    return _KMPRIVATE.pack(words(_KMPRIVATE.size + len(e.data)), e.exttype) + e.data


def _build_sa2(e: Sa2) -> bytes:
    return _SA2.pack(words(_SA2.size), e.exttype, e.mode, e.sequence, e.reqid)


def _build_nat_t_type(e: NatTType) -> bytes:
    return _NAT_T_TYPE.pack(words(_NAT_T_TYPE.size), e.exttype, e.encap_type)


def _build_nat_t_port(e: NatTPort) -> bytes:
    check_type(e.exttype, NAT_T_PORT_TYPES, "NAT-T port")
    return _NAT_T_PORT.pack(words(_NAT_T_PORT.size), e.exttype, BE16.pack(e.port))


def _build_sec_ctx(e: SecCtx) -> bytes:
    if len(e.ctx) > k.SEC_CTX_MAX:
        raise ConfigError("security context longer than a page")
    size = align8(_SEC_CTX.size + len(e.ctx))
    return pad8(_SEC_CTX.pack(words(size), e.exttype, e.alg, e.doi, len(e.ctx)) + e.ctx)


def _build_unknown(e: UnknownExtension) -> bytes:
    if e.exttype <= k.SADB_EXT_MAX or (EXT_HDR.size + len(e.data)) % 8:
        raise ConfigError("an unknown extension has a type > SADB_EXT_MAX and 8-byte size")
    return EXT_HDR.pack(words(EXT_HDR.size + len(e.data)), e.exttype) + e.data


_BUILDERS: Final[dict[type, Callable[..., bytes]]] = {
    Sa: _build_sa,
    Lifetime: _build_lifetime,
    Address: build_address,
    Key: _build_key,
    Identity: _build_identity,
    Sensitivity: _build_sensitivity,
    Proposal: _build_proposal,
    Supported: _build_supported,
    SpiRange: _build_spirange,
    KmPrivate: _build_kmprivate,
    Sa2: _build_sa2,
    Policy: build_policy,
    NatTType: _build_nat_t_type,
    NatTPort: _build_nat_t_port,
    SecCtx: _build_sec_ctx,
    KmAddress: build_kmaddress,
    Filter: build_filter,
    UnknownExtension: _build_unknown,
}


def build_extension(ext: Extension) -> bytes:
    """Encode one extension; ``ConfigError`` if a value does not fit its field."""
    builder = _BUILDERS.get(type(ext))
    if builder is None:
        raise ConfigError(f"not a PF_KEY extension: {type(ext).__name__}")
    try:
        return builder(ext)
    except struct.error as exc:
        raise ConfigError(f"{type(ext).__name__}: value out of range ({exc})") from None
