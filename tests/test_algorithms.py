"""Algorithm registry: names, IANA/kernel/PF_KEY/setkey lookups, sizes."""

from __future__ import annotations

import pytest

from pyipsec.crypto import algorithms as alg_reg
from pyipsec.errors import ConfigError


@pytest.mark.parametrize(
    ("name", "iana", "kernel", "pfkey", "keymat", "iv", "icv"),
    [
        ("aes128gcm16", 20, "rfc4106(gcm(aes))", 20, 20, 8, 16),
        ("aes256gcm16", 20, "rfc4106(gcm(aes))", 20, 36, 8, 16),
        ("chacha20poly1305", 28, "rfc7539esp(chacha20,poly1305)", 249, 36, 8, 16),
        ("aes128", 12, "cbc(aes)", 12, 16, 16, 0),
        ("aes256", 12, "cbc(aes)", 12, 32, 16, 0),
        ("null", 11, "ecb(cipher_null)", 11, 0, 0, 0),
    ],
)
def test_enc_records(name, iana, kernel, pfkey, keymat, iv, icv) -> None:
    alg = alg_reg.enc_by_name(name)
    assert (alg.iana_id, alg.kernel_name, alg.pfkey_id) == (iana, kernel, pfkey)
    assert (alg.keymat_size, alg.iv_size, alg.icv_size) == (keymat, iv, icv)
    assert alg_reg.enc_by_kernel_name(kernel, alg.key_bits) is alg
    assert alg_reg.enc_by_pfkey(pfkey, alg.key_bits) is alg
    assert alg_reg.enc_by_iana(iana, alg.key_size * 8 if alg.iana_key_attr else None) is alg
    assert alg_reg.enc_by_setkey(alg.setkey_names[0], alg.key_bits) is alg


@pytest.mark.parametrize(
    ("name", "iana", "kernel", "trunc", "pfkey", "setkey"),
    [
        ("sha1", 2, "hmac(sha1)", 96, 3, "hmac-sha1"),
        ("sha256", 12, "hmac(sha256)", 128, 5, "hmac-sha256"),
        ("sha384", 13, "hmac(sha384)", 192, 6, "hmac-sha384"),
        ("sha512", 14, "hmac(sha512)", 256, 7, "hmac-sha512"),
    ],
)
def test_integ_records(name, iana, kernel, trunc, pfkey, setkey) -> None:
    alg = alg_reg.integ_by_name(name)
    assert (alg.iana_id, alg.kernel_name, alg.kernel_trunc_bits, alg.pfkey_id) == (
        iana, kernel, trunc, pfkey)  # fmt: skip
    assert alg_reg.integ_by_iana(iana) is alg
    assert alg_reg.integ_by_kernel_name(kernel) is alg
    assert alg_reg.integ_by_pfkey(pfkey) is alg
    assert alg_reg.integ_by_setkey(setkey) is alg


def test_aliases_and_case() -> None:
    assert alg_reg.enc_by_name("AES128GCM16") is alg_reg.enc_by_name("aes128gcm128")
    assert alg_reg.integ_by_name("sha2_256") is alg_reg.integ_by_name("sha256")
    assert alg_reg.enc_by_setkey("rijndael-cbc", 192) is alg_reg.enc_by_name("aes192")
    assert alg_reg.enc_by_setkey("aes-gcm-16", 288) is alg_reg.enc_by_name("aes256gcm16")
    assert alg_reg.enc_by_kernel_name("rfc4106(gcm(aes))", 128) is alg_reg.enc_by_name(
        "aes128gcm16"
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda: alg_reg.enc_by_name("des"),
        lambda: alg_reg.enc_by_name(None),  # type: ignore[arg-type]
        lambda: alg_reg.integ_by_name("md5"),
        lambda: alg_reg.enc_by_iana(12),  # AES-CBC needs a key length
        lambda: alg_reg.enc_by_iana(12, 100),
        lambda: alg_reg.enc_by_iana(3),
        lambda: alg_reg.enc_by_pfkey(99),
        lambda: alg_reg.integ_by_pfkey(2),
        lambda: alg_reg.integ_by_setkey("keyed-md5"),
        lambda: alg_reg.enc_by_kernel_name("cbc(des)"),
    ],
)
def test_unknown_lookups_raise_config_error(call) -> None:
    with pytest.raises(ConfigError):
        call()
