"""PF_KEY end to end: a key manager registers on a real pfkey.sock, an outbound packet
with no SA makes the engine emit ACQUIRE, the client receives it, answers GETSPI +
UPDATE (inbound) and ADD (outbound), and the held packet and the next one leave
protected. The server runs in this process on io.control's SeqpacketServer, its loop
turned by hand between client steps; a second engine plays the peer and decrypts.
"""

from __future__ import annotations

import os
import socket
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, UDP

from pyipsec.engine.actions import Deliver, Hold, Transmit
from pyipsec.engine.processor import Engine
from pyipsec.engine.sad import SASpec
from pyipsec.engine.spd import Policy as EnginePolicy
from pyipsec.engine.spd import Selector, Template
from pyipsec.io.control import SeqpacketServer
from pyipsec.io.daemon import SelectorLoop
from pyipsec.keyapi import pfkey_const as c
from pyipsec.keyapi.pfkey import (
    Address,
    IpsecRequest,
    Key,
    PfkeyMessage,
    Policy,
    Sa,
    Sa2,
    SockAddr,
    SpiRange,
    build_message,
    parse_message,
)
from pyipsec.keyapi.pfkey_server import PfkeyServer

LOCAL, PEER = "192.0.2.1", "192.0.2.2"
LOCAL_NET, REMOTE_NET = "198.51.100.0", "203.0.113.0"


class Clock:
    t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def loop() -> Any:
    lp = SelectorLoop()
    yield lp
    lp.close()


def pump(loop: SelectorLoop, n: int = 5) -> None:
    for _ in range(n):
        loop.run_once(0.01)


def host(exttype: int, addr: str) -> Address:
    a = ip_address(addr)
    return Address(exttype, a, a.max_prefixlen, c.IPSEC_ULPROTO_ANY)


