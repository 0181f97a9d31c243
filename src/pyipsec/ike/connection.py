"""Connection definitions the IKE daemon works from: plain, immutable data.

``config.swanctl`` builds these from a swanctl.conf file (the field names are the
swanctl keys); tests and other front ends may build them directly. Times are in
seconds, sizes in bytes. Nothing here reads files or touches the network.

Secret material (pre-shared keys, EAP passwords, private keys) is kept out of
``repr`` so that logging a configuration never leaks it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import (
    PrivateKeyTypes,
    PublicKeyTypes,
)

from pyipsec.ike.proposals import Proposal
from pyipsec.ike.traffic_selectors import TsSpec

IPAddress = IPv4Address | IPv6Address

Fragmentation = Literal["yes", "accept", "force", "no"]
Childless = Literal["allow", "prefer", "force", "never"]
SendCert = Literal["always", "never", "ifasked"]
Unique = Literal["no", "never", "keep", "replace"]
Mode = Literal["tunnel", "transport", "beet", "pass", "drop"]
DpdAction = Literal["clear", "trap", "restart"]
CopyDscp = Literal["out", "in", "yes", "no"]
HwOffload = Literal["yes", "no", "auto", "crypto", "packet"]
Revocation = Literal["strict", "ifuri", "relaxed"]
SecretKind = Literal["ike", "eap", "xauth", "ppk", "private", "rsa", "ecdsa", "pkcs8"]

# if_id and mark values may name a per-SA unique value instead of a number.
IdValue = int | Literal["%unique", "%unique-dir"]


@dataclass(frozen=True, slots=True)
class Mark:
    """An XFRM mark: ``value/mask``; ``value`` may also be ``%unique`` and friends."""

    value: int | str = 0
    mask: int = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """One authentication round of one side (swanctl ``local<suffix>``/``remote<suffix>``)."""

    name: str = "local"
    round: int = 0
    auth: str = "pubkey"  # pubkey, rsa, ecdsa, psk, null, eap[-type], xauth[-backend]
    id: str | None = None  # None: our address, or the certificate's subject
    eap_id: str | None = None
    aaa_id: str | None = None
    xauth_id: str | None = None
    certs: tuple[x509.Certificate, ...] = ()
    cacerts: tuple[x509.Certificate, ...] = ()
    pubkeys: tuple[PublicKeyTypes, ...] = ()
    ca_id: str | None = None
    revocation: Revocation = "relaxed"
    groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChildConfig:
    """A CHILD_SA definition (swanctl ``connections.<conn>.children.<child>``)."""

    name: str
    local_ts: tuple[TsSpec, ...]
    remote_ts: tuple[TsSpec, ...]
    esp_proposals: tuple[Proposal, ...]
    ah_proposals: tuple[Proposal, ...] = ()
    sha256_96: bool = False
    rekey_time: float = 3600.0
    life_time: float = 3960.0
    rand_time: float = 360.0
    rekey_bytes: int = 0
    life_bytes: int = 0
    rand_bytes: int = 0
    rekey_packets: int = 0
    life_packets: int = 0
    rand_packets: int = 0
    updown: str | None = None
    hostaccess: bool = False
    mode: Mode = "tunnel"
    policies: bool = True
    policies_fwd_out: bool = False
    dpd_action: DpdAction = "clear"
    ipcomp: bool = False
    inactivity: float = 0.0
    reqid: int = 0
    priority: int = 0
    interface: str | None = None
    mark_in: Mark = Mark(0, 0)
    mark_out: Mark = Mark(0, 0)
    set_mark_in: Mark = Mark(0, 0)
    set_mark_out: Mark = Mark(0, 0)
    if_id_in: IdValue = 0
    if_id_out: IdValue = 0
    tfc_padding: int | Literal["mtu"] = 0
    replay_window: int = 32
    hw_offload: HwOffload = "no"
    copy_df: bool = True
    copy_ecn: bool = True
    copy_dscp: CopyDscp = "out"
    start_action: frozenset[str] = frozenset()  # subset of {"trap", "start"}
    close_action: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class IkeConfig:
    """An IKE connection (swanctl ``connections.<conn>``)."""

    name: str
    proposals: tuple[Proposal, ...]
    local: tuple[AuthConfig, ...]
    remote: tuple[AuthConfig, ...]
    children: tuple[ChildConfig, ...] = ()
    version: int = 0  # 0: any (IKEv2 when initiating), 1 or 2
    local_addrs: tuple[str, ...] = ("%any",)
    remote_addrs: tuple[str, ...] = ("%any",)
    local_port: int = 500
    remote_port: int = 500
    vips: tuple[IPAddress, ...] = ()
    aggressive: bool = False
    pull: bool = True
    dscp: int = 0
    encap: bool = False
    mobike: bool = True
    dpd_delay: float = 0.0
    dpd_timeout: float = 0.0
    fragmentation: Fragmentation = "yes"
    childless: Childless = "allow"
    send_certreq: bool = True
    send_cert: SendCert = "ifasked"
    keyingtries: int = 1  # 0: forever
    unique: Unique = "no"
    reauth_time: float = 0.0
    rekey_time: float = 14400.0
    over_time: float = 1440.0
    rand_time: float = 1440.0
    pools: tuple[str, ...] = ()
    if_id_in: IdValue = 0
    if_id_out: IdValue = 0
    mediation: bool = False
    mediated_by: str | None = None
    mediation_peer: str | None = None
    ppk_id: str | None = None
    ppk_required: bool = False
    source: str = ""  # file:line of the definition, for messages

    def child(self, name: str) -> ChildConfig | None:
        return next((c for c in self.children if c.name == name), None)


@dataclass(frozen=True, slots=True)
class Secret:
    """A shared secret or private key from swanctl's ``secrets`` section."""

    kind: SecretKind
    name: str  # the section name, e.g. "ike-home"
    ids: tuple[str, ...] = ()
    data: bytes = field(default=b"", repr=False)  # PSK, EAP/XAuth password, PPK, passphrase
    file: str | None = None  # private key file (private/rsa/ecdsa/pkcs8 kinds)
    key: PrivateKeyTypes | None = field(default=None, repr=False)

    def matches(self, *identities: str) -> bool:
        """Whether this secret applies to all ``identities`` (no ids: to any)."""
        return not self.ids or all(i in self.ids for i in identities)


@dataclass(frozen=True, slots=True)
class Pool:
    """A virtual IP address pool with the configuration attributes handed out."""

    name: str
    addrs: tuple[IPAddress, IPAddress]  # inclusive range
    attributes: tuple[tuple[str, tuple[str, ...]], ...] = ()  # dns, nbns, split_include...

    def attribute(self, name: str) -> tuple[str, ...]:
        return next((v for k, v in self.attributes if k == name), ())


@dataclass(frozen=True, slots=True)
class Authority:
    """A certification authority (swanctl ``authorities.<name>``)."""

    name: str
    cacert: x509.Certificate | None = None
    crl_uris: tuple[str, ...] = ()
    ocsp_uris: tuple[str, ...] = ()
    cert_uri_base: str | None = None
