"""Properties of the xfrm codec: random messages round-trip; random or mutated bytes only
ever raise KeyApiError (never IndexError, struct.error, UnicodeError ...)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pyipsec.errors import KeyApiError
from pyipsec.keyapi import xfrm_const as c
from pyipsec.keyapi import xfrm_structs as s
from pyipsec.keyapi.netlink import build_attr, build_nlmsg
from pyipsec.keyapi.xfrm import (
    BODY_LAYOUTS,
    Attr,
    XfrmMessage,
    build_message,
    parse_message,
    parse_messages,
)
from pyipsec.keyapi.xfrm_layout import Layout

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
name = st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=63)

_BY_FORMAT: dict[str, st.SearchStrategy[Any]] = {
    "B": u8,
    "H": u16,
    "I": u32,
    "i": st.integers(-(2**31), 2**31 - 1),
    "Q": st.integers(0, 2**64 - 1),
    ">H": u16,
    ">I": u32,
    "addr": st.binary(min_size=16, max_size=16),
    "cstr64": name,
}


def from_layout(layout: Layout[Any]) -> st.SearchStrategy[Any]:
    """Any value of a struct, derived from its field table."""
    fields = {
        fname: from_layout(spec) if isinstance(spec, Layout) else _BY_FORMAT[spec]
        for fname, spec in layout.fields
    }
    return st.builds(layout.cls, **fields)


def key_and_bits() -> st.SearchStrategy[tuple[bytes, int]]:
    return st.integers(0, 512).flatmap(
        lambda bits: st.tuples(
            st.binary(min_size=(bits + 7) // 8, max_size=(bits + 7) // 8), st.just(bits)
        )
    )


algo = key_and_bits().flatmap(lambda kb: st.builds(s.Algo, name, st.just(kb[0]), st.just(kb[1])))
algo_auth = key_and_bits().flatmap(
    lambda kb: st.builds(s.AlgoAuth, name, st.just(kb[0]), u32, st.just(kb[1]))
)
algo_aead = key_and_bits().flatmap(
    lambda kb: st.builds(s.AlgoAead, name, st.just(kb[0]), u32, st.just(kb[1]))
)
esn = st.integers(0, 128).flatmap(
    lambda n: st.builds(
        s.ReplayStateEsn,
        st.just(n),
        u32,
        u32,
        u32,
        u32,
        u32,
        st.one_of(st.just(()), st.tuples(*[u32] * n)),
    )
)
sec_ctx = st.builds(s.UserSecCtx, u8, u8, st.binary(max_size=100), u16)

ATTRS: dict[int, st.SearchStrategy[Any]] = {
    c.XFRMA_ALG_AUTH: algo,
    c.XFRMA_ALG_CRYPT: algo,
    c.XFRMA_ALG_AEAD: algo_aead,
    c.XFRMA_ALG_AUTH_TRUNC: algo_auth,
    c.XFRMA_ENCAP: from_layout(s.ENCAP_TMPL),
    c.XFRMA_TMPL: st.lists(from_layout(s.USER_TMPL), min_size=1, max_size=6),
    c.XFRMA_SA: from_layout(s.USERSA_INFO),
    c.XFRMA_POLICY: from_layout(s.USERPOLICY_INFO),
    c.XFRMA_SEC_CTX: sec_ctx,
    c.XFRMA_LTIME_VAL: from_layout(s.LIFETIME_CUR),
    c.XFRMA_REPLAY_VAL: from_layout(s.REPLAY_STATE),
    c.XFRMA_REPLAY_ESN_VAL: esn,
    c.XFRMA_SRCADDR: _BY_FORMAT["addr"],
    c.XFRMA_MARK: from_layout(s.MARK),
    c.XFRMA_IF_ID: u32,
    c.XFRMA_PROTO: u8,
    c.XFRMA_MIGRATE: st.lists(from_layout(s.USER_MIGRATE), min_size=1, max_size=3),
    c.XFRMA_OFFLOAD_DEV: from_layout(s.USER_OFFLOAD),
    c.XFRMA_ADDRESS_FILTER: from_layout(s.ADDRESS_FILTER),
    200: st.binary(max_size=40),  # unknown: kept raw
}

attr = st.sampled_from(sorted(ATTRS)).flatmap(lambda t: st.builds(Attr, st.just(t), ATTRS[t]))
message = st.sampled_from(sorted(t for t, lay in BODY_LAYOUTS.items() if lay is not None)).flatmap(
    lambda t: st.builds(
        XfrmMessage,
        st.just(t),
        from_layout(BODY_LAYOUTS[t]),  # type: ignore[arg-type]
        st.lists(attr, max_size=5),
        u16,
        u32,
        u32,
    )
)


@settings(max_examples=300, deadline=None)
@given(message)
def test_random_messages_round_trip(msg: XfrmMessage) -> None:
    raw = build_message(msg)
    back = parse_message(raw)
    assert back == msg
    assert build_message(back) == raw


def _only_key_api_errors(buf: bytes) -> None:
    try:
        parse_messages(buf)
    except KeyApiError as exc:
        assert exc.errno > 0


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_only_raise_key_api_error(buf: bytes) -> None:
    _only_key_api_errors(buf)


@settings(max_examples=500, deadline=None)
@given(
    st.integers(0, c.XFRM_MSG_MAX + 3),
    st.lists(st.tuples(st.integers(0, 40), st.binary(max_size=120)), max_size=6),
    st.binary(max_size=300),
)
def test_random_bodies_and_attributes_only_raise_key_api_error(
    msg_type: int, attrs: list[tuple[int, bytes]], body: bytes
) -> None:
    # Well-framed messages whose body and attribute payloads are noise.
    payload = body + b"".join(build_attr(t, data) for t, data in attrs)
    _only_key_api_errors(build_nlmsg(msg_type, 0, 0, 0, payload))
    size = BODY_LAYOUTS.get(msg_type)
    if size is not None:
        padded = body[: size.size].ljust((size.size + 3) & ~3, b"\0")
        _only_key_api_errors(build_nlmsg(msg_type, 0, 0, 0, padded + payload[len(body) :]))


@settings(max_examples=300, deadline=None)
@given(message, st.data())
def test_mutated_messages_only_raise_key_api_error(msg: XfrmMessage, data: st.DataObject) -> None:
    raw = bytearray(build_message(msg))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(u8)
    cut = data.draw(st.integers(0, len(raw)))
    _only_key_api_errors(bytes(raw[:cut]))
    _only_key_api_errors(bytes(raw))
