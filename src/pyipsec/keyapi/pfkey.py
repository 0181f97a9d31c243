"""PF_KEY v2 messages (RFC 2367 with the Linux/KAME extensions): codec and checks.

``parse_message(buf)`` turns the bytes a PF_KEY client writes into a ``PfkeyMessage``
(the ``sadb_msg`` header fields plus the extensions in wire order, see ``pfkey_ext``);
``build_message(msg)`` gives the bytes back, byte-identical to what Linux builds with
``<linux/pfkeyv2.h>``. ``split_messages(buf)`` parses a buffer holding several messages.

Errors are those of net/key/af_key.c, raised as ``KeyApiError(errno)``:

- ``pfkey_get_base_msg``: a buffer shorter than ``sadb_msg`` or whose ``sadb_msg_len``
  (64-bit words) is not the buffer's length is EMSGSIZE; a version other than PF_KEY_V2,
  a non-zero reserved field or a type outside 1..SADB_MAX is EINVAL.
- ``parse_exthdrs`` and the ``verify_*`` helpers: an extension of length 0, running
  past the message, of type 0, shorter than its structure, repeated, or with a bad
  sockaddr, prefix length, key length or security context is EINVAL.
- ``check_message(msg)`` holds the checks each kernel handler makes before it touches
  the SAD/SPD (present extensions, families, directions, modes...), for the PF_KEY
  server to call; ``required_extensions(msg_type, satype)`` lists what must be present.

Deviations from Linux, all EINVAL, none affecting a message a real tool sends (setkey,
racoon, charon's kernel_pfkey, the kernel itself): with ``strict=True`` (the default) an
extension type above SADB_EXT_MAX and a fixed-size extension longer than its struct are
refused, where Linux skips or ignores them; ``strict=False`` keeps unknown types as
``UnknownExtension``, accepts the longer extensions and a non-zero ``sadb_msg_reserved``
(the kernel puts a policy's refcount there in its own SPD replies). ``pfkey_ext`` lists
the few layouts it refuses because no dataclass could give the same bytes back.
"""

from __future__ import annotations

import errno as _errno
import struct
from dataclasses import dataclass
from typing import Final, TypeVar

from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.keyapi.pfkey_const import (
    IPPROTO_AH,
    IPPROTO_COMP,
    IPPROTO_DSTOPTS,
    IPPROTO_ESP,
    IPPROTO_ROUTING,
    IPSEC_DIR_MAX,
    IPSEC_MODE_BEET,
    IPSEC_MODE_TUNNEL,
    IPSEC_POLICY_IPSEC,
    PF_KEY_V2,
    SADB_AALG_MAX,
    SADB_ACQUIRE,
    SADB_ADD,
    SADB_DELETE,
    SADB_DUMP,
    SADB_EALG_MAX,
    SADB_EALG_NULL,
    SADB_EXPIRE,
    SADB_EXT_ADDRESS_DST,
    SADB_EXT_ADDRESS_PROXY,
    SADB_EXT_ADDRESS_SRC,
    SADB_EXT_IDENTITY_DST,
    SADB_EXT_IDENTITY_SRC,
    SADB_EXT_KEY_AUTH,
    SADB_EXT_KEY_ENCRYPT,
    SADB_EXT_LIFETIME_CURRENT,
    SADB_EXT_LIFETIME_HARD,
    SADB_EXT_LIFETIME_SOFT,
    SADB_EXT_MAX,
    SADB_EXT_PROPOSAL,
    SADB_EXT_SA,
    SADB_EXT_SENSITIVITY,
    SADB_EXT_SPIRANGE,
    SADB_EXT_SUPPORTED_AUTH,
    SADB_EXT_SUPPORTED_ENCRYPT,
    SADB_FLUSH,
    SADB_GET,
    SADB_GETSPI,
    SADB_MAX,
    SADB_REGISTER,
    SADB_SATYPE_AH,
    SADB_SATYPE_ESP,
    SADB_SATYPE_MAX,
    SADB_SATYPE_UNSPEC,
    SADB_UPDATE,
    SADB_X_AALG_NULL,
    SADB_X_CALG_MAX,
    SADB_X_EXT_FILTER,
    SADB_X_EXT_KMADDRESS,
    SADB_X_EXT_KMPRIVATE,
    SADB_X_EXT_NAT_T_DPORT,
    SADB_X_EXT_NAT_T_OA,
    SADB_X_EXT_NAT_T_SPORT,
    SADB_X_EXT_NAT_T_TYPE,
    SADB_X_EXT_POLICY,
    SADB_X_EXT_SA2,
    SADB_X_EXT_SEC_CTX,
    SADB_X_MIGRATE,
    SADB_X_NAT_T_NEW_MAPPING,
    SADB_X_PCHANGE,
    SADB_X_PROMISC,
    SADB_X_SATYPE_IPCOMP,
    SADB_X_SPDACQUIRE,
    SADB_X_SPDADD,
    SADB_X_SPDDELETE,
    SADB_X_SPDDELETE2,
    SADB_X_SPDEXPIRE,
    SADB_X_SPDGET,
    SADB_X_SPDSETIDX,
    SADB_X_SPDUPDATE,
    XFRM_MAX_DEPTH,
    satype_to_proto,
)
from pyipsec.keyapi.pfkey_ext import (
    Address,
    Alg,
    Comb,
    Extension,
    Filter,
    Identity,
    IpsecRequest,
    Key,
    KmAddress,
    KmPrivate,
    Lifetime,
    NatTPort,
    NatTType,
    Policy,
    Proposal,
    Sa,
    Sa2,
    SecCtx,
    Sensitivity,
    SockAddr,
    SpiRange,
    Supported,
    UnknownExtension,
    build_extension,
    parse_extension,
)

