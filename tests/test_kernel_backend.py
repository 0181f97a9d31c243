"""KernelBackend against this machine's kernel, inside a network namespace the test creates.

Each test runs a ``child_*`` function of this file in a fresh namespace (``ip netns exec``),
which prints JSON; the parent compares with iproute2's view and deletes the namespace.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from netns import Netns, call_in_netns, ip_in

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2"),
]

THIS_FILE = os.path.abspath(__file__)


@pytest.fixture
def netns() -> Iterator[str]:
    with Netns.create("kb") as ns:
        yield ns.name


# ``child_*`` functions of this file, run inside the namespace.
run_child = functools.partial(call_in_netns, THIS_FILE)


# -- children ------------------------------------------------------------------------------


def _policies() -> list[Any]:
    from pyipsec.engine.spd import Policy, Selector, Template

    tmpl = Template("esp", "tunnel", "192.0.2.1", "192.0.2.2", reqid=5)
    return [
        Policy("out", Selector("198.51.100.0/24", "203.0.113.0/24"), "protect", 100, (tmpl,)),
        Policy(
            "in",
            Selector("2001:db8:2::/48", "2001:db8:1::/48", 6, None, (1024, 2047)),
            "discard",
            7,
        ),
        Policy("fwd", Selector("203.0.113.0/24", "198.51.100.0/24", 17, 53), "bypass", 3),
    ]


def child_policies() -> dict[str, Any]:
    from pyipsec.errors import KeyApiError
    from pyipsec.io.kernel_backend import KernelBackend

    backend = KernelBackend(listen=False)
    indexes = [backend.add_policy(p) for p in _policies()]
    dumped = backend.dump_policy()
    got = backend.get_policy(indexes[0])
    try:
        backend.add_policy(_policies()[0])
        dup = 0
    except KeyApiError as exc:
        dup = exc.errno
    removed = backend.del_policy_by_selector("fwd", _policies()[2].selector)
    after = backend.dump_policy()
    return {
        "indexes": indexes,
        "same": sorted(map(repr, (p for p in dumped)))
        == sorted(
            repr(type(p)(**{**_fields(p), "index": i}))
            for p, i in zip(_policies(), indexes, strict=True)
        ),
        "get_ok": got.index == indexes[0] and got.selector == _policies()[0].selector,
        "dup_errno": dup,
        "removed": removed.index,
        "left": len(after),
    }


def _fields(policy: Any) -> dict[str, Any]:
    return {
        "direction": policy.direction,
        "selector": policy.selector,
        "action": policy.action,
        "priority": policy.priority,
        "templates": policy.templates,
    }


def child_esp_state() -> dict[str, Any]:
    from pyipsec.engine.sad import SASpec
    from pyipsec.errors import KeyApiError
    from pyipsec.io.kernel_backend import KernelBackend
    from pyipsec.io.netlink_socket import XfrmSocket
    from pyipsec.keyapi import xfrm_const as c
    from pyipsec.keyapi.xfrm import XfrmMessage
    from pyipsec.keyapi.xfrm_convert import sa_message
    from pyipsec.keyapi.xfrm_structs import UsersaFlush

    spec = SASpec(0x1000, "192.0.2.1", "192.0.2.2", enc_key=bytes(20), reqid=1)
    # The probe: the raw NEWSA, straight through the codec's client.
    with XfrmSocket() as sock:
        try:
            sock.request(sa_message(spec))
            probe = 0
            flush = XfrmMessage(c.XFRM_MSG_FLUSHSA, UsersaFlush(c.IPSEC_PROTO_ANY))
            sock.request(flush)  # the backend must then add the same state itself
        except KeyApiError as exc:
            probe = exc.errno
    backend = KernelBackend(listen=False)
    try:
        entry = backend.add_sa(spec, 0.0)
        return {"probe": probe, "errno": 0, "spi": backend.get_sa(spec.dst, entry.spi).spi}
    except KeyApiError as exc:
        return {"probe": probe, "errno": exc.errno, "message": str(exc)}


def child_acquire() -> dict[str, Any]:
    import socket
    import time

    from pyipsec.engine.events import Acquire
    from pyipsec.engine.spd import Policy, Selector, Template
    from pyipsec.io.kernel_backend import KernelBackend

    # The kernel creates lo with disable_xfrm=1 (inetdev_init): no policy lookup for
    # loopback routes unless it is turned off.
    subprocess.run(["sysctl", "-q", "-w", "net.ipv4.conf.lo.disable_xfrm=0"], check=True)
    subprocess.run(["ip", "addr", "add", "198.51.100.1/32", "dev", "lo"], check=True)
    subprocess.run(["ip", "addr", "add", "198.51.100.2/32", "dev", "lo"], check=True)
    backend = KernelBackend()
    tmpl = Template("esp", "tunnel", "192.0.2.1", "192.0.2.2", reqid=9)
    index = backend.add_policy(
        Policy("out", Selector("198.51.100.1/32", "198.51.100.2/32", 17), "protect", 0, (tmpl,))
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("198.51.100.1", 40000))
        try:
            udp.sendto(b"trigger", ("198.51.100.2", 9))
        except OSError as exc:  # the packet waits for (or is dropped without) an SA
            sent_error = exc.errno
        else:
            sent_error = 0
    deadline = time.monotonic() + 5
    event = None
    while event is None and time.monotonic() < deadline:
        event = backend.next_event()
        if event is None:
            time.sleep(0.05)
    if not isinstance(event, Acquire):
        return {"event": repr(event)}
    return {
        "event": "acquire",
        "sent_error": sent_error,
        "policy_index": event.policy_index,
        "index": index,
        "dst": str(event.dst),
        "src": str(event.src),
        "reqid": event.template.reqid,
        "flow": [
            str(event.flow_src),
            str(event.flow_dst),
            event.flow_proto,
            event.flow_sport,
            event.flow_dport,
        ],
    }


# -- tests ----------------------------------------------------------------------------------


def test_policies_appear_in_ip_xfrm_policy(netns: str) -> None:
    result = run_child(netns, "child_policies")
    assert result["same"] and result["get_ok"]
    assert result["dup_errno"] == 17  # EEXIST
    assert result["left"] == 2
    assert result["removed"] == result["indexes"][2]
    text = ip_in(netns, "-s", "xfrm", "policy")
    for index in result["indexes"][:2]:
        assert f"index {index} " in text
    assert f"index {result['indexes'][2]} " not in text
    assert "src 198.51.100.0/24 dst 203.0.113.0/24" in text
    assert "tmpl src 192.0.2.1 dst 192.0.2.2" in text
    assert "proto tcp dport 1024" in text  # the range 1024-2047 as port/mask
    assert "dir in action block priority 7" in ip_in(netns, "xfrm", "policy")


def test_esp_state_fails_with_the_probed_errno_and_a_clear_message(netns: str) -> None:
    result = run_child(netns, "child_esp_state")
    if result["probe"] == 0:
        # This kernel has ESP: the backend installs the state like the probe did.
        assert result["errno"] == 0 and result["spi"] == 0x1000
        return
    assert result["errno"] == result["probe"]
    assert result["message"] == (
        "this kernel cannot run ESP with rfc4106(gcm(aes)): "
        f"{os.strerror(result['probe'])}; use the embedded data plane"
    )


def test_kernel_acquire_becomes_our_acquire_event(netns: str) -> None:
    result = run_child(netns, "child_acquire")
    assert result["event"] == "acquire", result
    assert result["policy_index"] == result["index"]
    assert (result["src"], result["dst"], result["reqid"]) == ("192.0.2.1", "192.0.2.2", 9)
    assert result["flow"] == ["198.51.100.1", "198.51.100.2", 17, 40000, 9]
