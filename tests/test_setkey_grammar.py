"""Tests of the setkey(8) parser: the manual's examples, every construct, every error."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyipsec.errors import ConfigError
from pyipsec.keyapi.setkey_grammar import (
    PRIORITY_DEFAULT,
    PRIORITY_HIGH,
    PRIORITY_LOW,
    AddSA,
    DeleteAll,
    DeleteSA,
    Dump,
    Flush,
    GetSA,
    GetSpi,
    IpsecRequest,
    SecurityContext,
    SetkeyError,
    SpdAdd,
    SpdDelete,
    SpdDump,
    SpdFlush,
    parse_setkey,
    static_key_warnings,
)

DATA = Path(__file__).parent / "data" / "setkey"


def load(name: str) -> list[object]:
    return list(parse_setkey((DATA / name).read_text(), name))


# -- the EXAMPLES section of setkey(8) -------------------------------------------------


def test_manual_examples_parse_into_expected_commands() -> None:
    cmds = load("manual_examples.conf")
    assert len(cmds) == 14
    esp6, ah6, esp4, get, flush, dump, spd, tcp, ctx_sa, ctx_spd = cmds[:10]

    assert isinstance(esp6, AddSA)
    assert (esp6.src, esp6.dst) == (
        IPv6Address("2001:db8:4819::1"),
        IPv6Address("2001:db8:481d::1"),
    )
    assert (esp6.protocol, esp6.spi, esp6.mode) == ("esp", 123457, "any")
    assert (esp6.ealgo, esp6.ekey) == ("des-cbc", bytes.fromhex("3ffe05014819ffff"))
    assert (esp6.aalgo, esp6.akey, esp6.line) == (None, b"", 12)

    assert isinstance(ah6, AddSA)
    assert (ah6.protocol, ah6.spi, ah6.aalgo) == ("ah", 123456, "hmac-sha1")
    assert ah6.akey == b"AH SA configuration!"
    assert ah6.ealgo is None

    assert isinstance(esp4, AddSA)
    assert (esp4.src, esp4.dst, esp4.spi) == (
        IPv4Address("192.0.2.41"),
        IPv4Address("192.0.2.33"),
        0x10001,
    )
    assert (esp4.ealgo, esp4.aalgo, esp4.akey) == ("des-cbc", "hmac-md5", b"authentication!!")

    assert get == GetSA(
        IPv6Address("2001:db8:4819::1"), IPv6Address("2001:db8:481d::1"), "ah", 123456, 22
    )
    assert flush == Flush(None, 24)
    assert dump == Dump("esp", 26)

    assert isinstance(spd, SpdAdd)
    assert (spd.src, spd.sport) == (IPv4Network("192.0.2.41/32"), 21)
    assert (spd.dst, spd.dport, spd.upperspec) == (IPv4Network("192.0.2.33/32"), 0, 255)
    assert (spd.direction, spd.action, spd.priority) == ("out", "ipsec", PRIORITY_DEFAULT)
    assert spd.requests == (
        IpsecRequest(
            "esp", "tunnel", "require", IPv4Address("203.0.113.1"), IPv4Address("203.0.113.2")
        ),
    )

    assert isinstance(tcp, AddSA)
    assert (tcp.protocol, tcp.spi, tcp.aalgo, tcp.akey) == (
        "tcp",
        0x1000,
        "tcp-md5",
        b"TCP-MD5 BGP secret",
    )

    label = SecurityContext(1, 1, "system_u:system_r:unconfined_t:SystemLow-SystemHigh")
    assert isinstance(ctx_sa, AddSA) and ctx_sa.context == label and ctx_sa.ealgo == "des-cbc"
    assert isinstance(ctx_spd, SpdAdd) and ctx_spd.context == label
    assert ctx_spd.requests == (IpsecRequest("esp", "transport", "require"),)


def test_manual_upperspec_and_policy_paragraph_examples() -> None:
    icmp6, gre, natt, bundle = load("manual_examples.conf")[10:]
    assert isinstance(icmp6, SpdAdd)
    assert (icmp6.src, icmp6.upperspec) == (IPv6Network("::/0"), 58)
    assert (icmp6.icmp_type, icmp6.icmp_code, icmp6.direction, icmp6.action) == (
        135,
        0,
        "in",
        "none",
    )
    assert icmp6.requests == ()
    assert isinstance(gre, SpdAdd) and (gre.upperspec, gre.gre_key) == (47, 1234)
    assert isinstance(natt, SpdAdd)
    (request,) = natt.requests
    assert (request.src, request.sport, request.dst, request.dport) == (
        IPv4Address("203.0.113.1"),
        4500,
        IPv4Address("203.0.113.2"),
        30000,
    )
    assert isinstance(bundle, SpdAdd)
    assert [(r.protocol, r.mode, r.level) for r in bundle.requests] == [
        ("esp", "transport", "require"),
        ("ah", "transport", "require"),
    ]


def test_manual_errata_are_reported_not_guessed() -> None:
    # The manual's GRE example forgets "-P direction"; setkey itself rejects it too.
    with pytest.raises(
        SetkeyError, match=r":1:33: expected '-P' and a policy direction, got 'ipsec'"
    ):
        parse_setkey("spdadd 0.0.0.0 0.0.0.0 gre 1234 ipsec esp/transport//require ;", "m.conf")
    # The manual's "add -6 myhost.example.com ..." needs DNS, which a pure parser refuses.
    with pytest.raises(SetkeyError, match=r":1:8: .*host names are not resolved"):
        parse_setkey('add -6 myhost.example.com yourhost.example.com ah 123456 -A hmac-sha1 "k";')


# -- every construct --------------------------------------------------------------------


def test_feature_file() -> None:
    cmds = load("features.conf")
    assert [type(c).__name__ for c in cmds] == [
        "Flush",
        "SpdFlush",
        "AddSA",
        "AddSA",
        "AddSA",
        "AddSA",
        "AddSA",
        "GetSpi",
        "DeleteSA",
        "DeleteAll",
        "Flush",
        "Dump",
        "SpdAdd",
        "SpdAdd",
        "SpdAdd",
        "SpdAdd",
        "SpdDelete",
        "SpdDump",
    ]
    full = cmds[2]
    assert isinstance(full, AddSA)
    assert (full.mode, full.replay, full.reqid, full.padding, full.cyclic_seq) == (
        "tunnel",
        64,
        7,
        "random-pad",
        False,
    )
    assert (full.lifetime_hard_time, full.lifetime_soft_time) == (3600, 3000)
    assert (full.lifetime_hard_bytes, full.lifetime_soft_bytes) == (1_000_000, 900_000)
    assert full.ekey == bytes(range(0, 256, 17))
    assert full.akey == bytes(range(32)) and full.aalgo == "hmac-sha256"


def test_nat_t_spelling() -> None:
    cmds = load("features.conf")
    natt, natt_oa = cmds[3], cmds[4]
    assert isinstance(natt, AddSA) and isinstance(natt_oa, AddSA)
    assert (natt.protocol, natt.nat_t, natt.sport, natt.dport) == ("esp", True, 4500, 4501)
    assert natt.ealgo == "rijndael-cbc" and natt.akey == b"twenty byte key ok!!"
    # Without ports, esp-udp uses 4500 on both sides (RFC 3948 §2.1), as setkey does.
    assert (natt_oa.sport, natt_oa.dport, natt_oa.nat_oa) == (
        4500,
        4500,
        IPv4Address("203.0.113.9"),
    )
    assert (natt_oa.ealgo, natt_oa.ekey, natt_oa.aalgo, natt_oa.akey) == ("null", b"", "null", b"")


def test_other_sad_commands() -> None:
    cmds = load("features.conf")
    update, ipcomp, getspi, delete, deleteall, flush_ah, dump_all = cmds[5:12]
    assert isinstance(update, AddSA) and update.update and update.akey == b"0123456789abcdef" * 2
    assert isinstance(ipcomp, AddSA)
    assert (ipcomp.protocol, ipcomp.calgo, ipcomp.raw_cpi, ipcomp.src) == (
        "ipcomp",
        "deflate",
        True,
        IPv6Address("2001:db8::1"),
    )
    assert getspi == GetSpi(
        IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2"), "esp", 0, 20, mode="tunnel", reqid=9
    )
    assert delete == DeleteSA(IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2"), "esp", 0x1000, 21)
    assert deleteall == DeleteAll(IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2"), "esp", 22)
    assert (flush_ah, dump_all) == (Flush("ah", 23), Dump(None, 24))


def test_spd_commands_and_priorities() -> None:
    cmds = load("features.conf")
    unique, update, six, icmp, delete, dump = cmds[12:]
    assert isinstance(unique, SpdAdd)
    assert unique.priority == PRIORITY_DEFAULT - 5  # "def+5" is placed before "def"
    assert unique.requests[0].level == "unique" and unique.requests[0].reqid == 7
    assert isinstance(update, SpdAdd) and update.update
    assert (update.upperspec, update.dport, update.priority) == (6, 80, PRIORITY_DEFAULT + 10)
    assert isinstance(six, SpdAdd)
    assert (six.upperspec, six.direction, six.priority) == (17, "fwd", PRIORITY_HIGH + 3)
    assert six.requests[1] == IpsecRequest(
        "esp", "tunnel", "default", IPv6Address("2001:db8::1"), IPv6Address("2001:db8::2")
    )
    assert isinstance(icmp, SpdAdd)
    assert (icmp.icmp_type, icmp.icmp_code, icmp.action, icmp.priority) == (
        8,
        0,
        "discard",
        PRIORITY_LOW,
    )
    assert delete == SpdDelete(
        IPv4Network("198.51.100.0/24"), IPv4Network("203.0.113.0/24"), 255, "out", 33
    )
    assert dump == SpdDump(34)
    assert SpdFlush(3) in cmds


@pytest.mark.parametrize(
    ("spec", "value"),
    [
        ("prio 0", PRIORITY_DEFAULT),
        ("prio 7", PRIORITY_DEFAULT - 7),
        ("priority -7", PRIORITY_DEFAULT + 7),
        ("prio 2147483648", 0),
        ("prio -2147483647", 0xFFFFFFFF),
        ("prio high", PRIORITY_HIGH),
        ("prio low + 1", PRIORITY_LOW - 1),
        ("prio def -1073741823", PRIORITY_DEFAULT + 1073741823),
        ("prio high+1073741824", 0),
    ],
)
def test_priority_forms(spec: str, value: int) -> None:
    (cmd,) = parse_setkey(f"spdadd 192.0.2.1 192.0.2.2 any -P out {spec} none;")
    assert isinstance(cmd, SpdAdd) and cmd.priority == value


def test_comments_continuation_and_shell_backslashes() -> None:
    text = "add 192.0.2.1 \\\n 192.0.2.2 # dst\n esp 300 -E null ; # done\n#only a comment\n"
    (cmd,) = parse_setkey(text)
    assert isinstance(cmd, AddSA) and (cmd.spi, cmd.line) == (300, 1)
    assert parse_setkey("# nothing\n\n") == []


def test_keys_stay_out_of_repr() -> None:
    (cmd,) = parse_setkey(
        "add 192.0.2.1 192.0.2.2 esp 300 -E aes-cbc 0x00112233445566778899aabbccddeeff "
        '-A hmac-sha1 "secret-secret-secret";'
    )
    text = repr(cmd)
    assert "00112233" not in text and "secret" not in text and "aes-cbc" in text


def test_static_key_warnings_flag_only_counter_mode_ciphers() -> None:
    key16, key20, key36 = "0x" + "11" * 16, "0x" + "22" * 20, "0x" + "33" * 36
    text = (
        f"add 192.0.2.1 192.0.2.2 esp 300 -E aes-cbc {key16} -A hmac-sha1 {key20};\n"
        f"add 192.0.2.1 192.0.2.2 esp 301 -E aes-gcm-16 {key20};\n"
        f"add 192.0.2.1 192.0.2.2 esp 302 -E chacha20-poly1305 {key36};\n"
    )
    warnings = static_key_warnings(parse_setkey(text), "w.conf")
    assert len(warnings) == 2
    assert warnings[0].startswith("w.conf:2: aes-gcm-16") and "RFC 4106 §8.1" in warnings[0]
    assert warnings[1].startswith("w.conf:3: chacha20-poly1305") and "RFC 7634 §4" in warnings[1]


# -- errors: file:line:column and what was expected ------------------------------------

SA = "add 192.0.2.1 192.0.2.2 esp 300 "  # the next token is at column 33
SPD = "spdadd 192.0.2.0/24 192.0.2.2 any -P out "  # column 42
IPSEC = SPD + "ipsec "  # column 48
ERRORS = [
    ("frob ;", 1, 1, "expected a command (add"),
    (
        "add 192.0.2.1 192.0.2.2 esp esp -E null;",
        1,
        29,
        "expected an SPI (decimal or 0x hex), got 'esp'",
    ),
    ("add 192.0.2.1 192.0.2.2 esp 0x1g -E null;", 1, 29, "expected an SPI"),
    ("add 192.0.2.1 192.0.2.2 esp 0x100000000 -E null;", 1, 29, "SPI does not fit in 32 bits"),
    ("add 192.0.2.1 192.0.2.2 esp 255 -E null;", 1, 29, "SPI 255 is reserved"),
    ("add 192.0.2.1 192.0.2.2 gre 300 -E null;", 1, 25, "expected a security protocol"),
    ("add 192.0.2.1 2001:db8::1 esp 300 -E null;", 1, 5, "address families differ"),
    ("add -6 192.0.2.1 192.0.2.2 esp 300 -E null;", 1, 8, "expected an IPv6 address (-6)"),
    (
        "add 192.0.2.300 192.0.2.2 esp 300 -E null;",
        1,
        5,
        "expected a source address, got '192.0.2.300'",
    ),
    ("add 192.0.2.1[99999] 192.0.2.2 esp 300 -E null;", 1, 15, "port number or 'any' out of range"),
    ("add 192.0.2.1[80 192.0.2.2 esp 300 -E null;", 1, 18, "expected ']'"),
    (SA + "-m sideways -E null;", 1, 36, "expected a mode (transport, tunnel or any)"),
    (SA + "-r many -E null;", 1, 36, "expected a replay window size"),
    (
        "add 192.0.2.1 192.0.2.2 esp-old 300 -r 4 -E null;",
        1,
        37,
        "replay prevention cannot be used with esp-old",
    ),
    (SA + "-f fancy-pad -E null;", 1, 36, "expected zero-pad, random-pad, seq-pad or nocyclic-seq"),
    (SA + "-lh -1 -E null;", 1, 37, "expected a lifetime in seconds"),
    (SA + ";", 1, 33, "expected an extension or the algorithm (-E ...), got ';'"),
    (SA + "-A hmac-sha1 0x00;", 1, 33, "esp needs -E (encryption) before -A"),
    ("add 192.0.2.1 192.0.2.2 ah 300 -E null;", 1, 32, "-E (encryption) is only for ESP, not ah"),
    (SA + "-C deflate;", 1, 33, "-C (compression) is only for ipcomp"),
    (SA + "-E aes-cbc ;", 1, 44, "expected a key for aes-cbc (0x hex digits"),
    (SA + "-E aes-cbc 0x123;", 1, 44, "odd number of hex digits (3)"),
    (SA + "-E aes-cbc 0xzz;", 1, 44, "malformed hex string"),
    (SA + '-E aes-cbc "open;', 1, 44, "unterminated quoted string"),
    (SA + "-E null", 1, 40, "expected ';' after the algorithms, got end of input"),
    (SA + '-E null -ctx x 1 "l";', 1, 41, "expected ';' after the algorithms, got '-ctx'"),
    ("add 192.0.2.1 192.0.2.2 ipcomp 300 -C ;", 1, 39, "expected a compression algorithm name"),
    ("get 192.0.2.1 192.0.2.2 esp 300 -m tunnel;", 1, 33, "expected ';', got '-m'"),
    ("flush esp ah;", 1, 11, "expected ';', got 'ah'"),
    ("spdflush all;", 1, 10, "expected ';'"),
    (
        "spdadd 192.0.2.0/33 192.0.2.2 any -P out none;",
        1,
        18,
        "a prefix length out of range (0..32)",
    ),
    ("spdadd 192.0.2.0/24 192.0.2.2 bogus -P out none;", 1, 31, "expected an upper-layer protocol"),
    ("spdadd 192.0.2.0/24 192.0.2.2 icmp 8 -P out none;", 1, 36, "expected an ICMP type,code pair"),
    (
        "spdadd 192.0.2.0/24 192.0.2.2 tcp 8,0 -P out none;",
        1,
        35,
        "only icmp, icmp6, mh and gre take an argument",
    ),
    (
        "spdadd 192.0.2.0/24[80] 192.0.2.2 icmp -P out none;",
        1,
        8,
        "ports are not allowed with icmp",
    ),
    (
        "spdadd 192.0.2.0/24 192.0.2.2 any -P sideways none;",
        1,
        38,
        "expected a policy direction (in, out or fwd)",
    ),
    (SPD + "allow;", 1, 42, "expected a policy action"),
    (SPD + "prio middle none;", 1, 47, "expected a priority"),
    (SPD + "prio 2147483649 none;", 1, 47, "priority out of range"),
    (SPD + "prio def+1073741825 none;", 1, 47, "priority offset out of range"),
    (IPSEC + ";", 1, 48, "expected an IPsec request"),
    (
        IPSEC + "gre/transport//require;",
        1,
        48,
        "expected a request protocol (esp, ah or ipcomp), got 'gre'",
    ),
    (
        IPSEC + "esp/sideways//require;",
        1,
        52,
        "expected '/transport' or '/tunnel' after esp, got 'sideways'",
    ),
    (IPSEC + "esp;", 1, 51, "expected '/transport' or '/tunnel' after esp, got nothing"),
    (IPSEC + "esp/tunnel//require;", 1, 59, "expected tunnel endpoints (src-dst)"),
    (IPSEC + "esp/tunnel/192.0.2.1/require;", 1, 59, "expected endpoints as src-dst"),
    (
        IPSEC + "esp/tunnel/192.0.2.1-gw/require;",
        1,
        69,
        "expected a numeric destination address, got 'gw'",
    ),
    (
        IPSEC + "esp/tunnel/192.0.2.1-2001:db8::1/require;",
        1,
        59,
        "tunnel endpoint address families differ",
    ),
    (
        IPSEC + "esp/transport//always;",
        1,
        63,
        "expected a level (default, use, require, unique or unique:N), got 'always'",
    ),
    (IPSEC + "esp/transport//unique:40000;", 1, 63, "expected unique:N with N in 1..32767"),
    (IPSEC + "esp/transport//require/x;", 1, 70, "expected at most protocol/mode/src-dst/level"),
    (
        "spddelete 192.0.2.0/24 192.0.2.2 any;",
        1,
        37,
        "expected '-P' and a policy direction, got ';'",
    ),
    (SA + "-E null;\n\n  spdadd 192.0.2.0/24 @;", 3, 23, "unexpected character '@'"),
    (
        "flush;\nadd 192.0.2.1\n  192.0.2.2\n  esp\n  esp -E null;",
        5,
        3,
        "expected an SPI (decimal or 0x hex), got 'esp'",
    ),
]


@pytest.mark.parametrize(("text", "line", "column", "message"), ERRORS)
def test_syntax_errors_name_file_line_column_and_expectation(
    text: str, line: int, column: int, message: str
) -> None:
    with pytest.raises(SetkeyError) as info:
        parse_setkey(text, "demo.conf")
    err = info.value
    assert isinstance(err, ConfigError)
    assert (err.filename, err.line, err.column) == ("demo.conf", line, column), str(err)
    assert str(err).startswith(f"demo.conf:{line}:{column}: ")
    assert message in str(err)


def test_parsing_is_all_or_nothing() -> None:
    good = (DATA / "features.conf").read_text()
    assert len(parse_setkey(good)) == 18
    with pytest.raises(SetkeyError, match=r"^bad.conf:35:1: expected a command"):
        parse_setkey(good + "oops ;\n", "bad.conf")


KEY_HEX = "0x0123456789abcdeffedcba9876543210"
KEY_TEXT = "very-secret-passphrase"


@pytest.mark.parametrize(
    "text",
    [
        f"add 192.0.2.1 192.0.2.2 esp 300 -E aes-cbc {KEY_HEX} {KEY_HEX};",
        f'add 192.0.2.1 192.0.2.2 esp 300 -E aes-cbc "{KEY_TEXT}" "{KEY_TEXT}";',
        f"add 192.0.2.1 192.0.2.2 esp {KEY_HEX} -E null;",
        f'add 192.0.2.1 192.0.2.2 esp 300 -E null "{KEY_TEXT}";',
        f"add 192.0.2.1 192.0.2.2 esp 300 -E aes-cbc {KEY_HEX}0;",
        f'add 192.0.2.1 192.0.2.2 esp 300 -E aes-cbc "{KEY_TEXT}',
        f"spdadd 192.0.2.1 192.0.2.2 any -P out ipsec {KEY_HEX};",
    ],
)
def test_keys_never_appear_in_error_messages(text: str) -> None:
    with pytest.raises(SetkeyError) as info:
        parse_setkey(text)
    message = str(info.value)
    assert "0123456789" not in message and KEY_TEXT not in message, message
    assert re.match(r"<stdin>:1:\d+: ", message)


# -- robustness: nothing but SetkeyError escapes ----------------------------------------

HUGE = "9" * 5000  # past Python's 4300-digit int() limit


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"add 192.0.2.1 192.0.2.2 esp {HUGE} -E null;", "SPI does not fit in 32 bits"),
        (
            f"add 192.0.2.1 192.0.2.2 esp 300 -r {HUGE} -E null;",
            "replay window size (decimal) out of range",
        ),
        (f"spdadd 192.0.2.1/{HUGE} 192.0.2.2 any -P out none;", "prefix length out of range"),
        (f"spdadd 192.0.2.1 192.0.2.2 any -P out prio {HUGE} none;", "priority out of range"),
        (f"spdadd 192.0.2.1 192.0.2.2 gre {HUGE} -P out none;", "expected a GRE key"),
        (f"spdadd 192.0.2.1 192.0.2.2 any -P out ipsec esp/transport//unique:{HUGE};", "1..32767"),
    ],
)
def test_huge_numbers_are_range_errors(text: str, message: str) -> None:
    with pytest.raises(SetkeyError, match=re.escape(message)) as info:
        parse_setkey(text)
    assert len(str(info.value)) < 300  # the number is not echoed in full


def test_scoped_ipv6_addresses() -> None:
    (cmd,) = parse_setkey("add fe80::1%eth0 fe80::2%eth0 esp 300 -E null;")
    assert isinstance(cmd, AddSA) and cmd.src == IPv6Address("fe80::1%eth0")


ALPHABET = st.sampled_from(
    [
        *"abcdefghijklmnopqrstuvwxyz0123456789:.-/[];#\"', \n\t+%_x",
        "add ", "spdadd ", "esp ", "-E ", "-A ", "-P ", "out ", "ipsec ", "192.0.2.1 ",
        "2001:db8::1 ", "0x", "/require", "/tunnel/", "prio ", "esp-udp ", "any ", "icmp6 ",
        "unique:", "[4500]", "-ctx ", "-m ", ";\n",
    ]
)  # fmt: skip
CORPUS = [(DATA / name).read_text() for name in ("manual_examples.conf", "features.conf")]


@settings(max_examples=400, deadline=None)
@given(st.lists(ALPHABET, max_size=60).map("".join))
def test_random_text_only_raises_setkey_error(text: str) -> None:
    try:
        commands = parse_setkey(text, "fuzz.conf")
    except SetkeyError as err:
        assert str(err).startswith("fuzz.conf:")
    else:
        assert isinstance(commands, list)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(CORPUS),
    st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 6), st.text(max_size=4)),
        min_size=1,
        max_size=4,
    ),
)
def test_mutated_valid_files_only_raise_setkey_error(
    source: str, edits: list[tuple[int, int, str]]
) -> None:
    text = source
    for where, cut, insert in edits:
        at = where % (len(text) + 1)
        text = text[:at] + insert + text[at + cut :]
    try:
        parse_setkey(text, "mut.conf")
    except SetkeyError as err:
        assert re.match(r"mut\.conf:\d+:\d+: ", str(err))
