"""pyipsec: a userspace IPsec stack (ESP, SAD/SPD engine, PF_KEY, xfrm, IKEv2)."""

__version__ = "0.1.0"
