"""strongSwan's charon in a network namespace, for the root interop tests.

Debian's charon (``/usr/lib/ipsec/charon``) with the ``kernel-libipsec`` plugin: ESP in
userspace through its own TUN (``ipsec0``), always in UDP 4500 (libipsec needs UDP
encapsulation, so charon pretends to be behind a NAT). Each instance:

- gets its own strongswan.conf (``STRONGSWAN_CONF``) listing only the plugins it needs,
  ``kernel-libipsec`` before ``kernel-netlink`` (the first IPsec backend loaded wins;
  kernel-netlink still does routes), short retransmission timers, and a file log;
- its own VICI socket in the work directory, which ``swanctl --uri`` talks to;
- a private /run (``unshare -m`` + tmpfs), because its pid file path is compiled in.

The packages are installed by ``scripts/install-system-deps.sh``
(``DEBIAN_FRONTEND=noninteractive``; an instance the package starts is stopped there).
``Charon.close`` (also on errors) stops the process group; the namespace's own
cleanup kills anything left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from netns import Netns

CHARON = "/usr/lib/ipsec/charon"
SWANCTL = "/usr/sbin/swanctl"
PLUGIN_DIR = Path("/usr/lib/ipsec/plugins")
PLUGINS = (
    "random nonce openssl aes sha1 sha2 hmac gcm curve25519 gmp kdf x509 pem pkcs1 pkcs8 "
    "pubkey constraints kernel-libipsec kernel-netlink socket-default vici"
)

_STRONGSWAN_CONF = """\
charon {{
  load = {plugins}
  install_virtual_ip = no
  retransmit_timeout = 1.0
  retransmit_base = 1.4
  retransmit_tries = 2
  plugins {{
    vici {{
      socket = unix://{vici}
    }}
  }}
  filelog {{
    test {{
      path = {log}
      time_format = %H:%M:%S
      # Unbuffered, so tests can wait on a log line as soon as charon writes it.
      flush_line = yes
      default = 1
      ike = 2
      cfg = 2
      knl = 1
    }}
  }}
}}
"""


def missing() -> str | None:
    """The Debian package that is missing for these tests, or None."""
    if not os.access(CHARON, os.X_OK):
        return "strongswan-charon"
    if not os.access(SWANCTL, os.X_OK):
        return "strongswan-swanctl"
    if not (PLUGIN_DIR / "libstrongswan-kernel-libipsec.so").exists():
        return "libcharon-extra-plugins"
    return None


def wait_for(check: Callable[[], bool], what: str, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-4000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


class Charon:
    """One charon in ``ns``, configured from ``swanctl.conf`` text in ``work``."""

    def __init__(self, ns: Netns, work: Path) -> None:
        self.ns = ns
        self.work = work
        self.vici = work / "charon.vici"
        self.log = work / "charon.log"
        self.uri = f"unix://{self.vici}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, swanctl_conf: str, timeout: float = 15.0) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        conf = self.work / "strongswan.conf"
        conf.write_text(_STRONGSWAN_CONF.format(plugins=PLUGINS, vici=self.vici, log=self.log))
        (self.work / "swanctl.conf").write_text(swanctl_conf)
        env = dict(os.environ, STRONGSWAN_CONF=str(conf), SWANCTL_DIR=str(self.work))
        script = f"mount -t tmpfs charon-run /run && exec {CHARON}"
        with (self.work / "charon.stderr").open("wb") as err:
            self.proc = subprocess.Popen(
                self.ns.cmd("unshare", "-m", "sh", "-c", script),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,  # its own process group: stopped as one
            )
        wait_for(self.vici.exists, "charon's VICI socket", timeout, self.log)
        self.swanctl("--load-all", "--noprompt", "--file", str(self.work / "swanctl.conf"))

    def swanctl(self, *args: str, check: bool = True, timeout: float = 30) -> str:
        env = dict(os.environ, SWANCTL_DIR=str(self.work))
        proc = subprocess.run(
            self.ns.cmd(SWANCTL, *args, "--uri", self.uri),
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"swanctl {' '.join(args)} failed: {proc.stdout}{proc.stderr}\n"
                + self.log.read_text(errors="replace")[-4000:]
            )
        return proc.stdout

    def list_sas(self) -> str:
        return self.swanctl("--list-sas", check=False)

    def close(self) -> None:
        proc = self.proc
        self.proc = None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
