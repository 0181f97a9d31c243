"""PF_KEY v2 byte-exactness against an independent encoder: ctypes mirrors of the C structs.

Source of the layouts: Linux ``include/uapi/linux/pfkeyv2.h`` (sizes in its comments),
``include/uapi/linux/ipsec.h``, and ``struct sockaddr_in``/``sockaddr_in6`` of
``<linux/in.h>``/``<linux/in6.h>``. Each message type is built here field by field with
ctypes (as a C program would fill the structs) and compared both ways with the codec:
``build_message(expected) == ctypes bytes`` and ``parse_message(ctypes bytes) == expected``.
The message contents follow what Linux (net/key/af_key.c) and setkey put in each type.
"""

from __future__ import annotations

import ctypes
import socket
from ctypes import c_uint8, c_uint16, c_uint32, c_uint64, sizeof
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from pyipsec.keyapi import pfkey_const as c
from pyipsec.keyapi.pfkey import (
    Address,
    Alg,
    Comb,
    Filter,
    Identity,
    IpsecRequest,
    Key,
    KmAddress,
    KmPrivate,
    Lifetime,
    NatTPort,
    NatTType,
    PfkeyMessage,
    Policy,
    Proposal,
    Sa,
    Sa2,
    SecCtx,
    Sensitivity,
    SockAddr,
    SpiRange,
    Supported,
    build_message,
    check_message,
    parse_message,
)


class Packed(ctypes.Structure):
    _pack_ = 1


class SadbMsg(Packed):
    _fields_ = [
        ("sadb_msg_version", c_uint8),
        ("sadb_msg_type", c_uint8),
        ("sadb_msg_errno", c_uint8),
        ("sadb_msg_satype", c_uint8),
        ("sadb_msg_len", c_uint16),
        ("sadb_msg_reserved", c_uint16),
        ("sadb_msg_seq", c_uint32),
        ("sadb_msg_pid", c_uint32),
    ]


class SadbExt(Packed):
    _fields_ = [("sadb_ext_len", c_uint16), ("sadb_ext_type", c_uint16)]


class SadbSa(Packed):
    _fields_ = [
        ("sadb_sa_len", c_uint16),
        ("sadb_sa_exttype", c_uint16),
        ("sadb_sa_spi", c_uint32),  # __be32
        ("sadb_sa_replay", c_uint8),
        ("sadb_sa_state", c_uint8),
        ("sadb_sa_auth", c_uint8),
        ("sadb_sa_encrypt", c_uint8),
        ("sadb_sa_flags", c_uint32),
    ]


class SadbLifetime(Packed):
    _fields_ = [
        ("sadb_lifetime_len", c_uint16),
        ("sadb_lifetime_exttype", c_uint16),
        ("sadb_lifetime_allocations", c_uint32),
        ("sadb_lifetime_bytes", c_uint64),
        ("sadb_lifetime_addtime", c_uint64),
        ("sadb_lifetime_usetime", c_uint64),
    ]


class SadbAddress(Packed):
    _fields_ = [
        ("sadb_address_len", c_uint16),
        ("sadb_address_exttype", c_uint16),
        ("sadb_address_proto", c_uint8),
        ("sadb_address_prefixlen", c_uint8),
        ("sadb_address_reserved", c_uint16),
    ]


class SadbKey(Packed):
    _fields_ = [
        ("sadb_key_len", c_uint16),
        ("sadb_key_exttype", c_uint16),
        ("sadb_key_bits", c_uint16),
        ("sadb_key_reserved", c_uint16),
    ]


class SadbIdent(Packed):
    _fields_ = [
        ("sadb_ident_len", c_uint16),
        ("sadb_ident_exttype", c_uint16),
        ("sadb_ident_type", c_uint16),
        ("sadb_ident_reserved", c_uint16),
        ("sadb_ident_id", c_uint64),
    ]


class SadbSens(Packed):
    _fields_ = [
        ("sadb_sens_len", c_uint16),
        ("sadb_sens_exttype", c_uint16),
        ("sadb_sens_dpd", c_uint32),
        ("sadb_sens_sens_level", c_uint8),
        ("sadb_sens_sens_len", c_uint8),
        ("sadb_sens_integ_level", c_uint8),
        ("sadb_sens_integ_len", c_uint8),
        ("sadb_sens_reserved", c_uint32),
    ]


class SadbProp(Packed):
    _fields_ = [
        ("sadb_prop_len", c_uint16),
        ("sadb_prop_exttype", c_uint16),
        ("sadb_prop_replay", c_uint8),
        ("sadb_prop_reserved", c_uint8 * 3),
    ]


class SadbComb(Packed):
    _fields_ = [
        ("sadb_comb_auth", c_uint8),
        ("sadb_comb_encrypt", c_uint8),
        ("sadb_comb_flags", c_uint16),
        ("sadb_comb_auth_minbits", c_uint16),
        ("sadb_comb_auth_maxbits", c_uint16),
        ("sadb_comb_encrypt_minbits", c_uint16),
        ("sadb_comb_encrypt_maxbits", c_uint16),
        ("sadb_comb_reserved", c_uint32),
        ("sadb_comb_soft_allocations", c_uint32),
        ("sadb_comb_hard_allocations", c_uint32),
        ("sadb_comb_soft_bytes", c_uint64),
        ("sadb_comb_hard_bytes", c_uint64),
        ("sadb_comb_soft_addtime", c_uint64),
        ("sadb_comb_hard_addtime", c_uint64),
        ("sadb_comb_soft_usetime", c_uint64),
        ("sadb_comb_hard_usetime", c_uint64),
    ]


