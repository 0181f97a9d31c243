"""atheris target: xfrm_user netlink messages (linux/xfrm.h, the kernel's xfrm_user.c).

``parse_messages`` and ``parse_message`` may raise only ``KeyApiError`` (the errno the
kernel answers the same bytes with); every message that parses builds again to bytes
that parse back to the same message.

Run: .venv/bin/python fuzz/xfrm_message.py [-runs=N] [-max_total_time=S] [CORPUS_DIR]
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from pyipsec.errors import KeyApiError
    from pyipsec.keyapi.xfrm import build_message, parse_message, parse_messages


def TestOneInput(data: bytes) -> None:  # noqa: N802 (atheris' name)
    try:
        messages = parse_messages(data)
    except KeyApiError:
        messages = []
    for msg in messages:
        again = parse_message(build_message(msg))
        if again != msg:
            raise RuntimeError(f"xfrm message does not round-trip: {msg!r}")
    with contextlib.suppress(KeyApiError):
        parse_message(data)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
