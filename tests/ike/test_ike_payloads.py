"""pyipsec.ike.v2.payloads: every payload body, golden bytes from the RFC layouts."""

from __future__ import annotations

import ipaddress

import pytest

from pyipsec.errors import ConfigError, ParseError
from pyipsec.ike.v2.constants import (
    AuthMethod,
    CfgAttributeType,
    CfgType,
    DhId,
    EncrId,
    IdType,
    IntegId,
    NotifyType,
    PayloadType,
    PrfId,
    ProtocolId,
    TransformType,
)
from pyipsec.ike.v2.message import build_payloads, parse_payloads
from pyipsec.ike.v2.payloads import (
    AuthPayload,
    CertPayload,
    CertReqPayload,
    CfgAttribute,
    CpPayload,
    DeletePayload,
    EapPayload,
    EncryptedFragmentPayload,
    EncryptedPayload,
    IdPayload,
    KePayload,
    NoncePayload,
    NotifyPayload,
    OpaqueTrafficSelector,
    Payload,
    Proposal,
    SaPayload,
    TrafficSelector,
    Transform,
    TransformAttribute,
    TsPayload,
    VendorIdPayload,
    build_body,
    parse_body,
)
from vectors.ike_rfc5903 import ECP_VECTORS, unhex


def _roundtrip(payload: Payload) -> Payload:
    body = build_body(payload)
    nxt = getattr(payload, "first_payload", 0)
    parsed = parse_body(payload.payload_type, memoryview(body), nxt)
    assert parsed == payload
    assert build_body(parsed) == body
    return parsed


def _ike_proposal() -> SaPayload:
    return SaPayload(
        [
            Proposal(
                1,
                ProtocolId.IKE,
                b"",
                [
                    Transform.with_key_length(TransformType.ENCR, EncrId.AES_CBC, 256),
                    Transform(TransformType.PRF, PrfId.HMAC_SHA2_256),
                    Transform(TransformType.INTEG, IntegId.HMAC_SHA2_256_128),
                    Transform(TransformType.DH, DhId.ECP_256),
                ],
            ),
            Proposal(
                2,
                ProtocolId.ESP,
                b"\x11\x22\x33\x44",
                [
                    Transform.with_key_length(TransformType.ENCR, EncrId.AES_GCM_16, 128),
                    Transform(TransformType.ESN, 0, [TransformAttribute(300, b"xy")]),
                ],
            ),
        ]
    )


def test_sa_golden_bytes() -> None:
    sa = SaPayload(
        [Proposal(1, ProtocolId.IKE, b"", [Transform.with_key_length(1, EncrId.AES_CBC, 128)])]
    )
    # §3.3.1 proposal: last=0, reserved, length 20, #1, protocol 1, SPI size 0, 1 transform;
    # §3.3.2 transform: last=0, reserved, length 12, type 1, reserved, id 12;
    # §3.3.5 attribute: AF|14 = 0x800e, value 128.
    golden = bytes.fromhex("00000014 01010001 0000000c 0100000c 800e0080".replace(" ", ""))
    assert build_body(sa) == golden
    assert parse_body(PayloadType.SA, memoryview(golden)) == sa
    assert sa.proposals[0].transforms[0].key_length == 128


def test_sa_roundtrip_and_attributes() -> None:
    sa = _ike_proposal()
    parsed = _roundtrip(sa)
    assert isinstance(parsed, SaPayload)
    assert parsed.proposals[1].spi == b"\x11\x22\x33\x44"
    assert parsed.proposals[1].transforms[1].attributes[0].value == b"xy"
    assert parsed.proposals[0].transforms[1].key_length is None


@pytest.mark.parametrize(
    "hexbody",
    [
        "00000014 01010001 0000000c 0100000c 800e00",  # truncated attribute
        "02000014 01010001 0000000c 0100000c 800e0080",  # says "more" but none follow
        "00000014 01010002 0000000c 0100000c 800e0080",  # 2 transforms announced
        "00000014 01010001 0300000c 0100000c 800e0080",  # transform says "more"
        "00000015 01010001 0000000c 0100000c 800e0080",  # proposal overruns the body
        "00000010 01010001 0000000c 0100000c 800e0080",  # proposal shorter than transform
        "00000014 01010901 0000000c 0100000c 800e0080",  # SPI size past the proposal
        "00000014 01010001 0000000c 0100000c 000e0080",  # TLV attribute overruns
        "05000014 01010001 0000000c 0100000c 800e0080",  # last/more field 5
        "00000014 01010001 0000000c 0100000c 800e0080 00",  # trailing octet
        "000000",
    ],
)
def test_sa_malformed(hexbody: str) -> None:
    with pytest.raises(ParseError):
        parse_body(PayloadType.SA, memoryview(bytes.fromhex(hexbody.replace(" ", ""))))