class SadbSupported(Packed):
    _fields_ = [
        ("sadb_supported_len", c_uint16),
        ("sadb_supported_exttype", c_uint16),
        ("sadb_supported_reserved", c_uint32),
    ]


class SadbAlg(Packed):
    _fields_ = [
        ("sadb_alg_id", c_uint8),
        ("sadb_alg_ivlen", c_uint8),
        ("sadb_alg_minbits", c_uint16),
        ("sadb_alg_maxbits", c_uint16),
        ("sadb_alg_reserved", c_uint16),
    ]


class SadbSpirange(Packed):
    _fields_ = [
        ("sadb_spirange_len", c_uint16),
        ("sadb_spirange_exttype", c_uint16),
        ("sadb_spirange_min", c_uint32),
        ("sadb_spirange_max", c_uint32),
        ("sadb_spirange_reserved", c_uint32),
    ]


class SadbXKmprivate(Packed):
    _fields_ = [
        ("sadb_x_kmprivate_len", c_uint16),
        ("sadb_x_kmprivate_exttype", c_uint16),
        ("sadb_x_kmprivate_reserved", c_uint32),
    ]


class SadbXSa2(Packed):
    _fields_ = [
        ("sadb_x_sa2_len", c_uint16),
        ("sadb_x_sa2_exttype", c_uint16),
        ("sadb_x_sa2_mode", c_uint8),
        ("sadb_x_sa2_reserved1", c_uint8),
        ("sadb_x_sa2_reserved2", c_uint16),
        ("sadb_x_sa2_sequence", c_uint32),
        ("sadb_x_sa2_reqid", c_uint32),
    ]


class SadbXPolicy(Packed):
    _fields_ = [
        ("sadb_x_policy_len", c_uint16),
        ("sadb_x_policy_exttype", c_uint16),
        ("sadb_x_policy_type", c_uint16),
        ("sadb_x_policy_dir", c_uint8),
        ("sadb_x_policy_reserved", c_uint8),
        ("sadb_x_policy_id", c_uint32),
        ("sadb_x_policy_priority", c_uint32),
    ]


class SadbXIpsecrequest(Packed):
    _fields_ = [
        ("sadb_x_ipsecrequest_len", c_uint16),  # in bytes
        ("sadb_x_ipsecrequest_proto", c_uint16),
        ("sadb_x_ipsecrequest_mode", c_uint8),
        ("sadb_x_ipsecrequest_level", c_uint8),
        ("sadb_x_ipsecrequest_reserved1", c_uint16),
        ("sadb_x_ipsecrequest_reqid", c_uint32),
        ("sadb_x_ipsecrequest_reserved2", c_uint32),
    ]


class SadbXNatTType(Packed):
    _fields_ = [
        ("sadb_x_nat_t_type_len", c_uint16),
        ("sadb_x_nat_t_type_exttype", c_uint16),
        ("sadb_x_nat_t_type_type", c_uint8),
        ("sadb_x_nat_t_type_reserved", c_uint8 * 3),
    ]


class SadbXNatTPort(Packed):
    _fields_ = [
        ("sadb_x_nat_t_port_len", c_uint16),
        ("sadb_x_nat_t_port_exttype", c_uint16),
        ("sadb_x_nat_t_port_port", c_uint16),  # __be16
        ("sadb_x_nat_t_port_reserved", c_uint16),
    ]


class SadbXSecCtx(Packed):
    _fields_ = [
        ("sadb_x_sec_len", c_uint16),
        ("sadb_x_sec_exttype", c_uint16),
        ("sadb_x_ctx_alg", c_uint8),
        ("sadb_x_ctx_doi", c_uint8),
        ("sadb_x_ctx_len", c_uint16),
    ]


class SadbXKmaddress(Packed):
    _fields_ = [
        ("sadb_x_kmaddress_len", c_uint16),
        ("sadb_x_kmaddress_exttype", c_uint16),
        ("sadb_x_kmaddress_reserved", c_uint32),
    ]


class SadbXFilter(Packed):
    _fields_ = [
        ("sadb_x_filter_len", c_uint16),
        ("sadb_x_filter_exttype", c_uint16),
        ("sadb_x_filter_saddr", c_uint32 * 4),
        ("sadb_x_filter_daddr", c_uint32 * 4),
        ("sadb_x_filter_family", c_uint16),
        ("sadb_x_filter_splen", c_uint8),
        ("sadb_x_filter_dplen", c_uint8),
    ]


class SockaddrIn(Packed):
    _fields_ = [
        ("sin_family", c_uint16),
        ("sin_port", c_uint16),  # __be16
        ("sin_addr", c_uint8 * 4),
        ("sin_zero", c_uint8 * 8),
    ]


class SockaddrIn6(Packed):
    _fields_ = [
        ("sin6_family", c_uint16),
        ("sin6_port", c_uint16),  # __be16
        ("sin6_flowinfo", c_uint32),  # __be32
        ("sin6_addr", c_uint8 * 16),
        ("sin6_scope_id", c_uint32),
    ]


