"""The xfrm server over the embedded engine: requests, ACKs/errors, dumps, notifications."""

from __future__ import annotations

import errno
import struct
from typing import Any

import pytest

from pyipsec.engine.events import Expire, SaId
from pyipsec.engine.processor import Engine
from pyipsec.engine.sad import SASpec
from pyipsec.keyapi import xfrm_const as c
from pyipsec.keyapi.netlink import (
    NLM_F_ACK,
    NLM_F_ACK_TLVS,
    NLM_F_CAPPED,
    NLM_F_DUMP,
    NLM_F_MULTI,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_HDRLEN,
    NLMSG_NOOP,
    Done,
    NetlinkError,
    build_nlmsg,
    iter_attrs,
)
from pyipsec.keyapi.xfrm import Body, XfrmMessage, build_message, parse_messages
from pyipsec.keyapi.xfrm_convert import sa_message
from pyipsec.keyapi.xfrm_layout import xaddr
from pyipsec.keyapi.xfrm_server import (
    GROUPS_KEY,
    MAX_DATAGRAM,
    NLMSGERR_ATTR_MSG,
    XFRM_MSG_PYIPSEC_SUBSCRIBE,
    XfrmServer,
    subscribe_message,
)
from pyipsec.keyapi.xfrm_structs import (
    AeventId,
    AlgoAead,
    LifetimeCur,
    Selector,
    SpdInfo,
    UserAcquire,
    UserExpire,
    UserpolicyDefault,
    UserpolicyId,
    UserpolicyInfo,
    UsersaFlush,
    UsersaId,
    UsersaInfo,
    UserspiInfo,
    UserTmpl,
    XfrmId,
)

REQ_ACK = NLM_F_REQUEST | NLM_F_ACK
KEY = bytes(range(1, 21))  # AES-128 key + salt


class Conn:
    def __init__(self) -> None:
        self.state: dict[str, Any] = {}


class Bus:
    """Stands in for SeqpacketServer.broadcast: who got what."""

    def __init__(self, *conns: Conn) -> None:
        self.conns = conns
        self.got: dict[int, list[bytes]] = {id(cn): [] for cn in conns}

    def broadcast(self, data: bytes, predicate: Any = None) -> int:
        sent = 0
        for conn in self.conns:
            if predicate is None or predicate(conn):
                self.got[id(conn)].append(data)
                sent += 1
        return sent

    def messages(self, conn: Conn) -> list[XfrmMessage]:
        return [m for d in self.got[id(conn)] for m in parse_messages(d)]


@pytest.fixture
def engine() -> Engine:
    return Engine(local_addresses=["192.0.2.1"])


@pytest.fixture
def server(engine: Engine) -> XfrmServer:
    return XfrmServer(engine, lambda: 1000.0)


def send(
    server: XfrmServer,
    msg_type: int,
    body: Body,
    *attrs: tuple[int, Any],
    flags: int = REQ_ACK,
    seq: int = 7,
    conn: Conn | None = None,
) -> list[XfrmMessage]:
    msg = XfrmMessage(msg_type, body, flags=flags, seq=seq, pid=4242)
    for attr_type, value in attrs:
        msg.add(attr_type, value)
    datagrams = server.handle(build_message(msg), conn or Conn())
    return [m for d in datagrams for m in parse_messages(d)]


def error_of(replies: list[XfrmMessage]) -> int:
    assert replies and replies[-1].type == NLMSG_ERROR
    body = replies[-1].body
    assert isinstance(body, NetlinkError)
    return -body.error


def extack_text(reply: XfrmMessage) -> str:
    assert isinstance(reply.body, NetlinkError)
    assert reply.flags & NLM_F_ACK_TLVS and reply.flags & NLM_F_CAPPED
    tlvs = reply.body.echo[NLMSG_HDRLEN:]
    texts = [bytes(v).rstrip(b"\0").decode() for t, v in iter_attrs(tlvs) if t == NLMSGERR_ATTR_MSG]
    assert texts
    return texts[0]


def sa_info(spi: int = 0x1000, dst: str = "192.0.2.2", src: str = "192.0.2.1") -> UsersaInfo:
    return UsersaInfo(
        id=XfrmId(xaddr(dst), spi, c.IPPROTO_ESP),
        saddr=xaddr(src),
        family=c.AF_INET,
        mode=c.XFRM_MODE_TUNNEL,
        reqid=1,
        replay_window=32,
    )


