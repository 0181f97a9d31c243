"""The Linux kernel's xfrm as a key-management backend (ARCHITECTURE rule 3).

``KernelBackend`` implements ``engine.backend.KeyManagementBackend`` over NETLINK_XFRM:
the calls IKE, PF_KEY and the xfrm server make on the embedded engine install SAs and
policies into the kernel of the current network namespace instead, and the kernel's
ACQUIRE and EXPIRE multicasts (XFRMNLGRP_ACQUIRE/EXPIRE) come back as our ``Acquire`` and
``Expire`` events from ``next_event()``. ``fileno()`` is the event socket, for the
daemon's loop.

Refusals are ``KeyApiError`` with the kernel's errno. A kernel without ESP (no esp4/esp6
module, or no crypto for the algorithm) refuses NEWSA with ENOSYS, EPROTONOSUPPORT or
ENOENT; the message then reads "this kernel cannot run ESP with <alg>: <strerror>; use the
embedded data plane" (worded by ``io.netlink_socket``).

Differences from the engine, forced by the kernel's API:

- The kernel does not return a new policy's index; it is read back with GETPOLICY by
  selector right after NEWPOLICY/UPDPOLICY.
- xfrm selectors hold ``port/mask``; a policy whose port range is not one aligned block
  is refused (EINVAL) rather than split into several kernel policies that one index
  could not name.
- ``flush_policy(direction)`` deletes that direction's policies one by one (the kernel
  flushes all directions at once).
- Kernel objects our model cannot express (socket policies, interface selectors,
  algorithms outside our registry) are left out of ``dump_policy``/``dump_sa``.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
from collections import deque

from pyipsec.engine.events import Acquire, Event, Expire, IPAddress, SaId
from pyipsec.engine.sad import SadEntry, SASpec, SaState
from pyipsec.engine.spd import DIRECTIONS, Policy, Selector
from pyipsec.errors import KeyApiError, PyipsecError
from pyipsec.io.netlink_socket import XfrmSocket
from pyipsec.keyapi import xfrm_const as c
from pyipsec.keyapi.xfrm import XfrmMessage
from pyipsec.keyapi.xfrm_convert import (
    MODE_NAMES,
    PROTO_NAMES,
    PROTO_NUMBERS,
    policy_from_xfrm,
    policy_to_xfrm,
    sa_message,
    selector_to_xfrm,
    spec_from_xfrm,
    template_from_xfrm,
)
from pyipsec.keyapi.xfrm_layout import addr_str, xaddr
from pyipsec.keyapi.xfrm_structs import (
    UserAcquire,
    UserExpire,
    UserpolicyId,
    UserpolicyInfo,
    UsersaFlush,
    UsersaId,
    UsersaInfo,
    UserspiInfo,
    XfrmId,
)

log = logging.getLogger("pyipsec.kernel")


def _addr(value: str | IPAddress) -> IPAddress:
    return ipaddress.ip_address(value)


def _family(address: IPAddress) -> int:
    return c.AF_INET if address.version == 4 else c.AF_INET6


def _proto_number(proto: str) -> int:
    number = PROTO_NUMBERS.get(proto)
    if number is None:
        raise KeyApiError(errno.EINVAL, f"unknown IPsec protocol {proto!r}")
    return number


def entry_from_message(msg: XfrmMessage) -> SadEntry:
    """A SadEntry describing a kernel state (NEWSA reply or dump entry). States without
    keys (ALLOCSPI reservations) are larval; their ``spec`` is None."""
    info = msg.body
    if not isinstance(info, UsersaInfo):
        raise KeyApiError(errno.EINVAL, f"{msg.name} does not describe an SA")
    src = _addr(addr_str(info.saddr, info.family))
    dst = _addr(addr_str(info.id.daddr, info.family))
    entry = SadEntry(
        spi=info.id.spi,
        src=src,
        dst=dst,
        proto=PROTO_NAMES.get(info.id.proto, str(info.id.proto)),
        mode=MODE_NAMES.get(info.mode, str(info.mode)),
        reqid=info.reqid,
        now=float(info.curlft.add_time),
    )
    has_keys = any(
        msg.get(t) is not None
        for t in (c.XFRMA_ALG_AEAD, c.XFRMA_ALG_CRYPT, c.XFRMA_ALG_AUTH, c.XFRMA_ALG_AUTH_TRUNC)
    )
    if has_keys:
        spec = spec_from_xfrm(info, msg)
        entry.spec = spec
        entry.encap = spec.encap
        entry.state = SaState.MATURE
    if info.curlft.use_time:
        entry.use_time = float(info.curlft.use_time)
    return entry


def acquire_from_message(msg: XfrmMessage) -> Acquire:
    """Our Acquire event from the kernel's XFRM_MSG_ACQUIRE."""
    body = msg.body
    if not isinstance(body, UserAcquire):
        raise KeyApiError(errno.EINVAL, "ACQUIRE without xfrm_user_acquire")
    sel = body.sel
    family = sel.family or body.policy.sel.family
    templates = msg.templates()
    # The kernel sends every template of the policy; the one wanted is the one whose
    # protocol and destination the ACQUIRE names (or the first, if none matches).
    chosen = next(
        (t for t in templates if t.id.proto == body.id.proto and t.id.daddr == body.id.daddr),
        templates[0] if templates else None,
    )
    if chosen is None:
        raise KeyApiError(errno.EINVAL, "ACQUIRE without a template")
    template = template_from_xfrm(chosen, body.policy.sel.family or family)
    sa_family = chosen.family or family
    return Acquire(
        seq=body.seq,
        policy_index=body.policy.index,
        template=template,
        src=_addr(addr_str(body.saddr, sa_family)),
        dst=_addr(addr_str(body.id.daddr, sa_family)),
        flow_src=_addr(addr_str(sel.saddr, family)),
        flow_dst=_addr(addr_str(sel.daddr, family)),
        flow_proto=sel.proto,
        flow_sport=sel.sport if sel.sport_mask else None,
        flow_dport=sel.dport if sel.dport_mask else None,
    )


