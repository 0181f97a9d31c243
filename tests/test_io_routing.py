"""io/routing: the commands PolicyRoutes issues, checked against a recording fake `ip`.

The fake is a stand-in only for the subprocess; the real `ip` runs in the netns tests.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from ipaddress import ip_address

import pytest

from pyipsec.engine.spd import Policy, Selector, Template
from pyipsec.errors import ConfigError
from pyipsec.io.routing import PolicyRoutes, local_addresses, route_device


class FakeIp:
    def __init__(self, fail: Sequence[str] = (), output: str = "") -> None:
        self.calls: list[list[str]] = []
        self.fail = fail
        self.output = output

    def __call__(self, args: Sequence[str]) -> str:
        self.calls.append(list(args))
        line = " ".join(args)
        if any(f in line for f in self.fail):
            raise ConfigError(f"ip {line}: RTNETLINK answers: No such file or directory")
        return self.output


def _out(dst: str, src: str = "0.0.0.0/0", index: int = 0) -> Policy:
    tmpl = Template(mode="tunnel", src="192.0.2.1", dst="192.0.2.2")
    return Policy("out", Selector(src, dst), templates=[tmpl], index=index)


def test_setup_and_teardown_commands() -> None:
    ip = FakeIp(fail=["rule del"])
    routes = PolicyRoutes("tun9", run=ip)
    routes.setup()
    added = [c for c in ip.calls if "add" in c]
    assert added == [
        [
            "-4",
            "rule",
            "add",
            "pref",
            "4301",
            "not",
            "fwmark",
            "0x4301/0xffffffff",
            "lookup",
            "4301",
        ],
        [
            "-6",
            "rule",
            "add",
            "pref",
            "4301",
            "not",
            "fwmark",
            "0x4301/0xffffffff",
            "lookup",
            "4301",
        ],
    ]
    ip.calls.clear()
    routes.teardown()
    assert ["-4", "route", "flush", "table", "4301"] in ip.calls
    assert sum(1 for c in ip.calls if c[1:3] == ["rule", "del"]) == 2
    ip.calls.clear()
    routes.teardown()  # a second teardown does nothing
    assert ip.calls == []


def test_stale_rules_are_removed_first() -> None:
    ip = FakeIp()
    calls = 0

    def run(args: Sequence[str]) -> str:
        nonlocal calls
        # Two stale copies of the rule, then "no such rule".
        if args[1:3] == ["rule", "del"]:
            calls += 1
            if calls in (3, 6):
                raise ConfigError("gone")
        return ip(args)

    PolicyRoutes("tun9", run=run).setup()
    dels = [c for c in ip.calls if c[1:3] == ["rule", "del"]]
    assert len(dels) == 4
    assert ip.calls.index(dels[-1]) < ip.calls.index(
        next(c for c in ip.calls if c[1:3] == ["rule", "add"])
    )


def test_routes_follow_out_protect_policies_with_src_hint() -> None:
    ip = FakeIp()
    routes = PolicyRoutes("tun9", run=ip)
    routes.set_local_addresses([ip_address("192.0.2.1"), ip_address("198.51.100.1")])
    assert routes.add_policy(_out("203.0.113.0/24", "198.51.100.0/24", index=1))
    assert ip.calls[-1] == [
        "-4", "route", "replace", "203.0.113.0/24", "dev", "tun9", "table", "4301",
        "src", "198.51.100.1",
    ]  # fmt: skip
    # A second policy to the same destination shares the route.
    assert routes.add_policy(_out("203.0.113.0/24", "198.51.100.7/32", index=9))
    assert len(ip.calls) == 1
    routes.remove_policy(1)
    assert len(ip.calls) == 1  # still used by policy 9
    routes.remove_policy(9)
    assert ip.calls[-1] == ["-4", "route", "del", "203.0.113.0/24", "table", "4301"]
    assert routes.routes() == {}


def test_any_source_gets_no_hint_and_ipv6_uses_family_flag() -> None:
    ip = FakeIp()
    routes = PolicyRoutes("tun9", run=ip)
    routes.set_local_addresses([ip_address("2001:db8:1::1")])
    tmpl = Template(src="2001:db8::1", dst="2001:db8::2")
    routes.add_policy(Policy("out", Selector("::/0", "2001:db8:2::/48"), templates=[tmpl]))
    assert ip.calls[-1] == [
        "-6",
        "route",
        "replace",
        "2001:db8:2::/48",
        "dev",
        "tun9",
        "table",
        "4301",
    ]
    assert routes.routes() == {"2001:db8:2::/48": None}


def test_other_policies_get_no_route() -> None:
    ip = FakeIp()
    routes = PolicyRoutes("tun9", run=ip)
    assert not routes.add_policy(Policy("out", Selector("0.0.0.0/0", "192.0.2.0/24"), "bypass"))
    assert not routes.add_policy(
        Policy("in", Selector("203.0.113.0/24", "198.51.100.0/24"),
               templates=[Template(src="192.0.2.2", dst="192.0.2.1")])
    )  # fmt: skip
    routes.remove_policy(12345)  # unknown: ignored
    assert ip.calls == []


@pytest.mark.parametrize("kwargs", [{"table": 254}, {"table": 0}, {"mark": 0}, {"pref": 40000}])
def test_bad_parameters(kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        PolicyRoutes("tun9", run=FakeIp(), **kwargs)


def test_local_addresses_parses_ip_json() -> None:
    doc = [
        {"ifname": "lo", "addr_info": [{"local": "127.0.0.1"}, {"local": "::1"}]},
        {"ifname": "eth0", "addr_info": [{"local": "fe80::1%eth0"}, {"family": "inet"}]},
    ]
    got = local_addresses(FakeIp(output=json.dumps(doc)))
    assert got == [ip_address("127.0.0.1"), ip_address("::1"), ip_address("fe80::1")]
    with pytest.raises(ConfigError):
        local_addresses(FakeIp(output="{not json"))


def test_route_device() -> None:
    ip = FakeIp(output=json.dumps([{"dst": "192.0.2.2", "dev": "veth0"}]))
    assert route_device("192.0.2.2", run=ip) == "veth0"
    assert ip.calls[-1] == ["-json", "route", "get", "192.0.2.2", "mark", str(0x4301)]
    assert route_device("192.0.2.2", run=FakeIp(fail=["route"])) is None
    assert route_device("192.0.2.2", run=FakeIp(output="[]")) is None
