"""swanctl.conf schema (pyipsec.config.swanctl) on realistic files."""

from __future__ import annotations

import datetime
import shutil
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyipsec.config.swanctl import (
    SwanctlError,
    load_swanctl,
    parse_bool,
    parse_secret,
    parse_size,
    parse_swanctl,
    parse_time,
)
from pyipsec.config.swanctl_syntax import Location
from pyipsec.errors import ConfigError
from pyipsec.ike.connection import AuthConfig, Mark
from pyipsec.ike.proposals import default_proposals, format_proposal
from pyipsec.ike.traffic_selectors import DynamicTrafficSelector, parse_ts
from pyipsec.ike.v2.constants import ProtocolId

DATA = Path(__file__).parent / "data" / "swanctl"


# -- value syntax ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("1h", 3600), ("1d", 86400), ("45", 45)]
)
def test_times(text: str, seconds: int) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize(
    ("text", "count"), [("500", 500), ("2k", 2048), ("1M", 1 << 20), ("3g", 3 << 30)]
)
def test_sizes(text: str, count: int) -> None:
    assert parse_size(text) == count


def test_booleans_and_secrets() -> None:
    assert [parse_bool(v) for v in ("yes", "true", "no", "false", "YES")] == [1, 1, 0, 0, 1]
    assert parse_secret("0x0a0B") == b"\x0a\x0b"
    assert parse_secret("0sc2VjcmV0") == b"secret"
    assert parse_secret("plain text") == b"plain text"
    for bad in ("1.5h", "h", "-1s", "1w"):
        with pytest.raises(ValueError):
            parse_time(bad)


# -- site-to-site with PSK --------------------------------------------------------------


def test_site_to_site_psk() -> None:
    path = DATA / "site-psk" / "swanctl.conf"
    cfg = load_swanctl(path)
    assert cfg.warnings == ()
    (conn,) = cfg.connections
    assert conn.name == "site" and conn.source == f"{path}:4"
    assert conn.version == 2
    assert conn.local_addrs == ("192.0.2.1",) and conn.remote_addrs == ("192.0.2.2",)
    assert [format_proposal(p) for p in conn.proposals] == [
        "aes128gcm16-prfsha256-x25519",
        "aes256-sha256-modp2048",
    ]
    assert conn.dpd_delay == 30 and conn.rekey_time == 4 * 3600
    assert conn.over_time == 600 and conn.rand_time == 600  # rand_time defaults to over_time
    assert conn.encap is True and conn.send_certreq is False
    assert conn.local == (AuthConfig("local", auth="psk", id="gw1.example.org"),)
    assert conn.remote == (AuthConfig("remote", auth="psk", id="gw2.example.org"),)
    (child,) = conn.children
    assert conn.child("net") is child and conn.child("nope") is None
    assert child.local_ts == (parse_ts("198.51.100.0/24"),)
    assert child.remote_ts == (parse_ts("203.0.113.0/24"), parse_ts("203.0.113.10[tcp/443]"))
    assert [format_proposal(p) for p in child.esp_proposals] == [
        "aes128gcm16-esn",
        "chacha20poly1305-x25519",
    ]
    assert child.mode == "tunnel" and child.dpd_action == "restart"
    assert child.start_action == {"trap", "start"} and child.close_action == frozenset()
    assert (child.rekey_time, child.life_time, child.rand_time) == (3600, 5400, 1800)
    assert child.rekey_bytes == 500 << 20
    assert child.life_bytes == (500 << 20) * 11 // 10  # 110% of rekey_bytes
    assert child.rand_bytes == child.life_bytes - child.rekey_bytes

    site, hexed, eap = cfg.secrets
    assert (site.kind, site.ids, site.data) == (
        "ike",
        ("gw1.example.org", "gw2.example.org"),
        b"not a # comment",
    )
    assert site.matches("gw1.example.org", "gw2.example.org") and not site.matches("x")
    assert (hexed.ids, hexed.data) == ((), b"\x01\x02\x03\x04\x05")
    assert hexed.matches("anyone")
    assert (eap.kind, eap.ids, eap.data) == ("eap", ("user@example.org",), b"secret")
    assert "not a # comment" not in repr(cfg)


