"""swanctl.conf(5) schema: the settings tree -> connections, secrets, pools, authorities.

``load_swanctl(path)`` reads a swanctl.conf as ``swanctl --load-all`` does: the file
(whose stock version includes ``conf.d/*.conf``) and the credential directories next
to it: ``x509/`` (own certificates), ``x509ca/`` (CA certificates), ``pubkey/``,
``private/``, ``rsa/``, ``ecdsa/`` and ``pkcs8/`` (private keys, PEM or DER; encrypted
ones are opened with the passphrase of the ``secrets.private<suffix>`` (or
``rsa``/``ecdsa``/``pkcs8``) section naming the file, as swanctl would otherwise prompt).
The files themselves are read by ``config.credentials``.

Values follow swanctl's rules: times are integers with an optional ``s``/``m``/``h``/``d``
suffix; byte and packet counts take ``k``/``m``/``g`` (powers of 1024); booleans are
``yes``/``no``/``true``/``false``; lists are comma separated. Defaults are the ones
swanctl.conf(5) documents, including the derived ones (``over_time`` is 10% of the
longer of ``rekey_time``/``reauth_time``, a child's ``life_time`` is 110% of its
``rekey_time``, each ``rand_*`` is the gap between the two).

Keys the stack does not act on yet, unknown keys and unknown sections are accepted with
one warning each (``SwanctlConfig.warnings``, also logged). A value that does not fit
raises ``SwanctlError`` naming file, line, key and what was expected. Secret values
never appear in messages.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from pyipsec.config.credentials import (
    SwanctlError,
    certificate_file,
    load_certificate,
    load_directories,
    load_private_key,
    load_public_key,
    public_key_file,
)
from pyipsec.config.swanctl_syntax import Location, Section, load_settings, parse_settings
from pyipsec.ike.connection import (
    AuthConfig,
    Authority,
    ChildConfig,
    IdValue,
    IkeConfig,
    Mark,
    Pool,
    Secret,
    SecretKind,
)
from pyipsec.ike.proposals import Proposal, default_proposals, parse_proposals
from pyipsec.ike.traffic_selectors import TsSpec, parse_ts_list
from pyipsec.ike.v2.constants import ProtocolId

__all__ = [
    "ConfigWarning",
    "SwanctlConfig",
    "SwanctlError",
    "build_config",
    "load_certificate",
    "load_private_key",
    "load_public_key",
    "load_swanctl",
    "parse_bool",
    "parse_int",
    "parse_list",
    "parse_secret",
    "parse_size",
    "parse_swanctl",
    "parse_time",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


@dataclass(frozen=True, slots=True)
class SwanctlConfig:
    connections: tuple[IkeConfig, ...] = ()
    secrets: tuple[Secret, ...] = ()
    pools: tuple[Pool, ...] = ()
    authorities: tuple[Authority, ...] = ()
    certificates: tuple[x509.Certificate, ...] = ()  # x509/
    ca_certificates: tuple[x509.Certificate, ...] = ()  # x509ca/
    public_keys: tuple[PublicKeyTypes, ...] = ()  # pubkey/
    warnings: tuple[ConfigWarning, ...] = ()

    def connection(self, name: str) -> IkeConfig | None:
        return next((c for c in self.connections if c.name == name), None)

    def private_keys(self) -> tuple[PrivateKeyTypes, ...]:
        return tuple(s.key for s in self.secrets if s.key is not None)


# -- value parsers: text -> value, ValueError with the reason ----------------------------

_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_TRUE = frozenset({"yes", "true", "enabled", "on", "1"})
_FALSE = frozenset({"no", "false", "disabled", "off", "0"})
_NUMBER = re.compile(r"([0-9]{1,15})\s*([a-z]?)")
_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})")


def parse_time(text: str) -> float:
    """``90s``, ``30m``, ``1h``, ``1d`` or plain seconds."""
    m = _NUMBER.fullmatch(text.strip().lower())
    if m is None or m.group(2) not in _TIME_UNITS:
        raise ValueError("not a time")
    return float(int(m.group(1)) * _TIME_UNITS[m.group(2)])


def parse_size(text: str) -> int:
    """A byte or packet count, ``k``/``m``/``g`` multiplying by powers of 1024."""
    m = _NUMBER.fullmatch(text.strip().lower())
    if m is None or m.group(2) not in _SIZE_UNITS:
        raise ValueError("not a count")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2)]


def parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError("not a boolean")


def parse_list(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.split(",") if item.strip())


def parse_int(text: str, low: int = 0, high: int = 0xFFFFFFFF) -> int:
    """Decimal or ``0x`` hex, within ``low``-``high``."""
    word = text.strip().lower()
    if not (word.isascii() and re.fullmatch(r"0x[0-9a-f]{1,16}|[0-9]{1,20}", word)):
        raise ValueError("not a number")
    value = int(word, 0) if word.startswith("0x") else int(word)
    if not low <= value <= high:
        raise ValueError(f"out of range {low}-{high}")
    return value


def parse_secret(text: str) -> bytes:
    """swanctl secret encodings: ``0x`` hex, ``0s`` base64, otherwise the text itself."""
    if text.startswith("0x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            raise ValueError("invalid hex after 0x") from None
    if text.startswith("0s"):
        try:
            return base64.b64decode(text[2:], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("invalid base64 after 0s") from None
    return text.encode()


def _choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        word = text.strip().lower()
        if word not in options:
            raise ValueError("unknown value")
        return word

    return parse


# swanctl also takes the older ipsec.conf words for these actions.
_ACTION_SYNONYMS = {"clear": "none", "restart": "start", "route": "trap"}


def _actions(text: str) -> frozenset[str]:
    words = frozenset(
        _ACTION_SYNONYMS.get(w.strip(), w.strip()) for w in text.strip().lower().split("|")
    )
    if words == {"none"}:
        return frozenset()
    if not words or not words <= {"trap", "start"}:
        raise ValueError("unknown action")
    return words


def _id_value(text: str) -> IdValue:
    word = text.strip().lower()
    if word in ("%unique", "%unique-dir"):
        return cast(IdValue, word)
    return parse_int(word)


def _mark(text: str) -> Mark:
    value_text, slash, mask_text = text.strip().lower().partition("/")
    mask = parse_int(mask_text) if slash else 0xFFFFFFFF
    if value_text in ("%unique", "%unique-dir", "%same"):
        return Mark(value_text, mask)
    return Mark(parse_int(value_text), mask)


_NONE: tuple[str, ...] = ()
_NO_ID: IdValue = 0
_NO_TFC: int | Literal["mtu"] = 0


def _addresses(text: str) -> tuple[str, ...]:
    return tuple(str(_address(a)) for a in parse_list(text))


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text.strip())


def _endpoint(item: str) -> str:
    """An entry of local_addrs/remote_addrs: %any, address, subnet, range or DNS name."""
    if item in ("%any", "%any4", "%any6"):
        return item
    looks_numeric = ":" in item or re.fullmatch(r"[0-9./-]+", item) is not None
    try:
        if "/" in item:
            return str(ipaddress.ip_network(item, strict=False))
        if "-" in item and looks_numeric:
            low, _, high = item.partition("-")
            start, end = ipaddress.ip_address(low.strip()), ipaddress.ip_address(high.strip())
            if start.version != end.version or int(start) > int(end):
                raise ValueError("empty range")
            return f"{start}-{end}"
        return str(ipaddress.ip_address(item))
    except ValueError:
        if not looks_numeric and _HOSTNAME.fullmatch(item):
            return item
        raise ValueError(f"{item!r} is no address, subnet, range or host name") from None


def _dscp(text: str) -> int:
    word = text.strip()
    if not re.fullmatch(r"[01]{6}", word):
        raise ValueError("not six binary digits")
    return int(word, 2)


def _tfc(text: str) -> int | Literal["mtu"]:
    return "mtu" if text.strip().lower() == "mtu" else parse_int(text, 0, 0xFFFF)


# -- reading one section ----------------------------------------------------------------


@dataclass(slots=True)
class _Context:
    base_dir: Path | None
    warnings: list[ConfigWarning] = field(default_factory=list)
    passphrases: dict[tuple[str, str], tuple[bytes, Location]] = field(default_factory=dict)

    def warn(self, location: Location, message: str) -> None:
        warning = ConfigWarning(location, message)
        self.warnings.append(warning)
        log.warning("%s", warning)


class _Reader:
    """Typed access to one section's keys; remembers which keys were looked at."""

    def __init__(self, section: Section, path: str, ctx: _Context) -> None:
        self.section = section
        self.path = path
        self.ctx = ctx
        self.seen: set[str] = set()

    def get(
        self,
        key: str,
        parse: Callable[[str], T],
        default: T,
        expect: str,
        *,
        acted: bool = True,
        secret: bool = False,
    ) -> T:
        setting = self.section.get(key)
        self.seen.add(key)
        if setting is None:
            return default
        try:
            value = parse(setting.value)
        except ValueError as exc:
            shown = "(secret value hidden)" if secret else repr(setting.value)
            reason = "" if secret or not str(exc) else f" ({exc})"
            raise SwanctlError(
                setting.location,
                f"{self.path}.{key} = {shown}: expected {expect}{reason}",
            ) from None
        if not acted and value != default:
            self.ctx.warn(setting.location, f"{self.path}.{key} is accepted but not acted on yet")
        return value

    def text(self, key: str, *, acted: bool = True) -> str | None:
        return self.get(key, lambda v: v or None, None, "text", acted=acted)

    def strings(self, key: str, *, acted: bool = True) -> tuple[str, ...]:
        return self.get(key, parse_list, (), "a comma separated list", acted=acted)

    def flag(self, key: str, default: bool, *, acted: bool = True) -> bool:
        return self.get(key, parse_bool, default, "yes or no", acted=acted)

    def time(self, key: str, default: float, *, acted: bool = True) -> float:
        return self.get(key, parse_time, default, "a time such as 90s, 30m, 1h or 1d", acted=acted)

    def count(self, key: str, default: int) -> int:
        return self.get(key, parse_size, default, "a count with optional k/m/g suffix")

    def number(self, key: str, default: int, low: int = 0, high: int = 0xFFFFFFFF) -> int:
        return self.get(
            key, lambda v: parse_int(v, low, high), default, f"a number in {low}-{high}"
        )

    def choice(self, key: str, default: str, *options: str, acted: bool = True) -> Any:
        expect = "one of " + ", ".join(options)
        return self.get(key, _choice(*options), default, expect, acted=acted)

    def mark(self, key: str) -> Mark:
        return self.get(key, _mark, Mark(0, 0), "a mark value[/mask]")

    def id_value(self, key: str) -> IdValue:
        return self.get(key, _id_value, _NO_ID, "a number, %unique or %unique-dir")

    def location(self, key: str) -> Location:
        setting = self.section.get(key)
        return setting.location if setting is not None else self.section.location

    def finish(self, subsection_ok: Callable[[str], bool] = lambda name: False) -> None:
        """One warning for each key or subsection nobody looked at."""
        prefix = f"{self.path}." if self.path else ""
        for key, setting in self.section.settings.items():
            if key not in self.seen:
                self.ctx.warn(setting.location, f"unknown key {prefix}{key} ignored")
        for name, sub in self.section.sections.items():
            if not subsection_ok(name):
                self.ctx.warn(sub.location, f"unknown section {prefix}{name} ignored")


