"""io/ike_service (+ ike/config_adapter, cli/ike_cmd): IKE driven by the daemon glue.

No sockets and no root: two ``IkeService``s, each over its own ``Engine``, a fake loop
(a clock the test moves, timers it fires) and a fake transport that delivers each
datagram to the service owning the destination address. The configurations are real
swanctl.conf text (and swanctl directories with certificates made here).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pki import cn, dns, make_cert
from pyipsec.cli import ike_cmd
from pyipsec.cli import main as cli
from pyipsec.config.swanctl import parse_swanctl
from pyipsec.engine.processor import Engine
from pyipsec.errors import ConfigError
from pyipsec.ike.config_adapter import adapt
from pyipsec.ike.v2.events import Endpoint
from pyipsec.ike.v2.manager import ManagerSettings
from pyipsec.ike.v2.task_manager import RetransmitSettings
from pyipsec.io.ike_service import IkeService

GW_A, GW_B = "192.0.2.1", "192.0.2.2"
FAST = ManagerSettings(retransmit=RetransmitSettings(timeout=1.0, base=2.0, tries=2))


class FakeLoop:
    def __init__(self) -> None:
        self.now = 1000.0
        self.timers: list[tuple[float, Callable[..., object], tuple[Any, ...]]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> Handle:
        handle = Handle(self, (when, callback, args))
        self.timers.append(handle.entry)
        return handle

    def advance(self, seconds: float) -> None:
        """Move the clock, firing due timers in order."""
        end = self.now + seconds
        while True:
            due = sorted((t for t in self.timers if t[0] <= end), key=lambda t: t[0])
            if not due:
                break
            when, callback, args = due[0]
            self.timers.remove(due[0])
            self.now = max(self.now, when)
            callback(*args)
        self.now = end


class Handle:
    def __init__(self, loop: FakeLoop, entry: tuple[float, Callable[..., object], tuple[Any, ...]]):
        self.loop, self.entry = loop, entry

    def cancel(self) -> None:
        if self.entry in self.loop.timers:
            self.loop.timers.remove(self.entry)


class Wire:
    """Delivers datagrams between services by destination address; can lose them."""

    def __init__(self) -> None:
        self.hosts: dict[str, IkeService] = {}
        self.log: list[tuple[Endpoint, Endpoint, int]] = []
        self.down = False
        self.queue: list[tuple[bytes, Endpoint, Endpoint]] = []

    def transport(self) -> Transport:
        return Transport(self)

    def flush(self) -> None:
        while self.queue:
            data, src, dst = self.queue.pop(0)
            target = self.hosts.get(dst[0])
            if target is not None and not self.down:
                target.receive(data, dst, src)


class Transport:
    def __init__(self, wire: Wire) -> None:
        self.wire = wire

    def send(self, data: bytes, src: Endpoint, dst: Endpoint) -> None:
        self.wire.log.append((src, dst, len(data)))
        self.wire.queue.append((data, src, dst))


def _conf(me: str, peer: str, *, me_id: str, peer_id: str, extra: str = "", child: str = "",
          auth: str = "psk", proposals: str = "aes128gcm16-prfsha256-x25519",
          secret: str = "0sc2VjcmV0IHNoYXJlZCBieSBib3RoIHNpZGVz") -> str:  # fmt: skip
    secrets = (
        f"secrets {{\n ike-1 {{\n  id-a = {me_id}\n  id-b = {peer_id}\n  secret = {secret}\n }}\n}}"
        if auth == "psk"
        else ""
    )
    return (
        textwrap.dedent(
            f"""
        connections {{
          gw {{
            version = 2
            local_addrs = {me}
            remote_addrs = {peer}
            proposals = {proposals}
            {extra}
            local {{
              auth = {auth}
              id = {me_id}
            }}
            remote {{
              auth = {auth}
              id = {peer_id}
            }}
            children {{
              net {{
                local_ts = {me}/32
                remote_ts = {peer}/32
                esp_proposals = aes128gcm16,aes256-sha256
                {child}
              }}
            }}
          }}
        }}
        """
        )
        + secrets
    )


class Pair:
    def __init__(self, conf_a: str, conf_b: str, base: Path | None = None) -> None:
        self.loop = FakeLoop()
        self.wire = Wire()
        self.engines = {GW_A: Engine(), GW_B: Engine()}
        self.services: dict[str, IkeService] = {}
        for addr, text in ((GW_A, conf_a), (GW_B, conf_b)):
            service = IkeService(
                self.engines[addr], self.loop, self.wire.transport(), settings=FAST,
            )  # fmt: skip
            self.services[addr] = service
            self.wire.hosts[addr] = service
            service.apply(parse_swanctl(text, f"{addr}.conf", base / addr if base else None))

    def run(self, seconds: float = 0.0) -> None:
        for _ in range(50):
            self.wire.flush()
        self.loop.advance(seconds)
        for _ in range(50):
            self.wire.flush()

    @property
    def a(self) -> IkeService:
        return self.services[GW_A]

    @property
    def b(self) -> IkeService:
        return self.services[GW_B]


def psk_pair(extra: str = "", child_a: str = "", **kw: str) -> Pair:
    return Pair(
        _conf(GW_A, GW_B, me_id="a.example", peer_id="b.example", extra=extra, child=child_a,
              **kw),
        _conf(GW_B, GW_A, me_id="b.example", peer_id="a.example", extra=extra, **kw),
    )  # fmt: skip


def _established(service: IkeService) -> list[dict[str, Any]]:
    return [s for s in service.status()["ike_sas"] if s["state"] == "established"]


# -- PSK over the service ---------------------------------------------------------------


@pytest.mark.parametrize("proposals", ["aes128gcm16-prfsha256-x25519", "aes256-sha256-modp2048"])
def test_up_establishes_ike_and_child_sa_on_both_sides(proposals: str) -> None:
    pair = psk_pair(proposals=proposals)
    pair.a.initiate("gw")
    pair.run()
    for service, peer_id in ((pair.a, "b.example"), (pair.b, "a.example")):
        (sa,) = _established(service)
        assert sa["remote_id"] == peer_id
        assert sa["proposal"] == proposals
        (child,) = sa["children"]
        assert child["state"] == "installed"
    a_child = _established(pair.a)[0]["children"][0]
    b_child = _established(pair.b)[0]["children"][0]
    # Each side's inbound SPI is the other's outbound one, and the engines hold them.
    assert a_child["spi_in"] == b_child["spi_out"] and a_child["spi_out"] == b_child["spi_in"]
    spis = {f"{e.spi:08x}" for e in pair.engines[GW_A].dump_sa()}
    assert {a_child["spi_in"], a_child["spi_out"]} <= spis
    # Without a NAT everything stays on port 500 and ESP is not encapsulated.
    assert {(src[1], dst[1]) for src, dst, _ in pair.wire.log} == {(500, 500)}
    assert all(e.encap is None for e in pair.engines[GW_A].dump_sa())
    events = [e["event"] for e in pair.a.history]
    assert events == ["IkeSaEstablished", "ChildSaInstalled"]


def test_encap_moves_to_4500_and_encapsulates_esp() -> None:
    pair = psk_pair(extra="encap = yes")
    pair.a.initiate("gw")
    pair.run()
    assert _established(pair.a) and _established(pair.b)
    ports = [(src[1], dst[1]) for src, dst, _ in pair.wire.log]
    assert ports[:2] == [(500, 500), (500, 500)]  # IKE_SA_INIT
    assert set(ports[2:]) == {(4500, 4500)}  # RFC 3948 / §2.23: everything after
    for engine in pair.engines.values():
        assert {e.encap for e in engine.dump_sa()} == {(4500, 4500)}
    assert _established(pair.b)[0]["nat_remote"] is True


def test_wrong_psk_fails_and_leaves_nothing_installed() -> None:
    pair = Pair(
        _conf(GW_A, GW_B, me_id="a.example", peer_id="b.example"),
        _conf(GW_B, GW_A, me_id="b.example", peer_id="a.example", secret="another secret"),
    )
    pair.a.initiate("gw")
    pair.run()
    assert not _established(pair.a) and not _established(pair.b)
    assert pair.engines[GW_A].dump_sa() == [] and pair.engines[GW_B].dump_sa() == []
    deleted = [e for e in pair.a.history if e["event"] == "IkeSaDeleted"]
    assert deleted and deleted[0]["reason"] == "auth-failed"


def test_down_deletes_both_sides() -> None:
    pair = psk_pair()
    pair.a.initiate("gw")
    pair.run()
    assert pair.a.terminate("gw") == 1
    pair.run()
    assert pair.a.status()["ike_sas"] == [] and pair.b.status()["ike_sas"] == []
    assert pair.engines[GW_A].dump_sa() == [] and pair.engines[GW_B].dump_sa() == []
    with pytest.raises(ConfigError):
        pair.a.terminate("nope")


def test_lost_peer_retransmits_then_gives_up() -> None:
    pair = psk_pair()
    pair.wire.down = True
    pair.a.initiate("gw")
    pair.run()
    sent = len(pair.wire.log)
    pair.run(1.5)  # first retransmission after 1 s
    assert len(pair.wire.log) == sent + 1
    pair.run(30)
    assert pair.a.status()["ike_sas"] == []
    assert pair.a.history[-1]["reason"] == "timeout"


def test_start_action_start_and_trap() -> None:
    pair = psk_pair(child_a="start_action = start")
    pair.run()
    assert _established(pair.a) and _established(pair.b)

    trap = psk_pair(child_a="start_action = trap")
    engine = trap.engines[GW_A]
    outs = [p for p in engine.dump_policy() if p.direction == "out"]
    assert len(outs) == 1 and outs[0].templates[0].reqid == trap.a.traps[("gw", "net")]
    assert trap.a.status()["ike_sas"] == []
    # Reload without the connection: the trap policy goes away.
    trap.a.apply(parse_swanctl("connections {}\n"))
    assert engine.dump_policy() == [] and trap.a.traps == {}


def test_control_commands() -> None:
    pair = psk_pair()
    commands = pair.a.commands()
    started = commands["ike-up"]({"cmd": "ike-up", "name": "gw"})
    assert isinstance(started, dict) and len(started["spi_i"]) == 16
    pair.run()
    status = commands["ike-status"]({"cmd": "ike-status"})
    assert isinstance(status, dict)
    (sa,) = status["ike_sas"]
    assert sa["spi_i"] == started["spi_i"] and sa["rekey_in"] > 0
    assert status["connections"][0]["name"] == "gw"
    text = ike_cmd.format_ike_sa(sa)
    assert "ESTABLISHED" in text and "b.example" in text and "INSTALLED" in text
    for bad in ({"cmd": "ike-up"}, {"cmd": "ike-up", "name": 3}, {"cmd": "ike-down"}):
        with pytest.raises(ConfigError):
            commands[str(bad["cmd"])](bad)
    with pytest.raises(ConfigError, match="no connection"):
        commands["ike-up"]({"cmd": "ike-up", "name": "other"})
    with pytest.raises(ConfigError, match="no child"):
        commands["ike-up"]({"cmd": "ike-up", "name": "gw", "child": "x"})
    assert commands["ike-down"]({"cmd": "ike-down", "name": "gw"}) == {"name": "gw", "deleted": 1}


def test_status_section_in_pyipsec_status() -> None:
    pair = psk_pair()
    pair.a.initiate("gw")
    pair.run()
    doc: dict[str, Any] = {"sas": [], "policies": [], "stats": {}, "ike": pair.a.status()}
    assert ike_cmd.status_lines in cli.STATUS_SECTIONS
    text = cli.format_status(doc)
    assert "IKE SAs (1):" in text and "gw: ESTABLISHED" in text
    assert "IKE SAs" not in cli.format_status({"sas": [], "policies": [], "stats": {}})


def test_reload_keeps_sas_and_rejects_broken_files(tmp_path: Path) -> None:
    pair = psk_pair()
    pair.a.initiate("gw")
    pair.run()
    conf = tmp_path / "swanctl.conf"
    conf.write_text(_conf(GW_A, GW_B, me_id="a.example", peer_id="b.example"))
    pair.a.load_file(conf)
    assert len(_established(pair.a)) == 1
    conf.write_text("connections { gw { proposals = nonsense } }\n")
    pair.a.reload()  # logged, old configuration kept
    assert set(pair.a.connections) == {"gw"}
    with pytest.raises(ConfigError, match=r"swanctl.conf:1"):
        pair.a.load_file(conf)


def test_psk_without_matching_secret_is_a_config_error() -> None:
    text = (
        _conf(GW_A, GW_B, me_id="a.example", peer_id="b.example")
        .replace("id-a = a.example", "id-a = x.example")
        .replace("id-b = b.example", "id-b = y.example")
    )
    with pytest.raises(ConfigError, match=r"no secrets\.ike"):
        adapt(parse_swanctl(text))


# -- certificates -------------------------------------------------------------------------


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_dirs(base: Path, ca_for_b: str = "same") -> None:
    now = datetime.now(UTC)
    window = {"not_before": now - timedelta(days=1), "not_after": now + timedelta(days=30)}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = make_cert(cn("Test CA"), ca_key, ca=True, key_usage="ca", **window)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = make_cert(cn("Other CA"), other_key, ca=True, key_usage="ca", **window)
    for addr, name in ((GW_A, "a.example"), (GW_B, "b.example")):
        d = base / addr
        for sub in ("x509", "x509ca", "private"):
            (d / sub).mkdir(parents=True)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = make_cert(cn(name), key, ca, ca_key, san=[dns(name)], **window)
        pem = serialization.Encoding.PEM
        (d / "x509" / "me.pem").write_bytes(cert.public_bytes(pem))
        trusted = other if (addr == GW_B and ca_for_b == "other") else ca
        (d / "x509ca" / "ca.pem").write_bytes(trusted.public_bytes(pem))
        (d / "private" / "me.pem").write_bytes(_pem_key(key))


def _cert_pair(base: Path) -> Pair:
    return Pair(
        _conf(GW_A, GW_B, me_id="a.example", peer_id="b.example", auth="pubkey"),
        _conf(GW_B, GW_A, me_id="b.example", peer_id="a.example", auth="pubkey"),
        base,
    )


def test_ecdsa_certificates_authenticate_both_ways(tmp_path: Path) -> None:
    _cert_dirs(tmp_path)
    pair = _cert_pair(tmp_path)
    assert pair.a.connections["gw"].credential.method == "pubkey"
    pair.a.initiate("gw")
    pair.run()
    assert _established(pair.a)[0]["remote_id"] == "b.example"
    assert _established(pair.b)[0]["remote_id"] == "a.example"


def test_certificate_from_an_untrusted_ca_fails(tmp_path: Path) -> None:
    _cert_dirs(tmp_path, ca_for_b="other")
    pair = _cert_pair(tmp_path)
    pair.a.initiate("gw")
    pair.run()
    assert not _established(pair.a) and not _established(pair.b)
    assert pair.engines[GW_B].dump_sa() == []


def test_certificate_auth_without_key_is_a_config_error(tmp_path: Path) -> None:
    _cert_dirs(tmp_path)
    (tmp_path / GW_A / "private" / "me.pem").unlink()
    text = _conf(GW_A, GW_B, me_id="a.example", peer_id="b.example", auth="pubkey")
    with pytest.raises(ConfigError, match="no certificate with a matching private key"):
        adapt(parse_swanctl(text, "a.conf", tmp_path / GW_A))


def test_responder_answers_ike_proposals_without_esn() -> None:
    # strongSwan refuses an IKE_SA_INIT answer carrying an ESN transform ("peers proposal
    # selection invalid"): RFC 7296 §3.3.3 has no ESN for IKE. Seen in the live interop.
    from pyipsec.ike.proposals import parse_proposals, to_payload
    from pyipsec.ike.v2.constants import ProtocolId, TransformType
    from pyipsec.ike.v2.tasks import selection

    ours = parse_proposals(["aes256-sha256-modp2048"], ProtocolId.IKE)
    offer = [to_payload(p, 1) for p in ours]
    picked = selection.select(ours, offer, ProtocolId.IKE)
    assert picked is not None
    assert picked[0].of_type(TransformType.ESN) == ()
    esp = parse_proposals(["aes128gcm16"], ProtocolId.ESP)
    picked_esp = selection.select(esp, [to_payload(p, 1, b"\0\0\0\1") for p in esp], ProtocolId.ESP)
    assert picked_esp is not None and len(picked_esp[0].of_type(TransformType.ESN)) == 1


@pytest.mark.parametrize("action", ["clear", "restart"])
def test_dpd_deletes_sas_of_a_dead_peer(action: str) -> None:
    pair = psk_pair(extra="dpd_delay = 2s", child_a=f"dpd_action = {action}")
    pair.a.initiate("gw")
    pair.run()
    assert _established(pair.a)
    pair.run(5)  # idle, peer alive: DPD exchanges are answered, the SA stays
    assert _established(pair.a) and pair.engines[GW_A].dump_sa()
    informational = len(pair.wire.log)
    assert informational > 4  # the 4 datagrams of IKE_SA_INIT + IKE_AUTH, then DPD
    pair.wire.down = True  # the peer dies
    pair.run(20)
    deleted = [e for e in pair.a.history if e["event"] == "IkeSaDeleted"]
    assert deleted and deleted[0]["reason"] == "timeout"
    assert not _established(pair.a)
    if action == "clear":
        assert pair.a.status()["ike_sas"] == [] and pair.engines[GW_A].dump_sa() == []
    else:
        # restart: a new IKE SA is under way again; once the peer is back it comes up.
        assert [s["state"] for s in pair.a.status()["ike_sas"]] == ["connecting"]
        pair.wire.down = False
        pair.run(30)
        assert len(_established(pair.a)) == 1


# -- lifetimes, rekeying, reauthentication and DPD in the daemon (io.ike_timers) -----------


def drive(pair: Pair, seconds: float, step: float = 0.5) -> None:
    """Move the clock in steps; the engines enforce SA lifetimes and their EXPIREs go to
    the services, as the daemon's loop does."""
    end = pair.loop.now + seconds
    while pair.loop.now < end:
        pair.run(step)
        for addr, engine in pair.engines.items():
            engine.handle_timer(pair.loop.now)
            while (event := engine.next_event()) is not None:
                pair.services[addr].on_engine_event(event)
        pair.run()


