"""Anti-replay window (RFC 4303 §3.4.3, Appendix A2 for ESN)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pyipsec.engine.replay import ReplayWindow
from pyipsec.errors import ConfigError, PacketDropped, Reason


def accept(w: ReplayWindow, seq_lo: int) -> int:
    full = w.check(seq_lo)
    w.advance(full)
    return full


def rejected(w: ReplayWindow, seq_lo: int) -> bool:
    try:
        w.check(seq_lo)
    except PacketDropped as exc:
        assert exc.reason == Reason.IN_STATE_SEQ_ERROR
        return True
    return False


@pytest.mark.parametrize("size", [2, 32, 64, 1024, 4096])
def test_window_edges(size: int) -> None:
    w = ReplayWindow(size)
    top = size + 100
    accept(w, top)
    assert not rejected(w, top - size + 1)  # oldest still inside
    assert rejected(w, top - size)  # just left of the window
    assert rejected(w, top)  # replay of the top
    accept(w, top - size + 1)
    assert rejected(w, top - size + 1)
    assert not rejected(w, top + 1)


def test_zero_is_never_valid() -> None:
    assert rejected(ReplayWindow(64), 0)


def test_check_does_not_advance() -> None:
    w = ReplayWindow(64)
    assert w.check(5) == 5
    assert w.check(5) == 5
    assert w.top == 0


def test_big_jump_clears_the_bitmap() -> None:
    w = ReplayWindow(64)
    for s in range(1, 10):
        accept(w, s)
    accept(w, 10_000)
    assert w.bitmap == 1 and w.top == 10_000
    assert not rejected(w, 9_999)


def test_disabled_window_accepts_replays() -> None:
    w = ReplayWindow(0)
    accept(w, 5)
    assert w.check(5) == 5
    assert w.check(1) == 1


@pytest.mark.parametrize("bad", [-1, 1 << 20, 1.5, True, "64"])
def test_bad_size(bad) -> None:
    with pytest.raises(ConfigError):
        ReplayWindow(bad)


def test_esn_low_half_wraps() -> None:
    w = ReplayWindow(128, esn=True)
    w.advance(0xFFFFFFF0)
    assert accept(w, 0x5) == 0x1_0000_0005  # seq_lo wrapped: next subspace
    assert w.seq_hi == 1
    # An older packet from the previous subspace, still inside the window.
    assert accept(w, 0xFFFFFFF8) == 0xFFFFFFF8
    assert rejected(w, 0xFFFFFFF8)
    assert w.top == 0x1_0000_0005
    # Below the window's bottom: read as the next subspace, far ahead, so accepted by
    # the check (the ICV then decides, since seq_hi is in the ICV input).
    assert w.check(0xFFFFFF00) == 0x1_FFFF_FF00


def test_esn_case_a_and_b() -> None:
    """Appendix A2.2: window inside one subspace (case A) or across two (case B)."""
    w = ReplayWindow(64, esn=True)
    accept(w, 1000)  # case A: Tl >= W - 1
    assert w.check(999) == 999
    assert w.check(10) == (1 << 32) | 10  # below the window: next subspace
    w2 = ReplayWindow(64, esn=True)
    w2.advance(0xFFFFFFFF)
    accept(w2, 0x10)  # top = 2^32 + 16: case B
    assert w2.check(0xFFFFFFF0) == 0xFFFFFFF0  # previous subspace
    assert w2.check(0x20) == (1 << 32) | 0x20


def test_esn_cannot_go_below_zero() -> None:
    w = ReplayWindow(64, esn=True)
    accept(w, 3)
    assert rejected(w, 0xFFFFFFF0)


@given(st.lists(st.integers(1, 5000), max_size=300), st.sampled_from([32, 64, 200, 4096]))
def test_against_a_set_model(seqs: list[int], size: int) -> None:
    """A packet passes iff it was never accepted and is within size of the max accepted."""
    w = ReplayWindow(size)
    seen: set[int] = set()
    top = 0
    for s in seqs:
        expect_ok = s not in seen and (s > top or top - s < size)
        assert (not rejected(w, s)) == expect_ok
        if expect_ok:
            w.advance(s)
            seen.add(s)
            top = max(top, s)


@given(
    st.sampled_from([0, 1, 64, 1024, 4096]),
    st.integers(0, (1 << 64) - 1),
    st.integers(0, 0xFFFFFFFF),
)
def test_fresh_span_is_where_check_stays_in_the_top_subspace(size, top, delta) -> None:
    """The SA's fast paths take tl < seq_lo < tl + fresh_span as new packets of top's
    2^32 subspace without calling check(): check() must agree exactly there, and put
    any other seq_lo above tl elsewhere (the next subspace is never inferred there)."""
    w = ReplayWindow(size, esn=True)
    w.top = top
    tl = top & 0xFFFFFFFF
    assume(tl < 0xFFFFFFFF)
    seq_lo = tl + 1 + delta % (0xFFFFFFFF - tl)  # above tl
    try:
        full = w.check(seq_lo)
    except PacketDropped:
        full = None
    if seq_lo < tl + w.fresh_span:
        assert full == top - tl + seq_lo
    else:
        assert full != top - tl + seq_lo
