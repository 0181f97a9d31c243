"""What a refused setkey command means, in words: ``explain(cmd, errno)``.

A PF_KEY reply carries an errno and nothing else (RFC 2367 §2.3.1: ``sadb_msg_errno``),
so ``pyipsec setkey`` only learns "Function not implemented" for a DES SA or "Invalid
argument" for a policy with a GRE key. The client still holds the command
it sent, and this package's algorithm registry is what the daemon implements, so the
likely cause can be named next to the errno::

    manual_examples.conf:12: add esp 0x1e241: Function not implemented: encryption
        algorithm des-cbc is not implemented (available: aes-cbc, aes-gcm-16, ...)

The text is a diagnosis after the fact: nothing here refuses a command before the
daemon has seen it. No key material is ever part of it.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from typing import Final

from pyipsec.crypto.algorithms import (
    ENC_ALGORITHMS,
    INTEG_ALGORITHMS,
    EncAlgorithm,
    IntegAlgorithm,
    enc_by_setkey,
    integ_by_setkey,
)
from pyipsec.errors import ConfigError
from pyipsec.keyapi.setkey_commands import (
    AddSA,
    Command,
    DeleteAll,
    DeleteSA,
    Flush,
    GetSA,
    GetSpi,
    SpdAdd,
    SpdDelete,
)

__all__ = ["describe_command", "explain"]

_ESP: Final = frozenset({"esp", "esp-old", "esp-udp"})
_GRE: Final = 47
_MH: Final = 135
_OTHER_SA: Final = {
    "ah": "AH SAs are not supported (pyipsec implements ESP only; ESP with NULL "
    "encryption authenticates too, RFC 4303 §3.2)",
    "ah-old": "AH SAs are not supported (pyipsec implements ESP only)",
    "ipcomp": "IPComp SAs are not supported (pyipsec implements ESP only)",
    "tcp": "TCP-MD5 signature SAs (RFC 2385) are not supported",
}


def _names(algs: Iterable[EncAlgorithm | IntegAlgorithm]) -> str:
    seen: list[str] = []
    for alg in algs:
        names = alg.setkey_names
        if names and names[0] not in seen:
            seen.append(names[0])
    return ", ".join(sorted(seen))


def describe_command(cmd: Command) -> str:
    """A short name for the command in an error line: verb, protocol, SPI or selector."""
    if isinstance(cmd, AddSA):
        verb = "update" if cmd.update else "add"
        return f"{verb} {cmd.protocol} 0x{cmd.spi:x}"
    if isinstance(cmd, GetSA | DeleteSA | GetSpi):
        verb = {GetSA: "get", DeleteSA: "delete", GetSpi: "getspi"}[type(cmd)]
        return f"{verb} {cmd.protocol} 0x{cmd.spi:x}"
    if isinstance(cmd, DeleteAll):
        return f"deleteall {cmd.protocol}"
    if isinstance(cmd, SpdAdd | SpdDelete):
        verb = "spddelete"
        if isinstance(cmd, SpdAdd):
            verb = "spdupdate" if cmd.update else "spdadd"
        return f"{verb} {cmd.src} {cmd.dst} -P {cmd.direction}"
    if isinstance(cmd, Flush):
        return "flush"
    return type(cmd).__name__.lower()


def _algorithm_hint(cmd: AddSA) -> str:
    """Which of the SA's algorithms (or key lengths) the engine does not take."""
    problems: list[str] = []
    if cmd.ealgo is not None:
        enc: EncAlgorithm | None = None
        if not any(cmd.ealgo.lower() in a.setkey_names for a in ENC_ALGORITHMS):
            problems.append(
                f"encryption algorithm {cmd.ealgo} is not implemented "
                f"(available: {_names(ENC_ALGORITHMS)})"
            )
        else:
            try:
                enc = enc_by_setkey(cmd.ealgo, 8 * len(cmd.ekey))
            except ConfigError:
                problems.append(
                    f"a {8 * len(cmd.ekey)}-bit key does not fit encryption algorithm {cmd.ealgo}"
                )
        if enc is not None and enc.is_aead and cmd.aalgo is not None:
            problems.append(f"{cmd.ealgo} authenticates by itself: drop -A")
        if enc is not None and not enc.is_aead and cmd.aalgo is None:
            # RFC 4303 §3.2 allows confidentiality only; the engine does not.
            problems.append(f"{cmd.ealgo} needs an authentication algorithm (-A)")
    if cmd.aalgo is not None:
        try:
            integ = integ_by_setkey(cmd.aalgo)
        except ConfigError:
            problems.append(
                f"authentication algorithm {cmd.aalgo} is not implemented "
                f"(available: {_names(INTEG_ALGORITHMS)})"
            )
        else:
            if len(cmd.akey) != integ.key_size:
                problems.append(
                    f"{cmd.aalgo} takes a {8 * integ.key_size}-bit key, "
                    f"not {8 * len(cmd.akey)} bits"
                )
    return "; ".join(problems)