__all__ = [
    "PfkeyMessage",
    "build_message",
    "check_message",
    "parse_message",
    "required_extensions",
    "split_messages",
]

_MSG: Final = struct.Struct("=BBBBHHII")  # sadb_msg, 16
_EXT_HDR: Final = struct.Struct("=HH")  # sadb_ext, 4
_MSG_LEN: Final = struct.Struct("=H")  # sadb_msg_len, at offset 4

_E = TypeVar("_E")


@dataclass(frozen=True, slots=True)
class PfkeyMessage:
    """A PF_KEY v2 message: the ``sadb_msg`` header and its extensions, in wire order."""

    msg_type: int
    satype: int = SADB_SATYPE_UNSPEC
    seq: int = 0
    pid: int = 0
    errno: int = 0
    extensions: tuple[Extension, ...] = ()
    version: int = PF_KEY_V2
    reserved: int = 0

    @classmethod
    def reply_to(
        cls,
        req: PfkeyMessage,
        *extensions: Extension,
        errno: int = 0,
        msg_type: int | None = None,
        satype: int | None = None,
    ) -> PfkeyMessage:
        """An answer to ``req``: its type, SA type, sequence and pid, as the kernel echoes.

        With ``errno`` and no extensions this is af_key.c's ``pfkey_error`` reply.
        """
        return cls(
            req.msg_type if msg_type is None else msg_type,
            req.satype if satype is None else satype,
            req.seq,
            req.pid,
            errno,
            extensions,
            req.version,
        )

    @property
    def exttypes(self) -> tuple[int, ...]:
        return tuple(ext.exttype for ext in self.extensions)

    def get(self, exttype: int) -> Extension | None:
        """The extension of type ``exttype``, or None."""
        for ext in self.extensions:
            if ext.exttype == exttype:
                return ext
        return None

    def has(self, exttype: int) -> bool:
        return self.get(exttype) is not None

    def _typed(self, exttype: int, cls: type[_E]) -> _E | None:
        ext = self.get(exttype)
        return ext if isinstance(ext, cls) else None

    @property
    def sa(self) -> Sa | None:
        return self._typed(SADB_EXT_SA, Sa)

    @property
    def lifetime_current(self) -> Lifetime | None:
        return self._typed(SADB_EXT_LIFETIME_CURRENT, Lifetime)

    @property
    def lifetime_hard(self) -> Lifetime | None:
        return self._typed(SADB_EXT_LIFETIME_HARD, Lifetime)

    @property
    def lifetime_soft(self) -> Lifetime | None:
        return self._typed(SADB_EXT_LIFETIME_SOFT, Lifetime)

    @property
    def src(self) -> Address | None:
        return self._typed(SADB_EXT_ADDRESS_SRC, Address)

    @property
    def dst(self) -> Address | None:
        return self._typed(SADB_EXT_ADDRESS_DST, Address)

    @property
    def proxy(self) -> Address | None:
        return self._typed(SADB_EXT_ADDRESS_PROXY, Address)

    @property
    def key_auth(self) -> Key | None:
        return self._typed(SADB_EXT_KEY_AUTH, Key)

    @property
    def key_encrypt(self) -> Key | None:
        return self._typed(SADB_EXT_KEY_ENCRYPT, Key)

    @property
    def identity_src(self) -> Identity | None:
        return self._typed(SADB_EXT_IDENTITY_SRC, Identity)

    @property
    def identity_dst(self) -> Identity | None:
        return self._typed(SADB_EXT_IDENTITY_DST, Identity)

    @property
    def sensitivity(self) -> Sensitivity | None:
        return self._typed(SADB_EXT_SENSITIVITY, Sensitivity)

    @property
    def proposal(self) -> Proposal | None:
        return self._typed(SADB_EXT_PROPOSAL, Proposal)

    @property
    def supported_auth(self) -> Supported | None:
        return self._typed(SADB_EXT_SUPPORTED_AUTH, Supported)

    @property
    def supported_encrypt(self) -> Supported | None:
        return self._typed(SADB_EXT_SUPPORTED_ENCRYPT, Supported)

    @property
    def spirange(self) -> SpiRange | None:
        return self._typed(SADB_EXT_SPIRANGE, SpiRange)

    @property
    def kmprivate(self) -> KmPrivate | None:
        return self._typed(SADB_X_EXT_KMPRIVATE, KmPrivate)

    @property
    def policy(self) -> Policy | None:
        return self._typed(SADB_X_EXT_POLICY, Policy)

    @property
    def sa2(self) -> Sa2 | None:
        return self._typed(SADB_X_EXT_SA2, Sa2)

    @property
    def nat_t_type(self) -> NatTType | None:
        return self._typed(SADB_X_EXT_NAT_T_TYPE, NatTType)

    @property
    def nat_t_sport(self) -> NatTPort | None:
        return self._typed(SADB_X_EXT_NAT_T_SPORT, NatTPort)

    @property
    def nat_t_dport(self) -> NatTPort | None:
        return self._typed(SADB_X_EXT_NAT_T_DPORT, NatTPort)

    @property
    def nat_t_oa(self) -> Address | None:
        return self._typed(SADB_X_EXT_NAT_T_OA, Address)

    @property
    def sec_ctx(self) -> SecCtx | None:
        return self._typed(SADB_X_EXT_SEC_CTX, SecCtx)

    @property
    def kmaddress(self) -> KmAddress | None:
        return self._typed(SADB_X_EXT_KMADDRESS, KmAddress)

    @property
    def filter(self) -> Filter | None:
        return self._typed(SADB_X_EXT_FILTER, Filter)


