"""``pyipsec xfrm``: ``ip xfrm``'s syntax and output, against our daemon or the kernel.

    pyipsec xfrm state list [nokeys]
    pyipsec xfrm state add src A dst B proto esp spi 0x1000 reqid 1 mode tunnel \\
        aead 'rfc4106(gcm(aes))' 0x<key+salt> 128 [replay-window N] [flag esn] \\
        [encap espinudp 4500 4500 0.0.0.0]
    pyipsec xfrm state add ... enc 'cbc(aes)' 0x<key> auth-trunc 'hmac(sha256)' 0x<key> 128
    pyipsec xfrm state delete src A dst B proto esp spi 0x1000
    pyipsec xfrm state flush
    pyipsec xfrm policy add src X dst Y [proto P [sport S] [dport D]] dir out|in|fwd \\
        [priority N] [action allow|block] [tmpl src A dst B proto esp reqid N mode tunnel \\
        [level use|required]]...
    pyipsec xfrm policy list | delete SELECTOR dir D | delete index N dir D | flush
    pyipsec xfrm state|policy monitor [--count N]     (also: pyipsec xfrm monitor)

By default the command talks to the daemon's ``xfrm.sock`` (``--run-dir``,
``$PYIPSEC_RUN_DIR`` or ``/run/pyipsec``); ``--kernel`` talks to the kernel's NETLINK_XFRM
instead. Both answer the same messages (see ``keyapi.xfrm_server``), so the output is the
same. Like ``ip xfrm state list``, listings show keys unless ``nokeys`` is given.

The daemon's client, ``UnixXfrmClient``, lives in ``io.xfrm_client`` (sockets belong in
``io/``); it is re-exported here with the ``XfrmClient`` protocol.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
import time
from typing import TextIO

from pyipsec.cli.main import Runner, run_dir, subcommand
from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.io.xfrm_client import UnixXfrmClient, XfrmClient
from pyipsec.keyapi import xfrm_const as c
from pyipsec.keyapi.xfrm import XfrmMessage
from pyipsec.keyapi.xfrm_convert import UDP_ENCAP_ESPINUDP
from pyipsec.keyapi.xfrm_layout import ZERO_ADDR, addr_str, xaddr
from pyipsec.keyapi.xfrm_structs import (
    Algo,
    AlgoAead,
    AlgoAuth,
    EncapTmpl,
    ReplayState,
    ReplayStateEsn,
    Selector,
    UserAcquire,
    UserExpire,
    UserpolicyId,
    UserpolicyInfo,
    UserpolicyType,
    UsersaFlush,
    UsersaId,
    UsersaInfo,
    UserTmpl,
    XfrmId,
)

XFRM_PROTOS = {"esp": c.IPPROTO_ESP, "ah": c.IPPROTO_AH, "comp": c.IPPROTO_COMP}
XFRM_PROTO_NAMES = {v: k for k, v in XFRM_PROTOS.items()}
MODES = {"transport": 0, "tunnel": 1, "ro": 2, "in_trigger": 3, "beet": 4}
MODE_NAMES = {v: k for k, v in MODES.items()}
DIRS = {"in": 0, "out": 1, "fwd": 2}
DIR_NAMES = {v: k for k, v in DIRS.items()}
# Upper-layer protocol names as /etc/protocols spells them (getprotobynumber).
UPPER_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 33: "dccp", 47: "gre", 58: "ipv6-icmp", 132: "sctp"}
STATE_FLAGS = (
    (c.XFRM_STATE_NOECN, "noecn"),
    (c.XFRM_STATE_DECAP_DSCP, "decap-dscp"),
    (c.XFRM_STATE_NOPMTUDISC, "nopmtudisc"),
    (c.XFRM_STATE_WILDRECV, "wildrecv"),
    (c.XFRM_STATE_ICMP, "icmp"),
    (c.XFRM_STATE_AF_UNSPEC, "af-unspec"),
    (c.XFRM_STATE_ALIGN4, "align4"),
    (c.XFRM_STATE_ESN, "esn"),
)
LIMITS = {
    "time-soft": "soft_add_expires_seconds",
    "time-hard": "hard_add_expires_seconds",
    "time-use-soft": "soft_use_expires_seconds",
    "time-use-hard": "hard_use_expires_seconds",
    "byte-soft": "soft_byte_limit",
    "byte-hard": "hard_byte_limit",
    "packet-soft": "soft_packet_limit",
    "packet-hard": "hard_packet_limit",
}


# -- transports -----------------------------------------------------------------------------


def connect(args: argparse.Namespace) -> XfrmClient:
    if getattr(args, "kernel", False):
        from pyipsec.io.netlink_socket import XfrmSocket

        return XfrmSocket()
    return UnixXfrmClient(run_dir(args) / "xfrm.sock")


# -- argument parsing (ip xfrm syntax) ------------------------------------------------------


class Words:
    """The remaining command words, consumed left to right."""

    def __init__(self, words: list[str]) -> None:
        self.words = list(words)
        self.pos = 0

    def more(self) -> bool:
        return self.pos < len(self.words)

    def peek(self) -> str:
        return self.words[self.pos] if self.more() else ""

    def take(self, what: str) -> str:
        if not self.more():
            raise ConfigError(f"missing {what}")
        word = self.words[self.pos]
        self.pos += 1
        return word


def _u32(text: str, what: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise ConfigError(f"{what}: {text!r} is not a number") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise ConfigError(f"{what}: {text} out of range")
    return value


def _proto(w: Words, prefix: str = "") -> int:
    """An XFRM-PROTO word (esp, ah, comp) as its protocol number."""
    name = w.take("XFRM-PROTO")
    if name not in XFRM_PROTOS:
        raise ConfigError(f"{prefix}XFRM-PROTO {name!r} is not esp, ah or comp")
    return XFRM_PROTOS[name]


def _mode(w: Words, prefix: str = "") -> int:
    """A MODE word (transport, tunnel, ...) as the kernel's mode number."""
    mode = w.take("MODE")
    if mode not in MODES:
        raise ConfigError(f"{prefix}MODE {mode!r} is invalid")
    return MODES[mode]


