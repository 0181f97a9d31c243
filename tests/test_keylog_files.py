"""io/keylog_files: ``pyipsec daemon --ike-keylog DIR`` (root-only files, Wireshark's tables),
filled by a real IKE negotiation between two services (the fake wire of test_ike_service)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pyipsec.cli import main as cli
from pyipsec.errors import ConfigError
from pyipsec.ike.v2.keylog import ESP_TABLE, IKE_TABLE
from pyipsec.io.keylog_files import KeyLogFiles
from test_ike_service import GW_A, psk_pair


def test_files_are_root_only_and_appended(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        files = KeyLogFiles(tmp_path / "keys")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    for table in (IKE_TABLE, ESP_TABLE):
        assert stat.S_IMODE(files.path(table).stat().st_mode) == 0o600
    files.keylog.sink(IKE_TABLE, "first")
    files.close()
    again = KeyLogFiles(tmp_path / "keys")
    again.keylog.sink(IKE_TABLE, "second")
    again.close()
    assert again.path(IKE_TABLE).read_text() == "first\nsecond\n"
    assert repr(again) == f"KeyLogFiles({tmp_path / 'keys'})"


def test_not_a_directory_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="--ike-keylog"):
        KeyLogFiles(tmp_path / "file")


def test_negotiated_keys_land_in_the_tables(tmp_path: Path) -> None:
    pair = psk_pair(proposals="aes256-sha256-modp2048")
    files = KeyLogFiles(tmp_path)
    pair.a.manager.ctx.keylog = files.keylog
    pair.a.initiate("gw")
    pair.run()
    files.close()
    (sa,) = pair.a.manager.ike_sas
    ike_lines = files.path(IKE_TABLE).read_text().splitlines()
    assert len(ike_lines) == 1
    fields = ike_lines[0].split(",")
    assert fields[:2] == [sa.spi_i.hex(), sa.spi_r.hex()]
    assert fields[4] == '"AES-CBC-256 [RFC3602]"'
    esp_lines = files.path(ESP_TABLE).read_text().splitlines()
    spis = {f"0x{e.spi:08x}" for e in pair.engines[GW_A].dump_sa()}
    assert {line.split(",")[3].strip('"') for line in esp_lines} == spis


def test_daemon_option_is_off_by_default(tmp_path: Path) -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["daemon"])
    assert args.ike_keylog is None
    args = parser.parse_args(["daemon", "--ike-keylog", str(tmp_path)])
    assert args.ike_keylog == tmp_path
