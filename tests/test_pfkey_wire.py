"""PF_KEY wire helpers (pyipsec.keyapi.pfkey_wire): alignment, lengths, errors."""

from __future__ import annotations

import errno

import pytest

from pyipsec.errors import ConfigError, KeyApiError
from pyipsec.keyapi.pfkey_wire import align8, check_type, einval, pad8, words


@pytest.mark.parametrize(("n", "aligned"), [(0, 0), (1, 8), (8, 8), (9, 16), (28, 32)])
def test_align_and_pad(n: int, aligned: int) -> None:
    assert align8(n) == aligned
    padded = pad8(b"\xff" * n)
    assert padded == b"\xff" * n + bytes(aligned - n)
    assert words(len(padded)) * 8 == aligned


def test_einval_and_check_type() -> None:
    exc = einval("why")
    assert isinstance(exc, KeyApiError) and exc.errno == errno.EINVAL
    assert str(exc) == "PF_KEY: why"
    check_type(1, frozenset({1, 2}), "thing")
    with pytest.raises(ConfigError, match="extension type 3 is not a thing extension"):
        check_type(3, frozenset({1, 2}), "thing")
