"""The task manager on its own: message IDs, window 1, retransmissions, cached answers,
error notifications and the IKE SA state table (RFC 7296 §2.1-§2.4, §2.21)."""

from __future__ import annotations

import pytest
from ike_fixtures import GW_A, GW_B

from pyipsec.engine.processor import Engine
from pyipsec.errors import ConfigError
from pyipsec.ike.proposals import parse_proposal
from pyipsec.ike.v2.constants import ExchangeType, NotifyType, ProtocolId
from pyipsec.ike.v2.events import IkeSaDeleted
from pyipsec.ike.v2.ike_sa import Context, IkeSa, IkeSaState, NotifyError, new_spi
from pyipsec.ike.v2.message import IkeHeader, parse_message
from pyipsec.ike.v2.payloads import NoncePayload, NotifyPayload, Payload, UnknownPayload
from pyipsec.ike.v2.sk import encrypt_message
from pyipsec.ike.v2.task_manager import RetransmitSettings, Status, Task, TaskManager


class Probe(Task):
    """An INFORMATIONAL task that records what it was asked to do."""

    exchange = ExchangeType.INFORMATIONAL

    def __init__(
        self,
        sa: IkeSa,
        initiator: bool,
        tag: bytes = b"p" * 16,
        status: Status = Status.DONE,
        refuse: NotifyError | None = None,
    ) -> None:
        super().__init__(sa, initiator)
        self.tag, self.status, self.refuse = tag, status, refuse
        self.calls: list[str] = []

    @property
    def name(self) -> str:
        return "probe"

    def build_request(self, out: list[Payload], now: float) -> None:
        self.calls.append("build_request")
        out.append(NoncePayload(self.tag))

    def process_response(self, header: IkeHeader, payloads: list[Payload], now: float) -> Status:
        self.calls.append("process_response")
        self.got = payloads
        return self.status

    def process_request(self, header: IkeHeader, payloads: list[Payload], now: float) -> None:
        self.calls.append("process_request")
        if self.refuse is not None:
            raise self.refuse

    def build_response(self, out: list[Payload], now: float) -> Status:
        self.calls.append("build_response")
        out.append(NoncePayload(b"r" * 16))
        return self.status


def established_pair(
    settings: RetransmitSettings | None = None,
    responder: Probe | None = None,
) -> tuple[TaskManager, TaskManager, list[Probe]]:
    """Two IKE SAs sharing keys, as after IKE_SA_INIT/IKE_AUTH, with their managers."""
    made: list[Probe] = []

    def factory(sa: IkeSa, header: IkeHeader, payloads: list[Payload]) -> list[Task]:
        probe = responder if responder is not None else Probe(sa, False)
        probe.sa = sa
        made.append(probe)
        return [probe]

    ctx_a, ctx_b = Context(Engine([GW_A])), Context(Engine([GW_B]))
    a = IkeSa(ctx_a, initiator=True, local=(GW_A, 500), remote=(GW_B, 500))
    b = IkeSa(ctx_b, initiator=False, local=(GW_B, 500), remote=(GW_A, 500), spi_i=a.spi_i)
    a.spi_r = b.spi_r
    for sa in (a, b):
        sa.proposal = parse_proposal("aes128gcm16-prfsha256-x25519", ProtocolId.IKE)[0]
        sa.nonce_i, sa.nonce_r = b"i" * 32, b"r" * 32
        sa.derive_keys(b"g" * 32)
        sa.set_state(IkeSaState.CONNECTING)
        sa.set_state(IkeSaState.ESTABLISHED)
        sa.mid_out = sa.mid_in = 1
    return TaskManager(a, factory, settings), TaskManager(b, factory, settings), made


def wire(src: TaskManager) -> list[bytes]:
    out = [d.data for d in src.sa.ctx.outbox]
    src.sa.ctx.outbox.clear()
    return out


def deliver(dst: TaskManager, data: bytes, now: float = 0.0) -> None:
    dst.process_message(parse_message(data), now)


def test_one_request_in_flight_and_message_ids_count_up() -> None:
    a, b, _ = established_pair()
    first, second = Probe(a.sa, True, b"1" * 16), Probe(a.sa, True, b"2" * 16)
    a.queue(first)
    a.queue(second)
    a.initiate(0.0)
    (req,) = wire(a)
    assert parse_message(req).header.message_id == 1 and second.calls == []
    a.initiate(0.0)
    assert wire(a) == []  # window 1 (§2.3): the second waits
    deliver(b, req)
    (resp,) = wire(b)
    assert parse_message(resp).header.is_response and b.sa.mid_in == 2
    deliver(a, resp)
    assert first.calls == ["build_request", "process_response"]
    (req2,) = wire(a)
    assert parse_message(req2).header.message_id == 2 and second.calls == ["build_request"]
    assert a.sa.mid_out == 2


def test_response_with_wrong_id_or_exchange_is_ignored() -> None:
    a, b, _ = established_pair()
    task = Probe(a.sa, True)
    a.queue(task)
    a.initiate(0.0)
    (req,) = wire(a)
    deliver(b, req)
    (resp,) = wire(b)
    hdr = b.sa.header(ExchangeType.INFORMATIONAL, 5, response=True)
    deliver(a, b.sa.protect(hdr, [NoncePayload(b"x" * 16)]))
    hdr = b.sa.header(ExchangeType.CREATE_CHILD_SA, 1, response=True)
    deliver(a, b.sa.protect(hdr, [NoncePayload(b"x" * 16)]))
    assert task.calls == ["build_request"] and a.in_flight is not None
    deliver(a, resp)
    assert task.calls == ["build_request", "process_response"] and a.in_flight is None


