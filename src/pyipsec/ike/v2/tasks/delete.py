"""INFORMATIONAL deletes (RFC 7296 §1.4.1) and the responder side of INFORMATIONAL.

Deleting a CHILD SA:  HDR, SK {D(ESP, our inbound SPIs)}  -->
                      <--  HDR, SK {D(ESP, the peer's inbound SPIs of the same pairs)}
Deleting the IKE SA:  HDR, SK {D(IKE)}  -->  <--  HDR, SK {}

The responder answers a CHILD SA delete with the SPIs of its half of each pair, even for
a pair it is deleting itself at the same time (the crossed deletes of §1.4.1), then
removes both halves. An IKE SA delete is answered with an empty message and the IKE SA
is gone with all its CHILD SAs. An empty request is a liveness check (§1.4).
"""

from __future__ import annotations

import struct

from pyipsec.ike.v2.constants import ExchangeType, ProtocolId
from pyipsec.ike.v2.ike_sa import ChildSa, ChildSaState, IkeSa, IkeSaState
from pyipsec.ike.v2.message import IkeHeader
from pyipsec.ike.v2.payloads import DeletePayload, Payload
from pyipsec.ike.v2.task_manager import Status, Task

_SPI = struct.Struct("!I")


class DeleteChild(Task):
    """We delete one CHILD SA."""

    exchange = ExchangeType.INFORMATIONAL

    def __init__(self, sa: IkeSa, child: ChildSa) -> None:
        super().__init__(sa, True)
        self.child = child

    @property
    def name(self) -> str:
        return "child_delete"

    def build_request(self, out: list[Payload], now: float) -> None:
        if self.child.state is ChildSaState.INSTALLED:
            self.child.set_state(ChildSaState.DELETING)
        out.append(DeletePayload(ProtocolId.ESP, [_SPI.pack(self.child.spi_in)], 4))

    def process_response(self, header: IkeHeader, payloads: list[Payload], now: float) -> Status:
        # Whatever the peer says, our half is gone; its answer names its half (§1.4.1).
        if self.child.state is not ChildSaState.DELETED:
            self.sa.remove_child(self.child, "deleted")
        return Status.DONE

    def abandoned(self, now: float) -> None:
        if self.child.state is not ChildSaState.DELETED:
            self.sa.remove_child(self.child, "deleted")


class DeleteIke(Task):
    """We delete the IKE SA (and with it every CHILD SA, §1.4.1)."""

    exchange = ExchangeType.INFORMATIONAL

    def __init__(self, sa: IkeSa) -> None:
        super().__init__(sa, True)

    @property
    def name(self) -> str:
        return "ike_delete"

    def build_request(self, out: list[Payload], now: float) -> None:
        if self.sa.state is IkeSaState.ESTABLISHED:
            self.sa.set_state(IkeSaState.DELETING)
        out.append(DeletePayload(ProtocolId.IKE, [], 0))

    def process_response(self, header: IkeHeader, payloads: list[Payload], now: float) -> Status:
        self.sa.destroy("deleted")
        return Status.DONE


class Informational(Task):
    """The responder to any INFORMATIONAL request: deletes, notifies, liveness checks."""

    exchange = ExchangeType.INFORMATIONAL

    def __init__(self, sa: IkeSa) -> None:
        super().__init__(sa, False)
        self.delete_ike = False
        self.children: list[ChildSa] = []

    @property
    def name(self) -> str:
        return "informational"

    def process_request(self, header: IkeHeader, payloads: list[Payload], now: float) -> None:
        by_out = {c.spi_out: c for c in self.sa.children.values()}
        for p in payloads:
            if not isinstance(p, DeletePayload):
                continue
            if p.protocol_id == ProtocolId.IKE:
                self.delete_ike = True
            elif p.protocol_id == ProtocolId.ESP and p.spi_size == 4:
                for spi in p.spis:
                    child = by_out.get(_SPI.unpack(spi)[0])
                    if child is not None and child not in self.children:
                        self.children.append(child)
            # §3.11: SPIs we do not know, and AH, are ignored.

    def build_response(self, out: list[Payload], now: float) -> Status:
        if self.delete_ike:
            # §1.4.1: the answer is empty; the IKE SA ends once it is sent.
            self.fail_reason = "peer-deleted"
            return Status.FAILED
        if self.children:
            out.append(
                DeletePayload(ProtocolId.ESP, [_SPI.pack(c.spi_in) for c in self.children], 4)
            )
            for child in self.children:
                if child.state is not ChildSaState.DELETED:
                    self.sa.remove_child(child, "peer-deleted")
        return Status.DONE
