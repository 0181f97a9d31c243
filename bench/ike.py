"""IKE_SA + first CHILD_SA established per second between two pyipsec instances in one
process (no sockets), against the DH floor: the same count of bare `cryptography` X25519
exchanges (two key pairs, both shared secrets), measured in the same run. Each handshake
is four messages (IKE_SA_INIT, IKE_AUTH) and installs two ESP SAs per side into an
embedded Engine, through the connection objects the daemon uses (``EngineConnection``
from ``ike.config_adapter``, built here in memory instead of from a swanctl file).

Variants (``--auth``): ``psk`` (PSK + x25519 + aes128gcm16) and ``ecdsa`` (the same
proposal, each side authenticated by an ECDSA P-256 certificate from a test CA: signs
once and verifies the peer's chain and signature once per handshake, RFC 7427 AUTH).

Run: .venv/bin/python bench/ike.py [--count N] [--runs R] [--auth psk|ecdsa|both] [--cpu]

``--cpu`` times the loops by this thread's CPU time instead of the wall clock, so other
processes on a shared machine do not count (the work is single-threaded; "per core").
The ratio is what counts: DH exchanges' time divided by handshakes' time, both taken
with the same clock in the same run. The goal is >= 500 IKE+CHILD SAs per second per
core with PSK + x25519.
"""

from __future__ import annotations

import argparse
import ipaddress
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.x509.oid import NameOID

from pyipsec.crypto.certs import TrustStore
from pyipsec.engine.processor import Engine
from pyipsec.ike.config_adapter import EngineConnection, LocalCredential
from pyipsec.ike.connection import AuthConfig, ChildConfig, IkeConfig
from pyipsec.ike.proposals import parse_proposals
from pyipsec.ike.traffic_selectors import parse_ts_list
from pyipsec.ike.v2.auth import PeerTrust
from pyipsec.ike.v2.constants import ProtocolId
from pyipsec.ike.v2.identity import Identity
from pyipsec.ike.v2.ike_sa import IkeSaState
from pyipsec.ike.v2.manager import IkeManager

GW_A, GW_B = "192.0.2.1", "192.0.2.2"
NET_A, NET_B = "198.51.100.0/24", "203.0.113.0/24"
PSK = b"benchmark pre-shared key"
NOW = datetime(2030, 1, 1, tzinfo=UTC)
Clock = Callable[[], float]


class Pki:
    """A P-256 CA and one end-entity certificate per gateway (SAN = its address)."""

    def __init__(self) -> None:
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = self._cert("pyipsec bench CA", self.ca_key.public_key(), ca=True)
        self.keys = {gw: ec.generate_private_key(ec.SECP256R1()) for gw in (GW_A, GW_B)}
        self.certs = {gw: self._cert(gw, k.public_key(), san=gw) for gw, k in self.keys.items()}

    def _cert(
        self, cn: str, public: ec.EllipticCurvePublicKey, ca: bool = False, san: str = ""
    ) -> x509.Certificate:
        issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pyipsec bench CA")])
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            address = x509.IPAddress(ipaddress.ip_address(san))
            builder = builder.add_extension(x509.SubjectAlternativeName([address]), False)
        return builder.sign(self.ca_key, hashes.SHA256())


def connection(me: str, peer: str, local: str, remote: str, pki: Pki | None) -> EngineConnection:
    child = ChildConfig(
        "net",
        parse_ts_list([local]),
        parse_ts_list([remote]),
        parse_proposals(["aes128gcm16"], ProtocolId.ESP),
    )
    method = "psk" if pki is None else "pubkey"
    source = IkeConfig(
        "gw",
        parse_proposals(["aes128gcm16-prfsha256-x25519"], ProtocolId.IKE),
        (AuthConfig("local", auth=method, id=me),),
        (AuthConfig("remote", auth=method, id=peer),),
        (child,),
        version=2,
        local_addrs=(me,),
        remote_addrs=(peer,),
        send_certreq=False,
    )
    if pki is None:
        credential = LocalCredential("psk", me, psk=PSK)
        trust = PeerTrust(remote_id=Identity.parse(peer), psk=PSK)
    else:
        credential = LocalCredential("pubkey", me, key=pki.keys[me], chain=(pki.certs[me],))
        trust = PeerTrust(remote_id=Identity.parse(peer), cas=TrustStore([pki.ca]))
    return EngineConnection(
        name="gw",
        local_addrs=(me,),
        remote_addrs=(peer,),
        proposals=source.proposals,
        local_id=me,
        remote_id=peer,
        children=(child,),
        credential=credential,
        trust=trust,
        source=source,
        wall=lambda: NOW,
        psk=PSK if pki is None else b"",
    )


def handshakes(count: int, pki: Pki | None, clock: Clock) -> float:
    """Seconds for ``count`` IKE SA + CHILD SA establishments."""
    a = IkeManager(Engine([GW_A]), [connection(GW_A, GW_B, NET_A, NET_B, pki)])
    b = IkeManager(Engine([GW_B]), [connection(GW_B, GW_A, NET_B, NET_A, pki)])
    start = clock()
    for _ in range(count):
        sa = a.initiate("gw", 0.0)
        moving = True
        while moving:
            moving = False
            for src, dst in ((a, b), (b, a)):
                for d in src.datagrams_to_send(0.0):
                    dst.receive_datagram(d.data, d.dst, d.src, 0.0)
                    moving = True
        if sa.state is not IkeSaState.ESTABLISHED or len(sa.children) != 1:
            raise SystemExit("handshake failed")
    return clock() - start


def dh_floor(count: int, clock: Clock) -> float:
    """Seconds for ``count`` bare X25519 exchanges (two key pairs, two shared secrets)."""
    start = clock()
    for _ in range(count):
        one = x25519.X25519PrivateKey.generate()
        two = x25519.X25519PrivateKey.generate()
        s1 = one.exchange(two.public_key())
        s2 = two.exchange(one.public_key())
        if s1 != s2:
            raise SystemExit("X25519 disagrees")
    return clock() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--auth", choices=("psk", "ecdsa", "both"), default="both")
    parser.add_argument("--cpu", action="store_true", help="time by thread CPU time, not wall")
    args = parser.parse_args()
    clock: Clock = time.thread_time if args.cpu else time.perf_counter
    variants = ("psk", "ecdsa") if args.auth == "both" else (args.auth,)
    pki = Pki() if "ecdsa" in variants else None
    print(f"clock: {'thread CPU time' if args.cpu else 'wall clock'}")
    table: list[str] = []
    for variant in variants:
        v_pki = pki if variant == "ecdsa" else None
        handshakes(20, v_pki, clock)  # warm up imports and caches
        rates, ratios = [], []
        for _ in range(args.runs):
            ike_s = handshakes(args.count, v_pki, clock)
            dh_s = dh_floor(args.count, clock)
            rates.append(args.count / ike_s)
            ratios.append(dh_s / ike_s)
            print(
                f"{variant:5} {args.count} IKE+CHILD SAs in {ike_s:.3f} s = "
                f"{args.count / ike_s:8.1f}/s; X25519 floor {args.count / dh_s:8.1f}/s; "
                f"ratio {dh_s / ike_s:.4f}"
            )
        table.append(
            f"{variant:5} median {statistics.median(rates):8.1f} IKE+CHILD SAs/s, "
            f"ratio to the DH floor {statistics.median(ratios):.4f}"
        )
    print("\n".join(table))
    print("goal: >= 500 IKE+CHILD SAs/s per core with psk")


if __name__ == "__main__":
    main()
