"""Credentials of a swanctl configuration: certificates, public keys and private keys.

Two ways in, as ``swanctl --load-all`` has them: files named by a setting (``certs``,
``cacerts``, ``pubkeys``, an authority's ``cacert``; a relative name is looked up in the
matching directory beside swanctl.conf), and every file of the credential directories
``x509/``, ``x509ca/``, ``pubkey/``, ``private/``, ``rsa/``, ``ecdsa/`` and ``pkcs8/``.
PEM and DER are both accepted (swanctl.conf(5)). An encrypted private key is opened
with the passphrase of the ``secrets`` section that names its file.

A file a setting names that cannot be read or parsed is a ``SwanctlError`` at that
setting; a bad file found in a directory is only a warning, as swanctl skips it. A
passphrase never appears in a message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from pyipsec.config.swanctl_syntax import Location, SettingsError
from pyipsec.ike.connection import Secret, SecretKind

# Reports one problem that does not stop the load (a skipped file).
Warn: TypeAlias = Callable[[Location, str], None]
# (kind, file name) -> (passphrase, where the secrets section gives it).
Passphrases: TypeAlias = Mapping[tuple[str, str], tuple[bytes, Location]]


class SwanctlError(SettingsError):
    """A swanctl.conf value that does not fit its key (file:line in the message).

    Defined here, below ``config.swanctl`` (which re-exports it), because a credential
    file named by a setting fails as that setting's value.
    """


@dataclass(frozen=True, slots=True)
class DirectoryCredentials:
    """What the credential directories beside swanctl.conf hold."""

    certificates: tuple[x509.Certificate, ...] = ()  # x509/
    ca_certificates: tuple[x509.Certificate, ...] = ()  # x509ca/
    public_keys: tuple[PublicKeyTypes, ...] = ()  # pubkey/
    private_keys: tuple[Secret, ...] = ()  # private/, rsa/, ecdsa/, pkcs8/


# -- bytes -> objects ------------------------------------------------------------------------


def _is_pem(data: bytes) -> bool:
    return data.lstrip().startswith(b"-----BEGIN")


def load_certificate(data: bytes) -> x509.Certificate:
    """A PEM or DER certificate; ValueError if it is neither."""
    if _is_pem(data):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def load_public_key(data: bytes) -> PublicKeyTypes:
    """A PEM or DER public key; ValueError (or TypeError) if it is neither."""
    if _is_pem(data):
        return serialization.load_pem_public_key(data)
    return serialization.load_der_public_key(data)


def load_private_key(data: bytes, password: bytes | None) -> PrivateKeyTypes:
    """A PEM or DER private key (PKCS#1, SEC1 or PKCS#8); TypeError if it needs a password."""
    if _is_pem(data):
        return serialization.load_pem_private_key(data, password)
    return serialization.load_der_private_key(data, password)


# -- files named by a setting ------------------------------------------------------------


def credential_path(base_dir: Path | None, subdir: str, name: str, location: Location) -> Path:
    """``name`` as is when absolute, else under ``base_dir/subdir`` (swanctl's layout)."""
    path = Path(name)
    if path.is_absolute():
        return path
    if base_dir is None:
        raise SwanctlError(location, f"{name!r}: relative credential path without a base dir")
    return base_dir / subdir / path


def _read(path: Path, location: Location, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SwanctlError(location, f"cannot read {what} {path}: {exc.strerror}") from None


def certificate_file(
    base_dir: Path | None, subdir: str, name: str, location: Location, setting: str
) -> x509.Certificate:
    """The certificate file ``name`` that ``setting`` (at ``location``) names."""
    data = _read(credential_path(base_dir, subdir, name, location), location, "certificate")
    try:
        return load_certificate(data)
    except ValueError:
        raise SwanctlError(location, f"{setting}: {name!r} is no PEM or DER certificate") from None


def public_key_file(
    base_dir: Path | None, name: str, location: Location, setting: str
) -> PublicKeyTypes:
    """The public key file ``name`` (under ``pubkey/``) that ``setting`` names."""
    data = _read(credential_path(base_dir, "pubkey", name, location), location, "pubkey")
    try:
        return load_public_key(data)
    except (ValueError, TypeError):
        raise SwanctlError(location, f"{setting}: {name!r} is no PEM or DER public key") from None


# -- the credential directories ----------------------------------------------------------

# Private key directories, and the key type each one promises (None: any).
_KEY_DIRS: tuple[tuple[SecretKind, type | None], ...] = (
    ("private", None),
    ("rsa", rsa.RSAPrivateKey),
    ("ecdsa", ec.EllipticCurvePrivateKey),
    ("pkcs8", None),
)


def _dir_files(base_dir: Path | None, subdir: str) -> list[Path]:
    if base_dir is None:
        return []
    directory = base_dir / subdir
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file())


def load_directories(
    base_dir: Path | None, passphrases: Passphrases, warn: Warn
) -> DirectoryCredentials:
    """Every credential file under ``base_dir``; files that are not one are warnings."""
    certs: list[x509.Certificate] = []
    cacerts: list[x509.Certificate] = []
    pubkeys: list[PublicKeyTypes] = []
    keys: list[Secret] = []
    for subdir, sink in (("x509", certs), ("x509ca", cacerts)):
        for path in _dir_files(base_dir, subdir):
            try:
                sink.append(load_certificate(path.read_bytes()))
            except (OSError, ValueError):
                warn(Location(str(path), 0), f"{subdir}/{path.name} skipped: no certificate")
    for path in _dir_files(base_dir, "pubkey"):
        try:
            pubkeys.append(load_public_key(path.read_bytes()))
        except (OSError, ValueError, TypeError):
            warn(Location(str(path), 0), f"pubkey/{path.name} skipped: no public key")
    for kind, key_type in _KEY_DIRS:
        for path in _dir_files(base_dir, kind):
            secret = _load_key_file(kind, path, key_type, passphrases, warn)
            if secret is not None:
                keys.append(secret)
    for subdir in ("x509aa", "x509ac", "x509crl", "x509ocsp", "pkcs12"):
        for path in _dir_files(base_dir, subdir):
            warn(Location(str(path), 0), f"{subdir}/ is not supported yet: file ignored")
    return DirectoryCredentials(tuple(certs), tuple(cacerts), tuple(pubkeys), tuple(keys))


def _load_key_file(
    kind: SecretKind, path: Path, key_type: type | None, passphrases: Passphrases, warn: Warn
) -> Secret | None:
    here = Location(str(path), 0)
    passphrase = passphrases.get((kind, path.name))
    try:
        data = path.read_bytes()
    except OSError as exc:
        warn(here, f"{kind}/{path.name} skipped: {exc.strerror}")
        return None
    try:
        key = load_private_key(data, None)
    except TypeError:
        if passphrase is None:
            warn(here, f"{kind}/{path.name} is encrypted and no secrets.{kind} gives it")
            return None
        try:
            key = load_private_key(data, passphrase[0])
        except (ValueError, TypeError):
            # Never echo the passphrase; point at the secret that names the file.
            raise SwanctlError(
                passphrase[1], f"wrong passphrase or damaged key for {kind}/{path.name}"
            ) from None
    except ValueError:
        warn(here, f"{kind}/{path.name} skipped: no private key")
        return None
    if key_type is not None and not isinstance(key, key_type):
        warn(here, f"{kind}/{path.name} holds a {type(key).__name__}, not a {kind} key")
    return Secret(kind, path.stem, (), b"", path.name, key)
