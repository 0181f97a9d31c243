"""xfrm_user structs <-> the engine's objects (``SASpec``, ``Policy``, ``Template``, ``Lifetime``).

Both directions are used: the xfrm server turns requests into engine calls and engine
state back into dump replies; the Linux-kernel backend turns engine objects into kernel
requests and the kernel's dumps back into engine objects. Algorithm names go through the
crypto registry (``rfc4106(gcm(aes))`` <-> ``aes128gcm16``).

Every refusal is ``KeyApiError`` with the errno the kernel would give for the same
request (EINVAL for bad values, ENOSYS for an algorithm it does not know, EAFNOSUPPORT
for a family), plus a message that says which field is wrong. No key reaches a message.

Where the two models differ:

- Ports. Our selectors hold inclusive ranges; xfrm holds ``port/mask`` (match when
  ``(port ^ sel.port) & mask == 0``, xfrm_selector_match). A mask whose set bits are
  contiguous from the top is exactly one aligned range; any other mask has no range
  equivalent and is refused. A range that is not one aligned block is split into the
  fewest ``port/mask`` blocks (``range_to_masks``); a policy needing more than one block
  becomes several xfrm policies (``policy_to_xfrm`` returns them all). Ports go with
  any protocol, 0 ("any") included, as in the kernel, which matches a flow without
  ports as ports 0 (the SPD does the same); only GRE and MH selectors with ports are
  refused (EINVAL): the kernel matches those against the GRE key and the MH type,
  which the engine does not extract.
- Transport-mode template addresses. The kernel ignores them when it resolves a
  transport template (xfrm_tmpl_resolve_one takes the flow's addresses), and our
  ``Template`` has none, so they are dropped.
- A ``block`` policy's templates are never used by the kernel; they are dropped too.
- SA selectors. ``SASpec`` has none; the kernel only checks an SA's selector on
  transport-mode input. A request's SA selector is validated and not kept; dumps show
  the all-zero selector (``ip xfrm`` then prints no ``sel`` line).
"""

from __future__ import annotations

import errno
import ipaddress
from dataclasses import dataclass

from pyipsec.crypto.algorithms import (
    ENC_ALGORITHMS,
    EncAlgorithm,
    enc_by_kernel_name,
    enc_by_name,
    integ_by_kernel_name,
    integ_by_name,
)
from pyipsec.engine.events import IPAddress
from pyipsec.engine.lifetime import Lifetime
from pyipsec.engine.sad import SadEntry, SASpec
from pyipsec.engine.spd import ICMP_PROTOCOLS, Policy, Selector, Template
from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.keyapi import xfrm_const as c
from pyipsec.keyapi.xfrm import Attr, XfrmMessage
from pyipsec.keyapi.xfrm_layout import addr_str, xaddr
from pyipsec.keyapi.xfrm_structs import (
    Algo,
    AlgoAead,
    AlgoAuth,
    EncapTmpl,
    LifetimeCfg,
    LifetimeCur,
    ReplayStateEsn,
    Stats,
    UserpolicyInfo,
    UserpolicyType,
    UsersaInfo,
    UserTmpl,
    XfrmId,
)
from pyipsec.keyapi.xfrm_structs import Selector as XSelector

PROTO_NUMBERS: dict[str, int] = {"esp": c.IPPROTO_ESP, "ah": c.IPPROTO_AH, "ipcomp": c.IPPROTO_COMP}
PROTO_NAMES: dict[int, str] = {v: k for k, v in PROTO_NUMBERS.items()}
MODE_NUMBERS: dict[str, int] = {"transport": c.XFRM_MODE_TRANSPORT, "tunnel": c.XFRM_MODE_TUNNEL}
MODE_NAMES: dict[int, str] = {v: k for k, v in MODE_NUMBERS.items()}
DIR_NAMES: dict[int, str] = {
    c.XFRM_POLICY_IN: "in",
    c.XFRM_POLICY_OUT: "out",
    c.XFRM_POLICY_FWD: "fwd",
}
DIR_NUMBERS: dict[str, int] = {v: k for k, v in DIR_NAMES.items()}
UDP_ENCAP_ESPINUDP = 2  # <linux/udp.h>: RFC 3948 ESP-in-UDP with the non-ESP marker
# XFRMA_ALG_AUTH carries no truncation; the kernel then uses its algorithm table's
# default (net/xfrm/xfrm_algo.c aalg_list: icv_truncbits). HMAC-SHA-256 defaults to 96
# bits there, for history's sake, which no ESP peer speaks (RFC 4868 says 128).
KERNEL_DEFAULT_TRUNC_BITS: dict[str, int] = {
    "hmac(sha1)": 96,
    "hmac(sha256)": 96,
    "hmac(sha384)": 192,
    "hmac(sha512)": 256,
}
_FAMILY_BITS: dict[int, int] = {int(c.AF_INET): 32, int(c.AF_INET6): 128}
_KNOWN_KERNEL_ENC = frozenset(a.kernel_name for a in ENC_ALGORITHMS)
_U16 = 0xFFFF


