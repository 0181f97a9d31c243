"""Where IKE meets the data plane it keys: the embedded engine, or the Linux kernel.

``io.ike_service.attach_ike`` runs IKE in any daemon that has the small face
``DaemonLike`` describes (a loop, options, hooks, the control socket); ``io.daemon.Daemon``
and ``io.kernel_daemon.KernelDaemon`` both have it. What differs between the two data
planes is gathered in an ``IkePlane``:

- the key-management backend IKE installs its SAs and policies through (the engine, or
  the kernel's xfrm);
- the UDP port-4500 sockets (RFC 3948). The embedded daemon owns them, because ESP-in-UDP
  arrives there too: it hands IKE what follows the non-ESP marker through a hook. On the
  kernel's data plane nobody else reads port 4500, so IKE opens the sockets itself and
  sets ``UDP_ENCAP_ESPINUDP`` on them (udp(7)): the kernel then decapsulates ESP-in-UDP
  for its SAs, eats NAT keepalives, and passes IKE up with the marker still in front
  (``xfrm4_udp_encap_rcv`` returns such datagrams to the socket unchanged), which the
  reader strips (§2.2);
- where our virtual IPs go (the TUN; on the kernel's data plane, ``lo``);
- what must happen when the daemon stops.

Kernel data plane, decisions (documented here because they are policy, not mechanics):

- IKE's sockets carry per-socket xfrm bypass policies (``IP_XFRM_POLICY`` with action
  allow, both directions), as strongSwan's kernel-netlink plugin sets them: IKE to a peer
  whose own address is protected (transport mode, wide selectors) must not be sent into
  the SA it negotiates. The embedded data plane gets the same effect from SO_MARK.
- IKE records what it installs (``kernel_events.Installed`` over the kernel backend) and
  removes all of it when the daemon stops, whatever ``--remove-on-exit`` says: those SAs
  and policies belong to IKE SAs that die with the daemon, and a ``require`` policy left
  without its SA would blackhole the traffic it covers (strongSwan removes its CHILD SAs
  and policies on shutdown too). State added through setkey/xfrm is not touched.
- Routes: none are installed. The kernel looks the xfrm policy up after the ordinary
  route lookup (``xfrm_lookup`` on the route found), so a packet for a remote traffic
  selector needs some route (a default route, or one toward the underlay) and a source
  address inside the local traffic selector. strongSwan adds routes in table 220 with a
  ``src`` hint for that; we leave routing to the administrator, which is enough for
  gateways with their protected subnet on a local interface.
- Virtual IPs go on ``lo`` (strongSwan's ``install_virtual_ip_on`` setting allows the
  same): the kernel owns the address, so what the tunnel brings to it is delivered, and
  programs that bind to it send from it. Locally originated traffic that does not choose
  its source still needs a ``src`` route (see above).
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pyipsec.engine.backend import KeyManagementBackend
from pyipsec.engine.events import Event as EngineEvent
from pyipsec.errors import ConfigError
from pyipsec.io.control import SeqpacketServer
from pyipsec.io.kernel_events import Installed
from pyipsec.io.routing import IPAddress
from pyipsec.io.sockets import SO_MARK, recv_with_pktinfo
from pyipsec.io.vip import VirtualIps
from pyipsec.keyapi import xfrm_const as xc
from pyipsec.keyapi.xfrm_structs import USERPOLICY_INFO, Selector, UserpolicyInfo

if TYPE_CHECKING:
    from pyipsec.io.daemon import Daemon

log = logging.getLogger("pyipsec.ike")

NON_ESP_MARKER = bytes(4)  # RFC 3948 §2.2: IKE on port 4500 starts with four zero octets
SOL_UDP = 17
UDP_ENCAP = 100  # <linux/udp.h>
UDP_ENCAP_ESPINUDP = 2  # RFC 3948 framing (the non-ESP marker tells IKE from ESP)
IP_PKTINFO = 8
IPV6_RECVPKTINFO = 49
IP_XFRM_POLICY = 17  # <linux/in.h>: a per-socket xfrm policy
IPV6_XFRM_POLICY = 35  # <linux/in6.h>

# (payload after the marker, src, dst, sport, dport), addresses packed: what the embedded
# daemon's ``ike_hook`` is given, and what our own port-4500 reader produces.
NattHook = Callable[[bytes, bytes, bytes, int, int], None]


class IkeOptions(Protocol):
    """The daemon settings IKE reads (``io.daemon.DaemonOptions`` has them)."""

    @property
    def mark(self) -> int: ...

    @property
    def port(self) -> int: ...

    @property
    def ipv6(self) -> bool: ...

    @property
    def ike_keylog(self) -> Path | None: ...


class ReaderLoop(Protocol):
    """The loop IKE runs on (``io.daemon.SelectorLoop``)."""

    def time(self) -> float: ...

    def call_at(self, when: float, callback: Callable[..., object], *args: Any) -> Any: ...

    def add_reader(self, fd: int, callback: Callable[..., object], *args: Any) -> None: ...


class DaemonLike(Protocol):
    """What ``attach_ike`` needs of a daemon, whichever data plane it runs."""

    @property
    def options(self) -> IkeOptions: ...

    @property
    def loop(self) -> ReaderLoop: ...

    @property
    def event_hooks(self) -> list[Callable[[EngineEvent], None]]: ...

    @property
    def reload_hooks(self) -> list[Callable[[], None]]: ...

    @property
    def close_hooks(self) -> list[Callable[[], None]]: ...

    @property
    def control(self) -> SeqpacketServer | None: ...

    def after_key_management(self) -> None: ...


@dataclass
class IkePlane:
    """What IKE uses of one data plane (see the module docstring)."""

    name: str  # "embedded" or "kernel", for the log
    backend: KeyManagementBackend
    natt: dict[str, socket.socket]  # "udp4"/"udp6" on the NAT-T port
    # The daemon reads port 4500 and calls the hook it is given with IKE datagrams; None:
    # the sockets are IKE's own and ``attach_ike`` reads them (``read_natt``).
    set_natt_hook: Callable[[NattHook], None] | None
    virtual_ips: VirtualIps | None = None
    prepare_socket: Callable[[socket.socket], None] | None = None  # for IKE's port 500 too
    event_hooks: list[Callable[[EngineEvent], None]] = field(default_factory=list)
    close_hooks: list[Callable[[], None]] = field(default_factory=list)


# ---------------------------------------------------------------------- embedded ----
def embedded_plane(daemon: DaemonLike) -> IkePlane:
    """The embedded engine's plane: the daemon's own port-4500 sockets, VIPs on its TUN."""
    from pyipsec.io.daemon import Daemon  # a cycle at import time: daemon imports us

    if not isinstance(daemon, Daemon):
        raise ConfigError("IKE needs a data plane: pass plane= for this daemon")
    net = daemon.net
    if net is None:
        raise ConfigError("IKE needs the daemon's network sockets")

    def set_hook(hook: NattHook) -> None:
        daemon.ike_hook = hook

    return IkePlane(
        "embedded",
        daemon.engine,
        {k: v for k, v in net.sockets.items() if k in ("udp4", "udp6")},
        set_hook,
        virtual_ips=_tun_virtual_ips(daemon),
    )


def _tun_virtual_ips(daemon: Daemon) -> VirtualIps | None:
    """Our virtual IPs go on the TUN; the engine and the route hints learn of them."""
    if daemon.tun is None:
        return None

    def changed(addresses: list[IPAddress]) -> None:
        daemon.engine.set_local_addresses(addresses)
        if daemon.routes is not None:
            daemon.routes.set_local_addresses(addresses)

    return VirtualIps(daemon.tun.name, changed=changed)


# ------------------------------------------------------------------------ kernel ----
def kernel_plane(
    options: IkeOptions,
    backend: KeyManagementBackend,
    *,
    vip_device: str = "lo",
    open_sockets: Callable[[int, int, bool], dict[str, socket.socket]] | None = None,
) -> IkePlane:
    """The Linux kernel's plane: ``backend`` keys the kernel; IKE opens port 4500 itself
    with UDP_ENCAP_ESPINUDP and removes what it installed when the daemon stops."""
    opener = open_encap_sockets if open_sockets is None else open_sockets
    natt = opener(options.mark, options.port, options.ipv6)
    installed = Installed(backend)

    def remove_installed() -> None:
        sas, policies = installed.remove_all()
        if sas or policies:
            log.info("removed what IKE installed in the kernel: %d SAs, %d policies", sas, policies)

    def close_sockets() -> None:
        for sock in natt.values():
            with contextlib.suppress(OSError):
                sock.close()

    return IkePlane(
        "kernel",
        installed,
        natt,
        None,
        virtual_ips=VirtualIps(vip_device),
        prepare_socket=bypass_xfrm,
        event_hooks=[installed.forget],
        close_hooks=[close_sockets, remove_installed],
    )


def bypass_xfrm(sock: socket.socket) -> None:
    """Per-socket policies that let IKE pass the kernel's SPD both ways (the socket
    policy is looked up before the SPD's; action allow means no transform)."""
    family = sock.family
    level, option = (
        (socket.IPPROTO_IPV6, IPV6_XFRM_POLICY)
        if family == socket.AF_INET6
        else (socket.IPPROTO_IP, IP_XFRM_POLICY)
    )
    xfamily = xc.AF_INET6 if family == socket.AF_INET6 else xc.AF_INET
    for direction in (xc.XFRM_POLICY_IN, xc.XFRM_POLICY_OUT):
        info = UserpolicyInfo(
            sel=Selector(family=xfamily), dir=direction, action=xc.XFRM_POLICY_ALLOW
        )
        try:
            sock.setsockopt(level, option, USERPOLICY_INFO.build(info))
        except OSError as exc:
            # Without it IKE still works unless the peer's own address is protected.
            log.warning("IKE socket: no xfrm bypass policy: %s", exc.strerror)
            return


