"""IKE_SA_INIT (RFC 7296 §1.2): SA, KE, nonces, NAT detection, COOKIE and INVALID_KE.

Initiator:  HDR, [N(COOKIE),] SAi1, KEi, Ni, N(NAT_D_SRC), N(NAT_D_DST),
            N(IKEV2_FRAGMENTATION_SUPPORTED), N(SIGNATURE_HASH_ALGORITHMS)  -->
Responder:  <--  HDR, SAr1, KEr, Nr, N(NAT_D_SRC), N(NAT_D_DST), N(...)

Refusals keep no state on the responder: NO_PROPOSAL_CHOSEN, INVALID_KE_PAYLOAD (with
the group it wants, §1.3) and COOKIE (§2.6, sent by the manager before any state
exists). The initiator answers INVALID_KE_PAYLOAD and COOKIE by sending the request
again with message ID 0.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import os
import struct

from cryptography.hazmat.primitives import hashes

from pyipsec.crypto import dh
from pyipsec.errors import ConfigError, ParseError
from pyipsec.ike.proposals import Proposal, to_payload
from pyipsec.ike.v2 import fragments
from pyipsec.ike.v2.constants import DhId, ExchangeType, NotifyType, ProtocolId, TransformType
from pyipsec.ike.v2.events import Endpoint
from pyipsec.ike.v2.ike_sa import IkeSa, IkeSaState, NotifyError
from pyipsec.ike.v2.message import IkeHeader
from pyipsec.ike.v2.payloads import (
    KePayload,
    NoncePayload,
    NotifyPayload,
    Payload,
    SaPayload,
)
from pyipsec.ike.v2.task_manager import Status, Task
from pyipsec.ike.v2.tasks import selection

_U16 = struct.Struct("!H")
# RFC 7427 §4: SHA2-256, SHA2-384, SHA2-512 and "Identity" (for Ed25519/Ed448).
SIGNATURE_HASHES = (2, 3, 4, 5)
MAX_RETRIES = 5  # COOKIE / INVALID_KE round trips before giving up


@functools.lru_cache(maxsize=1024)
def _packed(address: str) -> bytes:
    # Addresses repeat across IKE SAs; parsing them is a visible cost per handshake.
    return ipaddress.ip_address(address).packed


def nat_hash(spi_i: bytes, spi_r: bytes, endpoint: Endpoint) -> bytes:
    """§2.23: SHA-1(SPIi | SPIr | IP | Port); SHA-1 is what the RFC fixes here."""
    digest = hashes.Hash(hashes.SHA1())  # noqa: S303 - mandated by RFC 7296 §2.23
    digest.update(spi_i + spi_r)
    digest.update(_packed(endpoint[0]) + _U16.pack(endpoint[1]))
    return digest.finalize()


def forced_encap(sa: IkeSa) -> bool:
    """Whether the connection asks for ESP in UDP even without a NAT (``encap``)."""
    return getattr(sa.config, "encap", False) is True


def _notifies(payloads: list[Payload]) -> dict[int, NotifyPayload]:
    out: dict[int, NotifyPayload] = {}
    for p in payloads:
        if isinstance(p, NotifyPayload):
            out.setdefault(p.notify_type, p)
    return out


def _error_notify(payloads: list[Payload]) -> NotifyPayload | None:
    for p in payloads:
        if isinstance(p, NotifyPayload) and p.notify_type < NotifyType.INITIAL_CONTACT:
            return p
    return None


def _one(payloads: list[Payload], cls: type[Payload]) -> Payload | None:
    found = [p for p in payloads if isinstance(p, cls)]
    return found[0] if len(found) == 1 else None


class CookieJar:
    """§2.6 cookies: <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>).

    ``rotate()`` makes a new secret; cookies made with the previous one stay valid, so a
    rotation does not fail the exchanges under way.
    """

    def __init__(self) -> None:
        self._version = 0
        self._secrets = {0: os.urandom(32)}

    def rotate(self) -> None:
        self._version = (self._version + 1) & 0xFFFFFFFF
        self._secrets = {
            self._version: os.urandom(32),
            **{v: s for v, s in self._secrets.items() if v == self._version - 1},
        }

    def _digest(self, version: int, nonce: bytes, address: str, spi_i: bytes) -> bytes:
        digest = hashes.Hash(hashes.SHA256())
        digest.update(nonce + ipaddress.ip_address(address).packed + spi_i)
        digest.update(self._secrets[version])
        return version.to_bytes(4, "big") + digest.finalize()

    def make(self, nonce: bytes, address: str, spi_i: bytes) -> bytes:
        return self._digest(self._version, nonce, address, spi_i)

    def check(self, cookie: bytes, nonce: bytes, address: str, spi_i: bytes) -> bool:
        version = int.from_bytes(cookie[:4], "big")
        if len(cookie) != 36 or version not in self._secrets:
            return False
        return hmac.compare_digest(cookie, self._digest(version, nonce, address, spi_i))


def request_nonce(payloads: list[Payload]) -> bytes | None:
    nonce = _one(payloads, NoncePayload)
    return nonce.data if isinstance(nonce, NoncePayload) else None


class IkeInit(Task):
    exchange = ExchangeType.IKE_SA_INIT

    def __init__(self, sa: IkeSa, initiator: bool) -> None:
        super().__init__(sa, initiator)
        self.nonce = os.urandom(sa.ctx.nonce_len)
        self.cookie = b""
        self.retries = 0
        self.offered: tuple[Proposal, ...] = ()
        self.ke: dh.KeyExchange | None = None
        self._answer_number = 1
        if initiator:
            if sa.config is None:
                raise ConfigError("an initiating IKE SA needs a configuration")
            offered = [p for p in map(selection.supported, sa.config.proposals) if p]
            if not offered:
                raise ConfigError(f"{sa.name}: no IKE proposal we can run")
            self.offered = tuple(offered)
            self.ke = dh.generate(selection.dh_group(self.offered[0]))

    @property
    def name(self) -> str:
        return "ike_init"

    # -- shared ---------------------------------------------------------------------

    def _common(self, out: list[Payload]) -> None:
        sa = self.sa
        # §2.23: what we think our source and the peer's address are; in a request
        # the responder's SPI is still zero. A connection with ``encap`` forces UDP
        # encapsulation by sending a source hash that cannot match, so both sides
        # believe we are behind a NAT (as strongSwan's ``encap = yes`` does).
        source = os.urandom(20) if forced_encap(sa) else nat_hash(sa.spi_i, sa.spi_r, sa.local)
        out.append(NotifyPayload(NotifyType.NAT_DETECTION_SOURCE_IP, source))
        out.append(
            NotifyPayload(
                NotifyType.NAT_DETECTION_DESTINATION_IP, nat_hash(sa.spi_i, sa.spi_r, sa.remote)
            )
        )
        if fragments.announced(sa):  # RFC 7383 §2.3 (swanctl fragmentation = no: not)
            out.append(NotifyPayload(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED))
        out.append(
            NotifyPayload(
                NotifyType.SIGNATURE_HASH_ALGORITHMS,
                b"".join(_U16.pack(h) for h in SIGNATURE_HASHES),
            )
        )

    def _peer_notifies(self, header: IkeHeader, payloads: list[Payload]) -> None:
        sa = self.sa
        notes = _notifies(payloads)
        src = [
            p.data
            for p in payloads
            if isinstance(p, NotifyPayload) and p.notify_type == NotifyType.NAT_DETECTION_SOURCE_IP
        ]
        dst = notes.get(NotifyType.NAT_DETECTION_DESTINATION_IP)
        # §2.23: hashes over the SPIs of the message that carried them.
        if src:
            expect = nat_hash(header.spi_i, header.spi_r, sa.remote)
            sa.nat_remote = not any(hmac.compare_digest(expect, s) for s in src)
        if dst is not None:
            expect = nat_hash(header.spi_i, header.spi_r, sa.local)
            sa.nat_local = not hmac.compare_digest(expect, dst.data)
        if forced_encap(sa):
            sa.nat_local = True
        sa.peer_fragmentation = NotifyType.IKEV2_FRAGMENTATION_SUPPORTED in notes
        sig = notes.get(NotifyType.SIGNATURE_HASH_ALGORITHMS)
        if sig is not None and len(sig.data) % 2 == 0:
            sa.peer_sig_hashes = tuple(
                _U16.unpack_from(sig.data, i)[0] for i in range(0, len(sig.data), 2)
            )

    # -- initiator ------------------------------------------------------------------

    def build_request(self, out: list[Payload], now: float) -> None:
        sa = self.sa
        if sa.state is IkeSaState.CREATED:
            sa.set_state(IkeSaState.CONNECTING)
        if self.ke is None:
            raise ConfigError("no key exchange")
        if self.cookie:
            # §2.6: the cookie is the first payload of the repeated request.
            out.append(NotifyPayload(NotifyType.COOKIE, self.cookie))
        out.append(SaPayload([to_payload(p, i + 1) for i, p in enumerate(self.offered)]))
        out.append(KePayload(self.ke.group, self.ke.public_bytes()))
        out.append(NoncePayload(self.nonce))
        self._common(out)

    def process_response(self, header: IkeHeader, payloads: list[Payload], now: float) -> Status:
        sa = self.sa
        notes = _notifies(payloads)
        cookie = notes.get(NotifyType.COOKIE)
        invalid_ke = notes.get(NotifyType.INVALID_KE_PAYLOAD)
        if (cookie is not None or invalid_ke is not None) and self.retries >= MAX_RETRIES:
            return self._failed("failed", NotifyType.INVALID_KE_PAYLOAD)
        if cookie is not None:
            if not 1 <= len(cookie.data) <= 64:  # §2.6: 1 to 64 octets
                return self._failed("failed", NotifyType.COOKIE)
            self.cookie = cookie.data
            self.retries += 1
            return Status.RETRY
        if invalid_ke is not None:
            # §1.3: retry with the group the responder asks for, if we offered it.
            group = _U16.unpack(invalid_ke.data)[0] if len(invalid_ke.data) == 2 else -1
            offered = {t.id for p in self.offered for t in p.of_type(TransformType.DH)} - {
                DhId.NONE
            }
            if group not in offered or self.ke is None or group == self.ke.group:
                return self._failed("no-proposal", NotifyType.INVALID_KE_PAYLOAD)
            self.ke = dh.generate(group)
            self.retries += 1
            return Status.RETRY
        error = _error_notify(payloads)
        if error is not None:
            reason = (
                "no-proposal" if error.notify_type == NotifyType.NO_PROPOSAL_CHOSEN else "failed"
            )
            return self._failed(reason, error.notify_type)
        sa_payload = _one(payloads, SaPayload)
        ke = _one(payloads, KePayload)
        nonce = _one(payloads, NoncePayload)
        if not (
            isinstance(sa_payload, SaPayload)
            and isinstance(ke, KePayload)
            and isinstance(nonce, NoncePayload)
        ):
            return self._failed("failed", NotifyType.INVALID_SYNTAX)
        chosen = selection.check_answer(self.offered, sa_payload)
        if chosen is None or self.ke is None or selection.dh_group(chosen) != ke.group:
            return self._failed("no-proposal", NotifyType.NO_PROPOSAL_CHOSEN)
        if ke.group != self.ke.group or not any(header.spi_r):
            return self._failed("failed", NotifyType.INVALID_SYNTAX)
        try:
            g_ir = self.ke.shared_secret(ke.data)
        except (ParseError, ConfigError):
            return self._failed("failed", NotifyType.INVALID_SYNTAX)
        sa.spi_r = header.spi_r
        sa.proposal = chosen
        sa.nonce_i, sa.nonce_r = self.nonce, nonce.data
        sa.derive_keys(g_ir)
        self.ke = None
        self._peer_notifies(header, payloads)
        if sa.nat and sa.remote[1] == 500:
            # §2.23: with a NAT in between, move to port 4500 for everything after.
            sa.local = (sa.local[0], 4500 if sa.local[1] == 500 else sa.local[1])
            sa.remote = (sa.remote[0], 4500)
        return Status.DONE

    def _failed(self, reason: str, notify: int) -> Status:
        self.fail_reason, self.fail_notify = reason, notify
        return Status.FAILED

    # -- responder --------------------------------------------------------------------

    def process_request(self, header: IkeHeader, payloads: list[Payload], now: float) -> None:
        sa = self.sa
        if sa.config is None:
            raise NotifyError(NotifyType.NO_PROPOSAL_CHOSEN, fatal=True)
        sa_payload = _one(payloads, SaPayload)
        ke = _one(payloads, KePayload)
        nonce = _one(payloads, NoncePayload)
        if not (
            isinstance(sa_payload, SaPayload)
            and isinstance(ke, KePayload)
            and isinstance(nonce, NoncePayload)
        ):
            raise NotifyError(NotifyType.INVALID_SYNTAX, fatal=True)
        picked = selection.select(sa.config.proposals, sa_payload.proposals, ProtocolId.IKE)
        if picked is None:
            raise NotifyError(NotifyType.NO_PROPOSAL_CHOSEN, fatal=True)
        chosen, theirs = picked
        group = selection.dh_group(chosen)
        if ke.group != group:
            # §1.3: tell the initiator which group we picked; keep no state.
            raise NotifyError(NotifyType.INVALID_KE_PAYLOAD, _U16.pack(group), fatal=True)
        mine = dh.generate(group)
        try:
            g_ir = mine.shared_secret(ke.data)
        except (ParseError, ConfigError):
            raise NotifyError(NotifyType.INVALID_SYNTAX, fatal=True) from None
        self.ke = mine
        sa.proposal = chosen
        self._answer_number = theirs.number
        sa.nonce_i, sa.nonce_r = nonce.data, self.nonce
        sa.derive_keys(g_ir)
        self._peer_notifies(header, payloads)

    def build_response(self, out: list[Payload], now: float) -> Status:
        sa = self.sa
        if sa.proposal is None or self.ke is None:
            raise NotifyError(NotifyType.NO_PROPOSAL_CHOSEN, fatal=True)
        out.append(SaPayload([to_payload(sa.proposal, self._answer_number)]))
        out.append(KePayload(self.ke.group, self.ke.public_bytes()))
        out.append(NoncePayload(self.nonce))
        self._common(out)
        self.ke = None
        sa.set_state(IkeSaState.CONNECTING)
        return Status.DONE
