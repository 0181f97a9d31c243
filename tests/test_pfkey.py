"""PF_KEY v2 codec: round trips, the kernel's parse errors, builder errors, handler checks.

The modules under test are pyipsec.keyapi.pfkey, pfkey_ext and pfkey_const; byte-exact
comparison with the C layouts is in test_pfkey_golden.py, random bytes in test_pfkey_fuzz.py.
"""

from __future__ import annotations

import errno
import struct
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pfkey_helpers import V4A, V4B, V6A, V6B, sadb_msg
from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.keyapi import pfkey_const as c
from pyipsec.keyapi.pfkey import (
    Address,
    Alg,
    Comb,
    Extension,
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
    UnknownExtension,
    build_message,
    check_message,
    parse_message,
    required_extensions,
    split_messages,
)

SRC = Address.host(c.SADB_EXT_ADDRESS_SRC, V4A)
DST = Address.host(c.SADB_EXT_ADDRESS_DST, V4B)

# --- strategies ----------------------------------------------------------------------

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 2**64 - 1)
v4 = st.builds(IPv4Address, u32)
v6 = st.builds(IPv6Address, st.integers(0, 2**128 - 1))


@st.composite
def sockaddrs(draw: st.DrawFn, version: int | None = None) -> SockAddr:
    if version is None:
        version = draw(st.sampled_from([4, 6]))
    if version == 4:
        return SockAddr(draw(v4), draw(u16))
    return SockAddr(draw(v6), draw(u16), draw(u32), draw(u32))


@st.composite
def sockaddr_pairs(draw: st.DrawFn) -> tuple[SockAddr, SockAddr]:
    version = draw(st.sampled_from([4, 6]))
    return draw(sockaddrs(version)), draw(sockaddrs(version))


@st.composite
def addresses(draw: st.DrawFn, exttype: int) -> Address:
    sa = draw(sockaddrs())
    prefixlen = draw(st.integers(0, sa.addr.max_prefixlen))
    return Address(exttype, sa.addr, prefixlen, draw(u8), sa.port, sa.flowinfo, sa.scope_id)


@st.composite
def keys(draw: st.DrawFn, exttype: int) -> Key:
    key = draw(st.binary(max_size=64))
    bits = 8 * len(key) - (draw(st.integers(0, 7)) if key else 0)
    return Key(exttype, bits, key)


@st.composite
def requests(draw: st.DrawFn) -> IpsecRequest:
    pair = draw(st.none() | sockaddr_pairs())
    src, dst = pair if pair is not None else (None, None)
    return IpsecRequest(draw(u16), draw(u8), draw(u8), draw(u32), src, dst)


@st.composite
def filters(draw: st.DrawFn) -> Filter:
    addr = draw(st.sampled_from([v4, v6]))
    return Filter(draw(addr), draw(addr), draw(u8), draw(u8))


def _ext_strategy(t: int) -> st.SearchStrategy[Extension]:
    if t == c.SADB_EXT_SA:
        return st.builds(Sa, u32, u8, u8, u8, u8, u32)
    if t in (c.SADB_EXT_LIFETIME_CURRENT, c.SADB_EXT_LIFETIME_HARD, c.SADB_EXT_LIFETIME_SOFT):
        return st.builds(Lifetime, st.just(t), u32, u64, u64, u64)
    if t in (
        c.SADB_EXT_ADDRESS_SRC,
        c.SADB_EXT_ADDRESS_DST,
        c.SADB_EXT_ADDRESS_PROXY,
        c.SADB_X_EXT_NAT_T_OA,
    ):
        return addresses(t)
    if t in (c.SADB_EXT_KEY_AUTH, c.SADB_EXT_KEY_ENCRYPT):
        return keys(t)
    if t in (c.SADB_EXT_IDENTITY_SRC, c.SADB_EXT_IDENTITY_DST):
        text = st.binary(max_size=40).map(lambda b: b.replace(b"\0", b"x"))
        return st.builds(Identity, st.just(t), u16, text, u64)
    if t == c.SADB_EXT_SENSITIVITY:
        bitmap = st.lists(u64, max_size=4).map(tuple)
        return st.builds(Sensitivity, u32, u8, u8, bitmap, bitmap)
    if t == c.SADB_EXT_PROPOSAL:
        comb = st.builds(Comb, u8, u8, u16, u16, u16, u16, u16, u32, u32, u64, u64, u64)
        return st.builds(Proposal, u8, st.lists(comb, max_size=3).map(tuple))
    if t in (c.SADB_EXT_SUPPORTED_AUTH, c.SADB_EXT_SUPPORTED_ENCRYPT):
        alg = st.builds(Alg, u8, u8, u16, u16)
        return st.builds(Supported, st.just(t), st.lists(alg, max_size=5).map(tuple))
    if t == c.SADB_EXT_SPIRANGE:
        return st.builds(SpiRange, u32, u32)
    if t == c.SADB_X_EXT_KMPRIVATE:
        return st.builds(
            KmPrivate,
            st.integers(0, 4).flatmap(lambda n: st.binary(min_size=8 * n, max_size=8 * n)),
        )
    if t == c.SADB_X_EXT_POLICY:
        reqs = st.lists(requests(), max_size=4).map(tuple)
        return st.builds(Policy, u16, u8, u32, u32, reqs)
    if t == c.SADB_X_EXT_SA2:
        return st.builds(Sa2, u8, u32, u32)
    if t == c.SADB_X_EXT_NAT_T_TYPE:
        return st.builds(NatTType, u8)
    if t in (c.SADB_X_EXT_NAT_T_SPORT, c.SADB_X_EXT_NAT_T_DPORT):
        return st.builds(NatTPort, st.just(t), u16)
    if t == c.SADB_X_EXT_SEC_CTX:
        return st.builds(SecCtx, u8, u8, st.binary(max_size=100))
    if t == c.SADB_X_EXT_KMADDRESS:
        return sockaddr_pairs().flatmap(
            lambda p: st.builds(KmAddress, st.just(p[0]), st.just(p[1]), u32)
        )
    if t == c.SADB_X_EXT_FILTER:
        return filters()
    raise AssertionError(t)


