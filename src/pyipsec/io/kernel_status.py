"""``pyipsec status`` for a daemon whose data plane is the Linux kernel.

The same document ``io.control.status_document`` builds from the engine (so
``pyipsec status`` prints either), read from the kernel instead:

- SAs and policies from GETSA/GETPOLICY dumps, with the kernel's own counters
  (``xfrm_lifetime_cur`` bytes/packets, ``xfrm_stats`` replay and integrity failures);
- ``kernel``: the GETSADINFO and GETSPDINFO answers (SA count and hash size, policies
  per direction, socket policies included);
- ``stats``: the non-zero counters of ``/proc/net/xfrm_stat`` (the names ``Reason`` uses),
  when the kernel has CONFIG_XFRM_STATISTICS.

The kernel keeps no per-policy packet count (``xfrm_policy`` counts nothing but its use
time), so ``hits`` is 0 and ``use_time`` says when the policy last matched. Never a key:
algorithm names, addresses, SPIs and counters only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pyipsec.errors import PyipsecError
from pyipsec.io.kernel_backend import entry_from_message
from pyipsec.io.netlink_socket import XfrmSocket
from pyipsec.keyapi import xfrm_const as c
from pyipsec.keyapi.xfrm import XfrmMessage
from pyipsec.keyapi.xfrm_convert import MODE_NAMES, PROTO_NAMES, policy_from_xfrm
from pyipsec.keyapi.xfrm_layout import addr_str
from pyipsec.keyapi.xfrm_structs import SadHinfo, SpdHinfo, SpdInfo, UserpolicyInfo, UsersaInfo

log = logging.getLogger("pyipsec.kernel")

XFRM_STAT = Path("/proc/net/xfrm_stat")  # per network namespace (/proc/self/net)


def parse_xfrm_stat(text: str) -> dict[str, int]:
    """``/proc/net/xfrm_stat`` ("XfrmInError <tab> 0" per line) as a dict; lines that are
    not a name and a number are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def read_xfrm_stat(path: Path = XFRM_STAT) -> dict[str, int]:
    try:
        return parse_xfrm_stat(path.read_text())
    except OSError:
        return {}  # a kernel without CONFIG_XFRM_STATISTICS


def sa_item(msg: XfrmMessage, now: float) -> dict[str, Any] | None:
    """One ``sas`` entry of the status document for a kernel NEWSA (dump entry), or None
    if the message is not a state. ``now`` is wall-clock time: the kernel's add_time is."""
    info = msg.body
    if not isinstance(info, UsersaInfo):
        return None
    item: dict[str, Any] = {
        "spi": info.id.spi,
        "src": addr_str(info.saddr, info.family),
        "dst": addr_str(info.id.daddr, info.family),
        "proto": PROTO_NAMES.get(info.id.proto, str(info.id.proto)),
        "mode": MODE_NAMES.get(info.mode, str(info.mode)),
        "reqid": info.reqid,
        "state": "larval",
        "encap": None,
        "lifetime_left": {"soft": None, "hard": None},
        "age": now - info.curlft.add_time if info.curlft.add_time else None,
        "counters": {
            "bytes": info.curlft.bytes,
            "packets": info.curlft.packets,
            "replay": info.stats.replay,
            "integrity_failed": info.stats.integrity_failed,
        },
    }
    try:
        entry = entry_from_message(msg)
    except PyipsecError as exc:
        # Algorithms outside our registry, say: still listed, without the details.
        item["state"] = "unknown"
        log.debug("kernel SA 0x%08x shown without details: %s", info.id.spi, exc)
        return item
    spec = entry.spec
    item["state"] = str(entry.state)
    item["encap"] = list(entry.encap) if entry.encap else None
    if spec is not None:
        item["lifetime_left"] = entry.lifetime_left(now)
        item["enc"] = spec.enc
        item["integ"] = spec.integ
        item["esn"] = spec.esn
        item["replay_window"] = spec.replay_window
    return item


def policy_item(msg: XfrmMessage) -> dict[str, Any] | None:
    """One ``policies`` entry for a kernel NEWPOLICY (dump entry), or None for what our
    model cannot express (per-socket policies, interface selectors...)."""
    info = msg.body
    if not isinstance(info, UserpolicyInfo):
        return None
    try:
        policy = policy_from_xfrm(info, msg.templates())
    except PyipsecError:
        return None
    sel = policy.selector
    return {
        "index": policy.index,
        "direction": policy.direction,
        "action": policy.action,
        "priority": policy.priority,
        "src": str(sel.src),
        "dst": str(sel.dst),
        "proto": sel.proto,
        "sport": list(sel.sport) if isinstance(sel.sport, tuple) else sel.sport,
        "dport": list(sel.dport) if isinstance(sel.dport, tuple) else sel.dport,
        "templates": [
            {
                "proto": t.proto,
                "mode": t.mode,
                "src": None if t.src is None else str(t.src),
                "dst": None if t.dst is None else str(t.dst),
                "reqid": t.reqid,
                "level": t.level,
            }
            for t in policy.templates
        ],
        "hits": 0,
        "bytes": 0,
        "use_time": info.curlft.use_time or None,
    }


def kernel_info(replies_sad: list[XfrmMessage], replies_spd: list[XfrmMessage]) -> dict[str, Any]:
    """The GETSADINFO/GETSPDINFO answers as ``{"sad": {...}, "spd": {...}}``."""
    sad: dict[str, Any] = {}
    for msg in replies_sad:
        count = msg.get(c.XFRMA_SAD_CNT)
        if isinstance(count, int):
            sad["count"] = count
        hinfo = msg.get_as(c.XFRMA_SAD_HINFO, SadHinfo)
        if hinfo is not None:
            sad["hash_size"], sad["hash_max"] = hinfo.sadhcnt, hinfo.sadhmcnt
    spd: dict[str, Any] = {}
    for msg in replies_spd:
        info = msg.get_as(c.XFRMA_SPD_INFO, SpdInfo)
        if info is not None:
            spd.update(
                {"in": info.incnt, "out": info.outcnt, "fwd": info.fwdcnt,
                 "socket_in": info.inscnt, "socket_out": info.outscnt,
                 "socket_fwd": info.fwdscnt}
            )  # fmt: skip
        spd_hinfo = msg.get_as(c.XFRMA_SPD_HINFO, SpdHinfo)
        if spd_hinfo is not None:
            spd["hash_size"], spd["hash_max"] = spd_hinfo.spdhcnt, spd_hinfo.spdhmcnt
    return {"sad": sad, "spd": spd}


def kernel_status(
    sock: XfrmSocket,
    now: float,
    extra: dict[str, Any] | None = None,
    *,
    xfrm_stat: Path = XFRM_STAT,
) -> dict[str, Any]:
    """The status document from the kernel of this namespace (``now``: wall clock)."""
    sas = [item for m in sock.dump(c.XFRM_MSG_GETSA) if (item := sa_item(m, now)) is not None]
    policies = [
        item for m in sock.dump(c.XFRM_MSG_GETPOLICY) if (item := policy_item(m)) is not None
    ]
    # The body of both requests is a __u32 of flags the kernel ignores.
    info = kernel_info(
        sock.request(XfrmMessage(c.XFRM_MSG_GETSADINFO, 0)),
        sock.request(XfrmMessage(c.XFRM_MSG_GETSPDINFO, 0)),
    )
    stats = {name: value for name, value in read_xfrm_stat(xfrm_stat).items() if value}
    doc: dict[str, Any] = {"sas": sas, "policies": policies, "stats": stats, "kernel": info}
    if extra:
        doc.update(extra)
    return doc
