"""PF_KEY extensions <-> the engine's SASpec, Policy, Template and Lifetime.

Both directions follow what Linux's af_key.c does with the same message, so a client
written for the kernel (setkey, racoon, charon's kernel_pfkey) sees the same answers:

- ``spec_from_message``: ADD/UPDATE -> ``SASpec`` (``pfkey_msg2xfrm_state``);
- ``sa_extensions``: a SAD entry -> the extensions of a GET/DUMP reply, an ADD
  broadcast or an EXPIRE (``__pfkey_xfrm_state2msg``);
- ``policy_from_message``: SPDADD/SPDUPDATE/SPDDELETE -> ``Policy`` (``pfkey_spdadd``);
- ``policy_extensions``: a policy -> its SPDGET/SPDDUMP extensions
  (``pfkey_xfrm_policy2msg``);
- ``supported_extensions`` and ``acquire_proposal``: what REGISTER and ACQUIRE carry.

Algorithm numbers come from the crypto registry only (``enc_by_pfkey``/``integ_by_pfkey``).
Errors are ``KeyApiError`` with the kernel's errno: ENOSYS for an algorithm number we do
not implement, EINVAL for a key of the wrong length or a value out of range,
EPROTONOSUPPORT for an SA type Linux knows but the engine cannot hold (AH, IPComp).

Deviations from Linux, on purpose: AES-GCM-16 and ChaCha20-Poly1305 (our private number
249) are accepted in ADD/UPDATE, where Linux's PF_KEY knows no AEAD at all (ENOSYS);
security contexts are accepted and ignored, as a kernel without an LSM does.

Times: the engine runs on a monotonic clock, PF_KEY's ``addtime``/``usetime`` of a
LIFETIME_CURRENT are wall-clock seconds; the caller passes both ``now`` values.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Final

from pyipsec.crypto.algorithms import (
    ENC_ALGORITHMS,
    INTEG_ALGORITHMS,
    EncAlgorithm,
    enc_by_name,
    enc_by_pfkey,
    integ_by_name,
    integ_by_pfkey,
)
from pyipsec.engine.lifetime import Lifetime as EngineLifetime
from pyipsec.engine.sad import SadEntry, SASpec, SaState
from pyipsec.engine.spd import Policy, Selector, Template
from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.keyapi import pfkey_const as k
from pyipsec.keyapi.pfkey import (
    Address,
    Alg,
    Comb,
    Extension,
    IpsecRequest,
    Key,
    Lifetime,
    NatTPort,
    NatTType,
    PfkeyMessage,
    Proposal,
    Sa,
    Sa2,
    SockAddr,
    Supported,
)
from pyipsec.keyapi.pfkey import (
    Policy as PolicyExt,
)

__all__ = [
    "DIRECTION_FROM_PFKEY",
    "DIRECTION_TO_PFKEY",
    "PolicyTimes",
    "acquire_proposal",
    "lifetime_from_pfkey",
    "lifetime_to_pfkey",
    "mode_from_pfkey",
    "mode_to_pfkey",
    "policy_extensions",
    "policy_from_message",
    "sa_extensions",
    "selector_from_message",
    "spec_from_message",
    "supported_extensions",
]

IPAddress = IPv4Address | IPv6Address

# af_key.c: the PF_KEY replay field feeds a 32-bit bitmap (x->replay.bitmap).
PFKEY_MAX_REPLAY: Final = 32
# af_key.c dump_esp_combs: the lifetimes offered in an ACQUIRE's proposal.
COMB_HARD_ADDTIME: Final = 24 * 60 * 60
COMB_SOFT_ADDTIME: Final = 20 * 60 * 60
COMB_HARD_USETIME: Final = 8 * 60 * 60
COMB_SOFT_USETIME: Final = 7 * 60 * 60
ACQUIRE_REPLAY: Final = 32  # sadb_prop_replay in the kernel's ACQUIRE

_MODES_IN: Final = {
    k.IPSEC_MODE_ANY: "transport",  # pfkey_mode_to_xfrm: ANY is transport
    k.IPSEC_MODE_TRANSPORT: "transport",
    k.IPSEC_MODE_TUNNEL: "tunnel",
}
_MODES_OUT: Final = {"transport": k.IPSEC_MODE_TRANSPORT, "tunnel": k.IPSEC_MODE_TUNNEL}
DIRECTION_FROM_PFKEY: Final = {
    k.IPSEC_DIR_INBOUND: "in",
    k.IPSEC_DIR_OUTBOUND: "out",
    k.IPSEC_DIR_FWD: "fwd",
}
DIRECTION_TO_PFKEY: Final = {v: key for key, v in DIRECTION_FROM_PFKEY.items()}
_PROTO_NAMES: Final = {k.IPPROTO_ESP: "esp", k.IPPROTO_AH: "ah", k.IPPROTO_COMP: "ipcomp"}
_PROTO_NUMBERS: Final = {v: key for key, v in _PROTO_NAMES.items()}
_LEVELS_IN: Final = {
    k.IPSEC_LEVEL_DEFAULT: "required",
    k.IPSEC_LEVEL_USE: "use",
    k.IPSEC_LEVEL_REQUIRE: "required",
    k.IPSEC_LEVEL_UNIQUE: "unique",
}
_LEVELS_OUT: Final = {
    "use": k.IPSEC_LEVEL_USE,
    "required": k.IPSEC_LEVEL_REQUIRE,
    "unique": k.IPSEC_LEVEL_UNIQUE,
}
_STATES: Final = {
    SaState.LARVAL: k.SADB_SASTATE_LARVAL,
    SaState.MATURE: k.SADB_SASTATE_MATURE,
    SaState.DYING: k.SADB_SASTATE_DYING,
    SaState.DEAD: k.SADB_SASTATE_DEAD,
}


def _einval(why: str) -> KeyApiError:
    return KeyApiError(errno.EINVAL, f"PF_KEY: {why}")


# --- modes and lifetimes -------------------------------------------------------------


def mode_from_pfkey(mode: int) -> str:
    """``IPSEC_MODE_*`` -> the engine's mode; BEET is valid in Linux but not here."""
    name = _MODES_IN.get(mode)
    if name is None:
        raise _einval(f"mode {mode} is not supported (transport or tunnel only)")
    return name


