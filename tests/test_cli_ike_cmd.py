"""cli/ike_cmd: the IKE part of ``pyipsec status`` as a human reads it.

A live document from two ``IkeService``s over the fake wire of ``test_ike_service`` (the
SAD part from ``io.control.status_document``, so CHILD SA counters come from real ESP
traffic), and hand-made documents for what a live pair does not show (virtual IPs, pools,
NAT, missing SAD entries, large counters).
"""

from __future__ import annotations

import re
from typing import Any

from pyipsec.cli import ike_cmd
from pyipsec.cli import main as cli
from pyipsec.engine.actions import Transmit
from pyipsec.io.control import status_document
from test_ike_service import GW_A, GW_B, _udp, psk_pair


def _live_doc(child: str = "") -> tuple[dict[str, Any], Any]:
    pair = psk_pair(child_a=child)
    pair.a.initiate("gw")
    pair.run()
    engine = pair.engines[GW_A]
    for _ in range(3):  # three packets out through the CHILD SA
        action = engine.outbound(_udp(GW_A, GW_B), pair.loop.now)
        assert isinstance(action, Transmit)
    doc = status_document(engine, pair.loop.now)
    doc["ike"] = pair.a.status()
    return doc, pair


def test_live_ike_sa_is_one_line_with_its_child_sa_below() -> None:
    doc, _ = _live_doc("rekey_time = 20m\n life_time = 30m")
    lines = ike_cmd.status_lines(doc)
    assert lines[0] == "IKE SAs (1):"
    ike_line, child_line = lines[1].split("\n")
    (sa,) = doc["ike"]["ike_sas"]
    # IKE SA: name, state, both ends with their identities, proposal keyword, SPIs with
    # the initiator's mark, times.
    assert ike_line.startswith("  gw: ESTABLISHED, 192.0.2.1[500] a.example ... ")
    assert "192.0.2.2[500] b.example, aes128gcm16-prfsha256-x25519," in ike_line
    assert f"spi {sa['spi_i']}_i* {sa['spi_r']}_r," in ike_line
    rekey = re.search(r"rekey in (\d+)h(\d\d)m, expires in (\d+)h(\d\d)m", ike_line)
    assert rekey is not None, ike_line  # IKE defaults: rekey_time 4h, over_time 10% more
    assert "vip" not in ike_line and "NAT" not in ike_line
    # CHILD SA: indented under it, with counters joined from the SAD by SPI.
    (child,) = sa["children"]
    assert child_line.startswith("    net: INSTALLED, reqid 1, TUNNEL, aes128gcm16, ")
    assert f"spi in {child['spi_in']} out {child['spi_out']}" in child_line
    assert "192.0.2.1/32 === 192.0.2.2/32" in child_line
    out = next(s for s in doc["sas"] if f"{s['spi']:08x}" == child["spi_out"])
    assert out["counters"]["packets"] == 3
    assert f"out {out['counters']['bytes']} B 3 pkts" in child_line
    assert "in 0 B 0 pkts" in child_line
    # rekey in: the SAD's soft lifetime, drawn in [rekey_time - rand_time, rekey_time].
    found = re.search(r"rekey in (\d+)s$", child_line)
    assert found is not None and 600 <= int(found.group(1)) <= 1200, child_line
    assert lines[-1] == "Connections (1): gw"


def test_status_command_output_has_the_ike_section() -> None:
    doc, _ = _live_doc()
    text = cli.format_status(doc)
    assert "IKE SAs (1):\n  gw: ESTABLISHED" in text
    assert "\n    net: INSTALLED" in text


def test_responder_mark_and_ike_status_without_sad() -> None:
    _, pair = _live_doc()
    (sa,) = pair.b.status()["ike_sas"]
    text = ike_cmd.format_ike_sa(sa)  # ``pyipsec up`` prints this: no SAD at hand
    assert f"{sa['spi_i']}_i {sa['spi_r']}_r*" in text
    assert text.rstrip().endswith("in -, out -, rekey in -")


