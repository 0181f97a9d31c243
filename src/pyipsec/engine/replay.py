"""Inbound anti-replay window (RFC 4303 §3.4.3 and Appendix A, A2 for ESN).

The window is an int used as a bitmap: bit i set means sequence number ``top - i`` was
received. Python shifts and masks big ints in C, so a 4096-packet window costs no
more per packet than a 64-packet one in practice.

Use: ``full = window.check(seq_lo)`` before decrypting (cheap rejection of replays),
then ``window.advance(full)`` only once the ICV verified (RFC 4303 §3.4.3), so forged
packets can never move the window.
"""

from __future__ import annotations

from pyipsec.errors import ConfigError, PacketDropped, Reason

MAX_WINDOW = 1 << 16
_M32 = 0xFFFFFFFF
_MAX_SEQ64 = (1 << 64) - 1


class ReplayWindow:
    """Sliding window over 32-bit or (``esn=True``) 64-bit sequence numbers.

    ``size`` 0 disables the replay check (RFC 4303 §3.4.3: the receiver may choose
    not to check); with ESN the high half is still inferred, as if the window were
    half the 32-bit space wide (RFC 4303 Appendix A2 with W = 2^31).
    """

    __slots__ = ("_infer_w", "bitmap", "esn", "fresh_span", "mask", "size", "top")

    def __init__(self, size: int, *, esn: bool = False) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_WINDOW:
            raise ConfigError(f"replay window must be an int in 0..{MAX_WINDOW}")
        self.size = size
        self.esn = bool(esn)
        self.top = 0  # highest authenticated sequence number (full 64 bits with ESN)
        self.bitmap = 0
        self.mask = (1 << size) - 1  # bitmap bits kept by advance
        self._infer_w = size if size else 1 << 31
        # With ESN, check() puts a seq_lo with top_lo < seq_lo < top_lo + fresh_span in
        # top's 2^32 subspace, above top: a packet the window accepts without looking
        # at its bitmap (the branches of Appendix A2.2 that give th << 32 | seq_lo). The
        # SA's fast paths use this bound instead of calling check().
        self.fresh_span = (1 << 32) - self._infer_w + 1

    def check(self, seq_lo: int) -> int:
        """Return the full sequence number of a received packet, or raise PacketDropped.

        Raises ``PacketDropped(IN_STATE_SEQ_ERROR)`` for a replayed, too old or zero
        sequence number. Does not change the window.
        """
        top = self.top
        if self.esn:
            # RFC 4303 Appendix A2.2: guess seq_hi from where the window sits.
            w = self._infer_w
            tl = top & _M32
            th = top >> 32
            if tl >= w - 1:
                # Window within one 2^32 subspace: below its bottom means the next one.
                seq = (th << 32 | seq_lo) if seq_lo >= tl - w + 1 else ((th + 1) << 32 | seq_lo)
            elif seq_lo >= (tl - w + 1) & _M32:
                # Window spans two subspaces and seq_lo is in the older one.
                if th == 0:
                    raise PacketDropped(Reason.IN_STATE_SEQ_ERROR, "before the first subspace")
                seq = (th - 1) << 32 | seq_lo
            else:
                seq = th << 32 | seq_lo
            if seq > _MAX_SEQ64:
                raise PacketDropped(Reason.IN_STATE_SEQ_ERROR, "beyond the 64-bit space")
        else:
            seq = seq_lo
        if seq == 0:
            # The first packet an SA sends is number 1 (RFC 4303 §3.3.3).
            raise PacketDropped(Reason.IN_STATE_SEQ_ERROR, "sequence number 0")
        if seq > top or not self.size:
            return seq
        diff = top - seq
        if diff >= self.size:
            raise PacketDropped(Reason.IN_STATE_SEQ_ERROR, "left of the window")
        if self.bitmap >> diff & 1:
            raise PacketDropped(Reason.IN_STATE_SEQ_ERROR, "replayed")
        return seq

    def advance(self, seq: int) -> None:
        """Record an authenticated packet's full sequence number."""
        top = self.top
        if seq > top:
            shift = seq - top
            self.bitmap = ((self.bitmap << shift) | 1) & self.mask if shift < self.size else 1
            self.top = seq
        elif self.size:
            self.bitmap |= 1 << (top - seq)

    @property
    def seq_hi(self) -> int:
        """High 32 bits of the top of the window."""
        return self.top >> 32

    def __repr__(self) -> str:
        return f"ReplayWindow(size={self.size}, esn={self.esn}, top={self.top})"