def _children(service: IkeService) -> list[dict[str, Any]]:
    return [c for sa in _established(service) for c in sa["children"]]


def _pair_consistent(pair: Pair) -> tuple[str, str]:
    (a,), (b,) = _children(pair.a), _children(pair.b)
    assert a["spi_in"] == b["spi_out"] and a["spi_out"] == b["spi_in"]
    return a["spi_in"], a["spi_out"]


def _refuse(service: IkeService, notify: int, times: int = 1_000_000) -> list[int]:
    """Make ``service`` answer CREATE_CHILD_SA requests with ``notify`` (``times``)."""
    from pyipsec.ike.v2.constants import ExchangeType
    from pyipsec.ike.v2.ike_sa import NotifyError

    refused: list[int] = []
    for sa in service.manager.ike_sas:
        tm = service.manager.task_manager(sa)
        original = tm.responder_tasks

        def tasks(sa: Any, header: Any, payloads: Any, original: Any = original) -> Any:
            if header.exchange_type == ExchangeType.CREATE_CHILD_SA and len(refused) < times:
                refused.append(header.message_id)
                raise NotifyError(notify)
            return original(sa, header, payloads)

        tm.responder_tasks = tasks
    return refused


def test_child_sa_lifetimes_are_installed_from_the_configuration() -> None:
    pair = psk_pair(child_a="rekey_time = 20s\n life_time = 30s\n rekey_packets = 1000")
    pair.a.initiate("gw")
    pair.run()
    entries = pair.engines[GW_A].dump_sa()
    assert len(entries) == 2
    for entry in entries:
        # rand_time defaults to life - rekey = 10 s (at most half the rekey time).
        assert entry.spec.soft.add_time is not None and 10.0 <= entry.spec.soft.add_time <= 20.0
        assert entry.spec.hard.add_time == 30.0 and entry.spec.hard.packets == 1100
        assert entry.spec.soft.packets is not None and 900 <= entry.spec.soft.packets <= 1000
    # Both SAs of the pair share one draw.
    assert len({e.spec.soft for e in entries}) == 1
    # The peer's defaults: rekey after an hour minus up to 6 minutes, gone after 66.
    for entry in pair.engines[GW_B].dump_sa():
        assert entry.spec.soft.add_time is not None and 3240 <= entry.spec.soft.add_time <= 3600
        assert entry.spec.hard.add_time == pytest.approx(3960.0)


