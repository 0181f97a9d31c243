"""What the PF_KEY codec tests share: their addresses and a hand-made ``sadb_msg`` header.

Used by test_pfkey.py, test_pfkey_fuzz.py and test_pfkey_golden.py. The header is packed
here with ``struct`` on purpose, not with the codec under test, so that a test built on
it checks the codec against an independent encoding (``<linux/pfkeyv2.h>``: sadb_msg is
16 bytes, ``sadb_msg_len`` counts 64-bit words, everything in host byte order).
"""

from __future__ import annotations

import struct
from ipaddress import ip_address

from pyipsec.keyapi import pfkey_const as c

# RFC 5737 / RFC 3849 documentation addresses only.
V4A, V4B = ip_address("192.0.2.1"), ip_address("192.0.2.2")
V6A, V6B = ip_address("2001:db8::1"), ip_address("2001:db8::2")

SADB_MSG = struct.Struct("=BBBBHHII")  # version type errno satype len reserved seq pid


def sadb_msg(
    msg_type: int,
    words: int,
    *,
    satype: int = c.SADB_SATYPE_ESP,
    errno: int = 0,
    version: int = c.PF_KEY_V2,
    reserved: int = 0,
    seq: int = 1,
    pid: int = 2,
) -> bytes:
    """A ``sadb_msg`` header saying the message is ``words`` 64-bit words long."""
    return SADB_MSG.pack(version, msg_type, errno, satype, words, reserved, seq, pid)
