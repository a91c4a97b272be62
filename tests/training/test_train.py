"""`dynosaur.training.train` and `dynosaur.training.evaluate` on tiny data: prompts and loss masks, corpus
reading, the holdout split, the offline tokenizer, a few real training steps on the CPU through TRL, resuming
from a checkpoint, LoRA on a tiny pretrained Qwen2, all-or-nothing saving, offline loading."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dynosaur.core.errors import DynoError, ModelError, ParamsError
from dynosaur.core.io import read_json
from dynosaur.core.params import TrainParams, load_params, parse_params

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from dynosaur.core.params import EvaluateParams  # noqa: E402
from dynosaur.training import models, sft  # noqa: E402
from dynosaur.training.evaluate import evaluate_model, generate, headline, report_metrics  # noqa: E402
from dynosaur.training.examples import (  # noqa: E402
    Example,
    corpus_sources,
    encode_example,
    format_prompt,
    group_by_task,
    label_options,
    load_examples,
    split_holdout,
)

REPO_PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"
WORDS = ["red", "green", "blue", "gold", "black", "white", "pink", "grey"]


def make_example(**overrides) -> Example:
    fields = {
        "task_id": "t1",
        "source_id": "s1",
        "instruction": "Name the colour.",
        "input": "sky",
        "output": "blue",
    }
    return Example(**{**fields, **overrides})


def write_shard(corpus: Path, source: str, task: str, rows: list[tuple[str, str]], instruction: str) -> None:
    (corpus / source).mkdir(parents=True, exist_ok=True)
    n = len(rows)
    table = pa.table(
        {
            "instance_id": [f"{task}-{i}" for i in range(n)],
            "instruction": [instruction] * n,
            "input": [r[0] for r in rows],
            "output": [r[1] for r in rows],
            "source_id": [source] * n,
            "task_id": [task] * n,
        }
    )
    pq.write_table(table, corpus / source / f"{task}.parquet")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    write_shard(
        root,
        "colours",
        "aa01",
        [(f"the word {w} {i}", w) for i in range(3) for w in WORDS],
        "Repeat the colour named in the text.",
    )
    write_shard(
        root,
        "colours",
        "aa02",
        [(f"{w} {i}", "warm" if i % 2 else "cold") for i, w in enumerate(WORDS * 3)],
        "Is the colour warm or cold? Answer warm or cold.",
    )
    write_shard(
        root, "numbers", "bb01", [(f"{i} plus one", str(i + 1)) for i in range(20)], "Add one to the number."
    )
    return root


def tiny_params(**overrides) -> TrainParams:
    values = {
        "max_length": 160,
        "max_steps": 15,
        "lr": 3e-3,
        "warmup_steps": 2,
        "batch_size": 8,
        "seed": 0,
        "vocab_size": 400,
        "max_per_task": None,
    }
    return TrainParams(**{**values, **overrides})


# --- prompts and masks ----------------------------------------------------------------------------------


def test_alpaca_prompt_with_and_without_input():
    prompt = format_prompt("Name the colour.", "sky", "alpaca")
    assert prompt.startswith("Below is an instruction that describes a task, paired with an input")
    assert prompt.endswith("### Instruction:\nName the colour.\n\n### Input:\nsky\n\n### Response:\n")
    bare = format_prompt("Name a colour.", "  ", "alpaca")
    assert "### Input" not in bare and bare.endswith("### Instruction:\nName a colour.\n\n### Response:\n")
    assert format_prompt(make_example()) == prompt
    assert format_prompt(make_example(), fmt="plain") == "Name the colour.\n\nInput: sky\n\nOutput: "


def test_unknown_prompt_format_is_a_params_error():
    with pytest.raises(ParamsError, match="unknown prompt format 'chatml'"):
        format_prompt("x", "", "chatml")


def test_the_completion_mask_covers_the_response_and_eos():
    assert encode_example([1, 2, 3], [7, 8], eos_id=0, max_length=10) == (
        [1, 2, 3, 7, 8, 0],
        [0, 0, 0, 1, 1, 1],
    )
    assert encode_example([1, 2, 3], [7, 8], eos_id=0, max_length=4) == ([1, 2, 3, 7], [0, 0, 0, 1])
    assert encode_example([1, 2, 3], [7], eos_id=0, max_length=3) is None  # no room for the response


def test_trl_trains_on_the_response_only(tmp_path: Path):
    """TRL turns the completion mask into labels: -100 over the prompt, and over the padding of a batch."""
    tok = models.train_tokenizer(["a b c"] * 10, 300)
    model = models.scratch_model("tiny-gpt2", tok, 64, seed=0)
    data = [([5, 6, 7, 8, 0], [0, 0, 0, 1, 1]), ([5, 8], [0, 1])]
    config = sft.sft_config(tiny_params(), 2, 64, tmp_path, bf16=False, save=False)
    trainer = sft.make_trainer(model, tok, data, config, [])
    assert [row["labels"] for row in trainer.train_dataset] == [[-100, -100, -100, 8, 0], [-100, 8]]
    batch = trainer.data_collator(list(trainer.train_dataset))
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 0], [5, 8, 1, 1, 1]]  # 1: the <pad> token
    assert batch["labels"].tolist() == [[-100, -100, -100, 8, 0], [-100, 8, -100, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]


def test_the_response_loss_is_the_models_loss_on_the_labelled_positions():
    """The CPU loss projects only labelled positions onto the vocabulary; the value and gradients are those of
    transformers' causal-LM loss over the same labels."""
    tok = models.train_tokenizer(["a b c"] * 10, 300)
    model = models.scratch_model("tiny-gpt2", tok, 64, seed=0)
    batch = {
        "input_ids": torch.tensor([[5, 6, 7, 8, 0], [5, 8, 1, 1, 1]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]),
        "labels": torch.tensor([[-100, -100, -100, 8, 0], [-100, 8, -100, -100, -100]]),
    }
    ours = sft.response_loss(model, batch)
    ours.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    theirs = model(**batch).loss
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(grads, model.parameters(), strict=True))
    # With the step's label count from the trainer (gradient accumulation): a sum over that count.
    assert sft.response_loss(model, batch, num_items_in_batch=6).item() == pytest.approx(
        theirs.item() * 3 / 6
    )


