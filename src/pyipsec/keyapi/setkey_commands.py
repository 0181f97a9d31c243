"""The commands of a setkey(8) file as plain, frozen dataclasses.

They hold only strings, ints, bytes and ``ipaddress`` objects, so the ``pyipsec
setkey`` command can turn each one into a PF_KEY message (RFC 2367) or an engine call.
Keys are bytes and never part of a ``repr``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# sadb_x_policy_priority as Linux keeps it: a smaller value is matched first. The
# user-facing syntax counts the other way ("prio 5" is placed *before* "prio def").
PRIORITY_HIGH = 0x40000000
PRIORITY_DEFAULT = 0x80000000
PRIORITY_LOW = 0xC0000000
UPPERSPEC_ANY = 255  # IPSEC_ULPROTO_ANY


@dataclass(frozen=True, slots=True)
class SecurityContext:
    """``-ctx doi algorithm "context-name"``: an LSM label (e.g. SELinux)."""

    doi: int
    algorithm: int
    name: str


@dataclass(frozen=True, slots=True)
class AddSA:
    """``add`` (or ``update`` when ``update``): install an SA with manual keys.

    ``protocol`` is the SA type as written (``esp``, ``esp-old``, ``ah``, ``ah-old``,
    ``ipcomp``, ``tcp``); ``esp-udp`` is stored as ``esp`` with ``nat_t`` set and the
    ports defaulting to 4500. Keys are bytes and kept out of ``repr``.
    """

    src: Address
    dst: Address
    protocol: str
    spi: int
    line: int
    sport: int = 0
    dport: int = 0
    mode: str = "any"
    replay: int = 0
    reqid: int = 0
    padding: str | None = None
    cyclic_seq: bool = True
    lifetime_hard_time: int = 0
    lifetime_soft_time: int = 0
    lifetime_hard_bytes: int = 0
    lifetime_soft_bytes: int = 0
    ealgo: str | None = None
    ekey: bytes = field(default=b"", repr=False)
    aalgo: str | None = None
    akey: bytes = field(default=b"", repr=False)
    calgo: str | None = None
    raw_cpi: bool = False
    nat_t: bool = False
    nat_oa: Address | None = None
    context: SecurityContext | None = None
    update: bool = False


@dataclass(frozen=True, slots=True)
class GetSpi:
    """``getspi``: reserve a larval SA (``spi`` 0 lets the kernel choose)."""

    src: Address
    dst: Address
    protocol: str
    spi: int
    line: int
    sport: int = 0
    dport: int = 0
    mode: str = "any"
    reqid: int = 0
    nat_t: bool = False


@dataclass(frozen=True, slots=True)
class GetSA:
    """``get src dst protocol spi``."""

    src: Address
    dst: Address
    protocol: str
    spi: int
    line: int
    sport: int = 0
    dport: int = 0
    nat_t: bool = False


@dataclass(frozen=True, slots=True)
class DeleteSA:
    """``delete src dst protocol spi``."""

    src: Address
    dst: Address
    protocol: str
    spi: int
    line: int
    sport: int = 0
    dport: int = 0
    nat_t: bool = False


@dataclass(frozen=True, slots=True)
class DeleteAll:
    """``deleteall src dst protocol``: every SA between the two addresses."""

    src: Address
    dst: Address
    protocol: str
    line: int
    nat_t: bool = False


@dataclass(frozen=True, slots=True)
class Flush:
    """``flush [protocol]``; ``protocol`` None flushes every SA type."""

    protocol: str | None
    line: int


@dataclass(frozen=True, slots=True)
class Dump:
    """``dump [protocol]``."""

    protocol: str | None
    line: int


@dataclass(frozen=True, slots=True)
class IpsecRequest:
    """One ``protocol/mode/src-dst/level`` rule of an ``ipsec`` policy.

    ``reqid`` is non-zero only for ``unique:N``; tunnel endpoints may carry ports for
    ESP-in-UDP (setkey(8), NAT-T note).
    """

    protocol: str
    mode: str
    level: str = "default"
    src: Address | None = None
    dst: Address | None = None
    sport: int = 0
    dport: int = 0
    reqid: int = 0


@dataclass(frozen=True, slots=True)
class SpdAdd:
    """``spdadd`` (``spdupdate`` when ``update``): one SPD entry.

    ``upperspec`` is an IP protocol number (255 means any). For ICMP, ICMPv6 and MH the
    optional ``type,code`` lands in ``icmp_type``/``icmp_code``; for GRE the key in
    ``gre_key``. ``priority`` is the PF_KEY value (smaller is matched first).
    """

    src: Network
    dst: Network
    upperspec: int
    direction: str
    action: str
    line: int
    sport: int = 0
    dport: int = 0
    icmp_type: int | None = None
    icmp_code: int | None = None
    gre_key: int | None = None
    priority: int = PRIORITY_DEFAULT
    requests: tuple[IpsecRequest, ...] = ()
    context: SecurityContext | None = None
    update: bool = False


@dataclass(frozen=True, slots=True)
class SpdDelete:
    """``spddelete src dst upperspec -P direction``."""

    src: Network
    dst: Network
    upperspec: int
    direction: str
    line: int
    sport: int = 0
    dport: int = 0
    icmp_type: int | None = None
    icmp_code: int | None = None
    gre_key: int | None = None


@dataclass(frozen=True, slots=True)
class SpdFlush:
    line: int


@dataclass(frozen=True, slots=True)
class SpdDump:
    line: int


Command = (
    AddSA
    | GetSpi
    | GetSA
    | DeleteSA
    | DeleteAll
    | Flush
    | Dump
    | SpdAdd
    | SpdDelete
    | SpdFlush
    | SpdDump
)
