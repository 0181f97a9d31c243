"""setkey(8) as a PF_KEY client: commands -> messages, replies -> setkey's output.

``SetkeyClient`` turns the commands of ``setkey_grammar`` into PF_KEY v2 messages
(RFC 2367, with the Linux/KAME SPD extensions), sends them through a ``Transport``,
waits for the answer that echoes its ``seq`` and ``pid`` (skipping the broadcasts other
sockets cause), collects dumps up to the message with ``seq`` 0, and prints SAs and
policies with ``setkey_format``, so the output reads like ipsec-tools' setkey.

Sans-I/O like the rest of ``keyapi``: the transport (a SOCK_SEQPACKET socket to the
daemon's ``pfkey.sock``, or an in-process server in tests) and the clock are passed in.

Algorithm names map to PF_KEY numbers with ipsec-tools' table (Linux's numbers), not
only the ones the engine implements: the daemon answers ENOSYS for the others, as the
kernel does for an algorithm it lacks. ``deleteall`` is a dump followed by one DELETE
per matching SA, as ipsec-tools does on Linux (af_key.c has no DELETE without an SPI).
"""

from __future__ import annotations

import errno as errno_mod
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network
from typing import Final, Protocol

from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.keyapi import pfkey_const as k
from pyipsec.keyapi.pfkey import (
    Address,
    Extension,
    IpsecRequest,
    Key,
    Lifetime,
    NatTPort,
    NatTType,
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
from pyipsec.keyapi.setkey_commands import (
    UPPERSPEC_ANY,
    AddSA,
    Command,
    DeleteAll,
    DeleteSA,
    Dump,
    Flush,
    GetSA,
    GetSpi,
    SecurityContext,
    SpdAdd,
    SpdDelete,
    SpdDump,
    SpdFlush,
)
from pyipsec.keyapi.setkey_commands import (
    IpsecRequest as SetkeyRequest,
)
from pyipsec.keyapi.setkey_errors import explain
from pyipsec.keyapi.setkey_format import PolicyView, SAView, format_policy, format_sa

__all__ = [
    "AUTH_NUMBERS",
    "COMP_NUMBERS",
    "ENC_NUMBERS",
    "SATYPES",
    "CommandResult",
    "SetkeyClient",
    "Transport",
    "describe_message",
    "policy_view",
    "sa_view",
]

SADB_X_SATYPE_TCPSIGNATURE: Final = 8  # KAME's number; Linux has no TCP-MD5 SA type

# ipsec-tools' names (setkey(8) "ALGORITHMS") with Linux's PF_KEY numbers.
ENC_NUMBERS: Final[dict[str, int]] = {
    "des-cbc": k.SADB_EALG_DESCBC,
    "3des-cbc": k.SADB_EALG_3DESCBC,
    "null": k.SADB_EALG_NULL,
    "blowfish-cbc": k.SADB_X_EALG_BLOWFISHCBC,
    "cast128-cbc": k.SADB_X_EALG_CASTCBC,
    "rijndael-cbc": k.SADB_X_EALG_AESCBC,
    "aes-cbc": k.SADB_X_EALG_AESCBC,
    "aes-ctr": k.SADB_X_EALG_AESCTR,
    "aes-gcm-8": k.SADB_X_EALG_AES_GCM_ICV8,
    "aes-gcm-12": k.SADB_X_EALG_AES_GCM_ICV12,
    "aes-gcm-16": k.SADB_X_EALG_AES_GCM_ICV16,
    "camellia-cbc": k.SADB_X_EALG_CAMELLIACBC,
    "twofish-cbc": k.SADB_X_EALG_TWOFISHCBC,
    "serpent-cbc": k.SADB_X_EALG_SERPENTCBC,
    # Not in ipsec-tools: the crypto registry's private number (pfkey_const explains).
    "chacha20-poly1305": 249,
}
AUTH_NUMBERS: Final[dict[str, int]] = {
    "hmac-md5": k.SADB_AALG_MD5HMAC,
    "hmac-sha1": k.SADB_AALG_SHA1HMAC,
    "hmac-sha256": k.SADB_X_AALG_SHA2_256HMAC,
    "hmac-sha2-256": k.SADB_X_AALG_SHA2_256HMAC,
    "hmac-sha384": k.SADB_X_AALG_SHA2_384HMAC,
    "hmac-sha2-384": k.SADB_X_AALG_SHA2_384HMAC,
    "hmac-sha512": k.SADB_X_AALG_SHA2_512HMAC,
    "hmac-sha2-512": k.SADB_X_AALG_SHA2_512HMAC,
    "hmac-ripemd160": k.SADB_X_AALG_RIPEMD160HMAC,
    "aes-xcbc-mac": k.SADB_X_AALG_AES_XCBC_MAC,
    "null": k.SADB_X_AALG_NULL,
    "tcp-md5": 1,  # KAME's SADB_X_AALG_TCP_MD5 (tcp SAs, refused by Linux anyway)
}
COMP_NUMBERS: Final[dict[str, int]] = {
    "oui": k.SADB_X_CALG_OUI,
    "deflate": k.SADB_X_CALG_DEFLATE,
    "lzs": k.SADB_X_CALG_LZS,
}
SATYPES: Final[dict[str, int]] = {
    "esp": k.SADB_SATYPE_ESP,
    "esp-old": k.SADB_SATYPE_ESP,
    "ah": k.SADB_SATYPE_AH,
    "ah-old": k.SADB_SATYPE_AH,
    "ipcomp": k.SADB_X_SATYPE_IPCOMP,
    "tcp": SADB_X_SATYPE_TCPSIGNATURE,
}
_MODES: Final = {
    "any": k.IPSEC_MODE_ANY,
    "transport": k.IPSEC_MODE_TRANSPORT,
    "tunnel": k.IPSEC_MODE_TUNNEL,
}
_LEVELS: Final = {
    "default": k.IPSEC_LEVEL_DEFAULT,
    "use": k.IPSEC_LEVEL_USE,
    "require": k.IPSEC_LEVEL_REQUIRE,
    "unique": k.IPSEC_LEVEL_UNIQUE,
}
_DIRECTIONS: Final = {
    "in": k.IPSEC_DIR_INBOUND,
    "out": k.IPSEC_DIR_OUTBOUND,
    "fwd": k.IPSEC_DIR_FWD,
}
_ACTIONS: Final = {
    "discard": k.IPSEC_POLICY_DISCARD,
    "none": k.IPSEC_POLICY_NONE,
    "ipsec": k.IPSEC_POLICY_IPSEC,
    "entrust": k.IPSEC_POLICY_ENTRUST,
    "bypass": k.IPSEC_POLICY_BYPASS,
}
_PROTOCOLS: Final = {"esp": k.IPPROTO_ESP, "ah": k.IPPROTO_AH, "ipcomp": k.IPPROTO_COMP}
_ICMP_LIKE: Final = frozenset({1, 58, 135})
_GRE: Final = 47

# Reverse tables for dumps: the first (canonical) name of each number.
_ENC_NAMES: Final = {v: n for n, v in reversed(list(ENC_NUMBERS.items()))}
_ENC_NAMES_DUMP: Final = {**_ENC_NAMES, k.SADB_X_EALG_AESCBC: "aes-cbc"}
_AUTH_NAMES: Final = {v: n for n, v in reversed(list(AUTH_NUMBERS.items()))}
_COMP_NAMES: Final = {v: n for n, v in COMP_NUMBERS.items()}
_SATYPE_NAMES: Final = {
    k.SADB_SATYPE_ESP: "esp",
    k.SADB_SATYPE_AH: "ah",
    k.SADB_X_SATYPE_IPCOMP: "ipcomp",
    SADB_X_SATYPE_TCPSIGNATURE: "tcp",
}
_MODE_NAMES: Final = {v: n for n, v in _MODES.items()}
_LEVEL_NAMES: Final = {v: n for n, v in _LEVELS.items()}
_DIRECTION_NAMES: Final = {v: n for n, v in _DIRECTIONS.items()}
_ACTION_NAMES: Final = {v: n for n, v in _ACTIONS.items()}
_PROTOCOL_NAMES: Final = {v: n for n, v in _PROTOCOLS.items()}
_STATE_NAMES: Final = {
    k.SADB_SASTATE_LARVAL: "larval",
    k.SADB_SASTATE_MATURE: "mature",
    k.SADB_SASTATE_DYING: "dying",
    k.SADB_SASTATE_DEAD: "dead",
}


class Transport(Protocol):
    """One PF_KEY connection: whole messages in and out."""

    def send(self, data: bytes) -> None: ...

    def recv(self, timeout: float) -> bytes | None:
        """The next message, or None if none came within ``timeout`` seconds."""
        ...


@dataclass(slots=True)
class CommandResult:
    """What one command produced: text for stdout, or an error for stderr."""

    line: int
    output: str = ""
    error: str = ""


# --- commands -> messages ------------------------------------------------------------


def _satype(protocol: str) -> int:
    satype = SATYPES.get(protocol)
    if satype is None:
        raise ConfigError(f"unknown SA protocol {protocol!r}")
    return satype


def _host(exttype: int, addr: object, port: int = 0) -> Address:
    ip = ip_address(str(addr))
    return Address(exttype, ip, ip.max_prefixlen, UPPERSPEC_ANY, port)


def _ctx(context: SecurityContext | None) -> tuple[Extension, ...]:
    if context is None:
        return ()
    return (SecCtx(context.algorithm, context.doi, context.name.encode()),)


def _algorithm(table: dict[str, int], name: str, what: str) -> int:
    number = table.get(name.lower())
    if number is None:
        raise ConfigError(f"unknown {what} algorithm {name!r}")
    return number


def add_message(cmd: AddSA, seq: int, pid: int) -> PfkeyMessage:
    """ADD (or UPDATE) for an ``add``/``update`` command."""
    satype = _satype(cmd.protocol)
    auth = encrypt = 0
    exts: list[Extension] = []
    if cmd.aalgo is not None:
        auth = _algorithm(AUTH_NUMBERS, cmd.aalgo, "authentication")
    if cmd.calgo is not None:
        encrypt = _algorithm(COMP_NUMBERS, cmd.calgo, "compression")
    elif cmd.ealgo is not None:
        encrypt = _algorithm(ENC_NUMBERS, cmd.ealgo, "encryption")
    exts.append(Sa(cmd.spi, cmd.replay, k.SADB_SASTATE_MATURE, auth, encrypt))
    exts.append(Sa2(_MODES.get(cmd.mode, k.IPSEC_MODE_ANY), cmd.reqid))
    if any(
        (
            cmd.lifetime_hard_time,
            cmd.lifetime_soft_time,
            cmd.lifetime_hard_bytes,
            cmd.lifetime_soft_bytes,
        )
    ):
        # af_key.c wants both or neither.
        exts.append(
            Lifetime(k.SADB_EXT_LIFETIME_HARD, 0, cmd.lifetime_hard_bytes, cmd.lifetime_hard_time)
        )
        exts.append(
            Lifetime(k.SADB_EXT_LIFETIME_SOFT, 0, cmd.lifetime_soft_bytes, cmd.lifetime_soft_time)
        )
    exts.append(_host(k.SADB_EXT_ADDRESS_SRC, cmd.src, 0 if cmd.nat_t else cmd.sport))
    exts.append(_host(k.SADB_EXT_ADDRESS_DST, cmd.dst, 0 if cmd.nat_t else cmd.dport))
    if cmd.aalgo is not None:
        exts.append(Key.of(k.SADB_EXT_KEY_AUTH, cmd.akey))
    if cmd.ealgo is not None and cmd.calgo is None:
        exts.append(Key.of(k.SADB_EXT_KEY_ENCRYPT, cmd.ekey))
    if cmd.nat_t:
        exts.append(NatTType(k.UDP_ENCAP_ESPINUDP))
        exts.append(NatTPort(k.SADB_X_EXT_NAT_T_SPORT, cmd.sport))
        exts.append(NatTPort(k.SADB_X_EXT_NAT_T_DPORT, cmd.dport))
        if cmd.nat_oa is not None:
            exts.append(_host(k.SADB_X_EXT_NAT_T_OA, cmd.nat_oa))
    exts.extend(_ctx(cmd.context))
    msg_type = k.SADB_UPDATE if cmd.update else k.SADB_ADD
    return PfkeyMessage(msg_type, satype, seq, pid, 0, tuple(exts))


def _sa_id(msg_type: int, cmd: GetSA | DeleteSA, seq: int, pid: int) -> PfkeyMessage:
    exts = (
        Sa(cmd.spi),
        _host(k.SADB_EXT_ADDRESS_SRC, cmd.src, cmd.sport),
        _host(k.SADB_EXT_ADDRESS_DST, cmd.dst, cmd.dport),
    )
    return PfkeyMessage(msg_type, _satype(cmd.protocol), seq, pid, 0, exts)


def _getspi(cmd: GetSpi, seq: int, pid: int) -> PfkeyMessage:
    exts: list[Extension] = [
        Sa2(_MODES.get(cmd.mode, k.IPSEC_MODE_ANY), cmd.reqid),
        _host(k.SADB_EXT_ADDRESS_SRC, cmd.src, cmd.sport),
        _host(k.SADB_EXT_ADDRESS_DST, cmd.dst, cmd.dport),
    ]
    if cmd.spi:
        exts.append(SpiRange(cmd.spi, cmd.spi))
    return PfkeyMessage(k.SADB_GETSPI, _satype(cmd.protocol), seq, pid, 0, tuple(exts))


def _selector_ports(cmd: SpdAdd | SpdDelete) -> tuple[int, int]:
    if cmd.upperspec in _ICMP_LIKE:
        return cmd.icmp_type or 0, cmd.icmp_code or 0
    if cmd.upperspec == _GRE and cmd.gre_key is not None:
        # setkey(8): the GRE key travels in the two port fields.
        return cmd.gre_key >> 16, cmd.gre_key & 0xFFFF
    return cmd.sport, cmd.dport


def _request(rq: SetkeyRequest) -> IpsecRequest:
    src = dst = None
    if rq.src is not None and rq.dst is not None:
        src, dst = SockAddr(rq.src, rq.sport), SockAddr(rq.dst, rq.dport)
    return IpsecRequest(
        _PROTOCOLS[rq.protocol], _MODES[rq.mode], _LEVELS[rq.level], rq.reqid, src, dst
    )


def spd_message(cmd: SpdAdd | SpdDelete, seq: int, pid: int) -> PfkeyMessage:
    """SPDADD/SPDUPDATE for ``spdadd``/``spdupdate``, SPDDELETE for ``spddelete``."""
    sport, dport = _selector_ports(cmd)
    exts: list[Extension] = [
        Address(
            k.SADB_EXT_ADDRESS_SRC, cmd.src.network_address, cmd.src.prefixlen, cmd.upperspec, sport
        ),
        Address(
            k.SADB_EXT_ADDRESS_DST, cmd.dst.network_address, cmd.dst.prefixlen, cmd.upperspec, dport
        ),
    ]
    direction = _DIRECTIONS[cmd.direction]
    if isinstance(cmd, SpdAdd):
        requests = tuple(_request(rq) for rq in cmd.requests)
        exts.append(PolicyExt(_ACTIONS[cmd.action], direction, 0, cmd.priority, requests))
        exts.extend(_ctx(cmd.context))
        msg_type = k.SADB_X_SPDUPDATE if cmd.update else k.SADB_X_SPDADD
    else:
        exts.append(PolicyExt(k.IPSEC_POLICY_IPSEC, direction))
        msg_type = k.SADB_X_SPDDELETE
    return PfkeyMessage(msg_type, k.SADB_SATYPE_UNSPEC, seq, pid, 0, tuple(exts))


# --- messages -> setkey views ----------------------------------------------------------


def sa_view(msg: PfkeyMessage) -> SAView:
    """An SA message (DUMP, GET, ADD, EXPIRE...) as ``setkey -D`` shows it."""
    sa, src, dst = msg.sa, msg.src, msg.dst
    if sa is None or src is None or dst is None:
        raise ConfigError("message has no SA")
    protocol = _SATYPE_NAMES.get(msg.satype, str(msg.satype))
    cur = msg.lifetime_current or Lifetime(k.SADB_EXT_LIFETIME_CURRENT)
    hard = msg.lifetime_hard or Lifetime(k.SADB_EXT_LIFETIME_HARD)
    soft = msg.lifetime_soft or Lifetime(k.SADB_EXT_LIFETIME_SOFT)
    sa2 = msg.sa2
    ekey, akey = msg.key_encrypt, msg.key_auth
    ealgo = calgo = None
    if protocol == "ipcomp":
        calgo = _COMP_NAMES.get(sa.encrypt, str(sa.encrypt))
    elif sa.encrypt:
        ealgo = _ENC_NAMES_DUMP.get(sa.encrypt, str(sa.encrypt))
    sport, dport = msg.nat_t_sport, msg.nat_t_dport
    nat_oa = msg.nat_t_oa
    # ``-p`` shows ports: the NAT-T ones if the SA has them, else the addresses' own.
    sport_shown = src.port if sport is None else sport.port
    dport_shown = dst.port if dport is None else dport.port
    return SAView(
        src=src.addr,
        dst=dst.addr,
        protocol=protocol,
        spi=sa.spi,
        mode=_MODE_NAMES.get(sa2.mode, "any") if sa2 is not None else "any",
        reqid=0 if sa2 is None else sa2.reqid,
        ealgo=ealgo,
        ekey=b"" if ekey is None else ekey.key,
        aalgo=_AUTH_NAMES.get(sa.auth, str(sa.auth)) if sa.auth else None,
        akey=b"" if akey is None else akey.key,
        calgo=calgo,
        seq=0 if sa2 is None else sa2.sequence,
        replay=sa.replay,
        flags=sa.flags,
        state=_STATE_NAMES.get(sa.state, str(sa.state)),
        created=cur.addtime,
        last_used=cur.usetime,
        hard_add_time=hard.addtime,
        soft_add_time=soft.addtime,
        hard_use_time=hard.usetime,
        soft_use_time=soft.usetime,
        current_bytes=cur.nbytes,
        hard_bytes=hard.nbytes,
        soft_bytes=soft.nbytes,
        allocations=cur.allocations,
        hard_allocations=hard.allocations,
        soft_allocations=soft.allocations,
        nat_t=msg.nat_t_type is not None,
        sport=sport_shown,
        dport=dport_shown,
        nat_oa=None if nat_oa is None else nat_oa.addr,
        sadb_seq=msg.seq,
        pid=msg.pid,
    )


def policy_view(msg: PfkeyMessage) -> PolicyView:
    """An SPD message (SPDDUMP, SPDGET, SPDADD...) as ``setkey -DP`` shows it."""
    pol, src, dst = msg.policy, msg.src, msg.dst
    if pol is None or src is None or dst is None:
        raise ConfigError("message has no policy")
    requests = tuple(
        SetkeyRequest(
            protocol=_PROTOCOL_NAMES.get(rq.proto, str(rq.proto)),
            mode=_MODE_NAMES.get(rq.mode, "any"),
            level=_LEVEL_NAMES.get(rq.level, "default"),
            src=None if rq.src is None else rq.src.addr,
            dst=None if rq.dst is None else rq.dst.addr,
            sport=0 if rq.src is None else rq.src.port,
            dport=0 if rq.dst is None else rq.dst.port,
            reqid=rq.reqid,
        )
        for rq in pol.requests
    )
    cur = msg.lifetime_current or Lifetime(k.SADB_EXT_LIFETIME_CURRENT)
    hard = msg.lifetime_hard or Lifetime(k.SADB_EXT_LIFETIME_HARD)
    icmp = src.proto in _ICMP_LIKE
    return PolicyView(
        src=ip_network((src.addr, src.prefixlen)),
        dst=ip_network((dst.addr, dst.prefixlen)),
        direction=_DIRECTION_NAMES.get(pol.direction, str(pol.direction)),
        action=_ACTION_NAMES.get(pol.policy_type, str(pol.policy_type)),
        upperspec=src.proto,
        sport=0 if icmp else src.port,
        dport=0 if icmp else dst.port,
        icmp_type=src.port if icmp else 0,
        icmp_code=dst.port if icmp else 0,
        priority=pol.priority,
        requests=requests,
        created=cur.addtime,
        last_used=cur.usetime,
        lifetime=hard.addtime,
        validtime=hard.usetime,
        spid=pol.policy_id,
        seq=msg.seq,
        pid=msg.pid,
    )


def describe_message(msg: PfkeyMessage, now: int) -> str:
    """One message for ``setkey -x``: a header line, then the SA or policy if any."""
    name = k.MESSAGE_NAMES.get(msg.msg_type, str(msg.msg_type))
    satype = _SATYPE_NAMES.get(msg.satype, str(msg.satype))
    head = f"{name} satype={satype} seq={msg.seq} pid={msg.pid}"
    if msg.errno:
        head += f" errno={msg.errno} ({os.strerror(msg.errno)})"
    body = ""
    try:
        if msg.policy is not None and msg.src is not None and msg.msg_type != k.SADB_ACQUIRE:
            body = format_policy(policy_view(msg))
        elif msg.sa is not None and msg.src is not None:
            body = format_sa(sa_view(msg), now)
        elif msg.msg_type == k.SADB_ACQUIRE and msg.src is not None and msg.dst is not None:
            pol = msg.policy
            spid = 0 if pol is None else pol.policy_id
            combs = 0 if msg.proposal is None else len(msg.proposal.combs)
            body = f"\t{msg.src.addr} -> {msg.dst.addr} spid={spid} proposals={combs}\n"
    except ConfigError:
        body = ""
    return f"{head}\n{body}"


# --- the client --------------------------------------------------------------------------


@dataclass
class SetkeyClient:
    """Runs setkey commands over one PF_KEY connection."""

    transport: Transport
    pid: int
    now: Callable[[], int]
    timeout: float = 5.0
    _seq: int = field(default=0, init=False)

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    def _wait(self, msg_type: int, seq: int) -> PfkeyMessage:
        """The answer to our request: same type, seq and pid (broadcasts are skipped)."""
        while True:
            data = self.transport.recv(self.timeout)
            if data is None:
                raise KeyApiError(errno_mod.ETIMEDOUT, "no answer from the PF_KEY server")
            try:
                msg = parse_message(data, strict=False)
            except KeyApiError:
                continue
            if msg.msg_type == msg_type and msg.seq == seq and msg.pid == self.pid:
                return msg

    def request(self, msg: PfkeyMessage) -> PfkeyMessage:
        """Send one request; return its answer, raising ``KeyApiError`` on an errno."""
        self.transport.send(build_message(msg))
        reply = self._wait(msg.msg_type, msg.seq)
        if reply.errno:
            raise KeyApiError(reply.errno, os.strerror(reply.errno))
        return reply

    def dump(self, msg_type: int, satype: int = k.SADB_SATYPE_UNSPEC) -> list[PfkeyMessage]:
        """DUMP or SPDDUMP: every message up to the one with seq 0 (ENOENT: empty)."""
        seq = self._next_seq()
        self.transport.send(build_message(PfkeyMessage(msg_type, satype, seq, self.pid)))
        out: list[PfkeyMessage] = []
        while True:
            data = self.transport.recv(self.timeout)
            if data is None:
                raise KeyApiError(errno_mod.ETIMEDOUT, "dump did not end")
            try:
                msg = parse_message(data, strict=False)
            except KeyApiError:
                continue
            if msg.msg_type != msg_type or msg.pid != self.pid:
                continue
            if msg.errno:
                if msg.errno == errno_mod.ENOENT:
                    return out
                raise KeyApiError(msg.errno, os.strerror(msg.errno))
            out.append(msg)
            if msg.seq == 0:
                return out

    def messages(self, commands: Iterable[Command]) -> list[PfkeyMessage | Command]:
        """Every request a file will send, built before anything is sent, so that a
        name no table knows stops the whole file (all or nothing, like a syntax error).
        Commands that need an exchange (dumps, deleteall) stay as they are."""
        out: list[PfkeyMessage | Command] = []
        for cmd in commands:
            if isinstance(cmd, AddSA):
                out.append(add_message(cmd, 0, self.pid))
            elif isinstance(cmd, GetSpi):
                out.append(_getspi(cmd, 0, self.pid))
            elif isinstance(cmd, DeleteSA):
                out.append(_sa_id(k.SADB_DELETE, cmd, 0, self.pid))
            elif isinstance(cmd, Flush):
                satype = k.SADB_SATYPE_UNSPEC if cmd.protocol is None else _satype(cmd.protocol)
                out.append(PfkeyMessage(k.SADB_FLUSH, satype, 0, self.pid))
            elif isinstance(cmd, SpdAdd | SpdDelete):
                out.append(spd_message(cmd, 0, self.pid))
            elif isinstance(cmd, SpdFlush):
                out.append(PfkeyMessage(k.SADB_X_SPDFLUSH, 0, 0, self.pid))
            else:
                if isinstance(cmd, GetSA | DeleteAll | Dump):
                    _satype(cmd.protocol or "esp")
                out.append(cmd)
        return out

    def run(self, commands: list[Command]) -> list[CommandResult]:
        """Run parsed commands in order; each gets a result (errors do not stop it,
        as setkey carries on to the next line)."""
        plan = self.messages(commands)
        results: list[CommandResult] = []
        for cmd, item in zip(commands, plan, strict=True):
            result = CommandResult(cmd.line)
            try:
                if isinstance(item, PfkeyMessage):
                    seq = self._next_seq()
                    reply = self.request(
                        PfkeyMessage(item.msg_type, item.satype, seq, self.pid, 0, item.extensions)
                    )
                    if reply.msg_type == k.SADB_GETSPI and reply.sa is not None:
                        result.output = format_sa(sa_view(reply), self.now())
                else:
                    result.output = self._exchange(item)
            except KeyApiError as exc:
                result.error = explain(cmd, exc.errno) if exc.errno else str(exc)
            results.append(result)
        return results

    def _exchange(self, cmd: Command) -> str:
        if isinstance(cmd, GetSA):
            reply = self.request(_sa_id(k.SADB_GET, cmd, self._next_seq(), self.pid))
            return format_sa(sa_view(reply), self.now())
        if isinstance(cmd, Dump):
            satype = k.SADB_SATYPE_UNSPEC if cmd.protocol is None else _satype(cmd.protocol)
            return self.sad_text(satype)
        if isinstance(cmd, SpdDump):
            return self.spd_text()
        if isinstance(cmd, DeleteAll):
            self._delete_all(cmd)
            return ""
        raise ConfigError(f"unexpected command {type(cmd).__name__}")

    def _delete_all(self, cmd: DeleteAll) -> None:
        satype = _satype(cmd.protocol)
        for msg in self.dump(k.SADB_DUMP, satype):
            src, dst, sa = msg.src, msg.dst, msg.sa
            if src is None or dst is None or sa is None:
                continue
            if src.addr != cmd.src or dst.addr != cmd.dst:
                continue
            exts = (
                sa,
                _host(k.SADB_EXT_ADDRESS_SRC, src.addr),
                _host(k.SADB_EXT_ADDRESS_DST, dst.addr),
            )
            self.request(PfkeyMessage(k.SADB_DELETE, satype, self._next_seq(), self.pid, 0, exts))

    def sad_text(self, satype: int = k.SADB_SATYPE_UNSPEC, with_ports: bool = False) -> str:
        """``setkey -D`` (``-Dp``: addresses with their ports)."""
        msgs = self.dump(k.SADB_DUMP, satype)
        now = self.now()
        text = "".join(format_sa(sa_view(m), now, with_ports=with_ports) for m in msgs)
        return text or "No SAD entries.\n"

    def spd_text(self, with_ports: bool = False) -> str:
        """``setkey -DP`` (``-DPp``: tunnel endpoints with their ports)."""
        msgs = self.dump(k.SADB_X_SPDDUMP)
        text = "".join(format_policy(policy_view(m), with_ports=with_ports) for m in msgs)
        return text or "No SPD entries.\n"

    def flush(self, spd: bool = False) -> None:
        """``setkey -F`` / ``setkey -FP``."""
        msg_type = k.SADB_X_SPDFLUSH if spd else k.SADB_FLUSH
        self.request(PfkeyMessage(msg_type, 0, self._next_seq(), self.pid))

    def monitor(self, emit: Callable[[str], None], count: int | None = None) -> int:
        """``setkey -x``: turn promiscuous mode on and describe every message as it
        arrives; stops after ``count`` messages if given. Returns how many were shown."""
        self.request(PfkeyMessage(k.SADB_X_PROMISC, 1, self._next_seq(), self.pid))
        shown = 0
        while count is None or shown < count:
            data = self.transport.recv(self.timeout)
            if data is None:
                continue
            try:
                msg = parse_message(data, strict=False)
            except KeyApiError:
                continue
            emit(describe_message(msg, self.now()))
            shown += 1
        return shown
