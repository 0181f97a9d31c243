"""pyipsec.ike.v2.keymat against the IKEv2 KDF known answers (SP 800-135 / CAVS)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes

from pyipsec.crypto.prf import PRF_HMAC_SHA1, PRF_HMAC_SHA2_256, Prf
from pyipsec.errors import ConfigError
from pyipsec.ike.v2 import keymat
from vectors.ike_kdf_acvp import KDF_VECTORS

_HASHES = {"sha1": hashes.SHA1(), "sha224": hashes.SHA224(), "sha256": hashes.SHA256()}


def _prf(name: str) -> Prf:
    # SHA-224 is no IKE PRF, but the ACVP samples use it; the construction is the same.
    return Prf(f"hmac-{name}", 0, _HASHES[name])


@pytest.mark.parametrize("vec", KDF_VECTORS, ids=lambda v: str(v["hash"]))
def test_kdf_known_answers(vec: dict[str, str | int]) -> None:
    h = {k: bytes.fromhex(v) for k, v in vec.items() if k not in ("source", "hash", "dkm_bits")}
    prf = _prf(str(vec["hash"]))
    dkm_len = int(vec["dkm_bits"]) // 8

    seed = keymat.skeyseed(prf, h["ni"], h["nr"], h["gir"])
    assert seed == h["skeyseed"]
    dkm = prf.prf_plus(seed, h["ni"] + h["nr"] + h["spi_i"] + h["spi_r"], dkm_len)
    assert dkm == h["dkm"]

    sk_d = dkm[: prf.key_size]
    # DKM(Child SA) is KEYMAT without a new DH; DKM(Child SA D-H) with one (§2.17).
    half = dkm_len // 2
    child = keymat.derive_child_sa_keys(prf, sk_d, h["ni"], h["nr"], half, 0)
    assert child.encr_i + child.encr_r == h["dkm_child"][: 2 * half]
    child_dh = keymat.derive_child_sa_keys(
        prf, sk_d, h["ni"], h["nr"], half, 0, g_ir_new=h["gir_new"]
    )
    assert child_dh.encr_i + child_dh.encr_r == h["dkm_child_dh"][: 2 * half]
    assert keymat.rekey_skeyseed(prf, sk_d, h["gir_new"], h["ni"], h["nr"]) == h["skeyseed_rekey"]


def test_ike_sa_key_split_matches_the_dkm() -> None:
    vec = KDF_VECTORS[1]  # SHA2-256, 384 octets of DKM
    h = {k: bytes.fromhex(v) for k, v in vec.items() if k not in ("source", "hash", "dkm_bits")}
    prf = PRF_HMAC_SHA2_256
    seed = keymat.skeyseed(prf, h["ni"], h["nr"], h["gir"])
    # AES-256-CBC with HMAC-SHA2-256-128: 3*32 + 2*32 + 2*32 = 224 octets.
    keys = keymat.derive_ike_sa_keys(prf, seed, h["ni"], h["nr"], h["spi_i"], h["spi_r"], 32, 32)
    dkm = h["dkm"]
    assert keys.sk_d == dkm[0:32]
    assert keys.sk_ai == dkm[32:64]
    assert keys.sk_ar == dkm[64:96]
    assert keys.sk_ei == dkm[96:128]
    assert keys.sk_er == dkm[128:160]
    assert keys.sk_pi == dkm[160:192]
    assert keys.sk_pr == dkm[192:224]
    assert keymat.ike_sa_keys_length(prf, 32, 32) == 224
    assert dkm.hex()[:16] not in repr(keys)  # keys stay out of repr


def test_aead_split_has_no_integrity_keys() -> None:
    # AES-GCM-16 with a 256-bit key: SK_e is 32 + 4 salt octets, SK_a empty (RFC 5282 §7.1).
    prf = PRF_HMAC_SHA2_256
    keys = keymat.derive_ike_sa_keys(
        prf, b"s" * 32, b"n" * 32, b"m" * 32, b"i" * 8, b"r" * 8, 36, 0
    )
    stream = prf.prf_plus(b"s" * 32, b"n" * 32 + b"m" * 32 + b"i" * 8 + b"r" * 8, 3 * 32 + 72)
    assert keys.sk_ai == keys.sk_ar == b""
    assert keys.sk_ei == stream[32:68]
    assert keys.sk_er == stream[68:104]
    assert keys.sk_pi == stream[104:136]
    assert keys.sk_pr == stream[136:168]


def test_child_keymat_order() -> None:
    prf = PRF_HMAC_SHA1
    child = keymat.derive_child_sa_keys(prf, b"d" * 20, b"N" * 16, b"M" * 16, 16, 20)
    stream = prf.prf_plus(b"d" * 20, b"N" * 16 + b"M" * 16, 72)
    assert (child.encr_i, child.integ_i) == (stream[0:16], stream[16:36])
    assert (child.encr_r, child.integ_r) == (stream[36:52], stream[52:72])


def test_psk_auth_and_signed_octets() -> None:
    prf = PRF_HMAC_SHA2_256
    real_message, nonce, sk_pi = b"IKE_SA_INIT request bytes", b"N" * 32, b"p" * 32
    id_body = b"\x02\x00\x00\x00" + b"alice.example"
    octets = keymat.signed_octets(real_message, nonce, prf, sk_pi, id_body)
    assert octets == real_message + nonce + prf(sk_pi, id_body)
    auth = keymat.psk_auth(prf, b"shared secret", octets)
    assert auth == prf(prf(b"shared secret", b"Key Pad for IKEv2"), octets)
    assert auth != keymat.psk_auth(prf, b"shared secreT", octets)
    with pytest.raises(ConfigError):
        keymat.psk_auth(prf, b"", octets)


def test_bad_arguments() -> None:
    prf = PRF_HMAC_SHA1
    with pytest.raises(ConfigError):
        keymat.derive_ike_sa_keys(prf, b"s", b"n", b"n", b"short", b"r" * 8, 16, 20)
    with pytest.raises(ConfigError):
        keymat.derive_ike_sa_keys(prf, b"s", b"n", b"n", b"i" * 8, b"r" * 8, -1, 20)
    with pytest.raises(ConfigError):
        keymat.derive_child_sa_keys(prf, b"d", b"n", b"n", 16, -2)
