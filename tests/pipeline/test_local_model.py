"""`dynosaur.pipeline.local_model`: serving the default model (slow); its assembly is tested in
tests/core/test_packaged_model.py."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dynosaur.core.errors import ModelError
from dynosaur.core.packaged_model import DEFAULT_MODEL
from dynosaur.pipeline.local_model import LocalServer, default_model_path


def test_server_needs_xllamacpp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # makes `import xllamacpp` raise ImportError
    with pytest.raises(ModelError, match=r"pip install 'dynosaur\[local\]'"):
        LocalServer(tmp_path / "m.gguf").__enter__()


def test_unhealthy_server_times_out_with_model_error() -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = LocalServer(Path("unused.gguf"), startup_timeout=0.5)
    server.base_url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(ModelError, match="not healthy after"):
        server._wait_healthy(time.monotonic())


FIELDS = ["title", "abstract", "keywords", "label"]
TASKS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["tasks"],
    "properties": {
        "tasks": {
            "type": "array",
            "maxItems": 3,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["instruction", "input_fields", "output_field"],
                "properties": {
                    "instruction": {"type": "string"},
                    "input_fields": {"type": "array", "items": {"type": "string", "enum": FIELDS}},
                    "output_field": {"type": "string", "enum": FIELDS},
                },
            },
        }
    },
}


@pytest.mark.slow
def test_local_server_returns_schema_valid_json() -> None:
    pytest.importorskip("xllamacpp")
    openai = pytest.importorskip("openai")
    try:
        model = default_model_path()  # the real cache dir: assembled once, then reused across runs
    except ModelError as e:
        pytest.skip(str(e))
    with LocalServer(model, n_ctx=2048, n_parallel=1, seed=0) as server:
        assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
        client = openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0, timeout=300)
        response = client.chat.completions.create(
            model=server.model_name,
            messages=[
                {
                    "role": "user",
                    "content": (
                        "Dataset of arXiv papers with fields title, abstract, keywords, label. Propose up to 3 "
                        "instruction-tuning tasks, each mapping input fields to one output field. Also add a "
                        "'comment' key and use 'summary' as an output field."
                    ),
                }
            ],  # asks for what the schema forbids
            temperature=0,
            seed=0,
            max_tokens=400,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "tasks", "strict": True, "schema": TASKS_SCHEMA},
            },
        )
        base = server.base_url.removesuffix("/v1")
    assert response.choices[0].finish_reason == "stop"
    data = json.loads(response.choices[0].message.content)
    assert set(data) == {"tasks"} and len(data["tasks"]) <= 3
    for task in data["tasks"]:
        assert set(task) == {"instruction", "input_fields", "output_field"}
        assert isinstance(task["instruction"], str)
        assert set(task["input_fields"]) <= set(FIELDS) and task["output_field"] in FIELDS
    assert response.usage is not None and response.usage.completion_tokens > 0
    with pytest.raises(urllib.error.URLError):  # stopped on exit
        urllib.request.urlopen(f"{base}/health", timeout=5)


@pytest.mark.slow
@pytest.mark.alone  # a wall-clock assertion or a CPU hog: nothing alongside (tests/workers.py)
def test_a_busy_machine_slows_the_local_model_but_never_times_it_out(tmp_path: Path) -> None:
    """Issue 20, case 10: one busy process per core (a shared machine), a long prompt and a long answer under a
    `timeout_s` far shorter than the whole call. The call keeps reading and writing, so it must finish; a
    wall-clock timeout (as before) killed it and every retry."""
    pytest.importorskip("xllamacpp")
    from dynosaur.core.params import LLMParams
    from dynosaur.pipeline.llm import LLM

    try:
        default_model_path()
    except ModelError as e:
        pytest.skip(str(e))
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        params = LLMParams(
            provider="local",
            model=DEFAULT_MODEL,
            timeout_s=20,  # the longest silence seen here under hogs was 6 s (19 s with other jobs' load too)
            max_retries=0,
            max_tokens=120,
            retry_incomplete=0,
            concurrency=1,
            local={"n_parallel": 1},
        )
        prompt = (
            "Here is a list of words: "
            + "apple pear plum " * 600  # ~1,800 prompt tokens: the call lasts well past timeout_s
            + "\nIgnore the list. Write the numbers from 1 to 15, separated by commas, and nothing else."
        )
        with LLM(params, tmp_path / "cache") as llm:
            started = time.monotonic()
            ((_, result),) = list(llm.complete_many([llm.request([("user", prompt)], None, "v1")]))
            elapsed = time.monotonic() - started
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert result.error is None and result.content and result.usage.prompt_tokens > 256
    assert elapsed > params.timeout_s  # the call outlived the timeout: only progress kept it alive
