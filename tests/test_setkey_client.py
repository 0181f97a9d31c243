"""keyapi/setkey_client: setkey commands -> PF_KEY -> the engine, and dumps in setkey form.

The client talks to a real PfkeyServer over an in-memory transport (the same bytes a
socket would carry); the socket itself is exercised in test_pfkey_e2e.py.
"""

from __future__ import annotations

import errno
from collections import deque
from ipaddress import ip_address
from typing import Any

import pytest

from pyipsec.engine.processor import Engine
from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.keyapi import pfkey_const as c
from pyipsec.keyapi.pfkey_server import PfkeyServer
from pyipsec.keyapi.setkey_client import (
    SetkeyClient,
    add_message,
    describe_message,
    policy_view,
    sa_view,
    spd_message,
)
from pyipsec.keyapi.setkey_commands import AddSA
from pyipsec.keyapi.setkey_grammar import parse_setkey

# The EXAMPLES section of the ipsec-tools setkey(8) manual page, written out for this
# test with three changes: documentation addresses (RFC 5737/3849, as in
# tests/data/setkey/manual_examples.conf); des-cbc and hmac-md5, which the engine does
# not implement, replaced by aes-cbc and hmac-sha1 with keys of their sizes (and an
# hmac-sha1 added where the manual has encryption only, which the engine refuses); the
# AH and TCP-MD5 SAs left for test_sa_types_the_engine_cannot_hold. The policy with
# port 21 and upper-layer protocol "any" is the manual's: ports go with any protocol,
# as in Linux.
MANUAL_EXAMPLES = """
add 2001:db8:4819::1 2001:db8:481d::1 esp 123457
        -E aes-cbc 0x3ffe05014819ffff3ffe05014819ffff
        -A hmac-sha1 "authentication!!1234" ;

add 192.0.2.41 192.0.2.33 esp 0x10001
        -E aes-cbc 0x3ffe05014819ffff3ffe05014819ffff
        -A hmac-sha1 "authentication!!1234" ;

get 192.0.2.41 192.0.2.33 esp 0x10001 ;

spdadd 192.0.2.41/32[21] 192.0.2.33/32[any] any
        -P out ipsec esp/tunnel/203.0.113.1-203.0.113.2/require ;

add 192.0.2.41 192.0.2.34 esp 0x10002
        -ctx 1 1 "system_u:system_r:unconfined_t:SystemLow-SystemHigh"
        -E aes-cbc 0x3ffe05014819ffff3ffe05014819ffff
        -A hmac-sha1 "authentication!!1234";

spdadd 192.0.2.41 192.0.2.33 any
        -ctx 1 1 "system_u:system_r:unconfined_t:SystemLow-SystemHigh"
        -P in ipsec esp/transport//require ;

spdadd ::/0 ::/0 icmp6 135,0 -P in none ;

spdadd 192.0.2.0/24[any] 192.0.2.33/32[any] any -P fwd ipsec
    esp/tunnel/203.0.113.1[4500]-203.0.113.2[30000]/require ;
"""


class Loopback:
    """A Transport into an in-process PfkeyServer: what a socket would carry."""

    def __init__(self, server: PfkeyServer, peers: list[Any]) -> None:
        self.server = server
        self.state: dict[str, Any] = {}
        self.inbox: deque[bytes] = deque()
        peers.append(self)

    def send(self, data: bytes, *, droppable: bool = False) -> bool | None:
        # Doubles as the server's peer (send) and the client's transport (send).
        if self.server is not None and not droppable and not self._from_server:
            self._from_server = True
            try:
                self.server.handle(data, self)
            finally:
                self._from_server = False
            return None
        self.inbox.append(data)
        return True

    _from_server = False

    def recv(self, timeout: float) -> bytes | None:
        return self.inbox.popleft() if self.inbox else None


@pytest.fixture
def setup() -> tuple[Engine, PfkeyServer, list[Any]]:
    engine = Engine()
    server = PfkeyServer(engine, now=lambda: 50.0, wall=lambda: 1_700_000_000.0, drain_events=True)
    peers: list[Any] = []
    server.attach(lambda: peers)
    return engine, server, peers