def test_defaults_as_swanctl_documents_them() -> None:
    cfg = parse_swanctl(
        "connections {\n  c {\n    children {\n      ch {\n      }\n    }\n  }\n}\n"
    )
    (conn,) = cfg.connections
    assert conn.version == 0 and conn.local_addrs == ("%any",) and conn.remote_addrs == ("%any",)
    assert (conn.local_port, conn.remote_port) == (500, 500)
    assert conn.proposals == default_proposals(ProtocolId.IKE)
    assert conn.local == (AuthConfig("local"),) and conn.remote == (AuthConfig("remote"),)
    assert conn.local[0].auth == "pubkey" and conn.local[0].revocation == "relaxed"
    assert (conn.rekey_time, conn.reauth_time, conn.over_time, conn.rand_time) == (
        14400,
        0,
        1440,
        1440,
    )
    assert (conn.mobike, conn.pull, conn.encap, conn.send_certreq) == (True, True, False, True)
    assert (conn.fragmentation, conn.childless, conn.send_cert, conn.unique) == (
        "yes",
        "allow",
        "ifasked",
        "no",
    )
    assert conn.keyingtries == 1 and conn.dpd_delay == 0
    (child,) = conn.children
    assert child.local_ts == child.remote_ts == (DynamicTrafficSelector(),)
    assert child.esp_proposals == default_proposals(ProtocolId.ESP)
    assert (child.rekey_time, child.life_time, child.rand_time) == (3600, 3960, 360)
    assert (child.mode, child.dpd_action, child.replay_window) == ("tunnel", "clear", 32)
    assert (child.policies, child.copy_df, child.copy_ecn, child.copy_dscp) == (
        True,
        True,
        True,
        "out",
    )
    assert child.start_action == child.close_action == frozenset()


def test_over_time_follows_the_longer_of_rekey_and_reauth() -> None:
    cfg = parse_swanctl("connections {\n c {\n rekey_time = 1h\n reauth_time = 10h\n }\n}\n")
    assert cfg.connections[0].over_time == 3600


def test_endpoint_forms() -> None:
    text = "connections {\n c {\n  remote_addrs = %any6, 2001:db8::7, 192.0.2.0/25, "
    text += "192.0.2.1-192.0.2.9, vpn.example.org\n }\n}\n"
    conn = parse_swanctl(text).connections[0]
    assert conn.remote_addrs == (
        "%any6",
        "2001:db8::7",
        "192.0.2.0/25",
        "192.0.2.1-192.0.2.9",
        "vpn.example.org",
    )
    for bad in ("192.0.2.1-192.0.2.300", "192.0.2.9-192.0.2.1", "bad host!", "1.2.3"):
        with pytest.raises(SwanctlError, match="expected addresses, subnets"):
            parse_swanctl(f"connections {{\n c {{\n  remote_addrs = {bad}\n }}\n}}\n")


def test_auth_rounds_are_ordered_by_round() -> None:
    text = (
        "connections {\n c {\n"
        "  local-2 {\n   round = 2\n   auth = eap-md5\n  }\n"
        "  local-1 {\n   round = 1\n   auth = pubkey\n  }\n"
        " }\n}\n"
    )
    cfg = parse_swanctl(text, "r.conf")
    assert [(a.name, a.round, a.auth) for a in cfg.connections[0].local] == [
        ("local-1", 1, "pubkey"),
        ("local-2", 2, "eap-md5"),
    ]
    # EAP is parsed but the IKE daemon does not do it yet: one warning with the line.
    assert [str(w) for w in cfg.warnings] == [
        "r.conf:5: connections.c.local-2.auth = eap-md5 is accepted but not acted on yet"
    ]


