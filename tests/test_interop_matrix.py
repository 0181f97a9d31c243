"""Live IKEv2 interop matrix with strongSwan: more suites, IPv6, both roles.

One charon (kernel-libipsec, ESP in UDP 4500) and one ``pyipsec daemon`` for the whole
module, each loaded with one connection per case. A responder picks its connection by
address in IKE_SA_INIT (RFC 7296 §2.15 leaves it to policy; both stacks use the local
and remote address), so every case runs over an underlay address pair of its own:

    ns py (pyipsec): veth 192.0.2.1x/24, 2001:db8:1::x/64   lo: 198.51.100.x, 2001:db8:a::x
    ns sw (charon):  veth 192.0.2.2x/24, 2001:db8:1::y/64   lo: 203.0.113.x,  2001:db8:b::x

and its own protected pair of addresses. A case initiates its connection (pyipsec or
charon, alternating), checks that both sides list the same IKE and CHILD SPIs with the
negotiated algorithms expected (``swanctl --list-sas`` and ``pyipsec status --json``),
pings both ways through the tunnel, and ``pyipsec down`` removes the SAs on both sides.
Everything started here (daemons, namespaces) is stopped whatever happens.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import strongswan
from netns import Netns, namespaces, veth
from strongswan import Charon, missing, wait_for
from test_interop_strongswan import PSK, Pyipsec

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(240)]

PY_ID, SW_ID = "py.example", "sw.example"


@dataclass(frozen=True)
class Case:
    name: str  # connection name on both sides (and the test id)
    initiator: str  # "pyipsec" or "charon"
    ike: str  # swanctl IKE proposal, configured identically on both sides
    esp: str  # swanctl ESP proposal
    py_ike: str  # pyipsec's status text for the negotiated IKE proposal
    py_esp: str  # ... and for the CHILD SA's
    sw_ike: str  # charon's --list-sas line for the IKE SA's algorithms
    sw_esp: str  # charon's ESP algorithms (after "ESP:" in --list-sas)
    underlay: int = 4  # IP version of the outer (IKE and ESP-in-UDP) packets
    inner: int = 4  # IP version of the protected traffic
    needs: tuple[str, ...] = ()  # charon's --list-algs names this case needs
    # charon's data plane: "libipsec" (userspace, ESP in UDP 4500) or "kernel" (Linux
    # xfrm in charon's namespace, plain ESP: protocol 50 both ways).
    plane: str = "libipsec"

    def addrs(self, index: int) -> tuple[str, str, str, str]:
        """(pyipsec gateway, charon gateway, pyipsec net, charon net) for case ``index``."""
        n = index + 10
        if self.underlay == 6:
            # The first IPv6 case runs over exactly 2001:db8:1::1 <-> 2001:db8:1::2.
            py_gw, sw_gw = f"2001:db8:1::{2 * index + 1:x}", f"2001:db8:1::{2 * index + 2:x}"
        else:
            py_gw, sw_gw = f"192.0.2.{n}", f"192.0.2.{n + 100}"
        if self.inner == 6:
            return py_gw, sw_gw, f"2001:db8:a::{n:x}", f"2001:db8:b::{n:x}"
        return py_gw, sw_gw, f"198.51.100.{n}", f"203.0.113.{n}"


GCM = "aes128gcm16-prfsha256-x25519"
CASES = [
    # IKE suites, each once, the initiator alternating.
    Case("ecp384", "pyipsec", "aes256gcm16-prfsha384-ecp384", "aes256gcm16",
         "aes256gcm16-prfsha384-ecp384", "aes256gcm16",
         "AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384", "AES_GCM_16-256"),
    Case("ecp256", "charon", "aes128-sha256-ecp256", "chacha20poly1305",
         "aes128-sha256-ecp256", "chacha20poly1305",
         "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/ECP_256", "CHACHA20_POLY1305",
         needs=("CHACHA20_POLY1305",)),
    Case("modp4096", "pyipsec", "aes256-sha512-modp4096", "aes128-sha1",
         "aes256-sha512-modp4096", "aes128-sha1",
         "AES_CBC-256/HMAC_SHA2_512_256/PRF_HMAC_SHA2_512/MODP_4096", "AES_CBC-128/HMAC_SHA1_96"),
    Case("chapoly", "charon", "chacha20poly1305-prfsha256-curve25519", "aes256-sha384",
         "chacha20poly1305-prfsha256-x25519", "aes256-sha384",
         "CHACHA20_POLY1305/PRF_HMAC_SHA2_256/CURVE_25519",
         "AES_CBC-256/HMAC_SHA2_384_192", needs=("CHACHA20_POLY1305", "CURVE_25519")),
    Case("curve448", "pyipsec", "aes128gcm16-prfsha256-curve448", "aes192-sha512",
         "aes128gcm16-prfsha256-x448", "aes192-sha512",
         "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_448", "AES_CBC-192/HMAC_SHA2_512_256",
         needs=("CURVE_448",)),
    Case("legacy", "charon", "aes128-sha1-modp2048", "aes256gcm16",
         "aes128-sha1-modp2048", "aes256gcm16",
         "AES_CBC-128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048", "AES_GCM_16-256"),
    Case("ecp521", "pyipsec", "aes256-sha384-ecp521", "aes256gcm16",
         "aes256-sha384-ecp521", "aes256gcm16",
         "AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_521", "AES_GCM_16-256"),
    # Address families: IPv6 underlay with IPv6 and IPv4 inside, IPv4 underlay with IPv6.
    Case("v6in6", "charon", GCM, "aes128gcm16", GCM, "aes128gcm16",
         "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519", "AES_GCM_16-128", 6, 6),
    Case("v4in6", "pyipsec", GCM, "aes128gcm16", GCM, "aes128gcm16",
         "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519", "AES_GCM_16-128", 6, 4),
    Case("v6in4", "charon", GCM, "aes128gcm16", GCM, "aes128gcm16",
         "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519", "AES_GCM_16-128", 4, 6),
    # ESN: kernel-libipsec refuses ESN SAs ("IPsec SA: ESN not supported"), so this case
    # runs against a charon on the Linux xfrm data plane, which implements RFC 4304.
    Case("esn", "pyipsec", GCM, "aes256gcm16-esn", GCM, "aes256gcm16-esn",
         "AES_GCM_16-128/PRF_HMAC_SHA2_256/CURVE_25519", "AES_GCM_16-256/ESN", plane="kernel"),
]  # fmt: skip


def _connection(case: Case, index: int, side: str) -> str:
    py_gw, sw_gw, py_net, sw_net = case.addrs(index)
    me, peer, mine, theirs = (py_gw, sw_gw, py_net, sw_net)
    me_id, peer_id = PY_ID, SW_ID
    if side == "charon":
        me, peer, mine, theirs = sw_gw, py_gw, sw_net, py_net
        me_id, peer_id = SW_ID, PY_ID
    prefix = 128 if case.inner == 6 else 32
    return f"""\
  {case.name} {{
    version = 2
    local_addrs = {me}
    remote_addrs = {peer}
    proposals = {case.ike}
    dpd_delay = 0
    local {{
      auth = psk
      id = {me_id}
    }}
    remote {{
      auth = psk
      id = {peer_id}
    }}
    children {{
      net {{
        local_ts = {mine}/{prefix}
        remote_ts = {theirs}/{prefix}
        esp_proposals = {case.esp}
        mode = tunnel
      }}
    }}
  }}