@pytest.mark.parametrize("vec", ECP_VECTORS, ids=lambda v: v["section"])
def test_ke_golden_from_rfc5903(vec: dict[str, str | int]) -> None:
    # RFC 5903 §8 prints whole KE payloads: generic header, group, reserved, x || y.
    kei = unhex(str(vec["kei"]))
    payloads, _ = parse_payloads(PayloadType.KE, memoryview(kei))
    assert payloads == [KePayload(int(vec["group"]), kei[8:])]
    assert build_payloads(payloads) == (PayloadType.KE, kei)


def test_id_and_auth_and_cert() -> None:
    idi = IdPayload(IdType.FQDN, b"alice.example")
    assert build_body(idi) == b"\x02\x00\x00\x00alice.example"
    assert idi.payload_type == PayloadType.IDI
    idr = _roundtrip(IdPayload(IdType.IPV4_ADDR, bytes([192, 0, 2, 1]), responder=True))
    assert idr.payload_type == PayloadType.IDR
    auth = AuthPayload(AuthMethod.SHARED_KEY_MIC, b"\xaa" * 32)
    assert build_body(auth)[:4] == b"\x02\x00\x00\x00"
    _roundtrip(auth)
    assert build_body(CertPayload(4, b"DER")) == b"\x04DER"
    _roundtrip(CertPayload(4, b"DER"))
    _roundtrip(CertReqPayload(4, b"\x01" * 20))
    for ptype in (PayloadType.IDI, PayloadType.AUTH, PayloadType.CERT, PayloadType.KE):
        with pytest.raises(ParseError):
            parse_body(ptype, memoryview(b""))


def test_nonce_bounds() -> None:
    _roundtrip(NoncePayload(b"n" * 16))
    _roundtrip(NoncePayload(b"n" * 256))
    for n in (0, 15, 257):
        with pytest.raises(ParseError):
            parse_body(PayloadType.NONCE, memoryview(b"n" * n))
        with pytest.raises(ConfigError):
            build_body(NoncePayload(b"n" * n))


def test_notify() -> None:
    cookie = NotifyPayload(NotifyType.COOKIE, b"c" * 16)
    # §3.10: protocol 0, SPI size 0, type 16390 = 0x4006, data.
    assert build_body(cookie) == bytes.fromhex("00004006") + b"c" * 16
    _roundtrip(cookie)
    rekey = NotifyPayload(NotifyType.REKEY_SA, b"", ProtocolId.ESP, b"\x01\x02\x03\x04")
    assert build_body(rekey) == bytes.fromhex("0304400901020304")
    _roundtrip(rekey)
    with pytest.raises(ParseError):
        parse_body(PayloadType.NOTIFY, memoryview(bytes.fromhex("0308400901020304")))
    with pytest.raises(ParseError):
        parse_body(PayloadType.NOTIFY, memoryview(b"\x00\x00"))


def test_delete() -> None:
    esp = DeletePayload(ProtocolId.ESP, [b"\x00\x00\x10\x01", b"\x00\x00\x10\x02"], 4)
    assert build_body(esp) == bytes.fromhex("03040002 00001001 00001002".replace(" ", ""))
    _roundtrip(esp)
    ike = DeletePayload(ProtocolId.IKE)
    assert build_body(ike) == bytes.fromhex("01000000")
    _roundtrip(ike)
    for bad in ("03040002 00001001", "01080001 0102030405060708", "03000002", "0304"):
        with pytest.raises(ParseError):
            parse_body(PayloadType.DELETE, memoryview(bytes.fromhex(bad.replace(" ", ""))))
    with pytest.raises(ConfigError):
        build_body(DeletePayload(ProtocolId.ESP, [b"\x01"], 4))