def einval(message: str) -> KeyApiError:
    return KeyApiError(errno.EINVAL, message)


def family_bits(family: int, what: str) -> int:
    bits = _FAMILY_BITS.get(family)
    if bits is None:
        raise KeyApiError(errno.EAFNOSUPPORT, f"{what}: address family {family} is not IPv4/IPv6")
    return bits


def _address(raw: bytes, family: int) -> IPAddress:
    return ipaddress.ip_address(addr_str(raw, family))


def _family(address: IPAddress) -> int:
    return c.AF_INET if address.version == 4 else c.AF_INET6


# -- ports ----------------------------------------------------------------------------------


def mask_to_range(port: int, mask: int, top: int = _U16) -> tuple[int, int] | None:
    """The inclusive range an xfrm ``port/mask`` matches; None for ANY (mask 0).

    EINVAL for a mask whose bits are not contiguous from the top (no range matches
    the same ports), or a block that lies wholly above ``top`` (ICMP type/code: 255).
    """
    if not 0 <= port <= _U16 or not 0 <= mask <= _U16:
        raise einval(f"port {port}/mask {mask:#x} out of range")
    if mask == 0:
        return None
    free = ~mask & _U16
    if free & (free + 1):
        raise einval(f"port mask {mask:#06x} is not a prefix mask: no port range matches it")
    lo = port & mask
    hi = lo | free
    if lo > top:
        raise einval(f"port block {lo}-{hi} lies above {top}")
    hi = min(hi, top)
    if lo == 0 and hi == top:
        return None
    return (lo, hi)


def range_to_masks(lo: int, hi: int) -> list[tuple[int, int]]:
    """The fewest aligned ``(port, mask)`` blocks covering ``lo..hi`` exactly (as a
    CIDR range split). ``0..65535`` is ``[(0, 0)]``."""
    if not 0 <= lo <= hi <= _U16:
        raise ConfigError(f"port range {lo}-{hi} is not within 0-65535")
    blocks: list[tuple[int, int]] = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << 16
        while size > hi - lo + 1:
            size >>= 1
        blocks.append((lo, ~(size - 1) & _U16))
        lo += size
    return blocks


def _port_blocks(rng: tuple[int, int] | None, top: int) -> list[tuple[int, int]]:
    if rng is None:
        return [(0, 0)]
    lo, hi = rng
    if lo == 0 and hi == top and top < _U16:
        # ICMP type/code 0-255: the whole field is ANY.
        return [(0, 0)]
    return range_to_masks(lo, hi)


# -- selectors ------------------------------------------------------------------------------


def check_selector(sel: XSelector, allow_unspec: bool) -> None:
    """verify_newsa_info / verify_newpolicy_info: a known family and sane prefix lengths."""
    if sel.family == c.AF_UNSPEC and allow_unspec:
        return
    if sel.family not in _FAMILY_BITS:
        raise einval(f"selector family {sel.family} is neither AF_INET nor AF_INET6")
    bits = _FAMILY_BITS[sel.family]
    if sel.prefixlen_d > bits or sel.prefixlen_s > bits:
        raise einval(f"selector prefix length above {bits}")