def _error(code: int, why: str) -> KeyApiError:
    return KeyApiError(code, f"PF_KEY: {why}")


# --- codec -------------------------------------------------------------------------


def parse_message(buf: bytes | bytearray | memoryview, *, strict: bool = True) -> PfkeyMessage:
    """Decode one PF_KEY message filling the whole of ``buf``.

    Raises ``KeyApiError`` with the errno Linux's ``pfkey_sendmsg`` returns for the same
    bytes (EMSGSIZE or EINVAL), never anything else for bad bytes.
    """
    view = memoryview(buf).cast("B")
    size = len(view)
    if size < _MSG.size:
        raise _error(_errno.EMSGSIZE, "message shorter than sadb_msg")
    version, msg_type, err, satype, msg_len, reserved, seq, pid = _MSG.unpack_from(view)
    if version != PF_KEY_V2:
        raise _error(_errno.EINVAL, f"version {version}, not PF_KEY_V2")
    if strict and reserved != 0:
        raise _error(_errno.EINVAL, "sadb_msg_reserved is not zero")
    if not 0 < msg_type <= SADB_MAX:
        raise _error(_errno.EINVAL, f"unknown message type {msg_type}")
    # pfkey_get_base_msg compares with the buffer length in whole words; bytes beyond
    # the last word then fail as a truncated extension header, as parse_exthdrs does.
    if msg_len != size // 8 or msg_len < _MSG.size // 8:
        raise _error(_errno.EMSGSIZE, "sadb_msg_len does not match the message")
    extensions: list[Extension] = []
    seen: set[int] = set()
    off = _MSG.size
    while off < size:
        if size - off < _EXT_HDR.size:
            raise _error(_errno.EINVAL, "truncated extension header")
        ext_words, exttype = _EXT_HDR.unpack_from(view, off)
        ext_len = 8 * ext_words
        if ext_len == 0 or ext_len > size - off:
            raise _error(_errno.EINVAL, "extension length is 0 or runs past the message")
        if 0 < exttype <= SADB_EXT_MAX:
            if exttype in seen:
                raise _error(_errno.EINVAL, f"extension {exttype} appears twice")
            seen.add(exttype)
        extensions.append(parse_extension(exttype, view[off : off + ext_len], strict=strict))
        off += ext_len
    return PfkeyMessage(msg_type, satype, seq, pid, err, tuple(extensions), version, reserved)