def mode_to_pfkey(mode: str) -> int:
    return _MODES_OUT[mode]


def lifetime_from_pfkey(ext: Lifetime | None) -> EngineLifetime:
    """PF_KEY soft/hard lifetime -> engine limits; 0 means no limit (as in xfrm).

    Linux takes ``allocations`` as the packet limit (``_KEY2X`` into
    ``lft.*_packet_limit``), and so do we.
    """
    if ext is None:
        return EngineLifetime()
    return EngineLifetime(
        bytes=ext.nbytes or None,
        packets=ext.allocations or None,
        add_time=ext.addtime or None,
        use_time=ext.usetime or None,
    )


def lifetime_to_pfkey(exttype: int, life: EngineLifetime) -> Lifetime:
    return Lifetime(
        exttype,
        allocations=life.packets or 0,
        nbytes=life.bytes or 0,
        addtime=int(life.add_time or 0),
        usetime=int(life.use_time or 0),
    )


def _wall(mono: float | None, now: float, wall_now: float) -> int:
    """A monotonic instant as wall-clock seconds (0 stays "never")."""
    if mono is None:
        return 0
    return max(int(wall_now - (now - mono)), 0)


# --- SAs -----------------------------------------------------------------------------


def _enc_from_pfkey(alg_id: int, key: Key | None) -> tuple[str, bytes]:
    if alg_id == k.SADB_EALG_NONE:
        # esp_init_state refuses an ESP SA without a cipher.
        raise _einval("ESP needs an encryption algorithm")
    if not any(a.pfkey_id == alg_id for a in ENC_ALGORITHMS):
        raise KeyApiError(errno.ENOSYS, f"PF_KEY: encryption algorithm {alg_id} not supported")
    material = b"" if key is None else key.key
    bits = 0 if key is None else key.bits
    if bits % 8:
        raise _einval("encryption key is not a whole number of bytes")
    try:
        alg = enc_by_pfkey(alg_id, bits)
    except ConfigError as exc:
        raise _einval(f"encryption key of {bits} bits does not fit algorithm {alg_id}") from exc
    return alg.name, material


