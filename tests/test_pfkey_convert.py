"""keyapi/pfkey_convert: PF_KEY extensions <-> SASpec/Policy/Template/Lifetime."""

from __future__ import annotations

import errno
from dataclasses import replace
from ipaddress import ip_address, ip_network

import pytest

from pyipsec.crypto.algorithms import ENC_ALGORITHMS, INTEG_ALGORITHMS
from pyipsec.engine.lifetime import Lifetime as EngineLifetime
from pyipsec.engine.processor import Engine
from pyipsec.engine.spd import Policy, Selector, Template
from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.keyapi import pfkey_const as c
from pyipsec.keyapi.pfkey import Address, IpsecRequest, Key, Lifetime, PfkeyMessage, Sa, Sa2
from pyipsec.keyapi.pfkey import Policy as PolicyExt
from pyipsec.keyapi.pfkey_convert import (
    acquire_proposal,
    lifetime_from_pfkey,
    lifetime_to_pfkey,
    mode_from_pfkey,
    policy_extensions,
    policy_from_message,
    sa_extensions,
    spec_from_message,
    supported_extensions,
)


def host(exttype: int, addr: str, proto: int = c.IPSEC_ULPROTO_ANY, port: int = 0) -> Address:
    a = ip_address(addr)
    return Address(exttype, a, a.max_prefixlen, proto, port)


def add(sa: Sa, *extra: object, mode: int = c.IPSEC_MODE_TRANSPORT) -> PfkeyMessage:
    exts = (
        sa,
        Sa2(mode, 5),
        host(c.SADB_EXT_ADDRESS_SRC, "2001:db8::1"),
        host(c.SADB_EXT_ADDRESS_DST, "2001:db8::2"),
        *extra,
    )
    return PfkeyMessage(c.SADB_ADD, c.SADB_SATYPE_ESP, 1, 1, 0, exts)  # type: ignore[arg-type]


@pytest.mark.parametrize("alg", ENC_ALGORITHMS, ids=lambda a: a.name)
def test_every_registry_cipher_round_trips(alg: object) -> None:
    from pyipsec.crypto.algorithms import EncAlgorithm

    assert isinstance(alg, EncAlgorithm)
    integ = INTEG_ALGORITHMS[1]  # sha256
    auth = 0 if alg.is_aead else integ.pfkey_id
    keys = [Key.of(c.SADB_EXT_KEY_ENCRYPT, bytes(range(alg.keymat_size)))]
    if auth:
        keys.append(Key.of(c.SADB_EXT_KEY_AUTH, bytes(integ.key_size)))
    spec = spec_from_message(add(Sa(0x777, 99, c.SADB_SASTATE_MATURE, auth, alg.pfkey_id), *keys))
    assert spec.enc == alg.name and spec.integ == (None if alg.is_aead else "sha256")
    assert spec.replay_window == 32  # af_key.c caps the PF_KEY replay field at 32
    assert (spec.mode, spec.reqid) == ("transport", 5)
    engine = Engine()
    entry = engine.add_sa(spec, 5.0)
    exts = {
        type(e).__name__ + str(getattr(e, "exttype", "")): e
        for e in sa_extensions(entry, 10.0, 1000.0)
    }
    sa = exts[f"Sa{c.SADB_EXT_SA}"]
    assert isinstance(sa, Sa) and (sa.encrypt, sa.auth) == (alg.pfkey_id, auth)
    cur = exts[f"Lifetime{c.SADB_EXT_LIFETIME_CURRENT}"]
    assert isinstance(cur, Lifetime) and cur.addtime == 995  # wall time of the add
    if alg.keymat_size:  # NULL encryption has no key to report
        enc_key = exts[f"Key{c.SADB_EXT_KEY_ENCRYPT}"]
        assert isinstance(enc_key, Key) and enc_key.key == bytes(range(alg.keymat_size))
    no_keys = sa_extensions(entry, 10.0, 1000.0, keys=False)
    assert not any(isinstance(e, Key) for e in no_keys)