# -- certificates and the directory layout ------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture
def roadwarrior(tmp_path: Path) -> Path:
    """The roadwarrior example plus a CA, host certificates and keys made for the test."""
    base = tmp_path / "swanctl"
    shutil.copytree(DATA / "roadwarrior", base)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    gw_key = ec.generate_private_key(ec.SECP256R1())
    client_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Example CA", ca_key, "Example CA", ca_key, ca=True)
    for sub in ("x509", "x509ca", "private", "ecdsa", "pkcs8"):
        (base / sub).mkdir()
    pem = serialization.Encoding.PEM
    (base / "x509ca" / "ca.pem").write_bytes(ca.public_bytes(pem))
    (base / "x509" / "gateway.pem").write_bytes(
        _cert("gw.example.org", gw_key, "Example CA", ca_key, False).public_bytes(pem)
    )
    (base / "x509" / "client.der").write_bytes(
        _cert("client", client_key, "Example CA", ca_key, False).public_bytes(
            serialization.Encoding.DER
        )
    )
    (base / "ecdsa" / "gateway.pem").write_bytes(
        gw_key.private_bytes(
            pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    (base / "pkcs8" / "client.pem").write_bytes(
        client_key.private_bytes(
            pem,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pass phrase"),
        )
    )
    (base / "pubkey").mkdir()
    (base / "pubkey" / "peer.pem").write_bytes(
        client_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (base / "conf.d" / "raw.conf").write_text(
        "connections {\n  raw {\n    remote {\n      auth = pubkey\n      pubkeys = peer.pem\n"
        "    }\n  }\n}\n"
    )
    (base / "conf.d" / "secrets.conf").write_text(
        'secrets {\n  pkcs8-client {\n    file = client.pem\n    secret = "pass phrase"\n  }\n}\n'
    )
    return base


def test_roadwarrior_with_certificates_pools_and_conf_d(roadwarrior: Path) -> None:
    cfg = load_swanctl(roadwarrior / "swanctl.conf")
    assert cfg.warnings == ()
    # conf.d/*.conf are read in name order: client, raw, rw, secrets.
    home, raw, rw = cfg.connections
    (peer_key,) = raw.remote[0].pubkeys
    assert cfg.public_keys == (peer_key,)
    assert rw.name == "rw" and rw.source == f"{roadwarrior / 'conf.d' / 'rw.conf'}:2"
    assert rw.pools == ("rw-v4", "rw-v6") and rw.unique == "replace" and rw.fragmentation == "force"
    (gw_cert,) = rw.local[0].certs
    assert gw_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gw.example.org"
    (ca,) = rw.remote[0].cacerts
    assert ca.subject == ca.issuer
    assert gw_cert.issuer == ca.subject
    (child,) = rw.children
    assert child.local_ts == (parse_ts("0.0.0.0/0"), parse_ts("::/0"))
    assert child.remote_ts == (DynamicTrafficSelector(),)
    assert format_proposal(child.esp_proposals[0]) == "aes256gcm16-ecp384"
    assert child.esp_proposals[1:] == default_proposals(ProtocolId.ESP)
    assert child.inactivity == 900 and child.if_id_in == "%unique"
    assert child.mark_out == Mark(0x10, 0xFF)

    assert home.remote_addrs == ("gw.example.org",)
    assert home.vips == (IPv4Address("0.0.0.0"), IPv6Address("::"))
    assert home.remote[0].id == "C=ZZ, O=Example, CN=gw.example.org"
    (client_cert,) = home.local[0].certs  # DER file
    assert client_cert.issuer == ca.subject
    assert home.children[0].start_action == {"start"}

    v4, v6 = cfg.pools
    assert v4.addrs == (ip_address("198.51.100.128"), ip_address("198.51.100.255"))
    assert v4.attribute("dns") == ("198.51.100.53", "2001:db8::53")
    assert v6.addrs == (ip_address("2001:db8:1::1"), ip_address("2001:db8:1::ff"))
    assert v6.attribute("dns") == ()

    # Directory layout: x509/ and x509ca/ loaded, both keys opened (one with a passphrase).
    assert len(cfg.certificates) == 2 and cfg.ca_certificates == (ca,)
    keys = {s.kind: s for s in cfg.secrets}
    assert set(keys) == {"ecdsa", "pkcs8"}
    pub = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    for secret, cert in ((keys["ecdsa"], gw_cert), (keys["pkcs8"], client_cert)):
        assert secret.key is not None
        assert secret.key.public_key().public_bytes(*pub) == cert.public_key().public_bytes(*pub)
    assert peer_key.public_bytes(*pub) == client_cert.public_key().public_bytes(*pub)
    assert "pass phrase" not in repr(cfg)


def test_encrypted_key_without_passphrase_is_a_warning(roadwarrior: Path) -> None:
    (roadwarrior / "conf.d" / "secrets.conf").unlink()
    cfg = load_swanctl(roadwarrior / "swanctl.conf")
    assert [str(w) for w in cfg.warnings] == [
        f"{roadwarrior / 'pkcs8' / 'client.pem'}:0: "
        "pkcs8/client.pem is encrypted and no secrets.pkcs8 gives it"
    ]
    assert [s.kind for s in cfg.secrets] == ["ecdsa"]


def test_wrong_passphrase_names_the_secret_not_its_value(roadwarrior: Path) -> None:
    (roadwarrior / "conf.d" / "secrets.conf").write_text(
        "secrets {\n pkcs8-c {\n  file = client.pem\n  secret = hunter2\n }\n}\n"
    )
    with pytest.raises(SwanctlError) as info:
        load_swanctl(roadwarrior / "swanctl.conf")
    assert info.value.location == Location(str(roadwarrior / "conf.d" / "secrets.conf"), 4)
    assert "wrong passphrase" in str(info.value) and "hunter2" not in str(info.value)


def test_key_of_the_wrong_type_and_junk_files_are_warnings(roadwarrior: Path) -> None:
    (roadwarrior / "ecdsa" / "ed.pem").write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (roadwarrior / "x509" / "junk.pem").write_text("not a certificate\n")
    (roadwarrior / "x509crl").mkdir()
    (roadwarrior / "x509crl" / "ca.crl").write_bytes(b"")
    messages = [w.message for w in load_swanctl(roadwarrior / "swanctl.conf").warnings]
    assert messages == [
        "x509/junk.pem skipped: no certificate",
        "ecdsa/ed.pem holds a Ed25519PrivateKey, not a ecdsa key",
        "x509crl/ is not supported yet: file ignored",
    ]


def test_missing_and_broken_certificate_files_are_errors(roadwarrior: Path) -> None:
    conf = roadwarrior / "conf.d" / "rw.conf"
    conf.write_text(conf.read_text().replace("certs = gateway.pem", "certs = missing.pem"))
    with pytest.raises(SwanctlError) as info:
        load_swanctl(roadwarrior / "swanctl.conf")
    assert info.value.location == Location(str(conf), 10) and "cannot read certificate" in str(
        info.value
    )
    (roadwarrior / "x509" / "missing.pem").write_text("garbage\n")
    with pytest.raises(
        SwanctlError,
        match=r"rw\.conf:10: connections\.rw\.local\.certs: 'missing\.pem' is no PEM or DER",
    ):
        load_swanctl(roadwarrior / "swanctl.conf")


# -- warnings and errors, with file:line --------------------------------------------------


def test_warnings_for_unsupported_and_unknown_keys() -> None:
    text = (
        "connections {\n"  # 1
        "  c {\n"  # 2
        "    aggressive = yes\n"  # 3
        "    mediation = no\n"  # 4: default value, nothing to warn about
        "    frobnicate = 1\n"  # 5
        "    pools = nothere\n"  # 6
        "    weird {\n    }\n"  # 7
        "    children {\n      ch {\n"  # 9-10
        "        ipcomp = yes\n        bogus = 2\n      }\n    }\n"  # 11-14
        "  }\n"
        "}\n"
        "secrets {\n  token-1 {\n  }\n}\n"  # 17-18
        "plugins {\n}\n"  # 21
    )
    cfg = parse_swanctl(text, "w.conf")
    assert [str(w) for w in cfg.warnings] == [
        "w.conf:18: secrets.token-1: secret type not supported, ignored",
        "w.conf:6: connections.c.pools: no pool 'nothere' in this file",
        "w.conf:11: connections.c.children.ch.ipcomp is accepted but not acted on yet",
        "w.conf:12: unknown key connections.c.children.ch.bogus ignored",
        "w.conf:3: connections.c.aggressive is accepted but not acted on yet",
        "w.conf:5: unknown key connections.c.frobnicate ignored",
        "w.conf:7: unknown section connections.c.weird ignored",
        "w.conf:21: unknown section plugins ignored",
    ]


def _conn(body: str) -> str:
    """A connection with ``body`` as its lines 3.. (so line numbers are easy to state)."""
    return "connections {\n  c {\n" + body + "  }\n}\n"


def _child(body: str) -> str:
    """A child whose ``body`` starts on line 5."""
    return _conn("    children {\n      ch {\n" + body + "      }\n    }\n")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            _conn("    rekey_time = 1 hour\n"),
            3,
            "connections.c.rekey_time = '1 hour': expected a time",
        ),
        (_conn("    mobike = maybe\n"), 3, "connections.c.mobike = 'maybe': expected yes or no"),
        (_conn("    version = 3\n"), 3, "expected a number in 0-2"),
        (_conn("    local_port = 0\n"), 3, "expected a number in 1-65535"),
        (_conn("    fragmentation = sometimes\n"), 3, "expected one of yes, accept, force, no"),
        (
            _conn("    proposals = aes128-sha256\n"),
            3,
            "expected IKE proposals in strongSwan keywords (IKE proposal 'aes128-sha256' "
            "needs a DH group)",
        ),
        (_conn("    remote_addrs = 192.0.2.300\n"), 3, "expected addresses, subnets, ranges"),
        (_conn("    vips = 0.0.0\n"), 3, "connections.c.vips = '0.0.0': expected IP addresses"),
        (_conn("    dscp = 12\n"), 3, "expected six binary digits"),
        (
            _conn("    local {\n      auth = kerberos\n    }\n"),
            4,
            "connections.c.local.auth = 'kerberos': expected pubkey",
        ),
        (
            _conn("    local {\n      certs = x.pem\n    }\n"),
            4,
            "relative credential path without a base dir",
        ),
        (
            _child("        local_ts = 10.0.0.0/8[tcp/99999]\n"),
            5,
            "expected traffic selectors",
        ),
        (
            _child("        esp_proposals = aes128-prfsha256\n"),
            5,
            "expected ESP proposals",
        ),
        (
            _child("        mode = bridge\n"),
            5,
            "expected one of tunnel, transport",
        ),
        (
            _child("        start_action = go\n"),
            5,
            "expected none, trap, start or trap|start",
        ),
        (
            _child("        mark_in = 0x1/zz\n"),
            5,
            "expected a mark value[/mask]",
        ),
        (
            _child("        rekey_bytes = lots\n"),
            5,
            "expected a count",
        ),
        (
            _child("        rekey_time = 1h\n        life_time = 30m\n"),
            6,
            "life_time must exceed rekey_time",
        ),
        ("secrets {\n  ike-1 {\n    id = a\n  }\n}\n", 2, "secrets.ike-1 needs a secret"),
        ("secrets {\n  private-1 {\n  }\n}\n", 2, "secrets.private-1 needs a file"),
        ("pools {\n  p {\n    dns = 192.0.2.53\n  }\n}\n", 2, "pools.p needs addrs"),
        (
            "pools {\n  p {\n    addrs = 192.0.2.9-192.0.2.1\n  }\n}\n",
            3,
            "expected a subnet, a range a-b",
        ),
        (
            "authorities {\n  ca {\n    cacert = /nonexistent/ca.pem\n  }\n}\n",
            3,
            "cannot read certificate",
        ),
    ],
)
def test_invalid_values_name_file_line_and_expectation(text: str, line: int, message: str) -> None:
    with pytest.raises(SwanctlError) as info:
        parse_swanctl(text, "bad.conf")
    assert isinstance(info.value, ConfigError)
    assert info.value.location == Location("bad.conf", line)
    assert str(info.value).startswith(f"bad.conf:{line}: ")
    assert message in str(info.value)


