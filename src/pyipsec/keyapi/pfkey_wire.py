"""PF_KEY v2 wire helpers shared by the extension codecs (``pfkey_ext`` and its parts).

Every extension is a multiple of 8 bytes whose first 16-bit word is its length in
64-bit words (RFC 2367 §2.2); whatever Linux refuses on input is ``KeyApiError(EINVAL)``
(net/key/af_key.c), whatever does not fit on output is ``ConfigError``.
"""

from __future__ import annotations

import errno
import struct
from typing import Final

from pyipsec.errors import ConfigError, KeyApiError

EXT_HDR: Final = struct.Struct("=HH")  # sadb_ext: length in 64-bit words, type
U16: Final = struct.Struct("=H")
BE16: Final = struct.Struct("!H")
BE32: Final = struct.Struct("!I")


def einval(why: str) -> KeyApiError:
    """The error af_key.c returns for a malformed extension."""
    return KeyApiError(errno.EINVAL, f"PF_KEY: {why}")


def align8(n: int) -> int:
    """``n`` rounded up to a multiple of 8 (PFKEY_ALIGN8)."""
    return (n + 7) & ~7


def pad8(data: bytes) -> bytes:
    """``data`` zero-padded to a multiple of 8 bytes."""
    return data + bytes(align8(len(data)) - len(data))


def words(n: int) -> int:
    """A length of ``n`` bytes (a multiple of 8) in the 64-bit words of ``sadb_*_len``."""
    return n // 8


def check_type(exttype: int, allowed: frozenset[int], what: str) -> None:
    """``ConfigError`` unless ``exttype`` is one of the types a dataclass may carry."""
    if exttype not in allowed:
        raise ConfigError(f"extension type {exttype} is not a {what} extension")