GCM = (c.XFRMA_ALG_AEAD, AlgoAead("rfc4106(gcm(aes))", KEY, 128))


def policy_info(dir_: int = c.XFRM_POLICY_OUT, priority: int = 10, **sel: Any) -> UserpolicyInfo:
    fields: dict[str, Any] = {
        "daddr": xaddr("203.0.113.0"),
        "saddr": xaddr("198.51.100.0"),
        "family": c.AF_INET,
        "prefixlen_d": 24,
        "prefixlen_s": 24,
    }
    fields.update(sel)
    return UserpolicyInfo(sel=Selector(**fields), dir=dir_, priority=priority)


TMPL = (
    c.XFRMA_TMPL,
    [
        UserTmpl(
            id=XfrmId(xaddr("192.0.2.2"), 0, c.IPPROTO_ESP),
            family=c.AF_INET,
            saddr=xaddr("192.0.2.1"),
            reqid=1,
            mode=c.XFRM_MODE_TUNNEL,
        )
    ],
)


# -- framing ------------------------------------------------------------------------------


def test_newsa_ack_is_capped_and_echoes_the_header(server: XfrmServer, engine: Engine) -> None:
    replies = send(server, c.XFRM_MSG_NEWSA, sa_info(), GCM, seq=99)
    assert [r.type for r in replies] == [NLMSG_ERROR]
    ack = replies[0]
    assert isinstance(ack.body, NetlinkError) and ack.body.is_ack
    assert ack.seq == 99 and ack.pid == 4242 and ack.flags == NLM_F_CAPPED
    assert ack.body.offending is not None and ack.body.offending.type == c.XFRM_MSG_NEWSA
    assert len(ack.body.echo) == NLMSG_HDRLEN
    [entry] = engine.dump_sa()
    assert entry.spi == 0x1000 and entry.spec is not None and entry.spec.enc == "aes128gcm16"


def test_no_ack_without_nlm_f_ack(server: XfrmServer) -> None:
    assert send(server, c.XFRM_MSG_NEWSA, sa_info(), GCM, flags=NLM_F_REQUEST) == []
    # ... but errors are always answered.
    replies = send(server, c.XFRM_MSG_NEWSA, sa_info(), GCM, flags=NLM_F_REQUEST)
    assert error_of(replies) == errno.EEXIST


def test_error_carries_a_message_and_no_key(server: XfrmServer) -> None:
    send(server, c.XFRM_MSG_NEWSA, sa_info(), GCM)
    replies = send(server, c.XFRM_MSG_NEWSA, sa_info(), GCM)
    assert error_of(replies) == errno.EEXIST
    text = extack_text(replies[0])
    assert "exists" in text
    again = XfrmMessage(c.XFRM_MSG_NEWSA, sa_info(), [], REQ_ACK, 1).add(*GCM)
    raw = b"".join(server.handle(build_message(again), Conn()))
    assert KEY not in raw


def test_non_requests_and_control_messages_are_ignored(server: XfrmServer) -> None:
    msg = XfrmMessage(c.XFRM_MSG_NEWSA, sa_info(), flags=0).add(*GCM)
    assert server.handle(build_message(msg), Conn()) == []
    noop = build_nlmsg(NLMSG_NOOP, REQ_ACK, 1, 0, b"")
    assert server.handle(noop, Conn()) == []


def test_malformed_datagram_is_einval(server: XfrmServer) -> None:
    [reply] = server.handle(b"\x40\x00\x00\x00\x10\x00", Conn())
    assert error_of(parse_messages(reply)) == errno.EINVAL
    # A header whose length runs past the datagram.
    bad = struct.pack("=IHHII", 400, c.XFRM_MSG_GETSA, REQ_ACK, 3, 0) + bytes(24)
    assert error_of(parse_messages(server.handle(bad, Conn())[0])) == errno.EINVAL


@pytest.mark.parametrize(
    ("msg_type", "body", "code"),
    [
        (c.XFRM_MSG_MIGRATE, UserpolicyId(), errno.EOPNOTSUPP),
        (c.XFRM_MSG_SETDEFAULT, UserpolicyDefault(), errno.EOPNOTSUPP),
    ],
)
def test_unsupported_types(server: XfrmServer, msg_type: int, body: Body, code: int) -> None:
    assert error_of(send(server, msg_type, body)) == code