def test_sa_errors() -> None:
    ekey = Key.of(c.SADB_EXT_KEY_ENCRYPT, bytes(16))
    cases = [
        (add(Sa(1, encrypt=0), ekey), errno.EINVAL),
        (add(Sa(1, encrypt=c.SADB_EALG_3DESCBC), ekey), errno.ENOSYS),
        (
            add(Sa(1, encrypt=c.SADB_X_EALG_AESCBC), Key.of(c.SADB_EXT_KEY_ENCRYPT, bytes(17))),
            errno.EINVAL,
        ),
        (
            add(
                Sa(1, auth=c.SADB_X_AALG_SHA2_256HMAC, encrypt=c.SADB_X_EALG_AES_GCM_ICV16),
                Key.of(c.SADB_EXT_KEY_ENCRYPT, bytes(20)),
                Key.of(c.SADB_EXT_KEY_AUTH, bytes(32)),
            ),
            errno.EINVAL,
        ),
        (add(Sa(1, encrypt=c.SADB_X_EALG_AESCBC), ekey, mode=c.IPSEC_MODE_BEET), errno.EINVAL),
    ]
    for msg, code in cases:
        with pytest.raises(KeyApiError) as info:
            spec_from_message(msg)
        assert info.value.errno == code


def test_lifetimes_both_ways() -> None:
    pf = Lifetime(c.SADB_EXT_LIFETIME_HARD, allocations=9, nbytes=1000, addtime=60, usetime=0)
    life = lifetime_from_pfkey(pf)
    assert life == EngineLifetime(bytes=1000, packets=9, add_time=60)
    assert lifetime_to_pfkey(c.SADB_EXT_LIFETIME_HARD, life) == pf
    assert lifetime_from_pfkey(None).unlimited
    assert mode_from_pfkey(c.IPSEC_MODE_ANY) == "transport"


def _spd(ptype: int, *requests: IpsecRequest, proto: int = 255, sport: int = 0) -> PfkeyMessage:
    exts = (
        Address(c.SADB_EXT_ADDRESS_SRC, ip_address("198.51.100.0"), 24, proto, sport),
        Address(c.SADB_EXT_ADDRESS_DST, ip_address("203.0.113.0"), 24, proto, 0),
        PolicyExt(ptype, c.IPSEC_DIR_OUTBOUND, 0, 0x80000000, requests),
    )
    return PfkeyMessage(c.SADB_X_SPDADD, 0, 1, 1, 0, exts)


def test_policy_round_trip() -> None:
    from pyipsec.keyapi.pfkey import SockAddr

    rq = IpsecRequest(
        c.IPPROTO_ESP,
        c.IPSEC_MODE_TUNNEL,
        c.IPSEC_LEVEL_USE,
        3,
        SockAddr(ip_address("192.0.2.1")),
        SockAddr(ip_address("192.0.2.2")),
    )
    rq2 = IpsecRequest(c.IPPROTO_AH, c.IPSEC_MODE_TRANSPORT, c.IPSEC_LEVEL_UNIQUE)
    policy = policy_from_message(_spd(c.IPSEC_POLICY_IPSEC, rq, rq2, proto=6, sport=22), 0x4001)
    assert policy.selector == Selector("198.51.100.0/24", "203.0.113.0/24", 6, 22)
    assert policy.templates == (
        Template("esp", "tunnel", "192.0.2.1", "192.0.2.2", 3, "use"),
        Template("ah", "transport", reqid=0x4001, level="unique"),
    )
    assert policy.priority == 0x80000000
    exts = policy_extensions(Policy(**{**_fields(policy), "index": 9}))
    back = exts[-1]
    assert isinstance(back, PolicyExt) and back.requests == (rq, replace(rq2, reqid=0x4001))
    assert back.policy_id == 9 and back.policy_type == c.IPSEC_POLICY_IPSEC
    assert policy_from_message(_spd(c.IPSEC_POLICY_NONE)).action == "bypass"
    assert policy_from_message(_spd(c.IPSEC_POLICY_DISCARD)).action == "discard"
    with pytest.raises(KeyApiError):
        policy_from_message(_spd(c.IPSEC_POLICY_IPSEC))  # IPSEC with no request


