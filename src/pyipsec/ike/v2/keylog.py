"""An optional key log for debugging, in Wireshark's decryption-table formats.

Off by default: nothing is recorded unless a ``KeyLog`` is set as ``Context.keylog``,
and it never goes through ``logging`` (keys stay out of every log at every level).

Two tables, one record per line, as Wireshark keeps them in its profile directory (the
files ``ikev2_decryption_table`` and ``esp_sa``) and as ``tshark -o uat:TABLE:RECORD``
takes them (fields checked against tshark 4.0's ISAKMP and ESP dissectors):

- ``ikev2_decryption_table``: SPIi, SPIr (16 hex digits each), SK_ei, SK_er (hex, AEAD
  salt included), "encryption algorithm", SK_ai, SK_ar (hex, empty for AEAD),
  "integrity algorithm".
- ``esp_sa``: "IPv4"|"IPv6", "source", "destination", "0xSPI", "encryption algorithm",
  "0xkey" (salt included), "authentication algorithm", "0xkey" or "".

Algorithms Wireshark cannot decrypt (ChaCha20-Poly1305 in 4.0) produce no record. The
module writes no file itself (ARCHITECTURE rule 1): records go to ``sink(table,
record)``, which io/ binds to files, and are kept in ``records`` too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pyipsec.ike.v2.constants import EncrId, IntegId, TransformType

if TYPE_CHECKING:
    from pyipsec.engine.sad import SASpec
    from pyipsec.ike.v2.ike_sa import IkeSa

IKE_TABLE = "ikev2_decryption_table"
ESP_TABLE = "esp_sa"

_IKE_INTEG: dict[int, str] = {
    IntegId.NONE: "NONE [RFC4306]",
    IntegId.HMAC_SHA1_96: "HMAC_SHA1_96 [RFC2404]",
    IntegId.HMAC_SHA2_256_128: "HMAC_SHA2_256_128 [RFC4868]",
    IntegId.HMAC_SHA2_384_192: "HMAC_SHA2_384_192 [RFC4868]",
    IntegId.HMAC_SHA2_512_256: "HMAC_SHA2_512_256 [RFC4868]",
}
_ESP_INTEG = {
    None: "NULL",
    "sha1": "HMAC-SHA-1-96 [RFC2404]",
    "sha256": "HMAC-SHA-256-128 [RFC4868]",
    "sha384": "HMAC-SHA-384-192 [RFC4868]",
    "sha512": "HMAC-SHA-512-256 [RFC4868]",
}

Sink = Callable[[str, str], None]


def _ike_encr(encr_id: int, bits: int | None) -> str | None:
    if encr_id == EncrId.AES_CBC and bits in (128, 192, 256):
        return f"AES-CBC-{bits} [RFC3602]"
    if encr_id == EncrId.AES_GCM_16 and bits in (128, 192, 256):
        return f"AES-GCM-{bits} with 16 octet ICV [RFC5282]"
    return None


def _esp_encr(name: str) -> str | None:
    if name in ("aes128", "aes192", "aes256"):
        return "AES-CBC [RFC3602]"
    if name in ("aes128gcm16", "aes192gcm16", "aes256gcm16"):
        return "AES-GCM with 16 octet ICV [RFC4106]"
    if name == "null":
        return "NULL"
    return None


def _quoted(fields: list[str]) -> str:
    return ",".join(f'"{f}"' for f in fields)


def ike_record(sa: IkeSa) -> str | None:
    """The ``ikev2_decryption_table`` record of an IKE SA with keys, or None."""
    keys, proposal = sa.keys, sa.proposal
    if keys is None or proposal is None:
        return None
    encr = proposal.of_type(TransformType.ENCR)[0]
    integs = proposal.of_type(TransformType.INTEG)
    encr_name = _ike_encr(encr.id, encr.key_length)
    integ_name = _IKE_INTEG.get(integs[0].id if integs else IntegId.NONE)
    if encr_name is None or integ_name is None:
        return None
    hexes = [sa.spi_i.hex(), sa.spi_r.hex(), keys.sk_ei.hex(), keys.sk_er.hex()]
    return ",".join(
        [*hexes, f'"{encr_name}"', keys.sk_ai.hex(), keys.sk_ar.hex(), f'"{integ_name}"']
    )


def esp_record(spec: SASpec) -> str | None:
    """The ``esp_sa`` record of one ESP SA, or None for algorithms Wireshark lacks."""
    encr_name = _esp_encr(spec.enc)
    integ_name = _ESP_INTEG.get(spec.integ)
    if encr_name is None or integ_name is None:
        return None
    return _quoted(
        [
            "IPv4" if spec.src.version == 4 else "IPv6",
            str(spec.src),
            str(spec.dst),
            f"0x{spec.spi:08x}",
            encr_name,
            "0x" + spec.enc_key.hex(),
            integ_name,
            "0x" + spec.integ_key.hex() if spec.integ_key else "",
        ]
    )


class KeyLog:
    """Collects decryption-table records; hand one to ``Context.keylog`` to turn it on."""

    def __init__(self, sink: Sink | None = None) -> None:
        self.sink = sink
        self.records: list[tuple[str, str]] = []

    def __repr__(self) -> str:
        return f"KeyLog({len(self.records)} records)"  # never the keys

    def _add(self, table: str, record: str | None) -> None:
        if record is None:
            return
        self.records.append((table, record))
        if self.sink is not None:
            self.sink(table, record)

    def ike_sa(self, sa: IkeSa) -> None:
        self._add(IKE_TABLE, ike_record(sa))

    def esp_sa(self, spec: SASpec) -> None:
        self._add(ESP_TABLE, esp_record(spec))

    def tshark_options(self) -> list[str]:
        """``-o`` options that give tshark every record (ESP decryption switched on)."""
        opts = ["-o", "esp.enable_encryption_decode:TRUE"]
        for table, record in self.records:
            opts += ["-o", f"uat:{table}:{record}"]
        return opts
