"""Runs the tasks of one IKE SA: one exchange per task, one request in flight.

The design is strongSwan's task manager, in Python: a task knows one exchange
(IKE_SA_INIT, IKE_AUTH, ...) from both sides. As initiator it *builds* the request and
*processes* the response; as responder it *processes* the request and *builds* the
response. Tasks wait in ``queued`` until the exchange before them is over, then become
``active`` (ours) — several at once when they share an exchange, as IKE_AUTH carries
both the authentication and the first CHILD SA. Tasks the peer starts are ``passive``:
made for each request by the ``responder_tasks`` factory and gone with the response.

Message IDs (RFC 7296 §2.2): our requests count ``sa.mid_out`` up, the peer's
``sa.mid_in``; with a window of one (§2.3) a request with the previous ID is a
retransmission and gets the cached response again (§2.1), any other unexpected ID is
dropped. Our own request is retransmitted with exponential back-off (strongSwan's
defaults: 4 s, factor 1.8, 5 retransmissions); when the last one goes unanswered the
IKE SA is destroyed (§2.4).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from pyipsec.errors import ParseError
from pyipsec.ike.v2 import fragments
from pyipsec.ike.v2.constants import ExchangeType, NotifyType
from pyipsec.ike.v2.ike_sa import Datagram, IkeSa, IkeSaState, NotifyError
from pyipsec.ike.v2.message import IkeHeader, IkeMessage, UnsupportedCriticalPayload, build_message
from pyipsec.ike.v2.payloads import EncryptedFragmentPayload, NotifyPayload, Payload
from pyipsec.ike.v2.sk import IntegrityError, decrypt_fragment

log = logging.getLogger(__name__)


class Status(Enum):
    """What a task says after handling a message."""

    DONE = "done"  # this exchange finished the task
    RETRY = "retry"  # send the request again, rebuilt (IKE_SA_INIT with COOKIE/new KE)
    FAILED = "failed"  # the IKE SA cannot go on: destroy it


class Task(ABC):
    """One exchange, seen from one side (``initiator`` True: we send the request)."""

    exchange: ExchangeType

    def __init__(self, sa: IkeSa, initiator: bool) -> None:
        self.sa = sa
        self.initiator = initiator
        # Set by a task that returns FAILED: why, for the IkeSaDeleted event.
        self.fail_reason = "failed"
        self.fail_notify = 0

    # Initiator side.
    def build_request(self, out: list[Payload], now: float) -> None:
        raise NotImplementedError

    def process_response(self, header: IkeHeader, payloads: list[Payload], now: float) -> Status:
        raise NotImplementedError

    # Responder side: NotifyError refuses the whole exchange.
    def process_request(self, header: IkeHeader, payloads: list[Payload], now: float) -> None:
        raise NotImplementedError

    def build_response(self, out: list[Payload], now: float) -> Status:
        raise NotImplementedError

    def abandoned(self, now: float) -> None:  # noqa: B027 - optional hook
        """The exchange will never complete (timeout, SA destroyed)."""

    @property
    @abstractmethod
    def name(self) -> str: ...


@dataclass(frozen=True, slots=True)
class RetransmitSettings:
    """§2.4: when to resend an unanswered request; strongSwan's defaults."""

    timeout: float = 4.0
    base: float = 1.8
    tries: int = 5  # retransmissions after the first send

    def delay(self, sent: int) -> float:
        """Seconds to wait after the ``sent``-th transmission (0 = the first)."""
        return self.timeout * self.base**sent


@dataclass(slots=True)
class _InFlight:
    message_id: int
    exchange: int
    data: bytes | list[bytes]  # one datagram, or its SKF fragments (RFC 7383)
    sent: int  # retransmissions so far
    deadline: float


ResponderFactory = Callable[[IkeSa, IkeHeader, list[Payload]], list[Task]]