"""


def _config(side: str, plane: str) -> str:
    me_id, peer_id = (PY_ID, SW_ID) if side == "pyipsec" else (SW_ID, PY_ID)
    conns = "".join(_connection(c, i, side) for i, c in enumerate(CASES) if c.plane == plane)
    secrets = (
        f"secrets {{\n  ike-gw {{\n    id-1 = {me_id}\n    id-2 = {peer_id}\n"
        f"    secret = 0s{PSK}\n  }}\n}}\n"
    )
    return f"connections {{\n{conns}}}\n{secrets}"


@dataclass
class Pair:
    py: Pyipsec
    sw: Charon
    algs: str  # charon's swanctl --list-algs


def _pair(tmp_path_factory: pytest.TempPathFactory, plane: str) -> Iterator[Pair]:
    reason = missing()
    if reason is not None:
        pytest.skip(f"needs the Debian package {reason} (scripts/install-system-deps.sh)")
    work = tmp_path_factory.mktemp(f"matrix-{plane}")
    py_dir, sw_dir = work / "pyipsec", work / "charon"
    py_dir.mkdir()
    sw_dir.mkdir()
    with namespaces("py", "sw") as (py_ns, sw_ns), pytest.MonkeyPatch.context() as mp:
        if plane == "kernel":
            refused = _kernel_esn_refused(sw_ns)
            if refused:
                pytest.skip(
                    "this kernel cannot hold an ESN AES-GCM ESP SA (ip xfrm: "
                    f"{refused}), and charon's kernel-libipsec has no ESN at all"
                )
            # Without kernel-libipsec, kernel-netlink is charon's IPsec backend.
            mp.setattr(strongswan, "PLUGINS", strongswan.PLUGINS.replace("kernel-libipsec ", ""))
        py_addrs: list[str] = []
        sw_addrs: list[str] = []
        for i, case in enumerate(CASES):
            if case.plane != plane:
                continue
            py_gw, sw_gw, py_net, sw_net = case.addrs(i)
            plen = 64 if case.underlay == 6 else 24
            py_addrs.append(f"{py_gw}/{plen}")
            sw_addrs.append(f"{sw_gw}/{plen}")
            nplen = 128 if case.inner == 6 else 32
            py_ns.run("ip", "addr", "add", f"{py_net}/{nplen}", "dev", "lo")
            sw_ns.run("ip", "addr", "add", f"{sw_net}/{nplen}", "dev", "lo")
        veth(py_ns, py_addrs, sw_ns, sw_addrs)
        py, sw = Pyipsec(py_ns, py_dir), Charon(sw_ns, sw_dir)
        try:
            sw.start(_config("charon", plane))
            py.start(_config("pyipsec", plane))
            yield Pair(py, sw, sw.swanctl("--list-algs"))
        except BaseException:
            _dump(py, sw)
            raise
        finally:
            sw.close()
            if py.proc is not None and py.proc.poll() is None:
                py.proc.terminate()
                py.proc.wait(10)


def _kernel_esn_refused(ns: Netns) -> str:
    """Why the kernel of ``ns`` refuses an ESN rfc4106(gcm(aes)) SA ("" when it takes it)."""
    sa = ("src", "192.0.2.250", "dst", "192.0.2.251", "proto", "esp", "spi", "0x7777")
    key = "0x" + "00" * 36  # AES-256 key and 4-byte salt, never used for traffic
    try:
        ns.run("ip", "xfrm", "state", "add", *sa, "mode", "tunnel", "flag", "esn",
               "replay-window", "32", "aead", "rfc4106(gcm(aes))", key, "128")  # fmt: skip
    except RuntimeError as exc:
        return str(exc).rsplit(":", 1)[-1].strip()
    ns.run("ip", "xfrm", "state", "delete", *sa)
    return ""


@pytest.fixture(scope="module")
def libipsec_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    yield from _pair(tmp_path_factory, "libipsec")


@pytest.fixture(scope="module")
def kernel_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    yield from _pair(tmp_path_factory, "kernel")


def _dump(py: Pyipsec, sw: Charon) -> None:
    charon_log = sw.log.read_text(errors="replace")[-6000:] if sw.log.exists() else ""
    sys.stderr.write(f"--- pyipsec log\n{py.tail()}\n--- charon log\n{charon_log}\n")


def _ping(ns: Netns, src: str, dst: str) -> str:
    return ns.run("ping", "-c", "3", "-i", "0.2", "-W", "2", "-I", src, dst, check=False)


def _sw_sas(sw: Charon, name: str) -> str:
    return sw.swanctl("--list-sas", "--ike", name, check=False)


def _check_established(pair: Pair, case: Case, index: int) -> None:
    py_gw, sw_gw, py_net, sw_net = case.addrs(index)
    doc = pair.py.status()
    (ike,) = [sa for sa in doc["ike"]["ike_sas"] if sa["name"] == case.name]
    assert ike["state"] == "established" and ike["remote_id"] == SW_ID, ike
    assert ike["initiator"] is (case.initiator == "pyipsec")
    assert ike["local"].startswith(py_gw) and ike["remote"].startswith(sw_gw), ike
    assert ike["proposal"] == case.py_ike
    (child,) = ike["children"]
    assert child["proposal"] == case.py_esp
    listing = _sw_sas(pair.sw, case.name)
    # charon: the same IKE SPIs (initiator's marked with *), the same CHILD SPIs (its in
    # is our out), the same algorithms, over the same addresses.
    star_i, star_r = ("*", "") if case.initiator == "charon" else ("", "*")
    head = f"{case.name}: #"
    assert head in listing and "ESTABLISHED, IKEv2" in listing, listing
    assert f"{ike['spi_i']}_i{star_i} {ike['spi_r']}_r{star_r}" in listing, listing
    # charon's userspace ESP fakes a NAT (IKE and ESP move to 4500); the kernel's does not.
    port, mode = (4500, "TUNNEL-in-UDP") if case.plane == "libipsec" else (500, "TUNNEL")
    assert f"@ {sw_gw}[{port}]" in listing and f"@ {py_gw}[{port}]" in listing, listing
    lines = [line.strip() for line in listing.splitlines()]
    assert case.sw_ike in lines, listing
    assert re.search(rf"INSTALLED, {mode}, ESP:{re.escape(case.sw_esp)}\n", listing), listing
    assert re.search(rf"\bin  {child['spi_out']},", listing), listing
    assert re.search(rf"\bout {child['spi_in']},", listing), listing
    prefix = 128 if case.inner == 6 else 32
    assert f"local  {sw_net}/{prefix}" in listing and f"remote {py_net}/{prefix}" in listing
    # The engine holds exactly this CHILD SA's pair, in UDP 4500 (RFC 3948) with libipsec.
    mine = [sa for sa in doc["sas"] if f"{sa['spi']:08x}" in (child["spi_in"], child["spi_out"])]
    assert len(mine) == 2, doc["sas"]
    encap = {tuple(sa["encap"]) if sa["encap"] else None for sa in mine}
    assert encap == ({(4500, 4500)} if case.plane == "libipsec" else {None}), mine
    # Extended sequence numbers (RFC 4303 §2.2.1) reach the engine's SAs when negotiated.
    assert {sa["esn"] for sa in mine} == {case.esp.endswith("-esn")}, mine


def _check_counted(pair: Pair, case: Case, index: int) -> None:
    """The pings went through this case's SAs: 6 echo packets each way (3 requests and
    3 replies), counted by pyipsec's engine SAs and by charon's CHILD SA."""
    doc = pair.py.status()
    (ike,) = [sa for sa in doc["ike"]["ike_sas"] if sa["name"] == case.name]
    (child,) = ike["children"]
    packets = {f"{sa['spi']:08x}": sa["counters"]["packets"] for sa in doc["sas"]}
    assert packets[child["spi_in"]] >= 6 and packets[child["spi_out"]] >= 6, packets
    listing = _sw_sas(pair.sw, case.name)
    for direction in ("in ", "out"):
        found = re.search(
            rf"\b{direction} [0-9a-f]{{8}}(?:_i)?,\s+\d+ bytes,\s+(\d+) packets", listing
        )
        assert found is not None and int(found.group(1)) >= 6, listing


@pytest.mark.parametrize(
    ("index", "case"), [pytest.param(i, c, id=c.name) for i, c in enumerate(CASES)]
)
def test_matrix(request: pytest.FixtureRequest, index: int, case: Case) -> None:
    pair: Pair = request.getfixturevalue(f"{case.plane}_pair")
    for alg in case.needs:
        if alg not in pair.algs:
            package = "libstrongswan-extra-plugins (or -standard-plugins' openssl)"
            pytest.skip(f"charon offers no {alg}: needs {package}")
    py, sw = pair.py, pair.sw
    _, _, py_net, sw_net = case.addrs(index)
    try:
        if case.initiator == "pyipsec":
            out = py.cli("up", case.name, "--timeout", "20").stdout
            assert "ESTABLISHED" in out and "INSTALLED" in out, out
        else:
            sw.swanctl("--initiate", "--child", "net", "--ike", case.name, "--timeout", "20")
        wait_for(lambda: "INSTALLED" in _sw_sas(sw, case.name), "charon's CHILD SA", 20, sw.log)
        _check_established(pair, case, index)
        ping = _ping(py.ns, py_net, sw_net)
        assert " 0% packet loss" in ping, ping
        ping = _ping(sw.ns, sw_net, py_net)
        assert " 0% packet loss" in ping, ping
        _check_counted(pair, case, index)

        py.cli("down", case.name)
        wait_for(
            lambda: f"{case.name}:" not in _sw_sas(sw, case.name),
            "charon to drop the IKE SA",
            10,
            sw.log,
        )
        doc = py.status()
        assert [sa for sa in doc["ike"]["ike_sas"] if sa["name"] == case.name] == []
        assert doc["sas"] == []
        # No policy of this CHILD SA stays behind in the engine either.
        assert [p for p in doc["policies"] if py_net in (p["src"] + p["dst"])] == []
    except BaseException:
        _dump(py, sw)
        raise
    finally:
        # Whatever happened, leave no SA of this case behind for the next one.
        if any(sa["name"] == case.name for sa in py.status()["ike"]["ike_sas"]):
            py.cli("down", case.name, check=False)
        if f"{case.name}:" in _sw_sas(sw, case.name):
            sw.swanctl("--terminate", "--ike", case.name, "--force", check=False)
