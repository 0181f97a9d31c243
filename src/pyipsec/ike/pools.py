"""Virtual IP address pools: which inner address a remote-access peer gets (RFC 7296 §2.19).

A pool is a range of addresses (swanctl ``pools.<name>.addrs``) and the configuration
attributes handed out with them (``dns`` ...). Leases follow strongSwan's in-memory
pools, because peers that reconnect expect it:

- a lease belongs to a peer *identity* (its IDi as text), not to an IKE SA: the same
  identity asking again gets the address it had, whether that lease is still in use
  (several IKE SAs of one identity share it, counted) or was released ("offline");
- a new identity gets a never-used address first, the address it asked for if that one
  is free, then the longest-offline lease of some other identity;
- when every address is online the pool is exhausted and ``acquire`` returns None (the
  IKE layer answers INTERNAL_ADDRESS_FAILURE, RFC 7296 §3.15.4).

A pool given as a subnet of at least four IPv4 addresses (``203.0.113.0/28``) leaves out
its network and broadcast addresses, as a subnet's hosts would. Nothing here does I/O;
the state is a few dicts, whatever the range size (an IPv6 /64 is fine).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from pyipsec.errors import ConfigError
from pyipsec.ike.connection import Pool

IPAddress = IPv4Address | IPv6Address


@dataclass(slots=True)
class Lease:
    """One address handed out: to whom, and by how many IKE SAs it is in use now."""

    address: IPAddress
    identity: str
    online: int = 0
    released: int = 0  # release order: the oldest offline lease is reassigned first


class AddressPool:
    """One range of addresses and its leases (see the module doc for the rules)."""

    def __init__(
        self,
        name: str,
        first: IPAddress,
        last: IPAddress,
        attributes: Sequence[tuple[str, Sequence[str]]] = (),
    ) -> None:
        if first.version != last.version:
            raise ConfigError(f"pool {name}: {first} and {last} are of different families")
        if int(first) > int(last):
            raise ConfigError(f"pool {name}: empty range {first}-{last}")
        self.name = name
        self.version = first.version
        self._base = int(first)
        self.size = int(last) - int(first) + 1
        self.attributes = tuple((k, tuple(v)) for k, v in attributes)
        self._leases: dict[int, Lease] = {}  # by offset from the first address
        self._by_identity: dict[str, list[int]] = {}
        self._unused = 0  # offsets below this have been leased at least once
        self._release_count = 0

    @classmethod
    def from_config(cls, pool: Pool) -> AddressPool:
        first, last = pool.addrs
        if first.version == 4 and int(last) - int(first) >= 3:
            # A whole subnet (network .. broadcast): its hosts only.
            span = int(last) - int(first) + 1
            if span & (span - 1) == 0 and int(first) % span == 0:
                first, last = first + 1, last - 1
        return cls(pool.name, first, last, pool.attributes)

    def __repr__(self) -> str:
        return f"AddressPool({self.name} {self.first}-{self.last}, {self.online} online)"

    @property
    def first(self) -> IPAddress:
        return self._address(0)

    @property
    def last(self) -> IPAddress:
        return self._address(self.size - 1)

    @property
    def online(self) -> int:
        return sum(1 for lease in self._leases.values() if lease.online)

    @property
    def offline(self) -> int:
        return sum(1 for lease in self._leases.values() if not lease.online)

    def attribute(self, name: str) -> tuple[str, ...]:
        return next((tuple(v) for k, v in self.attributes if k == name), ())

    def leases(self) -> list[Lease]:
        return sorted(self._leases.values(), key=lambda lease: int(lease.address))

    def __contains__(self, address: object) -> bool:
        return self._offset(address) is not None

    def _address(self, offset: int) -> IPAddress:
        value = self._base + offset
        return IPv4Address(value) if self.version == 4 else IPv6Address(value)

    def _offset(self, address: object) -> int | None:
        if not isinstance(address, IPv4Address | IPv6Address) or address.version != self.version:
            return None
        offset = int(address) - self._base
        return offset if 0 <= offset < self.size else None

    # -- leases -------------------------------------------------------------------------

    def acquire(self, identity: str, requested: IPAddress | None = None) -> IPAddress | None:
        """An address for ``identity`` (None: the pool is exhausted)."""
        if not identity:
            raise ConfigError("a lease needs the peer's identity")
        wanted = self._offset(requested) if requested is not None else None
        mine = self._by_identity.get(identity, [])
        # 1. The identity's own lease: the one it asks for, else the one it had last.
        if mine:
            offset = wanted if wanted in mine else mine[-1]
            return self._take(offset, identity)
        # 2. The address it asks for (RFC 7296 §3.15.1 lets the initiator suggest one)
        #    if nobody else holds it.
        if wanted is not None and wanted not in self._leases:
            return self._take(wanted, identity)
        # 3. An address never leased.
        while self._unused < self.size:
            offset = self._unused
            self._unused += 1
            if offset not in self._leases:
                return self._take(offset, identity)
        # 4. The longest-offline lease of another identity.
        idle = [lease for lease in self._leases.values() if not lease.online]
        if not idle:
            return None
        oldest = min(idle, key=lambda lease: lease.released)
        offset = int(oldest.address) - self._base
        self._forget(offset)
        return self._take(offset, identity)

    def _take(self, offset: int, identity: str) -> IPAddress:
        lease = self._leases.get(offset)
        if lease is None or lease.identity != identity:
            if lease is not None:
                self._forget(offset)
            lease = Lease(self._address(offset), identity)
            self._leases[offset] = lease
            self._by_identity.setdefault(identity, []).append(offset)
        lease.online += 1
        return lease.address

    def _forget(self, offset: int) -> None:
        lease = self._leases.pop(offset)
        owned = self._by_identity.get(lease.identity, [])
        if offset in owned:
            owned.remove(offset)
        if not owned:
            self._by_identity.pop(lease.identity, None)

    def release(self, identity: str, address: IPAddress) -> bool:
        """One IKE SA of ``identity`` stopped using ``address``; whether it held it.

        The lease stays the identity's (offline once no IKE SA uses it) until the pool
        needs it for somebody else.
        """
        offset = self._offset(address)
        lease = self._leases.get(offset) if offset is not None else None
        if lease is None or lease.identity != identity or not lease.online:
            return False
        lease.online -= 1
        if not lease.online:
            self._release_count += 1
            lease.released = self._release_count
        return True


class PoolSet:
    """The pools of one daemon by name; leases survive a reload that keeps a pool's range."""

    def __init__(self, pools: Iterable[AddressPool] = ()) -> None:
        self._pools: dict[str, AddressPool] = {}
        for pool in pools:
            self.add(pool)

    def add(self, pool: AddressPool) -> None:
        self._pools[pool.name] = pool

    def update(self, configs: Iterable[Pool]) -> None:
        """Use the configured pools; an unchanged pool keeps its leases."""
        new: dict[str, AddressPool] = {}
        for config in configs:
            pool = AddressPool.from_config(config)
            old = self._pools.get(pool.name)
            same = old is not None and (old.first, old.last) == (pool.first, pool.last)
            if old is not None and same:
                old.attributes = pool.attributes
                pool = old
            new[pool.name] = pool
        self._pools = new

    def get(self, name: str) -> AddressPool | None:
        return self._pools.get(name)

    def __iter__(self) -> Iterator[AddressPool]:
        return iter(list(self._pools.values()))

    def __len__(self) -> int:
        return len(self._pools)

    def acquire(
        self,
        names: Sequence[str],
        identity: str,
        version: int,
        requested: IPAddress | None = None,
    ) -> tuple[AddressPool, IPAddress] | None:
        """An address of family ``version`` from the first of ``names`` that has one."""
        for name in names:
            pool = self._pools.get(name)
            if pool is None or pool.version != version:
                continue
            address = pool.acquire(identity, requested)
            if address is not None:
                return pool, address
        return None

    def release(self, identity: str, address: IPAddress) -> bool:
        """Give back a lease, whichever pool it came from; whether one was held."""
        return any(
            pool.release(identity, address) for pool in self._pools.values() if address in pool
        )
