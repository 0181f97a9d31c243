"""An ESP Security Association (RFC 4303): encapsulate and decapsulate packets.

One object per SA holds the algorithm contexts (built once), the outbound sequence
number, the inbound replay window and the counters. The per-packet paths use
precompiled structs and build no objects beyond the output bytes.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from hmac import compare_digest
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from pyipsec.crypto.algorithms import EncAlgorithm, IntegAlgorithm, enc_by_name, integ_by_name
from pyipsec.crypto.esp_cipher import (
    NONCE_BLOCK,
    AeadEspCipher,
    Buffer,
    CbcHmacEspCipher,
    make_esp_cipher,
)
from pyipsec.engine.lifetime import Lifetime
from pyipsec.engine.replay import ReplayWindow
from pyipsec.engine.sa_headers import (
    ecn_decap,
    fix_l4_checksum,
    locate_esp,
    set_ip_length,
    split_transport,
)
from pyipsec.errors import ConfigError, PacketDropped, ParseError, Reason, SequenceExhausted
from pyipsec.wire.esp import ESP_HEADER, NEXT_HEADER_NONE, PAD_BYTES, TRAILERS, trailer
from pyipsec.wire.ip import (
    IPPROTO_ESP,
    IPPROTO_IPIP,
    IPPROTO_IPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPV4_HEADER,
)
from pyipsec.wire.udpencap import UDP_HEADER, udp_checksum

Address = str | bytes | ipaddress.IPv4Address | ipaddress.IPv6Address
Mode = Literal["tunnel", "transport"]

_IPV6_FIRST = struct.Struct("!IHBB")
# Fast path (see SecurityAssociation._fast_v4): outer IPv4 header, ESP header and the
# 8-byte IV in one struct; and the fields of a received IPv4/ESP header it looks at.
_V4_ESP_IV = struct.Struct("!BBHHHBBH8sIIQ")
_V4_HDR = struct.Struct("!BBHHHBBH8s")  # IPV4_HEADER with both addresses in one field
_V4_ESP_IN = struct.Struct("!BBH2xHxB10xIIQ")
_V4_OUTER = struct.Struct("!BBH2xHxB")  # version/IHL, TOS, total length, frag, protocol
_V4_TRAILERS = TRAILERS[IPPROTO_IPIP]
_NONCE = struct.Struct("!4sQ")
_HDR_IV = struct.Struct("!IIQ")  # SPI, seq_lo, 64-bit sequence number as the AEAD IV
_AAD_ESN = struct.Struct("!III")  # SPI, seq_hi, seq_lo (RFC 4106 §5)
_U32 = struct.Struct("!I")
_OUTER_TTL = 64
_M32 = 0xFFFFFFFF


@dataclass(slots=True)
class SaCounters:
    """Per-SA statistics. ``bytes`` counts payload: the inner packet in tunnel mode,
    the upper-layer data in transport mode, as the kernel's ``curlft.bytes``."""

    packets: int = 0
    bytes: int = 0
    replay: int = 0  # replayed or too old, dropped
    integrity_failed: int = 0
    drops: dict[str, int] = field(default_factory=dict)


def _drop(counters: SaCounters, reason: str) -> None:
    counters.drops[reason] = counters.drops.get(reason, 0) + 1


