"""PF_KEY v2 numbers: RFC 2367 plus the Linux/KAME extensions.

The values are the ones Linux assigns in ``<linux/pfkeyv2.h>`` and ``<linux/ipsec.h>``
(and the few from ``<linux/socket.h>``, ``<linux/in.h>`` and ``<linux/udp.h>`` that the
wire format embeds), so a message built here is byte-identical to one a Linux tool sends.

Algorithm numbers: Linux has no PF_KEY number for ChaCha20-Poly1305 (RFC 7634). The crypto
registry (``pyipsec.crypto.algorithms``) picks one from the private range 249-255 for the
embedded engine (``SADB_X_EALG_CHACHA20POLY1305 = 249`` there); that number is ours, not
Linux's, and a real kernel would refuse it (ENOSYS). It is not defined here, so that this
module holds only Linux's numbers.
"""

from __future__ import annotations

from typing import Final

PF_KEY_V2: Final = 2
PFKEYV2_REVISION: Final = 199806

# Message types (sadb_msg_type).
SADB_RESERVED: Final = 0
SADB_GETSPI: Final = 1
SADB_UPDATE: Final = 2
SADB_ADD: Final = 3
SADB_DELETE: Final = 4
SADB_GET: Final = 5
SADB_ACQUIRE: Final = 6
SADB_REGISTER: Final = 7
SADB_EXPIRE: Final = 8
SADB_FLUSH: Final = 9
SADB_DUMP: Final = 10
SADB_X_PROMISC: Final = 11
SADB_X_PCHANGE: Final = 12
SADB_X_SPDUPDATE: Final = 13
SADB_X_SPDADD: Final = 14
SADB_X_SPDDELETE: Final = 15
SADB_X_SPDGET: Final = 16
SADB_X_SPDACQUIRE: Final = 17
SADB_X_SPDDUMP: Final = 18
SADB_X_SPDFLUSH: Final = 19
SADB_X_SPDSETIDX: Final = 20
SADB_X_SPDEXPIRE: Final = 21
SADB_X_SPDDELETE2: Final = 22
SADB_X_NAT_T_NEW_MAPPING: Final = 23
SADB_X_MIGRATE: Final = 24
SADB_MAX: Final = 24

# SA flags (sadb_sa_flags).
SADB_SAFLAGS_PFS: Final = 1
SADB_SAFLAGS_NOPMTUDISC: Final = 0x20000000
SADB_SAFLAGS_DECAP_DSCP: Final = 0x40000000
SADB_SAFLAGS_NOECN: Final = 0x80000000

# SA states (sadb_sa_state).
SADB_SASTATE_LARVAL: Final = 0
SADB_SASTATE_MATURE: Final = 1
SADB_SASTATE_DYING: Final = 2
SADB_SASTATE_DEAD: Final = 3
SADB_SASTATE_MAX: Final = 3

# SA types (sadb_msg_satype).
SADB_SATYPE_UNSPEC: Final = 0
SADB_SATYPE_AH: Final = 2
SADB_SATYPE_ESP: Final = 3
SADB_SATYPE_RSVP: Final = 5
SADB_SATYPE_OSPFV2: Final = 6
SADB_SATYPE_RIPV2: Final = 7
SADB_SATYPE_MIP: Final = 8
SADB_X_SATYPE_IPCOMP: Final = 9
SADB_SATYPE_MAX: Final = 9

# Authentication algorithms (sadb_sa_auth, sadb_alg_id in SUPPORTED_AUTH).
SADB_AALG_NONE: Final = 0
SADB_AALG_MD5HMAC: Final = 2
SADB_AALG_SHA1HMAC: Final = 3
SADB_X_AALG_SHA2_256HMAC: Final = 5
SADB_X_AALG_SHA2_384HMAC: Final = 6
SADB_X_AALG_SHA2_512HMAC: Final = 7
SADB_X_AALG_RIPEMD160HMAC: Final = 8
SADB_X_AALG_AES_XCBC_MAC: Final = 9
SADB_X_AALG_SM3_256HMAC: Final = 10
SADB_X_AALG_NULL: Final = 251  # KAME
SADB_AALG_MAX: Final = 251

# Encryption algorithms (sadb_sa_encrypt, sadb_alg_id in SUPPORTED_ENCRYPT).
SADB_EALG_NONE: Final = 0
SADB_EALG_DESCBC: Final = 2
SADB_EALG_3DESCBC: Final = 3
SADB_X_EALG_CASTCBC: Final = 6
SADB_X_EALG_BLOWFISHCBC: Final = 7
SADB_EALG_NULL: Final = 11
SADB_X_EALG_AESCBC: Final = 12
SADB_X_EALG_AESCTR: Final = 13
SADB_X_EALG_AES_CCM_ICV8: Final = 14
SADB_X_EALG_AES_CCM_ICV12: Final = 15
SADB_X_EALG_AES_CCM_ICV16: Final = 16
SADB_X_EALG_AES_GCM_ICV8: Final = 18
SADB_X_EALG_AES_GCM_ICV12: Final = 19
SADB_X_EALG_AES_GCM_ICV16: Final = 20
SADB_X_EALG_CAMELLIACBC: Final = 22
SADB_X_EALG_NULL_AES_GMAC: Final = 23
SADB_X_EALG_SM4CBC: Final = 24
SADB_EALG_MAX: Final = 253
SADB_X_EALG_SERPENTCBC: Final = 252
SADB_X_EALG_TWOFISHCBC: Final = 253

