"""TUN offloads: the ``virtio_net_hdr`` of a TUN opened with ``IFF_VNET_HDR``, and the
coalescing of inbound TCP segments into one super-packet per TUN write.

With ``IFF_VNET_HDR`` every read and write on the TUN starts with a 10-byte
``struct virtio_net_hdr`` (linux/virtio_net.h; native byte order on a little-endian host
for a TUN without ``TUNSETVNETBE``):

    u8 flags; u8 gso_type; u16 hdr_len; u16 gso_size; u16 csum_start; u16 csum_offset;

Writing a run of TCP segments of one flow as one packet with ``gso_type`` TCPV4/TCPV6 and
``gso_size`` = the segments' payload size costs one ``write`` (and one trip up the
kernel's IP stack) instead of one per segment; the kernel's TCP takes the super-packet as
if its own GRO had built it. This is what a receiving host's GRO does on a NIC
(``tcp_gro_receive``), and the merge rules are the same: one flow, consecutive sequence
numbers, same ACK, window, options, TOS and TTL; ACK (or ACK|PSH on the last) as the only
flags; every segment of ``gso_size`` bytes but the last, which may be shorter.

Checksums: the super-packet goes with ``flags`` = 0 (no ``NEEDS_CSUM``, no
``DATA_VALID``), so the kernel verifies its TCP checksum in full as for any packet from
the TUN. Its checksum is computed without reading the payload: a valid segment's
one's-complement sum (pseudo-header + TCP header + payload) is zero, so each payload's
sum follows from its header alone (RFC 1071 §2: the sum is commutative and associative
over 16-bit words; every payload starts at an even offset). A segment that arrived with
a wrong checksum makes the super-packet's wrong too, and the kernel drops it as it
would have dropped that segment.

Reads: without ``TUNSETOFFLOAD`` the kernel hands us whole, checksummed packets behind a
header of zeros; ``strip_header`` still completes a ``NEEDS_CSUM`` checksum if one comes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from pyipsec.errors import ParseError

VNET_HDR = struct.Struct("=BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start/offset
VNET_HDR_LEN = VNET_HDR.size  # 10
F_NEEDS_CSUM = 1
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_TCPV6 = 4
# A header of zeros: no offload; the kernel checks the packet as any other.
PLAIN = bytes(VNET_HDR_LEN)
# IPv4 total length is 16 bits; IPv6's payload length too (no jumbograms, RFC 2675).
MAX_SUPER = 65535
_TCP_ACK = 0x10
_TCP_PSH = 0x08
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


def _fold(value: int) -> int:
    """``value`` (a big-endian integer over 16-bit words) reduced mod 0xFFFF: equal to
    its one's-complement sum, with 0xFFFF read as 0 (2**16 = 1 mod 0xFFFF)."""
    return value % 0xFFFF


def checksum(data: bytes | bytearray | memoryview) -> int:
    """The Internet checksum of ``data`` (RFC 1071), never 0: a zero result is sent as
    0xFFFF, equal in one's complement and what UDP requires (RFC 768)."""
    value = int.from_bytes(data, "big")
    if len(data) & 1:
        value <<= 8  # pad with a zero byte
    return 0xFFFF - _fold(value)


def strip_header(buf: bytes) -> bytes:
    """The IP packet behind a TUN read's ``virtio_net_hdr``. A ``NEEDS_CSUM`` packet
    gets its checksum completed (the field holds the pseudo-header sum; the rest is
    summed from ``csum_start``). GSO packets only come after ``TUNSETOFFLOAD``, which
    this stack does not ask for: ``ParseError``."""
    if len(buf) <= VNET_HDR_LEN:
        raise ParseError("TUN read without a packet behind its virtio_net_hdr")
    if not buf[0] and not buf[1]:
        return buf[VNET_HDR_LEN:]
    flags, gso_type, _, _, start, offset = VNET_HDR.unpack_from(buf)
    if gso_type != GSO_NONE:
        raise ParseError(f"unexpected GSO packet from the TUN (type {gso_type})")
    packet = bytearray(buf[VNET_HDR_LEN:])
    if flags & F_NEEDS_CSUM:
        at = start + offset
        if at + 2 > len(packet) or start >= len(packet):
            raise ParseError("NEEDS_CSUM offsets beyond the packet")
        _U16.pack_into(packet, at, checksum(memoryview(packet)[start:]))
    return bytes(packet)


def _pseudo_addresses(packet: bytes | bytearray) -> int:
    """Source and destination address words of the pseudo-header, as one integer."""
    if packet[0] >> 4 == 4:
        return int.from_bytes(packet[12:20], "big")
    return int.from_bytes(packet[8:40], "big")


