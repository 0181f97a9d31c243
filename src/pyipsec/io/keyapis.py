"""The seed's two key-management socket APIs, served on the daemon's run dir.

``RUN_DIR/pfkey.sock`` carries PF_KEY v2 (one message per datagram, RFC 2367) and
``RUN_DIR/xfrm.sock`` netlink-framed xfrm_user messages; both are root-only
SOCK_SEQPACKET sockets (``io.control.SeqpacketServer``) in front of the daemon's
SAD/SPD. Engine events reach both: PF_KEY broadcasts (ACQUIRE, EXPIRE, ...) and xfrm
notifications to the connections subscribed to a group.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pyipsec.engine.events import Event
from pyipsec.keyapi.pfkey_server import PfkeyServer
from pyipsec.keyapi.xfrm_server import XfrmServer

if TYPE_CHECKING:
    from pyipsec.io.control import Connection
    from pyipsec.io.daemon import Daemon


class _XfrmHandler:
    """The xfrm server as a ``Handler``: a request that changed the SAD/SPD is answered
    first, then what it unblocked (held packets, notifications) runs, as the kernel
    ACKs before it multicasts."""

    def __init__(self, server: XfrmServer, daemon: Daemon) -> None:
        self.server = server
        self.daemon = daemon

    def handle(self, data: bytes, conn: Connection) -> list[bytes]:
        replies = self.server.handle(data, conn)
        self.daemon.loop.call_later(0, self.daemon.after_key_management)
        return replies

    def closed(self, conn: Connection) -> None:
        self.server.closed(conn)


def serve_key_apis(daemon: Daemon) -> None:
    """Open pfkey.sock and xfrm.sock onto ``daemon.engine`` and feed them its events."""
    pfkey = PfkeyServer(
        daemon.engine, now=time.monotonic, wall=time.time, after_change=daemon.after_key_management
    )
    pfkey_sock = daemon.add_server("pfkey.sock", pfkey)
    pfkey.attach(lambda: pfkey_sock.connections)
    daemon.event_hooks.append(pfkey.on_event)

    xfrm = XfrmServer(daemon.engine, time.monotonic)
    xfrm_sock = daemon.add_server("xfrm.sock", _XfrmHandler(xfrm, daemon))

    def publish(event: Event) -> None:
        xfrm.publish(xfrm_sock, (event,))

    daemon.event_hooks.append(publish)