# -- credentials named by a setting (the files: config.credentials) -----------------------


def _certs(reader: _Reader, key: str, subdir: str) -> tuple[x509.Certificate, ...]:
    location, setting = reader.location(key), f"{reader.path}.{key}"
    base_dir = reader.ctx.base_dir
    return tuple(
        certificate_file(base_dir, subdir, name, location, setting) for name in reader.strings(key)
    )


def _pubkeys(reader: _Reader) -> tuple[PublicKeyTypes, ...]:
    location, setting = reader.location("pubkeys"), f"{reader.path}.pubkeys"
    base_dir = reader.ctx.base_dir
    return tuple(
        public_key_file(base_dir, name, location, setting) for name in reader.strings("pubkeys")
    )


# -- sections ------------------------------------------------------------------------------


def _auth(section: Section, path: str, ctx: _Context) -> AuthConfig:
    r = _Reader(section, path, ctx)
    auth = r.get("auth", _auth_method, "pubkey", "pubkey, rsa, ecdsa, psk, null, eap[-x], xauth")
    if auth.startswith(("eap", "xauth")):
        ctx.warn(r.location("auth"), f"{path}.auth = {auth} is accepted but not acted on yet")
    cfg = AuthConfig(
        name=section.name,
        round=r.number("round", 0, 0, 255),
        auth=auth,
        id=r.text("id"),
        eap_id=r.text("eap_id"),
        aaa_id=r.text("aaa_id", acted=False),
        xauth_id=r.text("xauth_id", acted=False),
        certs=_certs(r, "certs", "x509"),
        cacerts=_certs(r, "cacerts", "x509ca"),
        pubkeys=_pubkeys(r),
        ca_id=r.text("ca_id", acted=False),
        revocation=r.choice("revocation", "relaxed", "strict", "ifuri", "relaxed", acted=False),
        groups=r.strings("groups", acted=False),
    )
    r.finish()
    return cfg