def client_of(setup: Any, pid: int = 4000) -> SetkeyClient:
    _, server, peers = setup
    return SetkeyClient(Loopback(server, peers), pid=pid, now=lambda: 1_700_000_100, timeout=0)


def run_text(client: SetkeyClient, text: str) -> list[Any]:
    return client.run(parse_setkey(text, "test.conf"))


def test_manual_examples_apply_and_dump(setup: Any) -> None:
    engine, _, _ = setup
    client = client_of(setup)
    results = run_text(client, MANUAL_EXAMPLES)
    assert [r.error for r in results] == [""] * len(results)
    got = results[2].output  # the "get" line prints the SA
    # Mode "any" is stored as transport, as Linux's pfkey_mode_to_xfrm does.
    assert "192.0.2.41 192.0.2.33 \n\tesp mode=transport spi=65537(0x00010001)" in got
    assert "\tA: hmac-sha1  61757468 656e7469" in got
    assert sorted(e.spi for e in engine.dump_sa()) == [0x10001, 0x10002, 123457]
    sad = client.sad_text()
    assert sad.count("\tesp mode=transport") == 3
    assert "2001:db8:4819::1 2001:db8:481d::1 \n" in sad
    assert "\tE: aes-cbc  3ffe0501 4819ffff 3ffe0501 4819ffff" in sad
    spd = client.spd_text()
    assert "192.0.2.41[21] 192.0.2.33[any] 255\n\tout prio def ipsec\n" in spd
    assert "\tesp/tunnel/203.0.113.1-203.0.113.2/require\n" in spd
    assert "::/0 ::/0 ipv6-icmp 135,0\n\tin prio def none\n" in spd
    assert "192.0.2.0/24[any] 192.0.2.33[any] 255\n\tfwd prio def ipsec\n" in spd
    assert "\tesp/transport//require\n" in spd
    assert len(engine.dump_policy()) == 4
    ftp = next(p for p in engine.dump_policy() if p.selector.sport == (21, 21))
    assert (ftp.direction, ftp.selector.proto, ftp.selector.sport) == ("out", None, (21, 21))
    assert ftp.selector.dport is None and ftp.templates[0].dst == ip_address("203.0.113.2")


def test_sa_types_the_engine_cannot_hold(setup: Any) -> None:
    engine, _, _ = setup
    client = client_of(setup)
    results = run_text(
        client,
        """
        add -6 2001:db8:4819::1 2001:db8:481d::1 ah 123456 -A hmac-sha1 "AH SA configuration!" ;
        add 198.51.100.34 198.51.100.36 tcp 0x1000 -A tcp-md5 "TCP-MD5 BGP secret" ;
        add 192.0.2.41 192.0.2.33 esp 0x10001 -E des-cbc 0x3ffe05014819ffff ;
        add 192.0.2.41 192.0.2.33 esp 0x10002 -E aes-cbc 0x3ffe05014819ffff ;
        add 192.0.2.41 192.0.2.33 esp 0x10003 -E aes-cbc 0x3ffe05014819ffff3ffe05014819ffff
            -A hmac-sha1 "authentication!!1234" ;
        spdadd 192.0.2.41/32[21] 192.0.2.33/32[any] any -P out discard ;
        spdadd ::/0 ::/0 mh 1,0 -P in none ;
        """,
    )
    # Each refusal names the command, the errno and what the daemon does not take.
    assert [(r.line, r.error.split(": ")[:2]) for r in results] == [
        (2, ["add ah 0x1e240", "Protocol not supported"]),
        (3, ["add tcp 0x1000", "Invalid argument"]),
        (4, ["add esp 0x10001", "Function not implemented"]),
        (5, ["add esp 0x10002", "Invalid argument"]),
        (6, [""]),
        (8, [""]),
        (9, ["spdadd ::/0 ::/0 -P in", "Invalid argument"]),
    ]
    assert "AH SAs are not supported" in results[0].error
    assert "TCP-MD5 signature SAs (RFC 2385)" in results[1].error
    assert "des-cbc is not implemented (available: aes-cbc" in results[2].error
    assert "a 64-bit key does not fit encryption algorithm aes-cbc" in results[3].error
    assert "a Mobility Header type is not a selector" in results[6].error
    assert "0x3ffe" not in "".join(r.error for r in results)  # never a key
    assert [e.spi for e in engine.dump_sa()] == [0x10003]
    # The manual's port-21-any-protocol policy lands (Linux takes it as well).
    [ftp] = engine.dump_policy()
    assert ftp.selector.proto is None and ftp.selector.sport == (21, 21)
    assert ftp.action == "discard"


