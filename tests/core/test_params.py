"""`dynosaur.core.params`: defaults, the repository's params.yaml, and one-line errors naming the key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel

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
    assert LLMParams(provider="openai", model="x").price() == Price(input_per_mtok=0, output_per_mtok=0)


def test_local_model_is_a_packaged_one_or_a_file():
    assert LLMParams(model="qwen2.5-coder-1.5b-instruct-q4_k_m").model == "qwen2.5-coder-1.5b-instruct-q4_k_m"
    assert LLMParams(model="mine", model_path="/models/mine.gguf").model == "mine"
    with pytest.raises(ValueError, match="no packaged model is named 'qwen-9000b'"):
        LLMParams(model="qwen-9000b")


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
        ({"generate": {"mode": "guess"}}, "generate.mode"),
        ({"generate": {"mappings_per_request": 0}}, "generate.mappings_per_request"),
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


# --- numbers are bounded; the file is UTF-8 with unique keys (issue 11) ----------------------------------


def _numeric_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any]]:
    """Every int or float field of a params model and the models inside it, with its pydantic FieldInfo."""
    found = []
    for name, field in model.model_fields.items():
        for kind in (field.annotation, *get_args(field.annotation)):
            for inner in (kind, *get_args(kind)):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    found += _numeric_fields(inner, f"{prefix}{name}.")
        if {int, float} & {field.annotation, *get_args(field.annotation)}:
            found.append((f"{prefix}{name}", field))
    return found


def test_every_number_has_a_lower_and_an_upper_bound():
    unbounded = []
    for path, field in _numeric_fields(Params):
        kinds = {type(m).__name__ for m in field.metadata}
        if not ({"Ge", "Gt"} & kinds and {"Le", "Lt"} & kinds):
            unbounded.append(path)
    assert len(_numeric_fields(Params)) > 50 and unbounded == []


@pytest.mark.parametrize(
    "data, key_path",
    [
        ({"organize": {"batch_rows": 10**20}}, "organize.batch_rows"),
        ({"llm": {"timeout_s": 1e300}}, "llm.timeout_s"),
        ({"llm": {"timeout_s": "1e300"}}, "llm.timeout_s"),  # YAML 1.1 reads `1e300` as a string
        ({"llm": {"budget_usd": float("inf")}}, "llm.budget_usd"),
        ({"llm": {"temperature": float("nan")}}, "llm.temperature"),
        ({"llm": {"seed": 10**30}}, "llm.seed"),
        ({"organize": {"seed": -1}}, "organize.seed"),
        ({"train": {"seed": 2**40}}, "train.seed"),
        ({"train": {"epochs": 1e300}}, "train.epochs"),
        ({"llm": {"max_calls": 10**20}}, "llm.max_calls"),
        ({"llm": {"prices": {"m": {"input_per_mtok": float("inf"), "output_per_mtok": 1}}}}, "llm.prices.m"),
        ({"collect": {"stats_rows": 10**20}}, "collect.stats_rows"),
    ],
)
def test_numbers_that_would_overflow_later_fail_here(data, key_path):
    assert f": {key_path}" in str(params_error(data))


def _load(tmp_path: Path, content: str | bytes) -> Params:
    path = tmp_path / "params.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return load_params(path)


def _load_error(tmp_path: Path, content: str | bytes) -> str:
    with pytest.raises(ParamsError) as info:
        _load(tmp_path, content)
    assert info.value.exit_code == 2 and "\n" not in str(info.value)
    return str(info.value)


def test_not_utf8_is_one_line(tmp_path):
    assert "not UTF-8 text (byte 0xe9 at offset 17)" in _load_error(tmp_path, b"llm:\n  model: caf\xe9\n")


def test_a_byte_order_mark_is_fine(tmp_path):
    assert _load(tmp_path, "\ufeffllm: {seed: 3}\n").llm.seed == 3


def test_a_folder_is_one_line(tmp_path):
    (tmp_path / "params.yaml").mkdir()
    with pytest.raises(ParamsError, match="cannot be read"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize(
    "content, key",
    [
        ("llm:\n  seed: 1\nfilter: {}\nllm:\n  seed: 2\n", "'llm' on line 4 (first on line 1)"),
        ("organize: {seed: 1, seed: 2}\n", "'seed' on line 1"),
        ("sources:\n  - id: a\n    path: p\n    path: q\n", "'path' on line 4"),
    ],
    ids=["section", "flow-mapping", "in-a-list"],
)
def test_a_key_given_twice_is_an_error(tmp_path, content, key):
    assert f"duplicate key {key}" in _load_error(tmp_path, content)


def test_merge_keys_may_override(tmp_path):
    params = _load(tmp_path, "llm: &base {seed: 1, concurrency: 3}\nfilter: {}\n")
    assert params.llm.seed == 1
    from dynosaur.core.params import read_params_file

    (tmp_path / "m.yaml").write_text("a: &x {b: 1}\nc:\n  <<: *x\n  b: 2\n")
    assert read_params_file(tmp_path / "m.yaml") == {"a": {"b": 1}, "c": {"b": 2}}


def test_nested_too_deep_is_one_line(tmp_path):
    assert "params.yaml: " in _load_error(tmp_path, "llm: " + "[" * 50_000)


@pytest.mark.parametrize("value", ["sk-abc123SECRET", "Bearer x", "A=B", "1ABC"])
def test_api_key_env_must_name_a_variable_and_never_echoes_it(value):
    error = str(params_error({"llm": {"api_key_env": value}}))
    assert ": llm.api_key_env: " in error and value not in error


@pytest.mark.parametrize(
    "llm, variable",
    [
        ({"provider": "openai"}, "OPENAI_API_KEY"),
        ({"provider": "openai", "api_key_env": "MY_KEY"}, "MY_KEY"),
        ({"provider": "compatible", "base_url": "http://localhost:8000/v1"}, None),
        (
            {"provider": "compatible", "base_url": "http://x/v1", "api_key_env": "OPENAI_API_KEY"},
            "OPENAI_API_KEY",
        ),
        ({"provider": "local", "api_key_env": "MY_KEY"}, None),
    ],
)
def test_which_variable_holds_the_key(llm, variable):
    assert LLMParams(**llm).key_variable() == variable