# Compression algorithms (sadb_sa_encrypt of an IPCOMP SA, KAME style).
SADB_X_CALG_NONE: Final = 0
SADB_X_CALG_OUI: Final = 1
SADB_X_CALG_DEFLATE: Final = 2
SADB_X_CALG_LZS: Final = 3
SADB_X_CALG_LZJH: Final = 4
SADB_X_CALG_MAX: Final = 4

# Extension types (sadb_ext_type).
SADB_EXT_RESERVED: Final = 0
SADB_EXT_SA: Final = 1
SADB_EXT_LIFETIME_CURRENT: Final = 2
SADB_EXT_LIFETIME_HARD: Final = 3
SADB_EXT_LIFETIME_SOFT: Final = 4
SADB_EXT_ADDRESS_SRC: Final = 5
SADB_EXT_ADDRESS_DST: Final = 6
SADB_EXT_ADDRESS_PROXY: Final = 7
SADB_EXT_KEY_AUTH: Final = 8
SADB_EXT_KEY_ENCRYPT: Final = 9
SADB_EXT_IDENTITY_SRC: Final = 10
SADB_EXT_IDENTITY_DST: Final = 11
SADB_EXT_SENSITIVITY: Final = 12
SADB_EXT_PROPOSAL: Final = 13
SADB_EXT_SUPPORTED_AUTH: Final = 14
SADB_EXT_SUPPORTED_ENCRYPT: Final = 15
SADB_EXT_SPIRANGE: Final = 16
SADB_X_EXT_KMPRIVATE: Final = 17
SADB_X_EXT_POLICY: Final = 18
SADB_X_EXT_SA2: Final = 19
SADB_X_EXT_NAT_T_TYPE: Final = 20
SADB_X_EXT_NAT_T_SPORT: Final = 21
SADB_X_EXT_NAT_T_DPORT: Final = 22
SADB_X_EXT_NAT_T_OA: Final = 23
SADB_X_EXT_SEC_CTX: Final = 24
SADB_X_EXT_KMADDRESS: Final = 25
SADB_X_EXT_FILTER: Final = 26
SADB_EXT_MAX: Final = 26

# Identity types (sadb_ident_type).
SADB_IDENTTYPE_RESERVED: Final = 0
SADB_IDENTTYPE_PREFIX: Final = 1
SADB_IDENTTYPE_FQDN: Final = 2
SADB_IDENTTYPE_USERFQDN: Final = 3
SADB_IDENTTYPE_MAX: Final = 3

# <linux/ipsec.h>: policy extension values.
IPSEC_PORT_ANY: Final = 0
IPSEC_ULPROTO_ANY: Final = 255
IPSEC_PROTO_ANY: Final = 255

IPSEC_MODE_ANY: Final = 0  # not valid for an SA
IPSEC_MODE_TRANSPORT: Final = 1
IPSEC_MODE_TUNNEL: Final = 2
IPSEC_MODE_BEET: Final = 3

IPSEC_DIR_ANY: Final = 0
IPSEC_DIR_INBOUND: Final = 1
IPSEC_DIR_OUTBOUND: Final = 2
IPSEC_DIR_FWD: Final = 3  # Linux's own
IPSEC_DIR_MAX: Final = 4
IPSEC_DIR_INVALID: Final = 5

IPSEC_POLICY_DISCARD: Final = 0
IPSEC_POLICY_NONE: Final = 1
IPSEC_POLICY_IPSEC: Final = 2
IPSEC_POLICY_ENTRUST: Final = 3
IPSEC_POLICY_BYPASS: Final = 4

IPSEC_LEVEL_DEFAULT: Final = 0
IPSEC_LEVEL_USE: Final = 1
IPSEC_LEVEL_REQUIRE: Final = 2
IPSEC_LEVEL_UNIQUE: Final = 3

IPSEC_MANUAL_REQID_MAX: Final = 0x3FFF
IPSEC_REPLAYWSIZE: Final = 32

# NAT-T encapsulation types (sadb_x_nat_t_type_type), from <linux/udp.h>.
UDP_ENCAP_ESPINUDP_NON_IKE: Final = 1
UDP_ENCAP_ESPINUDP: Final = 2  # RFC 3948

# Linux numbers the wire format embeds: sockaddr families and IP protocols.
AF_INET: Final = 2
AF_INET6: Final = 10
IPPROTO_ROUTING: Final = 43
IPPROTO_ESP: Final = 50
IPPROTO_AH: Final = 51
IPPROTO_DSTOPTS: Final = 60
IPPROTO_COMP: Final = 108