def test_soft_expire_rekeys_the_child_sa_and_hard_limit_never_hits() -> None:
    pair = psk_pair(child_a="rekey_time = 10s\n life_time = 14s")
    pair.a.initiate("gw")
    pair.run()
    first = _pair_consistent(pair)
    seen = {first}
    for _ in range(6):  # 30 s: at least two rekeys, each within 5-10 s
        drive(pair, 5)
        seen.add(_pair_consistent(pair))
    assert len(seen) >= 3
    # Make before break: never more than one pair left over, no hard EXPIRE deleted one.
    assert len(pair.engines[GW_A].dump_sa()) == 2 and len(pair.engines[GW_B].dump_sa()) == 2
    reasons = {e.get("reason") for e in pair.a.history if e["event"] == "ChildSaDeleted"}
    assert reasons == {"deleted"}
    assert [e["event"] for e in pair.a.history].count("ChildSaInstalled") == len(seen)


def test_refused_child_rekey_is_retried_after_a_random_delay() -> None:
    from pyipsec.ike.v2.constants import NotifyType

    pair = psk_pair(child_a="rekey_time = 10s\n life_time = 60s\n rand_time = 0s")
    pair.a.initiate("gw")
    pair.run()
    first = _pair_consistent(pair)
    refused = _refuse(pair.b, NotifyType.TEMPORARY_FAILURE, times=1)
    drive(pair, 10.5)
    assert len(refused) == 1 and _pair_consistent(pair) == first  # refused: old pair stays
    failed = [e for e in pair.a.history if e["event"] == "ChildSaFailed"]
    assert failed and failed[-1]["notify"] == NotifyType.TEMPORARY_FAILURE
    drive(pair, 4)  # RFC 7296 §2.25: not at once (5-15 s)
    assert _pair_consistent(pair) == first
    drive(pair, 12)
    assert _pair_consistent(pair) != first
    assert pair.a.timers.counters["child_retries"] == 1