def _field_masks(ip_len: int, hdr_end: int) -> tuple[int, int, int]:
    """For a header of ``hdr_end`` bytes read as one big-endian integer: (mask keeping
    what must be equal across a run, shift of the TCP sequence number, mask of the TCP
    header). Cleared: IPv4 total length, ID and checksum (IPv6 payload length), TCP
    sequence number, flags (checked apart) and checksum."""
    cleared = [(2, 6), (10, 12)] if ip_len == 20 else [(4, 6)]
    cleared += [(ip_len + 4, ip_len + 8), (ip_len + 13, ip_len + 14), (ip_len + 16, ip_len + 18)]
    keep = (1 << 8 * hdr_end) - 1
    for lo, hi in cleared:
        keep &= ~(((1 << 8 * (hi - lo)) - 1) << 8 * (hdr_end - hi))
    return keep, 8 * (hdr_end - ip_len - 8), (1 << 8 * (hdr_end - ip_len)) - 1


_MASKS: dict[tuple[int, int], tuple[int, int, int]] = {
    (ip_len, end): _field_masks(ip_len, end)
    for ip_len in (20, 40)
    for end in range(ip_len + 20, ip_len + 61, 4)
}


def coalesce(packets: Sequence[bytes]) -> list[tuple[bytes, int]]:
    """TUN writes for ``packets``, in order: (vnet header + packet, how many packets it
    carries). Runs of TCP segments that may be merged become one GSO super-packet; every
    other packet goes alone behind a ``PLAIN`` header."""
    out: list[tuple[bytes, int]] = []
    append = out.append
    masks = _MASKS
    run: list[bytes] = []
    run_key = next_seq = seg = total = hdr_end = off = acc = 0
    more = False  # the run can take another segment
    for p in packets:
        n = len(p)
        end = 0
        if n > 40 and p[0] == 0x45:
            # IPv4, no options; TCP; not a fragment (MF and offset zero, DF free).
            if p[9] == 6 and not (p[6] & 0x3F or p[7]) and _U16.unpack_from(p, 2)[0] == n:
                flags = p[33]
                end = 20 + (p[32] >> 4) * 4
                o = 20
        elif n > 60 and p[0] >> 4 == 6 and p[6] == 6 and _U16.unpack_from(p, 4)[0] + 40 == n:
            # IPv6 with TCP right after the fixed header (no extension headers).
            flags = p[53]
            end = 40 + (p[52] >> 4) * 4
            o = 40
        fields = masks.get((o, end)) if end and end < n else None  # None: data offset < 5
        if fields is None or not (flags == _TCP_ACK or flags == _TCP_ACK | _TCP_PSH):
            if run:
                _flush(run, append, off, hdr_end, seg, total, acc)
                run = []
            append((PLAIN + p, 1))
            more = False
            continue
        keep, seq_shift, tcp_mask = fields
        header = int.from_bytes(p[:end], "big")
        key = header & keep
        size = n - end
        seq = (header >> seq_shift) & 0xFFFFFFFF
        if (
            more
            and key == run_key
            and seq == next_seq
            and size <= seg
            and total + size <= MAX_SUPER
        ):
            run.append(p)
            total += size
        else:
            if run:
                _flush(run, append, off, hdr_end, seg, total, acc)
            run = [p]
            run_key, seg, total, hdr_end, off, acc = key, size, n, end, o, 0
        # Each segment's TCP header words and TCP length, for the payload sums (module doc).
        acc += (header & tcp_mask) + n - o
        next_seq = (seq + size) & 0xFFFFFFFF
        more = size == seg and flags == _TCP_ACK
    if run:
        _flush(run, append, off, hdr_end, seg, total, acc)
    return out


def _flush(
    run: list[bytes],
    append: Callable[[tuple[bytes, int]], None],
    off: int,
    hdr_end: int,
    seg: int,
    total: int,
    acc: int,
) -> None:
    """Append the write for ``run``: the packet itself if alone, else a super-packet."""
    first = run[0]
    if len(run) == 1:
        append((PLAIN + first, 1))
        return
    hdr = bytearray(first[:hdr_end])
    hdr[off + 13] |= run[-1][off + 13] & _TCP_PSH
    hdr[off + 16] = hdr[off + 17] = 0
    if off == 20:
        _U16.pack_into(hdr, 2, total)
        hdr[10] = hdr[11] = 0
        _U16.pack_into(hdr, 10, checksum(memoryview(hdr)[:20]))
        gso_type = GSO_TCPV4
    else:
        _U16.pack_into(hdr, 4, total - 40)
        gso_type = GSO_TCPV6
    # Sum of the payloads = -(sum over the segments of pseudo-header + TCP header), each
    # segment summing to zero; pseudo-header = addresses + protocol 6 + TCP length.
    addresses = _pseudo_addresses(hdr)
    payloads = -(len(run) * (addresses + 6) + acc)
    tcp_sum = addresses + 6 + (total - off) + int.from_bytes(hdr[off:hdr_end], "big") + payloads
    _U16.pack_into(hdr, off + 16, 0xFFFF - _fold(tcp_sum))
    vnet = VNET_HDR.pack(0, gso_type, hdr_end, seg, 0, 0)
    parts: list[bytes | bytearray | memoryview] = [vnet, hdr]
    parts.extend(memoryview(p)[hdr_end:] for p in run)
    append((b"".join(parts), len(run)))
