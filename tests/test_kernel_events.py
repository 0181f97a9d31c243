"""io.kernel_events without a kernel: xfrm notifications (built by our codec and read back
from their bytes, as the daemon reads them) become the engine's events; ``Installed``
records what went through it, in front of the embedded engine."""

from __future__ import annotations

import ipaddress

import pytest

from pyipsec.engine.events import (
    Acquire,
    Expire,
    PolicyAdded,
    PolicyDeleted,
    SaAdded,
    SaDeleted,
    SaId,
)
from pyipsec.engine.processor import Engine
from pyipsec.engine.sad import SASpec
from pyipsec.engine.spd import Policy, Selector, Template
from pyipsec.errors import KeyApiError
from pyipsec.io.kernel_events import Installed, KernelEvents
from pyipsec.keyapi import xfrm_const as c
from pyipsec.keyapi.xfrm import XfrmMessage, build_message, parse_message
from pyipsec.keyapi.xfrm_convert import policy_message, sa_message, selector_to_xfrm
from pyipsec.keyapi.xfrm_layout import xaddr
from pyipsec.keyapi.xfrm_structs import (
    UserExpire,
    UserpolicyId,
    UsersaFlush,
    UsersaId,
    UsersaInfo,
)

A, B = "192.0.2.1", "192.0.2.2"
V6 = "2001:db8::2"


def wire(msg: XfrmMessage) -> XfrmMessage:
    """Through the bytes, as a notification arrives from the kernel."""
    return parse_message(build_message(msg))


def spec(spi: int, dst: str = B, src: str = A) -> SASpec:
    return SASpec(spi, src, dst, enc="aes128gcm16", enc_key=bytes(20), reqid=3)


def policy(index: int, direction: str = "out", net: str = "198.51.100.0/24") -> Policy:
    tmpl = Template("esp", "tunnel", A, B, reqid=3)
    return Policy(direction, Selector(net, "203.0.113.0/24"), "protect", 10, (tmpl,), index=index)


def sa_id(spi: int, dst: str = B) -> SaId:
    return SaId(ipaddress.ip_address(dst), spi, "esp")


def newsa(spi: int, dst: str = B, msg_type: int = c.XFRM_MSG_NEWSA) -> XfrmMessage:
    src = A if ":" not in dst else "2001:db8::1"
    return wire(sa_message(spec(spi, dst, src), msg_type))


def delsa(spi: int, dst: str = B) -> XfrmMessage:
    # xfrm_notify_sa: the id as body, the whole state in XFRMA_SA.
    state = newsa(spi, dst).body
    assert isinstance(state, UsersaInfo)
    ident = UsersaId(state.id.daddr, spi, state.family, c.IPPROTO_ESP)
    return wire(XfrmMessage(c.XFRM_MSG_DELSA, ident).add(c.XFRMA_SA, state))


def test_sa_notifications_become_added_and_deleted() -> None:
    events = KernelEvents()
    assert events.convert(newsa(0x1000)) == [SaAdded(sa_id(0x1000), False)]
    # UPDSA (GETSPI then UPDATE) and a NEWSA for a state already known are updates.
    assert events.convert(newsa(0x2000, msg_type=c.XFRM_MSG_UPDSA)) == [
        SaAdded(sa_id(0x2000), True)
    ]
    assert events.convert(newsa(0x1000)) == [SaAdded(sa_id(0x1000), True)]
    assert events.convert(delsa(0x1000)) == [SaDeleted(sa_id(0x1000), "deleted")]
    assert events.sas == {sa_id(0x2000)}


def test_flush_expands_into_the_known_states_of_that_protocol() -> None:
    events = KernelEvents()
    events.seed([sa_id(0x10), sa_id(0x11, V6)], [])
    events.convert(newsa(0x12))
    ah_flush = wire(XfrmMessage(c.XFRM_MSG_FLUSHSA, UsersaFlush(c.IPPROTO_AH)))
    assert events.convert(ah_flush) == []
    flush = wire(XfrmMessage(c.XFRM_MSG_FLUSHSA, UsersaFlush(c.IPSEC_PROTO_ANY)))
    out = events.convert(flush)
    assert out == [
        SaDeleted(sa_id(0x10), "flushed"),
        SaDeleted(sa_id(0x12), "flushed"),
        SaDeleted(sa_id(0x11, V6), "flushed"),
    ]
    assert events.sas == set()
    assert events.convert(flush) == []


def test_hard_expire_also_deletes_the_state_soft_does_not() -> None:
    events = KernelEvents()
    events.convert(newsa(0x1000))
    state = newsa(0x1000).body
    assert isinstance(state, UsersaInfo)
    soft = events.convert(wire(XfrmMessage(c.XFRM_MSG_EXPIRE, UserExpire(state, 0))))
    assert len(soft) == 1 and isinstance(soft[0], Expire) and not soft[0].hard
    hard = events.convert(wire(XfrmMessage(c.XFRM_MSG_EXPIRE, UserExpire(state, 1))))
    assert isinstance(hard[0], Expire) and hard[0].hard and hard[0].sa == sa_id(0x1000)
    assert hard[1:] == [SaDeleted(sa_id(0x1000), "expired")]
    assert events.sas == set()


