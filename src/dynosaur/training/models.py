"""The models training starts from, and how a trained one is written.

    scratch    `scratch:<preset>`: a small GPT-2 initialised from the seed, with a byte-level BPE tokenizer
               trained on the training texts by `tokenizers` (nothing downloaded)
    gguf       `gguf:local` or a `.gguf` path: converted once into a cached transformers directory
               (`dynosaur.training.gguf_base`), then loaded like any local directory
    local      a model directory, or a Hub id already in the local cache, loaded with `local_files_only=True`:
               nothing is ever downloaded
    save       model, tokenizer and `train_config.json` go to a temporary directory next to the output, which is
               renamed into place only when complete: a failed run leaves the previous model, or none

`load_base` rebuilds the model a trained directory started from (for evaluate's comparison) from its
`train_config.json`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from dynosaur.core.errors import ModelError, ParamsError, first_line
from dynosaur.core.io import read_json, replace_dir, write_json
from dynosaur.core.params import HUB_REPO, SCRATCH_MODELS, SCRATCH_PREFIX, TrainParams
from dynosaur.training.gguf_base import converted_dir, is_gguf

EOS, PAD = "<|endoftext|>", "<pad>"
TRAIN_CONFIG = "train_config.json"


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer trained on `texts` (offline), as a `PreTrainedTokenizerFast`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=PAD)


def scratch_model(preset: str, tokenizer: Any, n_positions: int, seed: int) -> Any:
    """A GPT-2 of the preset's size, initialised from `seed` (the same seed gives the same weights)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    # No dropout: a small model on a few thousand examples for about an epoch underfits rather than
    # overfits, and dropout costs a fifth of a CPU step.
    shape: dict[str, Any] = SCRATCH_MODELS[preset]  # Any: GPT2Config's stubs type each keyword differently
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        **shape,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config)


def load_pretrained(name: str | Path, what: str = "base model") -> tuple[Any, Any]:
    """(model, tokenizer) from a local directory, a GGUF base (`gguf:local`, a `.gguf` path: converted once),
    or a Hub id already in the local cache; never downloads.

    Args:
        what: names the model in errors ("base model 'x' cannot be loaded offline: ...").
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if isinstance(name, str) and is_gguf(name):
        name = converted_dir(name)
    path = Path(name)
    fail = f"{what} {str(name)!r} cannot be loaded offline"
    if not path.exists() and not HUB_REPO.match(str(name)):
        raise ModelError(f"{fail}: no such directory")
    if path.exists() and not (path / "config.json").is_file():
        raise ModelError(f"{fail}: {path} has no config.json (not a transformers model directory)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(name), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(name), local_files_only=True)
    except (OSError, ValueError, KeyError, ImportError) as exc:
        if path.exists():
            raise ModelError(f"{fail}: {first_line(exc)}") from None
        raise ModelError(
            f"{fail}: not in the local Hugging Face cache, and the stage never downloads;"
            f" run `hf download {name}` once, or give a local model directory"
        ) from None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelError(f"{what} {str(name)!r}: its tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def initial_model(
    params: TrainParams, texts: Callable[[], Iterator[str]] | None, init_from: Path | None = None
) -> tuple[Any, Any]:
    """The model training starts from: `init_from`, a scratch model (its tokenizer trained on `texts()`), or
    the pretrained `base_model`."""
    if init_from is not None:
        return load_pretrained(init_from, "model to continue from")
    if not params.scratch:
        return load_pretrained(params.base_model)
    if texts is None:
        raise ValueError("a scratch model needs training texts for its tokenizer")
    tokenizer = train_tokenizer(list(texts()), params.vocab_size)
    return scratch_model(
        params.base_model.removeprefix(SCRATCH_PREFIX), tokenizer, params.max_length, params.seed
    ), tokenizer


def load_base(model_dir: Path) -> tuple[Any, Any]:
    """The model that `model_dir` was trained from, for comparison: the `init_from` model, the pretrained
    base, or for a scratch model its seeded initialisation (rebuilt, with the trained tokenizer)."""
    from transformers import AutoTokenizer

    try:
        config = read_json(model_dir / TRAIN_CONFIG)
        params = TrainParams.model_validate(config["params"])
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{model_dir}: not a model of the train stage ({first_line(exc)})") from None
    if config.get("init_from"):
        return load_pretrained(Path(config["init_from"]), "model it continued from")
    if not params.scratch:
        return load_pretrained(params.base_model)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    preset = params.base_model.removeprefix(SCRATCH_PREFIX)
    return scratch_model(preset, tokenizer, config["max_length"], config["seed"]), tokenizer


def context_length(model: Any) -> int | None:
    """Positions the model can attend over (None when its config does not say)."""
    for name in ("n_positions", "max_position_embeddings"):
        if value := getattr(model.config, name, None):
            return int(value)
    return None


def apply_lora(model: Any, params: TrainParams) -> Any:
    """`model` wrapped in peft LoRA adapters (only they train); a bad `train.lora` is a `ParamsError`."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=params.lora.r,
        lora_alpha=params.lora.alpha,
        lora_dropout=params.lora.dropout,
        target_modules=params.lora.target_modules,
        task_type="CAUSAL_LM",
        fan_in_fan_out=model.config.model_type == "gpt2",  # GPT-2's Conv1D stores weights transposed
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise ParamsError(f"train.lora: {first_line(exc)}") from None


def save_model(model: Any, tokenizer: Any, config: dict[str, Any], out_dir: Path) -> None:
    """Write to a temporary sibling of `out_dir`, then swap it into place: all or nothing."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / TRAIN_CONFIG, config)
        replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
