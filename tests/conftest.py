"""Shared test configuration: root-only tests are skipped, with the reason, when not root."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: network namespaces, TUN and raw sockets")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