def open_encap_sockets(mark: int, port: int, ipv6: bool) -> dict[str, socket.socket]:
    """UDP ``port`` sockets (IPv4, and IPv6 if asked) with UDP_ENCAP_ESPINUDP set."""
    sockets: dict[str, socket.socket] = {}
    try:
        families = [("udp4", socket.AF_INET)] + ([("udp6", socket.AF_INET6)] if ipv6 else [])
        for name, family in families:
            flags = socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
            sock = socket.socket(family, flags, socket.IPPROTO_UDP)
            sockets[name] = sock
            sock.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
                sock.bind(("::", port))
            else:
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
                sock.bind(("0.0.0.0", port))  # noqa: S104 - IKE from any peer
            sock.setsockopt(SOL_UDP, UDP_ENCAP, UDP_ENCAP_ESPINUDP)
            bypass_xfrm(sock)
    except OSError as exc:
        for sock in sockets.values():
            sock.close()
        raise ConfigError(f"cannot open the IKE NAT-T port {port}: {exc.strerror}") from exc
    return sockets


def read_natt(sock: socket.socket, port: int, deliver: NattHook) -> int:
    """Read one batch from an encap socket of ours; IKE datagrams (behind the non-ESP
    marker) go to ``deliver``. Returns how many datagrams were not IKE (the kernel keeps
    ESP and keepalives on such sockets, so these are strays: counted, dropped).
    ``port`` is the socket's own, the datagrams' destination port."""
    strays = 0
    for data, src, dst, sport, _ in recv_with_pktinfo(sock):
        if len(data) > len(NON_ESP_MARKER) and data.startswith(NON_ESP_MARKER):
            deliver(data[4:], src, dst, sport, port)
        else:
            strays += 1
    return strays
