"""Fixtures of the unit tests: a service over scripted kernels (fakekernel.py)."""

from .fakekernel import fake_service  # noqa: F401  (a fixture, found by name)
