"""Numbers of the xfrm_user netlink interface, as defined by ``<linux/xfrm.h>``.

These are ABI facts (message types, attribute types, multicast groups, flag bits);
they are grouped and named as in the header so a reader can grep for either spelling.
"""

from __future__ import annotations

import socket

# Address families used in xfrm structs.
AF_UNSPEC = 0
AF_INET = socket.AF_INET  # 2
AF_INET6 = socket.AF_INET6  # 10

# IP protocol numbers that may appear as xfrm_id.proto.
IPPROTO_ROUTING = 43
IPPROTO_ESP = 50
IPPROTO_AH = 51
IPPROTO_DSTOPTS = 60
IPPROTO_COMP = 108
IPSEC_PROTO_ANY = 255

# Message types (enum, XFRM_MSG_BASE = 0x10).
XFRM_MSG_BASE = 0x10
XFRM_MSG_NEWSA = 0x10
XFRM_MSG_DELSA = 0x11
XFRM_MSG_GETSA = 0x12
XFRM_MSG_NEWPOLICY = 0x13
XFRM_MSG_DELPOLICY = 0x14
XFRM_MSG_GETPOLICY = 0x15
XFRM_MSG_ALLOCSPI = 0x16
XFRM_MSG_ACQUIRE = 0x17
XFRM_MSG_EXPIRE = 0x18
XFRM_MSG_UPDPOLICY = 0x19
XFRM_MSG_UPDSA = 0x1A
XFRM_MSG_POLEXPIRE = 0x1B
XFRM_MSG_FLUSHSA = 0x1C
XFRM_MSG_FLUSHPOLICY = 0x1D
XFRM_MSG_NEWAE = 0x1E
XFRM_MSG_GETAE = 0x1F
XFRM_MSG_REPORT = 0x20
XFRM_MSG_MIGRATE = 0x21
XFRM_MSG_NEWSADINFO = 0x22
XFRM_MSG_GETSADINFO = 0x23
XFRM_MSG_NEWSPDINFO = 0x24
XFRM_MSG_GETSPDINFO = 0x25
XFRM_MSG_MAPPING = 0x26
XFRM_MSG_SETDEFAULT = 0x27
XFRM_MSG_GETDEFAULT = 0x28
XFRM_MSG_MAX = XFRM_MSG_GETDEFAULT

MSG_NAMES: dict[int, str] = {
    value: name
    for name, value in list(globals().items())
    if name.startswith("XFRM_MSG_") and name not in ("XFRM_MSG_BASE", "XFRM_MSG_MAX")
}

# Attribute types (enum xfrm_attr_type_t).
XFRMA_UNSPEC = 0
XFRMA_ALG_AUTH = 1  # struct xfrm_algo
XFRMA_ALG_CRYPT = 2  # struct xfrm_algo
XFRMA_ALG_COMP = 3  # struct xfrm_algo
XFRMA_ENCAP = 4  # struct xfrm_encap_tmpl
XFRMA_TMPL = 5  # one or more struct xfrm_user_tmpl
XFRMA_SA = 6  # struct xfrm_usersa_info
XFRMA_POLICY = 7  # struct xfrm_userpolicy_info
XFRMA_SEC_CTX = 8  # struct xfrm_user_sec_ctx + context string
XFRMA_LTIME_VAL = 9  # struct xfrm_lifetime_cur
XFRMA_REPLAY_VAL = 10  # struct xfrm_replay_state
XFRMA_REPLAY_THRESH = 11  # __u32
XFRMA_ETIMER_THRESH = 12  # __u32
XFRMA_SRCADDR = 13  # xfrm_address_t
XFRMA_COADDR = 14  # xfrm_address_t
XFRMA_LASTUSED = 15  # __u64
XFRMA_POLICY_TYPE = 16  # struct xfrm_userpolicy_type
XFRMA_MIGRATE = 17  # one or more struct xfrm_user_migrate
XFRMA_ALG_AEAD = 18  # struct xfrm_algo_aead
XFRMA_KMADDRESS = 19  # struct xfrm_user_kmaddress
XFRMA_ALG_AUTH_TRUNC = 20  # struct xfrm_algo_auth
XFRMA_MARK = 21  # struct xfrm_mark
XFRMA_TFCPAD = 22  # __u32
XFRMA_REPLAY_ESN_VAL = 23  # struct xfrm_replay_state_esn
XFRMA_SA_EXTRA_FLAGS = 24  # __u32
XFRMA_PROTO = 25  # __u8
XFRMA_ADDRESS_FILTER = 26  # struct xfrm_address_filter
XFRMA_PAD = 27
XFRMA_OFFLOAD_DEV = 28  # struct xfrm_user_offload
XFRMA_SET_MARK = 29  # __u32 (was XFRMA_OUTPUT_MARK)
XFRMA_SET_MARK_MASK = 30  # __u32
XFRMA_IF_ID = 31  # __u32
XFRMA_MTIMER_THRESH = 32  # __u32
XFRMA_OUTPUT_MARK = XFRMA_SET_MARK