def test_type_above_max_and_short_body_are_einval(server: XfrmServer) -> None:
    raw = build_nlmsg(c.XFRM_MSG_MAX + 1, REQ_ACK, 5, 0, bytes(8))
    assert error_of(parse_messages(server.handle(raw, Conn())[0])) == errno.EINVAL
    raw = build_nlmsg(c.XFRM_MSG_DELSA, REQ_ACK, 5, 0, bytes(8))
    assert error_of(parse_messages(server.handle(raw, Conn())[0])) == errno.EINVAL


def test_several_requests_in_one_datagram(server: XfrmServer, engine: Engine) -> None:
    data = b"".join(
        build_message(XfrmMessage(c.XFRM_MSG_NEWSA, sa_info(spi), [], REQ_ACK, spi).add(*GCM))
        for spi in (0x201, 0x202, 0x201)
    )
    replies = [m for d in server.handle(data, Conn()) for m in parse_messages(d)]
    assert [(r.seq, error_of([r])) for r in replies] == [
        (0x201, 0),
        (0x202, 0),
        (0x201, errno.EEXIST),
    ]
    assert len(engine.dump_sa()) == 2


# -- SAs ------------------------------------------------------------------------------------


def test_getsa_and_delsa(server: XfrmServer, engine: Engine) -> None:
    send(server, c.XFRM_MSG_NEWSA, sa_info(), GCM)
    sa_id = UsersaId(xaddr("192.0.2.2"), 0x1000, c.AF_INET, c.IPPROTO_ESP)
    replies = send(server, c.XFRM_MSG_GETSA, sa_id, flags=NLM_F_REQUEST)
    [reply] = replies
    assert reply.type == c.XFRM_MSG_NEWSA and reply.seq == 7
    assert isinstance(reply.body, UsersaInfo) and reply.body.reqid == 1
    aead = reply.get_as(c.XFRMA_ALG_AEAD, AlgoAead)
    assert aead is not None and aead.key == KEY
    assert error_of(send(server, c.XFRM_MSG_DELSA, sa_id)) == 0
    assert engine.dump_sa() == []
    assert error_of(send(server, c.XFRM_MSG_DELSA, sa_id)) == errno.ESRCH
    assert error_of(send(server, c.XFRM_MSG_GETSA, sa_id)) == errno.ESRCH


def test_dump_sa_multi_done_and_proto_filter(server: XfrmServer) -> None:
    for spi in range(0x300, 0x300 + 200):
        send(server, c.XFRM_MSG_NEWSA, sa_info(spi), GCM)
    msg = XfrmMessage(c.XFRM_MSG_GETSA, UsersaId(), flags=NLM_F_REQUEST | NLM_F_DUMP, seq=8)
    datagrams = server.handle(build_message(msg), Conn())
    assert len(datagrams) > 1 and all(len(d) <= MAX_DATAGRAM for d in datagrams)
    replies = [m for d in datagrams for m in parse_messages(d)]
    assert [r.type for r in replies] == [c.XFRM_MSG_NEWSA] * 200 + [NLMSG_DONE]
    assert all(r.flags & NLM_F_MULTI and r.seq == 8 for r in replies)
    assert isinstance(replies[-1].body, Done) and replies[-1].body.status == 0
    # XFRMA_PROTO after a struct xfrm_usersa_info (xfrm_dump_sa_start): AH matches none.
    filtered = XfrmMessage(c.XFRM_MSG_NEWSA, UsersaInfo(), flags=NLM_F_REQUEST | NLM_F_DUMP)
    raw = build_message(filtered.add(c.XFRMA_PROTO, c.IPPROTO_AH))
    raw = raw.replace(struct.pack("=H", c.XFRM_MSG_NEWSA), struct.pack("=H", c.XFRM_MSG_GETSA), 1)
    only_done = [m for d in server.handle(raw, Conn()) for m in parse_messages(d)]
    assert [m.type for m in only_done] == [NLMSG_DONE]


def test_empty_dump_from_a_bare_family_byte(server: XfrmServer) -> None:
    # iproute2 sends a dump request with a one-byte rtgenmsg body.
    raw = build_nlmsg(c.XFRM_MSG_GETPOLICY, NLM_F_REQUEST | NLM_F_DUMP, 3, 0, b"\x00")
    [reply] = [m for d in server.handle(raw, Conn()) for m in parse_messages(d)]
    assert reply.type == NLMSG_DONE and reply.seq == 3