def test_ike_sa_rekeyed_at_rekey_time_keeps_its_child_sa() -> None:
    pair = Pair(
        _conf(GW_A, GW_B, me_id="a.example", peer_id="b.example", extra="rekey_time = 10s"),
        _conf(GW_B, GW_A, me_id="b.example", peer_id="a.example"),
    )
    pair.a.initiate("gw")
    pair.run()
    (old,) = _established(pair.a)
    assert 8.0 <= old["rekey_in"] <= 10.0 and old["expires_in"] > old["rekey_in"]
    child = _pair_consistent(pair)
    drive(pair, 11)
    (new_a,), (new_b,) = _established(pair.a), _established(pair.b)
    assert new_a["spi_i"] != old["spi_i"] and new_a["spi_i"] == new_b["spi_i"]
    assert _pair_consistent(pair) == child  # §2.18: the CHILD SA moved over, unchanged
    assert pair.a.timers.counters["ike_rekeys"] == 1
    assert new_a["rekey_in"] > 5  # the new IKE SA has deadlines of its own


def test_refused_ike_rekey_is_retried_then_the_hard_limit_deletes() -> None:
    from pyipsec.ike.v2.constants import NotifyType

    extra = "rekey_time = 10s\n over_time = 25s\n rand_time = 0s"
    pair = Pair(
        _conf(GW_A, GW_B, me_id="a.example", peer_id="b.example", extra=extra),
        _conf(GW_B, GW_A, me_id="b.example", peer_id="a.example"),
    )
    pair.a.initiate("gw")
    pair.run()
    refused = _refuse(pair.b, NotifyType.TEMPORARY_FAILURE)
    drive(pair, 10.5)
    assert len(refused) == 1 and _established(pair.a)
    drive(pair, 20)  # retries every 5-15 s
    assert len(refused) >= 2 and _established(pair.a)
    drive(pair, 6)  # 10 s + over_time 25 s: deleted, on both sides
    assert _established(pair.a) == [] and pair.b.status()["ike_sas"] == []
    assert pair.a.timers.counters["ike_expired"] == 1
    assert pair.engines[GW_A].dump_sa() == []