def selector_from_xfrm(sel: XSelector) -> Selector:
    """An SPD selector from ``struct xfrm_selector`` (already checked)."""
    check_selector(sel, allow_unspec=False)
    if sel.ifindex:
        raise KeyApiError(errno.EOPNOTSUPP, "interface selectors (dev) are not supported over xfrm")
    src = ipaddress.ip_network((_address(sel.saddr, sel.family), sel.prefixlen_s), strict=False)
    dst = ipaddress.ip_network((_address(sel.daddr, sel.family), sel.prefixlen_d), strict=False)
    proto = sel.proto or None
    top = 255 if proto in ICMP_PROTOCOLS else _U16
    sport = mask_to_range(sel.sport, sel.sport_mask, top)
    dport = mask_to_range(sel.dport, sel.dport_mask, top)
    try:
        return Selector(src, dst, proto, sport, dport)
    except ConfigError as exc:
        raise einval(str(exc)) from None


def selectors_to_xfrm(selector: Selector) -> list[XSelector]:
    """``struct xfrm_selector`` for an SPD selector: one per port/mask block combination."""
    if selector.dev is not None:
        raise ConfigError("interface selectors (dev) cannot be sent over xfrm by name")
    family = c.AF_INET if selector.family == 4 else c.AF_INET6
    src, dst = selector.src_net, selector.dst_net
    top = 255 if selector.proto in ICMP_PROTOCOLS else _U16
    out = []
    for sport, smask in _port_blocks(selector.sport_range, top):
        for dport, dmask in _port_blocks(selector.dport_range, top):
            out.append(
                XSelector(
                    daddr=xaddr(dst.network_address),
                    saddr=xaddr(src.network_address),
                    dport=dport,
                    dport_mask=dmask,
                    sport=sport,
                    sport_mask=smask,
                    family=family,
                    prefixlen_d=dst.prefixlen,
                    prefixlen_s=src.prefixlen,
                    proto=selector.proto or 0,
                )
            )
    return out


def selector_to_xfrm(selector: Selector) -> XSelector:
    """The one ``xfrm_selector`` for ``selector``; EINVAL if its ports need several."""
    sels = selectors_to_xfrm(selector)
    if len(sels) != 1:
        raise einval(
            f"port ranges {selector.sport_range} / {selector.dport_range} need {len(sels)} "
            "xfrm selectors (port/mask blocks); use ranges aligned to a power of two"
        )
    return sels[0]


# -- templates -------------------------------------------------------------------------------


def template_from_xfrm(tmpl: UserTmpl, policy_family: int) -> Template:
    """validate_tmpl, then the engine's Template."""
    proto = PROTO_NAMES.get(tmpl.id.proto)
    if proto is None:
        raise einval(f"template protocol {tmpl.id.proto} is not ESP, AH or IPcomp")
    mode = MODE_NAMES.get(tmpl.mode)
    if mode is None:
        if tmpl.mode < c.XFRM_MODE_MAX:
            raise KeyApiError(errno.EOPNOTSUPP, f"template mode {tmpl.mode} is not supported")
        raise einval(f"template mode {tmpl.mode} is invalid")
    family = tmpl.family or policy_family
    if tmpl.optional > 1:
        raise einval(f"template optional flag {tmpl.optional} is not 0 or 1")
    if tmpl.optional:
        level = "use"
    elif tmpl.share == c.XFRM_SHARE_UNIQUE:
        level = "unique"
    else:
        level = "required"
    src = dst = None
    if mode == "tunnel":
        family_bits(family, "template")
        src = _address(tmpl.saddr, family)
        dst = _address(tmpl.id.daddr, family)
    elif family != policy_family:
        # validate_tmpl: a transport template must be of the selector's family.
        raise einval("a transport-mode template must have the policy's address family")
    try:
        return Template(proto, mode, src, dst, tmpl.reqid, level, tmpl.id.spi)
    except ConfigError as exc:
        raise einval(str(exc)) from None


def template_to_xfrm(tmpl: Template, policy_family: int) -> UserTmpl:
    family = policy_family
    daddr = saddr = xaddr(None)
    if tmpl.mode == "tunnel" and tmpl.src is not None and tmpl.dst is not None:
        dst = ipaddress.ip_address(tmpl.dst)
        family = _family(dst)
        daddr, saddr = xaddr(dst), xaddr(tmpl.src)
    return UserTmpl(
        id=XfrmId(daddr, tmpl.spi or 0, PROTO_NUMBERS[tmpl.proto]),
        family=family,
        saddr=saddr,
        reqid=tmpl.reqid,
        mode=MODE_NUMBERS[tmpl.mode],
        share=c.XFRM_SHARE_UNIQUE if tmpl.level == "unique" else c.XFRM_SHARE_ANY,
        optional=1 if tmpl.level == "use" else 0,
    )