def _doc() -> dict[str, Any]:
    return {
        "sas": [
            {"spi": 0xC0000001, "encap": [4500, 4500], "counters": {"bytes": 5 << 30,
             "packets": 4_000_000}, "lifetime_left": {"soft": 3000.5, "hard": 3500}},
            {"spi": 0xC0000002, "encap": [4500, 4500], "counters": {"bytes": 3 * 1024 * 1024 // 2,
             "packets": 1100}, "lifetime_left": {"soft": 2900.0, "hard": 3500}},
        ],
        "ike": {
            "ike_sas": [
                {
                    "name": "rw", "state": "established", "initiator": True,
                    "spi_i": "00112233aabbccdd", "spi_r": "8899aabbccddeeff",
                    "local": "192.0.2.129[4500]", "remote": "192.0.2.2[4500]",
                    "local_id": "carol@example.org", "remote_id": "192.0.2.2",
                    "proposal": "aes256-sha256-modp2048", "nat_local": True,
                    "nat_remote": False, "local_vips": ["10.3.0.7"], "remote_vips": [],
                    "rekey_in": 2 * 86400 + 3 * 3600, "reauth_in": 600, "expires_in": None,
                    "children": [
                        {"name": "home", "state": "installed", "reqid": 4, "mode": "tunnel",
                         "spi_in": "c0000001", "spi_out": "c0000002",
                         "proposal": "aes256-sha256", "local_ts": ["10.3.0.7/32"],
                         "remote_ts": ["203.0.113.0/24", "2001:db8::/64"]},
                        {"name": "gone", "state": "deleting", "reqid": 5, "mode": "transport",
                         "spi_in": "nothex", "spi_out": "c0000009", "proposal": "",
                         "local_ts": [], "remote_ts": []},
                    ],
                },
                {"name": "gw", "state": "connecting", "initiator": False, "spi_i": "01",
                 "spi_r": "02", "local": "192.0.2.1[500]", "remote": "192.0.2.9[500]",
                 "remote_id": "", "proposal": "", "remote_vips": ["10.3.0.8"]},
            ],
            "pools": [
                {"name": "vpn", "range": "10.3.0.1-10.3.0.254", "online": 1, "offline": 1,
                 "leases": [{"address": "10.3.0.8", "identity": "dave@example.org",
                             "online": 1},
                            {"address": "10.3.0.9", "identity": "eve@example.org",
                             "online": 0}]},
                {"name": "empty", "range": "10.4.0.1-10.4.0.9", "online": 0, "offline": 0,
                 "leases": []},
            ],
            "connections": [{"name": "rw"}, {"name": "gw"}],
        },
    }  # fmt: skip


def test_vips_nat_pools_and_large_counters() -> None:
    lines = ike_cmd.status_lines(_doc())
    rw, gw = lines[1].split("\n"), lines[2].split("\n")
    head = rw[0]
    assert "192.0.2.129[4500] carol@example.org ... 192.0.2.2[4500]," in head  # id = address
    assert "spi 00112233aabbccdd_i* 8899aabbccddeeff_r," in head
    assert "rekey in 2d03h, reauth in 600s, expires in -, vip 10.3.0.7, NAT-T" in head
    home = rw[1]
    assert home.startswith("    home: INSTALLED, reqid 4, TUNNEL-in-UDP, aes256-sha256, ")
    assert "10.3.0.7/32 === 203.0.113.0/24,2001:db8::/64" in home
    assert home.endswith("in 5.0 GiB 4000000 pkts, out 1.5 MiB 1100 pkts, rekey in 2900s")
    gone = rw[2]
    assert gone.startswith("    gone: DELETING, reqid 5, TRANSPORT, -, spi in nothex ")
    assert "- === -, in -, out -, rekey in -" in gone
    assert gw == [
        "  gw: CONNECTING, 192.0.2.1[500] ... 192.0.2.9[500], -, spi 01_i 02_r*, "
        "rekey in -, expires in -, vip 10.3.0.8 (peer)"
    ]
    assert lines[3:] == [
        "Pools (2):",
        "  vpn: 10.3.0.1-10.3.0.254, 1 online, 1 offline: 10.3.0.8 dave@example.org, "
        "10.3.0.9 eve@example.org (offline)",
        "  empty: 10.4.0.1-10.4.0.9, 0 online, 0 offline",
        "Connections (2): rw, gw",
    ]


def test_sizes_and_durations() -> None:
    assert [ike_cmd._size(v) for v in (0, 1023, 1024, 1536 * 1024, 3 << 40, None, True)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 MiB", "3072.0 GiB", "-", "-",
    ]  # fmt: skip
    assert [ike_cmd._secs(v) for v in (-5, 59.9, 3600, 86399, 86400 * 3 + 7200, "x")] == [
        "0s", "59s", "1h00m", "23h59m", "3d02h", "-",
    ]  # fmt: skip


def test_no_ike_section_without_ike() -> None:
    assert ike_cmd.status_lines({"sas": []}) == []
    assert ike_cmd.sad_index({"sas": [{"spi": "x"}, "junk", {"spi": 7}]}) == {7: {"spi": 7}}