def test_reauthentication_deletes_and_initiates_again() -> None:
    extra = "rekey_time = 0\n reauth_time = 10s\n rand_time = 0s"
    pair = Pair(
        _conf(GW_A, GW_B, me_id="a.example", peer_id="b.example", extra=extra),
        _conf(GW_B, GW_A, me_id="b.example", peer_id="a.example"),
    )
    pair.a.initiate("gw")
    pair.run()
    (old,) = _established(pair.a)
    assert old["rekey_in"] is None and old["reauth_in"] == pytest.approx(10.0)
    drive(pair, 11)
    (new,) = _established(pair.a)
    assert new["spi_i"] != old["spi_i"] and len(_established(pair.b)) == 1
    assert len(_children(pair.a)) == 1 and pair.a.timers.counters["ike_reauths"] == 1
    _pair_consistent(pair)


def test_dpd_timeout_ends_the_wait_before_the_retransmissions_do() -> None:
    pair = psk_pair(extra="dpd_delay = 2s\n dpd_timeout = 3s")
    pair.a.manager.settings = ManagerSettings()  # 4 s, 1.8, 5 tries: 165 s until give-up
    pair.a.initiate("gw")
    pair.run()
    pair.wire.down = True
    start = pair.loop.now
    while _established(pair.a) and pair.loop.now - start < 60:
        drive(pair, 0.5)
    assert not _established(pair.a) and pair.a.status()["ike_sas"] == []
    assert pair.loop.now - start <= 2 + 3 + 2  # dpd_delay + dpd_timeout + ticks
    assert pair.a.timers.counters["dpd_dead"] == 1
    assert pair.engines[GW_A].dump_sa() == []