def test_the_sft_config_carries_the_train_params(tmp_path: Path):
    config = sft.sft_config(
        tiny_params(grad_clip=None, schedule="constant", gradient_checkpointing=True, save_steps=7),
        40,
        128,
        tmp_path,
        bf16=False,
        save=True,
    )
    assert (config.max_steps, config.learning_rate, config.warmup_steps) == (40, 3e-3, 2)
    assert (config.per_device_train_batch_size, config.gradient_accumulation_steps) == (8, 1)
    assert config.lr_scheduler_type == "constant_with_warmup" and config.max_grad_norm == 0.0
    assert config.completion_only_loss and config.max_length == 128 and not config.packing
    assert config.gradient_checkpointing and not config.bf16
    assert (config.save_strategy, config.save_steps, config.save_total_limit) == ("steps", 7, 1)
    assert config.seed == config.data_seed == 0 and config.report_to in ([], "none", ["none"])
    linear = sft.sft_config(tiny_params(), 40, 128, tmp_path, bf16=True, save=False)
    assert linear.lr_scheduler_type == "linear" and linear.max_grad_norm == 1.0 and linear.bf16
    assert linear.save_strategy == "no"


def test_step_count():
    assert sft.planned_steps(100, tiny_params(max_steps=1000, epochs=2)) == 26  # 13 batches of 8 per epoch
    assert sft.planned_steps(100, tiny_params(max_steps=5, epochs=2)) == 5
    assert sft.planned_steps(100, tiny_params(max_steps=None, epochs=1, grad_accum=2)) == 7
    assert sft.planned_steps(100, tiny_params(max_steps=None, epochs=1), processes=4) == 4  # 32 per step


# --- corpus reading and the holdout split ----------------------------------------------------------------


def test_load_examples_reads_shards_in_order_and_excludes_sources(corpus: Path):
    examples = load_examples(corpus)
    assert [e.task_id for e in examples] == ["aa01"] * 24 + ["aa02"] * 24 + ["bb01"] * 20
    assert examples[0] == Example(
        task_id="aa01",
        source_id="colours",
        input="the word red 0",
        output="red",
        instruction="Repeat the colour named in the text.",
    )
    assert {e.source_id for e in load_examples(corpus, exclude_sources={"numbers"})} == {"colours"}
    assert {e.source_id for e in load_examples(corpus, only_sources={"numbers"})} == {"numbers"}
    assert corpus_sources(corpus) == ["colours", "numbers"]


