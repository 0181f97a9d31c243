"""One xfrm message sequence, two implementations: the xfrm server over the embedded engine,
and a naive model of the kernel's SAD/SPD rules written here with dicts. After every
message the errno must agree; at the end, the SAD and SPD dumps (read back through the
server, as raw xfrm fields) must equal the model's contents.

The model encodes the kernel's semantics as documented in net/xfrm/xfrm_user.c and
xfrm_state.c/xfrm_policy.c: NEWSA on a taken (dst, spi, proto) is EEXIST (an ALLOCSPI
reservation included), UPDSA completes a reservation or may change only lifetimes
(else EINVAL), a missing SA is ESRCH; ALLOCSPI of a taken SPI is ENOENT; NEWPOLICY on a
taken (direction, selector) is EEXIST, UPDPOLICY replaces or adds, DELPOLICY of a
missing one is ENOENT; flushes empty everything and never fail.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pyipsec.engine.processor import Engine
from pyipsec.keyapi import xfrm_const as c
from pyipsec.keyapi.netlink import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_ERROR, NetlinkError
from pyipsec.keyapi.xfrm import XfrmMessage, build_message, parse_messages
from pyipsec.keyapi.xfrm_layout import xaddr
from pyipsec.keyapi.xfrm_server import XfrmServer
from pyipsec.keyapi.xfrm_structs import (
    AlgoAead,
    Selector,
    UserpolicyId,
    UserpolicyInfo,
    UsersaFlush,
    UsersaId,
    UsersaInfo,
    UserspiInfo,
    UserTmpl,
    XfrmId,
)

REQ = NLM_F_REQUEST | NLM_F_ACK
DSTS = (xaddr("192.0.2.2"), xaddr("192.0.2.3"))
SRC = xaddr("192.0.2.1")
SPIS = (0x100, 0x101, 0x102)
NETS = (("198.51.100.0", 24), ("203.0.113.0", 24), ("203.0.113.128", 25))
PORTS = ((0, 0), (53, 0xFFFF), (1024, 0xFC00))


# -- operations (as data, so hypothesis can shrink them) --------------------------------


@dataclass(frozen=True)
class SaOp:
    kind: str  # new | upd | del | alloc
    dst: int
    spi: int
    reqid: int = 1
    window: int = 32
    key: int = 0
    mode: int = c.XFRM_MODE_TUNNEL


@dataclass(frozen=True)
class PolicyOp:
    kind: str  # new | upd | del
    dir: int
    src: int
    dst: int
    proto: int
    port: int
    priority: int = 0
    action: int = c.XFRM_POLICY_ALLOW
    reqid: int = 0  # 0: no template (bypass)


@dataclass(frozen=True)
class FlushOp:
    what: str  # sa | policy


sa_ops = st.builds(
    SaOp,
    kind=st.sampled_from(["new", "upd", "del", "alloc"]),
    dst=st.integers(0, len(DSTS) - 1),
    spi=st.sampled_from(SPIS),
    reqid=st.integers(1, 2),
    window=st.sampled_from([0, 32, 64]),
    key=st.integers(0, 1),
    mode=st.sampled_from([c.XFRM_MODE_TUNNEL, c.XFRM_MODE_TRANSPORT]),
)
policy_ops = st.builds(
    PolicyOp,
    kind=st.sampled_from(["new", "upd", "del"]),
    dir=st.integers(0, 2),
    src=st.integers(0, len(NETS) - 1),
    dst=st.integers(0, len(NETS) - 1),
    proto=st.sampled_from([0, 6]),
    port=st.integers(0, len(PORTS) - 1),
    priority=st.integers(0, 3),
    action=st.sampled_from([c.XFRM_POLICY_ALLOW, c.XFRM_POLICY_BLOCK]),
    reqid=st.integers(0, 2),
)
operations = st.lists(
    st.one_of(sa_ops, policy_ops, st.builds(FlushOp, st.sampled_from(["sa", "policy"]))),
    max_size=25,
)


# -- the naive model -----------------------------------------------------------------------


@dataclass
class Model:
    sad: dict[tuple[bytes, int], tuple[Any, ...]] = field(default_factory=dict)
    spd: dict[tuple[Any, ...], tuple[Any, ...]] = field(default_factory=dict)

    def apply(self, op: Any) -> int:
        if isinstance(op, FlushOp):
            (self.sad if op.what == "sa" else self.spd).clear()
            return 0
        if isinstance(op, SaOp):
            return self._sa(op)
        return self._policy(op)

    def _sa(self, op: SaOp) -> int:
        key = (DSTS[op.dst], op.spi)
        have = self.sad.get(key)
        record = sa_record(op)
        if op.kind == "new":
            if have is not None:
                return errno.EEXIST
            self.sad[key] = record
        elif op.kind == "upd":
            if have is None:
                return errno.ESRCH
            if have[-1] == "larval":
                self.sad[key] = record
            elif have != record:
                return errno.EINVAL  # only lifetimes (and NAT-T ports) may change
        elif op.kind == "del":
            if have is None:
                return errno.ESRCH
            del self.sad[key]
        else:
            if have is not None:
                return errno.ENOENT  # no free SPI in [spi, spi]
            self.sad[key] = (SRC, op.reqid, op.mode, None, None, 0, "larval")
        return 0

    def _policy(self, op: PolicyOp) -> int:
        key = policy_key(op)
        if op.kind == "new":
            if key in self.spd:
                return errno.EEXIST
            self.spd[key] = policy_record(op)
        elif op.kind == "upd":
            self.spd[key] = policy_record(op)
        else:
            if key not in self.spd:
                return errno.ENOENT
            del self.spd[key]
        return 0


def sa_record(op: SaOp) -> tuple[Any, ...]:
    return (SRC, op.reqid, op.mode, "rfc4106(gcm(aes))", key_bytes(op.key), op.window, "mature")


def key_bytes(n: int) -> bytes:
    return bytes([n + 1]) * 20


def policy_key(op: PolicyOp) -> tuple[Any, ...]:
    port, mask = PORTS[op.port] if op.proto else (0, 0)
    return (op.dir, NETS[op.src], NETS[op.dst], op.proto, port, mask)


def policy_record(op: PolicyOp) -> tuple[Any, ...]:
    # A block policy's templates are never used (xfrm_convert drops them).
    reqids = (op.reqid,) if op.reqid and op.action == c.XFRM_POLICY_ALLOW else ()
    return (op.priority, op.action, reqids)


# -- driving the server ---------------------------------------------------------------------


def request(server: XfrmServer, msg: XfrmMessage) -> int:
    msg.flags = REQ
    replies = [m for d in server.handle(build_message(msg), Conn()) for m in parse_messages(d)]
    last = replies[-1]
    assert last.type == NLMSG_ERROR and isinstance(last.body, NetlinkError)
    return -last.body.error


class Conn:
    def __init__(self) -> None:
        self.state: dict[str, Any] = {}


def xselector(op: PolicyOp) -> Selector:
    (saddr, slen), (daddr, dlen) = NETS[op.src], NETS[op.dst]
    port, mask = PORTS[op.port] if op.proto else (0, 0)
    return Selector(
        daddr=xaddr(daddr),
        saddr=xaddr(saddr),
        dport=port,
        dport_mask=mask,
        family=c.AF_INET,
        prefixlen_d=dlen,
        prefixlen_s=slen,
        proto=op.proto,
    )


def message_of(op: Any) -> XfrmMessage:
    if isinstance(op, FlushOp):
        if op.what == "sa":
            return XfrmMessage(c.XFRM_MSG_FLUSHSA, UsersaFlush(c.IPSEC_PROTO_ANY))
        return XfrmMessage(c.XFRM_MSG_FLUSHPOLICY, None)
    if isinstance(op, SaOp):
        info = UsersaInfo(
            id=XfrmId(DSTS[op.dst], op.spi, c.IPPROTO_ESP),
            saddr=SRC,
            family=c.AF_INET,
            mode=op.mode,
            reqid=op.reqid,
            replay_window=op.window,
        )
        if op.kind == "del":
            return XfrmMessage(
                c.XFRM_MSG_DELSA, UsersaId(DSTS[op.dst], op.spi, c.AF_INET, c.IPPROTO_ESP)
            )
        if op.kind == "alloc":
            return XfrmMessage(c.XFRM_MSG_ALLOCSPI, UserspiInfo(info, op.spi, op.spi))
        msg_type = c.XFRM_MSG_NEWSA if op.kind == "new" else c.XFRM_MSG_UPDSA
        aead = AlgoAead("rfc4106(gcm(aes))", key_bytes(op.key), 128)
        return XfrmMessage(msg_type, info).add(c.XFRMA_ALG_AEAD, aead)
    sel = xselector(op)
    if op.kind == "del":
        return XfrmMessage(c.XFRM_MSG_DELPOLICY, UserpolicyId(sel=sel, dir=op.dir))
    msg_type = c.XFRM_MSG_NEWPOLICY if op.kind == "new" else c.XFRM_MSG_UPDPOLICY
    info = UserpolicyInfo(sel=sel, priority=op.priority, dir=op.dir, action=op.action)
    msg = XfrmMessage(msg_type, info)
    if op.reqid:
        tmpl = UserTmpl(
            id=XfrmId(xaddr("192.0.2.2"), 0, c.IPPROTO_ESP),
            family=c.AF_INET,
            saddr=SRC,
            reqid=op.reqid,
            mode=c.XFRM_MODE_TUNNEL,
        )
        msg.add(c.XFRMA_TMPL, [tmpl])
    return msg


def dump(server: XfrmServer, msg_type: int, body: Any) -> list[XfrmMessage]:
    msg = XfrmMessage(msg_type, body, flags=NLM_F_REQUEST | NLM_F_DUMP, seq=1)
    out = [m for d in server.handle(build_message(msg), Conn()) for m in parse_messages(d)]
    return out[:-1]  # without NLMSG_DONE


def server_sad(server: XfrmServer) -> dict[tuple[bytes, int], tuple[Any, ...]]:
    out = {}
    for msg in dump(server, c.XFRM_MSG_GETSA, UsersaId()):
        info = msg.body
        assert isinstance(info, UsersaInfo)
        aead = msg.get_as(c.XFRMA_ALG_AEAD, AlgoAead)
        state = "mature" if aead is not None else "larval"
        out[(info.id.daddr, info.id.spi)] = (
            info.saddr,
            info.reqid,
            info.mode,
            aead.name if aead else None,
            aead.key if aead else None,
            info.replay_window,
            state,
        )
    return out


def server_spd(server: XfrmServer) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    out = {}
    names = {xaddr(net): net for net, _ in NETS}
    for msg in dump(server, c.XFRM_MSG_GETPOLICY, UserpolicyId()):
        info = msg.body
        assert isinstance(info, UserpolicyInfo)
        sel = info.sel
        key = (
            info.dir,
            (names[sel.saddr], sel.prefixlen_s),
            (names[sel.daddr], sel.prefixlen_d),
            sel.proto,
            sel.dport,
            sel.dport_mask,
        )
        out[key] = (info.priority, info.action, tuple(t.reqid for t in msg.templates()))
    return out


@settings(max_examples=80, deadline=None)
@given(operations)
def test_engine_and_model_agree(ops: list[Any]) -> None:
    server = XfrmServer(Engine(), lambda: 0.0)
    model = Model()
    for op in ops:
        expected = model.apply(op)
        assert request(server, message_of(op)) == expected, op
    assert server_sad(server) == model.sad
    assert server_spd(server) == model.spd


def test_a_fixed_sequence_exercises_every_rule() -> None:
    ops: list[Any] = [
        SaOp("alloc", 0, 0x100),
        SaOp("new", 0, 0x100),  # EEXIST: reserved
        SaOp("upd", 0, 0x100, reqid=2),  # completes the reservation
        SaOp("upd", 0, 0x100, reqid=1),  # EINVAL: only lifetimes may change
        SaOp("alloc", 0, 0x100),  # ENOENT: taken
        SaOp("del", 1, 0x100),  # ESRCH
        SaOp("new", 1, 0x101, key=1),
        PolicyOp("new", 1, 0, 1, 6, 2, reqid=1),
        PolicyOp("new", 1, 0, 1, 6, 2, priority=3),  # EEXIST whatever the priority
        PolicyOp("upd", 1, 0, 1, 6, 2, priority=3, action=c.XFRM_POLICY_BLOCK, reqid=2),
        PolicyOp("del", 0, 0, 1, 6, 2),  # ENOENT: other direction
        PolicyOp("upd", 2, 1, 0, 0, 0),
    ]
    server = XfrmServer(Engine(), lambda: 0.0)
    model = Model()
    codes = []
    for op in ops:
        expected = model.apply(op)
        codes.append(request(server, message_of(op)))
        assert codes[-1] == expected
    assert codes == [
        0,
        errno.EEXIST,
        0,
        errno.EINVAL,
        errno.ENOENT,
        errno.ESRCH,
        0,
        0,
        errno.EEXIST,
        0,
        errno.ENOENT,
        0,
    ]
    assert server_sad(server) == model.sad and len(model.sad) == 2
    assert server_spd(server) == model.spd and len(model.spd) == 2
