"""Faults on a live tunnel between two pyipsec daemons keyed by ``pyipsec setkey -f``
(issue 5's evidence list; setup in ``daemon_pair.py``):

- replay: one ESP packet captured on the veth (AF_PACKET) and sent again several times
  is dropped by the receiver and counted exactly, while a concurrent ping goes on;
- wrong key: the receiver holds a different HMAC key for one SA; every packet is an ICV
  failure (XfrmInStateProtoError), counted, and the daemon stays up;
- restart: after one daemon is killed, a fresh setkey file on both sides (new SPIs and
  keys) restores traffic; restarting one side with the *same* file makes its outbound
  sequence numbers start at 1 again, and the peer's still-running inbound SA drops them
  as replays (RFC 4303 §3.4.3) until the counter passes the old top of the window.
  Manual keying has no way out of that but new SAs: that is what IKE is for.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from daemon_pair import Layout, Pair, SaKeys, daemon_pair, setkey_text

pytestmark = [pytest.mark.root, pytest.mark.timeout(60)]

SEQ_ERROR = "XfrmInStateSeqError"
PROTO_ERROR = "XfrmInStateProtoError"

# Waits on the veth for one outgoing ESP packet (raw or in UDP 4500) of the given SPI,
# then sends that very frame again COUNT times, from the same veth, so the peer's
# receive path sees exact copies. Prints the sequence number it replayed.
_REPLAYER = textwrap.dedent(
    """
    import socket, struct, sys, time
    dev, spi, count = sys.argv[1], int(sys.argv[2], 0), int(sys.argv[3])
    ETH_P_ALL, PACKET_OUTGOING = 0x0003, 4
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((dev, 0))
    s.settimeout(10)
    print("ready", flush=True)

    def esp_of(frame):
        etype = struct.unpack_from("!H", frame, 12)[0]
        if etype == 0x0800:
            proto, off = frame[23], 14 + (frame[14] & 0x0F) * 4
        elif etype == 0x86DD:
            proto, off = frame[20], 14 + 40
        else:
            return None
        if proto == 17 and struct.unpack_from("!H", frame, off + 2)[0] == 4500:
            off += 8
        elif proto != 50:
            return None
        return frame[off:off + 8]

    def fix_udp_checksum(frame):
        # An outgoing frame is seen before checksum offload fills the UDP checksum in;
        # compute it, as the wire would carry it (RFC 768 pseudo-header).
        frame = bytearray(frame)
        if struct.unpack_from("!H", frame, 12)[0] == 0x0800:
            off = 14 + (frame[14] & 0x0F) * 4
            pseudo = bytes(frame[26:34])
        else:
            off = 54
            pseudo = bytes(frame[22:54])
        length = struct.unpack_from("!H", frame, off + 4)[0]
        pseudo += struct.pack("!HH", 17, length) if len(pseudo) == 8 else struct.pack(
            "!IxxxB", length, 17)
        frame[off + 6:off + 8] = bytes(2)
        data = pseudo + bytes(frame[off:off + length])
        data += bytes(len(data) % 2)
        total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        struct.pack_into("!H", frame, off + 6, (~total & 0xFFFF) or 0xFFFF)
        return bytes(frame)

    while True:
        frame, addr = s.recvfrom(65535)
        esp = esp_of(frame) if addr[2] == PACKET_OUTGOING else None
        if esp and len(esp) == 8 and struct.unpack("!II", esp)[0] == spi:
            break
    if frame[23 if struct.unpack_from("!H", frame, 12)[0] == 0x0800 else 20] == 17:
        frame = fix_udp_checksum(frame)
    time.sleep(0.3)  # the original is received first
    for _ in range(count):
        s.send(frame)
        time.sleep(0.05)
    print(struct.unpack("!II", esp)[1], flush=True)
    """
)


def _stat(pair: Pair, side: str, name: str) -> int:
    value: int = pair.status(side)["stats"].get(name, 0)
    return value


@pytest.mark.parametrize(
    ("outer", "encap"),
    [(4, False), (4, True), (6, True)],
    ids=["v4-esp", "v4-udp-encap", "v6-udp-encap"],
)
def test_replayed_packet_is_dropped_and_counted(tmp_path: Path, outer: int, encap: bool) -> None:
    layout = Layout.of(outer=outer, inner=outer, encap=encap)
    spi = layout.a_to_b.spi
    injected = 5
    (tmp_path / "replay.py").write_text(_REPLAYER)
    with daemon_pair(tmp_path) as pair:
        pair.load(layout)
        host_b = layout.hosts[1]
        assert " 0% packet loss" in pair.ping("a", host_b, count=2), pair.logs()
        before = pair.sa("b", spi)["counters"]
        replayer = pair.ns("a").popen(
            [sys.executable, str(tmp_path / "replay.py"), pair.veths[0], hex(spi), str(injected)],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert replayer.stdout is not None
        assert replayer.stdout.readline().strip() == b"ready"
        # The ping runs through the injection: its first request is the packet replayed.
        ping = pair.ping("a", host_b, count=10, interval=0.1)
        seq = int(replayer.stdout.readline())
        assert replayer.wait(10) == 0
        assert " 0% packet loss" in ping, ping
        after = pair.sa("b", spi)["counters"]
        assert after["replay"] - before["replay"] == injected
        assert after["packets"] - before["packets"] == 10  # every echo request, once
        assert after["integrity_failed"] == 0
        assert _stat(pair, "b", SEQ_ERROR) == injected
        print(f"\nreplayed ESP seq {seq} of SPI 0x{spi:x} {injected} times: b dropped "
              f"{after['replay'] - before['replay']} ({SEQ_ERROR}), ping: 0% loss")  # fmt: skip


def test_wrong_key_counts_icv_failures(tmp_path: Path) -> None:
    good = Layout.of()
    # b believes SA a->b has another HMAC key: same SPI, same cipher key.
    bad_keys = SaKeys(
        good.a_to_b.spi, good.a_to_b.enc_key, bytes(b ^ 0x5A for b in good.a_to_b.integ_key)
    )
    bad = Layout(good.outer, good.inner, good.mode, good.encap, good.alg, bad_keys, good.b_to_a)
    spi = good.a_to_b.spi
    with daemon_pair(tmp_path) as pair:
        pair.setkey("a", setkey_text(good, "a"))
        pair.setkey("b", setkey_text(bad, "b"))
        ping = pair.ping("a", good.hosts[1], count=4, interval=0.1)
        assert "100% packet loss" in ping, ping
        counters = pair.sa("b", spi)["counters"]
        assert counters["integrity_failed"] == 4
        assert counters["packets"] == 0
        assert _stat(pair, "b", PROTO_ERROR) == 4
        daemon_b = pair.sides["b"].proc
        assert daemon_b is not None and daemon_b.poll() is None
        print(f"\nwrong HMAC key on b: 4 pings lost, b counted {PROTO_ERROR}=4, still running")
        # The right key (a fresh file, as an operator would do) brings traffic back.
        pair.setkey("b", setkey_text(good, "b"))
        assert " 0% packet loss" in pair.ping("a", good.hosts[1], count=2)
        assert pair.status("b")["daemon"]["pid"] == daemon_b.pid
        assert _stat(pair, "b", PROTO_ERROR) == 4


def test_restart_needs_new_sas(tmp_path: Path) -> None:
    old = Layout.of(spis=(0x1001, 0x2002), seed=1)
    new = Layout.of(spis=(0x3003, 0x4004), seed=2)
    host_b = old.hosts[1]
    with daemon_pair(tmp_path) as pair:
        pair.load(old)
        assert " 0% packet loss" in pair.ping("a", host_b, count=2), pair.logs()

        # a dies without any cleanup; b keeps running with the old SAs.
        assert pair.stop("a", signal.SIGKILL) == -signal.SIGKILL
        assert "100% packet loss" in pair.ping("b", old.hosts[0], count=1)

        # Restart both and key them with a fresh file: new SPIs, new keys.
        assert pair.stop("b") == 0
        pair.start("a")
        pair.start("b")
        pair.load(new)
        sent = 12
        assert " 0% packet loss" in pair.ping("a", host_b, count=sent, interval=0.05)
        # Counts come from the sender's own SA (what it really encrypted), so nothing
        # else crossing the tunnel can throw them off.
        top = pair.sa("b", new.a_to_b.spi)["counters"]["packets"]
        assert top == pair.sa("a", new.a_to_b.spi)["counters"]["packets"] >= sent

        # Restart a alone with the same file: its SA starts again at seq 1, and b's
        # inbound SA (top of window = top) must drop 1..top as replays (RFC 4303 §3.4.3:
        # a duplicate, or left of the window, is discarded and counted).
        assert pair.stop("a") == 0
        pair.start("a")
        pair.load(new, "a")
        before = pair.sa("b", new.a_to_b.spi)["counters"]
        seq_errors = _stat(pair, "b", SEQ_ERROR)
        probes = 5
        ping = pair.ping("a", host_b, count=probes, interval=0.1)
        assert "100% packet loss" in ping, ping
        after = pair.sa("b", new.a_to_b.spi)["counters"]
        resent = pair.sa("a", new.a_to_b.spi)["counters"]["packets"]
        assert probes <= resent < top
        assert after["replay"] - before["replay"] == resent
        assert after["packets"] == before["packets"]
        assert after["integrity_failed"] == 0
        assert _stat(pair, "b", SEQ_ERROR) - seq_errors == resent
        print(f"\nsame setkey file after a restart of a: b's SA 0x{new.a_to_b.spi:x} "
              f"(window top {top}) dropped {resent}/{resent} packets with seq 1..{resent} "
              f"as replays ({SEQ_ERROR}) — RFC 4303 §3.4.3; manual keys need new SAs")  # fmt: skip

        # The window only refuses what it has seen: once a's counter passes the old top,
        # b accepts again. Nothing but that counter stands between a restarted
        # manually keyed sender and its peer (and with GCM the nonces would repeat).
        ping = pair.ping("a", host_b, count=top - resent + 2, interval=0.05)
        final = pair.sa("b", new.a_to_b.spi)["counters"]
        total = pair.sa("a", new.a_to_b.spi)["counters"]["packets"]
        assert total > top
        assert final["replay"] - before["replay"] == top
        assert final["packets"] - after["packets"] == total - top
        print(
            f"after {top} dropped packets a's sequence numbers passed {top}: "
            f"accepted again ({ping.splitlines()[-2].strip()})"
        )
