"""`dynosaur.pipeline.generate`: the requests each mode makes and how answers become proposals (no server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dynosaur.core.params import GenerateParams, LLMParams, Params
from dynosaur.pipeline.fields import enumerate_mappings
from dynosaur.pipeline.generate import source_requests, to_proposal, variant_order
from dynosaur.pipeline.llm import LLM, ChatResult
from dynosaur.pipeline.wording import human_name
from tests.factories import make_meta


def make_params(**generate: Any) -> Params:
    llm = LLMParams(provider="compatible", base_url="http://127.0.0.1:9/v1", model="fake-model")
    return Params(llm=llm, generate=GenerateParams(**generate))


def requests_for(tmp_path: Path, params: Params) -> list:
    with LLM(params.llm, tmp_path / "cache") as llm:
        return source_requests(make_meta(), params, llm)


def test_propose_asks_both_variants(tmp_path: Path):
    requests = requests_for(tmp_path, make_params(mode="propose"))
    assert [v for v, _ in requests] == ["with_description", "without_description"]
    assert all(len(r.messages) == 2 for _, r in requests)
    with_demos = requests_for(tmp_path, make_params(mode="propose", demonstrations=True))
    assert all(len(r.messages) == 6 for _, r in with_demos)  # system, 2 × (demo, answer), dataset


def test_fields_first_is_the_default_and_asks_one_request_per_mapping(tmp_path: Path):
    mappings = enumerate_mappings(make_meta())
    assert len(mappings) >= 2
    assert GenerateParams().mode == "fields_first"
    requests = requests_for(tmp_path, make_params())
    assert [v for v, _ in requests] == [f"with_description#{i}" for i in range(len(mappings))]
    for (_, output), (_, request) in zip(mappings, requests, strict=True):
        asked = request.messages[-1][1]
        assert f"Answer ({human_name(output)})" in asked and "Given the" not in asked
        assert request.response_schema["properties"]["instructions"]["maxItems"] == 1
    batched = requests_for(tmp_path, make_params(mode="fields_first", mappings_per_request=10))
    assert len(batched) == 1


def test_fields_first_answer_goes_with_its_mapping(tmp_path: Path):
    params = make_params(mode="fields_first")
    (variant, request) = requests_for(tmp_path, params)[1]
    answer = ChatResult(content=json.dumps({"instructions": ["Write a short title for this review."]}))
    proposal = to_proposal(variant, request, answer, make_meta(), params)
    inputs, output = enumerate_mappings(make_meta())[1]
    assert [(t.instruction, t.input_fields, t.output_field) for t in proposal.tasks] == [
        ("Write a short title for this review.", inputs, output)
    ]


def test_propose_answers_are_repaired_unless_turned_off(tmp_path: Path):
    task = {"instruction": "Classify the review.", "input_fields": ["text", "label"], "output_field": "label"}
    answer = ChatResult(content=json.dumps({"tasks": [task]}))
    for repair, inputs in ((True, ["text"]), (False, ["text", "label"])):
        params = make_params(mode="propose", repair=repair)
        variant, request = requests_for(tmp_path, params)[0]
        assert to_proposal(variant, request, answer, make_meta(), params).tasks[0].input_fields == inputs


def test_variant_order():
    order = {"with_description": 0, "without_description": 1}
    names = ["without_description#1", "with_description#10", "with_description#2", "without_description"]
    assert sorted(names, key=lambda v: variant_order(v, order)) == [
        "with_description#2",
        "with_description#10",
        "without_description",
        "without_description#1",
    ]
