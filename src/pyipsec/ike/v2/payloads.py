"""IKEv2 payload bodies (RFC 7296 §3.3-§3.16, RFC 7383 §2.5): one dataclass each.

``parse_body(payload_type, body)`` turns the bytes after a payload's 4-octet generic
header into its dataclass; ``build_body(payload)`` is the inverse. The generic header
chain, the critical bit and the IKE header are message.py's job. Every parser raises
only ``ParseError``.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import ClassVar

from pyipsec.errors import ConfigError, ParseError
from pyipsec.ike.v2.constants import PayloadType, ProtocolId, TransformAttributeType, TsType

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_PROPOSAL = struct.Struct("!BxHBBBB")  # last/more, length, number, protocol, SPI size, #transforms
_TRANSFORM = struct.Struct("!BxHBxH")  # last/more, length, type, transform id
_ATTR = struct.Struct("!HH")  # AF|type, value or length
_TYPE_RESERVED = struct.Struct("!B3x")  # ID, AUTH, TS, CP bodies start like this
_KE = struct.Struct("!H2x")
_NOTIFY = struct.Struct("!BBH")  # protocol, SPI size, notify type
_DELETE = struct.Struct("!BBH")  # protocol, SPI size, number of SPIs
_TS = struct.Struct("!BBHHH")  # TS type, IP protocol, length, start port, end port
_TS_HEAD = struct.Struct("!BBH")
_CP_ATTR = struct.Struct("!HH")
_SKF = struct.Struct("!HH")
_U8 = struct.Struct("!B")

_LAST = 0
_MORE_PROPOSALS = 2  # RFC 7296 §3.3.1
_MORE_TRANSFORMS = 3  # RFC 7296 §3.3.2
_AF_TV = 0x8000  # RFC 7296 §3.3.5: attribute in Type/Value form
_CP_TYPE_MASK = 0x7FFF  # RFC 7296 §3.15.1: the top bit is reserved

# RFC 7296 §2.10: nonces are at least 128 bits and at most 2048 bits.
NONCE_MIN = 16
NONCE_MAX = 256


# -- SA (§3.3) ---------------------------------------------------------------------


@dataclass(slots=True)
class TransformAttribute:
    """§3.3.5: an int value is sent as TV (16 bits), bytes as TLV."""

    attr_type: int
    value: int | bytes


@dataclass(slots=True)
class Transform:
    transform_type: int
    transform_id: int
    attributes: list[TransformAttribute] = field(default_factory=list)

    @property
    def key_length(self) -> int | None:
        """The Key Length attribute in bits, if present (§3.3.5)."""
        for attr in self.attributes:
            if attr.attr_type == TransformAttributeType.KEY_LENGTH and isinstance(attr.value, int):
                return attr.value
        return None

    @classmethod
    def with_key_length(cls, transform_type: int, transform_id: int, bits: int) -> Transform:
        return cls(
            transform_type,
            transform_id,
            [TransformAttribute(TransformAttributeType.KEY_LENGTH, bits)],
        )


@dataclass(slots=True)
class Proposal:
    number: int
    protocol_id: int
    spi: bytes
    transforms: list[Transform] = field(default_factory=list)


@dataclass(slots=True)
class SaPayload:
    payload_type: ClassVar[int] = PayloadType.SA
    proposals: list[Proposal] = field(default_factory=list)


def _parse_attributes(buf: memoryview) -> list[TransformAttribute]:
    attrs: list[TransformAttribute] = []
    off = 0
    while off < len(buf):
        if off + 4 > len(buf):
            raise ParseError("truncated transform attribute")
        type_field, value = _ATTR.unpack_from(buf, off)
        off += 4
        if type_field & _AF_TV:
            attrs.append(TransformAttribute(type_field & ~_AF_TV, value))
        else:
            if off + value > len(buf):
                raise ParseError("transform attribute overruns its transform")
            attrs.append(TransformAttribute(type_field, bytes(buf[off : off + value])))
            off += value
    return attrs


def _parse_transforms(buf: memoryview, count: int) -> list[Transform]:
    transforms: list[Transform] = []
    off = 0
    for index in range(count):
        if off + _TRANSFORM.size > len(buf):
            raise ParseError("truncated transform")
        last, length, t_type, t_id = _TRANSFORM.unpack_from(buf, off)
        if length < _TRANSFORM.size or off + length > len(buf):
            raise ParseError("bad transform length")
        final = index == count - 1
        if last != (_LAST if final else _MORE_TRANSFORMS):
            raise ParseError("transform last/more field disagrees with the transform count")
        attrs = _parse_attributes(buf[off + _TRANSFORM.size : off + length])
        transforms.append(Transform(t_type, t_id, attrs))
        off += length
    if off != len(buf):
        raise ParseError("proposal length disagrees with its transforms")
    return transforms


def _parse_sa(body: memoryview) -> SaPayload:
    proposals: list[Proposal] = []
    off = 0
    last = _MORE_PROPOSALS
    while last == _MORE_PROPOSALS:
        if off + _PROPOSAL.size > len(body):
            raise ParseError("truncated proposal")
        last, length, number, protocol, spi_size, count = _PROPOSAL.unpack_from(body, off)
        if last not in (_LAST, _MORE_PROPOSALS):
            raise ParseError(f"bad proposal last/more field {last}")
        end = off + length
        spi_end = off + _PROPOSAL.size + spi_size
        if length < _PROPOSAL.size or end > len(body) or spi_end > end:
            raise ParseError("bad proposal length")
        spi = bytes(body[off + _PROPOSAL.size : spi_end])
        transforms = _parse_transforms(body[spi_end:end], count)
        proposals.append(Proposal(number, protocol, spi, transforms))
        off = end
    if off != len(body):
        raise ParseError("data after the last proposal")
    return SaPayload(proposals)


def _build_attributes(attrs: list[TransformAttribute]) -> bytes:
    out = bytearray()
    for attr in attrs:
        if not 0 <= attr.attr_type <= _CP_TYPE_MASK:
            raise ConfigError(f"bad attribute type {attr.attr_type}")
        if isinstance(attr.value, int):
            if not 0 <= attr.value <= 0xFFFF:
                raise ConfigError("a TV attribute value must fit 16 bits")
            out += _ATTR.pack(attr.attr_type | _AF_TV, attr.value)
        else:
            out += _ATTR.pack(attr.attr_type, len(attr.value)) + attr.value
    return bytes(out)


def _build_sa(sa: SaPayload) -> bytes:
    out = bytearray()
    if not sa.proposals:
        raise ConfigError("an SA payload needs at least one proposal")
    for p_index, prop in enumerate(sa.proposals):
        if not prop.transforms or len(prop.transforms) > 255 or len(prop.spi) > 255:
            raise ConfigError("a proposal needs 1-255 transforms and an SPI under 256 octets")
        t_bytes = bytearray()
        for t_index, t in enumerate(prop.transforms):
            attrs = _build_attributes(t.attributes)
            more = _LAST if t_index == len(prop.transforms) - 1 else _MORE_TRANSFORMS
            t_bytes += _TRANSFORM.pack(
                more, _TRANSFORM.size + len(attrs), t.transform_type, t.transform_id
            )
            t_bytes += attrs
        more = _LAST if p_index == len(sa.proposals) - 1 else _MORE_PROPOSALS
        length = _PROPOSAL.size + len(prop.spi) + len(t_bytes)
        out += _PROPOSAL.pack(
            more, length, prop.number, prop.protocol_id, len(prop.spi), len(prop.transforms)
        )
        out += prop.spi + t_bytes
    return bytes(out)


# -- KE, ID, CERT, CERTREQ, AUTH, Nonce (§3.4-§3.9) -------------------------------


@dataclass(slots=True)
class KePayload:
    payload_type: ClassVar[int] = PayloadType.KE
    group: int
    data: bytes


@dataclass(slots=True)
class IdPayload:
    """IDi (``responder=False``) or IDr (§3.5)."""

    id_type: int
    data: bytes
    responder: bool = False

    @property
    def payload_type(self) -> int:
        return PayloadType.IDR if self.responder else PayloadType.IDI

    @property
    def body(self) -> bytes:
        """IDType | RESERVED | Identification Data: what §2.15 MACs as ID'."""
        return _TYPE_RESERVED.pack(self.id_type) + self.data