def test_load_examples_samples_per_task_with_the_seed(corpus: Path):
    a = load_examples(corpus, max_per_task=5, seed=1)
    assert [e.task_id for e in a] == ["aa01"] * 5 + ["aa02"] * 5 + ["bb01"] * 5
    assert a == load_examples(corpus, max_per_task=5, seed=1)
    assert a != load_examples(corpus, max_per_task=5, seed=2)
    numbers = [int(e.output) for e in a if e.task_id == "bb01"]
    assert numbers == sorted(numbers)  # a sample keeps row order


def test_split_holdout_is_deterministic_and_disjoint(corpus: Path):
    examples = load_examples(corpus)
    train, heldout = split_holdout(examples, 0.1, seed=0)
    assert (train, heldout) == split_holdout(examples, 0.1, seed=0)
    assert {t: len(v) for t, v in heldout.items()} == {"aa01": 2, "aa02": 2, "bb01": 2}
    assert len(train) + 6 == len(examples)
    held = [e for items in heldout.values() for e in items]
    assert not set(held) & set(train) and set(held) | set(train) == set(examples)
    assert split_holdout(examples, 0.1, seed=1)[1] != heldout
    # At least one held out per task, never all of it; none with fraction 0.
    tiny = [make_example(task_id="x", output=str(i)) for i in range(2)]
    assert [len(v) for v in split_holdout(tiny, 0.01, 0)[1].values()] == [1]
    assert [len(v) for v in split_holdout(tiny, 0.99, 0)[1].values()] == [1]
    assert split_holdout(examples, 0.0, 0) == (examples, {})
    # A duplicate of a held-out instance is not trained on either.
    twins = [make_example(input="same", output="x")] * 3 + [make_example(input=str(i)) for i in range(7)]
    train, heldout = split_holdout(twins, 0.1, seed=0)
    assert all(e not in train for e in heldout["t1"])


def test_label_options_only_for_classification_like_tasks(corpus: Path):
    tasks = group_by_task(load_examples(corpus))
    assert label_options(tasks) == {"aa01": sorted(WORDS), "aa02": ["cold", "warm"]}


# --- tokenizer and models --------------------------------------------------------------------------------


def test_tokenizer_is_trained_offline_and_round_trips(tmp_path: Path):
    texts = [f"Below is an instruction {w} {i} ünïcode ✓" for i in range(30) for w in WORDS]
    tok = models.train_tokenizer(texts, 300)
    assert len(tok) <= 300 and tok.eos_token == "<|endoftext|>" and tok.pad_token == "<pad>"
    assert tok.convert_tokens_to_ids(["<|endoftext|>", "<pad>"]) == [0, 1]
    for text in ("red green 7", "never seen: Ωmega 😀\n\ttabs", ""):
        assert tok.decode(tok(text).input_ids) == text
    assert models.train_tokenizer(texts, 300).get_vocab() == tok.get_vocab()
    tok.save_pretrained(tmp_path / "tok")
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(tmp_path / "tok", local_files_only=True)
    assert again("red green 7").input_ids == tok("red green 7").input_ids


def test_scratch_model_is_seeded():
    tok = models.train_tokenizer(["a b c"] * 10, 300)
    a, b = (
        models.scratch_model("tiny-gpt2", tok, 64, seed=3),
        models.scratch_model("tiny-gpt2", tok, 64, seed=3),
    )
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=False)
    )
    assert a.config.n_layer == 2 and a.config.n_embd == 128 and a.config.n_positions == 64


@pytest.mark.parametrize("name", ["no-such-owner/no-such-model", "/nonexistent/model/dir"])
def test_a_base_model_that_cannot_be_loaded_offline_is_one_line(name: str, tmp_path: Path):
    with pytest.raises(ModelError) as info:
        sft.train_model([make_example()], tiny_params(base_model=name), tmp_path / "out")
    message = str(info.value)
    assert message.startswith(f"base model {name!r} cannot be loaded offline: ") and "\n" not in message
    assert not (tmp_path / "out").exists()