ALL_EXTTYPES = list(range(1, c.SADB_EXT_MAX + 1))


@st.composite
def messages(draw: st.DrawFn) -> PfkeyMessage:
    types = draw(st.lists(st.sampled_from(ALL_EXTTYPES), unique=True, max_size=10))
    exts = tuple(draw(_ext_strategy(t)) for t in types)
    return PfkeyMessage(
        draw(st.integers(1, c.SADB_MAX)), draw(u8), draw(u32), draw(u32), draw(u8), exts
    )


# --- round trips ---------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(messages())
def test_round_trip(msg: PfkeyMessage) -> None:
    wire = build_message(msg)
    assert len(wire) % 8 == 0
    assert struct.unpack_from("=H", wire, 4)[0] * 8 == len(wire)
    back = parse_message(wire)
    assert back == msg
    assert build_message(back) == wire


@pytest.mark.parametrize("t", ALL_EXTTYPES)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_each_extension_round_trips(t: int, data: st.DataObject) -> None:
    ext = data.draw(_ext_strategy(t))
    msg = PfkeyMessage(c.SADB_DUMP, extensions=(ext,))
    back = parse_message(memoryview(bytearray(build_message(msg))))
    assert back.extensions == (ext,)
    assert back.get(t) == ext and back.has(t)


def test_accessors_find_each_extension() -> None:
    exts: dict[str, Extension] = {
        "sa": Sa(1),
        "lifetime_current": Lifetime(c.SADB_EXT_LIFETIME_CURRENT),
        "lifetime_hard": Lifetime(c.SADB_EXT_LIFETIME_HARD),
        "lifetime_soft": Lifetime(c.SADB_EXT_LIFETIME_SOFT),
        "src": SRC,
        "dst": DST,
        "proxy": Address.host(c.SADB_EXT_ADDRESS_PROXY, V4A),
        "key_auth": Key.of(c.SADB_EXT_KEY_AUTH, b"k" * 20),
        "key_encrypt": Key.of(c.SADB_EXT_KEY_ENCRYPT, b"e" * 16),
        "identity_src": Identity(c.SADB_EXT_IDENTITY_SRC, c.SADB_IDENTTYPE_FQDN, b"a"),
        "identity_dst": Identity(c.SADB_EXT_IDENTITY_DST, c.SADB_IDENTTYPE_FQDN, b"b"),
        "sensitivity": Sensitivity(1),
        "proposal": Proposal(32),
        "supported_auth": Supported(c.SADB_EXT_SUPPORTED_AUTH),
        "supported_encrypt": Supported(c.SADB_EXT_SUPPORTED_ENCRYPT),
        "spirange": SpiRange(1, 2),
        "kmprivate": KmPrivate(),
        "policy": Policy(c.IPSEC_POLICY_NONE, c.IPSEC_DIR_INBOUND),
        "sa2": Sa2(c.IPSEC_MODE_TUNNEL),
        "nat_t_type": NatTType(c.UDP_ENCAP_ESPINUDP),
        "nat_t_sport": NatTPort(c.SADB_X_EXT_NAT_T_SPORT, 4500),
        "nat_t_dport": NatTPort(c.SADB_X_EXT_NAT_T_DPORT, 4501),
        "nat_t_oa": Address.host(c.SADB_X_EXT_NAT_T_OA, V4B),
        "sec_ctx": SecCtx(1, 1, b"ctx"),
        "kmaddress": KmAddress(SockAddr(V4A), SockAddr(V4B)),
        "filter": Filter(V4A, V4B, 24, 24),
    }
    msg = parse_message(build_message(PfkeyMessage(c.SADB_DUMP, extensions=tuple(exts.values()))))
    assert len(msg.exttypes) == c.SADB_EXT_MAX
    for name, ext in exts.items():
        assert getattr(msg, name) == ext, name
    empty = PfkeyMessage(c.SADB_DUMP)
    assert all(getattr(empty, name) is None for name in exts)