@dataclass(slots=True)
class CertPayload:
    payload_type: ClassVar[int] = PayloadType.CERT
    encoding: int
    data: bytes


@dataclass(slots=True)
class CertReqPayload:
    payload_type: ClassVar[int] = PayloadType.CERTREQ
    encoding: int
    data: bytes  # concatenated SHA-1 hashes of CA public keys for X.509 (§3.7)


@dataclass(slots=True)
class AuthPayload:
    payload_type: ClassVar[int] = PayloadType.AUTH
    method: int
    data: bytes


@dataclass(slots=True)
class NoncePayload:
    payload_type: ClassVar[int] = PayloadType.NONCE
    data: bytes


# -- Notify, Delete, Vendor ID (§3.10-§3.12) --------------------------------------


@dataclass(slots=True)
class NotifyPayload:
    payload_type: ClassVar[int] = PayloadType.NOTIFY
    notify_type: int
    data: bytes = b""
    protocol_id: int = ProtocolId.NONE
    spi: bytes = b""


@dataclass(slots=True)
class DeletePayload:
    payload_type: ClassVar[int] = PayloadType.DELETE
    protocol_id: int
    spis: list[bytes] = field(default_factory=list)
    spi_size: int = 0  # §3.11: 0 for IKE, 4 for AH/ESP