def test_a_hub_id_in_the_local_cache_loads_offline(trained, tmp_path: Path):
    """The Hub cache layout (refs/main → snapshots/<sha>/), read in a fresh process with HF_HOME pointing at it
    (huggingface_hub reads HF_HOME once, at import)."""
    import os
    import shutil
    import subprocess
    import sys

    out, _, _ = trained
    repo = tmp_path / "hf" / "hub" / "models--dyno--tiny-test"
    sha = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(sha)
    shutil.copytree(out, repo / "snapshots" / sha)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    code = (
        "from dynosaur.training.models import load_pretrained; m, t = load_pretrained('dyno/tiny-test');"
        " print(type(m).__name__, t.pad_token)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["GPT2LMHeadModel", "<pad>"]


def test_a_local_directory_that_is_not_a_model_is_one_line(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="has no config.json") as info:
        models.load_pretrained(tmp_path / "empty")
    assert "\n" not in str(info.value)
    with pytest.raises(ModelError, match="cannot be loaded offline: no such directory"):
        models.load_pretrained(tmp_path / "missing")


# --- training --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, sft.TrainResult, list[Example]]:
    root = tmp_path_factory.mktemp("trained")
    write_shard(
        root / "corpus",
        "colours",
        "aa02",
        [(w, "warm" if i % 2 else "cold") for i, w in enumerate(WORDS * 4)],
        "Is the colour warm or cold? Answer warm or cold.",
    )
    write_shard(
        root / "corpus",
        "numbers",
        "bb01",
        [(f"{i} plus one", str(i + 1)) for i in range(20)],
        "Add one to the number.",
    )
    examples = load_examples(root / "corpus")
    result = sft.train_model(examples, tiny_params(), root / "model")
    return root / "model", result, examples


def test_training_lowers_the_loss_and_writes_a_loadable_model(trained):
    out, result, examples = trained
    losses = [p.loss for p in result.losses]
    assert [p.step for p in result.losses] == list(range(1, 16)) and result.steps == 15
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert result.device in ("cpu", "cuda") and result.tokens_seen > 0 and result.tokens_per_s > 0
    assert result.peak_rss_mb > 0 and result.examples == len(examples) and result.dropped_too_long == 0
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "train_config.json"} <= names
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    config = read_json(out / "train_config.json")
    assert config["base_model"] == "scratch:tiny-gpt2" and config["prompt_format"] == "alpaca"
    assert config["max_length"] == 160 and config["steps"] == 15
    model, tok = models.load_pretrained(out)
    assert model.config.n_positions == 160 and tok.pad_token == "<pad>"


def test_the_scratch_base_is_the_seeded_initialisation(trained):
    out, _, examples = trained
    base, tok = models.load_base(out)
    init, _ = models.initial_model(tiny_params(), sft._texts(examples, "alpaca"))
    assert all(
        torch.equal(x, y)
        for x, y in zip(base.state_dict().values(), init.state_dict().values(), strict=False)
    )
    model, _ = models.load_pretrained(out)
    assert not torch.equal(base.transformer.wte.weight, model.transformer.wte.weight)


def test_batched_generation_matches_one_by_one(trained):
    out, _, _ = trained
    lm = models.load_pretrained(out)
    prompts = [
        format_prompt("Add one to the number.", "3 plus one"),
        format_prompt("Is it warm?", "a long " * 30),
        format_prompt("Say hi."),
    ]
    batched = generate(lm, prompts, max_new_tokens=6, batch_size=3)
    assert batched == [generate(lm, [p], max_new_tokens=6, batch_size=1)[0] for p in prompts]
    assert generate(out, prompts[:1], max_new_tokens=6, batch_size=1) == batched[:1]
    with pytest.raises(ParamsError, match="evaluate.max_new_tokens"):
        generate(lm, prompts, max_new_tokens=160, batch_size=2)


def test_evaluate_model_scores_suites_and_reports_lift(trained):
    out, _, examples = trained
    tasks = group_by_task(examples)
    heldout = {"bb01": tasks["bb01"][:4]}
    unseen = {"aa02": tasks["aa02"][:4]}
    from dynosaur.training.evaluation import read_superni_tasks

    superni = read_superni_tasks(Path(__file__).parents[1] / "fixtures" / "superni", max_instances=2)
    params = EvaluateParams(max_instances_per_task=3, max_new_tokens=4, batch_size=4)
    options = label_options(tasks)
    report = evaluate_model(
        out, heldout, unseen, params, prompt_format="alpaca", superni=superni, label_options=options
    )
    assert (report.heldout.tasks, report.heldout.instances) == (1, 3)
    assert report.unseen.per_task["aa02"].exact_match is not None  # warm/cold: classification-like
    assert report.superni is not None and report.superni.tasks == len(superni)
    base = evaluate_model(
        models.load_base(out),
        heldout,
        unseen,
        params,
        prompt_format="alpaca",
        superni=superni,
        label_options=options,
    )
    metrics = report_metrics(report, base, {"bb01": "numbers", "aa02": "colours"})
    assert set(metrics) == {"trained", "base", "lift", "counts", "per_task"}
    assert metrics["lift"]["heldout_rouge_l"] == round(
        metrics["trained"]["heldout_rouge_l"] - metrics["base"]["heldout_rouge_l"], 4
    )
    assert metrics["per_task"]["unseen"]["aa02"]["source_id"] == "colours"
    assert metrics["counts"] == {
        "heldout_tasks": 1,
        "heldout_instances": 3,
        "unseen_tasks": 1,
        "unseen_instances": 3,
        "superni_tasks": len(superni),
        "superni_instances": report.superni.instances,
    }
    # the metrics file: the trained model's held-out score and its lift, nothing per task
    assert headline(metrics) == {
        "rouge_l": metrics["trained"]["heldout_rouge_l"],
        "lift": metrics["lift"]["heldout_rouge_l"],
    }


