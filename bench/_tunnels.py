"""Bring up the tunnels the benchmark compares, between the namespaces of ``_netns.pair``.

- ``strongswan``: one charon per namespace with the ``kernel-libipsec`` plugin (ESP in
  userspace, always in UDP 4500), IKEv2 with a PSK, ``aes128gcm16`` for ESP.
- ``pyipsec``: one pyipsec daemon per namespace, SAs and policies installed through the
  engine's key-management API (``add_sa``/``add_policy``), raw ESP or ESP-in-UDP.

Each charon needs its own strongswan.conf (``STRONGSWAN_CONF``), its own VICI socket and a
private /run (its pid file path is compiled in): it runs under ``unshare -m`` with a tmpfs
mounted on /run. kernel-libipsec is loaded before kernel-netlink so that it, not the
kernel's xfrm, becomes the IPsec backend while kernel-netlink still handles routes.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from _netns import INNER_A, INNER_B, UNDERLAY_A, UNDERLAY_B, Netns

CHARON = "/usr/lib/ipsec/charon"
PLUGIN_DIR = Path("/usr/lib/ipsec/plugins")
# Only what the test needs, in an order that makes kernel-libipsec the IPsec backend.
CHARON_PLUGINS = (
    "random nonce openssl aes sha1 sha2 hmac gcm pem pkcs1 x509 pubkey gmp kdf "
    "kernel-libipsec kernel-netlink socket-default vici"
)
SPI_A_TO_B, SPI_B_TO_A = 0x1001, 0x2002

_CHARON_CONF = """\
charon {{
  load = {plugins}
  install_virtual_ip = no
  plugins {{
    kernel-libipsec {{
      mtu = {mtu}
    }}
    vici {{
      socket = unix://{vici}
    }}
  }}
  filelog {{
    bench {{
      path = {log}
      default = 1
    }}
  }}
}}
"""

_SWANCTL_CONF = """\
connections {{
  bench {{
    version = 2
    local_addrs = {me}
    remote_addrs = {peer}
    proposals = aes128-sha256-modp2048
    local {{
      auth = psk
      id = {me_id}
    }}
    remote {{
      auth = psk
      id = {peer_id}
    }}
    children {{
      net {{
        local_ts = {mine}/32
        remote_ts = {theirs}/32
        esp_proposals = aes128gcm16
        mode = tunnel
      }}
    }}
  }}
}}
secrets {{
  ike-bench {{
    id-a = a.bench.example
    id-b = b.bench.example
    secret = 0s{psk}
  }}
}}
"""

_LAUNCHER = """\
import json, sys, time
from pathlib import Path
from pyipsec.cli.main import setup_logging
from pyipsec.engine.processor import Engine
from pyipsec.engine.sad import SASpec
from pyipsec.engine.spd import Policy, Selector, Template
from pyipsec.io.daemon import Daemon, DaemonOptions

cfg = json.loads(sys.argv[1])
setup_logging("warning")
engine = Engine()
now = time.monotonic()
for sa in cfg["sas"]:
    engine.add_sa(SASpec(
        spi=sa["spi"], src=sa["src"], dst=sa["dst"], mode="tunnel",
        enc=sa["enc"], enc_key=bytes.fromhex(sa["enc_key"]),
        integ=sa["integ"], integ_key=bytes.fromhex(sa["integ_key"]),
        encap=tuple(sa["encap"]) if sa["encap"] else None, replay_window=1024,
    ), now)
for p in cfg["policies"]:
    tmpl = Template(mode="tunnel", src=p["tsrc"], dst=p["tdst"])
    engine.add_policy(Policy(p["dir"], Selector(p["src"], p["dst"]), templates=[tmpl]))
