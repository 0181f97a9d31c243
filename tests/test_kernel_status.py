"""io.kernel_status without a kernel: status entries from kernel-shaped dump messages (built
by our codec and read back from bytes), the SADINFO/SPDINFO answers, xfrm_stat parsing,
and the whole document through a stand-in socket."""

from __future__ import annotations

from pathlib import Path

from pyipsec.cli.main import format_status
from pyipsec.engine.sad import Lifetime, SASpec
from pyipsec.engine.spd import Policy, Selector, Template
from pyipsec.io.kernel_status import (
    kernel_info,
    kernel_status,
    parse_xfrm_stat,
    policy_item,
    sa_item,
)
from pyipsec.keyapi import xfrm_const as c
from pyipsec.keyapi.xfrm import Body, XfrmMessage, build_message, parse_message
from pyipsec.keyapi.xfrm_convert import policy_message, sa_message
from pyipsec.keyapi.xfrm_structs import LifetimeCur, SadHinfo, SpdHinfo, SpdInfo, UsersaInfo

NOW = 1_700_000_000.0
KEY = bytes(range(20))


def wire(msg: XfrmMessage) -> XfrmMessage:
    return parse_message(build_message(msg))


def kernel_sa(added: float = NOW - 30, packets: int = 5, nbytes: int = 700) -> XfrmMessage:
    spec = SASpec(
        0x1234,
        "192.0.2.1",
        "192.0.2.2",
        enc="aes128gcm16",
        enc_key=KEY,
        reqid=7,
        hard=Lifetime(add_time=3600),
        soft=Lifetime(add_time=3000),
    )
    msg = sa_message(spec)
    assert isinstance(msg.body, UsersaInfo)
    msg.body.curlft = LifetimeCur(nbytes, packets, int(added), 0)
    return wire(msg)


def kernel_policy() -> XfrmMessage:
    tmpl = Template("esp", "tunnel", "192.0.2.1", "192.0.2.2", reqid=7)
    pol = Policy("out", Selector("198.51.100.0/24", "203.0.113.0/24", 17, None, 53), "protect", 5,
                 (tmpl,), index=0x21)  # fmt: skip
    [msg] = policy_message(pol)
    return wire(msg)


def test_sa_item_carries_the_kernel_counters_and_lifetimes_never_the_key() -> None:
    item = sa_item(kernel_sa(), NOW)
    assert item is not None
    assert (item["spi"], item["src"], item["dst"], item["mode"]) == (
        0x1234,
        "192.0.2.1",
        "192.0.2.2",
        "tunnel",
    )
    assert item["enc"] == "aes128gcm16" and item["state"] == "mature"
    assert item["counters"]["packets"] == 5 and item["counters"]["bytes"] == 700
    assert item["lifetime_left"] == {"soft": 2970.0, "hard": 3570.0}
    assert item["age"] == 30.0
    assert KEY.hex() not in repr(item) and repr(list(KEY)) not in repr(item)


def test_sa_item_of_an_unknown_algorithm_is_listed_without_details() -> None:
    msg = kernel_sa()
    for attr in msg.attrs:
        if attr.type == c.XFRMA_ALG_AEAD:
            attr.value.name = "rfc4106(gcm(sm4))"  # type: ignore[union-attr]
    item = sa_item(msg, NOW)
    assert item is not None and item["state"] == "unknown" and "enc" not in item
    assert sa_item(XfrmMessage(c.XFRM_MSG_NEWSA, None), NOW) is None


def test_policy_item() -> None:
    item = policy_item(kernel_policy())
    assert item is not None
    assert (item["index"], item["direction"], item["action"], item["priority"]) == (
        0x21,
        "out",
        "protect",
        5,
    )
    assert (item["src"], item["dst"], item["proto"], item["dport"]) == (
        "198.51.100.0/24",
        "203.0.113.0/24",
        17,
        [53, 53],  # a range, as io.control.status_document shows it
    )
    assert item["templates"][0]["dst"] == "192.0.2.2" and item["templates"][0]["reqid"] == 7
    assert policy_item(kernel_sa()) is None


def test_kernel_info_reads_sadinfo_and_spdinfo() -> None:
    sad = XfrmMessage(c.XFRM_MSG_NEWSADINFO, 0).add(c.XFRMA_SAD_CNT, 3)
    sad.add(c.XFRMA_SAD_HINFO, SadHinfo(8, 1048576))
    spd = XfrmMessage(c.XFRM_MSG_NEWSPDINFO, 0).add(c.XFRMA_SPD_INFO, SpdInfo(1, 2, 0, 0, 1, 0))
    spd.add(c.XFRMA_SPD_HINFO, SpdHinfo(16, 1048576))
    info = kernel_info([wire(sad)], [wire(spd)])
    assert info["sad"] == {"count": 3, "hash_size": 8, "hash_max": 1048576}
    assert info["spd"]["out"] == 2 and info["spd"]["socket_out"] == 1
    assert info["spd"]["hash_size"] == 16
    assert kernel_info([], []) == {"sad": {}, "spd": {}}


def test_parse_xfrm_stat() -> None:
    text = "XfrmInError             \t0\nXfrmOutNoStates         \t12\nbroken line\nX\tY\n"
    assert parse_xfrm_stat(text) == {"XfrmInError": 0, "XfrmOutNoStates": 12}


class FakeSocket:
    """Answers as XfrmSocket does, from canned kernel messages."""

    def __init__(self) -> None:
        self.requests: list[int] = []

    def dump(self, msg_type: int, body: Body = None) -> list[XfrmMessage]:
        return [kernel_sa()] if msg_type == c.XFRM_MSG_GETSA else [kernel_policy()]

    def request(self, msg: XfrmMessage) -> list[XfrmMessage]:
        self.requests.append(msg.type)
        if msg.type == c.XFRM_MSG_GETSADINFO:
            return [wire(XfrmMessage(c.XFRM_MSG_NEWSADINFO, 0).add(c.XFRMA_SAD_CNT, 1))]
        return [wire(XfrmMessage(c.XFRM_MSG_NEWSPDINFO, 0).add(c.XFRMA_SPD_INFO, SpdInfo(0, 1)))]


def test_kernel_status_document_prints_with_format_status(tmp_path: Path) -> None:
    stat = tmp_path / "xfrm_stat"
    stat.write_text("XfrmInNoStates\t4\nXfrmOutPolBlock\t0\n")
    sock = FakeSocket()
    extra = {"daemon": {"pid": 1, "uptime": 5, "data_plane": "kernel"}}
    doc = kernel_status(sock, NOW, extra, xfrm_stat=stat)  # type: ignore[arg-type]
    assert sock.requests == [c.XFRM_MSG_GETSADINFO, c.XFRM_MSG_GETSPDINFO]
    assert doc["stats"] == {"XfrmInNoStates": 4}
    assert doc["kernel"]["sad"]["count"] == 1 and doc["kernel"]["spd"]["out"] == 1
    text = format_status(doc)
    assert "data plane kernel" in text
    assert "192.0.2.1 -> 192.0.2.2 spi 0x00001234 tunnel aes128gcm16 [mature] 5 pkts" in text
    assert "out 198.51.100.0/24 -> 203.0.113.0/24 proto 17 protect esp/tunnel" in text
    assert "XfrmInNoStates" in text
    missing = kernel_status(sock, NOW, None, xfrm_stat=tmp_path / "absent")  # type: ignore[arg-type]
    assert missing["stats"] == {}