def test_traffic_selectors_v4_v6() -> None:
    ts = TsPayload(
        [
            TrafficSelector(
                ipaddress.ip_address("198.51.100.0"), ipaddress.ip_address("198.51.100.255")
            ),
            TrafficSelector(
                ipaddress.ip_address("2001:db8::"),
                ipaddress.ip_address("2001:db8::ffff"),
                ip_protocol=17,
                start_port=500,
                end_port=500,
            ),
        ],
        responder=True,
    )
    body = build_body(ts)
    # §3.13.1: count 2; IPv4 selector: type 7, proto 0, length 16, ports 0-65535, addrs.
    assert body[:4] == b"\x02\x00\x00\x00"
    assert body[4:20] == bytes.fromhex("07000010 0000ffff c6336400 c63364ff".replace(" ", ""))
    assert body[20:28] == bytes.fromhex("08110028 01f401f4".replace(" ", ""))
    parsed = _roundtrip(ts)
    assert parsed.payload_type == PayloadType.TSR


def test_traffic_selectors_malformed_and_opaque() -> None:
    good = bytes.fromhex("01000000 07000010 0000ffff c6336400 c63364ff".replace(" ", ""))
    for bad in (
        good[:-1],
        good + b"\x00",
        bytes.fromhex("02000000") + good[4:],
        bytes.fromhex("01000000 07000014 0000ffff c6336400 c63364ff 00000000".replace(" ", "")),
        bytes.fromhex("01000000 08000010 0000ffff c6336400 c63364ff".replace(" ", "")),
        b"\x01",
    ):
        with pytest.raises(ParseError):
            parse_body(PayloadType.TSI, memoryview(bad))
    # An unknown TS type (e.g. RFC 4595's FC selectors, type 9) is kept, not rejected.
    opaque = TsPayload([OpaqueTrafficSelector(9, b"\x01\x02\x03\x04")])
    _roundtrip(opaque)
    with pytest.raises(ConfigError):
        build_body(
            TsPayload(
                [
                    TrafficSelector(
                        ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("2001:db8::1")
                    )
                ]
            )
        )


def test_cp_vendor_eap() -> None:
    cp = CpPayload(
        CfgType.REQUEST,
        [
            CfgAttribute(CfgAttributeType.INTERNAL_IP4_ADDRESS),
            CfgAttribute(CfgAttributeType.INTERNAL_IP4_DNS, bytes([192, 0, 2, 53])),
        ],
    )
    assert build_body(cp) == bytes.fromhex("01000000 00010000 00030004 c0000235".replace(" ", ""))
    _roundtrip(cp)
    # §3.15.1: the reserved top bit of the attribute type is ignored.
    parsed = parse_body(PayloadType.CP, memoryview(bytes.fromhex("0200000080010000")))
    assert parsed == CpPayload(2, [CfgAttribute(1, b"")])
    for bad in ("02", "0200000000010004c000", "02000000000100"):
        with pytest.raises(ParseError):
            parse_body(PayloadType.CP, memoryview(bytes.fromhex(bad)))
    _roundtrip(VendorIdPayload(b"pyipsec"))
    _roundtrip(EapPayload(bytes.fromhex("0201000501")))


def test_encrypted_payloads() -> None:
    sk = EncryptedPayload(PayloadType.IDI, b"\x00" * 48)
    _roundtrip(sk)
    skf = EncryptedFragmentPayload(PayloadType.IDI, 1, 3, b"\x00" * 40)
    assert build_body(skf)[:4] == b"\x00\x01\x00\x03"
    _roundtrip(skf)
    _roundtrip(EncryptedFragmentPayload(0, 3, 3, b"x"))
    for number, total, first in ((0, 3, 0), (4, 3, 0), (1, 0, 0), (2, 3, 35)):
        body = number.to_bytes(2, "big") + total.to_bytes(2, "big") + b"x"
        with pytest.raises(ParseError):
            parse_body(PayloadType.SKF, memoryview(body), first)
    with pytest.raises(ParseError):
        parse_body(PayloadType.SKF, memoryview(b"\x00\x01"), 0)


def test_unknown_type_is_a_parse_error_here() -> None:
    with pytest.raises(ParseError):
        parse_body(99, memoryview(b""))
