"""The SAD: SPI allocation, add/update/delete, outbound selection, lifetimes on a fake clock."""

from __future__ import annotations

import errno
import ipaddress

import pytest

from pyipsec.engine.events import Expire, SaAdded, SaDeleted
from pyipsec.engine.lifetime import Lifetime
from pyipsec.engine.sad import SASpec, SaState, SecurityAssociationDatabase
from pyipsec.errors import ConfigError, KeyApiError

A = ipaddress.ip_address("192.0.2.1")
B = ipaddress.ip_address("192.0.2.2")
ENC_KEY = bytes(range(16))
INTEG_KEY = bytes(range(32))


def spec(spi: int = 0x1000, **kw: object) -> SASpec:
    args: dict[str, object] = {
        "spi": spi,
        "src": A,
        "dst": B,
        "enc": "aes128",
        "enc_key": ENC_KEY,
        "integ": "sha256",
        "integ_key": INTEG_KEY,
    }
    args.update(kw)
    return SASpec(**args)  # type: ignore[arg-type]


def drain(sad: SecurityAssociationDatabase) -> list[object]:
    out = []
    while (event := sad.events.get()) is not None:
        out.append(event)
    return out


def test_add_lookup_delete() -> None:
    sad = SecurityAssociationDatabase()
    entry = sad.add(spec(), now=0.0)
    assert entry.state is SaState.MATURE
    assert sad.lookup(B.packed, 0x1000) is entry
    assert sad.lookup(A.packed, 0x1000) is None  # keyed by destination
    assert sad.get("192.0.2.2", 0x1000) is entry
    with pytest.raises(KeyApiError) as exc:
        sad.add(spec(), now=1.0)
    assert exc.value.errno == errno.EEXIST
    assert sad.delete("192.0.2.2", 0x1000) is entry
    assert entry.state is SaState.DEAD
    assert len(sad) == 0
    with pytest.raises(KeyApiError) as exc:
        sad.delete("192.0.2.2", 0x1000)
    assert exc.value.errno == errno.ESRCH
    kinds = [type(e) for e in drain(sad)]
    assert kinds == [SaAdded, SaDeleted]


def test_keys_stay_out_of_repr() -> None:
    text = repr(spec(enc_key=b"\xaa" * 16))
    assert "aaaa" not in text and "\\xaa" not in text


def test_bad_spec_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        spec(spi=0)
    with pytest.raises(ConfigError):
        spec(src="not-an-address")
    sad = SecurityAssociationDatabase()
    with pytest.raises(KeyApiError) as exc:
        sad.add(spec(enc="no-such-cipher"), now=0.0)
    assert exc.value.errno == errno.EINVAL
    assert len(sad) == 0  # nothing half-added


def test_getspi_larval_then_update() -> None:
    sad = SecurityAssociationDatabase()
    spi = sad.get_spi(A, B, now=0.0, spi_min=0x2000, spi_max=0x2FFF)
    assert 0x2000 <= spi <= 0x2FFF
    larval = sad.lookup(B.packed, spi)
    assert larval is not None and larval.state is SaState.LARVAL and larval.sa is None
    with pytest.raises(KeyApiError) as exc:
        sad.add(spec(spi), now=1.0)  # the SPI is reserved: ADD refuses, UPDATE completes
    assert exc.value.errno == errno.EEXIST
    entry = sad.update(spec(spi), now=2.0)
    assert entry is larval and entry.state is SaState.MATURE and entry.sa is not None
    with pytest.raises(KeyApiError) as exc:
        sad.update(spec(0x9999), now=2.0)
    assert exc.value.errno == errno.ESRCH


def test_getspi_unique_and_range_exhaustion() -> None:
    sad = SecurityAssociationDatabase()
    spis = {sad.get_spi(A, B, now=0.0, spi_min=0x100, spi_max=0x10F) for _ in range(16)}
    assert spis == set(range(0x100, 0x110))
    with pytest.raises(KeyApiError) as exc:
        sad.get_spi(A, B, now=0.0, spi_min=0x100, spi_max=0x10F)
    assert exc.value.errno == errno.ENOENT
    with pytest.raises(KeyApiError):
        sad.get_spi(A, B, now=0.0, spi_min=0x20, spi_max=0x30)  # reserved range only


def test_larval_expires_after_30s() -> None:
    sad = SecurityAssociationDatabase()
    spi = sad.get_spi(A, B, now=100.0)
    assert sad.next_timer() == pytest.approx(130.0)
    sad.expire(129.9)
    assert sad.lookup(B.packed, spi) is not None
    sad.expire(130.0)
    assert sad.lookup(B.packed, spi) is None
    events = drain(sad)
    assert any(isinstance(e, Expire) and e.hard and e.cause == "larval" for e in events)


