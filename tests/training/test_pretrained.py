"""Pretrained base models: LoRA through TRL on a tiny random-initialised Qwen2 directory made here (the
architecture of the packaged GGUF), bad bases, and converting the packaged GGUF (slow)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dynosaur.core.errors import ModelError, ParamsError
from dynosaur.core.params import EvaluateParams, TrainParams, parse_params

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("trl")

from dynosaur.training import gguf_base, models, sft  # noqa: E402
from dynosaur.training.evaluate import evaluate_model  # noqa: E402
from dynosaur.training.examples import Example, format_prompt, split_holdout  # noqa: E402

# peft calls a transformers method that transformers deprecates
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")

LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
WORDS = ["red", "green", "blue", "gold", "black", "white", "pink", "grey"]


def examples() -> list[Example]:
    colours = [
        Example(
            task_id="aa01",
            source_id="colours",
            instruction="Is the colour warm or cold?",
            input=f"{w} {i}",
            output="warm" if w in ("red", "gold", "pink") else "cold",
        )
        for i in range(4)
        for w in WORDS
    ]
    numbers = [
        Example(task_id="bb01", source_id="numbers", instruction="Add one.", input=str(i), output=str(i + 1))
        for i in range(24)
    ]
    return colours + numbers


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2 (2 layers, 64 wide) with random weights and a BPE tokenizer, saved as a model directory."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    texts = [format_prompt(ex) + ex.output for ex in examples()] * 3
    tok = models.train_tokenizer(texts, 400)
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("qwen") / "tiny-qwen2"
    Qwen2ForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def lora_params(base: Path, **overrides) -> TrainParams:
    values = {
        "base_model": str(base),
        "max_length": 128,
        "max_steps": 20,
        "lr": 2e-2,
        "warmup_steps": 2,
        "batch_size": 8,
        "max_per_task": None,
        "lora": {"enabled": True, "r": 8, "alpha": 16, "dropout": 0.0, "target_modules": LINEAR},
    }
    return TrainParams(**{**values, **overrides})


def test_lora_on_a_pretrained_qwen2_trains_saves_and_evaluates(qwen_dir: Path, tmp_path: Path):
    train, heldout = split_holdout(examples(), 0.2, seed=0)
    result = sft.train_model(train, lora_params(qwen_dir), tmp_path / "model")
    losses = [p.loss for p in result.losses]
    assert result.steps == 20 and len(losses) == 20
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.3

    # Written all at once, the adapters merged into plain Qwen2 weights, the base untouched.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    trained, tok = models.load_pretrained(tmp_path / "model")
    assert type(trained).__name__ == "Qwen2ForCausalLM" and not any("lora" in k for k in trained.state_dict())
    base, _ = models.load_base(tmp_path / "model")
    pristine, _ = models.load_pretrained(qwen_dir)
    q = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(base.state_dict()[q], pristine.state_dict()[q])
    assert not torch.equal(trained.state_dict()[q], pristine.state_dict()[q])
    config = json.loads((tmp_path / "model" / models.TRAIN_CONFIG).read_text())
    assert config["base_model"] == str(qwen_dir) and config["params"]["lora"]["enabled"]

    params = EvaluateParams(max_instances_per_task=4, max_new_tokens=4, batch_size=8)
    unseen = {"aa01": heldout["aa01"]}
    report = evaluate_model(
        tmp_path / "model", {"bb01": heldout["bb01"]}, unseen, params, prompt_format="alpaca"
    )
    assert (report.heldout.tasks, report.unseen.tasks) == (1, 1)
    assert report.heldout.rouge_l is not None and report.unseen.rouge_l is not None


def test_the_response_loss_through_lora_adapters_is_the_models_loss(qwen_dir: Path):
    model, _ = models.load_pretrained(qwen_dir)
    model = models.apply_lora(model.float(), lora_params(qwen_dir))
    for name, param in model.named_parameters():  # adapters start at B = 0: make them count
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)
    batch = {
        "input_ids": torch.tensor([[5, 6, 7, 8, 9], [5, 8, 1, 1, 1]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]),
        "labels": torch.tensor([[-100, -100, 7, 8, 9], [-100, 8, -100, -100, -100]]),
    }
    assert sft.response_loss(model, batch).item() == pytest.approx(model(**batch).loss.item(), rel=1e-5)
    lora_off = models.load_pretrained(qwen_dir)[0].float()
    assert sft.response_loss(lora_off, batch).item() != pytest.approx(model(**batch).loss.item(), rel=1e-3)


def test_gradient_checkpointing_trains_the_same_model(qwen_dir: Path, tmp_path: Path):
    """Recomputing activations saves memory and changes nothing else (it is a tuning param)."""
    data = examples()
    plain = sft.train_model(data, lora_params(qwen_dir, max_steps=3), tmp_path / "plain")
    ckpt = sft.train_model(
        data, lora_params(qwen_dir, max_steps=3, gradient_checkpointing=True), tmp_path / "gc"
    )
    assert [p.loss for p in ckpt.losses] == pytest.approx([p.loss for p in plain.losses], rel=1e-4)


@pytest.mark.parametrize(
    ("base_model", "message"),
    [
        ("/no/such/model.gguf", "base model '/no/such/model.gguf' cannot be loaded offline: no such file"),
        ("/no/such/model-dir", "base model '/no/such/model-dir' cannot be loaded offline: no such directory"),
    ],
)
def test_a_base_that_cannot_be_loaded_is_one_line_and_leaves_no_model(
    tmp_path: Path, base_model: str, message
):
    with pytest.raises(ModelError) as info:
        sft.train_model(examples(), lora_params(Path(base_model)), tmp_path / "model")
    assert str(info.value) == message
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_gguf_is_one_line_and_leaves_nothing(tmp_path: Path, monkeypatch):
    pytest.importorskip("gguf")
    monkeypatch.setenv("DYNO_MODELS_DIR", str(tmp_path / "models"))
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelError) as info:
        sft.train_model(examples(), lora_params(fake), tmp_path / "out" / "model")
    assert str(info.value).startswith(f"base model {str(fake)!r}: fake.gguf cannot be converted (")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists() and list((tmp_path / "models" / "hf").iterdir()) == []


def test_gguf_base_model_params():
    assert parse_params({"train": {"base_model": "gguf:local"}}).train.base_model == "gguf:local"
    assert parse_params({"train": {"base_model": "models/x.gguf"}}).train.base_model == "models/x.gguf"
    with pytest.raises(
        ParamsError, match=r"train.base_model: unknown GGUF model 'gguf:qwen' \(known: gguf:local"
    ):
        parse_params({"train": {"base_model": "gguf:qwen"}})
    assert gguf_base.is_gguf("gguf:local") and gguf_base.is_gguf("a/B.GGUF") and not gguf_base.is_gguf("a/b")


@pytest.mark.slow
def test_the_packaged_gguf_converts_once_into_a_loadable_model(tmp_path: Path, monkeypatch):
    """The real Qwen2.5-Coder-0.5B-Instruct GGUF (dequantized: ~1.5 min on 2 cores, 1.3 GB written)."""
    pytest.importorskip("gguf")
    from dynosaur.core.packaged_model import DEFAULT_MODEL_SHA256, default_model_path

    try:
        gguf = default_model_path()  # the real cache dir: assembled once, then reused across runs
    except ModelError as exc:
        pytest.skip(str(exc))
    monkeypatch.setenv("DYNO_MODELS_DIR", str(tmp_path / "models"))
    local = tmp_path / "local.gguf"
    local.symlink_to(gguf)
    out = gguf_base.converted_dir(str(local))
    assert out == tmp_path / "models" / "hf" / f"local-{DEFAULT_MODEL_SHA256[:12]}"
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary leftovers
    assert json.loads((out / gguf_base.SOURCE).read_text()) == {
        "gguf": "local.gguf",
        "sha256": DEFAULT_MODEL_SHA256,
    }

    model, tok = models.load_pretrained(str(local))
    assert type(model).__name__ == "Qwen2ForCausalLM" and model.config.num_hidden_layers == 24
    assert (tok.eos_token, tok.pad_token) == ("<|im_end|>", "<|endoftext|>")
    ids = tok("def fib(n):", return_tensors="pt")
    text = tok.decode(model.generate(**ids, max_new_tokens=12, do_sample=False)[0][ids.input_ids.shape[1] :])
    assert "return" in text or "if" in text  # a real code model, not random weights

    # Converted once: later loads read the directory.
    from transformers import AutoModelForCausalLM

    def no_reconversion(*args, **kwargs):
        assert "gguf_file" not in kwargs, "converted again"
        return original(*args, **kwargs)

    original = AutoModelForCausalLM.from_pretrained
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_reconversion)
    assert gguf_base.converted_dir(str(local)) == out
    models.load_pretrained(str(local))
    shutil.rmtree(out)
