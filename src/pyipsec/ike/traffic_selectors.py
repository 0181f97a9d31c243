"""Traffic selectors (RFC 7296 §2.9, §3.13.1): model, swanctl syntax and narrowing.

A selector is an inclusive address range, an IP protocol (0 = any) and an inclusive
port range. swanctl writes them as ``198.51.100.0/24``, ``192.0.2.10``,
``192.0.2.10-192.0.2.20``, each optionally followed by ``[proto/port]``
(``[tcp/443]``, ``[udp]``, ``[%any/53]``, ``[tcp/1024-2048]``, ``[udp/opaque]``),
or ``dynamic``, which stands for the address of the IKE endpoint (or the virtual IP)
and is resolved once that address is known.

For ICMP and ICMPv6 the 16-bit "port" carries the message type in its high octet and
the code in its low octet (RFC 7296 §3.13.1, RFC 4301 §4.4.1.1); ``[icmp/8]`` therefore
selects type 8 with any code.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from pyipsec.errors import ConfigError
from pyipsec.ike.v2 import payloads
from pyipsec.ike.v2.constants import TsType

IPAddress = IPv4Address | IPv6Address

PORT_MAX = 0xFFFF
# RFC 7296 §3.13.1: start port 65535 and end port 0 mean OPAQUE (ports not available,
# e.g. a non-initial fragment); such a selector matches only OPAQUE or "any port".
OPAQUE = (PORT_MAX, 0)

ICMP = 1
ICMPV6 = 58

# The IP protocol names swanctl users write (as in /etc/protocols); numbers work too.
PROTOCOLS: dict[str, int] = {
    "icmp": ICMP,
    "igmp": 2,
    "ipencap": 4,
    "tcp": 6,
    "udp": 17,
    "ipv6": 41,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "ipv6-icmp": ICMPV6,
    "icmpv6": ICMPV6,
    "icmp6": ICMPV6,
    "ospf": 89,
    "sctp": 132,
    "udplite": 136,
}
_PROTOCOL_NAMES: dict[int, str] = {}
for _name, _number in PROTOCOLS.items():
    _PROTOCOL_NAMES.setdefault(_number, _name)


# Cached: every CHILD SA's policies summarize the same few ranges again (the list each
# call returns is a fresh copy of the cached tuple).
@functools.lru_cache(maxsize=1024)
def _summarize_v4(first: IPv4Address, last: IPv4Address) -> tuple[IPv4Network, ...]:
    return tuple(ipaddress.summarize_address_range(first, last))


@functools.lru_cache(maxsize=1024)
def _summarize_v6(first: IPv6Address, last: IPv6Address) -> tuple[IPv6Network, ...]:
    return tuple(ipaddress.summarize_address_range(first, last))


@dataclass(frozen=True, slots=True)
class TrafficSelector:
    """An address range with protocol and port range, all bounds inclusive."""

    start_addr: IPAddress
    end_addr: IPAddress
    protocol: int = 0
    start_port: int = 0
    end_port: int = PORT_MAX

    def __post_init__(self) -> None:
        if self.start_addr.version != self.end_addr.version:
            raise ConfigError("traffic selector mixes IPv4 and IPv6 addresses")
        if int(self.start_addr) > int(self.end_addr):
            raise ConfigError(f"traffic selector range {self.start_addr}-{self.end_addr} is empty")
        if not 0 <= self.protocol <= 255:
            raise ConfigError(f"IP protocol {self.protocol} out of range 0-255")
        if not (0 <= self.start_port <= PORT_MAX and 0 <= self.end_port <= PORT_MAX):
            raise ConfigError(f"port range {self.start_port}-{self.end_port} out of range")
        if self.start_port > self.end_port and not self.is_opaque:
            raise ConfigError(f"port range {self.start_port}-{self.end_port} is empty")

    # -- construction ------------------------------------------------------------

    @classmethod
    def from_network(
        cls,
        network: IPv4Network | IPv6Network | str,
        protocol: int = 0,
        ports: tuple[int, int] = (0, PORT_MAX),
    ) -> TrafficSelector:
        try:
            net = ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise ConfigError(f"invalid network {network!r}: {exc}") from None
        return cls(net.network_address, net.broadcast_address, protocol, *ports)

    @classmethod
    def host(cls, address: IPAddress | str, protocol: int = 0) -> TrafficSelector:
        try:
            addr = ipaddress.ip_address(address)
        except ValueError as exc:
            raise ConfigError(f"invalid address {address!r}: {exc}") from None
        return cls(addr, addr, protocol)

    @classmethod
    def any(cls, version: int = 4) -> TrafficSelector:
        return cls.from_network("0.0.0.0/0" if version == 4 else "::/0")

    # -- properties ----------------------------------------------------------------

    @property
    def version(self) -> int:
        return self.start_addr.version

    @property
    def ts_type(self) -> TsType:
        return TsType.IPV4_ADDR_RANGE if self.version == 4 else TsType.IPV6_ADDR_RANGE

    @property
    def is_opaque(self) -> bool:
        return (self.start_port, self.end_port) == OPAQUE

    @property
    def is_host(self) -> bool:
        return self.start_addr == self.end_addr

    def networks(self) -> list[IPv4Network] | list[IPv6Network]:
        """The address range as the fewest CIDR blocks (for SPD entries)."""
        if isinstance(self.start_addr, IPv4Address) and isinstance(self.end_addr, IPv4Address):
            return list(_summarize_v4(self.start_addr, self.end_addr))
        if isinstance(self.start_addr, IPv6Address) and isinstance(self.end_addr, IPv6Address):
            return list(_summarize_v6(self.start_addr, self.end_addr))
        raise ConfigError("traffic selector mixes IPv4 and IPv6 addresses")  # pragma: no cover

    def contains(self, address: IPAddress, protocol: int = 0, port: int | None = None) -> bool:
        """Whether one packet (address, protocol, port or ICMP type<<8|code) matches."""
        if address.version != self.version:
            return False
        if not int(self.start_addr) <= int(address) <= int(self.end_addr):
            return False
        if self.protocol and protocol != self.protocol:
            return False
        if port is None:
            return True
        if self.is_opaque:
            return False
        return self.start_port <= port <= self.end_port

    # -- set operations (RFC 7296 §2.9) ------------------------------------------

    def intersect(self, other: TrafficSelector) -> TrafficSelector | None:
        """The selector both allow, or None when they share no traffic."""
        if self.version != other.version:
            return None
        start = max(int(self.start_addr), int(other.start_addr))
        end = min(int(self.end_addr), int(other.end_addr))
        if start > end:
            return None
        if self.protocol and other.protocol and self.protocol != other.protocol:
            return None
        protocol = self.protocol or other.protocol
        ports = _intersect_ports(self, other)
        if ports is None:
            return None
        make = IPv4Address if self.version == 4 else IPv6Address
        return TrafficSelector(make(start), make(end), protocol, *ports)

    def is_subset(self, other: TrafficSelector) -> bool:
        """Whether every packet this selector matches also matches ``other``."""
        return self.intersect(other) == self

    # -- text ----------------------------------------------------------------------

    def __str__(self) -> str:
        nets = self.networks()
        text = str(nets[0]) if len(nets) == 1 else f"{self.start_addr}-{self.end_addr}"
        return text + _suffix(self.protocol, self.start_port, self.end_port)

    # -- IKEv2 TS payload --------------------------------------------------------

    def to_payload(self) -> payloads.TrafficSelector:
        return payloads.TrafficSelector(
            self.start_addr, self.end_addr, self.protocol, self.start_port, self.end_port
        )

    @classmethod
    def from_payload(cls, ts: payloads.TrafficSelector) -> TrafficSelector:
        """Our selector for a received one; ConfigError if it is inconsistent."""
        return cls(ts.start_addr, ts.end_addr, ts.ip_protocol, ts.start_port, ts.end_port)


@dataclass(frozen=True, slots=True)
class DynamicTrafficSelector:
    """swanctl ``dynamic``: the IKE endpoint's (or virtual IP's) own address."""

    protocol: int = 0
    start_port: int = 0
    end_port: int = PORT_MAX

    def resolve(self, address: IPAddress) -> TrafficSelector:
        return TrafficSelector(address, address, self.protocol, self.start_port, self.end_port)

    def __str__(self) -> str:
        return "dynamic" + _suffix(self.protocol, self.start_port, self.end_port)


TsSpec = TrafficSelector | DynamicTrafficSelector


def _intersect_ports(a: TrafficSelector, b: TrafficSelector) -> tuple[int, int] | None:
    full = (0, PORT_MAX)
    a_ports, b_ports = (a.start_port, a.end_port), (b.start_port, b.end_port)
    if a.is_opaque or b.is_opaque:
        # OPAQUE meets only OPAQUE or "any port" (RFC 7296 §3.13.1).
        if a_ports in (OPAQUE, full) and b_ports in (OPAQUE, full):
            return OPAQUE
        return None
    start, end = max(a.start_port, b.start_port), min(a.end_port, b.end_port)
    return (start, end) if start <= end else None


def _suffix(protocol: int, start: int, end: int) -> str:
    """The ``[proto/port]`` part of the text form ("" for any protocol and port)."""
    full_ports = (start, end) == (0, PORT_MAX)
    if protocol == 0 and full_ports:
        return ""
    proto = _PROTOCOL_NAMES.get(protocol, str(protocol)) if protocol else "%any"
    if full_ports:
        return f"[{proto}]"
    if (start, end) == OPAQUE:
        ports = "opaque"
    elif (
        protocol in (ICMP, ICMPV6)
        and start >> 8 == end >> 8
        and (start & 0xFF, end & 0xFF) == (0, 0xFF)
    ):
        ports = str(start >> 8)
    elif start == end:
        ports = str(start)
    else:
        ports = f"{start}-{end}"
    return f"[{proto}/{ports}]"


# -- parsing ---------------------------------------------------------------------------


def _is_number(text: str) -> bool:
    # str.isdigit() accepts digits that int() refuses ("²"): ASCII digits only.
    return text.isascii() and text.isdigit() and len(text) <= 6


def _parse_protocol(text: str, whole: str) -> int:
    word = text.strip().lower()
    if word in ("", "%any", "any"):
        return 0
    if word in PROTOCOLS:
        return PROTOCOLS[word]
    if _is_number(word) and int(word) <= 255:
        return int(word)
    raise ConfigError(f"unknown IP protocol {text!r} in traffic selector {whole!r}")


def _parse_port(text: str, whole: str) -> int:
    if not _is_number(text) or int(text) > PORT_MAX:
        raise ConfigError(f"invalid port {text!r} in traffic selector {whole!r}")
    return int(text)


def _parse_ports(text: str, protocol: int, whole: str) -> tuple[int, int]:
    word = text.strip().lower()
    if word in ("", "%any", "any"):
        return 0, PORT_MAX
    if word == "opaque":
        return OPAQUE
    if protocol in (ICMP, ICMPV6):
        # §3.13.1: type in the high octet; a bare type selects every code of that type.
        if not _is_number(word) or int(word) > 255:
            raise ConfigError(f"invalid ICMP type {text!r} in traffic selector {whole!r}")
        return int(word) << 8, (int(word) << 8) | 0xFF
    if "-" in word:
        low, _, high = word.partition("-")
        start, end = _parse_port(low, whole), _parse_port(high, whole)
        if start > end:
            raise ConfigError(f"empty port range {text!r} in traffic selector {whole!r}")
        return start, end
    port = _parse_port(word, whole)
    return port, port


def _parse_address_part(text: str, whole: str) -> tuple[IPAddress, IPAddress]:
    try:
        if "/" in text:
            net = ipaddress.ip_network(text, strict=False)
            return net.network_address, net.broadcast_address
        for sep in ("..", "-"):
            if sep in text:
                low, _, high = text.partition(sep)
                start, end = ipaddress.ip_address(low.strip()), ipaddress.ip_address(high.strip())
                if start.version != end.version or int(start) > int(end):
                    raise ConfigError(f"invalid address range in traffic selector {whole!r}")
                return start, end
        addr = ipaddress.ip_address(text)
        return addr, addr
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"invalid address in traffic selector {whole!r}") from None


def parse_ts(text: str) -> TsSpec:
    """One swanctl ``local_ts``/``remote_ts`` item."""
    whole = text
    text = text.strip()
    protocol, ports = 0, (0, PORT_MAX)
    if "[" in text:
        if not text.endswith("]") or text.count("[") != 1:
            raise ConfigError(f"traffic selector {whole!r}: expected addr[proto/port]")
        text, _, inner = text[:-1].partition("[")
        proto_text, _, port_text = inner.partition("/")
        protocol = _parse_protocol(proto_text, whole)
        ports = _parse_ports(port_text, protocol, whole)
        text = text.strip()
    if not text:
        raise ConfigError(f"traffic selector {whole!r} has no address")
    if text.lower() == "dynamic":
        return DynamicTrafficSelector(protocol, *ports)
    start, end = _parse_address_part(text, whole)
    return TrafficSelector(start, end, protocol, *ports)


def parse_ts_list(items: Iterable[str]) -> tuple[TsSpec, ...]:
    out = tuple(parse_ts(item) for item in items)
    if not out:
        raise ConfigError("empty traffic selector list")
    return out


def resolve(specs: Iterable[TsSpec], addresses: Sequence[IPAddress]) -> tuple[TrafficSelector, ...]:
    """Replace ``dynamic`` by one host selector per address (endpoint or virtual IPs)."""
    out: list[TrafficSelector] = []
    for spec in specs:
        if isinstance(spec, DynamicTrafficSelector):
            out.extend(spec.resolve(a) for a in addresses)
        else:
            out.append(spec)
    return tuple(dict.fromkeys(out))


# -- narrowing (RFC 7296 §2.9) -------------------------------------------------------------


def narrow(
    proposed: Sequence[TrafficSelector], configured: Sequence[TrafficSelector]
) -> tuple[TrafficSelector, ...]:
    """What a responder may accept: every non-empty intersection of the two lists.

    RFC 7296 §2.9: the responder answers with a subset of what was proposed that its
    policy allows; an empty result means TS_UNACCEPTABLE. Results are ordered by the
    configured selectors (local preference), duplicates and selectors already covered
    by an earlier result dropped.
    """
    out: list[TrafficSelector] = []
    for mine in configured:
        for theirs in proposed:
            common = mine.intersect(theirs)
            if common is not None and not any(common.is_subset(prev) for prev in out):
                out = [prev for prev in out if not prev.is_subset(common)]
                out.append(common)
    return tuple(out)


def is_narrowed_from(
    answered: Sequence[TrafficSelector], proposed: Sequence[TrafficSelector]
) -> bool:
    """The initiator's check: each answered selector lies inside one it proposed (§2.9)."""
    return bool(answered) and all(any(a.is_subset(p) for p in proposed) for a in answered)


def select_for_packet(
    proposed: Sequence[TrafficSelector], configured: Sequence[TrafficSelector]
) -> bool:
    """Whether the configuration covers the initiator's first selector.

    RFC 7296 §2.9: an initiator started by a packet puts that packet's selector first,
    so the responder can pick the policy for that very packet among several.
    """
    if not proposed:
        return False
    first = proposed[0]
    return any(first.is_subset(mine) for mine in configured)
