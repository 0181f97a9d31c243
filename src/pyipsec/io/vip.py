"""Our virtual IPs (RFC 7296 §2.19) on the daemon's TUN.

When a peer assigns us an internal address (``VirtualIpAssigned`` with ``peer`` False),
the address goes on the TUN as a host address (``/32``, ``/128``): the kernel then owns
it, delivers what the tunnel brings to it, and ``io.routing`` picks it as the ``src``
hint of the routes for the CHILD SA's ``out`` policies (their source selector is the
virtual IP), so locally originated traffic leaves from it. The address is removed when
the last IKE SA using it goes (several may hold the same one: a reconnect, a rekey that
overlaps). ``changed`` is told the new list of local addresses after each change, so the
engine's in/fwd decision and the route hints see the address at once.

The address lives on the TUN, so closing the TUN also removes whatever is left.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable

from pyipsec.errors import ConfigError
from pyipsec.io.routing import IPAddress, Runner, local_addresses, run_ip

log = logging.getLogger("pyipsec.vip")


class VirtualIps:
    """The virtual IPs on ``dev``, counted by the IKE SAs using each."""

    def __init__(
        self,
        dev: str,
        *,
        run: Runner = run_ip,
        changed: Callable[[list[IPAddress]], None] = lambda addresses: None,
    ) -> None:
        self.dev = dev
        self.run = run
        self.changed = changed
        self._users: dict[IPAddress, int] = {}

    def addresses(self) -> list[IPAddress]:
        return list(self._users)

    def _args(self, verb: str, address: IPAddress) -> list[str]:
        prefix = 32 if address.version == 4 else 128
        args = [f"-{address.version}", "addr", verb, f"{address}/{prefix}", "dev", self.dev]
        if address.version == 6 and verb == "add":
            args.append("nodad")  # our own address from the gateway: nothing to detect
        return args

    def add(self, text: str) -> bool:
        """Use ``text`` as a local address; whether it was newly installed."""
        address = _address(text)
        users = self._users.get(address, 0)
        self._users[address] = users + 1
        if users:
            return False
        try:
            self.run(self._args("add", address))
        except ConfigError as exc:
            if "File exists" not in str(exc):  # already there (put by hand): use it
                del self._users[address]
                raise
        log.info("virtual IP %s on %s", address, self.dev)
        self._notify()
        return True

    def remove(self, text: str) -> bool:
        """One user fewer for ``text``; whether the address was taken off the device."""
        address = _address(text)
        users = self._users.get(address, 0)
        if users > 1:
            self._users[address] = users - 1
            return False
        if not users:
            return False
        del self._users[address]
        try:
            self.run(self._args("del", address))
        except ConfigError as exc:
            log.warning("virtual IP %s: %s", address, exc)  # the TUN may be gone already
        log.info("virtual IP %s removed from %s", address, self.dev)
        self._notify()
        return True

    def clear(self) -> None:
        for address in list(self._users):
            self._users[address] = 1
            self.remove(str(address))

    def _notify(self) -> None:
        try:
            current = local_addresses(self.run)
        except ConfigError as exc:
            log.warning("local addresses: %s", exc)
            return
        self.changed(current)


def _address(text: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError(f"not an IP address: {text!r}") from None
