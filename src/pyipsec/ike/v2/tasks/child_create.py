"""CHILD SA creation (RFC 7296 §1.2, §1.3.1, §2.9, §2.17): in IKE_AUTH or CREATE_CHILD_SA.

Initiator:  [N(USE_TRANSPORT_MODE),] N(ESP_TFC_PADDING_NOT_SUPPORTED), SA, [Ni, [KEi,]]
            TSi, TSr  -->
Responder:  <--  [N(USE_TRANSPORT_MODE),] N(ESP_TFC_PADDING_NOT_SUPPORTED), SA, [Nr,
            [KEr,]] TSi, TSr        (or an error: NO_PROPOSAL_CHOSEN, TS_UNACCEPTABLE...)

The responder takes its first configured ESP proposal the peer also offers, narrows the
selectors to what its configuration allows (§2.9) and installs first. SPIs come from the
backend's GETSPI (inbound SA, completed with ``update_sa``); the outbound SA is added with
``add_sa``; ``in``/``out``/``fwd`` policies share the CHILD SA's reqid. In IKE_AUTH the
CHILD SA has no key exchange of its own (§1.2): DH transforms are left out and KEYMAT
comes from SK_d and the IKE SA's nonces; later ones use their own nonces and, with PFS,
a fresh g^ir (§2.17).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import os
import struct
from ipaddress import IPv4Address, IPv6Address

from pyipsec.crypto import dh
from pyipsec.engine.sad import SASpec
from pyipsec.engine.spd import PORT_PROTOCOLS, Policy, Selector, Template
from pyipsec.errors import ConfigError, KeyApiError, ParseError
from pyipsec.ike.lifetimes import child_lifetimes
from pyipsec.ike.proposals import Proposal, format_proposal, to_payload
from pyipsec.ike.traffic_selectors import (
    PORT_MAX,
    TrafficSelector,
    is_narrowed_from,
    narrow,
)
from pyipsec.ike.v2 import keymat, payloads
from pyipsec.ike.v2.constants import ExchangeType, NotifyType, ProtocolId
from pyipsec.ike.v2.events import ChildSaFailed, ChildSaInstalled
from pyipsec.ike.v2.ike_sa import ChildConfigLike, ChildSa, IkeSa, NotifyError
from pyipsec.ike.v2.message import IkeHeader
from pyipsec.ike.v2.payloads import (
    KePayload,
    NoncePayload,
    NotifyPayload,
    Payload,
    SaPayload,
    TsPayload,
)
from pyipsec.ike.v2.task_manager import Status, Task
from pyipsec.ike.v2.tasks import config as ike_config
from pyipsec.ike.v2.tasks import selection

log = logging.getLogger(__name__)
_U16 = struct.Struct("!H")
_SPI = struct.Struct("!I")
REPLAY_WINDOW = 32
POLICY_PRIORITY = 1000  # below trap/bypass policies a daemon may add by hand


def _ts_list(payload: TsPayload | None) -> list[TrafficSelector]:
    if payload is None:
        return []
    out: list[TrafficSelector] = []
    for sel in payload.selectors:
        if isinstance(sel, payloads.TrafficSelector):
            try:
                out.append(TrafficSelector.from_payload(sel))
            except ConfigError:
                continue  # an inconsistent selector narrows to nothing
    return out


def _ports(ts: TrafficSelector) -> tuple[int, int] | None:
    if ts.protocol not in PORT_PROTOCOLS or ts.is_opaque:
        return None
    if (ts.start_port, ts.end_port) == (0, PORT_MAX):
        return None
    return ts.start_port, ts.end_port


def _notify_set(found: list[Payload]) -> dict[int, NotifyPayload]:
    return {p.notify_type: p for p in found if isinstance(p, NotifyPayload)}


def _take(
    found: list[Payload], cls: type[Payload], responder: bool | None = None
) -> Payload | None:
    for p in found:
        if isinstance(p, cls) and (responder is None or getattr(p, "responder", None) == responder):
            return p
    return None


class ChildCreate(Task):
    """One CHILD SA; ``in_ike_auth`` for the first, which rides in IKE_AUTH."""

    def __init__(
        self,
        sa: IkeSa,
        initiator: bool,
        config: ChildConfigLike | None = None,
        *,
        in_ike_auth: bool = False,
        packet_ts: tuple[TrafficSelector, TrafficSelector] | None = None,
        reqid: int = 0,
        replaces: ChildSa | None = None,
    ) -> None:
        super().__init__(sa, initiator)
        self.exchange = ExchangeType.IKE_AUTH if in_ike_auth else ExchangeType.CREATE_CHILD_SA
        self.config = config
        self.in_ike_auth = in_ike_auth
        self.packet_ts = packet_ts  # §2.9: the triggering packet's selectors go first
        self.nonce = os.urandom(sa.ctx.nonce_len)
        self.ke: dh.KeyExchange | None = None
        self.reqid = reqid  # a trap policy's reqid, so its template finds the new SAs
        self.replaces = replaces  # a CHILD SA this one takes over from (same reqid)
        self.spi_in = 0
        self.offered: tuple[Proposal, ...] = ()
        self.error = 0
        self.skip = False
        # Responder results, carried from process_request to build_response.
        self.chosen: Proposal | None = None
        self.answer_number = 1
        self.spi_out = 0
        self.transport = False
        self.local_ts: tuple[TrafficSelector, ...] = ()
        self.remote_ts: tuple[TrafficSelector, ...] = ()
        self.peer_nonce = b""
        self.g_ir: bytes | None = None
        # A rekey responder keeps the new outbound SA back (make before break, §2.8).
        self.defer_outbound = False
        self.child: ChildSa | None = None  # the pair this task installed

    @property
    def name(self) -> str:
        return "child_create"

    def _proposals(self, config: ChildConfigLike) -> tuple[Proposal, ...]:
        usable = [p for p in map(selection.supported, config.esp_proposals) if p]
        if self.in_ike_auth:
            usable = [selection.without_dh(p) for p in usable]
        return tuple(usable)

    def _resolve(self, config: ChildConfigLike) -> tuple[list[TrafficSelector], ...]:
        # ``dynamic`` is an endpoint address, or a virtual IP (tasks/config.py, §2.19).
        local = ike_config.local_selectors(self.sa, config.local_ts)
        remote = ike_config.remote_selectors(self.sa, config.remote_ts)
        return local, remote

    def _fail(self, notify: int) -> None:
        name = self.config.name if self.config is not None else "?"
        self.sa.ctx.emit(ChildSaFailed(name, self.sa.name, notify))
        if self.spi_in:
            with contextlib.suppress(KeyApiError):  # the larval SA may have expired
                self.sa.ctx.backend.del_sa(self.sa.local[0], self.spi_in)
            self.spi_in = 0

    def abandoned(self, now: float) -> None:
        if self.spi_in:
            self._fail(NotifyType.TEMPORARY_FAILURE)

    # -- initiator ------------------------------------------------------------------

    def build_request(self, out: list[Payload], now: float) -> None:
        sa, config = self.sa, self.config
        if config is None:
            raise ConfigError("an initiated CHILD SA needs a configuration")
        self.offered = self._proposals(config)
        if not self.offered:
            raise ConfigError(f"{config.name}: no ESP proposal we can run")
        self.reqid = self.reqid or sa.ctx.new_reqid()
        self.spi_in = sa.ctx.backend.get_spi(
            _ip(sa.remote[0]), _ip(sa.local[0]), now, mode=config.mode, reqid=self.reqid
        )
        spi = _SPI.pack(self.spi_in)
        if config.mode == "transport":
            out.append(NotifyPayload(NotifyType.USE_TRANSPORT_MODE))
        out.append(NotifyPayload(NotifyType.ESP_TFC_PADDING_NOT_SUPPORTED))
        out.append(SaPayload([to_payload(p, i + 1, spi) for i, p in enumerate(self.offered)]))
        if not self.in_ike_auth:
            out.append(NoncePayload(self.nonce))
            group = selection.dh_group(self.offered[0])
            if group:
                self.ke = dh.generate(group)
                out.append(KePayload(group, self.ke.public_bytes()))
        local, remote = self._resolve(config)
        if self.packet_ts is not None:
            local.insert(0, self.packet_ts[0])
            remote.insert(0, self.packet_ts[1])
        self.local_ts, self.remote_ts = tuple(local), tuple(remote)
        out.append(TsPayload([t.to_payload() for t in local], responder=False))
        out.append(TsPayload([t.to_payload() for t in remote], responder=True))

    def process_response(self, header: IkeHeader, found: list[Payload], now: float) -> Status:
        notes = _notify_set(found)
        errors = [n for n in notes if n < NotifyType.INITIAL_CONTACT]
        if errors:
            self._fail(errors[0])
            return Status.DONE
        answer = _take(found, SaPayload)
        tsi = _take(found, TsPayload, responder=False)
        tsr = _take(found, TsPayload, responder=True)
        if not isinstance(answer, SaPayload):
            self._fail(NotifyType.NO_PROPOSAL_CHOSEN)
            return Status.DONE
        chosen = selection.check_answer(self.offered, answer)
        spi = answer.proposals[0].spi if answer.proposals else b""
        if chosen is None or len(spi) != 4:
            self._fail(NotifyType.NO_PROPOSAL_CHOSEN)
            return Status.DONE
        local = _ts_list(tsi if isinstance(tsi, TsPayload) else None)
        remote = _ts_list(tsr if isinstance(tsr, TsPayload) else None)
        # §2.9: the responder may only narrow what we proposed.
        if not is_narrowed_from(local, self.local_ts) or not is_narrowed_from(
            remote, self.remote_ts
        ):
            self._fail(NotifyType.TS_UNACCEPTABLE)
            return Status.DONE
        nonce_i, nonce_r = self.sa.nonce_i, self.sa.nonce_r
        g_ir = None
        if not self.in_ike_auth:
            nonce = _take(found, NoncePayload)
            if not isinstance(nonce, NoncePayload):
                self._fail(NotifyType.INVALID_SYNTAX)
                return Status.DONE
            nonce_i, nonce_r = self.nonce, nonce.data
            group = selection.dh_group(chosen)
            if group:
                ke = _take(found, KePayload)
                if not isinstance(ke, KePayload) or self.ke is None or ke.group != group:
                    self._fail(NotifyType.INVALID_KE_PAYLOAD)
                    return Status.DONE
                try:
                    g_ir = self.ke.shared_secret(ke.data)
                except (ParseError, ConfigError):
                    self._fail(NotifyType.INVALID_SYNTAX)
                    return Status.DONE
        config = self.config
        if config is None:
            return Status.DONE
        transport = config.mode == "transport" and NotifyType.USE_TRANSPORT_MODE in notes
        try:
            self._install(
                config.name,
                chosen,
                _SPI.unpack(spi)[0],
                transport,
                local,
                remote,
                nonce_i,
                nonce_r,
                g_ir,
                now,
            )
        except (KeyApiError, ConfigError) as exc:
            log.warning("%r: installing CHILD SA %s failed: %s", self.sa, config.name, exc)
            self._fail(NotifyType.TEMPORARY_FAILURE)
        return Status.DONE

    # -- responder --------------------------------------------------------------------

    def process_request(self, header: IkeHeader, found: list[Payload], now: float) -> None:
        offer = _take(found, SaPayload)
        tsi = _take(found, TsPayload, responder=False)
        tsr = _take(found, TsPayload, responder=True)
        if self.in_ike_auth and offer is None and tsi is None and tsr is None:
            self.skip = True  # IKE_AUTH without a CHILD SA (childless, RFC 6023)
            return
        if not (
            isinstance(offer, SaPayload)
            and isinstance(tsi, TsPayload)
            and isinstance(tsr, TsPayload)
        ):
            if self.in_ike_auth:
                self.error = NotifyType.INVALID_SYNTAX
                return
            raise NotifyError(NotifyType.INVALID_SYNTAX)
        notes = _notify_set(found)
        if not self.in_ike_auth:
            nonce = _take(found, NoncePayload)
            if not isinstance(nonce, NoncePayload):
                raise NotifyError(NotifyType.INVALID_SYNTAX)
            self.peer_nonce = nonce.data
        try:
            self._select(offer, _ts_list(tsi), _ts_list(tsr), notes, found)
        except NotifyError as exc:
            if exc.notify_type == NotifyType.INVALID_KE_PAYLOAD:
                raise  # §1.3: the whole CREATE_CHILD_SA is refused with the group we want
            self.error = exc.notify_type

    def _select(
        self,
        offer: SaPayload,
        their_local: list[TrafficSelector],
        their_remote: list[TrafficSelector],
        notes: dict[int, NotifyPayload],
        found: list[Payload],
    ) -> None:
        sa = self.sa
        if sa.config is None:
            raise NotifyError(NotifyType.NO_PROPOSAL_CHOSEN)
        ts_ok = False
        for config in sa.config.children:
            local, remote = self._resolve(config)
            # The peer's TSi is its side: our remote selectors, and the reverse (§2.9).
            got_remote = narrow(their_local, remote)
            got_local = narrow(their_remote, local)
            if not got_remote or not got_local:
                continue
            ts_ok = True
            picked = selection.select(self._proposals(config), offer.proposals, ProtocolId.ESP)
            if picked is None:
                continue
            chosen, theirs = picked
            if len(theirs.spi) != 4:
                raise NotifyError(NotifyType.INVALID_SYNTAX)
            group = selection.dh_group(chosen)
            if group and not self.in_ike_auth:
                ke = _take(found, KePayload)
                if not isinstance(ke, KePayload):
                    raise NotifyError(NotifyType.INVALID_SYNTAX)
                if ke.group != group:
                    raise NotifyError(NotifyType.INVALID_KE_PAYLOAD, _U16.pack(group))
                mine = dh.generate(group)
                try:
                    self.g_ir = mine.shared_secret(ke.data)
                except (ParseError, ConfigError):
                    raise NotifyError(NotifyType.INVALID_SYNTAX) from None
                self.ke = mine
            self.config = config
            self.chosen, self.answer_number = chosen, theirs.number
            self.spi_out = _SPI.unpack(theirs.spi)[0]
            self.local_ts, self.remote_ts = got_local, got_remote
            self.transport = config.mode == "transport" and NotifyType.USE_TRANSPORT_MODE in notes
            return
        raise NotifyError(NotifyType.NO_PROPOSAL_CHOSEN if ts_ok else NotifyType.TS_UNACCEPTABLE)

    def build_response(self, out: list[Payload], now: float) -> Status:
        if self.skip:
            return Status.DONE
        sa, config, chosen = self.sa, self.config, self.chosen
        if self.error or config is None or chosen is None:
            error = self.error or NotifyType.NO_PROPOSAL_CHOSEN
            self._fail(error)
            out.append(NotifyPayload(error))
            return Status.DONE
        mode = "transport" if self.transport else "tunnel"
        # The same selectors and mode as a pair we hold: a replacement, which shares its
        # reqid so the policies (templates carry the reqid) fit both while they overlap.
        twin = next(
            (
                c
                for c in sa.children.values()
                if (c.name, c.mode, c.local_ts, c.remote_ts)
                == (config.name, mode, self.local_ts, self.remote_ts)
            ),
            None,
        )
        self.reqid = twin.reqid if twin is not None else sa.ctx.new_reqid()
        try:
            self.spi_in = spi_in = sa.ctx.backend.get_spi(
                _ip(sa.remote[0]), _ip(sa.local[0]), now, mode=mode, reqid=self.reqid
            )
            if self.in_ike_auth:
                nonce_i, nonce_r = sa.nonce_i, sa.nonce_r
            else:
                nonce_i, nonce_r = self.peer_nonce, self.nonce
            self._install(
                config.name,
                chosen,
                self.spi_out,
                self.transport,
                list(self.local_ts),
                list(self.remote_ts),
                nonce_i,
                nonce_r,
                self.g_ir,
                now,
            )
        except (KeyApiError, ConfigError) as exc:
            log.warning("%r: installing CHILD SA %s failed: %s", sa, config.name, exc)
            # RFC 7296 §2.21.3: after a failed first CHILD SA only NO_PROPOSAL_CHOSEN,
            # TS_UNACCEPTABLE, SINGLE_PAIR_REQUIRED, INTERNAL_ADDRESS_FAILURE and
            # FAILED_CP_REQUIRED leave the IKE SA standing; anything else (such as
            # TEMPORARY_FAILURE) makes the initiator drop it without a Delete, and ours
            # would be orphaned. In CREATE_CHILD_SA, TEMPORARY_FAILURE would be legal but
            # means "retry later" (§2.25, a collision), which a backend that refuses the
            # SA would refuse again. strongSwan's responder answers an install failure
            # with NO_PROPOSAL_CHOSEN in both exchanges; so do we.
            self._fail(NotifyType.NO_PROPOSAL_CHOSEN)
            out.append(NotifyPayload(NotifyType.NO_PROPOSAL_CHOSEN))
            return Status.DONE
        if self.transport:
            out.append(NotifyPayload(NotifyType.USE_TRANSPORT_MODE))
        out.append(NotifyPayload(NotifyType.ESP_TFC_PADDING_NOT_SUPPORTED))
        out.append(SaPayload([to_payload(chosen, self.answer_number, _SPI.pack(spi_in))]))
        if not self.in_ike_auth:
            out.append(NoncePayload(self.nonce))
            if self.ke is not None:
                out.append(KePayload(self.ke.group, self.ke.public_bytes()))
        # §2.9: TSi is the initiator's side, our remote one.
        out.append(TsPayload([t.to_payload() for t in self.remote_ts], responder=False))
        out.append(TsPayload([t.to_payload() for t in self.local_ts], responder=True))
        return Status.DONE

    # -- installation (both sides) ------------------------------------------------------

    def _install(
        self,
        name: str,
        chosen: Proposal,
        spi_out: int,
        transport: bool,
        local_ts: list[TrafficSelector],
        remote_ts: list[TrafficSelector],
        nonce_i: bytes,
        nonce_r: bytes,
        g_ir: bytes | None,
        now: float,
    ) -> None:
        sa = self.sa
        if sa.prf is None or sa.keys is None:
            raise ConfigError("no IKE SA keys")
        enc, integ, esn = selection.esp_algorithms(chosen)
        integ_len = integ.key_size if integ is not None else 0
        keys = keymat.derive_child_sa_keys(
            sa.prf, sa.keys.sk_d, nonce_i, nonce_r, enc.keymat_size, integ_len, g_ir
        )
        # §2.17: the first half keys initiator -> responder.
        if self.initiator:
            enc_out, integ_out, enc_in, integ_in = (
                keys.encr_i,
                keys.integ_i,
                keys.encr_r,
                keys.integ_r,
            )
        else:
            enc_out, integ_out, enc_in, integ_in = (
                keys.encr_r,
                keys.integ_r,
                keys.encr_i,
                keys.integ_i,
            )
        mode = "transport" if transport else "tunnel"
        me, peer = sa.local[0], sa.remote[0]
        nat = sa.nat
        # The configured rekey/life limits (with their random part) go into the SAs, so
        # the engine's soft EXPIRE starts the rekey and its hard EXPIRE ends the pair.
        soft, hard = child_lifetimes(self.config)
        common = {
            "mode": mode,
            "enc": enc.name,
            "integ": integ.name if integ is not None else None,
            "esn": esn,
            "replay_window": REPLAY_WINDOW,
            "reqid": self.reqid,
            "soft": soft,
            "hard": hard,
        }
        inbound = SASpec(
            spi=self.spi_in,
            src=_ip(peer),
            dst=_ip(me),
            enc_key=enc_in,
            integ_key=integ_in,
            encap=(sa.remote[1], sa.local[1]) if nat else None,
            **common,  # type: ignore[arg-type]
        )
        outbound = SASpec(
            spi=spi_out,
            src=_ip(me),
            dst=_ip(peer),
            enc_key=enc_out,
            integ_key=integ_out,
            encap=(sa.local[1], sa.remote[1]) if nat else None,
            **common,  # type: ignore[arg-type]
        )
        backend = sa.ctx.backend
        backend.update_sa(inbound, now)
        if not self.defer_outbound:
            backend.add_sa(outbound, now)
        if sa.ctx.keylog is not None:
            sa.ctx.keylog.esp_sa(inbound)
            sa.ctx.keylog.esp_sa(outbound)
        child = ChildSa(
            name,
            self.reqid,
            mode,
            self.spi_in,
            spi_out,
            chosen,
            tuple(local_ts),
            tuple(remote_ts),
            me,
            peer,
        )
        if self.defer_outbound:
            child.pending_out = outbound
        self.child = child
        sa.children[self.spi_in] = child
        old = self.replaces
        inherited: list[int] = []
        if old is not None and old.reqid == child.reqid:
            # The policies stay; the new pair owns them so deleting the old one keeps them.
            inherited, old.policies = old.policies, []
            child.policies = list(inherited)
        try:
            self._policies(child, me, peer)
        except (KeyApiError, ConfigError):
            # Nothing half-installed stays: both SAs and the policies added so far (the
            # list fills as they land) go; a replaced pair's policies go back to it.
            if old is not None and inherited:
                old.policies = inherited
                child.policies = [i for i in child.policies if i not in inherited]
            sa.remove_child(child, "failed")
            raise
        sa.ctx.emit(
            ChildSaInstalled(
                name,
                sa.name,
                self.reqid,
                self.spi_in,
                spi_out,
                mode,
                child.local_ts,
                child.remote_ts,
                format_proposal(chosen),
            )
        )
        self.spi_in = 0  # owned by the CHILD SA now

    def _policies(self, child: ChildSa, me: str, peer: str) -> None:
        """Add the pair's policies, each recorded in ``child.policies`` as it lands."""
        backend = self.sa.ctx.backend
        tunnel = child.mode == "tunnel"
        # Address objects (cached), not text: the SPD would parse the text per template.
        me_ip, peer_ip = _ip(me), _ip(peer)
        out_t = Template(
            mode=child.mode,
            src=me_ip if tunnel else None,
            dst=peer_ip if tunnel else None,
            reqid=child.reqid,
        )
        in_t = Template(
            mode=child.mode,
            src=peer_ip if tunnel else None,
            dst=me_ip if tunnel else None,
            reqid=child.reqid,
        )
        added = child.policies
        directions = ("in", "fwd") if tunnel else ("in",)
        for lts in child.local_ts:
            for rts in child.remote_ts:
                if lts.version != rts.version:
                    continue
                proto = lts.protocol or rts.protocol or None
                if lts.protocol and rts.protocol and lts.protocol != rts.protocol:
                    continue
                lp, rp = _ports(lts), _ports(rts)
                if proto not in PORT_PROTOCOLS:
                    lp = rp = None
                for lnet in lts.networks():
                    for rnet in rts.networks():
                        wanted = [
                            Policy(
                                "out",
                                Selector(lnet, rnet, proto, lp, rp),
                                priority=POLICY_PRIORITY,
                                templates=[out_t],
                            )
                        ]
                        wanted += [
                            Policy(
                                d,
                                Selector(rnet, lnet, proto, rp, lp),
                                priority=POLICY_PRIORITY,
                                templates=[in_t],
                            )
                            for d in directions
                        ]
                        for policy in wanted:
                            try:
                                added.append(backend.add_policy(policy))
                            except KeyApiError:
                                # A policy for these selectors exists (a trap, or another
                                # CHILD SA's): it keeps working, we do not own it.
                                continue


@functools.lru_cache(maxsize=1024)
def _ip(text: str) -> IPv4Address | IPv6Address:
    return ipaddress.ip_address(text)
