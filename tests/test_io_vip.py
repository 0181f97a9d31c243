"""io/vip (our virtual IPs on the TUN) and the IKE service's virtual-IP and NAT-keepalive glue.

No root: ``VirtualIps`` runs over a fake ``ip`` that keeps an address list; two
``IkeService``s talk over the fake wire of ``test_ike_service`` with swanctl text
(``vips = 0.0.0.0`` on one side, a pool on the other).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from ipaddress import ip_address

import pytest

from pyipsec.config.swanctl import parse_swanctl
from pyipsec.engine.processor import Engine
from pyipsec.errors import ConfigError
from pyipsec.ike.v2.events import Endpoint
from pyipsec.io.ike_service import IkeService
from pyipsec.io.routing import IPAddress
from pyipsec.io.vip import VirtualIps
from test_ike_service import FAST, GW_A, GW_B, FakeLoop, Wire


class FakeIp:
    """``ip addr add/del`` and ``ip -json addr show`` over an in-memory list."""

    def __init__(self, *initial: str) -> None:
        self.addrs = list(initial)
        self.calls: list[list[str]] = []

    def __call__(self, args: Sequence[str]) -> str:
        args = list(args)
        self.calls.append(args)
        if args[:3] == ["-json", "addr", "show"]:
            info = [{"local": a} for a in self.addrs]
            return json.dumps([{"ifname": "pyipsec0", "addr_info": info}])
        verb, addr = args[2], args[3].split("/")[0]
        if verb == "add":
            if addr in self.addrs:
                raise ConfigError("RTNETLINK answers: File exists")
            self.addrs.append(addr)
        elif verb == "del":
            if addr not in self.addrs:
                raise ConfigError("RTNETLINK answers: Cannot assign requested address")
            self.addrs.remove(addr)
        return ""


def test_add_counts_users_and_reports_local_addresses() -> None:
    ip = FakeIp("192.0.2.1")
    seen: list[list[IPAddress]] = []
    vips = VirtualIps("pyipsec0", run=ip, changed=seen.append)
    assert vips.add("203.0.113.5") and not vips.add("203.0.113.5")
    assert ["-4", "addr", "add", "203.0.113.5/32", "dev", "pyipsec0"] in ip.calls
    assert seen[-1] == [ip_address("192.0.2.1"), ip_address("203.0.113.5")]
    assert not vips.remove("203.0.113.5")  # one IKE SA still uses it
    assert "203.0.113.5" in ip.addrs
    assert vips.remove("203.0.113.5") and "203.0.113.5" not in ip.addrs
    assert seen[-1] == [ip_address("192.0.2.1")]
    assert not vips.remove("203.0.113.5")  # not ours any more


def test_ipv6_address_and_clear() -> None:
    ip = FakeIp()
    vips = VirtualIps("pyipsec0", run=ip)
    vips.add("2001:db8:1::7")
    assert ["-6", "addr", "add", "2001:db8:1::7/128", "dev", "pyipsec0", "nodad"] in ip.calls
    vips.add("203.0.113.9")
    vips.add("203.0.113.9")
    vips.clear()
    assert ip.addrs == [] and vips.addresses() == []


def test_existing_address_is_used_and_bad_input_refused() -> None:
    ip = FakeIp("203.0.113.5")
    vips = VirtualIps("pyipsec0", run=ip)
    assert vips.add("203.0.113.5")  # put there by hand: we use it
    with pytest.raises(ConfigError):
        vips.add("not-an-address")

    def broken(args: Sequence[str]) -> str:
        raise ConfigError("Cannot find device")

    failing = VirtualIps("gone0", run=broken)
    with pytest.raises(ConfigError):
        failing.add("203.0.113.6")
    assert failing.addresses() == []


# -- the IKE service: vips/pools from swanctl, keepalives ---------------------------------


def _conf(me: str, peer: str, extra: str, local_ts: str, remote_ts: str, pools: str = "") -> str:
    return textwrap.dedent(
        f"""
        connections {{
          gw {{
            version = 2
            local_addrs = {me}
            remote_addrs = {peer}
            proposals = aes128gcm16-prfsha256-x25519
            {extra}
            local {{
              auth = psk
              id = {me}
            }}
            remote {{
              auth = psk
            }}
            children {{
              net {{
                local_ts = {local_ts}
                remote_ts = {remote_ts}
                esp_proposals = aes128gcm16
              }}
            }}
          }}
        }}
        {pools}
        secrets {{
          ike-1 {{
            secret = 0sc2VjcmV0IHNoYXJlZCBieSBib3RoIHNpZGVz
          }}
        }}
        """
    )


class Recorder:
    def __init__(self) -> None:
        self.added: list[str] = []
        self.removed: list[str] = []
        self.keepalives: list[tuple[Endpoint, Endpoint]] = []

    def add(self, text: str) -> bool:
        self.added.append(text)
        return True

    def remove(self, text: str) -> bool:
        self.removed.append(text)
        return True

    def keepalive(self, src: Endpoint, dst: Endpoint) -> None:
        self.keepalives.append((src, dst))


def _services(client_extra: str) -> tuple[FakeLoop, Wire, IkeService, IkeService, Recorder]:
    loop, wire, rec = FakeLoop(), Wire(), Recorder()
    client = IkeService(
        Engine(), loop, wire.transport(), settings=FAST, virtual_ips=rec,
        keepalive=rec.keepalive, keepalive_interval=20.0,
    )  # fmt: skip
    gateway = IkeService(Engine(), loop, wire.transport(), settings=FAST)
    wire.hosts = {GW_A: client, GW_B: gateway}
    client.apply(parse_swanctl(_conf(GW_A, GW_B, client_extra, "dynamic", "198.51.100.0/24")))
    pools = "pools {\n vip {\n addrs = 203.0.113.0/28\n dns = 198.51.100.53\n }\n}"
    gateway.apply(
        parse_swanctl(_conf(GW_B, "%any", "pools = vip", "198.51.100.0/24", "dynamic", pools))
    )
    return loop, wire, client, gateway, rec


def _flush(wire: Wire) -> None:
    for _ in range(50):
        wire.flush()


def test_service_installs_the_assigned_vip_and_removes_it_with_the_ike_sa() -> None:
    loop, wire, client, gateway, rec = _services("vips = 0.0.0.0")
    client.initiate("gw")
    _flush(wire)
    (sa,) = client.status()["ike_sas"]
    assert sa["state"] == "established" and sa["local_vips"] == ["203.0.113.1"]
    assert [c["local_ts"] for c in sa["children"]] == [["203.0.113.1/32"]]
    assert rec.added == ["203.0.113.1"] and rec.removed == []
    (pool,) = gateway.status()["pools"]
    assert (pool["name"], pool["range"], pool["online"]) == ("vip", "203.0.113.1-203.0.113.14", 1)
    assert pool["leases"] == [{"address": "203.0.113.1", "identity": GW_A, "online": 1}]
    events = [e["event"] for e in client.status()["events"]]
    assert "VirtualIpAssigned" in events
    client.terminate("gw")
    _flush(wire)
    assert rec.removed == ["203.0.113.1"]
    (pool,) = gateway.status()["pools"]
    assert (pool["online"], pool["offline"]) == (0, 1)
    # No NAT here: nothing to keep alive.
    loop.advance(60)
    assert rec.keepalives == [] and client.keepalives_sent == 0


def test_keepalives_every_interval_behind_a_nat_on_port_4500() -> None:
    # encap = yes makes both sides believe there is a NAT (strongSwan's trick), so the
    # client moves to port 4500 and keeps the (pretended) mapping alive.
    loop, wire, client, _, rec = _services("vips = 0.0.0.0\n encap = yes")
    client.initiate("gw")
    _flush(wire)
    (sa,) = client.status()["ike_sas"]
    assert sa["nat_local"] and sa["local"] == f"{GW_A}[4500]"
    loop.advance(65)
    assert rec.keepalives == [((GW_A, 4500), (GW_B, 4500))] * 3
    assert client.status()["keepalives_sent"] == 3
    client.terminate("gw")
    _flush(wire)
    loop.advance(40)
    assert len(rec.keepalives) == 3  # the IKE SA is gone: no more