@dataclass(slots=True)
class VendorIdPayload:
    payload_type: ClassVar[int] = PayloadType.VENDOR_ID
    data: bytes


# -- Traffic selectors (§3.13) -----------------------------------------------------


@dataclass(slots=True)
class TrafficSelector:
    """An address range selector (TS types 7 and 8); ports and protocol inclusive."""

    start_addr: IPAddress
    end_addr: IPAddress
    ip_protocol: int = 0
    start_port: int = 0
    end_port: int = 65535

    @property
    def ts_type(self) -> int:
        if self.start_addr.version == 4:
            return TsType.IPV4_ADDR_RANGE
        return TsType.IPV6_ADDR_RANGE


@dataclass(slots=True)
class OpaqueTrafficSelector:
    """A selector of a type this codec does not interpret, kept for the policy logic."""

    ts_type: int
    data: bytes  # everything after the 4-octet selector header


@dataclass(slots=True)
class TsPayload:
    """TSi (``responder=False``) or TSr."""

    selectors: list[TrafficSelector | OpaqueTrafficSelector] = field(default_factory=list)
    responder: bool = False

    @property
    def payload_type(self) -> int:
        return PayloadType.TSR if self.responder else PayloadType.TSI


_TS_ADDR_LEN = {TsType.IPV4_ADDR_RANGE: 4, TsType.IPV6_ADDR_RANGE: 16}


def _parse_ts(body: memoryview, responder: bool) -> TsPayload:
    if len(body) < _TYPE_RESERVED.size:
        raise ParseError("truncated TS payload")
    (count,) = _TYPE_RESERVED.unpack_from(body)
    selectors: list[TrafficSelector | OpaqueTrafficSelector] = []
    off = _TYPE_RESERVED.size
    for _ in range(count):
        if off + _TS_HEAD.size > len(body):
            raise ParseError("truncated traffic selector")
        ts_type, proto, length = _TS_HEAD.unpack_from(body, off)
        if length < _TS_HEAD.size or off + length > len(body):
            raise ParseError("bad traffic selector length")
        addr_len = _TS_ADDR_LEN.get(ts_type)
        if addr_len is None:
            selectors.append(OpaqueTrafficSelector(ts_type, bytes(body[off + 4 : off + length])))
        else:
            if length != _TS.size + 2 * addr_len:
                raise ParseError(f"TS type {ts_type} must be {_TS.size + 2 * addr_len} octets")
            _, _, _, start_port, end_port = _TS.unpack_from(body, off)
            a = off + _TS.size
            start = bytes(body[a : a + addr_len])
            end = bytes(body[a + addr_len : a + 2 * addr_len])
            selectors.append(
                TrafficSelector(
                    ipaddress.ip_address(start),
                    ipaddress.ip_address(end),
                    proto,
                    start_port,
                    end_port,
                )
            )
        off += length
    if off != len(body):
        raise ParseError("TS payload length disagrees with its selector count")
    return TsPayload(selectors, responder)


