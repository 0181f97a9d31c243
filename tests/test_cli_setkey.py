"""cli/setkey_cmd: ``pyipsec setkey`` against a real pfkey.sock served in a thread."""

from __future__ import annotations

import argparse
import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyipsec.cli.setkey_cmd import build_parser, resolve_run_dir, run, setup
from pyipsec.engine.processor import Engine
from pyipsec.io.control import SeqpacketServer
from pyipsec.io.daemon import SelectorLoop
from pyipsec.keyapi.pfkey_server import PfkeyServer

DATA = Path(__file__).parent / "data" / "setkey"
GOOD = """
add 192.0.2.1 192.0.2.2 esp 0x1000 -m tunnel
    -E aes-cbc 0x00112233445566778899aabbccddeeff
    -A hmac-sha256 0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f ;
spdadd 198.51.100.0/24 203.0.113.0/24 any -P out ipsec esp/tunnel/192.0.2.1-192.0.2.2/require ;
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Path, Engine]]:
    engine = Engine()
    loop = SelectorLoop()
    pfkey = PfkeyServer(engine, now=lambda: 10.0, wall=lambda: 1_700_000_000.0, drain_events=True)
    server = SeqpacketServer(tmp_path / "pfkey.sock", pfkey, loop, allowed_uids=[os.getuid()])
    server.start()
    pfkey.attach(lambda: server.connections)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            loop.run_once(0.02)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield tmp_path, engine
    stop.set()
    thread.join(5)
    server.close()
    loop.close()


def setkey(run_dir: Path, *argv: str, stdin: str = "", count: int | None = None) -> Any:
    out, err = io.StringIO(), io.StringIO()
    args = build_parser().parse_args(["--run-dir", str(run_dir), *argv])
    code = run(args, stdin=io.StringIO(stdin), stdout=out, stderr=err, monitor_count=count)
    return code, out.getvalue(), err.getvalue()


def test_file_then_dumps_then_flushes(daemon: Any, tmp_path: Path) -> None:
    run_dir, engine = daemon
    conf = tmp_path / "good.conf"
    conf.write_text(GOOD)
    assert setkey(run_dir, "-f", str(conf)) == (0, "", "")
    code, out, _ = setkey(run_dir, "-D")
    assert code == 0
    assert out.startswith("192.0.2.1 192.0.2.2 \n\tesp mode=tunnel spi=4096(0x00001000)")
    code, out, _ = setkey(run_dir, "-D", "-P")
    assert "198.51.100.0/24[any] 203.0.113.0/24[any] 255\n\tout prio def ipsec\n" in out
    assert setkey(run_dir, "-F")[0] == 0 and engine.dump_sa() == []
    assert setkey(run_dir, "-F", "-P")[0] == 0 and engine.dump_policy() == []
    assert setkey(run_dir, "-D")[1] == "No SAD entries.\n"


def test_syntax_error_names_the_place_and_applies_nothing(daemon: Any, tmp_path: Path) -> None:
    run_dir, engine = daemon
    conf = tmp_path / "bad.conf"
    conf.write_text(GOOD + "spdadd 198.51.100.0/24 203.0.113.0/24 any -P sideways none ;\n")
    code, out, err = setkey(run_dir, "-f", str(conf))
    assert code == 1 and out == ""
    assert err.startswith(f"{conf}:6:") and "sideways" in err
    assert engine.dump_sa() == [] and engine.dump_policy() == []


def test_refused_command_is_reported_by_line(daemon: Any) -> None:
    run_dir, engine = daemon
    text = (
        GOOD + "add 192.0.2.1 192.0.2.2 esp 0x1000 -E aes-cbc 0x00112233445566778899aabbccddeeff"
        ' -A hmac-sha1 "twenty byte key ok!!" ;\n'
    )
    code, _, err = setkey(run_dir, "-c", stdin=text)
    assert code == 1
    assert err == (
        "<stdin>:6: add esp 0x1000: File exists: an SA with SPI 0x1000 to 192.0.2.2 is "
        "already installed (use update, or delete it first)\n"
    )
    assert len(engine.dump_sa()) == 1


def test_static_aead_key_warns(daemon: Any) -> None:
    run_dir, engine = daemon
    text = (
        "add 192.0.2.1 192.0.2.2 esp 0x2000 -E aes-gcm-16 "
        "0x000102030405060708090a0b0c0d0e0f10111213 ;\n"
    )
    code, _, err = setkey(run_dir, "-c", stdin=text)
    assert code == 0
    assert err.startswith("warning: <stdin>:1: aes-gcm-16") and "RFC 4106" in err
    assert engine.get_sa("192.0.2.2", 0x2000).spec.enc == "aes128gcm16"


def test_monitor_shows_its_own_promisc_echo(daemon: Any) -> None:
    run_dir, _ = daemon
    code, out, _ = setkey(run_dir, "-x", count=1)
    assert code == 0 and out.startswith("X_PROMISC satype=1 seq=1")


def test_manual_examples_file_parses(daemon: Any) -> None:
    # The manual's own algorithms (DES, MD5, AH, TCP-MD5) reach the daemon and are
    # refused line by line; the rest (policies) applies.
    run_dir, engine = daemon
    code, _, err = setkey(run_dir, "-f", str(DATA / "manual_examples.conf"))
    assert code == 1
    lines = err.splitlines()
    # One line per refusal, each naming the place, the command, the errno and the cause.
    assert all(line.startswith(f"{DATA / 'manual_examples.conf'}:") for line in lines), err
    causes = {
        "12": "add esp 0x1e241: Function not implemented: encryption algorithm des-cbc is "
        "not implemented",
        "15": "add ah 0x1e240: Protocol not supported: AH SAs are not supported",
        "22": "get ah 0x1e240: No such process: no ah SA",
        "31": "add tcp 0x1000: Invalid argument: TCP-MD5 signature SAs (RFC 2385)",
        "44": "spdadd 0.0.0.0/32 0.0.0.0/32 -P out: Invalid argument: a GRE key",
    }
    for line_no, cause in causes.items():
        assert any(f".conf:{line_no}: {cause}" in line for line in lines), (line_no, err)
    # The port-21, any-protocol policy of line 28 lands, as Linux takes it.
    assert not any(".conf:28:" in line for line in lines), err
    ftp = [p for p in engine.dump_policy() if p.selector.sport == (21, 21)]
    assert [(p.direction, p.selector.proto, p.selector.dport) for p in ftp] == [("out", None, None)]
    assert str(ftp[0].templates[0].dst) == "203.0.113.2"
    assert len(engine.dump_policy()) >= 4


def test_dump_with_ports(daemon: Any, tmp_path: Path) -> None:
    run_dir, _ = daemon
    text = (
        "add 192.0.2.1[4500] 192.0.2.2[4501] esp-udp 0x3000 -m tunnel "
        "-E aes-cbc 0x00112233445566778899aabbccddeeff "
        "-A hmac-sha256 0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f ;\n"
        "spdadd 203.0.113.0/24 198.51.100.0/24 any -P in ipsec "
        "esp/tunnel/192.0.2.2-192.0.2.1/require ;\n"
    )
    assert setkey(run_dir, "-c", stdin=GOOD + text) == (0, "", "")
    code, out, _ = setkey(run_dir, "-D", "-p")
    assert code == 0
    assert "192.0.2.1[0] 192.0.2.2[0] \n\tesp mode=tunnel spi=4096" in out
    assert "192.0.2.1[4500] 192.0.2.2[4501] \n\tesp-udp mode=tunnel spi=12288" in out
    assert setkey(run_dir, "-D")[1].startswith("192.0.2.1 192.0.2.2 \n\tesp mode=tunnel")
    code, out, _ = setkey(run_dir, "-D", "-P", "-p")
    assert code == 0 and "\tesp/tunnel/192.0.2.2[0]-192.0.2.1[0]/require\n" in out
    assert "\tesp/tunnel/192.0.2.2-192.0.2.1/require\n" in setkey(run_dir, "-D", "-P")[1]
    assert setkey(run_dir, "-F", "-p")[0:3:2] == (1, "pyipsec setkey: -p goes with -D\n")


def test_usage_and_unreachable_daemon(tmp_path: Path) -> None:
    assert setkey(tmp_path, "-P")[0] == 1
    code, _, err = setkey(tmp_path, "-D")
    assert code == 1 and "cannot reach the daemon" in err
    code, _, err = setkey(tmp_path)
    assert code == 1 and "-f FILE" in err


def test_run_dir_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYIPSEC_RUN_DIR", raising=False)
    assert resolve_run_dir(None) == Path("/run/pyipsec")
    monkeypatch.setenv("PYIPSEC_RUN_DIR", "/tmp/elsewhere")
    assert resolve_run_dir(None) == Path("/tmp/elsewhere")
    assert resolve_run_dir("/tmp/given") == Path("/tmp/given")


def test_setup_plugs_into_a_subcommand_parser(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="pyipsec setkey")
    runner = setup(parser)
    args = parser.parse_args(["--run-dir", str(tmp_path), "-D", "-P"])
    assert (args.dump, args.policy, args.run_dir) == (True, True, str(tmp_path))
    assert runner(args) == 1  # no daemon in tmp_path