def _sa_hint(cmd: AddSA, err: int) -> str:
    protocol = cmd.protocol.lower()
    if protocol not in _ESP:
        return _OTHER_SA.get(protocol, f"{cmd.protocol} SAs are not supported")
    if err == errno.EEXIST:
        return (
            f"an SA with SPI 0x{cmd.spi:x} to {cmd.dst} is already installed "
            "(use update, or delete it first)"
        )
    if err == errno.ESRCH and cmd.update:
        return f"no SA with SPI 0x{cmd.spi:x} to {cmd.dst} to update (use add)"
    if err in (errno.ENOSYS, errno.EINVAL):
        hint = _algorithm_hint(cmd)
        if hint:
            return hint
        if cmd.mode not in ("tunnel", "transport", "any"):
            return f"mode {cmd.mode} is not supported (tunnel or transport)"
    return ""


def _policy_hint(cmd: SpdAdd | SpdDelete, err: int) -> str:
    # Ports go with any upper-layer protocol, "any" included, as in Linux; only GRE and
    # MH have port fields the engine cannot match (the GRE key, the MH type).
    has_ports = bool(cmd.sport or cmd.dport)
    if err == errno.EINVAL:
        if cmd.upperspec == _GRE and (cmd.gre_key is not None or has_ports):
            return "a GRE key is not a selector pyipsec knows (drop the key)"
        if cmd.upperspec == _MH and (cmd.icmp_type or cmd.icmp_code or has_ports):
            return "a Mobility Header type is not a selector pyipsec knows (drop the type)"
        if isinstance(cmd, SpdAdd) and any(rq.protocol != "esp" for rq in cmd.requests):
            return "only esp requests are supported (no ah or ipcomp)"
    if err == errno.EEXIST:
        return (
            "a policy with this selector and direction exists already "
            "(use spdupdate, or spddelete it first)"
        )
    if err == errno.ENOENT:
        return "no policy with this selector and direction"
    return ""


def explain(cmd: Command, err: int) -> str:
    """``COMMAND: strerror[: likely cause]`` for a command the daemon refused."""
    text = f"{describe_command(cmd)}: {os.strerror(err)}"
    hint = ""
    if isinstance(cmd, AddSA):
        hint = _sa_hint(cmd, err)
    elif isinstance(cmd, SpdAdd | SpdDelete):
        hint = _policy_hint(cmd, err)
    elif isinstance(cmd, GetSA | DeleteSA) and err in (errno.ESRCH, errno.ENOENT):
        hint = f"no {cmd.protocol} SA with SPI 0x{cmd.spi:x} to {cmd.dst}"
        if cmd.protocol.lower() not in _ESP:
            hint += " (pyipsec holds ESP SAs only)"
    return f"{text}: {hint}" if hint else text