def test_address_helpers() -> None:
    a = Address.host(c.SADB_EXT_ADDRESS_DST, "2001:db8::5", port=500, proto=17)
    assert (a.prefixlen, a.port, a.proto, a.family) == (128, 500, 17, c.AF_INET6)
    assert a.sockaddr == SockAddr(V6A.__class__("2001:db8::5"), 500)
    assert SRC.family == c.AF_INET and SRC.prefixlen == 32
    assert Filter(V6A, V6B, 64, 64).family == c.AF_INET6


def test_key_material_never_in_repr() -> None:
    secret = bytes.fromhex("5ec2e75ec2e75ec2e75ec2e75ec2e75e")
    key = Key.of(c.SADB_EXT_KEY_ENCRYPT, secret)
    text = repr(PfkeyMessage(c.SADB_ADD, extensions=(key,)))
    assert "bits=128" in text
    assert secret.hex() not in text and repr(secret) not in text


def test_identity_is_nul_terminated_and_padded() -> None:
    ident = Identity(c.SADB_EXT_IDENTITY_SRC, c.SADB_IDENTTYPE_FQDN, b"12345678")
    wire = build_message(PfkeyMessage(c.SADB_ADD, extensions=(ident,)))
    # 16-byte sadb_ident, then the 8 characters, the NUL and 7 bytes of padding.
    assert len(wire) == 16 + 16 + 16
    assert wire[32:48] == b"12345678" + bytes(8)
    assert parse_message(wire).identity_src == ident


def test_reply_to_echoes_the_request_header() -> None:
    req = PfkeyMessage(c.SADB_GETSPI, c.SADB_SATYPE_ESP, seq=41, pid=1234, extensions=(SRC, DST))
    reply = PfkeyMessage.reply_to(req, Sa(0x1000, state=c.SADB_SASTATE_LARVAL), SRC, DST)
    assert (reply.msg_type, reply.satype, reply.seq, reply.pid, reply.errno) == (
        c.SADB_GETSPI,
        c.SADB_SATYPE_ESP,
        41,
        1234,
        0,
    )
    assert reply.sa == Sa(0x1000, state=c.SADB_SASTATE_LARVAL)
    err = PfkeyMessage.reply_to(req, errno=errno.ENOENT)
    assert build_message(err) == sadb_msg(1, 2, errno=errno.ENOENT, seq=41, pid=1234)


def test_split_messages() -> None:
    one = PfkeyMessage(c.SADB_DUMP, c.SADB_SATYPE_ESP, seq=1, extensions=(Sa(5), SRC, DST))
    two = PfkeyMessage(c.SADB_DUMP, c.SADB_SATYPE_ESP, seq=0)
    wire = build_message(one) + build_message(two)
    assert split_messages(wire) == [one, two]
    assert split_messages(b"") == []
    for bad in (wire[:-8], wire + bytes(8), wire + b"\x02"):
        with pytest.raises(KeyApiError) as exc:
            split_messages(bad)
        assert exc.value.errno == errno.EMSGSIZE


def test_satype_proto_maps() -> None:
    assert c.satype_to_proto(c.SADB_SATYPE_ESP) == c.IPPROTO_ESP
    assert c.satype_to_proto(c.SADB_SATYPE_UNSPEC) == c.IPSEC_PROTO_ANY
    assert c.satype_to_proto(c.SADB_SATYPE_RSVP) == 0
    assert c.proto_to_satype(c.IPPROTO_COMP) == c.SADB_X_SATYPE_IPCOMP
    assert c.proto_to_satype(6) == c.SADB_SATYPE_UNSPEC
    assert c.MESSAGE_NAMES[c.SADB_X_MIGRATE] == "X_MIGRATE"
    assert len(c.EXTENSION_NAMES) == c.SADB_EXT_MAX


