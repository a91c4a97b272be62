"""Fixtures for the registry's tests: `built` and `base`, a git + DVC repository with two releases."""

from tests.registry.dvc_repo import base, built  # noqa: F401
