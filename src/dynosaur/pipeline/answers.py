"""Reading the model's answers: the tolerant parser (code fences, prose around the JSON, a bare list) for
both modes, and the small repairs made rather than rejecting a task.

A fields-first answer's instructions go through `dynosaur.pipeline.wording`'s repairs (raw field names in
words, no "from the X dataset", a score's scale).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from dynosaur.core.records import SourceMeta, TaskSpec
from dynosaur.pipeline.fields import FieldMapping
from dynosaur.pipeline.wording import humanize_identifiers, strip_provenance, with_scale

MAX_ANSWER_CHARS = 20_000


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def _json_in(content: str | None) -> tuple[Any, str | None]:
    """The first JSON value in an answer (fenced or wrapped in prose), or (None, reason)."""
    if not content or not content.strip():
        return None, "empty answer"
    if len(content) > MAX_ANSWER_CHARS:
        return None, f"answer longer than {MAX_ANSWER_CHARS} characters"
    fenced = _FENCE.search(content)
    text = fenced.group(1) if fenced else content
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        return None, "no JSON in the answer"
    try:
        data, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc.msg})"
    except RecursionError:  # "[[[[…": nested deeper than the decoder's recursion limit
        return None, "invalid JSON (nested too deeply)"
    return data, None


def parse_tasks(content: str | None) -> tuple[list[TaskSpec], str | None]:
    """(tasks, None) or ([], reason). Accepts code fences, prose around the JSON, a bare list of tasks and
    `output_field` given as a list (the filter rejects lists of more than one as `multi_output`)."""
    data, error = _json_in(content)
    if error is not None:
        return [], error
    items = data.get("tasks") if isinstance(data, dict) else data
    if isinstance(data, dict) and items is None and "instruction" in data:
        items = [data]
    if not isinstance(items, list):
        return [], "no task list in the answer"
    tasks = []
    for item in items:
        if not isinstance(item, dict):
            continue
        try:
            tasks.append(TaskSpec.model_validate(_coerce(item)))
        except ValidationError:
            continue
    if not tasks and items:
        return [], "no task has the expected shape"
    return tasks, None


def _coerce(item: dict[str, Any]) -> dict[str, Any]:
    """Small, common deviations: a single input field as a string, names as non-strings."""
    out = dict(item)
    inputs = out.get("input_fields", [])
    if isinstance(inputs, str):
        inputs = [inputs]
    if isinstance(inputs, list):
        out["input_fields"] = [str(x) for x in inputs]
    output = out.get("output_field", "")
    if isinstance(output, list):
        out["output_field"] = [str(x) for x in output]
    elif output is not None:
        out["output_field"] = str(output)
    if not isinstance(out.get("instruction", ""), str):
        out["instruction"] = str(out["instruction"])
    return out


def repair_task(spec: TaskSpec) -> TaskSpec:
    """Repair rather than reject: an output field also listed among the inputs is dropped from the inputs
    when other inputs remain, and an input listed twice is kept once."""
    output = spec.output_field
    if isinstance(output, list) and len(output) == 1:
        output = output[0]
    inputs = list(dict.fromkeys(spec.input_fields))
    if isinstance(output, str) and output in inputs and len(inputs) > 1:
        inputs.remove(output)
    if inputs == spec.input_fields:
        return spec
    return spec.model_copy(update={"input_fields": inputs})


def parse_instructions(
    content: str | None, mappings: Sequence[FieldMapping], meta: SourceMeta | None = None
) -> tuple[list[TaskSpec], str | None]:
    """The answer to a fields-first prompt as tasks: the i-th instruction goes with the i-th mapping. Accepts
    `{"instructions": [...]}`, a bare list, and items that are objects with an `instruction`; blank or
    missing instructions leave their mapping out. With `meta`, raw field names the model copied are put in
    words (`humanize_identifiers`)."""
    data, error = _json_in(content)
    if error is not None:
        return [], error
    items = data.get("instructions", data.get("tasks")) if isinstance(data, dict) else data
    if not isinstance(items, list):
        return [], "no instruction list in the answer"
    tasks = []
    for item, (inputs, output) in zip(items, mappings, strict=False):
        text = item.get("instruction") if isinstance(item, dict) else item
        if isinstance(text, str) and text.strip():
            instruction = strip_provenance(text.strip())
            if meta is not None:
                instruction = with_scale(humanize_identifiers(instruction, meta), meta.feature(output))
            tasks.append(TaskSpec(instruction=instruction, input_fields=list(inputs), output_field=output))
    if not tasks and items:
        return [], "no instruction has the expected shape"
    return tasks, None
