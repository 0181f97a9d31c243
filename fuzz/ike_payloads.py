"""atheris target: every IKEv2 payload body parser (RFC 7296 §3.3-3.16, RFC 7383 §2.5),
the payload chain walker and the SK inner chain.

The first octet picks a known payload type (and is the SK/SKF Next Payload); the rest
is the body. ``parse_body``, ``parse_payloads`` and ``sk.parse_inner`` may raise only
``ParseError`` (``UnsupportedCriticalPayload`` is one). A body that parses must build
again: ``build_body`` may refuse it only with ``ConfigError``.

Run: .venv/bin/python fuzz/ike_payloads.py [-runs=N] [-max_total_time=S] [CORPUS_DIR]
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from pyipsec.errors import ConfigError, ParseError
    from pyipsec.ike.v2 import sk
    from pyipsec.ike.v2.message import parse_payloads
    from pyipsec.ike.v2.payloads import KNOWN_TYPES, build_body, parse_body

_TYPES = sorted(KNOWN_TYPES)


def TestOneInput(data: bytes) -> None:  # noqa: N802 (atheris' name)
    if not data:
        return
    selector, body = data[0], memoryview(data[1:])
    payload_type = _TYPES[selector % len(_TYPES)]
    try:
        payload = parse_body(payload_type, body, selector)
    except ParseError:
        pass
    else:
        if payload.payload_type != payload_type:
            raise RuntimeError(f"parse_body({payload_type}) gave type {payload.payload_type}")
        with contextlib.suppress(ConfigError):
            build_body(payload)
    with contextlib.suppress(ParseError):
        parse_payloads(selector, body)
    with contextlib.suppress(ParseError):
        sk.parse_inner(selector, bytes(body))


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