def _fields(policy: Policy) -> dict[str, object]:
    return {
        f: getattr(policy, f) for f in ("direction", "selector", "action", "priority", "templates")
    }


def test_port_ranges_and_devices_have_no_pfkey_form() -> None:
    ranged = Policy(
        "out", Selector("198.51.100.0/24", "203.0.113.0/24", 6, (1000, 1010)), "discard"
    )
    with pytest.raises(ConfigError, match="one port per address"):
        policy_extensions(ranged)
    on_dev = Policy("in", Selector("198.51.100.0/24", None, dev="eth0"), "bypass")
    with pytest.raises(ConfigError, match="device"):
        policy_extensions(on_dev)
    single = Policy("out", Selector(ip_network("198.51.100.0/24"), None, 17, 53), "discard")
    src = policy_extensions(single)[0]
    assert isinstance(src, Address) and (src.proto, src.port, src.prefixlen) == (17, 53, 24)


def test_supported_and_proposal() -> None:
    esp = supported_extensions(c.SADB_SATYPE_ESP)
    assert [s.exttype for s in esp] == [c.SADB_EXT_SUPPORTED_AUTH, c.SADB_EXT_SUPPORTED_ENCRYPT]
    gcm = next(a for a in esp[1].algs if a.alg_id == c.SADB_X_EALG_AES_GCM_ICV16)
    assert (gcm.minbits, gcm.maxbits) == (160, 288)  # salt included, as ADD expects
    assert len(supported_extensions(c.SADB_SATYPE_AH)) == 1
    prop = acquire_proposal(Template("esp", "tunnel", "192.0.2.1", "192.0.2.2"))
    aead = [cb for cb in prop.combs if cb.auth == 0]
    cbc = [cb for cb in prop.combs if cb.encrypt == c.SADB_X_EALG_AESCBC]
    assert {cb.encrypt for cb in aead} == {c.SADB_X_EALG_AES_GCM_ICV16, 249}
    assert len(cbc) == len(INTEG_ALGORITHMS)
    assert all(cb.hard_addtime == 86400 and cb.soft_addtime < 86400 for cb in prop.combs)
    ah = acquire_proposal(Template("ah", "transport"))
    assert all(cb.encrypt == 0 and cb.auth for cb in ah.combs)


def test_ports_with_upper_protocol_any_as_setkey_sends_them() -> None:
    # setkey's "192.0.2.41/32[21] 192.0.2.33/32[any] any": proto 255 with a source
    # port. pfkey_spdadd keeps the port whatever the protocol; so do we, both ways.
    policy = policy_from_message(_spd(c.IPSEC_POLICY_DISCARD, sport=21))
    assert policy.selector == Selector("198.51.100.0/24", "203.0.113.0/24", None, 21)
    src, dst = policy_extensions(policy)[:2]
    assert isinstance(src, Address) and isinstance(dst, Address)
    assert (src.proto, src.port, dst.proto, dst.port) == (c.IPSEC_ULPROTO_ANY, 21, 255, 0)
    esp = policy_from_message(_spd(c.IPSEC_POLICY_DISCARD, proto=c.IPPROTO_ESP, sport=500))
    assert esp.selector.proto == c.IPPROTO_ESP and esp.selector.sport == (500, 500)


def test_gre_and_mh_ports_are_einval() -> None:
    for proto in (47, 135):
        with pytest.raises(KeyApiError) as info:
            policy_from_message(_spd(c.IPSEC_POLICY_DISCARD, proto=proto, sport=1))
        assert info.value.errno == errno.EINVAL and "GRE key, MH type" in str(info.value)


def test_single_port_zero_has_no_pfkey_form() -> None:
    # Port 0 in a PF_KEY address means any; the range 0-0 means "port 0 or none".
    for sel in (
        Selector("198.51.100.0/24", None, None, 0),
        Selector("198.51.100.0/24", None, 1, 0, 3),  # ICMP echo reply's type 0
    ):
        with pytest.raises(ConfigError, match="0 means any"):
            policy_extensions(Policy("out", sel, "discard"))
