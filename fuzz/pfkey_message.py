"""atheris target: PF_KEY v2 messages (RFC 2367 §2 and the Linux extensions).

``parse_message`` and ``split_messages`` may raise only ``KeyApiError`` (with the errno
Linux's ``pfkey_sendmsg`` gives the same bytes); what parses must pass ``check_message``
or be refused with ``KeyApiError``, and must build again to bytes that parse back to the
same message.

Run: .venv/bin/python fuzz/pfkey_message.py [-runs=N] [-max_total_time=S] [CORPUS_DIR]
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from pyipsec.errors import KeyApiError
    from pyipsec.keyapi.pfkey import (
        build_message,
        check_message,
        parse_message,
        split_messages,
    )


def TestOneInput(data: bytes) -> None:  # noqa: N802 (atheris' name)
    for strict in (True, False):
        try:
            msg = parse_message(data, strict=strict)
        except KeyApiError:
            pass
        else:
            with contextlib.suppress(KeyApiError):
                check_message(msg)
            again = parse_message(build_message(msg), strict=strict)
            if again != msg:
                raise RuntimeError(f"PF_KEY message does not round-trip: {msg!r}")
        with contextlib.suppress(KeyApiError):
            split_messages(data, strict=strict)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
