"""Base models from GGUF files: `train.base_model: gguf:local` (the packaged Qwen2.5-Coder-0.5B-Instruct) or
a path to a `.gguf` file, so a machine without Hub access still fine-tunes a real pretrained model.

transformers reads a GGUF file through the `gguf` package and, asked to (`GgufConfig(dequantize=True)`), unpacks
its quantized blocks into a plain model of the file's architecture, with the tokenizer the file describes. That
takes about a minute and a half for the 0.5B model on 2 CPU cores, so it happens once: the model (bf16
safetensors, 1.3 GB) and its tokenizer go to `<models dir>/hf/<file stem>-<sha256[:12]>/` (`DYNO_MODELS_DIR`,
default `~/.cache/dynosaur/models`), written into a temporary sibling and renamed into place, and every later
run loads that directory. A digest in the name means a changed file is converted anew, never confused with
the old one. The packaged file's digest is known and verified at assembly; another file is hashed when named.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from dynosaur.core.errors import ModelError, first_line
from dynosaur.core.io import file_sha256, write_json
from dynosaur.core.packaged_model import DEFAULT_MODEL_SHA256, default_model_path, models_dir
from dynosaur.core.params import GGUF_MODELS
from dynosaur.core.runner import log

GGUF_PREFIX = "gguf:"
LOCAL = GGUF_MODELS[0]  # gguf:local, the packaged default model
SOURCE = "gguf_source.json"  # in a converted directory: which file it came from


def is_gguf(base_model: str) -> bool:
    return base_model.startswith(GGUF_PREFIX) or base_model.lower().endswith(".gguf")


def gguf_file(base_model: str) -> tuple[Path, str]:
    """(the GGUF file, its SHA-256) that `base_model` names; the packaged one is assembled on first use."""
    if base_model == LOCAL:
        return default_model_path(), DEFAULT_MODEL_SHA256
    path = Path(base_model).expanduser()
    if not path.is_file():
        raise ModelError(f"base model {base_model!r} cannot be loaded offline: no such file")
    return path, file_sha256(path)


def converted_dir(base_model: str) -> Path:
    """The transformers model directory converted from `base_model`'s GGUF file, converting it if needed."""
    path, sha256 = gguf_file(base_model)
    target = models_dir() / "hf" / f"{path.stem}-{sha256[:12]}"
    if not (target / "config.json").is_file():
        convert(path, sha256, target, base_model)
    return target


def convert(gguf: Path, sha256: str, target: Path, name: str | None = None) -> None:
    """Dequantize `gguf` into a transformers model directory at `target`: all of it or nothing.

    Two processes converting at once (one per GPU under `accelerate launch`) each write their own temporary
    directory; the first rename wins and the other's copy is dropped.
    """
    what = f"base model {name or str(gguf)!r}"
    try:
        import gguf as _gguf  # noqa: F401  (transformers needs it to read the file)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
    except ImportError as exc:
        raise ModelError(
            f"{what}: reading GGUF needs {exc.name}; run: pip install 'dynosaur[train]'"
        ) from None

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    log(f"train: converting {gguf.name} into a transformers model, once (cached in {target})")
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf.parent),
                gguf_file=gguf.name,
                dtype=torch.bfloat16,
                quantization_config=GgufConfig(gguf_file=gguf.name, dequantize=True),
            )
        except (OSError, ValueError, KeyError, RuntimeError, NotImplementedError) as exc:
            raise ModelError(
                f"{what}: {gguf.name} cannot be converted ({first_line(exc, typed=True)})"
            ) from None
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / SOURCE, {"gguf": gguf.name, "sha256": sha256})
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
