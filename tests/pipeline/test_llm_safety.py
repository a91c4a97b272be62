"""`dynosaur.pipeline.llm` on hostile ground (issue 11): where the key may go, cut or empty answers, a slow
local server. Calls go to `FakeOpenAI` through the real openai client."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynosaur.core.errors import ParamsError
from dynosaur.core.params import LLMParams
from dynosaur.core.transport import is_loopback
from dynosaur.pipeline.llm import LLM, CallCache, ChatResult, check_key_transport
from dynosaur.testing.fake_openai import FakeOpenAI, Fault, Reply
from tests.pipeline.test_llm_cache import make_request, make_result


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/v1",
        "http://127.0.0.1:8000/v1",
        "http://127.8.9.10/v1",
        "http://localhost:11434/v1",
        "http://vllm.localhost/v1",
        "http://[::1]:8000/v1",
    ],
)
def test_https_or_loopback_may_carry_a_key(url):
    check_key_transport(url, allow_insecure_http=False, key_variable="K")


@pytest.mark.parametrize(
    "url",
    [
        "http://192.168.1.20:8000/v1",
        "http://gpu-box:8000/v1",
        "http://10.0.0.1/v1",
        "http://[2001:db8::1]/v1",
    ],
)
def test_plain_http_elsewhere_refuses_and_names_the_param(url):
    with pytest.raises(ParamsError) as info:
        check_key_transport(url, allow_insecure_http=False, key_variable="MY_KEY")
    assert str(info.value).startswith("llm.base_url http://") and "$MY_KEY" in str(info.value)
    check_key_transport(url, allow_insecure_http=True, key_variable="MY_KEY")  # the explicit opt-in


def test_loopback_names():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("LOCALHOST")
    assert not is_loopback("localhost.evil.com") and not is_loopback("example.com") and not is_loopback("")


def test_openai_base_url_from_the_environment_is_checked_too(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://203.0.113.7/v1")
    with LLM(LLMParams(provider="openai", model="m"), tmp_path) as llm:
        with pytest.raises(ParamsError, match="llm.base_url http://203.0.113.7"):
            llm._openai()


@pytest.mark.parametrize(
    "result",
    [make_result(content=""), make_result(content="  \n"), make_result(finish_reason="length")],
    ids=["empty", "blank", "cut"],
)
def test_a_cached_cut_or_empty_answer_is_a_miss(tmp_path, result: ChatResult):
    cache, request = CallCache(tmp_path), make_request()
    cache.put(request.cache_key, request, result)
    assert cache.get(request.cache_key) is None


def _llm(tmp_path: Path, srv: FakeOpenAI, **params) -> LLM:
    values = dict(provider="compatible", base_url=srv.base_url, model="m", max_retries=0, concurrency=1)
    return LLM(LLMParams(**{**values, **params}), tmp_path / "cache")


def test_incomplete_answers_are_retried_a_bounded_number_of_times(tmp_path):
    with FakeOpenAI() as srv, _llm(tmp_path, srv, retry_incomplete=2) as llm:
        srv.enqueue("", Reply("{", finish_reason="length"), "", '{"tasks": []}')
        request = llm.request([("user", "x")], None, "v1")
        ((_, result),) = list(llm.complete_many([request]))
        assert srv.calls == 3 and result.incomplete and result.retries == 2
        assert result.error == "empty answer (3 tries)"
        assert llm.cache.get(request.cache_key) is None and llm.cache.failure_path(request.cache_key).exists()
        assert llm.budget.calls == 3  # every try is a call against llm.max_calls


def test_a_retry_that_succeeds_is_cached_with_its_count(tmp_path):
    with FakeOpenAI() as srv, _llm(tmp_path, srv, retry_incomplete=1) as llm:
        srv.enqueue(Reply('{"tasks": [', finish_reason="length"), '{"tasks": []}')
        request = llm.request([("user", "x")], None, "v1")
        ((_, result),) = list(llm.complete_many([request]))
        assert (result.error, result.retries, result.content) == (None, 1, '{"tasks": []}')
        assert llm.cache.get(request.cache_key).content == '{"tasks": []}'


def test_a_retry_past_the_call_cap_is_not_made(tmp_path):
    with FakeOpenAI() as srv, _llm(tmp_path, srv, retry_incomplete=3, max_calls=2) as llm:
        srv.enqueue("", "", "", '{"tasks": []}')
        ((_, result),) = list(llm.complete_many([llm.request([("user", "x")], None, "v1")]))
        assert srv.calls == 2 and result.skipped and result.retries == 1


# --- issue 20, case 9: a 200 whose body is not JSON is retried like a 5xx --------------------------------


def test_a_garbage_200_body_is_retried_like_a_5xx(tmp_path):
    """A proxy's HTML page or half a body, with HTTP 200: asked again (as the SDK asks a 5xx again), and the
    answer that follows is used."""
    with FakeOpenAI() as srv, _llm(tmp_path, srv, max_retries=2) as llm:
        srv.enqueue(Fault.malformed(), '{"tasks": []}')
        ((_, result),) = list(llm.complete_many([llm.request([("user", "x")], None, "v1")]))
        assert (srv.calls, result.error, result.content) == (2, None, '{"tasks": []}')


def test_a_garbage_body_that_persists_names_its_first_80_characters(tmp_path):
    with FakeOpenAI() as srv, _llm(tmp_path, srv, max_retries=1) as llm:
        srv.enqueue(Fault.malformed(), Fault.malformed(), '{"tasks": []}')
        ((_, result),) = list(llm.complete_many([llm.request([("user", "x")], None, "v1")]))
        assert srv.calls == 2  # the first try and max_retries = 1 more
        assert result.error == "bad response: not JSON after 2 tries: 'this is not JSON {'"


# --- local calls time out on no progress, not on the wall clock (issue 20, case 10) ---------------------------


def _local(tmp_path: Path, srv: FakeOpenAI, **params) -> LLM:
    values = dict(provider="local", max_retries=0, concurrency=1, local={"n_parallel": 1})
    return LLM(LLMParams(**{**values, **params}), tmp_path / "cache", base_url=srv.base_url)


def test_a_local_call_that_keeps_producing_tokens_is_never_timed_out(tmp_path):
    """An answer that takes 1.5 s in all, a piece every ~0.1 s, under a 0.5 s timeout: it is making progress
    the whole time (a busy machine), so it must not be cut off and asked again."""
    answer = '{"tasks": []}' * 8
    with (
        FakeOpenAI(responder=lambda _: answer, latency=1.5) as srv,
        _local(tmp_path, srv, timeout_s=0.5) as llm,
    ):
        ((_, result),) = list(llm.complete_many([llm.request([("user", "u")], None, "v1")]))
        assert (result.error, result.content, result.finish_reason) == (None, answer, "stop")
        assert srv.calls == 1 and result.usage.completion_tokens > 0
        assert srv.history[0]["stream"] is True and srv.history[0]["return_progress"] is True


def test_a_local_call_with_no_progress_for_timeout_s_fails_after_its_retries(tmp_path):
    with FakeOpenAI() as srv, _local(tmp_path, srv, timeout_s=0.3, max_retries=1) as llm:
        srv.enqueue(Fault.stall(5), Fault.stall(5))
        request = llm.request([("user", "u")], None, "v1")
        ((_, result),) = list(llm.complete_many([request]))
        assert result.error is not None and "no progress for 0.3 s" in result.error
        assert srv.calls == 2  # asked again once (llm.max_retries), then failed; not cached
        ((_, again),) = list(llm.complete_many([request]))
        assert again.error is None and again.content  # the next try (next run) gets an answer
