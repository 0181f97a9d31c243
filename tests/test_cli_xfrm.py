"""``pyipsec xfrm``: ip-xfrm argument parsing, ip-xfrm output, the daemon socket end to end,
and (root) our listing of kernel policies against iproute2's."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyipsec.cli.xfrm_cmd import (
    UnixXfrmClient,
    format_event,
    format_policy,
    format_state,
    parse_policy,
    parse_sa_id,
    parse_state,
    run,
)
from pyipsec.engine.processor import Engine
from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.io.control import SeqpacketServer
from pyipsec.keyapi import xfrm_const as c
from pyipsec.keyapi.xfrm import XfrmMessage
from pyipsec.keyapi.xfrm_layout import xaddr
from pyipsec.keyapi.xfrm_server import XfrmServer
from pyipsec.keyapi.xfrm_structs import (
    Algo,
    AlgoAead,
    AlgoAuth,
    EncapTmpl,
    ReplayStateEsn,
    UserpolicyType,
)

GCM_KEY = "0x" + bytes(range(20)).hex()

# -- parsing -----------------------------------------------------------------------------


def test_parse_state_aead() -> None:
    msg = parse_state(
        f"src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1000 reqid 7 mode tunnel "
        f"aead rfc4106(gcm(aes)) {GCM_KEY} 128 replay-window 32".split()
    )
    info = msg.body
    assert info is not None and msg.type == c.XFRM_MSG_NEWSA
    assert info.id.spi == 0x1000 and info.reqid == 7 and info.mode == 1  # type: ignore[union-attr]
    assert info.replay_window == 32 and info.family == c.AF_INET  # type: ignore[union-attr]
    aead = msg.get_as(c.XFRMA_ALG_AEAD, AlgoAead)
    assert aead is not None and aead.key == bytes(range(20)) and aead.icv_len == 128


def test_parse_state_cbc_esn_encap() -> None:
    msg = parse_state(
        [
            *[
                "src",
                "192.0.2.1",
                "dst",
                "192.0.2.2",
                "proto",
                "esp",
                "spi",
                "4096",
                "reqid",
                "1",
                "mode",
                "transport",
            ],
            *["enc", "cbc(aes)", "0x" + "11" * 16],
            *["auth-trunc", "hmac(sha256)", "0x" + "22" * 32, "128"],
            *[
                "encap",
                "espinudp",
                "4500",
                "4500",
                "0.0.0.0",
                "replay-window",
                "1024",
                "flag",
                "esn",
            ],
        ]
    )
    assert msg.get_as(c.XFRMA_ALG_CRYPT, Algo) == Algo("cbc(aes)", b"\x11" * 16)
    auth = msg.get_as(c.XFRMA_ALG_AUTH_TRUNC, AlgoAuth)
    assert auth is not None and auth.trunc_len == 128
    assert msg.get_as(c.XFRMA_ENCAP, EncapTmpl) == EncapTmpl(2, 4500, 4500, xaddr("0.0.0.0"))
    esn = msg.get_as(c.XFRMA_REPLAY_ESN_VAL, ReplayStateEsn)
    assert esn is not None and esn.replay_window == 1024 and esn.bmp_len == 32
    assert msg.body.flags == c.XFRM_STATE_ESN and msg.body.replay_window == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ("src 192.0.2.1 dst 192.0.2.2 spi 1", "missing proto"),
        ("src 192.0.2.1 dst 2001:db8::1 proto esp", "same family"),
        ("proto xyz", "XFRM-PROTO"),
        ("proto esp mode sideways", "MODE"),
        ("proto esp spi", "missing SPI"),
        ("proto esp spi banana", "not a number"),
        ("proto esp encap tcp 1 2 0.0.0.0", "espinudp"),
        ("proto esp bogus", "unknown argument"),
    ],
)
def test_parse_state_errors(words: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_state(words.split())


def test_parse_sa_id() -> None:
    sa_id = parse_sa_id(["src", "192.0.2.1", "dst", "192.0.2.2", "proto", "esp", "spi", "0x1000"])
    assert sa_id.daddr == xaddr("192.0.2.2") and sa_id.spi == 0x1000 and sa_id.proto == 50
    with pytest.raises(ConfigError):
        parse_sa_id(["proto", "esp", "spi", "1"])


def test_parse_policy() -> None:
    info, tmpls = parse_policy(
        [
            "src",
            "198.51.100.0/24",
            "dst",
            "203.0.113.0/24",
            "proto",
            "tcp",
            "sport",
            "1024",
            "dport",
            "443",
            "dir",
            "out",
            "priority",
            "100",
            "tmpl",
            "src",
            "192.0.2.1",
            "dst",
            "192.0.2.2",
            "proto",
            "esp",
            "reqid",
            "5",
            "mode",
            "tunnel",
            "level",
            "use",
        ]
    )
    sel = info.sel
    assert (sel.prefixlen_s, sel.prefixlen_d, sel.proto) == (24, 24, 6)
    assert (sel.sport, sel.sport_mask, sel.dport, sel.dport_mask) == (1024, 0xFFFF, 443, 0xFFFF)
    assert info.dir == c.XFRM_POLICY_OUT and info.priority == 100
    [tmpl] = tmpls
    assert tmpl.reqid == 5 and tmpl.mode == 1 and tmpl.optional == 1 and tmpl.family == 2
    assert tmpl.id.daddr == xaddr("192.0.2.2") and tmpl.saddr == xaddr("192.0.2.1")


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ("src 198.51.100.0/24 dst 203.0.113.0/24", "missing dir"),
        ("src 198.51.100.0/24 dst 203.0.113.0/24 dport 80 dir out", "need proto"),
        ("src 198.51.100.0/24 dir sideways", "DIR"),
        ("dir out action maybe", "ACTION"),
        ("dir out tmpl proto esp level sometimes", "LEVEL"),
        ("dir out proto tcp dport 70000", "out of range"),
    ],
)
def test_parse_policy_errors(words: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_policy(words.split())


# -- output ---------------------------------------------------------------------------------

# What `ip xfrm policy list` (iproute2 6.1) printed for these policies on a 6.18 kernel.
IP_OUTPUT = {
    "src 198.51.100.0/24 dst 203.0.113.0/24 proto tcp sport 1024 dport 443 dir out "
    "priority 100 tmpl src 192.0.2.1 dst 192.0.2.2 proto esp reqid 5 mode tunnel": (
        "src 198.51.100.0/24 dst 203.0.113.0/24 proto tcp sport 1024 dport 443 \n"
        "\tdir out priority 100 ptype main \n"
        "\ttmpl src 192.0.2.1 dst 192.0.2.2\n"
        "\t\tproto esp reqid 5 mode tunnel\n"
    ),
    "src 2001:db8:1::/48 dst 2001:db8:2::/48 dir in action block": (
        "src 2001:db8:1::/48 dst 2001:db8:2::/48 \n\tdir in action block priority 0 ptype main \n"
    ),
    "src 198.51.100.7 dst 203.0.113.9 proto udp dir fwd tmpl proto esp mode transport level use": (
        "src 198.51.100.7/32 dst 203.0.113.9/32 proto udp \n"
        "\tdir fwd priority 0 ptype main \n"
        "\ttmpl src 0.0.0.0 dst 0.0.0.0\n"
        "\t\tproto esp reqid 0 mode transport\n"
        "\t\tlevel use \n"
    ),
}


@pytest.mark.parametrize("command", sorted(IP_OUTPUT))
def test_format_policy_matches_ip(command: str) -> None:
    info, tmpls = parse_policy(command.split())
    msg = XfrmMessage(c.XFRM_MSG_NEWPOLICY, info)
    if tmpls:
        msg.add(c.XFRMA_TMPL, tmpls)
    msg.add(c.XFRMA_POLICY_TYPE, UserpolicyType(0))
    assert format_policy(msg) == IP_OUTPUT[command]


def test_format_state() -> None:
    msg = parse_state(
        f"src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1000 reqid 1 mode tunnel "
        f"aead rfc4106(gcm(aes)) {GCM_KEY} 128 replay-window 32".split()
    )
    assert format_state(msg) == (
        "src 192.0.2.1 dst 192.0.2.2\n"
        "\tproto esp spi 0x00001000 reqid 1 mode tunnel\n"
        "\treplay-window 32 \n"
        f"\taead rfc4106(gcm(aes)) {GCM_KEY} 128\n"
    )
    assert GCM_KEY not in format_state(msg, show_keys=False)


# -- against the daemon's socket, in process -------------------------------------------------


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Path, Engine, Any]]:
    engine = Engine()
    xfrm = XfrmServer(engine, lambda: 0.0)
    loop = asyncio.new_event_loop()
    server = SeqpacketServer(
        tmp_path / "xfrm.sock", xfrm, loop, allowed_uids=(os.getuid(),), name="xfrm"
    )
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def publish() -> None:
        events = []
        while (event := engine.next_event()) is not None:
            events.append(event)
        xfrm.publish(server, events)

    def call(fn: Any) -> None:
        done = threading.Event()
        loop.call_soon_threadsafe(lambda: (fn(), done.set()))
        assert done.wait(5)

    call(server.start)
    try:
        yield tmp_path, engine, (call, publish)
    finally:
        call(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def cli(run_dir: Path, *words: str) -> str:
    out = io.StringIO()
    args = argparse.Namespace(
        run_dir=str(run_dir),
        kernel=False,
        object=words[0],
        words=list(words[1:]),
        count=0,
        timeout=None,
    )
    assert run(args, out) == 0
    return out.getvalue()


def test_cli_against_the_daemon(daemon: tuple[Path, Engine, Any]) -> None:
    run_dir, engine, _ = daemon
    cli(
        run_dir,
        *f"state add src 192.0.2.1 dst 192.0.2.2 proto esp spi 0x1000 reqid 1 "
        f"mode tunnel aead rfc4106(gcm(aes)) {GCM_KEY} 128 replay-window 32".split(),
    )
    listing = cli(run_dir, "state", "list")
    assert listing.startswith("src 192.0.2.1 dst 192.0.2.2\n\tproto esp spi 0x00001000 reqid 1")
    assert f"aead rfc4106(gcm(aes)) {GCM_KEY} 128" in listing
    assert engine.get_sa("192.0.2.2", 0x1000).spec is not None
    command = sorted(IP_OUTPUT)[0]
    cli(run_dir, "policy", "add", *command.split())
    assert cli(run_dir, "policy", "list") == IP_OUTPUT[command]
    with pytest.raises(KeyApiError, match="exists"):
        cli(run_dir, "policy", "add", *command.split())
    cli(
        run_dir,
        *[
            "state",
            "delete",
            "src",
            "192.0.2.1",
            "dst",
            "192.0.2.2",
            "proto",
            "esp",
            "spi",
            "0x1000",
        ],
    )
    cli(run_dir, "policy", "flush")
    assert cli(run_dir, "state", "list") == cli(run_dir, "policy", "list") == ""


def test_monitor_over_the_daemon(daemon: tuple[Path, Engine, Any]) -> None:
    run_dir, _engine, (call, publish) = daemon
    client = UnixXfrmClient(run_dir / "xfrm.sock")
    try:
        client.subscribe([c.XFRMNLGRP_POLICY])
        command = sorted(IP_OUTPUT)[0]
        cli(run_dir, "policy", "add", *command.split())
        call(publish)
        events = client.receive(timeout=5)
        assert [format_event(m) for m in events] == [IP_OUTPUT[command]]
    finally:
        client.close()


def test_unreachable_daemon_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot reach the daemon"):
        cli(tmp_path, "state", "list")


# -- root: our listing of kernel policies against ip's ---------------------------------------


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"pyipsec-clix-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _blocks(text: str) -> set[str]:
    blocks: list[str] = []
    for line in text.splitlines(keepends=True):
        if not line[:1].isspace():
            blocks.append("")
        blocks[-1] += line
    return set(blocks)


@pytest.mark.root
@pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2")
def test_kernel_list_matches_ip_xfrm(netns: str) -> None:
    ours = [sys.executable, "-m", "pyipsec.cli.xfrm_cmd", "--kernel"]
    commands = sorted(IP_OUTPUT)
    for i, command in enumerate(commands):
        # Half through our CLI, half through iproute2: both listings must agree on all.
        tool = [*ours, "policy", "add"] if i % 2 else ["ip", "xfrm", "policy", "add"]
        subprocess.run(["ip", "netns", "exec", netns, *tool, *command.split()], check=True)
    ip_text = subprocess.run(
        ["ip", "-n", netns, "xfrm", "policy", "list"], capture_output=True, text=True, check=True
    ).stdout
    our_text = subprocess.run(
        ["ip", "netns", "exec", netns, *ours, "policy", "list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert _blocks(our_text) == _blocks(ip_text) == set(IP_OUTPUT.values())
