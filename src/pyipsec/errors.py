"""One small exception hierarchy for the whole stack.

- ``ParseError``: bytes that do not follow a wire format (any codec).
- ``PacketDropped``: the data plane refused a packet; ``reason`` names why, with the
  Linux kernel's ``/proc/net/xfrm_stat`` counter names where one exists (see ``Reason``).
- ``SequenceExhausted``: an outbound SA used its last sequence number (RFC 4303 §3.3.3);
  the SA must be rekeyed, never wrapped.
- ``ConfigError``: a configuration file, CLI argument or API call that makes no sense.
- ``KeyApiError``: a key-management request refused with an errno, as the kernel would.
"""

from __future__ import annotations


class PyipsecError(Exception):
    """Base of every error pyipsec raises on purpose."""


class ParseError(PyipsecError, ValueError):
    """Malformed bytes in any wire format."""


class ConfigError(PyipsecError, ValueError):
    """Invalid configuration, argument or API use."""


class Reason:
    """Drop reasons: the kernel's xfrm_stat names, plus a few of our own (lower case)."""

    # Inbound (kernel names).
    IN_ERROR = "XfrmInError"
    IN_BUFFER_ERROR = "XfrmInBufferError"
    IN_HDR_ERROR = "XfrmInHdrError"  # truncated or malformed outer/ESP header
    IN_NO_STATES = "XfrmInNoStates"  # no SA for (dst, spi, proto)
    IN_STATE_PROTO_ERROR = "XfrmInStateProtoError"  # ICV failure, bad padding, bad trailer
    IN_STATE_MODE_ERROR = "XfrmInStateModeError"  # inner packet does not fit the SA mode
    IN_STATE_SEQ_ERROR = "XfrmInStateSeqError"  # replayed or too old sequence number
    IN_STATE_EXPIRED = "XfrmInStateExpired"
    IN_STATE_MISMATCH = "XfrmInStateMismatch"  # SA found but addresses/encap differ
    IN_STATE_INVALID = "XfrmInStateInvalid"  # SA larval or dead
    IN_TMPL_MISMATCH = "XfrmInTmplMismatch"  # inner packet not allowed by the SA's policy
    IN_NO_POLS = "XfrmInNoPols"
    IN_POL_BLOCK = "XfrmInPolBlock"
    IN_POL_ERROR = "XfrmInPolError"
    FWD_HDR_ERROR = "XfrmFwdHdrError"
    # Outbound (kernel names).
    OUT_ERROR = "XfrmOutError"
    OUT_NO_STATES = "XfrmOutNoStates"
    OUT_STATE_PROTO_ERROR = "XfrmOutStateProtoError"
    OUT_STATE_MODE_ERROR = "XfrmOutStateModeError"
    OUT_STATE_SEQ_ERROR = "XfrmOutStateSeqError"  # sequence number space exhausted
    OUT_STATE_EXPIRED = "XfrmOutStateExpired"
    OUT_STATE_INVALID = "XfrmOutStateInvalid"
    OUT_POL_BLOCK = "XfrmOutPolBlock"
    OUT_POL_ERROR = "XfrmOutPolError"
    ACQUIRE_ERROR = "XfrmAcquireError"
    # Not errors, but packets that carry no data (counted apart).
    DUMMY = "dummy"  # ESP next header 59 (RFC 4303 §2.6)
    NAT_KEEPALIVE = "nat-keepalive"  # single 0xFF byte on UDP 4500 (RFC 3948 §2.3)
    NON_ESP = "non-esp"  # UDP 4500 datagram with the non-ESP marker: IKE, not ESP


class PacketDropped(PyipsecError):
    """The data plane dropped a packet. ``reason`` is one of ``Reason``'s values."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class SequenceExhausted(PyipsecError):
    """An outbound SA has no sequence number left; it must be rekeyed (RFC 4303 §3.3.3)."""


class KeyApiError(PyipsecError):
    """A key-management request refused with ``errno`` (as PF_KEY/xfrm would)."""

    def __init__(self, errno: int, message: str = "") -> None:
        super().__init__(message or f"errno {errno}")
        self.errno = errno
