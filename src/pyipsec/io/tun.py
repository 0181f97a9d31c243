"""The TUN device: the daemon's inner side, where plain IP packets come and go.

Opened through ``/dev/net/tun`` with ``TUNSETIFF`` (IFF_TUN | IFF_NO_PI: bare IP packets,
no packet-information prefix), non-blocking, and not persistent: the device disappears
when the daemon closes the descriptor or dies, so a crash leaves no interface behind
(and the routes through it go with it). Interface MTU, flags and queue length are set
with the classic ``SIOCSIF*`` ioctls, so no ``ip`` process runs for them.

With ``IFF_VNET_HDR`` (the default where the kernel has it) every packet crosses the
descriptor behind a ``virtio_net_hdr``: ``write_many`` then hands the kernel runs of TCP
segments of one flow as one GSO super-packet (``tun_offload``), one write for up to
64 KiB, the way a NIC's GRO would. No ``TUNSETOFFLOAD``: reads stay whole, checksummed
packets of at most the MTU.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import struct

from pyipsec.errors import ConfigError, ParseError
from pyipsec.io.tun_offload import PLAIN, VNET_HDR_LEN, coalesce, strip_header

log = logging.getLogger("pyipsec.tun")

TUNSETIFF = 0x400454CA  # _IOW('T', 202, int)
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFF_UP = 0x1
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCGIFMTU = 0x8921
SIOCSIFMTU = 0x8922
SIOCSIFTXQLEN = 0x8943
# Packets the kernel queues on the TUN for us to read (the default is 500): a burst from
# the local stack (an iperf3 UDP burst, a TCP window after an ACK) must not overflow it
# while the loop is busy encrypting the previous batch.
TX_QUEUE_LEN = 4096
IFNAMSIZ = 16
MAX_PACKET = 65535
_IFREQ_FLAGS = struct.Struct("16sH22x")  # struct ifreq with ifr_flags (40 bytes)
_IFREQ_INT = struct.Struct("16si20x")  # struct ifreq with ifr_mtu


def _ifname(name: str) -> bytes:
    raw = name.encode()
    # IFNAMSIZ includes the terminating NUL; "/" and whitespace are refused by the kernel.
    if not raw or len(raw) >= IFNAMSIZ or any(c in raw for c in b"/ \t\n:"):
        raise ConfigError(f"invalid interface name {name!r}")
    return raw


def ifreq_flags(name: str, flags: int) -> bytes:
    """A ``struct ifreq`` carrying interface flags (for TUNSETIFF and SIOC[GS]IFFLAGS)."""
    return _IFREQ_FLAGS.pack(_ifname(name), flags)


def ifreq_int(name: str, value: int) -> bytes:
    """A ``struct ifreq`` carrying an int (ifr_mtu, for SIOC[GS]IFMTU)."""
    return _IFREQ_INT.pack(_ifname(name), value)


def _ioctl_socket() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)


def interface_mtu(name: str) -> int:
    """The MTU of interface ``name`` in this namespace."""
    with _ioctl_socket() as s:
        try:
            out = fcntl.ioctl(s, SIOCGIFMTU, ifreq_int(name, 0))
        except OSError as exc:
            raise ConfigError(f"no interface {name!r}: {exc.strerror}") from None
    mtu: int = _IFREQ_INT.unpack(out)[1]
    return mtu


def set_interface_mtu(name: str, mtu: int) -> None:
    if not 68 <= mtu <= MAX_PACKET:
        raise ConfigError(f"MTU {mtu} is out of range 68..65535")
    with _ioctl_socket() as s:
        fcntl.ioctl(s, SIOCSIFMTU, ifreq_int(name, mtu))


def set_interface_txqueuelen(name: str, qlen: int) -> None:
    if not 1 <= qlen <= 1 << 20:
        raise ConfigError(f"queue length {qlen} is out of range 1..{1 << 20}")
    with _ioctl_socket() as s:
        fcntl.ioctl(s, SIOCSIFTXQLEN, ifreq_int(name, qlen))


def set_interface_up(name: str, up: bool = True) -> None:
    with _ioctl_socket() as s:
        flags: int = _IFREQ_FLAGS.unpack(fcntl.ioctl(s, SIOCGIFFLAGS, ifreq_flags(name, 0)))[1]
        flags = flags | IFF_UP if up else flags & ~IFF_UP
        fcntl.ioctl(s, SIOCSIFFLAGS, ifreq_flags(name, flags))


class Tun:
    """An open TUN device. ``read_batch`` drains it; ``write`` injects one IP packet,
    ``write_many`` several (coalesced when the device has a vnet header)."""

    def __init__(self, fd: int, name: str, *, vnet: bool = False) -> None:
        self.fd = fd
        self.name = name
        self.vnet = vnet
        self.mtu = interface_mtu(name)
        self.index = socket.if_nametoindex(name)
        self.gso_writes = 0  # super-packets written (each carrying several packets)
        self.bad_reads = 0  # reads with a vnet header we cannot use (never expected)

    @classmethod
    def open(
        cls,
        name: str = "pyipsec0",
        *,
        mtu: int | None = None,
        vnet: bool = True,
        txqueuelen: int = TX_QUEUE_LEN,
    ) -> Tun:
        """Create TUN device ``name`` (a ``%d`` in it lets the kernel number it), set its
        MTU and queue length and bring it up. ``vnet``: with a virtio_net_hdr, if the
        kernel allows it (Linux 2.6.27+)."""
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise ConfigError(f"cannot open /dev/net/tun: {exc.strerror}") from None
        try:
            try:
                flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if vnet else 0)
                out = fcntl.ioctl(fd, TUNSETIFF, ifreq_flags(name, flags))
            except OSError:
                if not vnet:
                    raise
                vnet = False
                out = fcntl.ioctl(fd, TUNSETIFF, ifreq_flags(name, IFF_TUN | IFF_NO_PI))
        except OSError as exc:
            os.close(fd)
            raise ConfigError(f"cannot create TUN {name!r}: {exc.strerror}") from None
        real = _IFREQ_FLAGS.unpack(out)[0].rstrip(b"\0").decode()
        try:
            if mtu is not None:
                set_interface_mtu(real, mtu)
            try:
                set_interface_txqueuelen(real, txqueuelen)
            except OSError as exc:
                log.warning("%s: queue length %d refused: %s", real, txqueuelen, exc.strerror)
            set_interface_up(real)
            tun = cls(fd, real, vnet=vnet)
        except BaseException:
            os.close(fd)
            raise
        log.info("opened %s (mtu %d%s)", real, tun.mtu, ", vnet header" if vnet else "")
        return tun

    def fileno(self) -> int:
        return self.fd

    def set_mtu(self, mtu: int) -> None:
        if mtu != self.mtu:
            set_interface_mtu(self.name, mtu)
            log.info("%s mtu %d -> %d", self.name, self.mtu, mtu)
            self.mtu = mtu

    def read_batch(self, limit: int = 64) -> list[bytes]:
        """Up to ``limit`` packets, fewer if the device runs dry (never blocks)."""
        out: list[bytes] = []
        read, fd = os.read, self.fd
        append = out.append
        try:
            if not self.vnet:
                for _ in range(limit):
                    append(read(fd, MAX_PACKET))
                return out
            for _ in range(limit):
                buf = read(fd, MAX_PACKET + VNET_HDR_LEN)
                if len(buf) <= VNET_HDR_LEN or buf[0] or buf[1]:
                    try:
                        append(strip_header(buf))
                    except ParseError as exc:
                        self.bad_reads += 1
                        log.debug("%s: read dropped: %s", self.name, exc)
                else:
                    append(buf[VNET_HDR_LEN:])
        except (BlockingIOError, InterruptedError):
            pass
        return out

    def write(self, packet: bytes) -> bool:
        """Hand one IP packet to the kernel as if it arrived on the device; False if the
        kernel refused it (queue full, or not an IP packet)."""
        try:
            if self.vnet:
                os.write(self.fd, PLAIN + packet)
            else:
                os.write(self.fd, packet)
        except OSError:
            return False
        return True

    def write_many(self, packets: list[bytes]) -> int:
        """Write ``packets`` in order; how many of them the kernel refused. With a vnet
        header, runs of TCP segments of one flow go as one GSO super-packet."""
        failed = 0
        write, fd = os.write, self.fd
        if not self.vnet:
            for packet in packets:
                try:
                    write(fd, packet)
                except OSError:
                    failed += 1
            return failed
        for buf, count in coalesce(packets):
            try:
                write(fd, buf)
            except OSError:
                failed += count
            else:
                if count > 1:
                    self.gso_writes += 1
        return failed

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            log.info("closed %s", self.name)
            self.fd = -1