def _build_ts(ts: TsPayload) -> bytes:
    if len(ts.selectors) > 255:
        raise ConfigError("at most 255 traffic selectors per payload")
    out = bytearray(_TYPE_RESERVED.pack(len(ts.selectors)))
    for sel in ts.selectors:
        if isinstance(sel, OpaqueTrafficSelector):
            out += _TS_HEAD.pack(sel.ts_type, 0, _TS_HEAD.size + len(sel.data)) + sel.data
            continue
        if sel.start_addr.version != sel.end_addr.version:
            raise ConfigError("a traffic selector's addresses must be of one family")
        if not (0 <= sel.start_port <= 0xFFFF and 0 <= sel.end_port <= 0xFFFF):
            raise ConfigError("ports must fit 16 bits")
        if not 0 <= sel.ip_protocol <= 255:
            raise ConfigError("the IP protocol must fit 8 bits")
        addrs = sel.start_addr.packed + sel.end_addr.packed
        out += _TS.pack(
            sel.ts_type, sel.ip_protocol, _TS.size + len(addrs), sel.start_port, sel.end_port
        )
        out += addrs
    return bytes(out)


# -- SK, SKF (§3.14, RFC 7383 §2.5) ------------------------------------------------


@dataclass(slots=True)
class EncryptedPayload:
    """SK: IV | ciphertext | ICV, still encrypted; sk.py opens it.

    ``first_payload`` is the type of the first payload inside (the SK header's Next
    Payload field, §3.14).
    """

    payload_type: ClassVar[int] = PayloadType.SK
    first_payload: int
    data: bytes = field(repr=False)


@dataclass(slots=True)
class EncryptedFragmentPayload:
    """SKF (RFC 7383 §2.5); ``first_payload`` is 0 except in fragment 1."""

    payload_type: ClassVar[int] = PayloadType.SKF
    first_payload: int
    fragment_number: int
    total_fragments: int
    data: bytes = field(repr=False)


def _parse_skf(first_payload: int, body: memoryview) -> EncryptedFragmentPayload:
    if len(body) < _SKF.size:
        raise ParseError("truncated SKF payload")
    number, total = _SKF.unpack_from(body)
    # RFC 7383 §2.5: fragments are numbered from 1 up to Total Fragments; §2.6.2
    # discards anything else.
    if number == 0 or total == 0 or number > total:
        raise ParseError(f"bad fragment number {number} of {total}")
    if number != 1 and first_payload != PayloadType.NONE:
        raise ParseError("only fragment 1 names the first inner payload")
    return EncryptedFragmentPayload(first_payload, number, total, bytes(body[_SKF.size :]))


# -- CP, EAP (§3.15, §3.16) --------------------------------------------------------


@dataclass(slots=True)
class CfgAttribute:
    attr_type: int
    value: bytes = b""


@dataclass(slots=True)
class CpPayload:
    payload_type: ClassVar[int] = PayloadType.CP
    cfg_type: int
    attributes: list[CfgAttribute] = field(default_factory=list)


def _parse_cp(body: memoryview) -> CpPayload:
    if len(body) < _TYPE_RESERVED.size:
        raise ParseError("truncated CP payload")
    (cfg_type,) = _TYPE_RESERVED.unpack_from(body)
    attrs: list[CfgAttribute] = []
    off = _TYPE_RESERVED.size
    while off < len(body):
        if off + _CP_ATTR.size > len(body):
            raise ParseError("truncated configuration attribute")
        a_type, length = _CP_ATTR.unpack_from(body, off)
        off += _CP_ATTR.size
        if off + length > len(body):
            raise ParseError("configuration attribute overruns the CP payload")
        attrs.append(CfgAttribute(a_type & _CP_TYPE_MASK, bytes(body[off : off + length])))
        off += length
    return CpPayload(cfg_type, attrs)