def _integ_from_pfkey(alg_id: int, key: Key | None, aead: bool) -> tuple[str | None, bytes]:
    if alg_id in (k.SADB_AALG_NONE, k.SADB_X_AALG_NULL):
        return None, b""
    if not any(a.pfkey_id == alg_id for a in INTEG_ALGORITHMS):
        raise KeyApiError(errno.ENOSYS, f"PF_KEY: authentication algorithm {alg_id} unknown")
    if aead:
        raise _einval("an AEAD cipher takes no separate authentication algorithm")
    alg = integ_by_pfkey(alg_id)
    if key is None or key.bits != 8 * alg.key_size:
        raise _einval(f"authentication key must have {8 * alg.key_size} bits")
    return alg.name, key.key


def spec_from_message(msg: PfkeyMessage) -> SASpec:
    """The ``SASpec`` an ADD or UPDATE (already through ``check_message``) describes."""
    sa, src, dst = msg.sa, msg.src, msg.dst
    if sa is None or src is None or dst is None:
        raise _einval("missing SA or address extension")
    proto = k.satype_to_proto(msg.satype)
    if proto in (k.IPPROTO_AH, k.IPPROTO_COMP):
        raise KeyApiError(errno.EPROTONOSUPPORT, "PF_KEY: the engine holds ESP SAs only")
    if proto != k.IPPROTO_ESP:
        raise _einval(f"SA type {msg.satype} not supported")
    enc, enc_key = _enc_from_pfkey(sa.encrypt, msg.key_encrypt)
    integ, integ_key = _integ_from_pfkey(sa.auth, msg.key_auth, enc_by_name(enc).is_aead)
    sa2 = msg.sa2
    mode = mode_from_pfkey(sa2.mode if sa2 is not None else k.IPSEC_MODE_ANY)
    encap: tuple[int, int] | None = None
    nat = msg.nat_t_type
    if nat is not None:
        if nat.encap_type != k.UDP_ENCAP_ESPINUDP:
            # RFC 3948 encapsulation only; the non-IKE marker variant is obsolete.
            raise _einval(f"NAT-T encapsulation type {nat.encap_type} not supported")
        sport, dport = msg.nat_t_sport, msg.nat_t_dport
        if sport is None or dport is None or not sport.port or not dport.port:
            raise _einval("NAT-T needs both UDP ports")
        encap = (sport.port, dport.port)
    try:
        return SASpec(
            spi=sa.spi,
            src=src.addr,
            dst=dst.addr,
            mode=mode,  # type: ignore[arg-type]
            enc=enc,
            enc_key=enc_key,
            integ=integ,
            integ_key=integ_key,
            replay_window=min(sa.replay, PFKEY_MAX_REPLAY),
            encap=encap,
            reqid=0 if sa2 is None else sa2.reqid,
            soft=lifetime_from_pfkey(msg.lifetime_soft),
            hard=lifetime_from_pfkey(msg.lifetime_hard),
        )
    except ConfigError as exc:
        raise _einval(str(exc)) from exc


def _host(exttype: int, addr: IPAddress, proto: int = k.IPSEC_ULPROTO_ANY) -> Address:
    return Address(exttype, addr, addr.max_prefixlen, proto)


