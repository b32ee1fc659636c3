"""Fixtures for integration tests: one real server per module, shut down (kernels and all)
when the module ends."""

from __future__ import annotations

from .harness import module_server

server = module_server(interrupt_grace=2.0)
