"""`dynosaur.pipeline.llm`: the request's cache key, the call cache on disk, and the run's budget (no LLM is called)."""

from __future__ import annotations

import json
import re

import pytest

from dynosaur.core.params import LLMParams, Price
from dynosaur.core.records import Usage
from dynosaur.pipeline.llm import Budget, CallCache, ChatRequest, ChatResult, estimate_tokens


def make_request(**overrides) -> ChatRequest:
    values = dict(
        model_identity="openai:gpt-4o-mini",
        messages=(("system", "You design tasks."), ("user", "Dataset: reviews")),
        temperature=0.0,
        max_tokens=512,
        seed=0,
        response_schema={"type": "object", "properties": {"tasks": {"type": "array"}}},
        prompt_version="v1",
    )
    return ChatRequest(**{**values, **overrides})


def make_result(**overrides) -> ChatResult:
    values = dict(
        content='{"tasks": []}',
        finish_reason="stop",
        usage=Usage(prompt_tokens=10, completion_tokens=5),
        cost_usd=0.001,
    )
    return ChatResult(**{**values, **overrides})


# --- cache key ---------------------------------------------------------------------------------------


def test_same_request_same_key():
    assert make_request().cache_key == make_request().cache_key
    assert re.fullmatch(r"[0-9a-f]{64}", make_request().cache_key)


def test_key_ignores_dict_key_order_in_the_schema():
    a = make_request(response_schema={"type": "object", "required": ["tasks"]})
    b = make_request(response_schema={"required": ["tasks"], "type": "object"})
    assert a.cache_key == b.cache_key


@pytest.mark.parametrize(
    "field, value",
    [
        ("model_identity", "openai:gpt-4.1-mini"),
        ("model_identity", "local:sha256:abc"),
        ("messages", (("system", "You design tasks."), ("user", "Dataset: reviews!"))),
        ("messages", (("user", "You design tasks."), ("user", "Dataset: reviews"))),
        ("messages", (("system", "You design tasks."),)),
        ("temperature", 0.7),
        ("max_tokens", 513),
        ("seed", 1),
        ("seed", None),
        ("response_schema", None),
        ("response_schema", {"type": "object", "properties": {"tasks": {"type": "array", "maxItems": 3}}}),
        ("prompt_version", "v2"),
    ],
)
def test_any_field_changes_the_key(field, value):
    base = make_request()
    assert make_request(**{field: value}).cache_key != base.cache_key
    # a copy made after the key was computed must not keep the old key
    assert base.model_copy(update={field: value}).cache_key != base.cache_key


def test_request_forbids_unknown_fields():
    with pytest.raises(ValueError):
        make_request(top_p=0.9)


# --- call cache --------------------------------------------------------------------------------------


def test_put_get_round_trip(tmp_path):
    cache, request = CallCache(tmp_path), make_request()
    key = request.cache_key
    assert cache.get(key) is None
    cache.put(key, request, make_result())
    assert cache.path(key) == tmp_path / key[:2] / f"{key}.json"
    hit = cache.get(key)
    assert hit == make_result(cached=True)
    stored = json.loads(cache.path(key).read_text())
    assert (stored["request_digest"], stored["model_identity"]) == (key, "openai:gpt-4o-mini")
    assert "cached" not in stored and "error" not in stored


def test_put_never_stores_cached_flag(tmp_path):
    cache, request = CallCache(tmp_path), make_request()
    cache.put(request.cache_key, request, make_result(cached=True))
    assert "cached" not in json.loads(cache.path(request.cache_key).read_text())


@pytest.mark.parametrize(
    "damage",
    [b"", b"{not json", b'{"content": "x", "usage": "lots"}', b"[1, 2]", b"\xff\xfe\x00garbage"],
    ids=["empty", "truncated", "wrong-type", "not-object", "not-utf8"],
)
def test_corrupted_entry_is_a_miss(tmp_path, damage):
    cache, request = CallCache(tmp_path), make_request()
    cache.put(request.cache_key, request, make_result())
    cache.path(request.cache_key).write_bytes(damage)
    assert cache.get(request.cache_key) is None


