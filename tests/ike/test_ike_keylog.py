"""The optional key log (Wireshark's ``ikev2_decryption_table`` and ``esp_sa`` records),
checked by an independent implementation: tshark decrypts an IKE exchange and ESP
traffic of two in-memory endpoints, written to a pcap, with nothing but the key log.
That also checks our IKE crypto (SK payloads, SKEYSEED, KEYMAT) against Wireshark's.
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import subprocess
from pathlib import Path

import pytest
from ike_fixtures import GW_A, GW_B, HOST_A, HOST_B, NET_A, NET_B, Pair, child, conn
from scapy.layers.inet import IP, UDP
from scapy.packet import Raw
from scapy.utils import wrpcap

from pyipsec.engine.actions import Deliver, Transmit
from pyipsec.ike.v2.keylog import ESP_TABLE, IKE_TABLE, KeyLog, esp_record, ike_record
from pyipsec.ike.v2.manager import IkeManager

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def tunnel_pair(ike: str, esp: str) -> Pair:
    a = conn(GW_A, GW_B, ike, children=(child(NET_A, NET_B, esp),))
    b = conn(GW_B, GW_A, ike, children=(child(NET_B, NET_A, esp),))
    return Pair(a, b)


def run_traffic(pair: Pair, pcap: Path) -> int:
    """IKE_SA_INIT, IKE_AUTH, a DPD and a CHILD rekey, with ESP both ways: all to pcap."""
    frames: list[object] = []
    sa_a = pair.a.initiate("gw", 0.0)

    def pump(now: float) -> None:
        start = len(pair.wire)
        pair.pump(now)
        for _, d in pair.wire[start:]:
            frames.append(IP(src=d.src[0], dst=d.dst[0]) / UDP(sport=d.src[1], dport=d.dst[1])
                          / Raw(d.data))  # fmt: skip

    def esp(src: str, dst: str, now: float) -> None:
        inner = bytes(IP(src=src, dst=dst) / UDP(sport=4000, dport=53) / b"key log check")
        tx, rx = (pair.engine_a, pair.engine_b) if src == HOST_A else (pair.engine_b, pair.engine_a)
        action = tx.outbound(inner, now)
        assert isinstance(action, Transmit)
        packed = (ipaddress.ip_address(action.src).packed, ipaddress.ip_address(action.dst).packed)
        got = rx.inbound_esp(action.data, *packed, action.encap, now)
        assert isinstance(got, Deliver)
        frames.append(IP(src=action.src, dst=action.dst, proto=50) / Raw(action.data))

    pump(0.0)
    esp(HOST_A, HOST_B, 1.0)
    esp(HOST_B, HOST_A, 1.0)
    pair.a.dpd(sa_a, 2.0)
    pump(2.0)
    (old,) = sa_a.children.values()
    pair.a.rekey_child(sa_a, old, 3.0)
    pump(3.0)
    esp(HOST_A, HOST_B, 4.0)
    esp(HOST_B, HOST_A, 4.0)
    wrpcap(str(pcap), frames)
    return len(frames)


def tshark(pcap: Path, options: list[str], *fields: str) -> list[list[str]]:
    cmd = ["tshark", "-n", "-r", str(pcap), *options, "-T", "fields"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


@needs_tshark
@pytest.mark.parametrize(
    ("ike", "esp"),
    [
        ("aes128gcm16-prfsha256-x25519", "aes128gcm16"),
        ("aes256-sha256-modp2048", "aes256-sha256"),
        ("aes128-sha1-ecp256", "aes128-sha1"),
    ],
)
def test_tshark_decrypts_ike_and_esp_with_the_key_log(tmp_path: Path, ike: str, esp: str) -> None:
    pair = tunnel_pair(ike, esp)
    keylog = KeyLog()
    pair.a.ctx.keylog = keylog
    pcap = tmp_path / "ike.pcap"
    frames = run_traffic(pair, pcap)
    tables = [t for t, _ in keylog.records]
    assert tables.count(IKE_TABLE) == 1 and tables.count(ESP_TABLE) == 4  # two pairs
    rows = tshark(pcap, keylog.tshark_options(), "frame.number", "isakmp.exchangetype",
                  "isakmp.id.type", "isakmp.auth.method", "isakmp.delete.protoid",
                  "udp.dstport")  # fmt: skip
    assert len(rows) == frames
    by_exchange: dict[str, list[list[str]]] = {}
    for row in rows:
        by_exchange.setdefault(row[1], []).append(row)
    # IKE_AUTH (35), both ways: tshark read the ID and AUTH payloads inside SK.
    auth = by_exchange["35"]
    assert len(auth) == 2 and all(r[2] and r[3] == "2" for r in auth)  # 2: shared key MIC
    # INFORMATIONAL (37): the DPD (empty) and the Delete of the rekeyed pair (ESP = 3).
    assert [r[4] for r in by_exchange["37"]].count("3") == 2
    # ESP: every packet decrypted to the inner UDP datagram to port 53.
    esp_rows = by_exchange[""]
    assert len(esp_rows) == 4 and all(r[5].split(",")[-1] == "53" for r in esp_rows)


@needs_tshark
def test_tshark_cannot_decrypt_with_a_wrong_key_log(tmp_path: Path) -> None:
    pair = tunnel_pair("aes128gcm16-prfsha256-x25519", "aes128gcm16")
    keylog = KeyLog()
    pair.a.ctx.keylog = keylog
    pcap = tmp_path / "ike.pcap"
    run_traffic(pair, pcap)
    # The same records with SK_ei and SK_er swapped: nothing must decrypt.
    wrong = []
    for table, record in keylog.records:
        if table == IKE_TABLE:
            f = record.split(",")
            f[2], f[3] = f[3], f[2]
            record = ",".join(f)
        wrong += ["-o", f"uat:{table}:{record}"]
    rows = tshark(pcap, wrong, "isakmp.exchangetype", "isakmp.id.type", "isakmp.auth.method")
    assert [r for r in rows if r[0] == "35" and (r[1] or r[2])] == []


def test_key_log_is_off_by_default_and_keys_never_reach_the_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pair = tunnel_pair("aes128gcm16-prfsha256-x25519", "aes128gcm16")
    assert pair.a.ctx.keylog is None and pair.b.ctx.keylog is None
    caplog.set_level(logging.DEBUG)
    sa_a = pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    (old,) = sa_a.children.values()
    pair.a.rekey_child(sa_a, old, 1.0)
    pair.a.rekey_ike(sa_a, 2.0)
    pair.pump(2.0)
    assert pair.a.ike_sas and pair.a.ike_sas[0].keys is not None
    text = caplog.text + repr(pair.a.status()) + repr(KeyLog())
    for sa in pair.a.ike_sas:
        assert sa.keys is not None
        for key in (sa.keys.sk_d, sa.keys.sk_ei, sa.keys.sk_er):
            assert key.hex() not in text
    for entry in pair.engine_a.dump_sa():
        assert entry.spec is not None and entry.spec.enc_key.hex() not in text


def test_records_follow_the_table_formats() -> None:
    pair = tunnel_pair("aes256-sha384-x25519", "aes256-sha512")
    sent: list[tuple[str, str]] = []
    pair.b.ctx.keylog = KeyLog(lambda table, record: sent.append((table, record)))
    pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    (sa_b,) = pair.b.ike_sas
    assert sa_b.keys is not None
    assert sent[0] == (IKE_TABLE, ike_record(sa_b))
    fields = sent[0][1].split(",")
    assert fields[:2] == [sa_b.spi_i.hex(), sa_b.spi_r.hex()]
    assert fields[4] == '"AES-CBC-256 [RFC3602]"' and fields[7] == '"HMAC_SHA2_384_192 [RFC4868]"'
    assert bytes.fromhex(fields[5]) == sa_b.keys.sk_ai and len(sa_b.keys.sk_ai) == 48
    esp_records = [r for t, r in sent if t == ESP_TABLE]
    specs = [e.spec for e in pair.engine_b.dump_sa()]
    assert sorted(esp_records) == sorted(esp_record(s) for s in specs if s is not None)
    assert all('"HMAC-SHA-512-256 [RFC4868]"' in r and r.startswith('"IPv4"') for r in esp_records)


def test_algorithms_wireshark_lacks_produce_no_record() -> None:
    pair = tunnel_pair("chacha20poly1305-prfsha256-x25519", "chacha20poly1305")
    keylog = KeyLog()
    pair.a.ctx.keylog = keylog
    pair.a.initiate("gw", 0.0)
    pair.pump(0.0)
    assert len(pair.a.ike_sas) == 1 and keylog.records == []


def test_manager_default_context_has_no_key_log() -> None:
    from pyipsec.engine.processor import Engine

    assert IkeManager(Engine(local_addresses=[GW_A])).ctx.keylog is None