def test_unknown_algorithm_name_applies_nothing(setup: Any) -> None:
    engine, _, _ = setup
    client = client_of(setup)
    commands = parse_setkey(
        "add 192.0.2.1 192.0.2.2 esp 0x300 -E aes-cbc 0x00112233445566778899aabbccddeeff ;\n"
        "add 192.0.2.1 192.0.2.2 esp 0x301 -E magic-cbc 0x00112233445566778899aabbccddeeff ;\n",
        "bad.conf",
    )
    with pytest.raises(ConfigError, match="magic-cbc"):
        client.run(commands)
    assert engine.dump_sa() == []


def test_getspi_update_deleteall_flush(setup: Any) -> None:
    engine, _, _ = setup
    client = client_of(setup)
    (spi_result,) = run_text(client, "getspi 192.0.2.2 192.0.2.1 esp 0x4444 -m tunnel ;")
    assert "spi=17476(0x00004444)" in spi_result.output and "state=larval" in spi_result.output
    results = run_text(
        client,
        """
        update 192.0.2.2 192.0.2.1 esp 0x4444 -m tunnel
            -E aes-cbc 0x00112233445566778899aabbccddeeff
            -A hmac-sha256 0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f ;
        add 192.0.2.2 192.0.2.1 esp 0x4445 -m transport -lh 3600 -ls 3000
            -E aes-cbc 0x00112233445566778899aabbccddeeff -A hmac-sha1 "twenty byte key ok!!" ;
        add 192.0.2.9 192.0.2.1 esp 0x4446 -E aes-cbc 0x00112233445566778899aabbccddeeff
            -A hmac-sha1 "twenty byte key ok!!" ;
        """,
    )
    assert [r.error for r in results] == ["", "", ""]
    entry = engine.get_sa("192.0.2.1", 0x4445)
    assert entry.spec is not None and entry.spec.hard.add_time == 3600
    assert "hard: 3600(s)\tsoft: 3000(s)" in client.sad_text()
    (gone,) = run_text(client, "deleteall 192.0.2.2 192.0.2.1 esp ;")
    assert gone.error == ""
    assert [e.spi for e in engine.dump_sa()] == [0x4446]
    client.flush()
    assert client.sad_text() == "No SAD entries.\n"
    assert client.spd_text() == "No SPD entries.\n"


def test_spddelete_and_spdflush(setup: Any) -> None:
    engine, _, _ = setup
    client = client_of(setup)
    results = run_text(
        client,
        """
        spdadd 198.51.100.0/24 203.0.113.0/24 tcp -P out prio def+5 ipsec
            esp/tunnel/192.0.2.1-192.0.2.2/unique:7 ;
        spdadd 198.51.100.7 203.0.113.7 icmp 8,0 -P out prio low discard ;
        spddelete 198.51.100.0/24 203.0.113.0/24 tcp -P out ;
        spddelete 198.51.100.0/24 203.0.113.0/24 tcp -P out ;
        spddump ;
        """,
    )
    assert [r.error for r in results] == [
        "",
        "",
        "",
        "spddelete 198.51.100.0/24 203.0.113.0/24 -P out: No such file or directory: "
        "no policy with this selector and direction",
        "",
    ]
    assert "198.51.100.7 203.0.113.7 icmp 8,0\n\tout prio low discard\n" in results[4].output
    run_text(client, "spdflush ;")
    assert engine.dump_policy() == []