class Client:
    """A key manager's end of pfkey.sock (what racoon does, in a few lines)."""

    def __init__(self, path: Path, pid: int) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(2)
        self.sock.connect(str(path))
        self.pid = pid
        self.seq = 0

    def send(self, msg_type: int, satype: int, *exts: Any, seq: int | None = None) -> int:
        if seq is None:
            self.seq += 1
            seq = self.seq
        self.sock.send(build_message(PfkeyMessage(msg_type, satype, seq, self.pid, 0, exts)))
        return seq

    def recv(self) -> PfkeyMessage:
        return parse_message(self.sock.recv(65536), strict=False)

    def pending(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(65536, socket.MSG_PEEK)
        except BlockingIOError:
            return False
        finally:
            self.sock.settimeout(2)
        return True


def test_acquire_getspi_update_add_then_protected(tmp_path: Path, loop: SelectorLoop) -> None:
    clock = Clock()
    engine = Engine(local_addresses=[LOCAL])
    pfkey = PfkeyServer(engine, now=clock, wall=lambda: 1_700_000_000.0, drain_events=True)
    server = SeqpacketServer(tmp_path / "pfkey.sock", pfkey, loop, allowed_uids=[os.getuid()])
    server.start()
    pfkey.attach(lambda: server.connections)
    ike = Client(tmp_path / "pfkey.sock", pid=501)
    bystander = Client(tmp_path / "pfkey.sock", pid=502)
    pump(loop)
    try:
        # 1. The key manager registers for ESP and learns what the engine supports.
        ike.send(c.SADB_REGISTER, c.SADB_SATYPE_ESP)
        pump(loop)
        reg = ike.recv()
        assert reg.msg_type == c.SADB_REGISTER and reg.errno == 0
        assert reg.supported_encrypt is not None

        # 2. An outbound policy: 198.51.100.0/24 -> 203.0.113.0/24 through LOCAL->PEER.
        request = IpsecRequest(
            c.IPPROTO_ESP,
            c.IPSEC_MODE_TUNNEL,
            c.IPSEC_LEVEL_REQUIRE,
            0,
            SockAddr(ip_address(LOCAL)),
            SockAddr(ip_address(PEER)),
        )
        ike.send(
            c.SADB_X_SPDADD,
            0,
            Address(c.SADB_EXT_ADDRESS_SRC, ip_address(LOCAL_NET), 24, c.IPSEC_ULPROTO_ANY),
            Address(c.SADB_EXT_ADDRESS_DST, ip_address(REMOTE_NET), 24, c.IPSEC_ULPROTO_ANY),
            Policy(c.IPSEC_POLICY_IPSEC, c.IPSEC_DIR_OUTBOUND, 0, 0, (request,)),
        )
        pump(loop)
        added = ike.recv()
        assert added.msg_type == c.SADB_X_SPDADD and added.policy is not None
        assert bystander.recv().msg_type == c.SADB_X_SPDADD  # BROADCAST_ALL
        policy_id = added.policy.policy_id

        # 3. A packet with no SA: held, and ACQUIRE goes to the registered socket only.
        first = bytes(IP(src="198.51.100.7", dst="203.0.113.9") / UDP(sport=1000, dport=53))
        assert isinstance(engine.outbound(first, clock()), Hold)
        pfkey.drain()  # the daemon does this after every batch
        pump(loop)
        acq = ike.recv()
        assert acq.msg_type == c.SADB_ACQUIRE and acq.satype == c.SADB_SATYPE_ESP
        assert acq.src is not None and str(acq.src.addr) == LOCAL
        assert acq.dst is not None and str(acq.dst.addr) == PEER
        assert acq.policy is not None and acq.policy.policy_id == policy_id
        assert acq.proposal is not None
        comb = next(
            cb
            for cb in acq.proposal.combs
            if cb.encrypt == c.SADB_X_EALG_AESCBC and cb.auth == c.SADB_X_AALG_SHA2_256HMAC
        )
        assert not bystander.pending()

        # 4. The key manager "negotiates" (keys from os.urandom, sizes from the comb).
        enc_key = os.urandom(comb.encrypt_minbits // 8)
        auth_key = os.urandom(comb.auth_minbits // 8)
        ike.send(
            c.SADB_GETSPI,
            c.SADB_SATYPE_ESP,
            Sa2(c.IPSEC_MODE_TUNNEL, 0),
            host(c.SADB_EXT_ADDRESS_SRC, PEER),
            host(c.SADB_EXT_ADDRESS_DST, LOCAL),
            SpiRange(0x1000, 0xFFFF),
            seq=acq.seq,
        )
        pump(loop)
        spi_reply = ike.recv()
        assert spi_reply.msg_type == c.SADB_GETSPI and spi_reply.seq == acq.seq
        assert spi_reply.sa is not None
        in_spi = spi_reply.sa.spi
        assert 0x1000 <= in_spi <= 0xFFFF

        def keyed(spi: int, src: str, dst: str) -> tuple[Any, ...]:
            return (
                Sa(spi, 32, c.SADB_SASTATE_MATURE, comb.auth, comb.encrypt),
                Sa2(c.IPSEC_MODE_TUNNEL, 0),
                host(c.SADB_EXT_ADDRESS_SRC, src),
                host(c.SADB_EXT_ADDRESS_DST, dst),
                Key.of(c.SADB_EXT_KEY_AUTH, auth_key),
                Key.of(c.SADB_EXT_KEY_ENCRYPT, enc_key),
            )

        ike.send(c.SADB_UPDATE, c.SADB_SATYPE_ESP, *keyed(in_spi, PEER, LOCAL))
        out_spi = 0x2345  # the peer's choice, from its GETSPI
        ike.send(c.SADB_ADD, c.SADB_SATYPE_ESP, *keyed(out_spi, LOCAL, PEER))
        pump(loop)
        assert [m.msg_type for m in (ike.recv(), ike.recv())] == [c.SADB_UPDATE, c.SADB_ADD]
        assert engine.get_sa(LOCAL, in_spi).state == "mature"

        # 5. The held packet leaves, then the next one: both ESP with the new SPI.
        released = engine.next_released()
        second = bytes(IP(src="198.51.100.7", dst="203.0.113.9") / UDP(sport=1000, dport=53))
        sent = engine.outbound(second, clock())
        assert isinstance(released, Transmit) and isinstance(sent, Transmit)
        for action in (released, sent):
            assert action.spi == out_spi and (action.src, action.dst) == (LOCAL, PEER)
            assert first not in action.data

        # 6. The peer, with the same keys, decrypts the packet back.
        peer = Engine(local_addresses=[PEER])
        # The inner destination is not the peer's own: RFC 4301 §5.2 checks it against
        # a forward policy whose template the SA satisfies.
        peer.add_policy(
            EnginePolicy(
                "fwd",
                Selector(f"{LOCAL_NET}/24", f"{REMOTE_NET}/24"),
                "protect",
                0,
                [Template("esp", "tunnel", LOCAL, PEER)],
            )
        )
        peer.add_sa(
            SASpec(
                out_spi,
                LOCAL,
                PEER,
                enc="aes128",
                enc_key=enc_key,
                integ="sha256",
                integ_key=auth_key,
            ),
            clock(),
        )
        got = peer.inbound_esp(
            sent.data, ip_address(LOCAL).packed, ip_address(PEER).packed, None, clock()
        )
        assert isinstance(got, Deliver) and got.packet == second
    finally:
        ike.sock.close()
        bystander.sock.close()
        server.close()
