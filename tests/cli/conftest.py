"""The small workspace of test_cli.py (`ws`), for the other CLI test modules too."""

from tests.cli.test_cli import ws  # noqa: F401
