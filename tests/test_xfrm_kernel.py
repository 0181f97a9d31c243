"""Our NETLINK_XFRM codec and client against this machine's kernel, inside a fresh netns.

Each test creates a network namespace (`ip netns add`), runs its body in a child process
entered with `ip netns exec` (the child runs a ``child_*`` function of this file and prints
JSON), compares with iproute2's view, and always deletes the namespace.

Kernel probe on the development machine (6.18, xfrm netlink without ESP): NEWSA answered
ENOSYS for rfc4106(gcm(aes)) and rfc7539esp(chacha20,poly1305) (no such AEAD registered),
EPROTONOSUPPORT for cbc(aes)+hmac(sha256) (no esp4 xfrm type).
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from netns import Netns, call_in_netns, ip_in

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2"),
]

THIS_FILE = os.path.abspath(__file__)


# -- helpers (parent side) ---------------------------------------------------------------


@pytest.fixture
def netns() -> Iterator[str]:
    with Netns.create("xfrm") as ns:
        yield ns.name


# ``child_*`` functions of this file, run inside the namespace.
run_child = functools.partial(call_in_netns, THIS_FILE)


def parse_ip_policies(text: str) -> list[dict[str, Any]]:
    """`ip xfrm policy` output -> [{src, dst, proto?, dport?, dir, priority, action?, tmpls}]."""
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            blocks.append([])
        blocks[-1].append(line)
    policies = []
    for block in blocks:
        head = block[0].split()
        pol: dict[str, Any] = dict(zip(head[::2], head[1::2], strict=True))
        pol["tmpls"] = []
        for line in block[1:]:
            words = line.split()
            if words[0] == "tmpl":
                pol["tmpls"].append(dict(zip(words[1::2], words[2::2], strict=True)))
            elif pol["tmpls"] and words[0] in ("proto", "level"):
                pol["tmpls"][-1].update(zip(words[::2], words[1::2], strict=True))
            else:
                pol.update(zip(words[::2], words[1::2], strict=True))
        policies.append(pol)
    return policies


# -- children (run inside the namespace) -------------------------------------------------


def _policies() -> list[Any]:
    from pyipsec.keyapi import xfrm_const as c
    from pyipsec.keyapi.xfrm import Attr, XfrmMessage
    from pyipsec.keyapi.xfrm_layout import xaddr
    from pyipsec.keyapi.xfrm_structs import Selector, UserpolicyInfo, UserTmpl, XfrmId

    out = UserpolicyInfo(
        sel=Selector(
            daddr=xaddr("203.0.113.0"),
            saddr=xaddr("198.51.100.0"),
            family=c.AF_INET,
            prefixlen_d=24,
            prefixlen_s=24,
        ),
        priority=100,
        dir=c.XFRM_POLICY_OUT,
    )
    tmpl = UserTmpl(
        id=XfrmId(xaddr("192.0.2.2"), 0, c.IPPROTO_ESP),
        family=c.AF_INET,
        saddr=xaddr("192.0.2.1"),
        reqid=5,
        mode=c.XFRM_MODE_TUNNEL,
    )
    block = UserpolicyInfo(
        sel=Selector(
            daddr=xaddr("2001:db8:2::"),
            saddr=xaddr("2001:db8:1::"),
            dport=443,
            dport_mask=0xFFFF,
            family=c.AF_INET6,
            prefixlen_d=48,
            prefixlen_s=48,
            proto=6,
        ),
        priority=7,
        dir=c.XFRM_POLICY_IN,
        action=c.XFRM_POLICY_BLOCK,
    )
    transport = UserTmpl(id=XfrmId(xaddr("192.0.2.9"), 0, c.IPPROTO_ESP), family=c.AF_INET, reqid=9)
    fwd = UserpolicyInfo(
        sel=Selector(
            daddr=xaddr("192.0.2.9"),
            saddr=xaddr("192.0.2.8"),
            family=c.AF_INET,
            prefixlen_d=32,
            prefixlen_s=32,
            proto=17,
            sport=500,
            sport_mask=0xFFFF,
        ),
        priority=2000,
        dir=c.XFRM_POLICY_FWD,
    )
    return [
        XfrmMessage(c.XFRM_MSG_NEWPOLICY, out, [Attr(c.XFRMA_TMPL, [tmpl])]),
        XfrmMessage(c.XFRM_MSG_NEWPOLICY, block),
        XfrmMessage(c.XFRM_MSG_NEWPOLICY, fwd, [Attr(c.XFRMA_TMPL, [transport])]),
    ]


def child_add_policies() -> int:
    from pyipsec.io.netlink_socket import XfrmSocket

    with XfrmSocket() as sock:
        for msg in _policies():
            assert sock.request(msg) == []
    return len(_policies())


def _describe(msg: Any) -> dict[str, Any]:
    from pyipsec.keyapi.xfrm_layout import addr_str

    pol = msg.body
    sel = pol.sel
    return {
        "src": f"{addr_str(sel.saddr, sel.family)}/{sel.prefixlen_s}",
        "dst": f"{addr_str(sel.daddr, sel.family)}/{sel.prefixlen_d}",
        "proto": sel.proto,
        "sport": sel.sport,
        "dport": sel.dport,
        "dir": pol.dir,
        "priority": pol.priority,
        "action": pol.action,
        "tmpls": [
            {
                "src": addr_str(t.saddr, t.family),
                "dst": addr_str(t.id.daddr, t.family),
                "proto": t.id.proto,
                "reqid": t.reqid,
                "mode": t.mode,
                "optional": t.optional,
            }
            for t in msg.templates()
        ],
    }


def child_dump_policies() -> list[dict[str, Any]]:
    from pyipsec.io.netlink_socket import XfrmSocket
    from pyipsec.keyapi import xfrm_const as c

    with XfrmSocket() as sock:
        return [_describe(m) for m in sock.dump(c.XFRM_MSG_GETPOLICY)]


def child_monitor() -> dict[str, Any]:
    from pyipsec.io.netlink_socket import XfrmSocket
    from pyipsec.keyapi import xfrm_const as c
    from pyipsec.keyapi.xfrm import XfrmMessage
    from pyipsec.keyapi.xfrm_structs import UserpolicyId, UserpolicyInfo

    events: list[XfrmMessage] = []
    with XfrmSocket() as monitor, XfrmSocket() as control:
        monitor.subscribe([c.XFRMNLGRP_POLICY])
        added = _policies()[0]
        control.request(added)
        assert isinstance(added.body, UserpolicyInfo)
        delete = XfrmMessage(c.XFRM_MSG_DELPOLICY, UserpolicyId(added.body.sel, 0, added.body.dir))
        control.request(delete)
        # The kernel only announces a flush that removed something (ESRCH is silent).
        control.request(added)
        control.request(XfrmMessage(c.XFRM_MSG_FLUSHPOLICY))
        while len(events) < 4:
            got = monitor.receive(5.0)
            assert got, "no multicast event within 5 s"
            events.extend(got)
    new, deleted, _, flushed = events[:4]
    return {
        "types": [e.type for e in events],
        "new": _describe(new),
        "deleted_policy_attr": _describe(
            XfrmMessage(c.XFRM_MSG_NEWPOLICY, deleted.get(c.XFRMA_POLICY), deleted.attrs)
        ),
        "flushed_body": flushed.body,
    }


def child_probe_esp() -> dict[str, Any]:
    from pyipsec.errors import KeyApiError
    from pyipsec.io.netlink_socket import XfrmSocket
    from pyipsec.keyapi import xfrm_const as c
    from pyipsec.keyapi.xfrm import Attr, XfrmMessage
    from pyipsec.keyapi.xfrm_layout import xaddr
    from pyipsec.keyapi.xfrm_structs import (
        Algo,
        AlgoAead,
        AlgoAuth,
        Selector,
        UsersaId,
        UsersaInfo,
        XfrmId,
    )

    suites = {
        "rfc4106(gcm(aes))": [
            Attr(c.XFRMA_ALG_AEAD, AlgoAead("rfc4106(gcm(aes))", os.urandom(20)))
        ],
        "cbc(aes)+hmac(sha256)": [
            Attr(c.XFRMA_ALG_CRYPT, Algo("cbc(aes)", os.urandom(16))),
            Attr(c.XFRMA_ALG_AUTH_TRUNC, AlgoAuth("hmac(sha256)", os.urandom(32), 128)),
        ],
        "rfc7539esp(chacha20,poly1305)": [
            Attr(c.XFRMA_ALG_AEAD, AlgoAead("rfc7539esp(chacha20,poly1305)", os.urandom(36)))
        ],
    }
    results: dict[str, Any] = {}
    with XfrmSocket() as sock:
        for spi, (suite, attrs) in enumerate(suites.items(), start=0x1000):
            info = UsersaInfo(
                sel=Selector(family=c.AF_INET),
                id=XfrmId(xaddr("192.0.2.2"), spi, c.IPPROTO_ESP),
                saddr=xaddr("192.0.2.1"),
                family=c.AF_INET,
                mode=c.XFRM_MODE_TUNNEL,
                reqid=spi,
            )
            try:
                sock.request(XfrmMessage(c.XFRM_MSG_NEWSA, info, attrs))
            except KeyApiError as exc:
                results[suite] = {"errno": exc.errno, "text": str(exc)}
                continue
            # The kernel has ESP: read the state back and compare what matters.
            got = sock.request(
                XfrmMessage(c.XFRM_MSG_GETSA, UsersaId(xaddr("192.0.2.2"), spi, 2, 50))
            )
            back = got[0]
            sent = {a.type: a.value for a in attrs}
            results[suite] = {
                "errno": 0,
                "spi": back.body.id.spi,
                "reqid": back.body.reqid,
                "same_algorithms": all(back.get(t) == v for t, v in sent.items()),
            }
        # ALLOCSPI needs no ESP transform: a larval state the kernel picks an SPI for.
        from pyipsec.keyapi.xfrm_structs import UserspiInfo

        larval = UsersaInfo(
            id=XfrmId(xaddr("192.0.2.2"), 0, c.IPPROTO_ESP),
            saddr=xaddr("192.0.2.1"),
            family=c.AF_INET,
        )
        allocated = sock.request(
            XfrmMessage(c.XFRM_MSG_ALLOCSPI, UserspiInfo(larval, 0x2000, 0x2FFF))
        )
        spi = allocated[0].body.id.spi
        read = sock.request(XfrmMessage(c.XFRM_MSG_GETSA, UsersaId(xaddr("192.0.2.2"), spi, 2, 50)))
        results["allocspi"] = {"spi": spi, "read_spi": read[0].body.id.spi, "type": read[0].type}
        sock.request(XfrmMessage(c.XFRM_MSG_DELSA, UsersaId(xaddr("192.0.2.2"), spi, 2, 50)))
        try:
            sock.request(XfrmMessage(c.XFRM_MSG_GETSA, UsersaId(xaddr("192.0.2.2"), spi, 2, 50)))
            results["after_delete"] = 0
        except KeyApiError as exc:
            results["after_delete"] = exc.errno
    return results


def child_spdinfo() -> dict[str, Any]:
    from pyipsec.io.netlink_socket import XfrmSocket
    from pyipsec.keyapi import xfrm_const as c
    from pyipsec.keyapi.xfrm import XfrmMessage
    from pyipsec.keyapi.xfrm_structs import SpdInfo

    with XfrmSocket() as sock:
        for msg in _policies():
            sock.request(msg)
        reply = sock.request(XfrmMessage(c.XFRM_MSG_GETSPDINFO, 0))[0]
        info = reply.get_as(c.XFRMA_SPD_INFO, SpdInfo)
        assert info is not None
        return {"type": reply.type, "in": info.incnt, "out": info.outcnt, "fwd": info.fwdcnt}


# -- tests ---------------------------------------------------------------------------------


def test_policies_we_add_are_listed_by_ip(netns: str) -> None:
    assert run_child(netns, "child_add_policies") == 3
    listed = {p["dir"]: p for p in parse_ip_policies(ip_in(netns, "xfrm", "policy"))}
    assert set(listed) == {"out", "in", "fwd"}
    out, block, fwd = listed["out"], listed["in"], listed["fwd"]
    assert (out["src"], out["dst"], out["priority"]) == ("198.51.100.0/24", "203.0.113.0/24", "100")
    assert "action" not in out
    assert out["tmpls"] == [
        {"src": "192.0.2.1", "dst": "192.0.2.2", "proto": "esp", "reqid": "5", "mode": "tunnel"}
    ]
    assert (block["src"], block["dst"]) == ("2001:db8:1::/48", "2001:db8:2::/48")
    assert (block["proto"], block["dport"], block["action"], block["priority"]) == (
        "tcp",
        "443",
        "block",
        "7",
    )
    assert block["tmpls"] == []
    assert (fwd["src"], fwd["dst"], fwd["proto"], fwd["sport"], fwd["priority"]) == (
        "192.0.2.8/32",
        "192.0.2.9/32",
        "udp",
        "500",
        "2000",
    )
    assert fwd["tmpls"] == [
        {"src": "0.0.0.0", "dst": "192.0.2.9", "proto": "esp", "reqid": "9", "mode": "transport"}
    ]


def test_policies_ip_adds_are_read_by_our_dump(netns: str) -> None:
    ip_in(
        netns, "xfrm", "policy", "add", "src", "198.51.100.0/24", "dst", "203.0.113.0/25",
        "dir", "out", "priority", "321", "tmpl", "src", "192.0.2.1", "dst", "192.0.2.2",
        "proto", "esp", "mode", "tunnel", "reqid", "17",
        "tmpl", "proto", "comp", "mode", "transport", "level", "use",
    )  # fmt: skip
    ip_in(
        netns, "xfrm", "policy", "add", "src", "2001:db8:1::/64", "dst", "2001:db8:2::/64",
        "proto", "udp", "sport", "4500", "dir", "in", "priority", "9", "action", "block",
    )  # fmt: skip
    dumped = {p["dir"]: p for p in run_child(netns, "child_dump_policies")}
    assert set(dumped) == {1, 0}
    assert dumped[1] == {
        "src": "198.51.100.0/24",
        "dst": "203.0.113.0/25",
        "proto": 0,
        "sport": 0,
        "dport": 0,
        "dir": 1,
        "priority": 321,
        "action": 0,
        "tmpls": [
            {"src": "192.0.2.1", "dst": "192.0.2.2", "proto": 50, "reqid": 17, "mode": 1,
             "optional": 0},
            {"src": "0.0.0.0", "dst": "0.0.0.0", "proto": 108, "reqid": 0, "mode": 0,
             "optional": 1},
        ],
    }  # fmt: skip
    assert dumped[0] == {
        "src": "2001:db8:1::/64",
        "dst": "2001:db8:2::/64",
        "proto": 17,
        "sport": 4500,
        "dport": 0,
        "dir": 0,
        "priority": 9,
        "action": 1,
        "tmpls": [],
    }


def test_policy_monitor_events_are_parsed(netns: str) -> None:
    result = run_child(netns, "child_monitor")
    # NEWPOLICY, DELPOLICY, NEWPOLICY, FLUSHPOLICY
    assert result["types"][:4] == [0x13, 0x14, 0x13, 0x1D]
    for key in ("new", "deleted_policy_attr"):
        assert result[key]["src"] == "198.51.100.0/24"
        assert result[key]["dst"] == "203.0.113.0/24"
        assert result[key]["priority"] == 100
    assert result["new"]["tmpls"][0]["reqid"] == 5
    assert result["flushed_body"] is None


def test_esp_states_install_or_fail_with_the_kernels_errno(netns: str) -> None:
    result = run_child(netns, "child_probe_esp")
    esp_present = result["cbc(aes)+hmac(sha256)"]["errno"] != errno.EPROTONOSUPPORT
    for suite in ("rfc4106(gcm(aes))", "cbc(aes)+hmac(sha256)", "rfc7539esp(chacha20,poly1305)"):
        got = result[suite]
        if got["errno"] == 0:
            assert got["same_algorithms"], suite
            continue
        if esp_present:
            # ESP is there but not this algorithm (module missing): ENOSYS or ENOENT.
            assert got["errno"] in (errno.ENOSYS, errno.ENOENT), got
        elif suite.startswith("cbc"):
            assert got["errno"] == errno.EPROTONOSUPPORT, got
        else:
            assert got["errno"] == errno.ENOSYS, got
        assert got["text"].startswith(f"this kernel cannot run ESP with {suite}: "), got
        assert got["text"].endswith("; use the embedded data plane")
        assert os.strerror(got["errno"]) in got["text"]
    alloc = result["allocspi"]
    assert 0x2000 <= alloc["spi"] <= 0x2FFF
    assert alloc["read_spi"] == alloc["spi"]
    assert alloc["type"] == 0x10  # GETSA answers with NEWSA
    assert result["after_delete"] == errno.ESRCH


def test_spdinfo_counts_our_policies(netns: str) -> None:
    result = run_child(netns, "child_spdinfo")
    assert result == {"type": 0x24, "in": 1, "out": 1, "fwd": 1}