def split_messages(
    buf: bytes | bytearray | memoryview, *, strict: bool = True
) -> list[PfkeyMessage]:
    """Decode a buffer holding several messages back to back (e.g. a dump read at once)."""
    view = memoryview(buf).cast("B")
    messages: list[PfkeyMessage] = []
    off = 0
    while off < len(view):
        if len(view) - off < _MSG.size:
            raise _error(_errno.EMSGSIZE, "message shorter than sadb_msg")
        size = 8 * _MSG_LEN.unpack_from(view, off + 4)[0]
        if size < _MSG.size or size > len(view) - off:
            raise _error(_errno.EMSGSIZE, "sadb_msg_len does not match the buffer")
        messages.append(parse_message(view[off : off + size], strict=strict))
        off += size
    return messages


def build_message(msg: PfkeyMessage) -> bytes:
    """Encode ``msg``; ``ConfigError`` if a value does not fit or an extension repeats."""
    parts: list[bytes] = []
    seen: set[int] = set()
    for ext in msg.extensions:
        parts.append(build_extension(ext))
        if not isinstance(ext, UnknownExtension):
            if ext.exttype in seen:
                raise ConfigError(f"extension {ext.exttype} appears twice")
            seen.add(ext.exttype)
    body = b"".join(parts)
    try:
        header = _MSG.pack(
            msg.version,
            msg.msg_type,
            msg.errno,
            msg.satype,
            (_MSG.size + len(body)) // 8,
            msg.reserved,
            msg.seq,
            msg.pid,
        )
    except struct.error as exc:
        raise ConfigError(f"sadb_msg: value out of range ({exc})") from None
    return header + body


# --- the kernel handlers' checks ----------------------------------------------------

