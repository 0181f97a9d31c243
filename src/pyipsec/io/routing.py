"""Policy routing around the TUN: which packets the kernel hands to the daemon.

Design (one daemon per network namespace)
-----------------------------------------
- **Own table, own rule.** Routes to protected destinations live in routing table
  ``TABLE`` (4301), never in ``main``. One rule per family,
  ``ip rule add pref 4301 not fwmark 0x4301 lookup 4301``, sends every unmarked
  packet through that table first; a lookup that finds no route there falls through
  to the next rules (``main``, ``default``) as if the table did not exist.
- **Marks break the loop.** Every socket of the daemon sets ``SO_MARK`` to ``MARK``
  (0x4301, matched exactly), so the rule skips what the daemon itself sends: ESP and
  IKE to a peer whose address is covered by a protect policy (transport mode,
  0.0.0.0/0 selectors) and bypassed packets re-sent with IP_HDRINCL leave by the
  normal routes instead of re-entering the TUN.
- **Routes follow ``out`` protect policies.** For each such policy the destination
  network of its selector gets ``ip route replace NET dev TUN table 4301``, added on
  ``PolicyAdded`` and removed on ``PolicyDeleted`` (or flush). Routes are a coarse
  filter only (by destination prefix): the SPD still decides per packet, with ports and
  protocols, whether to protect, bypass (re-sent by the raw socket) or discard. Several
  policies with one destination share one route (reference-counted by policy index).
  ``bypass`` and ``discard`` policies get no route: traffic they alone match never
  reaches the daemon; a bypass carved out of a protected prefix reaches the TUN and is
  re-sent by the raw socket.
- **``src`` hints.** Locally originated traffic must leave with a source address the
  policy covers, or the SPD would not match it. When a local address lies inside the
  policy's source selector (and the selector is not "any"), the route carries
  ``src ADDR``: the kernel then picks that address for new sockets. Without one the
  kernel's usual choice applies.
- **rp_filter.** Decapsulated packets are written to the TUN with the remote inner
  source. Their reverse path is the TUN through table 4301 (the lookup is unmarked), so
  strict mode would pass; the TUN is still set to loose mode (2) so traffic allowed by
  an ``in``/``fwd`` policy wider than the ``out`` routes is not dropped. The effective
  value is the maximum of ``all`` and the device's, so 2 always takes effect.
- **Cleanup.** The TUN is not persistent: closing it removes it with every route that
  used it. Teardown also flushes table 4301 and deletes the rules; startup first
  removes a stale rule and table left by a daemon that was killed. Table, mark and
  preference are per namespace, so daemons in different namespaces never collide.

All changes go through iproute2 ``ip`` (``-json`` for queries): the daemon changes
routes rarely, and ``ip`` is the reference implementation of the netlink messages.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import subprocess
from collections.abc import Callable, Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

from pyipsec.engine.spd import Policy
from pyipsec.errors import ConfigError

log = logging.getLogger("pyipsec.routing")

TABLE = 4301  # RFC 4301, the IPsec architecture
MARK = 0x4301
PREF = 4301  # before main (32766), after local (0)

IPAddress = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
Runner = Callable[[Sequence[str]], str]


def run_ip(args: Sequence[str]) -> str:
    """Run ``ip ARGS``; its stdout. Raises ``ConfigError`` with ip's message on failure."""
    try:
        proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"ip {' '.join(args)}: {exc}") from None
    if proc.returncode != 0:
        raise ConfigError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def local_addresses(run: Runner = run_ip) -> list[IPAddress]:
    """Every address configured on an interface of this namespace."""
    try:
        links: Any = json.loads(run(["-json", "addr", "show"]) or "[]")
    except json.JSONDecodeError as exc:
        raise ConfigError(f"unreadable `ip -json addr` output: {exc}") from None
    out: list[IPAddress] = []
    for link in links if isinstance(links, list) else []:
        for info in link.get("addr_info", []):
            try:
                out.append(ipaddress.ip_address(info["local"].split("%")[0]))
            except (KeyError, ValueError, AttributeError):
                continue
    return out


def route_device(dst: str, mark: int = MARK, run: Runner = run_ip) -> str | None:
    """The interface a packet from the daemon (marked) to ``dst`` leaves by."""
    try:
        routes: Any = json.loads(run(["-json", "route", "get", dst, "mark", str(mark)]) or "[]")
    except (ConfigError, json.JSONDecodeError):
        return None
    if isinstance(routes, list) and routes and isinstance(routes[0], dict):
        dev = routes[0].get("dev")
        return dev if isinstance(dev, str) else None
    return None


def _family_flag(net: Network | IPAddress) -> str:
    return "-6" if net.version == 6 else "-4"


