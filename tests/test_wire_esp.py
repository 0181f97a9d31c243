"""ESP header, padding and trailer (RFC 4303 §2, §2.4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyipsec.errors import ParseError
from pyipsec.wire.esp import (
    EspHeader,
    build_esp_header,
    pad_length,
    parse_esp_header,
    split_trailer,
    trailer,
)


def test_header_round_trip() -> None:
    raw = build_esp_header(EspHeader(0x01020304, 5))
    assert raw == bytes.fromhex("0102030400000005")
    assert parse_esp_header(raw + b"rest") == EspHeader(0x01020304, 5)
    with pytest.raises(ParseError):
        parse_esp_header(raw[:7])
    with pytest.raises(ValueError):
        build_esp_header(EspHeader(1 << 32, 0))


@given(st.integers(0, 3000), st.integers(0, 255), st.sampled_from([4, 8, 16, 32]))
def test_trailer_alignment_and_split(n: int, nh: int, align: int) -> None:
    tr = trailer(n, nh, align)
    assert (n + len(tr)) % align == 0
    assert len(tr) - 2 == pad_length(n, align) < align
    assert tr[:-2] == bytes(range(1, len(tr) - 1))
    assert split_trailer(bytes(n) + tr) == (n, nh)


def test_split_trailer_errors() -> None:
    with pytest.raises(ParseError):
        split_trailer(b"\x04")
    with pytest.raises(ParseError):
        split_trailer(b"\x01\x05\x04")  # pad length past the start
    with pytest.raises(ParseError):
        split_trailer(b"ab\x01\x03\x02\x04")  # padding 1, 3 instead of 1, 2
