"""keyapi/setkey_errors: a refused setkey command explained next to its errno."""

from __future__ import annotations

import errno

import pytest

from pyipsec.keyapi.setkey_commands import Command
from pyipsec.keyapi.setkey_errors import describe_command, explain
from pyipsec.keyapi.setkey_grammar import parse_setkey

CBC_KEY = "0x" + "11" * 16
SHA256_KEY = "0x" + "22" * 32


def one(text: str) -> Command:
    commands = parse_setkey(text)
    assert len(commands) == 1
    return commands[0]


@pytest.mark.parametrize(
    ("text", "err", "expected"),
    [
        (
            f"add 192.0.2.1 192.0.2.2 esp 0x100 -E aes-cbc {CBC_KEY};",
            errno.EINVAL,
            "add esp 0x100: Invalid argument: aes-cbc needs an authentication algorithm (-A)",
        ),
        (
            f"add 192.0.2.1 192.0.2.2 esp 0x100 -E aes-gcm-16 0x{'33' * 20} "
            f"-A hmac-sha256 {SHA256_KEY};",
            errno.EINVAL,
            "add esp 0x100: Invalid argument: aes-gcm-16 authenticates by itself: drop -A",
        ),
        (
            f"add 192.0.2.1 192.0.2.2 esp 0x100 -E aes-cbc {CBC_KEY} -A hmac-sha256 0x1234;",
            errno.EINVAL,
            "add esp 0x100: Invalid argument: hmac-sha256 takes a 256-bit key, not 16 bits",
        ),
        (
            f"add 192.0.2.1 192.0.2.2 esp 0x100 -E aes-cbc {CBC_KEY} "
            '-A hmac-md5 "0123456789abcdef";',
            errno.ENOSYS,
            "add esp 0x100: Function not implemented: authentication algorithm hmac-md5 is not "
            "implemented (available: hmac-sha1, hmac-sha256, hmac-sha384, hmac-sha512)",
        ),
        (
            f"add 192.0.2.1 192.0.2.2 esp 0x100 -E aes-cbc {CBC_KEY} -A hmac-sha256 {SHA256_KEY};",
            errno.EEXIST,
            "add esp 0x100: File exists: an SA with SPI 0x100 to 192.0.2.2 is already "
            "installed (use update, or delete it first)",
        ),
        (
            f"update 192.0.2.1 192.0.2.2 esp 0x100 -E aes-cbc {CBC_KEY} "
            f"-A hmac-sha256 {SHA256_KEY};",
            errno.ESRCH,
            "update esp 0x100: No such process: no SA with SPI 0x100 to 192.0.2.2 to update "
            "(use add)",
        ),
        (
            "get 192.0.2.1 192.0.2.2 ah 0x200;",
            errno.ESRCH,
            "get ah 0x200: No such process: no ah SA with SPI 0x200 to 192.0.2.2 "
            "(pyipsec holds ESP SAs only)",
        ),
        (
            "delete 192.0.2.1 192.0.2.2 esp 0x200;",
            errno.ESRCH,
            "delete esp 0x200: No such process: no esp SA with SPI 0x200 to 192.0.2.2",
        ),
        (
            "spdadd 0.0.0.0 0.0.0.0 gre 1234 -P out ipsec esp/transport//require;",
            errno.EINVAL,
            "spdadd 0.0.0.0/32 0.0.0.0/32 -P out: Invalid argument: a GRE key is not a "
            "selector pyipsec knows (drop the key)",
        ),
        (
            "spdadd 192.0.2.41 192.0.2.33 any -P out ipsec "
            "esp/transport//require ah/transport//require;",
            errno.EINVAL,
            "spdadd 192.0.2.41/32 192.0.2.33/32 -P out: Invalid argument: only esp requests "
            "are supported (no ah or ipcomp)",
        ),
        (
            "spdadd 198.51.100.0/24 203.0.113.0/24 any -P in none;",
            errno.EEXIST,
            "spdadd 198.51.100.0/24 203.0.113.0/24 -P in: File exists: a policy with this "
            "selector and direction exists already (use spdupdate, or spddelete it first)",
        ),
        # No better idea than the errno: nothing invented.
        ("flush;", errno.EIO, "flush: Input/output error"),
        (
            f"add 192.0.2.1 192.0.2.2 esp 0x100 -E aes-cbc {CBC_KEY} -A hmac-sha256 {SHA256_KEY};",
            errno.ENOMEM,
            "add esp 0x100: Cannot allocate memory",
        ),
    ],
)
def test_explain(text: str, err: int, expected: str) -> None:
    assert explain(one(text), err) == expected


def test_ports_with_any_protocol_get_no_port_hint() -> None:
    # Ports with "any" (or ipv6, or tcp) are accepted by the daemon, as by Linux: an
    # EINVAL for such a policy is about something else, so no port hint is invented.
    for upper in ("any", "ipv6", "tcp"):
        cmd = one(f"spdadd 192.0.2.41/32[21] 192.0.2.33/32[any] {upper} -P out none;")
        text = explain(cmd, errno.EINVAL)
        assert text == "spdadd 192.0.2.41/32 192.0.2.33/32 -P out: Invalid argument"


def test_mobility_header_type_is_named() -> None:
    # MH type 1 travels as the source port; the engine cannot match it (Linux would).
    cmd = one("spdadd ::/0 ::/0 mh 1,0 -P in none;")
    assert explain(cmd, errno.EINVAL).endswith(
        "Invalid argument: a Mobility Header type is not a selector pyipsec knows (drop the type)"
    )
    # Type and code 0 send no ports: nothing to blame on the type.
    assert "Mobility" not in explain(one("spdadd ::/0 ::/0 mh 0,0 -P in none;"), errno.EINVAL)


def test_no_key_material_in_any_explanation() -> None:
    key = "5f" * 16
    cmd = one(f"add 192.0.2.1 192.0.2.2 esp 0x100 -E aes-cbc 0x{key} -A hmac-sha256 0x{key};")
    for err in (errno.EINVAL, errno.ENOSYS, errno.EEXIST, errno.ESRCH):
        assert "5f5f" not in explain(cmd, err)


def test_describe_command_names_each_verb() -> None:
    assert describe_command(one("getspi 192.0.2.1 192.0.2.2 esp 0x300;")) == "getspi esp 0x300"
    assert describe_command(one("deleteall 192.0.2.1 192.0.2.2 esp;")) == "deleteall esp"
    assert describe_command(one("spdflush;")) == "spdflush"
    assert describe_command(one("spddelete 198.51.100.0/24 203.0.113.0/24 any -P fwd;")) == (
        "spddelete 198.51.100.0/24 203.0.113.0/24 -P fwd"
    )