def _parse_addr(value: Address, what: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        if isinstance(value, bytes):
            if len(value) == 4:
                return ipaddress.IPv4Address(value)
            if len(value) == 16:
                return ipaddress.IPv6Address(value)
            raise ValueError
        return ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(f"{what} is not an IPv4 or IPv6 address: {value!r}") from None


class SecurityAssociation:
    """An ESP SA in tunnel or transport mode, optionally UDP-encapsulated (RFC 3948).

    ``encapsulate(packet)`` takes an IP packet and returns the outer packet
    (IP[/UDP]/ESP); ``decapsulate(outer)`` does the reverse, raising ``PacketDropped``
    with a ``Reason`` for any packet it refuses (and counting it in
    ``counters.drops``). ``esp_encrypt``/``esp_decrypt`` do the same without outer
    headers, for sockets that add or strip them.

    Tunnel mode: the outer header goes from ``src`` to ``dst``, TTL/hop limit 64, DSCP
    and ECN copied from the inner packet (RFC 6040 normal mode), DF copied from an
    IPv4 inner packet and set for IPv6 inner packets (which routers never fragment).
    The inner TTL is left alone. Decapsulation returns the inner packet byte for byte,
    except for the ECN field where RFC 6040 §4.2 says to change it (outer CE marks an
    ECN-capable inner packet CE; outer ECT(1) turns inner ECT(0) into ECT(1)); outer CE
    over a Not-ECT inner packet is dropped (IN_STATE_MODE_ERROR). TFC padding
    (``tfc_pad``, RFC 4303 §2.7) pads inner packets up to that size; the receiver
    strips it using the inner IP length.

    Transport mode: ESP goes after the IPv4 header (options kept) or after the IPv6
    hop-by-hop, routing and fragment headers; decapsulation restores the packet byte
    for byte, except that with UDP encapsulation the TCP/UDP checksum is recomputed
    over the received addresses, which a NAT may have changed (RFC 3948 §3.1.2).
    Fragments are refused in transport mode (ESP protects whole datagrams, §3.3).

    The SA does not enforce lifetimes (``soft``/``hard``): the engine does, from
    ``counters``.
    """

    __slots__ = (
        "_align",
        "_base_sum",
        "_cbc",
        "_cipher",
        "_esp_fixed",
        "_fast_aead",
        "_fast_total",
        "_fast_v4",
        "_icv",
        "_ident",
        "_min_esp",
        "_outer_proto",
        "_pair",
        "_pl_aead",
        "_pl_block",
        "_pl_cbc",
        "_pl_fast",
        "_pl_open",
        "_salt",
        "_seq_max",
        "_tunnel",
        "counters",
        "dst",
        "dst_packed",
        "enc",
        "enc_alg",
        "encap",
        "esn",
        "family",
        "hard",
        "integ",
        "integ_alg",
        "mode",
        "overhead",
        "proto",
        "replay",
        "replay_window",
        "reqid",
        "seq_out",
        "soft",
        "spi",
        "src",
        "src_packed",
        "tfc_pad",
    )

    def __init__(
        self,
        spi: int,
        src: Address,
        dst: Address,
        mode: Mode = "tunnel",
        enc: str = "aes128gcm16",
        enc_key: bytes = b"",
        integ: str | None = None,
        integ_key: bytes = b"",
        esn: bool = False,
        replay_window: int = 1024,
        encap: tuple[int, int] | None = None,
        reqid: int = 0,
        *,
        soft: Lifetime | None = None,
        hard: Lifetime | None = None,
        tfc_pad: int = 0,
    ) -> None:
        if isinstance(spi, bool) or not isinstance(spi, int) or not 0 < spi <= _M32:
            raise ConfigError("spi must be an int in 1..2^32-1 (0 is reserved, RFC 4303 §2.1)")
        if mode not in ("tunnel", "transport"):
            raise ConfigError(f"mode must be 'tunnel' or 'transport', not {mode!r}")
        self.src = _parse_addr(src, "src")
        self.dst = _parse_addr(dst, "dst")
        if self.src.version != self.dst.version:
            raise ConfigError("src and dst must be of the same address family")
        if encap is not None and (
            not isinstance(encap, tuple)
            or len(encap) != 2
            or not all(isinstance(p, int) and 0 < p <= 0xFFFF for p in encap)
        ):
            raise ConfigError("encap must be None or a (sport, dport) pair of UDP ports")
        if isinstance(reqid, bool) or not isinstance(reqid, int) or not 0 <= reqid <= _M32:
            raise ConfigError("reqid must be an int in 0..2^32-1")
        if isinstance(tfc_pad, bool) or not isinstance(tfc_pad, int) or not 0 <= tfc_pad <= 0xFFFF:
            raise ConfigError("tfc_pad must be an int in 0..65535")
        soft = Lifetime() if soft is None else soft
        hard = Lifetime() if hard is None else hard
        if not isinstance(soft, Lifetime) or not isinstance(hard, Lifetime):
            raise ConfigError("soft and hard must be Lifetime objects")
        enc_alg: EncAlgorithm = enc_by_name(enc)
        integ_alg: IntegAlgorithm | None = None if integ is None else integ_by_name(integ)
        self._cipher = make_esp_cipher(enc_alg, enc_key, integ_alg, integ_key, bool(esn))
        self.replay = ReplayWindow(replay_window, esn=bool(esn))

        self.spi = spi
        self.mode: Mode = mode
        self.proto = "esp"
        self.family = self.src.version
        self.src_packed = self.src.packed
        self.dst_packed = self.dst.packed
        self.enc = enc_alg.name
        self.integ = None if integ_alg is None else integ_alg.name
        self.enc_alg = enc_alg
        self.integ_alg = integ_alg
        self.esn = bool(esn)
        self.replay_window = replay_window
        self.encap = encap
        self.reqid = reqid
        self.soft = soft
        self.hard = hard
        self.tfc_pad = tfc_pad
        self.seq_out = 0
        self.counters = SaCounters()

        c = self._cipher
        self._tunnel = mode == "tunnel"
        self._cbc = isinstance(c, CbcHmacEspCipher)
        self._align = c.block_size
        self._seq_max = (1 << 64) - 1 if esn else _M32
        self._esp_fixed = 8 + c.iv_size + c.icv_size
        self._min_esp = self._esp_fixed + max(c.block_size, 4) if self._cbc else self._esp_fixed + 2
        self._outer_proto = IPPROTO_UDP if encap else IPPROTO_ESP
        self._pair = self.src_packed + self.dst_packed
        self._ident = 0
        # IPv4 outer header: sum of the words that never change (RFC 1071 sums commute).
        self._base_sum = 0x4500 + (_OUTER_TTL << 8 | self._outer_proto)
        if self.family == 4:
            self._base_sum += sum(struct.unpack("!4H", self._pair))
            self._base_sum %= 0xFFFF
        # The common case gets a flat path: tunnel mode, IPv4 outer header, no UDP
        # encapsulation (``_fast_v4``); with AEAD the AEAD object is called directly
        # (``_fast_aead``). Everything else, and any packet the fast path is not sure
        # about, takes the general path.
        self._fast_v4 = self._tunnel and self.family == 4 and encap is None
        self._fast_aead: AESGCM | ChaCha20Poly1305 | None = None
        self._salt = b""
        if isinstance(c, AeadEspCipher):
            self._salt = c.salt
            if self._fast_v4:
                self._fast_aead = c.aead
        # Payload-level fast paths (esp_encrypt/esp_decrypt, what the processor calls:
        # its sockets add and strip the outer headers, so any family or encapsulation).
        # esp_encrypt's serves every SA (``_pl_fast``), calling the AEAD object or the
        # running CBC contexts directly; esp_decrypt's serves tunnel-mode AEAD and
        # CBC+HMAC SAs (``_pl_open``), with ``_pl_block`` the length granularity.
        self._icv = c.icv_size
        self._pl_fast = True
        self._pl_aead = c.aead if isinstance(c, AeadEspCipher) else None
        self._pl_cbc = c if isinstance(c, CbcHmacEspCipher) else None
        self._pl_open = self._tunnel and (self._pl_aead is not None or self._pl_cbc is not None)
        self._pl_block = 16 if self._cbc else 1
        # Outer length = inner length + this + padding.
        self._fast_total = 20 + self._esp_fixed + 2
        udp = 8 if encap else 0
        outer_ip = (20 if self.family == 4 else 40) if self._tunnel else 0
        self.overhead = outer_ip + udp + self._esp_fixed + (self._align - 1) + 2

    def __repr__(self) -> str:
        return (
            f"SecurityAssociation(spi=0x{self.spi:08x}, src={self.src}, dst={self.dst}, "
            f"mode={self.mode!r}, enc={self.enc!r}, integ={self.integ!r}, esn={self.esn}, "
            f"encap={self.encap})"
        )

    def max_inner_size(self, outer_mtu: int) -> int:
        """Largest inner packet whose encapsulated packet fits in ``outer_mtu`` bytes."""
        fixed = self.overhead - (self._align - 1) - 2
        avail = outer_mtu - fixed
        return max(0, (avail // self._align) * self._align - 2)

    # --- outbound -------------------------------------------------------------------

    def _next_seq(self) -> int:
        seq = self.seq_out + 1
        if seq > self._seq_max:
            # RFC 4303 §3.3.3: never cycle; the SA must be replaced.
            _drop(self.counters, Reason.OUT_STATE_SEQ_ERROR)
            raise SequenceExhausted(f"SA 0x{self.spi:08x} used its last sequence number")
        self.seq_out = seq
        return seq

    def _refuse(self, reason: str, detail: str) -> PacketDropped:
        _drop(self.counters, reason)
        return PacketDropped(reason, detail)

    def esp_encrypt(self, payload: Buffer, next_header: int) -> bytes:
        """ESP packet (header, IV, ciphertext, ICV) carrying ``payload``."""
        n = len(payload)
        seq = self.seq_out + 1
        if self._pl_fast and n >= self.tfc_pad and seq <= self._seq_max and 0 <= next_header <= 255:
            # Fast path (the processor's tunnel-mode outbound path): what the general
            # path below does when no TFC padding is due and a sequence number is left,
            # flattened; the trailer comes from the table (alignment at most 16).
            self.seq_out = seq
            tail = TRAILERS[next_header][-(n + 2) % self._align]
            lo = seq & _M32
            aead = self._pl_aead
            if aead is not None:
                # IV = the 64-bit sequence number (RFC 4106 §3.1, RFC 7634 §2); AAD =
                # SPI || seq_lo, or SPI || seq_hi || seq_lo with ESN (RFC 4106 §5).
                hdr = _HDR_IV.pack(self.spi, lo, seq)
                out = hdr + aead.encrypt(
                    _NONCE.pack(self._salt, seq),
                    b"".join((payload, tail)),
                    _AAD_ESN.pack(self.spi, seq >> 32, lo) if self.esn else hdr[:8],
                )
            elif (cbc := self._pl_cbc) is not None:
                # CbcHmacEspCipher.encrypt inlined: the nonce block pushed through the
                # running encryptor gives an unpredictable IV (see crypto/esp_cipher).
                iv_ct = cbc.encryptor.update(
                    b"".join((NONCE_BLOCK.pack(cbc.iv_prefix, seq), payload, tail))
                )
                hdr = ESP_HEADER.pack(self.spi, lo)
                h = cbc.mac.copy()
                h.update(hdr)
                h.update(iv_ct)
                if self.esn:
                    h.update(_U32.pack(seq >> 32))  # RFC 4303 §2.2.1: in the ICV, not sent
                out = b"".join((hdr, iv_ct, h.finalize()[: self._icv]))
            else:
                out = self._cipher.encrypt(b"", self.spi, seq, payload, tail)
            counters = self.counters
            counters.packets += 1
            counters.bytes += n
            return out
        if not 0 <= next_header <= 255:
            raise ValueError("next_header must be 0..255")
        seq = self._next_seq()
        if self._tunnel and self.tfc_pad > n and next_header in (IPPROTO_IPIP, IPPROTO_IPV6):
            payload = bytes(payload) + bytes(self.tfc_pad - n)
        pt = b"".join((payload, trailer(len(payload), next_header, self._align)))
        out = self._cipher.encrypt(b"", self.spi, seq, pt)
        self.counters.packets += 1
        self.counters.bytes += n
        return out

    def encapsulate(self, packet: Buffer) -> bytes:
        """The outer packet (IP[/UDP]/ESP) protecting the IP packet ``packet``."""
        if self._fast_v4:
            # Fast path: an IPv4 inner packet in tunnel mode under an IPv4 outer header
            # without UDP, no TFC padding needed. It does what _encap_tunnel does,
            # flattened; any packet it would refuse goes there instead, before any state
            # changes.
            n = len(packet)
            seq = self.seq_out + 1
            pad = -(n + 2) % self._align  # RFC 4303 §2.4
            total = n + self._fast_total + pad
            if (
                n >= 20
                and packet[0] >> 4 == 4
                and n >= self.tfc_pad
                and seq <= self._seq_max
                and total <= 0xFFFF
            ):
                self.seq_out = seq
                self._ident = ident = (self._ident + 1) & 0xFFFF
                tos = packet[1]
                flags = (packet[6] & 0x40) << 8  # DF copied from the inner header
                # Header checksum (RFC 1071) without the folding loop: the one's
                # complement sum is the plain sum mod 0xFFFF, and its complement is
                # -sum mod 0xFFFF (0 rather than 0xFFFF for a zero sum, as folding gives).
                csum = -(self._base_sum + tos + total + ident + flags) % 0xFFFF
                aead = self._fast_aead
                if aead is not None:
                    hdr = _V4_ESP_IV.pack(
                        0x45, tos, total, ident, flags, _OUTER_TTL, IPPROTO_ESP, csum,
                        self._pair, self.spi, seq & _M32, seq,
                    )  # fmt: skip
                    # IV = sequence number, unique per key (RFC 4106 §3.1, RFC 7634 §2);
                    # AAD = SPI || [seq_hi ||] seq_lo (RFC 4106 §5, RFC 7634 §2.1).
                    out = hdr + aead.encrypt(
                        _NONCE.pack(self._salt, seq),
                        b"".join((packet, _V4_TRAILERS[pad])),
                        _AAD_ESN.pack(self.spi, seq >> 32, seq & _M32) if self.esn else hdr[20:28],
                    )
                elif (cbc := self._pl_cbc) is not None:
                    # As esp_encrypt's CBC+HMAC path, behind the outer header.
                    iv_ct = cbc.encryptor.update(
                        b"".join((NONCE_BLOCK.pack(cbc.iv_prefix, seq), packet, _V4_TRAILERS[pad]))
                    )
                    esp_hdr = ESP_HEADER.pack(self.spi, seq & _M32)
                    h = cbc.mac.copy()
                    h.update(esp_hdr)
                    h.update(iv_ct)
                    if self.esn:
                        h.update(_U32.pack(seq >> 32))  # RFC 4303 §2.2.1
                    out = b"".join((
                        _V4_HDR.pack(
                            0x45, tos, total, ident, flags, _OUTER_TTL, IPPROTO_ESP, csum,
                            self._pair,
                        ),
                        esp_hdr, iv_ct, h.finalize()[: self._icv],
                    ))  # fmt: skip
                else:
                    hdr = IPV4_HEADER.pack(
                        0x45, tos, total, ident, flags, _OUTER_TTL, IPPROTO_ESP, csum,
                        self.src_packed, self.dst_packed,
                    )  # fmt: skip
                    out = self._cipher.encrypt(
                        hdr, self.spi, seq, packet, TRAILERS[IPPROTO_IPIP][pad]
                    )
                counters = self.counters
                counters.packets += 1
                counters.bytes += n
                return out
        if self._tunnel:
            return self._encap_tunnel(packet)
        return self._encap_transport(packet)

    def _encap_tunnel(self, packet: Buffer) -> bytes:
        n = len(packet)
        b0 = packet[0] if n else 0
        v = b0 >> 4
        if v == 4 and n >= 20:
            nh = IPPROTO_IPIP
            tos = packet[1]
            df = packet[6] & 0x40
            flow = 0
        elif v == 6 and n >= 40:
            nh = IPPROTO_IPV6
            tos = (b0 & 15) << 4 | packet[1] >> 4
            df = 0x40
            flow = (packet[1] & 15) << 16 | packet[2] << 8 | packet[3]
        else:
            raise self._refuse(Reason.OUT_STATE_MODE_ERROR, "not an IPv4 or IPv6 packet")
        seq = self.seq_out + 1
        if seq > self._seq_max:
            seq = self._next_seq()  # raises SequenceExhausted
        self.seq_out = seq
        if self.tfc_pad > n:
            pt: Buffer = b"".join((packet, bytes(self.tfc_pad - n)))
            tail = trailer(len(pt), nh, self._align)
        else:
            # The alignment is at most 16, so the trailer table covers every case.
            pt = packet
            tail = TRAILERS[nh][-(n + 2) % self._align]
        esp_len = self._esp_fixed + len(pt) + len(tail)
        encap = self.encap
        if self.family == 4:
            total = 20 + esp_len + (8 if encap else 0)
            if total > 0xFFFF:
                raise self._refuse(Reason.OUT_ERROR, "outer packet longer than 65535 bytes")
            self._ident = ident = (self._ident + 1) & 0xFFFF
            flags = df << 8
            # RFC 1071 sum and complement in one step (see encapsulate's fast path).
            csum = -(self._base_sum + tos + total + ident + flags) % 0xFFFF
            prefix = IPV4_HEADER.pack(
                0x45, tos, total, ident, flags, _OUTER_TTL, self._outer_proto, csum,
                self.src_packed, self.dst_packed,
            )  # fmt: skip
            if encap:
                prefix += UDP_HEADER.pack(encap[0], encap[1], 8 + esp_len, 0)
            out = self._cipher.encrypt(prefix, self.spi, seq, pt, tail)
        else:
            word = 0x60000000 | tos << 20 | flow
            if encap:
                esp = self._cipher.encrypt(b"", self.spi, seq, pt, tail)
                # RFC 8200 §8.1: no zero UDP checksum over IPv6.
                csum = udp_checksum(self.src_packed, self.dst_packed, encap[0], encap[1], esp)
                out = b"".join((
                    _IPV6_FIRST.pack(word, 8 + esp_len, IPPROTO_UDP, _OUTER_TTL),
                    self._pair,
                    UDP_HEADER.pack(encap[0], encap[1], 8 + esp_len, csum),
                    esp,
                ))  # fmt: skip
            else:
                if esp_len > 0xFFFF:
                    raise self._refuse(Reason.OUT_ERROR, "ESP payload longer than 65535 bytes")
                prefix = _IPV6_FIRST.pack(word, esp_len, IPPROTO_ESP, _OUTER_TTL) + self._pair
                out = self._cipher.encrypt(prefix, self.spi, seq, pt, tail)
        counters = self.counters
        counters.packets += 1
        counters.bytes += n
        return out

    def _encap_transport(self, packet: Buffer) -> bytes:
        encap = self.encap
        try:
            v, hdr, nh_at, body = split_transport(packet)
        except ParseError as exc:
            raise self._refuse(Reason.OUT_STATE_MODE_ERROR, str(exc)) from None
        nh = hdr[nh_at]
        seq = self._next_seq()
        pt = b"".join((body, trailer(len(body), nh, self._align)))
        esp_len = self._esp_fixed + len(pt)
        udp_len = 8 + esp_len if encap else 0
        hdr[nh_at] = self._outer_proto
        new_len = len(hdr) + (udp_len or esp_len)
        if new_len > 0xFFFF + (40 if v == 6 else 0):
            raise self._refuse(Reason.OUT_ERROR, "packet too long after ESP")
        set_ip_length(hdr, v, new_len)
        if encap and v == 6:
            esp = self._cipher.encrypt(b"", self.spi, seq, pt)
            csum = udp_checksum(bytes(hdr[8:24]), bytes(hdr[24:40]), encap[0], encap[1], esp)
            out = b"".join((hdr, UDP_HEADER.pack(encap[0], encap[1], udp_len, csum), esp))
        else:
            prefix = bytes(hdr)
            if encap:
                prefix += UDP_HEADER.pack(encap[0], encap[1], udp_len, 0)
            out = self._cipher.encrypt(prefix, self.spi, seq, pt)
        self.counters.packets += 1
        self.counters.bytes += len(body)
        return out

    # --- inbound --------------------------------------------------------------------

    def _open(self, esp: memoryview) -> tuple[int, Buffer, int]:
        """Replay check, ICV, decryption, replay advance, trailer.

        Returns (next header, plaintext, payload length). Raises PacketDropped; the
        caller counts the drop.
        """
        n = len(esp)
        if n < self._min_esp:
            raise PacketDropped(Reason.IN_HDR_ERROR, "ESP packet truncated")
        if self._cbc and (n - self._esp_fixed) % 16:
            raise PacketDropped(Reason.IN_HDR_ERROR, "ESP ciphertext not a multiple of the block")
        spi, seq_lo = ESP_HEADER.unpack_from(esp)
        if spi != self.spi:
            raise PacketDropped(Reason.IN_STATE_MISMATCH, "SPI of another SA")
        replay = self.replay
        try:
            seq = replay.check(seq_lo)  # before any crypto (RFC 4303 §3.4.3)
        except PacketDropped:
            self.counters.replay += 1
            raise
        pt = self._cipher.decrypt(esp, seq >> 32)
        if pt is None:
            self.counters.integrity_failed += 1
            raise PacketDropped(Reason.IN_STATE_PROTO_ERROR, "ICV mismatch")
        replay.advance(seq)  # only once authenticated
        m = len(pt)
        if m < 2:
            raise PacketDropped(Reason.IN_STATE_PROTO_ERROR, "no room for the trailer")
        pad = pt[m - 2]
        end = m - 2 - pad
        if end < 0 or (pad and pt[end : m - 2] != PAD_BYTES[:pad]):
            raise PacketDropped(Reason.IN_STATE_PROTO_ERROR, "bad ESP padding")
        nh = pt[m - 1]
        if nh == NEXT_HEADER_NONE:
            raise PacketDropped(Reason.DUMMY, "dummy packet (RFC 4303 §2.6)")
        return nh, pt, end

    def _finish_tunnel(self, nh: int, pt: Buffer, m: int, pad: int) -> bytes:
        """The tail of _open and _decap for an authenticated tunnel-mode plaintext whose
        trailer starts at ``m`` with ``pad`` bytes of padding in front (no ECN change)."""
        end = m - pad
        if end < 0 or (pad and pt[end:m] != PAD_BYTES[:pad]):
            raise PacketDropped(Reason.IN_STATE_PROTO_ERROR, "bad ESP padding")
        if nh == NEXT_HEADER_NONE:
            raise PacketDropped(Reason.DUMMY, "dummy packet (RFC 4303 §2.6)")
        ilen = self._inner_length(nh, pt, end)
        counters = self.counters
        counters.packets += 1
        counters.bytes += ilen
        return bytes(pt[:ilen])

    def _inner_length(self, nh: int, pt: Buffer, end: int) -> int:
        """Length of the tunnel-mode inner packet (TFC padding excluded)."""
        if nh == IPPROTO_IPIP:
            if end < 20 or pt[0] >> 4 != 4:
                raise PacketDropped(Reason.IN_STATE_MODE_ERROR, "inner packet is not IPv4")
            ilen = pt[2] << 8 | pt[3]
            if ilen < 20 or ilen > end:
                raise PacketDropped(Reason.IN_STATE_MODE_ERROR, "bad inner IPv4 length")
            return ilen
        if nh == IPPROTO_IPV6:
            if end < 40 or pt[0] >> 4 != 6:
                raise PacketDropped(Reason.IN_STATE_MODE_ERROR, "inner packet is not IPv6")
            ilen = 40 + (pt[4] << 8 | pt[5])
            if ilen > end:
                raise PacketDropped(Reason.IN_STATE_MODE_ERROR, "bad inner IPv6 length")
            return ilen
        raise PacketDropped(Reason.IN_STATE_MODE_ERROR, f"next header {nh} in tunnel mode")

    def esp_decrypt(self, esp: Buffer) -> tuple[int, bytes]:
        """(next header, payload) of an ESP packet; raises PacketDropped.

        In tunnel mode the payload is the inner packet without TFC padding.
        """
        n = len(esp)
        if self._pl_open and n >= self._min_esp:
            # Fast path (the processor's tunnel-mode inbound path, AEAD or CBC+HMAC,
            # ESN or not): a packet of this SPI, a whole number of blocks, with a
            # sequence number the window takes without looking at its bitmap. Anything
            # else goes to _open before any state changes. Order as there: replay
            # check, ICV, window advance, trailer checks.
            spi, lo = ESP_HEADER.unpack_from(esp)
            replay = self.replay
            top = replay.top
            if self.esn:
                tl = top & _M32
                seq = top - tl + lo if tl < lo < tl + replay.fresh_span else 0
            else:
                seq = lo if lo > top or not replay.size else 0  # 0 is never fast
            if seq and spi == self.spi and not (n - self._esp_fixed) % self._pl_block:
                pt: bytes | None = None
                at = 0
                aead = self._pl_aead
                cbc = self._pl_cbc
                if aead is not None:
                    try:
                        pt = aead.decrypt(
                            self._salt + esp[8:16],
                            esp[16:],
                            _AAD_ESN.pack(spi, seq >> 32, lo) if self.esn else esp[:8],
                        )
                    except InvalidTag:
                        pt = None
                elif cbc is not None:  # always, when not AEAD (see _pl_open)
                    # CbcHmacEspCipher.decrypt inlined: encrypt-then-MAC, so the ICV is
                    # checked first (constant time); the IV block then steers the
                    # running decryptor and its output block is skipped.
                    at = 16
                    icv_at = n - self._icv
                    h = cbc.mac.copy()
                    h.update(esp[:icv_at])
                    if self.esn:
                        h.update(_U32.pack(seq >> 32))
                    if compare_digest(h.finalize()[: self._icv], esp[icv_at:]):
                        pt = cbc.decryptor.update(esp[8:icv_at])
                if pt is None:
                    counters = self.counters
                    counters.integrity_failed += 1
                    _drop(counters, Reason.IN_STATE_PROTO_ERROR)
                    raise PacketDropped(Reason.IN_STATE_PROTO_ERROR, "ICV mismatch")
                # ReplayWindow.advance inlined, only once authenticated (RFC 4303
                # §3.4.3); without a window seq may be old, and then nothing moves.
                if seq > top:
                    shift = seq - top
                    replay.bitmap = (
                        (replay.bitmap << shift | 1) & replay.mask if shift < replay.size else 1
                    )
                    replay.top = seq
                m = len(pt) - 2
                pad = pt[m]
                end = m - pad
                # The usual trailer (under 16 bytes of padding, next header 4) compared
                # whole, then the inner IPv4 length.
                if end >= at + 20 and pad < 16 and pt[end:] == _V4_TRAILERS[pad]:
                    ilen = pt[at + 2] << 8 | pt[at + 3]
                    if pt[at] >> 4 == 4 and 20 <= ilen <= end - at:
                        counters = self.counters
                        counters.packets += 1
                        counters.bytes += ilen
                        return IPPROTO_IPIP, pt[at : at + ilen]
                nh = pt[m + 1]
                # Authenticated but not a plain IPv4 inner packet: the general checks
                # name the reason (or accept an IPv6 inner packet).
                try:
                    return nh, self._finish_tunnel(
                        nh, memoryview(pt)[at:] if at else pt, m - at, pad
                    )
                except PacketDropped as exc:
                    _drop(self.counters, exc.reason)
                    raise
        try:
            mv = memoryview(esp)
            nh, body, end = self._open(mv)
            if self._tunnel:
                end = self._inner_length(nh, body, end)
        except PacketDropped as exc:
            _drop(self.counters, exc.reason)
            raise
        out = bytes(body[:end])
        self.counters.packets += 1
        self.counters.bytes += end
        return nh, out

    def decapsulate(self, packet: Buffer) -> bytes:
        """The inner packet of an outer IP[/UDP]/ESP packet; raises PacketDropped."""
        aead = self._fast_aead
        n = len(packet)
        if aead is not None and n >= 60:
            # Fast path (see encapsulate) for the plain case: IPv4 outer header without
            # options, fragmentation or ECN marks, ESP, this SPI, a sequence number the
            # window accepts without looking at its bitmap. Anything else goes through
            # _decap. Order as there: replay check, ICV, window advance, trailer checks.
            vihl, tos, total, frag, proto, spi, lo, iv = _V4_ESP_IN.unpack_from(packet)
            replay = self.replay
            top = replay.top
            if self.esn:  # as in esp_decrypt
                tl = top & _M32
                seq = top - tl + lo if tl < lo < tl + replay.fresh_span else 0
            else:
                seq = lo if lo > top or not replay.size else 0
            if (
                vihl == 0x45
                and proto == IPPROTO_ESP
                and total == n
                and not frag & 0x3FFF
                and not tos & 3
                and spi == self.spi
                and seq
            ):
                try:
                    pt = aead.decrypt(
                        _NONCE.pack(self._salt, iv),
                        packet[36:],
                        _AAD_ESN.pack(spi, seq >> 32, lo) if self.esn else packet[20:28],
                    )
                except InvalidTag:
                    counters = self.counters
                    counters.integrity_failed += 1
                    _drop(counters, Reason.IN_STATE_PROTO_ERROR)
                    raise PacketDropped(Reason.IN_STATE_PROTO_ERROR, "ICV mismatch") from None
                replay.advance(seq)  # only once authenticated (RFC 4303 §3.4.3)
                m = len(pt) - 2
                pad = pt[m]
                end = m - pad
                # The usual trailer (under 16 bytes of padding, next header 4) compared
                # whole: padding contents, pad length and next header at once.
                if end >= 20 and pad < 16 and pt[end:] == _V4_TRAILERS[pad] and pt[0] >> 4 == 4:
                    ilen = pt[2] << 8 | pt[3]
                    if 20 <= ilen <= end:
                        counters = self.counters
                        counters.packets += 1
                        counters.bytes += ilen
                        return pt[:ilen]
                nh = pt[m + 1]
                # Authenticated but not a plain IPv4 inner packet: the general checks
                # name the reason (or accept an IPv6 inner packet).
                try:
                    return self._finish_tunnel(nh, pt, m, pad)
                except PacketDropped as exc:
                    _drop(self.counters, exc.reason)
                    raise
        elif self._pl_open and self._fast_v4 and n >= 20:
            # CBC+HMAC: under the same plain outer header (no ECN
            # marks, which RFC 6040 §4.2 may carry inward), _decap would do what
            # esp_decrypt does with the ESP part, so esp_decrypt's fast path serves.
            vihl, tos, total, frag, proto = _V4_OUTER.unpack_from(packet)
            if (
                vihl == 0x45
                and proto == IPPROTO_ESP
                and total == n
                and not (frag & 0x3FFF) | (tos & 3)
            ):
                return self.esp_decrypt(memoryview(packet)[20:])[1]
        try:
            return self._decap(memoryview(packet))
        except PacketDropped as exc:
            _drop(self.counters, exc.reason)
            raise

    def _decap(self, mv: memoryview) -> bytes:
        v, off, nh_at, esp_at, end, outer_ecn = locate_esp(mv, self.family, bool(self.encap))
        nh, pt, pend = self._open(mv[esp_at:end])
        counters = self.counters
        if self._tunnel:
            ilen = self._inner_length(nh, pt, pend)
            inner = ecn_decap(outer_ecn, nh, pt, ilen) if outer_ecn else bytes(pt[:ilen])
            counters.packets += 1
            counters.bytes += ilen
            return inner
        # Transport: put the upper-layer data back behind the (restored) IP header.
        hdr = bytearray(mv[:off])
        hdr[nh_at] = nh
        body: Buffer = pt[:pend]
        if v == 6 and off - 40 + pend > 0xFFFF:
            raise PacketDropped(Reason.IN_STATE_MODE_ERROR, "restored packet too long")
        set_ip_length(hdr, v, off + pend)
        if self.encap is not None and nh in (IPPROTO_TCP, IPPROTO_UDP):
            body = fix_l4_checksum(hdr, v, nh, body)
        counters.packets += 1
        counters.bytes += pend
        return b"".join((hdr, body))


__all__ = ["SaCounters", "SecurityAssociation"]
