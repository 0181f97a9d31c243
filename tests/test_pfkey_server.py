"""keyapi/pfkey_server: RFC 2367 §3 dispatch onto the engine with Linux's replies, errnos
and broadcast rules. Peers are in-memory stand-ins for io.control.Connection; the wire
path over a real socket is in test_pfkey_e2e.py."""

from __future__ import annotations

import errno
from ipaddress import ip_address
from typing import Any

import pytest
from scapy.layers.inet import IP, UDP

from pyipsec.engine.lifetime import Lifetime as EngineLifetime
from pyipsec.engine.processor import Engine
from pyipsec.engine.sad import SASpec
from pyipsec.engine.spd import Policy, Selector, Template
from pyipsec.keyapi import pfkey_const as c
from pyipsec.keyapi.pfkey import (
    Address,
    IpsecRequest,
    Key,
    Lifetime,
    PfkeyMessage,
    Sa,
    Sa2,
    SecCtx,
    SockAddr,
    SpiRange,
    build_message,
    parse_message,
)
from pyipsec.keyapi.pfkey import (
    Policy as PolicyExt,
)
from pyipsec.keyapi.pfkey_server import PfkeyServer, client_state

LOCAL, PEER = "192.0.2.1", "192.0.2.2"
AES_KEY = bytes(range(16))
SHA_KEY = bytes(range(32, 64))


