"""The daemon's optional IKE/ESP key log (``pyipsec daemon --ike-keylog DIR``).

For debugging only, off unless asked for: ``ike.v2.keylog.KeyLog`` records go to two
files in ``DIR``, named as Wireshark names the tables in a profile directory
(``ikev2_decryption_table`` and ``esp_sa``), one record per line, so the directory can
serve as a Wireshark profile or the lines can be given to tshark as ``-o uat:TABLE:LINE``.

The files hold keys: the directory is created 0700, the files 0600 (root only, whatever
the umask), and appended to, never truncated. Nothing goes through ``logging``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from pyipsec.errors import ConfigError
from pyipsec.ike.v2.keylog import ESP_TABLE, IKE_TABLE, KeyLog


class KeyLogFiles:
    """A ``KeyLog`` whose records are appended to ``directory``'s two table files."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not self.directory.is_dir():
                raise ConfigError(f"--ike-keylog {self.directory}: not a directory")
            os.chmod(self.directory, 0o700)
            self._fds = {table: self._open(table) for table in (IKE_TABLE, ESP_TABLE)}
        except OSError as exc:
            raise ConfigError(f"--ike-keylog {self.directory}: {exc.strerror or exc}") from None
        self.keylog = KeyLog(self._write)
        self.write_errors = 0

    def __repr__(self) -> str:
        return f"KeyLogFiles({self.directory})"

    def _open(self, table: str) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(self.directory / table, flags, 0o600)
        os.fchmod(fd, 0o600)  # an existing file, or a permissive umask: root only anyway
        return fd

    def path(self, table: str) -> Path:
        return self.directory / table

    def _write(self, table: str, record: str) -> None:
        fd = self._fds.get(table)
        if fd is None:
            return
        try:
            os.write(fd, (record + "\n").encode())  # one write: lines never interleave
        except OSError:
            self.write_errors += 1  # a full disk must not stop IKE

    def close(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = {}
