"""Fixtures for integration tests: one real server per module, shut down (kernels and all)
when the module ends."""

from __future__ import annotations

import pytest

from .harness import ThreadedServer


@pytest.fixture(scope="module")
def server():
    srv = ThreadedServer(interrupt_grace=2.0).start()
    yield srv
    srv.stop()
