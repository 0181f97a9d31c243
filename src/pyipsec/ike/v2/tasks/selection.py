"""SA proposal selection (RFC 7296 §2.7, §3.3.6), shared by IKE_SA_INIT and CHILD SAs.

The responder walks its own proposals in its order of preference and takes the first
one that some received proposal can match: per transform type, its first transform the
peer also offers. Transforms we do not implement are dropped from our side before
matching, so we never agree to something we cannot run.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyipsec.crypto import algorithms, dh
from pyipsec.crypto.prf import prf_by_id
from pyipsec.errors import ConfigError
from pyipsec.ike.proposals import Proposal, Transform, from_payload
from pyipsec.ike.v2 import payloads
from pyipsec.ike.v2.constants import DhId, EncrId, EsnId, IntegId, ProtocolId, TransformType
from pyipsec.ike.v2.sk import encr_key_length, integ_key_length

_NO_ESN = Transform(TransformType.ESN, EsnId.NO_ESN)
_NO_DH = Transform(TransformType.DH, DhId.NONE)
_TRANSFORM_TYPES = tuple(TransformType)  # iterating the Enum class each time costs more


def _ike_supported(t: Transform) -> bool:
    try:
        if t.type == TransformType.ENCR:
            encr_key_length(t.id, t.key_length)
        elif t.type == TransformType.INTEG:
            integ_key_length(t.id)
        elif t.type == TransformType.PRF:
            prf_by_id(t.id)
        elif t.type == TransformType.DH:
            return t.id in dh.supported_groups()
        else:
            return False
    except ConfigError:
        return False
    return True


def _esp_supported(t: Transform) -> bool:
    try:
        if t.type == TransformType.ENCR:
            algorithms.enc_by_iana(t.id, t.key_length)
        elif t.type == TransformType.INTEG:
            algorithms.integ_by_iana(t.id)
        elif t.type == TransformType.DH:
            return t.id == DhId.NONE or t.id in dh.supported_groups()
        elif t.type != TransformType.ESN:
            return False
    except ConfigError:
        return False
    return True


def supported(proposal: Proposal) -> Proposal | None:
    """``proposal`` without what we cannot run; None if a transform type is left empty."""
    check = _ike_supported if proposal.protocol == ProtocolId.IKE else _esp_supported
    kept = tuple(t for t in proposal.transforms if check(t))
    for ttype in {t.type for t in proposal.transforms}:
        if not any(t.type == ttype for t in kept):
            return None
    return Proposal(proposal.protocol, kept)


def without_dh(proposal: Proposal) -> Proposal:
    """§1.2: the CHILD SA of IKE_AUTH has no key exchange of its own."""
    return Proposal(
        proposal.protocol, tuple(t for t in proposal.transforms if t.type != TransformType.DH)
    )


def _pick(mine: Proposal, theirs: Proposal) -> Proposal | None:
    picked: list[Transform] = []
    for ttype in _TRANSFORM_TYPES:
        m, th = mine.of_type(ttype), theirs.of_type(ttype)
        # An absent ESN type means "no ESN"; an absent DH type in a CHILD SA means none.
        # IKE SAs have no ESN transform at all (RFC 7296 §3.3.3): never answer one.
        if ttype == TransformType.ESN:
            if mine.protocol == ProtocolId.IKE:
                continue
            m, th = m or (_NO_ESN,), th or (_NO_ESN,)
        if ttype == TransformType.DH and mine.protocol != ProtocolId.IKE:
            m, th = m or (_NO_DH,), th or (_NO_DH,)
        if not m and not th:
            continue
        choice = next((t for t in m if t in th), None)
        if choice is None:
            return None
        if not (ttype == TransformType.DH and choice == _NO_DH and not theirs.of_type(ttype)):
            picked.append(choice)
    return Proposal(mine.protocol, tuple(picked))


def select(
    configured: Sequence[Proposal], received: Sequence[payloads.Proposal], protocol: ProtocolId
) -> tuple[Proposal, payloads.Proposal] | None:
    """The responder's choice: (our single-transform-per-type proposal, theirs), or None."""
    theirs_list: list[tuple[Proposal, payloads.Proposal]] = []
    for raw in received:
        if raw.protocol_id != protocol:
            continue
        try:
            theirs_list.append((from_payload(raw), raw))
        except ConfigError:
            continue  # §3.3.6: an unknown transform type makes that proposal unusable
    for configured_proposal in configured:
        mine = supported(configured_proposal)
        if mine is None:
            continue
        for theirs, raw in theirs_list:
            chosen = _pick(mine, theirs)
            if chosen is not None:
                return chosen, raw
    return None


def check_answer(offered: Sequence[Proposal], answer: payloads.SaPayload) -> Proposal | None:
    """The initiator's check (§3.3.6): one proposal, one transform per type, all offered."""
    if len(answer.proposals) != 1:
        return None
    try:
        chosen = from_payload(answer.proposals[0])
    except ConfigError:
        return None
    types = [t.type for t in chosen.transforms]
    if len(types) != len(set(types)):
        return None
    for mine in offered:
        if mine.protocol != chosen.protocol:
            continue
        allowed = set(mine.transforms) | {_NO_ESN, _NO_DH}
        if all(t in allowed for t in chosen.transforms) and _pick(mine, chosen) is not None:
            return chosen
    return None


def first_of(proposal: Proposal, ttype: TransformType) -> Transform | None:
    found = proposal.of_type(ttype)
    return found[0] if found else None


def dh_group(proposal: Proposal) -> int:
    t = first_of(proposal, TransformType.DH)
    return t.id if t is not None else DhId.NONE


def esp_algorithms(
    proposal: Proposal,
) -> tuple[algorithms.EncAlgorithm, algorithms.IntegAlgorithm | None, bool]:
    """ESP encryption, integrity (None for AEAD) and ESN of a chosen CHILD SA proposal."""
    encr = first_of(proposal, TransformType.ENCR)
    if encr is None:
        raise ConfigError("ESP proposal without encryption")
    enc = algorithms.enc_by_iana(encr.id, encr.key_length)
    integ_t = first_of(proposal, TransformType.INTEG)
    integ = None
    if integ_t is not None and integ_t.id != IntegId.NONE:
        integ = algorithms.integ_by_iana(integ_t.id)
    if integ is None and not enc.is_aead and enc.iana_id != EncrId.NULL:
        raise ConfigError(f"{enc.name} needs an integrity algorithm")
    esn_t = first_of(proposal, TransformType.ESN)
    return enc, integ, esn_t is not None and esn_t.id == EsnId.ESN
