"""Generic netlink framing: nlmsghdr, nlattr, NLMSG_ERROR, NLMSG_DONE (<linux/netlink.h>)."""

from __future__ import annotations

import errno
import struct

import pytest

from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.keyapi.netlink import (
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_HDRLEN,
    Done,
    NetlinkError,
    NlMsgHeader,
    build_attr,
    build_nlmsg,
    iter_attrs,
    nl_align,
    parse_done,
    parse_error,
    parse_header,
    split_messages,
)


def test_alignment_rounds_up_to_four() -> None:
    assert [nl_align(n) for n in range(9)] == [0, 4, 4, 4, 4, 8, 8, 8, 8]


def test_flag_values_match_netlink_h() -> None:
    assert (NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP) == (1, 4, 0x300)


def test_header_layout_is_host_order_16_bytes() -> None:
    raw = NlMsgHeader(20, 0x10, 0x305, 7, 42).pack()
    assert raw == struct.pack("=IHHII", 20, 0x10, 0x305, 7, 42)
    assert len(raw) == NLMSG_HDRLEN
    assert parse_header(raw) == NlMsgHeader(20, 0x10, 0x305, 7, 42)


def test_build_pads_but_length_counts_only_payload() -> None:
    raw = build_nlmsg(0x1C, NLM_F_REQUEST, 1, 0, b"\x32")
    assert len(raw) == 20
    assert struct.unpack_from("=I", raw)[0] == 17
    assert raw[17:] == b"\0\0\0"


def test_split_several_messages() -> None:
    buf = build_nlmsg(0x10, 2, 1, 9, b"abc") + build_nlmsg(NLMSG_DONE, 2, 1, 9, bytes(4))
    parts = list(split_messages(buf))
    assert [(h.type, h.seq, h.pid, bytes(p)) for h, p in parts] == [
        (0x10, 1, 9, b"abc"),
        (NLMSG_DONE, 1, 9, bytes(4)),
    ]


@pytest.mark.parametrize(
    "buf",
    [
        b"\x10\0\0",  # shorter than a header
        struct.pack("=IHHII", 15, 0x10, 0, 0, 0),  # nlmsg_len below the header size
        struct.pack("=IHHII", 40, 0x10, 0, 0, 0),  # nlmsg_len beyond the buffer
        build_nlmsg(0x10, 0, 0, 0, b"") + b"\1\2",  # trailing partial header
    ],
)
def test_bad_headers_are_einval(buf: bytes) -> None:
    with pytest.raises(KeyApiError) as info:
        list(split_messages(buf))
    assert info.value.errno == errno.EINVAL


def test_attributes_round_trip_with_padding() -> None:
    buf = build_attr(1, b"x") + build_attr(0x8002, b"") + build_attr(3, b"12345678")
    assert len(buf) == 8 + 4 + 12
    assert [(t, bytes(p)) for t, p in iter_attrs(buf)] == [
        (1, b"x"),
        (0x8002, b""),
        (3, b"12345678"),
    ]


def test_last_attribute_may_omit_padding() -> None:
    buf = build_attr(1, b"x")[:5]
    assert [(t, bytes(p)) for t, p in iter_attrs(buf)] == [(1, b"x")]


@pytest.mark.parametrize(
    "buf",
    [
        b"\x08\0",  # truncated nlattr header
        struct.pack("=HH", 3, 1) + b"\0\0\0\0",  # nla_len below 4
        struct.pack("=HH", 12, 1) + b"\0\0\0\0",  # nla_len beyond the buffer
    ],
)
def test_bad_attributes_are_einval(buf: bytes) -> None:
    with pytest.raises(KeyApiError) as info:
        list(iter_attrs(buf))
    assert info.value.errno == errno.EINVAL


def test_attribute_too_long_is_config_error() -> None:
    with pytest.raises(ConfigError):
        build_attr(1, bytes(0x10000))


def test_error_message_echoes_offending_header() -> None:
    request = NlMsgHeader(40, 0x10, NLM_F_REQUEST | NLM_F_ACK, 77, 0).pack()
    err = parse_error(struct.pack("=i", -errno.ESRCH) + request)
    assert err.error == -errno.ESRCH
    assert not err.is_ack
    offending = err.offending
    assert offending is not None
    assert (offending.type, offending.seq) == (0x10, 77)
    assert err.pack() == struct.pack("=i", -errno.ESRCH) + request


def test_ack_and_short_error() -> None:
    ack = parse_error(struct.pack("=i", 0))
    assert ack.is_ack
    assert ack.offending is None
    with pytest.raises(KeyApiError):
        parse_error(b"\0\0")
    assert NetlinkError(-1, b"").pack() == b"\xff\xff\xff\xff"


def test_done_status() -> None:
    assert parse_done(b"") == Done(0)
    assert parse_done(struct.pack("=i", -errno.EINTR)).status == -errno.EINTR
    with pytest.raises(KeyApiError):
        parse_done(b"\0")
    assert Done(-4).pack() == struct.pack("=i", -4)


def test_nlmsg_error_type_value() -> None:
    assert (NLMSG_ERROR, NLMSG_DONE) == (2, 3)