def test_update_of_mature_sa_changes_only_lifetimes() -> None:
    sad = SecurityAssociationDatabase()
    sad.add(spec(hard=Lifetime(add_time=10)), now=0.0)
    sad.update(spec(hard=Lifetime(add_time=100)), now=1.0)
    sad.expire(50.0)  # the old 10 s limit no longer applies
    assert sad.lookup(B.packed, 0x1000) is not None
    with pytest.raises(KeyApiError) as exc:
        sad.update(spec(integ_key=bytes(32)), now=2.0)
    assert exc.value.errno == errno.EINVAL
    sad.expire(100.0)
    assert sad.lookup(B.packed, 0x1000) is None


def test_outbound_selection_prefers_mature_then_newest() -> None:
    sad = SecurityAssociationDatabase()
    old = sad.add(spec(0x1000, soft=Lifetime(add_time=5)), now=0.0)
    assert sad.find_outbound(A.packed, B.packed, "esp", "tunnel", 0) is old
    sad.expire(5.0)
    assert old.state is SaState.DYING
    # A dying SA is still used while nothing better exists...
    assert sad.find_outbound(A.packed, B.packed, "esp", "tunnel", 0) is old
    new = sad.add(spec(0x2000), now=6.0)
    # ...and a fresh one wins as soon as it is there (make-before-break rekeying).
    assert sad.find_outbound(A.packed, B.packed, "esp", "tunnel", 0) is new
    newer = sad.add(spec(0x3000), now=7.0)
    assert sad.find_outbound(A.packed, B.packed, "esp", "tunnel", 0) is newer
    assert sad.find_outbound(A.packed, B.packed, "esp", "transport", 0) is None
    assert sad.find_outbound(B.packed, A.packed, "esp", "tunnel", 0) is None


def test_outbound_selection_by_reqid() -> None:
    sad = SecurityAssociationDatabase()
    one = sad.add(spec(0x1000, reqid=1), now=0.0)
    two = sad.add(spec(0x2000, reqid=2), now=1.0)
    assert sad.find_outbound(A.packed, B.packed, "esp", "tunnel", 1) is one
    assert sad.find_outbound(A.packed, B.packed, "esp", "tunnel", 2) is two
    assert sad.find_outbound(A.packed, B.packed, "esp", "tunnel", 3) is None
    assert sad.find_outbound(A.packed, B.packed, "esp", "tunnel", 0) is two


def test_time_lifetimes_soft_then_hard() -> None:
    sad = SecurityAssociationDatabase()
    entry = sad.add(spec(soft=Lifetime(add_time=60), hard=Lifetime(add_time=90)), now=1000.0)
    drain(sad)
    assert sad.next_timer() == pytest.approx(1060.0)
    sad.expire(1059.0)
    assert entry.state is SaState.MATURE and not drain(sad)
    sad.expire(1060.0)
    assert entry.state is SaState.DYING
    (soft,) = drain(sad)
    assert isinstance(soft, Expire) and not soft.hard and soft.cause == "add_time"
    sad.expire(1090.0)
    assert entry.state is SaState.DEAD
    events = drain(sad)
    assert isinstance(events[0], Expire) and events[0].hard
    assert isinstance(events[1], SaDeleted) and events[1].reason == "expired"
    assert sad.next_timer() is None


def test_use_time_counts_from_first_use() -> None:
    sad = SecurityAssociationDatabase()
    entry = sad.add(spec(hard=Lifetime(use_time=10)), now=0.0)
    sad.expire(100.0)
    assert entry.state is SaState.MATURE  # never used: no use-time deadline yet
    sad.first_use(entry, now=100.0)
    sad.expire(109.0)
    assert entry.state is SaState.MATURE
    sad.expire(110.0)
    assert entry.state is SaState.DEAD


def test_count_limits_soft_then_hard() -> None:
    sad = SecurityAssociationDatabase()
    entry = sad.add(spec(soft=Lifetime(packets=3), hard=Lifetime(packets=5)), now=0.0)
    drain(sad)
    assert entry.packet_limit == 3
    assert entry.sa is not None
    entry.sa.counters.packets = 3
    sad.count_limit_hit(entry)
    assert entry.state is SaState.DYING and entry.packet_limit == 5
    (soft,) = drain(sad)
    assert isinstance(soft, Expire) and not soft.hard and soft.cause == "packets"
    entry.sa.counters.packets = 5
    sad.count_limit_hit(entry)
    assert entry.state is SaState.DEAD
    assert isinstance(drain(sad)[0], Expire)


def test_flush_and_dump() -> None:
    sad = SecurityAssociationDatabase()
    sad.add(spec(0x1000), now=0.0)
    sad.add(spec(0x2000), now=1.0)
    sad.get_spi(A, B, now=2.0)
    assert [e.spi for e in sad.dump()][:2] == [0x1000, 0x2000]
    assert sad.flush() == 3
    assert len(sad) == 0
    assert sad.find_outbound(A.packed, B.packed, "esp", "tunnel", 0) is None
