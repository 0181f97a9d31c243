"""io/ike_plane: the glue between IKE and a data plane, without root.

The live behaviour (IKE over the kernel-plane daemon's own UDP 4500 socket, against
charon) is in tests/test_kernel_ike.py; here: the port-4500 reader on a loopback socket,
the kernel plane's bookkeeping over an engine standing in for the kernel, and the
embedded plane's refusal of a daemon it cannot use.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyipsec.engine.processor import Engine
from pyipsec.engine.spd import Policy, Selector, Template
from pyipsec.errors import ConfigError
from pyipsec.io.ike_plane import (
    IP_PKTINFO,
    NON_ESP_MARKER,
    embedded_plane,
    kernel_plane,
    read_natt,
)
from pyipsec.io.kernel_daemon import KernelDaemon
from pyipsec.io.kernel_events import Installed


@pytest.fixture
def loopback_pair() -> Iterator[tuple[socket.socket, socket.socket, int]]:
    """A receiving UDP socket on 127.0.0.1 (with IP_PKTINFO, as ours have) and a sender."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    rx.bind(("127.0.0.1", 0))
    try:
        yield rx, tx, rx.getsockname()[1]
    finally:
        rx.close()
        tx.close()


def _wait_readable(sock: socket.socket) -> None:
    import select

    assert select.select([sock], [], [], 2)[0], "nothing arrived on loopback"


def test_read_natt_strips_the_marker_and_counts_strays(
    loopback_pair: tuple[socket.socket, socket.socket, int],
) -> None:
    rx, tx, port = loopback_pair
    ike = bytes(range(28))  # stands in for an IKE header; only the framing matters here
    tx.sendto(NON_ESP_MARKER + ike, ("127.0.0.1", port))
    tx.sendto(b"\xff", ("127.0.0.1", port))  # a NAT keepalive the kernel would eat
    tx.sendto(b"\x00\x00\x10\x01" + bytes(20), ("127.0.0.1", port))  # ESP (SPI != 0)
    tx.sendto(NON_ESP_MARKER, ("127.0.0.1", port))  # the marker and nothing after it
    _wait_readable(rx)
    got: list[tuple[bytes, bytes, bytes, int, int]] = []
    strays = 0
    for _ in range(10):  # loopback delivers at once, but read until all four are in
        strays += read_natt(rx, 4500, lambda *d: got.append(d))
        if len(got) + strays == 4:
            break
    assert strays == 3
    [(payload, src, dst, sport, dport)] = got
    assert payload == ike
    loopback = socket.inet_aton("127.0.0.1")
    assert (src, dst, dport) == (loopback, loopback, 4500)
    assert sport == tx.getsockname()[1]


class _Options:
    mark = 0x4301
    port = 4500
    ipv6 = False
    ike_keylog = None


def _policy(dst: str) -> Policy:
    return Policy(
        "out",
        Selector(ipaddress.ip_network("203.0.113.1/32"), ipaddress.ip_network(dst)),
        priority=1100,
        templates=[Template(src="192.0.2.2", dst="192.0.2.1", reqid=7)],
    )


def test_kernel_plane_removes_what_ike_installed_and_only_that() -> None:
    kernel = Engine()  # stands in for the kernel: the same key-management interface
    theirs = kernel.add_policy(_policy("198.51.100.9/32"))  # e.g. added with setkey
    opened: list[tuple[int, int, bool]] = []
    pair = socket.socketpair()

    def opener(mark: int, port: int, ipv6: bool) -> dict[str, socket.socket]:
        opened.append((mark, port, ipv6))
        return {"udp4": pair[0]}

    plane = kernel_plane(_Options(), kernel, open_sockets=opener)
    try:
        assert opened == [(0x4301, 4500, False)]
        assert plane.name == "kernel"
        assert plane.set_natt_hook is None  # IKE reads its own port-4500 socket
        assert plane.natt == {"udp4": pair[0]}
        assert plane.virtual_ips is not None and plane.virtual_ips.dev == "lo"
        ours = plane.backend.add_policy(_policy("198.51.100.1/32"))
        gone = plane.backend.add_policy(_policy("198.51.100.2/32"))
        # Removed by someone else: the event hook makes IKE's record forget it.
        kernel.del_policy(gone)
        while (event := kernel.next_event()) is not None:
            for hook in plane.event_hooks:
                hook(event)
        record = plane.backend
        assert isinstance(record, Installed) and record.policies == {ours}
        for hook in plane.close_hooks:
            hook()
        left = {p.index for p in kernel.dump_policy()}
        assert ours not in left and theirs in left
        assert pair[0].fileno() == -1  # the plane's sockets are closed with it
    finally:
        pair[0].close()
        pair[1].close()


def test_embedded_plane_needs_an_embedded_daemon(tmp_path: Path) -> None:
    from pyipsec.io.daemon import DaemonOptions

    kd = KernelDaemon(DaemonOptions(run_dir=tmp_path))
    with pytest.raises(ConfigError, match="plane="):
        embedded_plane(kd)