# The sizes <linux/pfkeyv2.h> states in its comments, and the sockaddrs' from <linux/in*.h>.
SIZES = {
    SadbMsg: 16,
    SadbExt: 4,
    SadbSa: 16,
    SadbLifetime: 32,
    SadbAddress: 8,
    SadbKey: 8,
    SadbIdent: 16,
    SadbSens: 16,
    SadbProp: 8,
    SadbComb: 72,
    SadbSupported: 8,
    SadbAlg: 8,
    SadbSpirange: 16,
    SadbXKmprivate: 8,
    SadbXSa2: 16,
    SadbXPolicy: 16,
    SadbXIpsecrequest: 16,
    SadbXNatTType: 8,
    SadbXNatTPort: 8,
    SadbXSecCtx: 8,
    SadbXKmaddress: 8,
    SadbXFilter: 40,
    SockaddrIn: 16,
    SockaddrIn6: 28,
}


@pytest.mark.parametrize("cls", list(SIZES), ids=lambda cls: cls.__name__)
def test_struct_sizes(cls: type[ctypes.Structure]) -> None:
    assert sizeof(cls) == SIZES[cls]


# --- the independent encoder ---------------------------------------------------------


def pad8(data: bytes) -> bytes:
    return data + bytes(-len(data) % 8)


def words(data: bytes) -> int:
    assert len(data) % 8 == 0
    return len(data) // 8


def c_sockaddr(
    ip: IPv4Address | IPv6Address, port: int = 0, flow: int = 0, scope: int = 0
) -> bytes:
    if isinstance(ip, IPv4Address):
        sin = SockaddrIn(sin_family=2, sin_port=socket.htons(port))
        sin.sin_addr[:] = list(ip.packed)
        return bytes(sin)
    sin6 = SockaddrIn6(
        sin6_family=10,
        sin6_port=socket.htons(port),
        sin6_flowinfo=socket.htonl(flow),
        sin6_scope_id=scope,
    )
    sin6.sin6_addr[:] = list(ip.packed)
    return bytes(sin6)