class FakePeer:
    """What PfkeyServer needs of io.control.Connection: ``state`` and ``send``."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        self.inbox: list[bytes] = []

    def send(self, data: bytes, *, droppable: bool = False) -> bool:
        self.inbox.append(data)
        return True

    def take(self) -> list[PfkeyMessage]:
        out = [parse_message(d, strict=False) for d in self.inbox]
        self.inbox.clear()
        return out


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def world() -> tuple[Engine, PfkeyServer, Clock, list[FakePeer]]:
    engine = Engine(local_addresses=[LOCAL])
    clock = Clock()
    server = PfkeyServer(
        engine, now=clock, wall=lambda: 1_700_000_000.0 + clock.t, drain_events=True
    )
    peers = [FakePeer() for _ in range(3)]
    server.attach(lambda: peers)
    return engine, server, clock, peers


def host(exttype: int, addr: str, proto: int = c.IPSEC_ULPROTO_ANY, port: int = 0) -> Address:
    a = ip_address(addr)
    return Address(exttype, a, a.max_prefixlen, proto, port)


def add_msg(
    spi: int,
    src: str = LOCAL,
    dst: str = PEER,
    *,
    msg_type: int = c.SADB_ADD,
    seq: int = 7,
    pid: int = 4242,
    encrypt: int = c.SADB_X_EALG_AESCBC,
    ekey: bytes = AES_KEY,
    auth: int = c.SADB_X_AALG_SHA2_256HMAC,
    akey: bytes = SHA_KEY,
    satype: int = c.SADB_SATYPE_ESP,
    mode: int = c.IPSEC_MODE_TUNNEL,
    extra: tuple[Any, ...] = (),
) -> bytes:
    exts: list[Any] = [
        Sa(spi, 32, c.SADB_SASTATE_MATURE, auth, encrypt),
        Sa2(mode, 0),
        host(c.SADB_EXT_ADDRESS_SRC, src),
        host(c.SADB_EXT_ADDRESS_DST, dst),
    ]
    if akey:
        exts.append(Key.of(c.SADB_EXT_KEY_AUTH, akey))
    if ekey:
        exts.append(Key.of(c.SADB_EXT_KEY_ENCRYPT, ekey))
    exts.extend(extra)
    return build_message(PfkeyMessage(msg_type, satype, seq, pid, 0, tuple(exts)))


def bare(msg_type: int, satype: int = 0, seq: int = 1, pid: int = 99) -> bytes:
    return build_message(PfkeyMessage(msg_type, satype, seq, pid))


def sa_id_msg(msg_type: int, spi: int, dst: str = PEER, seq: int = 3) -> bytes:
    exts = (Sa(spi), host(c.SADB_EXT_ADDRESS_SRC, LOCAL), host(c.SADB_EXT_ADDRESS_DST, dst))
    return build_message(PfkeyMessage(msg_type, c.SADB_SATYPE_ESP, seq, 5, 0, exts))


def spd_msg(
    msg_type: int,
    src: str = "198.51.100.0",
    dst: str = "203.0.113.0",
    plen: int = 24,
    *,
    direction: int = c.IPSEC_DIR_OUTBOUND,
    ptype: int = c.IPSEC_POLICY_IPSEC,
    proto: int = c.IPSEC_ULPROTO_ANY,
    sport: int = 0,
    dport: int = 0,
    requests: tuple[IpsecRequest, ...] | None = None,
    seq: int = 11,
    extra: tuple[Any, ...] = (),
) -> bytes:
    if requests is None:
        requests = (
            IpsecRequest(
                c.IPPROTO_ESP,
                c.IPSEC_MODE_TUNNEL,
                c.IPSEC_LEVEL_REQUIRE,
                0,
                SockAddr(ip_address(LOCAL)),
                SockAddr(ip_address(PEER)),
            ),
        )
    exts = (
        Address(c.SADB_EXT_ADDRESS_SRC, ip_address(src), plen, proto, sport),
        Address(c.SADB_EXT_ADDRESS_DST, ip_address(dst), plen, proto, dport),
        PolicyExt(ptype, direction, 0, 0, requests if ptype == c.IPSEC_POLICY_IPSEC else ()),
        *extra,
    )
    return build_message(PfkeyMessage(msg_type, 0, seq, 77, 0, exts))


# --- REGISTER, PROMISC -----------------------------------------------------------------


def test_register_returns_supported_and_reaches_registered_sockets(world: Any) -> None:
    _, server, _, (a, b, other) = world
    server.handle(bare(c.SADB_REGISTER, c.SADB_SATYPE_ESP, seq=5, pid=10), a)
    (reply,) = a.take()
    assert (reply.msg_type, reply.satype, reply.seq, reply.pid, reply.errno) == (
        c.SADB_REGISTER,
        c.SADB_SATYPE_ESP,
        5,
        10,
        0,
    )
    enc = reply.supported_encrypt
    auth = reply.supported_auth
    assert enc is not None and auth is not None
    ids = {alg.alg_id for alg in enc.algs}
    assert {c.SADB_X_EALG_AESCBC, c.SADB_X_EALG_AES_GCM_ICV16, 249} <= ids
    aes = next(alg for alg in enc.algs if alg.alg_id == c.SADB_X_EALG_AESCBC)
    assert (aes.minbits, aes.maxbits) == (128, 256)
    assert c.SADB_X_AALG_SHA2_256HMAC in {alg.alg_id for alg in auth.algs}
    assert client_state(a).registered == {c.SADB_SATYPE_ESP}
    # A second socket registers: the first (registered) sees it, the third does not.
    server.handle(bare(c.SADB_REGISTER, c.SADB_SATYPE_AH, seq=6), b)
    assert [m.msg_type for m in a.take()] == [c.SADB_REGISTER]
    (b_reply,) = b.take()
    assert b_reply.supported_encrypt is None  # AH: authentication algorithms only
    assert other.take() == []


def test_register_twice_is_eexist(world: Any) -> None:
    _, server, _, (a, *_) = world
    server.handle(bare(c.SADB_REGISTER, c.SADB_SATYPE_ESP), a)
    a.take()
    server.handle(bare(c.SADB_REGISTER, c.SADB_SATYPE_ESP, seq=2), a)
    (reply,) = a.take()
    assert reply.errno == errno.EEXIST and reply.seq == 2 and not reply.extensions


def test_promiscuous_socket_sees_requests_and_replies(world: Any) -> None:
    _, server, _, (a, mon, _) = world
    server.handle(bare(c.SADB_X_PROMISC, 1), mon)
    # Now promiscuous, it gets the echo twice: its promiscuous copy and its own (Linux).
    assert [m.msg_type for m in mon.take()] == [c.SADB_X_PROMISC] * 2
    a.take()  # the PROMISC echo goes to every socket
    server.handle(bare(c.SADB_REGISTER, c.SADB_SATYPE_ESP, seq=9), a)
    seen = mon.take()
    # The request itself, then the reply to the other socket.
    assert [(m.msg_type, m.seq, bool(m.extensions)) for m in seen] == [
        (c.SADB_REGISTER, 9, False),
        (c.SADB_REGISTER, 9, True),
    ]
    server.handle(bare(c.SADB_X_PROMISC, 0), mon)
    mon.take()
    server.handle(bare(c.SADB_DUMP, c.SADB_SATYPE_ESP), a)
    assert mon.take() == []


def test_promisc_takes_only_0_or_1(world: Any) -> None:
    _, server, _, (a, *_) = world
    server.handle(bare(c.SADB_X_PROMISC, 2), a)
    (reply,) = a.take()
    assert reply.errno == errno.EINVAL


# --- SAD -------------------------------------------------------------------------------


def test_add_is_broadcast_to_all_with_seq_pid_and_keys(world: Any) -> None:
    engine, server, _, (a, b, _) = world
    server.handle(add_msg(0x1234, seq=21, pid=300), a)
    for peer in (a, b):
        (msg,) = peer.take()
        assert (msg.msg_type, msg.seq, msg.pid, msg.errno) == (c.SADB_ADD, 21, 300, 0)
        assert msg.sa is not None and msg.sa.spi == 0x1234
        assert msg.key_encrypt is not None and msg.key_encrypt.key == AES_KEY
    entry = engine.get_sa(PEER, 0x1234)
    assert entry.spec is not None
    assert (entry.spec.enc, entry.spec.integ, entry.mode) == ("aes128", "sha256", "tunnel")
    # The engine's own SaAdded event was announced already: no second ADD.
    assert a.take() == []


def test_add_errors(world: Any) -> None:
    _, server, _, (a, b, _) = world
    server.handle(add_msg(0x1000), a)
    a.take(), b.take()
    cases = [
        (add_msg(0x1000), errno.EEXIST),
        (add_msg(0x1001, encrypt=c.SADB_EALG_3DESCBC, ekey=bytes(24)), errno.ENOSYS),
        (add_msg(0x1002, ekey=bytes(15)), errno.EINVAL),
        (add_msg(0x1003, satype=c.SADB_SATYPE_AH, encrypt=0, ekey=b""), errno.EPROTONOSUPPORT),
        (add_msg(0x1004, ekey=b""), errno.EINVAL),  # ESP without KEY_ENCRYPT
        (add_msg(0x1005, mode=c.IPSEC_MODE_BEET), errno.EINVAL),
        (add_msg(0x1006, auth=c.SADB_AALG_MD5HMAC, akey=bytes(16)), errno.ENOSYS),
        (add_msg(0x1007, akey=bytes(20)), errno.EINVAL),
        (add_msg(0x1008, msg_type=c.SADB_UPDATE), errno.ESRCH),
    ]
    for data, code in cases:
        server.handle(data, a)
        (reply,) = a.take()
        assert reply.errno == code, (parse_message(data).sa, code)
        assert reply.seq == 7 and reply.pid == 4242 and not reply.extensions
    assert b.take() == []  # errors go to the requester only


def test_refusal_reason_is_logged_without_keys(
    world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _, server, _, (a, *_) = world
    key = bytes(range(0xA0, 0xAF))  # 15 bytes: no AES key has that length
    with caplog.at_level("INFO", logger="pyipsec.pfkey"):
        server.handle(add_msg(0x1002, ekey=key), a)
    assert a.take()[0].errno == errno.EINVAL
    # The client only gets EINVAL; the daemon's log says why, without the key.
    (record,) = [r for r in caplog.records if "refused" in r.getMessage()]
    assert record.levelname == "INFO"
    assert "ADD refused: errno 22" in record.getMessage()
    assert "120 bits" in record.getMessage()
    assert key.hex()[:8] not in caplog.text


def test_aead_and_chacha_are_accepted(world: Any) -> None:
    engine, server, _, (a, *_) = world
    server.handle(
        add_msg(0x2000, encrypt=c.SADB_X_EALG_AES_GCM_ICV16, ekey=bytes(20), auth=0, akey=b""), a
    )
    server.handle(add_msg(0x2001, encrypt=249, ekey=bytes(36), auth=0, akey=b""), a)
    assert [m.errno for m in a.take()] == [0, 0]
    assert engine.get_sa(PEER, 0x2000).spec.enc == "aes128gcm16"  # type: ignore[union-attr]
    assert engine.get_sa(PEER, 0x2001).spec.enc == "chacha20poly1305"  # type: ignore[union-attr]


def test_lifetimes_nat_t_and_security_context(world: Any) -> None:
    engine, server, _, (a, *_) = world
    extra = (
        Lifetime(c.SADB_EXT_LIFETIME_HARD, 100, 10_000, 60, 30),
        Lifetime(c.SADB_EXT_LIFETIME_SOFT, 80, 8_000, 50, 0),
        c_nat_type(),
        c_nat_port(c.SADB_X_EXT_NAT_T_SPORT, 4500),
        c_nat_port(c.SADB_X_EXT_NAT_T_DPORT, 31000),
        SecCtx(1, 1, b"system_u:system_r:unconfined_t"),
    )
    server.handle(add_msg(0x3000, extra=extra), a)
    (reply,) = a.take()
    assert reply.errno == 0
    spec = engine.get_sa(PEER, 0x3000).spec
    assert spec is not None
    assert spec.hard == EngineLifetime(bytes=10_000, packets=100, add_time=60, use_time=30)
    assert spec.soft == EngineLifetime(bytes=8_000, packets=80, add_time=50)
    assert spec.encap == (4500, 31000)
    assert reply.nat_t_dport is not None and reply.nat_t_dport.port == 31000


def c_nat_type() -> Any:
    from pyipsec.keyapi.pfkey import NatTType

    return NatTType(c.UDP_ENCAP_ESPINUDP)


def c_nat_port(exttype: int, port: int) -> Any:
    from pyipsec.keyapi.pfkey import NatTPort

    return NatTPort(exttype, port)


def test_getspi_then_update(world: Any) -> None:
    engine, server, _, (a, b, _) = world
    exts = (
        host(c.SADB_EXT_ADDRESS_SRC, PEER),
        host(c.SADB_EXT_ADDRESS_DST, LOCAL),
        SpiRange(0x5000, 0x50FF),
        Sa2(c.IPSEC_MODE_TUNNEL, 9),
    )
    server.handle(build_message(PfkeyMessage(c.SADB_GETSPI, c.SADB_SATYPE_ESP, 31, 8, 0, exts)), a)
    (reply,) = a.take()
    assert (reply.msg_type, reply.seq, reply.pid, reply.errno) == (c.SADB_GETSPI, 31, 8, 0)
    assert reply.sa is not None and 0x5000 <= reply.sa.spi <= 0x50FF
    assert reply.sa.state == c.SADB_SASTATE_LARVAL
    assert b.take() == []
    spi = reply.sa.spi
    server.handle(add_msg(spi, PEER, LOCAL, msg_type=c.SADB_UPDATE), a)
    (upd,) = a.take()
    assert upd.msg_type == c.SADB_UPDATE and upd.errno == 0
    assert upd.sa is not None and upd.sa.state == c.SADB_SASTATE_MATURE
    assert engine.get_sa(LOCAL, spi).reqid == 0


def test_getspi_exact_spi_taken_is_an_error(world: Any) -> None:
    _, server, _, (a, *_) = world
    server.handle(add_msg(0x6000, PEER, LOCAL), a)
    a.take()
    exts = (
        host(c.SADB_EXT_ADDRESS_SRC, PEER),
        host(c.SADB_EXT_ADDRESS_DST, LOCAL),
        SpiRange(0x6000, 0x6000),
    )
    server.handle(build_message(PfkeyMessage(c.SADB_GETSPI, c.SADB_SATYPE_ESP, 1, 1, 0, exts)), a)
    (reply,) = a.take()
    assert reply.errno == errno.ENOENT


def test_get_delete_and_esrch(world: Any) -> None:
    engine, server, _, (a, b, _) = world
    server.handle(add_msg(0x7000), a)
    a.take(), b.take()
    server.handle(sa_id_msg(c.SADB_GET, 0x7000), a)
    (got,) = a.take()
    assert got.msg_type == c.SADB_GET and got.seq == 3 and got.key_auth is not None
    assert b.take() == []
    server.handle(sa_id_msg(c.SADB_DELETE, 0x7000, seq=4), a)
    assert [(m.msg_type, m.seq) for m in b.take()] == [(c.SADB_DELETE, 4)]
    a.take()
    assert len(engine.dump_sa()) == 0
    for t in (c.SADB_GET, c.SADB_DELETE):
        server.handle(sa_id_msg(t, 0x7000), a)
        assert [m.errno for m in a.take()] == [errno.ESRCH]


def test_dump_sequence_ends_with_zero(world: Any) -> None:
    _, server, _, (a, b, _) = world
    server.handle(bare(c.SADB_DUMP, c.SADB_SATYPE_ESP, seq=50, pid=60), a)
    assert [m.errno for m in a.take()] == [errno.ENOENT]
    for spi in (0x100, 0x101, 0x102):
        server.handle(add_msg(spi), a)
    a.take(), b.take()
    server.handle(bare(c.SADB_DUMP, c.SADB_SATYPE_UNSPEC, seq=50, pid=60), a)
    msgs = a.take()
    assert [m.seq for m in msgs] == [1, 2, 0]
    assert {m.pid for m in msgs} == {60}
    assert sorted(m.sa.spi for m in msgs if m.sa) == [0x100, 0x101, 0x102]
    assert b.take() == []


def test_flush_answers_sender_and_tells_all_when_not_empty(world: Any) -> None:
    engine, server, _, (a, b, _) = world
    server.handle(bare(c.SADB_FLUSH, c.SADB_SATYPE_ESP, seq=2), a)
    assert [(m.msg_type, m.errno) for m in a.take()] == [(c.SADB_FLUSH, 0)]
    assert b.take() == []
    server.handle(add_msg(0x100), a)
    a.take(), b.take()
    server.handle(bare(c.SADB_FLUSH, c.SADB_SATYPE_UNSPEC, seq=3), a)
    assert [m.seq for m in a.take()] == [3, 3]  # unicast reply, then the broadcast
    assert [m.msg_type for m in b.take()] == [c.SADB_FLUSH]
    assert engine.dump_sa() == []


# --- SPD -------------------------------------------------------------------------------


def test_spdadd_get_dump_delete(world: Any) -> None:
    engine, server, _, (a, b, _) = world
    server.handle(spd_msg(c.SADB_X_SPDADD, seq=12), a)
    (added,) = a.take()
    assert [m.msg_type for m in b.take()] == [c.SADB_X_SPDADD]
    assert added.errno == 0 and added.seq == 12 and added.policy is not None
    index = added.policy.policy_id
    policy = engine.get_policy(index)
    assert policy.direction == "out" and policy.action == "protect"
    assert policy.templates[0].dst == ip_address(PEER)
    server.handle(spd_msg(c.SADB_X_SPDADD), a)
    assert [m.errno for m in a.take()] == [errno.EEXIST]
    get = PfkeyMessage(c.SADB_X_SPDGET, 0, 13, 1, 0, (PolicyExt(0, 0, index),))
    server.handle(build_message(get), a)
    (got,) = a.take()
    assert got.policy is not None and got.policy.requests[0].src == SockAddr(ip_address(LOCAL))
    server.handle(spd_msg(c.SADB_X_SPDADD, direction=c.IPSEC_DIR_INBOUND, ptype=0), a)
    a.take()
    server.handle(bare(c.SADB_X_SPDDUMP, seq=14), a)
    dump = a.take()
    assert [m.seq for m in dump] == [1, 0]
    assert {m.policy.direction for m in dump if m.policy} == {1, 2}
    server.handle(spd_msg(c.SADB_X_SPDDELETE, requests=()), a)
    assert [m.msg_type for m in a.take()] == [c.SADB_X_SPDDELETE]
    server.handle(build_message(get), a)
    assert [m.errno for m in a.take()] == [errno.ENOENT]
    b.take()
    delete2 = PfkeyMessage(c.SADB_X_SPDDELETE2, 0, 15, 1, 0, (PolicyExt(0, 0, index),))
    server.handle(build_message(delete2), a)
    assert [m.errno for m in a.take()] == [errno.ENOENT]


def test_spdupdate_replaces_and_spdflush(world: Any) -> None:
    engine, server, _, (a, b, _) = world
    server.handle(spd_msg(c.SADB_X_SPDUPDATE, ptype=c.IPSEC_POLICY_DISCARD), a)
    server.handle(spd_msg(c.SADB_X_SPDUPDATE), a)
    assert [m.msg_type for m in a.take()] == [c.SADB_X_SPDUPDATE] * 2
    (policy,) = engine.dump_policy()
    assert policy.action == "protect"
    server.handle(bare(c.SADB_X_SPDFLUSH, seq=40), a)
    assert [m.seq for m in a.take()] == [40, 40]
    b.take()
    assert engine.dump_policy() == []
    server.handle(bare(c.SADB_X_SPDDUMP), a)
    assert [m.errno for m in a.take()] == [errno.ENOENT]


def test_spd_ports_icmp_and_unique_reqid(world: Any) -> None:
    engine, server, _, (a, *_) = world
    unique = (IpsecRequest(c.IPPROTO_ESP, c.IPSEC_MODE_TRANSPORT, c.IPSEC_LEVEL_UNIQUE),)
    server.handle(
        spd_msg(
            c.SADB_X_SPDADD,
            "192.0.2.1",
            "192.0.2.2",
            32,
            proto=6,
            sport=0,
            dport=443,
            requests=unique,
        ),
        a,
    )
    server.handle(
        spd_msg(
            c.SADB_X_SPDADD,
            "::",
            "::",
            0,
            proto=58,
            sport=135,
            direction=c.IPSEC_DIR_INBOUND,
            ptype=c.IPSEC_POLICY_NONE,
        ),
        a,
    )
    assert [m.errno for m in a.take()] == [0, 0]
    tcp, icmp = sorted(engine.dump_policy(), key=lambda p: p.direction != "out")
    assert tcp.selector.proto == 6 and tcp.selector.dport == (443, 443)
    assert tcp.templates[0].reqid > c.IPSEC_MANUAL_REQID_MAX
    assert icmp.selector.sport == (135, 135) and icmp.action == "bypass"
    # Ports on a protocol without ports are refused.
    server.handle(spd_msg(c.SADB_X_SPDADD, proto=47, sport=1), a)
    assert [m.errno for m in a.take()] == [errno.EINVAL]


def test_port_range_policy_is_left_out_of_pfkey_dump(world: Any) -> None:
    engine, server, _, (a, *_) = world
    engine.add_policy(
        Policy(
            "out", Selector("198.51.100.0/24", "203.0.113.0/24", 6, None, (1024, 2047)), "discard"
        )
    )
    server.handle(bare(c.SADB_X_SPDDUMP), a)
    assert [m.errno for m in a.take()] == [errno.ENOENT]


# --- other types -----------------------------------------------------------------------


def test_types_without_meaning_get_linux_errnos(world: Any) -> None:
    _, server, _, (a, *_) = world
    server.handle(bare(c.SADB_EXPIRE, c.SADB_SATYPE_ESP), a)
    server.handle(bare(c.SADB_X_SPDEXPIRE), a)
    old = IpsecRequest(
        c.IPPROTO_ESP,
        c.IPSEC_MODE_TUNNEL,
        c.IPSEC_LEVEL_REQUIRE,
        0,
        SockAddr(ip_address(LOCAL)),
        SockAddr(ip_address(PEER)),
    )
    server.handle(spd_msg(c.SADB_X_MIGRATE, requests=(old, old)), a)
    bad_len = bytearray(bare(c.SADB_DUMP, c.SADB_SATYPE_ESP))
    bad_len[4] = 9  # sadb_msg_len says 72 bytes
    server.handle(bytes(bad_len), a)
    assert [m.errno for m in a.take()] == [
        errno.EOPNOTSUPP,
        errno.EOPNOTSUPP,
        errno.ENOPROTOOPT,
        errno.EMSGSIZE,
    ]
    server.handle(bare(c.SADB_ACQUIRE, c.SADB_SATYPE_ESP), a)  # failure report: no reply
    server.handle(b"\x02\x01\x00\x03", a)  # not even a header: nothing to echo
    assert a.take() == []


# --- engine events -----------------------------------------------------------------------


def _out_policy(engine: Engine) -> int:
    tmpl = Template("esp", "tunnel", LOCAL, PEER)
    selector = Selector("198.51.100.0/24", "203.0.113.0/24")
    return engine.add_policy(Policy("out", selector, "protect", 0, [tmpl]))


def test_acquire_goes_to_esp_registered_and_promiscuous_sockets(world: Any) -> None:
    engine, server, clock, (esp, ah, mon) = world
    server.handle(bare(c.SADB_REGISTER, c.SADB_SATYPE_ESP), esp)
    server.handle(bare(c.SADB_REGISTER, c.SADB_SATYPE_AH), ah)
    server.handle(bare(c.SADB_X_PROMISC, 1), mon)
    index = _out_policy(engine)
    server.drain()
    for peer in (esp, ah, mon):
        peer.take()
    packet = bytes(IP(src="198.51.100.7", dst="203.0.113.9") / UDP(sport=1, dport=2))
    engine.outbound(packet, clock())
    server.drain()
    (acq,) = esp.take()
    assert acq.msg_type == c.SADB_ACQUIRE and acq.satype == c.SADB_SATYPE_ESP
    assert acq.src is not None and str(acq.src.addr) == LOCAL
    assert acq.dst is not None and str(acq.dst.addr) == PEER
    assert acq.policy is not None and acq.policy.policy_id == index
    assert acq.proposal is not None and acq.proposal.combs
    assert all(comb.encrypt != c.SADB_EALG_NULL for comb in acq.proposal.combs)
    assert ah.take() == []
    assert [m.msg_type for m in mon.take()] == [c.SADB_ACQUIRE]


def test_soft_and_hard_expire_reach_registered_sockets(world: Any) -> None:
    engine, server, clock, (reg, plain, _) = world
    server.handle(bare(c.SADB_REGISTER, c.SADB_SATYPE_ESP), reg)
    extra = (
        Lifetime(c.SADB_EXT_LIFETIME_HARD, 0, 0, 20, 0),
        Lifetime(c.SADB_EXT_LIFETIME_SOFT, 0, 0, 10, 0),
    )
    server.handle(add_msg(0x8000, extra=extra), reg)
    reg.take(), plain.take()
    clock.t += 11
    engine.handle_timer(clock())
    server.drain()
    (soft,) = reg.take()
    assert soft.msg_type == c.SADB_EXPIRE and soft.lifetime_soft is not None
    assert soft.lifetime_hard is None and soft.key_encrypt is None  # no keys in EXPIRE
    clock.t += 10
    engine.handle_timer(clock())
    server.drain()
    (hard,) = reg.take()
    assert hard.lifetime_hard is not None and hard.lifetime_hard.addtime == 20
    assert hard.sa is not None and hard.sa.spi == 0x8000
    assert plain.take() == []


def test_changes_made_elsewhere_are_broadcast_with_seq_zero(world: Any) -> None:
    engine, server, clock, (a, *_) = world
    spec = SASpec(
        0x9000, LOCAL, PEER, enc="aes128", enc_key=AES_KEY, integ="sha256", integ_key=SHA_KEY
    )
    engine.add_sa(spec, clock())
    index = _out_policy(engine)
    server.drain()
    msgs = a.take()
    assert [(m.msg_type, m.seq, m.pid) for m in msgs] == [
        (c.SADB_ADD, 0, 0),
        (c.SADB_X_SPDADD, 0, 0),
    ]
    engine.del_sa(PEER, 0x9000)
    engine.del_policy(index)
    server.drain()
    assert [m.msg_type for m in a.take()] == [c.SADB_DELETE, c.SADB_X_SPDDELETE2]