# -- policies --------------------------------------------------------------------------------


def check_policy_info(info: UserpolicyInfo) -> None:
    """verify_newpolicy_info: share, action, family, direction, index."""
    if info.share > c.XFRM_SHARE_UNIQUE:
        raise einval(f"policy share {info.share} is invalid")
    if info.action not in (c.XFRM_POLICY_ALLOW, c.XFRM_POLICY_BLOCK):
        raise einval(f"policy action {info.action} is neither allow nor block")
    check_selector(info.sel, allow_unspec=False)
    if info.dir not in DIR_NAMES:
        raise einval(f"policy direction {info.dir} is not in, out or fwd")
    if info.index and info.index & 7 != info.dir:
        raise einval(f"policy index {info.index} does not encode direction {info.dir}")


def policy_from_xfrm(info: UserpolicyInfo, templates: list[UserTmpl]) -> Policy:
    """The engine Policy for NEWPOLICY/UPDPOLICY (body and XFRMA_TMPL)."""
    check_policy_info(info)
    if len(templates) > c.XFRM_MAX_DEPTH:
        raise einval(f"more than {c.XFRM_MAX_DEPTH} templates")
    selector = selector_from_xfrm(info.sel)
    tmpls: tuple[Template, ...] = ()
    if info.action == c.XFRM_POLICY_BLOCK:
        action = "discard"
    elif templates:
        action = "protect"
        tmpls = tuple(template_from_xfrm(t, info.sel.family) for t in templates)
    else:
        action = "bypass"
    try:
        return Policy(DIR_NAMES[info.dir], selector, action, info.priority, tmpls, index=info.index)
    except ConfigError as exc:
        raise einval(str(exc)) from None


def policy_to_xfrm(policy: Policy) -> list[tuple[UserpolicyInfo, list[UserTmpl]]]:
    """``(xfrm_userpolicy_info, templates)`` for a Policy; several when its port ranges
    need several port/mask blocks (each with the same index, priority and templates)."""
    family = c.AF_INET if policy.selector.family == 4 else c.AF_INET6
    tmpls = [template_to_xfrm(t, family) for t in policy.templates]
    action = c.XFRM_POLICY_BLOCK if policy.action == "discard" else c.XFRM_POLICY_ALLOW
    return [
        (
            UserpolicyInfo(
                sel=sel,
                priority=policy.priority,
                index=policy.index,
                dir=DIR_NUMBERS[policy.direction],
                action=action,
            ),
            list(tmpls),
        )
        for sel in selectors_to_xfrm(policy.selector)
    ]


def policy_message(policy: Policy, msg_type: int = c.XFRM_MSG_NEWPOLICY) -> list[XfrmMessage]:
    """NEWPOLICY/UPDPOLICY messages (dump entries or requests) for one Policy."""
    out = []
    for info, tmpls in policy_to_xfrm(policy):
        msg = XfrmMessage(msg_type, info)
        if tmpls:
            msg.add(c.XFRMA_TMPL, tmpls)
        # The kernel's dumps name the policy type (copy_to_user_policy_type); so do we.
        msg.add(c.XFRMA_POLICY_TYPE, UserpolicyType(c.XFRM_POLICY_TYPE_MAIN))
        out.append(msg)
    return out


# -- lifetimes -------------------------------------------------------------------------------


def _limit(value: int) -> int | None:
    return None if value == c.XFRM_INF else value


def _seconds(value: int) -> int | None:
    return value or None  # 0 seconds is "no limit" in xfrm_lifetime_cfg


def lifetimes_from_xfrm(lft: LifetimeCfg) -> tuple[Lifetime, Lifetime]:
    soft = Lifetime(
        _limit(lft.soft_byte_limit),
        _limit(lft.soft_packet_limit),
        _seconds(lft.soft_add_expires_seconds),
        _seconds(lft.soft_use_expires_seconds),
    )
    hard = Lifetime(
        _limit(lft.hard_byte_limit),
        _limit(lft.hard_packet_limit),
        _seconds(lft.hard_add_expires_seconds),
        _seconds(lft.hard_use_expires_seconds),
    )
    return soft, hard


