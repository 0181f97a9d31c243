"""Which connection a responder uses for an IKE SA (RFC 7296 §2.15, strongSwan's rule).

IKE_SA_INIT carries no identity, so the responder first picks a connection by address
alone (``IkeManager``). IKE_AUTH's request brings IDi (and perhaps IDr, §3.5): among the
connections whose addresses match, the one whose identities match best is used from
then on, so several ``%any`` connections are told apart by who the peer says it is.

The ranking is strongSwan's (``backend_manager``): each identity scores how well it
matches the configured one — exactly equal beats a wildcard pattern, which beats
fewer wildcards, which beats "any id" — and a connection whose local or remote id
does not match at all is out. Candidates rank by the sum of the two identity scores,
then by how precisely their addresses matched (a literal address beats ``%any``), then
by their order in the configuration.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pyipsec.errors import ConfigError, ParseError
from pyipsec.ike.v2.identity import Identity
from pyipsec.ike.v2.ike_sa import IkeConfigLike
from pyipsec.ike.v2.payloads import IdPayload

# Identity match levels (strongSwan's id_match_t values, so sums rank the same way).
MATCH_NONE = 0
MATCH_ANY = 1
MATCH_MAX_WILDCARDS = 2
MATCH_ONE_WILDCARD = 19
MATCH_PERFECT = 20


def id_match(identity: Identity | None, configured: str | None) -> int:
    """How well ``identity`` (None: the peer sent none) matches a configured id."""
    if identity is None or configured is None or configured.strip() == "%any":
        return MATCH_ANY
    try:
        pattern = Identity.parse(configured)
    except ConfigError:
        return MATCH_NONE
    if pattern.is_any:
        return MATCH_ANY
    if identity == pattern:
        return MATCH_PERFECT
    if not identity.matches(pattern):
        return MATCH_NONE
    wildcards = pattern.data.count(b"*")
    return max(MATCH_MAX_WILDCARDS, MATCH_ONE_WILDCARD + 1 - wildcards)


def _address_match(addresses: Sequence[str], address: str) -> int:
    """0: no match; 1: any address; 3: this very address (strongSwan's qualities)."""
    if address in addresses:
        return 3
    if not addresses or "%any" in addresses:
        return 1
    return 0


def address_match(config: IkeConfigLike, local: str, remote: str) -> int:
    """How precisely ``config``'s addresses match an IKE SA's (0: they do not)."""
    me = _address_match(config.local_addrs, local)
    other = _address_match(config.remote_addrs, remote)
    return 0 if not me or not other else 4 * me + 2 * other


def _identity(payload: IdPayload | None) -> Identity | None:
    if payload is None:
        return None
    try:
        return Identity.from_payload(payload)
    except ParseError:
        return None


def select(
    configs: Iterable[IkeConfigLike],
    local: str,
    remote: str,
    idi: IdPayload,
    idr: IdPayload | None = None,
) -> IkeConfigLike | None:
    """The best connection for a peer at ``remote`` that says it is ``idi`` (and wants
    us to be ``idr``, if it said), or None when no connection accepts both."""
    peer = _identity(idi)
    if peer is None:
        return None
    me = _identity(idr)
    if idr is not None and me is None:
        return None
    best: tuple[int, int] | None = None
    chosen: IkeConfigLike | None = None
    for config in configs:
        addresses = address_match(config, local, remote)
        if not addresses:
            continue
        mine = id_match(me, config.local_id)
        theirs = id_match(peer, config.remote_id)
        if not mine or not theirs:
            continue
        rank = (mine + theirs, addresses)
        if best is None or rank > best:  # ties: the first configured wins
            best, chosen = rank, config
    return chosen