Daemon(DaemonOptions(run_dir=Path(cfg["run_dir"]), tun=cfg["tun"]), engine).run()
"""


def missing_strongswan() -> str | None:
    """Why strongSwan cannot run here (a Debian package to install), or None."""
    if not os.access(CHARON, os.X_OK):
        return "strongswan-charon"
    if not os.access("/usr/sbin/swanctl", os.X_OK):
        return "strongswan-swanctl"
    if not (PLUGIN_DIR / "libstrongswan-kernel-libipsec.so").exists():
        return "libcharon-extra-plugins"
    if not (PLUGIN_DIR / "libstrongswan-gcm.so").exists():
        return "libstrongswan-standard-plugins"
    return None


def _wait(check: Callable[[], bool], what: str, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise RuntimeError(f"timed out waiting for {what}\n{tail}")


def start_strongswan(a: Netns, b: Netns, work: Path, mtu: int) -> None:
    """charon in both namespaces; returns once the CHILD_SA is installed on both sides."""
    psk_b64 = base64.b64encode(os.urandom(32)).decode()  # a fresh PSK per run
    sides = (
        (a, "a", UNDERLAY_A, UNDERLAY_B, INNER_A, INNER_B, "a.bench.example", "b.bench.example"),
        (b, "b", UNDERLAY_B, UNDERLAY_A, INNER_B, INNER_A, "b.bench.example", "a.bench.example"),
    )
    uris = {}
    for ns, tag, me, peer, mine, theirs, me_id, peer_id in sides:
        d = work / f"charon-{tag}"
        d.mkdir(parents=True, exist_ok=True)
        vici, log = d / "charon.vici", d / "charon.log"
        (d / "strongswan.conf").write_text(
            _CHARON_CONF.format(plugins=CHARON_PLUGINS, mtu=mtu, vici=vici, log=log)
        )
        (d / "swanctl.conf").write_text(
            _SWANCTL_CONF.format(
                me=me, peer=peer, me_id=me_id, peer_id=peer_id, mine=mine, theirs=theirs,
                psk=psk_b64,
            )
        )  # fmt: skip
        env = dict(os.environ, STRONGSWAN_CONF=str(d / "strongswan.conf"))
        script = f"mount -t tmpfs bench-run /run && exec {CHARON}"
        ns.popen(
            ["unshare", "-m", "sh", "-c", script],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(d / "charon.stderr").open("wb"),
        )
        _wait(vici.exists, f"charon's VICI socket in {tag}", 15, log)
        uri = f"unix://{vici}"
        uris[tag] = uri
        ns.run("swanctl", "--load-all", "--noprompt", "--file", str(d / "swanctl.conf"),
               "--uri", uri)  # fmt: skip
    a.run("swanctl", "--initiate", "--child", "net", "--ike", "bench", "--timeout", "20",
          "--uri", uris["a"], timeout=30)  # fmt: skip

    def installed() -> bool:
        out = b.run("swanctl", "--list-sas", "--uri", uris["b"], check=False)
        return "INSTALLED" in out

    _wait(installed, "the CHILD_SA on b", 15, work / "charon-b" / "charon.log")
    # kernel-libipsec's TUN MTU is fixed at 1400 in this strongSwan; raise it to the same
    # inner MTU as pyipsec's, and keep it only if a full-size DF packet then gets through.
    for ns in (a, b):
        ns.run("ip", "link", "set", "ipsec0", "mtu", str(mtu))
    probe = a.run("ping", "-c", "2", "-W", "2", "-M", "do", "-s", str(mtu - 28),
                  "-I", INNER_A, INNER_B, check=False)  # fmt: skip
    if " 0% packet loss" not in probe:
        for ns in (a, b):
            ns.run("ip", "link", "set", "ipsec0", "mtu", "1400")


def pyipsec_config(side: str, encap: bool, run_dir: Path, keys: dict[int, bytes]) -> str:
    udp = [4500, 4500] if encap else None
    sas: list[dict[str, object]] = [
        {"spi": SPI_A_TO_B, "src": UNDERLAY_A, "dst": UNDERLAY_B},
        {"spi": SPI_B_TO_A, "src": UNDERLAY_B, "dst": UNDERLAY_A},
    ]
    for sa in sas:
        spi = int(str(sa["spi"]))
        sa.update(enc="aes128gcm16", enc_key=keys[spi].hex(), integ=None, integ_key="", encap=udp)
    if side == "a":
        me, peer, mine, theirs = UNDERLAY_A, UNDERLAY_B, INNER_A, INNER_B
    else:
        me, peer, mine, theirs = UNDERLAY_B, UNDERLAY_A, INNER_B, INNER_A
    policies = [
        {"dir": "out", "src": mine, "dst": theirs, "tsrc": me, "tdst": peer},
        {"dir": "in", "src": theirs, "dst": mine, "tsrc": peer, "tdst": me},
    ]
    return json.dumps({"sas": sas, "policies": policies, "run_dir": str(run_dir), "tun": "ipsec0"})


def start_pyipsec(a: Netns, b: Netns, work: Path, encap: bool) -> dict[str, int]:
    """A pyipsec daemon in each namespace; returns their pids by side."""
    launcher = work / "launch_pyipsec.py"
    launcher.write_text(_LAUNCHER)
    # Fresh keys per run: 16 bytes of AES key + 4 bytes of salt (RFC 4106 §8.1).
    keys = {SPI_A_TO_B: os.urandom(20), SPI_B_TO_A: os.urandom(20)}
    pids = {}
    kind = "udp" if encap else "esp"
    for side, ns in (("a", a), ("b", b)):
        run_dir = work / f"pyipsec-{kind}-{side}"
        log = work / f"pyipsec-{kind}-{side}.log"
        cfg = pyipsec_config(side, encap, run_dir, keys)
        proc = ns.popen([sys.executable, str(launcher), cfg], stderr=log.open("wb"))
        pid_file = run_dir / "pyipsec.pid"
        _wait(pid_file.exists, f"pyipsec daemon in {side}", 15, log)
        if proc.poll() is not None:
            raise RuntimeError(f"pyipsec daemon in {side} exited:\n{log.read_text()}")
        pids[side] = int(pid_file.read_text())
    return pids


def tun_mtu(ns: Netns, dev: str = "ipsec0") -> int:
    out = ns.run("ip", "-o", "link", "show", dev)
    return int(out.split(" mtu ")[1].split()[0])
