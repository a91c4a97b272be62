"""`dynosaur.pipeline.local_model`: serving the default model (slow); its assembly is tested in
tests/core/test_packaged_model.py."""

from __future__ import annotations

import json
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dynosaur.core.errors import ModelError
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