def test_policy_notifications_and_flush() -> None:
    events = KernelEvents()
    events.seed([], [policy(0x9)])
    [add] = policy_message(policy(0x11))
    assert events.convert(wire(add)) == [PolicyAdded(0x11, False)]
    [upd] = policy_message(policy(0x11), c.XFRM_MSG_UPDPOLICY)
    assert events.convert(wire(upd)) == [PolicyAdded(0x11, True)]
    # xfrm_notify_policy on a delete by selector: no index in the id, the policy in an
    # attribute.
    info = add.body
    pid = UserpolicyId(selector_to_xfrm(policy(0x11).selector), 0, 1)
    deleted = XfrmMessage(c.XFRM_MSG_DELPOLICY, pid).add(c.XFRMA_POLICY, info)
    assert events.convert(wire(deleted)) == [PolicyDeleted(0x11, "deleted")]
    events.convert(wire(add))
    flush = events.convert(wire(XfrmMessage(c.XFRM_MSG_FLUSHPOLICY, None)))
    assert flush == [PolicyDeleted(0x9, "flushed"), PolicyDeleted(0x11, "flushed")]
    assert events.policies == {}


def test_acquire_is_converted_and_unmodelled_messages_are_ignored() -> None:
    from pyipsec.keyapi.xfrm_convert import policy_to_xfrm, template_to_xfrm
    from pyipsec.keyapi.xfrm_structs import UserAcquire, XfrmId

    pol = policy(0x19)
    [(pinfo, _)] = policy_to_xfrm(pol)
    tmpl = template_to_xfrm(pol.templates[0], c.AF_INET)
    body = UserAcquire(
        id=XfrmId(xaddr(ipaddress.ip_address(B)), 0, c.IPPROTO_ESP),
        saddr=xaddr(ipaddress.ip_address(A)),
        sel=pinfo.sel,
        policy=pinfo,
        seq=77,
    )
    msg = XfrmMessage(c.XFRM_MSG_ACQUIRE, body).add(c.XFRMA_TMPL, [tmpl])
    [event] = KernelEvents().convert(wire(msg))
    assert isinstance(event, Acquire)
    assert (event.seq, event.policy_index, str(event.dst)) == (77, 0x19, B)
    assert KernelEvents().convert(wire(XfrmMessage(c.XFRM_MSG_GETSADINFO, 0))) == []


def test_a_body_of_the_wrong_kind_is_a_key_api_error() -> None:
    events = KernelEvents()
    with pytest.raises(KeyApiError):
        events.convert(XfrmMessage(c.XFRM_MSG_NEWSA, UsersaFlush(0)))
    with pytest.raises(KeyApiError):
        events.convert(XfrmMessage(c.XFRM_MSG_NEWPOLICY, UsersaFlush(0)))
    with pytest.raises(KeyApiError):
        events.convert(XfrmMessage(c.XFRM_MSG_DELPOLICY, None))


# -- Installed ---------------------------------------------------------------------------------


def test_installed_removes_only_what_went_through_it() -> None:
    engine = Engine()
    engine.add_sa(spec(0x100), 0.0)  # the administrator's, before the daemon
    admin_policy = engine.add_policy(policy(0, "in"))
    ours = Installed(engine)
    ours.add_sa(spec(0x200), 0.0)
    spi = ours.get_spi(A, B, 0.0)
    index = ours.add_policy(policy(0))
    assert ours.sas == {sa_id(0x200), sa_id(spi)}
    assert ours.policies == {index}
    assert ours.remove_all() == (2, 1)
    assert [e.spi for e in engine.dump_sa()] == [0x100]
    assert [p.index for p in engine.dump_policy()] == [admin_policy]
    assert ours.remove_all() == (0, 0)


def test_installed_forgets_what_others_removed_and_what_it_flushed() -> None:
    engine = Engine()
    ours = Installed(engine)
    ours.add_sa(spec(0x200), 0.0)
    ours.add_sa(spec(0x201), 0.0)
    out_index = ours.add_policy(policy(0))
    in_index = ours.add_policy(policy(0, "in"))
    ours.forget(SaDeleted(sa_id(0x201), "deleted"))
    ours.forget(PolicyDeleted(in_index, "deleted"))
    assert ours.sas == {sa_id(0x200)} and ours.policies == {out_index}
    ours.add_policy(policy(0, "in", "198.51.100.128/25"))
    assert ours.flush_policy("in") == 2  # the forgotten one too: it was still there
    assert ours.policies == {out_index}
    assert ours.flush_sa() == 2
    assert ours.sas == set()


def test_installed_keeps_nothing_when_the_backend_refuses() -> None:
    engine = Engine()
    ours = Installed(engine)
    ours.add_sa(spec(0x300), 0.0)
    with pytest.raises(KeyApiError):
        ours.add_sa(spec(0x300), 0.0)  # EEXIST
    with pytest.raises(KeyApiError):
        ours.del_sa(B, 0x999)
    assert ours.sas == {sa_id(0x300)}
    assert ours.update_sa(spec(0x300), 1.0).spi == 0x300