# Types the kernel only sends: af_key.c has no handler for them and answers EOPNOTSUPP.
_KERNEL_ONLY: Final = frozenset(
    {SADB_EXPIRE, SADB_X_PCHANGE, SADB_X_SPDACQUIRE, SADB_X_SPDEXPIRE, SADB_X_NAT_T_NEW_MAPPING}
)
_SA_ID: Final = frozenset({SADB_EXT_SA, SADB_EXT_ADDRESS_SRC, SADB_EXT_ADDRESS_DST})
_SELECTOR: Final = frozenset({SADB_EXT_ADDRESS_SRC, SADB_EXT_ADDRESS_DST, SADB_X_EXT_POLICY})
_REQUIRED: Final[dict[int, frozenset[int]]] = {
    SADB_GETSPI: frozenset({SADB_EXT_ADDRESS_SRC, SADB_EXT_ADDRESS_DST}),
    SADB_UPDATE: _SA_ID,
    SADB_ADD: _SA_ID,
    SADB_DELETE: _SA_ID,
    SADB_GET: _SA_ID,
    SADB_X_SPDUPDATE: _SELECTOR,
    SADB_X_SPDADD: _SELECTOR,
    SADB_X_SPDSETIDX: _SELECTOR,
    SADB_X_SPDDELETE: _SELECTOR,
    SADB_X_MIGRATE: _SELECTOR,
    SADB_X_SPDGET: frozenset({SADB_X_EXT_POLICY}),
    SADB_X_SPDDELETE2: frozenset({SADB_X_EXT_POLICY}),
}
_XFRM_POLICY_MAX: Final = 3  # in, out, fwd: xfrm_policy_id2dir(id) must be below
_FILTER_PLEN_MAX: Final = 128  # pfkey_dump refuses splen/dplen >= 8 * sizeof(xfrm_address_t)
_VALID_ID_PROTOS: Final = frozenset(
    {IPPROTO_AH, IPPROTO_ESP, IPPROTO_COMP, IPPROTO_ROUTING, IPPROTO_DSTOPTS}
)


def required_extensions(msg_type: int, satype: int = SADB_SATYPE_UNSPEC) -> frozenset[int]:
    """Extension types the Linux handler of ``msg_type`` refuses (EINVAL) to go without.

    ADD and UPDATE of an ESP SA also need KEY_ENCRYPT, of an AH SA KEY_AUTH
    (af_key.c ``pfkey_msg2xfrm_state``).
    """
    required = _REQUIRED.get(msg_type, frozenset())
    if msg_type in (SADB_ADD, SADB_UPDATE):
        if satype == SADB_SATYPE_ESP:
            required |= {SADB_EXT_KEY_ENCRYPT}
        elif satype == SADB_SATYPE_AH:
            required |= {SADB_EXT_KEY_AUTH}
    return required


def check_message(msg: PfkeyMessage) -> None:
    """Refuse ``msg`` as Linux's handler would before it looks at the SAD/SPD.

    Raises ``KeyApiError`` with the kernel's errno: EOPNOTSUPP for the kernel-only
    types, EINVAL for missing extensions, mixed families and out-of-range fields, ELOOP
    for more than XFRM_MAX_DEPTH templates. What needs the databases (ESRCH, ENOENT,
    EEXIST) or the algorithm registry (ENOSYS for an unknown algorithm) is the server's.
    """
    if msg.msg_type in _KERNEL_ONLY:
        raise _error(_errno.EOPNOTSUPP, f"message type {msg.msg_type} is kernel-only")
    missing = required_extensions(msg.msg_type, msg.satype) - set(msg.exttypes)
    if missing:
        raise _error(_errno.EINVAL, f"missing extensions {sorted(missing)}")
    if SADB_EXT_ADDRESS_SRC in _REQUIRED.get(msg.msg_type, ()):
        _check_same_family(msg)
    checker = _CHECKERS.get(msg.msg_type)
    if checker is not None:
        checker(msg)


def _check_same_family(msg: PfkeyMessage) -> None:
    # af_key.c present_and_same_family
    src, dst = msg.src, msg.dst
    if src is None or dst is None or type(src.addr) is not type(dst.addr):
        raise _error(_errno.EINVAL, "source and destination of different families")


def _check_mode(mode: int) -> None:
    # pfkey_mode_to_xfrm knows ANY (taken as transport), TRANSPORT, TUNNEL and BEET.
    if mode > IPSEC_MODE_BEET:
        raise _error(_errno.EINVAL, f"unknown mode {mode}")


