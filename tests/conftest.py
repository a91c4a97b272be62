"""Isolation for every test: Hugging Face caches and tokens under tmp_path, offline, no telemetry, no keys."""

from __future__ import annotations

import pytest

from dynosaur.testing.fake_openai import FakeOpenAI, tasks_from_schema
from tests.hub_fixtures import hub_server  # noqa: F401  (the Hub-compatible test server, for any test)

pytest_plugins = ["tests.tiers", "tests.workers"]  # `pytest --fast`: the fast tier; xdist workers

SECRET_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "OPENAI_API_KEY")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("DYNO_DEBUG", raising=False)
    monkeypatch.delenv("DYNO_PARAMS", raising=False)
    for var in SECRET_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def server():
    """A scripted OpenAI-compatible server on 127.0.0.1 that proposes tasks from the request's JSON schema."""
    with FakeOpenAI(responder=tasks_from_schema) as srv:
        yield srv