def test_dpd_action_trap_installs_trap_policies() -> None:
    pair = psk_pair(extra="dpd_delay = 2s\n dpd_timeout = 2s", child_a="dpd_action = trap")
    pair.a.initiate("gw")
    pair.run()
    assert pair.a.traps == {}
    pair.wire.down = True
    drive(pair, 10)
    assert not _established(pair.a)
    reqid = pair.a.traps[("gw", "net")]
    (out,) = [p for p in pair.engines[GW_A].dump_policy() if p.direction == "out"]
    assert out.templates[0].reqid == reqid and pair.engines[GW_A].dump_sa() == []
    # The peer is back and traffic comes: the trap's ACQUIRE negotiates again.
    pair.wire.down = False
    pair.engines[GW_A].outbound(_udp(GW_A, GW_B), pair.loop.now)
    while (event := pair.engines[GW_A].next_event()) is not None:
        pair.a.on_engine_event(event)
    pair.run()
    assert len(_established(pair.a)) == 1 and len(_children(pair.a)) == 1


def _udp(src: str, dst: str) -> bytes:
    import ipaddress
    import struct

    from pyipsec.wire.ip import IPv4Header, build_ipv4

    udp = struct.pack("!HHHH", 1234, 5678, 9, 0) + b"x"
    s, d = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    return build_ipv4(IPv4Header(0, 20 + len(udp), 1, 0, 0, 64, 17, 0, s, d)) + udp