def _check_getspi(msg: PfkeyMessage) -> None:
    proto = satype_to_proto(msg.satype)
    if proto == 0:
        raise _error(_errno.EINVAL, f"SA type {msg.satype} not supported")
    if msg.sa2 is not None:
        _check_mode(msg.sa2.mode)
    # verify_spi_info, with pfkey_getspi's default range when SPIRANGE is absent.
    rng = msg.spirange
    spi_min, spi_max = (0x100, 0x0FFFFFFF) if rng is None else (rng.spi_min, rng.spi_max)
    if proto == IPPROTO_COMP and spi_max >= 0x10000:
        raise _error(_errno.EINVAL, "an IPCOMP CPI has 16 bits")
    if proto not in (IPPROTO_AH, IPPROTO_ESP, IPPROTO_COMP) or spi_min > spi_max:
        raise _error(_errno.EINVAL, "bad SPI range")


def _check_add(msg: PfkeyMessage) -> None:
    # pfkey_msg2xfrm_state
    sa = msg.sa
    if sa is None:  # required_extensions made sure; this narrows the type
        raise _error(_errno.EINVAL, "missing SA")
    if msg.has(SADB_EXT_LIFETIME_HARD) != msg.has(SADB_EXT_LIFETIME_SOFT):
        raise _error(_errno.EINVAL, "hard and soft lifetimes go together")
    if satype_to_proto(msg.satype) == 0:
        raise _error(_errno.EINVAL, f"SA type {msg.satype} not supported")
    if (
        sa.auth > SADB_AALG_MAX
        or (msg.satype == SADB_X_SATYPE_IPCOMP and sa.encrypt > SADB_X_CALG_MAX)
        or sa.encrypt > SADB_EALG_MAX
    ):
        raise _error(_errno.EINVAL, "algorithm number out of range")
    auth, enc = msg.key_auth, msg.key_encrypt
    if auth is not None and sa.auth != SADB_X_AALG_NULL and auth.bits == 0:
        raise _error(_errno.EINVAL, "empty authentication key")
    if enc is not None and sa.encrypt != SADB_EALG_NULL and enc.bits == 0:
        raise _error(_errno.EINVAL, "empty encryption key")
    if msg.sa2 is not None:
        _check_mode(msg.sa2.mode)


def _check_acquire(msg: PfkeyMessage) -> None:
    # pfkey_acquire: a client only reports an ACQUIRE failure, with a bare header.
    if msg.extensions:
        raise _error(_errno.EOPNOTSUPP, "an ACQUIRE from a client has no extensions")


def _check_register(msg: PfkeyMessage) -> None:
    if msg.satype > SADB_SATYPE_MAX:
        raise _error(_errno.EINVAL, f"SA type {msg.satype} out of range")


def _check_flush(msg: PfkeyMessage) -> None:
    if satype_to_proto(msg.satype) == 0:
        raise _error(_errno.EINVAL, f"SA type {msg.satype} not supported")


def _check_dump(msg: PfkeyMessage) -> None:
    _check_flush(msg)
    flt = msg.filter
    if flt is not None and (flt.splen >= _FILTER_PLEN_MAX or flt.dplen >= _FILTER_PLEN_MAX):
        raise _error(_errno.EINVAL, "filter prefix length out of range")


def _check_promisc(msg: PfkeyMessage) -> None:
    # pfkey_promisc: a bare header switches promiscuous mode off (0) or on (1).
    if not msg.extensions and msg.satype not in (0, 1):
        raise _error(_errno.EINVAL, "X_PROMISC takes 0 or 1")


def _policy_of(msg: PfkeyMessage) -> Policy:
    pol = msg.policy
    if pol is None:
        raise _error(_errno.EINVAL, "missing X_POLICY")
    return pol


def _check_direction(pol: Policy) -> None:
    if pol.direction == 0 or pol.direction >= IPSEC_DIR_MAX:
        raise _error(_errno.EINVAL, f"policy direction {pol.direction} out of range")