class PolicyRoutes:
    """The table, the rules and the routes one daemon installs (see the module doc)."""

    def __init__(
        self,
        tun: str,
        *,
        table: int = TABLE,
        mark: int = MARK,
        pref: int = PREF,
        run: Runner = run_ip,
    ) -> None:
        if not (0 < table < 2**32 and 0 < mark < 2**32 and 0 < pref < 32766):
            raise ConfigError("routing: table, mark and pref must be positive (pref < 32766)")
        if table in (253, 254, 255):
            raise ConfigError(f"routing: table {table} is a kernel table (default/main/local)")
        self.tun = tun
        self.table = table
        self.mark = mark
        self.pref = pref
        self.run = run
        self.local: list[IPAddress] = []
        # destination network -> (policy indexes using it, src hint installed with it)
        self._routes: dict[Network, tuple[set[int], IPAddress | None]] = {}
        self._by_policy: dict[int, Network] = {}
        self._installed = False

    # -- lifetime ------------------------------------------------------------------
    def _rule(self, family: str, verb: str) -> list[str]:
        return [
            family,
            "rule",
            verb,
            "pref",
            str(self.pref),
            "not",
            "fwmark",
            f"0x{self.mark:x}/0xffffffff",
            "lookup",
            str(self.table),
        ]

    def setup(self) -> None:
        """Install the rules and the TUN's sysctls (removing stale ones first)."""
        self._flush_stale()
        for family in ("-4", "-6"):
            self.run(self._rule(family, "add"))
        self._installed = True
        self._sysctl(f"net/ipv4/conf/{self.tun}/rp_filter", "2")
        self._sysctl(f"net/ipv6/conf/{self.tun}/disable_ipv6", "0")
        log.info(
            "rule pref %d: not fwmark 0x%x lookup %d (%s)",
            self.pref,
            self.mark,
            self.table,
            self.tun,
        )

    def _flush_stale(self) -> None:
        for family in ("-4", "-6"):
            for _ in range(8):  # a crashed daemon may have left duplicates
                try:
                    self.run(self._rule(family, "del"))
                except ConfigError:
                    break
            with contextlib.suppress(ConfigError):  # no such table yet
                self.run([family, "route", "flush", "table", str(self.table)])

    def teardown(self) -> None:
        """Remove everything ``setup`` and ``add_policy`` installed (never raises)."""
        if not self._installed:
            return
        self._installed = False
        for family in ("-4", "-6"):
            for args in (
                [family, "route", "flush", "table", str(self.table)],
                self._rule(family, "del"),
            ):
                try:
                    self.run(args)
                except ConfigError as exc:
                    log.debug("teardown: %s", exc)
        self._routes.clear()
        self._by_policy.clear()
        log.info("routes and rules removed")

    def _sysctl(self, key: str, value: str) -> None:
        try:
            with open(f"/proc/sys/{key}", "w") as f:
                f.write(value)
        except OSError as exc:
            log.warning("sysctl %s=%s failed: %s", key.replace("/", "."), value, exc.strerror)

    # -- policies ------------------------------------------------------------------
    def set_local_addresses(self, addresses: Iterable[IPAddress]) -> None:
        self.local = list(addresses)

    def src_hint(self, policy: Policy) -> IPAddress | None:
        """A local address inside the policy's source selector, if the selector is narrower
        than "any" (RFC 4301 §4.4.1.1 local address selector)."""
        src = policy.selector.src_net
        if src.prefixlen == 0:
            return None
        for addr in self.local:
            if addr.version == src.version and addr in src:
                return addr
        return None

    def add_policy(self, policy: Policy) -> bool:
        """Route the destination of an ``out`` protect policy into the TUN. Returns whether
        the policy needed a route."""
        if policy.direction != "out" or policy.action != "protect":
            return False
        net = policy.selector.dst_net
        old = self._by_policy.get(policy.index)
        if old is not None and old != net:
            self.remove_policy(policy.index)
        users, hint = self._routes.get(net, (set(), None))
        if not users:
            hint = self.src_hint(policy)
            args = [_family_flag(net), "route", "replace", str(net), "dev", self.tun]
            args += ["table", str(self.table)]
            if hint is not None:
                args += ["src", str(hint)]
            self.run(args)
            log.info("route %s dev %s%s", net, self.tun, f" src {hint}" if hint else "")
        users.add(policy.index)
        self._routes[net] = (users, hint)
        self._by_policy[policy.index] = net
        return True

    def remove_policy(self, index: int) -> None:
        """Forget a policy; its route goes when no other policy uses it."""
        net = self._by_policy.pop(index, None)
        if net is None:
            return
        users, _ = self._routes[net]
        users.discard(index)
        if users:
            return
        del self._routes[net]
        try:
            self.run([_family_flag(net), "route", "del", str(net), "table", str(self.table)])
            log.info("route %s removed", net)
        except ConfigError as exc:
            log.warning("%s", exc)

    def routes(self) -> dict[str, str | None]:
        """Installed routes: destination -> src hint (for status output)."""
        return {str(net): (str(h) if h else None) for net, (_, h) in self._routes.items()}