def expire_from_message(msg: XfrmMessage) -> Expire:
    """Our Expire event from the kernel's XFRM_MSG_EXPIRE (it does not say which limit
    was hit: ``cause`` is "kernel")."""
    body = msg.body
    if not isinstance(body, UserExpire):
        raise KeyApiError(errno.EINVAL, "EXPIRE without xfrm_user_expire")
    state = body.state
    dst = _addr(addr_str(state.id.daddr, state.family))
    proto = PROTO_NAMES.get(state.id.proto, str(state.id.proto))
    return Expire(
        SaId(dst, state.id.spi, proto),
        _addr(addr_str(state.saddr, state.family)),
        state.reqid,
        bool(body.hard),
        "kernel",
    )


class KernelBackend:
    """A KeyManagementBackend over the kernel's NETLINK_XFRM (needs CAP_NET_ADMIN)."""

    def __init__(
        self,
        sock: XfrmSocket | None = None,
        events: XfrmSocket | None = None,
        *,
        listen: bool = True,
    ) -> None:
        self.sock = sock if sock is not None else XfrmSocket()
        self.events_sock: XfrmSocket | None = None
        if listen:
            self.events_sock = events if events is not None else XfrmSocket()
            self.events_sock.subscribe([c.XFRMNLGRP_ACQUIRE, c.XFRMNLGRP_EXPIRE])
        self._events: deque[Event] = deque()

    def close(self) -> None:
        self.sock.close()
        if self.events_sock is not None:
            self.events_sock.close()

    def fileno(self) -> int:
        """The multicast socket: readable when the kernel has an event for us."""
        if self.events_sock is None:
            raise KeyApiError(errno.EBADF, "this backend does not listen for events")
        return self.events_sock.fileno()

    # -- SAs ------------------------------------------------------------------------------
    def get_spi(
        self,
        src: str | IPAddress,
        dst: str | IPAddress,
        now: float,
        *,
        proto: str = "esp",
        mode: str = "tunnel",
        reqid: int = 0,
        spi_min: int = 0x100,
        spi_max: int = 0xFFFFFFFF,
    ) -> int:
        src_a, dst_a = _addr(src), _addr(dst)
        info = UsersaInfo(
            id=XfrmId(xaddr(dst_a), 0, _proto_number(proto)),
            saddr=xaddr(src_a),
            reqid=reqid,
            family=_family(dst_a),
            mode=1 if mode == "tunnel" else 0,
        )
        replies = self.sock.request(
            XfrmMessage(c.XFRM_MSG_ALLOCSPI, UserspiInfo(info, spi_min, spi_max))
        )
        for reply in replies:
            if isinstance(reply.body, UsersaInfo):
                return reply.body.id.spi
        raise KeyApiError(errno.EIO, "ALLOCSPI answered without the new state")

    def add_sa(self, spec: SASpec, now: float) -> SadEntry:
        self.sock.request(sa_message(spec, c.XFRM_MSG_NEWSA))
        return SadEntry.from_spec(spec, now)

    def update_sa(self, spec: SASpec, now: float) -> SadEntry:
        self.sock.request(sa_message(spec, c.XFRM_MSG_UPDSA))
        return SadEntry.from_spec(spec, now)

    def _sa_id(self, dst: str | IPAddress, spi: int, proto: str) -> UsersaId:
        dst_a = _addr(dst)
        return UsersaId(xaddr(dst_a), spi, _family(dst_a), _proto_number(proto))

    def get_sa(self, dst: str | IPAddress, spi: int, proto: str = "esp") -> SadEntry:
        replies = self.sock.request(XfrmMessage(c.XFRM_MSG_GETSA, self._sa_id(dst, spi, proto)))
        for reply in replies:
            if reply.type == c.XFRM_MSG_NEWSA:
                return entry_from_message(reply)
        raise KeyApiError(errno.ESRCH, f"no SA {proto} spi 0x{spi:08x} dst {dst}")

    def del_sa(self, dst: str | IPAddress, spi: int, proto: str = "esp") -> SadEntry:
        entry = self.get_sa(dst, spi, proto)
        self.sock.request(XfrmMessage(c.XFRM_MSG_DELSA, self._sa_id(dst, spi, proto)))
        return entry

    def flush_sa(self, proto: str | None = None) -> int:
        count = sum(1 for e in self.dump_sa() if proto is None or e.proto == proto)
        number = c.IPSEC_PROTO_ANY if proto is None else _proto_number(proto)
        self.sock.request(XfrmMessage(c.XFRM_MSG_FLUSHSA, UsersaFlush(number)))
        return count

    def dump_sa(self) -> list[SadEntry]:
        out = []
        for msg in self.sock.dump(c.XFRM_MSG_GETSA):
            try:
                out.append(entry_from_message(msg))
            except PyipsecError as exc:
                log.debug("kernel SA left out of the dump: %s", exc)
        return out

    # -- policies ---------------------------------------------------------------------------
    def _install(self, policy: Policy, msg_type: int) -> int:
        selector_to_xfrm(policy.selector)  # EINVAL if the ports need several selectors
        [(info, tmpls)] = policy_to_xfrm(policy)
        msg = XfrmMessage(msg_type, info)
        if tmpls:
            msg.add(c.XFRMA_TMPL, tmpls)
        self.sock.request(msg)
        return self._lookup(policy.direction, policy.selector).index

    def add_policy(self, policy: Policy) -> int:
        return self._install(policy, c.XFRM_MSG_NEWPOLICY)

    def update_policy(self, policy: Policy) -> int:
        return self._install(policy, c.XFRM_MSG_UPDPOLICY)

    def _get(self, pid: UserpolicyId) -> Policy:
        replies = self.sock.request(XfrmMessage(c.XFRM_MSG_GETPOLICY, pid))
        for reply in replies:
            if isinstance(reply.body, UserpolicyInfo):
                return policy_from_xfrm(reply.body, reply.templates())
        raise KeyApiError(errno.ENOENT, "GETPOLICY answered without a policy")

    def _lookup(self, direction: str, selector: Selector) -> Policy:
        if direction not in DIRECTIONS:
            raise KeyApiError(errno.EINVAL, f"unknown direction {direction!r}")
        pid = UserpolicyId(sel=selector_to_xfrm(selector), dir=DIRECTIONS[direction])
        return self._get(pid)

    def get_policy(self, index: int) -> Policy:
        return self._get(UserpolicyId(index=index, dir=index & 7))

    def del_policy(self, index: int) -> Policy:
        policy = self.get_policy(index)
        self.sock.request(
            XfrmMessage(c.XFRM_MSG_DELPOLICY, UserpolicyId(index=index, dir=index & 7))
        )
        return policy

    def del_policy_by_selector(self, direction: str, selector: Selector) -> Policy:
        policy = self._lookup(direction, selector)
        return self.del_policy(policy.index)

    def flush_policy(self, direction: str | None = None) -> int:
        policies = self.dump_policy()
        if direction is None:
            self.sock.request(XfrmMessage(c.XFRM_MSG_FLUSHPOLICY, None))
            return len(policies)
        doomed = [p for p in policies if p.direction == direction]
        for policy in doomed:
            self.del_policy(policy.index)
        return len(doomed)

    def dump_policy(self) -> list[Policy]:
        out = []
        for msg in self.sock.dump(c.XFRM_MSG_GETPOLICY):
            if not isinstance(msg.body, UserpolicyInfo):
                continue
            try:
                out.append(policy_from_xfrm(msg.body, msg.templates()))
            except PyipsecError as exc:
                log.debug("kernel policy left out of the dump: %s", exc)
        return out

    # -- events -----------------------------------------------------------------------------
    def next_event(self) -> Event | None:
        """The next ACQUIRE/EXPIRE from the kernel, without blocking."""
        if not self._events and self.events_sock is not None:
            for msg in self.events_sock.receive(timeout=0):
                try:
                    if msg.type == c.XFRM_MSG_ACQUIRE:
                        self._events.append(acquire_from_message(msg))
                    elif msg.type == c.XFRM_MSG_EXPIRE:
                        self._events.append(expire_from_message(msg))
                except PyipsecError as exc:
                    log.warning("kernel %s not understood: %s", msg.name, exc)
        return self._events.popleft() if self._events else None