def sa_extensions(
    entry: SadEntry,
    now: float,
    wall_now: float,
    *,
    keys: bool = True,
    which: tuple[int, ...] = (k.SADB_EXT_LIFETIME_HARD, k.SADB_EXT_LIFETIME_SOFT),
) -> tuple[Extension, ...]:
    """An SA as the kernel reports it: SA, lifetimes, addresses, keys, SA2, NAT-T.

    ``keys`` False leaves the key extensions out (EXPIRE); ``which`` picks the limit
    lifetimes reported (an EXPIRE carries only the one that fired).
    """
    spec = entry.spec
    auth = encrypt = 0
    replay = 0
    if spec is not None:
        enc_alg = enc_by_name(spec.enc)
        encrypt = enc_alg.pfkey_id
        auth = 0 if spec.integ is None else integ_by_name(spec.integ).pfkey_id
        replay = min(spec.replay_window, 0xFF)
    exts: list[Extension] = [
        Sa(entry.spi, replay, _STATES[entry.state], auth, encrypt),
    ]
    counters = None if entry.sa is None else entry.sa.counters
    exts.append(
        Lifetime(
            k.SADB_EXT_LIFETIME_CURRENT,
            allocations=0 if counters is None else counters.packets,
            nbytes=0 if counters is None else counters.bytes,
            addtime=_wall(entry.add_time, now, wall_now),
            usetime=_wall(entry.use_time, now, wall_now),
        )
    )
    if spec is not None:
        if k.SADB_EXT_LIFETIME_HARD in which:
            exts.append(lifetime_to_pfkey(k.SADB_EXT_LIFETIME_HARD, spec.hard))
        if k.SADB_EXT_LIFETIME_SOFT in which:
            exts.append(lifetime_to_pfkey(k.SADB_EXT_LIFETIME_SOFT, spec.soft))
    exts.append(_host(k.SADB_EXT_ADDRESS_SRC, entry.src))
    exts.append(_host(k.SADB_EXT_ADDRESS_DST, entry.dst))
    if keys and spec is not None:
        if spec.integ_key:
            exts.append(Key.of(k.SADB_EXT_KEY_AUTH, spec.integ_key))
        if spec.enc_key:
            exts.append(Key.of(k.SADB_EXT_KEY_ENCRYPT, spec.enc_key))
    exts.append(Sa2(_MODES_OUT.get(entry.mode, k.IPSEC_MODE_ANY), entry.reqid))
    if entry.encap is not None:
        exts.append(NatTType(k.UDP_ENCAP_ESPINUDP))
        exts.append(NatTPort(k.SADB_X_EXT_NAT_T_SPORT, entry.encap[0]))
        exts.append(NatTPort(k.SADB_X_EXT_NAT_T_DPORT, entry.encap[1]))
    return tuple(exts)


# --- policies ------------------------------------------------------------------------


def _network(addr: Address) -> IPv4Network | IPv6Network:
    return ip_network((addr.addr, addr.prefixlen), strict=False)


def selector_from_message(msg: PfkeyMessage) -> Selector:
    """The selector of an SPD message: prefixes, upper protocol, one port per side.

    For ICMP the kernel carries the type in the source port and the code in the
    destination port, as our ``Selector`` does; port 0 is "any" in both cases. Ports
    go with any upper-layer protocol, "any" (255) included: pfkey_spdadd copies them
    whatever ``sadb_address_proto`` says (setkey's ``[21] ... any``). ``Selector``
    refuses what it cannot match as Linux would (GRE keys, MH types): EINVAL.
    """
    src, dst = msg.src, msg.dst
    if src is None or dst is None:
        raise _einval("missing address extension")
    if src.proto != dst.proto:
        # pfkey_spdadd takes the protocol from the source address only; a disagreeing
        # destination is a client bug, refused rather than guessed.
        raise _einval("source and destination disagree on the upper-layer protocol")
    proto: int | None = None if src.proto in (0, k.IPSEC_ULPROTO_ANY) else src.proto
    sport: int | None = src.port or None
    dport: int | None = dst.port or None
    try:
        return Selector(_network(src), _network(dst), proto, sport, dport)
    except ConfigError as exc:
        raise _einval(str(exc)) from exc


def _template(rq: IpsecRequest, reqid: int) -> Template:
    proto = _PROTO_NAMES.get(rq.proto)
    if proto is None:
        raise _einval(f"ipsecrequest protocol {rq.proto} not supported")
    mode = mode_from_pfkey(rq.mode)
    level = _LEVELS_IN.get(rq.level)
    if level is None:
        raise _einval(f"ipsecrequest level {rq.level} not supported")
    src = dst = None
    if mode == "tunnel":
        if rq.src is None or rq.dst is None:
            raise _einval("tunnel-mode ipsecrequest without endpoints")
        src, dst = rq.src.addr, rq.dst.addr
    try:
        return Template(proto=proto, mode=mode, src=src, dst=dst, reqid=reqid, level=level)
    except ConfigError as exc:
        raise _einval(str(exc)) from exc


