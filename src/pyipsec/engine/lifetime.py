"""SA lifetimes as data (RFC 4301 §4.4.2.1). The engine enforces them, not the SA."""

from __future__ import annotations

from dataclasses import dataclass

from pyipsec.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Lifetime:
    """Soft or hard limits of an SA. ``None`` means unlimited; times are in seconds.

    ``bytes`` and ``packets`` count payload as ``SaCounters`` does; ``add_time`` runs
    from the SA's installation, ``use_time`` from its first use (as the kernel's).
    """

    bytes: int | None = None
    packets: int | None = None
    add_time: float | None = None
    use_time: float | None = None

    def __post_init__(self) -> None:
        for name in ("bytes", "packets", "add_time", "use_time"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                raise ConfigError(f"Lifetime.{name} must be None or a non-negative number")

    @property
    def unlimited(self) -> bool:
        return (
            self.bytes is None
            and self.packets is None
            and self.add_time is None
            and self.use_time is None
        )