@pytest.mark.parametrize("value", ["0xZZsecret", "0s!!!secret", "0x123"])
def test_bad_secret_encoding_does_not_show_the_secret(value: str) -> None:
    with pytest.raises(SwanctlError) as info:
        parse_swanctl(f"secrets {{\n  ike-1 {{\n    secret = {value}\n  }}\n}}\n", "s.conf")
    assert (
        str(info.value) == "s.conf:3: secrets.ike-1.secret = (secret value hidden): "
        "expected text, 0x<hex> or 0s<base64>"
    )
    assert value[2:] not in str(info.value)


def test_syntax_errors_come_through_with_location() -> None:
    with pytest.raises(ConfigError, match=r"^x\.conf:1: "):
        parse_swanctl("connections {\n", "x.conf")


# -- robustness ----------------------------------------------------------------------------

_SEED = (DATA / "site-psk" / "swanctl.conf").read_text()


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_config_only_raises_config_error(data: st.DataObject) -> None:
    text = _SEED
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 12))
        insert = data.draw(
            st.text(st.sampled_from(list('{}=#"\n ,-/[]:.0123456789abxyz%')), max_size=6)
        )
        text = text[:pos] + insert + text[pos + cut :]
    try:
        cfg = parse_swanctl(text, "m.conf")
    except ConfigError as exc:
        assert str(exc).startswith("m.conf:")
        return
    assert all(c.name for c in cfg.connections)


@pytest.mark.parametrize(
    ("word", "expected"),
    [("none", frozenset()), ("clear", frozenset()), ("trap", {"trap"}), ("route", {"trap"}),
     ("start", {"start"}), ("restart", {"start"}), ("trap|start", {"trap", "start"})],
)  # fmt: skip
def test_start_and_close_action_words(word: str, expected: frozenset[str]) -> None:
    text = (
        "connections {\n gw {\n  remote_addrs = 192.0.2.2\n  children {\n   net {\n"
        f"    start_action = {word}\n    close_action = {word}\n   }}\n  }}\n }}\n}}\n"
    )
    (conn,) = parse_swanctl(text, "t.conf").connections
    (child,) = conn.children
    assert child.start_action == expected and child.close_action == expected
