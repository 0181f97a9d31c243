"""RFC 1071 (Computing the Internet Checksum) §3, "Numerical Examples": the bytes
00 01 f2 03 f4 f5 f6 f7 sum (one's complement, 16-bit words) to ddf2; the checksum sent
is its complement."""

from __future__ import annotations

DATA = bytes.fromhex("0001f203f4f5f6f7")
SUM = 0xDDF2
CHECKSUM = 0xFFFF - SUM  # 0x220d
