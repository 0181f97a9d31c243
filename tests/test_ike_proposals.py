"""strongSwan proposal keywords <-> transforms (pyipsec.ike.proposals)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyipsec.errors import ConfigError
from pyipsec.ike import proposals
from pyipsec.ike.proposals import (
    Proposal,
    Transform,
    default_proposals,
    format_proposal,
    from_payload,
    lookup_keyword,
    parse_proposal,
    parse_proposals,
    to_payload,
)
from pyipsec.ike.v2.constants import ProtocolId, TransformType
from vectors.ike_proposal_keywords import KEYWORDS

ENCR, PRF, INTEG, DH, ESN = (
    TransformType.ENCR,
    TransformType.PRF,
    TransformType.INTEG,
    TransformType.DH,
    TransformType.ESN,
)


@pytest.mark.parametrize(("keyword", "expected"), sorted(KEYWORDS.items()))
def test_keyword_names_the_iana_transform(
    keyword: str, expected: tuple[int, int, int | None]
) -> None:
    t = lookup_keyword(keyword)
    assert (int(t.type), t.id, t.key_length) == expected


def test_unknown_keyword() -> None:
    with pytest.raises(ConfigError, match="aes99"):
        lookup_keyword("aes99")


def test_ike_aead_with_prf_and_x25519() -> None:
    (p,) = parse_proposal("aes128gcm16-prfsha256-x25519", ProtocolId.IKE)
    assert p.protocol == ProtocolId.IKE
    assert p.transforms == (Transform(ENCR, 20, 128), Transform(PRF, 5), Transform(DH, 31))
    assert p.is_aead


def test_ike_classic_derives_prf_from_integrity() -> None:
    (p,) = parse_proposal("aes256-sha256-modp2048", ProtocolId.IKE)
    assert p.of_type(ENCR) == (Transform(ENCR, 12, 256),)
    assert p.of_type(INTEG) == (Transform(INTEG, 12),)
    assert p.of_type(PRF) == (Transform(PRF, 5),)  # RFC 7296 §3.3.3 pairing
    assert p.of_type(DH) == (Transform(DH, 14),)
    assert not p.is_aead


def test_ike_explicit_prf_is_kept() -> None:
    (p,) = parse_proposal("aes128-sha256-prfsha384-ecp256", ProtocolId.IKE)
    assert p.of_type(PRF) == (Transform(PRF, 6),)
    assert format_proposal(p) == "aes128-sha256-prfsha384-ecp256"


def test_preference_order_is_kept_and_duplicates_dropped() -> None:
    (p,) = parse_proposal("aes256-aes128-aes256-sha512-sha256-ecp384-ecp256", ProtocolId.IKE)
    assert [t.key_length for t in p.of_type(ENCR)] == [256, 128]
    assert [t.id for t in p.of_type(INTEG)] == [14, 12]
    assert [t.id for t in p.of_type(PRF)] == [7, 5]
    assert [t.id for t in p.of_type(DH)] == [20, 19]


def test_esp_chacha_defaults_to_noesn() -> None:
    (p,) = parse_proposal("chacha20poly1305", ProtocolId.ESP)
    assert p.transforms == (Transform(ENCR, 28), Transform(ESN, 0))
    assert format_proposal(p) == "chacha20poly1305"


@pytest.mark.parametrize(
    ("text", "esn_ids"),
    [("aes128gcm16-esn", [1]), ("aes128gcm16-noesn", [0]), ("aes128gcm16-esn-noesn", [1, 0])],
)
def test_esp_esn(text: str, esn_ids: list[int]) -> None:
    (p,) = parse_proposal(text, ProtocolId.ESP)
    assert [t.id for t in p.of_type(ESN)] == esn_ids
    assert p.of_type(PRF) == ()


def test_esp_pfs_group() -> None:
    (p,) = parse_proposal("aes128gcm16-ecp256", ProtocolId.ESP)
    assert p.of_type(DH) == (Transform(DH, 19),)


def test_mixed_aead_and_classic_split_into_two() -> None:
    aead, classic = parse_proposal("aes128gcm16-aes128-sha256-ecp256", ProtocolId.ESP)
    assert aead.is_aead and aead.of_type(INTEG) == ()
    assert not classic.is_aead and classic.of_type(INTEG) == (Transform(INTEG, 12),)
    assert aead.of_type(DH) == classic.of_type(DH) == (Transform(DH, 19),)


def test_ah_proposal() -> None:
    (p,) = parse_proposal("sha256-esn", ProtocolId.AH)
    assert p.transforms == (Transform(INTEG, 12), Transform(ESN, 1))


@pytest.mark.parametrize(
    ("text", "protocol", "message"),
    [
        ("aes128gcm16-x25519", ProtocolId.IKE, "needs a PRF"),
        ("aes128-sha256", ProtocolId.IKE, "needs a DH group"),
        ("chacha20poly1305", ProtocolId.IKE, "needs a DH group"),
        ("aes128-modp2048", ProtocolId.IKE, "needs an integrity"),
        ("sha256-modp2048", ProtocolId.IKE, "needs an encryption"),
        ("aes128gcm16-sha256-prfsha256-ecp256", ProtocolId.IKE, "only AEAD"),
        ("aes128-sha256-ecp256-esn", ProtocolId.IKE, "esn"),
        ("aes128-sha256-prfsha256", ProtocolId.ESP, "PRF"),
        ("aes128", ProtocolId.ESP, "needs an integrity"),
        ("aes128-sha256", ProtocolId.AH, "AH proposal"),
        ("x25519", ProtocolId.AH, "integrity"),
        ("aes128--sha256", ProtocolId.ESP, "empty"),
        ("", ProtocolId.ESP, "empty"),
        ("aes128-sha257", ProtocolId.ESP, "sha257"),
        ("aes128-sha256", ProtocolId.NONE, "IKE, ESP or AH"),
    ],
)
def test_invalid_proposals(text: str, protocol: ProtocolId, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_proposal(text, protocol)


def test_default_expands_in_place() -> None:
    got = parse_proposals(["aes256-sha384-ecp384", "default"], ProtocolId.IKE)
    assert format_proposal(got[0]) == "aes256-sha384-ecp384"
    assert got[1:] == default_proposals(ProtocolId.IKE)
    # Every default is something the IKE daemon can negotiate: DH and PRF present.
    for p in default_proposals(ProtocolId.IKE):
        assert p.of_type(DH) and p.of_type(PRF)
    for p in default_proposals(ProtocolId.ESP):
        assert p.of_type(ESN) == (Transform(ESN, 0),)


def test_empty_list_is_an_error() -> None:
    with pytest.raises(ConfigError):
        parse_proposals([], ProtocolId.ESP)


@pytest.mark.parametrize(
    ("text", "protocol"),
    [
        ("aes128gcm16-prfsha256-x25519", ProtocolId.IKE),
        ("aes256-sha256-modp2048", ProtocolId.IKE),
        ("aes128-sha256-ecp256", ProtocolId.IKE),
        ("aes128-aes256-sha256-sha512-prfsha512-x448-modp4096", ProtocolId.IKE),
        ("chacha20poly1305", ProtocolId.ESP),
        ("aes128gcm16-esn", ProtocolId.ESP),
        ("aes256gcm16-ecp384-esn-noesn", ProtocolId.ESP),
        ("aes128-sha1-modp3072", ProtocolId.ESP),
        ("sha512", ProtocolId.AH),
    ],
)
def test_round_trip_keyword_transforms_keyword(text: str, protocol: ProtocolId) -> None:
    (p,) = parse_proposal(text, protocol)
    assert format_proposal(p) == text
    assert parse_proposal(format_proposal(p), protocol) == (p,)


def test_aliases_format_to_canonical_names() -> None:
    (p,) = parse_proposal("aes256gcm128-curve25519-prfsha256", ProtocolId.IKE)
    assert format_proposal(p) == "aes256gcm16-prfsha256-x25519"


def test_unknown_transform_formats_as_type_and_id() -> None:
    p = Proposal(ProtocolId.ESP, (Transform(ENCR, 1234, 128), Transform(ESN, 0)))
    assert format_proposal(p) == "encr1234_128"


def test_payload_conversion_round_trip() -> None:
    (p,) = parse_proposal("aes256-sha256-modp2048", ProtocolId.IKE)
    wire = to_payload(p, number=3, spi=b"")
    assert wire.number == 3 and wire.protocol_id == ProtocolId.IKE
    assert wire.transforms[0].key_length == 256
    assert wire.transforms[1].key_length is None
    assert from_payload(wire) == p


def test_from_payload_rejects_unknown_transform_type() -> None:
    (p,) = parse_proposal("chacha20poly1305", ProtocolId.ESP)
    wire = to_payload(p)
    wire.transforms[0].transform_type = 99
    with pytest.raises(ConfigError):
        from_payload(wire)


@given(st.lists(st.sampled_from(sorted(proposals._KEYWORDS)), min_size=1, max_size=8))
def test_any_keyword_combination_parses_or_raises_config_error(words: list[str]) -> None:
    text = "-".join(words)
    for protocol in (ProtocolId.IKE, ProtocolId.ESP, ProtocolId.AH):
        try:
            result = parse_proposal(text, protocol)
        except ConfigError:
            continue
        for p in result:
            assert parse_proposal(format_proposal(p), protocol) == (p,)


@given(st.text(max_size=40))
def test_random_text_only_raises_config_error(text: str) -> None:
    try:
        result = parse_proposals(text.split(","), ProtocolId.ESP)
    except ConfigError:
        return
    assert all(p.of_type(ENCR) for p in result)
