"""The field-table compiler behind :mod:`xfrm_structs`, and ``xfrm_address_t`` helpers.

A ``Layout`` turns a list of ``(name, format)`` pairs, written beside the C struct they
mirror, into one precompiled ``struct.Struct`` (nested structs are flattened into it).
Tables use host byte order with standard sizes (``=``) and spell C's alignment padding
out as ``"Nx"`` entries, so the layout is visible and does not depend on ``struct``'s
native alignment rules; tests/test_xfrm_golden.py checks every size against ctypes.

Field formats:
  ``B H I i Q``  host-order integers (``__u8 __u16 __u32 int __u64``)
  ``>H >I``      network-order integers (``__be16 __be32``): ports and SPIs
  ``addr``       ``xfrm_address_t``: 16 bytes, an IPv4 address in the first 4
  ``cstr64``     ``char[64]``: a NUL-terminated name
  ``Nx``         padding (always written as zeros)
  a ``Layout``   a nested struct
"""

from __future__ import annotations

import errno
import ipaddress
import struct
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.keyapi.xfrm_const import AF_INET, AF_INET6

T = TypeVar("T")

ZERO_ADDR = bytes(16)

# One compiled step per field: (name, kind, argument).
_PLAIN, _BE, _ADDR, _CSTR, _NEST = range(5)


class Layout(Generic[T]):
    """A compiled field table: parses into / builds from a dataclass ``cls``."""

    def __init__(self, c_name: str, cls: Callable[..., T], fields: Sequence[tuple[str, Any]]):
        self.c_name = c_name
        self.cls = cls
        parts: list[str] = []
        steps: list[tuple[str, int, Any]] = []
        for name, spec in fields:
            if isinstance(spec, Layout):
                parts.append(spec.fmt)
                steps.append((name, _NEST, spec))
            elif spec.endswith("x"):
                parts.append(spec)
            elif spec.startswith(">"):
                size = struct.calcsize(">" + spec[1:])
                parts.append(f"{size}s")
                steps.append((name, _BE, size))
            elif spec == "addr":
                parts.append("16s")
                steps.append((name, _ADDR, 16))
            elif spec.startswith("cstr"):
                size = int(spec[4:])
                parts.append(f"{size}s")
                steps.append((name, _CSTR, size))
            else:
                parts.append(spec)
                steps.append((name, _PLAIN, None))
        self.fmt: str = "".join(parts)
        self.struct = struct.Struct("=" + self.fmt)
        self.size = self.struct.size
        self.field_names = tuple(s[0] for s in steps)
        # The declared table without padding, for tools that walk a layout.
        self.fields: tuple[tuple[str, Any], ...] = tuple((n, spec) for n, spec in fields if n)
        self._steps = tuple(steps)

    # -- values <-> objects (flat tuple as struct.unpack gives it) ----------------------
    def _from_values(self, values: tuple[Any, ...], i: int) -> tuple[dict[str, Any], int]:
        out: dict[str, Any] = {}
        for name, kind, arg in self._steps:
            if kind == _NEST:
                sub, i = arg._from_values(values, i)
                out[name] = arg.cls(**sub)
                continue
            value = values[i]
            i += 1
            if kind == _BE:
                value = int.from_bytes(value, "big")
            elif kind == _CSTR:
                value = value.split(b"\0", 1)[0].decode("latin-1")
            out[name] = value
        return out, i

    def _to_values(self, obj: Any, out: list[Any]) -> None:
        get = obj.__getitem__ if isinstance(obj, dict) else obj.__getattribute__
        for name, kind, arg in self._steps:
            value = get(name)
            if kind == _NEST:
                arg._to_values(value, out)
            elif kind == _BE:
                if not isinstance(value, int) or not 0 <= value < 1 << (8 * arg):
                    raise ConfigError(f"{self.c_name}.{name}: {value!r} out of range")
                out.append(value.to_bytes(arg, "big"))
            elif kind == _ADDR:
                if not isinstance(value, bytes | bytearray) or len(value) != 16:
                    raise ConfigError(
                        f"{self.c_name}.{name}: xfrm_address_t must be 16 bytes (use xaddr())"
                    )
                out.append(bytes(value))
            elif kind == _CSTR:
                try:
                    raw = value.encode("latin-1")
                except (AttributeError, UnicodeEncodeError):
                    raise ConfigError(f"{self.c_name}.{name}: not a latin-1 string") from None
                # The kernel forces the last byte to NUL, so 63 characters is the limit.
                if len(raw) >= arg or b"\0" in raw:
                    raise ConfigError(f"{self.c_name}.{name}: name too long or contains NUL")
                out.append(raw)
            else:
                out.append(value)

    # -- public ---------------------------------------------------------------------------
    def unpack_dict(self, buf: bytes | memoryview, offset: int = 0) -> dict[str, Any]:
        """The fields at ``offset`` as a dict; EINVAL if the buffer is too short."""
        if len(buf) - offset < self.size:
            raise KeyApiError(errno.EINVAL, f"truncated {self.c_name}")
        values = self.struct.unpack_from(buf, offset)
        fields, _ = self._from_values(values, 0)
        return fields

    def parse(self, buf: bytes | memoryview, offset: int = 0) -> T:
        return self.cls(**self.unpack_dict(buf, offset))

    def build(self, obj: Any) -> bytes:
        values: list[Any] = []
        try:
            self._to_values(obj, values)
        except (AttributeError, KeyError, TypeError):
            raise ConfigError(f"{self.c_name}: wrong value type {type(obj).__name__}") from None
        try:
            return self.struct.pack(*values)
        except struct.error as exc:
            raise ConfigError(f"{self.c_name}: field out of range ({exc})") from None


# -- addresses -------------------------------------------------------------------------


def xaddr(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bytes:
    """An ``xfrm_address_t`` (16 bytes) from an IPv4/IPv6 address; None gives zeros."""
    if address is None:
        return ZERO_ADDR
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ConfigError(f"not an IP address: {address!r}") from None
    return ip.packed.ljust(16, b"\0")


def addr_str(raw: bytes, family: int) -> str:
    """Text form of an ``xfrm_address_t`` given its address family."""
    if family == AF_INET:
        return str(ipaddress.IPv4Address(raw[:4]))
    if family == AF_INET6:
        return str(ipaddress.IPv6Address(raw[:16]))
    raise ConfigError(f"address family {family} is neither AF_INET nor AF_INET6")


def family_of(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    try:
        version = ipaddress.ip_address(address).version
    except ValueError:
        raise ConfigError(f"not an IP address: {address!r}") from None
    return AF_INET if version == 4 else AF_INET6
