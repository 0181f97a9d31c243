"""The daemon's network side: raw ESP sockets, ESP-in-UDP on port 4500, bypass sockets.

Sockets (each one non-blocking, close-on-exec, and marked with SO_MARK so that the
policy routing rule in ``routing`` lets what they send leave by the normal routes):

- ``esp4``: AF_INET, SOCK_RAW, IPPROTO_ESP. Receives whole IPv4 packets (header
  included, as Linux raw IPv4 sockets do); sends ESP, the kernel adds the header.
- ``esp6``: AF_INET6, SOCK_RAW, IPPROTO_ESP. Receives the ESP payload only (IPv6 raw
  sockets never see the header, RFC 3542 §3), so the local destination address comes
  from ``IPV6_RECVPKTINFO``.
- ``udp4``/``udp6``: UDP port 4500 (RFC 3948 ESP-in-UDP, shared with IKE: datagrams that
  start with the non-ESP marker go to the IKE hook). ``IP_PKTINFO``/``IPV6_RECVPKTINFO``
  give the local address the peer used.
- ``raw4``/``raw6``: IPPROTO_RAW (header included) for packets the SPD lets ``bypass``:
  sent as the TUN gave them, with the mark, so they take the normal routes.

The source address of what we send is the SA's (``in_pktinfo.ipi_spec_dst`` /
``in6_pktinfo.ipi6_addr`` in ``sendmsg``), whatever the route would choose. ESP and UDP
sockets set ``IP_PMTUDISC_DO``: the kernel never fragments our ESP silently; a datagram
above the path MTU fails with EMSGSIZE and the daemon answers the inner sender instead.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import struct
from collections.abc import Callable

log = logging.getLogger("pyipsec.net")

IPPROTO_ESP = 50
IP_PKTINFO = 8
IP_MTU_DISCOVER = 10
IP_PMTUDISC_DO = 2
IPV6_MTU_DISCOVER = 23
IPV6_PMTUDISC_DO = 2
IPV6_RECVPKTINFO = 49
IPV6_PKTINFO = 50
SO_MARK = 36
SOL_UDP = 17
UDP_SEGMENT = 103  # udp(7): per-datagram GSO size, Linux 4.18+
UDP_GRO = 104  # udp(7): receive coalesced datagrams of one flow, Linux 5.0+
SO_SNDBUFFORCE = 32  # socket(7): as SO_SNDBUF, above net.core.wmem_max (CAP_NET_ADMIN)
SO_RCVBUFFORCE = 33
# Socket buffers for the data path. The defaults (about 200 KiB) hold some 150 full-size
# datagrams: a burst from a GSO sender, or a pause of the loop while it encrypts a batch,
# overflows them and the drop costs a TCP retransmission on the inner flow.
SOCKET_BUFFER = 4 << 20
# Kernel limits for one UDP GSO send: UDP_MAX_SEGMENTS (64 before Linux 6.9) and the
# 16-bit IP total length (65535 minus the IPv4 and UDP headers, and some margin).
GSO_MAX_SEGMENTS = 64
GSO_MAX_BYTES = 65000
NAT_T_PORT = 4500
RECV_SIZE = 65535
BATCH = 64  # datagrams read per readiness callback, so one busy socket cannot starve others
_IN_PKTINFO = struct.Struct("@i4s4s")  # ifindex, spec_dst, addr
_IN6_PKTINFO = struct.Struct("@16sI")  # addr, ifindex
_ANC_SPACE = socket.CMSG_SPACE(_IN6_PKTINFO.size)
_U16 = struct.Struct("=H")
_INT = struct.Struct("=i")
_ANC_SPACE_GRO = _ANC_SPACE + socket.CMSG_SPACE(_INT.size)

# What a receive function yields per datagram: (data, src, dst, sport, dport) with
# packed addresses; ports are 0 for raw ESP.
Datagram = tuple[bytes, bytes, bytes, int, int]
Receiver = Callable[[socket.socket, int], list[Datagram]]


def _local_from_cmsgs(ancdata: list[tuple[int, int, bytes]]) -> bytes:
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= _IN_PKTINFO.size:
            return bytes(data[8:12])  # in_pktinfo.ipi_addr: the header's destination
        if level == socket.IPPROTO_IPV6 and kind == IPV6_PKTINFO and len(data) >= 20:
            return data[:16]
    return b""


def recv_esp4(sock: socket.socket, limit: int = BATCH) -> list[Datagram]:
    """Raw IPv4 ESP: strip the IP header (its addresses are the SA lookup keys)."""
    out: list[Datagram] = []
    recv = sock.recv
    try:
        for _ in range(limit):
            pkt = recv(RECV_SIZE)
            ihl = (pkt[0] & 0x0F) * 4 if pkt else 0
            if ihl < 20 or len(pkt) < ihl:
                continue  # the kernel checked the header; this never happens
            out.append((pkt[ihl:], pkt[12:16], pkt[16:20], 0, 0))
    except (BlockingIOError, InterruptedError):
        pass
    return out


def recv_with_pktinfo(sock: socket.socket, limit: int = BATCH) -> list[Datagram]:
    """Raw IPv6 ESP or UDP (either family): the payload, with addresses and ports."""
    out: list[Datagram] = []
    family = sock.family
    pton = socket.inet_pton
    recvmsg = sock.recvmsg
    try:
        for _ in range(limit):
            data, anc, _flags, addr = recvmsg(RECV_SIZE, _ANC_SPACE)
            dst = _local_from_cmsgs(anc)
            if not dst:
                continue  # no pktinfo: cannot tell which SA; never expected
            out.append((data, pton(family, addr[0]), dst, addr[1], 0))
    except (BlockingIOError, InterruptedError):
        pass
    return out


def recv_udp_gro(sock: socket.socket, limit: int = BATCH) -> list[Datagram]:
    """UDP with ``UDP_GRO`` on: one ``recvmsg`` may return several datagrams of one peer
    glued together, all of the size the ``UDP_GRO`` cmsg gives but the last (which may be
    shorter), as a UDP GSO sender sent them; each is yielded on its own. ``limit`` counts
    ``recvmsg`` calls, not datagrams."""
    out: list[Datagram] = []
    family = sock.family
    pton = socket.inet_pton
    recvmsg = sock.recvmsg
    append = out.append
    try:
        for _ in range(limit):
            data, anc, _flags, addr = recvmsg(RECV_SIZE, _ANC_SPACE_GRO)
            dst = b""
            size = 0
            for level, kind, cdata in anc:
                if level == SOL_UDP:
                    if kind == UDP_GRO and len(cdata) >= _INT.size:
                        size = _INT.unpack_from(cdata)[0]
                elif level == socket.IPPROTO_IP:
                    if kind == IP_PKTINFO and len(cdata) >= _IN_PKTINFO.size:
                        dst = cdata[8:12]  # in_pktinfo.ipi_addr: the header's destination
                elif kind == IPV6_PKTINFO and len(cdata) >= _IN6_PKTINFO.size:
                    dst = cdata[:16]
            if not dst:
                continue  # no pktinfo: cannot tell which SA; never expected
            src = pton(family, addr[0])
            sport = addr[1]
            n = len(data)
            if 0 < size < n:
                for i in range(0, n, size):
                    append((data[i : i + size], src, dst, sport, 0))
            else:
                append((data, src, dst, sport, 0))
    except (BlockingIOError, InterruptedError):
        pass
    return out


def _set_buffer(sock: socket.socket, force: int, plain: int, size: int) -> None:
    """Ask for a ``size``-byte socket buffer: forced past the sysctl limit as root, else
    as large as ``net.core.[rw]mem_max`` allows."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except PermissionError:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, plain, size)