def test_allocspi_then_updsa(server: XfrmServer, engine: Engine) -> None:
    body = UserspiInfo(info=sa_info(0), min=0x5000, max=0x5000)
    [reply, ack] = send(server, c.XFRM_MSG_ALLOCSPI, body)
    assert reply.type == c.XFRM_MSG_NEWSA and error_of([ack]) == 0
    assert isinstance(reply.body, UsersaInfo) and reply.body.id.spi == 0x5000
    assert str(engine.get_sa("192.0.2.2", 0x5000).state) == "larval"
    # The SPI is taken now: a second reservation of it fails as the kernel's does.
    assert error_of(send(server, c.XFRM_MSG_ALLOCSPI, body)) == errno.ENOENT
    assert error_of(send(server, c.XFRM_MSG_NEWSA, sa_info(0x5000), GCM)) == errno.EEXIST
    assert error_of(send(server, c.XFRM_MSG_UPDSA, sa_info(0x5000), GCM)) == 0
    assert str(engine.get_sa("192.0.2.2", 0x5000).state) == "mature"
    empty = UserspiInfo(info=sa_info(0), min=0x6000, max=0x5000)
    assert error_of(send(server, c.XFRM_MSG_ALLOCSPI, empty)) == errno.EINVAL


def test_updsa_of_a_missing_sa_is_esrch(server: XfrmServer) -> None:
    assert error_of(send(server, c.XFRM_MSG_UPDSA, sa_info(0x777), GCM)) == errno.ESRCH


def test_flushsa_and_sadinfo(server: XfrmServer, engine: Engine) -> None:
    for spi in (0x401, 0x402):
        send(server, c.XFRM_MSG_NEWSA, sa_info(spi), GCM)
    [info, _] = send(server, c.XFRM_MSG_GETSADINFO, 0)
    assert info.type == c.XFRM_MSG_NEWSADINFO and info.get(c.XFRMA_SAD_CNT) == 2
    assert error_of(send(server, c.XFRM_MSG_FLUSHSA, UsersaFlush(c.IPPROTO_AH))) == 0
    assert len(engine.dump_sa()) == 2
    assert error_of(send(server, c.XFRM_MSG_FLUSHSA, UsersaFlush(c.IPSEC_PROTO_ANY))) == 0
    assert engine.dump_sa() == []


def test_getae_reports_counters(server: XfrmServer) -> None:
    send(server, c.XFRM_MSG_NEWSA, sa_info(), GCM)
    ae = AeventId(UsersaId(xaddr("192.0.2.2"), 0x1000, c.AF_INET, c.IPPROTO_ESP))
    [reply, _] = send(server, c.XFRM_MSG_GETAE, ae)
    assert reply.type == c.XFRM_MSG_NEWAE
    cur = reply.get_as(c.XFRMA_LTIME_VAL, LifetimeCur)
    assert cur is not None and cur.add_time == 1000 and cur.packets == 0


# -- policies -------------------------------------------------------------------------------


def test_policy_add_get_delete(server: XfrmServer, engine: Engine) -> None:
    assert error_of(send(server, c.XFRM_MSG_NEWPOLICY, policy_info(), TMPL)) == 0
    assert error_of(send(server, c.XFRM_MSG_NEWPOLICY, policy_info(), TMPL)) == errno.EEXIST
    assert error_of(send(server, c.XFRM_MSG_UPDPOLICY, policy_info(priority=5), TMPL)) == 0
    [pol] = engine.dump_policy()
    assert pol.priority == 5 and pol.action == "protect"
    by_index = UserpolicyId(index=pol.index, dir=c.XFRM_POLICY_OUT)
    [reply] = send(server, c.XFRM_MSG_GETPOLICY, by_index, flags=NLM_F_REQUEST)
    assert isinstance(reply.body, UserpolicyInfo) and reply.body.index == pol.index
    assert len(reply.templates()) == 1
    wrong_dir = UserpolicyId(index=pol.index, dir=c.XFRM_POLICY_IN)
    assert error_of(send(server, c.XFRM_MSG_DELPOLICY, wrong_dir)) == errno.ENOENT
    by_sel = UserpolicyId(sel=policy_info().sel, dir=c.XFRM_POLICY_OUT)
    assert error_of(send(server, c.XFRM_MSG_DELPOLICY, by_sel)) == 0
    assert engine.dump_policy() == []
    assert error_of(send(server, c.XFRM_MSG_DELPOLICY, by_sel)) == errno.ENOENT
    assert error_of(send(server, c.XFRM_MSG_DELPOLICY, UserpolicyId(dir=5))) == errno.EINVAL