def _cfg_count(value: int | None) -> int:
    return c.XFRM_INF if value is None else min(int(value), c.XFRM_INF)


def _cfg_time(value: float | None) -> int:
    # Round up: a limit of 0.5 s must not become 0 ("never").
    return 0 if value is None else max(1, int(-(-value // 1)))


def lifetimes_to_xfrm(soft: Lifetime, hard: Lifetime) -> LifetimeCfg:
    return LifetimeCfg(
        soft_byte_limit=_cfg_count(soft.bytes),
        hard_byte_limit=_cfg_count(hard.bytes),
        soft_packet_limit=_cfg_count(soft.packets),
        hard_packet_limit=_cfg_count(hard.packets),
        soft_add_expires_seconds=_cfg_time(soft.add_time),
        hard_add_expires_seconds=_cfg_time(hard.add_time),
        soft_use_expires_seconds=_cfg_time(soft.use_time),
        hard_use_expires_seconds=_cfg_time(hard.use_time),
    )


# -- SAs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SaAlgorithms:
    """Registry names and keying material of an SA (keys stay out of repr)."""

    enc: str
    enc_key: bytes
    integ: str | None
    integ_key: bytes

    def __repr__(self) -> str:
        return f"SaAlgorithms(enc={self.enc!r}, integ={self.integ!r})"


def check_sa_attrs(info: UsersaInfo, msg: XfrmMessage) -> None:
    """verify_newsa_info: family, selector, which algorithm attributes go with which
    protocol, mode, ESN/replay and encapsulation rules."""
    if info.family not in (c.AF_INET, c.AF_INET6):
        raise einval(f"SA family {info.family} is invalid")
    check_selector(info.sel, allow_unspec=True)
    has = {t for t in (a.type for a in msg.attrs)}
    auth = c.XFRMA_ALG_AUTH in has or c.XFRMA_ALG_AUTH_TRUNC in has
    crypt, aead, comp = (
        c.XFRMA_ALG_CRYPT in has,
        c.XFRMA_ALG_AEAD in has,
        c.XFRMA_ALG_COMP in has,
    )
    proto = info.id.proto
    if proto == c.IPPROTO_ESP:
        if not (auth or crypt or aead):
            raise einval("an ESP SA needs enc, auth or aead")
        if aead and (auth or crypt):
            raise einval("aead cannot be combined with enc or auth")
        if comp:
            raise einval("an ESP SA takes no compression algorithm")
    elif proto == c.IPPROTO_AH:
        if not auth or crypt or aead or comp or c.XFRMA_TFCPAD in has:
            raise einval("an AH SA needs auth and nothing else")
    elif proto == c.IPPROTO_COMP:
        if not comp or auth or crypt or aead or c.XFRMA_TFCPAD in has:
            raise einval("an IPcomp SA needs comp and nothing else")
        if info.id.spi >= 0x10000:
            raise einval("an IPcomp CPI must be below 0x10000")
    else:
        raise einval(f"SA protocol {proto} is not ESP, AH or IPcomp")
    if info.mode >= c.XFRM_MODE_MAX:
        raise einval(f"SA mode {info.mode} is invalid")
    esn = msg.get_as(c.XFRMA_REPLAY_ESN_VAL, ReplayStateEsn)
    if info.flags & c.XFRM_STATE_ESN and esn is None:
        raise einval("flag esn needs XFRMA_REPLAY_ESN_VAL")
    if esn is not None:
        # verify_replay: ESN state is for ESP/AH and replaces the 8-bit window.
        if proto not in (c.IPPROTO_ESP, c.IPPROTO_AH):
            raise einval("replay ESN state only applies to ESP and AH")
        if info.replay_window:
            raise einval("replay-window must be 0 when XFRMA_REPLAY_ESN_VAL is given")
        if esn.bmp_len and esn.replay_window > esn.bmp_len * 32:
            raise einval("replay window larger than its bitmap")
    if c.XFRMA_ENCAP in has and proto != c.IPPROTO_ESP:
        raise einval("UDP encapsulation only applies to ESP")


def algorithms_from_xfrm(msg: XfrmMessage) -> SaAlgorithms:
    """Registry names from XFRMA_ALG_AEAD / ALG_CRYPT + ALG_AUTH(_TRUNC) (ESP only)."""
    aead = msg.get_as(c.XFRMA_ALG_AEAD, AlgoAead)
    if aead is not None:
        alg = _enc_lookup(aead.name, aead.key_len)
        if alg.kind != "aead":
            raise einval(f"{aead.name} is not an AEAD algorithm")
        if aead.icv_len != alg.kernel_icv_bits:
            raise einval(f"{aead.name}: ICV of {aead.icv_len} bits is not supported")
        return SaAlgorithms(alg.name, aead.key, None, b"")
    crypt = msg.get_as(c.XFRMA_ALG_CRYPT, Algo)
    if crypt is None:
        raise einval("ESP without encryption is not supported (give enc or aead)")
    enc = _enc_lookup(crypt.name, crypt.key_len)
    if enc.kind == "aead":
        raise einval(f"{crypt.name} is an AEAD algorithm: send it as aead")
    trunc = msg.get_as(c.XFRMA_ALG_AUTH_TRUNC, AlgoAuth)
    plain = msg.get_as(c.XFRMA_ALG_AUTH, Algo)
    if trunc is not None:
        name, key, bits = trunc.name, trunc.key, trunc.trunc_len
    elif plain is not None:
        name, key = plain.name, plain.key
        bits = KERNEL_DEFAULT_TRUNC_BITS.get(plain.name, -1)
    else:
        return SaAlgorithms(enc.name, crypt.key, None, b"")
    try:
        integ = integ_by_kernel_name(name)
    except ConfigError:
        raise KeyApiError(errno.ENOSYS, f"authentication algorithm {name!r} unknown") from None
    if bits != integ.kernel_trunc_bits:
        raise einval(
            f"{name} truncated to {bits} bits is not supported "
            f"(use auth-trunc with {integ.kernel_trunc_bits})"
        )
    return SaAlgorithms(enc.name, crypt.key, integ.name, key)


def _enc_lookup(name: str, key_bits: int) -> EncAlgorithm:
    try:
        return enc_by_kernel_name(name, key_bits)
    except ConfigError as exc:
        if name in _KNOWN_KERNEL_ENC:
            raise einval(str(exc)) from None
        raise KeyApiError(errno.ENOSYS, f"encryption algorithm {name!r} unknown") from None


def spec_from_xfrm(info: UsersaInfo, msg: XfrmMessage) -> SASpec:
    """The SASpec of NEWSA/UPDSA (``info`` is the body, ``msg`` carries the attributes)."""
    check_sa_attrs(info, msg)
    if info.id.proto != c.IPPROTO_ESP:
        raise KeyApiError(
            errno.EPROTONOSUPPORT, f"only ESP SAs are supported, not protocol {info.id.proto}"
        )
    mode = MODE_NAMES.get(info.mode)
    if mode is None:
        raise KeyApiError(errno.EOPNOTSUPP, f"SA mode {info.mode} is not supported")
    algs = algorithms_from_xfrm(msg)
    esn_state = msg.get_as(c.XFRMA_REPLAY_ESN_VAL, ReplayStateEsn)
    window = esn_state.replay_window if esn_state is not None else info.replay_window
    encap = None
    tmpl = msg.get_as(c.XFRMA_ENCAP, EncapTmpl)
    if tmpl is not None:
        if tmpl.encap_type != UDP_ENCAP_ESPINUDP:
            raise KeyApiError(
                errno.EOPNOTSUPP, f"encapsulation type {tmpl.encap_type} (only espinudp)"
            )
        encap = (tmpl.encap_sport, tmpl.encap_dport)
    tfc = msg.get(c.XFRMA_TFCPAD)
    soft, hard = lifetimes_from_xfrm(info.lft)
    try:
        return SASpec(
            spi=info.id.spi,
            src=_address(info.saddr, info.family),
            dst=_address(info.id.daddr, info.family),
            proto="esp",
            mode=mode,  # type: ignore[arg-type]
            enc=algs.enc,
            enc_key=algs.enc_key,
            integ=algs.integ,
            integ_key=algs.integ_key,
            esn=bool(info.flags & c.XFRM_STATE_ESN),
            replay_window=window,
            encap=encap,
            reqid=info.reqid,
            soft=soft,
            hard=hard,
            tfc_pad=tfc if isinstance(tfc, int) else 0,
        )
    except ConfigError as exc:
        raise einval(str(exc)) from None


def spec_to_attrs(spec: SASpec) -> list[Attr]:
    """Algorithm, replay, encapsulation and TFC attributes of an SA."""
    attrs: list[Attr] = []
    enc = enc_by_name(spec.enc)
    if enc.is_aead:
        attrs.append(
            Attr(c.XFRMA_ALG_AEAD, AlgoAead(enc.kernel_name, spec.enc_key, enc.kernel_icv_bits))
        )
    else:
        if spec.integ is not None:
            integ = integ_by_name(spec.integ)
            attrs.append(
                Attr(
                    c.XFRMA_ALG_AUTH_TRUNC,
                    AlgoAuth(integ.kernel_name, spec.integ_key, integ.kernel_trunc_bits),
                )
            )
        attrs.append(Attr(c.XFRMA_ALG_CRYPT, Algo(enc.kernel_name, spec.enc_key)))
    if spec.encap is not None:
        sport, dport = spec.encap
        attrs.append(Attr(c.XFRMA_ENCAP, EncapTmpl(UDP_ENCAP_ESPINUDP, sport, dport)))
    if spec.esn or spec.replay_window > 255:
        # Windows above 255 packets only fit the ESN replay state (u8 replay_window).
        words = (spec.replay_window + 31) // 32
        attrs.append(
            Attr(
                c.XFRMA_REPLAY_ESN_VAL,
                ReplayStateEsn(bmp_len=words, replay_window=spec.replay_window, bmp=(0,) * words),
            )
        )
    if spec.tfc_pad:
        attrs.append(Attr(c.XFRMA_TFCPAD, spec.tfc_pad))
    return attrs


def spec_to_usersa(spec: SASpec) -> UsersaInfo:
    family = _family(spec.dst)
    esn_attr = spec.esn or spec.replay_window > 255
    return UsersaInfo(
        sel=XSelector(),
        id=XfrmId(xaddr(spec.dst), spec.spi, PROTO_NUMBERS[spec.proto]),
        saddr=xaddr(spec.src),
        lft=lifetimes_to_xfrm(spec.soft, spec.hard),
        reqid=spec.reqid,
        family=family,
        mode=MODE_NUMBERS[spec.mode],
        replay_window=0 if esn_attr else spec.replay_window,
        flags=c.XFRM_STATE_ESN if spec.esn else 0,
    )


def sa_message(spec: SASpec, msg_type: int = c.XFRM_MSG_NEWSA) -> XfrmMessage:
    """A NEWSA/UPDSA request for ``spec``."""
    return XfrmMessage(msg_type, spec_to_usersa(spec), spec_to_attrs(spec))


def entry_message(entry: SadEntry) -> XfrmMessage:
    """The NEWSA message that describes a SAD entry in a dump or GETSA reply."""
    spec = entry.spec
    if spec is None:
        # Larval (ALLOCSPI): id, addresses, mode and reqid only, like an ACQ state.
        info = UsersaInfo(
            id=XfrmId(xaddr(entry.dst), entry.spi, PROTO_NUMBERS.get(entry.proto, 0)),
            saddr=xaddr(entry.src),
            reqid=entry.reqid,
            family=_family(entry.dst),
            mode=MODE_NUMBERS.get(entry.mode, 0),
            curlft=LifetimeCur(add_time=int(entry.add_time)),
        )
        return XfrmMessage(c.XFRM_MSG_NEWSA, info)
    info = spec_to_usersa(spec)
    sa = entry.sa
    counters = getattr(sa, "counters", None)
    info.curlft = LifetimeCur(
        bytes=getattr(counters, "bytes", 0),
        packets=getattr(counters, "packets", 0),
        add_time=int(entry.add_time),
        use_time=int(entry.use_time or 0),
    )
    info.stats = Stats(
        replay_window=spec.replay_window if spec.replay_window <= 255 else 0,
        replay=getattr(counters, "replay", 0),
        integrity_failed=getattr(counters, "integrity_failed", 0),
    )
    return XfrmMessage(c.XFRM_MSG_NEWSA, info, spec_to_attrs(spec))