def test_messages_match_linux_setkey(setup: Any) -> None:
    (cmd,) = parse_setkey(
        "add 192.0.2.1[4500] 192.0.2.130[4501] esp-udp 4097 -m tunnel -u 3 "
        '-E aes-cbc 0x000102030405060708090a0b0c0d0e0f -A hmac-sha1 "twenty byte key ok!!" ;'
    )
    msg = add_message(cmd, 5, 77)  # type: ignore[arg-type]
    assert (msg.msg_type, msg.satype, msg.seq, msg.pid) == (c.SADB_ADD, c.SADB_SATYPE_ESP, 5, 77)
    assert msg.sa is not None and (msg.sa.encrypt, msg.sa.auth) == (12, 3)
    assert msg.sa2 is not None and (msg.sa2.mode, msg.sa2.reqid) == (c.IPSEC_MODE_TUNNEL, 3)
    assert msg.nat_t_sport is not None and msg.nat_t_sport.port == 4500
    assert msg.src is not None and msg.src.port == 0  # NAT-T ports are not address ports
    (gre,) = parse_setkey("spdadd 0.0.0.0 0.0.0.0 gre 0.1.35.69 -P out discard ;")
    pm = spd_message(gre, 1, 1)  # type: ignore[arg-type]
    assert pm.src is not None and pm.dst is not None
    assert (pm.src.port, pm.dst.port) == (0x1, 0x2345)  # setkey(8): the key in the ports


def test_views_of_messages(setup: Any) -> None:
    client = client_of(setup)
    run_text(
        client,
        "add 192.0.2.1 192.0.2.2 esp-udp 0x500 -m tunnel "
        "-E aes-gcm-16 0x000102030405060708090a0b0c0d0e0f10111213 ;",
    )
    (dumped,) = client.dump(c.SADB_DUMP)
    view = sa_view(dumped)
    assert view.ealgo == "aes-gcm-16" and view.aalgo is None and view.nat_t
    assert (view.sport, view.dport, view.state) == (4500, 4500, "mature")
    assert view.src == ip_address("192.0.2.1") and view.created == 1_700_000_000 - 0
    run_text(client, "spdadd 198.51.100.0/24 203.0.113.0/24 any -P out discard ;")
    (pol,) = client.dump(c.SADB_X_SPDDUMP)
    pview = policy_view(pol)
    assert (pview.action, pview.direction, str(pview.src)) == ("discard", "out", "198.51.100.0/24")
    assert "X_SPDDUMP satype=0 seq=0" in describe_message(pol, 0)


def test_monitor_prints_what_other_sockets_do(setup: Any) -> None:
    monitor = client_of(setup, pid=1)
    worker = client_of(setup, pid=2)
    run_text(worker, "flush ;")  # before promiscuous mode: the monitor sees no request
    transport: Any = monitor.transport
    transport.inbox.clear()
    shown: list[str] = []
    original_recv = transport.recv
    acted: list[bool] = []

    def recv(timeout: float) -> bytes | None:
        # Once monitor() has turned promiscuous mode on, the worker does something.
        data = original_recv(timeout)
        if data is None and not acted:
            acted.append(True)
            run_text(worker, "spdadd 198.51.100.0/24 203.0.113.0/24 any -P out discard ;")
            data = original_recv(timeout)
        return data

    transport.recv = recv
    assert monitor.monitor(shown.append, count=3) == 3
    # Its own X_PROMISC echo (a promiscuous socket gets it twice, as in Linux), then the
    # worker's request, then the server's broadcast of the new policy.
    assert shown[0].startswith("X_PROMISC satype=1")
    assert shown[1].startswith("X_SPDADD satype=0 seq=2 pid=2\n")  # seq 1 was its flush
    assert "198.51.100.0/24[any] 203.0.113.0/24[any] 255\n\tout prio def discard" in shown[2]


class Silent:
    def send(self, data: bytes) -> None:
        pass

    def recv(self, timeout: float) -> bytes | None:
        return None


def test_timeout_and_errno_are_errors(setup: Any) -> None:
    mute = SetkeyClient(Silent(), pid=1, now=lambda: 0, timeout=0)
    with pytest.raises(KeyApiError) as info:
        mute.flush()
    assert info.value.errno == errno.ETIMEDOUT
    client = client_of(setup)
    (cmd,) = parse_setkey("add 192.0.2.1 192.0.2.2 esp 0x1010 -E des-cbc 0x0001020304050607 ;")
    assert isinstance(cmd, AddSA)
    with pytest.raises(KeyApiError) as info:
        client.request(add_message(cmd, 9, 4000))
    assert info.value.errno == errno.ENOSYS