def test_policy_refusals(server: XfrmServer, engine: Engine) -> None:
    bad_mask = policy_info(proto=6, dport=80, dport_mask=0x0FF0)
    replies = send(server, c.XFRM_MSG_NEWPOLICY, bad_mask)
    assert error_of(replies) == errno.EINVAL
    assert "prefix mask" in extack_text(replies[0])
    wrong_index = policy_info()
    wrong_index.index = 0x100  # direction bits say "in"
    assert error_of(send(server, c.XFRM_MSG_NEWPOLICY, wrong_index)) == errno.EINVAL
    assert engine.dump_policy() == []


def test_policy_dump_spdinfo_flush(server: XfrmServer, engine: Engine) -> None:
    send(server, c.XFRM_MSG_NEWPOLICY, policy_info(), TMPL)
    send(server, c.XFRM_MSG_NEWPOLICY, policy_info(c.XFRM_POLICY_IN, 1))
    send(server, c.XFRM_MSG_NEWPOLICY, policy_info(c.XFRM_POLICY_FWD, 1))
    dump = send(server, c.XFRM_MSG_GETPOLICY, UserpolicyId(), flags=NLM_F_REQUEST | NLM_F_DUMP)
    assert [m.type for m in dump] == [c.XFRM_MSG_NEWPOLICY] * 3 + [NLMSG_DONE]
    [info, _] = send(server, c.XFRM_MSG_GETSPDINFO, 0)
    spd = info.get_as(c.XFRMA_SPD_INFO, SpdInfo)
    assert spd is not None and (spd.incnt, spd.outcnt, spd.fwdcnt) == (1, 1, 1)
    assert error_of(send(server, c.XFRM_MSG_FLUSHPOLICY, None)) == 0
    assert engine.dump_policy() == []
    # Flushing an empty SPD succeeds, as in xfrm_flush_policy.
    assert error_of(send(server, c.XFRM_MSG_FLUSHPOLICY, None)) == 0


def test_getdefault(server: XfrmServer) -> None:
    [reply, _] = send(server, c.XFRM_MSG_GETDEFAULT, UserpolicyDefault())
    assert reply.body == UserpolicyDefault(2, 2, 2)


# -- subscriptions and notifications -------------------------------------------------------


def _udp_packet(src: str, dst: str, sport: int, dport: int) -> bytes:
    import ipaddress

    udp = struct.pack("!HHHH", sport, dport, 8 + 4, 0) + b"ping"
    total = 20 + len(udp)
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        total,
        1,
        0,
        64,
        17,
        0,
        ipaddress.ip_address(src).packed,
        ipaddress.ip_address(dst).packed,
    )
    return ip + udp


def subscribe(server: XfrmServer, conn: Conn, *groups: int) -> None:
    for group in groups:
        [ack] = [
            m
            for d in server.handle(subscribe_message(group, seq=1), conn)
            for m in parse_messages(d)
        ]
        assert error_of([ack]) == 0


def test_subscription_message(server: XfrmServer) -> None:
    conn = Conn()
    subscribe(server, conn, c.XFRMNLGRP_ACQUIRE, c.XFRMNLGRP_SA)
    assert conn.state[GROUPS_KEY] == {c.XFRMNLGRP_ACQUIRE, c.XFRMNLGRP_SA}
    drop = subscribe_message(c.XFRMNLGRP_SA, join=False)
    server.handle(drop, conn)
    assert conn.state[GROUPS_KEY] == {c.XFRMNLGRP_ACQUIRE}
    bad = [m for d in server.handle(subscribe_message(99), conn) for m in parse_messages(d)]
    assert error_of(bad) == errno.EINVAL
    short = build_nlmsg(XFRM_MSG_PYIPSEC_SUBSCRIBE, REQ_ACK, 1, 0, b"\x01\x00")
    assert error_of(parse_messages(server.handle(short, conn)[0])) == errno.EINVAL
    server.closed(conn)
    assert GROUPS_KEY not in conn.state


def drain(engine: Engine) -> list[Any]:
    events = []
    while (event := engine.next_event()) is not None:
        events.append(event)
    return events


