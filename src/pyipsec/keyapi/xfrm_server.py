"""The xfrm_user API served by our daemon: netlink-framed requests onto a key-management
backend, answered as the Linux kernel answers them.

The daemon serves this on ``<run-dir>/xfrm.sock``, a root-only AF_UNIX SOCK_SEQPACKET
socket; each datagram carries one or more netlink messages, exactly the bytes a
NETLINK_XFRM socket would carry, so tools written against the kernel's xfrm need only a
different socket. Requests go through the same ``KeyManagementBackend`` calls IKE and
PF_KEY use (ARCHITECTURE rule 3), so all APIs see one SAD/SPD.

Answers follow ``net/xfrm/xfrm_user.c`` and ``netlink_rcv_skb``:

- a message without NLM_F_REQUEST, or of a netlink control type, is ignored;
- a refused request gets NLMSG_ERROR with ``-errno`` and the request's header echoed
  (NLM_F_CAPPED, never its keys), plus an extended-ACK message attribute
  (NLMSGERR_ATTR_MSG, NLM_F_ACK_TLVS) saying why in words;
- a successful one gets its reply (GETSA -> NEWSA, ...) and, with NLM_F_ACK, an ACK
  (error 0, NLM_F_CAPPED: only the request's header echoed);
- ``GETSA``/``GETPOLICY`` with NLM_F_DUMP answer every object with NLM_F_MULTI, then
  NLMSG_DONE; replies are packed several to a datagram, as the kernel fills an skb.

The kernel's request checks (``verify_newsa_info``, ``verify_newpolicy_info``,
``validate_tmpl``, ``verify_spi_info``...) run before the backend is called; they live in
:mod:`xfrm_convert` beside the conversions they guard.

Multicast. A netlink socket joins XFRMNLGRP_* groups with setsockopt; a Unix socket
cannot, so a client sends a **subscription message** instead:

    nlmsghdr.type = XFRM_MSG_PYIPSEC_SUBSCRIBE (0x7f00, far above XFRM_MSG_MAX)
    body          = struct { __u32 op; __u32 group; }   (host byte order)
    op            = NETLINK_ADD_MEMBERSHIP (1) or NETLINK_DROP_MEMBERSHIP (2)
    group         = XFRMNLGRP_ACQUIRE (1) ... XFRMNLGRP_MAPPING (8)

answered like any request (ACK with NLM_F_ACK, EINVAL for a bad op or group). The
daemon drains the backend's events and hands them to :meth:`XfrmServer.publish`, which
sends ACQUIRE/EXPIRE/NEWSA/UPDSA/DELSA/FLUSHSA/NEWPOLICY/UPDPOLICY/DELPOLICY/FLUSHPOLICY
notifications (seq 0, pid 0) to the connections subscribed to the matching group.
"""

from __future__ import annotations

import errno
import ipaddress
import struct
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from pyipsec.engine.backend import KeyManagementBackend
from pyipsec.engine.events import (
    Acquire,
    Event,
    Expire,
    PolicyAdded,
    PolicyDeleted,
    SaAdded,
    SaDeleted,
)
from pyipsec.engine.spd import DIRECTIONS, Policy
from pyipsec.errors import ConfigError, KeyApiError, ParseError, PyipsecError
from pyipsec.keyapi import xfrm_const as c
from pyipsec.keyapi.netlink import (
    NETLINK_ADD_MEMBERSHIP,
    NETLINK_DROP_MEMBERSHIP,
    NLM_F_ACK,
    NLM_F_ACK_TLVS,
    NLM_F_CAPPED,
    NLM_F_DUMP,
    NLM_F_MULTI,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_HDRLEN,
    NLMSG_MIN_TYPE,
    Done,
    NetlinkError,
    NlMsgHeader,
    build_attr,
    build_nlmsg,
    split_messages,
)
from pyipsec.keyapi.xfrm import XfrmMessage, build_message, parse_attrs, parse_message
from pyipsec.keyapi.xfrm_convert import (
    DIR_NAMES,
    MODE_NAMES,
    PROTO_NAMES,
    PROTO_NUMBERS,
    einval,
    entry_message,
    family_bits,
    policy_from_xfrm,
    policy_message,
    policy_to_xfrm,
    selector_from_xfrm,
    spec_from_xfrm,
    template_to_xfrm,
)
from pyipsec.keyapi.xfrm_layout import addr_str, xaddr
from pyipsec.keyapi.xfrm_structs import (
    USERSA_INFO,
    AddressFilter,
    AeventId,
    LifetimeCur,
    ReplayState,
    SadHinfo,
    SpdHinfo,
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
    XfrmId,
)
from pyipsec.keyapi.xfrm_structs import Selector as XSelector

