"""atheris target: whole IKEv2 messages (RFC 7296 §3.1-3.2), then their SK/SKF payloads.

``parse_message`` may raise only ``ParseError`` (its subclasses included); decrypting
the SK or SKF payload under a fixed AES-CBC+HMAC and an AES-GCM key may raise only
``ParseError`` or ``sk.IntegrityError``. Anything else escaping is a bug (§2.21: a
malformed message is answered or dropped, never a crash).

Run: .venv/bin/python fuzz/ike_message.py [-runs=N] [-max_total_time=S] [CORPUS_DIR]
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from pyipsec.errors import ParseError
    from pyipsec.ike.v2 import sk
    from pyipsec.ike.v2.constants import EncrId, IntegId, PayloadType
    from pyipsec.ike.v2.message import parse_message

_CIPHERS = (
    sk.SkCipher(EncrId.AES_CBC, b"k" * 16, IntegId.HMAC_SHA1_96, b"a" * 20),
    sk.SkCipher(EncrId.AES_GCM_16, b"g" * 20),
)


def TestOneInput(data: bytes) -> None:  # noqa: N802 (atheris' name)
    try:
        msg = parse_message(data)
    except ParseError:
        return
    if msg.encrypted is None:
        return
    for cipher in _CIPHERS:
        try:
            if msg.encrypted.payload_type == PayloadType.SKF:
                sk.decrypt_fragment(msg, cipher)
            else:
                sk.decrypt_message(msg, cipher)
        except (ParseError, sk.IntegrityError):
            pass


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
