"""Live IKEv2 interop with strongSwan: pyipsec's daemon against charon (kernel-libipsec).

    ns py (pyipsec): veth 192.0.2.1/24   lo 198.51.100.1/32 (protected)
    ns sw (charon):  veth 192.0.2.2/24   lo 203.0.113.1/32  (protected)

pyipsec runs as ``pyipsec daemon --config swanctl.conf`` (its TUN, its routes, IKE in
the daemon); charon runs as in ``strongswan.py``. charon's userspace data plane always
uses ESP in UDP 4500 (it fakes NAT detection), so pyipsec follows it to port 4500 and
encapsulates its own ESP (RFC 3948). Each case: the tunnel comes up (either side
initiating), pings go both ways, a TCP transfer with a SHA-256 check goes both ways,
both sides list the same SPIs, and ``pyipsec down`` takes the SAs down on both sides.
Everything (daemons, charons, namespaces) is stopped whatever happens.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from interop_pair import PY_GW, PY_ID, PY_NET, SW_GW, SW_ID, SW_NET, Pyipsec, interop_pair
from netns import Netns, namespaces
from pki import cn, dns, make_cert
from strongswan import Charon, missing, wait_for

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(90)]

TRANSFER = 1024 * 1024
PSK = base64.b64encode(os.urandom(32)).decode()  # a fresh PSK per run

_SERVER = textwrap.dedent(
    """
    import hashlib, socket, sys
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((sys.argv[1], int(sys.argv[2])))
    srv.listen(1)
    print("ready", flush=True)
    conn, _ = srv.accept()
    h = hashlib.sha256()
    while chunk := conn.recv(1 << 16):
        h.update(chunk)
    conn.sendall(h.hexdigest().encode())
    conn.close()
    """
)
_CLIENT = textwrap.dedent(
    """
    import hashlib, os, socket, sys
    data = os.urandom(int(sys.argv[4]))
    s = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=20,
                                 source_address=(sys.argv[1], 0))
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    reply = s.recv(100).decode()
    print(hashlib.sha256(data).hexdigest(), reply)
    """
)


def _conn(
    me: str,
    peer: str,
    me_id: str,
    peer_id: str,
    mine: str,
    theirs: str,
    *,
    proposals: str,
    esp: str,
    auth: str,
    extra: str = "",
    child_extra: str = "",
) -> str:
    secrets = ""
    if auth == "psk":
        # A fresh PSK per test run, in swanctl's base64 form.
        secrets = (
            f"secrets {{\n  ike-gw {{\n    id-1 = {me_id}\n    id-2 = {peer_id}\n"
            f"    secret = 0s{PSK}\n  }}\n}}\n"
        )
    return (
        textwrap.dedent(
            f"""\
        connections {{
          gw {{
            version = 2
            local_addrs = {me}
            remote_addrs = {peer}
            proposals = {proposals}
            dpd_delay = 0
            {extra}
            local {{
              auth = {auth}
              id = {me_id}
            }}
            remote {{
              auth = {auth}
              id = {peer_id}
            }}
            children {{
              net {{
                local_ts = {mine}/32
                remote_ts = {theirs}/32
                esp_proposals = {esp}
                mode = tunnel
                {child_extra}
              }}
            }}
          }}
        }}
        """
        )
        + secrets
    )


def _write_pki(py_dir: Path, sw_dir: Path, kind: str) -> None:
    """A CA and one certificate per side (SAN dNSName = the side's id), swanctl layout."""
    now = datetime.now(UTC)
    window = {"not_before": now - timedelta(days=1), "not_after": now + timedelta(days=30)}

    def new_key() -> Any:
        if kind == "rsa":
            return rsa.generate_private_key(65537, 2048)
        return ec.generate_private_key(ec.SECP256R1())

    ca_key = new_key()
    ca = make_cert(cn("Interop CA"), ca_key, ca=True, key_usage="ca", **window)
    pem = serialization.Encoding.PEM
    for d, ident in ((py_dir, PY_ID), (sw_dir, SW_ID)):
        for sub in ("x509", "x509ca", "private"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        key = new_key()
        cert = make_cert(cn(ident), key, ca, ca_key, san=[dns(ident)], **window)
        (d / "x509" / "me.pem").write_bytes(cert.public_bytes(pem))
        (d / "x509ca" / "ca.pem").write_bytes(ca.public_bytes(pem))
        (d / "private" / "me.pem").write_bytes(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )


def _ping(ns: Netns, src: str, dst: str) -> str:
    return ns.run("ping", "-c", "3", "-i", "0.2", "-W", "2", "-I", src, dst, check=False)


def _transfer(
    server_ns: Netns, client_ns: Netns, server_ip: str, client_ip: str, work: Path, port: int
) -> None:
    (work / "server.py").write_text(_SERVER)
    (work / "client.py").write_text(_CLIENT)
    server = server_ns.popen(
        [sys.executable, str(work / "server.py"), server_ip, str(port)], stdout=subprocess.PIPE
    )
    assert server.stdout is not None
    assert server.stdout.readline().strip() == b"ready"
    out = client_ns.run(
        sys.executable,
        str(work / "client.py"),
        client_ip,
        server_ip,
        str(port),
        str(TRANSFER),
        timeout=40,
    )
    sent, received = out.split()
    assert sent == received  # the SHA-256 of what arrived is the SHA-256 of what was sent
    server.wait(10)


def _check_traffic(py: Pyipsec, sw: Charon, work: Path) -> None:
    ping = _ping(py.ns, PY_NET, SW_NET)
    assert " 0% packet loss" in ping, ping + py.tail() + sw.log.read_text()[-3000:]
    ping = _ping(sw.ns, SW_NET, PY_NET)
    assert " 0% packet loss" in ping, ping + py.tail()
    _transfer(sw.ns, py.ns, SW_NET, PY_NET, work, 5001)  # pyipsec -> strongSwan
    _transfer(py.ns, sw.ns, PY_NET, SW_NET, work, 5002)  # strongSwan -> pyipsec


def _check_same_sas(py: Pyipsec, sw: Charon, proposal: str) -> dict[str, Any]:
    doc = py.status()
    (ike,) = doc["ike"]["ike_sas"]
    assert ike["state"] == "established" and ike["remote_id"] == SW_ID
    assert ike["proposal"] == proposal
    (child,) = ike["children"]
    listing = sw.list_sas()
    # charon lists the same IKE SPIs and the CHILD SA's SPIs (its in is our out).
    assert ike["spi_i"] in listing and ike["spi_r"] in listing, listing
    assert child["spi_in"] in listing and child["spi_out"] in listing, listing
    # Both ESP SAs run in UDP 4500 (RFC 3948), the way kernel-libipsec sends.
    encaps = {tuple(sa["encap"]) for sa in doc["sas"] if sa["encap"]}
    assert encaps == {(4500, 4500)} and len(doc["sas"]) == 2
    return ike


GCM_X25519, CBC_MODP = "aes128gcm16-prfsha256-x25519", "aes256-sha256-modp2048"
CASES = [
    pytest.param("pyipsec", "psk", GCM_X25519, "aes128gcm16", id="py-init-psk-gcm-x25519"),
    pytest.param("charon", "psk", CBC_MODP, "aes256-sha256", id="sw-init-psk-cbc-modp2048"),
    pytest.param("pyipsec", "ecdsa", GCM_X25519, "aes128gcm16", id="py-init-ecdsa-p256"),
    pytest.param("charon", "rsa", CBC_MODP, "aes128gcm16", id="sw-init-rsa-2048"),
    pytest.param("trap", "psk", GCM_X25519, "aes128gcm16", id="py-trap-psk"),
]


@pytest.mark.parametrize(("initiator", "auth", "proposals", "esp"), CASES)
def test_interop(tmp_path: Path, initiator: str, auth: str, proposals: str, esp: str) -> None:
    reason = missing()
    if reason is not None:
        pytest.skip(f"needs the Debian package {reason} (scripts/install-system-deps.sh)")
    swanctl_auth = "psk" if auth == "psk" else "pubkey"
    if auth != "psk":
        _write_pki(tmp_path / "pyipsec", tmp_path / "charon", auth)
    with interop_pair(tmp_path) as (py, sw):
        # An RSA-2048 IKE_AUTH (cert + CERTREQ) passes charon's 1280-byte fragment size:
        # that case runs through RFC 7383 fragmentation both ways.
        extra = "send_cert = always\n    fragmentation = yes"
        sw.start(
            _conn(
                SW_GW,
                PY_GW,
                SW_ID,
                PY_ID,
                SW_NET,
                PY_NET,
                proposals=proposals,
                esp=esp,
                auth=swanctl_auth,
                extra=extra,
            )
        )
        py.start(
            _conn(
                PY_GW,
                SW_GW,
                PY_ID,
                SW_ID,
                PY_NET,
                SW_NET,
                proposals=proposals,
                esp=esp,
                auth=swanctl_auth,
                child_extra="start_action = trap" if initiator == "trap" else "",
            )
        )
        started = time.monotonic()
        if initiator == "pyipsec":
            out = py.cli("up", "gw", "--timeout", "20").stdout
            assert "ESTABLISHED" in out and "INSTALLED" in out, out
        elif initiator == "trap":
            # The trap policy makes the engine ACQUIRE on the first packet; IKE in the
            # daemon negotiates, and the held packet goes out once the SA is there.
            assert py.status()["ike"]["traps"][0]["name"] == "gw"
            _ping(py.ns, PY_NET, SW_NET)
        else:
            sw.swanctl("--initiate", "--child", "net", "--ike", "gw", "--timeout", "20")
        wait_for(lambda: "INSTALLED" in sw.list_sas(), "charon's CHILD SA", 20, sw.log)
        assert time.monotonic() - started < 20
        ike = _check_same_sas(py, sw, proposals)
        assert ike["initiator"] is (initiator != "charon")
        _check_traffic(py, sw, tmp_path)
        text = py.cli("status").stdout
        assert "IKE SAs (1):" in text and "gw: ESTABLISHED" in text, text
        if auth == "rsa":
            # RFC 7383: charon split its IKE_AUTH message (cert + CERTREQ over 1280 bytes)
            # and pyipsec reassembled it, or nothing above would have worked.
            charon_log = sw.log.read_text(errors="replace")
            assert "splitting IKE message" in charon_log, "charon sent no fragments"

        py.cli("down", "gw")
        wait_for(lambda: "gw:" not in sw.list_sas(), "charon to drop the IKE SA", 10, sw.log)
        doc = py.status()
        assert doc["ike"]["ike_sas"] == [] and doc["sas"] == []


def test_daemon_config_errors_name_file_and_line(tmp_path: Path) -> None:
    """``pyipsec daemon --config`` with a bad value: exit status 1, file:line in the message,
    nothing left running (the daemon starts in a namespace of its own)."""
    conf = tmp_path / "swanctl.conf"
    conf.write_text("connections {\n  gw {\n    remote_addrs = 192.0.2.2\n    proposals = rot13\n")
    conf.write_text(conf.read_text() + "  }\n}\n")
    with namespaces("cfg") as (ns,):
        for detach in ([], ["--foreground"]):
            proc = subprocess.run(
                ns.cmd(sys.executable, "-m", "pyipsec.cli.main", "daemon", "--config", str(conf),
                       "--run-dir", str(tmp_path / "run"), *detach),
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert proc.returncode == 1, proc.stderr
            assert f"{conf}:4" in proc.stderr and "proposals" in proc.stderr, proc.stderr
            assert ns.run("ip", "-o", "link", "show", "pyipsec0", check=False) == ""


def test_sigterm_deletes_the_ike_sa_at_charon(tmp_path: Path) -> None:
    """On SIGTERM the daemon sends a Delete for its IKE SA before its sockets close
    (io.ike_service.IkeService.shutdown), so charon holds no orphan afterwards."""
    reason = missing()
    if reason is not None:
        pytest.skip(f"needs the Debian package {reason} (scripts/install-system-deps.sh)")
    with interop_pair(tmp_path) as (py, sw):
        algs = {"proposals": GCM_X25519, "esp": "aes128gcm16", "auth": "psk"}
        sw.start(_conn(SW_GW, PY_GW, SW_ID, PY_ID, SW_NET, PY_NET, **algs))
        py.start(_conn(PY_GW, SW_GW, PY_ID, SW_ID, PY_NET, SW_NET, **algs))
        out = py.cli("up", "gw", "--timeout", "20").stdout
        assert "ESTABLISHED" in out, out
        wait_for(lambda: "ESTABLISHED" in sw.list_sas(), "charon's IKE SA", 10, sw.log)
        proc = py.proc
        assert proc is not None
        started = time.monotonic()
        proc.terminate()
        assert proc.wait(10) == 0
        assert time.monotonic() - started < 5  # the Delete's wait is bounded
        wait_for(lambda: "gw:" not in sw.list_sas(), "charon to drop the IKE SA", 5, sw.log)
        charon_log = sw.log.read_text(errors="replace")
        assert "received DELETE for IKE_SA" in charon_log, charon_log[-3000:]
        assert "deleting IKE SA" in py.tail() and "on shutdown" in py.tail()
