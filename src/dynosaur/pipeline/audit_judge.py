"""`dyno audit judge`: the configured LLM answers the audit's three questions for each sampled instance.

It goes through `dynosaur.pipeline.llm` like generate: the same call cache (its own directory, so judging
never makes the pipeline's generate stage look changed), the same caps (`llm.max_calls`, `llm.budget_usd`),
and with `llm.mode: batch` the same Batch API runner (its own tracker). An answer that is not the three
labels counts as unparseable and is not written. Its labels go to `audits/<audit_id>/judge.jsonl`, never
beside people's; how far they may be trusted is `dynosaur.registry.audit_report`'s business.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from dynosaur.core.params import Params
from dynosaur.core.records import AUDIT_QUESTIONS, AuditAnswer, AuditSample
from dynosaur.pipeline.batch import WAITING
from dynosaur.pipeline.llm import LLM, ChatRequest, require_within_caps
from dynosaur.registry.audit import JUDGE, instance_rows, latest, now, read_answers, write_answers

PROMPT_VERSION = "audit-judge-2"  # bump by hand when the prompt below changes
CACHE = "data/audit_llm_cache"  # the judge's call cache (not generate's: see the module docstring)
BATCHES = "data/audit_llm_batches.json"  # the judge's Batch API tracker (llm.mode: batch)
LABELS = ("yes", "no", "unsure")

SYSTEM = (
    "You check instruction-tuning data. Each example has an instruction, an input and an output. Judge it"
    " strictly and answer only with the JSON object asked for."
)
QUESTIONS = {
    "valid_instruction": "Is the instruction a valid task: clear, sensible, and something a person could do?",
    "input_suffices": "Does the input give everything the instruction needs to be done?",
    "output_correct": "Is the output a correct answer to the instruction for this input?",
}


class JudgeOutcome(BaseModel):
    audit_id: str
    model: str
    judged: int  # answers written this run
    already: int  # items the same model had judged before
    cache_hits: int
    calls_made: int
    unparseable: int
    waiting: int = 0  # batch mode: still in a running batch
    failed: int = 0


def schema() -> dict[str, Any]:
    """The model first writes its own answer to the instruction (`own_answer`), then judges: a small model
    asked only for three labels says yes to everything (issue 24: 12 of 12 hand-made items, 6 of them
    plainly wrong, with prompt audit-judge-1 on the 1.5B)."""
    properties: dict[str, Any] = {"own_answer": {"type": "string"}}
    properties |= {q: {"type": "string", "enum": list(LABELS)} for q in AUDIT_QUESTIONS}
    return {
        "type": "object",
        "properties": properties,
        "required": ["own_answer", *AUDIT_QUESTIONS],
        "additionalProperties": False,
    }


def judge_messages(row: dict[str, Any]) -> list[tuple[str, str]]:
    """The judge's prompt for one instance; the corpus text goes in as data, fenced."""
    asked = "\n".join(f'- "{q}": {text}' for q, text in QUESTIONS.items())
    user = (
        f"<instruction>\n{row.get('instruction', '')}\n</instruction>\n"
        f"<input>\n{row.get('input', '')}\n</input>\n"
        f"<output>\n{row.get('output', '')}\n</output>\n\n"
        f'Answer each question with "yes", "no" or "unsure":\n{asked}\n\n'
        'Reply with one JSON object: {"valid_instruction": ..., "input_suffices": ..., "output_correct": ...}'
    )
    return [("system", SYSTEM), ("user", user)]


def parse_judgement(content: str | None) -> dict[str, str] | None:
    """The three labels from an answer, or None when it does not hold all three."""
    text = (content or "").strip()
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(text[start : end + 1])
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    labels = {q: str(data.get(q, "")).strip().lower() for q in AUDIT_QUESTIONS}
    return labels if all(v in LABELS for v in labels.values()) else None


def judge(root: Path, sample: AuditSample, params: Params, *, base_url: str | None = None) -> JudgeOutcome:
    """Ask the LLM about every item the current judge model has not answered yet; write its answers."""
    rows = instance_rows(root, sample)
    with LLM(params.llm, root / CACHE, base_url=base_url) as llm:
        model = llm.model_identity
        done = {
            iid
            for (_, iid), a in latest(read_answers(root, sample.audit_id, "judge")).items()
            if a.model == model and a.prompt_version == PROMPT_VERSION and a.complete
        }
        todo: dict[str, ChatRequest] = {}
        for item in sample.items:
            if item.instance_id not in done:
                todo[item.instance_id] = llm.request(
                    judge_messages(rows[item.instance_id]), schema(), PROMPT_VERSION
                )
        wanted: dict[str, list[str]] = {}
        for iid, request in todo.items():
            wanted.setdefault(request.cache_key, []).append(iid)
        outcome = JudgeOutcome(
            audit_id=sample.audit_id,
            model=model,
            judged=0,
            already=len(done),
            cache_hits=0,
            calls_made=0,
            unparseable=0,
        )
        if params.llm.mode == "batch":
            from dynosaur.pipeline.batch import BatchRunner
            from dynosaur.pipeline.batch_tracker import ensure_tracker

            ensure_tracker(root / BATCHES)
            answers = BatchRunner(llm, root / BATCHES).complete_many(list(todo.values()))
        else:
            answers = llm.complete_many(list(todo.values()))
        for request, result in answers:
            if result.skipped is not None:
                outcome.waiting += result.skipped == WAITING
                outcome.failed += result.skipped != WAITING  # not made: a cap (require_within_caps says so)
                continue
            if result.error is not None:
                outcome.failed += 1
                continue
            outcome.cache_hits += result.cached
            outcome.calls_made += not result.cached
            labels = parse_judgement(result.content)
            if labels is None:
                outcome.unparseable += 1
                continue
            write_answers(
                root,
                [
                    AuditAnswer.model_validate(
                        {
                            "audit_id": sample.audit_id,
                            "instance_id": iid,
                            "reviewer": JUDGE,
                            "kind": "judge",
                            "model": model,
                            "prompt_version": PROMPT_VERSION,
                            "created_at": now(),
                            **labels,
                        }
                    )
                    for iid in wanted[request.cache_key]
                ],
            )
            outcome.judged += len(wanted[request.cache_key])
        require_within_caps(llm.budget)
    return outcome