def _build_cp(cp: CpPayload) -> bytes:
    out = bytearray(_TYPE_RESERVED.pack(cp.cfg_type))
    for attr in cp.attributes:
        if not 0 <= attr.attr_type <= _CP_TYPE_MASK or len(attr.value) > 0xFFFF:
            raise ConfigError("bad configuration attribute")
        out += _CP_ATTR.pack(attr.attr_type, len(attr.value)) + attr.value
    return bytes(out)


@dataclass(slots=True)
class EapPayload:
    payload_type: ClassVar[int] = PayloadType.EAP
    data: bytes  # one EAP message (RFC 3748), opaque here


@dataclass(slots=True)
class UnknownPayload:
    """A payload type we do not implement (§2.5); only built, e.g. by tests.

    The parser skips unknown payloads without the critical bit and rejects the
    message when it is set.
    """

    payload_type: int
    data: bytes
    critical: bool = False


Payload = (
    SaPayload
    | KePayload
    | IdPayload
    | CertPayload
    | CertReqPayload
    | AuthPayload
    | NoncePayload
    | NotifyPayload
    | DeletePayload
    | VendorIdPayload
    | TsPayload
    | EncryptedPayload
    | EncryptedFragmentPayload
    | CpPayload
    | EapPayload
    | UnknownPayload
)


# -- dispatch ----------------------------------------------------------------------


def _parse_type_reserved(body: memoryview, what: str) -> tuple[int, bytes]:
    if len(body) < _TYPE_RESERVED.size:
        raise ParseError(f"truncated {what} payload")
    return _TYPE_RESERVED.unpack_from(body)[0], bytes(body[_TYPE_RESERVED.size :])


def _parse_notify(body: memoryview) -> NotifyPayload:
    if len(body) < _NOTIFY.size:
        raise ParseError("truncated Notify payload")
    protocol, spi_size, n_type = _NOTIFY.unpack_from(body)
    if _NOTIFY.size + spi_size > len(body):
        raise ParseError("Notify SPI overruns the payload")
    spi = bytes(body[_NOTIFY.size : _NOTIFY.size + spi_size])
    return NotifyPayload(n_type, bytes(body[_NOTIFY.size + spi_size :]), protocol, spi)


def _parse_delete(body: memoryview) -> DeletePayload:
    if len(body) < _DELETE.size:
        raise ParseError("truncated Delete payload")
    protocol, spi_size, count = _DELETE.unpack_from(body)
    # §3.11: the SPIs fill the rest of the payload exactly; IKE SAs are named by the
    # header's SPIs, so protocol IKE carries none.
    if _DELETE.size + spi_size * count != len(body):
        raise ParseError("Delete payload length disagrees with its SPI count")
    if protocol == ProtocolId.IKE and (spi_size or count):
        raise ParseError("a Delete for the IKE SA carries no SPI")
    if protocol != ProtocolId.IKE and spi_size == 0 and count:
        raise ParseError("zero-size SPIs in a Delete")
    spis = [
        bytes(body[_DELETE.size + i * spi_size : _DELETE.size + (i + 1) * spi_size])
        for i in range(count)
    ]
    return DeletePayload(protocol, spis, spi_size)


def _parse_nonce(body: memoryview) -> NoncePayload:
    if not NONCE_MIN <= len(body) <= NONCE_MAX:
        raise ParseError(f"nonce of {len(body)} octets (RFC 7296 §2.10: 16 to 256)")
    return NoncePayload(bytes(body))