# Attributes of NEWSADINFO (enum xfrm_sadattr_type_t).
XFRMA_SAD_CNT = 1  # __u32
XFRMA_SAD_HINFO = 2  # struct xfrmu_sadhinfo
# Attributes of NEWSPDINFO (enum xfrm_spdattr_type_t).
XFRMA_SPD_INFO = 1  # struct xfrmu_spdinfo
XFRMA_SPD_HINFO = 2  # struct xfrmu_spdhinfo
XFRMA_SPD_IPV4_HTHRESH = 3  # struct xfrmu_spdhthresh
XFRMA_SPD_IPV6_HTHRESH = 4  # struct xfrmu_spdhthresh

# Multicast groups (enum xfrm_nlgroups): subscribe with NETLINK_ADD_MEMBERSHIP.
XFRMNLGRP_NONE = 0
XFRMNLGRP_ACQUIRE = 1
XFRMNLGRP_EXPIRE = 2
XFRMNLGRP_SA = 3
XFRMNLGRP_POLICY = 4
XFRMNLGRP_AEVENTS = 5
XFRMNLGRP_REPORT = 6
XFRMNLGRP_MIGRATE = 7
XFRMNLGRP_MAPPING = 8

# Policy types, directions, actions, flags.
XFRM_POLICY_TYPE_MAIN = 0
XFRM_POLICY_TYPE_SUB = 1
XFRM_POLICY_TYPE_ANY = 255
XFRM_POLICY_IN = 0
XFRM_POLICY_OUT = 1
XFRM_POLICY_FWD = 2
XFRM_POLICY_ALLOW = 0
XFRM_POLICY_BLOCK = 1
XFRM_POLICY_LOCALOK = 1
XFRM_POLICY_ICMP = 2

# Share modes (xfrm_user_tmpl.share, xfrm_userpolicy_info.share).
XFRM_SHARE_ANY = 0
XFRM_SHARE_SESSION = 1
XFRM_SHARE_USER = 2
XFRM_SHARE_UNIQUE = 3

# SA modes.
XFRM_MODE_TRANSPORT = 0
XFRM_MODE_TUNNEL = 1
XFRM_MODE_ROUTEOPTIMIZATION = 2
XFRM_MODE_IN_TRIGGER = 3
XFRM_MODE_BEET = 4
XFRM_MODE_MAX = 5

# xfrm_usersa_info.flags.
XFRM_STATE_NOECN = 1
XFRM_STATE_DECAP_DSCP = 2
XFRM_STATE_NOPMTUDISC = 4
XFRM_STATE_WILDRECV = 8
XFRM_STATE_ICMP = 16
XFRM_STATE_AF_UNSPEC = 32
XFRM_STATE_ALIGN4 = 64
XFRM_STATE_ESN = 128
# XFRMA_SA_EXTRA_FLAGS bits.
XFRM_SA_XFLAG_DONT_ENCAP_DSCP = 1
XFRM_SA_XFLAG_OSEQ_MAY_WRAP = 2

# xfrm_user_offload.flags.
XFRM_OFFLOAD_IPV6 = 1
XFRM_OFFLOAD_INBOUND = 2
XFRM_OFFLOAD_PACKET = 4

# xfrm_aevent_id.flags (enum xfrm_ae_ftype_t).
XFRM_AE_RTHR = 1
XFRM_AE_RVAL = 2
XFRM_AE_LVAL = 4
XFRM_AE_ETHR = 8
XFRM_AE_CR = 16
XFRM_AE_CE = 32
XFRM_AE_CU = 64

# xfrm_userpolicy_default values.
XFRM_USERPOLICY_UNSPEC = 0
XFRM_USERPOLICY_BLOCK = 1
XFRM_USERPOLICY_ACCEPT = 2

# "No limit" in xfrm_lifetime_cfg.
XFRM_INF = 0xFFFFFFFFFFFFFFFF
# Largest replay bitmap the kernel accepts in XFRMA_REPLAY_ESN_VAL, in bits.
XFRMA_REPLAY_ESN_MAX = 4096
# Largest number of templates in one policy (XFRM_MAX_DEPTH in net/xfrm.h).
XFRM_MAX_DEPTH = 6
# Security context DOI/algorithm.
XFRM_SC_DOI_LSM = 1
XFRM_SC_ALG_SELINUX = 1
