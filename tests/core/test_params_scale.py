"""The params that growing from the Hub adds: collect's concurrency and timeout, and `discover`'s query."""

from __future__ import annotations

import pytest

from dynosaur.core.errors import ParamsError
from dynosaur.core.fingerprint import output_params
from dynosaur.core.params import load_yaml, parse_params


def test_defaults():
    p = parse_params({})
    assert (p.collect.concurrency, p.collect.timeout_s) == (8, 20.0)
    assert p.discover.revision == "main" and p.discover.task_categories == []


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"collect": {"concurrency": 0}}, "collect.concurrency"),
        ({"collect": {"timeout_s": 0}}, "collect.timeout_s"),
        ({"discover": {"task_categories": ["text classification"]}}, "discover.task_categories"),
        ({"discover": {"languages": ["en/fr"]}}, "discover.languages"),
        ({"discover": {"min_downloads": -1}}, "discover.min_downloads"),
        ({"discover": {"limit": 0}}, "discover.limit"),
        ({"discover": {"colour": "red"}}, "discover.colour: unknown key"),
    ],
)
def test_bad_values_name_their_key(data: dict, where: str):
    with pytest.raises(ParamsError, match=where.replace(".", r"\.")) as err:
        parse_params(data)
    assert err.value.exit_code == 2


def test_how_collect_runs_is_not_what_it_writes():
    """Tuning concurrency or the timeout reuses every record: neither enters collect's fingerprint."""
    fast = parse_params({"collect": {"concurrency": 64, "timeout_s": 5}}).collect
    assert output_params(fast) == output_params(parse_params({}).collect)


def test_load_yaml_reads_what_safe_load_reads():
    text = "sources:\n  - id: a\n    path: data/sources/a\nflag: yes\nn: 1.5\n"
    import yaml

    assert load_yaml(text) == yaml.safe_load(text)