# Our subscription message (see the module docstring).
XFRM_MSG_PYIPSEC_SUBSCRIBE = 0x7F00
SUBSCRIBE_BODY = struct.Struct("=II")
# struct nlmsgerr's extended ACK attribute carrying a text message (<linux/netlink.h>).
NLMSGERR_ATTR_MSG = 1
# Largest reply datagram: several messages are packed into one, up to this size.
MAX_DATAGRAM = 32768
GROUPS_KEY = "xfrm.groups"
_ALL_GROUPS = range(c.XFRMNLGRP_ACQUIRE, c.XFRMNLGRP_MAPPING + 1)
_ERRNO = struct.Struct("=i")


class ConnectionLike(Protocol):
    """What the server needs of a client connection: a per-connection memo."""

    state: dict[str, Any]


class Broadcaster(Protocol):
    """``io.control.SeqpacketServer`` as :meth:`XfrmServer.publish` uses it."""

    def broadcast(self, data: bytes, predicate: Callable[[Any], bool] | None = None) -> int: ...


def subscribe_message(group: int, *, join: bool = True, seq: int = 0) -> bytes:
    """A client's subscription request for ``group`` (with NLM_F_ACK)."""
    op = NETLINK_ADD_MEMBERSHIP if join else NETLINK_DROP_MEMBERSHIP
    return build_nlmsg(
        XFRM_MSG_PYIPSEC_SUBSCRIBE,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        0,
        SUBSCRIBE_BODY.pack(op, group),
    )


def _addr_of(raw: bytes, family: int) -> str:
    family_bits(family, "address")
    return addr_str(raw, family)


def _proto_name(proto: int) -> str:
    return PROTO_NAMES.get(proto, str(proto))


def _pack(datagrams: list[bytes]) -> list[bytes]:
    """Pack netlink messages into as few datagrams as fit ``MAX_DATAGRAM``."""
    out: list[bytes] = []
    current = bytearray()
    for msg in datagrams:
        if current and len(current) + len(msg) > MAX_DATAGRAM:
            out.append(bytes(current))
            current = bytearray()
        current += msg
    if current:
        out.append(bytes(current))
    return out


def error_message(hdr: NlMsgHeader, raw: bytes, code: int, text: str = "") -> bytes:
    """NLMSG_ERROR for ``raw`` (the request); ``code`` is 0 (ACK) or a positive errno."""
    # Only the request's header is echoed (NLM_F_CAPPED), as the kernel does for a socket
    # with NETLINK_CAP_ACK: a refused NEWSA would otherwise carry its keys back.
    body = NetlinkError(-code, raw[:NLMSG_HDRLEN]).pack()
    flags = NLM_F_CAPPED
    if code == 0:
        return build_nlmsg(NLMSG_ERROR, flags, hdr.seq, hdr.pid, body)
    if text:
        flags |= NLM_F_ACK_TLVS
        body += build_attr(NLMSGERR_ATTR_MSG, text.encode("utf-8", "replace")[:400] + b"\0")
    return build_nlmsg(NLMSG_ERROR, flags, hdr.seq, hdr.pid, body)