def test_a_failure_before_the_rename_leaves_no_model_directory(tmp_path: Path, monkeypatch):
    examples = [make_example(output=w) for w in WORDS]
    from transformers import PreTrainedTokenizerFast

    def broken_save(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(PreTrainedTokenizerFast, "save_pretrained", broken_save)
    with pytest.raises(OSError, match="disk full"):
        sft.train_model(examples, tiny_params(max_steps=2), tmp_path / "model")
    assert list(tmp_path.iterdir()) == []  # neither the model nor its temporary directory

    # An earlier model is kept as it was.
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "old").write_text("kept")
    with pytest.raises(OSError):
        sft.train_model(examples, tiny_params(max_steps=2), tmp_path / "model")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert (tmp_path / "model" / "old").read_text() == "kept"


def test_divergence_stops_with_one_line(tmp_path: Path, monkeypatch):
    scratch = models.scratch_model

    def poisoned(*args, **kwargs):
        model = scratch(*args, **kwargs)
        torch.nn.init.constant_(model.transformer.wte.weight, float("nan"))
        return model

    monkeypatch.setattr(models, "scratch_model", poisoned)
    examples = [make_example(output=w) for w in WORDS]
    with pytest.raises(DynoError, match="training diverged at step 1 .*lower train.lr"):
        sft.train_model(examples, tiny_params(max_steps=3), tmp_path / "model")
    assert not (tmp_path / "model").exists()


# peft calls a transformers method that transformers deprecates
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_lora_on_a_local_base_model_is_merged_before_saving(trained, tmp_path: Path):
    out, _, examples = trained
    params = tiny_params(
        base_model=str(out),
        max_steps=4,
        lora={"enabled": True, "r": 4, "alpha": 8, "target_modules": ["c_attn"]},
    )
    result = sft.train_model(examples, params, tmp_path / "lora")
    assert result.steps == 4
    model, _ = models.load_pretrained(tmp_path / "lora")
    keys = set(model.state_dict())
    assert not any("lora" in k for k in keys) and "transformer.h.0.attn.c_attn.weight" in keys
    with pytest.raises(ParamsError, match="train.lora"):
        sft.train_model(
            examples,
            tiny_params(base_model=str(out), lora={"enabled": True, "target_modules": ["nope"]}),
            tmp_path / "bad",
        )


# --- checkpoints and resume ------------------------------------------------------------------------------


def kill_at(step: int):
    """A callback that stops the run at the end of `step` as Ctrl-C would, before that step's checkpoint."""
    from transformers import TrainerCallback

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise KeyboardInterrupt

    return Kill()


def weights(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(model_dir / "model.safetensors")


def test_a_killed_run_resumes_from_its_last_checkpoint(trained, tmp_path: Path):
    _, _, examples = trained
    params = tiny_params(max_steps=12, save_steps=5)
    whole = sft.train_model(examples, params, tmp_path / "whole", checkpoints=tmp_path / "ckpt-whole")
    assert whole.resumed_from_step is None and not (tmp_path / "ckpt-whole").exists()

    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        sft.train_model(examples, params, tmp_path / "model", checkpoints=ckpt, callbacks=[kill_at(7)])
    assert not (tmp_path / "model").exists()
    [run] = ckpt.iterdir()
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-5"]  # TRL adds a README.md
    # Killed while saving step 6's checkpoint: its trainer_state.json (written last) is missing.
    shutil.copytree(run / "checkpoint-5", run / "checkpoint-6")
    (run / "checkpoint-6" / "trainer_state.json").unlink()

    resumed = sft.train_model(examples, params, tmp_path / "model", checkpoints=ckpt)
    assert resumed.resumed_from_step == 5 and resumed.steps == 12
    assert [p.step for p in resumed.losses] == list(range(1, 13))
    # Same weights, optimizer state, schedule, data order and RNG: the run an uninterrupted one would be.
    assert resumed.losses == whole.losses
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "model")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not ckpt.exists()  # a finished run removes its checkpoints