class TaskManager:
    """The queue of one IKE SA's tasks and its message-ID bookkeeping."""

    def __init__(
        self,
        sa: IkeSa,
        responder_tasks: ResponderFactory,
        settings: RetransmitSettings | None = None,
    ) -> None:
        self.sa = sa
        self.settings = settings or RetransmitSettings()
        self.responder_tasks = responder_tasks
        self.queued: deque[Task] = deque()
        self.active: list[Task] = []
        self.passive: list[Task] = []
        self.in_flight: _InFlight | None = None
        self._last_request = b""  # the peer's last request and our answer (§2.1)
        self._last_response: bytes | list[bytes] = b""
        self.reassembly = fragments.Reassembler()
        self.retransmits_sent = 0
        self.retransmits_answered = 0

    @property
    def busy(self) -> bool:
        return self.in_flight is not None or bool(self.queued)

    def queue(self, task: Task) -> None:
        self.queued.append(task)

    # -- initiating -------------------------------------------------------------

    def initiate(self, now: float) -> None:
        """Start the next queued exchange if none is in flight (window size 1, §2.3)."""
        if self.in_flight is not None or not self.queued:
            return
        if self.sa.state is IkeSaState.DESTROYED:
            self.queued.clear()
            return
        first = self.queued.popleft()
        self.active = [first]
        # IKE_AUTH carries the first CHILD SA along with the authentication (§1.2).
        while (
            first.exchange == ExchangeType.IKE_AUTH
            and self.queued
            and self.queued[0].exchange == ExchangeType.IKE_AUTH
        ):
            self.active.append(self.queued.popleft())
        self._send_request(now)

    def _send_request(self, now: float) -> None:
        exchange = self.active[0].exchange
        out: list[Payload] = []
        for task in self.active:
            task.build_request(out, now)
        header = self.sa.header(exchange, self.sa.mid_out, response=False)
        data: bytes | list[bytes]
        if exchange == ExchangeType.IKE_SA_INIT:
            data = self.sa.init_request = build_message(header, out)
        else:
            data = _one_or_all(fragments.protect(self.sa, header, out))
        self.in_flight = _InFlight(self.sa.mid_out, exchange, data, 0, now + self.settings.delay(0))
        self._send(data)

    def _send(self, data: bytes | list[bytes]) -> None:
        for packet in [data] if isinstance(data, bytes) else data:
            self.sa.ctx.outbox.append(Datagram(packet, self.sa.local, self.sa.remote))

    # -- timers -----------------------------------------------------------------

    def get_timer(self) -> float | None:
        return self.in_flight.deadline if self.in_flight is not None else None

    def handle_timer(self, now: float) -> None:
        flight = self.in_flight
        if flight is None or now < flight.deadline:
            return
        if flight.sent >= self.settings.tries:
            # §2.4: the peer is gone; everything negotiated with it goes too.
            log.info("%r: no answer to message %d, giving up", self.sa, flight.message_id)
            self.in_flight = None
            for task in self.active:
                task.abandoned(now)
            self.active = []
            self.sa.destroy("timeout")
            return
        flight.sent += 1
        self.retransmits_sent += 1
        flight.deadline = now + self.settings.delay(flight.sent)
        self._send(flight.data)

    # -- receiving ----------------------------------------------------------------

    def process_message(self, message: IkeMessage, now: float) -> None:
        """One parsed message of this IKE SA (the manager routed it here)."""
        if self.sa.state is IkeSaState.DESTROYED:
            return
        if isinstance(message.encrypted, EncryptedFragmentPayload):
            self._process_fragment(message, now)
        elif message.header.is_response:
            self._process_response(message, now)
        else:
            self._process_request(message, now)
        self.initiate(now)

    def _process_fragment(self, message: IkeMessage, now: float) -> None:
        """One SKF message (RFC 7383 §2.6): kept until the whole message is in."""
        header, cipher, skf = message.header, self.sa.cipher_in, message.encrypted
        if cipher is None or not isinstance(skf, EncryptedFragmentPayload):
            return
        if not header.is_response:
            if header.message_id == self.sa.mid_in - 1 and self._last_response:
                # RFC 7383 §2.6.1: of a retransmitted request, only fragment 1 (once
                # authenticated) makes us send our response again.
                if skf.fragment_number == 1:
                    try:
                        decrypt_fragment(message, cipher)
                    except (IntegrityError, ParseError):
                        return
                    self.retransmits_answered += 1
                    self._send(self._last_response)
                return
            if header.message_id != self.sa.mid_in:
                return
        elif self.in_flight is None or header.message_id != self.in_flight.message_id:
            return
        try:
            payloads = self.reassembly.add(message, cipher)
        except IntegrityError:
            return  # §2.21 / RFC 7383 §2.6: a forged fragment is dropped silently
        except ParseError:
            if header.is_response:
                self._fail(now, "failed", NotifyType.INVALID_SYNTAX)
            else:
                self._answer(header, [_notify(NotifyType.INVALID_SYNTAX)], message.raw)
            return
        if payloads is None:
            return
        if header.is_response:
            self._process_response(message, now, payloads)
        else:
            self._process_request(message, now, payloads)

    def _process_response(
        self, message: IkeMessage, now: float, opened: list[Payload] | None = None
    ) -> None:
        header = message.header
        flight = self.in_flight
        if flight is None or header.message_id != flight.message_id:
            return  # §2.3: not an answer to our outstanding request
        if header.exchange_type != flight.exchange:
            return
        if flight.exchange == ExchangeType.IKE_SA_INIT:
            payloads = message.payloads
            self.sa.init_response = message.raw
        elif opened is not None:
            payloads = opened  # reassembled from authenticated fragments
        else:
            if message.encrypted is None:
                # §2.21.4: an unprotected answer (INVALID_IKE_SPI...) is only a hint;
                # it must not end or advance an authenticated exchange.
                return
            try:
                payloads = self.sa.unprotect(message)
            except IntegrityError:
                return  # §2.21: forged or corrupted, drop silently and keep waiting
            except ParseError:
                # Authenticated but malformed: the peer is broken, the exchange cannot end.
                self._fail(now, "failed", NotifyType.INVALID_SYNTAX)
                return
        self.sa.last_heard = now
        self.in_flight = None
        retry = False
        for task in self.active:
            status = task.process_response(header, payloads, now)
            if status is Status.FAILED:
                self._fail(now, task.fail_reason, task.fail_notify)
                return
            retry = retry or status is Status.RETRY
        if retry:
            self._send_request(now)
            return
        self.sa.mid_out += 1
        self.active = []

    def _fail(self, now: float, reason: str, notify: int) -> None:
        self.in_flight = None
        for task in self.active:
            task.abandoned(now)
        self.active = []
        self.queued.clear()
        if self.sa.state is not IkeSaState.DESTROYED:
            self.sa.destroy(reason, notify)

    def _process_request(
        self, message: IkeMessage, now: float, opened: list[Payload] | None = None
    ) -> None:
        header = message.header
        if header.message_id == self.sa.mid_in - 1 and self._last_response:
            # §2.1: a retransmitted request gets the same response, and changes nothing.
            if message.raw == self._last_request:
                self.retransmits_answered += 1
                self._send(self._last_response)
            return
        if header.message_id != self.sa.mid_in:
            return  # §2.3: outside the window, drop
        exchange = header.exchange_type
        out: list[Payload]
        fatal = False
        reason = ""
        if exchange == ExchangeType.IKE_SA_INIT:
            payloads = message.payloads
            self.sa.init_request = message.raw
        elif opened is not None:
            payloads = opened  # reassembled from authenticated fragments
        else:
            if message.encrypted is None:
                return  # §2.21: nothing authenticated, nothing to answer
            try:
                payloads = self.sa.unprotect(message)
            except IntegrityError:
                return  # §2.21: silently
            except UnsupportedCriticalPayload as exc:
                # §2.5: name the refused payload type in one octet.
                self._answer(
                    header,
                    [_notify(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, bytes((exc.payload_type,)))],
                    message.raw,
                )
                return
            except ParseError:
                self._answer(header, [_notify(NotifyType.INVALID_SYNTAX)], message.raw)
                return
        self.sa.last_heard = now
        try:
            self.passive = self.responder_tasks(self.sa, header, payloads)
            for task in self.passive:
                task.process_request(header, payloads, now)
            out = []
            for task in self.passive:
                if task.build_response(out, now) is Status.FAILED:
                    fatal = True
                    reason = task.fail_reason
        except NotifyError as exc:
            out = [_notify(exc.notify_type, exc.data)]
            fatal = exc.fatal
            reason = ""
        self.passive = []
        # §1.3/§2.6: refusals of IKE_SA_INIT keep no state, so they name no SPIr.
        stateless = exchange == ExchangeType.IKE_SA_INIT and fatal
        self._answer(header, out, message.raw, stateless)
        if fatal and self.sa.state is not IkeSaState.DESTROYED:
            notify = out[0].notify_type if out and isinstance(out[0], NotifyPayload) else 0
            if not reason:
                reason = "auth-failed" if notify == NotifyType.AUTHENTICATION_FAILED else "failed"
            self.sa.destroy(reason, notify)

    def _answer(
        self, request: IkeHeader, out: list[Payload], raw_request: bytes, stateless: bool = False
    ) -> None:
        header = self.sa.header(request.exchange_type, request.message_id, response=True)
        if stateless:
            header.spi_r = bytes(8)
        data: bytes | list[bytes]
        if request.exchange_type == ExchangeType.IKE_SA_INIT:
            data = self.sa.init_response = build_message(header, out)
        else:
            data = _one_or_all(fragments.protect(self.sa, header, out))
        self._last_request = raw_request
        self._last_response = data
        self.sa.mid_in = request.message_id + 1
        self._send(data)


def _notify(notify_type: int, data: bytes = b"") -> NotifyPayload:
    return NotifyPayload(notify_type, data)


def _one_or_all(packets: list[bytes]) -> bytes | list[bytes]:
    return packets[0] if len(packets) == 1 else packets