def _key(text: str) -> bytes:
    # ip xfrm: a key is 0x-hex, or else the string's own bytes.
    if text.startswith(("0x", "0X")):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            raise ConfigError("key: not a valid hex string") from None
    return text.encode()


def _prefix(text: str) -> tuple[bytes, int, int]:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ConfigError(f"{text!r} is not an address or prefix") from None
    family = c.AF_INET if net.version == 4 else c.AF_INET6
    return xaddr(ipaddress.ip_address(text.split("/")[0])), net.prefixlen, family


def _upper_proto(text: str) -> int:
    if text == "any":
        return 0
    try:
        return socket.getprotobyname(text)
    except OSError:
        pass
    named = {v: k for k, v in UPPER_NAMES.items()}.get(text)
    if named is not None:
        return named
    value = _u32(text, "proto")
    if value > 255:
        raise ConfigError(f"proto {text} out of range")
    return value


def _port(text: str, top: int, what: str) -> int:
    value = _u32(text, what)
    if value > top:
        raise ConfigError(f"{what} {text} out of range")
    return value


def parse_state(words: list[str]) -> XfrmMessage:
    """``ip xfrm state add|update`` arguments -> a NEWSA request."""
    w = Words(words)
    info = UsersaInfo()
    msg = XfrmMessage(c.XFRM_MSG_NEWSA, info)
    family = 0
    flags = 0
    window: int | None = None
    while w.more():
        word = w.take("argument")
        if word in ("src", "dst"):
            addr = w.take(f"{word} address")
            raw, _, fam = _prefix(addr)
            if family and fam != family:
                raise ConfigError("src and dst must be of the same family")
            family = fam
            if word == "src":
                info.saddr = raw
            else:
                info.id.daddr = raw
        elif word == "proto":
            info.id.proto = _proto(w)
        elif word == "spi":
            info.id.spi = _u32(w.take("SPI"), "spi")
        elif word == "reqid":
            info.reqid = _u32(w.take("REQID"), "reqid")
        elif word == "mode":
            info.mode = _mode(w)
        elif word == "replay-window":
            window = _u32(w.take("replay-window"), "replay-window")
        elif word == "flag":
            names = dict((n, v) for v, n in STATE_FLAGS)
            if w.peek() not in names:
                raise ConfigError(f"FLAG {w.peek()!r} is invalid")
            while w.peek() in names:
                flags |= names[w.take("flag")]
        elif word == "aead":
            name, key = w.take("ALGO-NAME"), _key(w.take("ALGO-KEY"))
            icv = _u32(w.take("ALGO-ICV-LEN"), "icv length")
            msg.add(c.XFRMA_ALG_AEAD, AlgoAead(name, key, icv))
        elif word == "enc":
            msg.add(c.XFRMA_ALG_CRYPT, Algo(w.take("ALGO-NAME"), _key(w.take("ALGO-KEY"))))
        elif word == "auth":
            msg.add(c.XFRMA_ALG_AUTH, Algo(w.take("ALGO-NAME"), _key(w.take("ALGO-KEY"))))
        elif word == "auth-trunc":
            name, key = w.take("ALGO-NAME"), _key(w.take("ALGO-KEY"))
            trunc = _u32(w.take("ALGO-TRUNC-LEN"), "truncation length")
            msg.add(c.XFRMA_ALG_AUTH_TRUNC, AlgoAuth(name, key, trunc))
        elif word == "encap":
            kind = w.take("ENCAP-TYPE")
            if kind != "espinudp":
                raise ConfigError(f"ENCAP-TYPE {kind!r}: only espinudp is supported")
            sport = _port(w.take("sport"), 0xFFFF, "encap sport")
            dport = _port(w.take("dport"), 0xFFFF, "encap dport")
            oa, _, _ = _prefix(w.take("encap address"))
            msg.add(c.XFRMA_ENCAP, EncapTmpl(UDP_ENCAP_ESPINUDP, sport, dport, oa))
        elif word == "tfcpad":
            msg.add(c.XFRMA_TFCPAD, _u32(w.take("tfcpad"), "tfcpad"))
        elif word == "limit":
            name = w.take("LIMIT")
            if name not in LIMITS:
                raise ConfigError(f"LIMIT {name!r} is invalid")
            setattr(info.lft, LIMITS[name], int(w.take(name), 0))
        else:
            raise ConfigError(f"unknown argument {word!r}")
    if not info.id.proto:
        raise ConfigError("missing proto")
    info.family = family or c.AF_INET
    info.flags = flags
    window = 0 if window is None else window
    if flags & c.XFRM_STATE_ESN or window > 255:
        # The 8-bit field cannot hold it, and ESN needs the ESN state (verify_replay).
        words_ = max(1, (window + 31) // 32)
        esn = ReplayStateEsn(bmp_len=words_, replay_window=window, bmp=(0,) * words_)
        msg.add(c.XFRMA_REPLAY_ESN_VAL, esn)
    else:
        info.replay_window = window
    return msg


def parse_sa_id(words: list[str]) -> UsersaId:
    """``ip xfrm state delete|get ID`` arguments."""
    w = Words(words)
    sa_id = UsersaId()
    while w.more():
        word = w.take("argument")
        if word in ("src", "dst"):
            raw, _, fam = _prefix(w.take(f"{word} address"))
            sa_id.family = fam
            if word == "dst":
                sa_id.daddr = raw
        elif word == "proto":
            sa_id.proto = _proto(w)
        elif word == "spi":
            sa_id.spi = _u32(w.take("SPI"), "spi")
        else:
            raise ConfigError(f"unknown argument {word!r}")
    if not sa_id.proto or sa_id.daddr == ZERO_ADDR:
        raise ConfigError("an SA is named by dst, proto and spi")
    return sa_id


def _parse_tmpl(w: Words, tmpl: UserTmpl) -> None:
    while w.more() and w.peek() in ("src", "dst", "proto", "spi", "reqid", "mode", "level"):
        word = w.take("argument")
        if word in ("src", "dst"):
            raw, _, fam = _prefix(w.take(f"tmpl {word}"))
            tmpl.family = fam
            if word == "src":
                tmpl.saddr = raw
            else:
                tmpl.id.daddr = raw
        elif word == "proto":
            tmpl.id.proto = _proto(w, "tmpl ")
        elif word == "spi":
            tmpl.id.spi = _u32(w.take("SPI"), "tmpl spi")
        elif word == "reqid":
            tmpl.reqid = _u32(w.take("REQID"), "tmpl reqid")
        elif word == "mode":
            tmpl.mode = _mode(w, "tmpl ")
        else:
            level = w.take("LEVEL")
            if level not in ("use", "required"):
                raise ConfigError(f"LEVEL {level!r} is neither use nor required")
            tmpl.optional = 1 if level == "use" else 0


def parse_policy(words: list[str]) -> tuple[UserpolicyInfo, list[UserTmpl]]:
    """``ip xfrm policy add|update|delete|get`` arguments."""
    w = Words(words)
    info = UserpolicyInfo()
    sel = info.sel
    tmpls: list[UserTmpl] = []
    have_dir = False
    ports: dict[str, int] = {}
    while w.more():
        word = w.take("argument")
        if word in ("src", "dst"):
            raw, plen, fam = _prefix(w.take(f"{word} prefix"))
            if sel.family and fam != sel.family:
                raise ConfigError("src and dst must be of the same family")
            sel.family = fam
            if word == "src":
                sel.saddr, sel.prefixlen_s = raw, plen
            else:
                sel.daddr, sel.prefixlen_d = raw, plen
        elif word == "proto":
            sel.proto = _upper_proto(w.take("PROTO"))
        elif word in ("sport", "dport", "type", "code"):
            top = 0xFFFF if word in ("sport", "dport") else 0xFF
            ports[word] = _port(w.take(word), top, word)
        elif word == "dir":
            d = w.take("DIR")
            if d not in DIRS:
                raise ConfigError(f"DIR {d!r} is not in, out or fwd")
            info.dir, have_dir = DIRS[d], True
        elif word == "priority":
            info.priority = _u32(w.take("PRIORITY"), "priority")
        elif word == "index":
            info.index = _u32(w.take("INDEX"), "index")
        elif word == "action":
            action = w.take("ACTION")
            if action not in ("allow", "block"):
                raise ConfigError(f"ACTION {action!r} is neither allow nor block")
            info.action = c.XFRM_POLICY_BLOCK if action == "block" else c.XFRM_POLICY_ALLOW
        elif word == "tmpl":
            tmpl = UserTmpl()
            _parse_tmpl(w, tmpl)
            tmpls.append(tmpl)
        else:
            raise ConfigError(f"unknown argument {word!r}")
    if not have_dir:
        raise ConfigError("missing dir")
    if ports:
        if ("sport" in ports or "dport" in ports) and sel.proto not in (6, 17, 33, 132):
            raise ConfigError("sport and dport need proto tcp, udp, dccp or sctp")
        if ("type" in ports or "code" in ports) and sel.proto not in (1, 58, 135):
            raise ConfigError("type and code need proto icmp or ipv6-icmp")
        for name, value in ports.items():
            # ip xfrm matches exactly one port: mask all ones (a port of 0 is "any").
            field = "sport" if name in ("sport", "type") else "dport"
            setattr(sel, field, value)
            setattr(sel, field + "_mask", 0xFFFF if value or name in ("type", "code") else 0)
    if not sel.family:
        sel.family = c.AF_INET
    for tmpl in tmpls:
        tmpl.family = tmpl.family or sel.family
    return info, tmpls


# -- output (ip xfrm's format) ----------------------------------------------------------


def _addr(raw: bytes, family: int) -> str:
    try:
        return addr_str(raw, family if family else c.AF_INET)
    except ConfigError:
        return "?"


def format_selector(sel: Selector, family: int = 0) -> str:
    fam = sel.family or family or c.AF_INET
    out = f"src {_addr(sel.saddr, fam)}/{sel.prefixlen_s} "
    out += f"dst {_addr(sel.daddr, fam)}/{sel.prefixlen_d} "
    if sel.proto:
        out += f"proto {UPPER_NAMES.get(sel.proto, str(sel.proto))} "
    if sel.proto in (1, 58):
        if sel.sport_mask:
            out += f"type {sel.sport} "
        if sel.dport_mask:
            out += f"code {sel.dport} "
    else:
        if sel.sport_mask:
            out += f"sport {sel.sport} "
        if sel.dport_mask:
            out += f"dport {sel.dport} "
    return out


def _id_lines(
    saddr: bytes, xid: XfrmId, family: int, mode: int, reqid: int, force_spi: bool
) -> str:
    out = f"src {_addr(saddr, family)} dst {_addr(xid.daddr, family)}\n"
    out += f"\tproto {XFRM_PROTO_NAMES.get(xid.proto, str(xid.proto))} "
    if force_spi or xid.spi:
        out += f"spi 0x{xid.spi:08x} "
    out += f"reqid {reqid} mode {MODE_NAMES.get(mode, str(mode))}\n"
    return out


def _hex(key: bytes, show_keys: bool) -> str:
    return "0x" + key.hex() if show_keys else "0x(hidden)"


def _algo_lines(msg: XfrmMessage, family: int, show_keys: bool, prefix: str = "\t") -> str:
    out = ""
    auth = msg.get_as(c.XFRMA_ALG_AUTH, Algo)
    trunc = msg.get_as(c.XFRMA_ALG_AUTH_TRUNC, AlgoAuth)
    aead = msg.get_as(c.XFRMA_ALG_AEAD, AlgoAead)
    crypt = msg.get_as(c.XFRMA_ALG_CRYPT, Algo)
    if auth is not None and trunc is None:
        out += f"{prefix}auth {auth.name} {_hex(auth.key, show_keys)}\n"
    if trunc is not None:
        out += f"{prefix}auth-trunc {trunc.name} {_hex(trunc.key, show_keys)} {trunc.trunc_len}\n"
    if aead is not None:
        out += f"{prefix}aead {aead.name} {_hex(aead.key, show_keys)} {aead.icv_len}\n"
    if crypt is not None:
        out += f"{prefix}enc {crypt.name} {_hex(crypt.key, show_keys)}\n"
    encap = msg.get_as(c.XFRMA_ENCAP, EncapTmpl)
    if encap is not None:
        kind = {1: "espinudp-nonike", 2: "espinudp"}.get(encap.encap_type, str(encap.encap_type))
        out += (
            f"{prefix}encap type {kind} sport {encap.encap_sport} dport {encap.encap_dport} "
            f"addr {_addr(encap.encap_oa, family)}\n"
        )
    return out


def format_state(msg: XfrmMessage, show_keys: bool = True) -> str:
    """One state as ``ip xfrm state list`` prints it."""
    info = msg.body
    if not isinstance(info, UsersaInfo):
        return ""
    out = _id_lines(info.saddr, info.id, info.family, info.mode, info.reqid, True)
    out += f"\treplay-window {info.replay_window} "
    if info.flags:
        out += "flag " + "".join(f"{n} " for v, n in STATE_FLAGS if info.flags & v)
        rest = info.flags & ~sum(v for v, _ in STATE_FLAGS)
        if rest:
            out += f"{rest:x}"
    out += "\n"
    out += _algo_lines(msg, info.family, show_keys)
    esn = msg.get_as(c.XFRMA_REPLAY_ESN_VAL, ReplayStateEsn)
    replay = msg.get_as(c.XFRMA_REPLAY_VAL, ReplayState)
    if esn is not None:
        out += (
            f"\tanti-replay esn context:\n\t seq-hi 0x{esn.seq_hi:x}, seq 0x{esn.seq:x}, "
            f"oseq-hi 0x{esn.oseq_hi:x}, oseq 0x{esn.oseq:x}\n"
            f"\t replay_window {esn.replay_window}, bitmap-length {esn.bmp_len}\n"
        )
    elif replay is not None:
        out += (
            f"\tanti-replay context: seq 0x{replay.seq:x}, oseq 0x{replay.oseq:x}, "
            f"bitmap 0x{replay.bitmap:08x}\n"
        )
    if info.sel != Selector():
        out += "\tsel " + format_selector(info.sel, info.family) + "\n"
    return out


def format_policy(msg: XfrmMessage) -> str:
    """One policy as ``ip xfrm policy list`` prints it."""
    info = msg.body
    if not isinstance(info, UserpolicyInfo):
        return ""
    out = format_selector(info.sel) + "\n"
    out += f"\tdir {DIR_NAMES.get(info.dir, str(info.dir))} "
    if info.action == c.XFRM_POLICY_BLOCK:
        out += "action block "
    elif info.action != c.XFRM_POLICY_ALLOW:
        out += f"action {info.action} "
    out += f"priority {info.priority} "
    ptype = msg.get_as(c.XFRMA_POLICY_TYPE, UserpolicyType)
    if ptype is not None:
        out += "ptype " + {0: "main", 1: "sub"}.get(ptype.type, str(ptype.type)) + " "
    if info.flags:
        out += (
            "flag " + ("localok " if info.flags & 1 else "") + ("icmp " if info.flags & 2 else "")
        )
    out += "\n"
    for tmpl in msg.templates():
        out += "\ttmpl " + _id_lines(
            tmpl.saddr, tmpl.id, tmpl.family or info.sel.family, tmpl.mode, tmpl.reqid, False
        ).replace("\n\t", "\n\t\t")
        if tmpl.optional:
            out += "\t\tlevel use \n" if tmpl.optional == 1 else f"\t\tlevel {tmpl.optional} \n"
    return out


def format_event(msg: XfrmMessage, show_keys: bool = True) -> str:
    """A notification as ``ip xfrm monitor`` prints it."""
    body = msg.body
    if msg.type in (c.XFRM_MSG_NEWSA, c.XFRM_MSG_UPDSA):
        return format_state(msg, show_keys)
    if msg.type in (c.XFRM_MSG_NEWPOLICY, c.XFRM_MSG_UPDPOLICY):
        return format_policy(msg)
    if msg.type == c.XFRM_MSG_DELSA and isinstance(body, UsersaId):
        proto = XFRM_PROTO_NAMES.get(body.proto, str(body.proto))
        return f"Deleted dst {_addr(body.daddr, body.family)} proto {proto} spi 0x{body.spi:08x}\n"
    if msg.type == c.XFRM_MSG_DELPOLICY and isinstance(body, UserpolicyId):
        return f"Deleted policy index {body.index} dir {DIR_NAMES.get(body.dir, str(body.dir))}\n"
    if msg.type == c.XFRM_MSG_FLUSHSA and isinstance(body, UsersaFlush):
        name = XFRM_PROTO_NAMES.get(body.proto, "ipsec-any" if body.proto == 255 else "")
        return f"Flushed state proto {name or body.proto}\n"
    if msg.type == c.XFRM_MSG_FLUSHPOLICY:
        return "Flushed policy\n"
    if msg.type == c.XFRM_MSG_ACQUIRE and isinstance(body, UserAcquire):
        proto = XFRM_PROTO_NAMES.get(body.id.proto, str(body.id.proto))
        pol = XfrmMessage(c.XFRM_MSG_NEWPOLICY, body.policy, msg.attrs)
        lines = format_policy(pol).splitlines()
        out = f"acquire proto {proto} \n  sel {format_selector(body.sel)}\n"
        out += "  policy " + "\n    ".join(lines) + "\n"
        return out
    if msg.type == c.XFRM_MSG_EXPIRE and isinstance(body, UserExpire):
        state = XfrmMessage(c.XFRM_MSG_NEWSA, body.state, msg.attrs)
        return "Expired " + format_state(state, show_keys) + f"\thard {body.hard}\n"
    return f"{msg.name}\n"


# -- commands ---------------------------------------------------------------------------


def _flush_body(words: list[str]) -> UsersaFlush:
    w = Words(words)
    proto = c.IPSEC_PROTO_ANY
    while w.more():
        word = w.take("argument")
        if word != "proto":
            raise ConfigError(f"unknown argument {word!r}")
        proto = _proto(w)
    return UsersaFlush(proto)


def run_state(client: XfrmClient, verb: str, words: list[str], out: TextIO) -> int:
    if verb in ("list", "show"):
        show_keys = "nokeys" not in words
        for msg in client.dump(c.XFRM_MSG_GETSA):
            out.write(format_state(msg, show_keys))
    elif verb in ("add", "update"):
        msg = parse_state(words)
        msg.type = c.XFRM_MSG_NEWSA if verb == "add" else c.XFRM_MSG_UPDSA
        client.request(msg)
    elif verb in ("delete", "get"):
        sa_id = parse_sa_id(words)
        kind = c.XFRM_MSG_DELSA if verb == "delete" else c.XFRM_MSG_GETSA
        for reply in client.request(XfrmMessage(kind, sa_id)):
            out.write(format_state(reply))
    elif verb == "flush":
        client.request(XfrmMessage(c.XFRM_MSG_FLUSHSA, _flush_body(words)))
    else:
        raise ConfigError(f"unknown state command {verb!r}")
    return 0


def run_policy(client: XfrmClient, verb: str, words: list[str], out: TextIO) -> int:
    if verb in ("list", "show"):
        for msg in client.dump(c.XFRM_MSG_GETPOLICY):
            out.write(format_policy(msg))
    elif verb in ("add", "update"):
        info, tmpls = parse_policy(words)
        kind = c.XFRM_MSG_NEWPOLICY if verb == "add" else c.XFRM_MSG_UPDPOLICY
        msg = XfrmMessage(kind, info)
        if tmpls:
            msg.add(c.XFRMA_TMPL, tmpls)
        client.request(msg)
    elif verb in ("delete", "get"):
        info, _ = parse_policy(words)
        pid = UserpolicyId(sel=info.sel, index=info.index, dir=info.dir)
        kind = c.XFRM_MSG_DELPOLICY if verb == "delete" else c.XFRM_MSG_GETPOLICY
        for reply in client.request(XfrmMessage(kind, pid)):
            out.write(format_policy(reply))
    elif verb == "flush":
        client.request(XfrmMessage(c.XFRM_MSG_FLUSHPOLICY, None))
    else:
        raise ConfigError(f"unknown policy command {verb!r}")
    return 0


MONITOR_GROUPS = {
    "state": (c.XFRMNLGRP_SA, c.XFRMNLGRP_EXPIRE),
    "policy": (c.XFRMNLGRP_POLICY, c.XFRMNLGRP_ACQUIRE),
    "all": (c.XFRMNLGRP_ACQUIRE, c.XFRMNLGRP_EXPIRE, c.XFRMNLGRP_SA, c.XFRMNLGRP_POLICY),
}


def run_monitor(
    client: XfrmClient, which: str, out: TextIO, count: int = 0, timeout: float | None = None
) -> int:
    """Print notifications until ``count`` were printed (0: forever) or ``timeout``."""
    client.subscribe(MONITOR_GROUPS[which])
    out.flush()
    seen = 0
    deadline = None if timeout is None else time.monotonic() + timeout
    while not count or seen < count:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        for msg in client.receive(timeout=left if left is not None else 1.0):
            out.write(format_event(msg))
            out.flush()
            seen += 1
    return 0


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out if out is not None else sys.stdout
    obj, words = args.object, list(args.words)
    if obj not in ("state", "sa", "policy", "monitor"):
        raise ConfigError(f"unknown xfrm object {obj!r} (state, policy or monitor)")
    verb = "monitor" if obj == "monitor" else (words.pop(0) if words else "list")
    client = connect(args)
    try:
        if verb == "monitor":
            which = "all" if obj == "monitor" else ("policy" if obj == "policy" else "state")
            return run_monitor(client, which, out, args.count, args.timeout)
        if obj in ("state", "sa"):
            return run_state(client, verb, words, out)
        return run_policy(client, verb, words, out)
    finally:
        client.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", metavar="DIR", help="the daemon's directory")
    parser.add_argument(
        "--kernel", action="store_true", help="talk to the kernel's xfrm, not the daemon"
    )
    parser.add_argument("--count", type=int, default=0, help="monitor: stop after N events")
    parser.add_argument("--timeout", type=float, default=None, help="monitor: stop after S s")
    parser.add_argument("object", help="state | policy | monitor")
    parser.add_argument("words", nargs=argparse.REMAINDER, help="ip xfrm arguments")


@subcommand("xfrm", "manage SAs and policies with ip xfrm syntax (daemon or --kernel)")
def _xfrm(parser: argparse.ArgumentParser) -> Runner:
    add_arguments(parser)
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyipsec xfrm")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (ConfigError, KeyApiError, OSError) as exc:
        print(f"pyipsec xfrm: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