@pytest.mark.parametrize(("setting", "announced"), [("yes", True), ("accept", True), ("no", False)])
def test_fragmentation_setting(setting: str, announced: bool) -> None:
    from pyipsec.ike.v2 import fragments

    pair = Pair(
        _conf(GW_A, GW_B, me_id="a.example", peer_id="b.example",
              extra=f"fragmentation = {setting}"),
        _conf(GW_B, GW_A, me_id="b.example", peer_id="a.example"),
    )  # fmt: skip
    pair.a.initiate("gw")
    pair.run()
    (b_sa,) = pair.b.manager.ike_sas
    (a_sa,) = pair.a.manager.ike_sas
    assert b_sa.peer_fragmentation is announced  # RFC 7383 §2.3
    assert a_sa.peer_fragmentation is True
    assert fragments.sends_fragments(a_sa) is (setting == "yes")


# -- shutdown: a Delete for every IKE SA before the sockets close --------------------------


def _informational_requests(pair: Pair, src: str) -> int:
    """INFORMATIONAL requests ``src`` put on the wire (exchange type 37, R flag clear)."""
    from pyipsec.ike.v2.message import parse_message

    count = 0
    for data, s, _ in pair.wire.sent:
        header = parse_message(data).header
        if s[0] == src and header.exchange_type == 37 and not header.is_response:
            count += 1
    return count


