"""No message lists thousands of ids on one line: `some()` caps every such list."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from dynosaur.core.errors import ParamsError, some


def test_some_caps_a_long_list():
    assert some([]) == "none"
    assert some(["a", "b", "c"]) == "a, b, c"
    assert some(f"s{i}" for i in range(500)) == "s0, s1, s2 and 497 more"
    assert some(range(10), shown=5) == "0, 1, 2, 3, 4 and 5 more"


def test_train_error_names_three_of_500_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The train stage's unknown-holdout error listed every source of the corpus (500 ids on one line)."""
    pytest.importorskip("transformers")
    from dynosaur.training import train

    corpus = tmp_path / "corpus"
    for i in range(500):
        (corpus / f"source-{i:03d}").mkdir(parents=True)
        (corpus / f"source-{i:03d}" / "t.parquet").touch()
    (tmp_path / "params.yaml").write_text(json.dumps({"evaluate": {"holdout_sources": ["nope"]}}))
    monkeypatch.setenv("DYNO_PARAMS", str(tmp_path / "params.yaml"))
    args = argparse.Namespace(
        corpus=corpus,
        model=tmp_path / "model",
        evalset=tmp_path / "evalset.json",
        metrics=tmp_path / "m.json",
        run_log=tmp_path / "run.json",
        losses=tmp_path / "losses.csv",
        plot=tmp_path / "loss.svg",
    )
    with pytest.raises(ParamsError) as err:
        train.main(args)
    message = str(err.value)
    assert "source-000, source-001, source-002 and 497 more" in message
    assert len(message) < 200 and "source-499" not in message
