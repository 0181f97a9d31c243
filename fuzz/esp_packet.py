"""atheris target: the ESP receive path (RFC 4303 §3.4) and the ESP header codec.

An embedded Engine holds one inbound AES-GCM tunnel SA (SPI 0x1001, 192.0.2.1 ->
192.0.2.2) and its policy. The first octet picks what the rest is:

- 0: a whole IP packet for ``Engine.inbound`` (plain or protocol 50);
- 1: an ESP packet after the outer header for ``Engine.inbound_esp``, its SPI forced
  to the SA's so the bytes reach the replay check and the ICV;
- 2: an inner packet that a twin outbound SA encrypts, then mutated by the last octet
  (flip position) and decrypted by ``SecurityAssociation.decapsulate``.

The engine never raises on the data path (it drops and counts, RFC 4301 §5.2);
``decapsulate``/``encapsulate`` may raise only ``PacketDropped``, ``parse_esp_header``
only ``ParseError``.

Run: .venv/bin/python fuzz/esp_packet.py [-runs=N] [-max_total_time=S] [CORPUS_DIR]
"""

from __future__ import annotations

import contextlib
import ipaddress
import sys

import atheris

with atheris.instrument_imports():
    from pyipsec.engine.processor import Engine
    from pyipsec.engine.sad import SASpec
    from pyipsec.engine.spd import Policy, Selector, Template
    from pyipsec.errors import PacketDropped, ParseError
    from pyipsec.wire.esp import parse_esp_header

GW_A, GW_B = "192.0.2.1", "192.0.2.2"
SPI = 0x1001
KEY = bytes(range(20))  # AES-128 key + 4-octet salt (RFC 4106 §8.1)


def _spec() -> SASpec:
    return SASpec(
        spi=SPI,
        src=ipaddress.ip_address(GW_A),
        dst=ipaddress.ip_address(GW_B),
        enc="aes128gcm16",
        enc_key=KEY,
        replay_window=64,
        reqid=1,
    )


ENGINE = Engine([GW_B])
ENGINE.add_sa(_spec(), now=0.0)
ENGINE.add_policy(
    Policy(
        "in",
        Selector(ipaddress.ip_network("198.51.100.0/24"), ipaddress.ip_network("203.0.113.0/24")),
        templates=[
            Template(
                mode="tunnel",
                src=ipaddress.ip_address(GW_A),
                dst=ipaddress.ip_address(GW_B),
                reqid=1,
            )
        ],
    )
)
SRC, DST = ipaddress.ip_address(GW_A).packed, ipaddress.ip_address(GW_B).packed
SENDER = _spec().build()
RECEIVER = _spec().build()


def TestOneInput(data: bytes) -> None:  # noqa: N802 (atheris' name)
    if not data:
        return
    mode, rest = data[0] % 3, data[1:]
    if mode == 0:
        ENGINE.inbound(rest, 1.0)
    elif mode == 1:
        forced = SPI.to_bytes(4, "big") + rest[4:] if len(rest) >= 4 else rest
        ENGINE.inbound_esp(forced, SRC, DST, None, 1.0)
    else:
        try:
            outer = bytearray(SENDER.encapsulate(rest))
        except PacketDropped:
            return
        if len(rest) > 1:
            outer[rest[-1] * 7 % len(outer)] ^= rest[0] | 1
        with contextlib.suppress(PacketDropped):
            RECEIVER.decapsulate(bytes(outer))
    with contextlib.suppress(ParseError):
        parse_esp_header(rest)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