def _pktinfo_cmsg(src: str) -> list[tuple[int, int, bytes]]:
    """Ancillary data that makes the kernel send from ``src`` (RFC 3542 §6.1, ip(7))."""
    if ":" in src:
        info = _IN6_PKTINFO.pack(socket.inet_pton(socket.AF_INET6, src), 0)
        return [(socket.IPPROTO_IPV6, IPV6_PKTINFO, info)]
    info = _IN_PKTINFO.pack(0, socket.inet_aton(src), bytes(4))
    return [(socket.IPPROTO_IP, IP_PKTINFO, info)]


class NetworkSockets:
    """All network sockets of one daemon, and the send paths over them."""

    def __init__(self, mark: int, *, port: int = NAT_T_PORT, ipv6: bool = True) -> None:
        self.mark = mark
        self.port = port
        self.sockets: dict[str, socket.socket] = {}
        # (src, dst, encap) -> (socket, sockaddr, ancillary data): built once per SA pair.
        self._routes: dict[tuple[str, str, tuple[int, int] | None], _SendPath] = {}
        # UDP GSO for bursts of ESP-in-UDP to one peer; off after the kernel refuses it.
        self.gso = True
        # UDP GRO on the receiving side, where the kernel has it (set in ``_open``).
        self.gro = False
        try:
            self._open(ipv6)
        except BaseException:
            self.close()
            raise

    def _new(
        self, name: str, family: int, kind: int, proto: int, *, pmtu: bool = True
    ) -> socket.socket:
        sock = socket.socket(family, kind | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, proto)
        self.sockets[name] = sock
        sock.setsockopt(socket.SOL_SOCKET, SO_MARK, self.mark)
        if pmtu and family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
        elif pmtu:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_DO)
        if family == socket.AF_INET6:
            if kind == socket.SOCK_DGRAM:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if proto != socket.IPPROTO_RAW:
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        if proto != socket.IPPROTO_RAW:
            _set_buffer(sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, SOCKET_BUFFER)
            _set_buffer(sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, SOCKET_BUFFER)
        if kind == socket.SOCK_DGRAM:
            try:
                sock.setsockopt(SOL_UDP, UDP_GRO, 1)
            except OSError:
                pass  # kernel before 5.0: one datagram per recvmsg
            else:
                self.gro = True
        return sock

    def _open(self, ipv6: bool) -> None:
        inet, inet6 = socket.AF_INET, socket.AF_INET6
        raw, dgram = socket.SOCK_RAW, socket.SOCK_DGRAM
        self._new("esp4", inet, raw, IPPROTO_ESP)
        udp4 = self._new("udp4", inet, dgram, socket.IPPROTO_UDP)
        udp4.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        udp4.bind(("0.0.0.0", self.port))  # noqa: S104 - ESP-in-UDP from any peer
        self._new("raw4", inet, raw, socket.IPPROTO_RAW, pmtu=False)
        if ipv6:
            self._new("esp6", inet6, raw, IPPROTO_ESP)
            self._new("udp6", inet6, dgram, socket.IPPROTO_UDP).bind(("::", self.port))
            # IPv6 IPPROTO_RAW sockets include the header (Linux, since 4.5).
            self._new("raw6", inet6, raw, socket.IPPROTO_RAW, pmtu=False)
        log.info(
            "sockets open: %s (mark 0x%x, port %d)", " ".join(self.sockets), self.mark, self.port
        )

    def close(self) -> None:
        for sock in self.sockets.values():
            with contextlib.suppress(OSError):
                sock.close()
        self.sockets.clear()
        self._routes.clear()

    # -- sending -------------------------------------------------------------------
    def send_esp(self, data: bytes, src: str, dst: str, encap: tuple[int, int] | None) -> int:
        """Send an ESP packet (or ESP-in-UDP payload); 0 or the errno that stopped it."""
        key = (src, dst, encap)
        path = self._routes.get(key)
        if path is None:
            path = self._routes[key] = self._path(src, dst, encap)
        try:
            path.sock.sendmsg([data], path.anc, 0, path.addr)
        except OSError as exc:
            return exc.errno or errno.EIO
        return 0

    def send_esp_many(self, datas: list[bytes], src: str, dst: str, encap: tuple[int, int]) -> int:
        """Send several ESP-in-UDP payloads to one peer with one ``sendmsg`` (UDP GSO).

        All but the last must have the same length and the last must not be longer: the
        kernel cuts the super-datagram into datagrams of the first one's size (udp(7)
        ``UDP_SEGMENT``), each with its own UDP and IP header. The caller keeps within
        ``GSO_MAX_SEGMENTS`` and ``GSO_MAX_BYTES``. 0, or the errno: then nothing was sent
        and the caller sends them one by one (which also reports EMSGSIZE per packet).
        """
        key = (src, dst, encap)
        path = self._routes.get(key)
        if path is None:
            path = self._routes[key] = self._path(src, dst, encap)
        anc = [*path.anc, (SOL_UDP, UDP_SEGMENT, _U16.pack(len(datas[0])))]
        try:
            path.sock.sendmsg(datas, anc, 0, path.addr)
        except OSError as exc:
            code = exc.errno or errno.EIO
            if code in (errno.EIO, errno.ENOPROTOOPT, errno.EOPNOTSUPP):
                # No checksum offload on the route's device, or a kernel without UDP GSO.
                log.info("UDP GSO refused (%s): sending datagrams one by one", exc.strerror)
                self.gso = False
            return code
        return 0

    def _path(self, src: str, dst: str, encap: tuple[int, int] | None) -> _SendPath:
        v6 = ":" in dst
        if encap is None:
            sock = self.sockets["esp6" if v6 else "esp4"]
            addr: tuple[str, int] = (dst, 0)
        else:
            sock = self.sockets["udp6" if v6 else "udp4"]
            if encap[0] != self.port:
                log.warning(
                    "SA %s->%s wants source port %d; sending from %d", src, dst, encap[0], self.port
                )
            addr = (dst, encap[1])
        return _SendPath(sock, addr, _pktinfo_cmsg(src))

    def send_bypass(self, packet: bytes) -> int:
        """Send a plain IP packet (header included) by the normal routes; 0 or an errno."""
        try:
            if packet[0] >> 4 == 4:
                self.sockets["raw4"].sendto(packet, (socket.inet_ntoa(packet[16:20]), 0))
            else:
                dst = socket.inet_ntop(socket.AF_INET6, packet[24:40])
                self.sockets["raw6"].sendto(packet, (dst, 0))
        except (OSError, IndexError, KeyError, ValueError) as exc:
            return getattr(exc, "errno", None) or errno.EINVAL
        return 0

    def readers(
        self,
    ) -> list[tuple[socket.socket, Receiver, bool]]:
        """(socket, receive function, is UDP) for each socket the daemon must read."""
        out: list[tuple[socket.socket, Receiver, bool]] = []
        for name, sock in self.sockets.items():
            if name == "esp4":
                out.append((sock, recv_esp4, False))
            elif name == "esp6":
                out.append((sock, recv_with_pktinfo, False))
            elif name in ("udp4", "udp6"):
                out.append((sock, recv_udp_gro if self.gro else recv_with_pktinfo, True))
        return out


class _SendPath:
    __slots__ = ("addr", "anc", "sock")

    def __init__(
        self, sock: socket.socket, addr: tuple[str, int], anc: list[tuple[int, int, bytes]]
    ) -> None:
        self.sock = sock
        self.addr = addr
        self.anc = anc