def test_default_backoff_matches_strongswan() -> None:
    s = RetransmitSettings()
    assert (s.timeout, s.base, s.tries) == (4.0, 1.8, 5)
    assert [round(s.delay(n), 4) for n in range(3)] == [4.0, 7.2, 12.96]


def test_retransmits_then_gives_up_with_event() -> None:
    a, _, _ = established_pair(RetransmitSettings(timeout=4.0, base=1.8, tries=5))
    a.queue(Probe(a.sa, True))
    a.initiate(0.0)
    (req,) = wire(a)
    now, times = 0.0, []
    for n in range(5):
        now += 4.0 * 1.8**n
        assert a.get_timer() == pytest.approx(now)
        a.handle_timer(now)
        assert wire(a) == [req]
        times.append(round(now, 3))
    assert times == [4.0, 11.2, 24.16, 47.488, 89.478]
    now += 4.0 * 1.8**5
    a.handle_timer(now - 0.01)
    assert a.sa.state is IkeSaState.ESTABLISHED
    a.handle_timer(now)
    assert a.sa.state is IkeSaState.DESTROYED and wire(a) == []
    (ev,) = a.sa.ctx.events
    assert isinstance(ev, IkeSaDeleted) and ev.reason == "timeout"


def test_duplicate_request_answered_from_cache_once_processed() -> None:
    a, b, made = established_pair()
    a.queue(Probe(a.sa, True))
    a.initiate(0.0)
    (req,) = wire(a)
    deliver(b, req)
    (resp,) = wire(b)
    deliver(b, req)
    assert wire(b) == [resp] and len(made) == 1 and b.retransmits_answered == 1
    # Another message with the old ID but other bytes is no retransmission: dropped.
    hdr = a.sa.header(ExchangeType.INFORMATIONAL, 1, response=False)
    deliver(b, a.sa.protect(hdr, [NoncePayload(b"z" * 16)]))
    assert wire(b) == [] and len(made) == 1


def test_request_outside_the_window_is_dropped() -> None:
    a, b, made = established_pair()
    hdr = a.sa.header(ExchangeType.INFORMATIONAL, 3, response=False)
    deliver(b, a.sa.protect(hdr, []))
    assert wire(b) == [] and made == [] and b.sa.mid_in == 1


def test_forged_request_is_dropped_silently() -> None:
    a, b, made = established_pair()
    hdr = a.sa.header(ExchangeType.INFORMATIONAL, 1, response=False)
    data = bytearray(a.sa.protect(hdr, [NoncePayload(b"q" * 16)]))
    data[-3] ^= 0x40
    deliver(b, bytes(data))
    assert wire(b) == [] and made == [] and b.sa.mid_in == 1


def test_unknown_critical_payload_is_answered_with_its_type() -> None:
    a, b, made = established_pair()
    hdr = a.sa.header(ExchangeType.INFORMATIONAL, 1, response=False)
    if a.sa.cipher_out is None:
        raise AssertionError
    data = encrypt_message(hdr, [UnknownPayload(200, b"??", critical=True)], a.sa.cipher_out)
    deliver(b, data)
    (resp,) = wire(b)
    (note,) = a.sa.unprotect(parse_message(resp))
    assert isinstance(note, NotifyPayload)
    assert note.notify_type == NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD and note.data == bytes([200])
    assert made == [] and b.sa.mid_in == 2 and b.sa.state is IkeSaState.ESTABLISHED


def test_notify_error_answers_and_fatal_one_destroys() -> None:
    refuse = NotifyError(NotifyType.TEMPORARY_FAILURE)
    a, b, _ = established_pair(responder=Probe(None, False, refuse=refuse))  # type: ignore[arg-type]
    task = Probe(a.sa, True)
    a.queue(task)
    a.initiate(0.0)
    deliver(b, wire(a)[0])
    (resp,) = wire(b)
    deliver(a, resp)
    (note,) = task.got
    assert isinstance(note, NotifyPayload) and note.notify_type == NotifyType.TEMPORARY_FAILURE
    assert b.sa.state is IkeSaState.ESTABLISHED
    fatal = NotifyError(NotifyType.AUTHENTICATION_FAILED, fatal=True)
    a, b, _ = established_pair(responder=Probe(None, False, refuse=fatal))  # type: ignore[arg-type]
    a.queue(Probe(a.sa, True))
    a.initiate(0.0)
    deliver(b, wire(a)[0])
    assert len(wire(b)) == 1 and b.sa.state is IkeSaState.DESTROYED


def test_failed_task_destroys_the_ike_sa_with_its_reason() -> None:
    a, b, _ = established_pair()
    task = Probe(a.sa, True, status=Status.FAILED)
    task.fail_reason, task.fail_notify = "auth-failed", NotifyType.AUTHENTICATION_FAILED
    a.queue(task)
    a.queue(Probe(a.sa, True))
    a.initiate(0.0)
    deliver(b, wire(a)[0])
    deliver(a, wire(b)[0])
    assert a.sa.state is IkeSaState.DESTROYED and wire(a) == [] and not a.queued
    (ev,) = a.sa.ctx.events
    assert isinstance(ev, IkeSaDeleted) and ev.notify == NotifyType.AUTHENTICATION_FAILED


def test_state_table_refuses_moves_it_does_not_list() -> None:
    sa = IkeSa(Context(Engine()), initiator=True, local=(GW_A, 500), remote=(GW_B, 500))
    with pytest.raises(ConfigError):
        sa.set_state(IkeSaState.ESTABLISHED)  # CREATED -> ESTABLISHED skips IKE_SA_INIT
    sa.set_state(IkeSaState.CONNECTING)
    sa.destroy("deleted")
    with pytest.raises(ConfigError):
        sa.set_state(IkeSaState.CONNECTING)
    assert any(new_spi()) and len(new_spi()) == 8