def c_msg(msg_type: int, satype: int, seq: int, pid: int, *exts: bytes, err: int = 0) -> bytes:
    body = b"".join(exts)
    hdr = SadbMsg(2, msg_type, err, satype, (16 + len(body)) // 8, 0, seq, pid)
    return bytes(hdr) + body


def c_sa(spi: int, replay: int, state: int, auth: int, enc: int, flags: int = 0) -> bytes:
    return bytes(SadbSa(2, c.SADB_EXT_SA, socket.htonl(spi), replay, state, auth, enc, flags))


def c_lifetime(exttype: int, alloc: int, nbytes: int, add: int, use: int) -> bytes:
    return bytes(SadbLifetime(4, exttype, alloc, nbytes, add, use))


def c_address(
    exttype: int, ip: str, prefixlen: int | None = None, proto: int = 0, port: int = 0
) -> bytes:
    addr = ip_address(ip)
    sa = c_sockaddr(addr, port)
    plen = addr.max_prefixlen if prefixlen is None else prefixlen
    size = len(pad8(bytes(8) + sa))
    return pad8(bytes(SadbAddress(size // 8, exttype, proto, plen)) + sa)


def c_key(exttype: int, key: bytes) -> bytes:
    size = len(pad8(bytes(8) + key))
    return pad8(bytes(SadbKey(size // 8, exttype, 8 * len(key))) + key)


def c_ident(exttype: int, ident_type: int, text: bytes, ident_id: int = 0) -> bytes:
    payload = pad8(text + b"\0")
    return bytes(SadbIdent(2 + words(payload), exttype, ident_type, 0, ident_id)) + payload


def c_sens(dpd: int, level: int, bitmap: list[int], integ_level: int, integ: list[int]) -> bytes:
    maps = (c_uint64 * (len(bitmap) + len(integ)))(*bitmap, *integ)
    head = SadbSens(2 + len(bitmap) + len(integ), c.SADB_EXT_SENSITIVITY, dpd, level, len(bitmap))
    head.sadb_sens_integ_level = integ_level
    head.sadb_sens_integ_len = len(integ)
    return bytes(head) + bytes(maps)


def c_comb(auth: int, enc: int, amin: int, amax: int, emin: int, emax: int) -> SadbComb:
    # As af_key.c dump_esp_combs fills them.
    comb = SadbComb(sadb_comb_auth=auth, sadb_comb_encrypt=enc)
    comb.sadb_comb_auth_minbits, comb.sadb_comb_auth_maxbits = amin, amax
    comb.sadb_comb_encrypt_minbits, comb.sadb_comb_encrypt_maxbits = emin, emax
    comb.sadb_comb_hard_addtime, comb.sadb_comb_soft_addtime = 86400, 72000
    comb.sadb_comb_hard_usetime, comb.sadb_comb_soft_usetime = 28800, 25200
    return comb


def c_prop(replay: int, *combs: SadbComb) -> bytes:
    body = b"".join(bytes(x) for x in combs)
    return bytes(SadbProp(1 + words(body), c.SADB_EXT_PROPOSAL, replay)) + body


def c_supported(exttype: int, *algs: tuple[int, int, int, int]) -> bytes:
    body = b"".join(bytes(SadbAlg(*a)) for a in algs)
    return bytes(SadbSupported(1 + words(body), exttype)) + body


def c_request(
    proto: int, mode: int, level: int, reqid: int, ends: tuple[str, str] | None = None
) -> bytes:
    pair = b"" if ends is None else pad8(b"".join(c_sockaddr(ip_address(e)) for e in ends))
    return bytes(SadbXIpsecrequest(16 + len(pair), proto, mode, level, 0, reqid)) + pair


def c_policy(ptype: int, direction: int, pid: int, prio: int, *reqs: bytes) -> bytes:
    body = b"".join(reqs)
    pol = SadbXPolicy(2 + words(body), c.SADB_X_EXT_POLICY, ptype, direction, 0, pid, prio)
    return bytes(pol) + body


def c_kmaddress(local: str, remote: str, reserved: int = 0) -> bytes:
    pair = pad8(c_sockaddr(ip_address(local)) + c_sockaddr(ip_address(remote)))
    return bytes(SadbXKmaddress(1 + words(pair), c.SADB_X_EXT_KMADDRESS, reserved)) + pair


def c_filter(saddr: str, daddr: str, splen: int, dplen: int) -> bytes:
    s, d = ip_address(saddr), ip_address(daddr)
    flt = SadbXFilter(5, c.SADB_X_EXT_FILTER)
    ctypes.memmove(ctypes.addressof(flt.sadb_x_filter_saddr), s.packed, len(s.packed))
    ctypes.memmove(ctypes.addressof(flt.sadb_x_filter_daddr), d.packed, len(d.packed))
    flt.sadb_x_filter_family = 2 if s.version == 4 else 10
    flt.sadb_x_filter_splen, flt.sadb_x_filter_dplen = splen, dplen
    return bytes(flt)


def c_sec_ctx(alg: int, doi: int, ctx: bytes) -> bytes:
    size = len(pad8(bytes(8) + ctx))
    return pad8(bytes(SadbXSecCtx(size // 8, c.SADB_X_EXT_SEC_CTX, alg, doi, len(ctx))) + ctx)


def c_sa2(mode: int, reqid: int) -> bytes:
    return bytes(SadbXSa2(2, c.SADB_X_EXT_SA2, mode, 0, 0, 0, reqid))


def c_nat_t(encap: int, sport: int, dport: int) -> bytes:
    kind = SadbXNatTType(1, c.SADB_X_EXT_NAT_T_TYPE, encap)
    sp = SadbXNatTPort(1, c.SADB_X_EXT_NAT_T_SPORT, socket.htons(sport))
    dp = SadbXNatTPort(1, c.SADB_X_EXT_NAT_T_DPORT, socket.htons(dport))
    return bytes(kind) + bytes(sp) + bytes(dp)


# --- the messages --------------------------------------------------------------------

A4, B4 = "192.0.2.1", "192.0.2.2"
A6, B6 = "2001:db8::1", "2001:db8::2"
NET1, NET2 = "198.51.100.0", "203.0.113.0"
AUTH_KEY = bytes(range(32))
ENC_KEY = bytes(range(100, 116))
SRC, DST = c.SADB_EXT_ADDRESS_SRC, c.SADB_EXT_ADDRESS_DST


def addr(exttype: int, ip: str, plen: int | None = None, proto: int = 0, port: int = 0) -> Address:
    a = ip_address(ip)
    return Address(exttype, a, a.max_prefixlen if plen is None else plen, proto, port)


def sockpair(a: str, b: str) -> tuple[SockAddr, SockAddr]:
    return SockAddr(ip_address(a)), SockAddr(ip_address(b))


ESP_COMB = c_comb(c.SADB_X_AALG_SHA2_256HMAC, c.SADB_X_EALG_AESCBC, 256, 256, 128, 256)
AH_COMB = c_comb(c.SADB_AALG_SHA1HMAC, c.SADB_X_EALG_AESCBC, 160, 160, 128, 256)
COMBS = tuple(
    Comb(
        auth=a,
        encrypt=c.SADB_X_EALG_AESCBC,
        auth_minbits=bits,
        auth_maxbits=bits,
        encrypt_minbits=128,
        encrypt_maxbits=256,
        soft_addtime=72000,
        hard_addtime=86400,
        soft_usetime=25200,
        hard_usetime=28800,
    )
    for a, bits in ((c.SADB_X_AALG_SHA2_256HMAC, 256), (c.SADB_AALG_SHA1HMAC, 160))
)

# (name, bytes from ctypes, the dataclass message, whether a client may send it)
CASES: list[tuple[str, bytes, PfkeyMessage, bool]] = [
    (
        "GETSPI",
        c_msg(
            c.SADB_GETSPI,
            c.SADB_SATYPE_ESP,
            1,
            4242,
            c_sa2(c.IPSEC_MODE_TUNNEL, 7),
            c_address(SRC, A4),
            c_address(DST, B4),
            bytes(SadbSpirange(2, c.SADB_EXT_SPIRANGE, 0x100, 0xFFFF)),
            bytes(SadbXKmprivate(2, c.SADB_X_EXT_KMPRIVATE)) + b"racoon!\0",
        ),
        PfkeyMessage(
            c.SADB_GETSPI,
            c.SADB_SATYPE_ESP,
            1,
            4242,
            extensions=(
                Sa2(c.IPSEC_MODE_TUNNEL, 7),
                addr(SRC, A4),
                addr(DST, B4),
                SpiRange(0x100, 0xFFFF),
                KmPrivate(b"racoon!\0"),
            ),
        ),
        True,
    ),
    (
        "UPDATE",
        c_msg(
            c.SADB_UPDATE,
            c.SADB_SATYPE_ESP,
            2,
            4242,
            c_sa(0xC0FFEE01, 32, c.SADB_SASTATE_MATURE, 5, 12, c.SADB_SAFLAGS_NOECN),
            c_lifetime(c.SADB_EXT_LIFETIME_HARD, 0, 0, 3600, 0),
            c_lifetime(c.SADB_EXT_LIFETIME_SOFT, 0, 0, 3000, 0),
            c_address(SRC, A4),
            c_address(DST, B4),
            c_key(c.SADB_EXT_KEY_AUTH, AUTH_KEY),
            c_key(c.SADB_EXT_KEY_ENCRYPT, ENC_KEY),
            c_sa2(c.IPSEC_MODE_TUNNEL, 7),
            c_nat_t(c.UDP_ENCAP_ESPINUDP, 4500, 4500),
            c_address(c.SADB_X_EXT_NAT_T_OA, "192.0.2.200"),
        ),
        PfkeyMessage(
            c.SADB_UPDATE,
            c.SADB_SATYPE_ESP,
            2,
            4242,
            extensions=(
                Sa(0xC0FFEE01, 32, c.SADB_SASTATE_MATURE, 5, 12, c.SADB_SAFLAGS_NOECN),
                Lifetime(c.SADB_EXT_LIFETIME_HARD, addtime=3600),
                Lifetime(c.SADB_EXT_LIFETIME_SOFT, addtime=3000),
                addr(SRC, A4),
                addr(DST, B4),
                Key.of(c.SADB_EXT_KEY_AUTH, AUTH_KEY),
                Key.of(c.SADB_EXT_KEY_ENCRYPT, ENC_KEY),
                Sa2(c.IPSEC_MODE_TUNNEL, 7),
                NatTType(c.UDP_ENCAP_ESPINUDP),
                NatTPort(c.SADB_X_EXT_NAT_T_SPORT, 4500),
                NatTPort(c.SADB_X_EXT_NAT_T_DPORT, 4500),
                addr(c.SADB_X_EXT_NAT_T_OA, "192.0.2.200"),
            ),
        ),
        True,
    ),
    (
        "ADD-v6",
        c_msg(
            c.SADB_ADD,
            c.SADB_SATYPE_ESP,
            3,
            4242,
            c_sa(0x1001, 64, c.SADB_SASTATE_LARVAL, 0, c.SADB_X_EALG_AES_GCM_ICV16),
            c_address(SRC, A6),
            c_address(DST, B6),
            c_address(c.SADB_EXT_ADDRESS_PROXY, "2001:db8:1::", 48, 6, 80),
            c_key(c.SADB_EXT_KEY_ENCRYPT, ENC_KEY + b"salt"),
            c_ident(c.SADB_EXT_IDENTITY_SRC, c.SADB_IDENTTYPE_FQDN, b"gw1.example.org"),
            c_ident(c.SADB_EXT_IDENTITY_DST, c.SADB_IDENTTYPE_USERFQDN, b"a@example.org", 9),
            c_sens(1, 2, [0xF0F0, 1], 3, [7]),
            c_sec_ctx(1, 1, b"system_u:object_r:ipsec_spd_t:s0"),
        ),
        PfkeyMessage(
            c.SADB_ADD,
            c.SADB_SATYPE_ESP,
            3,
            4242,
            extensions=(
                Sa(0x1001, 64, c.SADB_SASTATE_LARVAL, 0, c.SADB_X_EALG_AES_GCM_ICV16),
                addr(SRC, A6),
                addr(DST, B6),
                addr(c.SADB_EXT_ADDRESS_PROXY, "2001:db8:1::", 48, 6, 80),
                Key.of(c.SADB_EXT_KEY_ENCRYPT, ENC_KEY + b"salt"),
                Identity(c.SADB_EXT_IDENTITY_SRC, c.SADB_IDENTTYPE_FQDN, b"gw1.example.org"),
                Identity(c.SADB_EXT_IDENTITY_DST, c.SADB_IDENTTYPE_USERFQDN, b"a@example.org", 9),
                Sensitivity(1, 2, 3, (0xF0F0, 1), (7,)),
                SecCtx(1, 1, b"system_u:object_r:ipsec_spd_t:s0"),
            ),
        ),
        True,
    ),
    (
        "DELETE",
        c_msg(
            c.SADB_DELETE,
            c.SADB_SATYPE_AH,
            4,
            1,
            c_sa(0x2002, 0, 0, 0, 0),
            c_address(SRC, A4),
            c_address(DST, B4),
        ),
        PfkeyMessage(
            c.SADB_DELETE,
            c.SADB_SATYPE_AH,
            4,
            1,
            extensions=(Sa(0x2002, state=0), addr(SRC, A4), addr(DST, B4)),
        ),
        True,
    ),
    (
        "GET",
        c_msg(
            c.SADB_GET,
            c.SADB_X_SATYPE_IPCOMP,
            5,
            1,
            c_sa(0x3003, 0, 1, 0, c.SADB_X_CALG_DEFLATE),
            c_address(SRC, A6),
            c_address(DST, B6),
        ),
        PfkeyMessage(
            c.SADB_GET,
            c.SADB_X_SATYPE_IPCOMP,
            5,
            1,
            extensions=(
                Sa(0x3003, encrypt=c.SADB_X_CALG_DEFLATE),
                addr(SRC, A6),
                addr(DST, B6),
            ),
        ),
        True,
    ),
    (
        "ACQUIRE",  # af_key.c pfkey_send_acquire
        c_msg(
            c.SADB_ACQUIRE,
            c.SADB_SATYPE_ESP,
            77,
            0,
            c_address(SRC, A4),
            c_address(DST, B4),
            c_policy(c.IPSEC_POLICY_IPSEC, c.IPSEC_DIR_OUTBOUND, 0x209, 0),
            c_prop(32, ESP_COMB, AH_COMB),
        ),
        PfkeyMessage(
            c.SADB_ACQUIRE,
            c.SADB_SATYPE_ESP,
            77,
            0,
            extensions=(
                addr(SRC, A4),
                addr(DST, B4),
                Policy(c.IPSEC_POLICY_IPSEC, c.IPSEC_DIR_OUTBOUND, 0x209),
                Proposal(32, COMBS),
            ),
        ),
        False,
    ),
    (
        "REGISTER",  # the kernel's answer (compose_sadb_supported)
        c_msg(
            c.SADB_REGISTER,
            c.SADB_SATYPE_ESP,
            6,
            4242,
            c_supported(c.SADB_EXT_SUPPORTED_AUTH, (3, 0, 160, 160), (5, 0, 256, 256)),
            c_supported(c.SADB_EXT_SUPPORTED_ENCRYPT, (12, 16, 128, 256), (20, 8, 160, 288)),
        ),
        PfkeyMessage(
            c.SADB_REGISTER,
            c.SADB_SATYPE_ESP,
            6,
            4242,
            extensions=(
                Supported(c.SADB_EXT_SUPPORTED_AUTH, (Alg(3, 0, 160, 160), Alg(5, 0, 256, 256))),
                Supported(
                    c.SADB_EXT_SUPPORTED_ENCRYPT, (Alg(12, 16, 128, 256), Alg(20, 8, 160, 288))
                ),
            ),
        ),
        True,
    ),
    (
        "EXPIRE",  # af_key.c key_notify_sa_expire, soft
        c_msg(
            c.SADB_EXPIRE,
            c.SADB_SATYPE_ESP,
            0,
            0,
            c_sa(0xC0FFEE01, 32, c.SADB_SASTATE_DYING, 5, 12),
            c_lifetime(c.SADB_EXT_LIFETIME_SOFT, 0, 0, 3000, 0),
            c_lifetime(c.SADB_EXT_LIFETIME_CURRENT, 12, 3400, 1_700_000_000, 1_700_000_100),
            c_address(SRC, A4),
            c_address(DST, B4),
            c_sa2(c.IPSEC_MODE_TRANSPORT, 0),
        ),
        PfkeyMessage(
            c.SADB_EXPIRE,
            c.SADB_SATYPE_ESP,
            extensions=(
                Sa(0xC0FFEE01, 32, c.SADB_SASTATE_DYING, 5, 12),
                Lifetime(c.SADB_EXT_LIFETIME_SOFT, addtime=3000),
                Lifetime(c.SADB_EXT_LIFETIME_CURRENT, 12, 3400, 1_700_000_000, 1_700_000_100),
                addr(SRC, A4),
                addr(DST, B4),
                Sa2(c.IPSEC_MODE_TRANSPORT),
            ),
        ),
        False,
    ),
    (
        "FLUSH",
        c_msg(c.SADB_FLUSH, c.SADB_SATYPE_UNSPEC, 8, 4242),
        PfkeyMessage(c.SADB_FLUSH, c.SADB_SATYPE_UNSPEC, 8, 4242),
        True,
    ),
    (
        "DUMP",
        c_msg(c.SADB_DUMP, c.SADB_SATYPE_ESP, 9, 4242, c_filter(A4, NET1, 32, 24)),
        PfkeyMessage(
            c.SADB_DUMP,
            c.SADB_SATYPE_ESP,
            9,
            4242,
            extensions=(Filter(ip_address(A4), ip_address(NET1), 32, 24),),
        ),
        True,
    ),
    (
        "DUMP-v6-filter",
        c_msg(c.SADB_DUMP, c.SADB_SATYPE_ESP, 9, 4242, c_filter(A6, B6, 64, 127)),
        PfkeyMessage(
            c.SADB_DUMP,
            c.SADB_SATYPE_ESP,
            9,
            4242,
            extensions=(Filter(ip_address(A6), ip_address(B6), 64, 127),),
        ),
        True,
    ),
    (
        "X_PROMISC",
        c_msg(c.SADB_X_PROMISC, 1, 10, 4242),
        PfkeyMessage(c.SADB_X_PROMISC, 1, 10, 4242),
        True,
    ),
    (
        "X_PCHANGE",
        c_msg(
            c.SADB_X_PCHANGE,
            0,
            11,
            0,
            c_policy(c.IPSEC_POLICY_NONE, c.IPSEC_DIR_INBOUND, 0x10, 0),
        ),
        PfkeyMessage(
            c.SADB_X_PCHANGE,
            0,
            11,
            extensions=(Policy(c.IPSEC_POLICY_NONE, c.IPSEC_DIR_INBOUND, 0x10),),
        ),
        False,
    ),
    (
        "X_SPDUPDATE",  # spdupdate 2001:db8:1::/48[any] 2001:db8:2::/48[443] tcp -P out ...
        c_msg(
            c.SADB_X_SPDUPDATE,
            0,
            12,
            4242,
            c_address(SRC, "2001:db8:1::", 48, 6, 0),
            c_address(DST, "2001:db8:2::", 48, 6, 443),
            c_policy(
                c.IPSEC_POLICY_IPSEC,
                c.IPSEC_DIR_OUTBOUND,
                0,
                0x80000000,
                c_request(c.IPPROTO_ESP, c.IPSEC_MODE_TUNNEL, c.IPSEC_LEVEL_UNIQUE, 42, (A6, B6)),
            ),
        ),
        PfkeyMessage(
            c.SADB_X_SPDUPDATE,
            0,
            12,
            4242,
            extensions=(
                addr(SRC, "2001:db8:1::", 48, 6),
                addr(DST, "2001:db8:2::", 48, 6, 443),
                Policy(
                    c.IPSEC_POLICY_IPSEC,
                    c.IPSEC_DIR_OUTBOUND,
                    0,
                    0x80000000,
                    (IpsecRequest(50, 2, c.IPSEC_LEVEL_UNIQUE, 42, *sockpair(A6, B6)),),
                ),
            ),
        ),
        True,
    ),
    (
        # spdadd NET1/24 NET2/24 any -P out ipsec ipcomp/transport//use esp/tunnel/A-B/require
        "X_SPDADD",
        c_msg(
            c.SADB_X_SPDADD,
            0,
            13,
            4242,
            c_address(SRC, NET1, 24, 255),
            c_address(DST, NET2, 24, 255),
            c_policy(
                c.IPSEC_POLICY_IPSEC,
                c.IPSEC_DIR_OUTBOUND,
                0,
                0,
                c_request(c.IPPROTO_COMP, c.IPSEC_MODE_TRANSPORT, c.IPSEC_LEVEL_USE, 0),
                c_request(c.IPPROTO_ESP, c.IPSEC_MODE_TUNNEL, c.IPSEC_LEVEL_REQUIRE, 0, (A4, B4)),
            ),
        ),
        PfkeyMessage(
            c.SADB_X_SPDADD,
            0,
            13,
            4242,
            extensions=(
                addr(SRC, NET1, 24, 255),
                addr(DST, NET2, 24, 255),
                Policy(
                    c.IPSEC_POLICY_IPSEC,
                    c.IPSEC_DIR_OUTBOUND,
                    requests=(
                        IpsecRequest(108, 1, c.IPSEC_LEVEL_USE),
                        IpsecRequest(50, 2, c.IPSEC_LEVEL_REQUIRE, 0, *sockpair(A4, B4)),
                    ),
                ),
            ),
        ),
        True,
    ),
    (
        "X_SPDDELETE",
        c_msg(
            c.SADB_X_SPDDELETE,
            0,
            14,
            4242,
            c_address(SRC, NET1, 24, 255),
            c_address(DST, NET2, 24, 255),
            c_policy(c.IPSEC_POLICY_DISCARD, c.IPSEC_DIR_FWD, 0, 0),
        ),
        PfkeyMessage(
            c.SADB_X_SPDDELETE,
            0,
            14,
            4242,
            extensions=(
                addr(SRC, NET1, 24, 255),
                addr(DST, NET2, 24, 255),
                Policy(c.IPSEC_POLICY_DISCARD, c.IPSEC_DIR_FWD),
            ),
        ),
        True,
    ),
    (
        "X_SPDGET",
        c_msg(c.SADB_X_SPDGET, 0, 15, 4242, c_policy(0, 0, 0x211, 0)),
        PfkeyMessage(c.SADB_X_SPDGET, 0, 15, 4242, extensions=(Policy(0, 0, 0x211),)),
        True,
    ),
    (
        "X_SPDACQUIRE",
        c_msg(c.SADB_X_SPDACQUIRE, 0, 16, 0, c_policy(2, 2, 0x219, 100)),
        PfkeyMessage(c.SADB_X_SPDACQUIRE, 0, 16, extensions=(Policy(2, 2, 0x219, 100),)),
        False,
    ),
    (
        "X_SPDDUMP",
        c_msg(c.SADB_X_SPDDUMP, 0, 17, 4242),
        PfkeyMessage(c.SADB_X_SPDDUMP, 0, 17, 4242),
        True,
    ),
    (
        "X_SPDFLUSH",
        c_msg(c.SADB_X_SPDFLUSH, 0, 18, 4242),
        PfkeyMessage(c.SADB_X_SPDFLUSH, 0, 18, 4242),
        True,
    ),
    (
        "X_SPDSETIDX",
        c_msg(
            c.SADB_X_SPDSETIDX,
            0,
            19,
            4242,
            c_address(SRC, A4, 32, 17, 500),
            c_address(DST, B4, 32, 17, 500),
            c_policy(c.IPSEC_POLICY_NONE, c.IPSEC_DIR_INBOUND, 0, 0),
        ),
        PfkeyMessage(
            c.SADB_X_SPDSETIDX,
            0,
            19,
            4242,
            extensions=(
                addr(SRC, A4, 32, 17, 500),
                addr(DST, B4, 32, 17, 500),
                Policy(c.IPSEC_POLICY_NONE, c.IPSEC_DIR_INBOUND),
            ),
        ),
        True,
    ),
    (
        "X_SPDEXPIRE",
        c_msg(
            c.SADB_X_SPDEXPIRE,
            0,
            0,
            0,
            c_address(SRC, NET1, 24, 255),
            c_address(DST, NET2, 24, 255),
            c_lifetime(c.SADB_EXT_LIFETIME_CURRENT, 0, 0, 1_700_000_000, 0),
            c_lifetime(c.SADB_EXT_LIFETIME_HARD, 0, 0, 600, 0),
            c_policy(2, 2, 0x221, 0),
        ),
        PfkeyMessage(
            c.SADB_X_SPDEXPIRE,
            extensions=(
                addr(SRC, NET1, 24, 255),
                addr(DST, NET2, 24, 255),
                Lifetime(c.SADB_EXT_LIFETIME_CURRENT, addtime=1_700_000_000),
                Lifetime(c.SADB_EXT_LIFETIME_HARD, addtime=600),
                Policy(2, 2, 0x221),
            ),
        ),
        False,
    ),
    (
        "X_SPDDELETE2",
        c_msg(c.SADB_X_SPDDELETE2, 0, 21, 4242, c_policy(0, 0, 0x228, 0)),
        PfkeyMessage(c.SADB_X_SPDDELETE2, 0, 21, 4242, extensions=(Policy(0, 0, 0x228),)),
        True,
    ),
    (
        "X_NAT_T_NEW_MAPPING",  # af_key.c pfkey_send_new_mapping's order
        c_msg(
            c.SADB_X_NAT_T_NEW_MAPPING,
            c.SADB_SATYPE_ESP,
            22,
            0,
            c_sa(0xC0FFEE01, 0, 0, 0, 0),
            c_address(SRC, A4),
            bytes(SadbXNatTPort(1, c.SADB_X_EXT_NAT_T_SPORT, socket.htons(4500))),
            c_address(DST, "192.0.2.129"),
            bytes(SadbXNatTPort(1, c.SADB_X_EXT_NAT_T_DPORT, socket.htons(61000))),
        ),
        PfkeyMessage(
            c.SADB_X_NAT_T_NEW_MAPPING,
            c.SADB_SATYPE_ESP,
            22,
            extensions=(
                Sa(0xC0FFEE01, state=0),
                addr(SRC, A4),
                NatTPort(c.SADB_X_EXT_NAT_T_SPORT, 4500),
                addr(DST, "192.0.2.129"),
                NatTPort(c.SADB_X_EXT_NAT_T_DPORT, 61000),
            ),
        ),
        False,
    ),
    (
        "X_MIGRATE",  # af_key.c pfkey_send_migrate's layout: old and new request per bundle
        c_msg(
            c.SADB_X_MIGRATE,
            c.SADB_SATYPE_ESP,
            23,
            0,
            c_kmaddress(A4, "192.0.2.10", 1),
            c_address(SRC, NET1, 24, 0),
            c_address(DST, NET2, 24, 0),
            c_policy(
                c.IPSEC_POLICY_IPSEC,
                c.IPSEC_DIR_OUTBOUND,
                0,
                0,
                c_request(50, 2, c.IPSEC_LEVEL_UNIQUE, 9, (A4, B4)),
                c_request(50, 2, c.IPSEC_LEVEL_UNIQUE, 9, ("192.0.2.10", B4)),
            ),
        ),
        PfkeyMessage(
            c.SADB_X_MIGRATE,
            c.SADB_SATYPE_ESP,
            23,
            extensions=(
                KmAddress(*sockpair(A4, "192.0.2.10"), reserved=1),
                addr(SRC, NET1, 24),
                addr(DST, NET2, 24),
                Policy(
                    c.IPSEC_POLICY_IPSEC,
                    c.IPSEC_DIR_OUTBOUND,
                    requests=(
                        IpsecRequest(50, 2, c.IPSEC_LEVEL_UNIQUE, 9, *sockpair(A4, B4)),
                        IpsecRequest(50, 2, c.IPSEC_LEVEL_UNIQUE, 9, *sockpair("192.0.2.10", B4)),
                    ),
                ),
            ),
        ),
        True,
    ),
    (
        "X_MIGRATE-v6-kmaddress",
        c_msg(c.SADB_X_MIGRATE, 0, 24, 0, c_kmaddress(A6, B6)),
        PfkeyMessage(c.SADB_X_MIGRATE, 0, 24, extensions=(KmAddress(*sockpair(A6, B6)),)),
        False,  # (no selector: a client's MIGRATE would be refused)
    ),
]


def test_every_message_type_has_a_case() -> None:
    covered = {msg.msg_type for _, _, msg, _ in CASES}
    assert covered == set(range(1, c.SADB_MAX + 1))
    exts = {ext.exttype for _, _, msg, _ in CASES for ext in msg.extensions}
    assert exts == set(range(1, c.SADB_EXT_MAX + 1))


@pytest.mark.parametrize(
    ("wire", "msg"), [(w, m) for _, w, m, _ in CASES], ids=[n for n, *_ in CASES]
)
def test_build_matches_ctypes(wire: bytes, msg: PfkeyMessage) -> None:
    assert build_message(msg).hex() == wire.hex()


@pytest.mark.parametrize(
    ("wire", "msg"), [(w, m) for _, w, m, _ in CASES], ids=[n for n, *_ in CASES]
)
def test_parse_of_ctypes_bytes(wire: bytes, msg: PfkeyMessage) -> None:
    assert parse_message(wire) == msg


@pytest.mark.parametrize(
    "msg", [m for _, _, m, client in CASES if client], ids=[n for n, _, _, cl in CASES if cl]
)
def test_client_messages_pass_the_kernel_checks(msg: PfkeyMessage) -> None:
    check_message(msg)


def test_header_fields_are_host_order_and_spi_network_order() -> None:
    # The SPI and ports are the only multi-byte big-endian fields (RFC 2367 §2.3.1).
    wire = build_message(PfkeyMessage(c.SADB_GET, 3, 0x01020304, extensions=(Sa(0xA1B2C3D4),)))
    hdr = SadbMsg.from_buffer_copy(wire)
    assert (hdr.sadb_msg_seq, hdr.sadb_msg_len) == (0x01020304, 4)
    sa = SadbSa.from_buffer_copy(wire, 16)
    assert socket.ntohl(sa.sadb_sa_spi) == 0xA1B2C3D4
    assert wire[20:24] == bytes.fromhex("a1b2c3d4")