class XfrmServer:
    """xfrm_user requests onto ``backend``; ``clock`` gives the ``now`` the engine uses.

    It is the ``Handler`` of ``io.control.SeqpacketServer`` (``handle``/``closed``).
    """

    def __init__(self, backend: KeyManagementBackend, clock: Callable[[], float]) -> None:
        self.backend = backend
        self.clock = clock
        self._handlers: dict[int, Callable[[XfrmMessage], list[XfrmMessage]]] = {
            c.XFRM_MSG_NEWSA: self._new_sa,
            c.XFRM_MSG_UPDSA: self._new_sa,
            c.XFRM_MSG_DELSA: self._del_sa,
            c.XFRM_MSG_GETSA: self._get_sa,
            c.XFRM_MSG_ALLOCSPI: self._alloc_spi,
            c.XFRM_MSG_FLUSHSA: self._flush_sa,
            c.XFRM_MSG_NEWPOLICY: self._new_policy,
            c.XFRM_MSG_UPDPOLICY: self._new_policy,
            c.XFRM_MSG_DELPOLICY: self._del_policy,
            c.XFRM_MSG_GETPOLICY: self._get_policy,
            c.XFRM_MSG_FLUSHPOLICY: self._flush_policy,
            c.XFRM_MSG_GETSADINFO: self._sad_info,
            c.XFRM_MSG_GETSPDINFO: self._spd_info,
            c.XFRM_MSG_GETAE: self._get_ae,
            c.XFRM_MSG_GETDEFAULT: self._get_default,
        }

    # -- Handler protocol ---------------------------------------------------------------
    def handle(self, data: bytes, conn: ConnectionLike) -> list[bytes]:
        """Every reply datagram for one received datagram, in order."""
        replies: list[bytes] = []
        try:
            messages = list(split_messages(data))
        except KeyApiError as exc:
            hdr = NlMsgHeader(len(data), 0)
            return [error_message(hdr, bytes(data[:NLMSG_HDRLEN]), exc.errno, str(exc))]
        for hdr, payload in messages:
            raw = hdr.pack() + bytes(payload)
            replies.extend(self._one(hdr, raw, conn))
        return _pack(replies)

    def closed(self, conn: ConnectionLike) -> None:
        conn.state.pop(GROUPS_KEY, None)

    # -- one request ------------------------------------------------------------------------
    def _one(self, hdr: NlMsgHeader, raw: bytes, conn: ConnectionLike) -> list[bytes]:
        if not hdr.flags & NLM_F_REQUEST or hdr.type < NLMSG_MIN_TYPE:
            return []  # netlink_rcv_skb: not a request, or a control message
        dump = hdr.flags & NLM_F_DUMP == NLM_F_DUMP and hdr.type in (
            c.XFRM_MSG_GETSA,
            c.XFRM_MSG_GETPOLICY,
        )
        try:
            if hdr.type == XFRM_MSG_PYIPSEC_SUBSCRIBE:
                self._subscribe(raw[NLMSG_HDRLEN:], conn)
                out: list[bytes] = []
            elif dump:
                return self._dump(hdr, raw[NLMSG_HDRLEN:])
            else:
                msg = parse_message(raw)
                handler = self._handlers.get(msg.type)
                if handler is None:
                    raise KeyApiError(
                        errno.EOPNOTSUPP, f"{msg.name} is not supported by this xfrm server"
                    )
                out = [self._stamp(m, hdr) for m in handler(msg)]
        except KeyApiError as exc:
            return [error_message(hdr, raw, exc.errno, str(exc))]
        except (ConfigError, ParseError) as exc:
            return [error_message(hdr, raw, errno.EINVAL, str(exc))]
        if hdr.flags & NLM_F_ACK:
            out.append(error_message(hdr, raw, 0))
        return out

    @staticmethod
    def _stamp(msg: XfrmMessage, hdr: NlMsgHeader, flags: int = 0) -> bytes:
        msg.seq, msg.pid, msg.flags = hdr.seq, hdr.pid, flags
        return build_message(msg)

    def _subscribe(self, body: bytes, conn: ConnectionLike) -> None:
        if len(body) < SUBSCRIBE_BODY.size:
            raise einval("subscription body shorter than {op, group}")
        op, group = SUBSCRIBE_BODY.unpack_from(body)
        if group not in _ALL_GROUPS:
            raise einval(f"no xfrm multicast group {group}")
        groups: set[int] = conn.state.setdefault(GROUPS_KEY, set())
        if op == NETLINK_ADD_MEMBERSHIP:
            groups.add(group)
        elif op == NETLINK_DROP_MEMBERSHIP:
            groups.discard(group)
        else:
            raise einval(f"subscription op {op} is neither add (1) nor drop (2)")

    # -- dumps --------------------------------------------------------------------------------
    def _dump(self, hdr: NlMsgHeader, payload: bytes) -> list[bytes]:
        messages: list[XfrmMessage] = []
        if hdr.type == c.XFRM_MSG_GETSA:
            proto, filt = self._sa_dump_filter(payload)
            for entry in self.backend.dump_sa():
                if proto not in (0, c.IPSEC_PROTO_ANY) and PROTO_NUMBERS.get(entry.proto) != proto:
                    continue
                if filt is not None and not _filter_ok(filt, entry.src, entry.dst):
                    continue
                messages.append(entry_message(entry))
        else:
            for policy in self.backend.dump_policy():
                messages.extend(policy_message(policy))
        out = [self._stamp(m, hdr, NLM_F_MULTI) for m in messages]
        out.append(build_nlmsg(NLMSG_DONE, NLM_F_MULTI, hdr.seq, hdr.pid, Done(0).pack()))
        return out

    @staticmethod
    def _sa_dump_filter(payload: bytes) -> tuple[int, AddressFilter | None]:
        # xfrm_dump_sa_start: attributes follow a struct xfrm_usersa_info, when present
        # (iproute2 sends a bare family byte, older tools a usersa_id: no filters then).
        start = (USERSA_INFO.size + 3) & ~3
        if len(payload) <= start:
            return 0, None
        attrs = parse_attrs(c.XFRM_MSG_GETSA, payload[start:])
        proto, filt = 0, None
        for attr in attrs:
            if attr.type == c.XFRMA_PROTO and isinstance(attr.value, int):
                proto = attr.value
            elif attr.type == c.XFRMA_ADDRESS_FILTER and isinstance(attr.value, AddressFilter):
                filt = attr.value
        return proto, filt

    # -- SAs ----------------------------------------------------------------------------------
    def _new_sa(self, msg: XfrmMessage) -> list[XfrmMessage]:
        if not isinstance(msg.body, UsersaInfo):
            raise einval("NEWSA/UPDSA without xfrm_usersa_info")
        spec = spec_from_xfrm(msg.body, msg)
        if msg.type == c.XFRM_MSG_NEWSA:
            self.backend.add_sa(spec, self.clock())
        else:
            self.backend.update_sa(spec, self.clock())
        return []

    def _sa_key(self, sa_id: UsersaId) -> tuple[str, int, str]:
        return _addr_of(sa_id.daddr, sa_id.family), sa_id.spi, _proto_name(sa_id.proto)

    def _del_sa(self, msg: XfrmMessage) -> list[XfrmMessage]:
        if not isinstance(msg.body, UsersaId):
            raise einval("DELSA without xfrm_usersa_id")
        self.backend.del_sa(*self._sa_key(msg.body))
        return []

    def _get_sa(self, msg: XfrmMessage) -> list[XfrmMessage]:
        if not isinstance(msg.body, UsersaId):
            raise einval("GETSA without xfrm_usersa_id")
        return [entry_message(self.backend.get_sa(*self._sa_key(msg.body)))]

    def _alloc_spi(self, msg: XfrmMessage) -> list[XfrmMessage]:
        body = msg.body
        if not isinstance(body, UserspiInfo):
            raise einval("ALLOCSPI without xfrm_userspi_info")
        info = body.info
        # verify_spi_info
        if info.id.proto == c.IPPROTO_COMP and body.max >= 0x10000:
            raise einval("an IPcomp CPI range must end below 0x10000")
        if info.id.proto not in (c.IPPROTO_AH, c.IPPROTO_ESP, c.IPPROTO_COMP):
            raise einval(f"cannot allocate an SPI for protocol {info.id.proto}")
        if body.min > body.max:
            raise einval(f"SPI range {body.min:#x}-{body.max:#x} is empty")
        if info.id.proto != c.IPPROTO_ESP:
            raise KeyApiError(errno.EPROTONOSUPPORT, "only ESP SAs are supported")
        mode = MODE_NAMES.get(info.mode)
        if mode is None:
            raise KeyApiError(errno.EOPNOTSUPP, f"SA mode {info.mode} is not supported")
        dst = _addr_of(info.id.daddr, info.family)
        spi = self.backend.get_spi(
            _addr_of(info.saddr, info.family),
            dst,
            self.clock(),
            proto="esp",
            mode=mode,
            reqid=info.reqid,
            spi_min=body.min,
            spi_max=body.max,
        )
        return [entry_message(self.backend.get_sa(dst, spi, "esp"))]

    def _flush_sa(self, msg: XfrmMessage) -> list[XfrmMessage]:
        proto = msg.body.proto if isinstance(msg.body, UsersaFlush) else 0
        # xfrm_id_proto_match: 0 and IPSEC_PROTO_ANY flush every IPsec protocol.
        self.backend.flush_sa(None if proto in (0, c.IPSEC_PROTO_ANY) else _proto_name(proto))
        return []

    def _get_ae(self, msg: XfrmMessage) -> list[XfrmMessage]:
        body = msg.body
        if not isinstance(body, AeventId):
            raise einval("GETAE without xfrm_aevent_id")
        entry = self.backend.get_sa(*self._sa_key(body.sa_id))
        sa = entry.sa
        counters = getattr(sa, "counters", None)
        reply = XfrmMessage(c.XFRM_MSG_NEWAE, body)
        reply.add(
            c.XFRMA_LTIME_VAL,
            LifetimeCur(
                bytes=getattr(counters, "bytes", 0),
                packets=getattr(counters, "packets", 0),
                add_time=int(entry.add_time),
                use_time=int(entry.use_time or 0),
            ),
        )
        replay = getattr(sa, "replay", None)
        reply.add(
            c.XFRMA_REPLAY_VAL,
            ReplayState(
                oseq=getattr(sa, "seq_out", 0) & 0xFFFFFFFF,
                seq=getattr(replay, "top", 0) & 0xFFFFFFFF,
                bitmap=getattr(replay, "bitmap", 0) & 0xFFFFFFFF,
            ),
        )
        reply.add(c.XFRMA_REPLAY_THRESH, 0)
        reply.add(c.XFRMA_ETIMER_THRESH, 0)
        return [reply]

    def _sad_info(self, msg: XfrmMessage) -> list[XfrmMessage]:
        count = len(self.backend.dump_sa())
        reply = XfrmMessage(c.XFRM_MSG_NEWSADINFO, 0)
        reply.add(c.XFRMA_SAD_CNT, count)
        reply.add(c.XFRMA_SAD_HINFO, SadHinfo(sadhcnt=count, sadhmcnt=0))
        return [reply]

    # -- policies -------------------------------------------------------------------------------
    def _new_policy(self, msg: XfrmMessage) -> list[XfrmMessage]:
        if not isinstance(msg.body, UserpolicyInfo):
            raise einval("NEWPOLICY/UPDPOLICY without xfrm_userpolicy_info")
        policy = policy_from_xfrm(msg.body, msg.templates())
        if msg.type == c.XFRM_MSG_NEWPOLICY:
            self.backend.add_policy(policy)
        else:
            self.backend.update_policy(policy)
        return []

    def _find_policy(self, pid: UserpolicyId) -> Policy:
        direction = DIR_NAMES.get(pid.dir)
        if direction is None:  # verify_policy_dir
            raise einval(f"policy direction {pid.dir} is not in, out or fwd")
        if pid.index:
            policy = self.backend.get_policy(pid.index)
            if policy.direction != direction:
                raise KeyApiError(errno.ENOENT, f"no {direction} policy with index {pid.index}")
            return policy
        selector = selector_from_xfrm(pid.sel)
        for policy in self.backend.dump_policy():
            if policy.direction == direction and policy.selector == selector:
                return policy
        raise KeyApiError(errno.ENOENT, f"no {direction} policy with that selector")

    def _del_policy(self, msg: XfrmMessage) -> list[XfrmMessage]:
        if not isinstance(msg.body, UserpolicyId):
            raise einval("DELPOLICY without xfrm_userpolicy_id")
        pid = msg.body
        if pid.index:
            self._find_policy(pid)  # checks the direction
            self.backend.del_policy(pid.index)
        else:
            if pid.dir not in DIR_NAMES:
                raise einval(f"policy direction {pid.dir} is not in, out or fwd")
            self.backend.del_policy_by_selector(DIR_NAMES[pid.dir], selector_from_xfrm(pid.sel))
        return []

    def _get_policy(self, msg: XfrmMessage) -> list[XfrmMessage]:
        if not isinstance(msg.body, UserpolicyId):
            raise einval("GETPOLICY without xfrm_userpolicy_id")
        return policy_message(self._find_policy(msg.body))

    def _flush_policy(self, msg: XfrmMessage) -> list[XfrmMessage]:
        self.backend.flush_policy()
        return []

    def _spd_info(self, msg: XfrmMessage) -> list[XfrmMessage]:
        counts = dict.fromkeys(DIRECTIONS, 0)
        for policy in self.backend.dump_policy():
            counts[policy.direction] += 1
        reply = XfrmMessage(c.XFRM_MSG_NEWSPDINFO, 0)
        reply.add(c.XFRMA_SPD_INFO, SpdInfo(counts["in"], counts["out"], counts["fwd"]))
        reply.add(c.XFRMA_SPD_HINFO, SpdHinfo(sum(counts.values()), 0))
        return [reply]

    def _get_default(self, msg: XfrmMessage) -> list[XfrmMessage]:
        # The engine lets unmatched traffic pass in every direction (no default block).
        accept = c.XFRM_USERPOLICY_ACCEPT
        return [XfrmMessage(c.XFRM_MSG_GETDEFAULT, UserpolicyDefault(accept, accept, accept))]

    # -- notifications ------------------------------------------------------------------------
    def notifications(self, events: Iterable[Event]) -> list[tuple[int, bytes]]:
        """``(group, message)`` for a batch of backend events, in order.

        A run of SAs (or policies) deleted by one flush becomes one FLUSHSA (FLUSHPOLICY),
        as the kernel notifies a flush once. SAs removed by a hard expiry are announced by
        their EXPIRE alone, as in the kernel.
        """
        out: list[tuple[int, bytes]] = []
        last_flush: int | None = None
        for event in events:
            flush = None
            try:
                if isinstance(event, SaDeleted) and event.reason == "flushed":
                    flush = c.XFRM_MSG_FLUSHSA
                    if last_flush != flush:
                        body = UsersaFlush(c.IPSEC_PROTO_ANY)
                        out.append((c.XFRMNLGRP_SA, self._event(c.XFRM_MSG_FLUSHSA, body)))
                elif isinstance(event, PolicyDeleted) and event.reason == "flushed":
                    flush = c.XFRM_MSG_FLUSHPOLICY
                    if last_flush != flush:
                        out.append((c.XFRMNLGRP_POLICY, self._event(c.XFRM_MSG_FLUSHPOLICY, None)))
                else:
                    out.extend(self._notification(event))
            except PyipsecError:
                pass  # the object changed again since the event: nothing to describe
            last_flush = flush
        return out

    def publish(self, server: Broadcaster, events: Iterable[Event]) -> int:
        """Send the notifications for ``events`` to subscribed connections."""
        sent = 0
        for group, data in self.notifications(events):
            sent += server.broadcast(data, _member_of(group))
        return sent

    @staticmethod
    def _event(msg_type: int, body: Any, attrs: list[Any] | None = None) -> bytes:
        return build_message(XfrmMessage(msg_type, body, attrs or []))

    def _notification(self, event: Event) -> list[tuple[int, bytes]]:
        if isinstance(event, Acquire):
            return [(c.XFRMNLGRP_ACQUIRE, build_message(self._acquire(event)))]
        if isinstance(event, Expire):
            return [(c.XFRMNLGRP_EXPIRE, build_message(self._expire(event)))]
        if isinstance(event, SaAdded):
            msg = entry_message(self.backend.get_sa(event.sa.dst, event.sa.spi, event.sa.proto))
            msg.type = c.XFRM_MSG_UPDSA if event.update else c.XFRM_MSG_NEWSA
            return [(c.XFRMNLGRP_SA, build_message(msg))]
        if isinstance(event, SaDeleted):
            if event.reason != "deleted":
                return []
            sa = event.sa
            family = c.AF_INET if sa.dst.version == 4 else c.AF_INET6
            body = UsersaId(xaddr(sa.dst), sa.spi, family, PROTO_NUMBERS.get(sa.proto, 0))
            return [(c.XFRMNLGRP_SA, self._event(c.XFRM_MSG_DELSA, body))]
        if isinstance(event, PolicyAdded):
            policy = self.backend.get_policy(event.index)
            msg_type = c.XFRM_MSG_UPDPOLICY if event.update else c.XFRM_MSG_NEWPOLICY
            return [
                (c.XFRMNLGRP_POLICY, build_message(m)) for m in policy_message(policy, msg_type)
            ]
        if isinstance(event, PolicyDeleted):
            pid = UserpolicyId(index=event.index, dir=event.index & 7)
            return [(c.XFRMNLGRP_POLICY, self._event(c.XFRM_MSG_DELPOLICY, pid))]
        return []

    def _acquire(self, event: Acquire) -> XfrmMessage:
        family = c.AF_INET if event.flow_src.version == 4 else c.AF_INET6
        bits = 32 if family == c.AF_INET else 128
        sel = XSelector(
            daddr=xaddr(event.flow_dst),
            saddr=xaddr(event.flow_src),
            dport=event.flow_dport or 0,
            dport_mask=0xFFFF if event.flow_dport is not None else 0,
            sport=event.flow_sport or 0,
            sport_mask=0xFFFF if event.flow_sport is not None else 0,
            family=family,
            prefixlen_d=bits,
            prefixlen_s=bits,
            proto=event.flow_proto,
        )
        try:
            policy = self.backend.get_policy(event.policy_index)
            pinfo = policy_to_xfrm(policy)[0][0]
        except PyipsecError:
            pinfo = UserpolicyInfo(index=event.policy_index, dir=event.policy_index & 7)
        tmpl = template_to_xfrm(event.template, family)
        body = UserAcquire(
            id=XfrmId(xaddr(event.dst), 0, PROTO_NUMBERS[event.template.proto]),
            saddr=xaddr(event.src),
            sel=sel,
            policy=pinfo,
            aalgos=tmpl.aalgos,
            ealgos=tmpl.ealgos,
            calgos=tmpl.calgos,
            seq=event.seq & 0xFFFFFFFF,
        )
        return XfrmMessage(c.XFRM_MSG_ACQUIRE, body, []).add(c.XFRMA_TMPL, [tmpl])

    def _expire(self, event: Expire) -> XfrmMessage:
        sa = event.sa
        state: UsersaInfo
        try:
            entry_body = entry_message(self.backend.get_sa(sa.dst, sa.spi, sa.proto)).body
            state = entry_body if isinstance(entry_body, UsersaInfo) else UsersaInfo()
        except PyipsecError:
            # A hard expiry has already removed the SA: describe it by its identity.
            family = c.AF_INET if sa.dst.version == 4 else c.AF_INET6
            state = UsersaInfo(
                id=XfrmId(xaddr(sa.dst), sa.spi, PROTO_NUMBERS.get(sa.proto, 0)),
                saddr=xaddr(event.src),
                reqid=event.reqid,
                family=family,
            )
        return XfrmMessage(c.XFRM_MSG_EXPIRE, UserExpire(state, int(event.hard)))


def _member_of(group: int) -> Callable[[Any], bool]:
    def predicate(conn: Any) -> bool:
        groups = getattr(conn, "state", {}).get(GROUPS_KEY)
        return isinstance(groups, set) and group in groups

    return predicate


def _filter_ok(filt: AddressFilter, src: Any, dst: Any) -> bool:
    """xfrm_state_filter_match: both addresses inside the filter's prefixes."""
    if filt.family not in (c.AF_INET, c.AF_INET6):
        return True
    try:
        snet = ipaddress.ip_network((addr_str(filt.saddr, filt.family), filt.splen), strict=False)
        dnet = ipaddress.ip_network((addr_str(filt.daddr, filt.family), filt.dplen), strict=False)
    except ValueError:
        return False
    return (
        src.version == snet.version and src in snet and dst.version == dnet.version and dst in dnet
    )