def policy_from_message(msg: PfkeyMessage, unique_reqid: int = 0) -> Policy:
    """The ``Policy`` of an SPDADD/SPDUPDATE/SPDSETIDX (after ``check_message``).

    ``unique_reqid`` is given to a ``unique`` request without a reqid, as the kernel's
    ``gen_reqid`` does; the caller picks it (one per policy).
    """
    pol = msg.policy
    if pol is None:
        raise _einval("missing X_POLICY")
    direction = DIRECTION_FROM_PFKEY.get(pol.direction)
    if direction is None:
        raise _einval(f"policy direction {pol.direction} out of range")
    selector = selector_from_message(msg)
    templates: tuple[Template, ...] = ()
    if pol.policy_type == k.IPSEC_POLICY_DISCARD:
        action = "discard"
    elif pol.policy_type == k.IPSEC_POLICY_NONE:
        action = "bypass"
    elif pol.policy_type == k.IPSEC_POLICY_IPSEC:
        if not pol.requests:
            raise _einval("an IPSEC policy needs at least one ipsecrequest")
        action = "protect"
        templates = tuple(
            _template(
                rq,
                rq.reqid or (unique_reqid if rq.level == k.IPSEC_LEVEL_UNIQUE else 0),
            )
            for rq in pol.requests
        )
    else:
        raise _einval(f"policy type {pol.policy_type} not supported")
    try:
        return Policy(direction, selector, action, pol.priority, templates)
    except ConfigError as exc:
        raise _einval(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class PolicyTimes:
    """What the kernel reports as a policy's LIFETIME_CURRENT (wall-clock seconds)."""

    created: int = 0
    last_use: int = 0
    hits: int = 0
    nbytes: int = 0


def _one_port(value: int | tuple[int, int] | None, what: str) -> int:
    # PF_KEY has one port per address; a range our SPD allows has no PF_KEY form.
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    lo, hi = value
    if lo != hi:
        raise ConfigError(
            f"{what} range {lo}-{hi} cannot be expressed in PF_KEY (one port per address)"
        )
    if lo == 0:
        # Port 0 on the wire is "any" (pfkey_spdadd sets no mask for it), but the
        # range 0-0 matches only packets whose port is 0 (or that have none).
        raise ConfigError(f"{what} 0 alone cannot be expressed in PF_KEY (0 means any)")
    return lo


def policy_extensions(policy: Policy, times: PolicyTimes | None = None) -> tuple[Extension, ...]:
    """A policy as SPDGET/SPDDUMP/SPDADD broadcasts carry it.

    Raises ``ConfigError`` for what PF_KEY cannot express: a port range (split it into
    single-port policies, or use xfrm) or an interface-bound selector.
    """
    sel = policy.selector
    if sel.dev is not None:
        raise ConfigError(f"a policy bound to device {sel.dev} cannot be expressed in PF_KEY")
    sport = _one_port(sel.sport, "source port")
    dport = _one_port(sel.dport, "destination port")
    proto = k.IPSEC_ULPROTO_ANY if sel.proto is None else sel.proto
    src_net, dst_net = sel.src_net, sel.dst_net
    times = times or PolicyTimes()
    requests: list[IpsecRequest] = []
    for tmpl in policy.templates:
        pair: tuple[SockAddr | None, SockAddr | None] = (None, None)
        if isinstance(tmpl.src, IPv4Address | IPv6Address) and isinstance(
            tmpl.dst, IPv4Address | IPv6Address
        ):
            pair = (SockAddr(tmpl.src), SockAddr(tmpl.dst))
        requests.append(
            IpsecRequest(
                _PROTO_NUMBERS[tmpl.proto],
                _MODES_OUT[tmpl.mode],
                _LEVELS_OUT[tmpl.level],
                tmpl.reqid,
                *pair,
            )
        )
    if policy.action == "protect":
        ptype = k.IPSEC_POLICY_IPSEC
    elif policy.action == "discard":
        ptype = k.IPSEC_POLICY_DISCARD
    else:
        ptype = k.IPSEC_POLICY_NONE
    return (
        Address(k.SADB_EXT_ADDRESS_SRC, src_net.network_address, src_net.prefixlen, proto, sport),
        Address(k.SADB_EXT_ADDRESS_DST, dst_net.network_address, dst_net.prefixlen, proto, dport),
        Lifetime(k.SADB_EXT_LIFETIME_HARD),
        Lifetime(k.SADB_EXT_LIFETIME_SOFT),
        Lifetime(
            k.SADB_EXT_LIFETIME_CURRENT,
            allocations=times.hits,
            nbytes=times.nbytes,
            addtime=times.created,
            usetime=times.last_use,
        ),
        PolicyExt(
            ptype,
            DIRECTION_TO_PFKEY[policy.direction],
            policy.index,
            policy.priority,
            tuple(requests),
        ),
    )


# --- REGISTER and ACQUIRE ------------------------------------------------------------


def _enc_families() -> list[tuple[int, list[EncAlgorithm]]]:
    """Encryption algorithms grouped by PF_KEY number (AES comes in three key sizes)."""
    groups: dict[int, list[EncAlgorithm]] = {}
    for alg in ENC_ALGORITHMS:
        groups.setdefault(alg.pfkey_id, []).append(alg)
    return sorted(groups.items())


def _ivlen(algs: Iterable[EncAlgorithm]) -> int:
    # Linux fills sadb_alg_ivlen with 8 for every cipher that has an IV (not bits, as
    # RFC 2367 §2.3.8 says); clients ignore it. We do as Linux.
    return 8 if any(a.iv_size for a in algs) else 0


def supported_extensions(satype: int) -> tuple[Supported, ...]:
    """SUPPORTED_AUTH (and, for ESP or UNSPEC, SUPPORTED_ENCRYPT) of a REGISTER reply.

    Key sizes are in bits; for AEAD ciphers they count the salt, as ADD expects them.
    """
    auth = Supported(
        k.SADB_EXT_SUPPORTED_AUTH,
        tuple(
            Alg(a.pfkey_id, 0, 8 * a.key_size, 8 * a.key_size)
            for a in sorted(INTEG_ALGORITHMS, key=lambda a: a.pfkey_id)
        ),
    )
    if satype not in (k.SADB_SATYPE_ESP, k.SADB_SATYPE_UNSPEC):
        return (auth,)
    encrypt = Supported(
        k.SADB_EXT_SUPPORTED_ENCRYPT,
        tuple(
            Alg(
                alg_id,
                _ivlen(algs),
                min(a.key_bits for a in algs),
                max(a.key_bits for a in algs),
            )
            for alg_id, algs in _enc_families()
        ),
    )
    return (auth, encrypt)


def acquire_proposal(template: Template) -> Proposal:
    """The PROPOSAL of an ACQUIRE for ``template`` (af_key.c dump_esp_combs/dump_ah_combs).

    One comb per acceptable algorithm combination: each AEAD cipher alone, each CBC
    cipher with each HMAC (NULL encryption is never proposed), with the kernel's
    default lifetimes, so a racoon-style daemon can negotiate from it.
    """
    lifetimes = {
        "soft_addtime": COMB_SOFT_ADDTIME,
        "hard_addtime": COMB_HARD_ADDTIME,
        "soft_usetime": COMB_SOFT_USETIME,
        "hard_usetime": COMB_HARD_USETIME,
    }
    combs: list[Comb] = []
    integs = sorted(INTEG_ALGORITHMS, key=lambda a: a.pfkey_id)
    if template.proto == "ah":
        for integ in integs:
            bits = 8 * integ.key_size
            combs.append(
                Comb(auth=integ.pfkey_id, auth_minbits=bits, auth_maxbits=bits, **lifetimes)
            )
        return Proposal(ACQUIRE_REPLAY, tuple(combs))
    for alg_id, algs in _enc_families():
        kind = algs[0].kind
        lo, hi = min(a.key_bits for a in algs), max(a.key_bits for a in algs)
        if kind == "null":
            continue
        if kind == "aead":
            combs.append(Comb(encrypt=alg_id, encrypt_minbits=lo, encrypt_maxbits=hi, **lifetimes))
            continue
        for integ in integs:
            bits = 8 * integ.key_size
            combs.append(
                Comb(
                    auth=integ.pfkey_id,
                    encrypt=alg_id,
                    auth_minbits=bits,
                    auth_maxbits=bits,
                    encrypt_minbits=lo,
                    encrypt_maxbits=hi,
                    **lifetimes,
                )
            )
    return Proposal(ACQUIRE_REPLAY, tuple(combs))
