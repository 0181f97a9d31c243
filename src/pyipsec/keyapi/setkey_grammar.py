"""The setkey(8) language (ipsec-tools' syntax) parsed into plain command dataclasses.

``parse_setkey(text, filename)`` returns every command of a file, or raises a
``SetkeyError`` at the first mistake, so nothing from a bad file is ever applied. The
commands hold only strings, ints, bytes and ``ipaddress`` objects, so they map directly
onto PF_KEY messages (RFC 2367) later. Names are kept as setkey spells them
(``rijndael-cbc``, ``hmac-sha256``); whether the key length fits the algorithm is
decided by whoever applies the command.

Differences from ipsec-tools, on purpose:
- host names are refused (this parser is pure; setkey would resolve them with DNS);
- ports are numbers or ``any`` (no service names);
- a policy request is written without spaces inside it (``esp/transport//require``);
- a hex key must have an even number of digits (setkey silently pads an odd one);
- ``ipsec`` needs at least one request, and the protocol must match its algorithms
  (ESP has ``-E``, AH and TCP-MD5 have ``-A``, IPComp has ``-C``);
- ``spdadd tagged`` (a BSD pf tag) and ``exit``/``quit`` are not supported.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from pyipsec.keyapi.setkey_commands import (
    PRIORITY_DEFAULT,
    PRIORITY_HIGH,
    PRIORITY_LOW,
    UPPERSPEC_ANY,
    Address,
    AddSA,
    Command,
    DeleteAll,
    DeleteSA,
    Dump,
    Flush,
    GetSA,
    GetSpi,
    IpsecRequest,
    Network,
    SecurityContext,
    SpdAdd,
    SpdDelete,
    SpdDump,
    SpdFlush,
)
from pyipsec.keyapi.setkey_lexer import (
    EOF,
    STRING,
    WORD,
    SetkeyError,
    Token,
    describe,
    show,
    tokenize,
)

__all__ = [
    "PRIORITY_DEFAULT",
    "PRIORITY_HIGH",
    "PRIORITY_LOW",
    "PROTOCOL_NUMBERS",
    "UPPERSPEC_ANY",
    "AddSA",
    "Address",
    "Command",
    "DeleteAll",
    "DeleteSA",
    "Dump",
    "Flush",
    "GetSA",
    "GetSpi",
    "IpsecRequest",
    "Network",
    "SecurityContext",
    "SetkeyError",
    "SpdAdd",
    "SpdDelete",
    "SpdDump",
    "SpdFlush",
    "parse_setkey",
    "static_key_warnings",
]


_PRIO_BASES = {"high": PRIORITY_HIGH, "def": PRIORITY_DEFAULT, "low": PRIORITY_LOW}

# Upper-layer protocol names accepted in spdadd (the usual /etc/protocols entries,
# built in so that parsing does not depend on the host), plus setkey's own aliases.
PROTOCOL_NUMBERS: dict[str, int] = {
    "ip": 0,
    "icmp": 1,
    "igmp": 2,
    "ipencap": 4,
    "ip4": 4,
    "tcp": 6,
    "udp": 17,
    "ipv6": 41,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "icmp6": 58,
    "ipv6-icmp": 58,
    "ospf": 89,
    "pim": 103,
    "ipcomp": 108,
    "vrrp": 112,
    "l2tp": 115,
    "sctp": 132,
    "mh": 135,
    "mobility-header": 135,
    "udplite": 136,
}
_ICMP_LIKE = frozenset({1, 58, 135})  # type,code travel in the port fields
_GRE = 47

_SA_PROTOCOLS = frozenset({"esp", "esp-old", "ah", "ah-old", "ipcomp", "tcp"})
_NATT_PROTOCOL = "esp-udp"
_NATT_DEFAULT_PORT = 4500  # RFC 3948 §2.1: UDP-encapsulated ESP uses port 4500
_MODES = frozenset({"transport", "tunnel", "any"})
_PADDING = frozenset({"zero-pad", "random-pad", "seq-pad"})
_DIRECTIONS = frozenset({"in", "out", "fwd"})
_ACTIONS = frozenset({"discard", "none", "ipsec", "entrust", "bypass"})
_REQUEST_PROTOCOLS = frozenset({"esp", "ah", "ipcomp"})
_REQUEST_MODES = frozenset({"transport", "tunnel"})
_LEVELS = frozenset({"default", "use", "require", "unique"})
_MAX_UNIQUE_ID = 32767  # setkey(8): unique:N with N in 1..32767
_KEYLESS = "null"

_DEC_RE = re.compile(r"[0-9]+")
_HEX_RE = re.compile(r"0[xX][0-9A-Fa-f]+")
_ALG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.?")
_PRIO_RE = re.compile(r"(?:(high|def|low)(?:([+-])([0-9]+))?|(-?)([0-9]+))")
_AEAD_HINTS = ("gcm", "ccm", "gmac", "chacha20", "ctr")

_U8 = 0xFF
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF
_MAX_DIGITS = 30  # longer than any 64-bit decimal


def parse_setkey(text: str, filename: str = "<stdin>") -> list[Command]:
    """Parse a whole setkey file: every command, or a ``SetkeyError`` at the first error."""
    return _Parser(text, tokenize(text, filename), filename).parse_all()


def static_key_warnings(commands: list[Command], filename: str = "<stdin>") -> list[str]:
    """Warnings for manually keyed SAs whose algorithm needs a unique nonce per key.

    RFC 4106 §8.1 (AES-GCM) and RFC 7634 §4 (ChaCha20-Poly1305) forbid static keys:
    their IV is a counter, and after a restart a manual SA starts it again under the
    same key, which repeats nonces and breaks confidentiality and integrity. CCM, GMAC
    and CTR share the counter construction. CBC with HMAC is the manual-keying default.
    """
    warnings: list[str] = []
    for command in commands:
        if not isinstance(command, AddSA) or command.ealgo is None:
            continue
        name = command.ealgo.lower()
        if any(hint in name for hint in _AEAD_HINTS):
            warnings.append(
                f"{filename}:{command.line}: {command.ealgo} with a static key repeats "
                "nonces after a restart (RFC 4106 §8.1, RFC 7634 §4); use CBC+HMAC for "
                "manual keys, or IKE"
            )
    return warnings


def _decimal(text: str) -> int:
    """``int(text)`` for a digit string, without Python's 4300-digit conversion error.

    Anything longer than any field setkey has is returned as a value above every range
    check, so the caller reports "out of range" instead of crashing.
    """
    digits = text.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS


class _Parser:
    """Recursive descent over the token list; one method per grammar rule."""

    def __init__(self, text: str, tokens: list[Token], filename: str) -> None:
        self.text = text
        self.tokens = tokens
        self.pos = 0
        self.filename = filename
        self.commands: dict[str, Callable[[Token], Command]] = {
            "add": self._add,
            "update": self._add,
            "getspi": self._getspi,
            "get": self._get_or_delete,
            "delete": self._get_or_delete,
            "deleteall": self._deleteall,
            "flush": self._flush_or_dump,
            "dump": self._flush_or_dump,
            "spdadd": self._spdadd,
            "spdupdate": self._spdadd,
            "spddelete": self._spddelete,
            "spdflush": self._spd_simple,
            "spddump": self._spd_simple,
        }

    # -- token helpers -------------------------------------------------------------
    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        if token.kind != EOF:
            self.pos += 1
        return token

    def error(self, token: Token, message: str) -> SetkeyError:
        return SetkeyError(self.filename, token.line, token.column, message)

    def expected(self, token: Token, what: str) -> SetkeyError:
        return self.error(token, f"expected {what}, got {describe(token)}")

    def expect_word(self, what: str) -> Token:
        token = self.next()
        if token.kind != WORD:
            raise self.expected(token, what)
        return token

    def expect_punct(self, punct: str, what: str | None = None) -> Token:
        token = self.next()
        if token.kind != punct:
            raise self.expected(token, what or f"'{punct}'")
        return token

    def expect_end(self, what: str) -> None:
        self.expect_punct(";", what)

    def number(self, token: Token, what: str, maximum: int, minimum: int = 0) -> int:
        if token.kind != WORD or not _DEC_RE.fullmatch(token.text):
            raise self.expected(token, what)
        value = _decimal(token.text)
        if not minimum <= value <= maximum:
            raise self.error(
                token, f"{what} out of range ({minimum}..{maximum}), got {show(token.text)}"
            )
        return value

    # -- top level -----------------------------------------------------------------
    def parse_all(self) -> list[Command]:
        result: list[Command] = []
        while self.peek().kind != EOF:
            token = self.next()
            handler = self.commands.get(token.text) if token.kind == WORD else None
            if handler is None:
                raise self.expected(
                    token,
                    "a command (add, get, delete, deleteall, flush, "
                    "dump, spdadd, spdupdate, spddelete, spdflush, spddump)",
                )
            result.append(handler(token))
        return result

    # -- shared pieces -------------------------------------------------------------
    def address_flags(self) -> int | None:
        """``-4``, ``-6``, ``-n`` (and combinations): the required address family."""
        family: int | None = None
        while self.peek().kind == WORD and re.fullmatch(r"-[46n]+", self.peek().text):
            for flag in self.next().text[1:]:
                if flag in "46":
                    family = int(flag)
        return family

    def host(self, token: Token, family: int | None, what: str) -> Address:
        if token.kind != WORD:
            raise self.expected(token, what)
        try:
            address = ipaddress.ip_address(token.text)
        except ValueError:
            if _HOSTNAME_RE.fullmatch(token.text) and re.search(r"[A-Za-z]", token.text):
                raise self.error(
                    token,
                    f"expected {what}, got {describe(token)}: host names are not resolved, "
                    "give a numeric address",
                ) from None
            raise self.expected(token, what) from None
        if family is not None and address.version != family:
            raise self.error(
                token, f"expected an IPv{family} address (-{family}), got {describe(token)}"
            )
        return address

    def optional_port(self, what: str = "a port number or 'any'") -> int | None:
        if self.peek().kind != "[":
            return None
        self.next()
        token = self.next()
        port = 0 if token.is_word("any") else self.number(token, what, _U16)
        self.expect_punct("]")
        return port

    def same_family(self, token: Token, src: Address | Network, dst: Address | Network) -> None:
        if src.version != dst.version:
            raise self.error(
                token,
                "source and destination address families differ "
                f"(IPv{src.version} and IPv{dst.version})",
            )

    def sa_protocol(self, allow_natt: bool = True) -> tuple[Token, str, bool]:
        token = self.next()
        names = "esp, esp-old, esp-udp, ah, ah-old, ipcomp or tcp"
        if token.kind == WORD and token.text in _SA_PROTOCOLS:
            return token, token.text, False
        if allow_natt and token.is_word(_NATT_PROTOCOL):
            return token, "esp", True
        raise self.expected(token, f"a security protocol ({names})")

    def spi(self) -> tuple[Token, int]:
        token = self.next()
        what = "an SPI (decimal or 0x hex)"
        if token.kind == WORD and _DEC_RE.fullmatch(token.text):
            value = _decimal(token.text)
        elif token.kind == WORD and _HEX_RE.fullmatch(token.text):
            value = int(token.text, 16)
        else:
            raise self.expected(token, what)
        if value > _U32:
            raise self.error(token, "SPI does not fit in 32 bits")
        return token, value

    def sa_endpoints(self, family: int | None, ports: bool) -> tuple[Address, int, Address, int]:
        src_tok = self.next()
        src = self.host(src_tok, family, "a source address")
        sport = (self.optional_port() if ports else None) or 0
        dst = self.host(self.next(), family, "a destination address")
        dport = (self.optional_port() if ports else None) or 0
        self.same_family(src_tok, src, dst)
        return src, sport, dst, dport

    def key(self, algorithm: Token) -> bytes:
        token = self.next()
        what = f'a key for {algorithm.text} (0x hex digits or a "quoted string")'
        if token.kind == STRING:
            return token.text.encode()
        if token.kind == WORD and _HEX_RE.fullmatch(token.text):
            digits = token.text[2:]
            if len(digits) % 2:
                raise self.error(token, f"{what}: odd number of hex digits ({len(digits)})")
            return bytes.fromhex(digits)
        if token.kind == WORD and token.text[:2].lower() == "0x":
            raise self.error(token, f"{what}: malformed hex string")
        raise self.expected(token, what)

    def context(self) -> SecurityContext:
        doi = self.number(self.next(), "a security context DOI (decimal)", _U8)
        algorithm = self.number(self.next(), "a security context algorithm (decimal)", _U8)
        token = self.next()
        if token.kind != STRING:
            raise self.expected(token, 'a security context name ("quoted string")')
        return SecurityContext(doi, algorithm, token.text)

    # -- SAD commands --------------------------------------------------------------
    def _sa_extensions(self, protocol: str, fields: dict[str, object]) -> None:
        """``-m -r -u -f -lh -ls -bh -bs -ctx`` in any order (setkey(8) extensions)."""
        while self.peek().kind == WORD:
            flag = self.peek()
            if flag.text == "-m":
                self.next()
                token = self.next()
                if token.kind != WORD or token.text not in _MODES:
                    raise self.expected(token, "a mode (transport, tunnel or any)")
                fields["mode"] = token.text
            elif flag.text == "-r":
                self.next()
                token = self.next()
                if protocol.endswith("-old"):
                    raise self.error(flag, f"replay prevention cannot be used with {protocol}")
                fields["replay"] = self.number(token, "a replay window size (decimal)", _U32)
            elif flag.text == "-u":
                self.next()
                fields["reqid"] = self.number(self.next(), "a reqid (decimal)", _U32)
            elif flag.text == "-f":
                self.next()
                token = self.next()
                if token.is_word("nocyclic-seq"):
                    fields["cyclic_seq"] = False
                elif token.kind == WORD and token.text in _PADDING:
                    fields["padding"] = token.text
                else:
                    raise self.expected(
                        token, "zero-pad, random-pad, seq-pad or nocyclic-seq after -f"
                    )
            elif flag.text in ("-lh", "-ls"):
                self.next()
                value = self.number(self.next(), "a lifetime in seconds (decimal)", _U64)
                key = "lifetime_hard_time" if flag.text == "-lh" else "lifetime_soft_time"
                fields[key] = value
            elif flag.text in ("-bh", "-bs"):
                self.next()
                value = self.number(self.next(), "a lifetime in bytes (decimal)", _U64)
                key = "lifetime_hard_bytes" if flag.text == "-bh" else "lifetime_soft_bytes"
                fields[key] = value
            elif flag.text == "-ctx":
                self.next()
                fields["context"] = self.context()
            else:
                return

    def _algorithm(self, flag: str) -> tuple[str, bytes]:
        token = self.next()
        kind = {"-E": "an encryption", "-A": "an authentication"}[flag]
        if token.kind != WORD or not _ALG_RE.fullmatch(token.text):
            raise self.expected(token, f"{kind} algorithm name after {flag}")
        # setkey's "null" algorithms take no key (ALG_ENC_NOKEY / ALG_AUTH_NOKEY).
        if token.text == _KEYLESS:
            return token.text, b""
        return token.text, self.key(token)

    def _sa_algorithms(self, proto_tok: Token, protocol: str, fields: dict[str, object]) -> None:
        token = self.peek()
        base = protocol.removesuffix("-old")
        if token.is_word("-E"):
            if base != "esp":
                raise self.error(token, f"-E (encryption) is only for ESP, not {protocol}")
            self.next()
            fields["ealgo"], fields["ekey"] = self._algorithm("-E")
            if self.peek().is_word("-A"):
                self.next()
                fields["aalgo"], fields["akey"] = self._algorithm("-A")
        elif token.is_word("-A"):
            if base not in ("ah", "tcp"):
                raise self.error(token, f"{protocol} needs -E (encryption) before -A")
            self.next()
            fields["aalgo"], fields["akey"] = self._algorithm("-A")
        elif token.is_word("-C"):
            if protocol != "ipcomp":
                raise self.error(token, f"-C (compression) is only for ipcomp, not {protocol}")
            self.next()
            name = self.next()
            if name.kind != WORD or not _ALG_RE.fullmatch(name.text):
                raise self.expected(name, "a compression algorithm name after -C")
            fields["calgo"] = name.text
            if self.peek().is_word("-R"):
                self.next()
                fields["raw_cpi"] = True
        else:
            wanted = {"esp": "-E", "ah": "-A", "tcp": "-A", "ipcomp": "-C"}[base]
            raise self.expected(token, f"an extension or the algorithm ({wanted} ...)")

    def _add(self, command: Token) -> Command:
        family = self.address_flags()
        src, sport, dst, dport = self.sa_endpoints(family, ports=True)
        proto_tok, protocol, nat_t = self.sa_protocol()
        nat_oa: Address | None = None
        if (
            nat_t
            and self.peek().kind == WORD
            and not _DEC_RE.fullmatch(self.peek().text)
            and not _HEX_RE.fullmatch(self.peek().text)
        ):
            # esp-udp may name the original address for NAT-OA (RFC 3948 §4.2).
            nat_oa = self.host(self.next(), None, "a NAT original address or an SPI")
        spi_tok, spi = self.spi()
        if protocol in ("esp", "esp-old", "ah", "ah-old") and spi < 256:
            # RFC 4303 §2.1: SPIs 1..255 are reserved by IANA, 0 for local use.
            raise self.error(spi_tok, f"SPI {spi} is reserved (0..255); use 256 or more")
        fields: dict[str, object] = {}
        self._sa_extensions(protocol, fields)
        self._sa_algorithms(proto_tok, protocol, fields)
        self.expect_end("';' after the algorithms")
        if nat_t:
            sport = sport or _NATT_DEFAULT_PORT
            dport = dport or _NATT_DEFAULT_PORT
        return AddSA(
            src=src,
            dst=dst,
            protocol=protocol,
            spi=spi,
            line=command.line,
            sport=sport,
            dport=dport,
            nat_t=nat_t,
            nat_oa=nat_oa,
            update=command.text == "update",
            **fields,  # type: ignore[arg-type]
        )

    def _getspi(self, command: Token) -> Command:
        family = self.address_flags()
        src, sport, dst, dport = self.sa_endpoints(family, ports=True)
        _, protocol, nat_t = self.sa_protocol()
        _, spi = self.spi()
        fields: dict[str, object] = {}
        self._sa_extensions(protocol, fields)
        self.expect_end("an extension or ';'")
        mode = fields.get("mode", "any")
        reqid = fields.get("reqid", 0)
        if set(fields) - {"mode", "reqid"} or not isinstance(mode, str):
            raise self.error(command, "getspi takes only the -m and -u extensions")
        return GetSpi(
            src,
            dst,
            protocol,
            spi,
            command.line,
            sport,
            dport,
            mode=mode,
            reqid=reqid if isinstance(reqid, int) else 0,
            nat_t=nat_t,
        )

    def _get_or_delete(self, command: Token) -> Command:
        family = self.address_flags()
        src, sport, dst, dport = self.sa_endpoints(family, ports=True)
        _, protocol, nat_t = self.sa_protocol()
        _, spi = self.spi()
        self.expect_end("';'")
        cls = GetSA if command.text == "get" else DeleteSA
        return cls(src, dst, protocol, spi, command.line, sport, dport, nat_t)

    def _deleteall(self, command: Token) -> Command:
        family = self.address_flags()
        src, _, dst, _ = self.sa_endpoints(family, ports=False)
        _, protocol, nat_t = self.sa_protocol()
        self.expect_end("';'")
        return DeleteAll(src, dst, protocol, command.line, nat_t)

    def _flush_or_dump(self, command: Token) -> Command:
        protocol: str | None = None
        if self.peek().kind != ";":
            _, protocol, nat_t = self.sa_protocol()
            if nat_t:
                protocol = "esp"
        self.expect_end("';'")
        cls = Flush if command.text == "flush" else Dump
        return cls(protocol, command.line)

    # -- SPD commands --------------------------------------------------------------
    def _range(self, family: int | None, what: str) -> tuple[Token, Network, int]:
        token = self.next()
        address = self.host(token, family, what)
        prefix: int = address.max_prefixlen
        if self.peek().kind == "/":
            self.next()
            prefix = self.number(self.next(), "a prefix length", address.max_prefixlen)
        port = self.optional_port() or 0
        network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
        return token, network, port

    def _upperspec(self) -> tuple[Token, int]:
        token = self.next()
        what = "an upper-layer protocol (any, a name such as tcp, udp, icmp6, or 0..255)"
        if token.is_word("any"):
            return token, UPPERSPEC_ANY
        if token.kind == WORD and _DEC_RE.fullmatch(token.text):
            return token, self.number(token, what, _U8)
        if token.kind == WORD and token.text in PROTOCOL_NUMBERS:
            return token, PROTOCOL_NUMBERS[token.text]
        raise self.expected(token, what)

    def _upper_misc(self, upper: int) -> dict[str, int]:
        """ICMP ``type,code`` or a GRE key after the upper-layer protocol."""
        token = self.peek()
        if token.kind != WORD or token.text.startswith("-"):
            return {}
        self.next()
        if upper in _ICMP_LIKE:
            match = re.fullmatch(r"([0-9]{1,3}),([0-9]{1,3})", token.text)
            if match is None or int(match[1]) > _U8 or int(match[2]) > _U8:
                raise self.expected(token, "an ICMP type,code pair (e.g. 135,0)")
            return {"icmp_type": int(match[1]), "icmp_code": int(match[2])}
        if upper == _GRE:
            if _DEC_RE.fullmatch(token.text) and _decimal(token.text) <= _U32:
                return {"gre_key": _decimal(token.text)}
            try:
                return {"gre_key": int(ipaddress.IPv4Address(token.text))}
            except ValueError:
                raise self.expected(token, "a GRE key (number or dotted quad)") from None
        raise self.expected(token, "'-P' (only icmp, icmp6, mh and gre take an argument)")

    def _selector(self, family: int | None) -> dict[str, object]:
        src_tok, src, sport = self._range(family, "a source address range")
        _, dst, dport = self._range(family, "a destination address range")
        self.same_family(src_tok, src, dst)
        _, upper = self._upperspec()
        fields: dict[str, object] = {"src": src, "dst": dst, "upperspec": upper}
        fields.update(self._upper_misc(upper))
        if (upper in _ICMP_LIKE or upper == _GRE) and (sport or dport):
            raise self.error(src_tok, "ports are not allowed with icmp, icmp6, mh or gre")
        fields["sport"] = sport
        fields["dport"] = dport
        return fields

    def _priority(self) -> int:
        start = self.peek()
        parts: list[str] = []
        while self.peek().kind == WORD and self.peek().text not in _ACTIONS:
            parts.append(self.next().text)
        text = "".join(parts)
        match = _PRIO_RE.fullmatch(text)
        what = "a priority (N, -N, or low/def/high followed by +N or -N)"
        if match is None:
            raise self.expected(start, what) if parts else self.expected(self.peek(), what)
        base, sign, offset, minus, plain = match.groups()
        if base is not None:
            value = _PRIO_BASES[base]
            amount = _decimal(offset or "0")
            # setkey(8): "+" up to 1073741824, "-" up to 1073741823 (keeps it in u32).
            limit = 0x40000000 if sign == "+" else 0x3FFFFFFF
            if amount > limit:
                raise self.error(start, f"priority offset out of range (0..{limit})")
            return value - amount if sign == "+" else value + amount
        amount = _decimal(plain)
        if minus:
            if amount > 0x7FFFFFFF:
                raise self.error(start, "priority out of range (-2147483647..2147483648)")
            return PRIORITY_DEFAULT + amount
        if amount > 0x80000000:
            raise self.error(start, "priority out of range (-2147483647..2147483648)")
        return PRIORITY_DEFAULT - amount

    def _policy(self, need_action: bool) -> dict[str, object]:
        flag = self.next()
        if not flag.is_word("-P"):
            raise self.expected(flag, "'-P' and a policy direction")
        direction = self.next()
        if direction.kind != WORD or direction.text not in _DIRECTIONS:
            raise self.expected(direction, "a policy direction (in, out or fwd)")
        fields: dict[str, object] = {"direction": direction.text}
        if self.peek().is_word("priority", "prio"):
            self.next()
            fields["priority"] = self._priority()
        if self.peek().kind == ";" and not need_action:
            return fields
        action = self.next()
        if action.kind != WORD or action.text not in _ACTIONS:
            raise self.expected(action, "a policy action (discard, none or ipsec)")
        fields["action"] = action.text
        requests: list[IpsecRequest] = []
        if action.text == "ipsec":
            while self.peek().kind not in (";", EOF):
                requests.append(self._request(direction.text))
            if not requests:
                raise self.expected(self.peek(), "an IPsec request (protocol/mode/src-dst/level)")
        fields["requests"] = tuple(requests)
        return fields

    def _request(self, direction: str) -> IpsecRequest:
        """``protocol/mode[/[src[port]-dst[port]][/level]]``, written without spaces."""
        first = self.next()
        if first.kind not in (WORD, "/", "[", "]"):
            raise self.expected(first, "an IPsec request (protocol/mode/src-dst/level)")
        end = first.end
        while self.peek().kind in (WORD, "/", "[", "]") and self.peek().start == end:
            end = self.next().end
        return _RequestParser(self, first, self.text[first.start : end]).parse()

    def _spdadd(self, command: Token) -> Command:
        family = self.address_flags()
        fields = self._selector(family)
        if self.peek().is_word("-ctx"):
            self.next()
            fields["context"] = self.context()
        fields.update(self._policy(need_action=True))
        self.expect_end("another IPsec request or ';'")
        return SpdAdd(line=command.line, update=command.text == "spdupdate", **fields)  # type: ignore[arg-type]

    def _spddelete(self, command: Token) -> Command:
        family = self.address_flags()
        fields = self._selector(family)
        if self.peek().is_word("-ctx"):
            self.next()
            self.context()
        policy = self._policy(need_action=False)
        self.expect_end("';'")
        return SpdDelete(line=command.line, direction=str(policy["direction"]), **fields)  # type: ignore[arg-type]

    def _spd_simple(self, command: Token) -> Command:
        self.expect_end("';'")
        return SpdFlush(command.line) if command.text == "spdflush" else SpdDump(command.line)


class _RequestParser:
    """Parses one request from its source text, reporting columns inside it."""

    def __init__(self, parser: _Parser, token: Token, text: str) -> None:
        self.parser = parser
        self.token = token
        self.text = text

    def fail(self, offset: int, message: str) -> SetkeyError:
        return SetkeyError(
            self.parser.filename, self.token.line, self.token.column + offset, message
        )

    def parse(self) -> IpsecRequest:
        parts = self.text.split("/")
        offsets = [0]
        for part in parts[:-1]:
            offsets.append(offsets[-1] + len(part) + 1)
        if len(parts) > 4:
            raise self.fail(
                offsets[4] - 1, "expected at most protocol/mode/src-dst/level, got another '/'"
            )
        protocol = parts[0]
        if protocol not in _REQUEST_PROTOCOLS:
            raise self.fail(
                0, f"expected a request protocol (esp, ah or ipcomp), got {self._show(protocol)}"
            )
        if len(parts) < 2 or parts[1] not in _REQUEST_MODES:
            got = self._show(parts[1]) if len(parts) > 1 else "nothing"
            raise self.fail(
                offsets[1] if len(parts) > 1 else len(self.text),
                f"expected '/transport' or '/tunnel' after {protocol}, got {got}",
            )
        mode = parts[1]
        fields: dict[str, object] = {}
        if len(parts) > 2 and parts[2]:
            fields.update(self._endpoints(parts[2], offsets[2]))
        elif mode == "tunnel":
            at = offsets[2] if len(parts) > 2 else len(self.text)
            raise self.fail(at, "expected tunnel endpoints (src-dst) for tunnel mode")
        level = parts[3] if len(parts) > 3 and parts[3] else "default"
        reqid = 0
        if level.startswith("unique:"):
            number = level.removeprefix("unique:")
            if not _DEC_RE.fullmatch(number) or not 1 <= _decimal(number) <= _MAX_UNIQUE_ID:
                raise self.fail(
                    offsets[3],
                    f"expected unique:N with N in 1..{_MAX_UNIQUE_ID}, got {self._show(level)}",
                )
            level, reqid = "unique", _decimal(number)
        elif level not in _LEVELS:
            raise self.fail(
                offsets[3],
                "expected a level (default, use, require, unique or "
                f"unique:N), got {self._show(level)}",
            )
        return IpsecRequest(protocol=protocol, mode=mode, level=level, reqid=reqid, **fields)  # type: ignore[arg-type]

    def _endpoints(self, text: str, offset: int) -> dict[str, object]:
        if text.count("-") != 1:
            raise self.fail(offset, f"expected endpoints as src-dst, got {self._show(text)}")
        left, right = text.split("-")
        src, sport = self._endpoint(left, offset, "source")
        dst, dport = self._endpoint(right, offset + len(left) + 1, "destination")
        if src.version != dst.version:
            raise self.fail(offset, "tunnel endpoint address families differ")
        return {"src": src, "dst": dst, "sport": sport, "dport": dport}

    def _endpoint(self, text: str, offset: int, which: str) -> tuple[Address, int]:
        port = 0
        match = re.fullmatch(r"([^\[\]]*)\[([0-9]{1,5})\]", text)
        host = text
        if match is not None:
            host, port = match[1], int(match[2])
            if port > _U16:
                raise self.fail(offset + len(host), f"port out of range (0..65535), got {port}")
        try:
            return ipaddress.ip_address(host), port
        except ValueError:
            raise self.fail(
                offset, f"expected a numeric {which} address, got {self._show(host)}"
            ) from None

    @staticmethod
    def _show(text: str) -> str:
        return show(text)
