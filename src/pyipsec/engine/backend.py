"""The key-management interface onto a SAD/SPD (ARCHITECTURE rule 3).

PF_KEY, xfrm and IKE change SAs and policies only through these calls. Two backends
implement them: the embedded ``Engine`` (``engine.processor``) and the Linux kernel's
xfrm (over NETLINK_XFRM), so the same control plane drives either data plane.

Errors are ``KeyApiError(errno)`` with the errno the kernel would give (EEXIST, ESRCH,
ENOENT, EINVAL, ...). Events (ACQUIRE, EXPIRE, ...) come from ``next_event()``.
"""

from __future__ import annotations

from typing import Protocol

from pyipsec.engine.events import Event, IPAddress
from pyipsec.engine.sad import SadEntry, SASpec
from pyipsec.engine.spd import Policy, Selector


class KeyManagementBackend(Protocol):
    """What a key manager may ask of a SAD/SPD."""

    def get_spi(
        self,
        src: str | IPAddress,
        dst: str | IPAddress,
        now: float,
        *,
        proto: str = "esp",
        mode: str = "tunnel",
        reqid: int = 0,
        spi_min: int = 0x100,
        spi_max: int = 0xFFFFFFFF,
    ) -> int: ...

    def add_sa(self, spec: SASpec, now: float) -> SadEntry: ...

    def update_sa(self, spec: SASpec, now: float) -> SadEntry: ...

    def del_sa(self, dst: str | IPAddress, spi: int, proto: str = "esp") -> SadEntry: ...

    def get_sa(self, dst: str | IPAddress, spi: int, proto: str = "esp") -> SadEntry: ...

    def flush_sa(self, proto: str | None = None) -> int: ...

    def dump_sa(self) -> list[SadEntry]: ...

    def add_policy(self, policy: Policy) -> int: ...

    def update_policy(self, policy: Policy) -> int: ...

    def del_policy(self, index: int) -> Policy: ...

    def del_policy_by_selector(self, direction: str, selector: Selector) -> Policy: ...

    def get_policy(self, index: int) -> Policy: ...

    def flush_policy(self, direction: str | None = None) -> int: ...

    def dump_policy(self) -> list[Policy]: ...

    def next_event(self) -> Event | None: ...