# --- parse errors (the kernel's) -----------------------------------------------------


def header(
    msg_type: int = c.SADB_DUMP, words: int = 2, version: int = 2, reserved: int = 0
) -> bytes:
    return sadb_msg(msg_type, words, version=version, reserved=reserved)


def with_ext(ext: bytes, msg_type: int = c.SADB_DUMP) -> bytes:
    return header(msg_type, 2 + len(ext) // 8) + ext


def expect(buf: bytes, code: int = errno.EINVAL, *, strict: bool = True) -> None:
    with pytest.raises(KeyApiError) as exc:
        parse_message(buf, strict=strict)
    assert exc.value.errno == code, exc.value


def ext_bytes(ext: Extension) -> bytes:
    return build_message(PfkeyMessage(c.SADB_DUMP, extensions=(ext,)))[16:]


def test_header_errors() -> None:
    expect(b"", errno.EMSGSIZE)
    expect(header()[:15], errno.EMSGSIZE)
    expect(header(version=1))
    expect(header(reserved=1))
    expect(header(msg_type=0))
    expect(header(msg_type=c.SADB_MAX + 1))
    expect(header(words=3), errno.EMSGSIZE)
    expect(header(words=1), errno.EMSGSIZE)  # shorter than sadb_msg itself
    expect(header(words=0), errno.EMSGSIZE)
    expect(header() + bytes(8), errno.EMSGSIZE)
    # Fewer than 8 extra bytes: the word count matches, the extension walk fails.
    for extra in range(1, 8):
        expect(header() + bytes(extra), errno.EINVAL)
    assert parse_message(header()) == PfkeyMessage(c.SADB_DUMP, 3, 1, 2)


def test_nonzero_reserved_accepted_when_not_strict() -> None:
    msg = parse_message(header(reserved=3), strict=False)
    assert msg.reserved == 3
    assert build_message(msg) == header(reserved=3)


def test_extension_walk_errors() -> None:
    expect(with_ext(struct.pack("=HH4x", 0, c.SADB_EXT_SA)))  # length 0
    expect(with_ext(struct.pack("=HH4x", 2, c.SADB_EXT_SA)))  # runs past the message
    expect(with_ext(struct.pack("=HH4x", 1, 0)))  # reserved type
    sa = ext_bytes(Sa(1))
    expect(with_ext(sa + sa))  # duplicate
    expect(with_ext(struct.pack("=HH4x", 1, c.SADB_EXT_SA)))  # shorter than sadb_sa


def test_unknown_extension_type() -> None:
    unknown = struct.pack("=HH", 2, 99) + bytes(range(12))
    expect(with_ext(unknown))
    msg = parse_message(with_ext(unknown + unknown), strict=False)
    assert msg.extensions == (UnknownExtension(99, bytes(range(12))),) * 2
    assert build_message(msg) == with_ext(unknown + unknown)


def test_fixed_extension_longer_than_its_struct() -> None:
    long_sa = struct.pack("=HH", 3, c.SADB_EXT_SA) + ext_bytes(Sa(7))[4:] + bytes(8)
    expect(with_ext(long_sa))
    assert parse_message(with_ext(long_sa), strict=False).sa == Sa(7)


def test_address_errors() -> None:
    good = ext_bytes(SRC)
    assert len(good) == 24
    expect(with_ext(struct.pack("=HHBBH", 1, c.SADB_EXT_ADDRESS_SRC, 0, 32, 0)))  # no sockaddr
    expect(with_ext(good[:8] + struct.pack("=H", 1) + good[10:]))  # AF_UNIX
    expect(with_ext(good[:5] + bytes([33]) + good[6:]))  # /33
    expect(with_ext(struct.pack("=H", 4) + good[2:] + bytes(8)))  # IPv4 in 32 bytes
    v6 = ext_bytes(Address.host(c.SADB_EXT_ADDRESS_DST, V6A))
    assert len(v6) == 40
    expect(with_ext(v6[:5] + bytes([129]) + v6[6:]))
    expect(with_ext(struct.pack("=H", 4) + v6[2:32]))  # truncated sockaddr_in6
    ok = with_ext(v6[:5] + bytes([64]) + v6[6:])
    assert parse_message(ok).dst == Address(c.SADB_EXT_ADDRESS_DST, V6A, 64)


def test_key_errors() -> None:
    key = ext_bytes(Key.of(c.SADB_EXT_KEY_AUTH, bytes(8)))
    assert len(key) == 16
    expect(with_ext(key[:4] + struct.pack("=H", 65) + key[6:]))  # 65 bits in 8 bytes
    assert parse_message(with_ext(key[:4] + struct.pack("=H", 64) + key[6:]))
    # Linux lets the key extension be longer than the key (the padding is ignored).
    longer = struct.pack("=H", 3) + key[2:] + b"\xff" * 8
    assert parse_message(with_ext(longer)).key_auth == Key.of(c.SADB_EXT_KEY_AUTH, bytes(8))


def test_sec_ctx_errors() -> None:
    ctx = ext_bytes(SecCtx(1, 1, b"abc"))
    expect(with_ext(ctx[:6] + struct.pack("=H", 9) + ctx[8:]))  # 9 bytes need 3 words
    huge = struct.pack("=HHBBH", 514, c.SADB_X_EXT_SEC_CTX, 1, 1, 4097) + bytes(4104)
    expect(with_ext(huge))
    page = struct.pack("=HHBBH", 513, c.SADB_X_EXT_SEC_CTX, 1, 1, 4096) + bytes(4096)
    assert parse_message(with_ext(page)).sec_ctx == SecCtx(1, 1, bytes(4096))


def policy_ext(*reqs: bytes, extra: bytes = b"") -> bytes:
    body = b"".join(reqs) + extra
    return struct.pack("=HHHBxII", 2 + len(body) // 8, c.SADB_X_EXT_POLICY, 2, 2, 0, 0) + body


def request(rq_len: int, pair: bytes = b"", mode: int = 2) -> bytes:
    return struct.pack("=HHBB2xI4x", rq_len, 50, mode, 2, 0) + pair


def test_policy_errors() -> None:
    pair = ext_bytes(KmAddress(SockAddr(V4A), SockAddr(V4B)))[8:]
    assert len(pair) == 32
    assert parse_message(with_ext(policy_ext(request(48, pair)))).policy is not None
    expect(with_ext(policy_ext(request(8), extra=bytes(8))))  # rq shorter than its struct
    expect(with_ext(policy_ext(request(56, pair))))  # rq past its policy
    expect(with_ext(policy_ext(request(24, pair[:8]))))  # pair truncated
    mixed = pair[:16] + struct.pack("=H", 10) + pair[18:]
    expect(with_ext(policy_ext(request(48, mixed))))
    expect(with_ext(policy_ext(request(48, struct.pack("=H", 1) + pair[2:]))))
    expect(with_ext(policy_ext(request(16), extra=bytes(8))))  # trailing bytes


def test_other_variable_extension_errors() -> None:
    sens = ext_bytes(Sensitivity(1, 0, 0, (1,), ()))
    expect(with_ext(sens[:9] + bytes([2]) + sens[10:]))  # says 2 words, holds 1
    prop = ext_bytes(Proposal(32, (Comb(),)))
    expect(with_ext(struct.pack("=H", 11) + prop[2:] + bytes(8)))  # partial sadb_comb
    flt = ext_bytes(Filter(V4A, V4B, 24, 24))
    expect(with_ext(flt[:36] + struct.pack("=H", 7) + flt[38:]))
    kma = ext_bytes(KmAddress(SockAddr(V6A), SockAddr(V6B)))
    expect(with_ext(struct.pack("=H", len(kma) // 8 - 1) + kma[2:-8]))  # pair cut short


# --- builder errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    "ext",
    [
        Sa(2**32),
        Sa(1, replay=256),
        Lifetime(c.SADB_EXT_SA),
        Lifetime(c.SADB_EXT_LIFETIME_HARD, nbytes=2**64),
        Address(c.SADB_EXT_ADDRESS_SRC, V4A, 33),
        Address(c.SADB_EXT_ADDRESS_SRC, V4A, -1),
        Address(c.SADB_EXT_SA, V4A, 32),
        Address(c.SADB_EXT_ADDRESS_SRC, V4A, 32, flowinfo=1),
        Address(c.SADB_EXT_ADDRESS_SRC, "192.0.2.1", 32),  # type: ignore[arg-type]
        Address(c.SADB_EXT_ADDRESS_SRC, V4A, 32, port=65536),
        Key(c.SADB_EXT_KEY_AUTH, 100, bytes(8)),
        Key(c.SADB_EXT_IDENTITY_SRC, 64, bytes(8)),
        Identity(c.SADB_EXT_IDENTITY_SRC, 2, b"a\0b"),
        Identity(c.SADB_EXT_KEY_AUTH, 2, b"ab"),
        Sensitivity(1, 0, 0, (2**64,)),
        Proposal(256),
        Supported(c.SADB_EXT_PROPOSAL),
        KmPrivate(b"1234567"),
        Policy(2, 2, requests=(IpsecRequest(50, 2, 2, 0, SockAddr(V4A), None),)),
        Policy(2, 2, requests=(IpsecRequest(50, 2, 2, 0, SockAddr(V4A), SockAddr(V6A)),)),
        NatTPort(c.SADB_X_EXT_NAT_T_SPORT, 70000),
        NatTPort(c.SADB_X_EXT_NAT_T_TYPE, 4500),
        SecCtx(1, 1, bytes(4097)),
        KmAddress(SockAddr(V6A), SockAddr(V4A)),
        Filter(V4A, V6A, 1, 1),
        UnknownExtension(5, bytes(4)),
        UnknownExtension(99, bytes(5)),
    ],
)
def test_builder_refuses(ext: Extension) -> None:
    with pytest.raises(ConfigError):
        build_message(PfkeyMessage(c.SADB_ADD, extensions=(ext,)))


def test_builder_refuses_message_errors() -> None:
    with pytest.raises(ConfigError):
        build_message(PfkeyMessage(c.SADB_ADD, extensions=(Sa(1), Sa(2))))
    with pytest.raises(ConfigError):
        build_message(PfkeyMessage(c.SADB_ADD, seq=2**32))
    with pytest.raises(ConfigError):  # 65536 words do not fit sadb_msg_len
        build_message(PfkeyMessage(c.SADB_ADD, extensions=(KmPrivate(bytes(8 * 65534)),)))
    with pytest.raises(ConfigError):
        build_message(PfkeyMessage(c.SADB_ADD, extensions=("sa",)))  # type: ignore[arg-type]


# --- the handlers' checks ------------------------------------------------------------

ESP_KEY = Key.of(c.SADB_EXT_KEY_ENCRYPT, bytes(16))
AUTH_KEY = Key.of(c.SADB_EXT_KEY_AUTH, bytes(32))
ESP_SA = Sa(0x1000, auth=c.SADB_X_AALG_SHA2_256HMAC, encrypt=c.SADB_X_EALG_AESCBC)


def add(*exts: Extension, satype: int = c.SADB_SATYPE_ESP, t: int = c.SADB_ADD) -> PfkeyMessage:
    return PfkeyMessage(t, satype, extensions=exts)


def refused(msg: PfkeyMessage, code: int = errno.EINVAL) -> None:
    with pytest.raises(KeyApiError) as exc:
        check_message(msg)
    assert exc.value.errno == code, exc.value


def test_required_extensions() -> None:
    sa_id = {c.SADB_EXT_SA, c.SADB_EXT_ADDRESS_SRC, c.SADB_EXT_ADDRESS_DST}
    assert required_extensions(c.SADB_ADD, c.SADB_SATYPE_ESP) == sa_id | {c.SADB_EXT_KEY_ENCRYPT}
    assert required_extensions(c.SADB_UPDATE, c.SADB_SATYPE_AH) == sa_id | {c.SADB_EXT_KEY_AUTH}
    assert required_extensions(c.SADB_DELETE) == sa_id
    assert required_extensions(c.SADB_GETSPI) == {c.SADB_EXT_ADDRESS_SRC, c.SADB_EXT_ADDRESS_DST}
    assert required_extensions(c.SADB_X_SPDGET) == {c.SADB_X_EXT_POLICY}
    assert c.SADB_X_EXT_POLICY in required_extensions(c.SADB_X_MIGRATE)
    assert required_extensions(c.SADB_FLUSH) == frozenset()


def test_add_checks() -> None:
    check_message(add(ESP_SA, SRC, DST, AUTH_KEY, ESP_KEY))
    refused(add(SRC, DST, ESP_KEY))  # no SA
    refused(add(ESP_SA, SRC, ESP_KEY))  # no destination
    refused(add(ESP_SA, SRC, DST, AUTH_KEY))  # ESP without an encryption key
    refused(add(Sa(1, auth=c.SADB_X_AALG_SHA2_256HMAC), SRC, DST, satype=c.SADB_SATYPE_AH))
    check_message(add(Sa(1, auth=2), SRC, DST, AUTH_KEY, satype=c.SADB_SATYPE_AH))
    v6dst = Address.host(c.SADB_EXT_ADDRESS_DST, V6B)
    refused(add(ESP_SA, SRC, v6dst, ESP_KEY))
    hard = Lifetime(c.SADB_EXT_LIFETIME_HARD, addtime=60)
    refused(add(ESP_SA, SRC, DST, ESP_KEY, hard))
    check_message(add(ESP_SA, SRC, DST, ESP_KEY, hard, Lifetime(c.SADB_EXT_LIFETIME_SOFT)))
    refused(add(ESP_SA, SRC, DST, ESP_KEY, satype=c.SADB_SATYPE_RSVP))
    refused(add(Sa(1, auth=252, encrypt=12), SRC, DST, ESP_KEY))
    refused(add(Sa(1, encrypt=254), SRC, DST, ESP_KEY))
    refused(add(Sa(1, encrypt=5), SRC, DST, satype=c.SADB_X_SATYPE_IPCOMP))
    check_message(add(Sa(1, encrypt=c.SADB_X_CALG_DEFLATE), SRC, DST, satype=9))
    refused(add(Sa(1, encrypt=12), SRC, DST, Key(c.SADB_EXT_KEY_ENCRYPT, 0, b"")))
    check_message(add(Sa(1, encrypt=c.SADB_EALG_NULL), SRC, DST, Key(9, 0, b"")))
    refused(add(Sa(1, auth=2, encrypt=12), SRC, DST, ESP_KEY, Key(8, 0, b"")))
    check_message(
        add(Sa(1, auth=c.SADB_X_AALG_NULL, encrypt=12), SRC, DST, ESP_KEY, Key(8, 0, b""))
    )
    refused(add(ESP_SA, SRC, DST, ESP_KEY, Sa2(4), t=c.SADB_UPDATE))
    check_message(add(ESP_SA, SRC, DST, ESP_KEY, Sa2(c.IPSEC_MODE_BEET), t=c.SADB_UPDATE))


def test_sa_lookup_and_table_checks() -> None:
    check_message(add(Sa(1), SRC, DST, t=c.SADB_DELETE))
    refused(add(SRC, DST, t=c.SADB_GET))
    refused(add(ESP_SA, SRC, Address.host(c.SADB_EXT_ADDRESS_DST, V6A), t=c.SADB_DELETE))
    check_message(add(satype=c.SADB_SATYPE_UNSPEC, t=c.SADB_FLUSH))
    refused(add(satype=c.SADB_SATYPE_MIP, t=c.SADB_FLUSH))
    refused(add(satype=c.SADB_SATYPE_MIP, t=c.SADB_DUMP))
    check_message(add(Filter(V4A, V4B, 127, 0), t=c.SADB_DUMP))
    refused(add(Filter(V4A, V4B, 128, 0), t=c.SADB_DUMP))
    check_message(add(satype=c.SADB_SATYPE_MAX, t=c.SADB_REGISTER))
    refused(add(satype=c.SADB_SATYPE_MAX + 1, t=c.SADB_REGISTER))
    check_message(add(satype=1, t=c.SADB_X_PROMISC))
    refused(add(satype=2, t=c.SADB_X_PROMISC))
    check_message(add(Sa(1), satype=2, t=c.SADB_X_PROMISC))  # a message to relay
    check_message(PfkeyMessage(c.SADB_ACQUIRE, 3, seq=5, errno=errno.ENOENT))
    refused(add(SRC, t=c.SADB_ACQUIRE), errno.EOPNOTSUPP)
    for t in (c.SADB_EXPIRE, c.SADB_X_PCHANGE, c.SADB_X_SPDACQUIRE, c.SADB_X_SPDEXPIRE, 23):
        refused(add(t=t), errno.EOPNOTSUPP)


def test_getspi_checks() -> None:
    check_message(add(SRC, DST, t=c.SADB_GETSPI))
    check_message(add(SRC, DST, SpiRange(0x100, 0x100), t=c.SADB_GETSPI))
    refused(add(SRC, DST, SpiRange(0x200, 0x100), t=c.SADB_GETSPI))
    refused(add(SRC, t=c.SADB_GETSPI))
    refused(add(SRC, DST, satype=c.SADB_SATYPE_UNSPEC, t=c.SADB_GETSPI))
    refused(add(SRC, DST, satype=c.SADB_SATYPE_RIPV2, t=c.SADB_GETSPI))
    # An IPCOMP CPI has 16 bits; the default range (up to 0x0fffffff) is too wide.
    refused(add(SRC, DST, satype=c.SADB_X_SATYPE_IPCOMP, t=c.SADB_GETSPI))
    check_message(add(SRC, DST, SpiRange(0x100, 0xFFFF), satype=9, t=c.SADB_GETSPI))
    refused(add(SRC, DST, Sa2(7), t=c.SADB_GETSPI))


def tunnel(
    proto: int = c.IPPROTO_ESP, mode: int = c.IPSEC_MODE_TUNNEL, reqid: int = 0
) -> IpsecRequest:
    return IpsecRequest(proto, mode, c.IPSEC_LEVEL_REQUIRE, reqid, SockAddr(V4A), SockAddr(V4B))


def spd(pol: Policy, t: int = c.SADB_X_SPDADD, *extra: Extension) -> PfkeyMessage:
    return PfkeyMessage(t, c.SADB_SATYPE_UNSPEC, extensions=(SRC, DST, pol, *extra))


def test_spd_checks() -> None:
    out = c.IPSEC_DIR_OUTBOUND
    check_message(spd(Policy(c.IPSEC_POLICY_IPSEC, out, requests=(tunnel(),))))
    check_message(spd(Policy(c.IPSEC_POLICY_DISCARD, c.IPSEC_DIR_FWD), c.SADB_X_SPDUPDATE))
    refused(PfkeyMessage(c.SADB_X_SPDADD, extensions=(SRC, DST)))
    refused(spd(Policy(c.IPSEC_POLICY_ENTRUST, out)))
    refused(spd(Policy(c.IPSEC_POLICY_NONE, c.IPSEC_DIR_ANY)))
    refused(spd(Policy(c.IPSEC_POLICY_NONE, c.IPSEC_DIR_MAX), c.SADB_X_SPDSETIDX))
    refused(spd(Policy(2, out, requests=(tunnel(mode=0),))))
    refused(spd(Policy(2, out, requests=(tunnel(mode=4),))))
    refused(spd(Policy(2, out, requests=(tunnel(proto=6),))))
    check_message(spd(Policy(2, out, requests=(tunnel(proto=c.IPPROTO_COMP),))))
    bare = IpsecRequest(c.IPPROTO_ESP, c.IPSEC_MODE_TUNNEL, c.IPSEC_LEVEL_REQUIRE)
    refused(spd(Policy(2, out, requests=(bare,))))
    transport = IpsecRequest(c.IPPROTO_ESP, c.IPSEC_MODE_TRANSPORT, c.IPSEC_LEVEL_USE)
    check_message(spd(Policy(2, out, requests=(transport,) * c.XFRM_MAX_DEPTH)))
    refused(spd(Policy(2, out, requests=(transport,) * 7)), errno.ELOOP)
    # Requests of a policy that is not IPSEC are not looked at.
    check_message(spd(Policy(c.IPSEC_POLICY_NONE, out, requests=(bare,))))
    refused(spd(Policy(0, 0), c.SADB_X_SPDDELETE))
    check_message(spd(Policy(0, c.IPSEC_DIR_INBOUND), c.SADB_X_SPDDELETE))
    get = PfkeyMessage(c.SADB_X_SPDGET, extensions=(Policy(0, 0, policy_id=0x101),))
    check_message(get)
    refused(PfkeyMessage(c.SADB_X_SPDDELETE2, extensions=(Policy(0, 0, policy_id=0x103),)))
    refused(PfkeyMessage(c.SADB_X_SPDGET))
    check_message(PfkeyMessage(c.SADB_X_SPDDUMP))
    check_message(PfkeyMessage(c.SADB_X_SPDFLUSH))


def test_migrate_checks() -> None:
    old, new = tunnel(reqid=5), IpsecRequest(50, 2, 2, 5, SockAddr(V4B), SockAddr(V4A))
    kma = KmAddress(SockAddr(V4A), SockAddr(V4B))
    check_message(spd(Policy(2, 2, requests=(old, new)), c.SADB_X_MIGRATE, kma))
    check_message(spd(Policy(2, 0, requests=(old, new)), c.SADB_X_MIGRATE))
    refused(spd(Policy(2, 4, requests=(old, new)), c.SADB_X_MIGRATE))
    refused(spd(Policy(2, 2), c.SADB_X_MIGRATE))
    refused(spd(Policy(2, 2, requests=(old,)), c.SADB_X_MIGRATE))
    refused(spd(Policy(2, 2, requests=(old, tunnel(reqid=6))), c.SADB_X_MIGRATE))
    bare = IpsecRequest(50, 2, 2, 5)
    refused(spd(Policy(2, 2, requests=(old, bare)), c.SADB_X_MIGRATE))
    refused(spd(Policy(2, 2, requests=(tunnel(mode=5), tunnel(mode=5))), c.SADB_X_MIGRATE))
    refused(spd(Policy(2, 2, requests=(old, new) * 7), c.SADB_X_MIGRATE))
