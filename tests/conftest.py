"""Shared test configuration: root-only tests are skipped, with the reason, when not root."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# CI runs the property tests derandomized (the same examples every run) and without the
# per-example deadline a loaded 2-core machine trips: a red CI must mean a real failure.
# Local runs keep exploring new examples.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: network namespaces, TUN and raw sockets")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
