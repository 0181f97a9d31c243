"""IKEv2 message fragmentation (RFC 7383): sending SKF fragments and reassembling them.

Sending (§2.5, §2.5.1): once both peers announced IKEV2_FRAGMENTATION_SUPPORTED in
IKE_SA_INIT, a protected message longer than ``Context.fragment_size`` octets of UDP
payload (4 fewer behind a NAT, for the non-ESP marker of port 4500) travels as SKF
messages instead: the inner payload chain is cut into chunks, each encrypted on its own
with the same header and message ID; only fragment 1 names the first inner payload.
Retransmissions resend every fragment as first sent (§2.6.1).

Receiving (§2.6): every fragment is authenticated (decrypted) before it is kept, so
forged fragments can neither fill memory nor poison a message. Limits: at most
``max_fragments`` per message and ``max_bytes`` of plaintext; one message per direction
is assembled at a time (window size 1). A fragment announcing more fragments than the
ones kept restarts the message (the sender re-fragmented it, §2.6.2); one announcing
fewer is dropped. Duplicates are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyipsec.errors import ConfigError
from pyipsec.ike.v2.constants import IKE_HEADER_LEN, ExchangeType, PayloadType
from pyipsec.ike.v2.ike_sa import IkeSa
from pyipsec.ike.v2.message import IkeHeader, IkeMessage
from pyipsec.ike.v2.payloads import EncryptedFragmentPayload, Payload
from pyipsec.ike.v2.sk import (
    SkCipher,
    decrypt_fragment,
    encrypt_fragment,
    parse_inner,
    split_for_fragments,
)

_SKF_HEADER = 8  # generic payload header + Fragment Number + Total Fragments
NON_ESP_MARKER = 4  # RFC 3948 §2.2, added by io/ on port 4500
NATT_PORT = 4500
MAX_FRAGMENTS = 64
MAX_BYTES = 64 * 1024


def chunk_size(cipher: SkCipher, limit: int) -> int:
    """The most inner-payload octets one SKF message of ``limit`` octets can carry."""
    room = limit - IKE_HEADER_LEN - _SKF_HEADER - cipher.iv_len - cipher.icv_len
    # The plaintext is chunk | padding | pad length, a whole number of cipher blocks.
    size = room // cipher.block_size * cipher.block_size - 1
    if size < 1:
        raise ConfigError(f"fragment size {limit} leaves no room for data")
    return size


def limit_for(sa: IkeSa) -> int:
    limit = sa.ctx.fragment_size
    if NATT_PORT in (sa.local[1], sa.remote[1]):
        limit -= NON_ESP_MARKER
    return limit


def announced(sa: IkeSa) -> bool:
    """Whether we announce IKEV2_FRAGMENTATION_SUPPORTED (swanctl ``fragmentation``:
    anything but ``no``; a configuration without the key announces it)."""
    return getattr(sa.config, "fragmentation", "yes") != "no"


def sends_fragments(sa: IkeSa) -> bool:
    """Whether we fragment our own messages: ``fragmentation = accept`` only takes the
    peer's fragments (strongSwan's meaning), ``no`` neither sends nor takes them."""
    return getattr(sa.config, "fragmentation", "yes") in ("yes", "force")


def protect(sa: IkeSa, header: IkeHeader, payloads: list[Payload]) -> list[bytes]:
    """``payloads`` protected for the wire: one SK message, or SKF fragments (§2.5)."""
    data = sa.protect(header, payloads)
    limit = limit_for(sa)
    if (
        sa.ctx.fragment_size <= 0
        or len(data) <= limit
        or not sa.peer_fragmentation
        or not sends_fragments(sa)
        or header.exchange_type == ExchangeType.IKE_SA_INIT
        or sa.cipher_out is None
    ):
        return [data]
    cipher = sa.cipher_out
    first, chunks = split_for_fragments(payloads, chunk_size(cipher, limit))
    total = len(chunks)
    return [
        encrypt_fragment(header, chunk, n, total, cipher, first if n == 1 else PayloadType.NONE)
        for n, chunk in enumerate(chunks, 1)
    ]


@dataclass(slots=True)
class _Partial:
    message_id: int
    total: int
    chunks: dict[int, bytes] = field(default_factory=dict)
    first_payload: int = PayloadType.NONE
    size: int = 0


class Reassembler:
    """Puts one IKE SA's incoming fragments back together (§2.6)."""

    def __init__(self, max_fragments: int = MAX_FRAGMENTS, max_bytes: int = MAX_BYTES) -> None:
        self.max_fragments = max_fragments
        self.max_bytes = max_bytes
        self._partial: dict[bool, _Partial] = {}  # by "is a response"
        self.dropped = 0

    def add(self, message: IkeMessage, cipher: SkCipher) -> list[Payload] | None:
        """The whole message's payloads once the last fragment is in, else None.

        IntegrityError: a forged fragment (drop it silently). ParseError: the
        reassembled, authenticated plaintext is malformed.
        """
        skf = message.encrypted
        if not isinstance(skf, EncryptedFragmentPayload):
            raise ConfigError("not an SKF message")
        if skf.total_fragments > self.max_fragments:
            self.dropped += 1
            return None
        chunk = decrypt_fragment(message, cipher)  # authenticate before keeping (§2.6)
        header = message.header
        key = header.is_response
        partial = self._partial.get(key)
        if (
            partial is None
            or partial.message_id != header.message_id
            or skf.total_fragments > partial.total
        ):
            partial = _Partial(header.message_id, skf.total_fragments)
            self._partial[key] = partial
        elif skf.total_fragments < partial.total:
            self.dropped += 1  # §2.6.2: from an older fragmentation of the message
            return None
        if skf.fragment_number in partial.chunks:
            return None  # a duplicate
        if partial.size + len(chunk) > self.max_bytes:
            del self._partial[key]
            self.dropped += 1
            return None
        partial.chunks[skf.fragment_number] = chunk
        partial.size += len(chunk)
        if skf.fragment_number == 1:
            partial.first_payload = skf.first_payload
        if len(partial.chunks) < partial.total:
            return None
        del self._partial[key]
        plaintext = b"".join(partial.chunks[n] for n in range(1, partial.total + 1))
        return parse_inner(partial.first_payload, plaintext)

    def forget(self) -> None:
        self._partial.clear()