def test_acquire_reaches_only_subscribers(server: XfrmServer, engine: Engine) -> None:
    acq, other = Conn(), Conn()
    subscribe(server, acq, c.XFRMNLGRP_ACQUIRE)
    subscribe(server, other, c.XFRMNLGRP_EXPIRE)
    send(server, c.XFRM_MSG_NEWPOLICY, policy_info(), TMPL)
    drain(engine)
    engine.outbound(_udp_packet("198.51.100.7", "203.0.113.9", 5000, 53), 1000.0)
    bus = Bus(acq, other)
    server.publish(bus, drain(engine))
    [msg] = bus.messages(acq)
    assert bus.messages(other) == []
    assert msg.type == c.XFRM_MSG_ACQUIRE and msg.seq == 0 and msg.pid == 0
    body = msg.body
    assert isinstance(body, UserAcquire)
    assert body.id.daddr == xaddr("192.0.2.2") and body.saddr == xaddr("192.0.2.1")
    assert body.sel.daddr == xaddr("203.0.113.9") and body.sel.dport == 53
    assert body.sel.proto == 17 and body.policy.dir == c.XFRM_POLICY_OUT
    assert len(msg.templates()) == 1


def test_sa_and_policy_notifications_and_flush_coalescing(
    server: XfrmServer, engine: Engine
) -> None:
    conn = Conn()
    subscribe(server, conn, c.XFRMNLGRP_SA, c.XFRMNLGRP_POLICY)
    bus = Bus(conn)
    requests: list[tuple[int, Body, tuple[tuple[int, Any], ...]]] = [
        *((c.XFRM_MSG_NEWSA, sa_info(spi), (GCM,)) for spi in (0x501, 0x502, 0x503)),
        (c.XFRM_MSG_DELSA, UsersaId(xaddr("192.0.2.2"), 0x503, c.AF_INET, 50), ()),
        (c.XFRM_MSG_NEWPOLICY, policy_info(), (TMPL,)),
        (c.XFRM_MSG_FLUSHSA, UsersaFlush(0), ()),
        (c.XFRM_MSG_FLUSHPOLICY, None, ()),
    ]
    for msg_type, body, attrs in requests:
        # The daemon drains the engine's events after each request it serves.
        send(server, msg_type, body, *attrs)
        server.publish(bus, drain(engine))
    types = [m.type for m in bus.messages(conn)]
    assert types == [
        c.XFRM_MSG_NEWSA,
        c.XFRM_MSG_NEWSA,
        c.XFRM_MSG_NEWSA,
        c.XFRM_MSG_DELSA,
        c.XFRM_MSG_NEWPOLICY,
        c.XFRM_MSG_FLUSHSA,
        c.XFRM_MSG_FLUSHPOLICY,
    ]
    first = bus.messages(conn)[0]
    assert isinstance(first.body, UsersaInfo) and first.body.id.spi == 0x501


def test_expire_notification(server: XfrmServer, engine: Engine) -> None:
    conn = Conn()
    subscribe(server, conn, c.XFRMNLGRP_EXPIRE)
    spec = SASpec(0x900, "192.0.2.1", "192.0.2.2", enc_key=KEY, reqid=3)
    engine.add_sa(spec, 1000.0)
    drain(engine)
    soft = Expire(SaId(spec.dst, 0x900), spec.src, 3, hard=False, cause="bytes")
    hard = Expire(SaId(spec.dst, 0x901), spec.src, 4, hard=True, cause="add_time")
    bus = Bus(conn)
    server.publish(bus, [soft, hard])
    first, second = bus.messages(conn)
    assert isinstance(first.body, UserExpire) and isinstance(second.body, UserExpire)
    assert first.body.hard == 0 and first.body.state.reqid == 3
    assert first.body.state.mode == c.XFRM_MODE_TUNNEL  # the full state, looked up
    assert second.body.hard == 1 and second.body.state.id.spi == 0x901
    assert second.body.state.reqid == 4


def test_sa_message_of_the_engine_matches_the_request(server: XfrmServer, engine: Engine) -> None:
    spec = SASpec(0x1234, "192.0.2.1", "192.0.2.2", enc_key=KEY, reqid=9, replay_window=64)
    msg = sa_message(spec)
    msg.flags, msg.seq = REQ_ACK, 1
    server.handle(build_message(msg), Conn())
    assert engine.get_sa("192.0.2.2", 0x1234).spec == spec
