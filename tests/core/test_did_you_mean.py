"""A misspelt key in params.yaml or the sources file gets a "did you mean" (issue 22)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynosaur.core.errors import ParamsError
from dynosaur.core.params import parse_params
from dynosaur.core.source_list import read_sources_file


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"trian": {}}, "params.yaml: trian: unknown key (did you mean 'train'?)"),
        (
            {"llm": {"temprature": 0}},
            "params.yaml: llm.temprature: unknown key (did you mean 'temperature'?)",
        ),
        (
            {"train": {"lora": {"alhpa": 4}}},
            "params.yaml: train.lora.alhpa: unknown key (did you mean 'alpha'?)",
        ),
        (
            {"sources": [{"id": "a", "pth": "data/sources/a"}]},
            "params.yaml: sources['a'].pth: unknown key (did you mean 'path'?)",
        ),
        (
            {"llm": {"prices": {"m": {"input_per_mtok": 1, "output_per_mtk": 2}}}},
            "params.yaml: llm.prices.m.output_per_mtk: unknown key (did you mean 'output_per_mtok'?)"
            " (and 1 more)",
        ),
    ],
)
def test_a_misspelt_params_key_gets_a_suggestion(data, expected):
    with pytest.raises(ParamsError) as exc:
        parse_params(data)
    assert str(exc.value) == expected


def test_a_key_like_nothing_gets_no_suggestion():
    with pytest.raises(ParamsError) as exc:
        parse_params({"collect": {"zzzzqqq": 1}})
    assert str(exc.value) == "params.yaml: collect.zzzzqqq: unknown key"


def test_a_misspelt_sources_file_key_gets_a_suggestion(tmp_path: Path):
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n  - id: a\n    hub: o/a\n    revison: main\n")
    with pytest.raises(ParamsError) as exc:
        read_sources_file(path)
    assert str(exc.value) == f"{path}: sources['a'].revison: unknown key (did you mean 'revision'?)"
    path.write_text("source:\n  - id: a\n")
    with pytest.raises(ParamsError, match=r"source: unknown key \(did you mean 'sources'\?\)"):
        read_sources_file(path)