def test_failure_recorded_then_cleared_by_put(tmp_path):
    cache, request = CallCache(tmp_path), make_request()
    key = request.cache_key
    cache.record_failure(key, "RateLimitError: slow down")
    failure = tmp_path / "failures" / f"{key}.json"
    assert cache.failure_path(key) == failure
    assert json.loads(failure.read_text()) == {"request_digest": key, "reason": "RateLimitError: slow down"}
    assert cache.get(key) is None  # a failure is not an answer
    cache.put(key, request, make_result())
    assert not failure.exists()
    assert cache.get(key) is not None


def test_cache_writes_leave_no_temporary_files(tmp_path):
    cache, request = CallCache(tmp_path), make_request()
    cache.put(request.cache_key, request, make_result())
    cache.record_failure("ab" * 32, "x")
    names = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert sorted(names) == sorted([f"{request.cache_key}.json", f"{'ab' * 32}.json"])


# --- budget ------------------------------------------------------------------------------------------


def test_max_calls_refuses_the_next_reserve():
    budget = Budget(LLMParams(max_calls=2))
    assert budget.reserve(make_request()) is not None
    assert budget.reserve(make_request()) is not None
    assert budget.reserve(make_request()) is None
    assert (budget.calls, budget.refused) == (2, 1)


def test_max_calls_zero_refuses_everything():
    budget = Budget(LLMParams(max_calls=0))
    assert budget.reserve(make_request()) is None
    assert (budget.calls, budget.refused) == (0, 1)


def test_no_caps_never_refuses():
    budget = Budget(LLMParams())
    assert all(budget.reserve(make_request()) is not None for _ in range(100))
    assert (budget.calls, budget.refused) == (100, 0)


def priced(budget_usd: float | None) -> LLMParams:
    """$10,000 per million output tokens, input free: a call's worst case is max_tokens / 100 dollars."""
    price = Price(input_per_mtok=0, output_per_mtok=10_000)
    return LLMParams(provider="openai", model="m", prices={"m": price}, budget_usd=budget_usd)


def test_worst_case_cost():
    budget = Budget(priced(None))
    assert budget.reserve(make_request(max_tokens=100)) == pytest.approx(1.0)
    assert budget.cost(1_000_000, 0) == 0
    prices = {"x": Price(input_per_mtok=2, output_per_mtok=4)}
    assert Budget(LLMParams(provider="openai", prices=prices, model="x")).cost(
        500_000, 250_000
    ) == pytest.approx(2.0)


def test_budget_refuses_a_call_whose_worst_case_would_exceed_it():
    budget = Budget(priced(2.5))
    request = make_request(max_tokens=100)  # worst case $1
    assert budget.reserve(request) == pytest.approx(1.0)
    assert budget.reserve(request) == pytest.approx(1.0)
    assert budget.reserve(request) is None  # $3 > $2.5
    assert (budget.calls, budget.refused, budget.reserved_usd) == (2, 1, pytest.approx(2.0))


def test_settle_replaces_the_reservation_with_the_actual_cost():
    budget = Budget(priced(2.5))
    request = make_request(max_tokens=100)
    first, second = budget.reserve(request), budget.reserve(request)
    budget.settle(first, 0.25)
    budget.settle(second, 0.25)
    assert budget.spent_usd == pytest.approx(0.5)
    assert budget.reserved_usd == pytest.approx(0.0)
    assert budget.reserve(request) == pytest.approx(1.0)  # $0.5 spent + $1 worst case fits in $2.5
    assert budget.reserve(request) == pytest.approx(1.0)  # $0.5 + $1 reserved + $1 = $2.5 still fits
    assert budget.reserve(request) is None
    assert (budget.calls, budget.refused) == (4, 1)


def test_prompt_tokens_count_toward_the_worst_case():
    params = LLMParams(
        provider="openai",
        model="m",
        budget_usd=1.0,
        prices={"m": Price(input_per_mtok=1_000_000, output_per_mtok=0)},
    )
    budget = Budget(params)  # $1 per input token: a 2-token prompt costs $2 > $1
    assert estimate_tokens("12345678") == 2
    assert budget.reserve(make_request(messages=(("user", "12345678"),))) is None
    assert budget.reserve(make_request(messages=(("user", "1234"),))) == pytest.approx(1.0)