_AUTH = re.compile(
    r"(pubkey|rsa|ecdsa|ed25519|ed448)([-/][a-z0-9/_-]+)?|psk|null|eap(-[a-z0-9_-]+)?"
    r"|xauth(-[a-z0-9_-]+)?"
)


def _auth_method(text: str) -> str:
    word = text.strip().lower()
    if not _AUTH.fullmatch(word):
        raise ValueError("unknown authentication method")
    return word


def _proposals(r: _Reader, key: str, protocol: ProtocolId, default: tuple[Proposal, ...]) -> Any:
    return r.get(
        key,
        lambda v: parse_proposals(parse_list(v), protocol),
        default,
        f"{protocol.name} proposals in strongSwan keywords",
    )


def _ts(r: _Reader, key: str) -> tuple[TsSpec, ...]:
    return r.get(
        key,
        lambda v: parse_ts_list(parse_list(v)),
        parse_ts_list(["dynamic"]),
        "traffic selectors such as 198.51.100.0/24, 192.0.2.1[tcp/443] or dynamic",
    )


def _child(section: Section, path: str, ctx: _Context) -> ChildConfig:
    r = _Reader(section, path, ctx)
    rekey_time = r.time("rekey_time", 3600.0)
    life_time = r.time("life_time", rekey_time * 11 / 10)
    if rekey_time and life_time <= rekey_time and section.get("life_time") is not None:
        raise SwanctlError(r.location("life_time"), f"{path}.life_time must exceed rekey_time")
    rekey_bytes, rekey_packets = r.count("rekey_bytes", 0), r.count("rekey_packets", 0)
    life_bytes = r.count("life_bytes", rekey_bytes * 11 // 10)
    life_packets = r.count("life_packets", rekey_packets * 11 // 10)
    mode = r.choice("mode", "tunnel", "tunnel", "transport", "beet", "pass", "drop")
    if mode == "beet":
        ctx.warn(r.location("mode"), f"{path}.mode = beet is accepted but not acted on yet")
    cfg = ChildConfig(
        name=section.name,
        local_ts=_ts(r, "local_ts"),
        remote_ts=_ts(r, "remote_ts"),
        esp_proposals=_proposals(
            r, "esp_proposals", ProtocolId.ESP, default_proposals(ProtocolId.ESP)
        ),
        ah_proposals=_proposals(r, "ah_proposals", ProtocolId.AH, ()),
        sha256_96=r.flag("sha256_96", False),
        rekey_time=rekey_time,
        life_time=life_time,
        rand_time=r.time("rand_time", max(life_time - rekey_time, 0.0)),
        rekey_bytes=rekey_bytes,
        life_bytes=life_bytes,
        rand_bytes=r.count("rand_bytes", max(life_bytes - rekey_bytes, 0)),
        rekey_packets=rekey_packets,
        life_packets=life_packets,
        rand_packets=r.count("rand_packets", max(life_packets - rekey_packets, 0)),
        updown=r.text("updown"),
        hostaccess=r.flag("hostaccess", False),
        mode=mode,
        policies=r.flag("policies", True),
        policies_fwd_out=r.flag("policies_fwd_out", False),
        dpd_action=r.choice("dpd_action", "clear", "clear", "trap", "restart"),
        ipcomp=r.flag("ipcomp", False, acted=False),
        inactivity=r.time("inactivity", 0.0),
        reqid=r.number("reqid", 0),
        priority=r.number("priority", 0),
        interface=r.text("interface", acted=False),
        mark_in=r.mark("mark_in"),
        mark_out=r.mark("mark_out"),
        set_mark_in=r.mark("set_mark_in"),
        set_mark_out=r.mark("set_mark_out"),
        if_id_in=r.id_value("if_id_in"),
        if_id_out=r.id_value("if_id_out"),
        tfc_padding=r.get("tfc_padding", _tfc, _NO_TFC, "a length or mtu"),
        replay_window=r.number("replay_window", 32),
        hw_offload=r.choice(
            "hw_offload", "no", "yes", "no", "auto", "crypto", "packet", acted=False
        ),
        copy_df=r.flag("copy_df", True),
        copy_ecn=r.flag("copy_ecn", True),
        copy_dscp=r.choice("copy_dscp", "out", "out", "in", "yes", "no"),
        start_action=r.get(
            "start_action", _actions, frozenset(), "none, trap, start or trap|start"
        ),
        close_action=r.get(
            "close_action", _actions, frozenset(), "none, trap, start or trap|start"
        ),
    )
    r.finish()
    return cfg


def _connection(section: Section, path: str, ctx: _Context, pools: set[str]) -> IkeConfig:
    r = _Reader(section, path, ctx)
    version = r.number("version", 0, 0, 2)
    if version == 1:
        ctx.warn(r.location("version"), f"{path}.version = 1: IKEv1 is not supported yet")
    rekey_time = r.time("rekey_time", 14400.0)
    reauth_time = r.time("reauth_time", 0.0)
    over_time = r.time("over_time", max(rekey_time, reauth_time) / 10)
    pool_names = r.strings("pools")
    for name in pool_names:
        if name not in pools:
            ctx.warn(r.location("pools"), f"{path}.pools: no pool {name!r} in this file")
    sides: dict[str, list[AuthConfig]] = {"local": [], "remote": []}
    for name, sub in section.sections.items():
        for side, rounds in sides.items():
            if name.startswith(side):
                rounds.append(_auth(sub, f"{path}.{name}", ctx))
    children_section = section.section("children")
    children: list[ChildConfig] = []
    if children_section is not None:
        cr = _Reader(children_section, f"{path}.children", ctx)
        for name, sub in children_section.sections.items():
            children.append(_child(sub, f"{path}.children.{name}", ctx))
        cr.finish(lambda name: True)
    endpoints = "addresses, subnets, ranges, host names or %any"
    cfg = IkeConfig(
        name=section.name,
        proposals=_proposals(r, "proposals", ProtocolId.IKE, default_proposals(ProtocolId.IKE)),
        local=tuple(sorted(sides["local"], key=lambda a: a.round)) or (AuthConfig("local"),),
        remote=tuple(sorted(sides["remote"], key=lambda a: a.round)) or (AuthConfig("remote"),),
        children=tuple(children),
        version=version,
        local_addrs=r.get("local_addrs", _endpoints, ("%any",), endpoints),
        remote_addrs=r.get("remote_addrs", _endpoints, ("%any",), endpoints),
        local_port=r.number("local_port", 500, 1, 65535),
        remote_port=r.number("remote_port", 500, 1, 65535),
        vips=r.get("vips", lambda v: tuple(_address(a) for a in parse_list(v)), (), "IP addresses"),
        aggressive=r.flag("aggressive", False, acted=False),
        pull=r.flag("pull", True, acted=False),
        dscp=r.get("dscp", _dscp, 0, "six binary digits such as 101110", acted=False),
        encap=r.flag("encap", False),
        mobike=r.flag("mobike", True),
        dpd_delay=r.time("dpd_delay", 0.0),
        dpd_timeout=r.time("dpd_timeout", 0.0),  # IKEv2 too: io.ike_timers
        fragmentation=r.choice("fragmentation", "yes", "yes", "accept", "force", "no"),
        childless=r.choice("childless", "allow", "allow", "prefer", "force", "never"),
        send_certreq=r.flag("send_certreq", True),
        send_cert=r.choice("send_cert", "ifasked", "always", "never", "ifasked"),
        keyingtries=r.number("keyingtries", 1),
        unique=r.choice("unique", "no", "no", "never", "keep", "replace"),
        reauth_time=reauth_time,
        rekey_time=rekey_time,
        over_time=over_time,
        rand_time=r.time("rand_time", over_time),
        pools=pool_names,
        if_id_in=r.id_value("if_id_in"),
        if_id_out=r.id_value("if_id_out"),
        mediation=r.flag("mediation", False, acted=False),
        mediated_by=r.text("mediated_by", acted=False),
        mediation_peer=r.text("mediation_peer", acted=False),
        ppk_id=r.text("ppk_id", acted=False),
        ppk_required=r.flag("ppk_required", False, acted=False),
        source=str(section.location),
    )
    r.finish(lambda name: name == "children" or name.startswith(("local", "remote")))
    return cfg


def _endpoints(text: str) -> tuple[str, ...]:
    items = tuple(_endpoint(item) for item in parse_list(text))
    if not items:
        raise ValueError("empty list")
    return items


# Section prefixes of ``secrets`` (longest first where one prefixes another).
_SECRET_KINDS: tuple[str, ...] = (
    "private",
    "pkcs12",
    "pkcs8",
    "ecdsa",
    "xauth",
    "token",
    "ntlm",
    "ike",
    "eap",
    "ppk",
    "rsa",
)
_SHARED_KINDS = frozenset({"ike", "eap", "xauth", "ppk"})


def _secrets(section: Section, ctx: _Context) -> list[Secret]:
    out: list[Secret] = []
    for name, sub in section.sections.items():
        path = f"secrets.{name}"
        kind = next((k for k in _SECRET_KINDS if name.startswith(k)), None)
        if kind is None or kind in ("pkcs12", "token", "ntlm"):
            ctx.warn(sub.location, f"{path}: secret type not supported, ignored")
            continue
        r = _Reader(sub, path, ctx)
        data = r.get("secret", parse_secret, b"", "text, 0x<hex> or 0s<base64>", secret=True)
        if kind in _SHARED_KINDS:
            if sub.get("secret") is None:
                raise SwanctlError(sub.location, f"{path} needs a secret")
            ids = tuple(
                r.get(k, str.strip, "", "an identity") for k in sub.settings if k.startswith("id")
            )
            out.append(Secret(cast(SecretKind, kind), name, ids, data))
        else:
            file = r.text("file")
            if file is None:
                raise SwanctlError(sub.location, f"{path} needs a file")
            ctx.passphrases[(kind, file)] = (data, r.location("secret"))
        r.finish()
    return out


def _pools(section: Section, ctx: _Context) -> list[Pool]:
    out: list[Pool] = []
    for name, sub in section.sections.items():
        path = f"pools.{name}"
        r = _Reader(sub, path, ctx)
        addrs = r.get("addrs", _pool_range, None, "a subnet, a range a-b or an address")
        if addrs is None:
            raise SwanctlError(sub.location, f"{path} needs addrs")
        attributes: list[tuple[str, tuple[str, ...]]] = []
        for key in ("dns", "nbns", "dhcp", "netmask", "server"):
            values = r.get(key, _addresses, _NONE, "IP addresses")
            if values:
                attributes.append((key, values))
        for key in ("subnet", "split_include", "split_exclude"):
            nets = r.get(key, _networks, _NONE, "subnets", acted=False)
            if nets:
                attributes.append((key, nets))
        out.append(Pool(name, addrs, tuple(attributes)))
        r.finish()
    return out


def _networks(text: str) -> tuple[str, ...]:
    return tuple(str(ipaddress.ip_network(n, strict=False)) for n in parse_list(text))


def _pool_range(text: str) -> tuple[Any, Any]:
    text = text.strip()
    if "-" in text:
        low, _, high = text.partition("-")
        start, end = _address(low), _address(high)
        if start.version != end.version or int(start) > int(end):
            raise ValueError("empty or mixed range")
        return start, end
    net = ipaddress.ip_network(text, strict=False)
    return net.network_address, net.broadcast_address


def _authorities(section: Section, ctx: _Context) -> list[Authority]:
    out: list[Authority] = []
    for name, sub in section.sections.items():
        path = f"authorities.{name}"
        r = _Reader(sub, path, ctx)
        cacerts = _certs(r, "cacert", "x509ca") or _certs(r, "file", "x509ca")
        for key in ("handle", "slot", "module"):
            r.text(key, acted=False)
        out.append(
            Authority(
                name,
                cacerts[0] if cacerts else None,
                r.strings("crl_uris", acted=False),
                r.strings("ocsp_uris", acted=False),
                r.text("cert_uri_base", acted=False),
            )
        )
        r.finish()
    return out


# -- entry points ---------------------------------------------------------------------------


def build_config(root: Section, base_dir: str | os.PathLike[str] | None) -> SwanctlConfig:
    """The typed configuration for a parsed settings tree."""
    ctx = _Context(Path(base_dir) if base_dir is not None else None)
    top = _Reader(root, "", ctx)
    secrets_section = root.section("secrets")
    secrets = _secrets(secrets_section, ctx) if secrets_section is not None else []
    found = load_directories(ctx.base_dir, ctx.passphrases, ctx.warn)
    pools_section = root.section("pools")
    pools = _pools(pools_section, ctx) if pools_section is not None else []
    connections_section = root.section("connections")
    connections: list[IkeConfig] = []
    if connections_section is not None:
        names = {p.name for p in pools}
        for name, sub in connections_section.sections.items():
            connections.append(_connection(sub, f"connections.{name}", ctx, names))
        for key, setting in connections_section.settings.items():
            ctx.warn(setting.location, f"unknown key connections.{key} ignored")
    authorities_section = root.section("authorities")
    authorities = _authorities(authorities_section, ctx) if authorities_section else []
    top.finish(lambda name: name in ("connections", "secrets", "pools", "authorities"))
    return SwanctlConfig(
        connections=tuple(connections),
        secrets=(*secrets, *found.private_keys),
        pools=tuple(pools),
        authorities=tuple(authorities),
        certificates=found.certificates,
        ca_certificates=found.ca_certificates,
        public_keys=found.public_keys,
        warnings=tuple(ctx.warnings),
    )


def load_swanctl(path: str | os.PathLike[str]) -> SwanctlConfig:
    """Read swanctl.conf, its includes and the credential directories beside it."""
    file = Path(path)
    return build_config(load_settings(file), file.parent)


def parse_swanctl(
    text: str, filename: str = "<string>", base_dir: str | os.PathLike[str] | None = None
) -> SwanctlConfig:
    """Like ``load_swanctl`` for text; ``base_dir`` holds includes and credentials."""
    return build_config(parse_settings(text, filename, base_dir), base_dir)