def _record(pair: Pair) -> None:
    """Keep every datagram sent (the wire's queue forgets them once delivered)."""
    pair.wire.sent = []  # type: ignore[attr-defined]
    real = Transport.send

    def send(self: Transport, data: bytes, src: Endpoint, dst: Endpoint) -> None:
        self.wire.sent.append((data, src, dst))  # type: ignore[attr-defined]
        real(self, data, src, dst)

    for service in pair.services.values():
        service.transport.send = send.__get__(service.transport)  # type: ignore[method-assign]


def test_shutdown_deletes_every_ike_sa_and_waits_for_the_answers() -> None:
    pair = psk_pair()
    pair.a.initiate("gw")
    pair.run()
    assert len(_established(pair.a)) == 1 and len(_established(pair.b)) == 1
    _record(pair)
    rounds: list[float] = []

    def run_once(max_wait: float) -> None:  # one round of the daemon's loop
        rounds.append(max_wait)
        pair.wire.flush()

    pair.loop.run_once = run_once  # type: ignore[attr-defined]
    assert pair.a.shutdown() == 1
    assert _informational_requests(pair, GW_A) == 1  # one Delete per IKE SA
    assert pair.a.status()["ike_sas"] == [] and pair.b.status()["ike_sas"] == []
    assert pair.engines[GW_A].dump_sa() == [] and pair.engines[GW_B].dump_sa() == []
    assert len(rounds) == 1 and 0 < rounds[0] <= 1.0  # done once the answer came
    reasons = [e["reason"] for e in pair.b.history if e["event"] == "IkeSaDeleted"]
    assert reasons == ["peer-deleted"]


def test_shutdown_waits_at_most_the_bound_for_a_dead_peer() -> None:
    pair = psk_pair()
    pair.a.initiate("gw")
    pair.run()
    _record(pair)
    pair.wire.down = True
    start = pair.loop.now

    def run_once(max_wait: float) -> None:
        pair.loop.advance(min(max_wait, 0.3))

    pair.loop.run_once = run_once  # type: ignore[attr-defined]
    assert pair.a.shutdown(bound=1.0) == 1
    assert 1.0 <= pair.loop.now - start <= 1.0 + 1e-9  # the bound, and not a moment more
    assert _informational_requests(pair, GW_A) >= 1
    assert len(_established(pair.b)) == 1  # nothing reached it: its own DPD must clean up


def test_shutdown_without_a_loop_round_sends_and_returns() -> None:
    pair = psk_pair()
    pair.a.initiate("gw")
    pair.run()
    _record(pair)
    assert pair.a.shutdown() == 1  # FakeLoop has no run_once: nothing awaited
    assert _informational_requests(pair, GW_A) == 1
    pair.run()
    assert pair.b.status()["ike_sas"] == []


def test_shutdown_drops_half_open_sas_without_a_message() -> None:
    pair = psk_pair()
    pair.wire.down = True
    pair.a.initiate("gw")
    pair.run()
    _record(pair)
    assert pair.a.shutdown() == 0
    assert pair.a.status()["ike_sas"] == [] and pair.wire.sent == []  # type: ignore[attr-defined]
