"""Credential loading for swanctl (pyipsec.config.credentials), without a swanctl.conf.

The same code paths seen through whole swanctl.conf files are in test_config_swanctl.py;
here each function is called directly with certificates and keys made by tests/pki.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from pki import cn, key, make_cert
from pyipsec.config.credentials import (
    SwanctlError,
    certificate_file,
    credential_path,
    load_certificate,
    load_directories,
    load_private_key,
    load_public_key,
    public_key_file,
)
from pyipsec.config.swanctl_syntax import Location, SettingsError
from pyipsec.crypto.certs import PrivateKey
from pyipsec.errors import ConfigError

HERE = Location("swanctl.conf", 7)
PASSPHRASE = b"correct horse"


def _pem_and_der_cert() -> tuple[bytes, bytes]:
    cert = make_cert(cn("gw"), key("p256"))
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        cert.public_bytes(serialization.Encoding.DER),
    )


def _key_bytes(private: PrivateKey, password: bytes | None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password is not None
        else serialization.NoEncryption()
    )
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def test_swanctl_error_is_a_located_config_error() -> None:
    exc = SwanctlError(HERE, "bad")
    assert isinstance(exc, SettingsError) and isinstance(exc, ConfigError)
    assert str(exc) == "swanctl.conf:7: bad"


def test_certificate_pem_and_der_give_the_same_certificate() -> None:
    pem, der = _pem_and_der_cert()
    assert load_certificate(b"\n  " + pem) == load_certificate(der)
    with pytest.raises(ValueError):
        load_certificate(b"not a certificate")


def test_public_key_pem_and_der() -> None:
    public = key("p256").public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert load_public_key(pem) == public
    assert load_public_key(der) == public


def test_encrypted_private_key_needs_its_password() -> None:
    private = key("p256")
    data = _key_bytes(private, PASSPHRASE)
    with pytest.raises(TypeError):
        load_private_key(data, None)
    assert load_private_key(data, PASSPHRASE).public_key() == private.public_key()


def test_credential_path_relative_absolute_and_without_base(tmp_path: Path) -> None:
    assert credential_path(tmp_path, "x509", "a.pem", HERE) == tmp_path / "x509" / "a.pem"
    assert credential_path(None, "x509", "/etc/a.pem", HERE) == Path("/etc/a.pem")
    with pytest.raises(SwanctlError, match="relative credential path") as info:
        credential_path(None, "x509", "a.pem", HERE)
    assert info.value.location == HERE


def test_files_named_by_a_setting(tmp_path: Path) -> None:
    pem, _ = _pem_and_der_cert()
    (tmp_path / "x509").mkdir()
    (tmp_path / "x509" / "gw.pem").write_bytes(pem)
    (tmp_path / "x509" / "junk.pem").write_bytes(b"junk")
    assert certificate_file(tmp_path, "x509", "gw.pem", HERE, "a.certs") == load_certificate(pem)
    with pytest.raises(SwanctlError, match=r"a\.certs: 'junk\.pem' is no PEM or DER certificate"):
        certificate_file(tmp_path, "x509", "junk.pem", HERE, "a.certs")
    with pytest.raises(SwanctlError, match="cannot read certificate"):
        certificate_file(tmp_path, "x509", "missing.pem", HERE, "a.certs")
    (tmp_path / "pubkey").mkdir()
    (tmp_path / "pubkey" / "gw.pem").write_bytes(pem)  # a certificate, not a public key
    with pytest.raises(SwanctlError, match=r"a\.pubkeys: 'gw\.pem' is no PEM or DER public key"):
        public_key_file(tmp_path, "gw.pem", HERE, "a.pubkeys")


def test_directories_load_what_they_hold_and_warn_about_the_rest(tmp_path: Path) -> None:
    pem, der = _pem_and_der_cert()
    for subdir in ("x509", "x509ca", "ecdsa", "pkcs8", "x509crl"):
        (tmp_path / subdir).mkdir()
    (tmp_path / "x509" / "gw.der").write_bytes(der)
    (tmp_path / "x509" / "junk.pem").write_bytes(b"junk")
    (tmp_path / "x509ca" / "ca.pem").write_bytes(pem)
    (tmp_path / "ecdsa" / "gw.pem").write_bytes(_key_bytes(key("p256"), None))
    (tmp_path / "pkcs8" / "locked.pem").write_bytes(_key_bytes(key("p256-b"), PASSPHRASE))
    (tmp_path / "pkcs8" / "shut.pem").write_bytes(_key_bytes(key("p256-b"), PASSPHRASE))
    (tmp_path / "x509crl" / "ca.crl").write_bytes(b"")
    warnings: list[tuple[Location, str]] = []
    given = {("pkcs8", "locked.pem"): (PASSPHRASE, HERE)}
    found = load_directories(tmp_path, given, lambda where, what: warnings.append((where, what)))
    assert found.certificates == (load_certificate(der),)
    assert found.ca_certificates == (load_certificate(pem),)
    assert found.public_keys == ()
    assert [(s.kind, s.name, s.file) for s in found.private_keys] == [
        ("ecdsa", "gw", "gw.pem"),
        ("pkcs8", "locked", "locked.pem"),
    ]
    assert [what for _, what in warnings] == [
        "x509/junk.pem skipped: no certificate",
        "pkcs8/shut.pem is encrypted and no secrets.pkcs8 gives it",
        "x509crl/ is not supported yet: file ignored",
    ]
    assert load_directories(None, {}, lambda where, what: warnings.append((where, what))) == (
        type(found)()
    )


def test_wrong_passphrase_points_at_the_secret_and_hides_it(tmp_path: Path) -> None:
    (tmp_path / "pkcs8").mkdir()
    (tmp_path / "pkcs8" / "k.pem").write_bytes(_key_bytes(key("p256"), PASSPHRASE))
    secret_at = Location("secrets.conf", 3)
    warnings: list[str] = []
    with pytest.raises(SwanctlError) as info:
        load_directories(
            tmp_path,
            {("pkcs8", "k.pem"): (b"hunter2", secret_at)},
            lambda where, what: warnings.append(what),
        )
    assert warnings == []
    assert info.value.location == secret_at
    assert "wrong passphrase" in str(info.value) and "hunter2" not in str(info.value)
