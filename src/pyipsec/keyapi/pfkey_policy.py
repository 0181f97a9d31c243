"""PF_KEY v2 policies: ``sadb_x_policy`` and its ``sadb_x_ipsecrequest`` templates.

The Linux/KAME SPD extension (``<linux/pfkeyv2.h>``, ``<linux/ipsec.h>``): a policy
type and direction, then one request per transform of the bundle, each optionally with
its tunnel endpoints as a sockaddr pair. Parsing follows net/key/af_key.c
(``parse_ipsecrequests``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Final

from pyipsec.errors import ConfigError
from pyipsec.keyapi import pfkey_const as k
from pyipsec.keyapi.pfkey_address import SockAddr, build_sockaddr_pair, parse_sockaddr_pair
from pyipsec.keyapi.pfkey_wire import einval, words

POLICY: Final = struct.Struct("=HHHBxII")  # sadb_x_policy, 16
_IPSECREQ: Final = struct.Struct("=HHBB2xI4x")  # sadb_x_ipsecrequest, 16


@dataclass(frozen=True, slots=True)
class IpsecRequest:
    """``sadb_x_ipsecrequest``: one template of a policy, with its endpoint pair if any."""

    proto: int
    mode: int
    level: int
    reqid: int = 0
    src: SockAddr | None = None
    dst: SockAddr | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """``sadb_x_policy`` (IPSEC_POLICY_*, IPSEC_DIR_*) and its ipsecrequests."""

    exttype: ClassVar[int] = k.SADB_X_EXT_POLICY
    policy_type: int
    direction: int
    policy_id: int = 0
    priority: int = 0
    requests: tuple[IpsecRequest, ...] = ()


def parse_policy(exttype: int, ext: memoryview) -> Policy:
    """Decode a ``sadb_x_policy`` extension (header included) and its requests."""
    _, _, policy_type, direction, policy_id, priority = POLICY.unpack_from(ext)
    requests: list[IpsecRequest] = []
    off, end = POLICY.size, len(ext)
    # af_key.c parse_ipsecrequests: sadb_x_ipsecrequest_len counts bytes, not words.
    while end - off >= _IPSECREQ.size:
        rq_len, proto, mode, level, reqid = _IPSECREQ.unpack_from(ext, off)
        if rq_len < _IPSECREQ.size or rq_len > end - off:
            raise einval("ipsecrequest length out of its policy")
        src = dst = None
        if rq_len > _IPSECREQ.size:
            src, dst = parse_sockaddr_pair(ext[off + _IPSECREQ.size : off + rq_len])
        requests.append(IpsecRequest(proto, mode, level, reqid, src, dst))
        off += rq_len
    if off != end:  # Linux skips fewer than 16 trailing bytes; stricter than Linux
        raise einval("trailing bytes after the last ipsecrequest")
    return Policy(policy_type, direction, policy_id, priority, tuple(requests))


def _build_request(r: IpsecRequest) -> bytes:
    if (r.src is None) != (r.dst is None):
        raise ConfigError("an ipsecrequest carries both endpoints or neither")
    pair = b"" if r.src is None or r.dst is None else build_sockaddr_pair(r.src, r.dst)
    size = _IPSECREQ.size + len(pair)
    return _IPSECREQ.pack(size, r.proto, r.mode, r.level, r.reqid) + pair


def build_policy(e: Policy) -> bytes:
    """Encode a ``sadb_x_policy`` extension with its requests."""
    reqs = b"".join(_build_request(r) for r in e.requests)
    size = POLICY.size + len(reqs)
    head = POLICY.pack(words(size), e.exttype, e.policy_type, e.direction, e.policy_id, e.priority)
    return head + reqs