def _check_request(rq: IpsecRequest) -> None:
    # af_key.c parse_ipsecrequest
    if rq.mode == 0:
        raise _error(_errno.EINVAL, "ipsecrequest without a mode")
    if rq.proto not in _VALID_ID_PROTOS:
        raise _error(_errno.EINVAL, f"ipsecrequest protocol {rq.proto} not supported")
    _check_mode(rq.mode)
    if rq.mode == IPSEC_MODE_TUNNEL and rq.src is None:
        raise _error(_errno.EINVAL, "tunnel-mode ipsecrequest without endpoints")


def _check_spdadd(msg: PfkeyMessage) -> None:
    pol = _policy_of(msg)
    if pol.policy_type > IPSEC_POLICY_IPSEC:
        raise _error(_errno.EINVAL, f"policy type {pol.policy_type} not supported")
    _check_direction(pol)
    if pol.policy_type != IPSEC_POLICY_IPSEC:
        return
    for depth, rq in enumerate(pol.requests):
        if depth >= XFRM_MAX_DEPTH:
            raise _error(_errno.ELOOP, "more than XFRM_MAX_DEPTH ipsecrequests")
        _check_request(rq)


def _check_spddelete(msg: PfkeyMessage) -> None:
    _check_direction(_policy_of(msg))


def _check_spdget(msg: PfkeyMessage) -> None:
    # xfrm_policy_id2dir: the low 3 bits of a policy id are its direction.
    if _policy_of(msg).policy_id & 7 >= _XFRM_POLICY_MAX:
        raise _error(_errno.EINVAL, "policy id names no direction")


def _check_migrate(msg: PfkeyMessage) -> None:
    # af_key.c pfkey_migrate / ipsecrequests_to_migrate: (old, new) pairs of requests,
    # each with its endpoints, agreeing on protocol, mode and reqid.
    pol = _policy_of(msg)
    if pol.direction >= IPSEC_DIR_MAX:
        raise _error(_errno.EINVAL, f"policy direction {pol.direction} out of range")
    reqs = pol.requests
    if not reqs or len(reqs) % 2 or len(reqs) > 2 * XFRM_MAX_DEPTH:
        raise _error(_errno.EINVAL, "MIGRATE needs 1 to 6 pairs of ipsecrequests")
    for old, new in zip(reqs[::2], reqs[1::2], strict=True):
        if old.src is None or new.src is None:
            raise _error(_errno.EINVAL, "MIGRATE ipsecrequest without endpoints")
        if (old.proto, old.mode, old.reqid) != (new.proto, new.mode, new.reqid):
            raise _error(_errno.EINVAL, "MIGRATE pair disagrees on proto, mode or reqid")
        _check_mode(old.mode)


_CHECKERS: Final = {
    SADB_GETSPI: _check_getspi,
    SADB_UPDATE: _check_add,
    SADB_ADD: _check_add,
    SADB_ACQUIRE: _check_acquire,
    SADB_REGISTER: _check_register,
    SADB_FLUSH: _check_flush,
    SADB_DUMP: _check_dump,
    SADB_X_PROMISC: _check_promisc,
    SADB_X_SPDUPDATE: _check_spdadd,
    SADB_X_SPDADD: _check_spdadd,
    SADB_X_SPDSETIDX: _check_spdadd,
    SADB_X_SPDDELETE: _check_spddelete,
    SADB_X_SPDGET: _check_spdget,
    SADB_X_SPDDELETE2: _check_spdget,
    SADB_X_MIGRATE: _check_migrate,
}

# Re-exported for the server and setkey: one import gives the whole codec.
__all__ += [
    "Address",
    "Alg",
    "Comb",
    "Extension",
    "Filter",
    "Identity",
    "IpsecRequest",
    "Key",
    "KmAddress",
    "KmPrivate",
    "Lifetime",
    "NatTPort",
    "NatTType",
    "Policy",
    "Proposal",
    "Sa",
    "Sa2",
    "SecCtx",
    "Sensitivity",
    "SockAddr",
    "SpiRange",
    "Supported",
    "UnknownExtension",
]
