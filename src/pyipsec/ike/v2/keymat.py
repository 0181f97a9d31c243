"""IKEv2 key derivation (RFC 7296 §2.13-§2.18) and the PSK AUTH octets (§2.15).

Pure functions over a ``Prf`` (pyipsec.crypto.prf): no I/O, no state. The key
containers keep their secrets out of ``repr`` so they never reach a log by accident.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyipsec.crypto.prf import Prf
from pyipsec.errors import ConfigError

# RFC 7296 §2.15: the pad mixed into the pre-shared key before it keys the AUTH prf.
KEY_PAD = b"Key Pad for IKEv2"


@dataclass(frozen=True, slots=True)
class IkeSaKeys:
    """{SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} of one IKE SA (§2.14).

    For AEAD transforms SK_ai/SK_ar are empty and SK_ei/SK_er end with the salt
    (RFC 5282 §7.1, RFC 7634 §4).
    """

    sk_d: bytes = field(repr=False)
    sk_ai: bytes = field(repr=False)
    sk_ar: bytes = field(repr=False)
    sk_ei: bytes = field(repr=False)
    sk_er: bytes = field(repr=False)
    sk_pi: bytes = field(repr=False)
    sk_pr: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class ChildSaKeys:
    """KEYMAT of one CHILD SA pair, split as §2.17 orders it."""

    encr_i: bytes = field(repr=False)  # initiator -> responder SA
    integ_i: bytes = field(repr=False)
    encr_r: bytes = field(repr=False)  # responder -> initiator SA
    integ_r: bytes = field(repr=False)


def skeyseed(prf: Prf, ni: bytes, nr: bytes, g_ir: bytes) -> bytes:
    """§2.14: SKEYSEED = prf(Ni | Nr, g^ir).

    The HMAC PRFs take the whole Ni | Nr as key (the halving rule of §2.14 is only
    for fixed-key-size PRFs such as AES-XCBC, which are not implemented here).
    """
    return prf(ni + nr, g_ir)


def rekey_skeyseed(prf: Prf, sk_d_old: bytes, g_ir_new: bytes, ni: bytes, nr: bytes) -> bytes:
    """§2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)."""
    return prf(sk_d_old, g_ir_new + ni + nr)


def ike_sa_keys_length(prf: Prf, encr_key_len: int, integ_key_len: int) -> int:
    """Octets of prf+ output one IKE SA consumes (§2.14)."""
    return 3 * prf.key_size + 2 * encr_key_len + 2 * integ_key_len


def derive_ike_sa_keys(
    prf: Prf,
    skeyseed_value: bytes,
    ni: bytes,
    nr: bytes,
    spi_i: bytes,
    spi_r: bytes,
    encr_key_len: int,
    integ_key_len: int,
) -> IkeSaKeys:
    """§2.14: the seven keys = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).

    ``encr_key_len`` includes the salt of AEAD ciphers; ``integ_key_len`` is 0 for
    them. SK_d, SK_pi and SK_pr take the PRF's preferred key size.
    """
    if encr_key_len < 0 or integ_key_len < 0:
        raise ConfigError("key lengths must not be negative")
    if len(spi_i) != 8 or len(spi_r) != 8:
        raise ConfigError("IKE SPIs are 8 octets")
    total = ike_sa_keys_length(prf, encr_key_len, integ_key_len)
    stream = prf.prf_plus(skeyseed_value, ni + nr + spi_i + spi_r, total)
    lengths = (
        prf.key_size,
        integ_key_len,
        integ_key_len,
        encr_key_len,
        encr_key_len,
        prf.key_size,
        prf.key_size,
    )
    parts = _split(stream, lengths)
    return IkeSaKeys(*parts)


def derive_child_sa_keys(
    prf: Prf,
    sk_d: bytes,
    ni: bytes,
    nr: bytes,
    encr_key_len: int,
    integ_key_len: int,
    g_ir_new: bytes | None = None,
) -> ChildSaKeys:
    """§2.17: KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr).

    Taken in the order encryption then integrity for the initiator-to-responder SA,
    then the same for the responder-to-initiator SA. ``encr_key_len`` includes any
    AEAD salt (RFC 4106 §8.1, RFC 7634 §4).
    """
    if encr_key_len < 0 or integ_key_len < 0:
        raise ConfigError("key lengths must not be negative")
    seed = (g_ir_new or b"") + ni + nr
    stream = prf.prf_plus(sk_d, seed, 2 * (encr_key_len + integ_key_len))
    parts = _split(stream, (encr_key_len, integ_key_len, encr_key_len, integ_key_len))
    return ChildSaKeys(*parts)


def maced_id(prf: Prf, sk_p: bytes, id_payload_body: bytes) -> bytes:
    """§2.15: prf(SK_px, IDType | RESERVED | InitIDData), over the ID payload body."""
    return prf(sk_p, id_payload_body)


def signed_octets(
    real_message: bytes, peer_nonce: bytes, prf: Prf, sk_p: bytes, id_payload_body: bytes
) -> bytes:
    """§2.15: <SignedOctets> = RealMessage | Nonce (the peer's, data only) | prf(SK_p, ID').

    For the initiator: its IKE_SA_INIT request, Nr, SK_pi and IDi's body; for the
    responder: its IKE_SA_INIT response, Ni, SK_pr and IDr's body.
    """
    return real_message + peer_nonce + maced_id(prf, sk_p, id_payload_body)


def psk_auth(prf: Prf, shared_secret: bytes, octets: bytes) -> bytes:
    """§2.15: AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>)."""
    if not shared_secret:
        raise ConfigError("the pre-shared key must not be empty")
    return prf(prf(shared_secret, KEY_PAD), octets)


def _split(stream: bytes, lengths: tuple[int, ...]) -> list[bytes]:
    out: list[bytes] = []
    offset = 0
    for n in lengths:
        out.append(stream[offset : offset + n])
        offset += n
    return out