def test_a_checkpoint_of_other_inputs_is_not_resumed(trained, tmp_path: Path):
    _, _, examples = trained
    params, ckpt = tiny_params(max_steps=8, save_steps=3), tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        sft.train_model(examples, params, tmp_path / "model", checkpoints=ckpt, callbacks=[kill_at(4)])
    [stale] = ckpt.iterdir()
    # A changed learning rate, or other examples: another run, which starts afresh and drops the stale one.
    other = sft.train_model(
        examples, tiny_params(max_steps=8, save_steps=3, lr=1e-3), tmp_path / "m", checkpoints=ckpt
    )
    assert other.resumed_from_step is None and not stale.exists()
    # Threads and the checkpoint interval change how a run goes, not what it writes: the same run.
    data = [([1, 2, 3], [0, 1, 1])]
    fp = sft.run_fingerprint(data, params, None, 1)
    assert sft.run_fingerprint(data, tiny_params(max_steps=8, save_steps=9, threads=1), None, 1) == fp
    assert sft.run_fingerprint(data, params, None, 2) != fp
    assert sft.run_fingerprint([([1, 2, 4], [0, 1, 1])], params, None, 1) != fp


# --- params ----------------------------------------------------------------------------------------------


def test_repository_params_train_and_evaluate_sections():
    params = load_params(REPO_PARAMS)
    assert params.train.base_model == "scratch:tiny-gpt2" and params.train.release is None
    assert params.train.continual is None and not params.train.lora.enabled
    sources = {s.id for s in params.sources}
    assert params.evaluate.holdout_sources and set(params.evaluate.holdout_sources) <= sources


def test_the_qwen_profile_differs_from_params_yaml_in_train_and_evaluate_only():
    """params-qwen.yaml is a whole params file (DVC reads params.yaml; a profile is copied over it), so every
    other section must stay params.yaml's."""
    default, qwen = load_params(REPO_PARAMS), load_params(REPO_PARAMS.with_name("params-qwen.yaml"))
    other = {"train", "evaluate"}
    assert qwen.model_dump(exclude=other) == default.model_dump(exclude=other)
    assert qwen.train.base_model == "gguf:local" and qwen.train.lora.enabled and qwen.train.continual is None
    assert qwen.evaluate.holdout_sources == default.evaluate.holdout_sources


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"train": {"continual": {"releases": ["v1"], "replay": {"strategy": "fancy"}}}},
            "train.continual.replay.strategy: unknown replay strategy 'fancy' (known: none, random",
        ),
        ({"train": {"continual": {"releases": ["one"]}}}, "train.continual.releases: 'one' is not a release"),
        (
            {"train": {"continual": {"releases": ["v1", "1"]}}},
            "train.continual.releases: a release is listed twice",
        ),
        ({"train": {"base_model": "scratch:huge"}}, "train.base_model: unknown scratch model 'scratch:huge'"),
        ({"train": {"max_steps": None}}, "train: set max_steps or epochs"),
        ({"train": {"release": "latest"}}, "train.release: 'latest' is not a release version"),
        ({"train": {"lora": {"rank": 4}}}, "train.lora.rank: unknown key"),
        ({"train": {"lr": 0}}, "train.lr: Input should be greater than 0"),
        ({"evaluate": {"holdout_sources": ["A B"]}}, "evaluate.holdout_sources: 'A B' is not a source id"),
        ({"evaluate": {"max_instances_per_task": 0}}, "evaluate.max_instances_per_task"),
    ],
)
def test_bad_train_and_evaluate_params_name_the_key(data, message: str):
    with pytest.raises(ParamsError) as info:
        parse_params(data)
    assert info.value.exit_code == 2 and str(info.value).startswith(f"params.yaml: {message}")


def test_continual_params_validate_strategy_and_budget():
    params = parse_params(
        {
            "train": {
                "continual": {"releases": ["v1", "v2"], "replay": {"strategy": "instr_support", "tasks": 3}}
            }
        }
    )
    assert params.train.continual.replay.tasks == 3 and params.train.continual.releases == ["v1", "v2"]
    with pytest.raises(ParamsError, match="replay.tasks"):
        parse_params({"train": {"continual": {"releases": ["v1"], "replay": {"tasks": -1}}}})