# Kernel limits the codec checks against.
XFRM_MAX_DEPTH: Final = 6  # ipsecrequests per policy
SEC_CTX_MAX: Final = 4096  # af_key.c verify_sec_ctx_len: PAGE_SIZE on x86/arm64

_SATYPE_TO_PROTO: Final[dict[int, int]] = {
    SADB_SATYPE_UNSPEC: IPSEC_PROTO_ANY,
    SADB_SATYPE_AH: IPPROTO_AH,
    SADB_SATYPE_ESP: IPPROTO_ESP,
    SADB_X_SATYPE_IPCOMP: IPPROTO_COMP,
}
_PROTO_TO_SATYPE: Final[dict[int, int]] = {
    IPPROTO_AH: SADB_SATYPE_AH,
    IPPROTO_ESP: SADB_SATYPE_ESP,
    IPPROTO_COMP: SADB_X_SATYPE_IPCOMP,
}


def satype_to_proto(satype: int) -> int:
    """IP protocol of an SA type as af_key.c maps it; 0 for a type Linux cannot hold."""
    return _SATYPE_TO_PROTO.get(satype, 0)


def proto_to_satype(proto: int) -> int:
    """SA type of an IP protocol (AH, ESP, IPCOMP); 0 (UNSPEC) for any other."""
    return _PROTO_TO_SATYPE.get(proto, SADB_SATYPE_UNSPEC)


MESSAGE_NAMES: Final[dict[int, str]] = {
    SADB_RESERVED: "RESERVED",
    SADB_GETSPI: "GETSPI",
    SADB_UPDATE: "UPDATE",
    SADB_ADD: "ADD",
    SADB_DELETE: "DELETE",
    SADB_GET: "GET",
    SADB_ACQUIRE: "ACQUIRE",
    SADB_REGISTER: "REGISTER",
    SADB_EXPIRE: "EXPIRE",
    SADB_FLUSH: "FLUSH",
    SADB_DUMP: "DUMP",
    SADB_X_PROMISC: "X_PROMISC",
    SADB_X_PCHANGE: "X_PCHANGE",
    SADB_X_SPDUPDATE: "X_SPDUPDATE",
    SADB_X_SPDADD: "X_SPDADD",
    SADB_X_SPDDELETE: "X_SPDDELETE",
    SADB_X_SPDGET: "X_SPDGET",
    SADB_X_SPDACQUIRE: "X_SPDACQUIRE",
    SADB_X_SPDDUMP: "X_SPDDUMP",
    SADB_X_SPDFLUSH: "X_SPDFLUSH",
    SADB_X_SPDSETIDX: "X_SPDSETIDX",
    SADB_X_SPDEXPIRE: "X_SPDEXPIRE",
    SADB_X_SPDDELETE2: "X_SPDDELETE2",
    SADB_X_NAT_T_NEW_MAPPING: "X_NAT_T_NEW_MAPPING",
    SADB_X_MIGRATE: "X_MIGRATE",
}

EXTENSION_NAMES: Final[dict[int, str]] = {
    SADB_EXT_SA: "SA",
    SADB_EXT_LIFETIME_CURRENT: "LIFETIME_CURRENT",
    SADB_EXT_LIFETIME_HARD: "LIFETIME_HARD",
    SADB_EXT_LIFETIME_SOFT: "LIFETIME_SOFT",
    SADB_EXT_ADDRESS_SRC: "ADDRESS_SRC",
    SADB_EXT_ADDRESS_DST: "ADDRESS_DST",
    SADB_EXT_ADDRESS_PROXY: "ADDRESS_PROXY",
    SADB_EXT_KEY_AUTH: "KEY_AUTH",
    SADB_EXT_KEY_ENCRYPT: "KEY_ENCRYPT",
    SADB_EXT_IDENTITY_SRC: "IDENTITY_SRC",
    SADB_EXT_IDENTITY_DST: "IDENTITY_DST",
    SADB_EXT_SENSITIVITY: "SENSITIVITY",
    SADB_EXT_PROPOSAL: "PROPOSAL",
    SADB_EXT_SUPPORTED_AUTH: "SUPPORTED_AUTH",
    SADB_EXT_SUPPORTED_ENCRYPT: "SUPPORTED_ENCRYPT",
    SADB_EXT_SPIRANGE: "SPIRANGE",
    SADB_X_EXT_KMPRIVATE: "X_KMPRIVATE",
    SADB_X_EXT_POLICY: "X_POLICY",
    SADB_X_EXT_SA2: "X_SA2",
    SADB_X_EXT_NAT_T_TYPE: "X_NAT_T_TYPE",
    SADB_X_EXT_NAT_T_SPORT: "X_NAT_T_SPORT",
    SADB_X_EXT_NAT_T_DPORT: "X_NAT_T_DPORT",
    SADB_X_EXT_NAT_T_OA: "X_NAT_T_OA",
    SADB_X_EXT_SEC_CTX: "X_SEC_CTX",
    SADB_X_EXT_KMADDRESS: "X_KMADDRESS",
    SADB_X_EXT_FILTER: "X_FILTER",
}