def parse_body(payload_type: int, body: memoryview, next_payload: int = 0) -> Payload:
    """The dataclass for one known payload body; ParseError if malformed.

    ``next_payload`` matters only for SK/SKF, whose Next Payload field names the
    first inner payload. Raises ParseError for types this module does not know.
    """
    if payload_type == PayloadType.SA:
        return _parse_sa(body)
    if payload_type == PayloadType.KE:
        if len(body) < _KE.size:
            raise ParseError("truncated KE payload")
        return KePayload(_KE.unpack_from(body)[0], bytes(body[_KE.size :]))
    if payload_type in (PayloadType.IDI, PayloadType.IDR):
        id_type, data = _parse_type_reserved(body, "ID")
        return IdPayload(id_type, data, payload_type == PayloadType.IDR)
    if payload_type in (PayloadType.CERT, PayloadType.CERTREQ):
        if len(body) < 1:
            raise ParseError("truncated CERT/CERTREQ payload")
        cls = CertPayload if payload_type == PayloadType.CERT else CertReqPayload
        return cls(body[0], bytes(body[1:]))
    if payload_type == PayloadType.AUTH:
        return AuthPayload(*_parse_type_reserved(body, "AUTH"))
    if payload_type == PayloadType.NONCE:
        return _parse_nonce(body)
    if payload_type == PayloadType.NOTIFY:
        return _parse_notify(body)
    if payload_type == PayloadType.DELETE:
        return _parse_delete(body)
    if payload_type == PayloadType.VENDOR_ID:
        return VendorIdPayload(bytes(body))
    if payload_type in (PayloadType.TSI, PayloadType.TSR):
        return _parse_ts(body, payload_type == PayloadType.TSR)
    if payload_type == PayloadType.SK:
        return EncryptedPayload(next_payload, bytes(body))
    if payload_type == PayloadType.SKF:
        return _parse_skf(next_payload, body)
    if payload_type == PayloadType.CP:
        return _parse_cp(body)
    if payload_type == PayloadType.EAP:
        return EapPayload(bytes(body))
    raise ParseError(f"unknown payload type {payload_type}")


KNOWN_TYPES = frozenset(
    {
        PayloadType.SA,
        PayloadType.KE,
        PayloadType.IDI,
        PayloadType.IDR,
        PayloadType.CERT,
        PayloadType.CERTREQ,
        PayloadType.AUTH,
        PayloadType.NONCE,
        PayloadType.NOTIFY,
        PayloadType.DELETE,
        PayloadType.VENDOR_ID,
        PayloadType.TSI,
        PayloadType.TSR,
        PayloadType.SK,
        PayloadType.CP,
        PayloadType.EAP,
        PayloadType.SKF,
    }
)


def build_body(payload: Payload) -> bytes:
    """The bytes after the generic header; ConfigError for values that cannot be sent."""
    if isinstance(payload, SaPayload):
        return _build_sa(payload)
    if isinstance(payload, KePayload):
        return _KE.pack(payload.group) + payload.data
    if isinstance(payload, IdPayload):
        return payload.body
    if isinstance(payload, CertPayload | CertReqPayload):
        return _U8.pack(payload.encoding) + payload.data
    if isinstance(payload, AuthPayload):
        return _TYPE_RESERVED.pack(payload.method) + payload.data
    if isinstance(payload, NoncePayload):
        if not NONCE_MIN <= len(payload.data) <= NONCE_MAX:
            raise ConfigError("nonces are 16 to 256 octets (RFC 7296 §2.10)")
        return payload.data
    if isinstance(payload, NotifyPayload):
        if len(payload.spi) > 255:
            raise ConfigError("Notify SPI too long")
        head = _NOTIFY.pack(payload.protocol_id, len(payload.spi), payload.notify_type)
        return head + payload.spi + payload.data
    if isinstance(payload, DeletePayload):
        if any(len(spi) != payload.spi_size for spi in payload.spis):
            raise ConfigError("every SPI of a Delete has the payload's SPI size")
        head = _DELETE.pack(payload.protocol_id, payload.spi_size, len(payload.spis))
        return head + b"".join(payload.spis)
    if isinstance(payload, TsPayload):
        return _build_ts(payload)
    if isinstance(payload, EncryptedFragmentPayload):
        return _SKF.pack(payload.fragment_number, payload.total_fragments) + payload.data
    if isinstance(payload, CpPayload):
        return _build_cp(payload)
    # EncryptedPayload, VendorIdPayload, EapPayload, UnknownPayload: opaque data.
    return payload.data
