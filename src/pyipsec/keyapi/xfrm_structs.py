"""The C structs of ``<linux/xfrm.h>``: dataclasses plus the field tables that lay them out.

Each table sits beside the C declaration it mirrors and is compiled by
:class:`~pyipsec.keyapi.xfrm_layout.Layout`. Variable-length structs (algorithms, the
ESN replay state, security contexts) declare their fixed head here; xfrm.py adds the tail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pyipsec.keyapi.xfrm_const import XFRM_INF
from pyipsec.keyapi.xfrm_layout import ZERO_ADDR, Layout

# -- the structs ---------------------------------------------------------------------------


@dataclass(slots=True)
class Selector:
    daddr: bytes = ZERO_ADDR
    saddr: bytes = ZERO_ADDR
    dport: int = 0
    dport_mask: int = 0
    sport: int = 0
    sport_mask: int = 0
    family: int = 0
    prefixlen_d: int = 0
    prefixlen_s: int = 0
    proto: int = 0
    ifindex: int = 0
    user: int = 0


# struct xfrm_selector {
#     xfrm_address_t daddr; xfrm_address_t saddr;
#     __be16 dport; __be16 dport_mask; __be16 sport; __be16 sport_mask;
#     __u16 family; __u8 prefixlen_d; __u8 prefixlen_s; __u8 proto;
#     int ifindex; __kernel_uid32_t user; };                           /* 56 bytes */
SELECTOR: Layout[Selector] = Layout(
    "xfrm_selector",
    Selector,
    [
        ("daddr", "addr"),
        ("saddr", "addr"),
        ("dport", ">H"),
        ("dport_mask", ">H"),
        ("sport", ">H"),
        ("sport_mask", ">H"),
        ("family", "H"),
        ("prefixlen_d", "B"),
        ("prefixlen_s", "B"),
        ("proto", "B"),
        ("", "3x"),  # align ifindex to 4
        ("ifindex", "i"),
        ("user", "I"),
    ],
)


@dataclass(slots=True)
class XfrmId:
    daddr: bytes = ZERO_ADDR
    spi: int = 0
    proto: int = 0


# struct xfrm_id { xfrm_address_t daddr; __be32 spi; __u8 proto; };   /* 24 bytes */
XFRM_ID: Layout[XfrmId] = Layout(
    "xfrm_id", XfrmId, [("daddr", "addr"), ("spi", ">I"), ("proto", "B"), ("", "3x")]
)


@dataclass(slots=True)
class LifetimeCfg:
    soft_byte_limit: int = XFRM_INF
    hard_byte_limit: int = XFRM_INF
    soft_packet_limit: int = XFRM_INF
    hard_packet_limit: int = XFRM_INF
    soft_add_expires_seconds: int = 0
    hard_add_expires_seconds: int = 0
    soft_use_expires_seconds: int = 0
    hard_use_expires_seconds: int = 0


# struct xfrm_lifetime_cfg { __u64 soft_byte_limit, hard_byte_limit, soft_packet_limit,
#     hard_packet_limit, soft_add_expires_seconds, hard_add_expires_seconds,
#     soft_use_expires_seconds, hard_use_expires_seconds; };            /* 64 bytes */
LIFETIME_CFG: Layout[LifetimeCfg] = Layout(
    "xfrm_lifetime_cfg", LifetimeCfg, [(n, "Q") for n in LifetimeCfg.__dataclass_fields__]
)


@dataclass(slots=True)
class LifetimeCur:
    bytes: int = 0
    packets: int = 0
    add_time: int = 0
    use_time: int = 0


# struct xfrm_lifetime_cur { __u64 bytes, packets, add_time, use_time; }; /* 32 bytes */
LIFETIME_CUR: Layout[LifetimeCur] = Layout(
    "xfrm_lifetime_cur",
    LifetimeCur,
    [("bytes", "Q"), ("packets", "Q"), ("add_time", "Q"), ("use_time", "Q")],
)


@dataclass(slots=True)
class Stats:
    replay_window: int = 0
    replay: int = 0
    integrity_failed: int = 0


# struct xfrm_stats { __u32 replay_window, replay, integrity_failed; }; /* 12 bytes */
STATS: Layout[Stats] = Layout(
    "xfrm_stats", Stats, [("replay_window", "I"), ("replay", "I"), ("integrity_failed", "I")]
)


@dataclass(slots=True)
class UsersaInfo:
    sel: Selector = field(default_factory=Selector)
    id: XfrmId = field(default_factory=XfrmId)
    saddr: bytes = ZERO_ADDR
    lft: LifetimeCfg = field(default_factory=LifetimeCfg)
    curlft: LifetimeCur = field(default_factory=LifetimeCur)
    stats: Stats = field(default_factory=Stats)
    seq: int = 0
    reqid: int = 0
    family: int = 0
    mode: int = 0
    replay_window: int = 0
    flags: int = 0


# struct xfrm_usersa_info { struct xfrm_selector sel; struct xfrm_id id;
#     xfrm_address_t saddr; struct xfrm_lifetime_cfg lft; struct xfrm_lifetime_cur curlft;
#     struct xfrm_stats stats; __u32 seq; __u32 reqid; __u16 family; __u8 mode;
#     __u8 replay_window; __u8 flags; };                /* 224 bytes: 7 bytes tail padding */
USERSA_INFO: Layout[UsersaInfo] = Layout(
    "xfrm_usersa_info",
    UsersaInfo,
    [
        ("sel", SELECTOR),
        ("id", XFRM_ID),
        ("saddr", "addr"),
        ("lft", LIFETIME_CFG),
        ("curlft", LIFETIME_CUR),
        ("stats", STATS),
        ("seq", "I"),
        ("reqid", "I"),
        ("family", "H"),
        ("mode", "B"),
        ("replay_window", "B"),
        ("flags", "B"),
        ("", "7x"),  # the struct is 8-aligned (it holds __u64s)
    ],
)


@dataclass(slots=True)
class UsersaId:
    daddr: bytes = ZERO_ADDR
    spi: int = 0
    family: int = 0
    proto: int = 0


# struct xfrm_usersa_id { xfrm_address_t daddr; __be32 spi; __u16 family; __u8 proto; };
USERSA_ID: Layout[UsersaId] = Layout(
    "xfrm_usersa_id",
    UsersaId,
    [("daddr", "addr"), ("spi", ">I"), ("family", "H"), ("proto", "B"), ("", "1x")],
)  # 24 bytes


@dataclass(slots=True)
class AeventId:
    sa_id: UsersaId = field(default_factory=UsersaId)
    saddr: bytes = ZERO_ADDR
    flags: int = 0
    reqid: int = 0


# struct xfrm_aevent_id { struct xfrm_usersa_id sa_id; xfrm_address_t saddr;
#     __u32 flags; __u32 reqid; };                                      /* 48 bytes */
AEVENT_ID: Layout[AeventId] = Layout(
    "xfrm_aevent_id",
    AeventId,
    [("sa_id", USERSA_ID), ("saddr", "addr"), ("flags", "I"), ("reqid", "I")],
)


@dataclass(slots=True)
class UserspiInfo:
    info: UsersaInfo = field(default_factory=UsersaInfo)
    min: int = 0
    max: int = 0


# struct xfrm_userspi_info { struct xfrm_usersa_info info; __u32 min; __u32 max; }; /* 232 */
USERSPI_INFO: Layout[UserspiInfo] = Layout(
    "xfrm_userspi_info", UserspiInfo, [("info", USERSA_INFO), ("min", "I"), ("max", "I")]
)


@dataclass(slots=True)
class UserpolicyInfo:
    sel: Selector = field(default_factory=Selector)
    lft: LifetimeCfg = field(default_factory=LifetimeCfg)
    curlft: LifetimeCur = field(default_factory=LifetimeCur)
    priority: int = 0
    index: int = 0
    dir: int = 0
    action: int = 0
    flags: int = 0
    share: int = 0


# struct xfrm_userpolicy_info { struct xfrm_selector sel; struct xfrm_lifetime_cfg lft;
#     struct xfrm_lifetime_cur curlft; __u32 priority; __u32 index; __u8 dir;
#     __u8 action; __u8 flags; __u8 share; };           /* 168 bytes: 4 bytes tail padding */
USERPOLICY_INFO: Layout[UserpolicyInfo] = Layout(
    "xfrm_userpolicy_info",
    UserpolicyInfo,
    [
        ("sel", SELECTOR),
        ("lft", LIFETIME_CFG),
        ("curlft", LIFETIME_CUR),
        ("priority", "I"),
        ("index", "I"),
        ("dir", "B"),
        ("action", "B"),
        ("flags", "B"),
        ("share", "B"),
        ("", "4x"),
    ],
)


@dataclass(slots=True)
class UserpolicyId:
    sel: Selector = field(default_factory=Selector)
    index: int = 0
    dir: int = 0


# struct xfrm_userpolicy_id { struct xfrm_selector sel; __u32 index; __u8 dir; }; /* 64 */
USERPOLICY_ID: Layout[UserpolicyId] = Layout(
    "xfrm_userpolicy_id",
    UserpolicyId,
    [("sel", SELECTOR), ("index", "I"), ("dir", "B"), ("", "3x")],
)


@dataclass(slots=True)
class UserTmpl:
    id: XfrmId = field(default_factory=XfrmId)
    family: int = 0
    saddr: bytes = ZERO_ADDR
    reqid: int = 0
    mode: int = 0
    share: int = 0
    optional: int = 0
    aalgos: int = 0xFFFFFFFF
    ealgos: int = 0xFFFFFFFF
    calgos: int = 0xFFFFFFFF


# struct xfrm_user_tmpl { struct xfrm_id id; __u16 family; xfrm_address_t saddr;
#     __u32 reqid; __u8 mode; __u8 share; __u8 optional; __u32 aalgos; __u32 ealgos;
#     __u32 calgos; };                                                  /* 64 bytes */
USER_TMPL: Layout[UserTmpl] = Layout(
    "xfrm_user_tmpl",
    UserTmpl,
    [
        ("id", XFRM_ID),
        ("family", "H"),
        ("", "2x"),  # saddr is __be32-aligned
        ("saddr", "addr"),
        ("reqid", "I"),
        ("mode", "B"),
        ("share", "B"),
        ("optional", "B"),
        ("", "1x"),
        ("aalgos", "I"),
        ("ealgos", "I"),
        ("calgos", "I"),
    ],
)


@dataclass(slots=True)
class UserAcquire:
    id: XfrmId = field(default_factory=XfrmId)
    saddr: bytes = ZERO_ADDR
    sel: Selector = field(default_factory=Selector)
    policy: UserpolicyInfo = field(default_factory=UserpolicyInfo)
    aalgos: int = 0
    ealgos: int = 0
    calgos: int = 0
    seq: int = 0


# struct xfrm_user_acquire { struct xfrm_id id; xfrm_address_t saddr;
#     struct xfrm_selector sel; struct xfrm_userpolicy_info policy;
#     __u32 aalgos, ealgos, calgos, seq; };                             /* 280 bytes */
USER_ACQUIRE: Layout[UserAcquire] = Layout(
    "xfrm_user_acquire",
    UserAcquire,
    [
        ("id", XFRM_ID),
        ("saddr", "addr"),
        ("sel", SELECTOR),
        ("policy", USERPOLICY_INFO),
        ("aalgos", "I"),
        ("ealgos", "I"),
        ("calgos", "I"),
        ("seq", "I"),
    ],
)


@dataclass(slots=True)
class UserExpire:
    state: UsersaInfo = field(default_factory=UsersaInfo)
    hard: int = 0


# struct xfrm_user_expire { struct xfrm_usersa_info state; __u8 hard; };  /* 232 bytes */
USER_EXPIRE: Layout[UserExpire] = Layout(
    "xfrm_user_expire", UserExpire, [("state", USERSA_INFO), ("hard", "B"), ("", "7x")]
)


@dataclass(slots=True)
class UserPolexpire:
    pol: UserpolicyInfo = field(default_factory=UserpolicyInfo)
    hard: int = 0


# struct xfrm_user_polexpire { struct xfrm_userpolicy_info pol; __u8 hard; }; /* 176 */
USER_POLEXPIRE: Layout[UserPolexpire] = Layout(
    "xfrm_user_polexpire",
    UserPolexpire,
    [("pol", USERPOLICY_INFO), ("hard", "B"), ("", "7x")],
)


@dataclass(slots=True)
class UsersaFlush:
    proto: int = 0


# struct xfrm_usersa_flush { __u8 proto; };                             /* 1 byte */
USERSA_FLUSH: Layout[UsersaFlush] = Layout("xfrm_usersa_flush", UsersaFlush, [("proto", "B")])


@dataclass(slots=True)
class UserReport:
    proto: int = 0
    sel: Selector = field(default_factory=Selector)


# struct xfrm_user_report { __u8 proto; struct xfrm_selector sel; };    /* 60 bytes */
USER_REPORT: Layout[UserReport] = Layout(
    "xfrm_user_report", UserReport, [("proto", "B"), ("", "3x"), ("sel", SELECTOR)]
)


@dataclass(slots=True)
class UserKmaddress:
    local: bytes = ZERO_ADDR
    remote: bytes = ZERO_ADDR
    reserved: int = 0
    family: int = 0


# struct xfrm_user_kmaddress { xfrm_address_t local; xfrm_address_t remote;
#     __u32 reserved; __u16 family; };                                  /* 40 bytes */
USER_KMADDRESS: Layout[UserKmaddress] = Layout(
    "xfrm_user_kmaddress",
    UserKmaddress,
    [("local", "addr"), ("remote", "addr"), ("reserved", "I"), ("family", "H"), ("", "2x")],
)


@dataclass(slots=True)
class UserMigrate:
    old_daddr: bytes = ZERO_ADDR
    old_saddr: bytes = ZERO_ADDR
    new_daddr: bytes = ZERO_ADDR
    new_saddr: bytes = ZERO_ADDR
    proto: int = 0
    mode: int = 0
    reserved: int = 0
    reqid: int = 0
    old_family: int = 0
    new_family: int = 0


# struct xfrm_user_migrate { xfrm_address_t old_daddr, old_saddr, new_daddr, new_saddr;
#     __u8 proto; __u8 mode; __u16 reserved; __u32 reqid; __u16 old_family;
#     __u16 new_family; };                                              /* 76 bytes */
USER_MIGRATE: Layout[UserMigrate] = Layout(
    "xfrm_user_migrate",
    UserMigrate,
    [
        ("old_daddr", "addr"),
        ("old_saddr", "addr"),
        ("new_daddr", "addr"),
        ("new_saddr", "addr"),
        ("proto", "B"),
        ("mode", "B"),
        ("reserved", "H"),
        ("reqid", "I"),
        ("old_family", "H"),
        ("new_family", "H"),
    ],
)


@dataclass(slots=True)
class UserMapping:
    id: UsersaId = field(default_factory=UsersaId)
    reqid: int = 0
    old_saddr: bytes = ZERO_ADDR
    new_saddr: bytes = ZERO_ADDR
    old_sport: int = 0
    new_sport: int = 0


# struct xfrm_user_mapping { struct xfrm_usersa_id id; __u32 reqid;
#     xfrm_address_t old_saddr, new_saddr; __be16 old_sport, new_sport; }; /* 64 bytes */
USER_MAPPING: Layout[UserMapping] = Layout(
    "xfrm_user_mapping",
    UserMapping,
    [
        ("id", USERSA_ID),
        ("reqid", "I"),
        ("old_saddr", "addr"),
        ("new_saddr", "addr"),
        ("old_sport", ">H"),
        ("new_sport", ">H"),
    ],
)


@dataclass(slots=True)
class AddressFilter:
    saddr: bytes = ZERO_ADDR
    daddr: bytes = ZERO_ADDR
    family: int = 0
    splen: int = 0
    dplen: int = 0


# struct xfrm_address_filter { xfrm_address_t saddr, daddr; __u16 family;
#     __u8 splen; __u8 dplen; };                                        /* 36 bytes */
ADDRESS_FILTER: Layout[AddressFilter] = Layout(
    "xfrm_address_filter",
    AddressFilter,
    [("saddr", "addr"), ("daddr", "addr"), ("family", "H"), ("splen", "B"), ("dplen", "B")],
)


@dataclass(slots=True)
class UserOffload:
    ifindex: int = 0
    flags: int = 0


# struct xfrm_user_offload { int ifindex; __u8 flags; };                /* 8 bytes */
USER_OFFLOAD: Layout[UserOffload] = Layout(
    "xfrm_user_offload", UserOffload, [("ifindex", "i"), ("flags", "B"), ("", "3x")]
)


@dataclass(slots=True)
class EncapTmpl:
    encap_type: int = 0
    encap_sport: int = 0
    encap_dport: int = 0
    encap_oa: bytes = ZERO_ADDR


# struct xfrm_encap_tmpl { __u16 encap_type; __be16 encap_sport; __be16 encap_dport;
#     xfrm_address_t encap_oa; };                                       /* 24 bytes */
ENCAP_TMPL: Layout[EncapTmpl] = Layout(
    "xfrm_encap_tmpl",
    EncapTmpl,
    [
        ("encap_type", "H"),
        ("encap_sport", ">H"),
        ("encap_dport", ">H"),
        ("", "2x"),
        ("encap_oa", "addr"),
    ],
)


@dataclass(slots=True)
class Mark:
    v: int = 0
    m: int = 0xFFFFFFFF


# struct xfrm_mark { __u32 v; __u32 m; };                               /* 8 bytes */
MARK: Layout[Mark] = Layout("xfrm_mark", Mark, [("v", "I"), ("m", "I")])


@dataclass(slots=True)
class ReplayState:
    oseq: int = 0
    seq: int = 0
    bitmap: int = 0


# struct xfrm_replay_state { __u32 oseq; __u32 seq; __u32 bitmap; };   /* 12 bytes */
REPLAY_STATE: Layout[ReplayState] = Layout(
    "xfrm_replay_state", ReplayState, [("oseq", "I"), ("seq", "I"), ("bitmap", "I")]
)


@dataclass(slots=True)
class UserpolicyType:
    type: int = 0
    reserved1: int = 0
    reserved2: int = 0


# struct xfrm_userpolicy_type { __u8 type; __u16 reserved1; __u8 reserved2; }; /* 6 */
USERPOLICY_TYPE: Layout[UserpolicyType] = Layout(
    "xfrm_userpolicy_type",
    UserpolicyType,
    [("type", "B"), ("", "1x"), ("reserved1", "H"), ("reserved2", "B"), ("", "1x")],
)


@dataclass(slots=True)
class UserpolicyDefault:
    in_: int = 0
    fwd: int = 0
    out: int = 0


# struct xfrm_userpolicy_default { __u8 in; __u8 fwd; __u8 out; };     /* 3 bytes */
USERPOLICY_DEFAULT: Layout[UserpolicyDefault] = Layout(
    "xfrm_userpolicy_default", UserpolicyDefault, [("in_", "B"), ("fwd", "B"), ("out", "B")]
)


@dataclass(slots=True)
class SadHinfo:
    sadhcnt: int = 0
    sadhmcnt: int = 0


# struct xfrmu_sadhinfo { __u32 sadhcnt; __u32 sadhmcnt; };
SAD_HINFO: Layout[SadHinfo] = Layout(
    "xfrmu_sadhinfo", SadHinfo, [("sadhcnt", "I"), ("sadhmcnt", "I")]
)


@dataclass(slots=True)
class SpdInfo:
    incnt: int = 0
    outcnt: int = 0
    fwdcnt: int = 0
    inscnt: int = 0
    outscnt: int = 0
    fwdscnt: int = 0


# struct xfrmu_spdinfo { __u32 incnt, outcnt, fwdcnt, inscnt, outscnt, fwdscnt; };
SPD_INFO: Layout[SpdInfo] = Layout(
    "xfrmu_spdinfo", SpdInfo, [(n, "I") for n in SpdInfo.__dataclass_fields__]
)


@dataclass(slots=True)
class SpdHinfo:
    spdhcnt: int = 0
    spdhmcnt: int = 0


# struct xfrmu_spdhinfo { __u32 spdhcnt; __u32 spdhmcnt; };
SPD_HINFO: Layout[SpdHinfo] = Layout(
    "xfrmu_spdhinfo", SpdHinfo, [("spdhcnt", "I"), ("spdhmcnt", "I")]
)


@dataclass(slots=True)
class SpdHthresh:
    lbits: int = 0
    rbits: int = 0


# struct xfrmu_spdhthresh { __u8 lbits; __u8 rbits; };
SPD_HTHRESH: Layout[SpdHthresh] = Layout(
    "xfrmu_spdhthresh", SpdHthresh, [("lbits", "B"), ("rbits", "B")]
)


# -- variable-length structs: a fixed head (declared here) and a tail (see xfrm.py) -----


class _Keyed(Protocol):
    _SHOWN: ClassVar[tuple[str, ...]]
    name: str
    key: bytes
    key_len: int


class _KeyedAlgo:
    """What the three algorithm structs share: a key and its length in bits.

    ``key_len`` defaults (-1) to ``8 * len(key)``; the kernel takes a different one as
    given. The repr shows the name, the bits and ``_SHOWN`` but never the key, so keys
    cannot reach logs; the dataclasses below are ``repr=False`` so that this one stays.
    The fields (and slots) are the dataclasses'; ``_Keyed`` tells mypy what they hold.
    """

    __slots__ = ()
    _SHOWN: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self: _Keyed) -> None:
        if self.key_len < 0:
            self.key_len = 8 * len(self.key)

    def __repr__(self: _Keyed) -> str:
        extra = "".join(f", {attr}={getattr(self, attr)!r}" for attr in self._SHOWN)
        return f"{type(self).__name__}(name={self.name!r}, key_len={self.key_len}{extra})"

    @property
    def bits(self: _Keyed) -> int:
        return self.key_len


@dataclass(slots=True, repr=False)
class Algo(_KeyedAlgo):
    """XFRMA_ALG_CRYPT / ALG_AUTH / ALG_COMP: a kernel name such as ``cbc(aes)``."""

    name: str = ""
    key: bytes = b""
    key_len: int = -1  # in bits; -1 means 8 * len(key)


# struct xfrm_algo { char alg_name[64]; unsigned int alg_key_len; char alg_key[0]; };
ALGO_HEAD: Layout[dict[str, Any]] = Layout(
    "xfrm_algo", dict, [("name", "cstr64"), ("key_len", "I")]
)  # 68


@dataclass(slots=True, repr=False)
class AlgoAuth(_KeyedAlgo):
    """XFRMA_ALG_AUTH_TRUNC: e.g. ``hmac(sha256)`` with ``trunc_len`` 128 bits."""

    _SHOWN: ClassVar[tuple[str, ...]] = ("trunc_len",)
    name: str = ""
    key: bytes = b""
    trunc_len: int = 0
    key_len: int = -1


# struct xfrm_algo_auth { char alg_name[64]; unsigned int alg_key_len;
#     unsigned int alg_trunc_len; char alg_key[0]; };                   /* 72 + key */
ALGO_AUTH_HEAD: Layout[dict[str, Any]] = Layout(
    "xfrm_algo_auth", dict, [("name", "cstr64"), ("key_len", "I"), ("trunc_len", "I")]
)


@dataclass(slots=True, repr=False)
class AlgoAead(_KeyedAlgo):
    """XFRMA_ALG_AEAD: e.g. ``rfc4106(gcm(aes))`` or ``rfc7539esp(chacha20,poly1305)``.

    The key includes the 4-byte salt (RFC 4106 §8.1, RFC 7634 §2); ``icv_len`` in bits.
    """

    _SHOWN: ClassVar[tuple[str, ...]] = ("icv_len",)
    name: str = ""
    key: bytes = b""
    icv_len: int = 128
    key_len: int = -1


# struct xfrm_algo_aead { char alg_name[64]; unsigned int alg_key_len;
#     unsigned int alg_icv_len; char alg_key[0]; };                     /* 72 + key */
ALGO_AEAD_HEAD: Layout[dict[str, Any]] = Layout(
    "xfrm_algo_aead", dict, [("name", "cstr64"), ("key_len", "I"), ("icv_len", "I")]
)


@dataclass(slots=True)
class ReplayStateEsn:
    """XFRMA_REPLAY_ESN_VAL. ``bmp`` holds ``bmp_len`` words, or none at all (the kernel
    accepts the bare 24-byte head and starts from an empty bitmap)."""

    bmp_len: int = 0
    oseq: int = 0
    seq: int = 0
    oseq_hi: int = 0
    seq_hi: int = 0
    replay_window: int = 0
    bmp: tuple[int, ...] = ()


# struct xfrm_replay_state_esn { unsigned int bmp_len; __u32 oseq; __u32 seq;
#     __u32 oseq_hi; __u32 seq_hi; __u32 replay_window; __u32 bmp[0]; }; /* 24 + 4n */
REPLAY_ESN_HEAD: Layout[dict[str, Any]] = Layout(
    "xfrm_replay_state_esn",
    dict,
    [
        ("bmp_len", "I"),
        ("oseq", "I"),
        ("seq", "I"),
        ("oseq_hi", "I"),
        ("seq_hi", "I"),
        ("replay_window", "I"),
    ],
)


@dataclass(slots=True)
class UserSecCtx:
    """XFRMA_SEC_CTX: an LSM security context (``len`` = 8 + len(ctx))."""

    ctx_alg: int = 0
    ctx_doi: int = 0
    ctx: bytes = b""
    exttype: int = 0


# struct xfrm_user_sec_ctx { __u16 len; __u16 exttype; __u8 ctx_alg; __u8 ctx_doi;
#     __u16 ctx_len; };                                            /* 8 bytes + string */
SEC_CTX_HEAD: Layout[dict[str, Any]] = Layout(
    "xfrm_user_sec_ctx",
    dict,
    [("len", "H"), ("exttype", "H"), ("ctx_alg", "B"), ("ctx_doi", "B"), ("ctx_len", "H")],
)

# Every fixed-size layout, for tests and tools.
ALL_LAYOUTS: tuple[Layout[Any], ...] = (
    SELECTOR,
    XFRM_ID,
    LIFETIME_CFG,
    LIFETIME_CUR,
    STATS,
    USERSA_INFO,
    USERSA_ID,
    AEVENT_ID,
    USERSPI_INFO,
    USERPOLICY_INFO,
    USERPOLICY_ID,
    USER_TMPL,
    USER_ACQUIRE,
    USER_EXPIRE,
    USER_POLEXPIRE,
    USERSA_FLUSH,
    USER_REPORT,
    USER_KMADDRESS,
    USER_MIGRATE,
    USER_MAPPING,
    ADDRESS_FILTER,
    USER_OFFLOAD,
    ENCAP_TMPL,
    MARK,
    REPLAY_STATE,
    USERPOLICY_TYPE,
    USERPOLICY_DEFAULT,
    SAD_HINFO,
    SPD_INFO,
    SPD_HINFO,
    SPD_HTHRESH,
    ALGO_HEAD,
    ALGO_AUTH_HEAD,
    ALGO_AEAD_HEAD,
    REPLAY_ESN_HEAD,
    SEC_CTX_HEAD,
)
