"""`dynosaur.core.params`: defaults, the repository's params.yaml, and one-line errors naming the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynosaur.core.errors import ParamsError
from dynosaur.core.params import LLMParams, OrganizeParams, Params, Price, load_params, parse_params

REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def params_error(data) -> ParamsError:
    with pytest.raises(ParamsError) as info:
        parse_params(data)
    error = info.value
    assert error.exit_code == 2
    assert "\n" not in str(error)
    return error


# --- valid -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [{}, None])
def test_defaults_from_an_empty_mapping(data):
    params = parse_params(data)
    assert params == Params()
    assert params.sources == []
    assert params.llm.provider == "local"
    assert params.generate.variants == ["with_description", "without_description"]
    assert params.organize.splits == ["train", "validation"]
    assert params.filter.min_instruction_words == 4


def test_empty_file_gives_defaults(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("# nothing yet\n")
    assert load_params(path) == Params()


def test_repository_params_load():
    params = load_params(REPO_PARAMS)
    assert params.sources, "params.yaml lists the demo sources"
    assert len({s.id for s in params.sources}) == len(params.sources)
    assert all(s.path is not None and s.hub is None for s in params.sources)
    assert params.llm.prices["gpt-4o-mini"] == Price(input_per_mtok=0.15, output_per_mtok=0.60)


def test_dyno_params_env_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / "other.yaml"
    path.write_text("llm:\n  concurrency: 7\n")
    monkeypatch.setenv("DYNO_PARAMS", str(path))
    assert load_params().llm.concurrency == 7


def test_sources_local_and_hub():
    params = parse_params(
        {
            "sources": [
                {"id": "local-1", "path": "data/sources/x"},
                {"id": "glue.sst2", "hub": "nyu-mll/glue", "config": "sst2", "revision": "main"},
            ]
        }
    )
    assert [s.id for s in params.sources] == ["local-1", "glue.sst2"]
    assert params.sources[1].revision == "main"


def test_compatible_provider_with_base_url():
    params = parse_params({"llm": {"provider": "compatible", "base_url": "http://127.0.0.1:8000/v1"}})
    assert params.llm.base_url == "http://127.0.0.1:8000/v1"


def test_price_of_an_unlisted_model_is_zero():
    assert LLMParams(model="x").price() == Price(input_per_mtok=0, output_per_mtok=0)


def test_params_are_frozen():
    with pytest.raises(ValueError):
        OrganizeParams().seed = 3  # type: ignore[misc]


# --- invalid -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, key_path",
    [
        ({"bogus": 1}, "bogus"),
        ({"llm": {"concurency": 2}}, "llm.concurency"),
        ({"llm": {"local": {"n_ctxx": 2}}}, "llm.local.n_ctxx"),
        ({"sources": [{"id": "a", "path": "p", "extra": 1}]}, "sources['a'].extra"),
    ],
)
def test_unknown_key(data, key_path):
    assert f": {key_path}: unknown key" in str(params_error(data))


@pytest.mark.parametrize(
    "data, key_path",
    [
        ({"llm": {"concurrency": "many"}}, "llm.concurrency"),
        ({"llm": {"temperature": 3}}, "llm.temperature"),
        ({"collect": {"sample_rows": 0}}, "collect.sample_rows"),
        ({"sources": "data/sources"}, "sources"),
        ({"generate": {"variants": ["nope"]}}, "generate.variants[0]"),
        (
            {"llm": {"prices": {"m": {"input_per_mtok": -1, "output_per_mtok": 1}}}},
            "llm.prices.m.input_per_mtok",
        ),
        ({"sources": [{"path": "p"}]}, "sources[0].id"),
    ],
)
def test_wrong_type_or_value(data, key_path):
    assert f": {key_path}: " in str(params_error(data))


def test_not_a_mapping():
    assert "expected a mapping" in str(params_error([1, 2]))


def test_duplicate_source_id():
    error = params_error({"sources": [{"id": "a", "path": "p"}, {"id": "a", "path": "q"}]})
    assert ": sources: " in str(error)
    assert "'a'" in str(error)


@pytest.mark.parametrize(
    "source_id", ["../x", "a/b", ".hidden", "UPPER", "", "..", "a..b", "with space", "-x"]
)
def test_unsafe_source_ids(source_id):
    error = params_error({"sources": [{"id": source_id, "path": "p"}]})
    named = f"sources[{source_id!r}].id: " if source_id else "sources[0].id: "  # an empty id cannot name it
    assert named in str(error)


@pytest.mark.parametrize(
    "source",
    [
        {"id": "a", "path": "p", "hub": "owner/name"},  # both
        {"id": "a"},  # neither
        {"id": "a", "path": "p", "revision": "main"},  # revision on a local source
    ],
)
def test_origin_rules(source):
    assert ": sources['a']: " in str(params_error({"sources": [source]}))


@pytest.mark.parametrize("hub", ["justname", "not a repo", "owner/name/extra", "/name", "owner/"])
def test_bad_hub_id(hub):
    assert ": sources['a'].hub: " in str(params_error({"sources": [{"id": "a", "hub": hub}]}))


def test_compatible_provider_needs_base_url():
    assert ": llm: " in str(params_error({"llm": {"provider": "compatible"}}))


def test_base_url_only_for_compatible():
    assert ": llm: " in str(params_error({"llm": {"provider": "openai", "base_url": "http://x"}}))


@pytest.mark.parametrize("splits", [["test"], ["train", "test"]])
def test_organize_splits_exclude_test(splits):
    assert ": organize.splits: " in str(params_error({"organize": {"splits": splits}}))


def test_error_names_the_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("llm:\n  concurency: 2\n")
    with pytest.raises(ParamsError) as info:
        load_params(path)
    assert str(info.value).startswith(f"{path}: llm.concurency: ")


def test_invalid_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("llm: [unclosed\n  model: x\n")
    with pytest.raises(ParamsError) as info:
        load_params(path)
    assert info.value.exit_code == 2
    assert str(info.value).startswith(f"{path}: ")
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(ParamsError) as info:
        load_params(tmp_path / "nope.yaml")
    assert info.value.exit_code == 2
    assert str(tmp_path / "nope.yaml") in str(info.value)
