"""Liveness check (RFC 7296 §1.4, §2.4): an empty INFORMATIONAL request.

Any authenticated answer proves the peer alive; no answer after the retransmissions
destroys the IKE SA (the task manager's timeout). The responder side is
``delete.Informational``, which answers an empty request with an empty response.
"""

from __future__ import annotations

from pyipsec.ike.v2.constants import ExchangeType
from pyipsec.ike.v2.ike_sa import IkeSa
from pyipsec.ike.v2.message import IkeHeader
from pyipsec.ike.v2.payloads import Payload
from pyipsec.ike.v2.task_manager import Status, Task


class Dpd(Task):
    exchange = ExchangeType.INFORMATIONAL

    def __init__(self, sa: IkeSa) -> None:
        super().__init__(sa, True)
        self.answered_at: float | None = None

    @property
    def name(self) -> str:
        return "ike_dpd"

    def build_request(self, out: list[Payload], now: float) -> None:
        return  # nothing to say: the exchange itself is the question

    def process_response(self, header: IkeHeader, payloads: list[Payload], now: float) -> Status:
        self.answered_at = now
        return Status.DONE
