"""pytest fixtures that point the real `huggingface_hub` and `datasets` clients at a `HubServer`.

Register them in tests/conftest.py with::

    pytest_plugins = ["tests.hub_fixtures"]

(or `from tests.hub_fixtures import hub_server  # noqa: F401`).

`hub_server` starts a fresh server (repos under tmp_path, port chosen by the OS) for each test, sets the
environment for subprocesses (HF_ENDPOINT, HF_TOKEN, offline flags off, Xet and telemetry off) and patches
the values both libraries read from the environment once at import time, so in-process calls use it too.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dynosaur.testing.hub_server import HubServer

HF_TEST_TOKEN = "hf_test_dummy_token"


def point_clients_at(monkeypatch: pytest.MonkeyPatch, url: str, token: str = HF_TEST_TOKEN) -> None:
    """Point env (for subprocesses) and the import-time constants of huggingface_hub and datasets at `url`."""
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setenv("HF_UPDATE_DOWNLOAD_COUNTS", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)

    from huggingface_hub import constants, hf_api

    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_URL_HOSTS", frozenset(constants.HF_URL_HOSTS | {"127.0.0.1"}))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    # Read once at import: a test that imported huggingface_hub before this fixture ran would otherwise see
    # upload progress bars on stderr (and a one-line error check fail), depending on test order.
    hub_tqdm = importlib.import_module(
        "huggingface_hub.utils.tqdm"
    )  # the module (its package exports a class)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_PROGRESS_BARS", True)
    monkeypatch.setattr(hub_tqdm, "HF_HUB_DISABLE_PROGRESS_BARS", True)
    monkeypatch.setattr(
        hf_api.api, "endpoint", url
    )  # the module-level HfApi behind huggingface_hub.create_repo & co
    # Caches: follow the per-test HF_HOME / HF_DATASETS_CACHE that tests/conftest.py sets.
    hf_home = os.environ.get("HF_HOME")
    if hf_home:
        monkeypatch.setattr(constants, "HF_HOME", hf_home)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", os.path.join(hf_home, "hub"))
        monkeypatch.setattr(constants, "HUGGINGFACE_HUB_CACHE", os.path.join(hf_home, "hub"))
        monkeypatch.setattr(constants, "HF_ASSETS_CACHE", os.path.join(hf_home, "assets"))
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", os.path.join(hf_home, "token"))
        monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", os.path.join(hf_home, "stored_tokens"))

    import datasets.config as dconfig

    monkeypatch.setattr(dconfig, "HF_ENDPOINT", url)
    monkeypatch.setattr(dconfig, "HUB_DATASETS_URL", url + "/datasets/{repo_id}/resolve/{revision}/{path}")
    monkeypatch.setattr(dconfig, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(dconfig, "HF_DATASETS_OFFLINE", False)
    monkeypatch.setattr(dconfig, "HF_UPDATE_DOWNLOAD_COUNTS", False)
    ds_cache = os.environ.get("HF_DATASETS_CACHE")
    if ds_cache:
        monkeypatch.setattr(dconfig, "HF_DATASETS_CACHE", Path(ds_cache))
        monkeypatch.setattr(
            dconfig, "DOWNLOADED_DATASETS_PATH", Path(ds_cache) / dconfig.DOWNLOADED_DATASETS_DIR
        )
        monkeypatch.setattr(
            dconfig,
            "EXTRACTED_DATASETS_PATH",
            Path(ds_cache) / dconfig.DOWNLOADED_DATASETS_DIR / dconfig.EXTRACTED_DATASETS_DIR,
        )


@pytest.fixture
def hub_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """A running HubServer (user "tester", org "tester-org"); HF_ENDPOINT and both clients point at it."""
    server = HubServer(tmp_path / "fake-hub").start()
    point_clients_at(monkeypatch, server.url)
    try:
        yield server
    finally:
        server.stop()
